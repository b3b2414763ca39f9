/*
 * test_http_connector.c - the generic http connector, without PostgreSQL.
 *
 * Source: an instance built with relais_instance_new() and fake hub ops that
 * record what the webhook submits (and validate it with the real event
 * builder), driven with libcurl on loopback.
 * Sink: deliveries to relais-sim-http started as a child process (found via
 * RELAIS_BUILD_DIR, set by ctest); its control API tells what it received.
 * Batches (deliver_batch): against the simulator, against a canned
 * destination (libmicrohttpd in the test: answer shapes, what was sent) and
 * into the webhook source itself.
 * Plus the pure parts: identifier values, depth pre-scan, signature scheme
 * (JSON pointers: tests/unit/test_jsonptr.c).
 *
 * Threads: the fake hub's state (struct fake) is written by the webhook's
 * connection threads under fake.lock and read by the test thread under it.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <jansson.h>
#include "testsupport.h"
#include "instance.h"
#include "event_int.h"
#include "options.h"
#include "safeparse.h"
#include "yamltree.h"
#include "errlist.h"
#include "../../connectors/http/http_int.h"

extern const relais_connector relais_connector_http;

/* ---- Fake hub ------------------------------------------------------------- */

enum fake_mode { FAKE_NORMAL = 0, FAKE_UNAVAILABLE };

static struct fake {
    pthread_mutex_t lock;
    int     accepting;
    int     mode;
    int     nsubmit;       /* calls to submit */
    json_t *recs;          /* every record submitted */
    json_t *rejects;       /* every relais_reject */
    json_t *seen;          /* record id -> event id (dedupe like the hub) */
} F = { .lock = PTHREAD_MUTEX_INITIALIZER };

static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

static int fake_submit(void *hub, relais_instance *inst, const relais_record *recs, size_t n,
                       relais_submit_result *res)
{
    pthread_mutex_lock(&F.lock);
    F.nsubmit++;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof res[i]);
        json_array_append_new(F.recs, json_pack("{s:o,s:o,s:o,s:o,s:o,s:o}",
            "record_id", str_or_null(recs[i].record_id), "type", str_or_null(recs[i].type),
            "subject", str_or_null(recs[i].subject),
            "correlation_id", str_or_null(recs[i].correlation_id),
            "traceparent", str_or_null(recs[i].traceparent), "data", json_deep_copy(recs[i].data)));
        if (F.mode == FAKE_UNAVAILABLE) {
            res[i].status = RELAIS_SUBMIT_UNAVAILABLE;
            snprintf(res[i].reason, sizeof res[i].reason, "journal down");
            rc = -1;
            continue;
        }
        char err[256];
        relais_event *ev = relais_event_build(&recs[i], relais_instance_name(inst), "ville",
                                              err, sizeof err);
        if (!ev) {
            res[i].status = RELAIS_SUBMIT_REJECTED;
            snprintf(res[i].reason, sizeof res[i].reason, "%s", err);
            continue;
        }
        const char *first = json_string_value(json_object_get(F.seen, relais_event_record_id(ev)));
        if (first) {
            res[i].status = RELAIS_SUBMIT_DUPLICATE;
            snprintf(res[i].event_id, sizeof res[i].event_id, "%s", first);
        } else {
            res[i].status = RELAIS_SUBMIT_ACCEPTED;
            snprintf(res[i].event_id, sizeof res[i].event_id, "%s", relais_event_id(ev));
            json_object_set_new(F.seen, relais_event_record_id(ev), json_string(relais_event_id(ev)));
        }
        relais_event_unref(ev);
    }
    pthread_mutex_unlock(&F.lock);
    return rc;
}

static int fake_reject(void *hub, relais_instance *inst, const char *record_id, const char *where,
                       const char *reason, const char *raw, size_t rawlen)
{
    pthread_mutex_lock(&F.lock);
    json_array_append_new(F.rejects, json_pack("{s:o,s:s,s:s,s:s%}", "record_id",
                                               str_or_null(record_id), "where", where, "reason",
                                               reason, "raw", raw ? raw : "", raw ? rawlen : 0));
    pthread_mutex_unlock(&F.lock);
    return 0;
}

static int fake_accepting(void *hub, const relais_instance *inst)
{
    pthread_mutex_lock(&F.lock);
    int a = F.accepting;
    pthread_mutex_unlock(&F.lock);
    return a;
}

static const relais_instance_ops fake_ops = { .submit = fake_submit, .reject = fake_reject, .accepting = fake_accepting };

static void fake_reset(void)
{
    pthread_mutex_lock(&F.lock);
    json_decref(F.recs);
    json_decref(F.rejects);
    json_decref(F.seen);
    F.recs = json_array();
    F.rejects = json_array();
    F.seen = json_object();
    F.accepting = 1;
    F.mode = FAKE_NORMAL;
    F.nsubmit = 0;
    pthread_mutex_unlock(&F.lock);
}

static size_t fake_count(json_t **arr)
{
    pthread_mutex_lock(&F.lock);
    size_t n = json_array_size(*arr);
    pthread_mutex_unlock(&F.lock);
    return n;
}

/* ---- Config from YAML through the option table ----------------------------- */

static relais_http_config *cfg_yaml(const char *yaml, unsigned mode, relais_errlist *errs)
{
    char err[256];
    yt_node *n = yt_load_buffer("test.yaml", yaml, strlen(yaml), err, sizeof err);
    if (!n) fail_msg("yaml: %s", err);
    relais_http_config *cfg = calloc(1, relais_connector_http.config_size);
    relais_errlist_init(errs);
    relais_options_apply(relais_connector_http.options, cfg, mode, n, NULL, "test.yaml", errs);
    yt_free(n);
    return cfg;
}

static void cfg_free(relais_http_config *cfg)
{
    if (!cfg) return;
    relais_options_free(relais_connector_http.options, cfg);
    free(cfg);
}

/* ---- A running webhook source ---------------------------------------------- */

typedef struct src {
    relais_http_config *cfg;
    relais_instance    *inst;
    void               *ctx;
    int                 port;
} src;

static void src_start(src *s, const char *yaml)
{
    relais_errlist errs;
    s->cfg = cfg_yaml(yaml, RELAIS_MODE_SOURCE, &errs);
    if (errs.count) fail_msg("options: %s", errs.msgs[0]);
    relais_errlist_free(&errs);
    s->inst = relais_instance_new("hook", "ville", RELAIS_MODE_SOURCE, &relais_connector_http,
                                  s->cfg, &fake_ops, NULL, NULL);
    char err[256] = "";
    if (relais_connector_http.init(s->inst, s->cfg, &s->ctx, err, sizeof err) != 0)
        fail_msg("init: %s", err);
    s->inst->ctx = s->ctx;
    if (relais_connector_http.start(s->ctx, err, sizeof err) != 0) fail_msg("start: %s", err);
    s->port = relais_http_ctx_port(s->ctx);
    assert_true(s->port > 0);
}

static void src_stop(src *s)
{
    relais_connector_http.stop(s->ctx);
    relais_connector_http.destroy(s->ctx);
    relais_instance_destroy(s->inst);
    cfg_free(s->cfg);
    memset(s, 0, sizeof *s);
}

#define BASIC "listen: 127.0.0.1:0\nevent_type: fr.relais.test.thing.created\n"

/* ---- HTTP client ------------------------------------------------------------ */

typedef struct resp {
    long    status;
    char    body[65536];
    size_t  len;
    char    retry_after[32];
    char    allow[64];
    json_t *json;
} resp;

static size_t on_write(char *p, size_t sz, size_t n, void *ud)
{
    resp *r = ud;
    size_t t = sz * n;
    if (r->len + t >= sizeof r->body) t = sizeof r->body - 1 - r->len;
    memcpy(r->body + r->len, p, t);
    r->len += t;
    r->body[r->len] = '\0';
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    resp *r = ud;
    size_t t = sz * n;
    char line[256];
    size_t k = t < sizeof line - 1 ? t : sizeof line - 1;
    memcpy(line, p, k);
    line[k] = '\0';
    char *e = line + strcspn(line, "\r\n");
    *e = '\0';
    if (strncasecmp(line, "Retry-After:", 12) == 0)
        snprintf(r->retry_after, sizeof r->retry_after, "%s", line + 12 + strspn(line + 12, " "));
    if (strncasecmp(line, "Allow:", 6) == 0)
        snprintf(r->allow, sizeof r->allow, "%s", line + 6 + strspn(line + 6, " "));
    return t;
}

struct chunk_src { const char *p; size_t left; };

static size_t on_read(char *buf, size_t sz, size_t n, void *ud)
{
    struct chunk_src *c = ud;
    size_t t = sz * n;
    if (t > 1000) t = 1000;
    if (t > c->left) t = c->left;
    memcpy(buf, c->p, t);
    c->p += t;
    c->left -= t;
    return t;
}

/* headers: NULL-terminated "Name: value" list or NULL. chunked: no Content-Length. */
static resp *http_req(int port, const char *method, const char *path, const char *const *headers,
                      const char *body, size_t len, int chunked)
{
    resp *r = calloc(1, sizeof *r);
    CURL *h = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    for (const char *const *x = headers; x && *x; x++) hl = curl_slist_append(hl, *x);
    struct chunk_src cs = { body, len };
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        if (chunked) {
            hl = curl_slist_append(hl, "Transfer-Encoding: chunked");
            curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(h, CURLOPT_READDATA, &cs);
        } else {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        }
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) fail_msg("%s %s: %s", method, url, curl_easy_strerror(rc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    r->json = json_loadb(r->body, r->len, 0, NULL);
    return r;
}

static resp *post(int port, const char *body, const char *const *headers)
{
    return http_req(port, "POST", "/events", headers, body, strlen(body), 0);
}

static void resp_free(resp *r)
{
    if (!r) return;
    json_decref(r->json);
    free(r);
}

static const char *jstr(json_t *o, const char *path)
{
    json_t *v = relais_json_pointer(o, path);
    return json_string_value(v);
}

/* A request with a NUL-terminated body (or none) whose answer must have the
 * given status; the caller frees the answer. */
static resp *req_expect(int port, const char *method, const char *path, const char *const *headers,
                        const char *body, long status)
{
    resp *r = http_req(port, method, path, headers, body, body ? strlen(body) : 0, 0);
    assert_int_equal(r->status, status);
    return r;
}

/* POST to /events whose answer must have the given status; the caller frees it. */
static resp *post_expect(int port, const char *body, const char *const *headers, long status)
{
    return req_expect(port, "POST", "/events", headers, body, status);
}

/* The same when only the status matters. */
static void post_status(int port, const char *body, const char *const *headers, long status)
{
    resp_free(post_expect(port, body, headers, status));
}

/* ---- Source tests ----------------------------------------------------------- */

static int source_setup(void **state) { fake_reset(); return 0; }

static void test_single_record(void **state)
{
    src s;
    src_start(&s, BASIC "subject_pointer: /request/id\ncorrelation_pointer: /case\n");
    const char *hd[] = { "Idempotency-Key: K-1", "Content-Type: application/json", NULL };
    resp *r = post_expect(s.port, "{\"request\":{\"id\":\"R-17\"},\"case\":42,\"x\":\"é\"}", hd, 202);
    assert_string_equal(jstr(r->json, "/status"), "accepted");
    assert_int_equal(strlen(jstr(r->json, "/event_id")), 36);
    assert_int_equal(F.nsubmit, 1);
    assert_int_equal(json_array_size(F.recs), 1);
    json_t *rec = json_array_get(F.recs, 0);
    assert_string_equal(jstr(rec, "/type"), "fr.relais.test.thing.created");
    assert_string_equal(jstr(rec, "/subject"), "R-17");
    assert_string_equal(jstr(rec, "/correlation_id"), "42");
    assert_string_equal(jstr(rec, "/record_id"), "K-1");
    assert_string_equal(jstr(rec, "/data/x"), "é");
    assert_true(json_is_null(json_object_get(rec, "traceparent")));
    char first[64];
    snprintf(first, sizeof first, "%s", jstr(r->json, "/event_id"));
    resp_free(r);

    /* the same key again: the hub says duplicate, with the first event id */
    r = post_expect(s.port, "{\"request\":{\"id\":\"R-17\"},\"case\":42,\"x\":\"é\"}", hd, 202);
    assert_string_equal(jstr(r->json, "/status"), "duplicate");
    assert_string_equal(jstr(r->json, "/event_id"), first);
    resp_free(r);
    src_stop(&s);
}

static void test_batch(void **state)
{
    src s;
    src_start(&s, BASIC "subject_pointer: /id\n");
    const char *hd[] = { "Idempotency-Key: B", NULL };
    resp *r = post_expect(s.port, "[{\"id\":\"a\"},{\"id\":\"b\"},{\"id\":\"c\"}]", hd, 202);
    json_t *res = json_object_get(r->json, "results");
    assert_int_equal(json_array_size(res), 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(res, i), "status")),
                            "accepted");
    assert_int_equal(F.nsubmit, 1);   /* one submit for the whole batch */
    assert_string_equal(jstr(F.recs, "/0/record_id"), "B/0");
    assert_string_equal(jstr(F.recs, "/2/record_id"), "B/2");
    assert_string_equal(jstr(F.recs, "/1/subject"), "b");
    resp_free(r);
    src_stop(&s);
}

static void test_batch_bad_element(void **state)
{
    src s;
    src_start(&s, "listen: 127.0.0.1:0\ntype_pointer: /kind\n");
    resp *r = post_expect(s.port,
                          "[{\"kind\":\"fr.relais.test.a.created\"},42,{\"nokind\":1},"
                          "{\"kind\":\"Not A Type\"},{\"kind\":\"fr.relais.test.b.created\"}]",
                          NULL, 202);
    json_t *res = json_object_get(r->json, "results");
    assert_int_equal(json_array_size(res), 5);
    assert_string_equal(jstr(res, "/0/status"), "accepted");
    assert_string_equal(jstr(res, "/1/status"), "rejected");
    assert_non_null(strstr(jstr(res, "/1/reason"), "element 1 is not a JSON object"));
    assert_string_equal(jstr(res, "/2/status"), "rejected");
    assert_non_null(strstr(jstr(res, "/2/reason"), "missing type"));
    assert_string_equal(jstr(res, "/3/status"), "rejected");   /* refused by the hub */
    assert_string_equal(jstr(res, "/4/status"), "accepted");
    assert_null(json_object_get(json_array_get(res, 1), "event_id"));
    /* the two elements refused before submit were journaled as rejections */
    assert_int_equal(json_array_size(F.rejects), 2);
    assert_string_equal(jstr(F.rejects, "/0/where"), "body element 1");
    assert_string_equal(jstr(F.rejects, "/0/raw"), "42");
    assert_string_equal(jstr(F.rejects, "/1/where"), "body element 2");
    assert_int_equal(json_array_size(F.recs), 3);   /* 0, 3, 4 went to the hub */
    resp_free(r);
    src_stop(&s);
}

static void test_single_rejected(void **state)
{
    src s;
    src_start(&s, "listen: 127.0.0.1:0\n");   /* no event_type: a plain record has no type */
    resp *r = post_expect(s.port, "{\"a\":1}", NULL, 422);
    assert_string_equal(jstr(r->json, "/status"), "rejected");
    assert_non_null(strstr(jstr(r->json, "/reason"), "missing type"));
    assert_int_equal(json_array_size(F.rejects), 1);
    assert_string_equal(jstr(F.rejects, "/0/where"), "body");
    assert_int_equal(F.nsubmit, 0);
    resp_free(r);
    src_stop(&s);
}

static void test_malformed_json(void **state)
{
    src s;
    src_start(&s, BASIC);
    resp *r = post_expect(s.port, "{\"a\": 1,\n  \"b\": }", NULL, 400);
    assert_non_null(jstr(r->json, "/error"));
    assert_int_equal(json_integer_value(json_object_get(r->json, "line")), 2);
    assert_true(json_integer_value(json_object_get(r->json, "column")) >= 7);
    assert_int_equal(json_array_size(F.rejects), 1);
    char where[64];
    snprintf(where, sizeof where, "body line 2 column %lld",
             (long long)json_integer_value(json_object_get(r->json, "column")));
    assert_string_equal(jstr(F.rejects, "/0/where"), where);
    assert_string_equal(jstr(F.rejects, "/0/raw"), "{\"a\": 1,\n  \"b\": }");
    assert_int_equal(F.nsubmit, 0);
    resp_free(r);

    /* a scalar is valid JSON but not a record */
    post_status(s.port, "\"text\"", NULL, 400);
    assert_int_equal(json_array_size(F.rejects), 2);
    src_stop(&s);
}

static void test_duplicate_keys(void **state)
{
    src s;
    src_start(&s, BASIC);
    resp *r = post_expect(s.port, "{\"a\":1,\"a\":2}", NULL, 400);
    assert_non_null(strstr(jstr(r->json, "/error"), "duplicate"));
    assert_int_equal(json_array_size(F.rejects), 1);
    assert_int_equal(F.nsubmit, 0);
    resp_free(r);
    src_stop(&s);
}

static char *nested(int arrays)
{
    /* {"a": [[...]]} : depth = 1 + arrays */
    char *b = malloc((size_t)arrays * 2 + 16);
    size_t o = 0;
    o += (size_t)snprintf(b, 16, "{\"a\":");
    for (int i = 0; i < arrays; i++) b[o++] = '[';
    for (int i = 0; i < arrays; i++) b[o++] = ']';
    b[o++] = '}';
    b[o] = '\0';
    return b;
}

static void test_deep_nesting(void **state)
{
    src s;
    src_start(&s, BASIC);
    char *ok = nested(63), *deep = nested(64);
    resp *r = post_expect(s.port, ok, NULL, 202);   /* 64 levels: the limit */
    resp_free(r);
    r = post(s.port, deep, NULL);        /* 65 levels */
    assert_int_equal(r->status, 400);
    assert_non_null(strstr(jstr(r->json, "/error"), "deeper than 64"));
    assert_int_equal(json_integer_value(json_object_get(r->json, "column")), 5 + 64);
    assert_int_equal(json_array_size(F.rejects), 1);
    resp_free(r);
    free(ok);
    free(deep);
    src_stop(&s);
}

static void test_oversized(void **state)
{
    src s;
    src_start(&s, BASIC "max_body: 1KB\n");
    char big[3000];
    memset(big, ' ', sizeof big);
    memcpy(big, "{\"a\":1}", 7);
    big[sizeof big - 1] = '\0';
    resp *r = post(s.port, big, NULL);   /* Content-Length: refused before reading */
    assert_int_equal(r->status, 413);
    resp_free(r);
    r = http_req(s.port, "POST", "/events", NULL, big, strlen(big), 1);   /* chunked */
    assert_int_equal(r->status, 413);
    assert_non_null(strstr(jstr(r->json, "/error"), "max_body"));
    resp_free(r);
    /* just under the cap, chunked: accepted */
    r = http_req(s.port, "POST", "/events", NULL, big, 1000, 1);
    assert_int_equal(r->status, 202);
    resp_free(r);
    assert_int_equal(F.nsubmit, 1);
    src_stop(&s);
}

static void test_max_batch(void **state)
{
    src s;
    src_start(&s, BASIC "max_batch: 2\n");
    resp *r = post_expect(s.port, "[{},{},{}]", NULL, 413);
    assert_non_null(strstr(jstr(r->json, "/error"), "max_batch"));
    assert_int_equal(F.nsubmit, 0);
    assert_int_equal(json_array_size(F.rejects), 1);
    resp_free(r);
    post_status(s.port, "[{},{}]", NULL, 202);
    src_stop(&s);
}

static void test_invalid_utf8(void **state)
{
    src s;
    src_start(&s, BASIC);
    resp *r = post(s.port, "{\"name\":\"Z\xe9lie\"}", NULL);   /* Latin-1 é */
    assert_int_equal(r->status, 400);
    assert_non_null(jstr(r->json, "/error"));
    assert_int_equal(json_array_size(F.rejects), 1);
    /* the journaled excerpt is valid UTF-8 (the bad byte replaced) */
    assert_string_equal(jstr(F.rejects, "/0/raw"), "{\"name\":\"Z?lie\"}");
    assert_int_equal(F.nsubmit, 0);
    resp_free(r);
    src_stop(&s);
}

static void test_hmac(void **state)
{
    src s;
    src_start(&s, BASIC "hmac_secret: env:HTTP_TEST_SECRET\nhmac_tolerance: 60s\n");
    const char *body = "{\"a\":1}";
    char sig[160], hdr[200], nhdr[100], nonce[33];

    resp *r = post_expect(s.port, body, NULL, 401);
    assert_non_null(strstr(jstr(r->json, "/error"), "missing"));
    resp_free(r);

    long long now = (long long)time(NULL);
    assert_int_equal(relais_http_nonce_new(nonce), 0);
    assert_int_equal(relais_http_signature_header("s3cret", now, nonce, body, strlen(body), sig, sizeof sig), 0);
    snprintf(hdr, sizeof hdr, "X-Relais-Signature: %s", sig);
    snprintf(nhdr, sizeof nhdr, "X-Relais-Nonce: %s", nonce);
    const char *good[] = { hdr, nhdr, NULL };
    post_status(s.port, body, good, 202);

    r = post(s.port, "{\"a\":2}", good);   /* body changed after signing */
    assert_int_equal(r->status, 401);
    assert_non_null(strstr(jstr(r->json, "/error"), "does not match"));
    resp_free(r);

    relais_http_nonce_new(nonce);
    snprintf(nhdr, sizeof nhdr, "X-Relais-Nonce: %s", nonce);
    relais_http_signature_header("wrong", now, nonce, body, strlen(body), sig, sizeof sig);
    snprintf(hdr, sizeof hdr, "X-Relais-Signature: %s", sig);
    post_status(s.port, body, good, 401);

    relais_http_signature_header("s3cret", now - 120, nonce, body, strlen(body), sig, sizeof sig);
    snprintf(hdr, sizeof hdr, "X-Relais-Signature: %s", sig);
    r = post_expect(s.port, body, good, 401);
    assert_non_null(strstr(jstr(r->json, "/error"), "tolerance"));
    resp_free(r);

    snprintf(hdr, sizeof hdr, "X-Relais-Signature: v2=abc");
    post_status(s.port, body, good, 401);

    assert_int_equal(F.nsubmit, 1);
    assert_int_equal(json_array_size(F.rejects), 0);   /* unauthenticated: not journaled */
    src_stop(&s);
}

static void test_unavailable(void **state)
{
    src s;
    src_start(&s, BASIC);
    F.accepting = 0;
    resp *r = post_expect(s.port, "{\"a\":1}", NULL, 503);
    assert_string_equal(r->retry_after, "1");
    assert_int_equal(F.nsubmit, 0);
    resp_free(r);

    F.accepting = 1;
    F.mode = FAKE_UNAVAILABLE;
    r = post_expect(s.port, "[{\"a\":1},{\"a\":2}]", NULL, 503);
    assert_string_equal(r->retry_after, "1");
    assert_null(strstr(r->body, "accepted"));
    assert_int_equal(F.nsubmit, 1);
    resp_free(r);

    /* a batch with an invalid element: not journaled as rejected while unavailable */
    post_status(s.port, "[{\"a\":1},7]", NULL, 503);
    assert_int_equal(json_array_size(F.rejects), 0);
    src_stop(&s);
}

static void test_path_and_method(void **state)
{
    src s;
    src_start(&s, BASIC "path: /hooks/desk\n");
    resp_free(req_expect(s.port, "POST", "/events", NULL, "{}", 404));
    resp *r = req_expect(s.port, "GET", "/hooks/desk", NULL, NULL, 405);
    assert_string_equal(r->allow, "POST");
    resp_free(r);
    resp_free(req_expect(s.port, "PUT", "/hooks/desk", NULL, "{}", 405));
    resp_free(req_expect(s.port, "POST", "/hooks/desk", NULL, "{}", 202));
    assert_int_equal(F.nsubmit, 1);
    src_stop(&s);
}

static void test_cloudevent(void **state)
{
    src s;
    src_start(&s, BASIC);
    const char *hd[] = { "Content-Type: application/cloudevents+json; charset=utf-8", NULL };
    resp *r = post_expect(s.port,
                          "{\"specversion\":\"1.0\",\"id\":\"ce-1\",\"source\":\"/desk\","
                          "\"type\":\"fr.relais.grc.request.created\",\"subject\":\"request/9\","
                          "\"correlationid\":\"case-3\","
                          "\"traceparent\":"
                          "\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\","
                          "\"recordid\":\"GRC-9\",\"data\":{\"n\":9}}", hd, 202);
    assert_string_equal(jstr(r->json, "/status"), "accepted");
    json_t *rec = json_array_get(F.recs, 0);
    assert_string_equal(jstr(rec, "/type"), "fr.relais.grc.request.created");
    assert_string_equal(jstr(rec, "/subject"), "request/9");
    assert_string_equal(jstr(rec, "/correlation_id"), "case-3");
    assert_string_equal(jstr(rec, "/traceparent"),
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    assert_string_equal(jstr(rec, "/record_id"), "GRC-9");
    assert_int_equal(json_integer_value(relais_json_pointer(rec, "/data/n")), 9);
    assert_null(json_object_get(json_object_get(rec, "data"), "specversion"));
    resp_free(r);

    /* without recordid the sender's id is the dedupe key; no data -> {} */
    post_status(s.port, "{\"specversion\":\"1.0\",\"id\":\"ce-2\",\"source\":\"/desk\","
                "\"type\":\"fr.relais.grc.request.closed\"}", hd, 202);
    assert_string_equal(jstr(F.recs, "/1/record_id"), "ce-2");
    assert_int_equal(json_object_size(json_object_get(json_array_get(F.recs, 1), "data")), 0);

    /* wrong specversion: rejected */
    r = post_expect(s.port, "{\"specversion\":\"0.3\",\"id\":\"x\",\"type\":\"fr.relais.a.b\"}",
                    hd, 422);
    assert_non_null(strstr(jstr(r->json, "/reason"), "specversion"));
    resp_free(r);

    /* a batch of CloudEvents */
    const char *hb[] = { "Content-Type: application/cloudevents-batch+json", NULL };
    r = post_expect(s.port, "[{\"specversion\":\"1.0\",\"id\":\"b1\",\"type\":\"fr.relais.a.b\"},"
                    "{\"specversion\":\"1.0\",\"id\":\"b2\"}]", hb, 202);
    assert_string_equal(jstr(r->json, "/results/0/status"), "accepted");
    assert_string_equal(jstr(r->json, "/results/1/status"), "rejected");
    assert_non_null(strstr(jstr(r->json, "/results/1/reason"), "missing type"));
    resp_free(r);
    src_stop(&s);
}

static void test_record_id_pointer(void **state)
{
    src s;
    src_start(&s, BASIC "record_id_pointer: /meta/id\n");
    const char *hd[] = { "Idempotency-Key: ignored", NULL };
    resp *r = post_expect(s.port, "[{\"meta\":{\"id\":1234}},{\"meta\":{}}]", hd, 202);
    assert_string_equal(jstr(r->json, "/results/0/status"), "accepted");
    assert_string_equal(jstr(r->json, "/results/1/status"), "rejected");
    assert_non_null(strstr(jstr(r->json, "/results/1/reason"), "/meta/id"));
    assert_string_equal(jstr(F.recs, "/0/record_id"), "1234");
    resp_free(r);

    /* no key, no pointer: the hub hashes the data (record_id NULL) */
    src_stop(&s);
    src_start(&s, BASIC);
    post_status(s.port, "{\"z\":1}", NULL, 202);
    assert_true(json_is_null(json_object_get(json_array_get(F.recs, 1), "record_id")));
    r = post(s.port, "{\"z\":1}", NULL);
    assert_string_equal(jstr(r->json, "/status"), "duplicate");
    resp_free(r);
    src_stop(&s);
}

static void test_port_file(void **state)
{
    char path[256];
    snprintf(path, sizeof path, "/tmp/relais-http-port-%d", (int)getpid());
    char yaml[512];
    snprintf(yaml, sizeof yaml, BASIC "port_file: %s\n", path);
    src s;
    src_start(&s, yaml);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int port = 0;
    assert_int_equal(fscanf(f, "%d", &port), 1);
    fclose(f);
    assert_int_equal(port, s.port);
    post_status(port, "{}", NULL, 202);
    src_stop(&s);
    unlink(path);
}

static void test_concurrent_posts(void **state);

/* ---- Options ------------------------------------------------------------- */

static void test_options(void **state)
{
    relais_errlist errs;
    relais_http_config *c = cfg_yaml("listen: 127.0.0.1:0\n", RELAIS_MODE_SOURCE, &errs);
    assert_int_equal(errs.count, 0);
    assert_string_equal(c->path, "/events");
    assert_int_equal(c->max_body, 1024 * 1024);
    assert_int_equal(c->max_batch, 1000);
    assert_int_equal(c->hmac_tolerance, 5 * 60 * 1000);
    assert_null(c->hmac_secret);
    relais_errlist_free(&errs);
    cfg_free(c);

    c = cfg_yaml("url: http://127.0.0.1:1/x\nheaders: [\"X-Town: Lyon\"]\n", RELAIS_MODE_SINK, &errs);
    assert_int_equal(errs.count, 0);
    assert_int_equal(c->timeout, 10000);
    assert_int_equal(c->connect_timeout, 3000);
    assert_string_equal(c->headers[0], "X-Town: Lyon");
    relais_errlist_free(&errs);
    cfg_free(c);

    c = cfg_yaml("path: /x\n", RELAIS_MODE_SOURCE, &errs);
    assert_true(errs.count >= 1);
    assert_non_null(strstr(errs.msgs[0], "listen"));
    relais_errlist_free(&errs);
    cfg_free(c);

    c = cfg_yaml("timeout: 1s\n", RELAIS_MODE_SINK, &errs);
    assert_true(errs.count >= 1);
    assert_non_null(strstr(errs.msgs[0], "url"));
    relais_errlist_free(&errs);
    cfg_free(c);

    /* init refuses what the table cannot see */
    const char *bad[][2] = {
        { "url: ftp://example.org/x\n", "http:// or https://" },
        { "url: http://127.0.0.1/x\nid_pointer: id\n", "id_pointer" },
        { "url: http://127.0.0.1/x\nheaders: [\"NoColon\"]\n", "headers[0]" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = cfg_yaml(bad[i][0], RELAIS_MODE_SINK, &errs);
        assert_int_equal(errs.count, 0);
        relais_errlist_free(&errs);
        relais_instance *inst = relais_instance_new("out", NULL, RELAIS_MODE_SINK,
                                                    &relais_connector_http, c, NULL, NULL, NULL);
        void *ctx = NULL;
        char err[256] = "";
        assert_int_equal(relais_connector_http.init(inst, c, &ctx, err, sizeof err), -1);
        assert_non_null(strstr(err, bad[i][1]));
        relais_instance_destroy(inst);
        cfg_free(c);
    }
    c = cfg_yaml("listen: 127.0.0.1\n", RELAIS_MODE_SOURCE, &errs);
    relais_errlist_free(&errs);
    relais_instance *inst = relais_instance_new("in", NULL, RELAIS_MODE_SOURCE,
                                                &relais_connector_http, c, NULL, NULL, NULL);
    void *ctx = NULL;
    char err[256] = "";
    assert_int_equal(relais_connector_http.init(inst, c, &ctx, err, sizeof err), -1);
    assert_non_null(strstr(err, "host:port"));
    relais_instance_destroy(inst);
    cfg_free(c);

    assert_int_equal(relais_connector_http.abi_version, RELAIS_CONNECTOR_ABI);
    assert_string_equal(relais_connector_http.name, "http");
    assert_int_equal(relais_connector_http.modes, RELAIS_MODE_SOURCE | RELAIS_MODE_SINK);
}

/* ---- Pure parts ------------------------------------------------------------ */

/* Identifier values (type, subject, record id, correlation id, local id):
 * non-empty strings and integers only, as the README says; the pointer
 * lookup itself is tested in tests/unit/test_jsonptr.c. */
static void test_value_text(void **state)
{
    json_t *d = json_loads("{\"s\":\"R-1\",\"i\":-42,\"e\":\"\",\"r\":1.5,\"t\":true,"
                           "\"n\":null,\"o\":{},\"a\":[1],\"long\":\"abcdefgh\"}", 0, NULL);
    assert_non_null(d);
    char buf[8];
    assert_int_equal(relais_http_value_text(json_object_get(d, "s"), buf, sizeof buf), 0);
    assert_string_equal(buf, "R-1");
    assert_int_equal(relais_http_value_text(json_object_get(d, "i"), buf, sizeof buf), 0);
    assert_string_equal(buf, "-42");
    static const char *const refused[] = { "e", "r", "t", "n", "o", "a", "long", "missing" };
    for (size_t k = 0; k < sizeof refused / sizeof refused[0]; k++) {
        memcpy(buf, "garbage", 8);
        assert_int_equal(relais_http_value_text(json_object_get(d, refused[k]), buf, sizeof buf), -1);
        assert_string_equal(buf, "");
    }
    json_decref(d);
}

/* The webhook's depth bound is the shared one (hub/safeparse.c): brackets
 * inside strings, even after an escaped quote, are not counted, and the
 * refusal names the line and column of the bracket that goes too deep. */
static void test_depth_check(void **state)
{
    (void)state;
    char err[256];
    const char *s = "{\"s\":\"[[[[\",\n \"t\":[[[]]]}";
    relais_parse_limits four = { 0, 4 }, three = { 0, 3 }, one = { 0, 1 };
    json_t *v = relais_json_parse(s, strlen(s), "body", &four, err, sizeof err);
    assert_non_null(v);
    json_decref(v);
    assert_null(relais_json_parse(s, strlen(s), "body", &three, err, sizeof err));
    assert_string_equal(err, "body:2:8: nesting deeper than 3 levels");
    const char *esc = "{\"s\":\"\\\"[[[[\"}";    /* escaped quote inside a string */
    v = relais_json_parse(esc, strlen(esc), "body", &one, err, sizeof err);
    assert_non_null(v);
    json_decref(v);
}

static void test_signature_vector(void **state)
{
    /* the documented scheme, checked against
     * printf '%s' '1700000000.0123456789abcdef.{"a":1}' | openssl dgst -sha256 -hmac s3cret */
    char hex[65];
    const char *n = "0123456789abcdef";
    assert_int_equal(relais_http_sign("s3cret", 1700000000, n, "{\"a\":1}", 7, hex), 0);
    assert_string_equal(hex, "4bec2fe5cff5edd530930a66492a05d85da4b1c38f989c84d751d3019647c590");
    const char *h = "t=1700000000,v2=0000,v2=4BEC2FE5CFF5EDD530930A66492A05D85DA4B1C38F989C84D751D3019647C590";
    assert_int_equal(relais_http_verify("s3cret", h, n, 1700000010, 300, "{\"a\":1}", 7, NULL), RELAIS_HTTP_SIG_OK);
    assert_int_equal(relais_http_verify("s3cret", h, n, 1700000400, 300, "{\"a\":1}", 7, NULL), RELAIS_HTTP_SIG_STALE);
    assert_int_equal(relais_http_verify("s3cret", "v2=00", n, 1700000000, 300, "", 0, NULL), RELAIS_HTTP_SIG_MALFORMED);
    assert_int_equal(relais_http_verify("s3cret", "t=1700000000,v2=1698", n, 1700000000, 300, "{\"a\":1}", 7, NULL),
                     RELAIS_HTTP_SIG_MISMATCH);
    assert_int_equal(relais_http_verify("s3cret", NULL, n, 0, 300, "", 0, NULL), RELAIS_HTTP_SIG_MISSING);
    /* the nonce is signed: another nonce does not match; none or a bad one is refused */
    assert_int_equal(relais_http_verify("s3cret", h, "fedcba9876543210", 1700000010, 300, "{\"a\":1}", 7, NULL),
                     RELAIS_HTTP_SIG_MISMATCH);
    assert_int_equal(relais_http_verify("s3cret", h, NULL, 1700000010, 300, "{\"a\":1}", 7, NULL),
                     RELAIS_HTTP_SIG_NONCE);
    assert_int_equal(relais_http_verify("s3cret", h, "short", 1700000010, 300, "{\"a\":1}", 7, NULL),
                     RELAIS_HTTP_SIG_NONCE);
    /* the former scheme without nonce is refused, saying so */
    assert_int_equal(relais_http_verify("s3cret", "t=1700000000,v1=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940",
                                        NULL, 1700000010, 300, "{\"a\":1}", 7, NULL), RELAIS_HTTP_SIG_LEGACY);
}

static void test_excerpt(void **state)
{
    char out[16];
    /* "é" is 2 bytes: not cut in the middle */
    assert_int_equal(relais_http_excerpt(out, sizeof out, "abcdefghijklmn\xc3\xa9", 16, 16, 0), 14);
    assert_string_equal(out, "abcdefghijklmn");
    relais_http_excerpt(out, sizeof out, "a\nb\xff\xc3", 5, 5, 1);
    assert_string_equal(out, "a b??");
    relais_http_excerpt(out, sizeof out, "\xed\xa0\x80x", 4, 4, 0);   /* surrogate */
    assert_string_equal(out, "???x");
}

/* The capped request-body buffer of the source and the simulator. */
static void test_upload_buffer(void **state)
{
    relais_http_upload u = { 0 };
    size_t n = 3;
    assert_int_equal(relais_http_upload_take(&u, "abc", &n, 10), 0);
    assert_int_equal(n, 0);                                                 /* consumed */
    assert_int_equal(relais_http_upload_take(&u, "", &n, 10), 0);
    n = 7;
    assert_int_equal(relais_http_upload_take(&u, "defghij", &n, 10), 0);   /* exactly max */
    assert_int_equal(u.len, 10);
    assert_string_equal(u.buf, "abcdefghij");                             /* NUL-terminated */
    assert_false(u.too_large);
    n = 1;
    assert_int_equal(relais_http_upload_take(&u, "k", &n, 10), 0);         /* one byte over */
    assert_int_equal(n, 0);
    assert_true(u.too_large);
    assert_null(u.buf);
    assert_int_equal(u.len, 0);
    n = 1;
    assert_int_equal(relais_http_upload_take(&u, "x", &n, 10), 0);         /* the rest ignored */
    assert_int_equal(n, 0);
    assert_null(u.buf);
    relais_http_upload_free(&u);
    assert_false(u.too_large);                                            /* empty again */

    /* growing past the first allocation keeps every byte */
    char chunk[3000];
    memset(chunk, 'z', sizeof chunk);
    for (int i = 0; i < 4; i++) {
        n = sizeof chunk;
        assert_int_equal(relais_http_upload_take(&u, chunk, &n, 1u << 20), 0);
    }
    assert_int_equal(u.len, 4 * sizeof chunk);
    assert_int_equal(strlen(u.buf), 4 * sizeof chunk);
    assert_true(u.cap > u.len);
    relais_http_upload_free(&u);
    assert_null(u.buf);
    relais_http_upload_free(NULL);
}

/* ---- Concurrency of the source ---------------------------------------------- */

struct poster { int port; int ok; int base; };

static void *poster_main(void *arg)
{
    struct poster *p = arg;
    for (int i = 0; i < 10; i++) {
        char body[64];
        snprintf(body, sizeof body, "{\"n\":%d}", p->base + i);
        resp *r = post(p->port, body, NULL);
        p->ok += r->status == 202;
        resp_free(r);
    }
    return NULL;
}

static void test_concurrent_posts(void **state)
{
    src s;
    src_start(&s, BASIC);
    pthread_t th[6];
    struct poster ps[6];
    for (int i = 0; i < 6; i++) {
        ps[i] = (struct poster){ s.port, 0, i * 100 };
        pthread_create(&th[i], NULL, poster_main, &ps[i]);
    }
    int ok = 0;
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        ok += ps[i].ok;
    }
    assert_int_equal(ok, 60);
    assert_int_equal(fake_count(&F.recs), 60);
    src_stop(&s);
}

/* ---- Sink against relais-sim-http ------------------------------------------ */

typedef struct sim {
    pid_t pid;
    int   port;
} sim;

static sim SIM, SIM_AUTH;

static void sim_spawn(sim *sm, const char *const *extra)
{
    const char *bd = getenv("RELAIS_BUILD_DIR");
    if (!bd || !*bd) fail_msg("RELAIS_BUILD_DIR is not set (run through ctest)");
    char exe[1024], pf[256];
    snprintf(exe, sizeof exe, "%s/relais-sim-http", bd);
    if (access(exe, X_OK) != 0) fail_msg("%s: %s", exe, strerror(errno));
    snprintf(pf, sizeof pf, "/tmp/relais-sim-http-%d-%p.port", (int)getpid(), (void *)sm);
    unlink(pf);
    const char *argv[16] = { exe, "--listen", "127.0.0.1:0", "--port-file", pf, "--quiet" };
    size_t k = 6;
    for (const char *const *x = extra; x && *x && k < 15; x++) argv[k++] = *x;
    argv[k] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    assert_true(pid > 0);
    sm->pid = pid;
    for (int i = 0; i < 500; i++) {
        FILE *f = fopen(pf, "r");
        if (f) {
            int ok = fscanf(f, "%d", &sm->port) == 1;
            fclose(f);
            if (ok) {
                unlink(pf);
                return;
            }
        }
        ts_sleep_ms(10);
    }
    fail_msg("relais-sim-http did not start");
}

static void sim_kill(sim *sm)
{
    if (sm->pid <= 0) return;
    kill(sm->pid, SIGTERM);
    int st = 0;
    waitpid(sm->pid, &st, 0);
    sm->pid = 0;
}

static int sink_group_setup(void **state)
{
    sim_spawn(&SIM, NULL);
    const char *extra[] = { "--token", "tok-42", "--hmac-secret", "sig-7", NULL };
    sim_spawn(&SIM_AUTH, extra);
    return 0;
}

static int sink_group_teardown(void **state)
{
    sim_kill(&SIM);
    sim_kill(&SIM_AUTH);
    return 0;
}

static json_t *sim_get(const sim *sm, const char *path)
{
    resp *r = req_expect(sm->port, "GET", path, NULL, NULL, 200);
    json_t *j = json_incref(r->json);
    resp_free(r);
    assert_non_null(j);
    return j;
}

/* One counter of the simulator's /_sim/stats. */
static long stat_of(const sim *sm, const char *name)
{
    json_t *st = sim_get(sm, "/_sim/stats");
    long v = (long)json_integer_value(json_object_get(st, name));
    json_decref(st);
    return v;
}

static void sim_post(const sim *sm, const char *path, const char *body)
{
    resp_free(req_expect(sm->port, "POST", path, NULL, body, 200));
}

static int sink_setup(void **state)
{
    sim_post(&SIM, "/_sim/reset", "{}");
    return 0;
}

typedef struct snk {
    relais_http_config *cfg;
    relais_instance    *inst;
    void               *ctx;
} snk;

static void snk_new(snk *k, const char *yaml)
{
    relais_errlist errs;
    k->cfg = cfg_yaml(yaml, RELAIS_MODE_SINK, &errs);
    if (errs.count) fail_msg("options: %s", errs.msgs[0]);
    relais_errlist_free(&errs);
    k->inst = relais_instance_new("out", "ville", RELAIS_MODE_SINK, &relais_connector_http,
                                  k->cfg, NULL, NULL, NULL);
    char err[256] = "";
    if (relais_connector_http.init(k->inst, k->cfg, &k->ctx, err, sizeof err) != 0)
        fail_msg("init: %s", err);
    assert_int_equal(relais_connector_http.start(k->ctx, err, sizeof err), 0);
}

static void snk_free(snk *k)
{
    relais_connector_http.stop(k->ctx);
    relais_connector_http.destroy(k->ctx);
    relais_instance_destroy(k->inst);
    cfg_free(k->cfg);
}

/* A sink to sm's path, id_pointer /id, plus the extra option lines. */
static void snk_open(snk *k, const sim *sm, const char *path, const char *extra)
{
    char y[512];
    snprintf(y, sizeof y, "url: http://127.0.0.1:%d%s\nid_pointer: /id\n%s", sm->port, path,
             extra ? extra : "");
    snk_new(k, y);
}

/* An event of type fr.relais.test.person.created with data {"name":"Zélie","n":n}. */
static relais_event *mk_event_n(const char *subject, int n)
{
    json_t *data = json_pack("{s:s,s:i}", "name", "Zélie", "n", n);
    relais_record rec = { .type = "fr.relais.test.person.created", .subject = subject,
                          .data = data };
    char err[256];
    relais_event *ev = relais_event_build(&rec, "hook", "ville", err, sizeof err);
    json_decref(data);
    if (!ev) fail_msg("relais_event_build: %s", err);
    return ev;
}

static relais_verdict deliver(snk *k, relais_event *ev, const char *local_id, relais_answer *a)
{
    memset(a, 0x5a, sizeof *a);   /* the connector must fill every field */
    return relais_connector_http.deliver(k->ctx, ev, local_id, a);
}

static void test_sink_ok(void **state)
{
    snk k;
    snk_open(&k, &SIM, "/events", NULL);
    relais_event *ev = mk_event_n("person/1", 1);
    relais_answer a;
    assert_int_equal(deliver(&k, ev, NULL, &a), RELAIS_DELIVER_OK);
    assert_int_equal(a.status, 201);
    assert_string_equal(a.local_id, "L-1");
    assert_non_null(strstr(a.detail, "HTTP 201"));

    /* the same event again, now with the local id the hub learned */
    assert_int_equal(deliver(&k, ev, "L-1", &a), RELAIS_DELIVER_OK);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.local_id, "L-1");

    assert_int_equal(stat_of(&SIM, "raw"), 2);
    assert_int_equal(stat_of(&SIM, "distinct"), 1);
    assert_int_equal(stat_of(&SIM, "duplicates"), 1);

    json_t *evs = sim_get(&SIM, "/_sim/events");
    assert_int_equal(json_array_size(evs), 2);
    assert_string_equal(jstr(evs, "/0/idempotency_key"), relais_event_id(ev));
    assert_string_equal(jstr(evs, "/0/ce_id"), relais_event_id(ev));
    assert_string_equal(jstr(evs, "/0/ce_type"), "fr.relais.test.person.created");
    assert_string_equal(jstr(evs, "/0/traceparent"), relais_event_traceparent(ev));
    assert_string_equal(jstr(evs, "/0/content_type"), "application/cloudevents+json");
    assert_true(json_is_null(json_object_get(json_array_get(evs, 0), "local_id_header")));
    assert_string_equal(jstr(evs, "/1/local_id_header"), "L-1");
    assert_string_equal(jstr(evs, "/0/event/id"), relais_event_id(ev));
    assert_string_equal(jstr(evs, "/0/event/data/name"), "Zélie");
    assert_true(json_is_true(json_object_get(json_array_get(evs, 1), "duplicate")));
    json_decref(evs);
    relais_event_unref(ev);
    snk_free(&k);
}

static void test_sink_verdicts(void **state)
{
    snk k;
    snk_open(&k, &SIM, "/events", NULL);
    relais_event *ev = mk_event_n("person/2", 1);
    relais_answer a;

    sim_post(&SIM, "/_sim/fail", "{\"status\":500,\"count\":1}");
    assert_int_equal(deliver(&k, ev, NULL, &a), RELAIS_DELIVER_RETRY);
    assert_int_equal(a.status, 500);
    assert_string_equal(a.local_id, "");
    assert_non_null(strstr(a.detail, "HTTP 500"));
    assert_non_null(strstr(a.detail, "injected failure"));   /* body excerpt */

    sim_post(&SIM, "/_sim/fail", "{\"status\":429,\"count\":1}");
    assert_int_equal(deliver(&k, ev, NULL, &a), RELAIS_DELIVER_RETRY);
    assert_int_equal(a.status, 429);

    sim_post(&SIM, "/_sim/fail", "{\"status\":408,\"count\":1}");
    assert_int_equal(deliver(&k, ev, NULL, &a), RELAIS_DELIVER_RETRY);

    sim_post(&SIM, "/_sim/fail", "{\"status\":503,\"count\":1}");
    assert_int_equal(deliver(&k, ev, NULL, &a), RELAIS_DELIVER_RETRY);

    sim_post(&SIM, "/_sim/fail", "{\"status\":409,\"count\":1}");
    assert_int_equal(deliver(&k, ev, NULL, &a), RELAIS_DELIVER_REJECT);
    assert_int_equal(a.status, 409);

    sim_post(&SIM, "/_sim/fail", "{\"status\":302,\"count\":1}");
    assert_int_equal(deliver(&k, ev, NULL, &a), RELAIS_DELIVER_REJECT);
    assert_non_null(strstr(a.detail, "redirect"));

    /* fault spent: delivered */
    assert_int_equal(deliver(&k, ev, NULL, &a), RELAIS_DELIVER_OK);
    assert_int_equal(a.status, 201);
    assert_int_equal(stat_of(&SIM, "raw"), 7);
    assert_int_equal(stat_of(&SIM, "failed"), 6);
    assert_int_equal(stat_of(&SIM, "distinct"), 1);
    relais_event_unref(ev);
    snk_free(&k);

    /* a path the destination does not serve: 404 -> REJECT */
    snk_open(&k, &SIM, "/nope", NULL);
    ev = mk_event_n("person/3", 1);
    assert_int_equal(deliver(&k, ev, NULL, &a), RELAIS_DELIVER_REJECT);
    assert_int_equal(a.status, 404);
    relais_event_unref(ev);
    snk_free(&k);
}

static void test_sink_transport(void **state)
{
    char y[512];
    snprintf(y, sizeof y, "url: http://127.0.0.1:%d/events\n", ts_free_port());
    snk k;
    snk_new(&k, y);
    relais_event *ev = mk_event_n("person/4", 1);
    relais_answer a;
    assert_int_equal(deliver(&k, ev, NULL, &a), RELAIS_DELIVER_RETRY);
    assert_int_equal(a.status, 0);
    assert_non_null(strstr(a.detail, "onnect"));
    assert_string_equal(a.local_id, "");
    snk_free(&k);

    /* a slow destination: RETRY within the configured timeout */
    snk_open(&k, &SIM, "/events", "timeout: 300ms\n");
    sim_post(&SIM, "/_sim/fail", "{\"delay_ms\":2000,\"count\":1}");
    int64_t t0 = relais_mono_us();
    assert_int_equal(deliver(&k, ev, NULL, &a), RELAIS_DELIVER_RETRY);
    int64_t took_ms = (relais_mono_us() - t0) / 1000;
    assert_int_equal(a.status, 0);
    assert_non_null(strstr(a.detail, "imeout"));
    assert_true(took_ms >= 250 && took_ms < 2000);   /* cut before the 2 s answer */
    relais_event_unref(ev);
    snk_free(&k);
}

static void test_sink_auth_signature_headers(void **state)
{
    sim_post(&SIM_AUTH, "/_sim/reset", "{}");
    setenv("HTTP_TEST_TOKEN", "tok-42", 1);
    setenv("HTTP_TEST_SIG", "sig-7", 1);
    snk k;
    snk_open(&k, &SIM_AUTH, "/in/archive",
                 "auth_token: env:HTTP_TEST_TOKEN\nhmac_secret: env:HTTP_TEST_SIG\n"
                 "headers: [\"X-Town: Lyon\", \"X-Env: test\"]\n");
    relais_event *ev = mk_event_n("person/5", 1);
    relais_answer a;
    assert_int_equal(deliver(&k, ev, NULL, &a), RELAIS_DELIVER_OK);   /* the simulator checked both */
    assert_int_equal(a.status, 201);
    json_t *evs = sim_get(&SIM_AUTH, "/_sim/events?path=/in/archive");
    assert_int_equal(json_array_size(evs), 1);
    assert_string_equal(jstr(evs, "/0/headers/x-town"), "Lyon");
    assert_string_equal(jstr(evs, "/0/headers/x-env"), "test");
    assert_true(json_is_true(json_object_get(json_array_get(evs, 0), "authorization")));
    assert_non_null(strstr(jstr(evs, "/0/signature"), "v2="));
    json_decref(evs);
    snk_free(&k);

    /* without the signature the destination refuses: 401 -> REJECT */
    snk_open(&k, &SIM_AUTH, "/in/archive", "auth_token: env:HTTP_TEST_TOKEN\n");
    assert_int_equal(deliver(&k, ev, NULL, &a), RELAIS_DELIVER_REJECT);
    assert_int_equal(a.status, 401);
    assert_non_null(strstr(a.detail, "X-Relais-Signature"));
    snk_free(&k);
    relais_event_unref(ev);
}

struct deliverer { snk *k; int ok; };

static void *deliverer_main(void *arg)
{
    struct deliverer *d = arg;
    for (int i = 0; i < 15; i++) {
        relais_event *ev = mk_event_n("person/6", 1);
        relais_answer a;
        d->ok += relais_connector_http.deliver(d->k->ctx, ev, NULL, &a) == RELAIS_DELIVER_OK;
        relais_event_unref(ev);
    }
    return NULL;
}

static void test_sink_concurrent_keepalive(void **state)
{
    snk k;
    snk_open(&k, &SIM, "/events", NULL);
    /* sequential deliveries reuse one connection */
    for (int i = 0; i < 10; i++) {
        relais_event *ev = mk_event_n("person/7", 1);
        relais_answer a;
        assert_int_equal(deliver(&k, ev, NULL, &a), RELAIS_DELIVER_OK);
        relais_event_unref(ev);
    }
    json_t *st = sim_get(&SIM, "/_sim/stats");
    assert_int_equal(json_integer_value(json_object_get(st, "distinct")), 10);
    long conns = (long)json_integer_value(json_object_get(st, "connections"));
    json_decref(st);
    assert_int_equal(conns, 2);   /* the sink's one, plus this stats request */

    /* several delivery threads at once */
    pthread_t th[4];
    struct deliverer d[4];
    for (int i = 0; i < 4; i++) {
        d[i] = (struct deliverer){ &k, 0 };
        pthread_create(&th[i], NULL, deliverer_main, &d[i]);
    }
    int ok = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ok += d[i].ok;
    }
    assert_int_equal(ok, 60);
    st = sim_get(&SIM, "/_sim/stats");
    assert_int_equal(json_integer_value(json_object_get(st, "distinct")), 70);
    assert_true(json_integer_value(json_object_get(st, "connections")) <= 2 + 1 + 4);
    json_decref(st);
    snk_free(&k);
}

/* ---- Batches (deliver_batch) ------------------------------------------------ */

/* deliver_batch through the descriptor; every answer field poisoned first. */
static void deliver_many(snk *k, relais_event **evs, const char *const *lids, size_t n,
                         relais_verdict *v, relais_answer *a)
{
    memset(a, 0x5a, n * sizeof *a);
    for (size_t i = 0; i < n; i++) v[i] = (relais_verdict)77;
    assert_non_null(relais_connector_http.deliver_batch);
    relais_connector_http.deliver_batch(k->ctx, (const relais_event *const *)evs, lids, n, v, a);
}

static void test_sink_batch(void **state)
{
    snk k;
    snk_open(&k, &SIM, "/events", NULL);
    relais_event *evs[5];
    for (int i = 0; i < 5; i++) evs[i] = mk_event_n("person/b", i);
    relais_verdict v[5];
    relais_answer a[5];

    /* five events, one request, five local ids in order */
    deliver_many(&k, evs, NULL, 5, v, a);
    for (int i = 0; i < 5; i++) {
        char want[16];
        snprintf(want, sizeof want, "L-%d", i + 1);
        assert_int_equal(v[i], RELAIS_DELIVER_OK);
        assert_int_equal(a[i].status, 201);
        assert_string_equal(a[i].local_id, want);
        assert_non_null(strstr(a[i].detail, "HTTP 201 ok, element"));
    }
    assert_int_equal(stat_of(&SIM, "requests"), 1);
    assert_int_equal(stat_of(&SIM, "raw"), 5);
    assert_int_equal(stat_of(&SIM, "distinct"), 5);

    json_t *got = sim_get(&SIM, "/_sim/events");
    assert_int_equal(json_array_size(got), 5);
    char ids[512] = "";
    for (int i = 0; i < 5; i++) {
        char p[64];
        snprintf(p, sizeof p, "/%d/event/id", i);
        assert_string_equal(jstr(got, p), relais_event_id(evs[i]));
        snprintf(p, sizeof p, "/%d/event/data/n", i);
        assert_int_equal(json_integer_value(relais_json_pointer(got, p)), i);
        snprintf(p, sizeof p, "/%d/request", i);
        assert_int_equal(json_integer_value(relais_json_pointer(got, p)), 1);
        size_t used = strlen(ids);
        snprintf(ids + used, sizeof ids - used, "%s%s", i ? "," : "", relais_event_id(evs[i]));
    }
    assert_string_equal(jstr(got, "/0/content_type"), "application/cloudevents-batch+json");
    assert_string_equal(jstr(got, "/0/headers/relais-batch-ids"), ids);
    assert_string_equal(jstr(got, "/0/headers/relais-batch-size"), "5");
    assert_string_equal(jstr(got, "/0/traceparent"), relais_event_traceparent(evs[0]));
    assert_true(json_is_null(json_object_get(json_array_get(got, 0), "idempotency_key")));
    assert_null(json_object_get(json_object_get(json_array_get(got, 0), "event"), "relaislocalid"));
    json_decref(got);

    /* the same batch again: five duplicates, the same local ids, nothing new */
    deliver_many(&k, evs, NULL, 5, v, a);
    for (int i = 0; i < 5; i++) {
        char want[16];
        snprintf(want, sizeof want, "L-%d", i + 1);
        assert_int_equal(v[i], RELAIS_DELIVER_OK);
        assert_int_equal(a[i].status, 200);
        assert_string_equal(a[i].local_id, want);
        assert_non_null(strstr(a[i].detail, "duplicate"));
    }
    assert_int_equal(stat_of(&SIM, "requests"), 2);
    assert_int_equal(stat_of(&SIM, "raw"), 10);
    assert_int_equal(stat_of(&SIM, "distinct"), 5);
    assert_int_equal(stat_of(&SIM, "duplicates"), 5);

    /* a single delivery of a batched event is a duplicate too (same dedupe key) */
    relais_answer one;
    assert_int_equal(deliver(&k, evs[2], NULL, &one), RELAIS_DELIVER_OK);
    assert_int_equal(one.status, 200);
    assert_string_equal(one.local_id, "L-3");

    /* mixed: old, new, old, new */
    relais_event *n1 = mk_event_n("person/b", 10), *n2 = mk_event_n("person/b", 11);
    relais_event *mix[4] = { evs[0], n1, evs[2], n2 };
    deliver_many(&k, mix, NULL, 4, v, a);
    const char *want[4] = { "L-1", "L-6", "L-3", "L-7" };
    for (int i = 0; i < 4; i++) {
        assert_int_equal(v[i], RELAIS_DELIVER_OK);
        assert_int_equal(a[i].status, 201);   /* element without a status: the request's */
        assert_string_equal(a[i].local_id, want[i]);
    }
    assert_int_equal(stat_of(&SIM, "requests"), 4);
    assert_int_equal(stat_of(&SIM, "distinct"), 7);
    assert_int_equal(stat_of(&SIM, "duplicates"), 8);

    /* a batch of one is a batch too */
    relais_event *n3 = mk_event_n("person/b", 12);
    deliver_many(&k, &n3, NULL, 1, v, a);
    assert_int_equal(v[0], RELAIS_DELIVER_OK);
    assert_string_equal(a[0].local_id, "L-8");
    assert_int_equal(stat_of(&SIM, "requests"), 5);

    relais_event_unref(n1);
    relais_event_unref(n2);
    relais_event_unref(n3);
    for (int i = 0; i < 5; i++) relais_event_unref(evs[i]);
    snk_free(&k);
}

static void test_sink_batch_faults(void **state)
{
    char y[512];
    snk k;
    snk_open(&k, &SIM, "/events", NULL);
    relais_event *evs[3];
    for (int i = 0; i < 3; i++) evs[i] = mk_event_n("person/f", i);
    relais_verdict v[3];
    relais_answer a[3];

    /* the whole request fails: every event gets its verdict */
    const struct { int status; relais_verdict v; } whole[] = {
        { 500, RELAIS_DELIVER_RETRY }, { 503, RELAIS_DELIVER_RETRY }, { 429, RELAIS_DELIVER_RETRY },
        { 408, RELAIS_DELIVER_RETRY }, { 404, RELAIS_DELIVER_REJECT }, { 409, RELAIS_DELIVER_REJECT },
    };
    for (size_t c = 0; c < sizeof whole / sizeof whole[0]; c++) {
        char f[64], h[32];
        snprintf(f, sizeof f, "{\"status\":%d,\"count\":1}", whole[c].status);
        snprintf(h, sizeof h, "HTTP %d", whole[c].status);
        sim_post(&SIM, "/_sim/fail", f);
        deliver_many(&k, evs, NULL, 3, v, a);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(v[i], whole[c].v);
            assert_int_equal(a[i].status, whole[c].status);
            assert_string_equal(a[i].local_id, "");
            assert_non_null(strstr(a[i].detail, h));
            assert_non_null(strstr(a[i].detail, "injected failure"));
        }
    }
    assert_int_equal(stat_of(&SIM, "requests"), 6);
    assert_int_equal(stat_of(&SIM, "failed"), 18);
    assert_int_equal(stat_of(&SIM, "distinct"), 0);

    /* per-event answers: the first event refused (422), the second to retry (503) */
    sim_post(&SIM, "/_sim/fail", "{\"status\":422,\"count\":1,\"per_event\":true}");
    deliver_many(&k, evs, NULL, 3, v, a);
    assert_int_equal(v[0], RELAIS_DELIVER_REJECT);
    assert_int_equal(a[0].status, 422);
    assert_string_equal(a[0].local_id, "");
    assert_non_null(strstr(a[0].detail, "HTTP 207, element 0 of 3: 422 refused"));
    assert_int_equal(v[1], RELAIS_DELIVER_OK);
    assert_string_equal(a[1].local_id, "L-1");
    assert_int_equal(v[2], RELAIS_DELIVER_OK);
    assert_string_equal(a[2].local_id, "L-2");
    sim_post(&SIM, "/_sim/fail", "{\"status\":503,\"count\":1,\"per_event\":true}");
    deliver_many(&k, evs, NULL, 3, v, a);
    assert_int_equal(v[0], RELAIS_DELIVER_RETRY);
    assert_int_equal(a[0].status, 503);
    assert_int_equal(v[1], RELAIS_DELIVER_OK);
    assert_int_equal(a[1].status, 207);
    assert_string_equal(a[1].local_id, "L-1");   /* duplicate */
    assert_int_equal(stat_of(&SIM, "distinct"), 2);
    snk_free(&k);

    /* a path the destination does not serve: 404 for all */
    snk_open(&k, &SIM, "/nope", NULL);
    deliver_many(&k, evs, NULL, 3, v, a);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(v[i], RELAIS_DELIVER_REJECT);
        assert_int_equal(a[i].status, 404);
    }
    snk_free(&k);

    /* nobody listening: transport error, RETRY for all */
    snprintf(y, sizeof y, "url: http://127.0.0.1:%d/events\n", ts_free_port());
    snk_new(&k, y);
    deliver_many(&k, evs, NULL, 3, v, a);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(v[i], RELAIS_DELIVER_RETRY);
        assert_int_equal(a[i].status, 0);
        assert_non_null(strstr(a[i].detail, "onnect"));
        assert_string_equal(a[i].local_id, "");
    }
    snk_free(&k);
    for (int i = 0; i < 3; i++) relais_event_unref(evs[i]);
}

static void test_sink_batch_local_ids_auth(void **state)
{
    sim_post(&SIM_AUTH, "/_sim/reset", "{}");
    setenv("HTTP_TEST_TOKEN", "tok-42", 1);
    setenv("HTTP_TEST_SIG", "sig-7", 1);
    snk k;
    snk_open(&k, &SIM_AUTH, "/in/archive",
                 "auth_token: env:HTTP_TEST_TOKEN\nhmac_secret: env:HTTP_TEST_SIG\n"
                 "headers: [\"X-Town: Lyon\"]\n");
    relais_event *evs[3];
    for (int i = 0; i < 3; i++) evs[i] = mk_event_n("person/l", i);
    const char *lids[3] = { NULL, "W-\"77\"", "" };
    relais_verdict v[3];
    relais_answer a[3];
    deliver_many(&k, evs, lids, 3, v, a);   /* the simulator checked token and signature */
    for (int i = 0; i < 3; i++) assert_int_equal(v[i], RELAIS_DELIVER_OK);
    json_t *got = sim_get(&SIM_AUTH, "/_sim/events?path=/in/archive");
    assert_int_equal(json_array_size(got), 3);
    assert_null(relais_json_pointer(got, "/0/event/relaislocalid"));
    assert_string_equal(jstr(got, "/1/event/relaislocalid"), "W-\"77\"");
    assert_null(relais_json_pointer(got, "/2/event/relaislocalid"));
    assert_string_equal(jstr(got, "/1/event/id"), relais_event_id(evs[1]));   /* the rest intact */
    assert_string_equal(jstr(got, "/1/event/data/name"), "Zélie");
    assert_string_equal(jstr(got, "/0/headers/x-town"), "Lyon");
    assert_true(json_is_true(relais_json_pointer(got, "/0/authorization")));
    assert_non_null(strstr(jstr(got, "/0/signature"), "v2="));
    json_decref(got);
    snk_free(&k);

    /* without the signature: 401 for the whole batch -> REJECT all */
    snk_open(&k, &SIM_AUTH, "/in/archive", "auth_token: env:HTTP_TEST_TOKEN\n");
    deliver_many(&k, evs, lids, 3, v, a);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(v[i], RELAIS_DELIVER_REJECT);
        assert_int_equal(a[i].status, 401);
        assert_non_null(strstr(a[i].detail, "X-Relais-Signature"));
    }
    snk_free(&k);
    for (int i = 0; i < 3; i++) relais_event_unref(evs[i]);
}

/* The simulator's batch protocol, driven by hand. */
static void test_sim_batch_protocol(void **state)
{
    const char *bh[] = { "Content-Type: application/cloudevents-batch+json", NULL };
    const char *body = "[{\"id\":\"e1\"},{\"type\":\"t\"},{\"id\":\"e1\"},{\"id\":\"e2\"},7]";
    resp *r = req_expect(SIM.port, "POST", "/in/p", bh, body, 207);
    assert_int_equal(json_array_size(r->json), 5);
    assert_string_equal(jstr(r->json, "/0/id"), "L-1");
    assert_int_equal(json_integer_value(relais_json_pointer(r->json, "/1/status")), 400);
    assert_string_equal(jstr(r->json, "/2/id"), "L-1");
    assert_true(json_is_true(relais_json_pointer(r->json, "/2/duplicate")));
    assert_string_equal(jstr(r->json, "/3/id"), "L-2");
    assert_int_equal(json_integer_value(relais_json_pointer(r->json, "/4/status")), 400);
    resp_free(r);
    json_t *st = sim_get(&SIM, "/_sim/stats");
    assert_int_equal(json_integer_value(relais_json_pointer(st, "/raw")), 5);
    assert_int_equal(json_integer_value(relais_json_pointer(st, "/distinct")), 2);
    assert_int_equal(json_integer_value(relais_json_pointer(st, "/duplicates")), 1);
    assert_int_equal(json_integer_value(relais_json_pointer(st, "/failed")), 2);
    assert_int_equal(json_integer_value(relais_json_pointer(st, "/requests")), 1);
    assert_int_equal(json_integer_value(relais_json_pointer(st, "/paths/~1in~1p/requests")), 1);
    assert_int_equal(json_integer_value(relais_json_pointer(st, "/paths/~1in~1p/raw")), 5);
    json_decref(st);

    /* all duplicates: 200; the batch type with a parameter is still a batch */
    const char *bh2[] = { "Content-Type: Application/CloudEvents-Batch+JSON; charset=utf-8", NULL };
    body = "[{\"id\":\"e2\"}]";
    r = req_expect(SIM.port, "POST", "/in/p", bh2, body, 200);
    assert_string_equal(jstr(r->json, "/0/id"), "L-2");
    resp_free(r);

    /* not an array: 400 for the request */
    body = "{\"id\":\"e3\"}";
    resp_free(req_expect(SIM.port, "POST", "/in/p", bh, body, 400));

    /* per_event needs a status */
    body = "{\"per_event\":true}";
    resp_free(req_expect(SIM.port, "POST", "/_sim/fail", NULL, body, 400));
}

/* A destination that answers every POST with a fixed status and body, and
 * keeps what the last request carried. MHD runs it on one internal thread
 * (requests are served one at a time); the test thread reads `last_*` only
 * after canned_stop() has joined that thread. */
typedef struct canned {
    struct MHD_Daemon *d;
    int         port;
    unsigned    status;
    const char *answer;
    char       *body;          /* last request body */
    size_t      len;
    char        ids[16384];    /* its Relais-Batch-Ids header, "" when absent */
    char        size[32];      /* its Relais-Batch-Size header */
    int         has_key;       /* it had an Idempotency-Key */
} canned;

static enum MHD_Result canned_req(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **con_cls)
{
    canned *k = cls;
    if (!*con_cls) {
        *con_cls = k;
        k->len = 0;
        return MHD_YES;
    }
    if (*size) {
        char *nb = realloc(k->body, k->len + *size + 1);
        if (!nb) return MHD_NO;
        k->body = nb;
        memcpy(k->body + k->len, data, *size);
        k->len += *size;
        k->body[k->len] = '\0';
        *size = 0;
        return MHD_YES;
    }
    const char *ids = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Relais-Batch-Ids");
    const char *sz = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Relais-Batch-Size");
    snprintf(k->ids, sizeof k->ids, "%s", ids ? ids : "");
    snprintf(k->size, sizeof k->size, "%s", sz ? sz : "");
    k->has_key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key") != NULL;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(k->answer), (void *)k->answer,
                                                             MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(c, k->status, r);
    MHD_destroy_response(r);
    return ret;
}

static void canned_start(canned *k, unsigned status, const char *answer)
{
    memset(k, 0, sizeof *k);
    k->status = status;
    k->answer = answer;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    k->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
                            canned_req, k, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_END);
    assert_non_null(k->d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(k->d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    k->port = (int)info->port;
}

static void canned_stop(canned *k)
{
    MHD_stop_daemon(k->d);
    k->d = NULL;
}

/* Deliver evs to a canned answer with the given id_pointer line. */
static void batch_to_canned(canned *ck, unsigned status, const char *answer, const char *extra,
                            relais_event **evs, size_t n, relais_verdict *v, relais_answer *a)
{
    canned_start(ck, status, answer);
    char y[512];
    snprintf(y, sizeof y, "url: http://127.0.0.1:%d/bulk\n%s", ck->port, extra ? extra : "");
    snk k;
    snk_new(&k, y);
    deliver_many(&k, evs, NULL, n, v, a);
    snk_free(&k);
    canned_stop(ck);
}

static void test_sink_batch_answers(void **state)
{
    relais_event *evs[3];
    for (int i = 0; i < 3; i++) evs[i] = mk_event_n("person/c", i);
    relais_verdict v[3];
    relais_answer a[3];
    canned ck;

    /* {"results":[...]} and what was sent */
    batch_to_canned(&ck, 200, "{\"results\":[{\"id\":\"A\"},{\"id\":\"B\"},{\"id\":42}]}",
                    "id_pointer: /id\n", evs, 3, v, a);
    assert_string_equal(a[0].local_id, "A");
    assert_string_equal(a[1].local_id, "B");
    assert_string_equal(a[2].local_id, "42");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(v[i], RELAIS_DELIVER_OK);
        assert_int_equal(a[i].status, 200);
    }
    assert_int_equal(ck.has_key, 0);
    assert_string_equal(ck.size, "3");
    char ids[256];
    snprintf(ids, sizeof ids, "%s,%s,%s", relais_event_id(evs[0]), relais_event_id(evs[1]),
             relais_event_id(evs[2]));
    assert_string_equal(ck.ids, ids);
    json_t *sent = json_loadb(ck.body, ck.len, 0, NULL);
    assert_true(json_is_array(sent));
    assert_int_equal(json_array_size(sent), 3);
    for (int i = 0; i < 3; i++) {
        size_t len = 0;
        const char *j = relais_event_json(evs[i], &len);
        json_t *want = json_loadb(j, len, 0, NULL);
        assert_true(json_equal(json_array_get(sent, (size_t)i), want));   /* the canonical event */
        json_decref(want);
    }
    json_decref(sent);
    free(ck.body);

    /* a plain array of ids, id_pointer "" (the element itself) */
    batch_to_canned(&ck, 201, "[\"x-1\",7,\"x-3\"]", "id_pointer: \"\"\n", evs, 3, v, a);
    assert_string_equal(a[0].local_id, "x-1");
    assert_string_equal(a[1].local_id, "7");
    assert_string_equal(a[2].local_id, "x-3");
    free(ck.body);

    /* without id_pointer no local id is taken, per-event statuses still are */
    batch_to_canned(&ck, 200, "[{\"id\":\"A\"},{\"id\":\"B\",\"status\":409},{\"id\":\"C\"}]",
                    NULL, evs, 3, v, a);
    assert_int_equal(v[0], RELAIS_DELIVER_OK);
    assert_string_equal(a[0].local_id, "");
    assert_int_equal(v[1], RELAIS_DELIVER_REJECT);
    assert_int_equal(a[1].status, 409);
    free(ck.body);

    /* per-event statuses: ok without id, refused, a status that is not a number ignored */
    batch_to_canned(&ck, 207,
                    "[{\"status\":201},{\"status\":409,\"error\":\"conflict\"},"
                    "{\"status\":\"bad\",\"id\":\"Z\"}]",
                    "id_pointer: /id\n", evs, 3, v, a);
    assert_int_equal(v[0], RELAIS_DELIVER_OK);
    assert_int_equal(a[0].status, 201);
    assert_non_null(strstr(a[0].detail, "(no id at /id)"));
    assert_int_equal(v[1], RELAIS_DELIVER_REJECT);
    assert_int_equal(a[1].status, 409);
    assert_non_null(strstr(a[1].detail, "element 1 of 3: 409 refused"));
    assert_non_null(strstr(a[1].detail, "conflict"));
    assert_int_equal(v[2], RELAIS_DELIVER_OK);
    assert_int_equal(a[2].status, 207);
    assert_string_equal(a[2].local_id, "Z");
    free(ck.body);
    batch_to_canned(&ck, 200, "{\"results\":[{\"status\":500},{\"status\":429},{\"status\":99}]}",
                    NULL, evs, 3, v, a);
    assert_int_equal(v[0], RELAIS_DELIVER_RETRY);
    assert_int_equal(v[1], RELAIS_DELIVER_RETRY);
    assert_int_equal(v[2], RELAIS_DELIVER_OK);
    assert_int_equal(a[2].status, 200);
    free(ck.body);

    /* answers that do not speak per event: the request's verdict for all, no ids */
    struct { unsigned status; const char *answer; relais_verdict v; const char *note; } cases[] = {
        { 200, "[{\"id\":\"A\"}]", RELAIS_DELIVER_OK, "(no ids: answer has 1 results for 3 events)" },
        { 202, "accepted", RELAIS_DELIVER_OK, "(no ids: answer is not JSON)" },
        { 200, "{\"id\":\"A\"}", RELAIS_DELIVER_OK, "(no ids: answer is neither an array" },
        { 500, "[{\"id\":\"A\"},{\"id\":\"B\"},{\"id\":\"C\"}]", RELAIS_DELIVER_RETRY, "HTTP 500" },
        { 400, "[{\"id\":\"A\"},{\"id\":\"B\"},{\"id\":\"C\"}]", RELAIS_DELIVER_REJECT, "HTTP 400 refused" },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        batch_to_canned(&ck, cases[c].status, cases[c].answer, "id_pointer: /id\n", evs, 3, v, a);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(v[i], cases[c].v);
            assert_int_equal(a[i].status, (int)cases[c].status);
            assert_string_equal(a[i].local_id, "");
            if (!strstr(a[i].detail, cases[c].note))
                fail_msg("case %zu: detail '%s' lacks '%s'", c, a[i].detail, cases[c].note);
        }
        free(ck.body);
    }
    for (int i = 0; i < 3; i++) relais_event_unref(evs[i]);

    /* a large batch: Relais-Batch-Ids would pass 8 KiB, so only the size is sent */
    relais_event *many[300];
    relais_verdict mv[300];
    relais_answer *ma = calloc(300, sizeof *ma);
    for (int i = 0; i < 300; i++) many[i] = mk_event_n("person/m", i);
    batch_to_canned(&ck, 200, "[]", NULL, many, 300, mv, ma);
    assert_string_equal(ck.ids, "");
    assert_string_equal(ck.size, "300");
    sent = json_loadb(ck.body, ck.len, 0, NULL);
    assert_int_equal(json_array_size(sent), 300);
    assert_string_equal(jstr(sent, "/299/id"), relais_event_id(many[299]));
    json_decref(sent);
    free(ck.body);
    for (int i = 0; i < 300; i++) {
        assert_int_equal(mv[i], RELAIS_DELIVER_OK);
        relais_event_unref(many[i]);
    }
    free(ma);
}

/* A Relais sink batching into a Relais webhook source: the source takes the
 * CloudEvents batch and its {"results":[{"event_id":..}]} answer gives the
 * sink one local id per event. */
static void test_sink_batch_to_source(void **state)
{
    fake_reset();
    src s;
    src_start(&s, "listen: 127.0.0.1:0\n");
    char y[256];
    snprintf(y, sizeof y, "url: http://127.0.0.1:%d/events\nid_pointer: /event_id\n", s.port);
    snk k;
    snk_new(&k, y);
    relais_event *evs[3];
    for (int i = 0; i < 3; i++) evs[i] = mk_event_n("person/s", i);
    relais_verdict v[3];
    relais_answer a[3];
    deliver_many(&k, evs, NULL, 3, v, a);
    assert_int_equal(fake_count(&F.recs), 3);
    pthread_mutex_lock(&F.lock);
    assert_int_equal(F.nsubmit, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(v[i], RELAIS_DELIVER_OK);
        assert_int_equal(a[i].status, 202);
        /* the receiving hub's event id for that record */
        const char *rid = relais_event_record_id(evs[i]);
        char p[64];
        snprintf(p, sizeof p, "/%d/record_id", i);
        assert_string_equal(jstr(F.recs, p), rid);
        assert_string_equal(a[i].local_id, json_string_value(json_object_get(F.seen, rid)));
    }
    pthread_mutex_unlock(&F.lock);
    for (int i = 0; i < 3; i++) relais_event_unref(evs[i]);
    snk_free(&k);
    src_stop(&s);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    setenv("HTTP_TEST_SECRET", "s3cret", 1);
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_value_text),
        cmocka_unit_test(test_depth_check),
        cmocka_unit_test(test_signature_vector),
        cmocka_unit_test(test_excerpt),
        cmocka_unit_test(test_upload_buffer),
        cmocka_unit_test(test_options),
    };
    const struct CMUnitTest source[] = {
        cmocka_unit_test_setup(test_single_record, source_setup),
        cmocka_unit_test_setup(test_batch, source_setup),
        cmocka_unit_test_setup(test_batch_bad_element, source_setup),
        cmocka_unit_test_setup(test_single_rejected, source_setup),
        cmocka_unit_test_setup(test_malformed_json, source_setup),
        cmocka_unit_test_setup(test_duplicate_keys, source_setup),
        cmocka_unit_test_setup(test_deep_nesting, source_setup),
        cmocka_unit_test_setup(test_oversized, source_setup),
        cmocka_unit_test_setup(test_max_batch, source_setup),
        cmocka_unit_test_setup(test_invalid_utf8, source_setup),
        cmocka_unit_test_setup(test_hmac, source_setup),
        cmocka_unit_test_setup(test_unavailable, source_setup),
        cmocka_unit_test_setup(test_path_and_method, source_setup),
        cmocka_unit_test_setup(test_cloudevent, source_setup),
        cmocka_unit_test_setup(test_record_id_pointer, source_setup),
        cmocka_unit_test_setup(test_port_file, source_setup),
        cmocka_unit_test_setup(test_concurrent_posts, source_setup),
    };
    const struct CMUnitTest sink[] = {
        cmocka_unit_test_setup(test_sink_ok, sink_setup),
        cmocka_unit_test_setup(test_sink_verdicts, sink_setup),
        cmocka_unit_test_setup(test_sink_transport, sink_setup),
        cmocka_unit_test_setup(test_sink_auth_signature_headers, sink_setup),
        cmocka_unit_test_setup(test_sink_concurrent_keepalive, sink_setup),
        cmocka_unit_test_setup(test_sink_batch, sink_setup),
        cmocka_unit_test_setup(test_sink_batch_faults, sink_setup),
        cmocka_unit_test_setup(test_sink_batch_local_ids_auth, sink_setup),
        cmocka_unit_test_setup(test_sim_batch_protocol, sink_setup),
        cmocka_unit_test(test_sink_batch_answers),
        cmocka_unit_test(test_sink_batch_to_source),
    };
    int failed = cmocka_run_group_tests_name("http pure", pure, NULL, NULL);
    failed += cmocka_run_group_tests_name("http source", source, NULL, NULL);
    failed += cmocka_run_group_tests_name("http sink", sink, sink_group_setup, sink_group_teardown);
    fake_reset();
    json_decref(F.recs);
    json_decref(F.rejects);
    json_decref(F.seen);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
