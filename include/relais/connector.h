/*
 * connector.h - what a connector author needs.
 *
 * A connector is a const descriptor (struct relais_connector) plus instances.
 * The descriptor never changes; each configured instance ("connectors:" entry
 * in the YAML file) gets its own config struct, filled by the hub from the
 * descriptor's option table, and its own context returned by init().
 * The same descriptor can be configured several times (the town's GRC and
 * the CCAS's GRC).
 *
 * Lifecycle, all called from the hub's main thread unless stated:
 *   init(inst, config, &ctx)  check options, allocate ctx; no I/O threads yet
 *   start(ctx)                open listeners / start own threads
 *   receive(ctx)              pull sources only: called from the hub's source
 *                             loop every poll interval; submits what it finds
 *   deliver(ctx, ev, ...)     sinks only: called from a delivery worker thread,
 *                             (deliver_batch, when given and the instance's
 *                             batch_max > 1, takes several events at once)
 *                             at most `max_in_flight` at once per instance;
 *                             must be thread-safe up to that limit and must not
 *                             sleep beyond its own timeout
 *   stop(ctx)                 stop accepting, finish or hand back in-flight work
 *   destroy(ctx)              free everything (NULL-safe)
 *
 * Push sources (HTTP webhook, Kafka topic in) call relais_submit() from their
 * own threads; relais_submit() is thread-safe.
 */
#ifndef RELAIS_CONNECTOR_H
#define RELAIS_CONNECTOR_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "relais/relais.h"
#include "relais/event.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RELAIS_CONNECTOR_ABI 1

/* ---- Option tables (after Fluent Bit's config_map) ------------------------ */

typedef enum relais_opt_type {
    RELAIS_OPT_STR = 1,    /* char *, owned by the hub */
    RELAIS_OPT_INT,        /* long */
    RELAIS_OPT_BOOL,       /* int, 0 or 1; YAML true/false/yes/no/on/off */
    RELAIS_OPT_DURATION,   /* long, milliseconds; "250ms", "5s", "2m", "1h" or a bare number of ms */
    RELAIS_OPT_SIZE,       /* long, bytes; "512", "64KB", "10MB", "1GB" */
    RELAIS_OPT_SECRET,     /* char *; value "env:NAME" or "file:/path", resolved at load, never printed */
    RELAIS_OPT_ENUM,       /* char *; one of enum_values ("jsonl|csv") */
    RELAIS_OPT_STRLIST,    /* char **, NULL-terminated; YAML sequence or comma-separated string */
    RELAIS_OPT_PREFIX,     /* relais_kv * list of every "<name>*" key, e.g. "rdkafka." passthrough */
    RELAIS_OPT_URL         /* char *, like STR: a URL the connector calls out to; its host is checked
                              against the hub's outgoing.allow when the configuration is loaded */
} relais_opt_type;

typedef struct relais_kv {
    char *key;             /* without the prefix */
    char *value;
    struct relais_kv *next;
} relais_kv;

#define RELAIS_OPT_UNLESS_MAPPED 2

typedef struct relais_option {
    const char     *name;
    relais_opt_type type;
    const char     *def;          /* default as text; NULL = none (unset) */
    int             required;     /* 1: must be given (def ignored); RELAIS_OPT_UNLESS_MAPPED:
                                     must be given unless the instance has a mapping: */
    size_t          offset;       /* offsetof(<instance config struct>, field) */
    const char     *enum_values;  /* RELAIS_OPT_ENUM only: "a|b|c" */
    const char     *desc;         /* one line for `relais connectors describe` */
    unsigned        modes;        /* RELAIS_MODE_* bits where the option applies; 0 = all */
} relais_option;

/* ---- Instances ------------------------------------------------------------ */

#define RELAIS_MODE_SOURCE 0x1u
#define RELAIS_MODE_SINK   0x2u

typedef struct relais_instance relais_instance;   /* the hub's handle on one instance */

const char *relais_instance_name(const relais_instance *inst);
const char *relais_instance_tenant(const relais_instance *inst);
unsigned    relais_instance_mode(const relais_instance *inst);  /* RELAIS_MODE_SOURCE or _SINK */
/* Bootstrap servers of the hub's bus (embedded or configured); for connectors
 * that talk Kafka themselves. */
const char *relais_instance_bus_bootstrap(const relais_instance *inst);
void relais_instance_log(const relais_instance *inst, relais_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- Sources: records in -------------------------------------------------- */

/* One record as a source read it. All strings are borrowed for the call. */
typedef struct relais_record {
    const char *record_id;      /* id given by the source package; NULL: SHA-256 of the data */
    const char *type;           /* canonical event type, required */
    const char *subject;        /* canonical entity, e.g. "request/2024-000123"; may be NULL */
    const char *correlation_id; /* NULL: a new one is made (the event id) */
    const char *traceparent;    /* NULL: a new trace is started */
    const char *tenant;         /* NULL: the instance's tenant */
    json_t     *data;           /* a JSON object; borrowed. Required unless raw is given */
    /* The vendor record as text (an XML document), for instances whose
     * mapping reads XML; the hub parses it safely and maps it. NULL: none. */
    const char *raw;
    size_t      raw_len;
} relais_record;

typedef enum relais_submit_status {
    RELAIS_SUBMIT_ACCEPTED    = 0,  /* journaled, event_id is new */
    RELAIS_SUBMIT_DUPLICATE   = 1,  /* (source, record_id) seen before; event_id is the first one's */
    RELAIS_SUBMIT_REJECTED    = 2,  /* invalid; journaled as rejected with reason */
    RELAIS_SUBMIT_UNAVAILABLE = 3   /* not journaled (journal or bus down): tell the sender to retry */
} relais_submit_status;

typedef struct relais_submit_result {
    relais_submit_status status;
    char event_id[40];
    char reason[256];
} relais_submit_result;

/* Build events from n records, journal them durably (group commit with other
 * callers), then hand them to the bus. Blocks until the journal commit.
 * results[i] tells the fate of recs[i]. Returns 0 when every record has a
 * verdict, -1 when the hub is not accepting (every result UNAVAILABLE).
 * Thread-safe. */
int relais_submit(relais_instance *inst, const relais_record *recs, size_t n,
                  relais_submit_result *results);

/* Journal an input that could not even become a record (malformed JSON, bad
 * CSV line...). `where` names the place ("file.csv:12", "body offset 40"),
 * `raw` is an excerpt (may be NULL; at most 4 KiB are kept). Thread-safe. */
int relais_reject(relais_instance *inst, const char *record_id, const char *where,
                  const char *reason, const char *raw, size_t rawlen);

/* 1 when the hub can journal and publish right now; 0 when sources should
 * push back (HTTP 503 with Retry-After, file source pauses). */
int relais_accepting(const relais_instance *inst);

/* ---- Sinks: events out ---------------------------------------------------- */

typedef enum relais_verdict {
    RELAIS_DELIVER_OK     = 0,   /* applied (or already applied) by the destination */
    RELAIS_DELIVER_RETRY  = 1,   /* transient: try again later */
    RELAIS_DELIVER_REJECT = 2    /* permanent refusal: dead-letter at once */
} relais_verdict;

/* What the destination answered, recorded in the journal. */
typedef struct relais_answer {
    int  status;          /* protocol status (HTTP code), 0 when none */
    char detail[512];     /* short text: error or excerpt of the body */
    char local_id[128];   /* id the destination gave the entity; "" when none */
} relais_answer;

/* What a sink sends: the vendor payload made by the instance's outbound
 * mapping (docs/MAPPINGS.md), or the CloudEvent JSON when the instance has no
 * mapping. */
typedef struct relais_payload {
    const char *body;            /* valid until relais_payload_release() */
    size_t      len;
    const char *content_type;    /* "application/cloudevents+json" without a mapping */
    void       *priv;            /* the hub's; do not touch */
} relais_payload;

/* Render ev for this sink instance. local_id: the cross-reference passed to
 * deliver() (may be NULL). 0 with out filled; -1 when the mapping refuses the
 * event (ans->detail says why, naming the mapping file, line and field):
 * deliver() should then return RELAIS_DELIVER_REJECT, since no retry can
 * change the outcome. Thread-safe. */
int  relais_render(const relais_instance *inst, const relais_event *ev, const char *local_id,
                   relais_payload *out, relais_answer *ans);
void relais_payload_release(relais_payload *p);   /* NULL-safe */
/* 1 when the instance has a mapping (so payloads are vendor records). */
int  relais_instance_mapped(const relais_instance *inst);

/* ---- Packages: cross-references, durable state, echoes (any thread) ------- */

/* The vendor package an instance belongs to: its `package:` key, else its
 * name. The source and sink instances of one package (publik-in and
 * publik-out) give it the same value, and so share cross-references and
 * state. Cross-references are recorded under the destination's package. */
const char *relais_instance_package(const relais_instance *inst);

/* The local id that `package` (NULL: this instance's package) gave the
 * canonical entity `canonical_id` ("request/GRC-2026-0042"), in this
 * instance's tenant. 0 found (out filled), 1 none, -1 journal unavailable.
 * A read of the journal's database: do not call it per byte of a hot loop. */
int relais_xref_local(const relais_instance *inst, const char *package, const char *canonical_id,
                      char *out, size_t outlen);
/* The reverse: the canonical id of the `entity` ("request") to which
 * `package` (NULL: this instance's package) gave `local_id`, in this
 * instance's tenant. 0 found, 1 none, -1 journal unavailable. */
int relais_xref_canonical(const relais_instance *inst, const char *package, const char *entity,
                          const char *local_id, char *out, size_t outlen);
/* Record that this instance's package knows `canonical_id` as `local_id`
 * (a source learns it: the GRC form created for a request that came from
 * Open311). Committed when it returns 0; -1 journal unavailable. */
int relais_xref_put(const relais_instance *inst, const char *canonical_id, const char *local_id);

/* Durable state of a package (poll checkpoints, the records a server
 * answers for), kept in the journal's database: shared by every hub process
 * and by the source and sink instances of the package, per tenant.
 * Keys: 1 to 200 bytes. Values: JSON objects.
 * put: committed when it returns 0 (value borrowed); -1 journal unavailable. */
int relais_state_put(const relais_instance *inst, const char *key, json_t *value);
/* A new reference to the value, or NULL: *err = 0 when the key is unknown,
 * 1 when the journal is unavailable (err may be NULL). */
json_t *relais_state_get(const relais_instance *inst, const char *key, int *err);
/* Up to `limit` entries whose key starts with `prefix` ("" for all), in key
 * order after `after` (NULL: from the start; pass the last key seen to page):
 * a new array [{"key", "value", "updated_at"}], NULL when the journal is
 * unavailable. */
json_t *relais_state_list(const relais_instance *inst, const char *prefix, const char *after, size_t limit);

/* A source saw a change that Relais itself wrote into its package (the
 * change's author is the connector's own account): it does not submit it
 * (no echo) and tells the hub, which counts it (relais_echoes_total in
 * /metrics) and logs it at debug level. */
void relais_echo_skipped(relais_instance *inst, const char *record_id);

/* Sinks may also call relais_submit() from deliver(), to journal events they
 * derive from the one they deliver (a request closed when its work order is
 * done). Derive the record id from the delivered event's id: a redelivery is
 * then answered "duplicate" and nothing is derived twice. */

/* ---- The descriptor ------------------------------------------------------- */

typedef struct relais_connector {
    int                  abi_version;   /* RELAIS_CONNECTOR_ABI */
    const char          *name;          /* "http", "file", "kafka", ... */
    const char          *description;
    unsigned             modes;         /* RELAIS_MODE_* it supports */
    const relais_option *options;       /* terminated by an entry with name == NULL */
    size_t               config_size;   /* size of the struct the options fill */

    int  (*init)(relais_instance *inst, void *config, void **ctx, char *errstr, size_t errlen);
    int  (*start)(void *ctx, char *errstr, size_t errlen);
    int  (*receive)(void *ctx);         /* pull sources; NULL otherwise */
    /* `local_id`: the id this destination gave the event's subject earlier
     * (cross-reference), or NULL. Fill `ans`; return the verdict. */
    relais_verdict (*deliver)(void *ctx, const relais_event *ev, const char *local_id,
                              relais_answer *ans);
    void (*stop)(void *ctx);
    void (*destroy)(void *ctx);

    /* Optional, sinks only (NULL: the hub calls deliver() once per event).
     * Deliver n events (1 <= n <= the instance's batch_max) to the same
     * destination in one exchange. local_ids[i] is the cross-reference of
     * evs[i] (NULL when none). Fill verdicts[i] and ans[i] for every i; a
     * destination that answers for the whole batch gives every event the same
     * verdict. Same threading rules as deliver(). */
    void (*deliver_batch)(void *ctx, const relais_event *const *evs, const char *const *local_ids,
                          size_t n, relais_verdict *verdicts, relais_answer *ans);
} relais_connector;

#ifdef __cplusplus
}
#endif
#endif
