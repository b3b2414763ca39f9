/*
 * Unit tests: the canonical model in schemas/ (common.json, events/<type>.json,
 * examples/<type>.json, examples/invalid/<name>.json + <name>.expect, README.md),
 * checked with the hub's JSON Schema validator (hub/jsonschema.c) and the
 * hub's envelope parser (hub/event.c).
 *
 * What is shown:
 *  - the whole directory loads and compiles (every $ref resolves, every
 *    keyword is supported, every pattern compiles);
 *  - every event schema has its example and every example its schema, and the
 *    set knows exactly the types of events/;
 *  - every example is a CloudEvent the hub parses, with a consistent envelope,
 *    and its data validates; removing any required top-level field or adding
 *    an unknown one makes it invalid;
 *  - every negative example is invalid and its first fault is at the JSON
 *    path its .expect file gives;
 *  - every schema declares $schema, $id, title, description; every object
 *    schema is closed (additionalProperties false) and lists only required
 *    names it defines; event type names follow the naming rule;
 *  - schemas/README.md lists every type with links to schema and example.
 * The source tree is found through RELAIS_SOURCE_DIR (set by ctest).
 */
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <regex.h>
#include "testsupport.h"
#include "jsonschema.h"
#include "event_int.h"

#define SCHEMA_2020 "https://json-schema.org/draft/2020-12/schema"
#define ID_BASE     "https://relais.example/schemas/"
#define MAX_FILES   128

/* ---- helpers ---------------------------------------------------------------- */

static const char *schemas_dir(void)
{
    /* Fail, never skip, when run outside ctest. */
    if (!getenv("RELAIS_SOURCE_DIR"))
        fail_msg("RELAIS_SOURCE_DIR is not set (run through ctest)");
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s", ts_source_path("schemas"));
    return buf;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names (without the suffix) of the files in schemas/<sub> whose name ends in suffix. */
static size_t list_files(const char *sub, const char *suffix, char **names, size_t max)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", schemas_dir(), sub);
    DIR *d = opendir(path);
    if (!d) fail_msg("cannot open %s", path);
    size_t n = 0, sl = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l <= sl || strcmp(e->d_name + l - sl, suffix) != 0)
            continue;
        if (n == max) fail_msg("more than %zu files in %s", max, path);
        names[n] = strndup(e->d_name, l - sl);
        assert_non_null(names[n]);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    return n;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) free(names[i]);
}

static int contains(char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0) return 1;
    return 0;
}

static json_t *load_json(const char *sub, const char *name, const char *suffix)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s/%s%s", schemas_dir(), sub, name, suffix);
    json_error_t jerr;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) fail_msg("%s:%d: %s", path, jerr.line, jerr.text);
    return j;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t r = fread(buf + len, 1, cap - len - 1, f);
        len += r;
        if (r == 0) break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static relais_schema_set *load_set(void)
{
    relais_schema_set *set = relais_schema_set_new();
    assert_non_null(set);
    char err[512] = "";
    if (relais_schema_set_load_dir(set, schemas_dir(), err, sizeof err) != 0)
        fail_msg("load_dir: %s", err);
    if (relais_schema_set_compile(set, err, sizeof err) != 0)
        fail_msg("compile: %s", err);
    return set;
}

static void print_faults(const char *what, const relais_schema_fault *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        print_error("%s: %s: %s\n", what, f[i].path, f[i].message);
}

/* 1 when s matches the POSIX extended regex re (whole string: re is anchored). */
static int matches(const char *re, const char *s)
{
    regex_t rx;
    if (regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) != 0) fail_msg("bad test regex %s", re);
    int ok = regexec(&rx, s, 0, NULL, 0) == 0;
    regfree(&rx);
    return ok;
}

static const char *str_member(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* ---- the set compiles and knows exactly the types of events/ ----------------- */

static void test_directory_compiles_and_types_match_files(void **state)
{
    (void)state;
    relais_schema_set *set = load_set();
    char *events[MAX_FILES];
    size_t ne = list_files("events", ".json", events, MAX_FILES);
    assert_true(ne >= 25);

    const char *const *types = relais_schema_set_types(set);
    assert_non_null(types);
    size_t nt = 0;
    for (; types[nt]; nt++) {
        if (!contains(events, ne, types[nt]))
            fail_msg("the set knows type %s but events/ has no such file", types[nt]);
        if (nt > 0 && strcmp(types[nt - 1], types[nt]) >= 0)
            fail_msg("types not sorted: %s then %s", types[nt - 1], types[nt]);
    }
    assert_int_equal(nt, ne);
    for (size_t i = 0; i < ne; i++) {
        if (!relais_schema_set_for_type(set, events[i]))
            fail_msg("no schema for type %s", events[i]);
        char uri[512];
        snprintf(uri, sizeof uri, ID_BASE "events/%s.json", events[i]);
        assert_ptr_equal(relais_schema_set_get(set, uri), relais_schema_set_for_type(set, events[i]));
    }
    assert_non_null(relais_schema_set_get(set, ID_BASE "common.json"));
    assert_null(relais_schema_set_for_type(set, "fr.relais.grc.request.created.v9"));
    free_names(events, ne);
    relais_schema_set_destroy(set);
}

static void test_every_schema_has_an_example_and_back(void **state)
{
    (void)state;
    char *events[MAX_FILES], *examples[MAX_FILES];
    size_t ne = list_files("events", ".json", events, MAX_FILES);
    size_t nx = list_files("examples", ".json", examples, MAX_FILES);
    for (size_t i = 0; i < ne; i++)
        if (!contains(examples, nx, events[i]))
            fail_msg("events/%s.json has no examples/%s.json", events[i], events[i]);
    for (size_t i = 0; i < nx; i++)
        if (!contains(events, ne, examples[i]))
            fail_msg("examples/%s.json has no events/%s.json", examples[i], examples[i]);
    assert_int_equal(ne, nx);
    free_names(events, ne);
    free_names(examples, nx);
}

/* ---- envelope of an example ---------------------------------------------------- */

static const char *const ENVELOPE_KEYS[] = {
    "specversion", "id", "source", "type", "subject", "time", "datacontenttype",
    "correlationid", "tenant", "traceparent", "recordid", "data", NULL
};

/* Checks the CloudEvent around the data; `type` is the expected type. */
static void check_envelope(const char *file, const json_t *ev, const char *type)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)ev, k, v) {
        int known = 0;
        for (size_t i = 0; ENVELOPE_KEYS[i]; i++)
            if (strcmp(k, ENVELOPE_KEYS[i]) == 0) known = 1;
        if (!known) fail_msg("%s: unexpected envelope attribute '%s'", file, k);
    }
    const char *spec = str_member(ev, "specversion");
    if (!spec || strcmp(spec, "1.0") != 0) fail_msg("%s: specversion must be \"1.0\"", file);
    const char *id = str_member(ev, "id");
    if (!id || !matches("^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", id))
        fail_msg("%s: id is not a lower-case UUIDv7", file);
    const char *t = str_member(ev, "type");
    if (!t || strcmp(t, type) != 0) fail_msg("%s: type is not %s", file, type);
    const char *tenant = str_member(ev, "tenant");
    if (!tenant || !matches("^[a-z0-9_-]+$", tenant)) fail_msg("%s: tenant missing or not [a-z0-9_-]+", file);
    const char *source = str_member(ev, "source");
    char prefix[200];
    snprintf(prefix, sizeof prefix, "/relais/%s/", tenant);
    if (!source || strncmp(source, prefix, strlen(prefix)) != 0 ||
        !matches("^/relais/[a-z0-9_-]+/[a-z0-9_-]+$", source))
        fail_msg("%s: source must be %s<instance>", file, prefix);
    const char *subject = str_member(ev, "subject");
    if (!subject || !matches("^[a-z][a-z_]*/[^[:space:]]+$", subject))
        fail_msg("%s: subject must be <entity>/<id>", file);
    const char *time = str_member(ev, "time");
    if (!time || !matches("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?Z$", time))
        fail_msg("%s: time must be RFC 3339 UTC", file);
    const char *dct = str_member(ev, "datacontenttype");
    if (!dct || strcmp(dct, "application/json") != 0) fail_msg("%s: datacontenttype must be application/json", file);
    const char *corr = str_member(ev, "correlationid");
    if (!corr || !*corr) fail_msg("%s: correlationid missing", file);
    const char *rid = str_member(ev, "recordid");
    if (!rid || !*rid) fail_msg("%s: recordid missing", file);
    if (!json_is_object(json_object_get(ev, "data"))) fail_msg("%s: data must be an object", file);

    /* and the hub's own parser accepts it */
    char *text = json_dumps(ev, JSON_COMPACT);
    assert_non_null(text);
    char err[256] = "";
    relais_event *parsed = relais_event_parse(text, strlen(text), err, sizeof err);
    if (!parsed) fail_msg("%s: relais_event_parse: %s", file, err);
    assert_string_equal(relais_event_type(parsed), type);
    assert_string_equal(relais_event_tenant(parsed), tenant);
    assert_string_equal(relais_event_record_id(parsed), rid);
    relais_event_unref(parsed);
    free(text);
}

/* ---- every example is valid; each required field and closedness matter ----- */

static void test_examples_validate(void **state)
{
    (void)state;
    relais_schema_set *set = load_set();
    char *examples[MAX_FILES];
    size_t nx = list_files("examples", ".json", examples, MAX_FILES);
    assert_true(nx >= 25);
    relais_schema_fault faults[8];
    for (size_t i = 0; i < nx; i++) {
        char file[300];
        snprintf(file, sizeof file, "examples/%s.json", examples[i]);
        json_t *ev = load_json("examples", examples[i], ".json");
        check_envelope(file, ev, examples[i]);
        const relais_schema *sc = relais_schema_set_for_type(set, examples[i]);
        if (!sc) fail_msg("%s: no schema for its type", file);
        json_t *data = json_object_get(ev, "data");
        size_t nf = 0;
        if (relais_schema_validate(sc, data, "$.data", faults, 8, &nf) != 1) {
            print_faults(file, faults, nf);
            fail_msg("%s: data does not validate", file);
        }
        assert_int_equal(nf, 0);

        /* removing any required top-level field breaks it, at that field's object */
        json_t *schema_doc = load_json("events", examples[i], ".json");
        json_t *req = json_object_get(schema_doc, "required");
        size_t ri;
        json_t *rname;
        assert_true(json_array_size(req) > 0);
        json_array_foreach(req, ri, rname) {
            json_t *copy = json_deep_copy(data);
            if (json_object_del(copy, json_string_value(rname)) != 0)
                fail_msg("%s: the example lacks required field %s", file, json_string_value(rname));
            if (relais_schema_validate(sc, copy, "$.data", faults, 8, &nf) != 0)
                fail_msg("%s: still valid without required field %s", file, json_string_value(rname));
            assert_true(nf >= 1);
            json_decref(copy);
        }
        /* an unknown field is refused: the model is closed */
        json_t *copy = json_deep_copy(data);
        json_object_set_new(copy, "unexpected_field", json_true());
        if (relais_schema_validate(sc, copy, "$.data", faults, 8, &nf) != 0)
            fail_msg("%s: an unknown top-level field is accepted", file);
        json_decref(copy);

        json_decref(schema_doc);
        json_decref(ev);
    }
    free_names(examples, nx);
    relais_schema_set_destroy(set);
}

/* ---- negative examples ------------------------------------------------------- */

static void test_invalid_examples_fail_at_expected_path(void **state)
{
    (void)state;
    relais_schema_set *set = load_set();
    char *bad[MAX_FILES], *expects[MAX_FILES];
    size_t nb = list_files("examples/invalid", ".json", bad, MAX_FILES);
    size_t ne = list_files("examples/invalid", ".expect", expects, MAX_FILES);
    assert_true(nb >= 5);
    for (size_t i = 0; i < ne; i++)
        if (!contains(bad, nb, expects[i]))
            fail_msg("examples/invalid/%s.expect has no .json", expects[i]);
    relais_schema_fault faults[16];
    for (size_t i = 0; i < nb; i++) {
        char file[300], path[1200];
        snprintf(file, sizeof file, "examples/invalid/%s.json", bad[i]);
        if (!contains(expects, ne, bad[i])) fail_msg("%s has no .expect file", file);
        json_t *ev = load_json("examples/invalid", bad[i], ".json");
        const char *type = str_member(ev, "type");
        if (!type) fail_msg("%s: no type", file);
        /* only the data is wrong: the envelope is a good one */
        check_envelope(file, ev, type);
        const relais_schema *sc = relais_schema_set_for_type(set, type);
        if (!sc) fail_msg("%s: no schema for type %s", file, type);

        snprintf(path, sizeof path, "%s/examples/invalid/%s.expect", schemas_dir(), bad[i]);
        char *expect = read_text(path);
        size_t el = strlen(expect);
        while (el > 0 && (expect[el - 1] == '\n' || expect[el - 1] == '\r' || expect[el - 1] == ' '))
            expect[--el] = '\0';
        assert_true(el > 2 && strncmp(expect, "$.data", 6) == 0);

        size_t nf = 0;
        if (relais_schema_validate(sc, json_object_get(ev, "data"), "$.data", faults, 16, &nf) != 0)
            fail_msg("%s: accepted, but it must be refused at %s", file, expect);
        assert_true(nf >= 1);
        if (strcmp(faults[0].path, expect) != 0) {
            print_faults(file, faults, nf);
            fail_msg("%s: first fault at %s, expected %s", file, faults[0].path, expect);
        }
        assert_true(faults[0].message[0] != '\0');
        free(expect);
        json_decref(ev);
    }
    free_names(bad, nb);
    free_names(expects, ne);
    relais_schema_set_destroy(set);
}

/* ---- shape of the schema documents --------------------------------------------- */

/* Walks every subschema of s (at JSON pointer `where` in file): an object
 * schema must be closed, described, and list only required names it defines.
 * Each violation is printed and counted in *bad. Returns the number of object
 * schemas seen. */
static size_t check_closed(const char *file, const char *where, const json_t *s, size_t *bad)
{
    if (!json_is_object(s)) return 0;
    size_t seen = 0;
    const char *type = str_member(s, "type");
    json_t *props = json_object_get(s, "properties");
    if (type && strcmp(type, "object") == 0) {
        seen++;
        if (!json_is_false(json_object_get(s, "additionalProperties"))) {
            print_error("%s: %s: object schema without \"additionalProperties\": false\n", file, where);
            (*bad)++;
        }
        if (!json_is_object(props)) {
            print_error("%s: %s: object schema without properties\n", file, where);
            (*bad)++;
        }
        if (!json_is_string(json_object_get(s, "description"))) {
            print_error("%s: %s: object schema without a description\n", file, where);
            (*bad)++;
        }
    }
    json_t *req = json_object_get(s, "required");
    if (req && json_is_object(props)) {
        size_t i;
        json_t *r;
        json_array_foreach(req, i, r)
            if (!json_object_get(props, json_string_value(r))) {
                print_error("%s: %s: required '%s' is not among the properties\n", file, where,
                            json_string_value(r));
                (*bad)++;
            }
    }
    static const char *const MAPS[] = { "properties", "$defs", "patternProperties", "dependentSchemas", NULL };
    static const char *const ONES[] = { "items", "additionalProperties", "if", "then", "else", "not",
                                        "contains", "propertyNames", NULL };
    static const char *const LISTS[] = { "anyOf", "allOf", "oneOf", "prefixItems", NULL };
    char sub[1024];
    for (size_t m = 0; MAPS[m]; m++) {
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(s, MAPS[m]), k, v) {
            snprintf(sub, sizeof sub, "%s/%s/%s", where, MAPS[m], k);
            seen += check_closed(file, sub, v, bad);
        }
    }
    for (size_t o = 0; ONES[o]; o++) {
        snprintf(sub, sizeof sub, "%s/%s", where, ONES[o]);
        seen += check_closed(file, sub, json_object_get(s, ONES[o]), bad);
    }
    for (size_t l = 0; LISTS[l]; l++) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(s, LISTS[l]), i, v) {
            snprintf(sub, sizeof sub, "%s/%s/%zu", where, LISTS[l], i);
            seen += check_closed(file, sub, v, bad);
        }
    }
    return seen;
}

static void check_header(const char *file, const json_t *doc, const char *id)
{
    const char *s = str_member(doc, "$schema");
    if (!s || strcmp(s, SCHEMA_2020) != 0) fail_msg("%s: $schema must be %s", file, SCHEMA_2020);
    s = str_member(doc, "$id");
    if (!s || strcmp(s, id) != 0) fail_msg("%s: $id must be %s", file, id);
    s = str_member(doc, "title");
    if (!s || strlen(s) < 3) fail_msg("%s: no title", file);
    s = str_member(doc, "description");
    if (!s || strlen(s) < 20) fail_msg("%s: no description", file);
}

static void test_schema_documents_shape(void **state)
{
    (void)state;
    json_t *common = load_json(".", "common", ".json");
    check_header("common.json", common, ID_BASE "common.json");
    size_t bad = 0;
    assert_true(check_closed("common.json", "#", common, &bad) >= 20);
    json_t *domains = json_object_get(json_object_get(json_object_get(common, "$defs"), "domain"), "enum");
    assert_true(json_array_size(domains) == 8);

    char *events[MAX_FILES];
    size_t ne = list_files("events", ".json", events, MAX_FILES);
    for (size_t i = 0; i < ne; i++) {
        char file[300], id[400];
        snprintf(file, sizeof file, "events/%s.json", events[i]);
        snprintf(id, sizeof id, ID_BASE "events/%s.json", events[i]);
        /* fr.relais.<domain>.<entity>.<verb>.v<major> */
        if (!matches("^fr\\.relais\\.[a-z][a-z0-9_]*\\.[a-z][a-z0-9_]*\\.[a-z][a-z0-9_]*\\.v[1-9][0-9]*$", events[i]))
            fail_msg("%s: type name does not follow fr.relais.<domain>.<entity>.<verb>.v<major>", file);
        char domain[64];
        const char *d = events[i] + strlen("fr.relais.");
        snprintf(domain, sizeof domain, "%.*s", (int)(strchr(d, '.') - d), d);
        int known = 0;
        size_t k;
        json_t *dv;
        json_array_foreach(domains, k, dv)
            if (strcmp(json_string_value(dv), domain) == 0) known = 1;
        if (!known) fail_msg("%s: domain '%s' is not in common.json#/$defs/domain", file, domain);

        json_t *doc = load_json("events", events[i], ".json");
        check_header(file, doc, id);
        const char *t = str_member(doc, "type");
        if (!t || strcmp(t, "object") != 0) fail_msg("%s: top level must be type object", file);
        if (!json_is_false(json_object_get(doc, "additionalProperties")))
            fail_msg("%s: top level must have \"additionalProperties\": false", file);
        if (json_array_size(json_object_get(doc, "required")) == 0)
            fail_msg("%s: top level must list required fields", file);
        assert_true(check_closed(file, "#", doc, &bad) >= 1);
        json_decref(doc);
    }
    assert_int_equal(bad, 0);
    free_names(events, ne);
    json_decref(common);
}

/* The checker above is not vacuous: it finds an open object, an object
 * without description and a required name that is not defined, nested
 * anywhere (here in $defs and under items). */
static void test_shape_checker_finds_open_objects(void **state)
{
    (void)state;
    size_t bad = 0;
    json_t *good = json_pack("{s:s, s:s, s:{s:{}}, s:b, s:[s]}", "type", "object", "description", "x",
                             "properties", "a", "additionalProperties", 0, "required", "a");
    assert_int_equal(check_closed("good", "#", good, &bad), 1);
    assert_int_equal(bad, 0);
    json_decref(good);

    json_t *open = json_pack("{s:{s:{s:s, s:s, s:{}}}}", "$defs", "x", "type", "object",
                             "description", "y", "properties");
    assert_int_equal(check_closed("open", "#", open, &bad), 1);
    assert_int_equal(bad, 1);
    json_decref(open);

    bad = 0;
    json_t *undescribed = json_pack("{s:s, s:{s:s, s:{}, s:b, s:[s]}}", "type", "array", "items",
                                    "type", "object", "properties", "additionalProperties", 0,
                                    "required", "missing");
    assert_int_equal(check_closed("undescribed", "#", undescribed, &bad), 1);
    assert_int_equal(bad, 2);          /* no description, required name not defined */
    json_decref(undescribed);
}

/* ---- README ------------------------------------------------------------------- */

static void test_readme_lists_every_type(void **state)
{
    (void)state;
    char path[1200];
    snprintf(path, sizeof path, "%s/README.md", schemas_dir());
    char *readme = read_text(path);
    char *events[MAX_FILES];
    size_t ne = list_files("events", ".json", events, MAX_FILES);
    for (size_t i = 0; i < ne; i++) {
        char link[400];
        snprintf(link, sizeof link, "`%s`", events[i]);
        if (!strstr(readme, link)) fail_msg("README.md does not list %s", events[i]);
        snprintf(link, sizeof link, "(events/%s.json)", events[i]);
        if (!strstr(readme, link)) fail_msg("README.md does not link events/%s.json", events[i]);
        snprintf(link, sizeof link, "(examples/%s.json)", events[i]);
        if (!strstr(readme, link)) fail_msg("README.md does not link examples/%s.json", events[i]);
    }
    free_names(events, ne);
    free(readme);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_directory_compiles_and_types_match_files),
        cmocka_unit_test(test_every_schema_has_an_example_and_back),
        cmocka_unit_test(test_examples_validate),
        cmocka_unit_test(test_invalid_examples_fail_at_expected_path),
        cmocka_unit_test(test_schema_documents_shape),
        cmocka_unit_test(test_shape_checker_finds_open_objects),
        cmocka_unit_test(test_readme_lists_every_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
