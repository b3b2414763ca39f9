/*
 * test_personal.c - masking personal data in traces (hub/personal.h): the
 * canonical schemas' "x-personal" marks, followed through $ref (relative,
 * local $defs), combinators, properties and items; what the schemas do not
 * describe is masked (fail closed); every example of schemas/examples/
 * keeps none of its names, e-mail addresses, phone numbers or street once
 * masked.
 * The source tree is found through RELAIS_SOURCE_DIR (set by ctest).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>
#include <jansson.h>
#include "personal.h"

static char g_schemas[1024];

static relais_personal *load_tree(void)
{
    const char *src = getenv("RELAIS_SOURCE_DIR");
    if (!src) fail_msg("RELAIS_SOURCE_DIR is not set (run through ctest)");
    snprintf(g_schemas, sizeof g_schemas, "%s/schemas", src);
    char err[512] = "";
    relais_personal *p = relais_personal_load(g_schemas, err, sizeof err);
    if (!p) fail_msg("load %s: %s", g_schemas, err);
    return p;
}

static json_t *example_data(const char *type)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/examples/%s.json", g_schemas, type);
    json_error_t je;
    json_t *ev = json_load_file(path, 0, &je);
    if (!ev) fail_msg("%s: %s", path, je.text);
    json_t *d = json_incref(json_object_get(ev, "data"));
    json_decref(ev);
    return d;
}

static const char *sget(const json_t *root, const char *ptr)
{
    /* a tiny path walker for the assertions: "a/b/0/c" */
    const json_t *v = root;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", ptr);
    for (char *save = NULL, *t = strtok_r(buf, "/", &save); t && v; t = strtok_r(NULL, "/", &save))
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(t)) : json_object_get(v, t);
    return json_string_value(v);
}

static void test_person_created(void **state)
{
    (void)state;
    relais_personal *p = load_tree();
    json_t *d = example_data("fr.relais.person.person.created.v1");
    size_t n = 0;
    json_t *r = relais_personal_redact(p, "fr.relais.person.person.created.v1", d, &n);
    assert_non_null(r);
    assert_string_equal(sget(r, "identity"), RELAIS_PERSONAL_MASK);     /* common.json civil_identity */
    assert_string_equal(sget(r, "contact"), RELAIS_PERSONAL_MASK);      /* contact */
    assert_string_equal(sget(r, "address"), RELAIS_PERSONAL_MASK);      /* address */
    assert_string_equal(sget(r, "address_since"), "2023-07-01");        /* not personal on its own */
    assert_true(json_is_true(json_object_get(json_object_get(r, "sharing_consent"), "granted")));
    assert_string_equal(sget(r, "sharing_consent/domains/0"), "family");
    assert_int_equal(n, 3);
    /* the input is left as it was */
    assert_string_equal(sget(d, "contact/email"), "camille.kermarrec@example.org");
    json_decref(r);
    json_decref(d);
    relais_personal_destroy(p);
}

static void test_request_created(void **state)
{
    (void)state;
    relais_personal *p = load_tree();
    json_t *d = example_data("fr.relais.grc.request.created.v1");
    json_t *r = relais_personal_redact(p, "fr.relais.grc.request.created.v1", d, NULL);
    assert_string_equal(sget(r, "description"), RELAIS_PERSONAL_MASK); /* free text, marked in the event schema */
    assert_string_equal(sget(r, "category"), "Nids de poule");
    assert_string_equal(sget(r, "requester/person/subject"), "person/P-2026-004211");  /* pseudonymous id kept */
    assert_string_equal(sget(r, "requester/identity"), RELAIS_PERSONAL_MASK);
    assert_string_equal(sget(r, "requester/contact"), RELAIS_PERSONAL_MASK);
    assert_string_equal(sget(r, "location/address"), RELAIS_PERSONAL_MASK);
    assert_string_equal(sget(r, "attachments/0"), RELAIS_PERSONAL_MASK); /* array items: attachment */
    json_decref(r);
    json_decref(d);
    /* a local $defs of the event schema (#/$defs/payer) */
    d = example_data("fr.relais.billing.invoice.issued.v1");
    r = relais_personal_redact(p, "fr.relais.billing.invoice.issued.v1", d, NULL);
    assert_string_equal(sget(r, "payer/account_number"), RELAIS_PERSONAL_MASK);
    assert_string_equal(sget(r, "payer/family/subject"), "family/FAM-000842");
    json_decref(r);
    json_decref(d);
    relais_personal_destroy(p);
}

static void test_fail_closed(void **state)
{
    (void)state;
    relais_personal *p = load_tree();
    json_t *d = json_pack("{s:s, s:s, s:{s:{s:f, s:f}}}", "category", "voirie", "nickname", "Cam",
                          "location", "point", "lat", 48.1, "lon", -1.6);
    json_t *r = relais_personal_redact(p, "fr.relais.grc.request.created.v1", d, NULL);
    assert_string_equal(sget(r, "category"), "voirie");
    assert_string_equal(sget(r, "nickname"), RELAIS_PERSONAL_MASK);     /* not in the schema */
    assert_true(json_real_value(json_object_get(json_object_get(json_object_get(r, "location"), "point"), "lat")) == 48.1);
    json_decref(r);
    /* a type without a schema: the whole data */
    size_t n = 0;
    r = relais_personal_redact(p, "test.relais.grc.request.created", d, &n);
    assert_true(json_is_string(r));
    assert_string_equal(json_string_value(r), RELAIS_PERSONAL_MASK);
    assert_int_equal(n, 1);
    json_decref(r);
    r = relais_personal_redact(p, NULL, d, NULL);
    assert_string_equal(json_string_value(r), RELAIS_PERSONAL_MASK);
    json_decref(r);
    json_decref(d);
    relais_personal_destroy(p);
}

/* Every string of `v` found under a key in `keys`, into `out`. */
static void collect(const json_t *v, const char *const *keys, json_t *out)
{
    size_t i;
    const char *k;
    json_t *m;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, m) {
            int hit = 0;
            for (size_t j = 0; keys[j]; j++) hit |= strcmp(k, keys[j]) == 0;
            if (hit && json_is_string(m)) json_array_append_new(out, json_string(json_string_value(m)));
            if (hit && json_is_array(m)) {
                json_t *x;
                json_array_foreach(m, i, x) if (json_is_string(x)) json_array_append(out, x);
            }
            collect(m, keys, out);
        }
    } else if (json_is_array(v)) {
        json_array_foreach((json_t *)v, i, m) collect(m, keys, out);
    }
}

static void test_every_example(void **state)
{
    (void)state;
    relais_personal *p = load_tree();
    static const char *const keys[] = { "family_name", "usage_name", "given_names", "email", "phone", "mobile",
                                        "payer_email", "street", "birth_date", "national_voter_id",
                                        "benefit_number", "delivery_point", NULL };
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/examples", g_schemas);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    int files = 0, checked = 0;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0) continue;
        char type[256];
        snprintf(type, sizeof type, "%.*s", (int)(len - 5), de->d_name);
        json_t *data = example_data(type);
        json_t *secrets = json_array();
        collect(data, keys, secrets);
        json_t *r = relais_personal_redact(p, type, data, NULL);
        assert_non_null(r);
        char *text = json_dumps(r, JSON_COMPACT | JSON_ENCODE_ANY);
        size_t i;
        json_t *s;
        json_array_foreach(secrets, i, s) {
            if (strlen(json_string_value(s)) < 4) continue;      /* "M", "FR": not telling */
            if (strstr(text, json_string_value(s)))
                fail_msg("%s: '%s' is still there once masked: %s", type, json_string_value(s), text);
            checked++;
        }
        free(text);
        json_decref(r);
        json_decref(secrets);
        json_decref(data);
        files++;
    }
    closedir(d);
    assert_true(files >= 25);
    assert_true(checked >= 40);
    relais_personal_destroy(p);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* $ref chains, relative paths, allOf/oneOf, additionalProperties, arrays without items */
static void test_keyword_through_refs(void **state)
{
    (void)state;
    char dir[] = "/tmp/relais-personal-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/events", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/examples", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/common.json", dir);
    write_file(path, "{\"$id\": \"https://x.example/s/common.json\", \"$defs\": {"
                     " \"secret\": {\"type\": \"string\", \"x-personal\": true},"
                     " \"alias\": {\"$ref\": \"#/$defs/secret\"},"
                     " \"box\": {\"type\": \"object\", \"properties\": {\"k\": {\"$ref\": \"#/$defs/alias\"},"
                     "                                                \"open\": {\"type\": \"string\"}}}}}");
    snprintf(path, sizeof path, "%s/events/t.v1.json", dir);
    write_file(path, "{\"$id\": \"https://x.example/s/events/t.v1.json\", \"type\": \"object\","
                     " \"properties\": {"
                     "  \"a\": {\"$ref\": \"../common.json#/$defs/alias\"},"
                     "  \"b\": {\"allOf\": [{\"$ref\": \"../common.json#/$defs/box\"}]},"
                     "  \"c\": {\"oneOf\": [{\"type\": \"string\"}, {\"$ref\": \"../common.json#/$defs/secret\"}]},"
                     "  \"d\": {\"type\": \"object\", \"additionalProperties\": {\"$ref\": \"../common.json#/$defs/box\"}},"
                     "  \"e\": {\"type\": \"array\"},"
                     "  \"f\": {\"type\": \"array\", \"items\": {\"type\": \"integer\"}}}}");
    snprintf(path, sizeof path, "%s/examples/t.v1.json", dir);
    write_file(path, "{not json: examples are skipped");
    char err[512] = "";
    relais_personal *p = relais_personal_load(dir, err, sizeof err);
    if (!p) fail_msg("load: %s", err);
    json_t *d = json_loads("{\"a\": \"x1\", \"b\": {\"k\": \"x2\", \"open\": \"ok\"}, \"c\": \"x3\","
                           " \"d\": {\"any\": {\"k\": \"x4\", \"open\": \"ok\"}}, \"e\": [\"x5\"], \"f\": [1, 2]}", 0, NULL);
    size_t n = 0;
    json_t *r = relais_personal_redact(p, "t.v1", d, &n);
    char *text = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"a\":\"***\",\"b\":{\"k\":\"***\",\"open\":\"ok\"},\"c\":\"***\","
                              "\"d\":{\"any\":{\"k\":\"***\",\"open\":\"ok\"}},\"e\":[\"***\"],\"f\":[1,2]}");
    assert_int_equal(n, 5);
    free(text);
    json_decref(r);
    json_decref(d);
    relais_personal_destroy(p);
    /* a broken schema file is named */
    snprintf(path, sizeof path, "%s/events/t.v1.json", dir);
    write_file(path, "{\"a\": 1,");
    p = relais_personal_load(dir, err, sizeof err);
    assert_null(p);
    assert_non_null(strstr(err, "events/t.v1.json:1:"));
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_person_created),
        cmocka_unit_test(test_request_created),
        cmocka_unit_test(test_fail_closed),
        cmocka_unit_test(test_every_example),
        cmocka_unit_test(test_keyword_through_refs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
