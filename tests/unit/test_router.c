/* Unit tests: routing rules (hub/router.c) and retry backoff (hub/backoff.c). */
#include <stdlib.h>
#include <string.h>
#include "testsupport.h"
#include "router.h"
#include "backoff.h"
#include "event_int.h"

static relais_event *ev_of(const char *type, const char *tenant, const char *json_data)
{
    json_error_t je;
    json_t *d = json_loads(json_data, 0, &je);
    relais_record r = { .type = type, .tenant = tenant, .subject = "request/1", .record_id = "r", .data = d };
    char err[256];
    relais_event *ev = relais_event_build(&r, "desk", "ville", err, sizeof err);
    json_decref(d);
    return ev;
}

static void test_patterns(void **state)
{
    (void)state;
    assert_true(relais_pattern_match("fr.relais.grc.request.created", "fr.relais.grc.request.created"));
    assert_true(relais_pattern_match("fr.relais.grc.request.*", "fr.relais.grc.request.created"));
    assert_false(relais_pattern_match("fr.relais.grc.request.*", "fr.relais.grc.request.created.v2"));
    assert_true(relais_pattern_match("fr.relais.**", "fr.relais.grc.request.created"));
    assert_true(relais_pattern_match("fr.relais.**", "fr.relais"));
    assert_true(relais_pattern_match("fr.**.created", "fr.relais.grc.request.created"));
    assert_false(relais_pattern_match("fr.**.created", "fr.relais.grc.request.closed"));
    assert_true(relais_pattern_match("fr.relais.*.request.*", "fr.relais.ccas.request.closed"));
    assert_true(relais_pattern_match("fr.relais.grc.req*.created", "fr.relais.grc.request.created"));
    assert_false(relais_pattern_match("fr.relais.grc", "fr.relais.grc.request"));
    assert_false(relais_pattern_match("fr.relais.grc.request", "fr.relais.grc"));
}

/* A config built by hand: three sinks (two of tenant ville, one of ccas). */
typedef struct fixture {
    relais_config cfg;
    relais_conn_cfg conns[4];
    relais_route_cfg routes[3];
    relais_where where[2];
} fixture;

static char *m1[] = { "fr.relais.grc.request.*", NULL };
static char *m2[] = { "fr.relais.**", NULL };
static char *to1[] = { "worksite", "archive", NULL };
static char *to2[] = { "archive", "ccas-sink", "notify", NULL };
static char *to3[] = { "notify", NULL };
static char *v_voirie[] = { "voirie", NULL };
static char *v_in[] = { "a", "b", NULL };

static void make(fixture *f)
{
    memset(f, 0, sizeof *f);
    const char *names[] = { "worksite", "archive", "ccas-sink", "desk" };
    const char *tenants[] = { "ville", "ville", "ccas", "ville" };
    for (int i = 0; i < 4; i++) {
        f->conns[i].name = (char *)names[i];
        f->conns[i].tenant = (char *)tenants[i];
        f->conns[i].mode = i == 3 ? RELAIS_MODE_SOURCE : RELAIS_MODE_SINK;
    }
    f->where[0] = (relais_where){ .field = "data.category", .op = WHERE_EQUALS, .values = v_voirie };
    f->routes[0] = (relais_route_cfg){ .name = "voirie", .match = m1, .where = &f->where[0], .n_where = 1, .to = to1 };
    f->routes[1] = (relais_route_cfg){ .name = "all", .match = m2, .to = to2 };
    f->where[1] = (relais_where){ .field = "data.code", .op = WHERE_IN, .values = v_in };
    f->routes[2] = (relais_route_cfg){ .name = "codes", .match = m2, .tenant = "ccas", .where = &f->where[1], .n_where = 1, .to = to3 };
    f->cfg.connectors = f->conns;
    f->cfg.n_connectors = 4;
    f->cfg.routes = f->routes;
    f->cfg.n_routes = 3;
}

static void test_route_matching_filters_and_dedupe(void **state)
{
    (void)state;
    fixture f;
    make(&f);
    char err[128];
    relais_router *r = relais_router_new(&f.cfg, err, sizeof err);
    assert_non_null(r);
    const char *d[8], *rt[8];

    relais_event *ev = ev_of("fr.relais.grc.request.created", "ville", "{\"category\":\"voirie\"}");
    size_t n = relais_router_match(r, ev, d, rt, 8);
    /* worksite and archive by "voirie"; archive again by "all" is not repeated;
     * ccas-sink is another tenant's; notify is not a configured sink */
    assert_int_equal(n, 2);
    assert_string_equal(d[0], "worksite");
    assert_string_equal(rt[0], "voirie");
    assert_string_equal(d[1], "archive");
    assert_string_equal(rt[1], "voirie");
    relais_event_unref(ev);

    ev = ev_of("fr.relais.grc.request.created", "ville", "{\"category\":\"eclairage\"}");
    n = relais_router_match(r, ev, d, rt, 8);
    assert_int_equal(n, 1);
    assert_string_equal(d[0], "archive");
    assert_string_equal(rt[0], "all");
    relais_event_unref(ev);

    /* the CCAS's event reaches only the CCAS's sink */
    ev = ev_of("fr.relais.grc.request.created", "ccas", "{\"category\":\"voirie\"}");
    n = relais_router_match(r, ev, d, rt, 8);
    assert_int_equal(n, 1);
    assert_string_equal(d[0], "ccas-sink");
    relais_event_unref(ev);

    /* nothing matches another namespace */
    ev = ev_of("org.other.thing", "ville", "{}");
    assert_int_equal(relais_router_match(r, ev, d, rt, 8), 0);
    relais_event_unref(ev);
    relais_router_destroy(r);
}

static void test_where_operators(void **state)
{
    (void)state;
    relais_event *ev = ev_of("fr.relais.x.y", "ville", "{\"n\":3,\"b\":true,\"s\":\"x\",\"o\":{\"k\":\"v\"}}");
    char buf[64];
    assert_string_equal(relais_event_field(ev, "data.n", buf, sizeof buf), "3");
    assert_string_equal(relais_event_field(ev, "data.b", buf, sizeof buf), "true");
    assert_string_equal(relais_event_field(ev, "data.o.k", buf, sizeof buf), "v");
    assert_string_equal(relais_event_field(ev, "type", buf, sizeof buf), "fr.relais.x.y");
    assert_null(relais_event_field(ev, "data.o", buf, sizeof buf));      /* not a scalar */
    assert_null(relais_event_field(ev, "data.missing", buf, sizeof buf));
    assert_null(relais_event_field(ev, "data..n", buf, sizeof buf));

    fixture f;
    make(&f);
    static char *to[] = { "archive", NULL };
    static char *one[] = { "x", NULL };
    relais_where w = { .field = "data.s", .op = WHERE_NOT_EQUALS, .values = one };
    relais_route_cfg route = { .name = "ne", .match = m2, .where = &w, .n_where = 1, .to = to };
    f.cfg.routes = &route;
    f.cfg.n_routes = 1;
    char err[64];
    relais_router *r = relais_router_new(&f.cfg, err, sizeof err);
    const char *d[4], *rt[4];
    assert_int_equal(relais_router_match(r, ev, d, rt, 4), 0);           /* s == x */
    w.op = WHERE_EXISTS; w.exists = 1; w.field = "data.o.k";
    assert_int_equal(relais_router_match(r, ev, d, rt, 4), 1);
    w.exists = 0;
    assert_int_equal(relais_router_match(r, ev, d, rt, 4), 0);
    w.field = "data.nope";
    assert_int_equal(relais_router_match(r, ev, d, rt, 4), 1);
    w.op = WHERE_IN; w.field = "data.s"; w.values = v_in;
    assert_int_equal(relais_router_match(r, ev, d, rt, 4), 0);
    static char *in2[] = { "w", "x", NULL };
    w.values = in2;
    assert_int_equal(relais_router_match(r, ev, d, rt, 4), 1);
    relais_router_destroy(r);
    relais_event_unref(ev);
}

static void test_backoff_grows_with_jitter_and_cap(void **state)
{
    (void)state;
    uint64_t rng = 42;
    for (int attempt = 1; attempt <= 12; attempt++) {
        long cap = 500;
        for (int i = 1; i < attempt; i++) cap = cap * 2 > 60000 ? 60000 : cap * 2;
        long lo = cap, hi = 0;
        for (int k = 0; k < 200; k++) {
            long v = relais_backoff_ms(attempt, 500, 60000, &rng);
            assert_true(v >= cap / 2 && v <= cap);
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        assert_true(hi > lo);      /* jitter: not all the same */
    }
    /* capped */
    assert_true(relais_backoff_ms(50, 500, 60000, &rng) <= 60000);
    /* degenerate inputs are safe */
    assert_true(relais_backoff_ms(0, 0, 0, &rng) >= 0);
    /* deterministic for a given seed */
    uint64_t s1 = 7, s2 = 7;
    assert_int_equal(relais_backoff_ms(3, 100, 1000, &s1), relais_backoff_ms(3, 100, 1000, &s2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_route_matching_filters_and_dedupe),
        cmocka_unit_test(test_where_operators),
        cmocka_unit_test(test_backoff_grows_with_jitter_and_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
