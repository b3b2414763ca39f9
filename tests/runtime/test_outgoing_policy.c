/*
 * test_outgoing_policy.c - the outgoing-call policy (hub/httputil.c) on real
 * libcurl transfers against servers on loopback, and the webhook's replay
 * window (connectors/http/http_source.c):
 *
 *   - file://, gopher:// (and http:// for the SMTP policy) refused, where a
 *     bare handle reads the file and connects (the controls);
 *   - a redirect not followed, even when the handle was told to follow;
 *   - the whole-exchange timeout;
 *   - the allow-list: a listed name resolving (CURLOPT_RESOLVE, "localhost")
 *     to an address outside the ranges gets no connection at all; a name
 *     not listed whose address is allowed is stopped by the pre-request
 *     check before its request is sent; the http sink turns either into a
 *     REJECT with the reason and the server counts no request; the SMTP
 *     transport of the notify connector never connects (EHLO and AUTH come
 *     before the pre-request callback, which is why the address is also
 *     checked before connecting);
 *   - tls_verify: false logs a warning; a tls_ca_file that cannot be read is
 *     refused at init;
 *   - webhook: the same signed request twice (409 the second time), a new
 *     nonce (202), a stale one (401), the memory of nonces full (429 with
 *     Retry-After), a request not taken (503) forgetting its nonce.
 *
 * Threads: the test server runs libmicrohttpd with a thread per connection;
 * its counters are atomics. Everything else runs on the test thread.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include "testsupport.h"
#include "instance.h"
#include "httputil.h"
#include "../../connectors/http/http_int.h"
#include "../../connectors/notify/notify_int.h"
#include "event_int.h"
#include "options.h"
#include "yamltree.h"

extern const relais_connector relais_connector_http;

/* ---- a counting HTTP server ------------------------------------------------------ */

static struct {
    struct MHD_Daemon *d;
    int                port;
    atomic_int         connections;
    atomic_int         requests;       /* every request */
    atomic_int         events;         /* requests to /events */
} S;

static void on_conn(void *cls, struct MHD_Connection *c, void **socket_context,
                    enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    (void)c;
    (void)socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) atomic_fetch_add(&S.connections, 1);
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *body,
                              const char *hname, const char *hvalue)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body,
                                                             MHD_RESPMEM_MUST_COPY);
    if (hname) MHD_add_response_header(r, hname, hvalue);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)method;
    (void)version;
    (void)upload;
    if (!*con_cls) {
        *con_cls = (void *)1;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    atomic_fetch_add(&S.requests, 1);
    if (strcmp(url, "/redirect") == 0) {
        char loc[64];
        snprintf(loc, sizeof loc, "http://127.0.0.1:%d/events", S.port);
        return answer(c, 302, "moved", "Location", loc);
    }
    if (strcmp(url, "/slow") == 0) {
        ts_sleep_ms(1500);
        return answer(c, 200, "late", NULL, NULL);
    }
    if (strcmp(url, "/events") == 0) atomic_fetch_add(&S.events, 1);
    return answer(c, 201, "{\"id\":\"L-1\"}", "Content-Type", "application/json");
}

static int server_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    S.port = ts_free_port();
    S.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, (uint16_t)S.port,
                           NULL, NULL, on_request, NULL, MHD_OPTION_NOTIFY_CONNECTION, on_conn, NULL,
                           MHD_OPTION_END);
    return S.d ? 0 : -1;
}

static int server_teardown(void **state)
{
    (void)state;
    MHD_stop_daemon(S.d);
    curl_global_cleanup();
    return 0;
}

static void counters_reset(void)
{
    atomic_store(&S.connections, 0);
    atomic_store(&S.requests, 0);
    atomic_store(&S.events, 0);
}

static size_t sink_bytes(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    *(size_t *)ud += size * n;
    return size * n;
}

static relais_http_allow *allow_of(const char *const *entries)
{
    relais_http_allow *a = relais_http_allow_new();
    char err[256];
    for (size_t i = 0; entries[i]; i++)
        if (relais_http_allow_add(a, entries[i], err, sizeof err) != 0) fail_msg("%s", err);
    return a;
}

/* ---- protocols, redirects, timeouts ---------------------------------------------- */

static void test_protocols_refused(void **state)
{
    (void)state;
    counters_reset();
    char *path = ts_write_temp(".txt", "secret of the hub\n");
    char url[512];
    snprintf(url, sizeof url, "file://%s", path);
    size_t got = 0;

    /* control: a bare libcurl handle reads the file */
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_bytes);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    assert_true(got > 0);

    /* the policy: refused, nothing read */
    relais_http_guard g;
    got = 0;
    curl_easy_reset(h);
    assert_int_equal(relais_http_policy_apply(h, NULL, &g, 2000, 1000), 0);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_bytes);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
    assert_int_equal(curl_easy_perform(h), CURLE_UNSUPPORTED_PROTOCOL);
    assert_int_equal(got, 0);

    /* gopher:// to our server: the bare handle connects, the policy does not */
    snprintf(url, sizeof url, "gopher://127.0.0.1:%d/1", S.port);
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_bytes);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
    curl_easy_perform(h);
    assert_int_equal(atomic_load(&S.connections), 1);
    counters_reset();
    curl_easy_reset(h);
    assert_int_equal(relais_http_policy_apply(h, NULL, &g, 1000, 1000), 0);
    curl_easy_setopt(h, CURLOPT_URL, url);
    assert_int_equal(curl_easy_perform(h), CURLE_UNSUPPORTED_PROTOCOL);
    ts_sleep_ms(100);
    assert_int_equal(atomic_load(&S.connections), 0);

    /* the notify connector's SMTP policy refuses http:// */
    relais_http_policy smtp = { .protocols = "smtp,smtps" };
    snprintf(url, sizeof url, "http://127.0.0.1:%d/events", S.port);
    curl_easy_reset(h);
    assert_int_equal(relais_http_policy_apply(h, &smtp, &g, 1000, 1000), 0);
    curl_easy_setopt(h, CURLOPT_URL, url);
    assert_int_equal(curl_easy_perform(h), CURLE_UNSUPPORTED_PROTOCOL);
    assert_int_equal(atomic_load(&S.requests), 0);
    curl_easy_cleanup(h);
}

static void test_redirect_not_followed(void **state)
{
    (void)state;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/redirect", S.port);
    size_t got = 0;
    long code = 0;

    /* control: a handle told to follow reaches /events */
    counters_reset();
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_bytes);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    assert_int_equal(atomic_load(&S.events), 1);

    /* the policy, applied after the same setting: the 302 is the answer */
    counters_reset();
    curl_easy_reset(h);
    relais_http_guard g;
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    assert_int_equal(relais_http_policy_apply(h, NULL, &g, 2000, 1000), 0);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_bytes);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    assert_int_equal(code, 302);
    assert_int_equal(atomic_load(&S.requests), 1);
    assert_int_equal(atomic_load(&S.events), 0);
    curl_easy_cleanup(h);
}

static void test_timeout(void **state)
{
    (void)state;
    relais_http_pool *pool = relais_http_pool_new();
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/slow", S.port);
    relais_http_request rq = { .url = url, .timeout_ms = 300, .connect_timeout_ms = 200, .max_answer = 100 };
    relais_http_answer a;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(relais_http_perform(pool, &rq, &a), -1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_int_equal(a.code, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(a.refused, 0);
    assert_true(ms < 1500);   /* cut before the server answers (1500 ms) */
    free(a.body);
    relais_http_pool_destroy(pool);
}

/* ---- the allow-list ----------------------------------------------------------- */

/* GET url on a fresh handle under policy p, with host:port resolved to
 * 127.0.0.1 when host is given. Returns curl's code. */
static CURLcode get_under(const relais_http_policy *p, const char *host, const char *url, relais_http_guard *g,
                          long *status)
{
    CURL *h = curl_easy_init();
    struct curl_slist *res = NULL;
    size_t got = 0;
    assert_int_equal(relais_http_policy_apply(h, p, g, 2000, 1000), 0);
    if (host) {
        char line[300];
        snprintf(line, sizeof line, "%s:%d:127.0.0.1", host, S.port);
        res = curl_slist_append(NULL, line);
        curl_easy_setopt(h, CURLOPT_RESOLVE, res);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_bytes);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
    CURLcode rc = curl_easy_perform(h);
    *status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    curl_slist_free_all(res);
    return rc;
}

static void test_allow_address(void **state)
{
    (void)state;
    char url[200];
    long status;
    relais_http_guard g;
    snprintf(url, sizeof url, "http://publik.mairie.example:%d/events", S.port);

    /* a listed name whose answer (CURLOPT_RESOLVE) is outside the ranges: no connection */
    const char *const e1[] = { "publik.mairie.example", "10.0.0.0/8", NULL };
    relais_http_allow *a = allow_of(e1);
    relais_http_policy p = { .allow = a };
    counters_reset();
    assert_int_equal(get_under(&p, "publik.mairie.example", url, &g, &status), CURLE_COULDNT_CONNECT);
    assert_true(relais_http_guard_refused(&g));
    assert_non_null(strstr(g.why, "publik.mairie.example resolves to 127.0.0.1, outside the address ranges"));
    ts_sleep_ms(100);
    assert_int_equal(atomic_load(&S.connections), 0);
    assert_int_equal(atomic_load(&S.requests), 0);
    relais_http_allow_destroy(a);

    /* "localhost" listed by name: still 127.0.0.1 (or ::1), outside 10.0.0.0/8 */
    const char *const e2[] = { "localhost", "10.0.0.0/8", NULL };
    a = allow_of(e2);
    p.allow = a;
    snprintf(url, sizeof url, "http://localhost:%d/events", S.port);
    assert_int_not_equal(get_under(&p, NULL, url, &g, &status), CURLE_OK);
    assert_true(relais_http_guard_refused(&g));
    assert_non_null(strstr(g.why, "refused by outgoing.allow: localhost resolves to"));
    assert_int_equal(atomic_load(&S.requests), 0);
    relais_http_allow_destroy(a);

    /* with the range listed, the same call goes through */
    const char *const e3[] = { "publik.mairie.example", "127.0.0.1/32", NULL };
    a = allow_of(e3);
    p.allow = a;
    snprintf(url, sizeof url, "http://publik.mairie.example:%d/events", S.port);
    assert_int_equal(get_under(&p, "publik.mairie.example", url, &g, &status), CURLE_OK);
    assert_int_equal(status, 201);
    assert_false(relais_http_guard_refused(&g));
    assert_int_equal(atomic_load(&S.events), 1);
    relais_http_allow_destroy(a);
}

static void test_allow_prerequest_host(void **state)
{
    (void)state;
    /* the address is allowed, the name is not: the connection is made, the
     * pre-request check stops the request before it is sent */
    const char *const e[] = { "publik.mairie.example", "127.0.0.0/8", NULL };
    relais_http_allow *a = allow_of(e);
    relais_http_policy p = { .allow = a };
    char url[200];
    long status;
    relais_http_guard g;
    snprintf(url, sizeof url, "http://other.example:%d/events", S.port);
    counters_reset();
    assert_int_equal(get_under(&p, "other.example", url, &g, &status), CURLE_ABORTED_BY_CALLBACK);
    assert_true(g.refused);
    assert_true(relais_http_guard_refused(&g));
    assert_non_null(strstr(g.why, "host 'other.example' is not in the list"));
    ts_sleep_ms(100);
    assert_int_equal(atomic_load(&S.requests), 0);
    relais_http_allow_destroy(a);
}

static void test_sink_refused(void **state)
{
    (void)state;
    const char *const e[] = { "localhost", "10.0.0.0/8", NULL };
    relais_http_allow *a = allow_of(e);
    ts_recorder *rec = ts_recorder_new();
    char yaml[300], err[512];
    snprintf(yaml, sizeof yaml, "url: http://localhost:%d/events\ntimeout: 2s\n", S.port);
    yt_node *map = yt_load_buffer("t.yaml", yaml, strlen(yaml), err, sizeof err);
    void *cfg = calloc(1, relais_connector_http.config_size);
    relais_errlist errs;
    relais_errlist_init(&errs);
    assert_int_equal(relais_options_apply(relais_connector_http.options, cfg, RELAIS_MODE_SINK, map, NULL, "t.yaml",
                                          &errs), 0);
    relais_errlist_free(&errs);
    yt_free(map);
    relais_instance *inst = relais_instance_new("worksite", "ville", RELAIS_MODE_SINK, &relais_connector_http, cfg,
                                                ts_recorder_ops(), rec, NULL);
    inst->outgoing_allow = a;
    void *ctx = NULL;
    assert_int_equal(relais_connector_http.init(inst, cfg, &ctx, err, sizeof err), 0);
    inst->ctx = ctx;
    relais_event *ev = ts_event("request/1", "{\"id\":\"R-1\"}");
    relais_answer ans;
    memset(&ans, 0, sizeof ans);
    counters_reset();
    assert_int_equal(relais_connector_http.deliver(ctx, ev, NULL, &ans), RELAIS_DELIVER_REJECT);
    assert_int_equal(ans.status, 0);
    assert_non_null(strstr(ans.detail, "refused by outgoing.allow: localhost resolves to"));
    assert_int_equal(atomic_load(&S.requests), 0);
    relais_event_unref(ev);
    relais_connector_http.destroy(ctx);
    relais_instance_destroy(inst);
    relais_options_free(relais_connector_http.options, cfg);
    free(cfg);
    ts_recorder_free(rec);
    relais_http_allow_destroy(a);
}

static void test_smtp_not_connected(void **state)
{
    (void)state;
    /* a TCP listener that only counts connections (EHLO and AUTH would go
     * out on the first one, before any pre-request callback) */
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int port = ts_free_port();
    sa.sin_port = htons((uint16_t)port);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(ls, 4), 0);

    const char *const e[] = { "relay.mairie.example", "10.0.0.0/8", NULL };
    relais_http_allow *a = allow_of(e);
    char url[100];
    snprintf(url, sizeof url, "smtp://127.0.0.1:%d", port);
    notify_smtp s = { .url = url, .from = "mairie@mairie.example", .user = "relais", .password = "s3cret",
                      .tls = 0, .timeout_ms = 2000,
                      .policy = { .protocols = "smtp,smtps", .allow = a } };
    notify_result r;
    const char *msg = "Subject: t\r\n\r\nbody\r\n";
    notify_send_email(&s, "jeanne@example.org", msg, strlen(msg), &r);
    assert_int_equal(r.verdict, RELAIS_DELIVER_REJECT);
    assert_non_null(strstr(r.detail, "refused by outgoing.allow"));
    assert_null(strstr(r.detail, "jeanne@example.org"));   /* the address stays masked */
    /* nobody connected */
    struct timeval tv = { 0, 200000 };
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(ls, &rd);
    assert_int_equal(select(ls + 1, &rd, NULL, NULL, &tv), 0);
    close(ls);
    relais_http_allow_destroy(a);
}

/* ---- TLS settings of an instance ------------------------------------------------ */

static void test_tls_options(void **state)
{
    (void)state;
    relais_instance *inst = relais_instance_new("archive", "ville", RELAIS_MODE_SINK, &relais_connector_http, NULL,
                                                NULL, NULL, NULL);
    relais_http_policy p;
    char err[300];
    /* an unreadable CA file is refused, naming the option */
    assert_int_equal(relais_http_policy_init(&p, inst, NULL, "/nonexistent/ca.pem", 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "tls_ca_file '/nonexistent/ca.pem'"));
    /* verification off: explicit, and a warning naming the instance at init */
    fflush(stderr);
    char *path = ts_write_temp(".log", "");
    int saved = dup(2);
    FILE *f = fopen(path, "w");
    dup2(fileno(f), 2);
    assert_int_equal(relais_http_policy_init(&p, inst, NULL, NULL, 0, err, sizeof err), 0);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(f);
    char *log = ts_read_file(path, NULL);
    assert_non_null(strstr(log, "WARN"));
    assert_non_null(strstr(log, "archive"));
    assert_non_null(strstr(log, "tls_verify is false"));
    assert_int_equal(p.tls_insecure, 1);
    free(log);
    /* by default: verified, no warning */
    assert_int_equal(relais_http_policy_init(&p, inst, NULL, NULL, 1, err, sizeof err), 0);
    assert_int_equal(p.tls_insecure, 0);
    relais_instance_destroy(inst);
}

/* ---- webhook replay window --------------------------------------------------------- */

static int post_signed(int port, const char *body, const char *secret, long long ts, const char *nonce,
                       char *retry_after, size_t ralen)
{
    char sig[160], h1[200], h2[120];
    assert_int_equal(relais_http_signature_header(secret, ts, nonce, body, strlen(body), sig, sizeof sig), 0);
    snprintf(h1, sizeof h1, "X-Relais-Signature: %s", sig);
    snprintf(h2, sizeof h2, "X-Relais-Nonce: %s", nonce);
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");
    hl = curl_slist_append(hl, h1);
    hl = curl_slist_append(hl, h2);
    char url[100];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/events", port);
    CURL *h = curl_easy_init();
    size_t got = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_bytes);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (retry_after) {
        struct curl_header *hd = NULL;
        retry_after[0] = '\0';
        if (curl_easy_header(h, "Retry-After", 0, CURLH_HEADER, -1, &hd) == CURLHE_OK)
            snprintf(retry_after, ralen, "%s", hd->value);
    }
    curl_easy_cleanup(h);
    curl_slist_free_all(hl);
    return (int)code;
}

static void test_webhook_replay(void **state)
{
    (void)state;
    setenv("OUTGOING_TEST_SECRET", "s3cret", 1);
    ts_recorder *rec = ts_recorder_new();
    ts_conn c;
    char err[512], ra[32];
    int rc = ts_conn_open(&c, &relais_connector_http, "desk", RELAIS_MODE_SOURCE,
                          "listen: 127.0.0.1:0\nevent_type: fr.relais.grc.request.created.v1\n"
                          "record_id_pointer: /id\nhmac_secret: env:OUTGOING_TEST_SECRET\n"
                          "hmac_tolerance: 60s\nhmac_nonce_max: 4\n", rec, NULL, err, sizeof err);
    if (rc != 0) fail_msg("%s", err);
    int port = relais_http_ctx_port(c.ctx);
    long long now = (long long)time(NULL);

    /* the same signed request twice: the second one is refused, valid signature or not */
    assert_int_equal(post_signed(port, "{\"id\":\"W-1\"}", "s3cret", now, "nonce-aaaaaaaaaaaa01", NULL, 0), 202);
    assert_int_equal(post_signed(port, "{\"id\":\"W-1\"}", "s3cret", now, "nonce-aaaaaaaaaaaa01", NULL, 0), 409);
    assert_int_equal(ts_recorder_submit_calls(rec), 1);
    /* a new nonce passes (here the record is a duplicate for the hub, not a replay) */
    assert_int_equal(post_signed(port, "{\"id\":\"W-1\"}", "s3cret", now, "nonce-aaaaaaaaaaaa02", NULL, 0), 202);
    assert_int_equal(ts_recorder_submit_calls(rec), 2);
    /* a stale timestamp is refused before its nonce is looked at */
    assert_int_equal(post_signed(port, "{\"id\":\"W-2\"}", "s3cret", now - 120, "nonce-aaaaaaaaaaaa03", NULL, 0),
                     401);
    /* a wrong secret does not burn the nonce of a legitimate sender */
    assert_int_equal(post_signed(port, "{\"id\":\"W-2\"}", "wrong", now, "nonce-aaaaaaaaaaaa04", NULL, 0), 401);

    /* a request not taken (journal down: 503) forgets its nonce: the very
     * same request is accepted once the hub is back */
    ts_recorder_set_down(rec, 1);
    assert_int_equal(post_signed(port, "{\"id\":\"W-3\"}", "s3cret", now, "nonce-aaaaaaaaaaaa04", NULL, 0), 503);
    ts_recorder_set_down(rec, 0);
    assert_int_equal(post_signed(port, "{\"id\":\"W-3\"}", "s3cret", now, "nonce-aaaaaaaaaaaa04", NULL, 0), 202);

    /* hmac_nonce_max: 4 entries held (01, 02, and 04 twice: a forgotten
     * entry keeps its room until it expires): a new nonce is refused with
     * 429 and a Retry-After */
    rc = post_signed(port, "{\"id\":\"W-4\"}", "s3cret", now, "nonce-aaaaaaaaaaaa05", ra, sizeof ra);
    assert_int_equal(rc, 429);
    assert_true(atoi(ra) >= 1 && atoi(ra) <= 60);
    assert_int_equal(ts_recorder_nsubs(rec), 3);   /* W-1 twice (dedupe happens in the hub), W-3 */
    ts_conn_close(&c);
    ts_recorder_free(rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protocols_refused),
        cmocka_unit_test(test_redirect_not_followed),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_allow_address),
        cmocka_unit_test(test_allow_prerequest_host),
        cmocka_unit_test(test_sink_refused),
        cmocka_unit_test(test_smtp_not_connected),
        cmocka_unit_test(test_tls_options),
        cmocka_unit_test(test_webhook_replay),
    };
    return cmocka_run_group_tests(tests, server_setup, server_teardown);
}
