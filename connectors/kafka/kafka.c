/*
 * kafka.c - the `kafka` connector: a topic in (source) and a topic out (sink),
 * for applications that speak Kafka themselves. It has its own librdkafka
 * handles, separate from the hub's bus (by default it talks to the same
 * cluster: relais_instance_bus_bootstrap()).
 *
 * Source: start() creates a consumer in group `group` (offsets stored only by
 * this code: enable.auto.offset.store=false; auto commit commits what was
 * stored) and a consumer thread. The thread reads up to `batch` messages,
 * turns each into a record (a JSON object, or a structured CloudEvent when it
 * has "specversion"), journals malformed ones with relais_reject(where
 * "<topic>/<partition>/<offset>"), submits the rest in one relais_submit()
 * and stores the offsets only once every message of the batch has a verdict.
 * When the hub answers UNAVAILABLE (or is not accepting), nothing is stored:
 * the partitions are sought back to the batch's first offsets, paused, and
 * read again after `retry_backoff`; the hub dedupes what it had already
 * journaled (record ids are stable). stop() joins the thread, which closes
 * the consumer (final commit of the stored offsets).
 *
 * Sink: start() creates an idempotent producer and a poll thread that serves
 * its delivery reports. deliver() produces the CloudEvent JSON (key = subject,
 * else event id; headers ce_id, ce_type, ce_source, ce_specversion,
 * content-type) and waits, at most `timeout` (+1s), for that message's
 * delivery report: acknowledged -> OK (local id "<topic>/<partition>/<offset>"),
 * a message-level permanent error (too large, invalid record) -> REJECT,
 * anything else (timeout, broker down, authorization) -> RETRY.
 *
 * Threads and data:
 *   main thread     init/start/stop/destroy; owns ctx fields before start
 *                   and after stop.
 *   consumer thread (source) owns the consumer handle while it runs.
 *   poll thread     (sink) calls rd_kafka_poll(); delivery reports complete
 *                   waiters under ctx->mu.
 *   workers         deliver(): produce (thread-safe in librdkafka), then wait
 *                   on their own waiter's condvar under ctx->mu. A waiter
 *                   abandoned on timeout is freed by the delivery report.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <librdkafka/rdkafka.h>
#include "relais/connector.h"
#include "jsonptr.h"
#include "../file/file_jsonl.h"   /* file_jsonl_parse: one JSON object per message */

#define KLOG_RAW_MAX 4096
#define FIELD_MAX    512

typedef struct kafka_config {
    char      *brokers;
    char      *topic;
    char      *group;
    char      *event_type;
    char      *subject_field;
    char      *record_id_field;
    long       batch;
    long       retry_backoff;   /* ms */
    long       timeout;         /* ms */
    relais_kv *rdkafka;
} kafka_config;

#define SRC RELAIS_MODE_SOURCE
#define SNK RELAIS_MODE_SINK

static const relais_option kafka_options[] = {
    { .name = "brokers", .type = RELAIS_OPT_STR, .offset = offsetof(kafka_config, brokers),
      .desc = "bootstrap.servers of the cluster; default: the hub's own bus" },
    { .name = "topic", .type = RELAIS_OPT_STR, .required = 1, .offset = offsetof(kafka_config, topic),
      .desc = "topic read (source) or written (sink)" },
    { .name = "group", .type = RELAIS_OPT_STR, .offset = offsetof(kafka_config, group), .modes = SRC,
      .desc = "consumer group; default \"relais-<instance name>\"" },
    { .name = "event_type", .type = RELAIS_OPT_STR, .offset = offsetof(kafka_config, event_type),
      .modes = SRC,
      .desc = "event type of messages that are not CloudEvents; without it such messages are rejected" },
    { .name = "subject_field", .type = RELAIS_OPT_STR, .offset = offsetof(kafka_config, subject_field),
      .modes = SRC,
      .desc = "JSON pointer to the subject (e.g. /request/id); CloudEvents default to their \"subject\"" },
    { .name = "record_id_field", .type = RELAIS_OPT_STR,
      .offset = offsetof(kafka_config, record_id_field), .modes = SRC,
      .desc = "JSON pointer to the record id (dedupe key); default \"<topic>/<partition>/<offset>\"" },
    { .name = "batch", .type = RELAIS_OPT_INT, .def = "500", .offset = offsetof(kafka_config, batch),
      .modes = SRC, .desc = "most messages per relais_submit call" },
    { .name = "retry_backoff", .type = RELAIS_OPT_DURATION, .def = "1s",
      .offset = offsetof(kafka_config, retry_backoff), .modes = SRC,
      .desc = "pause before reading again when the hub is not accepting" },
    { .name = "timeout", .type = RELAIS_OPT_DURATION, .def = "10s",
      .offset = offsetof(kafka_config, timeout), .modes = SNK,
      .desc = "how long deliver() waits for the broker's acknowledgement (message.timeout.ms)" },
    { .name = "rdkafka.", .type = RELAIS_OPT_PREFIX, .offset = offsetof(kafka_config, rdkafka),
      .desc = "rdkafka.<property>: passed to librdkafka as is (security.protocol, sasl.*, ssl.*...)" },
    { .name = NULL }
};

/* One deliver() call waiting for its delivery report. */
typedef struct waiter {
    pthread_cond_t      cv;
    int                 done;
    int                 abandoned;
    rd_kafka_resp_err_t err;
    int32_t             partition;
    int64_t             offset;
} waiter;

typedef struct kafka_ctx {
    relais_instance    *inst;
    const kafka_config *cfg;
    unsigned            mode;
    char               *brokers;
    char               *group;
    size_t              batch;
    long                backoff_ms;
    long                timeout_ms;
    rd_kafka_t         *rk;         /* consumer (source) or producer (sink) */
    pthread_t           thread;
    int                 thread_started;
    atomic_int          running;
    pthread_mutex_t     mu;         /* sink: guards every waiter */
} kafka_ctx;

/* ---- common ---------------------------------------------------------------- */

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    relais_log_level lvl = level <= 3 ? RELAIS_LOG_ERROR
                         : level == 4 ? RELAIS_LOG_WARN
                         : level <= 6 ? RELAIS_LOG_INFO : RELAIS_LOG_DEBUG;
    relais_logf(lvl, "kafka", "%s: %s: %s", rd_kafka_name(rk), fac, buf);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kafka_ctx *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof why);
        relais_instance_log(c->inst, RELAIS_LOG_ERROR, "kafka fatal error %s: %s",
                            rd_kafka_err2name(orig), why);
        return;
    }
    relais_instance_log(c->inst, RELAIS_LOG_WARN, "kafka: %s: %s",
                        rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static int conf_set(rd_kafka_conf_t *conf, const char *prefix, const char *key, const char *value,
                    char *errstr, size_t errlen)
{
    char why[512];
    if (rd_kafka_conf_set(conf, key, value, why, sizeof why) == RD_KAFKA_CONF_OK)
        return 0;
    snprintf(errstr, errlen, "kafka: %s%s: %s", prefix, key, why);
    return -1;
}

static const char *const g_consumer_defaults[] = {
    "enable.auto.commit", "true",
    "auto.commit.interval.ms", "1000",
    "auto.offset.reset", "earliest",
    "session.timeout.ms", "6000",
    "heartbeat.interval.ms", "1000",
    NULL
};
static const char *const g_producer_defaults[] = {
    "acks", "all",
    "linger.ms", "5",
    NULL
};

/* Defaults, then the rdkafka.* passthrough, then what this code relies on
 * (not overridable). NULL with errstr on error. */
static rd_kafka_conf_t *make_conf(kafka_ctx *c, char *errstr, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char client_id[256], num[32];
    snprintf(client_id, sizeof client_id, "relais-%s", relais_instance_name(c->inst));
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    const char *const *defs = c->mode == RELAIS_MODE_SOURCE ? g_consumer_defaults : g_producer_defaults;
    if (conf_set(conf, "", "bootstrap.servers", c->brokers, errstr, errlen) ||
        conf_set(conf, "", "client.id", client_id, errstr, errlen))
        goto fail;
    for (size_t i = 0; defs[i]; i += 2)
        if (conf_set(conf, "", defs[i], defs[i + 1], errstr, errlen))
            goto fail;
    for (const relais_kv *kv = c->cfg->rdkafka; kv; kv = kv->next)
        if (conf_set(conf, "rdkafka.", kv->key, kv->value ? kv->value : "", errstr, errlen))
            goto fail;
    if (c->mode == RELAIS_MODE_SOURCE) {
        if (conf_set(conf, "", "group.id", c->group, errstr, errlen) ||
            conf_set(conf, "", "enable.auto.offset.store", "false", errstr, errlen))
            goto fail;
    } else {
        snprintf(num, sizeof num, "%ld", c->timeout_ms);
        if (conf_set(conf, "", "enable.idempotence", "true", errstr, errlen) ||
            conf_set(conf, "", "message.timeout.ms", num, errstr, errlen))
            goto fail;
    }
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static void kafka_stop(void *vctx);

static void kafka_destroy(void *vctx)
{
    kafka_ctx *c = vctx;
    if (!c)
        return;
    kafka_stop(c);
    if (c->rk)
        rd_kafka_destroy(c->rk);
    free(c->brokers);
    free(c->group);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static int kafka_init(relais_instance *inst, void *config, void **out, char *errstr, size_t errlen)
{
    const kafka_config *cfg = config;
    *out = NULL;
    if (!cfg->topic || !*cfg->topic) {
        snprintf(errstr, errlen, "kafka: option 'topic' is required");
        return -1;
    }
    const char *brokers = cfg->brokers ? cfg->brokers : relais_instance_bus_bootstrap(inst);
    if (!brokers || !*brokers) {
        snprintf(errstr, errlen, "kafka: option 'brokers' is not set and the hub has no bus");
        return -1;
    }
    for (const relais_kv *kv = cfg->rdkafka; kv; kv = kv->next) {
        if (strcmp(kv->key, "enable.auto.offset.store") == 0 || strcmp(kv->key, "group.id") == 0 ||
            strcmp(kv->key, "enable.idempotence") == 0 || strcmp(kv->key, "message.timeout.ms") == 0) {
            snprintf(errstr, errlen,
                     "kafka: rdkafka.%s cannot be set: the connector relies on its own value "
                     "(use the options group / timeout)", kv->key);
            return -1;
        }
    }
    char perr[300];
    if (relais_json_pointer_check_option("subject_field", cfg->subject_field, perr, sizeof perr) ||
        relais_json_pointer_check_option("record_id_field", cfg->record_id_field, perr, sizeof perr)) {
        snprintf(errstr, errlen, "kafka: %s", perr);
        return -1;
    }
    kafka_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(errstr, errlen, "kafka: out of memory");
        return -1;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->inst = inst;
    c->cfg = cfg;
    c->mode = relais_instance_mode(inst);
    c->brokers = strdup(brokers);
    c->batch = cfg->batch > 0 ? (size_t)cfg->batch : 500;
    c->backoff_ms = cfg->retry_backoff > 0 ? cfg->retry_backoff : 1000;
    c->timeout_ms = cfg->timeout > 0 ? cfg->timeout : 10000;
    if (cfg->group) {
        c->group = strdup(cfg->group);
    } else {
        size_t n = strlen(relais_instance_name(inst)) + 8;
        c->group = malloc(n);
        if (c->group)
            snprintf(c->group, n, "relais-%s", relais_instance_name(inst));
    }
    if (!c->brokers || !c->group) {
        snprintf(errstr, errlen, "kafka: out of memory");
        kafka_destroy(c);
        return -1;
    }
    /* Check the passthrough now, so that a typo is a configuration error. */
    rd_kafka_conf_t *conf = make_conf(c, errstr, errlen);
    if (!conf) {
        kafka_destroy(c);
        return -1;
    }
    rd_kafka_conf_destroy(conf);
    *out = c;
    return 0;
}

/* ---- source ------------------------------------------------------------------ */

/* One consumed message on its way to a verdict. */
typedef struct kmsg {
    rd_kafka_message_t *m;
    json_t             *obj;           /* the parsed value */
    char                where[300];    /* "<topic>/<partition>/<offset>" */
    char                rid[FIELD_MAX];
    char                sub[FIELD_MAX];
} kmsg;

/* Seek every partition of the batch back to its first message in the batch,
 * so that nothing is skipped when the batch is read again. */
static void rewind_batch(kafka_ctx *c, kmsg *b, size_t n)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_message_t *m = b[i].m;
        const char *topic = rd_kafka_topic_name(m->rkt);
        rd_kafka_topic_partition_t *p = rd_kafka_topic_partition_list_find(l, topic, m->partition);
        if (!p)
            rd_kafka_topic_partition_list_add(l, topic, m->partition)->offset = m->offset;
        else if (m->offset < p->offset)
            p->offset = m->offset;
    }
    rd_kafka_error_t *err = rd_kafka_seek_partitions(c->rk, l, 5000);
    if (err) {
        relais_instance_log(c->inst, RELAIS_LOG_WARN, "kafka: seek back failed: %s",
                            rd_kafka_error_string(err));
        rd_kafka_error_destroy(err);
    }
    for (int i = 0; i < l->cnt; i++)
        if (l->elems[i].err)
            relais_instance_log(c->inst, RELAIS_LOG_WARN, "kafka: seek back %s [%" PRId32 "]: %s",
                                l->elems[i].topic, l->elems[i].partition,
                                rd_kafka_err2str(l->elems[i].err));
    rd_kafka_topic_partition_list_destroy(l);
}

static void store_batch(kafka_ctx *c, kmsg *b, size_t n)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_message_t *m = b[i].m;
        const char *topic = rd_kafka_topic_name(m->rkt);
        rd_kafka_topic_partition_t *p = rd_kafka_topic_partition_list_find(l, topic, m->partition);
        if (!p)
            rd_kafka_topic_partition_list_add(l, topic, m->partition)->offset = m->offset + 1;
        else if (m->offset + 1 > p->offset)
            p->offset = m->offset + 1;
    }
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(c->rk, l);
    if (err)   /* e.g. a partition revoked meanwhile: its new owner reads it again */
        relais_instance_log(c->inst, RELAIS_LOG_INFO, "kafka: offsets store: %s", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
}

static void set_paused(kafka_ctx *c, int pause)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(c->rk, &l) != RD_KAFKA_RESP_ERR_NO_ERROR || !l)
        return;
    if (l->cnt > 0) {
        if (pause)
            rd_kafka_pause_partitions(c->rk, l);
        else
            rd_kafka_resume_partitions(c->rk, l);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Parse one message into b->obj and fill the record; 0 ok, -1 rejected
 * (reason in why). */
static int to_record(kafka_ctx *c, kmsg *b, relais_record *rec, char *why, size_t whylen)
{
    const rd_kafka_message_t *m = b->m;
    memset(rec, 0, sizeof *rec);
    if (!m->payload || m->len == 0) {
        snprintf(why, whylen, "empty message");
        return -1;
    }
    b->obj = file_jsonl_parse(m->payload, m->len, why, whylen);
    if (!b->obj)
        return -1;
    const char *sub = NULL, *rid = NULL;
    if (relais_json_pointer_field(b->obj, c->cfg->record_id_field, "record_id_field", b->rid,
                                  sizeof b->rid, &rid, why, whylen) != 0 ||
        relais_json_pointer_field(b->obj, c->cfg->subject_field, "subject_field", b->sub,
                                  sizeof b->sub, &sub, why, whylen) != 0)
        return -1;
    rec->record_id = rid ? rid : b->where;
    json_t *spec = json_object_get(b->obj, "specversion");
    if (spec) {
        /* A structured CloudEvent: its type, subject, correlation, trace and
         * data; its tenant extension is ignored (the instance's tenant rules). */
        if (!json_is_string(spec) || strcmp(json_string_value(spec), "1.0") != 0) {
            snprintf(why, whylen, "CloudEvent specversion must be \"1.0\"");
            return -1;
        }
        json_t *type = json_object_get(b->obj, "type");
        json_t *data = json_object_get(b->obj, "data");
        if (!json_is_string(type)) {
            snprintf(why, whylen, "CloudEvent: $.type missing or not a string");
            return -1;
        }
        if (!json_is_object(data)) {
            snprintf(why, whylen, "CloudEvent: $.data missing or not a JSON object");
            return -1;
        }
        rec->type = json_string_value(type);
        rec->data = data;
        rec->subject = sub ? sub : json_string_value(json_object_get(b->obj, "subject"));
        rec->correlation_id = json_string_value(json_object_get(b->obj, "correlationid"));
        rec->traceparent = json_string_value(json_object_get(b->obj, "traceparent"));
        return 0;
    }
    if (!c->cfg->event_type) {
        snprintf(why, whylen, "not a CloudEvent and option event_type is not set");
        return -1;
    }
    rec->type = c->cfg->event_type;
    rec->data = b->obj;
    rec->subject = sub;
    return 0;
}

/* Give every message of the batch a verdict. 0 done (offsets may be
 * stored), -1 the hub is not accepting. */
static int process_batch(kafka_ctx *c, kmsg *b, size_t n, relais_record *recs,
                         relais_submit_result *res, size_t *idx)
{
    size_t nrec = 0;
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_message_t *m = b[i].m;
        char why[300];
        snprintf(b[i].where, sizeof b[i].where, "%s/%" PRId32 "/%" PRId64, rd_kafka_topic_name(m->rkt),
                 m->partition, m->offset);
        if (to_record(c, &b[i], &recs[nrec], why, sizeof why) != 0) {
            size_t rawlen = m->len > KLOG_RAW_MAX ? KLOG_RAW_MAX : m->len;
            if (relais_reject(c->inst, b[i].where, b[i].where, why, m->payload, rawlen) != 0)
                return -1;
            continue;
        }
        idx[nrec++] = i;
    }
    if (nrec == 0)
        return 0;
    memset(res, 0, nrec * sizeof *res);
    if (relais_submit(c->inst, recs, nrec, res) != 0)
        return -1;
    for (size_t k = 0; k < nrec; k++)
        if (res[k].status == RELAIS_SUBMIT_UNAVAILABLE)
            return -1;
    return 0;
}

static void free_batch(kmsg *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rd_kafka_message_destroy(b[i].m);
        json_decref(b[i].obj);
    }
    memset(b, 0, n * sizeof *b);
}

static void *consumer_main(void *arg)
{
    kafka_ctx *c = arg;
    kmsg *b = calloc(c->batch, sizeof *b);
    relais_record *recs = calloc(c->batch, sizeof *recs);
    relais_submit_result *res = calloc(c->batch, sizeof *res);
    size_t *idx = calloc(c->batch, sizeof *idx);
    int paused = 0;
    if (!b || !recs || !res || !idx) {
        relais_instance_log(c->inst, RELAIS_LOG_ERROR, "kafka: out of memory, consumer stopped");
        goto out;
    }
    while (atomic_load(&c->running)) {
        int accepting = relais_accepting(c->inst);
        if (!accepting && !paused) {
            set_paused(c, 1);
            paused = 1;
        } else if (accepting && paused) {
            set_paused(c, 0);
            paused = 0;
        }
        size_t n = 0;
        while (n < c->batch) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, n == 0 ? 100 : 0);
            if (!m)
                break;
            if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    relais_instance_log(c->inst, RELAIS_LOG_WARN, "kafka: consume: %s",
                                        rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                continue;
            }
            b[n++].m = m;
        }
        if (n == 0)
            continue;
        if (paused) {
            /* Fetched before the pause took effect (or from a partition
             * assigned since): read it again later. */
            rewind_batch(c, b, n);
            free_batch(b, n);
            continue;
        }
        if (process_batch(c, b, n, recs, res, idx) == 0) {
            store_batch(c, b, n);
            free_batch(b, n);
            continue;
        }
        relais_instance_log(c->inst, RELAIS_LOG_INFO,
                            "kafka: hub not accepting; %zu message(s) will be read again", n);
        rewind_batch(c, b, n);
        free_batch(b, n);
        set_paused(c, 1);
        paused = 1;
        for (long waited = 0; waited < c->backoff_ms && atomic_load(&c->running); waited += 50) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 50);
            if (m) {
                kmsg one = { .m = m };
                if (!m->err)
                    rewind_batch(c, &one, 1);
                rd_kafka_message_destroy(m);
            }
        }
    }
out:
    free(b);
    free(recs);
    free(res);
    free(idx);
    return NULL;
}

/* c->rk from the instance's configuration: a consumer, or a producer whose
 * delivery reports go to on_dr. */
static int new_handle(kafka_ctx *c, rd_kafka_type_t type, void (*on_dr)(rd_kafka_t *,
                      const rd_kafka_message_t *, void *), char *errstr, size_t errlen)
{
    char why[512];
    rd_kafka_conf_t *conf = make_conf(c, errstr, errlen);
    if (!conf)
        return -1;
    if (on_dr)
        rd_kafka_conf_set_dr_msg_cb(conf, on_dr);
    c->rk = rd_kafka_new(type, conf, why, sizeof why);
    if (!c->rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(errstr, errlen, "kafka: %s: %s", type == RD_KAFKA_CONSUMER ? "consumer" : "producer", why);
        return -1;
    }
    return 0;
}

static int source_start(kafka_ctx *c, char *errstr, size_t errlen)
{
    if (new_handle(c, RD_KAFKA_CONSUMER, NULL, errstr, errlen) != 0)
        return -1;
    rd_kafka_poll_set_consumer(c->rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, c->cfg->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        snprintf(errstr, errlen, "kafka: subscribe to %s: %s", c->cfg->topic, rd_kafka_err2str(err));
        goto fail;
    }
    atomic_store(&c->running, 1);
    if (pthread_create(&c->thread, NULL, consumer_main, c) != 0) {
        snprintf(errstr, errlen, "kafka: cannot start the consumer thread");
        goto fail;
    }
    c->thread_started = 1;
    return 0;
fail:
    rd_kafka_consumer_close(c->rk);
    rd_kafka_destroy(c->rk);
    c->rk = NULL;
    return -1;
}

/* ---- sink ---------------------------------------------------------------------- */

/* Delivery report, on the poll thread. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    kafka_ctx *c = opaque;
    waiter *w = m->_private;
    (void)rk;
    if (!w)
        return;
    pthread_mutex_lock(&c->mu);
    if (w->abandoned) {
        pthread_mutex_unlock(&c->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        return;
    }
    w->err = m->err;
    w->partition = m->partition;
    w->offset = m->offset;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&c->mu);
}

static void *poll_main(void *arg)
{
    kafka_ctx *c = arg;
    while (atomic_load(&c->running))
        rd_kafka_poll(c->rk, 100);
    return NULL;
}

static int sink_start(kafka_ctx *c, char *errstr, size_t errlen)
{
    if (new_handle(c, RD_KAFKA_PRODUCER, on_delivery, errstr, errlen) != 0)
        return -1;
    atomic_store(&c->running, 1);
    if (pthread_create(&c->thread, NULL, poll_main, c) != 0) {
        snprintf(errstr, errlen, "kafka: cannot start the poll thread");
        rd_kafka_destroy(c->rk);
        c->rk = NULL;
        return -1;
    }
    c->thread_started = 1;
    return 0;
}

/* Errors that producing the same message again cannot fix. */
static int permanent(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR__BAD_MSG:
        return 1;
    default:
        return 0;
    }
}

static relais_verdict verdict_of(kafka_ctx *c, rd_kafka_resp_err_t err, const char *when,
                                 relais_answer *ans)
{
    char fatal[256] = "";
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[200];
        err = rd_kafka_fatal_error(c->rk, why, sizeof why);
        snprintf(fatal, sizeof fatal, " (producer fatal error: %s; restart the hub)", why);
    }
    snprintf(ans->detail, sizeof ans->detail, "%s: %s: %s%s", when, rd_kafka_err2name(err),
             rd_kafka_err2str(err), fatal);
    return permanent(err) ? RELAIS_DELIVER_REJECT : RELAIS_DELIVER_RETRY;
}

static relais_verdict kafka_deliver(void *vctx, const relais_event *ev, const char *local_id,
                                    relais_answer *ans)
{
    kafka_ctx *c = vctx;
    ans->status = 0;
    ans->detail[0] = '\0';
    ans->local_id[0] = '\0';
    if (!c->rk || !atomic_load(&c->running)) {
        snprintf(ans->detail, sizeof ans->detail, "kafka: producer not started");
        return RELAIS_DELIVER_RETRY;
    }
    /* the value: the vendor record made by the instance's mapping, or the
     * CloudEvent itself */
    relais_payload pl;
    if (relais_render(c->inst, ev, local_id, &pl, ans) != 0) return RELAIS_DELIVER_REJECT;
    size_t len = pl.len;
    const char *json = pl.body;
    const char *key = relais_event_subject(ev) ? relais_event_subject(ev) : relais_event_id(ev);
    const char *id = relais_event_id(ev), *type = relais_event_type(ev), *src = relais_event_source(ev);
    if (!json) {
        relais_payload_release(&pl);
        snprintf(ans->detail, sizeof ans->detail, "kafka: cannot serialise the event");
        return RELAIS_DELIVER_RETRY;
    }
    waiter *w = calloc(1, sizeof *w);
    if (!w) {
        relais_payload_release(&pl);
        snprintf(ans->detail, sizeof ans->detail, "kafka: out of memory");
        return RELAIS_DELIVER_RETRY;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);

    rd_kafka_resp_err_t err = rd_kafka_producev(
        c->rk, RD_KAFKA_V_TOPIC(c->cfg->topic), RD_KAFKA_V_VALUE((void *)json, len),
        RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADER("ce_specversion", "1.0", 3), RD_KAFKA_V_HEADER("ce_id", id, strlen(id)),
        RD_KAFKA_V_HEADER("ce_type", type, strlen(type)),
        RD_KAFKA_V_HEADER("ce_source", src ? src : "", src ? strlen(src) : 0),
        RD_KAFKA_V_HEADER("content-type", pl.content_type, strlen(pl.content_type)),
        RD_KAFKA_V_OPAQUE(w), RD_KAFKA_V_END);
    relais_payload_release(&pl);    /* RD_KAFKA_MSG_F_COPY: the value was copied */
    if (err) {
        pthread_cond_destroy(&w->cv);
        free(w);
        return verdict_of(c, err, "produce", ans);
    }

    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    long wait_ms = c->timeout_ms + 1000;
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->mu);
    while (!w->done) {
        if (pthread_cond_timedwait(&w->cv, &c->mu, &until) == ETIMEDOUT && !w->done)
            break;
    }
    if (!w->done) {
        w->abandoned = 1;   /* the delivery report frees it */
        pthread_mutex_unlock(&c->mu);
        snprintf(ans->detail, sizeof ans->detail, "kafka: no delivery report within %ld ms", wait_ms);
        return RELAIS_DELIVER_RETRY;
    }
    pthread_mutex_unlock(&c->mu);
    err = w->err;
    int32_t part = w->partition;
    int64_t off = w->offset;
    pthread_cond_destroy(&w->cv);
    free(w);
    if (err)
        return verdict_of(c, err, "delivery", ans);
    snprintf(ans->local_id, sizeof ans->local_id, "%.80s/%" PRId32 "/%" PRId64, c->cfg->topic, part, off);
    snprintf(ans->detail, sizeof ans->detail, "acknowledged at %s", ans->local_id);
    return RELAIS_DELIVER_OK;
}

/* ---- lifecycle --------------------------------------------------------------------- */

static int kafka_start(void *vctx, char *errstr, size_t errlen)
{
    kafka_ctx *c = vctx;
    return c->mode == RELAIS_MODE_SOURCE ? source_start(c, errstr, errlen) : sink_start(c, errstr, errlen);
}

static void kafka_stop(void *vctx)
{
    kafka_ctx *c = vctx;
    if (!c || !c->thread_started)
        return;
    atomic_store(&c->running, 0);
    pthread_join(c->thread, NULL);
    c->thread_started = 0;
    if (c->mode == RELAIS_MODE_SOURCE) {
        rd_kafka_resp_err_t err = rd_kafka_consumer_close(c->rk);   /* commits stored offsets */
        if (err)
            relais_instance_log(c->inst, RELAIS_LOG_WARN, "kafka: consumer close: %s", rd_kafka_err2str(err));
    } else {
        /* In-flight deliveries already returned (the hub stops workers first);
         * serve what is left so that abandoned waiters are freed. */
        if (rd_kafka_flush(c->rk, (int)c->timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_purge(c->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_poll(c->rk, 0);
        }
    }
    rd_kafka_destroy(c->rk);
    c->rk = NULL;
}

const relais_connector relais_connector_kafka = {
    .abi_version = RELAIS_CONNECTOR_ABI,
    .name = "kafka",
    .description = "Kafka topic in (consumer group) and out (idempotent producer), for applications that speak Kafka",
    .modes = RELAIS_MODE_SOURCE | RELAIS_MODE_SINK,
    .options = kafka_options,
    .config_size = sizeof(kafka_config),
    .init = kafka_init,
    .start = kafka_start,
    .receive = NULL,
    .deliver = kafka_deliver,
    .stop = kafka_stop,
    .destroy = kafka_destroy,
};
