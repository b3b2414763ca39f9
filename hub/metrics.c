/*
 * metrics.c - see metrics.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "metrics.h"

static const double g_bounds[RELAIS_LAT_BUCKETS - 1] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};

relais_metrics *relais_metrics_new(const char *const *names, size_t n)
{
    relais_metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->conns = calloc(n ? n : 1, sizeof *m->conns);
    if (!m->conns) { free(m); return NULL; }
    m->n_conns = n;
    for (size_t i = 0; i < n; i++) m->conns[i].name = names[i];
    return m;
}

void relais_metrics_destroy(relais_metrics *m)
{
    if (!m) return;
    free(m->conns);
    free(m);
}

relais_conn_metrics *relais_metrics_conn(relais_metrics *m, const char *name)
{
    for (size_t i = 0; name && i < m->n_conns; i++)
        if (strcmp(m->conns[i].name, name) == 0) return &m->conns[i];
    return NULL;
}

void relais_metrics_observe_latency(relais_metrics *m, int64_t us)
{
    if (us < 0) us = 0;
    double s = (double)us / 1e6;
    size_t b = 0;
    while (b < RELAIS_LAT_BUCKETS - 1 && s > g_bounds[b]) b++;
    atomic_fetch_add(&m->lat_bucket[b], 1);
    atomic_fetch_add(&m->lat_count, 1);
    atomic_fetch_add(&m->lat_sum_us, us);
}

typedef struct buf { char *p; size_t len, cap; } buf;

static void bprintf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if ((size_t)n < b->cap - b->len) { b->len += (size_t)n; return; }
        size_t ncap = b->cap * 2 + (size_t)n;
        char *np = realloc(b->p, ncap);
        if (!np) return;
        b->p = np;
        b->cap = ncap;
    }
}

#define COUNTER(b, name, help) bprintf(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
#define GAUGE(b, name, help) bprintf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)

static void per_conn(buf *b, relais_metrics *m, const char *name, const char *help, int counter,
                     size_t off)
{
    if (counter) COUNTER(b, name, help); else GAUGE(b, name, help);
    for (size_t i = 0; i < m->n_conns; i++) {
        atomic_llong *v = (atomic_llong *)((char *)&m->conns[i] + off);
        bprintf(b, "%s{connector=\"%s\"} %lld\n", name, m->conns[i].name, (long long)atomic_load(v));
    }
}

char *relais_metrics_render(relais_metrics *m, int bus_up, int journal_up)
{
    buf b = { malloc(4096), 0, 4096 };
    if (!b.p) return NULL;
    b.p[0] = '\0';
    GAUGE(&b, "relais_bus_up", "1 when a Kafka broker answers");
    bprintf(&b, "relais_bus_up %d\n", bus_up ? 1 : 0);
    GAUGE(&b, "relais_journal_up", "1 when PostgreSQL commits");
    bprintf(&b, "relais_journal_up %d\n", journal_up ? 1 : 0);
    per_conn(&b, m, "relais_events_in_total", "records accepted from a source", 1, offsetof(relais_conn_metrics, events_in));
    per_conn(&b, m, "relais_duplicates_total", "records already journaled (inbox dedupe)", 1, offsetof(relais_conn_metrics, duplicates));
    per_conn(&b, m, "relais_echoes_total", "changes Relais wrote into the package itself, seen again by its source and not submitted (no echo)", 1, offsetof(relais_conn_metrics, echoes));
    per_conn(&b, m, "relais_rejected_total", "inputs rejected by a source", 1, offsetof(relais_conn_metrics, rejected));
    per_conn(&b, m, "relais_delivery_attempts_total", "delivery attempts to a sink", 1, offsetof(relais_conn_metrics, attempts));
    per_conn(&b, m, "relais_delivered_total", "events delivered to a sink", 1, offsetof(relais_conn_metrics, delivered));
    per_conn(&b, m, "relais_retried_total", "failed attempts scheduled for retry", 1, offsetof(relais_conn_metrics, retried));
    per_conn(&b, m, "relais_dead_lettered_total", "deliveries moved to the dead-letter queue", 1, offsetof(relais_conn_metrics, dead_lettered));
    per_conn(&b, m, "relais_deliveries_in_flight", "deliveries being attempted now", 0, offsetof(relais_conn_metrics, in_flight));
    per_conn(&b, m, "relais_deliveries_queued", "deliveries waiting for a worker", 0, offsetof(relais_conn_metrics, queued));
    per_conn(&b, m, "relais_last_answer_status", "status of the last answer from a sink", 0, offsetof(relais_conn_metrics, last_status));
    per_conn(&b, m, "relais_circuit_open", "1 while a sink's circuit breaker is open", 0, offsetof(relais_conn_metrics, circuit_open));
    per_conn(&b, m, "relais_circuit_opened_total", "times a sink's circuit breaker opened", 1, offsetof(relais_conn_metrics, circuit_opened));
    per_conn(&b, m, "relais_connector_paused", "1 while an operator has paused the connector instance (POST /connectors/NAME/pause)", 0, offsetof(relais_conn_metrics, paused));
    COUNTER(&b, "relais_routed_total", "events routed to at least one destination");
    bprintf(&b, "relais_routed_total %lld\n", (long long)atomic_load(&m->routed));
    COUNTER(&b, "relais_unrouted_total", "events that matched no route");
    bprintf(&b, "relais_unrouted_total %lld\n", (long long)atomic_load(&m->unrouted));
    COUNTER(&b, "relais_published_total", "events acknowledged by the bus");
    bprintf(&b, "relais_published_total %lld\n", (long long)atomic_load(&m->published));
    COUNTER(&b, "relais_publish_errors_total", "events the bus failed to acknowledge");
    bprintf(&b, "relais_publish_errors_total %lld\n", (long long)atomic_load(&m->publish_errors));
    bprintf(&b, "# HELP relais_delivery_latency_seconds time from reception to delivery\n"
                "# TYPE relais_delivery_latency_seconds histogram\n");
    long long cum = 0;
    for (size_t i = 0; i < RELAIS_LAT_BUCKETS; i++) {
        cum += atomic_load(&m->lat_bucket[i]);
        if (i < RELAIS_LAT_BUCKETS - 1)
            bprintf(&b, "relais_delivery_latency_seconds_bucket{le=\"%g\"} %lld\n", g_bounds[i], cum);
        else
            bprintf(&b, "relais_delivery_latency_seconds_bucket{le=\"+Inf\"} %lld\n", cum);
    }
    bprintf(&b, "relais_delivery_latency_seconds_sum %.6f\n", (double)atomic_load(&m->lat_sum_us) / 1e6);
    bprintf(&b, "relais_delivery_latency_seconds_count %lld\n", (long long)atomic_load(&m->lat_count));
    return b.p;
}
