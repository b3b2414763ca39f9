/* Unit tests: Prometheus exposition (hub/metrics.c). */
#include <stdlib.h>
#include <string.h>
#include "testsupport.h"
#include "metrics.h"

static void test_render(void **state)
{
    (void)state;
    const char *names[] = { "desk", "worksite" };
    relais_metrics *m = relais_metrics_new(names, 2);
    assert_non_null(m);
    relais_conn_metrics *w = relais_metrics_conn(m, "worksite");
    assert_non_null(w);
    assert_null(relais_metrics_conn(m, "nope"));
    atomic_fetch_add(&relais_metrics_conn(m, "desk")->events_in, 5);
    atomic_fetch_add(&w->delivered, 3);
    atomic_fetch_add(&w->dead_lettered, 1);
    relais_metrics_observe_latency(m, 800);        /* 0.8 ms  -> le 0.001 */
    relais_metrics_observe_latency(m, 30000);      /* 30 ms   -> le 0.05 */
    relais_metrics_observe_latency(m, 20000000);   /* 20 s    -> +Inf only */
    char *t = relais_metrics_render(m, 1, 0);
    assert_non_null(t);
    assert_non_null(strstr(t, "relais_events_in_total{connector=\"desk\"} 5\n"));
    assert_non_null(strstr(t, "relais_delivered_total{connector=\"worksite\"} 3\n"));
    assert_non_null(strstr(t, "relais_dead_lettered_total{connector=\"worksite\"} 1\n"));
    assert_non_null(strstr(t, "# TYPE relais_delivered_total counter\n"));
    assert_non_null(strstr(t, "relais_bus_up 1\n"));
    assert_non_null(strstr(t, "relais_journal_up 0\n"));
    assert_non_null(strstr(t, "relais_delivery_latency_seconds_bucket{le=\"0.001\"} 1\n"));
    assert_non_null(strstr(t, "relais_delivery_latency_seconds_bucket{le=\"0.025\"} 1\n"));
    assert_non_null(strstr(t, "relais_delivery_latency_seconds_bucket{le=\"0.05\"} 2\n"));
    assert_non_null(strstr(t, "relais_delivery_latency_seconds_bucket{le=\"10\"} 2\n"));
    assert_non_null(strstr(t, "relais_delivery_latency_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(t, "relais_delivery_latency_seconds_count 3\n"));
    free(t);
    relais_metrics_destroy(m);
    relais_metrics_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_render) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
