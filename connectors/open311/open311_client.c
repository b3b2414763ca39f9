/*
 * open311_client.c - role client: Relais talks to any GeoReport v2 endpoint
 * (a technical services' tool, another town's server) with libcurl.
 *
 * Sink (mode sink): fr.relais.grc.request.created.v1 -> POST
 * <endpoint>/requests.json, form-urlencoded as the spec says: the fields are
 * the instance's outbound mapping output (a JSON object: service_code,
 * description, lat, long, address_string, email, first_name, last_name,
 * media_url, attribute {CODE: value}), plus api_key and jurisdiction_id from
 * the options. Idempotency-Key: the event id (our simulators honour it).
 * The answer's service_request_id becomes ans->local_id (the hub records the
 * cross-reference) and is kept in the package state ("req/<id>") for the
 * source to poll; an answer with only a token is kept as "token/<token>" and
 * resolved by the source (GET tokens/<token>.json), which then records the
 * cross-reference itself. 2xx OK; 408, 425, 429, 5xx and transport errors
 * RETRY; other 4xx REJECT with the server's error description. An event the
 * hub already has a cross-reference for is not posted again.
 * GeoReport v2 has no call to change a request: updated and closed events
 * are refused (REJECT, saying so) so that a route sending them is noticed.
 *
 * Source (mode source): a poller thread, every poll_interval, GETs
 * <endpoint>/requests.json?service_request_id=a,b,... for the requests the
 * sink created that are not closed, compares status, status_notes and
 * updated_datetime with what it saw last, and submits a change as a record
 * of the vendor request (the instance's inbound mapping makes it
 * fr.relais.grc.request.updated.v1 or closed.v1) with subject the canonical
 * request and record id "<service_request_id>@<updated_datetime>": a poll
 * that sees the same change again is a duplicate. The first sight of a
 * request that is open without notes is only remembered. A change the hub
 * cannot take (unavailable) is not remembered: the next poll tries again.
 *
 * Every exchange is relais_http_perform (hub/httputil.h) under the
 * instance's outgoing policy (http and https only, no redirects, TLS
 * verified with tls_ca_file / tls_verify, TLS 1.2 minimum and ANSSI's
 * suites, timeouts, the hub's outgoing.allow checked on the address
 * connected to).
 *
 * Threads: deliver() runs on the hub's delivery workers and the poller
 * thread polls; each exchange borrows a handle from the client's
 * relais_http_pool (thread-safe). Both only read the configuration written
 * by new/start/stop on the main thread. `lock` and `cond` guard `stopping`.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include "open311_int.h"
#include "event_int.h"
#include "httputil.h"

#define BODY_CAP (4 * 1024 * 1024)
#define STATE_PAGE 500

struct o311_client {
    relais_instance *inst;
    unsigned         mode;
    char            *endpoint;        /* without a trailing '/' */
    char            *api_key;
    char            *jurisdiction;
    long             timeout_ms;
    long             connect_timeout_ms;
    long             poll_interval_ms;
    long             poll_batch;
    char            *tls_ca_file;
    relais_http_policy policy;        /* points at tls_ca_file */
    relais_http_pool *pool;
    int              curl_inited;
    pthread_mutex_t  lock;
    pthread_cond_t   cond;
    int              stopping;
    int              running;
    pthread_t        thread;
};

o311_client *o311_client_new(relais_instance *inst, const o311_config *cfg, unsigned mode,
                             char *errstr, size_t errlen)
{
    if (!cfg->endpoint || !*cfg->endpoint) {
        snprintf(errstr, errlen, "open311: option 'endpoint' (the GeoReport v2 base URL) is required for role client");
        return NULL;
    }
    if (cfg->timeout <= 0 || cfg->connect_timeout <= 0 || (mode == RELAIS_MODE_SOURCE
        && (cfg->poll_interval <= 0 || cfg->poll_batch <= 0 || cfg->poll_batch > 1000))) {
        snprintf(errstr, errlen, "open311: timeout, connect_timeout and poll_interval must be positive, "
                 "poll_batch 1 to 1000");
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(errstr, errlen, "open311: curl_global_init failed");
        return NULL;
    }
    CURLU *u = curl_url();
    char *scheme = NULL;
    CURLUcode uc = u ? curl_url_set(u, CURLUPART_URL, cfg->endpoint, 0) : CURLUE_OUT_OF_MEMORY;
    if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    int ok = uc == CURLUE_OK && scheme && (!strcasecmp(scheme, "http") || !strcasecmp(scheme, "https"))
             && !strchr(cfg->endpoint, '?') && !strchr(cfg->endpoint, '#');
    curl_free(scheme);
    curl_url_cleanup(u);
    if (!ok) {
        snprintf(errstr, errlen, "open311: endpoint '%.200s' is not an http:// or https:// base URL "
                 "(without query)", cfg->endpoint);
        curl_global_cleanup();
        return NULL;
    }
    o311_client *c = calloc(1, sizeof *c);
    if (!c) {
        curl_global_cleanup();
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    c->curl_inited = 1;
    c->inst = inst;
    c->mode = mode;
    c->endpoint = strdup(cfg->endpoint);
    while (c->endpoint && *c->endpoint && c->endpoint[strlen(c->endpoint) - 1] == '/')
        c->endpoint[strlen(c->endpoint) - 1] = '\0';
    c->api_key = cfg->api_key ? strdup(cfg->api_key) : NULL;
    c->jurisdiction = cfg->jurisdiction_id ? strdup(cfg->jurisdiction_id) : NULL;
    c->timeout_ms = cfg->timeout;
    c->connect_timeout_ms = cfg->connect_timeout;
    c->poll_interval_ms = cfg->poll_interval;
    c->poll_batch = cfg->poll_batch;
    c->tls_ca_file = cfg->tls_ca_file ? strdup(cfg->tls_ca_file) : NULL;
    c->pool = relais_http_pool_new();
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    if (!c->endpoint || (cfg->api_key && !c->api_key) || (cfg->jurisdiction_id && !c->jurisdiction)
        || (cfg->tls_ca_file && !c->tls_ca_file) || !c->pool) {
        o311_client_destroy(c);
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    char perr[300];
    if (relais_http_policy_init(&c->policy, inst, NULL, c->tls_ca_file, cfg->tls_verify, perr, sizeof perr) != 0) {
        o311_client_destroy(c);
        snprintf(errstr, errlen, "open311: %s", perr);
        return NULL;
    }
    return c;
}

/* ---- HTTP ------------------------------------------------------------------- */

/* One exchange: GET url, or POST form when given, under the instance's
 * policy. 0 when an HTTP answer came (a->status), -1 otherwise (a->failure,
 * a->detail). Free a->body. */
static int exchange(o311_client *c, const char *url, const char *form, const char *idem_key,
                    relais_http_answer *a)
{
    char line[300];
    const char *hdrs[5] = { "Accept: application/json", NULL, NULL, NULL, NULL };
    size_t nh = 1;
    if (form) {
        hdrs[nh++] = "Content-Type: application/x-www-form-urlencoded; charset=utf-8";
        hdrs[nh++] = "Expect:";
    }
    if (idem_key) {
        snprintf(line, sizeof line, "Idempotency-Key: %s", idem_key);
        hdrs[nh++] = line;
    }
    relais_http_request rq = {
        .method = form ? "POST" : "GET", .url = url, .headers = hdrs, .body = form,
        .len = form ? strlen(form) : 0, .timeout_ms = c->timeout_ms,
        .connect_timeout_ms = c->connect_timeout_ms,
        .user_agent = "relais/" RELAIS_VERSION_STRING " (open311)", .max_answer = BODY_CAP,
        .policy = &c->policy,
    };
    return relais_http_perform(c->pool, &rq, a);
}

/* "<endpoint><path>.json?jurisdiction_id=..&<name>=<value>" (value escaped). */
static char *url_for(const o311_client *c, const char *path, const char *name, const char *value)
{
    char *jv = c->jurisdiction ? curl_easy_escape(NULL, c->jurisdiction, 0) : NULL;
    char *vv = value ? curl_easy_escape(NULL, value, 0) : NULL;
    size_t need = strlen(c->endpoint) + strlen(path) + (jv ? strlen(jv) : 0) + (vv ? strlen(vv) : 0)
                  + (name ? strlen(name) : 0) + 64;
    char *url = malloc(need);
    if (url && (!value || vv) && (!c->jurisdiction || jv)) {
        int w = snprintf(url, need, "%s%s.json", c->endpoint, path);
        char sep = '?';
        if (jv) { w += snprintf(url + w, need - (size_t)w, "%cjurisdiction_id=%s", sep, jv); sep = '&'; }
        if (vv) snprintf(url + w, need - (size_t)w, "%c%s=%s", sep, name, vv);
    } else {
        free(url);
        url = NULL;
    }
    curl_free(jv);
    curl_free(vv);
    return url;
}

static relais_verdict verdict_for(long code)
{
    if (code >= 200 && code < 300) return RELAIS_DELIVER_OK;
    if (code == 408 || code == 425 || code == 429 || code >= 500) return RELAIS_DELIVER_RETRY;
    if (code >= 300 && code < 500) return RELAIS_DELIVER_REJECT;
    return RELAIS_DELIVER_RETRY;
}

/* ans->detail for a non-2xx answer: the spec's errors body when there is one. */
static void error_detail(const relais_http_answer *b, long code, relais_verdict v, relais_answer *ans)
{
    char desc[400];
    if (b->body && o311_parse_errors(b->body, b->len, desc, sizeof desc) == 0) {
        snprintf(ans->detail, sizeof ans->detail, "HTTP %ld %s: %s", code,
                 v == RELAIS_DELIVER_RETRY ? "transient, will retry" : "refused", desc);
        return;
    }
    snprintf(ans->detail, sizeof ans->detail, "HTTP %ld %s%s", code,
             v == RELAIS_DELIVER_RETRY ? "transient, will retry" : "refused", b->len ? ": " : "");
    size_t used = strlen(ans->detail);
    relais_http_excerpt(ans->detail + used, sizeof ans->detail - used, b->body ? b->body : "", b->len, 200, 1);
}

/* ---- Sink ------------------------------------------------------------------------ */

static relais_verdict say(relais_answer *ans, relais_verdict v, const char *detail)
{
    snprintf(ans->detail, sizeof ans->detail, "%s", detail);
    return v;
}

relais_verdict o311_client_deliver(o311_client *c, const relais_event *ev, const char *local_id,
                                   relais_answer *ans)
{
    ans->status = 0;
    ans->detail[0] = '\0';
    ans->local_id[0] = '\0';
    const char *type = relais_event_type(ev);
    const char *subject = relais_event_subject(ev);
    if (strncmp(type, "fr.relais.grc.request.created.", 30) != 0)
        return say(ans, RELAIS_DELIVER_REJECT, "open311: GeoReport v2 has no call to change a request: route only "
                   "fr.relais.grc.request.created.v1 to an open311 client sink");
    if (!subject || !*subject) return say(ans, RELAIS_DELIVER_REJECT, "open311: the event has no subject");
    if (local_id && *local_id) {
        snprintf(ans->local_id, sizeof ans->local_id, "%s", local_id);
        snprintf(ans->detail, sizeof ans->detail, "already created as service request %.200s", local_id);
        return RELAIS_DELIVER_OK;
    }
    relais_payload pl;
    memset(&pl, 0, sizeof pl);
    if (relais_render(c->inst, ev, local_id, &pl, ans) != 0) return RELAIS_DELIVER_REJECT;
    json_t *fields = pl.body ? json_loadb(pl.body, pl.len, 0, NULL) : NULL;
    relais_payload_release(&pl);
    if (!json_is_object(fields)) {
        json_decref(fields);
        return say(ans, RELAIS_DELIVER_REJECT, "open311: the mapping's output is not a JSON object of "
                   "GeoReport fields (format: json)");
    }
    char *form = o311_form_encode(fields, c->api_key, c->jurisdiction);
    json_decref(fields);
    if (!form) return say(ans, RELAIS_DELIVER_REJECT, "open311: a field of the mapping's output is not a text, "
                          "a number or a list of them");
    char *url = url_for(c, "/requests", NULL, NULL);
    relais_http_answer b;
    memset(&b, 0, sizeof b);
    int rc = url ? exchange(c, url, form, relais_event_id(ev), &b) : -1;
    OPENSSL_cleanse(form, strlen(form));          /* it holds the api_key */
    free(form);
    free(url);
    if (rc != 0) {
        if (b.refused)   /* "refused by outgoing.allow: ..." */
            snprintf(ans->detail, sizeof ans->detail, "%s", b.detail);
        else
            snprintf(ans->detail, sizeof ans->detail, "%s: %s", url ? b.failure : "out of memory",
                     b.detail[0] ? b.detail : "no detail");
        free(b.body);
        /* nothing was sent to a destination the allow-list refuses */
        return b.refused ? RELAIS_DELIVER_REJECT : RELAIS_DELIVER_RETRY;
    }
    long code = b.status;
    ans->status = (int)code;
    relais_verdict v = verdict_for(code);
    if (v != RELAIS_DELIVER_OK) {
        error_detail(&b, code, v, ans);
        free(b.body);
        return v;
    }
    char id[128], token[128], err[256];
    if (b.truncated || o311_parse_post_answer(b.body, b.len, id, sizeof id, token, sizeof token, err, sizeof err) != 0) {
        snprintf(ans->detail, sizeof ans->detail, "HTTP %ld but the answer is not a GeoReport POST answer: %s "
                 "(the request may exist at the endpoint; check it before replaying)", code,
                 b.truncated ? "too large" : err);
        free(b.body);
        return RELAIS_DELIVER_REJECT;
    }
    free(b.body);
    char key[256];
    json_t *st;
    int prc = -1;
    if (id[0]) {
        st = json_pack("{s:s,s:s,s:s,s:n,s:n,s:n,s:b}", "subject", subject, "service_request_id", id,
                       "event_id", relais_event_id(ev), "status", "updated_datetime", "status_notes", "closed", 0);
        if (o311_state_key(key, sizeof key, "req/", id) == 0) prc = relais_state_put(c->inst, key, st);
        snprintf(ans->local_id, sizeof ans->local_id, "%s", id);
        snprintf(ans->detail, sizeof ans->detail, "HTTP %ld: service request %s", code, id);
    } else {
        st = json_pack("{s:s,s:s,s:s}", "subject", subject, "token", token, "event_id", relais_event_id(ev));
        if (o311_state_key(key, sizeof key, "token/", token) == 0) prc = relais_state_put(c->inst, key, st);
        snprintf(ans->detail, sizeof ans->detail, "HTTP %ld: token %s (the service_request_id is read later)",
                 code, token);
    }
    json_decref(st);
    if (prc != 0)
        relais_instance_log(c->inst, RELAIS_LOG_WARN, "event %s: service request %s created but not kept for "
                            "polling (package state unavailable)", relais_event_id(ev), id[0] ? id : token);
    return RELAIS_DELIVER_OK;
}

/* ---- Source: polling ---------------------------------------------------------- */

/* GET url -> the parsed array of requests, or NULL (logged). */
static json_t *get_requests(o311_client *c, const char *url)
{
    relais_http_answer b;
    char err[256];
    int rc = exchange(c, url, NULL, NULL, &b);
    json_t *arr = NULL;
    if (rc != 0)
        relais_instance_log(c->inst, RELAIS_LOG_WARN, "poll: %s: %s", b.failure, b.detail);
    else if (b.status != 200)
        relais_instance_log(c->inst, RELAIS_LOG_WARN, "poll: HTTP %ld from the endpoint", b.status);
    else {
        arr = b.truncated ? NULL : o311_parse_requests(b.body, b.len, err, sizeof err);
        if (!arr)
            relais_instance_log(c->inst, RELAIS_LOG_WARN, "poll: unreadable answer: %s", b.truncated ? "too large" : err);
    }
    free(b.body);
    return arr;
}

static int text_eq(const json_t *a, const json_t *b)
{
    const char *x = json_string_value(a), *y = json_string_value(b);
    if (x && !*x) x = NULL;
    if (y && !*y) y = NULL;
    return (!x && !y) || (x && y && !strcmp(x, y));
}

/* One request as the endpoint answered it, against what was seen last (v,
 * the state entry at key). 1 submitted, 0 nothing to submit, -1 hub
 * unavailable. */
static int one_change(o311_client *c, const char *key, json_t *v, const json_t *req)
{
    const char *status = json_string_value(json_object_get(req, "status"));
    int closed = status && !strcmp(status, "closed");
    json_t *upd = json_object_get(req, "updated_datetime");
    json_t *notes = json_object_get(req, "status_notes");
    json_t *seen_status = json_object_get(v, "status");
    if (json_is_string(seen_status) && !strcmp(json_string_value(seen_status), closed ? "closed" : "open")
        && text_eq(json_object_get(v, "updated_datetime"), upd) && text_eq(json_object_get(v, "status_notes"), notes))
        return 0;
    int submitted = 0;
    const char *notes_s = json_string_value(notes);
    int first = !json_is_string(seen_status);
    if (!(first && !closed && (!notes_s || !*notes_s))) {
        const char *id = json_string_value(json_object_get(v, "service_request_id"));
        json_t *data = json_deep_copy(req);
        char rid[300], when[40];
        if (json_string_value(upd) && *json_string_value(upd)) {
            snprintf(rid, sizeof rid, "%s@%s", id, json_string_value(upd));
        } else {
            /* no updated_datetime: the change is named by its content, dated when seen */
            json_t *what = json_pack("[s,O]", closed ? "closed" : "open", notes ? notes : json_null());
            char *t = what ? json_dumps(what, JSON_COMPACT) : NULL;
            json_decref(what);
            char hex[65];
            relais_sha256_hex(t ? t : "", t ? strlen(t) : 0, hex);
            free(t);
            snprintf(rid, sizeof rid, "%s@%.16s", id, hex);
            o311_format_datetime(time(NULL), when, sizeof when);
            json_object_set_new(data, "updated_datetime", json_string(when));
        }
        relais_record r = { .record_id = rid,
                            .type = closed ? "fr.relais.grc.request.closed.v1" : "fr.relais.grc.request.updated.v1",
                            .subject = json_string_value(json_object_get(v, "subject")), .data = data };
        relais_submit_result res;
        memset(&res, 0, sizeof res);
        int rc = relais_submit(c->inst, &r, 1, &res);
        json_decref(data);
        if (rc != 0 || res.status == RELAIS_SUBMIT_UNAVAILABLE) return -1;
        if (res.status == RELAIS_SUBMIT_REJECTED)
            relais_instance_log(c->inst, RELAIS_LOG_WARN, "poll: change %s of request %s refused: %s", rid,
                                json_string_value(json_object_get(v, "subject")), res.reason);
        else
            submitted = 1;
    }
    json_object_set_new(v, "status", json_string(closed ? "closed" : "open"));
    json_object_set(v, "updated_datetime", upd ? upd : json_null());
    json_object_set(v, "status_notes", notes ? notes : json_null());
    json_object_set_new(v, "closed", json_boolean(closed));
    if (relais_state_put(c->inst, key, v) != 0) return -1;
    return submitted;
}

/* Tokens from POST answers: ask for their service_request_id. */
static int resolve_tokens(o311_client *c)
{
    char after[256] = "";
    for (;;) {
        json_t *page = relais_state_list(c->inst, "token/", after[0] ? after : NULL, STATE_PAGE);
        if (!page) return -1;
        size_t i, n = json_array_size(page);
        json_t *it;
        json_array_foreach(page, i, it) {
            const char *key = json_string_value(json_object_get(it, "key"));
            snprintf(after, sizeof after, "%s", key);
            json_t *v = json_object_get(it, "value");
            const char *tok = json_string_value(json_object_get(v, "token"));
            if (!tok || json_object_get(v, "resolved")) continue;
            char path[300];
            char *esc = curl_easy_escape(NULL, tok, 0);
            char *url = NULL;
            if (esc) {
                snprintf(path, sizeof path, "/tokens/%s", esc);
                url = url_for(c, path, NULL, NULL);
            }
            curl_free(esc);
            json_t *arr = url ? get_requests(c, url) : NULL;
            free(url);
            const char *id = json_string_value(json_object_get(json_array_get(arr, 0), "service_request_id"));
            const char *subject = json_string_value(json_object_get(v, "subject"));
            char rkey[256];
            if (id && *id && subject && o311_state_key(rkey, sizeof rkey, "req/", id) == 0) {
                json_t *st = json_pack("{s:s,s:s,s:O,s:n,s:n,s:n,s:b}", "subject", subject, "service_request_id", id,
                                       "event_id", json_object_get(v, "event_id") ? json_object_get(v, "event_id") : json_null(),
                                       "status", "updated_datetime", "status_notes", "closed", 0);
                int ok = relais_xref_put(c->inst, subject, id) == 0 && relais_state_put(c->inst, rkey, st) == 0;
                json_decref(st);
                if (ok) {
                    json_object_set_new(v, "resolved", json_string(id));
                    ok = relais_state_put(c->inst, key, v) == 0;
                }
                if (!ok) {
                    json_decref(arr);
                    json_decref(page);
                    return -1;
                }
                relais_instance_log(c->inst, RELAIS_LOG_INFO, "token %s is service request %s (%s)", tok, id, subject);
            }
            json_decref(arr);
        }
        json_decref(page);
        if (n < STATE_PAGE) return 0;
    }
}

int o311_client_poll_once(o311_client *c)
{
    if (!relais_accepting(c->inst)) return -1;
    if (resolve_tokens(c) != 0) return -1;
    /* the open requests, by id */
    json_t *open = json_object();
    char after[256] = "";
    for (;;) {
        json_t *page = relais_state_list(c->inst, "req/", after[0] ? after : NULL, STATE_PAGE);
        if (!page) {
            json_decref(open);
            return -1;
        }
        size_t i, n = json_array_size(page);
        json_t *it;
        json_array_foreach(page, i, it) {
            snprintf(after, sizeof after, "%s", json_string_value(json_object_get(it, "key")));
            json_t *v = json_object_get(it, "value");
            const char *id = json_string_value(json_object_get(v, "service_request_id"));
            if (id && !json_is_true(json_object_get(v, "closed")))
                json_object_set_new(open, id, json_pack("{s:O,s:O}", "key", json_object_get(it, "key"), "value", v));
        }
        json_decref(page);
        if (n < STATE_PAGE) break;
    }
    int submitted = 0, failed = 0;
    const char *id;
    json_t *ent;
    char *list = NULL;
    size_t len = 0, k = 0, total = json_object_size(open);
    json_object_foreach(open, id, ent) {
        size_t add = strlen(id) + 2;
        char *nl = realloc(list, len + add);
        if (!nl) { failed = 1; break; }
        list = nl;
        len += (size_t)snprintf(list + len, add, "%s%s", len ? "," : "", id);
        k++;
        if (k % (size_t)c->poll_batch != 0 && k != total) continue;
        char *url = url_for(c, "/requests", "service_request_id", list);
        json_t *arr = url ? get_requests(c, url) : NULL;
        free(url);
        free(list);
        list = NULL;
        len = 0;
        if (!arr) { failed = 1; break; }
        size_t i;
        json_t *req;
        json_array_foreach(arr, i, req) {
            const char *rid = json_string_value(json_object_get(req, "service_request_id"));
            json_t *e = rid ? json_object_get(open, rid) : NULL;
            if (!e) continue;
            int r = one_change(c, json_string_value(json_object_get(e, "key")), json_object_get(e, "value"), req);
            if (r < 0) { failed = 1; break; }
            submitted += r;
        }
        json_decref(arr);
        if (failed) break;
    }
    free(list);
    json_decref(open);
    return failed ? -1 : submitted;
}

static void *poller(void *arg)
{
    o311_client *c = arg;
    pthread_mutex_lock(&c->lock);
    while (!c->stopping) {
        pthread_mutex_unlock(&c->lock);
        int n = o311_client_poll_once(c);
        if (n > 0) relais_instance_log(c->inst, RELAIS_LOG_INFO, "poll: %d change(s) submitted", n);
        pthread_mutex_lock(&c->lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += c->poll_interval_ms / 1000;
        until.tv_nsec += (c->poll_interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) { until.tv_sec++; until.tv_nsec -= 1000000000L; }
        while (!c->stopping && pthread_cond_timedwait(&c->cond, &c->lock, &until) == 0) {}
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

int o311_client_start(o311_client *c, char *errstr, size_t errlen)
{
    if (c->mode != RELAIS_MODE_SOURCE || c->running) return 0;
    c->stopping = 0;
    if (pthread_create(&c->thread, NULL, poller, c) != 0) {
        snprintf(errstr, errlen, "open311: cannot start the poller thread");
        return -1;
    }
    c->running = 1;
    relais_instance_log(c->inst, RELAIS_LOG_INFO, "polling %s every %ld ms", c->endpoint, c->poll_interval_ms);
    return 0;
}

void o311_client_stop(o311_client *c)
{
    if (!c || !c->running) return;
    pthread_mutex_lock(&c->lock);
    c->stopping = 1;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    c->running = 0;
}

void o311_client_destroy(o311_client *c)
{
    if (!c) return;
    o311_client_stop(c);
    free(c->endpoint);
    if (c->api_key) OPENSSL_cleanse(c->api_key, strlen(c->api_key));
    free(c->api_key);
    free(c->jurisdiction);
    free(c->tls_ca_file);
    relais_http_pool_destroy(c->pool);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    if (c->curl_inited) curl_global_cleanup();
    free(c);
}
