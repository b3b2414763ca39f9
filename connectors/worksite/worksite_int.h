/*
 * worksite_int.h - internals of the `worksite` connector (a technical
 * services' work-order tool, api/worksite-openapi.yaml), shared by its files:
 *
 *   worksite.c         the descriptor, the option table, init/start/stop/destroy
 *   worksite_api.c     the vendor interface as data: statuses and their life
 *                      cycle, RFC 3339 times, and the parsers of the tool's
 *                      answers (pure: no I/O, no state; fuzzed by
 *                      tests/fuzz/fuzz_worksite_answers.c). The simulator uses
 *                      the same life cycle and time functions.
 *   worksite_client.c  the HTTP client (libcurl): bearer token, timeouts,
 *                      capped answers, a pool of easy handles
 *   worksite_sink.c    deliver(): grc.request.created -> POST /interventions
 *   worksite_source.c  the poller: changes since a checkpoint -> workorder events
 *
 * No global mutable state: everything lives in the per-instance contexts.
 */
#ifndef RELAIS_WORKSITE_INT_H
#define RELAIS_WORKSITE_INT_H
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "relais/connector.h"

/* The struct the option table fills (one per configured instance). */
typedef struct relais_worksite_config {
    char *url;               /* base URL of the tool; the API is under /api/v1 */
    char *token;             /* API token (secret) */
    long  timeout;           /* ms, whole request */
    long  connect_timeout;   /* ms */
    char *tls_ca_file;       /* PEM CA file for https:// (NULL: the system's store) */
    int   tls_verify;        /* 0: no certificate check (warned at start) */
    /* source */
    char *self_account;      /* the account Relais's token belongs to */
    long  poll_interval;     /* ms */
    long  page_size;         /* interventions per page */
} relais_worksite_config;

/* ---- The vendor interface (worksite_api.c) --------------------------------- */

/* Statuses of an intervention, in life-cycle order. */
typedef enum ws_status {
    WS_RECEIVED = 0, WS_ACCEPTED, WS_PLANNED, WS_IN_PROGRESS, WS_DONE, WS_REFUSED,
    WS_STATUS_COUNT
} ws_status;

/* "received" ... "refused"; NULL for an out-of-range value. */
const char *ws_status_name(ws_status s);
/* The status named `name`: 0 with *out set, -1 when unknown (NULL too). */
int ws_status_parse(const char *name, ws_status *out);
/* 1 when the life cycle allows from -> to: received -> accepted -> planned ->
 * in_progress -> done, and refused from received or accepted. */
int ws_status_allowed(ws_status from, ws_status to);
/* The next step of the normal path (received -> accepted -> planned ->
 * in_progress -> done): 0 with *next set, -1 for done and refused. */
int ws_status_next(ws_status s, ws_status *next);

/* RFC 3339 date-time (YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM), 'T' and
 * 'Z' in either case, years 0001-9999) to microseconds since the epoch
 * (fractions beyond microseconds are cut). 0, or -1 when s is not one. */
int ws_time_parse(const char *s, int64_t *us);

/* An intervention id as the tool gives it ("INT-2026-000123"): 1 to 64 of
 * [A-Za-z0-9._-], not "." or ".."; it goes into URL paths and record ids, so
 * anything else is refused. 1 ok, 0 not. */
int ws_id_valid(const char *id);

/* The text of an error answer {"error":{"code","message","field"}} into out:
 * "code: message (field)", or an excerpt of the body (one line, valid UTF-8)
 * when it is not one. Never fails; out is always terminated. */
void ws_error_text(const char *body, size_t len, char *out, size_t outlen);

/* The "id" of an Intervention answer (create, read): 0 with id filled, -1
 * with errstr (not JSON, not an object, no valid id). */
int ws_parse_intervention_id(const char *body, size_t len, char *id, size_t idlen,
                             char *errstr, size_t errlen);

/* One page of GET /interventions, checked for what the poller reads: every
 * item an object with a valid "id" and an RFC 3339 "updated_at", an
 * "external_ref" that is a string when present; "next_cursor" a non-empty
 * string or null. 0 with *page filled (free with ws_page_clear), -1 with
 * errstr (the page as a whole is unusable). */
typedef struct ws_page {
    json_t     *root;          /* owned */
    json_t     *items;         /* borrowed from root: array of objects */
    const char *next_cursor;   /* borrowed from root; NULL on the last page */
} ws_page;
int  ws_parse_page(const char *body, size_t len, ws_page *page, char *errstr, size_t errlen);
void ws_page_clear(ws_page *page);   /* NULL-safe, idempotent */

/* One usable history entry. */
typedef struct ws_change {
    json_t     *entry;         /* borrowed from the history's root */
    json_int_t  id;            /* >= 1 */
    int64_t     at_us;         /* its "at" */
    const char *at;            /* borrowed text of "at" */
    const char *author;        /* borrowed */
    ws_status   status;
} ws_change;

/* GET /interventions/<id>/history: the entries sorted by (at, id). An entry
 * without a usable id, status, at or author is left out and counted in
 * *nbad (its reason in bad_reason, the first one only). 0 with *h filled
 * (free with ws_history_clear), -1 with errstr when the answer as a whole is
 * unusable (not JSON, no items array, another intervention's history). */
typedef struct ws_history {
    json_t    *root;           /* owned */
    ws_change *changes;        /* owned array of n */
    size_t     n;
    size_t     nbad;
    char       bad_reason[160];
} ws_history;
int  ws_parse_history(const char *body, size_t len, const char *intervention_id, ws_history *h,
                      char *errstr, size_t errlen);
void ws_history_clear(ws_history *h);   /* NULL-safe, idempotent */

/* Largest answer body parsed (bytes). */
#define WS_MAX_ANSWER (16u * 1024 * 1024)

/* ---- HTTP client (worksite_client.c) --------------------------------------- */

typedef struct ws_client ws_client;

/* From cfg: url (http:// or https://; a trailing '/' is dropped), token (the
 * bearer token), timeout, connect_timeout, tls_ca_file and tls_verify
 * (copied; cfg may go after). Calls go out under inst's outgoing policy
 * (hub/httputil.h: the hub's outgoing.allow, TLS settings; inst may be NULL
 * in tests). NULL with errstr on a bad URL or token. */
ws_client *ws_client_new(const relais_instance *inst, const relais_worksite_config *cfg, char *errstr, size_t errlen);
void ws_client_destroy(ws_client *c);   /* NULL-safe */

typedef struct ws_response {
    long   status;      /* HTTP status; 0 on a transport error */
    char  *body;        /* owned, NUL-terminated (may be NULL when empty) */
    size_t len;
    int    truncated;   /* more than WS_MAX_ANSWER bytes came */
    int    transport;   /* 1: no HTTP answer (refused, reset, timeout, DNS, TLS) */
    char   error[256];  /* curl's message when transport */
} ws_response;

/* One request: method "GET" or "POST", path_query after the base URL
 * ("/api/v1/interventions?per_page=100"), a JSON body for POST (may be NULL),
 * an Idempotency-Key (may be NULL). Thread-safe. 0 when an HTTP answer came
 * (any status), -1 on a transport error (r->transport, r->error). r is
 * always filled; free it with ws_response_free. */
int  ws_client_call(ws_client *c, const char *method, const char *path_query, const char *body,
                    size_t len, const char *idempotency_key, ws_response *r);
void ws_response_free(ws_response *r);   /* NULL-safe */

/* A query parameter value escaped for a URL (curl_easy_escape); free(). */
char *ws_client_escape(const char *s);

/* ---- Sink and source ------------------------------------------------------- */

typedef struct ws_sink ws_sink;
ws_sink *ws_sink_new(relais_instance *inst, const relais_worksite_config *cfg, char *errstr,
                     size_t errlen);
relais_verdict ws_sink_deliver(ws_sink *s, const relais_event *ev, const char *local_id,
                               relais_answer *ans);
void ws_sink_destroy(ws_sink *s);   /* NULL-safe */

typedef struct ws_source ws_source;
ws_source *ws_source_new(relais_instance *inst, const relais_worksite_config *cfg,
                         char *errstr, size_t errlen);
/* Start the poller thread (a first poll at once, then every poll_interval). */
int  ws_source_start(ws_source *s, char *errstr, size_t errlen);
/* One whole poll, synchronously (the poller thread calls it; tests too, on a
 * source that was not started). 0 when the checkpoint could advance to
 * everything seen, -1 when the poll stopped early (tool or journal
 * unavailable: nothing is lost, the next poll starts from the same
 * checkpoint). Polls never overlap. */
int  ws_source_poll(ws_source *s);
void ws_source_stop(ws_source *s);      /* joins the thread; NULL-safe */
void ws_source_destroy(ws_source *s);   /* NULL-safe */

/* The state key of an instance's checkpoint: "checkpoint/<instance name>". */
void ws_source_state_key(const relais_instance *inst, char *buf, size_t len);

/* The connector context handed to the hub (void *ctx). */
typedef struct relais_worksite_ctx {
    ws_source *source;
    ws_sink   *sink;
} relais_worksite_ctx;

#endif
