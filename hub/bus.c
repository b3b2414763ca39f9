/*
 * bus.c - the Kafka bus over librdkafka (see bus.h and docs/BUS.md).
 *
 * "embedded" starts a librdkafka mock cluster (rdkafka_mock.h) in this
 * process: a dedicated producer handle that never connects anywhere owns it
 * (rd_kafka_mock_cluster_new needs one for its timers and logs), the topic is
 * created with rd_kafka_mock_topic_create (the 2.0.2 mock has no CreateTopics
 * handler, so the Admin API cannot be used there). Any other `brokers` value
 * is the bootstrap list of a real cluster where the topic must exist or be
 * auto-created by the brokers; the bus does not create it. From then on the
 * bus only knows a bootstrap list: embedded and real clusters run the same
 * code.
 *
 * Handles:
 *   producer  idempotent, acks=all, linger.ms=5, no compression, murmur2_random
 *             partitioner (the Java client's, so every client agrees on
 *             key -> partition). Delivery reports go to conf->on_produced
 *             with err RELAIS_E_OK, RELAIS_E_TIMEOUT (message.timeout.ms
 *             passed) or RELAIS_E_BUS, and errstr "NAME: text" ("" when OK).
 *   consumer  (only with a group) range assignment, auto offset store off,
 *             auto commit of the stored offsets every second and on close,
 *             auto.offset.reset=earliest, session 6 s / heartbeat 1 s,
 *             fetch.wait.max.ms=10 (low latency); its
 *             main queue is redirected to the consumer queue
 *             (rd_kafka_poll_set_consumer). consume() loops on
 *             rd_kafka_consumer_poll: 2.0.2's batch consume API may lose or
 *             repeat messages across a rebalance (its release notes).
 * Both: reconnect.backoff.max.ms=1000, so a restarted broker is seen within a
 * second or two. rdkafka.* passthrough properties are applied last, to both
 * handles (librdkafka warns about those that do not apply to one of them).
 *
 * Threads: librdkafka runs its own threads (and the mock cluster its own).
 *   - relais_bus_produce, relais_bus_store_offset, relais_bus_healthy,
 *     relais_bus_bootstrap, relais_bus_mock_cluster: any thread (librdkafka
 *     handles are thread-safe; the health cache is under health_mu).
 *   - relais_bus_poll, relais_bus_flush, relais_bus_consume,
 *     relais_bus_msg_release, relais_bus_destroy: the hub's bus thread only.
 *     poll, flush and destroy serve delivery reports, so on_produced runs
 *     there. When the produce queue is full, relais_bus_produce serves
 *     delivery reports itself only when it is called from the thread that
 *     last called relais_bus_poll (poller, under poller_mu); from any other
 *     thread it waits 1 ms between a few retries and then fails.
 *   - the log callback runs on librdkafka threads, the error callback on the
 *     polling thread; both only call relais_logf, which is thread-safe.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include "bus.h"
#include "relais/relais.h"

#define BUS_LOG                "bus"
#define PRODUCE_RETRIES        10     /* queue full: retries before giving up */
#define PRODUCE_RETRY_SLEEP_MS 1      /* between retries when not the poller */
#define HEALTH_CACHE_MS        1000   /* one metadata request per second at most */
#define HEALTH_TIMEOUT_MS      500
#define DESTROY_FLUSH_MS       5000

struct relais_mock_broker {
    rd_kafka_t              *rk;         /* book-keeping handle, never connects */
    rd_kafka_mock_cluster_t *mcluster;
    char                    *bootstrap;
};

struct relais_bus {
    char               *topic;
    char               *bootstrap;
    relais_mock_broker *embedded;        /* embedded mode only; destroyed last */
    rd_kafka_t         *producer;
    rd_kafka_t         *consumer;        /* NULL without a group */
    void              (*on_produced)(void *opaque, int err, const char *errstr, void *msg_opaque);
    void               *opaque;

    pthread_mutex_t     poller_mu;
    int                 has_poller;
    pthread_t           poller;          /* last thread that called relais_bus_poll */

    pthread_mutex_t     health_mu;
    int                 health_ok;
    int                 health_busy;     /* a metadata request is under way */
    int64_t             health_at_ms;    /* monotonic time of the last answer */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---- librdkafka callbacks (librdkafka threads or the polling thread) ---- */

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    relais_log_level lvl = level <= 3 ? RELAIS_LOG_ERROR
                         : level == 4 ? RELAIS_LOG_WARN
                         : level <= 6 ? RELAIS_LOG_INFO : RELAIS_LOG_DEBUG;
    relais_logf(lvl, BUS_LOG, "%s: %s: %s", rd_kafka_name(rk), fac, buf);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof why);
        relais_logf(RELAIS_LOG_ERROR, BUS_LOG, "%s: fatal error %s: %s", rd_kafka_name(rk),
                    rd_kafka_err2name(orig), why);
        return;
    }
    /* Connection failures are already in the log callback's FAIL lines. */
    int quiet = err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__RESOLVE;
    relais_logf(quiet ? RELAIS_LOG_DEBUG : RELAIS_LOG_WARN, BUS_LOG, "%s: %s: %s", rd_kafka_name(rk),
                rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    relais_bus *b = opaque;
    if (!b->on_produced) return;
    if (!m->err) {
        b->on_produced(b->opaque, RELAIS_E_OK, "", m->_private);
        return;
    }
    char why[256];
    snprintf(why, sizeof why, "%s: %s", rd_kafka_err2name(m->err), rd_kafka_err2str(m->err));
    b->on_produced(b->opaque, m->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT ? RELAIS_E_TIMEOUT
                                                                         : RELAIS_E_BUS,
                   why, m->_private);
}

/* ---- configuration ------------------------------------------------------ */

static int conf_set(rd_kafka_conf_t *conf, const char *what, const char *key, const char *value,
                    char *errstr, size_t errlen)
{
    char why[512];
    if (rd_kafka_conf_set(conf, key, value, why, sizeof why) == RD_KAFKA_CONF_OK) return 0;
    snprintf(errstr, errlen, "bus: %s%s: %s", what, key, why);
    return -1;
}

/* A conf with the settings both handles share, the given defaults, and the
 * rdkafka.* passthrough applied last. NULL on error (errstr filled). */
static rd_kafka_conf_t *make_conf(relais_bus *b, const relais_bus_conf *c,
                                  const char *const *defaults, char *errstr, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *client_id = c->client_id && *c->client_id ? c->client_id : "relais";
    rd_kafka_conf_set_opaque(conf, b);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    if (conf_set(conf, "", "bootstrap.servers", b->bootstrap, errstr, errlen) ||
        conf_set(conf, "", "client.id", client_id, errstr, errlen) ||
        conf_set(conf, "", "reconnect.backoff.max.ms", "1000", errstr, errlen))
        goto fail;
    for (size_t i = 0; defaults[i]; i += 2) {
        if (conf_set(conf, "", defaults[i], defaults[i + 1], errstr, errlen)) goto fail;
    }
    for (const relais_kv *kv = c->rdkafka; kv; kv = kv->next) {
        if (conf_set(conf, "rdkafka.", kv->key, kv->value ? kv->value : "", errstr, errlen))
            goto fail;
    }
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static const char *const g_producer_defaults[] = {
    "enable.idempotence", "true",
    "acks", "all",
    /* 5 ms. 1 ms would take ~4 ms off the added latency at low rates, but
     * with the 2.0.2 mock cluster and retriable Produce errors it loses
     * acknowledged messages (tests/runtime/test_bus.c
     * test_produce_retriable_errors fails: 295 of 301 in the log); the
     * journal would re-publish them after a minute, but we do not trade
     * that for 4 ms. */
    "linger.ms", "5",
    "compression.codec", "none",
    "partitioner", "murmur2_random",
    NULL
};

static const char *const g_consumer_defaults[] = {
    "enable.auto.offset.store", "false",
    "enable.auto.commit", "true",
    "auto.commit.interval.ms", "1000",
    "auto.offset.reset", "earliest",
    "partition.assignment.strategy", "range",
    "session.timeout.ms", "6000",
    "heartbeat.interval.ms", "1000",
    /* The broker answers a fetch as soon as data is there, or after this
     * wait: 10 ms instead of librdkafka's 500 ms keeps the added latency of
     * the bus in milliseconds (measured: p50 290 ms -> 24 ms end to end at
     * 1,000 events/s, bench/e2e.sh). Costs idle fetches on loopback only;
     * tune with rdkafka.fetch.wait.max.ms for a remote cluster. */
    "fetch.wait.max.ms", "10",
    NULL
};

/* ---- the mock cluster --------------------------------------------------- */

relais_mock_broker *relais_mock_broker_start(int nbrokers, const char *topic, int partitions,
                                             char *errstr, size_t errlen)
{
    if (nbrokers < 1) {
        snprintf(errstr, errlen, "bus.embedded_brokers: must be >= 1 (got %d)", nbrokers);
        return NULL;
    }
    if (!topic || !*topic) {
        snprintf(errstr, errlen, "bus.topic: missing");
        return NULL;
    }
    if (partitions < 1) {
        snprintf(errstr, errlen, "bus.partitions: must be >= 1 (got %d)", partitions);
        return NULL;
    }
    relais_mock_broker *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(errstr, errlen, "bus: out of memory");
        return NULL;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[512];
    rd_kafka_conf_set_log_cb(conf, on_log);
    /* log_level 4: warnings and worse; this handle has no bootstrap.servers
     * on purpose and librdkafka would say so at every start */
    if (rd_kafka_conf_set(conf, "client.id", "relais-mock", why, sizeof why) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "log_level", "4", why, sizeof why) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errlen, "bus: mock cluster: %s", why);
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (!m->rk) {
        snprintf(errstr, errlen, "bus: mock cluster handle: %s", why);
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    m->mcluster = rd_kafka_mock_cluster_new(m->rk, nbrokers);
    if (!m->mcluster) {
        snprintf(errstr, errlen, "bus: cannot start the embedded Kafka (mock cluster of %d)",
                 nbrokers);
        goto fail;
    }
    m->bootstrap = dup_str(rd_kafka_mock_cluster_bootstraps(m->mcluster));
    if (!m->bootstrap) {
        snprintf(errstr, errlen, "bus: out of memory");
        goto fail;
    }
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(m->mcluster, topic, partitions,
                                                         nbrokers < 3 ? nbrokers : 3);
    if (err) {
        snprintf(errstr, errlen, "bus.topic: cannot create %s on the embedded Kafka: %s", topic,
                 rd_kafka_err2str(err));
        goto fail;
    }
    relais_logf(RELAIS_LOG_INFO, BUS_LOG, "embedded Kafka: %d broker(s) at %s, topic %s (%d partitions)",
                nbrokers, m->bootstrap, topic, partitions);
    return m;
fail:
    relais_mock_broker_stop(m);
    return NULL;
}

const char *relais_mock_broker_bootstrap(const relais_mock_broker *m)
{
    return m ? m->bootstrap : NULL;
}

void *relais_mock_broker_cluster(relais_mock_broker *m)
{
    return m ? m->mcluster : NULL;
}

void relais_mock_broker_stop(relais_mock_broker *m)
{
    if (!m) return;
    if (m->mcluster) rd_kafka_mock_cluster_destroy(m->mcluster);
    if (m->rk) rd_kafka_destroy(m->rk);
    free(m->bootstrap);
    free(m);
}

/* ---- the bus ------------------------------------------------------------ */

relais_bus *relais_bus_new(const relais_bus_conf *c, char *errstr, size_t errlen)
{
    if (!c || !c->brokers || !*c->brokers) {
        snprintf(errstr, errlen, "bus.brokers: missing (\"embedded\" or a bootstrap list)");
        return NULL;
    }
    if (!c->topic || !*c->topic) {
        snprintf(errstr, errlen, "bus.topic: missing");
        return NULL;
    }
    relais_bus *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(errstr, errlen, "bus: out of memory");
        return NULL;
    }
    pthread_mutex_init(&b->poller_mu, NULL);
    pthread_mutex_init(&b->health_mu, NULL);
    b->health_at_ms = INT64_MIN / 2;
    b->on_produced = c->on_produced;
    b->opaque = c->opaque;
    b->topic = dup_str(c->topic);
    if (!b->topic) {
        snprintf(errstr, errlen, "bus: out of memory");
        goto fail;
    }

    if (strcmp(c->brokers, "embedded") == 0) {
        b->embedded = relais_mock_broker_start(c->embedded_brokers > 0 ? c->embedded_brokers : 1,
                                               c->topic, c->partitions, errstr, errlen);
        if (!b->embedded) goto fail;
        b->bootstrap = dup_str(b->embedded->bootstrap);
    } else {
        b->bootstrap = dup_str(c->brokers);
    }
    if (!b->bootstrap) {
        snprintf(errstr, errlen, "bus: out of memory");
        goto fail;
    }

    /* Producer. */
    rd_kafka_conf_t *conf = make_conf(b, c, g_producer_defaults, errstr, errlen);
    if (!conf) goto fail;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    char why[512];
    b->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (!b->producer) {
        snprintf(errstr, errlen, "bus: producer: %s", why);
        rd_kafka_conf_destroy(conf);
        goto fail;
    }

    /* Consumer. */
    if (c->group) {
        if (!*c->group) {
            snprintf(errstr, errlen, "bus.group: empty");
            goto fail;
        }
        conf = make_conf(b, c, g_consumer_defaults, errstr, errlen);
        if (!conf) goto fail;
        if (conf_set(conf, "", "group.id", c->group, errstr, errlen)) {
            rd_kafka_conf_destroy(conf);
            goto fail;
        }
        b->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
        if (!b->consumer) {
            snprintf(errstr, errlen, "bus: consumer: %s", why);
            rd_kafka_conf_destroy(conf);
            goto fail;
        }
        rd_kafka_poll_set_consumer(b->consumer);
        rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(topics, c->topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t err = rd_kafka_subscribe(b->consumer, topics);
        rd_kafka_topic_partition_list_destroy(topics);
        if (err) {
            snprintf(errstr, errlen, "bus: subscribe to %s: %s", c->topic, rd_kafka_err2str(err));
            goto fail;
        }
    }
    relais_logf(RELAIS_LOG_INFO, BUS_LOG, "bus on %s, topic %s, group %s", b->bootstrap, b->topic,
                c->group ? c->group : "(none: producer only)");
    return b;
fail:
    relais_bus_destroy(b);
    return NULL;
}

const char *relais_bus_bootstrap(const relais_bus *b)
{
    return b ? b->bootstrap : NULL;
}

void *relais_bus_mock_cluster(relais_bus *b)
{
    return b && b->embedded ? b->embedded->mcluster : NULL;
}

static int is_poller(relais_bus *b)
{
    pthread_mutex_lock(&b->poller_mu);
    int yes = b->has_poller && pthread_equal(b->poller, pthread_self());
    pthread_mutex_unlock(&b->poller_mu);
    return yes;
}

int relais_bus_produce(relais_bus *b, const char *key, const void *value, size_t len, void *msg_opaque)
{
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int attempt = 0; attempt <= PRODUCE_RETRIES; attempt++) {
        if (attempt > 0) {
            /* Queue full: the queue drains when delivery reports are served. */
            if (is_poller(b))
                rd_kafka_poll(b->producer, 0);
            else
                sleep_ms(PRODUCE_RETRY_SLEEP_MS);
        }
        err = rd_kafka_producev(b->producer,
                                RD_KAFKA_V_TOPIC(b->topic),
                                RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                                RD_KAFKA_V_VALUE((void *)value, len),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_OPAQUE(msg_opaque),
                                RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
    }
    if (!err) return 0;
    relais_logf(RELAIS_LOG_ERROR, BUS_LOG, "produce to %s: %s", b->topic, rd_kafka_err2str(err));
    return -1;
}

int relais_bus_poll(relais_bus *b, int timeout_ms)
{
    pthread_mutex_lock(&b->poller_mu);
    b->poller = pthread_self();
    b->has_poller = 1;
    pthread_mutex_unlock(&b->poller_mu);
    return rd_kafka_poll(b->producer, timeout_ms);
}

int relais_bus_flush(relais_bus *b, int timeout_ms)
{
    rd_kafka_resp_err_t err = rd_kafka_flush(b->producer, timeout_ms);
    if (!err) return 0;
    relais_logf(RELAIS_LOG_WARN, BUS_LOG, "flush: %d message(s) still unacknowledged after %d ms",
                rd_kafka_outq_len(b->producer), timeout_ms);
    return -1;
}

int relais_bus_consume(relais_bus *b, relais_bus_msg *msgs, size_t max, int timeout_ms)
{
    if (!b->consumer) {
        relais_logf(RELAIS_LOG_ERROR, BUS_LOG, "consume: this bus has no consumer group");
        return -1;
    }
    char why[512];
    if (rd_kafka_fatal_error(b->consumer, why, sizeof why)) {
        relais_logf(RELAIS_LOG_ERROR, BUS_LOG, "consume: consumer failed for good: %s", why);
        return -1;
    }
    int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    size_t n = 0;
    while (n < max) {
        int64_t left = deadline - now_ms();
        /* Wait only for the first message; then take what is already there. */
        int wait = n == 0 && left > 0 ? (int)left : 0;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(b->consumer, wait);
        if (!m) {
            if (n > 0 || left <= 0) break;
            continue;
        }
        if (m->err) {
            rd_kafka_resp_err_t err = m->err;
            if (err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                relais_logf(RELAIS_LOG_DEBUG, BUS_LOG, "consume: end of partition %d",
                            (int)m->partition);
            } else {
                relais_logf(err == RD_KAFKA_RESP_ERR__FATAL ? RELAIS_LOG_ERROR : RELAIS_LOG_WARN,
                            BUS_LOG, "consume: %s: %s", rd_kafka_err2name(err),
                            rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
            if (err == RD_KAFKA_RESP_ERR__FATAL) {
                /* Hand back what we have; the next call reports the error. */
                return n > 0 ? (int)n : -1;
            }
            continue;
        }
        msgs[n].value = m->payload;
        msgs[n].len = m->len;
        msgs[n].key = m->key;
        msgs[n].keylen = m->key_len;
        msgs[n].partition = m->partition;
        msgs[n].offset = m->offset;
        msgs[n].handle = m;
        n++;
    }
    return (int)n;
}

void relais_bus_msg_release(relais_bus_msg *m)
{
    if (!m || !m->handle) return;
    rd_kafka_message_destroy(m->handle);
    memset(m, 0, sizeof *m);
}

int relais_bus_store_offset(relais_bus *b, const relais_bus_msg *m)
{
    if (!b->consumer) return -1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, b->topic, m->partition)->offset = m->offset + 1;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(b->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (!err) return 0;
    /* __STATE: the partition was revoked since; its next owner gets the
     * message again (at-least-once). */
    relais_logf(RELAIS_LOG_WARN, BUS_LOG, "store offset %s [%d] @%lld: %s", b->topic,
                (int)m->partition, (long long)m->offset, rd_kafka_err2str(err));
    return -1;
}

int relais_bus_healthy(relais_bus *b)
{
    pthread_mutex_lock(&b->health_mu);
    int cached = b->health_ok;
    if (b->health_busy || now_ms() - b->health_at_ms < HEALTH_CACHE_MS) {
        pthread_mutex_unlock(&b->health_mu);
        return cached;
    }
    b->health_busy = 1;
    pthread_mutex_unlock(&b->health_mu);

    /* Metadata for the locally known topics only: a small request that
     * needs a broker to answer. */
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(b->producer, 0, NULL, &md, HEALTH_TIMEOUT_MS);
    if (md) rd_kafka_metadata_destroy(md);

    int ok = err == RD_KAFKA_RESP_ERR_NO_ERROR;
    pthread_mutex_lock(&b->health_mu);
    if (ok != b->health_ok)
        relais_logf(ok ? RELAIS_LOG_INFO : RELAIS_LOG_WARN, BUS_LOG, "bus %s: %s",
                    ok ? "healthy" : "unhealthy", ok ? "a broker answered" : rd_kafka_err2str(err));
    b->health_ok = ok;
    b->health_at_ms = now_ms();
    b->health_busy = 0;
    pthread_mutex_unlock(&b->health_mu);
    return ok;
}

void relais_bus_destroy(relais_bus *b)
{
    if (!b) return;
    if (b->consumer) {
        if (rd_kafka_fatal_error(b->consumer, NULL, 0)) {
            /* Fenced or otherwise dead: nothing can be committed any more, and
             * 2.0.2's close spins forever after a fatal consumer error. */
            rd_kafka_destroy_flags(b->consumer, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        } else {
            /* Leaves the group and commits the stored offsets. */
            rd_kafka_resp_err_t err = rd_kafka_consumer_close(b->consumer);
            if (err)
                relais_logf(RELAIS_LOG_WARN, BUS_LOG, "consumer close: %s", rd_kafka_err2str(err));
            rd_kafka_destroy(b->consumer);
        }
    }
    if (b->producer) {
        if (rd_kafka_flush(b->producer, DESTROY_FLUSH_MS)) {
            relais_logf(RELAIS_LOG_WARN, BUS_LOG,
                        "destroy: %d message(s) unacknowledged after %d ms, purged",
                        rd_kafka_outq_len(b->producer), DESTROY_FLUSH_MS);
            rd_kafka_purge(b->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_poll(b->producer, 0);   /* their delivery reports: errors */
        }
        rd_kafka_destroy(b->producer);
    }
    relais_mock_broker_stop(b->embedded);
    pthread_mutex_destroy(&b->poller_mu);
    pthread_mutex_destroy(&b->health_mu);
    free(b->topic);
    free(b->bootstrap);
    free(b);
}
