/*
 * test_retention.c - the `retention` section of the configuration
 * (hub/config.h) and the retention of each event type (hub/retention.h):
 * durations with their units, "never", rules in order with routes' type
 * patterns, the default when none matches. The refusals are in
 * tests/data/config/invalid/retention*.yaml (test_config.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "config.h"
#include "errlist.h"
#include "retention.h"
#include "testsupport.h"

static relais_config *load(const char *rel)
{
    relais_errlist errs;
    relais_errlist_init(&errs);
    relais_config *c = relais_config_load(ts_source_path(rel), &errs);
    if (!c) {
        relais_errlist_print(&errs, stderr);
        fail_msg("%s does not load", rel);
    }
    relais_errlist_free(&errs);
    return c;
}

static void test_rules_in_order(void **state)
{
    (void)state;
    relais_config *c = load("tests/data/config/valid/retention.yaml");
    assert_int_equal(c->retention.secs, 26 * 7 * 86400L);
    assert_int_equal(c->retention.n_rules, 5);
    assert_int_equal(relais_retention_secs(c, "fr.relais.billing.invoice.issued.v1"), 365 * 86400L);
    assert_int_equal(relais_retention_secs(c, "fr.relais.civil.birth.registered.v1"), -1);
    assert_int_equal(relais_retention_secs(c, "fr.relais.election.voter.removed.v1"), -1);
    /* the first matching rule wins: 90d before the wider grc 12h */
    assert_int_equal(relais_retention_secs(c, "fr.relais.grc.request.created.v1"), 90 * 86400L);
    assert_int_equal(relais_retention_secs(c, "fr.relais.grc.request.created.v2"), 12 * 3600L);
    assert_int_equal(relais_retention_secs(c, "test.relais.short"), 30);
    /* no rule: the default */
    assert_int_equal(relais_retention_secs(c, "fr.relais.person.person.created.v1"), 26 * 7 * 86400L);
    relais_config_destroy(c);
}

static void test_default_without_section(void **state)
{
    (void)state;
    relais_config *c = load("tests/data/config/valid/minimal.yaml");
    /* CNIL délibération 2021-122: six months to a year; 180 days by default */
    assert_int_equal(c->retention.secs, 180 * 86400L);
    assert_int_equal(c->retention.n_rules, 0);
    assert_int_equal(relais_retention_secs(c, "fr.relais.grc.request.created.v1"), 180 * 86400L);
    relais_config_destroy(c);
}

static void test_units(void **state)
{
    (void)state;
    static const struct { const char *text; long secs; } cases[] = {
        { "10s", 10 }, { "30m", 1800 }, { "12h", 43200 }, { "180d", 180 * 86400L }, { "2w", 14 * 86400L },
        { "1y", 365 * 86400L }, { "never", -1 }, { "100y", 100 * 365 * 86400L },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[256];
        snprintf(yaml, sizeof yaml, "bus: {brokers: embedded}\njournal: {conninfo: \"dbname=x\"}\n"
                                    "retention: {payloads: %s}\n", cases[i].text);
        relais_errlist errs;
        relais_errlist_init(&errs);
        relais_config *c = relais_config_load_buffer("t.yaml", yaml, strlen(yaml), &errs);
        if (!c) {
            relais_errlist_print(&errs, stderr);
            fail_msg("'%s' refused", cases[i].text);
        }
        assert_int_equal(c->retention.secs, cases[i].secs);
        relais_config_destroy(c);
        relais_errlist_free(&errs);
    }
    static const char *const bad[] = { "0d", "1", "1 d", "d", "-1d", "1mo", "1.5d", "101y", "Never", "" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char yaml[256];
        snprintf(yaml, sizeof yaml, "bus: {brokers: embedded}\njournal: {conninfo: \"dbname=x\"}\n"
                                    "retention: {payloads: \"%s\"}\n", bad[i]);
        relais_errlist errs;
        relais_errlist_init(&errs);
        relais_config *c = relais_config_load_buffer("t.yaml", yaml, strlen(yaml), &errs);
        if (c) fail_msg("'%s' accepted", bad[i]);
        assert_true(errs.count >= 1);
        assert_non_null(strstr(errs.msgs[0], "'payloads' must be a duration"));
        relais_errlist_free(&errs);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_in_order),
        cmocka_unit_test(test_default_without_section),
        cmocka_unit_test(test_units),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
