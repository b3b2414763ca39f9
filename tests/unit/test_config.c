/*
 * test_config.c - unit tests of hub/config.c.
 *
 * Data-driven: every tests/data/config/valid/ *.yaml loads with no error;
 * every tests/data/config/invalid/ *.yaml starts with one or more lines
 *   # expect: LINE: substring
 * and loading it must fail with, for each, an error "FILE:LINE: ..." that
 * contains the substring (so every error of a file is checked, not just the
 * first). Then targeted tests: defaults, the full example's values, lists,
 * where clauses, secrets in journal.conninfo (resolved, never quoted back),
 * error order, loading from memory, missing files, destroy(NULL), batch_max.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testsupport.h"
#include "config.h"
#include "options.h"

static void set_test_env(void)
{
    setenv("RELAIS_TEST_CONFIG_PG", "host=/tmp/relais-pg dbname=relais password=pg-s3cr3t", 1);
    setenv("RELAIS_TEST_CONFIG_HMAC", "hmac-s3cr3t", 1);
    unsetenv("RELAIS_TEST_CONFIG_UNSET_PG");
    unsetenv("RELAIS_TEST_CONFIG_UNSET_HMAC");
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Sorted list of the .yaml files in a directory under the source tree. */
static size_t list_yaml(const char *rel, char names[][256], size_t max)
{
    const char *dir = ts_source_path(rel);
    DIR *d = opendir(dir);
    if (!d) fail_msg("cannot open %s", dir);
    size_t n = 0;
    for (struct dirent *e = readdir(d); e; e = readdir(d)) {
        size_t l = strlen(e->d_name);
        if (l > 5 && strcmp(e->d_name + l - 5, ".yaml") == 0 && n < max)
            snprintf(names[n++], 256, "%s", e->d_name);
    }
    closedir(d);
    qsort(names, n, 256, cmp_name);
    return n;
}

static void dump(const relais_errlist *errs)
{
    for (size_t i = 0; i < errs->count; i++) print_message("    %s\n", errs->msgs[i]);
}

static void test_valid_files(void **state)
{
    (void)state;
    set_test_env();
    static char names[128][256];
    size_t n = list_yaml("tests/data/config/valid", names, 128);
    assert_true(n >= 3);
    for (size_t i = 0; i < n; i++) {
        char rel[512], path[1024];
        snprintf(rel, sizeof rel, "tests/data/config/valid/%s", names[i]);
        snprintf(path, sizeof path, "%s", ts_source_path(rel));
        relais_errlist errs;
        relais_errlist_init(&errs);
        relais_config *c = relais_config_load(path, &errs);
        if (!c || errs.count) {
            print_message("%s:\n", names[i]);
            dump(&errs);
            fail_msg("valid file %s did not load", names[i]);
        }
        relais_config_destroy(c);
        relais_errlist_free(&errs);
    }
}

typedef struct expect {
    int  line;
    char text[512];
} expect;

static size_t read_expects(const char *path, expect *ex, size_t max)
{
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot open %s", path);
    char buf[1024];
    size_t n = 0;
    while (fgets(buf, sizeof buf, f)) {
        if (strncmp(buf, "# expect: ", 10) != 0) break;
        buf[strcspn(buf, "\n")] = '\0';
        char *colon = strchr(buf + 10, ':');
        if (!colon || colon[1] != ' ' || n >= max) fail_msg("%s: bad expect line '%s'", path, buf);
        ex[n].line = atoi(buf + 10);
        snprintf(ex[n].text, sizeof ex[n].text, "%s", colon + 2);
        n++;
    }
    fclose(f);
    return n;
}

static void test_invalid_files(void **state)
{
    (void)state;
    set_test_env();
    static char names[128][256];
    size_t n = list_yaml("tests/data/config/invalid", names, 128);
    assert_true(n >= 12);
    size_t files_with_3 = 0;
    for (size_t i = 0; i < n; i++) {
        char rel[512], path[1024];
        snprintf(rel, sizeof rel, "tests/data/config/invalid/%s", names[i]);
        snprintf(path, sizeof path, "%s", ts_source_path(rel));
        expect ex[32];
        size_t ne = read_expects(path, ex, 32);
        if (ne == 0) fail_msg("%s has no '# expect: LINE: text' first line", names[i]);

        relais_errlist errs;
        relais_errlist_init(&errs);
        relais_config *c = relais_config_load(path, &errs);
        if (c) {
            relais_config_destroy(c);
            fail_msg("invalid file %s loaded", names[i]);
        }
        assert_true(errs.count >= ne);
        if (errs.count >= 3) files_with_3++;
        /* Every message has the FILE:LINE: (or FILE:) prefix. */
        for (size_t k = 0; k < errs.count; k++) {
            if (strncmp(errs.msgs[k], path, strlen(path)) != 0 || errs.msgs[k][strlen(path)] != ':') {
                dump(&errs);
                fail_msg("%s: message without the file prefix: %s", names[i], errs.msgs[k]);
            }
        }
        for (size_t e = 0; e < ne; e++) {
            char prefix[1100];
            snprintf(prefix, sizeof prefix, "%s:%d: ", path, ex[e].line);
            int found = 0;
            for (size_t k = 0; k < errs.count && !found; k++)
                found = strncmp(errs.msgs[k], prefix, strlen(prefix)) == 0 &&
                        strstr(errs.msgs[k] + strlen(prefix), ex[e].text) != NULL;
            if (!found) {
                print_message("%s: errors:\n", names[i]);
                dump(&errs);
                fail_msg("%s: no error \"%d: ...%s\"", names[i], ex[e].line, ex[e].text);
            }
        }
        relais_errlist_free(&errs);
    }
    assert_true(files_with_3 >= 1);
}

static relais_config *load_text(const char *yaml, relais_errlist *errs)
{
    return relais_config_load_buffer("mem.yaml", yaml, strlen(yaml), errs);
}

static void test_defaults(void **state)
{
    (void)state;
    relais_errlist errs;
    relais_errlist_init(&errs);
    relais_config *c = relais_config_load(ts_source_path("tests/data/config/valid/minimal.yaml"), &errs);
    assert_non_null(c);
    assert_int_equal(errs.count, 0);
    assert_string_equal(c->hub.name, "relais");
    assert_string_equal(c->hub.tenant, "default");
    assert_null(c->hub.admin_listen);
    assert_string_equal(c->hub.state_dir, ".run/relais");
    assert_string_equal(c->hub.log_level, "info");
    assert_string_equal(c->bus.brokers, "embedded");
    assert_int_equal(c->bus.embedded_brokers, 1);
    assert_string_equal(c->bus.topic, "relais.events");
    assert_int_equal(c->bus.partitions, 6);
    assert_string_equal(c->bus.group, "relais-hub");
    assert_null(c->bus.rdkafka);
    assert_string_equal(c->journal.conninfo, "host=/tmp/relais-pg dbname=relais");
    assert_int_equal(c->journal.batch_max, 1000);
    assert_int_equal(c->journal.batch_wait_ms, 0);
    assert_int_equal(c->delivery.workers, 8);
    assert_int_equal(c->delivery.max_attempts, 8);
    assert_int_equal(c->delivery.backoff_initial_ms, 500);
    assert_int_equal(c->delivery.backoff_max_ms, 5 * 60 * 1000);
    assert_int_equal(c->delivery.lease_ms, 60000);
    assert_int_equal(c->delivery.poll_interval_ms, 200);
    assert_int_equal(c->n_connectors, 0);
    assert_int_equal(c->n_routes, 0);
    assert_non_null(strstr(c->path, "minimal.yaml"));
    relais_config_destroy(c);
    relais_errlist_free(&errs);
}

static void test_full_example(void **state)
{
    (void)state;
    set_test_env();
    relais_errlist errs;
    relais_errlist_init(&errs);
    relais_config *c = relais_config_load(ts_source_path("tests/data/config/valid/full.yaml"), &errs);
    dump(&errs);
    assert_non_null(c);
    assert_string_equal(c->hub.name, "relais-mairie");
    assert_string_equal(c->hub.tenant, "ville");
    assert_string_equal(c->hub.admin_listen, "127.0.0.1:8080");
    assert_string_equal(c->hub.log_level, "debug");
    assert_int_equal(c->bus.embedded_brokers, 3);
    assert_int_equal(c->bus.partitions, 12);
    relais_kv *kv = c->bus.rdkafka;
    assert_non_null(kv);
    assert_string_equal(kv->key, "linger.ms");
    assert_string_equal(kv->value, "5");
    assert_non_null(kv->next);
    assert_string_equal(kv->next->key, "compression.type");
    assert_string_equal(kv->next->value, "lz4");
    assert_null(kv->next->next);
    /* conninfo: env: resolved */
    assert_string_equal(c->journal.conninfo, "host=/tmp/relais-pg dbname=relais password=pg-s3cr3t");
    assert_int_equal(c->journal.batch_max, 500);
    assert_int_equal(c->journal.batch_wait_ms, 5);
    assert_int_equal(c->delivery.workers, 4);
    assert_int_equal(c->delivery.max_attempts, 10);
    assert_int_equal(c->delivery.backoff_initial_ms, 1000);
    assert_int_equal(c->delivery.backoff_max_ms, 600000);
    assert_int_equal(c->delivery.lease_ms, 120000);
    assert_int_equal(c->delivery.poll_interval_ms, 100);

    assert_int_equal(c->n_connectors, 4);
    relais_conn_cfg *desk = &c->connectors[0];
    assert_string_equal(desk->name, "desk");
    assert_string_equal(desk->type, "http");
    assert_ptr_equal(desk->desc, relais_registry_find("http"));
    assert_int_equal(desk->mode, RELAIS_MODE_SOURCE);
    assert_string_equal(desk->tenant, "ville");       /* hub.tenant */
    assert_int_equal(desk->max_in_flight, 4);
    assert_non_null(desk->opts);
    assert_int_equal(desk->line, 28);
    relais_conn_cfg *ws = &c->connectors[2];
    assert_string_equal(ws->name, "worksite");
    assert_int_equal(ws->mode, RELAIS_MODE_SINK);
    assert_string_equal(ws->tenant, "ccas");
    assert_int_equal(ws->max_in_flight, 8);
    assert_ptr_equal(c->connectors[1].desc, relais_registry_find("file"));
    assert_int_equal(c->connectors[3].max_in_flight, 4);

    assert_int_equal(c->n_routes, 2);
    relais_route_cfg *r = &c->routes[0];
    assert_string_equal(r->name, "requests");
    assert_string_equal(r->match[0], "fr.relais.grc.request.*");
    assert_null(r->match[1]);
    assert_string_equal(r->tenant, "ville");
    assert_int_equal(r->n_where, 2);
    assert_string_equal(r->where[0].field, "data.category");
    assert_int_equal(r->where[0].op, WHERE_EQUALS);
    assert_string_equal(r->where[0].values[0], "voirie");
    assert_null(r->where[0].values[1]);
    assert_int_equal(r->where[1].op, WHERE_EXISTS);
    assert_int_equal(r->where[1].exists, 1);
    assert_string_equal(r->to[0], "worksite");
    assert_string_equal(r->to[1], "archive");
    assert_null(r->to[2]);
    r = &c->routes[1];
    assert_string_equal(r->match[0], "fr.relais.**");
    assert_string_equal(r->match[1], "org.example.*");
    assert_null(r->tenant);
    assert_int_equal(r->n_where, 0);
    assert_string_equal(r->to[0], "archive");
    assert_null(r->to[1]);
    relais_config_destroy(c);
    relais_errlist_free(&errs);
}

static void test_lists_and_where(void **state)
{
    (void)state;
    relais_errlist errs;
    relais_errlist_init(&errs);
    relais_config *c = relais_config_load(ts_source_path("tests/data/config/valid/lists_and_nulls.yaml"), &errs);
    dump(&errs);
    assert_non_null(c);
    assert_string_equal(c->bus.brokers, "kafka1:9092,kafka2:9092");
    assert_int_equal(c->delivery.workers, 8);     /* empty section: defaults */
    assert_string_equal(c->hub.name, "relais");
    relais_route_cfg *r = &c->routes[0];
    assert_string_equal(r->match[0], "fr.relais.*.created");
    assert_string_equal(r->match[1], "fr.relais.grc.**");
    assert_null(r->match[2]);
    assert_string_equal(r->to[0], "sink-a");
    assert_string_equal(r->to[1], "sink_b");
    assert_null(r->to[2]);
    assert_int_equal(r->n_where, 3);
    assert_int_equal(r->where[0].op, WHERE_IN);
    assert_string_equal(r->where[0].values[0], "voirie");
    assert_string_equal(r->where[0].values[1], "eclairage");
    assert_null(r->where[0].values[2]);
    assert_int_equal(r->where[1].op, WHERE_NOT_EQUALS);
    assert_string_equal(r->where[1].values[0], "request/0");
    assert_int_equal(r->where[2].op, WHERE_EXISTS);
    assert_int_equal(r->where[2].exists, 0);
    assert_null(r->where[2].values);
    relais_config_destroy(c);
    relais_errlist_free(&errs);
}

static void test_conninfo_secret(void **state)
{
    (void)state;
    relais_errlist errs;
    relais_errlist_init(&errs);
    const char *path = ts_write_temp(".conninfo", "host=/tmp dbname=x password=file-s3cr3t\n");
    char yaml[512];
    snprintf(yaml, sizeof yaml, "bus: {brokers: embedded}\njournal:\n  conninfo: file:%s\n", path);
    relais_config *c = load_text(yaml, &errs);
    dump(&errs);
    assert_non_null(c);
    assert_string_equal(c->journal.conninfo, "host=/tmp dbname=x password=file-s3cr3t");
    relais_config_destroy(c);
    unlink(path);

    /* With other errors in the file, the resolved conninfo is in no message. */
    set_test_env();
    c = load_text("bus: {brokers: embedded, partitions: x}\n"
                  "journal: {conninfo: env:RELAIS_TEST_CONFIG_PG, batch_max: y}\n"
                  "connectors:\n"
                  "  - {name: w, type: http, mode: source, listen: ':0',\n"
                  "     hmac_secret: env:RELAIS_TEST_CONFIG_HMAC, max_body: z}\n", &errs);
    assert_null(c);
    assert_int_equal(errs.count, 3);
    for (size_t i = 0; i < errs.count; i++) {
        assert_null(strstr(errs.msgs[i], "s3cr3t"));
        assert_null(strstr(errs.msgs[i], "password"));
    }
    relais_errlist_free(&errs);
}

static void test_errors_in_line_order(void **state)
{
    (void)state;
    relais_errlist errs;
    relais_errlist_init(&errs);
    relais_errlist_add(&errs, "earlier", 99, "kept first");
    /* routes come first in the file but are checked after connectors */
    relais_config *c = load_text("routes:\n"
                                 "  - {name: r, match: a.b, to: nowhere}\n"
                                 "connectors:\n"
                                 "  - {name: out, type: nope, mode: sink}\n"
                                 "bus: {brokers: embedded, partitions: 0}\n"
                                 "journal: {conninfo: x}\n"
                                 "zzz: 1\n", &errs);
    assert_null(c);
    dump(&errs);
    assert_int_equal(errs.count, 5);
    assert_string_equal(errs.msgs[0], "earlier:99: kept first");
    assert_non_null(strstr(errs.msgs[1], "mem.yaml:2: route 'r': 'to' names 'nowhere'"));
    assert_non_null(strstr(errs.msgs[2], "mem.yaml:4: unknown connector type 'nope'; known types: http, file, kafka"));
    assert_non_null(strstr(errs.msgs[3], "mem.yaml:5: 'bus.partitions' must be at least 1"));
    assert_non_null(strstr(errs.msgs[4], "mem.yaml:7: unknown top-level key 'zzz'"));
    relais_errlist_free(&errs);
}

/* A value given but invalid is reported once: no follow-up "missing" or
 * "must be at least" error for the same key. */
static void test_no_cascade(void **state)
{
    (void)state;
    static const struct { const char *yaml; const char *err; } cases[] = {
        { "bus: {brokers: embedded, partitions: many}\njournal: {conninfo: x}\n",
          "mem.yaml:1: option 'partitions' must be a whole number (got 'many')" },
        { "bus: {brokers: [a]}\njournal: {conninfo: x}\n",
          "mem.yaml:1: option 'brokers' must be a string, not a list" },
        { "bus: {brokers: embedded}\njournal: {conninfo: x}\ndelivery: {backoff_initial: soon}\n",
          "mem.yaml:3: option 'backoff_initial' must be a duration" },
        { "bus: {brokers: embedded}\njournal: {conninfo: x}\ndelivery: {backoff_max: later}\n",
          "mem.yaml:3: option 'backoff_max' must be a duration" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        relais_errlist errs;
        relais_errlist_init(&errs);
        relais_config *c = load_text(cases[i].yaml, &errs);
        assert_null(c);
        if (errs.count != 1 || !strstr(errs.msgs[0], cases[i].err)) {
            dump(&errs);
            fail_msg("case %zu: expected exactly \"%s\"", i, cases[i].err);
        }
        relais_errlist_free(&errs);
    }
}

static void test_buffer_and_files(void **state)
{
    (void)state;
    relais_errlist errs;
    relais_errlist_init(&errs);
    relais_config *c = relais_config_load("/nonexistent/relais.yaml", &errs);
    assert_null(c);
    assert_int_equal(errs.count, 1);
    assert_non_null(strstr(errs.msgs[0], "/nonexistent/relais.yaml: cannot open"));
    relais_errlist_free(&errs);

    c = load_text("bus: [\n", &errs);
    assert_null(c);
    assert_int_equal(errs.count, 1);
    assert_non_null(strstr(errs.msgs[0], "mem.yaml:2: "));
    relais_errlist_free(&errs);

    c = relais_config_load_buffer("nul.yaml", NULL, 0, &errs);
    assert_null(c);
    assert_non_null(strstr(errs.msgs[0], "nul.yaml:1: the document is empty"));
    relais_errlist_free(&errs);

    c = load_text("bus: {brokers: embedded}\njournal: {conninfo: x}\n", &errs);
    assert_non_null(c);
    assert_string_equal(c->path, "mem.yaml");
    relais_config_destroy(c);
    relais_config_destroy(NULL);
    relais_errlist_free(&errs);
}

/* batch_max: kept on sinks of connectors that deliver batches, default 1;
 * the refusals (file sink, 0, source) are in invalid/batch_max.yaml. */
static void test_batch_max(void **state)
{
    (void)state;
    relais_errlist errs;
    relais_errlist_init(&errs);
    relais_config *c = relais_config_load(ts_source_path("tests/data/config/valid/batch_max.yaml"), &errs);
    dump(&errs);
    assert_non_null(c);
    assert_int_equal(c->n_connectors, 4);
    assert_string_equal(c->connectors[0].name, "worksite");
    assert_int_equal(c->connectors[0].batch_max, 50);
    assert_non_null(c->connectors[0].desc->deliver_batch);
    assert_int_equal(c->connectors[1].batch_max, 10000);
    assert_int_equal(c->connectors[2].batch_max, 1);
    assert_int_equal(c->connectors[3].batch_max, 1);     /* default */
    relais_config_destroy(c);
    relais_errlist_free(&errs);

    /* one error per bad value, naming the line */
    c = load_text("bus: {brokers: embedded}\njournal: {conninfo: x}\nconnectors:\n"
                  "  - {name: f, type: file, mode: sink, dir: /tmp,\n"
                  "     batch_max: 2}\n", &errs);
    assert_null(c);
    assert_int_equal(errs.count, 1);
    assert_string_equal(errs.msgs[0], "mem.yaml:5: connector 'f': connector type 'file' delivers "
                                      "one event at a time; 'batch_max' must be 1");
    relais_errlist_free(&errs);
}

static void test_registry(void **state)
{
    (void)state;
    size_t n = 0;
    const relais_connector *const *all = relais_registry_all(&n);
    /* the core connectors first, then every connectors/<name>/<name>.c (CMake) */
    assert_true(n >= 3);
    assert_string_equal(all[0]->name, "http");
    assert_string_equal(all[1]->name, "file");
    assert_string_equal(all[2]->name, "kafka");
    for (size_t i = 0; i < n; i++) {
        assert_ptr_equal(relais_registry_find(all[i]->name), all[i]);
        assert_int_equal(all[i]->abi_version, RELAIS_CONNECTOR_ABI);
    }
    assert_null(relais_registry_find("ftp"));
    assert_null(relais_registry_find(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_files),
        cmocka_unit_test(test_invalid_files),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_example),
        cmocka_unit_test(test_lists_and_where),
        cmocka_unit_test(test_conninfo_secret),
        cmocka_unit_test(test_errors_in_line_order),
        cmocka_unit_test(test_no_cascade),
        cmocka_unit_test(test_buffer_and_files),
        cmocka_unit_test(test_batch_max),
        cmocka_unit_test(test_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
