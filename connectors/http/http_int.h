/*
 * http_int.h - internals of the generic `http` connector, shared by its files:
 *
 *   http.c         the descriptor, the option table, init/start/stop/destroy
 *                  dispatching to the source or the sink half
 *   http_body.c    webhook body parsing (pure: JSON text -> records, fields
 *                  picked with hub/jsonptr.h), the X-Relais-Signature scheme;
 *                  no I/O, fuzzed by tests/fuzz/fuzz_webhook.c
 *   http_source.c  the webhook source (libmicrohttpd)
 *   http_sink.c    the sink (libcurl): one event per POST, or a batch
 *   sim_http.c     relais-sim-http, the destination simulator (hub/simkit.h)
 *
 * The listen-address split, the capped request-body buffer and the UTF-8
 * excerpt helper they use are hub/httputil.h's (included here), and so are
 * the outgoing-call policy the sink applies to every request and the replay
 * memory of the source's nonces.
 *
 * No global mutable state: everything lives in the per-instance contexts.
 */
#ifndef RELAIS_HTTP_INT_H
#define RELAIS_HTTP_INT_H
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "relais/connector.h"
#include "jsonptr.h"
#include "httputil.h"

/* The struct the option table fills (one per configured instance). */
typedef struct relais_http_config {
    /* source */
    char *listen;              /* "127.0.0.1:8081", "[::1]:8081", port 0 = any free port */
    char *port_file;           /* where the bound port is written (tests, port 0) */
    char *path;                /* "/events" */
    char *event_type;          /* default type when the body does not give one */
    char *type_pointer;        /* JSON pointer into a plain record giving its type */
    char *subject_pointer;
    char *record_id_pointer;
    char *correlation_pointer;
    long  hmac_tolerance;      /* ms */
    long  max_body;            /* bytes */
    long  max_batch;           /* records per request */
    long  max_connections;     /* concurrent connections (one thread each) */
    long  hmac_nonce_max;      /* nonces remembered within the replay window */
    /* both */
    char *hmac_secret;
    /* sink */
    char *url;
    long  timeout;             /* ms */
    long  connect_timeout;     /* ms */
    char **headers;            /* "Name: value" */
    char *auth_token;
    char *id_pointer;
    char *tls_ca_file;         /* PEM CA file for the destination; NULL: the system's */
    int   tls_verify;          /* 0: no TLS verification (explicit, warned at start) */
} relais_http_config;

/* ---- Body parsing (http_body.c) ------------------------------------------- */

/* Deepest nesting of arrays/objects a body may have. */
#define RELAIS_HTTP_MAX_DEPTH 64
/* Longest type, subject, record id, correlation id or traceparent taken from
 * a body (bytes); longer values make the record invalid. */
#define RELAIS_HTTP_MAX_FIELD 255

typedef struct relais_http_parse_opts {
    const char *content_type;        /* request Content-Type, may be NULL */
    const char *idempotency_key;     /* request Idempotency-Key header, may be NULL */
    const char *event_type;          /* default type, may be NULL */
    const char *type_pointer;        /* may be NULL */
    const char *subject_pointer;     /* may be NULL */
    const char *record_id_pointer;   /* may be NULL */
    const char *correlation_pointer; /* may be NULL */
    size_t      max_batch;           /* 0: no limit */
    int         mapped;              /* 1: the instance's mapping gives the type; none needed here */
} relais_http_parse_opts;

typedef struct relais_http_item {
    relais_record rec;        /* strings point into `root`, into the buffers below
                                 or into the parse options (event_type, key) */
    int           valid;      /* 0: rejected before submit, see reason */
    char          reason[256];
    json_t       *data_owned; /* a CloudEvent without data gets {} (owned) */
    char          idbuf[RELAIS_HTTP_MAX_FIELD + 1];   /* made here: numbers, "<key>/<i>" */
    char          subjbuf[RELAIS_HTTP_MAX_FIELD + 1];
    char          corrbuf[RELAIS_HTTP_MAX_FIELD + 1];
    char          typebuf[RELAIS_HTTP_MAX_FIELD + 1];
} relais_http_item;

typedef enum relais_http_body_status {
    RELAIS_HTTP_BODY_OK = 0,         /* items filled (each valid or not) */
    RELAIS_HTTP_BODY_MALFORMED,      /* not JSON, too deep, wrong shape: 400 */
    RELAIS_HTTP_BODY_TOO_MANY        /* more than max_batch records: 413 */
} relais_http_body_status;

typedef struct relais_http_batch {
    json_t           *root;       /* the parsed body (owned) */
    int               single;     /* 1: the body was one record (object or structured CloudEvent) */
    size_t            n;
    relais_http_item *items;      /* n items (owned) */
    /* when MALFORMED / TOO_MANY: */
    char              error[256];
    int               line;       /* 1-based, 0 when not about a position */
    int               column;
} relais_http_batch;

/* Parse a webhook body. Never reads beyond len; body need not be
 * NUL-terminated. Fills *out (free with relais_http_batch_free, also after
 * an error). */
relais_http_body_status relais_http_parse_body(const char *body, size_t len,
                                               const relais_http_parse_opts *o,
                                               relais_http_batch *out);
void relais_http_batch_free(relais_http_batch *b);

/* The text of an identifier-like value (type, subject, record id,
 * correlation id, a sink's local id): 0 when v is a non-empty string or an
 * integer (decimal) whose text fits in len - 1 bytes; -1 otherwise (NULL,
 * null, "", real, boolean, object, array, too long), buf then "". Values are
 * found with relais_json_pointer() (hub/jsonptr.h). */
int relais_http_value_text(const json_t *v, char *buf, size_t len);

/* ---- Signature scheme ------------------------------------------------------
 * X-Relais-Signature: t=<unix seconds>,v2=<hex HMAC-SHA256(secret, "<t>.<nonce>.<body>")>
 * X-Relais-Nonce: <nonce>, 16 to 64 of [A-Za-z0-9_-], new for every request.
 * Several v2= are allowed (key rotation on the sender side); one must match.
 * The source refuses a nonce seen within the tolerance window (409) even
 * under a valid signature (http_source.c). The former scheme, v1 = HMAC over
 * "<t>.<body>" without a nonce, is refused (RELAIS_HTTP_SIG_LEGACY). */

#define RELAIS_HTTP_SIG_HEADER "X-Relais-Signature"
#define RELAIS_HTTP_NONCE_HEADER "X-Relais-Nonce"
#define RELAIS_HTTP_NONCE_MIN 16
#define RELAIS_HTTP_NONCE_MAX 64

/* 1 when nonce has the form above, else 0 (NULL: 0). */
int relais_http_nonce_ok(const char *nonce);
/* A new nonce: 128 random bits in hex. 0 ok, -1 when the random source fails. */
int relais_http_nonce_new(char out[33]);
/* Hex HMAC-SHA256 of "<ts>.<nonce>.<body>". 0 ok, -1 on an invalid nonce or
 * a crypto library error. */
int relais_http_sign(const char *secret, long long ts, const char *nonce, const void *body, size_t len,
                     char out_hex[65]);
/* Full header value "t=<ts>,v2=<hex>". */
int relais_http_signature_header(const char *secret, long long ts, const char *nonce, const void *body,
                                 size_t len, char *buf, size_t buflen);

typedef enum relais_http_sig_status {
    RELAIS_HTTP_SIG_OK = 0,
    RELAIS_HTTP_SIG_MISSING,     /* no header */
    RELAIS_HTTP_SIG_MALFORMED,   /* no t= or no v2= */
    RELAIS_HTTP_SIG_STALE,       /* t outside tolerance */
    RELAIS_HTTP_SIG_MISMATCH,    /* no v2 matches (constant-time compare) */
    RELAIS_HTTP_SIG_NONCE,       /* X-Relais-Nonce missing or not of the form above */
    RELAIS_HTTP_SIG_LEGACY       /* only v1= (the scheme without nonce) */
} relais_http_sig_status;

/* header: the X-Relais-Signature value; nonce: the X-Relais-Nonce value (both
 * may be NULL). *ts_out (may be NULL) gets the signature's time when OK. */
relais_http_sig_status relais_http_verify(const char *secret, const char *header, const char *nonce,
                                          long long now, long tolerance_s, const void *body, size_t len,
                                          long long *ts_out);
const char *relais_http_sig_status_text(relais_http_sig_status s);

/* ---- Source and sink halves ----------------------------------------------- */

typedef struct relais_http_source relais_http_source;
typedef struct relais_http_sink relais_http_sink;

relais_http_source *relais_http_source_new(relais_instance *inst, const relais_http_config *cfg,
                                           char *errstr, size_t errlen);
int  relais_http_source_start(relais_http_source *s, char *errstr, size_t errlen);
/* The bound port after start (useful with listen port 0). */
int  relais_http_source_port(const relais_http_source *s);
void relais_http_source_stop(relais_http_source *s);
void relais_http_source_destroy(relais_http_source *s);

relais_http_sink *relais_http_sink_new(relais_instance *inst, const relais_http_config *cfg,
                                       char *errstr, size_t errlen);
relais_verdict relais_http_sink_deliver(relais_http_sink *s, const relais_event *ev,
                                        const char *local_id, relais_answer *ans);
/* n events in one POST (application/cloudevents-batch+json); fills every
 * verdicts[i] and ans[i] (see http_sink.c and README.md). */
void relais_http_sink_deliver_batch(relais_http_sink *s, const relais_event *const *evs,
                                    const char *const *local_ids, size_t n,
                                    relais_verdict *verdicts, relais_answer *ans);
void relais_http_sink_destroy(relais_http_sink *s);

/* The connector context handed to the hub (void *ctx). */
typedef struct relais_http_ctx {
    unsigned            mode;
    relais_http_source *source;
    relais_http_sink   *sink;
} relais_http_ctx;

/* The bound port of a started source instance's context; -1 for a sink. */
int relais_http_ctx_port(const void *ctx);

#endif
