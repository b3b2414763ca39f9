/*
 * test_bus.c - the Kafka bus (hub/bus.c) against librdkafka's mock cluster:
 * produce/consume round trip, Java-compatible key partitioning and per-key
 * order, offsets surviving a restart, two members sharing a group, retriable
 * produce errors with requests in flight (order kept by the idempotent
 * producer), brokers down and up, health, a full produce queue, bounded
 * destroy, fatal consumer errors, kcat reading what the bus wrote, and
 * configuration errors. No PostgreSQL needed.
 *
 * Threads: each test drives its buses from the cmocka thread (that thread is
 * the "bus thread": it polls, consumes and receives delivery reports), except
 * test_queue_full where a second thread produces to show it never serves
 * delivery reports itself.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include "testsupport.h"
#include "bus.h"

#define MAXMSG 4096

/* ---- helpers ------------------------------------------------------------ */

static relais_kv g_short_session = { "session.timeout.ms", "3000", NULL };

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Delivery reports, counted on the thread that polls. */
typedef struct dr_count {
    int       ok;
    int       failed;
    int       per_msg[MAXMSG];  /* msg_opaque = index + 1 */
    pthread_t thread[4];        /* threads that received reports */
    int       nthread;
    char      last_error[256];
    int       last_code;
} dr_count;

static void on_produced(void *opaque, int err, const char *errstr, void *msg_opaque)
{
    dr_count *d = opaque;
    if (!d) return;
    if (err) {
        d->failed++;
        d->last_code = err;
        snprintf(d->last_error, sizeof d->last_error, "%s", errstr);
    } else {
        d->ok++;
    }
    intptr_t i = (intptr_t)msg_opaque;
    if (i > 0 && i <= MAXMSG) d->per_msg[i - 1]++;
    int known = 0;
    for (int t = 0; t < d->nthread; t++) known |= pthread_equal(d->thread[t], pthread_self());
    if (!known && d->nthread < 4) d->thread[d->nthread++] = pthread_self();
}

static relais_bus_conf base_conf(const char *brokers, const char *topic, const char *group, dr_count *d)
{
    relais_bus_conf c = {
        .brokers = brokers, .embedded_brokers = 1, .topic = topic, .partitions = 4,
        .group = group, .client_id = "relais-test", .rdkafka = NULL,
        .on_produced = on_produced, .opaque = d,
    };
    return c;
}

static relais_bus *bus_new(const relais_bus_conf *c)
{
    char err[512] = "";
    relais_bus *b = relais_bus_new(c, err, sizeof err);
    if (!b) fail_msg("relais_bus_new: %s", err);
    return b;
}

/* Poll until `want` delivery reports are OK, at most timeout_ms. */
static void wait_delivered(relais_bus *b, dr_count *d, int want, int timeout_ms)
{
    long long end = mono_ms() + timeout_ms;
    while (d->ok + d->failed < want && mono_ms() < end) relais_bus_poll(b, 100);
    if (d->failed) fail_msg("%d delivery report(s) failed, last: %s", d->failed, d->last_error);
    assert_int_equal(d->ok, want);
}

/* Kafka's Java murmur2 (org.apache.kafka.common.utils.Utils.murmur2), written
 * from the algorithm, not from librdkafka: the partition a Java producer picks
 * for a key is (murmur2(key) & 0x7fffffff) % partitions. */
static int32_t java_murmur2(const void *key, size_t len)
{
    const unsigned char *d = key;
    const uint32_t m = 0x5bd1e995u;
    uint32_t h = 0x9747b28cu ^ (uint32_t)len;
    size_t i = 0;
    for (; i + 4 <= len; i += 4) {
        uint32_t k = (uint32_t)d[i] | ((uint32_t)d[i + 1] << 8) | ((uint32_t)d[i + 2] << 16) |
                     ((uint32_t)d[i + 3] << 24);
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (len & 3) {
    case 3: h ^= (uint32_t)d[i + 2] << 16; /* fall through */
    case 2: h ^= (uint32_t)d[i + 1] << 8;  /* fall through */
    case 1: h ^= d[i]; h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return (int32_t)h;
}

static int java_partition(const char *key, int partitions)
{
    return (int)(((uint32_t)java_murmur2(key, strlen(key)) & 0x7fffffffu) % (uint32_t)partitions);
}

/* A received message, copied. */
typedef struct got {
    char    key[64];
    char    value[128];
    int32_t partition;
    int64_t offset;
} got;

/* Consume up to max messages from b into out (appending at *n), waiting at
 * most timeout_ms in total; store the offset of each message when store. */
static void consume_some(relais_bus *b, got *out, int *n, int max, int timeout_ms, int store)
{
    relais_bus_msg msgs[64];
    long long end = mono_ms() + timeout_ms;
    while (*n < max) {
        long long left = end - mono_ms();
        if (left <= 0) break;
        int k = relais_bus_consume(b, msgs, 64, (int)(left < 200 ? left : 200));
        assert_true(k >= 0);
        for (int i = 0; i < k; i++) {
            if (*n < max) {
                got *g = &out[(*n)++];
                snprintf(g->key, sizeof g->key, "%.*s", (int)msgs[i].keylen, msgs[i].key ? msgs[i].key : "");
                snprintf(g->value, sizeof g->value, "%.*s", (int)msgs[i].len, msgs[i].value);
                g->partition = msgs[i].partition;
                g->offset = msgs[i].offset;
            }
            if (store) assert_int_equal(relais_bus_store_offset(b, &msgs[i]), 0);
            relais_bus_msg_release(&msgs[i]);
            assert_null(msgs[i].handle);
        }
    }
}

/* Read a whole topic with a plain librdkafka consumer (no bus code): each
 * message goes to out[] (up to max), in log order within a partition; the
 * count of each value "<prefix><n>" (n < nseen) goes to seen[n]. Returns how
 * many messages the topic holds. */
static int read_topic(const char *bootstrap, const char *topic, int partitions, const char *prefix,
                      int *seen, int nseen, got *out, int max)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof err) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof err) ||
        /* librdkafka 2.0.2 wants a group.id even for assign(); nothing is committed */
        rd_kafka_conf_set(conf, "group.id", "test-reader", err, sizeof err) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err))
        fail_msg("conf: %s", err);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!c) fail_msg("consumer: %s", err);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(c, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    int eofs = 0, n = 0;
    size_t plen = strlen(prefix);
    long long end = mono_ms() + 15000;
    while (eofs < partitions && mono_ms() < end) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
        if (!m) continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            eofs++;
        } else if (m->err) {
            fprintf(stderr, "read_topic: %s\n", rd_kafka_message_errstr(m));
        } else {
            if (out && n < max) {
                got *g = &out[n];
                snprintf(g->key, sizeof g->key, "%.*s", (int)m->key_len, m->key ? (const char *)m->key : "");
                snprintf(g->value, sizeof g->value, "%.*s", (int)m->len, (const char *)m->payload);
                g->partition = m->partition;
                g->offset = m->offset;
            }
            n++;
            if (m->len > plen && memcmp(m->payload, prefix, plen) == 0) {
                char num[32];
                snprintf(num, sizeof num, "%.*s", (int)(m->len - plen), (const char *)m->payload + plen);
                int i = atoi(num);
                if (i >= 0 && i < nseen) seen[i]++;
            }
        }
        rd_kafka_message_destroy(m);
    }
    assert_int_equal(eofs, partitions);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return n;
}

/* ---- configuration ------------------------------------------------------ */

static void test_config_errors(void **state)
{
    char err[512];
    relais_kv bad = { "no.such.property", "1", NULL };
    relais_bus_conf c = base_conf("embedded", "t.conf", "g", NULL);
    c.rdkafka = &bad;
    assert_null(relais_bus_new(&c, err, sizeof err));
    assert_non_null(strstr(err, "rdkafka.no.such.property"));

    relais_kv badval = { "linger.ms", "soon", NULL };
    c.rdkafka = &badval;
    assert_null(relais_bus_new(&c, err, sizeof err));
    assert_non_null(strstr(err, "rdkafka.linger.ms"));

    /* a passthrough property that librdkafka accepts but that conflicts with
     * the idempotent producer: rd_kafka_new refuses it */
    relais_kv acks = { "acks", "1", NULL };
    c.rdkafka = &acks;
    assert_null(relais_bus_new(&c, err, sizeof err));
    assert_non_null(strstr(err, "producer"));

    c = base_conf("embedded", NULL, NULL, NULL);
    assert_null(relais_bus_new(&c, err, sizeof err));
    assert_non_null(strstr(err, "bus.topic"));
    c = base_conf("embedded", "t", NULL, NULL);
    c.partitions = 0;
    assert_null(relais_bus_new(&c, err, sizeof err));
    assert_non_null(strstr(err, "bus.partitions"));
    c = base_conf(NULL, "t", NULL, NULL);
    assert_null(relais_bus_new(&c, err, sizeof err));
    assert_non_null(strstr(err, "bus.brokers"));
    assert_null(relais_mock_broker_start(0, "t", 1, err, sizeof err));
    assert_non_null(strstr(err, "embedded_brokers"));

    relais_bus_destroy(NULL);
    relais_mock_broker_stop(NULL);
}

/* ---- produce and consume ------------------------------------------------ */

#define RT_N     2000
#define RT_KEYS  50
#define RT_PARTS 6

static got g_rt[RT_N + 100];

static void test_roundtrip(void **state)
{
    dr_count *d = calloc(1, sizeof *d);
    relais_bus_conf c = base_conf("embedded", "t.roundtrip", "g-roundtrip", d);
    c.embedded_brokers = 3;
    c.partitions = RT_PARTS;
    relais_bus *b = bus_new(&c);
    assert_non_null(relais_bus_mock_cluster(b));
    assert_non_null(strstr(relais_bus_bootstrap(b), "127.0.0.1:"));

    for (int i = 0; i < RT_N; i++) {
        char key[32], value[64];
        snprintf(key, sizeof key, "person-%d", i % RT_KEYS);
        snprintf(value, sizeof value, "%s|%d", key, i);
        assert_int_equal(relais_bus_produce(b, key, value, strlen(value), (void *)(intptr_t)(i + 1)), 0);
        if (i % 100 == 0) relais_bus_poll(b, 0);
    }
    assert_int_equal(relais_bus_flush(b, 10000), 0);
    wait_delivered(b, d, RT_N, 10000);
    for (int i = 0; i < RT_N; i++) assert_int_equal(d->per_msg[i], 1);

    int n = 0;
    consume_some(b, g_rt, &n, RT_N, 30000, 1);
    assert_int_equal(n, RT_N);
    /* nothing more: each message came once */
    consume_some(b, g_rt, &n, RT_N + 100, 500, 1);
    assert_int_equal(n, RT_N);

    static int seen[RT_N];
    int key_part[RT_KEYS], key_last[RT_KEYS];
    memset(seen, 0, sizeof seen);
    for (int k = 0; k < RT_KEYS; k++) key_part[k] = key_last[k] = -1;
    for (int i = 0; i < n; i++) {
        const got *g = &g_rt[i];
        char *bar = strchr(g->value, '|');
        assert_non_null(bar);
        int seq = atoi(bar + 1);
        assert_true(seq >= 0 && seq < RT_N);
        seen[seq]++;
        /* the key is the one given to produce */
        char want[32];
        snprintf(want, sizeof want, "person-%d", seq % RT_KEYS);
        assert_string_equal(g->key, want);
        assert_int_equal((int)(bar - g->value), (int)strlen(want));
        /* same key -> same partition, the one a Java client would pick */
        int k = seq % RT_KEYS;
        if (key_part[k] < 0) key_part[k] = g->partition;
        assert_int_equal(g->partition, key_part[k]);
        assert_int_equal(g->partition, java_partition(want, RT_PARTS));
        /* order kept per key */
        assert_true(seq > key_last[k]);
        key_last[k] = seq;
    }
    for (int i = 0; i < RT_N; i++) assert_int_equal(seen[i], 1);
    /* the 50 keys spread over more than one partition */
    int used[RT_PARTS] = { 0 }, nused = 0;
    for (int k = 0; k < RT_KEYS; k++) used[key_part[k]] = 1;
    for (int p = 0; p < RT_PARTS; p++) nused += used[p];
    assert_true(nused > 1);
    /* delivery reports came on this (the polling) thread only */
    assert_int_equal(d->nthread, 1);
    assert_true(pthread_equal(d->thread[0], pthread_self()));

    relais_bus_destroy(b);
    free(d);
}

/* kcat, another Kafka client in another process, reads what the bus wrote
 * from the embedded broker on loopback. */
static void test_kcat_reads_embedded(void **state)
{
    if (access("/usr/bin/kcat", X_OK) != 0) fail_msg("/usr/bin/kcat is needed by this test");
    dr_count d = { 0 };
    relais_bus_conf c = base_conf("embedded", "t.kcat", NULL, &d);
    relais_bus *b = bus_new(&c);
    for (int i = 0; i < 5; i++) {
        char key[16], value[32];
        snprintf(key, sizeof key, "k%d", i);
        snprintf(value, sizeof value, "v%d", i);
        assert_int_equal(relais_bus_produce(b, key, value, strlen(value), NULL), 0);
    }
    assert_int_equal(relais_bus_flush(b, 10000), 0);
    assert_int_equal(d.ok, 5);

    char cmd[512];
    snprintf(cmd, sizeof cmd, "kcat -b %s -t t.kcat -C -e -o beginning -q -f '%%k=%%s\\n' 2>&1",
             relais_bus_bootstrap(b));
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[256];
    int found[5] = { 0 }, lines = 0;
    while (fgets(line, sizeof line, p)) {
        int k, v;
        lines++;
        if (sscanf(line, "k%d=v%d", &k, &v) == 2 && k == v && k >= 0 && k < 5) found[k]++;
        else fprintf(stderr, "kcat: %s", line);
    }
    assert_int_equal(pclose(p), 0);
    assert_int_equal(lines, 5);
    for (int i = 0; i < 5; i++) assert_int_equal(found[i], 1);
    relais_bus_destroy(b);
}

/* ---- offsets ------------------------------------------------------------ */

#define OF_N     60
#define OF_PARTS 3

static void test_offsets_resume(void **state)
{
    char err[512];
    relais_mock_broker *mb = relais_mock_broker_start(1, "t.offsets", OF_PARTS, err, sizeof err);
    if (!mb) fail_msg("%s", err);
    dr_count d = { 0 };
    relais_bus_conf c = base_conf(relais_mock_broker_bootstrap(mb), "t.offsets", "g-offsets", &d);
    /* the mock rebalances session.timeout.ms - 1 s after a join or leave:
     * a shorter session keeps the test short */
    c.rdkafka = &g_short_session;
    relais_bus *b = bus_new(&c);
    assert_null(relais_bus_mock_cluster(b));   /* not embedded in this bus */
    assert_string_equal(relais_bus_bootstrap(b), relais_mock_broker_bootstrap(mb));
    for (int i = 0; i < OF_N; i++) {
        char key[16], value[32];
        snprintf(key, sizeof key, "k%d", i % 7);
        snprintf(value, sizeof value, "%d", i);
        assert_int_equal(relais_bus_produce(b, key, value, strlen(value), NULL), 0);
    }
    assert_int_equal(relais_bus_flush(b, 10000), 0);

    /* Consume everything, but store offsets only for the first half of each
     * partition (the "routed and journaled" part). */
    relais_bus_msg msgs[OF_N];
    int n = 0;
    long long end = mono_ms() + 20000;
    while (n < OF_N && mono_ms() < end) {
        int k = relais_bus_consume(b, msgs + n, (size_t)(OF_N - n), 200);
        assert_true(k >= 0);
        n += k;
    }
    assert_int_equal(n, OF_N);
    int64_t count[OF_PARTS] = { 0 }, stored[OF_PARTS], last[OF_PARTS];
    for (int i = 0; i < n; i++) count[msgs[i].partition]++;
    for (int p = 0; p < OF_PARTS; p++) {
        assert_true(count[p] >= 2);
        stored[p] = -1;
        last[p] = -1;
    }
    for (int i = 0; i < n; i++) {
        int p = msgs[i].partition;
        if (msgs[i].offset > last[p]) last[p] = msgs[i].offset;
        if (msgs[i].offset < count[p] / 2) {
            assert_int_equal(relais_bus_store_offset(b, &msgs[i]), 0);
            if (msgs[i].offset > stored[p]) stored[p] = msgs[i].offset;
        }
    }
    for (int i = 0; i < n; i++) relais_bus_msg_release(&msgs[i]);
    relais_bus_destroy(b);   /* commits the stored offsets */

    /* A new member of the same group resumes right after the stored offsets;
     * messages produced meanwhile are not lost either. */
    b = bus_new(&c);
    for (int i = OF_N; i < OF_N + 15; i++) {
        char key[16], value[32];
        snprintf(key, sizeof key, "k%d", i % 7);
        snprintf(value, sizeof value, "%d", i);
        assert_int_equal(relais_bus_produce(b, key, value, strlen(value), NULL), 0);
    }
    assert_int_equal(relais_bus_flush(b, 10000), 0);
    int64_t total_left = 15;
    for (int p = 0; p < OF_PARTS; p++) total_left += last[p] - stored[p];
    static got again[OF_N * 2];
    int m = 0;
    consume_some(b, again, &m, (int)total_left, 20000, 1);
    consume_some(b, again, &m, OF_N * 2, 500, 1);   /* and nothing else */
    assert_int_equal(m, (int)total_left);
    int64_t next[OF_PARTS];
    for (int p = 0; p < OF_PARTS; p++) next[p] = stored[p] + 1;
    int late = 0;
    for (int i = 0; i < m; i++) {
        int p = again[i].partition;
        /* not before the stored offset, and no gap after it */
        assert_int_equal(again[i].offset, next[p]);
        next[p]++;
        if (atoi(again[i].value) >= OF_N) late++;
    }
    assert_int_equal(late, 15);
    relais_bus_destroy(b);
    relais_mock_broker_stop(mb);
}

/* ---- two members in one group ------------------------------------------- */

#define TM_PARTS 4
#define TM_KEYS  16
#define TM_MAX   1200

static got g_a[TM_MAX], g_b[TM_MAX];

static int count_prefix(const got *g, int n, const char *prefix, int *seen, int nseen)
{
    size_t plen = strlen(prefix);
    int c = 0;
    for (int i = 0; i < n; i++) {
        if (strncmp(g[i].value, prefix, plen) != 0) continue;
        c++;
        int v = atoi(g[i].value + plen);
        if (seen && v >= 0 && v < nseen) seen[v]++;
    }
    return c;
}

static void produce_batch(relais_bus *b, const char *prefix, int from, int to)
{
    for (int i = from; i < to; i++) {
        char key[16], value[32];
        snprintf(key, sizeof key, "k%d", i % TM_KEYS);
        snprintf(value, sizeof value, "%s%d", prefix, i);
        assert_int_equal(relais_bus_produce(b, key, value, strlen(value), NULL), 0);
    }
    assert_int_equal(relais_bus_flush(b, 10000), 0);
}

static void test_two_members(void **state)
{
    char err[512];
    relais_mock_broker *mb = relais_mock_broker_start(1, "t.two", TM_PARTS, err, sizeof err);
    if (!mb) fail_msg("%s", err);
    relais_bus_conf c = base_conf(relais_mock_broker_bootstrap(mb), "t.two", "g-two", NULL);
    /* the mock rebalances session.timeout.ms - 1 s after a join or leave:
     * a shorter session keeps the test short */
    c.rdkafka = &g_short_session;
    c.on_produced = NULL;
    relais_bus *a = bus_new(&c);
    int na = 0, nb = 0;
    int covered[TM_PARTS] = { 0 };   /* the keys used cover every partition */
    for (int k = 0; k < TM_KEYS; k++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", k);
        covered[java_partition(key, TM_PARTS)] = 1;
    }
    for (int p = 0; p < TM_PARTS; p++) assert_int_equal(covered[p], 1);

    /* A alone gets everything. */
    produce_batch(a, "solo|", 0, 40);
    consume_some(a, g_a, &na, 40, 20000, 1);
    assert_int_equal(na, 40);

    /* B joins; keep producing probes until both have received one from the
     * same round: the rebalance is then over. */
    relais_bus *b = bus_new(&c);
    int round = 0, settled = 0;
    long long end = mono_ms() + 25000;
    while (!settled && mono_ms() < end) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "probe%d|", round);
        produce_batch(a, prefix, round * TM_KEYS, (round + 1) * TM_KEYS);
        consume_some(a, g_a, &na, TM_MAX, 250, 1);
        consume_some(b, g_b, &nb, TM_MAX, 250, 1);
        settled = count_prefix(g_a, na, prefix, NULL, 0) > 0 && count_prefix(g_b, nb, prefix, NULL, 0) > 0;
        round++;
    }
    assert_true(settled);
    /* around the rebalance: nothing lost (duplicates allowed) */
    static int seen[TM_MAX];
    for (int r = 0; r < round; r++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "probe%d|", r);
        memset(seen, 0, sizeof seen);
        count_prefix(g_a, na, prefix, seen, TM_MAX);
        count_prefix(g_b, nb, prefix, seen, TM_MAX);
        for (int i = r * TM_KEYS; i < (r + 1) * TM_KEYS; i++) assert_true(seen[i] >= 1);
    }

    /* Settled: each message of a new batch goes to exactly one member, the
     * members' partitions do not overlap and both have some. */
    int a0 = na, b0 = nb;
    produce_batch(a, "after|", 0, 200);
    long long until = mono_ms() + 15000;
    while (count_prefix(g_a + a0, na - a0, "after|", NULL, 0) +
               count_prefix(g_b + b0, nb - b0, "after|", NULL, 0) < 200 && mono_ms() < until) {
        consume_some(a, g_a, &na, TM_MAX, 100, 1);
        consume_some(b, g_b, &nb, TM_MAX, 100, 1);
    }
    consume_some(a, g_a, &na, TM_MAX, 300, 1);
    consume_some(b, g_b, &nb, TM_MAX, 300, 1);
    memset(seen, 0, sizeof seen);
    int ca = count_prefix(g_a + a0, na - a0, "after|", seen, TM_MAX);
    int cb = count_prefix(g_b + b0, nb - b0, "after|", seen, TM_MAX);
    assert_true(ca > 0);
    assert_true(cb > 0);
    assert_int_equal(ca + cb, 200);
    for (int i = 0; i < 200; i++) assert_int_equal(seen[i], 1);
    int owner[TM_PARTS] = { 0 };   /* bit 1: A, bit 2: B */
    for (int i = a0; i < na; i++) owner[g_a[i].partition] |= 1;
    for (int i = b0; i < nb; i++) owner[g_b[i].partition] |= 2;
    for (int p = 0; p < TM_PARTS; p++) assert_true(owner[p] == 1 || owner[p] == 2);

    /* A stops consuming and leaves: B takes over every partition and gets
     * the rest, including what was sitting in A's partitions. */
    int b1 = nb;
    produce_batch(b, "rest|", 0, 100);
    relais_bus_destroy(a);
    until = mono_ms() + 20000;
    memset(seen, 0, sizeof seen);
    while (mono_ms() < until) {
        consume_some(b, g_b, &nb, TM_MAX, 200, 1);
        memset(seen, 0, sizeof seen);
        count_prefix(g_b + b1, nb - b1, "rest|", seen, TM_MAX);
        int all = 1;
        for (int i = 0; i < 100; i++) all &= seen[i] >= 1;
        if (all) break;
    }
    for (int i = 0; i < 100; i++) assert_true(seen[i] >= 1);
    int owned_b[TM_PARTS] = { 0 };
    for (int i = b1; i < nb; i++) owned_b[g_b[i].partition] = 1;
    for (int p = 0; p < TM_PARTS; p++) assert_int_equal(owned_b[p], 1);
    relais_bus_destroy(b);
    relais_mock_broker_stop(mb);
}

/* ---- faults ------------------------------------------------------------- */

#define FI_N    300
#define FI_KEYS 5

static got g_fi[FI_N + 10];

/* Retriable Produce errors while several requests are in flight (the broker
 * answers after 100 ms): every message is delivered once, reported once, and
 * each key's messages stay in produce order. That last point is the
 * idempotent producer's doing: without it librdkafka retries the failed batch
 * after the ones sent behind it (set rdkafka.enable.idempotence=false here
 * and the order check fails). */
static void test_produce_retriable_errors(void **state)
{
    dr_count *d = calloc(1, sizeof *d);
    relais_kv small = { "batch.num.messages", "10", NULL };
    relais_bus_conf c = base_conf("embedded", "t.faults", NULL, d);
    c.partitions = 3;
    c.rdkafka = &small;
    relais_bus *b = bus_new(&c);
    rd_kafka_mock_cluster_t *mc = relais_bus_mock_cluster(b);
    assert_non_null(mc);
    /* connected first, so that the errors hit data, not the first request */
    assert_int_equal(relais_bus_produce(b, "k0", "warmup", 6, NULL), 0);
    assert_int_equal(relais_bus_flush(b, 5000), 0);
    assert_int_equal(rd_kafka_mock_broker_set_rtt(mc, 1, 100), 0);
    rd_kafka_mock_push_request_errors(mc, 0 /* Produce */, 4,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                      RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                      RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE);
    for (int i = 0; i < FI_N; i++) {
        char key[16], value[32];
        snprintf(key, sizeof key, "k%d", i % FI_KEYS);
        snprintf(value, sizeof value, "fi|%d", i);
        assert_int_equal(relais_bus_produce(b, key, value, strlen(value), (void *)(intptr_t)(i + 1)), 0);
        if (i % 10 == 9) {
            relais_bus_poll(b, 0);
            ts_sleep_ms(3);
        }
    }
    wait_delivered(b, d, FI_N + 1, 30000);
    assert_int_equal(rd_kafka_mock_broker_set_rtt(mc, 1, 0), 0);
    for (int i = 0; i < FI_N; i++) assert_int_equal(d->per_msg[i], 1);

    static int seen[FI_N];
    memset(seen, 0, sizeof seen);
    int n = read_topic(relais_bus_bootstrap(b), "t.faults", 3, "fi|", seen, FI_N, g_fi, FI_N + 10);
    assert_int_equal(n, FI_N + 1);
    for (int i = 0; i < FI_N; i++) assert_int_equal(seen[i], 1);
    int last[FI_KEYS];
    for (int k = 0; k < FI_KEYS; k++) last[k] = -1;
    for (int i = 0; i < n; i++) {
        if (strncmp(g_fi[i].value, "fi|", 3) != 0) continue;
        int seq = atoi(g_fi[i].value + 3);
        int k = seq % FI_KEYS;
        if (seq <= last[k]) fail_msg("key k%d: %d delivered after %d", k, seq, last[k]);
        last[k] = seq;
    }
    relais_bus_destroy(b);
    free(d);
}

static int wait_health(relais_bus *b, int want, int timeout_ms)
{
    long long end = mono_ms() + timeout_ms;
    while (mono_ms() < end) {
        if (relais_bus_healthy(b) == want) return 1;
        relais_bus_poll(b, 100);
    }
    return 0;
}

static void test_brokers_down_up(void **state)
{
    dr_count *d = calloc(1, sizeof *d);
    relais_bus_conf c = base_conf("embedded", "t.down", NULL, d);
    c.embedded_brokers = 3;
    c.partitions = 3;
    relais_bus *b = bus_new(&c);
    rd_kafka_mock_cluster_t *mc = relais_bus_mock_cluster(b);
    assert_true(wait_health(b, 1, 20000));
    for (int i = 0; i < 10; i++) {
        char value[32];
        snprintf(value, sizeof value, "down|%d", i);
        assert_int_equal(relais_bus_produce(b, value, value, strlen(value), NULL), 0);
    }
    wait_delivered(b, d, 10, 10000);

    long long t0 = mono_ms();
    for (int id = 1; id <= 3; id++) assert_int_equal(rd_kafka_mock_broker_set_down(mc, id), 0);
    assert_true(wait_health(b, 0, 20000));
    fprintf(stderr, "unhealthy after %lld ms\n", mono_ms() - t0);

    /* produced while every broker is down: queued, not delivered */
    for (int i = 10; i < 60; i++) {
        char value[32];
        snprintf(value, sizeof value, "down|%d", i);
        assert_int_equal(relais_bus_produce(b, value, value, strlen(value), NULL), 0);
    }
    long long hold = mono_ms() + 1000;
    while (mono_ms() < hold) relais_bus_poll(b, 100);
    assert_int_equal(d->ok, 10);
    assert_int_equal(relais_bus_healthy(b), 0);

    t0 = mono_ms();
    for (int id = 1; id <= 3; id++) assert_int_equal(rd_kafka_mock_broker_set_up(mc, id), 0);
    assert_true(wait_health(b, 1, 20000));
    fprintf(stderr, "healthy again after %lld ms\n", mono_ms() - t0);
    wait_delivered(b, d, 60, 20000);
    static int seen[60];
    memset(seen, 0, sizeof seen);
    assert_int_equal(read_topic(relais_bus_bootstrap(b), "t.down", 3, "down|", seen, 60, NULL, 0), 60);
    for (int i = 0; i < 60; i++) assert_int_equal(seen[i], 1);
    relais_bus_destroy(b);
    free(d);
}

/* No broker at all (a closed port): unhealthy; destroy does not wait for
 * ever: after its bounded flush it purges and reports the failure. */
static void test_unreachable_is_unhealthy(void **state)
{
    dr_count d = { 0 };
    char brokers[64];
    snprintf(brokers, sizeof brokers, "127.0.0.1:%d", ts_free_port());
    relais_bus_conf c = base_conf(brokers, "t.none", NULL, &d);
    relais_bus *b = bus_new(&c);
    assert_int_equal(relais_bus_healthy(b), 0);
    /* produce only queues; the message has nowhere to go */
    assert_int_equal(relais_bus_produce(b, "k", "v", 1, (void *)(intptr_t)1), 0);
    assert_int_equal(relais_bus_flush(b, 200), -1);
    assert_int_equal(d.ok + d.failed, 0);
    long long t0 = mono_ms();
    relais_bus_destroy(b);
    assert_true(mono_ms() - t0 < 8000);
    assert_int_equal(d.ok, 0);
    assert_int_equal(d.failed, 1);
    assert_int_equal(d.last_code, RELAIS_E_BUS);
    assert_non_null(strstr(d.last_error, "_PURGE_QUEUE"));
}

/* ---- the produce queue -------------------------------------------------- */

typedef struct side {
    relais_bus *b;
    int         rc;
    long long   ms;
} side;

static void *side_produce(void *arg)
{
    side *s = arg;
    long long t0 = mono_ms();
    s->rc = relais_bus_produce(s->b, "k", "side", 4, NULL);
    s->ms = mono_ms() - t0;
    return NULL;
}

static void test_queue_full(void **state)
{
    dr_count *d = calloc(1, sizeof *d);
    relais_kv kv2 = { "batch.num.messages", "5", NULL };
    relais_kv kv = { "queue.buffering.max.messages", "5", &kv2 };
    relais_bus_conf c = base_conf("embedded", "t.queue", NULL, d);
    c.rdkafka = &kv;
    relais_bus *b = bus_new(&c);
    relais_bus_poll(b, 0);   /* this thread is the bus thread */
    for (int i = 0; i < 5; i++) assert_int_equal(relais_bus_produce(b, "k", "x", 1, NULL), 0);
    /* queue full: once the broker has acknowledged the five, a produce on the
     * bus thread serves their reports itself and goes on (before that it
     * gives up after a few quick retries; relais_bus_poll is not called) */
    int rc = -1;
    for (int tries = 0; tries < 50 && rc != 0; tries++) {
        ts_sleep_ms(100);
        assert_int_equal(d->ok, 0);
        rc = relais_bus_produce(b, "k", "y", 1, NULL);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(d->ok, 5);

    /* fill it again; another thread cannot serve reports: it gives up
     * quickly, without sleeping long and without calling on_produced */
    for (int i = 0; i < 4; i++) assert_int_equal(relais_bus_produce(b, "k", "z", 1, NULL), 0);
    ts_sleep_ms(300);
    side s = { b, 0, 0 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, side_produce, &s), 0);
    pthread_join(t, NULL);
    assert_int_equal(s.rc, -1);
    assert_true(s.ms < 2000);   /* ~10 ms of retries; a blocking produce would never return */
    assert_int_equal(d->ok, 5);
    wait_delivered(b, d, 10, 20000);
    assert_int_equal(d->nthread, 1);
    relais_bus_destroy(b);
    free(d);
}

/* destroy flushes: every queued message is acknowledged and reported */
static void test_destroy_flushes(void **state)
{
    dr_count *d = calloc(1, sizeof *d);
    relais_bus_conf c = base_conf("embedded", "t.destroy", NULL, d);
    relais_bus *b = bus_new(&c);
    for (int i = 0; i < 100; i++)
        assert_int_equal(relais_bus_produce(b, "k", "v", 1, (void *)(intptr_t)(i + 1)), 0);
    relais_bus_destroy(b);
    assert_int_equal(d->ok, 100);
    assert_int_equal(d->failed, 0);
    free(d);
}

/* ---- consumer edge cases ------------------------------------------------ */

static void test_consumer_edges(void **state)
{
    relais_bus_conf c = base_conf("embedded", "t.edges", NULL, NULL);
    relais_bus *b = bus_new(&c);
    relais_bus_msg m[4];
    assert_int_equal(relais_bus_consume(b, m, 4, 10), -1);   /* no group */
    relais_bus_msg fake = { .partition = 0, .offset = 0 };
    assert_int_equal(relais_bus_store_offset(b, &fake), -1);
    relais_bus_destroy(b);

    c.group = "g-edges";
    b = bus_new(&c);
    /* a partition this member does not own */
    fake.partition = 42;
    assert_int_equal(relais_bus_store_offset(b, &fake), -1);
    /* nothing to read: returns 0 after the timeout */
    long long t0 = mono_ms();
    assert_int_equal(relais_bus_consume(b, m, 4, 300), 0);
    assert_true(mono_ms() - t0 >= 290);
    relais_bus_msg_release(NULL);
    relais_bus_destroy(b);
}

/* The group coordinator fences the member (fatal for librdkafka): consume
 * reports -1 instead of waiting forever. */
static void test_consumer_fatal(void **state)
{
    relais_bus_conf c = base_conf("embedded", "t.fatal", "g-fatal", NULL);
    c.partitions = 1;
    relais_bus *b = bus_new(&c);
    assert_int_equal(relais_bus_produce(b, "k", "v", 1, NULL), 0);
    assert_int_equal(relais_bus_flush(b, 5000), 0);
    relais_bus_msg m[4];
    int n = 0;
    long long end = mono_ms() + 15000;
    while (n == 0 && mono_ms() < end) n = relais_bus_consume(b, m, 4, 200);
    assert_int_equal(n, 1);   /* joined */
    relais_bus_msg_release(&m[0]);
    rd_kafka_mock_push_request_errors(relais_bus_mock_cluster(b), 12 /* Heartbeat */, 1,
                                      RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID);
    int rc = 0;
    end = mono_ms() + 8000;
    while (rc == 0 && mono_ms() < end) rc = relais_bus_consume(b, m, 4, 200);
    assert_int_equal(rc, -1);
    assert_int_equal(relais_bus_consume(b, m, 4, 10), -1);   /* and stays so */
    relais_bus_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_kcat_reads_embedded),
        cmocka_unit_test(test_offsets_resume),
        cmocka_unit_test(test_two_members),
        cmocka_unit_test(test_produce_retriable_errors),
        cmocka_unit_test(test_brokers_down_up),
        cmocka_unit_test(test_unreachable_is_unhealthy),
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_destroy_flushes),
        cmocka_unit_test(test_consumer_edges),
        cmocka_unit_test(test_consumer_fatal),
    };
    /* BUS_TEST=<pattern> runs a subset while working on one test */
    if (getenv("BUS_TEST")) cmocka_set_test_filter(getenv("BUS_TEST"));
    if (getenv("BUS_TEST_DEBUG")) relais_log_set_level(RELAIS_LOG_DEBUG);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
