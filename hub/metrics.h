/*
 * metrics.h - counters and a latency histogram, exported in Prometheus text
 * format by the admin HTTP server. Lock-free (atomics): any thread updates.
 */
#ifndef RELAIS_METRICS_H
#define RELAIS_METRICS_H
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#define RELAIS_LAT_BUCKETS 14

typedef struct relais_conn_metrics {
    const char *name;            /* connector instance name (borrowed) */
    atomic_llong events_in;      /* accepted from this source */
    atomic_llong duplicates;
    atomic_llong echoes;          /* changes Relais wrote itself, not submitted again */
    atomic_llong rejected;
    atomic_llong delivered;      /* to this sink */
    atomic_llong retried;
    atomic_llong dead_lettered;
    atomic_llong attempts;
    atomic_llong in_flight;      /* deliveries being attempted now */
    atomic_llong queued;         /* deliveries waiting for a worker */
    atomic_llong last_status;    /* last answer status (HTTP code) */
    atomic_llong circuit_open;   /* 1 while the destination's circuit breaker is open */
    atomic_llong circuit_opened; /* times it opened */
    atomic_llong paused;         /* 1 while an operator has paused the instance (hub.c) */
} relais_conn_metrics;

typedef struct relais_metrics {
    relais_conn_metrics *conns;
    size_t               n_conns;
    atomic_llong         routed;
    atomic_llong         unrouted;
    atomic_llong         published;
    atomic_llong         publish_errors;
    /* end-to-end latency: event time (received) -> delivered, seconds */
    atomic_llong         lat_bucket[RELAIS_LAT_BUCKETS];   /* cumulative on export */
    atomic_llong         lat_count;
    atomic_llong         lat_sum_us;
} relais_metrics;

relais_metrics *relais_metrics_new(const char *const *names, size_t n);
void relais_metrics_destroy(relais_metrics *m);
relais_conn_metrics *relais_metrics_conn(relais_metrics *m, const char *name);
void relais_metrics_observe_latency(relais_metrics *m, int64_t us);
/* Prometheus text exposition (malloc'd, NUL-terminated). `bus_up`/`journal_up`
 * are exported as gauges. */
char *relais_metrics_render(relais_metrics *m, int bus_up, int journal_up);
#endif
