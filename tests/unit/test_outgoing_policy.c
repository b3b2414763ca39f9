/*
 * test_outgoing_policy.c - unit tests of the pure parts of the outgoing-call
 * policy and of the webhook replay memory (hub/httputil.c), and of the
 * `outgoing.allow` block of the configuration (hub/config.c):
 *
 *   - allow-list entries: names, "*.name", addresses, CIDR ranges (IPv4 and
 *     IPv6), and the refusals (bad prefix, host bits set, brackets, garbage);
 *   - host and address matching (case, trailing dot, wildcard vs apex,
 *     IPv4-mapped IPv6, ranges);
 *   - the URL host libcurl sees (brackets, userinfo, numeric IPv4 forms);
 *   - the nonce memory: first use, replay, expiry, the cap with its
 *     retry-after, forgetting, bounded size;
 *   - config load: a connector URL outside the list is an error naming the
 *     instance, the option and the line; names without ranges, bad entries,
 *     `allow: []`, an empty value; no list: anything goes.
 * The libcurl behaviour (protocols, redirects, the pre-connect and
 * pre-request checks, timeouts) is in tests/runtime/test_outgoing_policy.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testsupport.h"
#include "config.h"
#include "httputil.h"

/* ---- allow-list ------------------------------------------------------------- */

static relais_http_allow *allow_of(const char *const *entries)
{
    relais_http_allow *a = relais_http_allow_new();
    assert_non_null(a);
    char err[256];
    for (size_t i = 0; entries[i]; i++) {
        if (relais_http_allow_add(a, entries[i], err, sizeof err) != 0)
            fail_msg("entry '%s' refused: %s", entries[i], err);
    }
    return a;
}

static void expect_refused(const char *entry, const char *needle)
{
    relais_http_allow *a = relais_http_allow_new();
    char err[256] = "";
    assert_int_equal(relais_http_allow_add(a, entry, err, sizeof err), -1);
    if (!strstr(err, needle)) fail_msg("entry '%s': error '%s' lacks '%s'", entry, err, needle);
    relais_http_allow_destroy(a);
}

static void test_allow_entries(void **state)
{
    (void)state;
    const char *const ok[] = { "publik.mairie.example", "*.agglo.example", "10.0.0.0/8", "127.0.0.1",
                               "192.168.1.0/24", "::1", "fd00::/8", "0.0.0.0/0", "Grc.Intranet.", NULL };
    relais_http_allow *a = allow_of(ok);
    assert_int_equal(relais_http_allow_names(a), 3);
    assert_int_equal(relais_http_allow_ranges(a), 6);
    relais_http_allow_destroy(a);

    expect_refused("", "empty");
    expect_refused("10.0.0.0/33", "prefix length must be 0 to 32");
    expect_refused("fd00::/129", "0 to 128");
    expect_refused("10.1.2.3/8", "did you mean 10.0.0.0/8");
    expect_refused("fd00::1/8", "did you mean fd00::/8");
    expect_refused("10/8", "not an IPv4 or IPv6 address");
    expect_refused("[::1]", "without brackets");
    expect_refused("http://publik.example/", "is a URL: give its host name only");
    expect_refused("bad host", "neither a host name");
    expect_refused("a..b", "neither a host name");
    expect_refused("10.0.0.0/", "prefix length");
    relais_http_allow_destroy(NULL);   /* no-op */
}

static void test_allow_matching(void **state)
{
    (void)state;
    const char *const e[] = { "publik.mairie.example", "*.agglo.example", "10.0.0.0/8", "fd00::/8",
                              "127.0.0.1/32", NULL };
    relais_http_allow *a = allow_of(e);
    /* names: exact, any case, trailing dot */
    assert_true(relais_http_allow_host(a, "publik.mairie.example"));
    assert_true(relais_http_allow_host(a, "PUBLIK.Mairie.Example."));
    assert_false(relais_http_allow_host(a, "evil-publik.mairie.example"));
    assert_false(relais_http_allow_host(a, "publik.mairie.example.evil.org"));
    assert_false(relais_http_allow_host(a, "mairie.example"));
    /* "*.name": the names below it, not the name itself */
    assert_true(relais_http_allow_host(a, "sig.agglo.example"));
    assert_true(relais_http_allow_host(a, "a.b.agglo.example"));
    assert_false(relais_http_allow_host(a, "agglo.example"));
    assert_false(relais_http_allow_host(a, "xagglo.example"));
    /* an address as host: its range decides */
    assert_true(relais_http_allow_host(a, "10.20.30.40"));
    assert_false(relais_http_allow_host(a, "11.0.0.1"));
    assert_true(relais_http_allow_host(a, "fd12::5"));
    assert_false(relais_http_allow_host(a, "::1"));
    assert_false(relais_http_allow_host(a, ""));
    assert_false(relais_http_allow_host(a, NULL));

    /* addresses connected to: ranges only; names allow no address */
    assert_true(relais_http_allow_addr(a, "10.255.255.255"));
    assert_true(relais_http_allow_addr(a, "127.0.0.1"));
    assert_false(relais_http_allow_addr(a, "127.0.0.2"));
    assert_false(relais_http_allow_addr(a, "169.254.169.254"));   /* cloud metadata */
    assert_true(relais_http_allow_addr(a, "::ffff:10.1.2.3"));    /* IPv4-mapped */
    assert_false(relais_http_allow_addr(a, "::ffff:169.254.169.254"));
    assert_true(relais_http_allow_addr(a, "fdff:ffff::1"));
    assert_false(relais_http_allow_addr(a, "fe80::1"));
    assert_false(relais_http_allow_addr(a, "publik.mairie.example"));
    assert_false(relais_http_allow_addr(a, NULL));
    assert_false(relais_http_allow_addr(NULL, "10.0.0.1"));
    relais_http_allow_destroy(a);

    /* /0 and odd prefix lengths */
    const char *const e2[] = { "0.0.0.0/0", "192.168.2.128/25", NULL };
    a = allow_of(e2);
    assert_true(relais_http_allow_addr(a, "8.8.8.8"));
    assert_false(relais_http_allow_addr(a, "2001:db8::1"));   /* an IPv4 range says nothing of IPv6 */
    relais_http_allow_destroy(a);
    const char *const e3[] = { "192.168.2.128/25", NULL };
    a = allow_of(e3);
    assert_true(relais_http_allow_addr(a, "192.168.2.200"));
    assert_false(relais_http_allow_addr(a, "192.168.2.127"));
    relais_http_allow_destroy(a);
}

static void test_url_host(void **state)
{
    (void)state;
    char h[256], err[256];
    assert_int_equal(relais_http_url_host("https://Publik.Mairie.example:8443/api?x=1", h, sizeof h, err, sizeof err), 0);
    assert_string_equal(h, "Publik.Mairie.example");
    assert_int_equal(relais_http_url_host("http://[fd00::5]:80/x", h, sizeof h, err, sizeof err), 0);
    assert_string_equal(h, "fd00::5");
    /* userinfo is not the host */
    assert_int_equal(relais_http_url_host("http://publik.mairie.example@10.9.9.9/", h, sizeof h, err, sizeof err), 0);
    assert_string_equal(h, "10.9.9.9");
    /* libcurl's numeric IPv4 forms are normalised: 0x7f000001 is 127.0.0.1 */
    assert_int_equal(relais_http_url_host("http://0x7f000001/", h, sizeof h, err, sizeof err), 0);
    assert_string_equal(h, "127.0.0.1");
    assert_int_equal(relais_http_url_host("smtp://relay.mairie.example:25", h, sizeof h, err, sizeof err), 0);
    assert_string_equal(h, "relay.mairie.example");
    assert_int_equal(relais_http_url_host("not a url", h, sizeof h, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a URL"));
}

/* ---- nonce memory ----------------------------------------------------------- */

static void test_nonce_cache(void **state)
{
    (void)state;
    relais_nonce_cache *c = relais_nonce_cache_new(3);
    assert_non_null(c);
    long long ra = 0;
    /* first use, then a replay within the window */
    assert_int_equal(relais_nonce_use(c, "n-1", 1300, 1000, &ra), RELAIS_NONCE_NEW);
    assert_int_equal(relais_nonce_use(c, "n-1", 1300, 1100, &ra), RELAIS_NONCE_REPLAY);
    assert_int_equal(relais_nonce_use(c, "n-1", 1300, 1299, &ra), RELAIS_NONCE_REPLAY);
    /* other nonces pass */
    assert_int_equal(relais_nonce_use(c, "n-2", 1400, 1100, &ra), RELAIS_NONCE_NEW);
    assert_int_equal(relais_nonce_use(c, "n-3", 1250, 1100, &ra), RELAIS_NONCE_NEW);
    /* full: a clear refusal, with the wait until the oldest goes, nothing remembered */
    assert_int_equal(relais_nonce_use(c, "n-4", 1400, 1100, &ra), RELAIS_NONCE_FULL);
    assert_int_equal(ra, 200);   /* n-1 expires at 1300 */
    assert_int_equal(relais_nonce_count(c, 1100), 3);
    /* the replay of a remembered nonce is still a replay when full */
    assert_int_equal(relais_nonce_use(c, "n-2", 1400, 1100, &ra), RELAIS_NONCE_REPLAY);
    /* after n-1's window its entry is dropped: room again, and n-1 is new */
    assert_int_equal(relais_nonce_count(c, 1300), 2);
    assert_int_equal(relais_nonce_use(c, "n-4", 1500, 1300, &ra), RELAIS_NONCE_NEW);
    assert_int_equal(relais_nonce_use(c, "n-1", 1600, 1301, &ra), RELAIS_NONCE_FULL);
    /* n-3 expired at 1250 but waits behind n-2 (1400): it is not a replay
     * any more, yet it still takes room until then */
    assert_int_equal(relais_nonce_count(c, 1301), 3);
    assert_int_equal(relais_nonce_use(c, "n-3", 1700, 1301, &ra), RELAIS_NONCE_FULL);
    assert_int_equal(relais_nonce_count(c, 1400), 1);   /* n-2 and n-3 gone; n-4 (1500) stays */
    assert_int_equal(relais_nonce_use(c, "n-3", 1700, 1400, &ra), RELAIS_NONCE_NEW);
    /* forget: the same nonce may be used again (a request that was not taken) */
    relais_nonce_forget(c, "n-3");
    assert_int_equal(relais_nonce_use(c, "n-3", 1700, 1401, &ra), RELAIS_NONCE_NEW);
    assert_int_equal(relais_nonce_use(c, "n-3", 1700, 1402, &ra), RELAIS_NONCE_REPLAY);
    relais_nonce_cache_destroy(c);
    relais_nonce_cache_destroy(NULL);
}

static void test_nonce_cache_bounded(void **state)
{
    (void)state;
    /* a steady stream: 10 000 nonces, one per second, window 60 s, cap 100:
     * memory never holds more than the cap, and the live ones stay refused */
    relais_nonce_cache *c = relais_nonce_cache_new(100);
    char n[32];
    size_t full = 0;
    for (long long t = 0; t < 10000; t++) {
        snprintf(n, sizeof n, "nonce-%lld", t);
        relais_nonce_status st = relais_nonce_use(c, n, t + 60, t, NULL);
        if (st == RELAIS_NONCE_FULL) full++;
        else assert_int_equal(st, RELAIS_NONCE_NEW);
        assert_true(relais_nonce_count(c, t) <= 100);
    }
    assert_int_equal(full, 0);
    assert_int_equal(relais_nonce_count(c, 9999), 60);   /* only the window's nonces are kept */
    assert_int_equal(relais_nonce_use(c, "nonce-9990", 10050, 9999, NULL), RELAIS_NONCE_REPLAY);
    assert_int_equal(relais_nonce_use(c, "nonce-10", 10070, 9999, NULL), RELAIS_NONCE_NEW);
    relais_nonce_cache_destroy(c);
    /* a burst above the cap within one window is refused, not remembered */
    c = relais_nonce_cache_new(50);
    for (int i = 0; i < 80; i++) {
        snprintf(n, sizeof n, "burst-%d", i);
        assert_int_equal(relais_nonce_use(c, n, 400, 100, NULL), i < 50 ? RELAIS_NONCE_NEW : RELAIS_NONCE_FULL);
    }
    assert_int_equal(relais_nonce_count(c, 100), 50);
    relais_nonce_cache_destroy(c);
}

/* ---- config: outgoing.allow --------------------------------------------------- */

#define BASE \
    "bus:\n  brokers: embedded\n" \
    "journal:\n  conninfo: \"host=/tmp/x dbname=x\"\n"

#define SINKS \
    "connectors:\n" \
    "  - name: desk\n" \
    "    type: http\n" \
    "    mode: source\n" \
    "    listen: 127.0.0.1:0\n" \
    "    event_type: fr.relais.grc.request.created.v1\n" \
    "  - name: worksite\n" \
    "    type: http\n" \
    "    mode: sink\n" \
    "    url: https://works.mairie.example/api/events\n" \
    "  - name: notices\n" \
    "    type: notify\n" \
    "    mode: sink\n" \
    "    smtp_url: smtp://relay.mairie.example:25\n" \
    "    mail_from: mairie@mairie.example\n" \
    "    sms_url: https://sms.provider.example/api/sms\n"

static relais_config *load(const char *yaml, relais_errlist *errs)
{
    relais_errlist_init(errs);
    return relais_config_load_buffer("mem.yaml", yaml, strlen(yaml), errs);
}

static int has_error(const relais_errlist *errs, const char *needle)
{
    for (size_t i = 0; i < errs->count; i++)
        if (strstr(errs->msgs[i], needle)) return 1;
    return 0;
}

static void dump(const relais_errlist *errs)
{
    for (size_t i = 0; i < errs->count; i++) print_message("    %s\n", errs->msgs[i]);
}

static void test_config_allow(void **state)
{
    (void)state;
    relais_errlist errs;
    /* no list: any host, as before */
    relais_config *c = load(BASE SINKS, &errs);
    if (!c) dump(&errs);
    assert_non_null(c);
    assert_null(c->outgoing.allow);
    assert_int_equal(c->outgoing.set, 0);
    relais_config_destroy(c);
    relais_errlist_free(&errs);

    /* everything listed: loads, compiled */
    c = load(BASE "outgoing:\n  allow:\n    - works.mairie.example\n    - \"*.mairie.example\"\n"
             "    - sms.provider.example\n    - 10.0.0.0/8\n    - 203.0.113.0/24\n" SINKS, &errs);
    if (!c) dump(&errs);
    assert_non_null(c);
    assert_non_null(c->outgoing.allow);
    assert_true(relais_http_allow_host(c->outgoing.allow, "relay.mairie.example"));
    assert_true(relais_http_allow_addr(c->outgoing.allow, "203.0.113.9"));
    relais_config_destroy(c);
    relais_errlist_free(&errs);

    /* the SMS gateway is not listed: error naming the instance, the option, the line */
    c = load(BASE "outgoing:\n  allow:\n    - \"*.mairie.example\"\n    - 10.0.0.0/8\n" SINKS, &errs);
    if (c) fail_msg("loaded with a host outside the list");
    dump(&errs);
    assert_int_equal(errs.count, 1);
    assert_true(has_error(&errs, "mem.yaml:24: connector 'notices': option 'sms_url': host "
                                 "'sms.provider.example' is not in outgoing.allow (line 6)"));
    relais_errlist_free(&errs);

    /* an explicit empty list: no outgoing call at all */
    c = load(BASE "outgoing:\n  allow: []\n" SINKS, &errs);
    assert_null(c);
    assert_int_equal(errs.count, 3);
    assert_true(has_error(&errs, "connector 'worksite': option 'url': host 'works.mairie.example'"));
    assert_true(has_error(&errs, "connector 'notices': option 'smtp_url': host 'relay.mairie.example'"));
    assert_false(has_error(&errs, "'desk'"));   /* a source's listen address is not an outgoing URL */
    relais_errlist_free(&errs);

    /* names without any range would refuse every connection */
    c = load(BASE "outgoing:\n  allow:\n    - works.mairie.example\n" SINKS, &errs);
    assert_null(c);
    assert_true(has_error(&errs, "mem.yaml:6: 'outgoing.allow' lists host names but no address range"));
    relais_errlist_free(&errs);

    /* bad entries, each with its line; wrong shapes; unknown keys */
    c = load(BASE "outgoing:\n  allow:\n    - 10.0.0.0/8\n    - 10.1.0.0/8\n    - \"[::1]\"\n" SINKS, &errs);
    assert_null(c);
    dump(&errs);
    assert_true(has_error(&errs, "mem.yaml:8: 'outgoing.allow' item 2: '10.1.0.0/8' has address bits set"));
    assert_true(has_error(&errs, "mem.yaml:9: 'outgoing.allow' item 3: '[::1]': write IPv6 addresses without brackets"));
    relais_errlist_free(&errs);
    c = load(BASE "outgoing:\n  allow:\n" SINKS, &errs);
    assert_null(c);
    assert_true(has_error(&errs, "'outgoing.allow' must be a list"));
    assert_true(has_error(&errs, "write [] to allow no outgoing call at all"));
    relais_errlist_free(&errs);
    c = load(BASE "outgoing:\n  allow: 10.0.0.0/8\n  deny: [x]\n" SINKS, &errs);
    assert_null(c);
    assert_true(has_error(&errs, "'outgoing.allow' must be a list"));
    assert_true(has_error(&errs, "unknown key 'deny' in section 'outgoing'"));
    relais_errlist_free(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allow_entries),
        cmocka_unit_test(test_allow_matching),
        cmocka_unit_test(test_url_host),
        cmocka_unit_test(test_nonce_cache),
        cmocka_unit_test(test_nonce_cache_bounded),
        cmocka_unit_test(test_config_allow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
