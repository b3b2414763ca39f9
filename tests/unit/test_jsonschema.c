/* Unit tests: hub/jsonschema.c beyond the official suite (test_jsonschema_suite.c):
 * fault paths and messages, cross-document $ref, $ref cycles, refused
 * keywords with their location, relais_schema_set_load_dir (events/ types,
 * examples/ skipped, bad JSON named with its line), lookups, JSON number
 * equality, and two threads validating with one set at once. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "testsupport.h"
#include "jsonschema.h"

static json_t *js(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    if (!j) fail_msg("bad test JSON at %d: %s: %s", je.line, je.text, text);
    return j;
}

/* A compiled set of one schema (uri "https://t.test/s.json"); NULL + err. */
static relais_schema_set *one(const char *schema, char *err, size_t errlen)
{
    relais_schema_set *set = relais_schema_set_new();
    assert_non_null(set);
    json_t *doc = js(schema);
    int rc = relais_schema_set_add(set, doc, "https://t.test/s.json", "s.json", err, errlen);
    json_decref(doc);
    if (rc == 0) rc = relais_schema_set_compile(set, err, errlen);
    if (rc != 0) {
        relais_schema_set_destroy(set);
        return NULL;
    }
    return set;
}

/* Validates instance against schema; returns the validity, faults in f. */
static int check(const char *schema, const char *instance, relais_schema_fault *f, size_t max, size_t *n)
{
    char err[512];
    relais_schema_set *set = one(schema, err, sizeof err);
    if (!set) fail_msg("compile: %s", err);
    json_t *x = js(instance);
    int r = relais_schema_validate(relais_schema_set_get(set, "https://t.test/s.json"), x, "$.data", f, max, n);
    json_decref(x);
    relais_schema_set_destroy(set);
    return r;
}

static void expect_fault(const char *schema, const char *instance, const char *path, const char *msg)
{
    relais_schema_fault f[4];
    size_t n = 0;
    assert_int_equal(check(schema, instance, f, 4, &n), 0);
    assert_true(n >= 1);
    assert_string_equal(f[0].path, path);
    assert_string_equal(f[0].message, msg);
}

static void expect_valid(const char *schema, const char *instance)
{
    relais_schema_fault f[4];
    size_t n = 9;
    int r = check(schema, instance, f, 4, &n);
    if (!r) fail_msg("%s against %s: %s: %s", instance, schema, f[0].path, f[0].message);
    assert_int_equal(n, 0);
}

static const char family[] =
    "{\"type\":\"object\",\"required\":[\"category\",\"members\"],"
    " \"properties\":{\"category\":{\"enum\":[\"a\",\"b\",\"c\"]},"
    "  \"postcode\":{\"type\":\"string\",\"pattern\":\"^[0-9]{5}$\"},"
    "  \"count\":{\"type\":\"integer\"},"
    "  \"members\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
    "   \"properties\":{\"birth_date\":{\"type\":\"string\",\"format\":\"date\"}}}},"
    "  \"a b\":{\"type\":\"string\",\"maxLength\":2}}}";

static void test_fault_paths_and_messages(void **state)
{
    (void)state;
    expect_fault(family, "{\"members\":[]}", "$.data", "required property 'category' is missing");
    expect_fault(family, "{\"category\":\"X\",\"members\":[]}", "$.data.category",
                 "value 'X' is not one of: a, b, c");
    expect_fault(family, "{\"category\":\"a\",\"members\":[],\"count\":\"3\"}", "$.data.count",
                 "expected integer, got string");
    expect_fault(family, "{\"category\":\"a\",\"members\":[],\"postcode\":\"7500\"}", "$.data.postcode",
                 "does not match pattern '^[0-9]{5}$'");
    expect_fault(family, "{\"category\":\"a\",\"members\":[{},{},{\"birth_date\":\"2020-02-30\"}]}",
                 "$.data.members[2].birth_date", "is not a valid date (YYYY-MM-DD)");
    expect_fault(family, "{\"category\":\"a\",\"members\":[],\"a b\":\"\xc3\xa9t\xc3\xa9\"}", "$.data[\"a b\"]",
                 "is 3 characters long, at most 2 allowed");
    /* several faults, in instance order, up to max */
    relais_schema_fault f[8];
    size_t n = 0;
    assert_int_equal(check(family, "{\"category\":\"z\",\"count\":1.5,\"members\":[{\"birth_date\":\"x\"}]}",
                           f, 8, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(f[0].path, "$.data.category");
    assert_string_equal(f[1].path, "$.data.count");
    assert_string_equal(f[1].message, "expected integer, got number");
    assert_string_equal(f[2].path, "$.data.members[0].birth_date");
    assert_int_equal(check(family, "{\"category\":\"z\",\"count\":1.5}", f, 1, &n), 0);
    assert_int_equal(n, 1);
    /* no fault buffer: only the verdict */
    assert_int_equal(check(family, "{\"category\":\"z\"}", NULL, 0, &n), 0);
    assert_int_equal(n, 0);
    /* root defaults to "$" */
    char err[256];
    relais_schema_set *set = one("{\"type\":\"string\"}", err, sizeof err);
    assert_non_null(set);
    json_t *x = js("[1]");
    assert_int_equal(relais_schema_validate(relais_schema_set_get(set, "https://t.test/s.json"), x, NULL, f, 8, &n), 0);
    assert_string_equal(f[0].path, "$");
    assert_string_equal(f[0].message, "expected string, got array");
    json_decref(x);
    relais_schema_set_destroy(set);
    /* keys that are not identifiers, escaped */
    expect_fault("{\"properties\":{\"q\\\"k\":{\"type\":\"null\"},\"1x\":{\"type\":\"null\"}}}",
                 "{\"q\\\"k\":1}", "$.data[\"q\\\"k\"]", "expected null, got integer");
    expect_fault("{\"properties\":{\"1x\":{\"type\":[\"null\",\"string\"]}}}", "{\"1x\":1}", "$.data[\"1x\"]",
                 "expected string or null, got integer");
}

static void test_combinator_messages(void **state)
{
    (void)state;
    const char *any = "{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"},{\"properties\":"
                      "{\"a\":{\"type\":\"null\"}},\"required\":[\"a\"]}]}";
    relais_schema_fault f[8];
    size_t n = 0;
    assert_int_equal(check(any, "{\"a\":1}", f, 8, &n), 0);
    assert_int_equal(n, 1);     /* one fault for the anyOf, not the inner ones */
    assert_string_equal(f[0].path, "$.data");
    assert_string_equal(f[0].message, "matches none of the 3 alternatives of anyOf");
    expect_valid(any, "{\"a\":null}");
    const char *one_of = "{\"properties\":{\"v\":{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":2}]}}}";
    expect_fault(one_of, "{\"v\":3}", "$.data.v", "matches alternatives 1 and 2 of oneOf, exactly one must match");
    expect_fault(one_of, "{\"v\":1.5}", "$.data.v", "matches none of the 2 alternatives of oneOf");
    expect_valid(one_of, "{\"v\":1}");
    expect_fault("{\"not\":{\"type\":\"string\"}}", "\"s\"", "$.data", "matches the schema in 'not'");
    /* then/else report their own faults */
    const char *cond = "{\"if\":{\"properties\":{\"kind\":{\"const\":\"birth\"}}},"
                       "\"then\":{\"required\":[\"birth_date\"]},\"else\":{\"required\":[\"date\"]}}";
    expect_fault(cond, "{\"kind\":\"birth\"}", "$.data", "required property 'birth_date' is missing");
    expect_fault(cond, "{\"kind\":\"death\"}", "$.data", "required property 'date' is missing");
    expect_fault("{\"additionalProperties\":false,\"properties\":{\"a\":true}}", "{\"a\":1,\"b\":2}",
                 "$.data", "property 'b' is not allowed");
    expect_fault("{\"contains\":{\"type\":\"string\"},\"minContains\":2}", "[\"a\",1]", "$.data",
                 "contains 1 items matching 'contains', at least 2 required");
    expect_fault("{\"uniqueItems\":true}", "[1,2,1.0]", "$.data", "items [0] and [2] are equal, items must be unique");
    expect_fault("{\"dependentRequired\":{\"a\":[\"b\"]}}", "{\"a\":1}", "$.data",
                 "property 'a' requires property 'b', which is missing");
    expect_fault("{\"maximum\":10}", "10.5", "$.data", "10.5 is greater than the maximum 10");
    expect_fault("{\"multipleOf\":0.01}", "19.995", "$.data", "19.995 is not a multiple of 0.01");
    expect_fault("{\"const\":{\"a\":[1]}}", "{\"a\":[2]}", "$.data", "value '{\"a\":[2]}' is not the constant '{\"a\":[1]}'");
    expect_fault("{\"propertyNames\":{\"maxLength\":3}}", "{\"long\":1}", "$.data",
                 "property name 'long' does not match propertyNames");
    expect_fault("{\"prefixItems\":[{\"type\":\"integer\"}],\"items\":false}", "[1,2]", "$.data",
                 "has 2 items, at most 1 allowed");
    expect_fault("{\"properties\":{\"x\":false}}", "{\"x\":0}", "$.data.x", "no value is allowed here");
}

static void test_numbers_and_equality(void **state)
{
    (void)state;
    expect_valid("{\"type\":\"integer\"}", "1.0");
    expect_valid("{\"enum\":[1,\"a\"]}", "1.0");
    expect_valid("{\"const\":{\"a\":[1.0,{\"b\":2}]}}", "{\"a\":[1,{\"b\":2.0}]}");
    expect_fault("{\"uniqueItems\":true}", "[{\"a\":1},{\"a\":1.0}]", "$.data",
                 "items [0] and [1] are equal, items must be unique");
    expect_valid("{\"uniqueItems\":true}", "[1,\"1\",true,[1],{\"a\":1}]");
    expect_valid("{\"multipleOf\":0.01}", "19.99");
    expect_valid("{\"multipleOf\":0.1}", "0.3");
    expect_valid("{\"multipleOf\":3}", "9");
    expect_fault("{\"multipleOf\":3}", "10", "$.data", "10 is not a multiple of 3");
    expect_valid("{\"exclusiveMinimum\":0}", "0.0001");
    expect_fault("{\"exclusiveMinimum\":0}", "0.0", "$.data", "0 must be greater than 0");
    /* integer against real limits compared exactly beyond 2^53 */
    expect_fault("{\"maximum\":9007199254740992}", "9007199254740993", "$.data",
                 "9007199254740993 is greater than the maximum 9007199254740992");
    /* lengths count code points: two 2-byte and one 4-byte characters */
    expect_valid("{\"maxLength\":3,\"minLength\":3}", "\"\xc3\xa9\xc3\xa9\xf0\x9f\x92\xa9\"");
}

static void test_formats(void **state)
{
    (void)state;
    const char *fm[][3] = {
        {"date", "2024-02-29", "2023-02-29"},
        {"date-time", "2024-05-01T08:30:00+02:00", "2024-05-01 08:30:00"},
        {"time", "23:59:60Z", "12:00:00"},
        {"email", "etat-civil@mairie.example.fr", "etat civil@mairie"},
        {"uuid", "0190a4c2-7b1e-7cc0-9b2a-3f1d2e4c5b6a", "0190a4c2-7b1e-7cc0-9b2a"},
        {"uri", "https://mairie.example.fr/x?y#z", "/relative/path"}};
    char schema[128];
    for (size_t i = 0; i < sizeof fm / sizeof fm[0]; i++) {
        char good[128], bad[128];
        snprintf(schema, sizeof schema, "{\"format\":\"%s\"}", fm[i][0]);
        snprintf(good, sizeof good, "\"%s\"", fm[i][1]);
        snprintf(bad, sizeof bad, "\"%s\"", fm[i][2]);
        expect_valid(schema, good);
        relais_schema_fault f[2];
        size_t n = 0;
        assert_int_equal(check(schema, bad, f, 2, &n), 0);
        assert_non_null(strstr(f[0].message, "is not a valid"));
    }
    expect_fault("{\"format\":\"email\"}", "\"x\"", "$.data", "is not a valid email address");
    expect_fault("{\"format\":\"uuid\"}", "\"x\"", "$.data", "is not a valid UUID");
    /* unknown formats are annotations */
    expect_valid("{\"format\":\"x-insee-code\"}", "\"anything\"");
    expect_valid("{\"format\":\"ipv4\"}", "\"not an address\"");
}

static void test_cross_document_ref(void **state)
{
    (void)state;
    char err[512] = "";
    relais_schema_set *set = relais_schema_set_new();
    json_t *common = js("{\"$defs\":{\"address\":{\"$anchor\":\"addr\",\"type\":\"object\",\"required\":[\"postcode\"],"
                        "\"properties\":{\"postcode\":{\"type\":\"string\",\"pattern\":\"^[0-9]{5}$\"}}}}}");
    json_t *ev = js("{\"$id\":\"https://relais.test/schemas/events/person.created.v1.json\","
                    "\"properties\":{\"home\":{\"$ref\":\"../common.json#/$defs/address\"},"
                    "\"work\":{\"$ref\":\"/schemas/common.json#addr\"}}}");
    assert_int_equal(relais_schema_set_add(set, common, "https://relais.test/schemas/common.json", "common.json",
                                           err, sizeof err), 0);
    assert_int_equal(relais_schema_set_add(set, ev, NULL, "person.json", err, sizeof err), 0);
    /* a second document with the same $id is refused at add */
    assert_int_equal(relais_schema_set_add(set, ev, NULL, "copy.json", err, sizeof err), -1);
    assert_non_null(strstr(err, "duplicate $id"));
    assert_non_null(strstr(err, "person.json"));
    assert_int_equal(relais_schema_set_compile(set, err, sizeof err), 0);
    const relais_schema *sc = relais_schema_set_get(set, "https://relais.test/schemas/events/person.created.v1.json");
    assert_non_null(sc);
    assert_non_null(relais_schema_set_get(set, "https://relais.test/schemas/common.json#addr"));
    assert_non_null(relais_schema_set_get(set, "https://relais.test/schemas/common.json#/$defs/address"));
    assert_null(relais_schema_set_get(set, "https://relais.test/schemas/common.json#nope"));
    assert_null(relais_schema_set_get(set, "https://relais.test/other.json"));
    relais_schema_fault f[4];
    size_t n = 0;
    json_t *x = js("{\"home\":{\"postcode\":\"75001\"},\"work\":{\"postcode\":\"7501\"}}");
    assert_int_equal(relais_schema_validate(sc, x, "$.data", f, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(f[0].path, "$.data.work.postcode");
    json_decref(x);
    x = js("{\"home\":{}}");
    assert_int_equal(relais_schema_validate(sc, x, "$.data", f, 4, &n), 0);
    assert_string_equal(f[0].message, "required property 'postcode' is missing");
    json_decref(x);
    json_decref(common);
    json_decref(ev);
    relais_schema_set_destroy(set);

    /* an unresolvable $ref is a compile error naming the place */
    assert_null(one("{\"properties\":{\"a\":{\"$ref\":\"other.json#/x\"}}}", err, sizeof err));
    assert_string_equal(err, "s.json: #/properties/a: cannot resolve $ref 'other.json#/x': "
                             "no schema has the URI 'https://t.test/other.json'");
}

static void test_ref_cycles(void **state)
{
    (void)state;
    char err[512] = "";
    assert_null(one("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"allOf\":[{\"$ref\":\"#/$defs/a\"}]}},"
                    "\"$ref\":\"#/$defs/a\"}", err, sizeof err));
    assert_non_null(strstr(err, "$ref cycle"));
    assert_null(one("{\"$ref\":\"#\"}", err, sizeof err));
    assert_non_null(strstr(err, "s.json: #: $ref cycle"));
    /* recursion through the instance is fine, and deep instances are bounded */
    const char *tree = "{\"type\":\"object\",\"properties\":{\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#\"}}}}";
    expect_valid(tree, "{\"kids\":[{\"kids\":[]},{\"kids\":[{}]}]}");
    expect_fault(tree, "{\"kids\":[{\"kids\":[1]}]}", "$.data.kids[0].kids[0]", "expected object, got integer");
    size_t cap = 1000 * 12 + 16, o = 0;
    char *deep = malloc(cap);
    assert_non_null(deep);
    for (int i = 0; i < 1000; i++) o += (size_t)snprintf(deep + o, cap - o, "{\"kids\":[");
    for (int i = 0; i < 1000; i++) o += (size_t)snprintf(deep + o, cap - o, "]}");
    json_error_t je;
    json_t *x = json_loads(deep, 0, &je);     /* 2000 levels: under jansson's 2048 */
    free(deep);
    assert_non_null(x);
    {
        relais_schema_set *set = one(tree, err, sizeof err);
        relais_schema_fault f[2];
        size_t n = 0;
        assert_int_equal(relais_schema_validate(relais_schema_set_get(set, "https://t.test/s.json"), x, "$", f, 2, &n), 0);
        assert_string_equal(f[0].message, "nested too deeply to be validated");
        relais_schema_set_destroy(set);
        json_decref(x);
    }
}

static void test_refused_keywords(void **state)
{
    (void)state;
    char err[512] = "";
    relais_schema_set *set = relais_schema_set_new();
    json_t *doc = js("{\"$defs\":{\"address\":{\"properties\":{\"postcode\":{\"type\":\"string\","
                     "\"unevaluatedProperties\":false}}}}}");
    assert_int_equal(relais_schema_set_add(set, doc, "file:///s/common.json", "common.json", err, sizeof err), 0);
    assert_int_equal(relais_schema_set_compile(set, err, sizeof err), -1);
    assert_string_equal(err, "common.json: #/$defs/address/properties/postcode: unsupported keyword "
                             "'unevaluatedProperties' (use additionalProperties)");
    /* nothing can be looked up in a set whose compile failed */
    assert_null(relais_schema_set_get(set, "file:///s/common.json"));
    json_decref(doc);
    relais_schema_set_destroy(set);
    const char *refused[] = {"unevaluatedItems", "$dynamicRef", "$dynamicAnchor", "$vocabulary",
                             "$recursiveRef", "definitions", "dependencies", "additionalItems", "frobnicate"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char schema[128], want[128];
        snprintf(schema, sizeof schema, "{\"items\":{\"%s\":{}}}", refused[i]);
        snprintf(want, sizeof want, "s.json: #/items: unsupported keyword '%s'", refused[i]);
        assert_null(one(schema, err, sizeof err));
        if (strncmp(err, want, strlen(want)) != 0) fail_msg("%s: got %s", refused[i], err);
    }
    assert_null(one("{\"$schema\":\"http://json-schema.org/draft-07/schema#\"}", err, sizeof err));
    assert_non_null(strstr(err, "unsupported $schema"));
    assert_null(one("{\"pattern\":\"(\"}", err, sizeof err));
    assert_non_null(strstr(err, "s.json: #: invalid regular expression '('"));
    assert_null(one("{\"minLength\":-1}", err, sizeof err));
    assert_string_equal(err, "s.json: #: 'minLength' must be a non-negative integer");
    assert_null(one("{\"items\":[{}]}", err, sizeof err));
    assert_null(one("{\"type\":\"text\"}", err, sizeof err));
    assert_null(one("{\"required\":\"a\"}", err, sizeof err));
    assert_null(one("{\"multipleOf\":0}", err, sizeof err));
    assert_null(one("[]", err, sizeof err));
    /* annotations, x- keys and the 2020-12 $schema are accepted */
    set = one("{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"title\":\"t\",\"description\":\"d\","
              "\"$comment\":\"c\",\"examples\":[1],\"default\":{\"unevaluatedItems\":1},\"deprecated\":false,"
              "\"readOnly\":true,\"writeOnly\":false,\"contentMediaType\":\"text/plain\","
              "\"contentEncoding\":\"base64\",\"contentSchema\":{},\"x-relais-owner\":\"etat-civil\"}",
              err, sizeof err);
    if (!set) fail_msg("%s", err);
    relais_schema_set_destroy(set);
}

static void write_file(const char *dir, const char *rel, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_load_dir(void **state)
{
    (void)state;
    char dir[] = "/tmp/relais-schemas-XXXXXX", sub[1100], err[512] = "";
    assert_non_null(mkdtemp(dir));
    snprintf(sub, sizeof sub, "%s/events", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(sub, sizeof sub, "%s/examples", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    write_file(dir, "common.json", "{\"$defs\":{\"code\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{3}-[0-9]{2}$\"}}}");
    write_file(dir, "events/fr.relais.grc.request.created.v1.json",
               "{\"type\":\"object\",\"required\":[\"category\"],"
               "\"properties\":{\"category\":{\"$ref\":\"../common.json#/$defs/code\"}}}");
    write_file(dir, "events/fr.relais.civil.birth.registered.v1.json", "{\"type\":\"object\"}");
    write_file(dir, "examples/fr.relais.grc.request.created.v1.json", "{not json, and not a schema");
    write_file(dir, "README.md", "not json");

    relais_schema_set *set = relais_schema_set_new();
    if (relais_schema_set_load_dir(set, dir, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(relais_schema_set_compile(set, err, sizeof err), 0);
    const char *const *types = relais_schema_set_types(set);
    assert_string_equal(types[0], "fr.relais.civil.birth.registered.v1");
    assert_string_equal(types[1], "fr.relais.grc.request.created.v1");
    assert_null(types[2]);
    const relais_schema *sc = relais_schema_set_for_type(set, "fr.relais.grc.request.created.v1");
    assert_non_null(sc);
    assert_null(relais_schema_set_for_type(set, "fr.relais.grc.request.created.v2"));
    assert_null(relais_schema_set_for_type(set, "common"));
    char uri[1200];
    char *real = realpath(dir, NULL);
    snprintf(uri, sizeof uri, "file://%s/common.json#/$defs/code", real);
    free(real);
    assert_non_null(relais_schema_set_get(set, uri));
    relais_schema_fault f[2];
    size_t n = 0;
    json_t *x = js("{\"category\":\"VOI-3\"}");
    assert_int_equal(relais_schema_validate(sc, x, "$.data", f, 2, &n), 0);
    assert_string_equal(f[0].path, "$.data.category");
    assert_string_equal(f[0].message, "does not match pattern '^[A-Z]{3}-[0-9]{2}$'");
    json_decref(x);
    x = js("{\"category\":\"VOI-03\"}");
    assert_int_equal(relais_schema_validate(sc, x, "$.data", f, 2, &n), 1);
    json_decref(x);
    relais_schema_set_destroy(set);

    /* a file that is not JSON: named, with its line */
    write_file(dir, "events/fr.relais.voter.removed.v1.json", "{\n  \"type\": \"object\",\n  \"required\": [\"a\",]\n}");
    set = relais_schema_set_new();
    assert_int_equal(relais_schema_set_load_dir(set, dir, err, sizeof err), -1);
    assert_non_null(strstr(err, "events/fr.relais.voter.removed.v1.json:3: "));
    relais_schema_set_destroy(set);
    /* a bad schema: named with the location */
    write_file(dir, "events/fr.relais.voter.removed.v1.json", "{\"properties\":{\"reason\":{\"enum\":\"a\"}}}");
    set = relais_schema_set_new();
    assert_int_equal(relais_schema_set_load_dir(set, dir, err, sizeof err), 0);
    assert_int_equal(relais_schema_set_compile(set, err, sizeof err), -1);
    assert_string_equal(err, "events/fr.relais.voter.removed.v1.json: #/properties/reason: 'enum' must be an array");
    relais_schema_set_destroy(set);
    set = relais_schema_set_new();
    assert_int_equal(relais_schema_set_load_dir(set, "/nonexistent/relais-schemas", err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/relais-schemas"));
    relais_schema_set_destroy(set);

    const char *files[] = {"common.json", "events/fr.relais.grc.request.created.v1.json",
                           "events/fr.relais.civil.birth.registered.v1.json", "events/fr.relais.voter.removed.v1.json",
                           "examples/fr.relais.grc.request.created.v1.json", "README.md", "events", "examples", ""};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        assert_int_equal(remove(p), 0);
    }
}

typedef struct worker {
    const relais_schema *sc;
    int good, bad;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    json_t *ok = js("{\"category\":\"a\",\"postcode\":\"75001\",\"members\":[{\"birth_date\":\"2001-01-01\"}]}");
    json_t *ko = js("{\"category\":\"a\",\"postcode\":\"7500X\",\"members\":[]}");
    for (int i = 0; i < 3000; i++) {
        relais_schema_fault f[2];
        size_t n = 0;
        if (relais_schema_validate(w->sc, ok, "$", f, 2, &n) == 1 && n == 0) w->good++;
        if (relais_schema_validate(w->sc, ko, "$", f, 2, &n) == 0 && n == 1 &&
            strcmp(f[0].path, "$.postcode") == 0)
            w->bad++;
    }
    json_decref(ok);
    json_decref(ko);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    char err[256];
    relais_schema_set *set = one(family, err, sizeof err);
    assert_non_null(set);
    worker w[2] = {{relais_schema_set_get(set, "https://t.test/s.json"), 0, 0},
                   {relais_schema_set_get(set, "https://t.test/s.json"), 0, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(w[i].good, 3000);
        assert_int_equal(w[i].bad, 3000);
    }
    relais_schema_set_destroy(set);
}

static void test_null_safety(void **state)
{
    (void)state;
    char err[256] = "";
    relais_schema_set_destroy(NULL);
    assert_null(relais_schema_set_get(NULL, "x"));
    assert_null(relais_schema_set_for_type(NULL, "x"));
    assert_null(relais_schema_set_types(NULL)[0]);
    size_t n = 7;
    assert_int_equal(relais_schema_validate(NULL, NULL, NULL, NULL, 0, &n), 0);
    assert_int_equal(n, 0);
    relais_schema_set *set = relais_schema_set_new();
    json_t *doc = js("{}");
    assert_int_equal(relais_schema_set_add(set, doc, NULL, "anon.json", err, sizeof err), -1);
    assert_string_equal(err, "anon.json: the schema has no $id and no URI was given");
    /* lookups before compile find nothing; compile twice is refused */
    assert_int_equal(relais_schema_set_add(set, doc, "urn:relais:test", "t.json", err, sizeof err), 0);
    assert_null(relais_schema_set_get(set, "urn:relais:test"));
    assert_int_equal(relais_schema_set_compile(set, err, sizeof err), 0);
    assert_non_null(relais_schema_set_get(set, "urn:relais:test"));
    assert_null(relais_schema_set_types(set)[0]);
    assert_int_equal(relais_schema_set_compile(set, err, sizeof err), -1);
    assert_int_equal(relais_schema_set_add(set, doc, "urn:relais:other", "o.json", err, sizeof err), -1);
    json_decref(doc);
    relais_schema_set_destroy(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_paths_and_messages),
        cmocka_unit_test(test_combinator_messages),
        cmocka_unit_test(test_numbers_and_equality),
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_cross_document_ref),
        cmocka_unit_test(test_ref_cycles),
        cmocka_unit_test(test_refused_keywords),
        cmocka_unit_test(test_load_dir),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_null_safety),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
