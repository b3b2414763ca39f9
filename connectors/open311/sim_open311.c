/*
 * sim_open311.c - relais-sim-open311: a GeoReport v2 server (Open311),
 * written from the spec and its examples (../shared/fixtures/open311/), that
 * the open311 connector's client role talks to in tests and in the demo.
 *
 *   relais-sim-open311 --listen 127.0.0.1:PORT [--port-file F] [--api-key K]
 *                      [--jurisdiction J] [--quiet]
 *
 * GeoReport v2, JSON and XML (text/xml), the spec's errors body:
 *   GET  /discovery.{json,xml}, /services.{json,xml}, /services/<code>.{json,xml}
 *   POST /requests.{json,xml}   form-urlencoded (or multipart); api_key checked
 *                               when --api-key is given (403 as the spec's
 *                               example), jurisdiction_id when --jurisdiction
 *                               is (404), service_code known and a location
 *                               given (400). A repeated Idempotency-Key gets
 *                               the first answer again (a duplicate).
 *   GET  /requests.{json,xml}   service_request_id=a,b (overrides the rest),
 *                               service_code, status, start_date, end_date
 *   GET  /requests/<id>.{json,xml}, /tokens/<token>.{json,xml}
 * Control API (tests; JSON bodies):
 *   GET  /_sim/stats            {"posts","created","duplicates","gets","failed","requests"}
 *   GET  /_sim/requests         every request with what was posted ("posted": the
 *                               fields without api_key, "idempotency_key")
 *   POST /_sim/requests/<id>    {"status":"closed","status_notes":"..",
 *                                "agency_responsible":"..","updated_datetime":".."}
 *                               (updated_datetime defaults to now)
 *   POST /_sim/config           {"answer":"id"|"token","numeric_ids":true|false}:
 *                               POST answers a token only; ids written as JSON numbers
 *                               as in the spec's examples
 *   POST /_sim/fail             {"status":503,"count":2,"delay_ms":0}: the next
 *                               count GeoReport calls (count -1: until changed)
 *   POST /_sim/reset            forget everything
 * Prints "listening on http://127.0.0.1:PORT" on stderr once ready.
 *
 * The daemon is open311_http.c's (shared with the connector's server role);
 * options, signals, the request log and /_sim/fail's common members are
 * hub/simkit.h's.
 *
 * Threads: MHD runs one thread per connection; all simulator state (struct
 * sim) is guarded by sim.lock; a request's buffers belong to its connection
 * thread.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <microhttpd.h>
#include <jansson.h>
#include "relais/relais.h"
#include "open311_int.h"
#include "simkit.h"

#define SIM_MAX_BODY (1024 * 1024)

struct sim {
    pthread_mutex_t lock;
    json_t *requests;      /* id -> stored request (public fields + posted, idempotency_key, token) */
    json_t *idem;          /* Idempotency-Key -> id */
    json_t *services;      /* the service list */
    long    next_id;
    long    posts, created, duplicates, gets, failed, calls;
    int     token_answer;  /* POST answers a token only */
    int     numeric_ids;   /* ids as JSON numbers */
    relais_simkit_fault fault;
    /* read-only after start */
    relais_simkit kit;
    const char *api_key;
    const char *jurisdiction;
};

struct req {
    int                post;
    int                control;
    relais_http_upload raw;   /* /_sim/ JSON bodies */
    o311_upload        form;  /* GeoReport POST */
};

static enum MHD_Result control_reply(struct MHD_Connection *c, unsigned status, json_t *body)
{
    enum MHD_Result r = o311_reply(c, status, O311_JSON, body, "result", 0);
    json_decref(body);
    return r;
}

static json_t *default_services(void)
{
    static const char *const list[][3] = {
        { "VOI-03", "Nids de poule", "voirie" }, { "ECL-01", "Éclairage public", "eclairage" },
        { "PRO-02", "Propreté", "proprete" }, { "ESV-01", "Espaces verts", "espaces-verts" },
        { "AUTRE", "Autre demande", "divers" }, { "DIV-00", "Divers", "divers" },
        { "001", "Cans left out 24x7", "sanitation" }, { "002", "Construction plate shifted", "street" },
    };
    json_t *a = json_array();
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        json_array_append_new(a, json_pack("{s:s,s:s,s:n,s:b,s:s,s:n,s:s}", "service_code", list[i][0],
                                           "service_name", list[i][1], "description", "metadata", 0,
                                           "type", "realtime", "keywords", "group", list[i][2]));
    return a;
}

static const json_t *find_service(const struct sim *sim, const char *code)
{
    size_t i;
    json_t *s;
    json_array_foreach(sim->services, i, s)
        if (code && !strcmp(json_string_value(json_object_get(s, "service_code")), code)) return s;
    return NULL;
}

/* The public view, with ids as numbers when asked (the spec's examples). */
static json_t *view(const struct sim *sim, const json_t *stored)
{
    json_t *v = o311_public_request(stored);
    if (sim->numeric_ids) {
        const char *id = json_string_value(json_object_get(v, "service_request_id"));
        if (id) json_object_set_new(v, "service_request_id", json_integer(strtoll(id, NULL, 10)));
    }
    return v;
}

static void now_text(char *buf, size_t len)
{
    o311_format_datetime(time(NULL), buf, len);
}

/* ---- GeoReport calls -------------------------------------------------------- */

static enum MHD_Result post_request(struct sim *sim, struct MHD_Connection *c, o311_format fmt, struct req *rq,
                                    unsigned *status)
{
    unsigned st;
    const char *problem = o311_upload_problem(&rq->form, &st);
    if (problem) { *status = st; return o311_reply_error(c, st, fmt, problem, 0); }
    json_t *posted = json_object();
    const char *key = NULL;
    char err[256];
    for (size_t i = 0; i < rq->form.n; i++) {
        const o311_field *f = &rq->form.f[i];
        if (!strcmp(f->key, "api_key")) { key = f->val ? f->val : ""; continue; }
        if (o311_form_add(posted, f->key, f->val, f->len, err, sizeof err) != 0) {
            json_decref(posted);
            *status = 400;
            return o311_reply_error(c, 400, fmt, err, 0);
        }
    }
    if (sim->api_key && (!key || strcmp(key, sim->api_key) != 0)) {
        json_decref(posted);
        *status = 403;
        return o311_reply_error(c, 403, fmt, "Invalid api_key received -- can't proceed with create_request.", 0);
    }
    const char *jur = json_string_value(json_object_get(posted, "jurisdiction_id"));
    if (sim->jurisdiction && jur && strcmp(jur, sim->jurisdiction) != 0) {
        json_decref(posted);
        *status = 404;
        return o311_reply_error(c, 404, fmt, "jurisdiction_id provided was not found", 0);
    }
    const char *code = json_string_value(json_object_get(posted, "service_code"));
    const char *bad = NULL;
    if (!code) bad = "service_code was not provided -- can't proceed with create_request.";
    else if (!find_service(sim, code)) bad = "service_code was not found -- can't proceed with create_request.";
    else if (!(json_object_get(posted, "lat") && json_object_get(posted, "long"))
             && !json_object_get(posted, "address_string") && !json_object_get(posted, "address_id"))
        bad = "a location is required (lat and long, address_string or address_id)";
    if (bad) {
        json_decref(posted);
        *status = 400;
        return o311_reply_error(c, 400, fmt, bad, 0);
    }
    const char *idem = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    char id[32], token[48], now[40];
    now_text(now, sizeof now);
    pthread_mutex_lock(&sim->lock);
    const char *prev = idem ? json_string_value(json_object_get(sim->idem, idem)) : NULL;
    if (prev) {
        snprintf(id, sizeof id, "%s", prev);
        sim->duplicates++;
    } else {
        snprintf(id, sizeof id, "%ld", ++sim->next_id);
        sim->created++;
        const json_t *svc = find_service(sim, code);
        json_t *r = json_pack("{s:s,s:s,s:n,s:O,s:s,s:s,s:s}", "service_request_id", id, "status", "open",
                              "status_notes", "service_name", json_object_get(svc, "service_name"),
                              "service_code", code, "requested_datetime", now, "updated_datetime", now);
        static const char *const copy[][2] = { { "description", "description" }, { "address_string", "address" },
                                               { "address_id", "address_id" }, { "lat", "lat" }, { "long", "long" },
                                               { "media_url", "media_url" } };
        for (size_t i = 0; i < sizeof copy / sizeof copy[0]; i++) {
            json_t *v = json_object_get(posted, copy[i][0]);
            if (v) json_object_set(r, copy[i][1], v);
        }
        snprintf(token, sizeof token, "tok-%s", id);
        json_object_set_new(r, "token", json_string(token));
        json_object_set(r, "posted", posted);
        json_object_set_new(r, "idempotency_key", idem ? json_string(idem) : json_null());
        json_object_set_new(sim->requests, id, r);
        if (idem) json_object_set_new(sim->idem, idem, json_string(id));
    }
    snprintf(token, sizeof token, "tok-%s", id);
    json_t *ans;
    if (sim->token_answer) ans = json_pack("[{s:s}]", "token", token);
    else if (sim->numeric_ids) ans = json_pack("[{s:I,s:n,s:n}]", "service_request_id", (json_int_t)strtoll(id, NULL, 10),
                                               "service_notice", "account_id");
    else ans = json_pack("[{s:s,s:n,s:n}]", "service_request_id", id, "service_notice", "account_id");
    pthread_mutex_unlock(&sim->lock);
    json_decref(posted);
    *status = 200;
    enum MHD_Result r = o311_reply(c, 200, fmt, ans, "service_requests", 0);
    json_decref(ans);
    return r;
}

static int matches(const json_t *r, const json_t *codes, const json_t *statuses, int64_t start, int64_t end)
{
    size_t i;
    const json_t *it;
    if (codes) {
        int hit = 0;
        json_array_foreach(codes, i, it)
            hit |= !strcmp(json_string_value(it), json_string_value(json_object_get(r, "service_code")));
        if (!hit) return 0;
    }
    if (statuses) {
        int hit = 0;
        json_array_foreach(statuses, i, it)
            hit |= !strcmp(json_string_value(it), json_string_value(json_object_get(r, "status")));
        if (!hit) return 0;
    }
    int64_t t;
    if (o311_parse_datetime(json_string_value(json_object_get(r, "requested_datetime")), &t) == 0
        && (t < start || t > end))
        return 0;
    return 1;
}

static enum MHD_Result get_requests(struct sim *sim, struct MHD_Connection *c, o311_format fmt, unsigned *status)
{
    const char *ids_q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "service_request_id");
    const char *code_q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "service_code");
    const char *status_q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "status");
    const char *start_q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "start_date");
    const char *end_q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "end_date");
    json_t *ids = ids_q ? o311_split_csv(ids_q, O311_LIST_MAX) : NULL;
    json_t *codes = code_q ? o311_split_csv(code_q, 100) : NULL;
    json_t *statuses = status_q ? o311_split_csv(status_q, 2) : NULL;
    int64_t start = 0, end = INT64_MAX;
    if ((ids_q && !ids) || (code_q && !codes) || (status_q && !statuses)
        || (start_q && o311_parse_datetime(start_q, &start) != 0) || (end_q && o311_parse_datetime(end_q, &end) != 0)) {
        json_decref(ids);
        json_decref(codes);
        json_decref(statuses);
        *status = 400;
        return o311_reply_error(c, 400, fmt, "invalid query", 0);
    }
    json_t *out = json_array();
    pthread_mutex_lock(&sim->lock);
    size_t i;
    json_t *it;
    if (ids) {
        json_array_foreach(ids, i, it) {
            json_t *r = json_object_get(sim->requests, json_string_value(it));
            if (r) json_array_append_new(out, view(sim, r));
        }
    } else {
        const char *k;
        json_object_foreach(sim->requests, k, it)
            if (matches(it, codes, statuses, start, end)) json_array_append_new(out, view(sim, it));
    }
    pthread_mutex_unlock(&sim->lock);
    json_decref(ids);
    json_decref(codes);
    json_decref(statuses);
    *status = 200;
    enum MHD_Result r = o311_reply(c, 200, fmt, out, "service_requests", 0);
    json_decref(out);
    return r;
}

static enum MHD_Result georeport(struct sim *sim, struct MHD_Connection *c, const char *url, const char *method,
                                 struct req *rq, unsigned *status)
{
    char path[512];
    o311_format fmt;
    if (o311_split_url(url, "", path, sizeof path, &fmt) != 0) {
        *status = 404;
        return o311_reply_error(c, 404, O311_JSON, "not found", 0);
    }
    pthread_mutex_lock(&sim->lock);
    sim->calls++;
    int fail = 0;
    long delay = 0;
    if (relais_simkit_fault_take(&sim->fault, &fail, &delay) && fail) sim->failed++;
    if (rq->post) sim->posts++;
    else sim->gets++;
    pthread_mutex_unlock(&sim->lock);
    if (delay > 0) relais_simkit_sleep_ms(delay);
    if (fail) {
        *status = (unsigned)fail;
        return o311_reply_error(c, (unsigned)fail, fmt, "injected failure", fail == 503);
    }
    const char *jur = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "jurisdiction_id");
    if (!rq->post && sim->jurisdiction && jur && strcmp(jur, sim->jurisdiction) != 0) {
        *status = 404;
        return o311_reply_error(c, 404, fmt, "jurisdiction_id provided was not found", 0);
    }
    const char *svc = o311_path_arg(path, "/services");
    const char *arg = o311_path_arg(path, "/requests");
    if (!arg) arg = o311_path_arg(path, "/tokens");
    if (rq->post) {
        if (strcmp(path, "/requests") != 0) {
            *status = 405;
            return o311_reply_error(c, 405, fmt, "method not allowed", 0);
        }
        return post_request(sim, c, fmt, rq, status);
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
        *status = 405;
        return o311_reply_error(c, 405, fmt, "method not allowed", 0);
    }
    *status = 200;
    if (!strcmp(path, "/discovery")) {
        json_t *d = json_pack("{s:s,s:s,s:s,s:[{s:s,s:s,s:s,s:s,s:[s,s]}]}", "changeset", "2026-01-01 00:00",
                              "contact", "relais-sim-open311", "key_service", "ask the test",
                              "endpoints", "specification", "http://wiki.open311.org/GeoReport_v2", "url", "",
                              "changeset", "2026-01-01 00:00", "type", "test", "formats", "text/xml",
                              "application/json");
        enum MHD_Result r = o311_reply(c, 200, fmt, d, "discovery", 0);
        json_decref(d);
        return r;
    }
    if (!strcmp(path, "/services")) {
        pthread_mutex_lock(&sim->lock);
        json_t *copy = json_deep_copy(sim->services);
        pthread_mutex_unlock(&sim->lock);
        enum MHD_Result r = o311_reply(c, 200, fmt, copy, "services", 0);
        json_decref(copy);
        return r;
    }
    if (svc) {
        pthread_mutex_lock(&sim->lock);
        int known = find_service(sim, svc) != NULL;
        pthread_mutex_unlock(&sim->lock);
        if (!known) {
            *status = 404;
            return o311_reply_error(c, 404, fmt, "service_code was not found", 0);
        }
        json_t *d = json_pack("{s:s,s:[]}", "service_code", svc, "attributes");
        enum MHD_Result r = o311_reply(c, 200, fmt, d, "service_definition", 0);
        json_decref(d);
        return r;
    }
    if (!strcmp(path, "/requests")) return get_requests(sim, c, fmt, status);
    if (arg) {
        int token = !strncmp(path, "/tokens/", 8);
        json_t *out = NULL;
        pthread_mutex_lock(&sim->lock);
        const char *k;
        json_t *r;
        json_object_foreach(sim->requests, k, r) {
            const char *have = json_string_value(json_object_get(r, token ? "token" : "service_request_id"));
            if (!have || strcmp(have, arg) != 0) continue;
            out = token ? json_pack("[{s:O,s:s}]", "service_request_id", json_object_get(r, "service_request_id"),
                                    "token", arg)
                        : json_pack("[o]", view(sim, r));
            break;
        }
        pthread_mutex_unlock(&sim->lock);
        if (!out) {
            *status = 404;
            return o311_reply_error(c, 404, fmt, token ? "token was not found" : "service_request_id was not found", 0);
        }
        enum MHD_Result res = o311_reply(c, 200, fmt, out, "service_requests", 0);
        json_decref(out);
        return res;
    }
    *status = 404;
    return o311_reply_error(c, 404, fmt, "not found", 0);
}

/* ---- Control API --------------------------------------------------------------- */

static enum MHD_Result control(struct sim *sim, struct MHD_Connection *c, const char *url, const char *method,
                               struct req *rq, unsigned *status)
{
    int post = !strcmp(method, MHD_HTTP_METHOD_POST);
    json_t *body = rq->raw.buf ? json_loadb(rq->raw.buf, rq->raw.len, 0, NULL) : NULL;
    json_t *out = NULL;
    *status = 200;
    pthread_mutex_lock(&sim->lock);
    if (!post && !strcmp(url, "/_sim/stats")) {
        out = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "posts", (json_int_t)sim->posts, "created", (json_int_t)sim->created,
                        "duplicates", (json_int_t)sim->duplicates, "gets", (json_int_t)sim->gets,
                        "failed", (json_int_t)sim->failed, "requests", (json_int_t)json_object_size(sim->requests));
    } else if (!post && !strcmp(url, "/_sim/requests")) {
        out = json_array();
        const char *k;
        json_t *r;
        json_object_foreach(sim->requests, k, r) json_array_append(out, r);
    } else if (post && !strncmp(url, "/_sim/requests/", 15)) {
        json_t *r = json_object_get(sim->requests, url + 15);
        const json_t *stv = json_object_get(body, "status");
        if (!r) {
            *status = 404;
            out = json_pack("{s:s}", "error", "no such request");
        } else if (!json_is_object(body) || (stv && !json_is_string(stv))
                   || (stv && strcmp(json_string_value(stv), "open") && strcmp(json_string_value(stv), "closed"))) {
            *status = 400;
            out = json_pack("{s:s}", "error", "expected {\"status\":\"open|closed\",\"status_notes\":..,"
                            "\"agency_responsible\":..,\"updated_datetime\":..}");
        } else {
            static const char *const keys[] = { "status", "status_notes", "agency_responsible", "expected_datetime",
                                                "updated_datetime", NULL };
            for (size_t i = 0; keys[i]; i++) {
                json_t *v = json_object_get(body, keys[i]);
                if (v) json_object_set(r, keys[i], v);
            }
            if (!json_object_get(body, "updated_datetime")) {
                char now[40];
                now_text(now, sizeof now);
                json_object_set_new(r, "updated_datetime", json_string(now));
            }
            out = json_deep_copy(r);
        }
    } else if (post && !strcmp(url, "/_sim/config")) {
        const json_t *a = json_object_get(body, "answer"), *n = json_object_get(body, "numeric_ids");
        if (!json_is_object(body) || (a && (!json_is_string(a) || (strcmp(json_string_value(a), "id")
                                                                   && strcmp(json_string_value(a), "token"))))
            || (n && !json_is_boolean(n))) {
            *status = 400;
            out = json_pack("{s:s}", "error", "expected {\"answer\":\"id|token\",\"numeric_ids\":bool}");
        } else {
            if (a) sim->token_answer = !strcmp(json_string_value(a), "token");
            if (n) sim->numeric_ids = json_is_true(n);
            out = json_pack("{s:b}", "ok", 1);
        }
    } else if (post && !strcmp(url, "/_sim/fail")) {
        if (relais_simkit_fault_parse(body, "status", 100, 599, &sim->fault) != 0) {
            *status = 400;
            out = json_pack("{s:s}", "error", "expected {\"status\":100..599,\"count\":N,\"delay_ms\":N}");
        } else {
            out = json_pack("{s:b}", "ok", 1);
        }
    } else if (post && !strcmp(url, "/_sim/reset")) {
        json_object_clear(sim->requests);
        json_object_clear(sim->idem);
        sim->next_id = 1000;
        sim->posts = sim->created = sim->duplicates = sim->gets = sim->failed = sim->calls = 0;
        sim->token_answer = sim->numeric_ids = 0;
        sim->fault = (relais_simkit_fault){ 0 };
        out = json_pack("{s:b}", "ok", 1);
    } else {
        *status = 404;
        out = json_pack("{s:s}", "error", "not found");
    }
    pthread_mutex_unlock(&sim->lock);
    json_decref(body);
    return control_reply(c, *status, out);
}

/* ---- MHD callbacks ---------------------------------------------------------------- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct sim *sim = cls;
    struct req *rq = *con_cls;
    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        *con_cls = rq;
        rq->post = !strcmp(method, MHD_HTTP_METHOD_POST);
        rq->control = !strncmp(url, "/_sim/", 6);
        if (rq->post && !rq->control) o311_upload_begin(&rq->form, c, SIM_MAX_BODY);
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (rq->control) {
            if (relais_http_upload_take(&rq->raw, upload_data, upload_data_size, SIM_MAX_BODY) != 0) return MHD_NO;
        } else {
            if (rq->post) o311_upload_feed(&rq->form, upload_data, *upload_data_size);
            *upload_data_size = 0;
        }
        return MHD_YES;
    }
    unsigned status = 0;
    enum MHD_Result r;
    if (rq->control) {
        r = control(sim, c, url, method, rq, &status);
    } else {
        if (rq->post) o311_upload_finish(&rq->form);
        r = georeport(sim, c, url, method, rq, &status);
    }
    relais_simkit_log(&sim->kit, method, url, status, NULL);
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct req *rq = *con_cls;
    if (!rq) return;
    relais_http_upload_free(&rq->raw);
    o311_upload_free(&rq->form);
    free(rq);
    *con_cls = NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: relais-sim-open311 --listen HOST:PORT [--port-file FILE] [--api-key KEY]\n"
               "                          [--jurisdiction ID] [--quiet]\n"
               "  a GeoReport v2 (Open311) server for tests; control API under /_sim/\n"
               "  (stats, requests, config, fail, reset); see connectors/open311/README.md\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        RELAIS_SIMKIT_LONGOPTS,
        { "api-key", required_argument, NULL, 'k' },
        { "jurisdiction", required_argument, NULL, 'j' },
        { NULL, 0, NULL, 0 }
    };
    struct sim sim;
    memset(&sim, 0, sizeof sim);
    sim.kit.name = "sim-open311";
    int opt;
    while ((opt = getopt_long(argc, argv, "l:p:k:j:qh", longopts, NULL)) != -1) {
        if (relais_simkit_option(&sim.kit, opt, optarg)) continue;
        switch (opt) {
        case 'k': sim.api_key = optarg; break;
        case 'j': sim.jurisdiction = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!sim.kit.listen) {
        usage(stderr);
        return 2;
    }
    pthread_mutex_init(&sim.lock, NULL);
    sim.requests = json_object();
    sim.idem = json_object();
    sim.services = default_services();
    sim.next_id = 1000;

    relais_simkit_block_signals(&sim.kit);
    char err[256];
    int port = -1;
    struct MHD_Daemon *d = o311_listen(sim.kit.listen, on_request, &sim, on_completed, 256, &port, err, sizeof err);
    if (!d) {
        relais_simkit_error(&sim.kit, "%s", err);
        return 1;
    }
    if (sim.kit.port_file && o311_write_port_file(sim.kit.port_file, port, err, sizeof err) != 0) {
        relais_simkit_error(&sim.kit, "%s", err);
        MHD_stop_daemon(d);
        return 1;
    }
    relais_logf(RELAIS_LOG_INFO, "sim-open311", "listening on http://127.0.0.1:%d (port %d)", port, port);
    relais_simkit_wait(&sim.kit, -1);
    MHD_stop_daemon(d);
    json_decref(sim.requests);
    json_decref(sim.idem);
    json_decref(sim.services);
    pthread_mutex_destroy(&sim.lock);
    return 0;
}
