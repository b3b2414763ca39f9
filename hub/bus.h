/*
 * bus.h - the Kafka bus (librdkafka).
 *
 * brokers "embedded": a librdkafka mock cluster (rdkafka_mock.h) is started in
 * this process, on loopback, reachable by any Kafka client (kcat); anything
 * else is bootstrap.servers of a real cluster. Past creation, both paths are
 * the same code.
 *
 * Producer: idempotent, acks=all, key = event subject (one person's events
 * stay in order on one partition), value = the CloudEvent JSON.
 * Consumer: subscribed to the topic in a consumer group, enable.auto.offset.store
 * false: offsets are stored only for messages whose routing is journaled
 * (relais_bus_store_offset), and committed by librdkafka's auto commit and on close.
 *
 * Threads: produce and store_offset are thread-safe. consume() and poll()
 * are called from the hub's bus thread only.
 */
#ifndef RELAIS_BUS_H
#define RELAIS_BUS_H
#include <stddef.h>
#include <stdint.h>
#include "relais/connector.h"

typedef struct relais_bus relais_bus;

typedef struct relais_bus_conf {
    const char       *brokers;           /* "embedded" or bootstrap list */
    int               embedded_brokers;  /* mock cluster size (default 1) */
    const char       *topic;
    int               partitions;        /* for the topic the hub creates in embedded mode */
    const char       *group;             /* consumer group; NULL: no consumer */
    const char       *client_id;
    const relais_kv  *rdkafka;           /* passthrough properties */
    /* Delivery report for each produce: err 0 when acknowledged by the broker.
     * Called from the thread that calls relais_bus_poll(). */
    void            (*on_produced)(void *opaque, int err, const char *errstr, void *msg_opaque);
    void             *opaque;
} relais_bus_conf;

relais_bus *relais_bus_new(const relais_bus_conf *c, char *errstr, size_t errlen);
/* Bootstrap servers actually in use ("127.0.0.1:40123" when embedded). */
const char *relais_bus_bootstrap(const relais_bus *b);
/* Async produce of a copy of value. 0 queued, -1 error (queue full, fatal). */
int relais_bus_produce(relais_bus *b, const char *key, const void *value, size_t len, void *msg_opaque);
/* Serve delivery reports. Returns number of events served. */
int relais_bus_poll(relais_bus *b, int timeout_ms);
/* Wait for every produced message to be acknowledged. 0 ok, -1 timeout. */
int relais_bus_flush(relais_bus *b, int timeout_ms);

typedef struct relais_bus_msg {
    const char *value;
    size_t      len;
    const char *key;
    size_t      keylen;
    int32_t     partition;
    int64_t     offset;
    void       *handle;            /* internal: the rd_kafka_message_t */
} relais_bus_msg;

/* Up to max messages, waiting at most timeout_ms. Returns count, -1 on fatal error.
 * Consumer errors that are not fatal (partition EOF, transient broker errors)
 * are logged and skipped. Release every message with relais_bus_msg_release. */
int  relais_bus_consume(relais_bus *b, relais_bus_msg *msgs, size_t max, int timeout_ms);
void relais_bus_msg_release(relais_bus_msg *m);
/* Mark msg (and everything before it in its partition) as processed. */
int  relais_bus_store_offset(relais_bus *b, const relais_bus_msg *m);

/* 1 when a broker answered recently (metadata request succeeded). */
int relais_bus_healthy(relais_bus *b);
/* Close the consumer (leave the group, commit stored offsets), flush the
 * producer, destroy the mock cluster. NULL-safe. */
void relais_bus_destroy(relais_bus *b);

/* Embedded mode only (NULL otherwise): the rd_kafka_mock_cluster_t, for tests'
 * fault injection. */
void *relais_bus_mock_cluster(relais_bus *b);

/* A standalone mock cluster (`relais broker`): NULL on error. */
typedef struct relais_mock_broker relais_mock_broker;
relais_mock_broker *relais_mock_broker_start(int nbrokers, const char *topic, int partitions,
                                             char *errstr, size_t errlen);
const char *relais_mock_broker_bootstrap(const relais_mock_broker *m);
void       *relais_mock_broker_cluster(relais_mock_broker *m);
void        relais_mock_broker_stop(relais_mock_broker *m);
#endif
