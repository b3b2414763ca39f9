/* Unit test: the official JSON-Schema-Test-Suite against hub/jsonschema.c.
 *
 * (a) draft7 files of the Debian package json-schema-test-suite
 *     (/usr/share/json-schema-test-suite/tests/draft7/), for the keywords whose
 *     meaning did not change in 2020-12. The test fails if the package is
 *     missing.
 * (b) the draft2020-12 files vendored under
 *     tests/data/json-schema-test-suite/ (see its README.md), every file of
 *     the folder and the optional/format files of the formats Relais asserts;
 *     remote references (http://localhost:1234/...) are served from the
 *     vendored remotes/ folder: every remote is added to each group's set.
 *
 * Every case outside the skip tables below must pass, and every entry of the
 * skip tables must match a group (so the tables cannot go stale). Each case
 * is also validated with fault collection on and off: both must agree, an
 * invalid instance must yield at least one fault and a valid one none.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testsupport.h"
#include "jsonschema.h"

#define DRAFT7_DIR "/usr/share/json-schema-test-suite/tests/draft7"
#define FORMAT_ASSERTED "Relais asserts this format (the group checks that format is only an " \
                        "annotation); optional/format/<format>.json is run instead"
#define NEEDS_META "refs the 2020-12 meta-schema, which is written with $dynamicRef, " \
                   "$dynamicAnchor and $vocabulary (refused keywords)"

typedef struct skip {
    const char *file;
    const char *group;
    const char *reason;
} skip;

/* Skipped draft2020-12 groups (file, group description, reason). */
static const skip skips_2020[] = {
    {"defs.json", "validate definition against metaschema", NEEDS_META},
    {"ref.json", "remote ref, containing refs itself", NEEDS_META},
    {"ref.json", "ref creates new scope when adjacent to keywords", "uses unevaluatedProperties (refused)"},
    {"not.json", "collect annotations inside a 'not', even if collection is disabled",
     "uses unevaluatedProperties (refused)"},
    {"format.json", "email format", FORMAT_ASSERTED},
    {"format.json", "date format", FORMAT_ASSERTED},
    {"format.json", "date-time format", FORMAT_ASSERTED},
    {"format.json", "time format", FORMAT_ASSERTED},
    {"format.json", "uri format", FORMAT_ASSERTED},
    {"format.json", "uuid format", FORMAT_ASSERTED},
};

/* Draft7 files run: keywords whose semantics are unchanged in 2020-12. No
 * group of these files uses a draft-7-only construct (definitions,
 * dependencies, array-form items, additionalItems, $schema), so nothing is
 * rewritten and no group is skipped. */
static const char *const draft7_files[] = {
    "type", "enum", "const", "properties", "required", "additionalProperties",
    "patternProperties", "propertyNames", "minProperties", "maxProperties", "contains",
    "minItems", "maxItems", "uniqueItems", "minLength", "maxLength", "pattern", "minimum",
    "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "allOf", "anyOf", "oneOf",
    "not", "if-then-else", "boolean_schema"};

typedef struct remote {
    char uri[512];
    json_t *doc;
} remote;

typedef struct tally {
    int groups, cases, skipped, failures;
    int used[sizeof skips_2020 / sizeof skips_2020[0]];
} tally;

static const char *srcdir(void)
{
    const char *s = getenv("RELAIS_SOURCE_DIR");
    assert_non_null(s);
    return s;
}

static int skipped(tally *t, const skip *skips, size_t nskips, const char *file, const char *group)
{
    for (size_t i = 0; i < nskips; i++) {
        if (strcmp(skips[i].file, file) == 0 && strcmp(skips[i].group, group) == 0) {
            t->used[i]++;
            return 1;
        }
    }
    return 0;
}

static void run_group(tally *t, const char *file, json_t *g, const remote *remotes, size_t nremotes)
{
    const char *desc = json_string_value(json_object_get(g, "description"));
    char err[512] = "";
    relais_schema_set *set = relais_schema_set_new();
    assert_non_null(set);
    int rc = relais_schema_set_add(set, json_object_get(g, "schema"), "https://suite.relais.test/schema.json",
                                   file, err, sizeof err);
    for (size_t i = 0; rc == 0 && i < nremotes; i++)
        rc = relais_schema_set_add(set, remotes[i].doc, remotes[i].uri, remotes[i].uri, err, sizeof err);
    if (rc == 0) rc = relais_schema_set_compile(set, err, sizeof err);
    json_t *tests = json_object_get(g, "tests");
    t->groups++;
    if (rc != 0) {
        printf("FAIL %s: %s: compile: %s\n", file, desc, err);
        t->failures += (int)json_array_size(tests);
        relais_schema_set_destroy(set);
        return;
    }
    const relais_schema *sc = relais_schema_set_get(set, "https://suite.relais.test/schema.json");
    assert_non_null(sc);
    size_t i;
    json_t *tc;
    json_array_foreach(tests, i, tc) {
        int want = json_is_true(json_object_get(tc, "valid"));
        json_t *data = json_object_get(tc, "data");
        relais_schema_fault faults[8];
        size_t nf = 99;
        int got = relais_schema_validate(sc, data, "$", faults, 8, &nf);
        int quick = relais_schema_validate(sc, data, NULL, NULL, 0, NULL);
        if (got != want || quick != got || (got ? nf != 0 : nf == 0)) {
            printf("FAIL %s: %s: %s: expected %s, got %s (quiet %s, %zu faults%s%s%s)\n", file, desc,
                   json_string_value(json_object_get(tc, "description")), want ? "valid" : "invalid",
                   got ? "valid" : "invalid", quick ? "valid" : "invalid", nf, nf ? ": " : "",
                   nf ? faults[0].path : "", nf ? faults[0].message : "");
            t->failures++;
        } else {
            t->cases++;
        }
    }
    relais_schema_set_destroy(set);
}

static void run_file(tally *t, const char *path, const char *label, const skip *skips, size_t nskips,
                     const remote *remotes, size_t nremotes)
{
    json_error_t je;
    json_t *doc = json_load_file(path, JSON_ALLOW_NUL, &je);
    if (!doc) fail_msg("%s:%d: %s", path, je.line, je.text);
    assert_true(json_is_array(doc));
    size_t i;
    json_t *g;
    json_array_foreach(doc, i, g) {
        const char *desc = json_string_value(json_object_get(g, "description"));
        assert_non_null(desc);
        if (skipped(t, skips, nskips, label, desc)) {
            t->skipped++;
            continue;
        }
        run_group(t, label, g, remotes, nremotes);
    }
    json_decref(doc);
}

static int is_json(const struct dirent *e)
{
    size_t l = strlen(e->d_name);
    return l > 5 && strcmp(e->d_name + l - 5, ".json") == 0;
}

static void test_draft7(void **state)
{
    (void)state;
    tally t = {0};
    char path[1024];
    DIR *d = opendir(DRAFT7_DIR);
    if (!d) fail_msg("%s is missing: install the Debian package json-schema-test-suite", DRAFT7_DIR);
    closedir(d);
    for (size_t i = 0; i < sizeof draft7_files / sizeof draft7_files[0]; i++) {
        char label[128];
        snprintf(path, sizeof path, "%s/%s.json", DRAFT7_DIR, draft7_files[i]);
        snprintf(label, sizeof label, "draft7/%s.json", draft7_files[i]);
        run_file(&t, path, label, NULL, 0, NULL, 0);
    }
    printf("draft7 (Debian json-schema-test-suite): %d groups, %d cases passed, %d groups skipped (listed)\n",
           t.groups, t.cases, t.skipped);
    assert_int_equal(t.failures, 0);
    assert_true(t.groups >= 80);
}

static const char *const remote_files[] = {
    "draft2020-12/baseUriChange/folderInteger.json",
    "draft2020-12/baseUriChangeFolder/folderInteger.json",
    "draft2020-12/baseUriChangeFolderInSubschema/folderInteger.json",
    "draft2020-12/detached-ref.json",
    "draft2020-12/different-id-ref-string.json",
    "draft2020-12/integer.json",
    "draft2020-12/locationIndependentIdentifier.json",
    "draft2020-12/name-defs.json",
    "draft2020-12/nested-absolute-ref-to-string.json",
    "draft2020-12/nested/foo-ref-string.json",
    "draft2020-12/nested/string.json",
    "draft2020-12/ref-and-defs.json",
    "draft2020-12/subSchemas.json",
    "draft2020-12/urn-ref-string.json"};
#define NREMOTES (sizeof remote_files / sizeof remote_files[0])

static void test_draft2020_12(void **state)
{
    (void)state;
    tally t = {0};
    char path[2048], dir[1024];
    remote remotes[NREMOTES];
    for (size_t i = 0; i < NREMOTES; i++) {
        json_error_t je;
        snprintf(path, sizeof path, "%s/tests/data/json-schema-test-suite/remotes/%s", srcdir(), remote_files[i]);
        remotes[i].doc = json_load_file(path, 0, &je);
        if (!remotes[i].doc) fail_msg("%s:%d: %s", path, je.line, je.text);
        snprintf(remotes[i].uri, sizeof remotes[i].uri, "http://localhost:1234/%s", remote_files[i]);
    }
    const char *sub[] = {"", "optional/format/"};
    size_t nfiles = 0;
    for (size_t s = 0; s < 2; s++) {
        struct dirent **names = NULL;
        snprintf(dir, sizeof dir, "%s/tests/data/json-schema-test-suite/draft2020-12/%s", srcdir(), sub[s]);
        int n = scandir(dir, &names, is_json, alphasort);
        if (n < 0) fail_msg("cannot read %s", dir);
        nfiles += (size_t)n;
        for (int i = 0; i < n; i++) {
            char label[512];
            snprintf(path, sizeof path, "%s%s", dir, names[i]->d_name);
            snprintf(label, sizeof label, "%s%s", sub[s], names[i]->d_name);
            run_file(&t, path, label, skips_2020, sizeof skips_2020 / sizeof skips_2020[0], remotes, NREMOTES);
            free(names[i]);
        }
        free(names);
    }
    for (size_t i = 0; i < NREMOTES; i++) json_decref(remotes[i].doc);
    printf("draft2020-12 (vendored, %zu files): %d groups, %d cases passed, %d groups skipped (listed)\n",
           nfiles, t.groups, t.cases, t.skipped);
    for (size_t i = 0; i < sizeof skips_2020 / sizeof skips_2020[0]; i++) {
        if (t.used[i] != 1) printf("skip entry not matched exactly once: %s: %s\n", skips_2020[i].file,
                                   skips_2020[i].group);
        assert_int_equal(t.used[i], 1);
    }
    assert_int_equal(t.failures, 0);
    assert_int_equal(nfiles, 48);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_draft7),
        cmocka_unit_test(test_draft2020_12),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
