/*
 * test_worksite_api.c - the worksite connector's pure parts and its
 * interface description:
 *   - api/worksite.schema.json is exactly the OpenAPI file's
 *     components/schemas (references rewritten), and compiles with the hub's
 *     validator; documented examples pass, broken ones do not;
 *   - the life cycle (allowed transitions, next steps), RFC 3339 times,
 *     intervention ids;
 *   - the parsers of the tool's answers: error text, an intervention's id, a
 *     page of the list, a history (sorted, bad entries left out and counted).
 * No server, no database.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "testsupport.h"
#include "test_worksite_openapi.h"
#include "../../connectors/worksite/worksite_int.h"

/* ---- The interface description ------------------------------------------------ */

/* components/schemas with "#/components/schemas/X" rewritten "#/$defs/X". */
static json_t *rewrite_refs(json_t *v)
{
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_t *out = json_object();
        json_object_foreach(v, k, x) {
            if (!strcmp(k, "$ref") && json_is_string(x)
                && !strncmp(json_string_value(x), "#/components/schemas/", 21)) {
                char buf[256];
                snprintf(buf, sizeof buf, "#/$defs/%s", json_string_value(x) + 21);
                json_object_set_new(out, k, json_string(buf));
            } else {
                json_object_set_new(out, k, rewrite_refs(x));
            }
        }
        return out;
    }
    if (json_is_array(v)) {
        json_t *out = json_array();
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) json_array_append_new(out, rewrite_refs(x));
        return out;
    }
    return json_incref(v);
}

static void test_schema_file_is_the_openapi_components(void **state)
{
    json_t *api = wo_openapi();
    assert_string_equal(json_string_value(json_object_get(api, "openapi")), "3.1.0");
    json_t *comps = json_object_get(json_object_get(api, "components"), "schemas");
    assert_true(json_object_size(comps) >= 15);
    json_t *want = rewrite_refs(comps);
    json_error_t je;
    json_t *file = json_load_file(ts_source_path("connectors/worksite/api/worksite.schema.json"), 0, &je);
    assert_non_null(file);
    json_t *got = json_object_get(file, "$defs");
    if (!json_equal(want, got)) {
        const char *k;
        json_t *x;
        json_object_foreach(want, k, x) {
            if (!json_equal(x, json_object_get(got, k)))
                fail_msg("api/worksite.schema.json $defs/%s differs from the OpenAPI's components/schemas/%s: "
                         "regenerate it (see connectors/worksite/README.md)", k, k);
        }
        fail_msg("api/worksite.schema.json has $defs the OpenAPI file does not have");
    }
    assert_string_equal(json_string_value(json_object_get(file, "$id")), WO_SCHEMA_ID);
    json_decref(want);
    json_decref(file);
    json_decref(api);
}

/* Every $ref of the OpenAPI file points at something that exists, and every
 * operation documents a JSON schema for each response. */
static void check_refs(json_t *api, json_t *v, int *n)
{
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) {
            if (!strcmp(k, "$ref")) {
                wo_deref(api, v);
                (*n)++;
            } else {
                check_refs(api, x, n);
            }
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) check_refs(api, x, n);
    }
}

static void test_openapi_refs_resolve(void **state)
{
    json_t *api = wo_openapi();
    int n = 0;
    check_refs(api, api, &n);
    assert_true(n > 30);
    const char *path;
    json_t *item;
    int ops = 0;
    json_object_foreach(json_object_get(api, "paths"), path, item) {
        const char *method;
        json_t *op;
        json_object_foreach(item, method, op) {
            if (!strcmp(method, "parameters")) continue;
            const char *code;
            json_t *resp;
            json_object_foreach(json_object_get(op, "responses"), code, resp) {
                json_t *r = wo_deref(api, resp);
                json_t *sc = json_object_get(json_object_get(json_object_get(r, "content"), "application/json"), "schema");
                if (!json_object_get(sc, "$ref")) fail_msg("%s %s %s: no JSON schema", method, path, code);
            }
            ops++;
        }
    }
    assert_int_equal(ops, 6);
    json_decref(api);
}

static json_t *jload(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j) fail_msg("bad test JSON: %s: %s", je.text, text);
    return j;
}

static void expect_valid(const relais_schema_set *set, const char *name, const char *text, int valid,
                         const char *fault)
{
    json_t *j = jload(text);
    char why[600] = "";
    int ok = wo_valid(set, name, j, why, sizeof why);
    if (ok != valid) fail_msg("%s %s: expected %s (%s)", name, text, valid ? "valid" : "invalid", why);
    if (fault && !strstr(why, fault)) fail_msg("%s: fault '%s' does not say '%s'", name, why, fault);
    json_decref(j);
}

static void test_schemas_accept_and_refuse(void **state)
{
    relais_schema_set *set = wo_schemas();
    /* the mapping test's record of an intervention is a documented one */
    json_error_t je;
    json_t *rec = json_load_file(ts_source_path("connectors/worksite/mappings/records/intervention.json"), 0, &je);
    assert_non_null(rec);
    char why[600];
    if (!wo_valid(set, "Intervention", rec, why, sizeof why)) fail_msg("records/intervention.json: %s", why);
    json_decref(rec);

    expect_valid(set, "InterventionCreate",
                 "{\"type_code\":\"VOI-03\",\"description\":\"Trou\",\"location\":{\"lat\":48.1,\"lon\":-1.6}}", 1, NULL);
    expect_valid(set, "InterventionCreate",
                 "{\"type_code\":\"VOI-03\",\"description\":\"Trou\",\"location\":{\"address\":\"1 rue X\",\"city\":\"Rennes\"},"
                 "\"photos\":[{\"url\":\"https://x.example/1.jpg\"}],\"external_ref\":\"request/A-1\"}", 1, NULL);
    /* a place is an address with its city, or a point */
    expect_valid(set, "InterventionCreate",
                 "{\"type_code\":\"VOI-03\",\"description\":\"Trou\",\"location\":{\"address\":\"1 rue X\"}}", 0,
                 "$.location");
    expect_valid(set, "InterventionCreate", "{\"type_code\":\"VOI-03\",\"location\":{\"lat\":1,\"lon\":2}}", 0,
                 "description");
    expect_valid(set, "InterventionCreate",
                 "{\"type_code\":\"voi 3\",\"description\":\"d\",\"location\":{\"lat\":1,\"lon\":2}}", 0, "$.type_code");
    expect_valid(set, "InterventionCreate",
                 "{\"type_code\":\"VOI-03\",\"description\":\"d\",\"location\":{\"lat\":1,\"lon\":2},\"colour\":1}", 0, NULL);
    expect_valid(set, "InterventionCreate",
                 "{\"type_code\":\"VOI-03\",\"description\":\"d\",\"location\":{\"lat\":1,\"lon\":2},"
                 "\"photos\":[{\"url\":\"not a uri\"}]}", 0, "$.photos[0].url");
    /* planned needs its date; a reason only with refused */
    expect_valid(set, "StatusChange", "{\"status\":\"accepted\",\"comment\":\"ok\"}", 1, NULL);
    expect_valid(set, "StatusChange", "{\"status\":\"planned\"}", 0, "planned_start");
    expect_valid(set, "StatusChange", "{\"status\":\"planned\",\"planned_start\":\"2026-03-09T07:30:00Z\"}", 1, NULL);
    expect_valid(set, "StatusChange", "{\"status\":\"refused\",\"reason\":\"doublon\"}", 1, NULL);
    expect_valid(set, "StatusChange", "{\"status\":\"done\",\"reason\":\"doublon\"}", 0, NULL);
    expect_valid(set, "StatusChange", "{\"status\":\"received\"}", 0, "$.status");
    expect_valid(set, "HistoryEntry", "{\"id\":1,\"status\":\"received\",\"previous_status\":null,"
                 "\"at\":\"2026-03-05T09:15:00.123456Z\",\"author\":\"relais\"}", 1, NULL);
    expect_valid(set, "HistoryEntry", "{\"id\":0,\"status\":\"received\",\"at\":\"2026-03-05T09:15:00Z\",\"author\":\"a\"}",
                 0, "$.id");
    expect_valid(set, "HistoryEntry", "{\"id\":2,\"status\":\"done\",\"at\":\"yesterday\",\"author\":\"a\"}", 0, "$.at");
    expect_valid(set, "InterventionList", "{\"items\":[],\"per_page\":50,\"next_cursor\":null}", 1, NULL);
    expect_valid(set, "InterventionList", "{\"items\":[],\"per_page\":50}", 0, "next_cursor");
    expect_valid(set, "Error", "{\"error\":{\"code\":\"unknown_type\",\"message\":\"m\",\"field\":\"$.type_code\"}}", 1, NULL);
    expect_valid(set, "Error", "{\"error\":{\"code\":\"oops\",\"message\":\"m\"}}", 0, "$.error.code");
    relais_schema_set_destroy(set);
}

/* ---- Life cycle, times, ids ----------------------------------------------------- */

static void test_life_cycle(void **state)
{
    /* the allowed moves, all others refused */
    const char *allowed[] = { "received>accepted", "accepted>planned", "planned>in_progress",
                              "in_progress>done", "received>refused", "accepted>refused", NULL };
    int count = 0;
    for (int f = 0; f < WS_STATUS_COUNT; f++) {
        for (int t = 0; t < WS_STATUS_COUNT; t++) {
            char pair[64];
            snprintf(pair, sizeof pair, "%s>%s", ws_status_name((ws_status)f), ws_status_name((ws_status)t));
            int want = 0;
            for (const char **a = allowed; *a; a++) want |= !strcmp(*a, pair);
            if (ws_status_allowed((ws_status)f, (ws_status)t) != want) fail_msg("%s: expected %d", pair, want);
            count += want;
        }
    }
    assert_int_equal(count, 6);
    ws_status s = WS_RECEIVED, n;
    const char *path[] = { "accepted", "planned", "in_progress", "done" };
    for (int i = 0; i < 4; i++) {
        assert_int_equal(ws_status_next(s, &n), 0);
        assert_string_equal(ws_status_name(n), path[i]);
        s = n;
    }
    assert_int_equal(ws_status_next(WS_DONE, &n), -1);
    assert_int_equal(ws_status_next(WS_REFUSED, &n), -1);
    assert_int_equal(ws_status_parse("in_progress", &n), 0);
    assert_int_equal(n, WS_IN_PROGRESS);
    assert_int_equal(ws_status_parse("suspended", &n), -1);
    assert_int_equal(ws_status_parse(NULL, &n), -1);
    assert_null(ws_status_name(WS_STATUS_COUNT));
}

static void test_times(void **state)
{
    int64_t us;
    assert_int_equal(ws_time_parse("1970-01-01T00:00:00Z", &us), 0);
    assert_true(us == 0);
    assert_int_equal(ws_time_parse("2026-03-05T09:15:00.123456Z", &us), 0);
    assert_true(us == 1772702100123456LL);
    /* the same instant with an offset, and fractions beyond microseconds cut */
    int64_t us2;
    assert_int_equal(ws_time_parse("2026-03-05T10:15:00.1234569+01:00", &us2), 0);
    assert_true(us == us2);
    assert_int_equal(ws_time_parse("2026-03-05t09:15:00.5z", &us), 0);
    assert_true(us == 1772702100500000LL);
    assert_int_equal(ws_time_parse("2024-02-29T00:00:00-05:30", &us), 0);
    assert_true(us == 1709184600LL * 1000000);
    const char *bad[] = { "", "2026-03-05", "2026-03-05T09:15:00", "2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z",
                          "2026-03-05T24:00:00Z", "2026-03-05T09:15:00.Z", "2026-03-05T09:15:00+0100",
                          "2026-03-05T09:15:00Zjunk", "2026-03-05 09:15:00Z", "0000-01-01T00:00:00Z",
                          "+026-03-05T09:15:00Z", NULL };
    for (const char **b = bad; *b; b++)
        if (ws_time_parse(*b, &us) == 0) fail_msg("'%s' parsed", *b);
    assert_int_equal(ws_time_parse(NULL, &us), -1);
}

static void test_ids(void **state)
{
    assert_true(ws_id_valid("INT-2026-000123"));
    assert_true(ws_id_valid("a.b_c-9"));
    const char *bad[] = { "", ".", "..", "INT/1", "INT 1", "INT%2F1", "é", "a?b", NULL };
    for (const char **b = bad; *b; b++)
        if (ws_id_valid(*b)) fail_msg("'%s' accepted", *b);
    char longid[80];
    memset(longid, 'A', 65);
    longid[65] = '\0';
    assert_false(ws_id_valid(longid));
    assert_false(ws_id_valid(NULL));
}

/* ---- Answers ----------------------------------------------------------------- */

static void test_error_text(void **state)
{
    char out[256];
    const char *e = "{\"error\":{\"code\":\"unknown_type\",\"message\":\"type 'X' is unknown\",\"field\":\"$.type_code\"}}";
    ws_error_text(e, strlen(e), out, sizeof out);
    assert_string_equal(out, "unknown_type: type 'X' is unknown ($.type_code)");
    const char *e2 = "{\"error\":{\"code\":\"invalid_transition\",\"message\":\"no\"}}";
    ws_error_text(e2, strlen(e2), out, sizeof out);
    assert_string_equal(out, "invalid_transition: no");
    /* not the documented shape: an excerpt, one line, valid UTF-8 */
    const char *html = "<html>\n<b>Bad\tGateway</b>\xff\xc3 </html>";
    ws_error_text(html, strlen(html), out, sizeof out);
    assert_string_equal(out, "<html> <b>Bad Gateway</b>?? </html>");
    char tiny[8];
    const char *utf = "éééééé";
    ws_error_text(utf, strlen(utf), tiny, sizeof tiny);
    assert_string_equal(tiny, "ééé");   /* cut at a character boundary */
    ws_error_text(NULL, 0, out, sizeof out);
    assert_string_equal(out, "");
}

static void test_intervention_id(void **state)
{
    char id[64], err[256];
    const char *ok = "{\"id\":\"INT-2026-000001\",\"status\":\"received\"}";
    assert_int_equal(ws_parse_intervention_id(ok, strlen(ok), id, sizeof id, err, sizeof err), 0);
    assert_string_equal(id, "INT-2026-000001");
    struct { const char *body, *why; } bad[] = {
        { "", "empty" }, { "[1]", "not an object" }, { "{\"status\":1}", "no \"id\"" },
        { "{\"id\":\"../etc\"}", "unusable id" }, { "{\"id\":12}", "no \"id\"" },
        { "{\"id\":\"a\",\"id\":\"b\"}", "duplicate" }, { "{\"id\":", "intervention:1:" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (ws_parse_intervention_id(bad[i].body, strlen(bad[i].body), id, sizeof id, err, sizeof err) != -1)
            fail_msg("'%s' parsed", bad[i].body);
        if (!strstr(err, bad[i].why)) fail_msg("'%s': error '%s' does not say '%s'", bad[i].body, err, bad[i].why);
        assert_string_equal(id, "");
    }
}

static void test_page(void **state)
{
    ws_page p;
    char err[256];
    const char *ok = "{\"items\":[{\"id\":\"INT-2026-000001\",\"updated_at\":\"2026-03-05T09:15:00Z\",\"external_ref\":\"request/x\"},"
                     "{\"id\":\"INT-2026-000002\",\"updated_at\":\"2026-03-05T09:16:00Z\"}],\"per_page\":2,"
                     "\"next_cursor\":\"1772702160000000~INT-2026-000002\"}";
    assert_int_equal(ws_parse_page(ok, strlen(ok), &p, err, sizeof err), 0);
    assert_int_equal(json_array_size(p.items), 2);
    assert_string_equal(p.next_cursor, "1772702160000000~INT-2026-000002");
    ws_page_clear(&p);
    ws_page_clear(&p);
    const char *last = "{\"items\":[],\"per_page\":2,\"next_cursor\":null}";
    assert_int_equal(ws_parse_page(last, strlen(last), &p, err, sizeof err), 0);
    assert_null(p.next_cursor);
    ws_page_clear(&p);
    struct { const char *body, *why; } bad[] = {
        { "{}", "no \"items\"" },
        { "{\"items\":[1]}", "item 0 is not an object" },
        { "{\"items\":[{\"id\":\"a/b\",\"updated_at\":\"2026-03-05T09:15:00Z\"}]}", "item 0 has no usable id" },
        { "{\"items\":[{\"id\":\"a\",\"updated_at\":\"2026-03-05\"}]}", "item 0 has no RFC 3339 updated_at" },
        { "{\"items\":[{\"id\":\"a\",\"updated_at\":\"2026-03-05T09:15:00Z\",\"external_ref\":7}]}", "external_ref" },
        { "{\"items\":[],\"next_cursor\":3}", "next_cursor" },
        { "{\"items\":[],\"next_cursor\":\"\"}", "next_cursor" },
        { "not json", "list:1:" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (ws_parse_page(bad[i].body, strlen(bad[i].body), &p, err, sizeof err) != -1)
            fail_msg("'%s' parsed", bad[i].body);
        if (!strstr(err, bad[i].why)) fail_msg("'%s': error '%s' does not say '%s'", bad[i].body, err, bad[i].why);
        assert_null(p.root);
    }
    ws_page_clear(NULL);
}

static void test_history(void **state)
{
    ws_history h;
    char err[256];
    /* out of order on purpose, plus two unusable entries */
    const char *body =
        "{\"intervention_id\":\"INT-2026-000001\",\"items\":["
        "{\"id\":3,\"status\":\"planned\",\"previous_status\":\"accepted\",\"at\":\"2026-03-05T11:00:00+01:00\",\"author\":\"agent\"},"
        "{\"id\":1,\"status\":\"received\",\"previous_status\":null,\"at\":\"2026-03-05T09:00:00Z\",\"author\":\"relais\"},"
        "{\"id\":7,\"status\":\"suspended\",\"at\":\"2026-03-05T12:00:00Z\",\"author\":\"agent\"},"
        "{\"id\":2,\"status\":\"accepted\",\"at\":\"2026-03-05T09:30:00Z\",\"author\":\"agent\",\"comment\":\"ok\"},"
        "{\"id\":8,\"status\":\"done\",\"at\":\"2026-03-05T12:00:00Z\"}]}";
    assert_int_equal(ws_parse_history(body, strlen(body), "INT-2026-000001", &h, err, sizeof err), 0);
    assert_int_equal(h.n, 3);
    assert_int_equal(h.nbad, 2);
    assert_string_equal(h.bad_reason, "history entry 2 has an unknown status");
    /* 11:00+01:00 is 10:00Z: after 09:30Z */
    assert_true(h.changes[0].id == 1 && h.changes[1].id == 2 && h.changes[2].id == 3);
    assert_int_equal(h.changes[2].status, WS_PLANNED);
    assert_string_equal(h.changes[0].author, "relais");
    assert_string_equal(h.changes[1].at, "2026-03-05T09:30:00Z");
    assert_string_equal(json_string_value(json_object_get(h.changes[1].entry, "comment")), "ok");
    ws_history_clear(&h);
    ws_history_clear(&h);
    /* same time: by id */
    const char *tie = "{\"items\":[{\"id\":5,\"status\":\"accepted\",\"at\":\"2026-03-05T09:00:00Z\",\"author\":\"a\"},"
                      "{\"id\":4,\"status\":\"received\",\"at\":\"2026-03-05T09:00:00Z\",\"author\":\"a\"}]}";
    assert_int_equal(ws_parse_history(tie, strlen(tie), NULL, &h, err, sizeof err), 0);
    assert_true(h.changes[0].id == 4 && h.changes[1].id == 5);
    ws_history_clear(&h);
    const char *other = "{\"intervention_id\":\"INT-2026-000009\",\"items\":[]}";
    assert_int_equal(ws_parse_history(other, strlen(other), "INT-2026-000001", &h, err, sizeof err), -1);
    assert_non_null(strstr(err, "another intervention"));
    assert_int_equal(ws_parse_history("{\"items\":{}}", 12, NULL, &h, err, sizeof err), -1);
    assert_non_null(strstr(err, "no \"items\" array"));
    assert_int_equal(ws_parse_history("[", 1, NULL, &h, err, sizeof err), -1);
    assert_non_null(strstr(err, "history:1:"));
    const char *deep = "{\"items\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}";
    assert_int_equal(ws_parse_history(deep, strlen(deep), NULL, &h, err, sizeof err), -1);
    assert_non_null(strstr(err, "nesting deeper"));
    ws_history_clear(NULL);
}

/* ---- The README's option table is the option table ---------------------------- */

extern const relais_connector relais_connector_worksite;

static void test_readme_options(void **state)
{
    FILE *f = fopen(ts_source_path("connectors/worksite/README.md"), "r");
    assert_non_null(f);
    char line[1024];
    int in_table = 0, rows = 0;
    char seen[16][64];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "| option | type | default | modes |", 35) == 0) {
            in_table = 1;
            continue;
        }
        if (!in_table) continue;
        if (strncmp(line, "|---", 4) == 0) continue;
        if (line[0] != '|') break;
        char name[64], def[64], modes[16];
        if (sscanf(line, "| `%63[^`]` | %*[^|] | %63[^|] | %15[^ |] |", name, def, modes) != 3)
            fail_msg("README option row not understood: %s", line);
        const relais_option *o = relais_connector_worksite.options;
        while (o->name && strcmp(o->name, name) != 0) o++;
        if (!o->name) fail_msg("README lists option '%s' that the connector does not have", name);
        char want[64];
        if (o->required) snprintf(want, sizeof want, "**required**");
        else if (!o->def) snprintf(want, sizeof want, "none");
        else snprintf(want, sizeof want, "`%s`", o->def);
        if (strncmp(def, want, strlen(want)) != 0) fail_msg("README: option '%s' default '%s', table says %s", name, def, want);
        const char *m = o->modes == (RELAIS_MODE_SOURCE | RELAIS_MODE_SINK) ? "both"
                      : o->modes == RELAIS_MODE_SOURCE ? "source" : "sink";
        if (strcmp(modes, m) != 0) fail_msg("README: option '%s' modes '%s', table says %s", name, modes, m);
        assert_true(rows < 16);
        snprintf(seen[rows++], sizeof seen[0], "%s", name);
    }
    fclose(f);
    for (const relais_option *o = relais_connector_worksite.options; o->name; o++) {
        int found = 0;
        for (int i = 0; i < rows; i++) found |= !strcmp(seen[i], o->name);
        if (!found) fail_msg("README does not list option '%s'", o->name);
    }
    assert_true(rows >= 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_file_is_the_openapi_components),
        cmocka_unit_test(test_openapi_refs_resolve),
        cmocka_unit_test(test_schemas_accept_and_refuse),
        cmocka_unit_test(test_life_cycle),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_error_text),
        cmocka_unit_test(test_intervention_id),
        cmocka_unit_test(test_page),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_readme_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
