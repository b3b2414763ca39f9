/*
 * admin_http.c - the admin HTTP server (libmicrohttpd): health, metrics, and
 * the calls of auditors, operators and admins, each route with the least
 * role it needs (g_routes; docs/SECURITY.md "Roles and tokens"):
 *   GET  /healthz        public    200 {"status":"ok","bus":true,"journal":true}
 *                                  when the bus and the journal are reachable,
 *                                  else 503 with the same body shape
 *   GET  /metrics        auditor   Prometheus text exposition format 0.0.4
 *   GET  /trace/{id}     auditor   relais_journal_trace()'s JSON       (*)
 *   GET  /dlq[?limit=N]  auditor   dead-lettered deliveries, newest first
 *   GET  /person/{id}    auditor   relais_journal_person()'s JSON      (*)
 *   POST /replay/{id}    operator  200 {"replayed":N}; 404 when no dead delivery matches
 *   POST /discard/{id}   operator  body {"reason":"..."}; 200 {"discarded":N}; 404
 *   GET  /connectors     auditor   relais_hub_connectors()'s JSON: each instance,
 *                                  paused or not, a sink's circuit
 *   POST /connectors/{name}/pause   operator  relais_hub_pause(): 200
 *   POST /connectors/{name}/resume  operator  {"connector","paused","status"}; 404 unknown
 *                                  name; 503 when the journal cannot record it
 *   POST /reload         admin     load the mapping files again: 200 {"reloaded":N},
 *                                  or 422 {"error":"FILE:LINE: ..."} and nothing changed
 *   POST /fault/bus      admin     tests only (hub.fault_injection), see fault()
 * (*) reads of personal data: each is journaled as a step "personal_data_read"
 *     before the answer is sent (answer_personal()).
 * Callers send "Authorization: Bearer <token>", looked up in the config's
 * tokens (hub.admin_tokens, tokens.h): none or an unknown token gets 401 with
 * WWW-Authenticate, a role too low 403; every error is {"error":"..."}. When
 * no tokens file is configured, the server only starts on a loopback address
 * and lets every call through (a warning is logged at start).
 *
 * Threads: MHD runs the handlers on its own pool of ADMIN_THREADS threads, a
 * connection on one of them, several connections at once. They share only
 * what does not change after relais_admin_start (the route table, the
 * config's tokens, this struct) and call thread-safe functions, as hub.c's
 * thread comment asks: the hub's accessors, relais_hub_reload_mappings, the
 * metrics' atomics, relais_hub_pause and relais_hub_connectors, the hub's
 * journal (relais_journal_step, queued to its writer; replay and discard,
 * whose steps it chains with the audit key), and
 * the admin's own read-side journal connection `rj` for the reads (trace,
 * dlq, person; guarded by that journal's mutex), so that a long trace or
 * person search never holds the hub's read connection, which the
 * scheduler's claims use. A request's `call` (its body) belongs to the
 * thread of its connection.
 */
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include "hub.h"
#include "bus.h"
#include "config.h"
#include "sla.h"
#include "event_int.h"
#include "safeparse.h"
#include "tokens.h"
#include "httputil.h"
#include <jansson.h>

#define ADMIN_THREADS 4
#define ADMIN_BODY_MAX 16384          /* bytes of a POST body */
#define ADMIN_ID_MAX 512              /* bytes of an {id} in a path */
#define ADMIN_READ_STEPS_MAX 1000     /* personal_data_read steps per answer, one per event */
#define UNAUTHENTICATED "unauthenticated"

struct relais_admin {
    struct MHD_Daemon   *d;
    relais_hub          *hub;
    pthread_rwlock_t     tok_lock;    /* guards tokens and own_tokens: a reload swaps them */
    const relais_tokens *tokens;      /* the config's, then a reload's; NULL: no authentication
                                       * (loopback only; stays NULL) */
    relais_tokens       *own_tokens;  /* the last reload's (owned); NULL before any */
    relais_journal      *rj;          /* the admin's own read-side journal connection, for reads */
    unsigned short       port;
};

typedef struct call call;
typedef enum MHD_Result (*route_fn)(relais_admin *a, struct MHD_Connection *c, const call *k);

typedef struct route {
    const char *method;               /* "GET" (HEAD too) or "POST" */
    const char *path;                 /* the whole path, or a prefix ending in '/' followed by an {id} */
    relais_role min;                  /* least role; RELAIS_ROLE_NONE: public */
    route_fn    fn;
} route;

/* One request, from its first call (headers) to its completion. */
struct call {
    const route *rt;                  /* NULL once an answer was queued at the first call */
    const char  *method, *url;        /* MHD's, valid for the request */
    const char  *id;                  /* the {id} of a prefix route (points into url) */
    const char  *who;                 /* the token's name (whobuf), or UNAUTHENTICATED */
    char         whobuf[RELAIS_TOKEN_NAME_MAX + 1];   /* a copy: a reload may free the table */
    relais_role  role;
    relais_http_upload body;          /* POST body, at most ADMIN_BODY_MAX bytes (too_large beyond) */
};

/* ---- answers -------------------------------------------------------------- */

static enum MHD_Result reply_with(struct MHD_Connection *c, unsigned status, const char *ctype, char *body,
                                  const char *hname, const char *hvalue)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) { free(body); return MHD_NO; }
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (hname) MHD_add_response_header(r, hname, hvalue);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *ctype, char *body)
{
    return reply_with(c, status, ctype, body, NULL, NULL);
}

/* A JSON document (the reference is taken). */
static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, json_t *doc)
{
    char *body = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    if (!body) return MHD_NO;
    return reply(c, status, "application/json", body);
}

__attribute__((format(printf, 1, 0)))
static char *error_body(const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    json_t *o = json_pack("{s:s}", "error", msg);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return body ? body : strdup("{\"error\":\"(unprintable message)\"}");
}

static enum MHD_Result fail(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum MHD_Result fail(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *body = error_body(fmt, ap);
    va_end(ap);
    if (!body) return MHD_NO;
    return reply(c, status, "application/json", body);
}

/* 401: no token, or one that is not in the file. */
static enum MHD_Result unauthorized(struct MHD_Connection *c, int given)
{
    char *body = strdup(given ? "{\"error\":\"unknown token\"}"
                              : "{\"error\":\"a token is required: Authorization: Bearer <token>\"}");
    if (!body) return MHD_NO;
    return reply_with(c, MHD_HTTP_UNAUTHORIZED, "application/json", body, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                      given ? "Bearer realm=\"relais\", error=\"invalid_token\"" : "Bearer realm=\"relais\"");
}

static void client_ip(struct MHD_Connection *c, char *out, size_t len)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, len, "?");
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)ci->client_addr)->sin_addr, out, (socklen_t)len);
}

/* ---- ids ------------------------------------------------------------------ */

/* 1 when an {id} may be looked up and written in the journal: printable
 * UTF-8, at most ADMIN_ID_MAX bytes. */
static int id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > ADMIN_ID_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f) return 0;
    json_t *s = json_stringn(id, n);   /* NULL for invalid UTF-8 */
    json_decref(s);
    return s != NULL;
}

/* a delivery id (digits) or an event id (UUID), as replay and discard take */
static int delivery_or_event_id(const char *id)
{
    size_t n = strlen(id), i;
    for (i = 0; i < n && id[i] >= '0' && id[i] <= '9'; i++) {}
    if (n && n <= 18 && i == n) return 1;
    if (n != 36) return 0;
    for (i = 0; i < n; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        char ch = id[i];
        int hex = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
        if (dash ? ch != '-' : !hex) return 0;
    }
    return 1;
}

/* ---- handlers ------------------------------------------------------------- */

static enum MHD_Result on_healthz(relais_admin *a, struct MHD_Connection *c, const call *k)
{
    (void)k;
    relais_bus *bus = relais_hub_bus(a->hub);
    relais_journal *j = relais_hub_journal(a->hub);
    int bus_up = bus && relais_bus_healthy(bus);
    int j_up = j && relais_journal_healthy(j);
    char body[128];
    snprintf(body, sizeof body, "{\"status\":\"%s\",\"bus\":%s,\"journal\":%s}\n",
             bus_up && j_up ? "ok" : "unavailable", bus_up ? "true" : "false", j_up ? "true" : "false");
    return reply(c, bus_up && j_up ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "application/json", strdup(body));
}

static enum MHD_Result on_metrics(relais_admin *a, struct MHD_Connection *c, const call *k)
{
    (void)k;
    relais_bus *bus = relais_hub_bus(a->hub);
    relais_journal *j = relais_hub_journal(a->hub);
    int bus_up = bus && relais_bus_healthy(bus);
    int j_up = j && relais_journal_healthy(j);
    char *text = relais_metrics_render(relais_hub_metrics(a->hub), bus_up, j_up);
    if (!text) return MHD_NO;
    /* service levels of citizens' requests, when a lifecycle instance follows them */
    const relais_config *cfg = relais_hub_config(a->hub);
    int follows = 0;
    for (size_t i = 0; i < cfg->n_connectors; i++)
        if (cfg->connectors[i].type && !strcmp(cfg->connectors[i].type, "lifecycle")) follows = 1;
    if (follows && j_up) {
        char *sla = relais_sla_metrics(j, relais_paris_date(relais_now_us() / 1000000));
        size_t a1 = strlen(text), a2 = sla ? strlen(sla) : 0;
        char *both = sla ? realloc(text, a1 + a2 + 1) : NULL;
        if (both) {
            memcpy(both + a1, sla, a2 + 1);
            text = both;
        }
        free(sla);
    }
    return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4", text);
}

/* Every read of personal data is itself journaled (who, when, what): a step
 * "personal_data_read" with detail "<token name> (<role>) GET /trace/<id>",
 * one per event shown (the event's own trace then tells who read it), or
 * one without an event when none was shown or beyond ADMIN_READ_STEPS_MAX.
 * The steps are queued before the answer is sent; when the journal does not
 * take them, the data is not shown (503). Takes the reference to ans. */
static enum MHD_Result answer_personal(relais_admin *a, struct MHD_Connection *c, const call *k, json_t *ans)
{
    relais_journal *j = relais_hub_journal(a->hub);
    char detail[ADMIN_ID_MAX + 200];
    snprintf(detail, sizeof detail, "%s (%s) %s %s", k->who, relais_role_name(k->role), k->method, k->url);
    json_t *evs = json_object_get(ans, "events");
    size_t n = json_array_size(evs), i;
    json_t *e;
    int rc = 0;
    json_array_foreach(evs, i, e) {
        if (i >= ADMIN_READ_STEPS_MAX) break;
        const char *id = json_string_value(json_object_get(e, "id"));
        if (relais_journal_step(j, id, "personal_data_read", NULL, 0, detail, 0) != 0) rc = -1;
    }
    if (n == 0 || n > ADMIN_READ_STEPS_MAX) {
        char more[sizeof detail + 128];
        if (n > ADMIN_READ_STEPS_MAX)
            snprintf(more, sizeof more, "%s (%zu events, the first %d journaled one by one)", detail, n,
                     ADMIN_READ_STEPS_MAX);
        else
            snprintf(more, sizeof more, "%s", detail);
        if (relais_journal_step(j, NULL, "personal_data_read", NULL, 0, more, 0) != 0) rc = -1;
    }
    if (rc != 0) {
        json_decref(ans);
        relais_logf(RELAIS_LOG_ERROR, "admin", "%s (%s): a read of personal data could not be journaled; refused",
                    k->who, relais_role_name(k->role));
        return fail(c, MHD_HTTP_SERVICE_UNAVAILABLE, "the journal cannot record this read now; try again");
    }
    return reply_json(c, MHD_HTTP_OK, ans);
}

static enum MHD_Result on_trace(relais_admin *a, struct MHD_Connection *c, const call *k)
{
    char err[512];
    json_t *t = relais_journal_trace(a->rj, k->id, err, sizeof err);
    if (!t) return fail(c, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", err);
    return answer_personal(a, c, k, t);
}

static enum MHD_Result on_person(relais_admin *a, struct MHD_Connection *c, const call *k)
{
    char err[512];
    json_t *p = relais_journal_person(a->rj, k->id, err, sizeof err);
    if (!p) return fail(c, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", err);
    return answer_personal(a, c, k, p);
}

static enum MHD_Result on_dlq(relais_admin *a, struct MHD_Connection *c, const call *k)
{
    (void)k;
    const char *ls = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
    long limit = 1000;
    if (ls) {
        char *end;
        limit = strtol(ls, &end, 10);
        if (!*ls || *end || limit < 1 || limit > 10000)
            return fail(c, MHD_HTTP_BAD_REQUEST, "limit must be a whole number from 1 to 10000");
    }
    char err[512];
    json_t *l = relais_journal_dlq_list(a->rj, (size_t)limit, err, sizeof err);
    if (!l) return fail(c, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", err);
    return reply_json(c, MHD_HTTP_OK, l);
}

static enum MHD_Result on_replay(relais_admin *a, struct MHD_Connection *c, const call *k)
{
    if (!delivery_or_event_id(k->id))
        return fail(c, MHD_HTTP_BAD_REQUEST, "'%s' is neither a delivery id (digits) nor an event id (UUID)", k->id);
    char err[512];
    int count = 0;
    if (relais_journal_replay(relais_hub_journal(a->hub), k->id, &count, err, sizeof err) != 0)
        return fail(c, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", err);
    relais_logf(RELAIS_LOG_INFO, "admin", "%s (%s) replayed %d deliver%s (%s)", k->who, relais_role_name(k->role),
                count, count == 1 ? "y" : "ies", k->id);
    if (count == 0) return fail(c, MHD_HTTP_NOT_FOUND, "no dead-lettered delivery matches %s", k->id);
    return reply_json(c, MHD_HTTP_OK, json_pack("{s:i}", "replayed", count));
}

static enum MHD_Result on_discard(relais_admin *a, struct MHD_Connection *c, const call *k)
{
    if (!delivery_or_event_id(k->id))
        return fail(c, MHD_HTTP_BAD_REQUEST, "'%s' is neither a delivery id (digits) nor an event id (UUID)", k->id);
    char err[512];
    relais_parse_limits lim = { .max_bytes = ADMIN_BODY_MAX, .max_depth = 4 };
    json_t *b = relais_json_parse(k->body.buf ? k->body.buf : "", k->body.len, "request body", &lim, err, sizeof err);
    if (!b) return fail(c, MHD_HTTP_BAD_REQUEST, "%s; expected {\"reason\": \"...\"}", err);
    json_t *r = json_object_get(b, "reason");
    if (!json_is_object(b) || json_object_size(b) != 1 || !json_is_string(r) || !json_string_length(r)) {
        json_decref(b);
        return fail(c, MHD_HTTP_BAD_REQUEST, "the body must be {\"reason\": \"...\"} with a reason that is not empty");
    }
    int count = 0;
    int rc = relais_journal_discard(relais_hub_journal(a->hub), k->id, json_string_value(r), &count, err, sizeof err);
    json_decref(b);
    if (rc != 0) return fail(c, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", err);
    relais_logf(RELAIS_LOG_INFO, "admin", "%s (%s) discarded %d deliver%s (%s)", k->who, relais_role_name(k->role),
                count, count == 1 ? "y" : "ies", k->id);
    if (count == 0) return fail(c, MHD_HTTP_NOT_FOUND, "no dead-lettered delivery matches %s", k->id);
    return reply_json(c, MHD_HTTP_OK, json_pack("{s:i}", "discarded", count));
}

static enum MHD_Result on_reload(relais_admin *a, struct MHD_Connection *c, const call *k)
{
    char err[4096];
    int n = relais_hub_reload_mappings(a->hub, err, sizeof err);
    relais_logf(RELAIS_LOG_INFO, "admin", "%s (%s) reloaded the mappings: %s", k->who, relais_role_name(k->role),
                n >= 0 ? "done" : "refused (errors)");
    if (n < 0) return reply_json(c, 422, json_pack("{s:s}", "error", err));
    json_t *o = json_pack("{s:i}", "reloaded", n);
    if (o && relais_hub_config(a->hub)->hub.admin_tokens)
        json_object_set_new(o, "tokens", json_integer((json_int_t)relais_admin_tokens_count(a)));
    return reply_json(c, MHD_HTTP_OK, o);
}

static enum MHD_Result on_connectors(relais_admin *a, struct MHD_Connection *c, const call *k)
{
    (void)k;
    json_t *l = relais_hub_connectors(a->hub);
    if (!l) return fail(c, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    return reply_json(c, MHD_HTTP_OK, l);
}

/* POST /connectors/{name}/pause and /connectors/{name}/resume: {id} is
 * "{name}/pause" (instance names have no '/'). Journaled and logged by the
 * hub with the token's name; a call that changes nothing (already in that
 * state) is logged here and answers 200 too. */
static enum MHD_Result on_connector(relais_admin *a, struct MHD_Connection *c, const call *k)
{
    const char *slash = strrchr(k->id, '/');
    int pause = slash && strcmp(slash + 1, "pause") == 0;
    if (!slash || slash == k->id || (!pause && strcmp(slash + 1, "resume") != 0))
        return fail(c, MHD_HTTP_NOT_FOUND, "not found: POST /connectors/{name}/pause or /connectors/{name}/resume");
    char name[ADMIN_ID_MAX + 1];
    snprintf(name, sizeof name, "%.*s", (int)(slash - k->id), k->id);
    if (!relais_hub_instance(a->hub, name))
        return fail(c, MHD_HTTP_NOT_FOUND, "no connector instance named '%s'", name);
    char who[RELAIS_TOKEN_NAME_MAX + 32], err[1024];
    snprintf(who, sizeof who, "%s (%s)", k->who, relais_role_name(k->role));
    int rc = relais_hub_pause(a->hub, name, pause, who, err, sizeof err);
    if (rc < 0) {
        relais_logf(RELAIS_LOG_WARN, "admin", "%s could not %s connector %s: %s", who, pause ? "pause" : "resume",
                    name, err);
        return fail(c, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", err);
    }
    if (rc == 1)
        relais_logf(RELAIS_LOG_INFO, "admin", "%s asked to %s connector %s: it already %s", who,
                    pause ? "pause" : "resume", name, pause ? "was paused" : "was running");
    const char *status = pause ? (rc == 1 ? "already paused" : "paused") : (rc == 1 ? "already running" : "resumed");
    return reply_json(c, MHD_HTTP_OK, json_pack("{s:s, s:b, s:s}", "connector", name, "paused", pause, "status", status));
}

/* POST /fault/bus?action=down|up|errors|leader[&count=N] - fault injection
 * into the embedded broker, for the reliability tests (docs/RELIABILITY.md).
 * Only with hub.fault_injection: true and bus.brokers: embedded; 404 else.
 *   down     every broker of the mock cluster stops answering
 *   up       they answer again
 *   errors   the next `count` (default 10) Produce requests fail with a
 *            retriable error (NOT_LEADER_FOR_PARTITION)
 *   leader   the leader of every partition moves to the next broker */
static enum MHD_Result on_fault(relais_admin *a, struct MHD_Connection *c, const call *k)
{
    const relais_config *cfg = relais_hub_config(a->hub);
    rd_kafka_mock_cluster_t *mc = relais_bus_mock_cluster(relais_hub_bus(a->hub));
    if (!cfg->hub.fault_injection || !mc || strcmp(k->url, "/fault/bus") != 0)
        return reply(c, MHD_HTTP_NOT_FOUND, "application/json", strdup("{\"error\":\"not found\"}"));
    const char *action = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "action");
    const char *cnt = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "count");
    long count = cnt ? strtol(cnt, NULL, 10) : 10;
    int nbrokers = (int)cfg->bus.embedded_brokers;
    if (!action) action = "";
    if (!strcmp(action, "down") || !strcmp(action, "up")) {
        for (int id = 1; id <= nbrokers; id++) {
            if (action[0] == 'd') rd_kafka_mock_broker_set_down(mc, id);
            else rd_kafka_mock_broker_set_up(mc, id);
        }
    } else if (!strcmp(action, "errors")) {
        if (count < 1 || count > 100000) count = 10;
        rd_kafka_resp_err_t *errs = calloc((size_t)count, sizeof *errs);
        if (!errs) return MHD_NO;
        for (long i = 0; i < count; i++) errs[i] = RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION;
        rd_kafka_mock_push_request_errors_array(mc, 0 /* ApiKey Produce */, (size_t)count, errs);
        free(errs);
    } else if (!strcmp(action, "leader")) {
        static _Atomic int next = 1;
        int to = (int)(atomic_fetch_add(&next, 1) % nbrokers) + 1;
        for (int p = 0; p < (int)cfg->bus.partitions; p++)
            rd_kafka_mock_partition_set_leader(mc, cfg->bus.topic, p, to);
    } else {
        return reply(c, MHD_HTTP_BAD_REQUEST, "application/json",
                     strdup("{\"error\":\"action must be down, up, errors or leader\"}"));
    }
    relais_logf(RELAIS_LOG_WARN, "admin", "fault injected into the embedded broker: %s", action);
    char body[96];
    snprintf(body, sizeof body, "{\"fault\":\"%.20s\"}\n", action);
    return reply(c, MHD_HTTP_OK, "application/json", strdup(body));
}

/* ---- routes --------------------------------------------------------------- */

static const route g_routes[] = {
    { "GET",  "/healthz",     RELAIS_ROLE_NONE,     on_healthz },
    { "GET",  "/metrics",     RELAIS_ROLE_AUDITOR,  on_metrics },
    { "GET",  "/trace/",      RELAIS_ROLE_AUDITOR,  on_trace },
    { "GET",  "/dlq",         RELAIS_ROLE_AUDITOR,  on_dlq },
    { "GET",  "/person/",     RELAIS_ROLE_AUDITOR,  on_person },
    { "POST", "/replay/",     RELAIS_ROLE_OPERATOR, on_replay },
    { "POST", "/discard/",    RELAIS_ROLE_OPERATOR, on_discard },
    { "GET",  "/connectors",  RELAIS_ROLE_AUDITOR,  on_connectors },
    { "POST", "/connectors/", RELAIS_ROLE_OPERATOR, on_connector },
    { "POST", "/reload",      RELAIS_ROLE_ADMIN,    on_reload },
    { "POST", "/fault/",      RELAIS_ROLE_ADMIN,    on_fault },
};
#define N_ROUTES (sizeof g_routes / sizeof g_routes[0])

/* The route of (method, url) and its {id}; NULL, with *path_known when
 * another method has that path (405). */
static const route *find_route(const char *method, const char *url, const char **id, int *path_known)
{
    const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
    *id = NULL;
    *path_known = 0;
    for (size_t i = 0; i < N_ROUTES; i++) {
        const route *r = &g_routes[i];
        size_t n = strlen(r->path);
        int prefix = r->path[n - 1] == '/';
        if (prefix ? strncmp(url, r->path, n) != 0 || !url[n] : strcmp(url, r->path) != 0) continue;
        if (strcmp(m, r->method) != 0) {
            *path_known = 1;
            continue;
        }
        if (prefix) *id = url + n;
        return r;
    }
    return NULL;
}

/* Who calls: 0 with k->who and k->role; else an answer (401) is queued and
 * *ret holds MHD's result. Without tokens every caller is an admin. */
static int authenticate(relais_admin *a, struct MHD_Connection *c, call *k, const route *rt, enum MHD_Result *ret)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    size_t len = 0;
    const char *tok = relais_bearer_token(h, &len), *name = NULL;
    pthread_rwlock_rdlock(&a->tok_lock);
    int open = !a->tokens;
    int ok = !open && tok && relais_tokens_check(a->tokens, tok, len, &name, &k->role) == 0;
    if (ok) snprintf(k->whobuf, sizeof k->whobuf, "%s", name);
    pthread_rwlock_unlock(&a->tok_lock);
    if (open) {
        k->who = UNAUTHENTICATED;
        k->role = RELAIS_ROLE_ADMIN;
        return 0;
    }
    if (ok) {
        k->who = k->whobuf;
        return 0;
    }
    if (h) {
        char ip[64];
        client_ip(c, ip, sizeof ip);
        relais_logf(RELAIS_LOG_WARN, "admin", "unknown or malformed token from %s on %s %s%s", ip, k->method,
                    rt ? rt->path : "(unknown path)", rt && k->id ? "{id}" : "");
    }
    *ret = unauthorized(c, h != NULL);
    return -1;
}

/* First call of a request (headers only): route, caller, role. Lets the
 * call through (k->rt set, MHD_YES), or queues the refusal now, before any
 * body is read (k->rt stays NULL). Logs name a route's path, never its {id}
 * (it may be an email address). */
static enum MHD_Result begin(relais_admin *a, struct MHD_Connection *c, call *k)
{
    int path_known = 0;
    enum MHD_Result ret = MHD_NO;
    const route *rt = find_route(k->method, k->url, &k->id, &path_known);
    if (rt && rt->min == RELAIS_ROLE_NONE) {
        k->who = UNAUTHENTICATED;
        k->rt = rt;
        return MHD_YES;
    }
    if (authenticate(a, c, k, rt, &ret) != 0) return ret;
    if (!rt && path_known) return fail(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
    if (!rt) return fail(c, MHD_HTTP_NOT_FOUND, "not found");
    if (!relais_role_allows(k->role, rt->min)) {
        char ip[64];
        client_ip(c, ip, sizeof ip);
        relais_logf(RELAIS_LOG_WARN, "admin", "%s (%s) from %s refused %s %s%s: needs %s", k->who,
                    relais_role_name(k->role), ip, rt->method, rt->path, k->id ? "{id}" : "",
                    relais_role_name(rt->min));
        return fail(c, MHD_HTTP_FORBIDDEN, "role %s may not %s %s%s: it needs %s", relais_role_name(k->role),
                    rt->method, rt->path, k->id ? "{id}" : "", relais_role_name(rt->min));
    }
    if (k->id && !id_ok(k->id))
        return fail(c, MHD_HTTP_BAD_REQUEST, "the id must be printable UTF-8 of at most %d bytes", ADMIN_ID_MAX);
    k->rt = rt;
    return MHD_YES;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_size,
                               void **con_cls)
{
    relais_admin *a = cls;
    (void)version;
    call *k = *con_cls;
    if (!k) {
        k = calloc(1, sizeof *k);
        if (!k) return MHD_NO;
        *con_cls = k;
        k->method = method;
        k->url = url;
        return begin(a, c, k);
    }
    if (*upload_size) {
        if (!k->rt) {                  /* answered at the first call: the body is not kept */
            *upload_size = 0;
            return MHD_YES;
        }
        return relais_http_upload_take(&k->body, upload_data, upload_size, ADMIN_BODY_MAX) == 0 ? MHD_YES : MHD_NO;
    }
    if (!k->rt) return MHD_YES;        /* answered at the first call */
    const route *rt = k->rt;
    k->rt = NULL;                      /* answered once */
    if (k->body.too_large) return fail(c, MHD_HTTP_CONTENT_TOO_LARGE, "body larger than %d bytes", ADMIN_BODY_MAX);
    return rt->fn(a, c, k);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls; (void)c; (void)toe;
    call *k = *con_cls;
    if (!k) return;
    relais_http_upload_free(&k->body);
    free(k);
    *con_cls = NULL;
}

relais_admin *relais_admin_start(relais_hub *h, const char *listen, char *errstr, size_t errlen)
{
    char host[64] = "127.0.0.1";
    long port = 0;
    const char *colon = strrchr(listen, ':');
    if (!colon || colon - listen >= (long)sizeof host) {
        snprintf(errstr, errlen, "admin_listen '%s': expected HOST:PORT", listen);
        return NULL;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    char *end;
    port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535) {
        snprintf(errstr, errlen, "admin_listen '%s': bad port", listen);
        return NULL;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(errstr, errlen, "admin_listen '%s': host must be an IPv4 address", listen);
        return NULL;
    }
    const relais_config *cfg = relais_hub_config(h);
    if (!cfg->hub.tokens && !relais_listen_is_loopback(listen)) {
        snprintf(errstr, errlen, "'hub.admin_tokens' is required when hub.admin_listen (%s) is not a loopback address",
                 listen);
        return NULL;
    }
    relais_admin *a = calloc(1, sizeof *a);
    if (!a) { snprintf(errstr, errlen, "out of memory"); return NULL; }
    a->hub = h;
    a->tokens = cfg->hub.tokens;
    pthread_rwlock_init(&a->tok_lock, NULL);
    char err[512];
    relais_journal_opts jo = { .conninfo = cfg->journal.conninfo, .writer = 0 };
    a->rj = relais_journal_open(&jo, err, sizeof err);
    if (!a->rj) {
        snprintf(errstr, errlen, "journal: %s", err);
        pthread_rwlock_destroy(&a->tok_lock);
        free(a);
        return NULL;
    }
    a->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                            handler, a, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)ADMIN_THREADS,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, (void *)NULL,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!a->d) {
        snprintf(errstr, errlen, "cannot listen on %s", listen);
        relais_journal_close(a->rj);
        pthread_rwlock_destroy(&a->tok_lock);
        free(a);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_BIND_PORT);
    a->port = info ? info->port : (unsigned short)port;
    if (!a->tokens)
        relais_logf(RELAIS_LOG_WARN, "admin", "the admin API on %s is unauthenticated (no hub.admin_tokens): "
                    "every local user can read traces and replay deliveries; see docs/SECURITY.md", listen);
    else
        relais_logf(RELAIS_LOG_INFO, "admin", "admin API on %s: %zu token(s) from %s", listen,
                    relais_tokens_count(a->tokens), cfg->hub.admin_tokens);
    return a;
}

unsigned short relais_admin_port(const relais_admin *a) { return a ? a->port : 0; }

void relais_admin_stop(relais_admin *a)
{
    if (!a) return;
    MHD_stop_daemon(a->d);
    relais_journal_close(a->rj);
    relais_tokens_destroy(a->own_tokens);
    pthread_rwlock_destroy(&a->tok_lock);
    free(a);
}

size_t relais_admin_set_tokens(relais_admin *a, relais_tokens *fresh)
{
    pthread_rwlock_wrlock(&a->tok_lock);
    relais_tokens *old = a->own_tokens;
    a->own_tokens = fresh;
    a->tokens = fresh;
    size_t n = relais_tokens_count(fresh);
    pthread_rwlock_unlock(&a->tok_lock);
    relais_tokens_destroy(old);   /* no caller holds it: authenticate copies the name */
    return n;
}

size_t relais_admin_tokens_count(relais_admin *a)
{
    if (!a) return 0;
    pthread_rwlock_rdlock(&a->tok_lock);
    size_t n = relais_tokens_count(a->tokens);
    pthread_rwlock_unlock(&a->tok_lock);
    return n;
}
