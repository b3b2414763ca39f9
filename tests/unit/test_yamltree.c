/*
 * test_yamltree.c - unit tests of hub/yamltree.c: line/column of nodes and
 * keys, quoting, and every refusal (duplicate keys, anchors/aliases, depth,
 * size, several documents, empty input, NUL in values, non-scalar keys,
 * syntax and encoding errors with their line).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testsupport.h"
#include "yamltree.h"

static yt_node *load(const char *text, char *err, size_t errlen)
{
    return yt_load_buffer("t.yaml", text, strlen(text), err, errlen);
}

static void assert_refused(const char *text, const char *expect)
{
    char err[512];
    yt_node *n = load(text, err, sizeof err);
    if (n) {
        yt_free(n);
        fail_msg("accepted, expected error containing \"%s\"", expect);
    }
    if (!strstr(err, expect))
        fail_msg("error \"%s\" does not contain \"%s\"", err, expect);
}

static void test_lines_and_columns(void **state)
{
    (void)state;
    char err[256];
    const char *doc =
        "# comment\n"
        "hub:\n"
        "  name: relais\n"
        "  tenant: 'ville'\n"
        "list:\n"
        "  - a\n"
        "  -   \"b\"\n"
        "flow: {x: 1, y: [2, 3]}\n";
    yt_node *root = load(doc, err, sizeof err);
    assert_non_null(root);
    assert_int_equal(root->kind, YT_MAP);
    assert_int_equal(root->count, 3);
    assert_string_equal(root->keys[0], "hub");
    assert_int_equal(root->key_lines[0], 2);
    assert_int_equal(root->key_lines[1], 5);
    assert_int_equal(root->key_lines[2], 8);

    yt_node *hub = yt_get(root, "hub");
    assert_non_null(hub);
    assert_int_equal(hub->kind, YT_MAP);
    assert_int_equal(hub->line, 3);
    assert_int_equal(hub->col, 3);
    assert_int_equal(hub->key_lines[1], 4);
    yt_node *name = yt_get(hub, "name");
    assert_string_equal(name->scalar, "relais");
    assert_int_equal(name->line, 3);
    assert_int_equal(name->col, 9);
    assert_int_equal(name->quoted, 0);
    yt_node *tenant = yt_get(hub, "tenant");
    assert_string_equal(tenant->scalar, "ville");
    assert_int_equal(tenant->quoted, 1);

    yt_node *list = yt_get(root, "list");
    assert_int_equal(list->kind, YT_SEQ);
    assert_int_equal(list->count, 2);
    assert_null(list->keys);
    assert_int_equal(list->values[0]->line, 6);
    assert_int_equal(list->values[1]->line, 7);
    assert_int_equal(list->values[1]->col, 7);
    assert_string_equal(list->values[1]->scalar, "b");
    assert_int_equal(list->values[1]->quoted, 1);

    yt_node *flow = yt_get(root, "flow");
    assert_int_equal(flow->kind, YT_MAP);
    assert_int_equal(flow->line, 8);
    yt_node *y = yt_get(flow, "y");
    assert_int_equal(y->kind, YT_SEQ);
    assert_string_equal(y->values[1]->scalar, "3");
    assert_int_equal(y->values[1]->col, 21);

    assert_null(yt_get(root, "absent"));
    assert_null(yt_get(list, "a"));     /* not a map */
    assert_null(yt_get(NULL, "a"));
    yt_free(root);
}

static void test_many_keys_grow(void **state)
{
    (void)state;
    /* 300 keys and a 300-item list: exercises array growth past several
     * powers of two; every key keeps its line. */
    size_t cap = 300 * 32 + 64, o = 0;
    char *doc = malloc(cap);
    assert_non_null(doc);
    for (int i = 0; i < 300; i++)
        o += (size_t)snprintf(doc + o, cap - o, "k%d: v%d\n", i, i);
    o += (size_t)snprintf(doc + o, cap - o, "seq:\n");
    for (int i = 0; i < 300; i++)
        o += (size_t)snprintf(doc + o, cap - o, " - %d\n", i);
    char err[256];
    yt_node *root = yt_load_buffer("big.yaml", doc, o, err, sizeof err);
    free(doc);
    assert_non_null(root);
    assert_int_equal(root->count, 301);
    assert_string_equal(root->keys[299], "k299");
    assert_int_equal(root->key_lines[299], 300);
    assert_string_equal(yt_get(root, "k150")->scalar, "v150");
    yt_node *seq = yt_get(root, "seq");
    assert_int_equal(seq->count, 300);
    assert_string_equal(seq->values[299]->scalar, "299");
    assert_int_equal(seq->values[299]->line, 601);
    yt_free(root);
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    assert_refused("a: 1\nb: 2\na: 3\n", "t.yaml:3: duplicate key 'a' (first given at line 1)");
    assert_refused("top:\n  x: 1\n  y: 2\n  x: 3\n", "t.yaml:4: duplicate key 'x'");
    /* The first duplicate in file order is the one reported. */
    assert_refused("b: 1\na: 1\na: 2\nb: 2\n", "t.yaml:3: duplicate key 'a'");
    /* Same key in different maps is fine. */
    char err[256];
    yt_node *n = load("a: {x: 1}\nb: {x: 2}\n", err, sizeof err);
    assert_non_null(n);
    yt_free(n);
}

static void test_anchors_and_aliases_refused(void **state)
{
    (void)state;
    assert_refused("a: &x 1\nb: 2\n", "t.yaml:1: anchors (&x)");
    assert_refused("a: 1\nb: *x\n", "t.yaml:2: aliases (*x)");
    assert_refused("base: &b {x: 1}\n", "t.yaml:1: anchors (&b)");
    assert_refused("l: &s [1]\n", "t.yaml:1: anchors (&s)");
}

static char *nested(int depth)
{
    char *s = malloc((size_t)depth * 2 + 2);
    assert_non_null(s);
    for (int i = 0; i < depth; i++) s[i] = '[';
    s[depth] = '1';
    for (int i = 0; i < depth; i++) s[depth + 1 + i] = ']';
    s[2 * depth + 1] = '\0';
    return s;
}

static void test_depth_bound(void **state)
{
    (void)state;
    char err[256];
    char *ok = nested(64);
    yt_node *n = load(ok, err, sizeof err);
    free(ok);
    assert_non_null(n);
    yt_free(n);

    char *deep = nested(65);
    n = load(deep, err, sizeof err);
    free(deep);
    assert_null(n);
    assert_non_null(strstr(err, "t.yaml:1: nesting deeper than 64 levels"));

    /* Far deeper (and unbalanced): refused early, nothing leaks. */
    char *huge = nested(5000);
    n = load(huge, err, sizeof err);
    free(huge);
    assert_null(n);
    assert_non_null(strstr(err, "nesting deeper than 64 levels"));
}

static void test_size_bound(void **state)
{
    (void)state;
    size_t len = 4 * 1024 * 1024 + 1;
    char *buf = malloc(len + 1);
    assert_non_null(buf);
    memset(buf, '#', len);
    buf[len] = '\0';
    char err[256];
    yt_node *n = yt_load_buffer("big.yaml", buf, len, err, sizeof err);
    assert_null(n);
    assert_non_null(strstr(err, "big.yaml: larger than 4 MiB"));

    /* Same through a file: the reader stops after the limit. */
    const char *path = ts_write_temp(".yaml", buf);
    n = yt_load_file(path, err, sizeof err);
    assert_null(n);
    assert_non_null(strstr(err, "larger than 4 MiB"));

    /* Exactly 4 MiB is accepted (a comment line, then a value). */
    memcpy(buf, "a: 1\n", 5);
    n = yt_load_buffer("ok.yaml", buf, len - 1, err, sizeof err);
    assert_non_null(n);
    assert_string_equal(yt_get(n, "a")->scalar, "1");
    yt_free(n);
    unlink(path);
    free(buf);
}

static void test_documents(void **state)
{
    (void)state;
    assert_refused("a: 1\n---\nb: 2\n", "t.yaml:2: more than one YAML document");
    assert_refused("", "t.yaml:1: the document is empty");
    assert_refused("# only a comment\n", "the document is empty");
    char err[256];
    yt_node *n = load("---\na: 1\n...\n", err, sizeof err);
    assert_non_null(n);
    yt_free(n);
    n = yt_load_buffer("null.yaml", NULL, 0, err, sizeof err);
    assert_null(n);
    assert_non_null(strstr(err, "null.yaml:1: the document is empty"));
}

static void test_other_refusals(void **state)
{
    (void)state;
    assert_refused("a: \"x\\0y\"\n", "t.yaml:1: a value contains a NUL character");
    assert_refused("? [a, b]\n: 1\n", "t.yaml:1: map keys must be plain scalars");
    assert_refused("a: 1\nb: [1, 2\nc: 3\n", "t.yaml:");
    /* A syntax error names its line. */
    assert_refused("a: 1\nb: 2\n  c: 3\n", "t.yaml:3: mapping values are not allowed");
    /* Invalid UTF-8: a reader error, located by line. */
    assert_refused("a: 1\nb: \xff\xfe\xfd\n", "t.yaml:2: invalid");
}

static void test_files(void **state)
{
    (void)state;
    char err[512];
    yt_node *n = yt_load_file("/nonexistent/relais.yaml", err, sizeof err);
    assert_null(n);
    assert_non_null(strstr(err, "/nonexistent/relais.yaml: cannot open: No such file"));

    const char *path = ts_write_temp(".yaml", "x:\n  y: z\n");
    n = yt_load_file(path, err, sizeof err);
    assert_non_null(n);
    assert_string_equal(yt_get(yt_get(n, "x"), "y")->scalar, "z");
    assert_int_equal(yt_get(n, "x")->line, 2);
    yt_free(n);

    const char *bad = ts_write_temp(".yaml", "x: 1\nx: 2\n");
    n = yt_load_file(bad, err, sizeof err);
    assert_null(n);
    char want[512];
    snprintf(want, sizeof want, "%s:2: duplicate key 'x'", bad);
    assert_non_null(strstr(err, want));
    unlink(path);
    unlink(bad);

    n = yt_load_file("/tmp", err, sizeof err);
    assert_null(n);
    assert_non_null(strstr(err, "/tmp: cannot read"));

    yt_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_and_columns),
        cmocka_unit_test(test_many_keys_grow),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_anchors_and_aliases_refused),
        cmocka_unit_test(test_depth_bound),
        cmocka_unit_test(test_size_bound),
        cmocka_unit_test(test_documents),
        cmocka_unit_test(test_other_refusals),
        cmocka_unit_test(test_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
