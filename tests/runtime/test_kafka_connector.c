/* Runtime tests: the `kafka` connector (connectors/kafka/kafka.c) against a
 * standalone mock cluster (relais_mock_broker_start), with a plain
 * librdkafka producer and consumer on the test's side, and a stand-alone
 * instance whose hub is a ts_recorder (testsupport.h) recording what the
 * source submits and rejects (the connector's consumer thread calls its ops;
 * its mutex guards it). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include "testsupport.h"
#include "bus.h"
#include "event_int.h"

extern const relais_connector relais_connector_kafka;

/* ---- the recording hub (test-only global) -------------------------------- */

/* Lives for the whole program: the connector's consumer thread may still call
 * its ops when a test fails before conn_close. */
static ts_recorder *g_rec;

/* ---- cluster and connector fixtures -------------------------------------- */

static relais_mock_broker *g_mock;

static int setup(void **state)
{
    (void)state;
    char err[256];
    ts_recorder_reset(g_rec);
    g_mock = relais_mock_broker_start(1, "relais.events", 1, err, sizeof err);
    if (!g_mock)
        fail_msg("mock cluster: %s", err);
    rd_kafka_mock_cluster_t *mc = relais_mock_broker_cluster(g_mock);
    assert_int_equal(rd_kafka_mock_topic_create(mc, "records", 2, 1), 0);
    assert_int_equal(rd_kafka_mock_topic_create(mc, "out", 1, 1), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    relais_mock_broker_stop(g_mock);
    g_mock = NULL;
    ts_recorder_reset(g_rec);
    return 0;
}

/* An instance of the kafka connector, options from YAML (ts_conn_open); the
 * hub's bus bootstrap is the mock cluster. */
static int conn_open(ts_conn *c, const char *name, unsigned mode, const char *yaml, char *err,
                     size_t errlen)
{
    return ts_conn_open(c, &relais_connector_kafka, name, mode, yaml, g_rec,
                        relais_mock_broker_bootstrap(g_mock), err, errlen);
}

/* ---- the test's own Kafka clients ------------------------------------------ */

typedef struct produced {
    int32_t partition;
    int64_t offset;
} produced;

static void test_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    produced *p = m->_private;
    assert_int_equal(m->err, 0);
    p->partition = m->partition;
    p->offset = m->offset;
}

static rd_kafka_t *test_producer(void)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", relais_mock_broker_bootstrap(g_mock),
                                       err, sizeof err), RD_KAFKA_CONF_OK);
    rd_kafka_conf_set_dr_msg_cb(conf, test_dr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(rk);
    return rk;
}

/* Produce value to records/partition and wait for its offset. */
static produced put(rd_kafka_t *rk, int32_t partition, const char *value)
{
    produced p = { -1, -1 };
    assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("records"), RD_KAFKA_V_PARTITION(partition),
                                       RD_KAFKA_V_VALUE((void *)value, strlen(value)),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(&p),
                                       RD_KAFKA_V_END), 0);
    assert_int_equal(rd_kafka_flush(rk, 10000), 0);
    assert_true(p.offset >= 0);
    return p;
}

static void rid_of(char *buf, size_t len, produced p)
{
    snprintf(buf, len, "records/%" PRId32 "/%" PRId64, p.partition, p.offset);
}

/* Wait until count(g_rec) reaches n (at most ms). */
static int wait_count(size_t (*count)(ts_recorder *), size_t n, long ms)
{
    for (long t = 0; t < ms; t += 50) {
        if (count(g_rec) >= n)
            return 1;
        ts_sleep_ms(50);
    }
    return count(g_rec) >= n;
}

/* ---- source ------------------------------------------------------------------ */

static void test_source_records_cloudevents_and_rejects(void **state)
{
    (void)state;
    rd_kafka_t *pr = test_producer();
    produced p1 = put(pr, 0, "{\"id\":\"a\",\"who\":{\"name\":\"Ana\"}}");
    produced p2 = put(pr, 1, "{\"id\":\"b\"}");
    produced bad = put(pr, 0, "{\"id\": oops");
    produced ce = put(pr, 1, "{\"specversion\":\"1.0\",\"id\":\"ext-1\",\"source\":\"/app\","
                             "\"type\":\"fr.relais.app.thing.created\",\"subject\":\"thing/1\","
                             "\"tenant\":\"other\",\"data\":{\"k\":1}}");
    produced nodata = put(pr, 0, "{\"specversion\":\"1.0\",\"id\":\"ext-2\",\"type\":\"a.b\"}");
    produced p3 = put(pr, 0, "{\"id\":\"c\"}");

    char err[512];
    ts_conn c;
    assert_int_equal(conn_open(&c, "kin", RELAIS_MODE_SOURCE,
                               "topic: records\nevent_type: fr.relais.app.record.created\n"
                               "subject_field: /who/name\nbatch: 3\n", err, sizeof err), 0);
    assert_true(wait_count(ts_recorder_nsubs, 4, 20000));
    assert_true(wait_count(ts_recorder_nrejs, 2, 20000));
    ts_conn_close(&c);      /* closes the consumer: commits the stored offsets */

    char rid[100];
    rid_of(rid, sizeof rid, p1);
    const ts_submitted *s = ts_recorder_find(g_rec, rid);
    assert_non_null(s);
    assert_string_equal(s->type, "fr.relais.app.record.created");
    assert_string_equal(s->subject, "Ana");
    assert_string_equal(s->data, "{\"id\":\"a\",\"who\":{\"name\":\"Ana\"}}");
    rid_of(rid, sizeof rid, p2);
    assert_non_null(ts_recorder_find(g_rec, rid));
    rid_of(rid, sizeof rid, p3);
    assert_non_null(ts_recorder_find(g_rec, rid));
    rid_of(rid, sizeof rid, ce);
    s = ts_recorder_find(g_rec, rid);
    assert_non_null(s);
    assert_string_equal(s->type, "fr.relais.app.thing.created");
    assert_string_equal(s->subject, "thing/1");
    assert_string_equal(s->data, "{\"k\":1}");
    assert_int_equal(ts_recorder_nsubs(g_rec), 4);

    char w1[100], w2[100];
    rid_of(w1, sizeof w1, bad);
    rid_of(w2, sizeof w2, nodata);
    int seen_bad = 0, seen_nodata = 0;
    for (size_t k = 0; k < ts_recorder_nrejs(g_rec); k++) {
        const ts_rejected *j = ts_recorder_rej(g_rec, k);
        if (strcmp(j->where, w1) == 0 && strstr(j->reason, "invalid JSON"))
            seen_bad = 1;
        if (strcmp(j->where, w2) == 0 && strstr(j->reason, "$.data"))
            seen_nodata = 1;
    }
    assert_true(seen_bad);
    assert_true(seen_nodata);

    /* The offsets of everything with a verdict were committed for the group. */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", relais_mock_broker_bootstrap(g_mock),
                                       err, sizeof err), RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "group.id", "relais-kin", err, sizeof err), RD_KAFKA_CONF_OK);
    rd_kafka_t *cons = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    assert_non_null(cons);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(l, "records", 0);
    rd_kafka_topic_partition_list_add(l, "records", 1);
    assert_int_equal(rd_kafka_committed(cons, l, 10000), 0);
    assert_int_equal(rd_kafka_topic_partition_list_find(l, "records", 0)->offset, p3.offset + 1);
    assert_int_equal(rd_kafka_topic_partition_list_find(l, "records", 1)->offset, ce.offset + 1);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_consumer_close(cons);
    rd_kafka_destroy(cons);
    rd_kafka_destroy(pr);
}

static void test_source_unavailable_loses_nothing(void **state)
{
    (void)state;
    rd_kafka_t *pr = test_producer();
    produced p[6];
    p[0] = put(pr, 0, "{\"n\":0}");
    char err[512];
    ts_conn c;
    assert_int_equal(conn_open(&c, "kun", RELAIS_MODE_SOURCE,
                               "topic: records\nevent_type: fr.relais.app.record.created\n"
                               "batch: 2\nretry_backoff: 200ms\n", err, sizeof err), 0);
    assert_true(wait_count(ts_recorder_nsubs, 1, 20000));
    size_t calls = ts_recorder_submit_calls(g_rec);

    /* Not accepting: the consumer holds off. */
    ts_recorder_set_accepting(g_rec, 0);
    for (int k = 1; k < 6; k++) {
        char v[64];
        snprintf(v, sizeof v, "{\"n\":%d}", k);
        p[k] = put(pr, k % 2, v);
    }
    ts_sleep_ms(1500);
    assert_int_equal(ts_recorder_submit_calls(g_rec), calls);

    /* Accepting but every submit UNAVAILABLE: nothing stored, read again. */
    ts_recorder_set_down(g_rec, 1);      /* down first: no submit lands in between */
    ts_recorder_set_accepting(g_rec, 1);
    assert_true(wait_count(ts_recorder_submit_calls, calls + 3, 10000));
    assert_int_equal(ts_recorder_nsubs(g_rec), 1);

    /* Back: every record arrives. */
    ts_recorder_set_down(g_rec, 0);
    assert_true(wait_count(ts_recorder_nsubs, 6, 15000));
    for (int k = 0; k < 6; k++) {
        char rid[100];
        rid_of(rid, sizeof rid, p[k]);
        assert_non_null(ts_recorder_find(g_rec, rid));
    }
    ts_conn_close(&c);
    rd_kafka_destroy(pr);
}

static void test_source_option_errors(void **state)
{
    (void)state;
    char err[512];
    ts_conn c;
    assert_int_equal(conn_open(&c, "kx", RELAIS_MODE_SOURCE,
                               "topic: records\nrdkafka.enable.auto.offset.store: true\n", err,
                               sizeof err), -1);
    assert_non_null(strstr(err, "rdkafka.enable.auto.offset.store cannot be set"));
    ts_conn_close(&c);
    assert_int_equal(conn_open(&c, "kx", RELAIS_MODE_SOURCE,
                               "topic: records\nrdkafka.no.such.property: 1\n", err, sizeof err), -1);
    assert_non_null(strstr(err, "rdkafka.no.such.property"));
    ts_conn_close(&c);
}

/* ---- sink ------------------------------------------------------------------------ */

static const char *header(rd_kafka_headers_t *h, const char *name, char *buf, size_t len)
{
    const void *v;
    size_t n;
    if (rd_kafka_header_get_last(h, name, &v, &n) != 0 || n >= len)
        return NULL;
    memcpy(buf, v, n);
    buf[n] = '\0';
    return buf;
}

static void test_sink_produces_with_key_and_headers(void **state)
{
    (void)state;
    char err[512];
    ts_conn c;
    assert_int_equal(conn_open(&c, "kout", RELAIS_MODE_SINK, "topic: out\ntimeout: 5s\n", err, sizeof err), 0);
    relais_event *ev1 = ts_event("request/7", "{\"category\":\"voirie\"}");
    relais_event *ev2 = ts_event(NULL, "{\"n\":2}");
    relais_answer ans;
    memset(&ans, 0, sizeof ans);
    assert_int_equal(relais_connector_kafka.deliver(c.ctx, ev1, NULL, &ans), RELAIS_DELIVER_OK);
    assert_string_equal(ans.local_id, "out/0/0");
    assert_int_equal(relais_connector_kafka.deliver(c.ctx, ev2, NULL, &ans), RELAIS_DELIVER_OK);
    assert_string_equal(ans.local_id, "out/0/1");

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", relais_mock_broker_bootstrap(g_mock),
                                       err, sizeof err), RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "group.id", "test-reader", err, sizeof err), RD_KAFKA_CONF_OK);
    rd_kafka_t *cons = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    assert_non_null(cons);
    rd_kafka_poll_set_consumer(cons);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, "out", 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(cons, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    relais_event *evs[2] = { ev1, ev2 };
    for (int k = 0; k < 2; k++) {
        rd_kafka_message_t *m = NULL;
        for (int t = 0; t < 100 && !m; t++) {
            m = rd_kafka_consumer_poll(cons, 100);
            if (m && m->err) {
                rd_kafka_message_destroy(m);
                m = NULL;
            }
        }
        assert_non_null(m);
        const char *want_key = k == 0 ? "request/7" : relais_event_id(ev2);
        assert_int_equal(m->key_len, strlen(want_key));
        assert_memory_equal(m->key, want_key, m->key_len);
        rd_kafka_headers_t *h = NULL;
        assert_int_equal(rd_kafka_message_headers(m, &h), 0);
        char buf[200];
        assert_non_null(header(h, "ce_id", buf, sizeof buf));
        assert_string_equal(buf, relais_event_id(evs[k]));
        assert_non_null(header(h, "ce_type", buf, sizeof buf));
        assert_string_equal(buf, "fr.relais.grc.request.created");
        json_error_t je;
        json_t *v = json_loadb(m->payload, m->len, 0, &je);
        assert_non_null(v);
        assert_string_equal(json_string_value(json_object_get(v, "id")), relais_event_id(evs[k]));
        assert_string_equal(json_string_value(json_object_get(v, "specversion")), "1.0");
        json_decref(v);
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(cons);
    rd_kafka_destroy(cons);
    relais_event_unref(ev1);
    relais_event_unref(ev2);
    ts_conn_close(&c);
}

static void test_sink_verdicts(void **state)
{
    (void)state;
    char err[512];
    ts_conn c;
    assert_int_equal(conn_open(&c, "kout", RELAIS_MODE_SINK,
                               "topic: out\ntimeout: 1500ms\nrdkafka.message.max.bytes: 2000\n", err,
                               sizeof err), 0);
    relais_answer ans;
    memset(&ans, 0, sizeof ans);
    /* Too large for the producer: producing it again cannot help. */
    char big[4000];
    snprintf(big, sizeof big, "{\"text\":\"%03000d\"}", 0);
    relais_event *ev = ts_event("request/1", big);
    assert_int_equal(relais_connector_kafka.deliver(c.ctx, ev, NULL, &ans), RELAIS_DELIVER_REJECT);
    assert_non_null(strstr(ans.detail, "MSG_SIZE_TOO_LARGE"));
    relais_event_unref(ev);

    /* Broker down: no acknowledgement within the timeout -> RETRY. */
    rd_kafka_mock_cluster_t *mc = relais_mock_broker_cluster(g_mock);
    ev = ts_event("request/2", "{\"n\":1}");
    assert_int_equal(rd_kafka_mock_broker_set_down(mc, 1), 0);
    assert_int_equal(relais_connector_kafka.deliver(c.ctx, ev, NULL, &ans), RELAIS_DELIVER_RETRY);
    assert_true(strstr(ans.detail, "TIMED_OUT") || strstr(ans.detail, "no delivery report"));
    assert_string_equal(ans.local_id, "");
    /* Back up: the same event goes through. */
    assert_int_equal(rd_kafka_mock_broker_set_up(mc, 1), 0);
    int ok = 0;
    for (int t = 0; t < 10 && !ok; t++)
        ok = relais_connector_kafka.deliver(c.ctx, ev, NULL, &ans) == RELAIS_DELIVER_OK;
    assert_true(ok);
    relais_event_unref(ev);
    ts_conn_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_source_records_cloudevents_and_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_source_unavailable_loses_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_source_option_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sink_produces_with_key_and_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sink_verdicts, setup, teardown),
    };
    g_rec = ts_recorder_new();
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    ts_recorder_free(g_rec);
    return failed;
}
