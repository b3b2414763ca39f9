/*
 * maptest.c - `relais test DIR`: runs the mapping unit tests of *.test.yaml
 * files (format in docs/MAPPINGS.md, "Testing mappings (`relais test`)").
 *
 * For each test file, in sorted path order: load it (yamltree, every error as
 * FILE:LINE: message), load its mapping (hub/mapping.h), read the files it
 * names; then run each test:
 *   inbound   the vendor record through the mapping's inbound cases; the
 *             mapped data validated against the canonical schema of its type;
 *             compared with expect_event (as JSON values);
 *   outbound  a CloudEvent (built from the mapped record with a fixed id,
 *             time, source and tenant, or given by the test) rendered through
 *             the outbound cases; compared with expect_output: JSON as JSON
 *             values, XML in canonical form (exclusive C14N after giving every
 *             namespace one prefix and sorting attributes, whitespace-only
 *             text between elements dropped), CSV and other text byte for byte
 *             after removing one final newline;
 *   errors    expect_error: a substring of the first error of the test.
 * A failure prints a unified diff of the pretty-printed forms. The
 * comparisons and the diff are in maptest_compare.c.
 *
 * Single-threaded; everything allocated here is freed before returning.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <libxml/tree.h>
#include "errlist.h"
#include "event_int.h"
#include "jsonschema.h"
#include "mapping.h"
#include "maptest.h"
#include "fileio.h"
#include "safeparse.h"
#include "yamltree.h"
#include "../connectors/file/file_csv.h"

#ifndef RELAIS_DEFAULT_SCHEMA_DIR
#define RELAIS_DEFAULT_SCHEMA_DIR "schemas"
#endif

#define MT_MAX_FILE      (16u * 1024 * 1024)   /* a test's input or expected file */
#define MT_MAX_DEPTH     32                    /* directory nesting walked */
#define MT_MAX_FAULTS    8                     /* schema faults reported per test */

/* The fixed envelope of events built by tests, so that outputs are reproducible. */
#define MT_EVENT_ID      "00000000-0000-7000-8000-000000000000"
#define MT_EVENT_TIME    "2026-01-01T00:00:00Z"
#define MT_EVENT_SOURCE  "/relais/test/test"
#define MT_EVENT_TENANT  "test"
#define MT_EVENT_TRACE   "00-00000000000000000000000000000001-0000000000000001-01"

/* ---- small helpers ------------------------------------------------------- */

/* A growable text buffer for failure reports. On allocation failure text is
 * dropped (the report is shorter, the verdict is unchanged). */
typedef struct mt_buf {
    char  *s;
    size_t len, cap;
} mt_buf;

static void buf_printf(mt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void buf_printf(mt_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) { va_end(ap); return; }
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) { va_end(ap); return; }
        b->s = s;
        b->cap = cap;
    }
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    b->len += (size_t)n;
    va_end(ap);
}

/* Read a whole file (NUL-terminated copy). NULL with errstr. */
static char *read_whole(const char *path, size_t *len, char *errstr, size_t errlen)
{
    return relais_read_file(path, MT_MAX_FILE, len, errstr, errlen);
}

/* dir + "/" + rel, or rel when it is absolute. Caller frees. */
static char *path_join(const char *dir, const char *rel)
{
    if (rel[0] == '/' || !dir || !*dir) return strdup(rel);
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* ---- YAML values as JSON -------------------------------------------------- */

static int full_match_int(const char *s)
{
    const char *p = s;
    if (*p == '-' || *p == '+') p++;
    if (!*p) return 0;
    for (; *p; p++)
        if (*p < '0' || *p > '9') return 0;
    return 1;
}

static int full_match_float(const char *s)
{
    const char *p = s;
    int digits = 0;
    if (*p == '-' || *p == '+') p++;
    while (*p >= '0' && *p <= '9') { p++; digits++; }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') { p++; digits++; }
    }
    if (!digits) return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+') p++;
        if (*p < '0' || *p > '9') return 0;
        while (*p >= '0' && *p <= '9') p++;
    }
    return *p == '\0';
}

/* A plain (unquoted) scalar resolved as in YAML 1.2's core schema: null,
 * booleans, integers, floats; anything else and every quoted scalar is a
 * string. NULL when a string is not valid UTF-8. */
static json_t *scalar_to_json(const yt_node *n)
{
    const char *s = n->scalar;
    if (!n->quoted) {
        if (!*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
            strcmp(s, "NULL") == 0)
            return json_null();
        if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
            return json_true();
        if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
            return json_false();
        if (full_match_int(s)) {
            errno = 0;
            long long v = strtoll(s, NULL, 10);
            if (errno == 0) return json_integer((json_int_t)v);
            return json_real(strtod(s, NULL));
        }
        if (full_match_float(s)) return json_real(strtod(s, NULL));
    }
    return json_string(s);
}

/* NULL with errstr naming the line of the first value that cannot be JSON. */
static json_t *yaml_to_json(const yt_node *n, int *bad_line)
{
    if (n->kind == YT_SCALAR) {
        json_t *v = scalar_to_json(n);
        if (!v) *bad_line = n->line;
        return v;
    }
    json_t *out = n->kind == YT_MAP ? json_object() : json_array();
    for (size_t i = 0; out && i < n->count; i++) {
        json_t *v = yaml_to_json(n->values[i], bad_line);
        if (!v) { json_decref(out); return NULL; }
        if (n->kind == YT_MAP) json_object_set_new(out, n->keys[i], v);
        else json_array_append_new(out, v);
    }
    return out;
}

/* ---- test files ----------------------------------------------------------- */

typedef struct mt_test {
    char   *name;
    int     line;
    /* what goes in: exactly one of */
    char   *input;           /* vendor record as text (json, xml, csv) */
    size_t  input_len;
    char   *input_name;      /* "input" or the input file's path, for errors */
    json_t *input_obj;       /* vendor record given as YAML (json, csv) */
    json_t *event;           /* a whole CloudEvent (outbound test) */
    char    delimiter;       /* csv text input */
    char   *local_id;
    /* what is expected */
    json_t *expect_event;    /* object with some of type subject record_id correlation_id data */
    char   *expect_output;   /* text; NULL when not given */
    size_t  expect_output_len;
    char   *expect_error;
} mt_test;

typedef struct mt_file {
    const char     *path;      /* as displayed */
    relais_mapping *mapping;
    mt_test        *tests;
    size_t          ntests;
} mt_file;

static void test_clear(mt_test *t)
{
    free(t->name);
    free(t->input);
    free(t->input_name);
    json_decref(t->input_obj);
    json_decref(t->event);
    free(t->local_id);
    json_decref(t->expect_event);
    free(t->expect_output);
    free(t->expect_error);
}

static void file_clear(mt_file *f)
{
    for (size_t i = 0; i < f->ntests; i++) test_clear(&f->tests[i]);
    free(f->tests);
    relais_mapping_destroy(f->mapping);
}

typedef struct loader {
    relais_errlist *errs;
    const char     *path;     /* the test file, as displayed */
    const char     *dir;      /* its directory, for relative paths */
    int             bad;
} loader;

static void lerr(loader *L, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void lerr(loader *L, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    relais_errlist_add(L->errs, L->path, line, "%s", msg);
    L->bad = 1;
}

static const char *scalar_or_null(loader *L, const yt_node *n, const char *key)
{
    if (n->kind != YT_SCALAR) {
        lerr(L, n->line, "%s: must be a text value", key);
        return NULL;
    }
    return n->scalar;
}

/* Read a file named by the test (relative to the test file). */
static char *load_named_file(loader *L, const yt_node *n, const char *key, size_t *len, char **fullp)
{
    const char *rel = scalar_or_null(L, n, key);
    if (!rel) return NULL;
    if (!*rel) { lerr(L, n->line, "%s: empty file name", key); return NULL; }
    char *full = path_join(L->dir, rel);
    if (!full) { lerr(L, n->line, "out of memory"); return NULL; }
    char err[512];
    char *text = read_whole(full, len, err, sizeof err);
    if (!text) lerr(L, n->line, "%s: %s", key, err);
    if (fullp && text) *fullp = full;
    else free(full);
    return text;
}

/* A CloudEvent for an outbound test: the missing envelope attributes get the
 * fixed test values; checked like an event off the bus. */
static json_t *complete_event(loader *L, json_t *obj, int line, const char *key)
{
    if (!json_is_object(obj)) {
        lerr(L, line, "%s: must be a JSON object (a CloudEvent)", key);
        return NULL;
    }
    static const char *const defaults[][2] = {
        { "specversion", "1.0" }, { "id", MT_EVENT_ID }, { "source", MT_EVENT_SOURCE },
        { "time", MT_EVENT_TIME }, { "datacontenttype", "application/json" },
        { "tenant", MT_EVENT_TENANT }, { "traceparent", MT_EVENT_TRACE },
    };
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        if (!json_object_get(obj, defaults[i][0]))
            json_object_set_new(obj, defaults[i][0], json_string(defaults[i][1]));
    char err[512];
    relais_event *ev = relais_event_from_json(obj, err, sizeof err);
    if (!ev) {
        lerr(L, line, "%s: not a valid CloudEvent: %s", key, err);
        return NULL;
    }
    json_t *full = json_incref(relais_event_object(ev));
    relais_event_unref(ev);
    return full;
}

static json_t *parse_json_text(loader *L, const char *text, size_t len, const char *name, int line,
                               const char *key)
{
    char err[512];
    json_t *v = relais_json_parse(text, len, name, NULL, err, sizeof err);
    if (!v) lerr(L, line, "%s: %s", key, err);
    return v;
}

static int event_key_known(const char *k)
{
    static const char *const allowed[] = { "type", "subject", "record_id", "correlation_id", "data" };
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        if (strcmp(k, allowed[i]) == 0) return 1;
    return 0;
}

/* An expected event read from a JSON file: an object with known keys. */
static int check_event_keys(loader *L, const json_t *o, int line, const char *key)
{
    if (!json_is_object(o)) {
        lerr(L, line, "%s: must hold a JSON object (type, subject, record_id, correlation_id, data)", key);
        return -1;
    }
    int rc = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        if (event_key_known(k)) continue;
        lerr(L, line, "%s: unknown key '%s' (expected type, subject, record_id, correlation_id, data)",
             key, k);
        rc = -1;
    }
    return rc;
}

static void load_expect_event(loader *L, mt_test *t, const yt_node *v)
{
    if (v->kind != YT_MAP) {
        lerr(L, v->line, "expect_event: must be a map of type, subject, record_id, correlation_id, data");
        return;
    }
    for (size_t i = 0; i < v->count; i++)
        if (!event_key_known(v->keys[i]))
            lerr(L, v->key_lines[i], "expect_event: unknown key '%s' (expected type, subject, "
                 "record_id, correlation_id, data)", v->keys[i]);
    int bad_line = 0;
    json_t *o = yaml_to_json(v, &bad_line);
    if (!o) { lerr(L, bad_line, "expect_event: a value is not valid UTF-8"); return; }
    t->expect_event = o;
}

static void load_test(loader *L, mt_file *f, mt_test *t, const yt_node *n, size_t index)
{
    t->line = n->line;
    t->delimiter = ',';
    if (n->kind != YT_MAP) {
        lerr(L, n->line, "tests[%zu]: must be a map (name, input, expect_event, ...)", index);
        return;
    }
    relais_map_format fmt = f->mapping ? relais_mapping_format(f->mapping) : RELAIS_MAP_JSON;
    const yt_node *expect_output_node = NULL, *expect_output_file_node = NULL;
    const yt_node *input_node = NULL, *event_node = NULL;
    int nin = 0, has_expect_event = 0;
    for (size_t i = 0; i < n->count; i++) {
        const char *k = n->keys[i];
        const yt_node *v = n->values[i];
        int kl = n->key_lines[i];
        if (strcmp(k, "name") == 0) {
            const char *s = scalar_or_null(L, v, k);
            if (s) t->name = strdup(s);
        } else if (strcmp(k, "input") == 0) {
            if (nin++ > 0) continue;   /* reported below */
            input_node = v;
            if (v->kind == YT_SCALAR) {
                t->input = strdup(v->scalar);
                t->input_len = strlen(v->scalar);
                t->input_name = strdup("input");
            } else if (v->kind == YT_MAP && fmt != RELAIS_MAP_XML) {
                int bad_line = 0;
                t->input_obj = yaml_to_json(v, &bad_line);
                if (!t->input_obj) lerr(L, bad_line, "input: a value is not valid UTF-8");
            } else {
                lerr(L, v->line, "input: must be the record as text%s",
                     fmt == RELAIS_MAP_XML ? " (an XML document)" : " or a map");
            }
        } else if (strcmp(k, "input_file") == 0) {
            if (nin++ > 0) continue;
            input_node = v;
            t->input = load_named_file(L, v, k, &t->input_len, &t->input_name);
        } else if (strcmp(k, "event") == 0) {
            if (nin++ > 0) continue;
            event_node = v;
            json_t *o = NULL;
            if (v->kind == YT_SCALAR) {
                o = parse_json_text(L, v->scalar, strlen(v->scalar), "event", v->line, k);
            } else {
                int bad_line = 0;
                o = yaml_to_json(v, &bad_line);
                if (!o) lerr(L, bad_line, "event: a value is not valid UTF-8");
            }
            if (o) t->event = complete_event(L, o, v->line, k);
            json_decref(o);
        } else if (strcmp(k, "event_file") == 0) {
            if (nin++ > 0) continue;
            event_node = v;
            size_t len = 0;
            char *full = NULL;
            char *text = load_named_file(L, v, k, &len, &full);
            if (text) {
                json_t *o = parse_json_text(L, text, len, full, v->line, k);
                if (o) t->event = complete_event(L, o, v->line, k);
                json_decref(o);
            }
            free(text);
            free(full);
        } else if (strcmp(k, "local_id") == 0) {
            const char *s = scalar_or_null(L, v, k);
            if (s) t->local_id = strdup(s);
        } else if (strcmp(k, "delimiter") == 0) {
            const char *s = scalar_or_null(L, v, k);
            if (s && strlen(s) != 1) lerr(L, v->line, "delimiter: must be one character");
            else if (s) t->delimiter = s[0];
        } else if (strcmp(k, "expect_event") == 0 || strcmp(k, "expect_event_file") == 0) {
            if (has_expect_event) { lerr(L, kl, "give expect_event or expect_event_file, not both"); continue; }
            has_expect_event = 1;
            if (strcmp(k, "expect_event") == 0) {
                load_expect_event(L, t, v);
            } else {
                size_t len = 0;
                char *full = NULL;
                char *text = load_named_file(L, v, k, &len, &full);
                if (text) {
                    json_t *o = parse_json_text(L, text, len, full, v->line, k);
                    if (o && check_event_keys(L, o, v->line, k) == 0) t->expect_event = o;
                    else json_decref(o);
                }
                free(text);
                free(full);
            }
        } else if (strcmp(k, "expect_output") == 0) {
            if (expect_output_file_node) { lerr(L, kl, "give expect_output or expect_output_file, not both"); continue; }
            expect_output_node = v;
            if (v->kind == YT_SCALAR) {
                t->expect_output = strdup(v->scalar);
                t->expect_output_len = strlen(v->scalar);
            } else if (fmt == RELAIS_MAP_JSON) {
                int bad_line = 0;
                json_t *o = yaml_to_json(v, &bad_line);
                if (!o) { lerr(L, bad_line, "expect_output: a value is not valid UTF-8"); continue; }
                t->expect_output = json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY);
                t->expect_output_len = t->expect_output ? strlen(t->expect_output) : 0;
                json_decref(o);
            } else {
                lerr(L, v->line, "expect_output: must be the expected document as text");
            }
        } else if (strcmp(k, "expect_output_file") == 0) {
            if (expect_output_node) { lerr(L, kl, "give expect_output or expect_output_file, not both"); continue; }
            expect_output_file_node = v;
            t->expect_output = load_named_file(L, v, k, &t->expect_output_len, NULL);
        } else if (strcmp(k, "expect_error") == 0) {
            const char *s = scalar_or_null(L, v, k);
            if (s && !*s) lerr(L, v->line, "expect_error: must not be empty");
            else if (s) t->expect_error = strdup(s);
        } else {
            lerr(L, kl, "unknown key '%s' in a test (expected name, input, input_file, event, "
                 "event_file, local_id, delimiter, expect_event, expect_event_file, expect_output, "
                 "expect_output_file, expect_error)", k);
        }
    }
    if (!t->name) {
        char nm[32];
        snprintf(nm, sizeof nm, "test %zu", index + 1);
        t->name = strdup(nm);
    }
    if (nin == 0)
        lerr(L, n->line, "test '%s': give the record (input or input_file) or the event (event or "
             "event_file)", t->name);
    else if (nin > 1)
        lerr(L, n->line, "test '%s': give only one of input, input_file, event, event_file", t->name);
    int has_output = expect_output_node || expect_output_file_node;
    if (!has_expect_event && !has_output && !t->expect_error)
        lerr(L, n->line, "test '%s' checks nothing: give expect_event, expect_output or expect_error",
             t->name);
    if (t->expect_error && (has_output || has_expect_event))
        lerr(L, n->line, "test '%s': expect_error excludes expect_event and expect_output (a test "
             "expects an error or a result)", t->name);
    if (event_node && has_expect_event)
        lerr(L, n->line, "test '%s': expect_event needs an input record, not an event", t->name);
    if (f->mapping && input_node && !relais_mapping_has_inbound(f->mapping))
        lerr(L, input_node->line, "test '%s': mapping %s has no inbound rules for the input",
             t->name, relais_mapping_path(f->mapping));
    if (f->mapping && (event_node || has_output) && !relais_mapping_has_outbound(f->mapping))
        lerr(L, (event_node ? event_node : expect_output_node ? expect_output_node
                                                             : expect_output_file_node)->line,
             "test '%s': mapping %s has no outbound rules", t->name, relais_mapping_path(f->mapping));
    if (t->delimiter != ',' && (fmt != RELAIS_MAP_CSV || !t->input))
        lerr(L, n->line, "test '%s': delimiter is for a csv input given as text", t->name);
}

/* Load a test file: 0 ok, -1 with every error in errs. */
static int load_test_file(const char *path, mt_file *f, relais_errlist *errs)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    char *dir = dir_of(path);
    loader L = { errs, path, dir, 0 };
    char err[1024];
    yt_node *root = yt_load_file(path, err, sizeof err);
    if (!root) {
        relais_errlist_add(errs, NULL, 0, "%s", err);
        free(dir);
        return -1;
    }
    if (root->kind != YT_MAP) {
        lerr(&L, root->line, "a test file is a map with the keys mapping and tests");
        goto out;
    }
    const yt_node *tests = NULL;
    const yt_node *mapping = NULL;
    for (size_t i = 0; i < root->count; i++) {
        if (strcmp(root->keys[i], "mapping") == 0) mapping = root->values[i];
        else if (strcmp(root->keys[i], "tests") == 0) tests = root->values[i];
        else lerr(&L, root->key_lines[i], "unknown key '%s' (expected mapping, tests)", root->keys[i]);
    }
    if (!mapping) {
        lerr(&L, root->line, "mapping: missing (the mapping file to test, relative to this file)");
    } else {
        const char *rel = scalar_or_null(&L, mapping, "mapping");
        if (rel) {
            char *full = path_join(dir, rel);
            struct stat st;
            errno = 0;
            if (!full) {
                lerr(&L, mapping->line, "out of memory");
            } else if (stat(full, &st) != 0 || !S_ISREG(st.st_mode)) {
                lerr(&L, mapping->line, "mapping: cannot read %s: %s", full,
                     errno ? strerror(errno) : "not a file");
            } else {
                f->mapping = relais_mapping_load(full, errs);
                if (!f->mapping) lerr(&L, mapping->line, "mapping: %s is not valid (errors above)", full);
            }
            free(full);
        }
    }
    if (!tests) {
        lerr(&L, root->line, "tests: missing (a list of tests)");
    } else if (tests->kind != YT_SEQ || tests->count == 0) {
        lerr(&L, tests->line, "tests: must be a non-empty list");
    } else {
        f->tests = calloc(tests->count, sizeof *f->tests);
        if (!f->tests) { lerr(&L, tests->line, "out of memory"); goto out; }
        f->ntests = tests->count;
        for (size_t i = 0; i < tests->count; i++) load_test(&L, f, &f->tests[i], tests->values[i], i);
    }
out:
    yt_free(root);
    free(dir);
    return L.bad ? -1 : 0;
}

/* ---- running one test ----------------------------------------------------- */

typedef struct runner {
    relais_schema_set *schemas;
    FILE              *out;
} runner;

typedef struct result {
    mt_buf msg;      /* the failure report, indented */
    int    failed;
} result;

static void fail_line(result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One message of the report, each of its lines indented by two spaces. */
static void fail_line(result *r, const char *fmt, ...)
{
    char text[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    for (const char *p = text;;) {
        const char *nl = strchr(p, '\n');
        int len = nl ? (int)(nl - p) : (int)strlen(p);
        buf_printf(&r->msg, "  %.*s\n", len, p);
        if (!nl) break;
        p = nl + 1;
    }
    r->failed = 1;
}

static void fail_diff(result *r, const char *exp, const char *act)
{
    char *mem = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&mem, &len);
    if (m) {
        relais_maptest_diff(m, exp, act, "  ");
        fclose(m);
        buf_printf(&r->msg, "%s", mem ? mem : "");
        free(mem);
    }
    r->failed = 1;
}

/* Validate data against the canonical schema of type. 0 valid; -1 with err. */
static int validate_data(const runner *R, const char *type, const json_t *data, mt_buf *err)
{
    const relais_schema *sc = relais_schema_set_for_type(R->schemas, type);
    if (!sc) {
        buf_printf(err, "no canonical schema for type %s", type);
        return -1;
    }
    relais_schema_fault faults[MT_MAX_FAULTS];
    size_t nf = 0;
    if (relais_schema_validate(sc, data, "$.data", faults, MT_MAX_FAULTS, &nf)) return 0;
    buf_printf(err, "data does not match the canonical schema of %s:", type);
    for (size_t i = 0; i < nf; i++) buf_printf(err, "\n  %s: %s", faults[i].path, faults[i].message);
    return -1;
}

static json_t *str_or_null(const char *s)
{
    json_t *v = s ? json_string(s) : NULL;
    return v ? v : json_null();
}

/* The CloudEvent the hub would build from the record (relais_event_build,
 * so the envelope rules are the hub's own), with the fixed test id and time
 * so that outputs are reproducible. */
static json_t *event_of_record(const relais_mapped_record *rec)
{
    relais_record r = { .record_id = rec->record_id, .type = rec->type, .subject = rec->subject,
                        .correlation_id = rec->correlation_id, .traceparent = MT_EVENT_TRACE,
                        .tenant = MT_EVENT_TENANT, .data = rec->data };
    char err[256];
    relais_event *ev = relais_event_build(&r, "test", MT_EVENT_TENANT, err, sizeof err);
    if (!ev) return NULL;
    json_t *o = json_deep_copy(relais_event_object(ev));
    relais_event_unref(ev);
    if (!o) return NULL;
    json_object_set_new(o, "id", json_string(MT_EVENT_ID));
    json_object_set_new(o, "time", json_string(MT_EVENT_TIME));
    if (!rec->correlation_id || !*rec->correlation_id)
        json_object_set_new(o, "correlationid", json_string(MT_EVENT_ID));   /* the hub's rule: the event id */
    return o;
}

/* A csv record given as text: a header line and one record line. */
static json_t *csv_record(const mt_test *t, mt_buf *err)
{
    file_csv_reader *r = file_csv_reader_new_mem(t->input, t->input_len, t->delimiter, 1024 * 1024);
    if (!r) { buf_printf(err, "out of memory"); return NULL; }
    file_csv_row row;
    memset(&row, 0, sizeof row);
    char e[512];
    file_csv_header *h = NULL;
    json_t *rec = NULL;
    int st = file_csv_next(r, &row, e, sizeof e);
    if (st == FILE_CSV_ROW) h = file_csv_header_new(&row, e, sizeof e);
    else if (st == FILE_CSV_END) snprintf(e, sizeof e, "no header line");
    if (!h) {
        buf_printf(err, "%s:%zu: csv header: %s", t->input_name, st == FILE_CSV_END ? (size_t)1 : row.line, e);
        goto out;
    }
    st = file_csv_next(r, &row, e, sizeof e);
    if (st == FILE_CSV_END) { buf_printf(err, "%s: a header line but no record", t->input_name); goto out; }
    if (st != FILE_CSV_ROW) { buf_printf(err, "%s:%zu: %s", t->input_name, row.line, e); goto out; }
    rec = file_csv_object(h, &row, e, sizeof e);
    if (!rec) { buf_printf(err, "%s:%zu: %s", t->input_name, row.line, e); goto out; }
    size_t first = row.line;
    st = file_csv_next(r, &row, e, sizeof e);
    if (st != FILE_CSV_END) {
        buf_printf(err, "%s:%zu: one record per test (the record is on line %zu)", t->input_name,
                   row.line, first);
        json_decref(rec);
        rec = NULL;
    }
out:
    file_csv_header_destroy(h);
    file_csv_reader_destroy(r);
    return rec;
}

/* csv records given as YAML: every value as text, as the file connector reads them. */
static json_t *csv_object_of_yaml(const json_t *in, mt_buf *err)
{
    json_t *o = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)in, k, v) {
        if (json_is_string(v)) {
            json_object_set(o, k, v);
        } else if (json_is_null(v)) {
            json_object_set_new(o, k, json_string(""));
        } else if (json_is_object(v) || json_is_array(v)) {
            buf_printf(err, "input: column '%s': a csv value is text, not a list or map", k);
            json_decref(o);
            return NULL;
        } else {
            char *s = json_dumps(v, JSON_ENCODE_ANY);
            json_object_set_new(o, k, json_string(s ? s : ""));
            free(s);
        }
    }
    return o;
}

/* Run the inbound mapping. 0 ok, -1 error in err. */
static int run_inbound(const mt_file *f, const mt_test *t, relais_mapped_record *rec, mt_buf *err)
{
    char e[1024] = "";
    int rc;
    relais_map_format fmt = relais_mapping_format(f->mapping);
    if (fmt == RELAIS_MAP_CSV) {
        json_t *o = t->input_obj ? csv_object_of_yaml(t->input_obj, err) : csv_record(t, err);
        if (!o) return -1;
        rc = relais_mapping_inbound_json(f->mapping, o, rec, e, sizeof e);
        json_decref(o);
    } else if (t->input_obj) {
        rc = relais_mapping_inbound_json(f->mapping, t->input_obj, rec, e, sizeof e);
    } else {
        rc = relais_mapping_inbound_raw(f->mapping, t->input, t->input_len, t->input_name, rec, e,
                                        sizeof e);
    }
    if (rc == 1) {
        buf_printf(err, "no inbound case of %s matches the record", relais_mapping_path(f->mapping));
        return -1;
    }
    if (rc != 0) {
        buf_printf(err, "%s", *e ? e : "the mapping failed without a message");
        return -1;
    }
    if (!rec->type) {
        buf_printf(err, "the mapped record has no type");
        relais_mapped_record_clear(rec);
        return -1;
    }
    return 0;
}

static void compare_event(result *r, const mt_test *t, const relais_mapped_record *rec)
{
    json_t *act = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(t->expect_event, k, v) {
        if (strcmp(k, "type") == 0) json_object_set_new(act, k, str_or_null(rec->type));
        else if (strcmp(k, "subject") == 0) json_object_set_new(act, k, str_or_null(rec->subject));
        else if (strcmp(k, "record_id") == 0) json_object_set_new(act, k, str_or_null(rec->record_id));
        else if (strcmp(k, "correlation_id") == 0)
            json_object_set_new(act, k, str_or_null(rec->correlation_id));
        else if (strcmp(k, "data") == 0)
            json_object_set(act, k, rec->data ? rec->data : json_null());
    }
    if (!relais_maptest_json_equal(t->expect_event, act)) {
        char *es = relais_maptest_json_pretty(t->expect_event), *as = relais_maptest_json_pretty(act);
        fail_line(r, "expect_event differs:");
        fail_diff(r, es, as);
        free(es);
        free(as);
    }
    json_decref(act);
}

/* Remove one final newline ("\n" or "\r\n"). */
static size_t chomp_len(const char *s, size_t len)
{
    if (len && s[len - 1] == '\n') len--;
    if (len && s[len - 1] == '\r') len--;
    return len;
}

static char *text_line(const char *s, size_t len)
{
    return strndup(s, len);
}

static void compare_output(result *r, const mt_file *f, const mt_test *t, const relais_rendered *out)
{
    relais_map_format fmt = relais_mapping_format(f->mapping);
    char e[512];
    if (fmt == RELAIS_MAP_JSON) {
        json_t *exp = relais_json_parse(t->expect_output, t->expect_output_len, "expect_output", NULL,
                                        e, sizeof e);
        if (!exp) { fail_line(r, "expect_output is not valid JSON: %s", e); return; }
        json_t *act = relais_json_parse(out->body, out->len, "output", NULL, e, sizeof e);
        if (!act) {
            fail_line(r, "the output is not valid JSON: %s", e);
            char *es = relais_maptest_json_pretty(exp), *as = text_line(out->body, out->len);
            fail_diff(r, es, as ? as : "");
            free(es);
            free(as);
        } else if (!relais_maptest_json_equal(exp, act)) {
            char *es = relais_maptest_json_pretty(exp), *as = relais_maptest_json_pretty(act);
            fail_line(r, "expect_output differs:");
            fail_diff(r, es, as);
            free(es);
            free(as);
        }
        json_decref(exp);
        json_decref(act);
        return;
    }
    if (fmt == RELAIS_MAP_XML) {
        xmlDocPtr exp = relais_xml_parse(t->expect_output, t->expect_output_len, "expect_output", NULL,
                                         e, sizeof e);
        if (!exp) { fail_line(r, "expect_output is not well-formed XML: %s", e); return; }
        xmlDocPtr act = relais_xml_parse(out->body, out->len, "output", NULL, e, sizeof e);
        if (!act) {
            fail_line(r, "the output is not well-formed XML: %s", e);
            xmlFreeDoc(exp);
            return;
        }
        char *es = NULL, *as = NULL;
        int eq = relais_maptest_xml_equal(exp, act, &es, &as);
        if (eq < 0) {
            fail_line(r, "cannot bring the XML documents to canonical form");
        } else if (eq == 0) {
            fail_line(r, "expect_output differs (XML compared in canonical form):");
            fail_diff(r, es, as);
        }
        free(es);
        free(as);
        xmlFreeDoc(exp);
        xmlFreeDoc(act);
        return;
    }
    size_t el = chomp_len(t->expect_output, t->expect_output_len), al = chomp_len(out->body, out->len);
    if (el != al || memcmp(t->expect_output, out->body, el) != 0) {
        char *es = text_line(t->expect_output, el), *as = text_line(out->body, al);
        fail_line(r, "expect_output differs:");
        fail_diff(r, es ? es : "", as ? as : "");
        free(es);
        free(as);
    }
}

static void run_test(const runner *R, const mt_file *f, const mt_test *t, result *r)
{
    mt_buf err = { 0 };
    relais_mapped_record rec;
    memset(&rec, 0, sizeof rec);
    json_t *event = NULL;
    int errored = 0;
    const char *what = "the record mapped";

    if (t->event) {
        what = "the event rendered";
        event = json_incref(t->event);
        json_t *type = json_object_get(event, "type");
        if (validate_data(R, json_string_value(type), json_object_get(event, "data"), &err) != 0) {
            errored = 1;
            goto done;
        }
    } else {
        if (run_inbound(f, t, &rec, &err) != 0) { errored = 1; goto done; }
        if (validate_data(R, rec.type, rec.data, &err) != 0) { errored = 1; goto done; }
        if (t->expect_event) compare_event(r, t, &rec);
        if (t->expect_output) {
            event = event_of_record(&rec);
            if (!event) { buf_printf(&err, "cannot build the event"); errored = 1; goto done; }
        }
    }
    if (event) {
        relais_rendered out;
        memset(&out, 0, sizeof out);
        char e[1024] = "";
        int rc = relais_mapping_outbound(f->mapping, event, t->local_id, &out, e, sizeof e);
        if (rc == 1) {
            buf_printf(&err, "no outbound case of %s matches type %s", relais_mapping_path(f->mapping),
                       json_string_value(json_object_get(event, "type")));
            errored = 1;
        } else if (rc != 0) {
            buf_printf(&err, "%s", *e ? e : "the outbound mapping failed without a message");
            errored = 1;
        } else if (t->expect_output) {
            compare_output(r, f, t, &out);
        }
        relais_rendered_clear(&out);
    }
done:
    if (errored) {
        const char *msg = err.s ? err.s : "";
        if (!t->expect_error) {
            fail_line(r, "%s", msg);
        } else if (!strstr(msg, t->expect_error)) {
            fail_line(r, "expect_error: \"%s\" but the error was:", t->expect_error);
            fail_line(r, "  %s", msg);
        }
    } else if (t->expect_error) {
        fail_line(r, "expect_error: \"%s\" but %s without error", t->expect_error, what);
    }
    relais_mapped_record_clear(&rec);   /* also the record id a failed mapping may leave */
    json_decref(event);
    free(err.s);
}

/* ---- finding and running files -------------------------------------------- */

typedef struct path_list {
    char  **p;
    size_t  n, cap;
} path_list;

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int list_add(path_list *l, char *p)
{
    if (!p) return -1;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **np = realloc(l->p, cap * sizeof *np);
        if (!np) { free(p); return -1; }
        l->p = np;
        l->cap = cap;
    }
    l->p[l->n++] = p;
    return 0;
}

static int walk(const char *dir, int depth, path_list *l, FILE *out)
{
    if (depth > MT_MAX_DEPTH) {
        fprintf(out, "%s: directories nested deeper than %d levels, not searched\n", dir, MT_MAX_DEPTH);
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(out, "%s: cannot read the directory: %s\n", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (;;) {
        struct dirent *de = readdir(d);
        if (!de) break;
        if (de->d_name[0] == '.') continue;   /* ., .., hidden files and folders */
        char *p = strcmp(dir, ".") == 0 ? strdup(de->d_name) : path_join(dir, de->d_name);
        if (!p) { rc = -1; break; }
        struct stat st;
        if (stat(p, &st) != 0) { free(p); continue; }
        if (S_ISDIR(st.st_mode)) {
            if (walk(p, depth + 1, l, out) != 0) rc = -1;
            free(p);
        } else if (S_ISREG(st.st_mode) && ends_with(de->d_name, ".test.yaml")) {
            if (list_add(l, p) != 0) rc = -1;
        } else {
            free(p);
        }
    }
    closedir(d);
    return rc;
}

static int path_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_file(const runner *R, const char *path, relais_maptest_counts *c)
{
    relais_errlist errs;
    relais_errlist_init(&errs);
    mt_file f;
    c->files++;
    if (load_test_file(path, &f, &errs) != 0) {
        relais_errlist_print(&errs, R->out);
        c->invalid_files++;
        relais_errlist_free(&errs);
        file_clear(&f);
        return;
    }
    relais_errlist_free(&errs);
    for (size_t i = 0; i < f.ntests; i++) {
        result r = { { 0 }, 0 };
        run_test(R, &f, &f.tests[i], &r);
        c->tests++;
        if (r.failed) {
            c->failed++;
            fprintf(R->out, "FAIL %s:%d: %s\n%s", path, f.tests[i].line, f.tests[i].name,
                    r.msg.s ? r.msg.s : "");
        } else {
            c->passed++;
            fprintf(R->out, "PASS %s: %s\n", path, f.tests[i].name);
        }
        free(r.msg.s);
    }
    file_clear(&f);
}

int relais_maptest_run(const char *path, const char *schema_dir, FILE *out,
                       relais_maptest_counts *counts)
{
    relais_maptest_counts c;
    memset(&c, 0, sizeof c);
    relais_safeparse_init();
    if (!schema_dir) schema_dir = RELAIS_DEFAULT_SCHEMA_DIR;

    char err[1024];
    runner R = { relais_schema_set_new(), out };
    if (!R.schemas) {
        fprintf(out, "out of memory\n");
        return 1;
    }
    if (relais_schema_set_load_dir(R.schemas, schema_dir, err, sizeof err) != 0 ||
        relais_schema_set_compile(R.schemas, err, sizeof err) != 0) {
        fprintf(out, "canonical schemas %s: %s\n", schema_dir, err);
        relais_schema_set_destroy(R.schemas);
        if (counts) *counts = c;
        return 1;
    }

    path_list l = { 0 };
    int walk_failed = 0;
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(out, "%s: %s\n", path, strerror(errno));
        walk_failed = 1;
    } else if (S_ISDIR(st.st_mode)) {
        walk_failed = walk(path, 0, &l, out) != 0;
        if (l.n > 1) qsort(l.p, l.n, sizeof *l.p, path_cmp);
    } else if (list_add(&l, strdup(path)) != 0) {
        walk_failed = 1;
    }
    if (!walk_failed && l.n == 0) {
        fprintf(out, "%s: no *.test.yaml files\n", path);
        walk_failed = 1;
    }
    for (size_t i = 0; i < l.n; i++) {
        run_file(&R, l.p[i], &c);
        free(l.p[i]);
    }
    free(l.p);
    relais_schema_set_destroy(R.schemas);

    fprintf(out, "%d test%s, %d passed, %d failed", c.tests, c.tests == 1 ? "" : "s", c.passed, c.failed);
    if (c.invalid_files)
        fprintf(out, ", %d invalid test file%s", c.invalid_files, c.invalid_files == 1 ? "" : "s");
    fprintf(out, "\n");
    if (counts) *counts = c;
    return walk_failed || c.failed || c.invalid_files || c.tests == 0 ? 1 : 0;
}
