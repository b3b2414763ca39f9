/*
 * test_simkit.c - hub/simkit.c (what the relais-sim-* programs share) and the
 * client half of hub/httputil.c, against each other on loopback:
 *   - /_sim/fail's common members parsed (defaults, ranges, types, the SMTP
 *     "code" key) and taken request by request (count down, -1, off);
 *   - the common options, address resolution (IPv4, IPv6, refusals);
 *   - a daemon started with an extra option (MHD_OPTION_ARRAY: the
 *     connection callback is called), its port file, a capped request body,
 *     JSON answers and their fallback, the same port again after a stop;
 *   - relais_http_perform: headers and body sent, status and body back, the
 *     answer cap, keep-alive reuse through the pool, a transport failure;
 *   - relais_http_base_url_ok; relais_simkit_wait's timeout and signal.
 *
 * Threads: the test thread, and the daemon's connection threads, which only
 * touch `struct server` under its lock.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include "testsupport.h"
#include "httputil.h"
#include "simkit.h"

/* ---- Failure injection --------------------------------------------------- */

static void test_fault_parse(void **state)
{
    relais_simkit_fault f = { 7, 7, 7 };
    json_t *o = json_loads("{}", 0, NULL);
    assert_int_equal(relais_simkit_fault_parse(o, "status", 100, 599, &f), 0);
    assert_int_equal(f.status, 0);
    assert_int_equal(f.count, -1);          /* absent: until changed */
    assert_int_equal(f.delay_ms, 0);
    json_decref(o);

    o = json_loads("{\"status\":503,\"count\":2,\"delay_ms\":150,\"other\":true}", 0, NULL);
    assert_int_equal(relais_simkit_fault_parse(o, "status", 100, 599, &f), 0);
    assert_int_equal(f.status, 503);
    assert_int_equal(f.count, 2);
    assert_int_equal(f.delay_ms, 150);
    json_decref(o);

    static const char *const bad[] = { "{\"status\":99}", "{\"status\":600}", "{\"status\":\"503\"}",
                                       "{\"count\":1.5}", "{\"delay_ms\":\"1\"}", "[]", "3", NULL };
    for (size_t i = 0; bad[i]; i++) {
        relais_simkit_fault g = { 1, 2, 3 };
        o = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        assert_int_equal(relais_simkit_fault_parse(o, "status", 100, 599, &g), -1);
        assert_int_equal(g.status, 1);      /* untouched */
        assert_int_equal(g.delay_ms, 2);
        assert_int_equal(g.count, 3);
        json_decref(o);
    }
    assert_int_equal(relais_simkit_fault_parse(NULL, "status", 100, 599, &f), -1);

    /* the SMTP simulator's key and range */
    o = json_loads("{\"code\":451,\"status\":1}", 0, NULL);
    assert_int_equal(relais_simkit_fault_parse(o, "code", 400, 599, &f), 0);
    assert_int_equal(f.status, 451);
    json_decref(o);
    o = json_loads("{\"code\":250}", 0, NULL);
    assert_int_equal(relais_simkit_fault_parse(o, "code", 400, 599, &f), -1);
    json_decref(o);
}

static void test_fault_take(void **state)
{
    relais_simkit_fault f = { 503, 20, 2 };
    int st = -1;
    long delay = -1;
    assert_int_equal(relais_simkit_fault_take(&f, &st, &delay), 1);
    assert_int_equal(st, 503);
    assert_int_equal(delay, 20);
    assert_int_equal(relais_simkit_fault_take(&f, &st, &delay), 1);
    assert_int_equal(f.count, 0);
    st = -1;
    delay = -1;
    assert_int_equal(relais_simkit_fault_take(&f, &st, &delay), 0);   /* used up */
    assert_int_equal(st, -1);
    assert_int_equal(delay, -1);

    relais_simkit_fault forever = { 0, 5, -1 };   /* a delay only, until changed */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(relais_simkit_fault_take(&forever, &st, &delay), 1);
        assert_int_equal(st, 0);
        assert_int_equal(delay, 5);
    }
    assert_int_equal(forever.count, -1);
}

/* ---- Options, addresses, signals ----------------------------------------- */

static void test_options_and_addresses(void **state)
{
    relais_simkit k = { .name = "sim-test" };
    assert_int_equal(relais_simkit_option(&k, 'l', "127.0.0.1:0"), 1);
    assert_int_equal(relais_simkit_option(&k, 'p', "/tmp/x"), 1);
    assert_int_equal(relais_simkit_option(&k, 'q', NULL), 1);
    assert_int_equal(relais_simkit_option(&k, 'k', "v"), 0);
    assert_string_equal(k.listen, "127.0.0.1:0");
    assert_string_equal(k.port_file, "/tmp/x");
    assert_int_equal(k.quiet, 1);

    relais_simkit_addr a;
    assert_int_equal(relais_simkit_resolve(&k, "127.0.0.1:8080", &a), 0);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 8080);
    assert_int_equal(a.v6, 0);
    assert_int_equal(a.ss.ss_family, AF_INET);
    assert_string_equal(a.given, "127.0.0.1:8080");
    assert_int_equal(relais_simkit_resolve(&k, "[::1]:0", &a), 0);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.v6, 1);
    assert_int_equal(relais_simkit_resolve(&k, "127.0.0.1:x", &a), -1);
    assert_int_equal(relais_simkit_resolve(&k, "127.0.0.1", &a), -1);
    assert_int_equal(relais_simkit_resolve(&k, "no-such-host.invalid:80", &a), -1);
}

static void test_wait(void **state)
{
    relais_simkit k = { .name = "sim-test" };
    relais_simkit_block_signals(&k);
    assert_int_equal(relais_simkit_wait(&k, 10), 0);   /* nothing came */
    raise(SIGTERM);                                     /* blocked: pending */
    assert_int_equal(relais_simkit_wait(&k, 1000), SIGTERM);
    assert_int_equal(relais_simkit_wait(&k, 10), 0);
}

/* ---- A daemon and the client ---------------------------------------------- */

struct server {
    pthread_mutex_t lock;
    long connections;
    long too_large;
    char last_header[128];
    char last_method[16];
};

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct server *s = cls;
    if (toe != MHD_CONNECTION_NOTIFY_STARTED) return;
    pthread_mutex_lock(&s->lock);
    s->connections++;
    pthread_mutex_unlock(&s->lock);
}

/* GET /big: 1000 bytes; GET /null, /werr: no body ("{}", or w.c.s.'s
 * fallback); GET /real: 0.1 with 15 digits; anything else:
 * {"method","len","body"} of the request; a body over 64 bytes: 413. */
static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size,
                               void **con_cls)
{
    struct server *s = cls;
    enum MHD_Result ret;
    if (relais_simkit_upload(con_cls, upload_data, upload_data_size, 64, &ret)) return ret;
    relais_simkit_request *rq = *con_cls;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Test");
    pthread_mutex_lock(&s->lock);
    snprintf(s->last_header, sizeof s->last_header, "%s", h ? h : "");
    snprintf(s->last_method, sizeof s->last_method, "%s", method);
    if (rq->body.too_large) s->too_large++;
    pthread_mutex_unlock(&s->lock);
    if (rq->body.too_large) return relais_simkit_reply(c, 413, json_pack("{s:s}", "error", "too large"));
    if (strcmp(url, "/big") == 0) {
        char big[1001];
        memset(big, 'x', 1000);
        big[1000] = '\0';
        return relais_simkit_reply(c, 200, json_string(big));
    }
    if (strcmp(url, "/null") == 0) return relais_simkit_reply(c, 503, NULL);
    if (strcmp(url, "/werr") == 0)
        return relais_simkit_queue(c, 503, relais_simkit_json(NULL, 0, "{\"err\":1}"));
    if (strcmp(url, "/real") == 0)
        return relais_simkit_queue(c, 200, relais_simkit_json(json_pack("[f]", 0.1), JSON_REAL_PRECISION(15), NULL));
    return relais_simkit_reply(c, 201, json_pack("{s:s,s:I,s:s}", "method", method, "len",
                                                 (json_int_t)rq->body.len, "body",
                                                 rq->body.buf ? rq->body.buf : ""));
}

static int perform(relais_http_pool *pool, const char *method, const char *url, const char *body,
                   size_t max, relais_http_answer *a)
{
    static const char *const headers[] = { "X-Test: yes", "Accept: application/json", NULL };
    relais_http_request rq = { .method = method, .url = url, .headers = headers, .body = body,
                               .len = body ? strlen(body) : 0, .timeout_ms = 5000, .connect_timeout_ms = 2000,
                               .user_agent = "relais-test", .max_answer = max };
    return relais_http_perform(pool, &rq, a);
}

static void test_daemon_and_client(void **state)
{
    assert_int_equal(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    struct server s = { .connections = 0 };
    pthread_mutex_init(&s.lock, NULL);
    const char *port_file = ts_write_temp(".port", "");   /* the support library's */
    relais_simkit k = { .name = "sim-test", .quiet = 1, .port_file = port_file };
    assert_int_equal(relais_simkit_resolve(&k, "127.0.0.1:0", &k.at), 0);
    const struct MHD_OptionItem extra[] = {
        { MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, &s },
        { MHD_OPTION_END, 0, NULL }
    };
    struct MHD_Daemon *d = relais_simkit_listen(&k, handler, &s, relais_simkit_completed, extra);
    assert_non_null(d);
    assert_true(k.bound > 0);
    assert_int_equal(relais_simkit_ready(&k, d), 0);
    FILE *f = fopen(port_file, "r");
    assert_non_null(f);
    int written = 0;
    assert_int_equal(fscanf(f, "%d", &written), 1);
    fclose(f);
    assert_int_equal(written, k.bound);

    relais_http_pool *pool = relais_http_pool_new();
    assert_non_null(pool);
    char url[128];
    relais_http_answer a;

    /* a POST: body and headers arrive, the JSON answer comes back */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", k.bound);
    assert_int_equal(perform(pool, "POST", url, "{\"a\":1}", 1 << 20, &a), 0);
    assert_int_equal(a.status, 201);
    assert_null(a.failure);
    assert_int_equal(a.truncated, 0);
    json_t *o = json_loads(a.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "method")), "POST");
    assert_int_equal(json_integer_value(json_object_get(o, "len")), 7);
    assert_string_equal(json_string_value(json_object_get(o, "body")), "{\"a\":1}");
    json_decref(o);
    free(a.body);
    pthread_mutex_lock(&s.lock);
    assert_string_equal(s.last_header, "yes");
    pthread_mutex_unlock(&s.lock);

    /* a GET on the same pooled handle: the same connection (keep-alive) */
    assert_int_equal(perform(pool, "GET", url, NULL, 1 << 20, &a), 0);
    assert_int_equal(a.status, 201);
    free(a.body);
    pthread_mutex_lock(&s.lock);
    assert_string_equal(s.last_method, "GET");
    assert_int_equal(s.connections, 1);
    pthread_mutex_unlock(&s.lock);

    /* the answer cap: the first max bytes kept, the rest read and dropped */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/big", k.bound);
    assert_int_equal(perform(pool, "GET", url, NULL, 100, &a), 0);
    assert_int_equal(a.status, 200);
    assert_int_equal(a.len, 100);
    assert_int_equal(a.truncated, 1);
    assert_int_equal(strlen(a.body), 100);
    free(a.body);

    /* the body cap on the server side, and the fallback answer */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", k.bound);
    char longbody[200];
    memset(longbody, 'y', sizeof longbody - 1);
    longbody[sizeof longbody - 1] = '\0';
    assert_int_equal(perform(pool, "POST", url, longbody, 1 << 20, &a), 0);
    assert_int_equal(a.status, 413);
    free(a.body);
    static const char *const answers[][2] = { { "/null", "{}" }, { "/werr", "{\"err\":1}" },
                                              { "/real", "[0.1]" } };
    for (size_t i = 0; i < 3; i++) {
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", k.bound, answers[i][0]);
        assert_int_equal(perform(pool, "GET", url, NULL, 1 << 20, &a), 0);
        assert_string_equal(a.body, answers[i][1]);
        free(a.body);
    }

    /* stopped: a transport failure; then the same port again */
    MHD_stop_daemon(d);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", k.bound);
    assert_int_equal(perform(pool, "GET", url, NULL, 1 << 20, &a), -1);
    assert_int_equal(a.status, 0);
    assert_non_null(a.failure);
    assert_string_equal(a.failure, curl_easy_strerror(CURLE_COULDNT_CONNECT));
    free(a.body);
    d = relais_simkit_relisten(&k, handler, &s, relais_simkit_completed, extra);
    assert_non_null(d);
    assert_int_equal(perform(pool, "GET", url, NULL, 1 << 20, &a), 0);
    assert_int_equal(a.status, 201);
    free(a.body);
    pthread_mutex_lock(&s.lock);
    assert_int_equal(s.too_large, 1);
    pthread_mutex_unlock(&s.lock);

    MHD_stop_daemon(d);
    relais_http_pool_destroy(pool);
    relais_http_pool_destroy(NULL);
    unlink(port_file);
    pthread_mutex_destroy(&s.lock);
    curl_global_cleanup();
}

static void test_port_file_refused(void **state)
{
    relais_simkit k = { .name = "sim-test", .quiet = 1, .port_file = "/nonexistent-dir/port" };
    assert_int_equal(relais_simkit_resolve(&k, "127.0.0.1:0", &k.at), 0);
    struct MHD_Daemon *d = relais_simkit_listen(&k, handler, NULL, relais_simkit_completed, NULL);
    assert_non_null(d);
    assert_int_equal(relais_simkit_ready(&k, d), -1);   /* and d stopped */
    /* a port that is taken: NULL */
    relais_simkit other = { .name = "sim-test", .quiet = 1 };
    int port = ts_free_port();
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    assert_int_equal(relais_simkit_resolve(&other, listen, &other.at), 0);
    d = relais_simkit_listen(&other, handler, NULL, relais_simkit_completed, NULL);
    assert_non_null(d);
    relais_simkit third = { .name = "sim-test", .quiet = 1 };
    assert_int_equal(relais_simkit_resolve(&third, listen, &third.at), 0);
    assert_null(relais_simkit_listen(&third, handler, NULL, relais_simkit_completed, NULL));
    MHD_stop_daemon(d);
}

static void test_base_url(void **state)
{
    assert_int_equal(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    assert_int_equal(relais_http_base_url_ok("http://127.0.0.1:8080"), 1);
    assert_int_equal(relais_http_base_url_ok("https://wcs.example.org/prefix/"), 1);
    assert_int_equal(relais_http_base_url_ok("HTTPS://wcs.example.org"), 1);
    assert_int_equal(relais_http_base_url_ok("https://wcs.example.org/?a=1"), 0);
    assert_int_equal(relais_http_base_url_ok("ftp://example.org"), 0);
    assert_int_equal(relais_http_base_url_ok("not a url"), 0);
    assert_int_equal(relais_http_base_url_ok(""), 0);
    curl_global_cleanup();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_parse),
        cmocka_unit_test(test_fault_take),
        cmocka_unit_test(test_options_and_addresses),
        cmocka_unit_test(test_wait),
        cmocka_unit_test(test_daemon_and_client),
        cmocka_unit_test(test_port_file_refused),
        cmocka_unit_test(test_base_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
