/*
 * open311_server.c - role server, mode source: Relais as an Open311
 * GeoReport v2 endpoint (libmicrohttpd).
 *
 *   GET  <prefix>/discovery.{json,xml}
 *   GET  <prefix>/services.{json,xml}            from the mapping's tables
 *   GET  <prefix>/services/<code>.{json,xml}     service definition
 *   POST <prefix>/requests.{json,xml}            a new service request
 *   GET  <prefix>/requests.{json,xml}            with the spec's filters
 *   GET  <prefix>/requests/<id>.{json,xml}       (also /request/<id>, the swagger's path)
 *   GET  <prefix>/tokens/<token>.{json,xml}
 *
 * A POST becomes a record whose id is the SHA-256 of the normalised form
 * (without api_key): a second POST of the same form (a client's retry, a
 * double click) is a DUPLICATE for the hub and gets the same
 * service_request_id, derived from that hash. The record is submitted as
 * fr.relais.grc.request.created.v1 (the instance's mapping makes the
 * canonical data), subject request/o311-<service_request_id>, and answered
 * only once the hub has journaled it (ACCEPTED or DUPLICATE); 503 with an
 * errors body when the hub is unavailable. The request is then kept in the
 * package state ("request/<id>"), where the open311 sink (role server,
 * open311_status.c) updates its status; GET answers come from that state.
 *
 * Threading: MHD_USE_THREAD_PER_CONNECTION, as the webhook source: a POST
 * blocks its own connection thread in relais_submit() and in the state
 * calls. struct o311_server is written on the main thread (new, start, stop,
 * destroy) and only read by connection threads, except the service list
 * (cat, cat_map), swapped under cat_lock when the mappings are reloaded; a
 * request works on its own references to it (jansson's reference counts are
 * atomic; the JSON values are never changed). A struct request belongs to
 * its connection thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <pthread.h>
#include <openssl/crypto.h>
#include "open311_int.h"
#include "instance.h"
#include "mapping.h"
#include "options.h"

#define STATE_PAGE 500

struct o311_server {
    relais_instance   *inst;
    char              *listen;
    char              *port_file;
    char              *prefix;
    char              *base_url;
    char              *jurisdiction;
    char              *contact;
    char              *key_service;
    char             **keys;          /* accepted api_key values */
    size_t             max_body;
    unsigned           max_connections;
    pthread_mutex_t    cat_lock;      /* guards cat and cat_map */
    o311_catalog       cat;           /* the service list of the mapping cat_map */
    const void        *cat_map;
    struct MHD_Daemon *daemon;
    int                port;
};

struct request {
    int          post;
    int          answered;
    o311_upload  up;
};

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

o311_server *o311_server_new(relais_instance *inst, const o311_config *cfg, char *errstr, size_t errlen)
{
    if (!cfg->listen || !*cfg->listen) {
        snprintf(errstr, errlen, "open311: option 'listen' is required for role server, mode source");
        return NULL;
    }
    if (!cfg->api_keys || !*cfg->api_keys) {
        snprintf(errstr, errlen, "open311: option 'api_keys' (the accepted api_key values) is required for role "
                 "server, mode source: GeoReport v2 POST requests carry an api_key");
        return NULL;
    }
    if (cfg->max_body <= 0 || cfg->max_connections <= 0) {
        snprintf(errstr, errlen, "open311: max_body and max_connections must be positive");
        return NULL;
    }
    const char *prefix = cfg->path_prefix ? cfg->path_prefix : "";
    if (*prefix && prefix[0] != '/') {
        snprintf(errstr, errlen, "open311: path_prefix '%s' must start with '/'", prefix);
        return NULL;
    }
    o311_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    s->inst = inst;
    s->port = -1;
    char cerrs[512];
    s->cat_map = __atomic_load_n(&inst->mapping, __ATOMIC_ACQUIRE);
    const char *mpath = s->cat_map ? relais_mapping_path(s->cat_map) : NULL;
    if (!mpath || o311_catalog_load(mpath, &s->cat, cerrs, sizeof cerrs) != 0) {
        snprintf(errstr, errlen, "open311: service list: %s", mpath ? cerrs : "no mapping");
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->cat_lock, NULL);
    s->listen = dup_or_null(cfg->listen);
    s->port_file = dup_or_null(cfg->port_file);
    s->prefix = strdup(prefix);
    while (s->prefix && *s->prefix && s->prefix[strlen(s->prefix) - 1] == '/') s->prefix[strlen(s->prefix) - 1] = '\0';
    s->base_url = dup_or_null(cfg->base_url);
    s->jurisdiction = dup_or_null(cfg->jurisdiction_id);
    s->contact = strdup(cfg->contact ? cfg->contact : "");
    s->key_service = strdup(cfg->key_service ? cfg->key_service : "");
    s->keys = relais_split_list(cfg->api_keys);
    s->max_body = (size_t)cfg->max_body;
    s->max_connections = (unsigned)cfg->max_connections;
    if (!s->listen || !s->prefix || !s->contact || !s->key_service || !s->keys || !s->keys[0]) {
        snprintf(errstr, errlen, s->keys && !s->keys[0] ? "open311: api_keys holds no key" : "out of memory");
        o311_server_destroy(s);
        return NULL;
    }
    return s;
}

/* ---- Helpers ---------------------------------------------------------------- */

static int key_ok(const o311_server *s, const char *given)
{
    if (!given) return 0;
    size_t n = strlen(given);
    int ok = 0;
    for (char **k = s->keys; *k; k++)
        if (strlen(*k) == n && CRYPTO_memcmp(*k, given, n) == 0) ok = 1;
    return ok;
}

/* The service list for one request: new references to the catalogue of the
 * instance's current mapping. A reload of the mappings (POST /reload, SIGHUP)
 * switches the instance's mapping: the list is then read again from its
 * file; when that fails the previous list stays, said in the log. Release
 * with o311_catalog_clear(). */
static void catalog_ref(o311_server *s, o311_catalog *out)
{
    pthread_mutex_lock(&s->cat_lock);
    const void *m = __atomic_load_n(&s->inst->mapping, __ATOMIC_ACQUIRE);
    if (m && m != s->cat_map) {
        o311_catalog fresh;
        char err[512];
        if (o311_catalog_load(relais_mapping_path(m), &fresh, err, sizeof err) == 0) {
            o311_catalog_clear(&s->cat);
            s->cat = fresh;
            relais_instance_log(s->inst, RELAIS_LOG_INFO, "service list reloaded: %zu services",
                                json_array_size(s->cat.services));
        } else {
            relais_instance_log(s->inst, RELAIS_LOG_WARN, "service list not reloaded, the previous one stays: %s", err);
        }
        s->cat_map = m;
    }
    out->services = json_incref(s->cat.services);
    out->definitions = json_incref(s->cat.definitions);
    out->names = json_incref(s->cat.names);
    out->notices = json_incref(s->cat.notices);
    snprintf(out->changeset, sizeof out->changeset, "%s", s->cat.changeset);
    pthread_mutex_unlock(&s->cat_lock);
}

/* 0 when the jurisdiction given (may be NULL) is served. */
static int jurisdiction_ok(const o311_server *s, const char *given)
{
    return !given || !*given || !s->jurisdiction || !strcmp(given, s->jurisdiction) ? 0 : -1;
}

static enum MHD_Result unavailable(struct MHD_Connection *c, o311_format fmt, const char *what)
{
    return o311_reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, fmt, what, 1);
}

static json_t *state_request(const o311_server *s, const char *id, int *err)
{
    char key[256];
    *err = 0;
    if (o311_state_key(key, sizeof key, "request/", id) != 0) return NULL;
    return relais_state_get(s->inst, key, err);
}

/* ---- GET ---------------------------------------------------------------------- */

static enum MHD_Result get_discovery(o311_server *s, const o311_catalog *cat, struct MHD_Connection *c,
                                     o311_format fmt)
{
    char url[512];
    if (s->base_url) snprintf(url, sizeof url, "%s", s->base_url);
    else {
        char host[256] = "127.0.0.1";
        const char *colon = strrchr(s->listen, ':');
        if (colon) snprintf(host, sizeof host, "%.*s", (int)(colon - s->listen), s->listen);
        snprintf(url, sizeof url, "http://%s:%d%s", host, s->port, s->prefix);
    }
    json_t *d = json_pack("{s:s,s:s,s:s,s:[{s:s,s:s,s:s,s:s,s:[s,s]}]}", "changeset", cat->changeset,
                          "contact", s->contact, "key_service", s->key_service, "endpoints",
                          "specification", "http://wiki.open311.org/GeoReport_v2", "url", url,
                          "changeset", cat->changeset, "type", "production", "formats",
                          "text/xml", "application/json");
    enum MHD_Result r = o311_reply(c, MHD_HTTP_OK, fmt, d, "discovery", 0);
    json_decref(d);
    return r;
}

static enum MHD_Result get_request(o311_server *s, struct MHD_Connection *c, o311_format fmt, const char *id)
{
    int err;
    json_t *st = state_request(s, id, &err);
    if (err) return unavailable(c, fmt, "the requests cannot be read right now, retry later");
    if (!st) {
        char msg[300];
        snprintf(msg, sizeof msg, "service_request_id '%.200s' was not found", id);
        return o311_reply_error(c, MHD_HTTP_NOT_FOUND, fmt, msg, 0);
    }
    json_t *arr = json_pack("[o]", o311_public_request(st));
    json_decref(st);
    enum MHD_Result r = o311_reply(c, MHD_HTTP_OK, fmt, arr, "service_requests", 0);
    json_decref(arr);
    return r;
}

static enum MHD_Result get_token(o311_server *s, struct MHD_Connection *c, o311_format fmt, const char *tok)
{
    char id[O311_ID_LEN + 1];
    json_t *st = NULL;
    int err = 0;
    if (o311_id_from_token(tok, id) == 0) st = state_request(s, id, &err);
    if (err) return unavailable(c, fmt, "the requests cannot be read right now, retry later");
    const char *have = json_string_value(json_object_get(st, "token"));
    if (!have || strcmp(have, tok) != 0) {
        json_decref(st);
        char msg[300];
        snprintf(msg, sizeof msg, "token '%.200s' was not found", tok);
        return o311_reply_error(c, MHD_HTTP_NOT_FOUND, fmt, msg, 0);
    }
    json_decref(st);
    json_t *arr = json_pack("[{s:s,s:s}]", "service_request_id", id, "token", tok);
    enum MHD_Result r = o311_reply(c, MHD_HTTP_OK, fmt, arr, "service_requests", 0);
    json_decref(arr);
    return r;
}

static int in_list(const json_t *list, const char *v)
{
    size_t i;
    const json_t *it;
    json_array_foreach(list, i, it)
        if (v && !strcmp(json_string_value(it), v)) return 1;
    return 0;
}

static int by_requested_desc(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int64_t tx = 0, ty = 0;
    o311_parse_datetime(json_string_value(json_object_get(x, "requested_datetime")), &tx);
    o311_parse_datetime(json_string_value(json_object_get(y, "requested_datetime")), &ty);
    if (tx != ty) return tx > ty ? -1 : 1;
    const char *ix = json_string_value(json_object_get(x, "service_request_id"));
    const char *iy = json_string_value(json_object_get(y, "service_request_id"));
    return strcmp(ix ? ix : "", iy ? iy : "");
}

static enum MHD_Result get_requests(o311_server *s, struct MHD_Connection *c, o311_format fmt)
{
    const char *ids_q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "service_request_id");
    json_t *out = json_array();
    if (ids_q) {                                   /* "overrides all other arguments" */
        json_t *ids = o311_split_csv(ids_q, O311_LIST_MAX);
        if (!ids) {
            json_decref(out);
            return o311_reply_error(c, MHD_HTTP_BAD_REQUEST, fmt, "service_request_id: at most 1000 ids, "
                                    "comma-separated", 0);
        }
        size_t i;
        json_t *it;
        json_array_foreach(ids, i, it) {
            int err;
            json_t *st = state_request(s, json_string_value(it), &err);
            if (err) {
                json_decref(ids);
                json_decref(out);
                return unavailable(c, fmt, "the requests cannot be read right now, retry later");
            }
            if (st) json_array_append_new(out, o311_public_request(st));
            json_decref(st);
        }
        json_decref(ids);
        enum MHD_Result r = o311_reply(c, MHD_HTTP_OK, fmt, out, "service_requests", 0);
        json_decref(out);
        return r;
    }
    const char *code_q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "service_code");
    const char *status_q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "status");
    const char *start_q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "start_date");
    const char *end_q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "end_date");
    json_t *codes = code_q ? o311_split_csv(code_q, 100) : NULL;
    json_t *statuses = status_q ? o311_split_csv(status_q, 2) : NULL;
    const char *bad = NULL;
    if (code_q && !codes) bad = "service_code: at most 100 codes, comma-separated";
    if (status_q && !statuses) bad = "status: open, closed or both, comma-separated";
    size_t i;
    json_t *it;
    json_array_foreach(statuses, i, it)
        if (strcmp(json_string_value(it), "open") && strcmp(json_string_value(it), "closed"))
            bad = "status: open, closed or both, comma-separated";
    int64_t start = 0, end = 0, span = (int64_t)O311_LIST_DAYS * 86400;
    if (!bad && start_q && o311_parse_datetime(start_q, &start) != 0)
        bad = "start_date is not a W3C datetime (2026-11-25T10:00:00+01:00)";
    if (!bad && end_q && o311_parse_datetime(end_q, &end) != 0)
        bad = "end_date is not a W3C datetime (2026-11-25T10:00:00+01:00)";
    if (!bad) {
        if (!start_q && !end_q) { end = (int64_t)time(NULL) + 60; start = end - span; }
        else if (!end_q) end = start + span;
        else if (!start_q) start = end - span;
        if (end < start) bad = "end_date is before start_date";
        else if (end - start > span) bad = "start_date and end_date may not span more than 90 days";
    }
    if (bad) {
        json_decref(codes);
        json_decref(statuses);
        json_decref(out);
        return o311_reply_error(c, MHD_HTTP_BAD_REQUEST, fmt, bad, 0);
    }
    char after[256] = "";
    int failed = 0;
    for (;;) {
        json_t *page = relais_state_list(s->inst, "request/", after[0] ? after : NULL, STATE_PAGE);
        if (!page) { failed = 1; break; }
        json_array_foreach(page, i, it) {
            snprintf(after, sizeof after, "%s", json_string_value(json_object_get(it, "key")));
            json_t *st = json_object_get(it, "value");
            int64_t t;
            if (o311_parse_datetime(json_string_value(json_object_get(st, "requested_datetime")), &t) != 0) continue;
            if (t < start || t > end) continue;
            const char *status = json_string_value(json_object_get(st, "status"));
            const char *pub_status = status && !strcmp(status, "closed") ? "closed" : "open";
            if (statuses && !in_list(statuses, pub_status)) continue;
            if (codes && !in_list(codes, json_string_value(json_object_get(st, "service_code")))) continue;
            json_array_append_new(out, o311_public_request(st));
        }
        size_t n = json_array_size(page);
        json_decref(page);
        if (n < STATE_PAGE) break;
    }
    json_decref(codes);
    json_decref(statuses);
    if (failed) {
        json_decref(out);
        return unavailable(c, fmt, "the requests cannot be read right now, retry later");
    }
    size_t n = json_array_size(out);
    json_t **v = calloc(n ? n : 1, sizeof *v);
    json_t *sorted = json_array();
    if (!v || !sorted) {
        free(v);
        json_decref(sorted);
        json_decref(out);
        return MHD_NO;
    }
    for (i = 0; i < n; i++) v[i] = json_array_get(out, i);
    qsort(v, n, sizeof *v, by_requested_desc);
    for (i = 0; i < n && i < O311_LIST_MAX; i++) json_array_append(sorted, v[i]);
    free(v);
    json_decref(out);
    enum MHD_Result r = o311_reply(c, MHD_HTTP_OK, fmt, sorted, "service_requests", 0);
    json_decref(sorted);
    return r;
}

/* ---- POST requests ---------------------------------------------------------- */

/* The request as the server keeps it (package state "request/<id>"). Only
 * what GET answers and what the sink needs: no personal data (names, email,
 * phone stay in the journaled event). */
static json_t *stored_request(const o311_catalog *cat, const json_t *rec, const char *id, const char *token,
                              const char *hash, const char *subject, const char *event_id, const char *now)
{
    const char *code = json_string_value(json_object_get(rec, "service_code"));
    json_t *notice = json_object_get(cat->notices, code);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:n,s:s,s:O,s:n,s:O,s:s,s:s,s:n}",
                          "service_request_id", id, "token", token, "record_id", hash, "subject", subject,
                          "event_id", event_id ? event_id : "", "status", "open", "status_notes",
                          "service_code", code, "service_name", json_object_get(cat->names, code),
                          "agency_responsible", "service_notice", notice ? notice : json_null(),
                          "requested_datetime", now, "updated_datetime", now, "expected_datetime");
    static const char *const copy[][2] = { { "description", "description" }, { "address_string", "address" },
                                           { "address_id", "address_id" }, { "lat", "lat" }, { "long", "long" },
                                           { "media_url", "media_url" }, { "attribute", "attributes" },
                                           { "jurisdiction_id", "jurisdiction_id" } };
    for (size_t i = 0; o && i < sizeof copy / sizeof copy[0]; i++) {
        json_t *v = json_object_get(rec, copy[i][0]);
        if (!v) continue;
        if (!strcmp(copy[i][0], "lat") || !strcmp(copy[i][0], "long"))
            json_object_set_new(o, copy[i][1], json_real(strtod(json_string_value(v), NULL)));
        else
            json_object_set(o, copy[i][1], v);
    }
    return o;
}

/* Keep the request in the state once the hub has it. 0 ok; HTTP status
 * otherwise (503 state unavailable, 500 a different request has that id). */
static unsigned keep_request(o311_server *s, json_t *fresh, const char *id, const char *hash)
{
    int err;
    char key[256];
    if (o311_state_key(key, sizeof key, "request/", id) != 0) return MHD_HTTP_INTERNAL_SERVER_ERROR;
    json_t *have = relais_state_get(s->inst, key, &err);
    if (err) return MHD_HTTP_SERVICE_UNAVAILABLE;
    json_t *put = NULL;
    if (!have) {
        put = json_incref(fresh);
    } else {
        const char *hh = json_string_value(json_object_get(have, "record_id"));
        if (hh && strcmp(hh, hash) != 0) {
            relais_instance_log(s->inst, RELAIS_LOG_ERROR, "service_request_id %s: two different requests "
                                "share it (hash collision); the second is not kept", id);
            json_decref(have);
            return MHD_HTTP_INTERNAL_SERVER_ERROR;
        }
        if (!hh) {
            /* the sink stored it first from the event: keep its status fields */
            put = json_deep_copy(fresh);
            static const char *const status_fields[] = { "status", "status_notes", "updated_datetime",
                                                         "expected_datetime", "agency_responsible", NULL };
            for (size_t i = 0; put && status_fields[i]; i++) {
                json_t *v = json_object_get(have, status_fields[i]);
                if (v) json_object_set(put, status_fields[i], v);
            }
        }
    }
    json_decref(have);
    if (!put) return 0;               /* already kept by the first POST */
    int rc = relais_state_put(s->inst, key, put);
    json_decref(put);
    if (rc != 0) return MHD_HTTP_SERVICE_UNAVAILABLE;
    if (relais_xref_put(s->inst, json_string_value(json_object_get(fresh, "subject")), id) != 0)
        relais_instance_log(s->inst, RELAIS_LOG_WARN, "service_request_id %s: cross-reference not recorded", id);
    return 0;
}

static enum MHD_Result post_request(o311_server *s, const o311_catalog *cat, struct MHD_Connection *c,
                                    o311_format fmt, struct request *rq)
{
    unsigned st;
    const char *problem = o311_upload_problem(&rq->up, &st);
    if (problem) return o311_reply_error(c, st, fmt, problem, 0);
    json_t *rec = json_object();
    const char *api_key = NULL;
    char err[256];
    for (size_t i = 0; i < rq->up.n; i++) {
        const o311_field *f = &rq->up.f[i];
        if (!strcmp(f->key, "api_key")) {
            api_key = f->val ? f->val : "";
            continue;
        }
        if (o311_form_add(rec, f->key, f->val, f->len, err, sizeof err) != 0) {
            json_decref(rec);
            return o311_reply_error(c, MHD_HTTP_BAD_REQUEST, fmt, err, 0);
        }
    }
    if (!key_ok(s, api_key)) {
        json_decref(rec);
        relais_instance_log(s->inst, RELAIS_LOG_WARN, "403: POST requests with %s api_key",
                            api_key ? "an invalid" : "no");
        return o311_reply_error(c, MHD_HTTP_FORBIDDEN, fmt,
                                "Invalid api_key received -- can't proceed with create_request.", 0);
    }
    if (jurisdiction_ok(s, json_string_value(json_object_get(rec, "jurisdiction_id"))) != 0) {
        json_decref(rec);
        return o311_reply_error(c, MHD_HTTP_NOT_FOUND, fmt, "jurisdiction_id provided was not found", 0);
    }
    if (o311_request_check(cat, rec, err, sizeof err) != 0) {
        json_decref(rec);
        return o311_reply_error(c, MHD_HTTP_BAD_REQUEST, fmt, err, 0);
    }
    if (!relais_accepting(s->inst)) {
        json_decref(rec);
        return unavailable(c, fmt, "the service is not accepting requests right now, retry later");
    }
    char hash[65], id[O311_ID_LEN + 1], token[O311_TOKEN_LEN + 1], subject[64], now[40];
    if (o311_record_hash(rec, hash) != 0) {
        json_decref(rec);
        return MHD_NO;
    }
    o311_id_from_hash(hash, id);
    o311_token_from_hash(hash, token);
    snprintf(subject, sizeof subject, "request/o311-%s", id);
    o311_format_datetime(time(NULL), now, sizeof now);
    json_object_set_new(rec, "requested_datetime", json_string(now));
    json_object_set_new(rec, "service_request_id", json_string(id));

    relais_record r = { .record_id = hash, .type = "fr.relais.grc.request.created.v1", .subject = subject,
                        .data = rec };
    relais_submit_result res;
    memset(&res, 0, sizeof res);
    int rc = relais_submit(s->inst, &r, 1, &res);
    if (rc != 0 || res.status == RELAIS_SUBMIT_UNAVAILABLE) {
        json_decref(rec);
        relais_instance_log(s->inst, RELAIS_LOG_WARN, "503: hub unavailable for service request %s", id);
        return unavailable(c, fmt, "the service is not accepting requests right now, retry later");
    }
    if (res.status == RELAIS_SUBMIT_REJECTED) {
        json_decref(rec);
        char msg[400];
        snprintf(msg, sizeof msg, "the request was refused: %s", res.reason);
        return o311_reply_error(c, MHD_HTTP_BAD_REQUEST, fmt, msg, 0);
    }
    json_t *fresh = stored_request(cat, rec, id, token, hash, subject, res.event_id, now);
    unsigned kept = fresh ? keep_request(s, fresh, id, hash) : MHD_HTTP_INTERNAL_SERVER_ERROR;
    json_t *notice = json_incref(json_object_get(fresh, "service_notice"));
    json_decref(fresh);
    json_decref(rec);
    if (kept) {
        json_decref(notice);
        if (kept == MHD_HTTP_SERVICE_UNAVAILABLE)
            return unavailable(c, fmt, "the request could not be stored right now, retry later");
        return o311_reply_error(c, kept, fmt, "the request could not be stored", 0);
    }
    relais_instance_log(s->inst, RELAIS_LOG_INFO, "service request %s %s (event %s)", id,
                        res.status == RELAIS_SUBMIT_DUPLICATE ? "posted again: duplicate" : "created", res.event_id);
    json_t *ans = json_pack("[{s:s,s:s,s:o,s:n}]", "service_request_id", id, "token", token, "service_notice",
                            notice ? notice : json_null(), "account_id");
    enum MHD_Result ret = o311_reply(c, MHD_HTTP_OK, fmt, ans, "service_requests", 0);
    json_decref(ans);
    return ret;
}

/* ---- Routing ------------------------------------------------------------------ */

static enum MHD_Result route(o311_server *s, struct MHD_Connection *c, const char *url, const char *method,
                             struct request *rq)
{
    char path[512];
    o311_format fmt;
    int sp = o311_split_url(url, s->prefix, path, sizeof path, &fmt);
    if (sp == 1) return o311_reply_error(c, MHD_HTTP_NOT_FOUND, O311_JSON, "not found", 0);
    if (sp == 2) return o311_reply_error(c, MHD_HTTP_NOT_FOUND, O311_JSON,
                                         "not found: GeoReport v2 URLs end in .json or .xml", 0);
    int get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
    int is_requests = !strcmp(path, "/requests");
    if (!get && !(rq->post && is_requests))
        return o311_reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, fmt,
                                is_requests ? "method not allowed: GET or POST" : "method not allowed: GET", 0);
    if (!rq->post && jurisdiction_ok(s, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "jurisdiction_id")) != 0)
        return o311_reply_error(c, MHD_HTTP_NOT_FOUND, fmt, "jurisdiction_id provided was not found", 0);
    const char *svc = o311_path_arg(path, "/services"), *tok = o311_path_arg(path, "/tokens");
    const char *req = o311_path_arg(path, "/requests");
    if (!req) req = o311_path_arg(path, "/request");
    o311_catalog cat;
    enum MHD_Result ret = MHD_YES;
    int done = 1;
    catalog_ref(s, &cat);
    if (!strcmp(path, "/discovery")) {
        ret = get_discovery(s, &cat, c, fmt);
    } else if (!strcmp(path, "/services")) {
        ret = o311_reply(c, MHD_HTTP_OK, fmt, cat.services, "services", 0);
    } else if (svc) {
        json_t *def = json_object_get(cat.definitions, svc);
        char msg[300];
        snprintf(msg, sizeof msg, "service_code '%.200s' was not found", svc);
        ret = def ? o311_reply(c, MHD_HTTP_OK, fmt, def, "service_definition", 0)
                  : o311_reply_error(c, MHD_HTTP_NOT_FOUND, fmt, msg, 0);
    } else if (is_requests && rq->post) {
        ret = post_request(s, &cat, c, fmt, rq);
    } else {
        done = 0;
    }
    o311_catalog_clear(&cat);
    if (done) return ret;
    if (is_requests) return get_requests(s, c, fmt);
    if (req) return get_request(s, c, fmt, req);
    if (tok) return get_token(s, c, fmt, tok);
    return o311_reply_error(c, MHD_HTTP_NOT_FOUND, fmt, "not found", 0);
}

/* ---- MHD callbacks (connection threads) -------------------------------------- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    o311_server *s = cls;
    struct request *rq = *con_cls;
    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        *con_cls = rq;
        rq->post = !strcmp(method, MHD_HTTP_METHOD_POST);
        if (rq->post) {
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (cl && strtoull(cl, NULL, 10) > s->max_body) {
                rq->answered = 1;
                return o311_reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, O311_JSON, "the body is too large", 0);
            }
            o311_upload_begin(&rq->up, c, s->max_body);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!rq->answered && rq->post) o311_upload_feed(&rq->up, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rq->answered) return MHD_YES;
    rq->answered = 1;
    if (rq->post) o311_upload_finish(&rq->up);
    return route(s, c, url, method, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct request *rq = *con_cls;
    if (!rq) return;
    o311_upload_free(&rq->up);
    free(rq);
    *con_cls = NULL;
}

/* ---- Lifecycle (main thread) -------------------------------------------------- */

int o311_server_start(o311_server *s, char *errstr, size_t errlen)
{
    if (s->daemon) return 0;
    char err[256];
    s->daemon = o311_listen(s->listen, on_request, s, on_completed, s->max_connections, &s->port, err, sizeof err);
    if (!s->daemon) {
        snprintf(errstr, errlen, "open311: %s", err);
        return -1;
    }
    if (s->port_file && o311_write_port_file(s->port_file, s->port, err, sizeof err) != 0) {
        snprintf(errstr, errlen, "open311: %s", err);
        MHD_stop_daemon(s->daemon);
        s->daemon = NULL;
        return -1;
    }
    relais_instance_log(s->inst, RELAIS_LOG_INFO, "GeoReport v2 endpoint on %s%s (port %d), %zu services",
                        s->listen, s->prefix, s->port, json_array_size(s->cat.services));
    return 0;
}

int o311_server_port(const o311_server *s)
{
    return s ? s->port : -1;
}

void o311_server_stop(o311_server *s)
{
    if (!s || !s->daemon) return;
    MHD_stop_daemon(s->daemon);     /* joins the connection threads */
    s->daemon = NULL;
}

void o311_server_destroy(o311_server *s)
{
    if (!s) return;
    o311_server_stop(s);
    free(s->listen);
    free(s->port_file);
    free(s->prefix);
    free(s->base_url);
    free(s->jurisdiction);
    free(s->contact);
    free(s->key_service);
    for (char **k = s->keys; k && *k; k++) {
        OPENSSL_cleanse(*k, strlen(*k));
        free(*k);
    }
    free(s->keys);
    o311_catalog_clear(&s->cat);
    pthread_mutex_destroy(&s->cat_lock);
    free(s);
}
