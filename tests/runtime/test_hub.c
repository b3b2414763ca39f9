/*
 * Runtime tests: the whole hub as a library, with the embedded broker, the
 * real PostgreSQL of tools/test and HTTP sinks served in this process.
 *   - a destination never gets more than its max_in_flight concurrent deliveries
 *   - /healthz and the sources follow the bus: broker down (mock fault
 *     injection) -> 503 and UNAVAILABLE, broker up -> accepted again, and
 *     nothing accepted before is lost
 */
#include <curl/curl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testsupport.h"
#include "hub.h"
#include "instance.h"

/* ---- an HTTP sink that answers after a delay and counts concurrency ---- */
typedef struct sink {
    struct MHD_Daemon *d;
    int port;
    long delay_ms;
    atomic_int current, max_seen, received;
} sink;

static enum MHD_Result sink_handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                    const char *version, const char *data, size_t *size, void **con)
{
    sink *s = cls;
    (void)url; (void)method; (void)version; (void)data;
    if (!*con) { *con = s; return MHD_YES; }
    if (*size) { *size = 0; return MHD_YES; }
    int now = atomic_fetch_add(&s->current, 1) + 1;
    int m = atomic_load(&s->max_seen);
    while (now > m && !atomic_compare_exchange_weak(&s->max_seen, &m, now)) {}
    ts_sleep_ms(s->delay_ms);
    atomic_fetch_sub(&s->current, 1);
    int n = atomic_fetch_add(&s->received, 1) + 1;
    char body[64];
    snprintf(body, sizeof body, "{\"id\":\"S-%d\"}", n);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret = MHD_queue_response(c, 201, r);
    MHD_destroy_response(r);
    return ret;
}

static void sink_start(sink *s, long delay_ms)
{
    memset(s, 0, sizeof *s);
    s->delay_ms = delay_ms;
    s->port = ts_free_port();
    s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)s->port,
                            NULL, NULL, sink_handler, s, MHD_OPTION_END);
    assert_non_null(s->d);
}

/* ---- the hub in a thread ---- */
typedef struct fixture {
    char db[128];
    char admin_conninfo[512];
    relais_config *cfg;
    relais_hub *hub;
    pthread_t runner;
    sink slow, fast;
    char state[128];
} fixture;

static void *run_hub(void *arg) { relais_hub_run(arg); return NULL; }

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    sink_start(&f->slow, 150);
    sink_start(&f->fast, 0);
    const char *db = ts_fresh_database("hub");
    const char *dbn = strstr(db, "dbname=");
    snprintf(f->db, sizeof f->db, "%.*s", (int)strcspn(dbn + 7, " "), dbn + 7);
    snprintf(f->admin_conninfo, sizeof f->admin_conninfo, "host=%s port=%s dbname=postgres user=postgres",
             getenv("RELAIS_TEST_PGHOST"), getenv("RELAIS_TEST_PGPORT") ? getenv("RELAIS_TEST_PGPORT") : "5432");
    snprintf(f->state, sizeof f->state, "/tmp/relais-hubtest-%d", (int)getpid());
    char yaml[4096];
    snprintf(yaml, sizeof yaml,
        "hub: { name: t, admin_listen: \"127.0.0.1:0\", state_dir: %s, log_level: warn }\n"
        "bus: { brokers: embedded, partitions: 3, rdkafka.topic.metadata.refresh.interval.ms: 1000 }\n"
        "journal: { conninfo: \"%s\" }\n"
        "delivery: { workers: 8, poll_interval: 100ms, backoff_initial: 100ms, backoff_max: 200ms, max_attempts: 50 }\n"
        "connectors:\n"
        "  - { name: desk, type: http, mode: source, listen: \"127.0.0.1:0\", event_type: test.relais.grc.request.created,\n"
        "      subject_pointer: /id, record_id_pointer: /id }\n"
        "  - { name: slow, type: http, mode: sink, url: \"http://127.0.0.1:%d/\", max_in_flight: 2, id_pointer: /id }\n"
        "  - { name: fast, type: http, mode: sink, url: \"http://127.0.0.1:%d/\", max_in_flight: 4 }\n"
        "routes:\n"
        "  - { name: all, match: \"test.relais.**\", to: [slow, fast] }\n",
        f->state, db, f->slow.port, f->fast.port);
    relais_errlist errs;
    relais_errlist_init(&errs);
    f->cfg = relais_config_load_buffer("test_hub.yaml", yaml, strlen(yaml), &errs);
    if (!f->cfg) { relais_errlist_print(&errs, stderr); fail_msg("config"); }
    relais_errlist_free(&errs);
    char err[512];
    f->hub = relais_hub_new(f->cfg, err, sizeof err);
    if (!f->hub) fail_msg("hub: %s", err);
    if (relais_hub_start(f->hub, err, sizeof err) != 0) fail_msg("start: %s", err);
    pthread_create(&f->runner, NULL, run_hub, f->hub);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    relais_hub_request_stop(f->hub);
    pthread_join(f->runner, NULL);
    relais_hub_destroy(f->hub);
    relais_config_destroy(f->cfg);
    MHD_stop_daemon(f->slow.d);
    MHD_stop_daemon(f->fast.d);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->state);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", f->state);
    free(f);
    return 0;
}

static int submit(relais_hub *h, const char *id, relais_submit_result *res)
{
    json_t *d = json_pack("{s:s, s:s}", "id", id, "category", "voirie");
    relais_record r = { .record_id = id, .type = "test.relais.grc.request.created", .subject = id, .data = d };
    int rc = relais_submit(relais_hub_instance(h, "desk"), &r, 1, res);
    json_decref(d);
    return rc;
}

static long http_status(const char *url)
{
    CURL *c = curl_easy_init();
    FILE *null = fopen("/dev/null", "w");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, null);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    fclose(null);
    return code;
}

static int wait_received(sink *s, int n, int seconds)
{
    for (int i = 0; i < seconds * 20; i++) {
        if (atomic_load(&s->received) >= n) return 1;
        ts_sleep_ms(50);
    }
    return 0;
}

static void test_per_destination_concurrency_limit(void **state)
{
    fixture *f = *state;
    relais_submit_result res;
    char id[32];
    for (int i = 0; i < 12; i++) {
        snprintf(id, sizeof id, "C-%d", i);
        assert_int_equal(submit(f->hub, id, &res), 0);
        assert_int_equal(res.status, RELAIS_SUBMIT_ACCEPTED);
    }
    assert_true(wait_received(&f->fast, 12, 30));
    assert_true(wait_received(&f->slow, 12, 30));
    /* 8 workers were available: the slow sink got exactly its limit at once */
    assert_int_equal(atomic_load(&f->slow.max_seen), 2);
    /* the fast sink was not held back behind the slow one */
    assert_true(atomic_load(&f->fast.max_seen) >= 1);
    relais_metrics *m = relais_hub_metrics(f->hub);
    assert_int_equal(atomic_load(&relais_metrics_conn(m, "slow")->delivered), 12);
    assert_int_equal(atomic_load(&relais_metrics_conn(m, "desk")->events_in), 12);
}

static void test_health_follows_the_bus(void **state)
{
    fixture *f = *state;
    char url[128];
    snprintf(url, sizeof url, "%s/healthz", relais_hub_admin_url(f->hub));
    assert_int_equal(http_status(url), 200);
    relais_submit_result res;
    assert_int_equal(submit(f->hub, "B-1", &res), 0);
    assert_int_equal(res.status, RELAIS_SUBMIT_ACCEPTED);

    rd_kafka_mock_cluster_t *mc = relais_bus_mock_cluster(relais_hub_bus(f->hub));
    assert_non_null(mc);
    rd_kafka_mock_broker_set_down(mc, 1);
    int down = 0;
    for (int i = 0; i < 200 && !down; i++) {
        down = http_status(url) == 503;
        if (!down) ts_sleep_ms(100);
    }
    assert_true(down);
    assert_false(relais_hub_accepting(f->hub));
    assert_int_equal(submit(f->hub, "B-2", &res), -1);
    assert_int_equal(res.status, RELAIS_SUBMIT_UNAVAILABLE);

    rd_kafka_mock_broker_set_up(mc, 1);
    int up = 0;
    for (int i = 0; i < 300 && !up; i++) {
        up = http_status(url) == 200;
        if (!up) ts_sleep_ms(100);
    }
    assert_true(up);
    assert_int_equal(submit(f->hub, "B-2", &res), 0);
    assert_int_equal(res.status, RELAIS_SUBMIT_ACCEPTED);
    /* B-1 (accepted before the outage) and B-2 both reach both sinks */
    assert_true(wait_received(&f->fast, 14, 60));
    assert_true(wait_received(&f->slow, 14, 60));
}

/* PostgreSQL refusing the hub (connections forbidden, sessions killed):
 * /healthz 503 and sources told UNAVAILABLE; allowed again: 200 and accepted. */
static void test_health_follows_the_journal(void **state)
{
    fixture *f = *state;
    char url[128], sql[512];
    snprintf(url, sizeof url, "%s/healthz", relais_hub_admin_url(f->hub));
    assert_int_equal(http_status(url), 200);
    snprintf(sql, sizeof sql, "ALTER DATABASE \"%s\" ALLOW_CONNECTIONS false", f->db);
    free(ts_sql(f->admin_conninfo, sql));
    snprintf(sql, sizeof sql, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '%s'", f->db);
    free(ts_sql(f->admin_conninfo, sql));
    relais_submit_result res;
    int down = 0;
    for (int i = 0; i < 200 && !down; i++) {
        down = http_status(url) == 503;
        if (!down) { submit(f->hub, "J-probe", &res); ts_sleep_ms(100); }
    }
    assert_true(down);
    assert_int_equal(submit(f->hub, "J-1", &res), -1);
    assert_int_equal(res.status, RELAIS_SUBMIT_UNAVAILABLE);
    snprintf(sql, sizeof sql, "ALTER DATABASE \"%s\" ALLOW_CONNECTIONS true", f->db);
    free(ts_sql(f->admin_conninfo, sql));
    int accepted = 0;
    for (int i = 0; i < 300 && !accepted; i++) {
        accepted = submit(f->hub, "J-1", &res) == 0 && res.status == RELAIS_SUBMIT_ACCEPTED;
        if (!accepted) ts_sleep_ms(100);
    }
    assert_true(accepted);
    assert_int_equal(http_status(url), 200);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_destination_concurrency_limit),
        cmocka_unit_test(test_health_follows_the_bus),
        cmocka_unit_test(test_health_follows_the_journal),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
