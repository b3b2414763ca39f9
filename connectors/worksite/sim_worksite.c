/*
 * sim_worksite.c - relais-sim-worksite: a technical services' work-order tool
 * (libmicrohttpd) speaking api/worksite-openapi.yaml, for tests and the demo.
 *
 *   relais-sim-worksite --listen 127.0.0.1:PORT [--port-file F]
 *                       --token TOKEN=ACCOUNT [--token TOKEN=ACCOUNT ...]
 *                       [--agent ACCOUNT] [--auto-advance MS]
 *                       [--api-schema FILE] [--quiet]
 *
 * The API (Authorization: Bearer TOKEN; the token's ACCOUNT is the author of
 * what it does):
 *   GET  /api/v1/types
 *   POST /api/v1/interventions               Idempotency-Key: the same key (same
 *                                            account) answers the same intervention
 *   GET  /api/v1/interventions?updated_since=&status=&cursor=&page=&per_page=
 *   GET  /api/v1/interventions/<id>
 *   GET  /api/v1/interventions/<id>/history
 *   POST /api/v1/interventions/<id>/status    received -> accepted -> planned ->
 *                                            in_progress -> done, refused from
 *                                            received/accepted; others 409
 * Request bodies are checked against the schemas of api/worksite.schema.json
 * (the OpenAPI file's components) with the hub's validator: 422 with the
 * JSON path of the first fault.
 *
 * Control API (no token; tests and the demo):
 *   POST /_sim/advance       {"id","status"?,"comment"?,"planned_start"?,"reason"?,"account"?}
 *                            move one intervention (default: its next step) as the
 *                            agent (--agent, default "agent")
 *   POST /_sim/auto-advance  {"interval_ms": N}: every N ms each open intervention
 *                            moves one step as the agent (0: off; --auto-advance MS)
 *   POST /_sim/fail          {"status":500,"count":3,"delay_ms":2000}: the next
 *                            `count` API requests (-1, the default: until reset)
 *                            wait delay_ms, then answer status (when given)
 *   POST /_sim/down          {"seconds":2,"mode":"refuse"|"reset"}: refuse: the
 *                            listening socket is closed (connection refused) and
 *                            opened again after that time; reset: API requests
 *                            get their connection closed without an answer
 *   POST /_sim/reset         forget every intervention, key, fault and counter
 *   GET  /_sim/stats         counters
 *   GET  /_sim/interventions every intervention with its history
 * One log line per request on stderr (method, path, status; never bodies or
 * tokens) unless --quiet. SIGINT/SIGTERM stop it. See connectors/worksite/README.md.
 *
 * Threads: MHD runs one thread per connection (a delayed answer blocks only
 * its own client). All simulator state (struct sim) is guarded by sim.lock;
 * request bodies belong to their connection thread. The main thread waits for
 * signals and drives the clock: auto-advance ticks, and stopping / starting
 * the daemon for /_sim/down (never while holding sim.lock).
 * What every simulator does (options, daemon, port file, signals, request
 * log, bodies, /_sim/fail's common members) is hub/simkit.h's.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <microhttpd.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include "relais/relais.h"
#include "event_int.h"
#include "jsonschema.h"
#include "safeparse.h"
#include "simkit.h"
#include "worksite_int.h"

#define SIM_MAX_BODY (1024 * 1024)
#define SCHEMA_ID "https://relais.example/connectors/worksite/api/worksite.schema.json"
#define MAX_TOKENS 16

typedef struct wtype {
    const char *code, *label, *team_code, *team_label;
} wtype;

/* The tool's intervention types (GET /api/v1/types). */
static const wtype TYPES[] = {
    { "VOI-01", "Signalisation routière", "VOIRIE", "Régie voirie" },
    { "VOI-03", "Réfection ponctuelle de chaussée", "VOIRIE", "Régie voirie" },
    { "MOB-01", "Réparation de mobilier urbain", "VOIRIE", "Régie voirie" },
    { "ECL-01", "Dépannage d'éclairage public", "ECL", "Éclairage public" },
    { "PRO-02", "Nettoiement, dépôt sauvage", "PROP", "Propreté urbaine" },
    { "GRA-01", "Enlèvement de graffitis", "PROP", "Propreté urbaine" },
    { "ESV-01", "Entretien des espaces verts", "ESV", "Espaces verts" },
};
#define NTYPES (sizeof TYPES / sizeof TYPES[0])

/* The comment the agent writes when a test or the clock moves a work order. */
static const char *const DEFAULT_COMMENT[WS_STATUS_COUNT] = {
    "Demande reçue", "Demande prise en compte par le service", "Intervention planifiée",
    "Équipe sur place", "Intervention terminée", "Demande refusée"
};

typedef struct inter {
    char      id[32];
    json_t   *obj;         /* the Intervention as served */
    json_t   *history;     /* array of HistoryEntry */
    ws_status status;
    int64_t   updated_us;
} inter;

typedef struct token {
    const char *token;     /* argv */
    char       *account;
} token;

struct sim {
    pthread_mutex_t lock;
    inter   *v;
    size_t   n, cap;
    json_t  *idem;          /* "<account>\n<key>" -> {"id","body"} */
    long     next_seq;      /* interventions */
    json_int_t next_hist;   /* history entries */
    int64_t  last_us;       /* last time given out (strictly increasing) */
    /* faults */
    relais_simkit_fault fault;
    long     down_ms;       /* > 0: the main thread must go down for this long */
    int      down_reset;    /* 1: reset mode is on until down_until_us */
    int64_t  down_until_us; /* reset mode: monotonic deadline */
    long     auto_ms;       /* 0: off */
    /* counters */
    long     requests, created, replayed, failed, changes, resets;
    /* read-only after start */
    token    tokens[MAX_TOKENS];
    size_t   ntokens;
    const char *agent;
    long     auto_ms_initial;
    relais_simkit kit;
    relais_schema_set *schemas;
    const relais_schema *sc_create, *sc_change;
};

/* A JSON answer (body taken), reals with 15 digits, one optional header;
 * a 401 says WWW-Authenticate: Bearer. */
static enum MHD_Result reply_h(struct MHD_Connection *c, unsigned status, json_t *body,
                               const char *h1, const char *v1)
{
    struct MHD_Response *r = relais_simkit_json(body, JSON_REAL_PRECISION(15), NULL);
    if (r && h1 && v1) MHD_add_response_header(r, h1, v1);
    if (r && status == MHD_HTTP_UNAUTHORIZED) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    return relais_simkit_queue(c, status, r);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, json_t *body)
{
    return reply_h(c, status, body, NULL, NULL);
}

/* An Error body; field may be NULL. */
static json_t *error_body(const char *code, const char *message, const char *field)
{
    json_t *e = json_pack("{s:s,s:s}", "code", code, "message", message && *message ? message : code);
    if (field && *field) json_object_set_new(e, "field", json_string(field));
    return json_pack("{s:o}", "error", e);
}

/* ---- State (callers hold sim->lock) ----------------------------------------- */

static int64_t tick(struct sim *sim)
{
    int64_t now = relais_now_us();
    if (now <= sim->last_us) now = sim->last_us + 1;
    sim->last_us = now;
    return now;
}

static json_t *time_json(int64_t us)
{
    char buf[40];
    relais_time_rfc3339(us, buf, sizeof buf);
    return json_string(buf);
}

static inter *find(struct sim *sim, const char *id)
{
    for (size_t i = 0; i < sim->n; i++)
        if (strcmp(sim->v[i].id, id) == 0) return &sim->v[i];
    return NULL;
}

static const wtype *type_of(const char *code)
{
    for (size_t i = 0; code && i < NTYPES; i++)
        if (strcmp(TYPES[i].code, code) == 0) return &TYPES[i];
    return NULL;
}

static void forget_all(struct sim *sim)
{
    for (size_t i = 0; i < sim->n; i++) {
        json_decref(sim->v[i].obj);
        json_decref(sim->v[i].history);
    }
    sim->n = 0;
    json_object_clear(sim->idem);
}

/* A new intervention from a valid InterventionCreate body. NULL: out of memory. */
static inter *create(struct sim *sim, json_t *body, const wtype *t, const char *account)
{
    if (sim->n == sim->cap) {
        size_t nc = sim->cap ? sim->cap * 2 : 64;
        inter *nv = realloc(sim->v, nc * sizeof *nv);
        if (!nv) return NULL;
        sim->v = nv;
        sim->cap = nc;
    }
    int64_t at = tick(sim);
    time_t secs = (time_t)(at / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    inter *it = &sim->v[sim->n];
    memset(it, 0, sizeof *it);
    if (snprintf(it->id, sizeof it->id, "INT-%04d-%06ld", tm.tm_year + 1900, ++sim->next_seq) >= (int)sizeof it->id)
        it->id[0] = '\0';   /* never: a year and a 6-digit number */
    json_t *o = json_pack("{s:s}", "id", it->id);
    json_object_update(o, body);
    json_object_set_new(o, "type_label", json_string(t->label));
    json_object_set_new(o, "status", json_string("received"));
    if (!json_object_get(o, "priority")) json_object_set_new(o, "priority", json_string("normal"));
    json_object_set_new(o, "team", json_pack("{s:s,s:s}", "code", t->team_code, "label", t->team_label));
    json_object_set_new(o, "created_at", time_json(at));
    json_object_set_new(o, "created_by", json_string(account));
    json_object_set_new(o, "updated_at", time_json(at));
    json_t *h = json_pack("{s:I,s:s,s:n,s:o,s:s}", "id", (json_int_t)++sim->next_hist, "status", "received",
                          "previous_status", "at", time_json(at), "author", account);
    it->obj = o;
    it->history = json_array();
    json_array_append_new(it->history, h);
    it->status = WS_RECEIVED;
    it->updated_us = at;
    if (!o || !h) {
        json_decref(it->obj);
        json_decref(it->history);
        return NULL;
    }
    sim->n++;
    sim->created++;
    return it;
}

/* Apply a change the caller checked (ws_status_allowed). Optional fields may be NULL. */
static void apply_change(struct sim *sim, inter *it, ws_status to, const char *author,
                         const char *comment, const char *planned_start, const char *planned_end,
                         const char *reason)
{
    int64_t at = tick(sim);
    json_t *h = json_pack("{s:I,s:s,s:s,s:o,s:s}", "id", (json_int_t)++sim->next_hist,
                          "status", ws_status_name(to), "previous_status", ws_status_name(it->status),
                          "at", time_json(at), "author", author);
    if (comment && *comment) json_object_set_new(h, "comment", json_string(comment));
    if (to == WS_PLANNED) {
        if (planned_start) {
            json_object_set_new(h, "planned_start", json_string(planned_start));
            json_object_set_new(it->obj, "planned_start", json_string(planned_start));
        }
        if (planned_end) {
            json_object_set_new(h, "planned_end", json_string(planned_end));
            json_object_set_new(it->obj, "planned_end", json_string(planned_end));
        }
    }
    if (to == WS_REFUSED) {
        const char *r = reason ? reason : "autre";
        json_object_set_new(h, "reason", json_string(r));
        json_object_set_new(it->obj, "refusal_reason", json_string(r));
    }
    if (to == WS_DONE) json_object_set_new(it->obj, "done_at", time_json(at));
    json_array_append_new(it->history, h);
    json_object_set_new(it->obj, "status", json_string(ws_status_name(to)));
    json_object_set_new(it->obj, "updated_at", time_json(at));
    it->status = to;
    it->updated_us = at;
    sim->changes++;
}

/* The agent's next step for every open intervention (the clock). */
static void advance_all(struct sim *sim)
{
    for (size_t i = 0; i < sim->n; i++) {
        inter *it = &sim->v[i];
        ws_status next;
        if (ws_status_next(it->status, &next) != 0) continue;
        char start[40];
        relais_time_rfc3339(relais_now_us() + 86400LL * 1000000, start, sizeof start);
        apply_change(sim, it, next, sim->agent, DEFAULT_COMMENT[next],
                     next == WS_PLANNED ? start : NULL, NULL, NULL);
    }
}

/* ---- Requests ----------------------------------------------------------------- */

/* The account of the request's bearer token, or NULL. */
static const char *account_of(const struct sim *sim, struct MHD_Connection *c)
{
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!auth || strncmp(auth, "Bearer ", 7) != 0) return NULL;
    const char *tok = auth + 7;
    size_t tl = strlen(tok);
    for (size_t i = 0; i < sim->ntokens; i++) {
        const char *t = sim->tokens[i].token;
        if (strlen(t) == tl && CRYPTO_memcmp(t, tok, tl) == 0) return sim->tokens[i].account;
    }
    return NULL;
}

/* Parse a JSON request body: NULL with the 400 answer's message in err. */
static json_t *parse_body(const relais_simkit_request *rq, char *err, size_t errlen)
{
    if (!rq->body.buf || rq->body.len == 0) {
        snprintf(err, errlen, "the body is empty");
        return NULL;
    }
    relais_parse_limits lim = { .max_bytes = SIM_MAX_BODY, .max_depth = 32 };
    return relais_json_parse(rq->body.buf, rq->body.len, "body", &lim, err, errlen);
}

/* Schema check: 0 valid, else the 422 body in *answer. */
static int check_schema(const relais_schema *sc, json_t *body, json_t **answer)
{
    relais_schema_fault f;
    size_t nf = 0;
    if (relais_schema_validate(sc, body, "$", &f, 1, &nf)) return 0;
    *answer = error_body("invalid_field", nf ? f.message : "invalid body", nf ? f.path : NULL);
    return -1;
}

static enum MHD_Result handle_create(struct sim *sim, struct MHD_Connection *c, const char *url,
                                     const char *account, relais_simkit_request *rq)
{
    char err[512];
    json_t *body = parse_body(rq, err, sizeof err), *answer = NULL;
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    unsigned status;
    if (!body) {
        status = MHD_HTTP_BAD_REQUEST;
        answer = error_body("bad_request", err, NULL);
    } else if (key && (!*key || strlen(key) > 255)) {
        status = MHD_HTTP_BAD_REQUEST;
        answer = error_body("bad_request", "Idempotency-Key must be 1 to 255 characters", NULL);
    } else if (check_schema(sim->sc_create, body, &answer) != 0) {
        status = MHD_HTTP_UNPROCESSABLE_CONTENT;
    } else if (!type_of(json_string_value(json_object_get(body, "type_code")))) {
        status = MHD_HTTP_UNPROCESSABLE_CONTENT;
        snprintf(err, sizeof err, "type '%s' is not an intervention type of this tool (GET /api/v1/types)",
                 json_string_value(json_object_get(body, "type_code")));
        answer = error_body("unknown_type", err, "$.type_code");
    } else {
        status = 0;
    }
    int replay = 0;
    char id[32] = "";
    if (status == 0) {
        char *canon = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
        char slot[512] = "";
        if (key) snprintf(slot, sizeof slot, "%s\n%s", account, key);
        pthread_mutex_lock(&sim->lock);
        json_t *prev = key ? json_object_get(sim->idem, slot) : NULL;
        if (prev && strcmp(json_string_value(json_object_get(prev, "body")), canon ? canon : "") != 0) {
            status = MHD_HTTP_UNPROCESSABLE_CONTENT;
            answer = error_body("idempotency_mismatch",
                                "this Idempotency-Key was used with another body", NULL);
        } else if (prev) {
            inter *it = find(sim, json_string_value(json_object_get(prev, "id")));
            if (it) {
                replay = 1;
                sim->replayed++;
                status = MHD_HTTP_OK;
                answer = json_deep_copy(it->obj);
                snprintf(id, sizeof id, "%s", it->id);
            }
        }
        if (status == 0) {
            inter *it = create(sim, body, type_of(json_string_value(json_object_get(body, "type_code"))),
                               account);
            if (!it) {
                status = MHD_HTTP_INTERNAL_SERVER_ERROR;
                answer = error_body("internal", "out of memory", NULL);
            } else {
                status = MHD_HTTP_CREATED;
                answer = json_deep_copy(it->obj);
                snprintf(id, sizeof id, "%s", it->id);
                if (key)
                    json_object_set_new(sim->idem, slot, json_pack("{s:s,s:s}", "id", it->id, "body",
                                                                   canon ? canon : ""));
            }
        }
        pthread_mutex_unlock(&sim->lock);
        free(canon);
    }
    json_decref(body);
    char extra[160], loc[80];
    snprintf(extra, sizeof extra, "account=%s%s%s%s", account, id[0] ? " id=" : "", id,
             replay ? " replayed" : "");
    relais_simkit_log(&sim->kit, "POST", url, status, extra);
    snprintf(loc, sizeof loc, "/api/v1/interventions/%s", id);
    if (status == MHD_HTTP_CREATED) return reply_h(c, status, answer, MHD_HTTP_HEADER_LOCATION, loc);
    if (replay) return reply_h(c, status, answer, "Idempotent-Replayed", "true");
    return reply(c, status, answer);
}

/* When `it` cannot become `to`: the 409 body in *answer, -1; else 0. */
static int refuse_transition(const inter *it, ws_status to, json_t **answer)
{
    if (ws_status_allowed(it->status, to)) return 0;
    char err[160];
    snprintf(err, sizeof err, "an intervention %s cannot become %s", ws_status_name(it->status), ws_status_name(to));
    *answer = error_body("invalid_transition", err, "$.status");
    return -1;
}

static enum MHD_Result handle_change(struct sim *sim, struct MHD_Connection *c, const char *url,
                                     const char *id, const char *account, relais_simkit_request *rq)
{
    char err[512];
    json_t *body = parse_body(rq, err, sizeof err), *answer = NULL;
    unsigned status = 0;
    ws_status to = WS_RECEIVED;
    if (!body) {
        status = MHD_HTTP_BAD_REQUEST;
        answer = error_body("bad_request", err, NULL);
    } else if (check_schema(sim->sc_change, body, &answer) != 0) {
        status = MHD_HTTP_UNPROCESSABLE_CONTENT;
    } else {
        ws_status_parse(json_string_value(json_object_get(body, "status")), &to);
    }
    if (status == 0) {
        pthread_mutex_lock(&sim->lock);
        inter *it = find(sim, id);
        if (!it) {
            status = MHD_HTTP_NOT_FOUND;
            answer = error_body("not_found", "no such intervention", NULL);
        } else if (refuse_transition(it, to, &answer) != 0) {
            status = MHD_HTTP_CONFLICT;
        } else {
            apply_change(sim, it, to, account, json_string_value(json_object_get(body, "comment")),
                         json_string_value(json_object_get(body, "planned_start")),
                         json_string_value(json_object_get(body, "planned_end")),
                         json_string_value(json_object_get(body, "reason")));
            status = MHD_HTTP_OK;
            answer = json_deep_copy(it->obj);
        }
        pthread_mutex_unlock(&sim->lock);
    }
    json_decref(body);
    char extra[160];
    snprintf(extra, sizeof extra, "account=%s status=%s", account, status == 200 ? ws_status_name(to) : "-");
    relais_simkit_log(&sim->kit, "POST", url, status, extra);
    return reply(c, status, answer);
}

static int cmp_inter(const void *a, const void *b)
{
    const inter *x = *(const inter *const *)a, *y = *(const inter *const *)b;
    if (x->updated_us != y->updated_us) return x->updated_us < y->updated_us ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* A positive integer query parameter: 0 ok (*out, or def when absent), -1 bad. */
static int int_param(struct MHD_Connection *c, const char *name, long def, long max, long *out)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < 1 || n > max) return -1;
    *out = n;
    return 0;
}

static enum MHD_Result handle_list(struct sim *sim, struct MHD_Connection *c, const char *url)
{
    const char *since = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "updated_since");
    const char *st = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "status");
    const char *cursor = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "cursor");
    int64_t since_us = INT64_MIN, cur_us = 0;
    char cur_id[80] = "";
    ws_status want = WS_RECEIVED;
    long page = 1, per_page = 50;
    const char *bad = NULL;
    if (since && ws_time_parse(since, &since_us) != 0) bad = "updated_since";
    else if (st && ws_status_parse(st, &want) != 0) bad = "status";
    else if (int_param(c, "page", 1, 1000000, &page) != 0) bad = "page";
    else if (int_param(c, "per_page", 50, 500, &per_page) != 0) bad = "per_page";
    else if (cursor) {
        char *end;
        errno = 0;
        long long u = strtoll(cursor, &end, 10);
        if (errno || end == cursor || *end != '~' || !ws_id_valid(end + 1) || strlen(end + 1) >= sizeof cur_id)
            bad = "cursor";
        else {
            cur_us = u;
            snprintf(cur_id, sizeof cur_id, "%s", end + 1);
        }
    }
    if (bad) {
        char msg[128];
        snprintf(msg, sizeof msg, "query parameter '%s' is malformed", bad);
        relais_simkit_log(&sim->kit, "GET", url, 400, NULL);
        return reply(c, MHD_HTTP_BAD_REQUEST, error_body("bad_request", msg, bad));
    }
    json_t *items = json_array();
    char next[160] = "";
    size_t total = 0;
    pthread_mutex_lock(&sim->lock);
    inter **sel = calloc(sim->n ? sim->n : 1, sizeof *sel);
    size_t m = 0;
    for (size_t i = 0; sel && i < sim->n; i++) {
        inter *it = &sim->v[i];
        if (it->updated_us < since_us || (st && it->status != want)) continue;
        if (cursor && (it->updated_us < cur_us || (it->updated_us == cur_us && strcmp(it->id, cur_id) <= 0)))
            continue;
        sel[m++] = it;
    }
    if (sel) qsort(sel, m, sizeof *sel, cmp_inter);
    total = m;
    size_t from = cursor ? 0 : (size_t)(page - 1) * (size_t)per_page;
    size_t to = from;
    for (size_t i = from; i < m && i < from + (size_t)per_page; i++, to++)
        json_array_append_new(items, json_deep_copy(sel[i]->obj));
    if (to < m && to > 0)
        snprintf(next, sizeof next, "%lld~%s", (long long)sel[to - 1]->updated_us, sel[to - 1]->id);
    pthread_mutex_unlock(&sim->lock);
    int oom = !sel;
    free(sel);
    if (oom) {
        json_decref(items);
        return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, error_body("internal", "out of memory", NULL));
    }
    json_t *answer = json_pack("{s:o,s:i}", "items", items, "per_page", (int)per_page);
    json_object_set_new(answer, "next_cursor", next[0] ? json_string(next) : json_null());
    if (!cursor) {
        json_object_set_new(answer, "page", json_integer(page));
        json_object_set_new(answer, "total", json_integer((json_int_t)total));
    }
    relais_simkit_log(&sim->kit, "GET", url, 200, NULL);
    return reply(c, MHD_HTTP_OK, answer);
}

static enum MHD_Result handle_get(struct sim *sim, struct MHD_Connection *c, const char *url,
                                  const char *id, int history)
{
    json_t *answer = NULL;
    pthread_mutex_lock(&sim->lock);
    inter *it = find(sim, id);
    if (it && history)
        answer = json_pack("{s:s,s:o}", "intervention_id", it->id, "items", json_deep_copy(it->history));
    else if (it)
        answer = json_deep_copy(it->obj);
    pthread_mutex_unlock(&sim->lock);
    unsigned status = answer ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND;
    relais_simkit_log(&sim->kit, "GET", url, status, NULL);
    return reply(c, status, answer ? answer : error_body("not_found", "no such intervention", NULL));
}

static enum MHD_Result handle_types(struct sim *sim, struct MHD_Connection *c, const char *url)
{
    json_t *items = json_array();
    for (size_t i = 0; i < NTYPES; i++)
        json_array_append_new(items, json_pack("{s:s,s:s,s:{s:s,s:s}}", "code", TYPES[i].code, "label",
                                               TYPES[i].label, "team", "code", TYPES[i].team_code,
                                               "label", TYPES[i].team_label));
    relais_simkit_log(&sim->kit, "GET", url, 200, NULL);
    return reply(c, MHD_HTTP_OK, json_pack("{s:o}", "items", items));
}

/* /api/v1/... after the faults and the token. */
static enum MHD_Result route_api(struct sim *sim, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *account, relais_simkit_request *rq)
{
    int post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    const char *p = url + strlen("/api/v1");
    if (strcmp(p, "/types") == 0 && get) return handle_types(sim, c, url);
    if (strcmp(p, "/interventions") == 0) {
        if (post) return handle_create(sim, c, url, account, rq);
        if (get) return handle_list(sim, c, url);
    } else if (strncmp(p, "/interventions/", 15) == 0) {
        char id[80];
        const char *rest = p + 15;
        const char *slash = strchr(rest, '/');
        size_t il = slash ? (size_t)(slash - rest) : strlen(rest);
        if (il > 0 && il < sizeof id) {
            memcpy(id, rest, il);
            id[il] = '\0';
            if (ws_id_valid(id)) {
                if (!slash && get) return handle_get(sim, c, url, id, 0);
                if (slash && strcmp(slash, "/history") == 0 && get) return handle_get(sim, c, url, id, 1);
                if (slash && strcmp(slash, "/status") == 0 && post)
                    return handle_change(sim, c, url, id, account, rq);
            }
        }
    }
    relais_simkit_log(&sim->kit, method, url, 404, NULL);
    return reply(c, MHD_HTTP_NOT_FOUND, error_body("not_found", "no such operation", NULL));
}

/* ---- Control API ------------------------------------------------------------ */

static int reason_valid(const char *r)
{
    static const char *const reasons[] = { "doublon", "domaine_prive", "hors_competence", "introuvable", "autre" };
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (strcmp(r, reasons[i]) == 0) return 1;
    return 0;
}

static enum MHD_Result handle_advance(struct sim *sim, struct MHD_Connection *c, relais_simkit_request *rq)
{
    char err[512];
    json_t *o = parse_body(rq, err, sizeof err), *answer = NULL;
    const char *id = json_string_value(json_object_get(o, "id"));
    const char *sname = json_string_value(json_object_get(o, "status"));
    const char *acct = json_string_value(json_object_get(o, "account"));
    const char *comment = json_string_value(json_object_get(o, "comment"));
    const char *start = json_string_value(json_object_get(o, "planned_start"));
    const char *end = json_string_value(json_object_get(o, "planned_end"));
    const char *reason = json_string_value(json_object_get(o, "reason"));
    ws_status to = WS_RECEIVED;
    int64_t us;
    unsigned status = 0;
    if (!json_is_object(o) || !id || (json_object_get(o, "status") && (!sname || ws_status_parse(sname, &to) != 0))
        || (start && ws_time_parse(start, &us) != 0) || (end && ws_time_parse(end, &us) != 0)
        || (reason && !reason_valid(reason))
        || (acct && !*acct)) {
        status = MHD_HTTP_BAD_REQUEST;
        answer = error_body("bad_request", "expected {\"id\", \"status\"?, \"comment\"?, \"planned_start\"?, "
                            "\"planned_end\"?, \"reason\"?, \"account\"?}", NULL);
    }
    if (status == 0) {
        pthread_mutex_lock(&sim->lock);
        inter *it = find(sim, id);
        if (!it) {
            status = MHD_HTTP_NOT_FOUND;
            answer = error_body("not_found", "no such intervention", NULL);
        } else if (!sname && ws_status_next(it->status, &to) != 0) {
            status = MHD_HTTP_CONFLICT;
            answer = error_body("invalid_transition", "the intervention is closed", NULL);
        } else if (refuse_transition(it, to, &answer) != 0) {
            status = MHD_HTTP_CONFLICT;
        } else {
            char dstart[40];
            relais_time_rfc3339(relais_now_us() + 86400LL * 1000000, dstart, sizeof dstart);
            apply_change(sim, it, to, acct ? acct : sim->agent, comment ? comment : DEFAULT_COMMENT[to],
                         start ? start : (to == WS_PLANNED ? dstart : NULL), end, reason);
            status = MHD_HTTP_OK;
            answer = json_deep_copy(it->obj);
        }
        pthread_mutex_unlock(&sim->lock);
    }
    char extra[128];
    snprintf(extra, sizeof extra, "id=%.64s status=%s", id ? id : "-", status == 200 ? ws_status_name(to) : "-");
    json_decref(o);
    relais_simkit_log(&sim->kit, "POST", "/_sim/advance", status, extra);
    return reply(c, status, answer);
}

/* {"k": integer} members: 0 ok, -1 when present and not an integer within [lo, hi]. */
static int int_member(json_t *o, const char *k, long lo, long hi, long *out)
{
    json_t *v = json_object_get(o, k);
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) return -1;
    *out = (long)json_integer_value(v);
    return 0;
}

static enum MHD_Result handle_control(struct sim *sim, struct MHD_Connection *c, const char *url,
                                      const char *method, relais_simkit_request *rq)
{
    int post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    char err[512];
    if (post && strcmp(url, "/_sim/advance") == 0) return handle_advance(sim, c, rq);
    if (post && (strcmp(url, "/_sim/fail") == 0 || strcmp(url, "/_sim/down") == 0
                 || strcmp(url, "/_sim/auto-advance") == 0)) {
        json_t *o = parse_body(rq, err, sizeof err);
        long interval = 0;
        json_t *secs = json_object_get(o, "seconds");
        const char *mode = json_string_value(json_object_get(o, "mode"));
        int ok = json_is_object(o);
        if (ok && strcmp(url, "/_sim/fail") == 0) {
            relais_simkit_fault f;
            ok = relais_simkit_fault_parse(o, "status", 100, 599, &f) == 0 && f.count >= -1 && f.count <= 1000000
                 && f.delay_ms >= 0 && f.delay_ms <= 600000;
            if (ok) {
                pthread_mutex_lock(&sim->lock);
                sim->fault = f;
                pthread_mutex_unlock(&sim->lock);
            }
        } else if (ok && strcmp(url, "/_sim/down") == 0) {
            double s = json_number_value(secs);
            ok = json_is_number(secs) && s > 0 && s <= 3600 && (!mode || !strcmp(mode, "refuse") || !strcmp(mode, "reset"));
            if (ok) {
                pthread_mutex_lock(&sim->lock);
                if (mode && !strcmp(mode, "reset")) {
                    sim->down_reset = 1;
                    sim->down_until_us = relais_mono_us() + (int64_t)(s * 1e6);
                } else {
                    sim->down_ms = (long)(s * 1000);
                }
                pthread_mutex_unlock(&sim->lock);
            }
        } else if (ok) {
            ok = int_member(o, "interval_ms", 0, 86400000, &interval) == 0 && json_object_get(o, "interval_ms");
            if (ok) {
                pthread_mutex_lock(&sim->lock);
                sim->auto_ms = interval;
                pthread_mutex_unlock(&sim->lock);
            }
        }
        json_decref(o);
        relais_simkit_log(&sim->kit, method, url, ok ? 200 : 400, NULL);
        if (!ok)
            return reply(c, MHD_HTTP_BAD_REQUEST, error_body("bad_request",
                         "expected /_sim/fail {\"status\":100..599,\"count\":N,\"delay_ms\":N}, "
                         "/_sim/down {\"seconds\":S,\"mode\":\"refuse\"|\"reset\"} or "
                         "/_sim/auto-advance {\"interval_ms\":N}", NULL));
        return reply(c, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
    }
    if (post && strcmp(url, "/_sim/reset") == 0) {
        pthread_mutex_lock(&sim->lock);
        forget_all(sim);
        sim->next_seq = 0;
        sim->next_hist = 0;
        sim->fault = (relais_simkit_fault){ 0 };
        sim->down_reset = 0;
        sim->auto_ms = sim->auto_ms_initial;
        sim->requests = sim->created = sim->replayed = sim->failed = sim->changes = sim->resets = 0;
        pthread_mutex_unlock(&sim->lock);
        relais_simkit_log(&sim->kit, method, url, 200, NULL);
        return reply(c, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
    }
    if (get && strcmp(url, "/_sim/stats") == 0) {
        pthread_mutex_lock(&sim->lock);
        json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "requests", (json_int_t)sim->requests,
                              "created", (json_int_t)sim->created, "replayed", (json_int_t)sim->replayed,
                              "failed", (json_int_t)sim->failed, "changes", (json_int_t)sim->changes,
                              "reset_connections", (json_int_t)sim->resets,
                              "interventions", (json_int_t)sim->n, "auto_advance_ms", (json_int_t)sim->auto_ms);
        pthread_mutex_unlock(&sim->lock);
        relais_simkit_log(&sim->kit, method, url, 200, NULL);
        return reply(c, MHD_HTTP_OK, o);
    }
    if (get && strcmp(url, "/_sim/interventions") == 0) {
        json_t *out = json_array();
        pthread_mutex_lock(&sim->lock);
        for (size_t i = 0; i < sim->n; i++)
            json_array_append_new(out, json_pack("{s:o,s:o}", "intervention", json_deep_copy(sim->v[i].obj),
                                                 "history", json_deep_copy(sim->v[i].history)));
        pthread_mutex_unlock(&sim->lock);
        relais_simkit_log(&sim->kit, method, url, 200, NULL);
        return reply(c, MHD_HTTP_OK, out);
    }
    relais_simkit_log(&sim->kit, method, url, 404, NULL);
    return reply(c, MHD_HTTP_NOT_FOUND, error_body("not_found", "no such control endpoint", NULL));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct sim *sim = cls;
    enum MHD_Result ret;
    if (relais_simkit_upload(con_cls, upload_data, upload_data_size, SIM_MAX_BODY, &ret)) return ret;
    relais_simkit_request *rq = *con_cls;
    if (strncmp(url, "/_sim/", 6) == 0) return handle_control(sim, c, url, method, rq);
    if (strncmp(url, "/api/v1/", 8) != 0) {
        relais_simkit_log(&sim->kit, method, url, 404, NULL);
        return reply(c, MHD_HTTP_NOT_FOUND, error_body("not_found", "no such operation", NULL));
    }
    /* faults first: a tool that is failing fails for everyone */
    pthread_mutex_lock(&sim->lock);
    sim->requests++;
    int reset = sim->down_reset && relais_mono_us() < sim->down_until_us;
    if (sim->down_reset && !reset) sim->down_reset = 0;
    int status = 0;
    long delay = 0;
    if (reset) {
        sim->resets++;
    } else if (relais_simkit_fault_take(&sim->fault, &status, &delay) && status) {
        sim->failed++;
    }
    pthread_mutex_unlock(&sim->lock);
    if (reset) {
        relais_simkit_log(&sim->kit, method, url, 0, "connection reset (down)");
        return MHD_NO;
    }
    if (delay > 0) relais_simkit_sleep_ms(delay);
    if (status) {
        relais_simkit_log(&sim->kit, method, url, (unsigned)status, "injected");
        return reply(c, (unsigned)status, error_body(status >= 500 ? "unavailable" : "bad_request",
                                                     "injected failure", NULL));
    }
    if (rq->body.too_large) {
        relais_simkit_log(&sim->kit, method, url, 413, NULL);
        return reply(c, MHD_HTTP_CONTENT_TOO_LARGE, error_body("bad_request", "body too large", NULL));
    }
    const char *account = account_of(sim, c);
    if (!account) {
        relais_simkit_log(&sim->kit, method, url, 401, NULL);
        return reply(c, MHD_HTTP_UNAUTHORIZED, error_body("unauthorized", "missing or unknown API token", NULL));
    }
    return route_api(sim, c, url, method, account, rq);
}

/* ---- Main ------------------------------------------------------------------- */

/* libmicrohttpd's own messages (e.g. on a connection closed on purpose in
 * reset mode): one log line, none with --quiet. */
static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    const struct sim *sim = cls;
    if (sim->kit.quiet) return;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = '\0';
    relais_logf(RELAIS_LOG_INFO, "sim-worksite", "libmicrohttpd: %s", buf);
}

/* The daemon, with libmicrohttpd's messages in our log and the address
 * reusable: again = 1 binds the same port after /_sim/down (silently NULL
 * while it cannot). */
static struct MHD_Daemon *start_daemon(struct sim *sim, int again)
{
    const struct MHD_OptionItem extra[] = {
        { MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, sim },
        { MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL },
        { MHD_OPTION_END, 0, NULL }
    };
    if (again) return relais_simkit_relisten(&sim->kit, on_request, sim, relais_simkit_completed, extra);
    return relais_simkit_listen(&sim->kit, on_request, sim, relais_simkit_completed, extra);
}

static int load_schemas(struct sim *sim, const char *path)
{
    json_error_t je;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    char err[512];
    if (!doc) {
        fprintf(stderr, "relais-sim-worksite: %s:%d: %s\n", path, je.line, je.text);
        return -1;
    }
    sim->schemas = relais_schema_set_new();
    int rc = relais_schema_set_add(sim->schemas, doc, NULL, path, err, sizeof err);
    json_decref(doc);
    if (rc == 0) rc = relais_schema_set_compile(sim->schemas, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "relais-sim-worksite: %s\n", err);
        return -1;
    }
    sim->sc_create = relais_schema_set_get(sim->schemas, SCHEMA_ID "#/$defs/InterventionCreate");
    sim->sc_change = relais_schema_set_get(sim->schemas, SCHEMA_ID "#/$defs/StatusChange");
    if (!sim->sc_create || !sim->sc_change) {
        fprintf(stderr, "relais-sim-worksite: %s: no InterventionCreate or StatusChange schema\n", path);
        return -1;
    }
    return 0;
}

/* "TOKEN=ACCOUNT" */
static int add_token(struct sim *sim, char *arg)
{
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1] || sim->ntokens >= MAX_TOKENS) return -1;
    *eq = '\0';
    sim->tokens[sim->ntokens].token = arg;
    sim->tokens[sim->ntokens].account = eq + 1;
    sim->ntokens++;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: relais-sim-worksite --listen HOST:PORT --token TOKEN=ACCOUNT [--token ...]\n"
            "                           [--port-file FILE] [--agent ACCOUNT] [--auto-advance MS]\n"
            "                           [--api-schema FILE] [--quiet]\n"
            "  a technical services' work-order tool (api/worksite-openapi.yaml) under /api/v1,\n"
            "  control API under /_sim/ (advance, auto-advance, fail, down, reset, stats,\n"
            "  interventions); see connectors/worksite/README.md\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        RELAIS_SIMKIT_LONGOPTS,
        { "token", required_argument, NULL, 't' },
        { "agent", required_argument, NULL, 'a' },
        { "auto-advance", required_argument, NULL, 'A' },
        { "api-schema", required_argument, NULL, 's' },
        { NULL, 0, NULL, 0 }
    };
    struct sim sim;
    memset(&sim, 0, sizeof sim);
    sim.kit.name = "sim-worksite";
    char schema_path[4096];
    /* default: the schema next to this source file (a build tree) */
    snprintf(schema_path, sizeof schema_path, "%s", __FILE__);
    char *slash = strrchr(schema_path, '/');
    snprintf(slash ? slash + 1 : schema_path, sizeof schema_path - (size_t)(slash ? slash + 1 - schema_path : 0),
             "api/worksite.schema.json");
    sim.agent = "agent";
    int opt;
    while ((opt = getopt_long(argc, argv, "l:p:t:a:A:s:qh", longopts, NULL)) != -1) {
        if (relais_simkit_option(&sim.kit, opt, optarg)) continue;
        switch (opt) {
        case 't':
            if (add_token(&sim, optarg) != 0) {
                relais_simkit_error(&sim.kit, "--token wants TOKEN=ACCOUNT (at most %d)", MAX_TOKENS);
                return 2;
            }
            break;
        case 'a': sim.agent = optarg; break;
        case 'A': {
            char *end;
            sim.auto_ms_initial = strtol(optarg, &end, 10);
            if (end == optarg || *end) sim.auto_ms_initial = -1;   /* refused below */
            break;
        }
        case 's': snprintf(schema_path, sizeof schema_path, "%s", optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    const char *listen = sim.kit.listen;
    char host[256], err[256];
    int port;
    if (!listen || sim.ntokens == 0 || sim.auto_ms_initial < 0 || !*sim.agent
        || relais_http_split_listen(listen, host, sizeof host, &port, err, sizeof err) != 0) {
        usage(stderr);
        return 2;
    }
    sim.auto_ms = sim.auto_ms_initial;
    if (load_schemas(&sim, schema_path) != 0) return 2;
    if (relais_simkit_resolve(&sim.kit, listen, &sim.kit.at) != 0) return 2;
    pthread_mutex_init(&sim.lock, NULL);
    sim.idem = json_object();

    struct MHD_Daemon *d = start_daemon(&sim, 0);
    if (!d) return 1;
    int bound = sim.kit.bound;
    if (relais_simkit_ready(&sim.kit, d) != 0) return 1;
    int v6 = sim.kit.at.v6;
    relais_logf(RELAIS_LOG_INFO, "sim-worksite", "listening on http://%s%s%s:%d", v6 ? "[" : "", host,
                v6 ? "]" : "", bound);

    int64_t up_at = 0;          /* monotonic: when to listen again (0: listening) */
    int64_t next_tick = 0;      /* monotonic: next auto-advance */
    for (;;) {
        if (relais_simkit_wait(&sim.kit, 20) > 0) break;
        int64_t now = relais_mono_us();
        pthread_mutex_lock(&sim.lock);
        long down_ms = sim.down_ms;
        sim.down_ms = 0;
        long auto_ms = sim.auto_ms;
        if (auto_ms <= 0) {
            next_tick = 0;
        } else if (next_tick == 0) {
            next_tick = now + auto_ms * 1000LL;
        } else if (now >= next_tick) {
            advance_all(&sim);
            next_tick = now + auto_ms * 1000LL;
        }
        pthread_mutex_unlock(&sim.lock);
        if (down_ms > 0) {
            if (d) {
                relais_simkit_sleep_ms(50);   /* let the answer to /_sim/down leave first */
                MHD_stop_daemon(d);
                d = NULL;
                relais_logf(RELAIS_LOG_INFO, "sim-worksite", "down for %ld ms (connections refused)", down_ms);
            }
            up_at = relais_mono_us() + down_ms * 1000LL;
        }
        if (!d && up_at && relais_mono_us() >= up_at) {
            d = start_daemon(&sim, 1);
            if (d) {
                up_at = 0;
                relais_logf(RELAIS_LOG_INFO, "sim-worksite", "listening again on port %d", bound);
            }
        }
    }
    if (d) MHD_stop_daemon(d);
    forget_all(&sim);
    free(sim.v);
    json_decref(sim.idem);
    relais_schema_set_destroy(sim.schemas);
    pthread_mutex_destroy(&sim.lock);
    return 0;
}
