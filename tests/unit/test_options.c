/*
 * test_options.c - unit tests of hub/options.c: every option type, defaults,
 * required and unknown options, enum values, mode applicability, secrets
 * (env: and file:, never quoted back in messages), prefix pass-through, the
 * value parsers and the JSON description. Uses its own option table, plus
 * the registered http descriptor for the "connector type" wording.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testsupport.h"
#include "options.h"
#include "config.h"

typedef struct tcfg {
    char      *s;
    long       i;
    int        b;
    long       d;
    long       sz;
    char      *secret;
    char      *e;
    char     **list;
    relais_kv *kv;
    char      *sink_only;
    char      *req;
    long       neg;
} tcfg;

#define OFF(f) offsetof(tcfg, f)
static const relais_option T[] = {
    { "s", RELAIS_OPT_STR, "dflt", 0, OFF(s), NULL, "a string", 0 },
    { "i", RELAIS_OPT_INT, "42", 0, OFF(i), NULL, "an int", 0 },
    { "b", RELAIS_OPT_BOOL, "true", 0, OFF(b), NULL, "a bool", 0 },
    { "d", RELAIS_OPT_DURATION, "5s", 0, OFF(d), NULL, "a duration", 0 },
    { "sz", RELAIS_OPT_SIZE, "64KB", 0, OFF(sz), NULL, "a size", 0 },
    { "secret", RELAIS_OPT_SECRET, NULL, 0, OFF(secret), NULL, "a secret", 0 },
    { "e", RELAIS_OPT_ENUM, "jsonl", 0, OFF(e), "jsonl|csv", "an enum", 0 },
    { "list", RELAIS_OPT_STRLIST, NULL, 0, OFF(list), NULL, "a list", 0 },
    { "px.", RELAIS_OPT_PREFIX, NULL, 0, OFF(kv), NULL, "pass-through", 0 },
    { "sink_only", RELAIS_OPT_STR, NULL, 0, OFF(sink_only), NULL, "sinks only", RELAIS_MODE_SINK },
    { "req", RELAIS_OPT_STR, NULL, 1, OFF(req), NULL, "required", 0 },
    { "neg", RELAIS_OPT_INT, NULL, 0, OFF(neg), NULL, "no default", 0 },
    { NULL, 0, NULL, 0, 0, NULL, NULL, 0 }
};

static const char *const SKIP[] = { "name", "type", NULL };

typedef struct run {
    tcfg           c;
    relais_errlist errs;
    int            rc;
    yt_node       *map;
} run;

/* Apply T to the YAML text as a source (or `mode`); the caller checks and
 * then calls done(). */
static void apply_mode(run *r, const char *yaml, unsigned mode)
{
    char err[256];
    memset(r, 0, sizeof *r);
    relais_errlist_init(&r->errs);
    r->map = yt_load_buffer("o.yaml", yaml, strlen(yaml), err, sizeof err);
    if (!r->map) fail_msg("yaml: %s", err);
    r->rc = relais_options_apply(T, &r->c, mode, r->map, SKIP, "o.yaml", &r->errs);
}

static void apply(run *r, const char *yaml)
{
    apply_mode(r, yaml, RELAIS_MODE_SOURCE);
}

static void done(run *r)
{
    relais_options_free(T, &r->c);
    relais_errlist_free(&r->errs);
    yt_free(r->map);
}

static int has_error(const run *r, const char *needle)
{
    for (size_t i = 0; i < r->errs.count; i++)
        if (strstr(r->errs.msgs[i], needle)) return 1;
    return 0;
}

static void expect_error(const run *r, const char *needle)
{
    if (has_error(r, needle)) return;
    for (size_t i = 0; i < r->errs.count; i++)
        print_message("  got: %s\n", r->errs.msgs[i]);
    fail_msg("no error containing \"%s\"", needle);
}

static void expect_no_error(const run *r)
{
    for (size_t i = 0; i < r->errs.count; i++)
        print_message("  unexpected: %s\n", r->errs.msgs[i]);
    assert_int_equal(r->errs.count, 0);
    assert_int_equal(r->rc, 0);
}

static void test_every_type(void **state)
{
    (void)state;
    run r;
    setenv("RELAIS_TEST_OPT_SECRET", "s3cr3t-env", 1);
    apply(&r,
          "name: x\n"
          "type: y\n"
          "req: here\n"
          "s: hello\n"
          "i: -17\n"
          "b: off\n"
          "d: 2m\n"
          "sz: 10MB\n"
          "secret: env:RELAIS_TEST_OPT_SECRET\n"
          "e: csv\n"
          "list: [a, b, c]\n"
          "neg: 0\n");
    expect_no_error(&r);
    assert_string_equal(r.c.s, "hello");
    assert_int_equal(r.c.i, -17);
    assert_int_equal(r.c.b, 0);
    assert_int_equal(r.c.d, 120000);
    assert_int_equal(r.c.sz, 10L * 1024 * 1024);
    assert_string_equal(r.c.secret, "s3cr3t-env");
    assert_string_equal(r.c.e, "csv");
    assert_non_null(r.c.list);
    assert_string_equal(r.c.list[0], "a");
    assert_string_equal(r.c.list[2], "c");
    assert_null(r.c.list[3]);
    assert_string_equal(r.c.req, "here");
    done(&r);
    /* free resets the fields */
    assert_null(r.c.s);
    assert_null(r.c.list);
    assert_null(r.c.secret);
}

static void test_defaults(void **state)
{
    (void)state;
    run r;
    apply(&r, "req: x\n");
    expect_no_error(&r);
    assert_string_equal(r.c.s, "dflt");
    assert_int_equal(r.c.i, 42);
    assert_int_equal(r.c.b, 1);
    assert_int_equal(r.c.d, 5000);
    assert_int_equal(r.c.sz, 65536);
    assert_string_equal(r.c.e, "jsonl");
    assert_null(r.c.secret);      /* no default: unset */
    assert_null(r.c.list);
    assert_null(r.c.kv);
    assert_int_equal(r.c.neg, 0);
    done(&r);

    /* An unquoted empty value, ~ or null counts as absent: default applies. */
    apply(&r, "req: x\ns:\ni: ~\ne: null\n");
    expect_no_error(&r);
    assert_string_equal(r.c.s, "dflt");
    assert_int_equal(r.c.i, 42);
    assert_string_equal(r.c.e, "jsonl");
    done(&r);

    /* A quoted empty string is a value. */
    apply(&r, "req: x\ns: ''\n");
    expect_no_error(&r);
    assert_string_equal(r.c.s, "");
    done(&r);
}

static void test_required(void **state)
{
    (void)state;
    run r;
    apply(&r, "# header\ns: a\ni: 1\n");
    assert_int_equal(r.rc, -1);
    expect_error(&r, "o.yaml:2: missing required option 'req'");
    done(&r);

    apply(&r, "s: a\nreq:\n");
    assert_int_equal(r.rc, -1);
    expect_error(&r, "o.yaml:2: option 'req' has no value");
    assert_int_equal(r.errs.count, 1);
    done(&r);
}

static void test_unknown(void **state)
{
    (void)state;
    run r;
    apply(&r, "req: x\nzzz: 1\nname: skipped\n");
    assert_int_equal(r.rc, -1);
    assert_int_equal(r.errs.count, 1);
    expect_error(&r, "o.yaml:2: unknown option 'zzz'; known options: name, type, s, i, b, d, sz, "
                     "secret, e, list, px.*, sink_only, req, neg");
    done(&r);

    /* A registered descriptor's table: the message names the connector type. */
    const relais_connector *http = relais_registry_find("http");
    assert_non_null(http);
    void *cfg = calloc(1, http->config_size);
    relais_errlist errs;
    relais_errlist_init(&errs);
    char err[256];
    const char *hy = "url: http://x\nurll: 1\n";
    yt_node *m = yt_load_buffer("h.yaml", hy, strlen(hy), err, sizeof err);
    assert_non_null(m);
    assert_int_equal(relais_options_apply(http->options, cfg, RELAIS_MODE_SINK, m, NULL, "h.yaml", &errs), -1);
    assert_true(errs.count >= 1);
    assert_non_null(strstr(errs.msgs[0], "h.yaml:2: unknown option 'urll' for connector type 'http'; known options: "));
    assert_non_null(strstr(errs.msgs[0], ", url, "));
    relais_options_free(http->options, cfg);
    free(cfg);
    yt_free(m);
    relais_errlist_free(&errs);
}

static void test_types_refused(void **state)
{
    (void)state;
    run r;
    apply(&r,
          "req: x\n"
          "i: twelve\n"
          "b: maybe\n"
          "d: 5 minutes\n"
          "sz: 3TB\n"
          "e: xml\n"
          "s: [a]\n"
          "list: {a: 1}\n"
          "neg: 99999999999999999999999\n");
    assert_int_equal(r.rc, -1);
    expect_error(&r, "o.yaml:2: option 'i' must be a whole number (got 'twelve')");
    expect_error(&r, "o.yaml:3: option 'b' must be a boolean");
    expect_error(&r, "o.yaml:4: option 'd' must be a duration such as 250ms, 5s, 2m, 1h (no unit: ms) (got '5 minutes')");
    expect_error(&r, "o.yaml:5: option 'sz' must be a size");
    expect_error(&r, "o.yaml:6: option 'e' must be one of jsonl, csv (got 'xml')");
    expect_error(&r, "o.yaml:7: option 's' must be a string, not a list");
    expect_error(&r, "o.yaml:8: option 'list' must be a string or a list, not a map");
    expect_error(&r, "o.yaml:9: option 'neg' must be a whole number");
    assert_int_equal(r.errs.count, 8);
    /* Given but invalid: no default sneaks in. */
    assert_int_equal(r.c.i, 0);
    assert_null(r.c.e);
    done(&r);

    apply(&r, "req: x\nlist: [a, [b]]\n");
    expect_error(&r, "o.yaml:2: option 'list': list items must be plain values, not lists");
    done(&r);
}

static void test_modes(void **state)
{
    (void)state;
    run r;
    apply_mode(&r, "req: x\nsink_only: y\n", RELAIS_MODE_SOURCE);
    assert_int_equal(r.rc, -1);
    expect_error(&r, "o.yaml:2: option 'sink_only' applies only to sink instances");
    assert_null(r.c.sink_only);
    done(&r);

    apply_mode(&r, "req: x\nsink_only: y\n", RELAIS_MODE_SINK);
    expect_no_error(&r);
    assert_string_equal(r.c.sink_only, "y");
    done(&r);

    /* A required option of the other mode is not required. */
    const relais_connector *http = relais_registry_find("http");
    assert_non_null(http);
    relais_errlist errs;
    relais_errlist_init(&errs);
    char err[256];
    const char *hy = "listen: 127.0.0.1:0\n";
    yt_node *m = yt_load_buffer("h.yaml", hy, strlen(hy), err, sizeof err);
    void *cfg = calloc(1, http->config_size);
    assert_int_equal(relais_options_apply(http->options, cfg, RELAIS_MODE_SOURCE, m, NULL, "h.yaml", &errs), 0);
    relais_options_free(http->options, cfg);
    memset(cfg, 0, http->config_size);
    assert_int_equal(relais_options_apply(http->options, cfg, RELAIS_MODE_SINK, m, NULL, "h.yaml", &errs), -1);
    assert_true(errs.count >= 2);
    assert_non_null(strstr(errs.msgs[0], "h.yaml:1: option 'listen' applies only to source instances"));
    int missing_url = 0;
    for (size_t k = 0; k < errs.count; k++)
        missing_url |= strstr(errs.msgs[k], "h.yaml:1: missing required option 'url'") != NULL;
    assert_true(missing_url);
    relais_options_free(http->options, cfg);
    free(cfg);
    yt_free(m);
    relais_errlist_free(&errs);
}

static void test_secrets(void **state)
{
    (void)state;
    run r;
    unsetenv("RELAIS_TEST_OPT_UNSET");
    apply(&r, "req: x\nsecret: env:RELAIS_TEST_OPT_UNSET\n");
    expect_error(&r, "o.yaml:2: option 'secret': environment variable RELAIS_TEST_OPT_UNSET is not set");
    done(&r);

    setenv("RELAIS_TEST_OPT_EMPTY", "", 1);
    apply(&r, "req: x\nsecret: env:RELAIS_TEST_OPT_EMPTY\n");
    expect_error(&r, "environment variable RELAIS_TEST_OPT_EMPTY is empty");
    done(&r);

    /* A secret typed in place is refused, and never quoted back. */
    apply(&r, "req: x\nsecret: hunter2-literal\n");
    expect_error(&r, "o.yaml:2: option 'secret': secrets must be given as env:NAME or file:PATH");
    assert_false(has_error(&r, "hunter2"));
    done(&r);

    /* file: trailing newlines removed */
    const char *path = ts_write_temp(".secret", "file-s3cr3t\r\n\n");
    char yaml[512];
    snprintf(yaml, sizeof yaml, "req: x\nsecret: file:%s\n", path);
    apply(&r, yaml);
    expect_no_error(&r);
    assert_string_equal(r.c.secret, "file-s3cr3t");
    done(&r);
    unlink(path);

    apply(&r, "req: x\nsecret: file:/nonexistent/relais-secret\n");
    expect_error(&r, "option 'secret': cannot open secret file /nonexistent/relais-secret: No such file");
    done(&r);

    apply(&r, "req: x\nsecret: file:/tmp\n");
    expect_error(&r, "secret file /tmp is not a regular file");
    done(&r);

    apply(&r, "req: x\nsecret: 'env:'\n");
    expect_error(&r, "env: needs a variable name");
    done(&r);

    /* Another error in the same map as a resolved secret: the secret's value
     * is in no message. */
    setenv("RELAIS_TEST_OPT_SECRET", "s3cr3t-env", 1);
    apply(&r, "req: x\nsecret: env:RELAIS_TEST_OPT_SECRET\ni: nope\nzz: 1\n");
    assert_int_equal(r.errs.count, 2);
    assert_false(has_error(&r, "s3cr3t-env"));
    done(&r);

    /* The resolver directly. */
    char *out = NULL, errbuf[256];
    assert_int_equal(relais_resolve_secret("plain-password", &out, errbuf, sizeof errbuf), -1);
    assert_null(out);
    assert_string_equal(errbuf, "secrets must be given as env:NAME or file:PATH");
    assert_int_equal(relais_resolve_secret(NULL, &out, errbuf, sizeof errbuf), -1);
    assert_int_equal(relais_resolve_secret("env:RELAIS_TEST_OPT_SECRET", &out, errbuf, sizeof errbuf), 0);
    assert_string_equal(out, "s3cr3t-env");
    free(out);

    /* Too large a file. */
    char *big = malloc(70 * 1024);
    assert_non_null(big);
    memset(big, 'x', 70 * 1024 - 1);
    big[70 * 1024 - 1] = '\0';
    const char *bp = ts_write_temp(".secret", big);
    free(big);
    char spec[300];
    snprintf(spec, sizeof spec, "file:%s", bp);
    assert_int_equal(relais_resolve_secret(spec, &out, errbuf, sizeof errbuf), -1);
    assert_non_null(strstr(errbuf, "is larger than 64 KiB"));
    unlink(bp);
}

static void test_strlist_and_prefix(void **state)
{
    (void)state;
    run r;
    apply(&r, "req: x\nlist: ' a, b ,, c '\npx.acks: all\npx.linger.ms: 5\npx.enable: true\n");
    expect_no_error(&r);
    assert_string_equal(r.c.list[0], "a");
    assert_string_equal(r.c.list[1], "b");
    assert_string_equal(r.c.list[2], "c");
    assert_null(r.c.list[3]);
    relais_kv *kv = r.c.kv;
    assert_non_null(kv);
    assert_string_equal(kv->key, "acks");
    assert_string_equal(kv->value, "all");
    kv = kv->next;
    assert_string_equal(kv->key, "linger.ms");
    assert_string_equal(kv->value, "5");
    kv = kv->next;
    assert_string_equal(kv->key, "enable");
    assert_string_equal(kv->value, "true");
    assert_null(kv->next);
    done(&r);

    apply(&r, "req: x\npx.: 1\npx.a: [1]\n");
    expect_error(&r, "o.yaml:2: option 'px.' needs a property name after the prefix");
    expect_error(&r, "o.yaml:3: option 'px.a' must be a plain value, not a list");
    done(&r);

    apply(&r, "req: x\nlist: ''\n");
    expect_no_error(&r);
    assert_non_null(r.c.list);
    assert_null(r.c.list[0]);
    done(&r);
}

static void test_not_a_map(void **state)
{
    (void)state;
    run r;
    apply(&r, "- a\n- b\n");
    expect_error(&r, "o.yaml:1: expected a map of options, got a list");
    expect_error(&r, "missing required option 'req'");
    done(&r);
}

static void test_parsers(void **state)
{
    (void)state;
    long v;
    int b;
    assert_int_equal(relais_parse_duration_ms("250ms", &v), 0); assert_int_equal(v, 250);
    assert_int_equal(relais_parse_duration_ms("5s", &v), 0);    assert_int_equal(v, 5000);
    assert_int_equal(relais_parse_duration_ms("2m", &v), 0);    assert_int_equal(v, 120000);
    assert_int_equal(relais_parse_duration_ms("1h", &v), 0);    assert_int_equal(v, 3600000);
    assert_int_equal(relais_parse_duration_ms("1500", &v), 0);  assert_int_equal(v, 1500);
    assert_int_equal(relais_parse_duration_ms("0", &v), 0);     assert_int_equal(v, 0);
    assert_int_equal(relais_parse_duration_ms(" 3 s ", &v), 0); assert_int_equal(v, 3000);
    assert_int_equal(relais_parse_duration_ms("", &v), -1);
    assert_int_equal(relais_parse_duration_ms("s", &v), -1);
    assert_int_equal(relais_parse_duration_ms("-1s", &v), -1);
    assert_int_equal(relais_parse_duration_ms("1.5s", &v), -1);
    assert_int_equal(relais_parse_duration_ms("5x", &v), -1);
    assert_int_equal(relais_parse_duration_ms("5sec", &v), -1);
    assert_int_equal(relais_parse_duration_ms("9223372036854775807h", &v), -1);
    assert_int_equal(relais_parse_duration_ms("99999999999999999999999", &v), -1);
    assert_int_equal(relais_parse_duration_ms(NULL, &v), -1);

    assert_int_equal(relais_parse_size("512", &v), 0);   assert_int_equal(v, 512);
    assert_int_equal(relais_parse_size("512B", &v), 0);  assert_int_equal(v, 512);
    assert_int_equal(relais_parse_size("64KB", &v), 0);  assert_int_equal(v, 65536);
    assert_int_equal(relais_parse_size("64kib", &v), 0); assert_int_equal(v, 65536);
    assert_int_equal(relais_parse_size("64K", &v), 0);   assert_int_equal(v, 65536);
    assert_int_equal(relais_parse_size("10MB", &v), 0);  assert_int_equal(v, 10485760);
    assert_int_equal(relais_parse_size("1GB", &v), 0);   assert_int_equal(v, 1073741824);
    assert_int_equal(relais_parse_size("2GiB", &v), 0);  assert_int_equal(v, 2147483648L);
    assert_int_equal(relais_parse_size("1TB", &v), -1);
    assert_int_equal(relais_parse_size("-1", &v), -1);
    assert_int_equal(relais_parse_size("MB", &v), -1);
    assert_int_equal(relais_parse_size("9223372036854775807GB", &v), -1);

    const char *yes[] = { "true", "yes", "on", "1", "TRUE", "Yes", "ON" };
    const char *no[] = { "false", "no", "off", "0", "False", "NO" };
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        b = -1;
        assert_int_equal(relais_parse_bool(yes[i], &b), 0);
        assert_int_equal(b, 1);
    }
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        b = -1;
        assert_int_equal(relais_parse_bool(no[i], &b), 0);
        assert_int_equal(b, 0);
    }
    assert_int_equal(relais_parse_bool("2", &b), -1);
    assert_int_equal(relais_parse_bool("", &b), -1);
    assert_int_equal(relais_parse_bool("y", &b), -1);
    assert_int_equal(relais_parse_bool(NULL, &b), -1);
}

static void test_describe(void **state)
{
    (void)state;
    json_t *d = relais_options_describe(T);
    assert_non_null(d);
    assert_true(json_is_array(d));
    assert_int_equal(json_array_size(d), 12);
    json_t *i = json_array_get(d, 1);
    assert_string_equal(json_string_value(json_object_get(i, "name")), "i");
    assert_string_equal(json_string_value(json_object_get(i, "type")), "int");
    assert_string_equal(json_string_value(json_object_get(i, "default")), "42");
    assert_true(json_is_false(json_object_get(i, "required")));
    assert_true(json_is_null(json_object_get(i, "enum")));
    assert_string_equal(json_string_value(json_object_get(i, "desc")), "an int");
    assert_int_equal(json_array_size(json_object_get(i, "modes")), 2);

    json_t *e = json_array_get(d, 6);
    json_t *en = json_object_get(e, "enum");
    assert_int_equal(json_array_size(en), 2);
    assert_string_equal(json_string_value(json_array_get(en, 0)), "jsonl");
    assert_string_equal(json_string_value(json_array_get(en, 1)), "csv");

    json_t *so = json_array_get(d, 9);
    json_t *modes = json_object_get(so, "modes");
    assert_int_equal(json_array_size(modes), 1);
    assert_string_equal(json_string_value(json_array_get(modes, 0)), "sink");

    json_t *req = json_array_get(d, 10);
    assert_true(json_is_true(json_object_get(req, "required")));
    assert_true(json_is_null(json_object_get(req, "default")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(d, 8), "type")), "prefix");
    json_decref(d);

    /* Every registered descriptor can be described. */
    size_t n = 0;
    const relais_connector *const *all = relais_registry_all(&n);
    for (size_t k = 0; k < n; k++) {
        json_t *x = relais_options_describe(all[k]->options);
        assert_non_null(x);
        json_decref(x);
    }
}

static void test_free_null_safe(void **state)
{
    (void)state;
    relais_options_free(T, NULL);
    tcfg c;
    memset(&c, 0, sizeof c);
    relais_options_free(T, &c);
    relais_errlist l;
    relais_errlist_init(&l);
    relais_errlist_add(&l, "f.yaml", 3, "bad %s", "thing");
    relais_errlist_add(&l, "f.yaml", 0, "no line");
    relais_errlist_add(&l, NULL, 0, "as is");
    assert_int_equal(l.count, 3);
    assert_string_equal(l.msgs[0], "f.yaml:3: bad thing");
    assert_string_equal(l.msgs[1], "f.yaml: no line");
    assert_string_equal(l.msgs[2], "as is");
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    relais_errlist_print(&l, mem);
    fclose(mem);
    assert_string_equal(buf, "f.yaml:3: bad thing\nf.yaml: no line\nas is\n");
    free(buf);
    for (int k = 0; k < 40; k++) relais_errlist_add(&l, "f", k + 1, "n%d", k);
    assert_int_equal(l.count, 43);
    assert_string_equal(l.msgs[42], "f:40: n39");
    relais_errlist_free(&l);
    assert_int_equal(l.count, 0);
    relais_errlist_free(&l);
    relais_errlist_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_required),
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_types_refused),
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_secrets),
        cmocka_unit_test(test_strlist_and_prefix),
        cmocka_unit_test(test_not_a_map),
        cmocka_unit_test(test_parsers),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_free_null_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
