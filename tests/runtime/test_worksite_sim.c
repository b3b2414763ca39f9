/*
 * test_worksite_sim.c - relais-sim-worksite against its interface
 * description (connectors/worksite/api/worksite-openapi.yaml): every answer
 * of the API has a status the OpenAPI documents for the operation and a body
 * valid against the schema it names (hub/jsonschema.h validator); and the
 * behaviour the description promises: tokens and accounts, idempotent
 * creation, the life cycle (409 otherwise), history with authors and
 * strictly increasing times, the list's cursor that misses nothing while
 * interventions change, and the control endpoints (advance, auto-advance,
 * fail, down in both modes, reset).
 * The simulator runs as a child process; no database.
 */
#include "test_worksite_support.h"
#include "../unit/test_worksite_openapi.h"
#include "event_int.h"

static wsim SIM;
static json_t *API;
static relais_schema_set *SET;

#define LIST "/api/v1/interventions"
#define ONE "/api/v1/interventions/{id}"
#define HIST "/api/v1/interventions/{id}/history"
#define STATUS "/api/v1/interventions/{id}/status"
#define POTHOLE "{\"type_code\":\"VOI-03\",\"description\":\"Nid de poule\",\"location\":{\"address\":\"12 rue des Tanneurs\"," \
                "\"city\":\"Villebrune\",\"lat\":48.11,\"lon\":-1.68},\"photos\":[{\"url\":\"https://grc.example/pj/1\"," \
                "\"filename\":\"trou.jpg\",\"content_type\":\"image/jpeg\"}],\"requester_ref\":\"VB7K\"," \
                "\"external_ref\":\"request/GRC-1\"}"

static int group_setup(void **state)
{
    wsim_spawn(&SIM, NULL);
    API = wo_openapi();
    SET = wo_schemas();
    return 0;
}

static int group_teardown(void **state)
{
    wsim_kill(&SIM);
    json_decref(API);
    relais_schema_set_destroy(SET);
    return 0;
}

static int reset(void **state)
{
    wsim_ctl(&SIM, "/_sim/reset", "{}");
    return 0;
}

/* A call checked against the OpenAPI: the answer's status must be `want`. */
static wresp *api(const char *tmpl, const char *method, const char *path, const char *token, const char *body,
                  const char *idem, long want)
{
    wresp *r = wcall(&SIM, method, path, token, body, idem);
    if (r->status != want) fail_msg("%s %s: HTTP %ld, expected %ld: %s", method, path, r->status, want,
                                    r->body ? r->body : "");
    char lower[8];
    snprintf(lower, sizeof lower, "%s", method);
    for (char *p = lower; *p; p++) *p = (char)(*p - 'A' + 'a');
    wo_check_answer(API, SET, tmpl, lower, r->status, r->body);
    return r;
}

static const char *err_code(const wresp *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
}

static void test_tokens_and_types(void **state)
{
    wresp *r = api("/api/v1/types", "GET", "/api/v1/types", NULL, NULL, NULL, 401);
    assert_string_equal(err_code(r), "unauthorized");
    assert_non_null(strstr(r->headers, "WWW-Authenticate: Bearer"));
    wresp_free(r);
    r = api("/api/v1/types", "GET", "/api/v1/types", "nope", NULL, NULL, 401);
    wresp_free(r);
    r = api("/api/v1/types", "GET", "/api/v1/types", TOK_AGENT, NULL, NULL, 200);
    json_t *items = json_object_get(r->json, "items");
    assert_true(json_array_size(items) >= 5);
    /* every code the shipped mapping's table gives is a type of the tool */
    const char *codes[] = { "VOI-01", "VOI-03", "MOB-01", "ECL-01", "PRO-02", "GRA-01", "ESV-01" };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        int found = 0;
        size_t k;
        json_t *t;
        json_array_foreach(items, k, t) found |= !strcmp(json_string_value(json_object_get(t, "code")), codes[i]);
        if (!found) fail_msg("type %s missing", codes[i]);
    }
    wresp_free(r);
}

static void test_create_is_idempotent(void **state)
{
    wresp *r = api(LIST, "POST", LIST, TOK_RELAIS, POTHOLE, "evt-1", 201);
    const char *id = json_string_value(json_object_get(r->json, "id"));
    char first[64];
    snprintf(first, sizeof first, "%s", id);
    assert_string_equal(json_string_value(json_object_get(r->json, "status")), "received");
    assert_string_equal(json_string_value(json_object_get(r->json, "created_by")), "relais");
    assert_string_equal(json_string_value(json_object_get(r->json, "type_label")), "Réfection ponctuelle de chaussée");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r->json, "team"), "code")), "VOIRIE");
    char loc[128];
    snprintf(loc, sizeof loc, "Location: /api/v1/interventions/%s", first);
    assert_non_null(strstr(r->headers, loc));
    wresp_free(r);
    /* the same key: the same intervention, never a second one */
    for (int i = 0; i < 3; i++) {
        r = api(LIST, "POST", LIST, TOK_RELAIS, POTHOLE, "evt-1", 200);
        assert_string_equal(json_string_value(json_object_get(r->json, "id")), first);
        assert_non_null(strstr(r->headers, "Idempotent-Replayed: true"));
        wresp_free(r);
    }
    assert_int_equal(wsim_stat(&SIM, "interventions"), 1);
    assert_int_equal(wsim_stat(&SIM, "replayed"), 3);
    /* the same key with another body is refused */
    r = api(LIST, "POST", LIST, TOK_RELAIS, "{\"type_code\":\"ECL-01\",\"description\":\"x\",\"location\":{\"lat\":1,\"lon\":2}}",
            "evt-1", 422);
    assert_string_equal(err_code(r), "idempotency_mismatch");
    wresp_free(r);
    /* keys belong to an account; no key: a new one each time */
    wresp_free(api(LIST, "POST", LIST, TOK_AGENT, POTHOLE, "evt-1", 201));
    wresp_free(api(LIST, "POST", LIST, TOK_RELAIS, POTHOLE, NULL, 201));
    assert_int_equal(wsim_stat(&SIM, "interventions"), 3);
}

static void test_create_refusals(void **state)
{
    wresp *r = api(LIST, "POST", LIST, TOK_RELAIS,
                   "{\"type_code\":\"ZZZ-99\",\"description\":\"x\",\"location\":{\"lat\":1,\"lon\":2}}", NULL, 422);
    assert_string_equal(err_code(r), "unknown_type");
    assert_non_null(strstr(r->body, "ZZZ-99"));
    wresp_free(r);
    r = api(LIST, "POST", LIST, TOK_RELAIS, "{\"type_code\":\"VOI-03\",\"description\":\"x\",\"location\":{\"address\":\"1 rue\"}}",
            NULL, 422);
    assert_string_equal(err_code(r), "invalid_field");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r->json, "error"), "field")), "$.location");
    wresp_free(r);
    r = api(LIST, "POST", LIST, TOK_RELAIS, "{\"type_code\":\"VOI-03\",\"location\":{\"lat\":1,\"lon\":2}}", NULL, 422);
    assert_non_null(strstr(r->body, "description"));
    wresp_free(r);
    r = api(LIST, "POST", LIST, TOK_RELAIS, "{\"type_code\":", NULL, 400);
    assert_string_equal(err_code(r), "bad_request");
    wresp_free(r);
    r = api(LIST, "POST", LIST, TOK_RELAIS, "{\"a\":1,\"a\":2}", NULL, 400);
    assert_non_null(strstr(r->body, "duplicate"));
    wresp_free(r);
    assert_int_equal(wsim_stat(&SIM, "interventions"), 0);
}

static void change(const char *id, const char *token, const char *body, long want, const char *code)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/interventions/%s/status", id);
    wresp *r = api(STATUS, "POST", path, token, body, NULL, want);
    if (code) assert_string_equal(err_code(r), code);
    else assert_string_equal(json_string_value(json_object_get(r->json, "id")), id);
    wresp_free(r);
}

static void test_life_cycle_and_history(void **state)
{
    char id[64], path[128];
    snprintf(id, sizeof id, "%s", wsim_create(&SIM, TOK_RELAIS, POTHOLE));
    change(id, TOK_RELAIS, "{\"status\":\"in_progress\"}", 409, "invalid_transition");
    change(id, TOK_AGENT, "{\"status\":\"accepted\",\"comment\":\"Pris en compte\"}", 200, NULL);
    change(id, TOK_AGENT, "{\"status\":\"planned\"}", 422, "invalid_field");
    change(id, TOK_AGENT, "{\"status\":\"planned\",\"planned_start\":\"2026-03-09T07:30:00Z\","
                          "\"planned_end\":\"2026-03-09T10:00:00Z\",\"comment\":\"Lundi\"}", 200, NULL);
    change(id, TOK_AGENT, "{\"status\":\"refused\",\"reason\":\"doublon\"}", 409, "invalid_transition");
    change(id, TOK_RELAIS, "{\"status\":\"in_progress\"}", 200, NULL);
    change(id, TOK_AGENT, "{\"status\":\"done\",\"comment\":\"Rebouché\"}", 200, NULL);
    change(id, TOK_AGENT, "{\"status\":\"done\"}", 409, "invalid_transition");
    change(id, TOK_AGENT, "{\"status\":\"bogus\"}", 422, "invalid_field");
    change("INT-2026-999999", TOK_AGENT, "{\"status\":\"accepted\"}", 404, "not_found");

    snprintf(path, sizeof path, "/api/v1/interventions/%s", id);
    wresp *r = api(ONE, "GET", path, TOK_AGENT, NULL, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(r->json, "status")), "done");
    assert_string_equal(json_string_value(json_object_get(r->json, "planned_start")), "2026-03-09T07:30:00Z");
    assert_non_null(json_object_get(r->json, "done_at"));
    wresp_free(r);
    wresp_free(api(ONE, "GET", "/api/v1/interventions/INT-2026-999999", TOK_AGENT, NULL, NULL, 404));

    snprintf(path, sizeof path, "/api/v1/interventions/%s/history", id);
    r = api(HIST, "GET", path, TOK_RELAIS, NULL, NULL, 200);
    json_t *items = json_object_get(r->json, "items");
    const char *want[][3] = { { "received", "relais", NULL }, { "accepted", "agent.voirie", "Pris en compte" },
                              { "planned", "agent.voirie", "Lundi" }, { "in_progress", "relais", NULL },
                              { "done", "agent.voirie", "Rebouché" } };
    assert_int_equal(json_array_size(items), 5);
    int64_t prev = 0;
    for (size_t i = 0; i < 5; i++) {
        json_t *e = json_array_get(items, i);
        assert_string_equal(json_string_value(json_object_get(e, "status")), want[i][0]);
        assert_string_equal(json_string_value(json_object_get(e, "author")), want[i][1]);
        const char *cm = json_string_value(json_object_get(e, "comment"));
        if (want[i][2]) assert_string_equal(cm, want[i][2]);
        else assert_null(cm);
        int64_t at;
        assert_int_equal(ws_time_parse(json_string_value(json_object_get(e, "at")), &at), 0);
        assert_true(at > prev);   /* two changes never share a time */
        prev = at;
        if (i > 0) assert_string_equal(json_string_value(json_object_get(e, "previous_status")), want[i - 1][0]);
    }
    assert_true(json_is_null(json_object_get(json_array_get(items, 0), "previous_status")));
    wresp_free(r);
    wresp_free(api(HIST, "GET", "/api/v1/interventions/INT-2026-999999/history", TOK_AGENT, NULL, NULL, 404));
}

static void test_refused(void **state)
{
    char id[64];
    snprintf(id, sizeof id, "%s", wsim_create(&SIM, TOK_RELAIS, POTHOLE));
    change(id, TOK_AGENT, "{\"status\":\"accepted\",\"reason\":\"doublon\"}", 422, "invalid_field");
    change(id, TOK_AGENT, "{\"status\":\"refused\",\"reason\":\"domaine_prive\",\"comment\":\"Voie privée\"}", 200, NULL);
    json_t *all = wexpect(&SIM, "GET", "/_sim/interventions", NULL, NULL, 200);
    json_t *it = json_object_get(json_array_get(all, 0), "intervention");
    assert_string_equal(json_string_value(json_object_get(it, "refusal_reason")), "domaine_prive");
    json_t *last = json_array_get(json_object_get(json_array_get(all, 0), "history"), 1);
    assert_string_equal(json_string_value(json_object_get(last, "reason")), "domaine_prive");
    json_decref(all);
}

/* ids of a list answer, space-separated */
static void ids_of(const wresp *r, char *buf, size_t len)
{
    buf[0] = '\0';
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(r->json, "items"), i, it) {
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s", used ? " " : "", json_string_value(json_object_get(it, "id")));
    }
}

static void test_list_cursor_misses_nothing(void **state)
{
    char a[32], b[32], c[32], got[256], path[512];
    snprintf(a, sizeof a, "%s", wsim_create(&SIM, TOK_RELAIS, POTHOLE));
    snprintf(b, sizeof b, "%s", wsim_create(&SIM, TOK_RELAIS, POTHOLE));
    snprintf(c, sizeof c, "%s", wsim_create(&SIM, TOK_RELAIS, POTHOLE));
    /* numbered pages */
    wresp *r = api(LIST, "GET", LIST "?per_page=2&page=2", TOK_AGENT, NULL, NULL, 200);
    ids_of(r, got, sizeof got);
    assert_string_equal(got, c);
    assert_int_equal(json_integer_value(json_object_get(r->json, "total")), 3);
    assert_int_equal(json_integer_value(json_object_get(r->json, "page")), 2);
    assert_true(json_is_null(json_object_get(r->json, "next_cursor")));
    wresp_free(r);
    /* the cursor walk: `a` changes after the first page; b and c still come,
     * and a comes again at the end */
    r = api(LIST, "GET", LIST "?per_page=1", TOK_AGENT, NULL, NULL, 200);
    ids_of(r, got, sizeof got);
    assert_string_equal(got, a);
    char *cur = strdup(json_string_value(json_object_get(r->json, "next_cursor")));
    wresp_free(r);
    change(a, TOK_AGENT, "{\"status\":\"accepted\"}", 200, NULL);
    char walk[256] = "";
    for (int pages = 0; cur && pages < 10; pages++) {
        char *esc = ws_client_escape(cur);
        snprintf(path, sizeof path, LIST "?per_page=1&cursor=%s", esc);
        free(esc);
        r = api(LIST, "GET", path, TOK_AGENT, NULL, NULL, 200);
        assert_null(json_object_get(r->json, "page"));
        ids_of(r, got, sizeof got);
        size_t used = strlen(walk);
        snprintf(walk + used, sizeof walk - used, "%s%s", used ? " " : "", got);
        free(cur);
        const char *n = json_string_value(json_object_get(r->json, "next_cursor"));
        cur = n ? strdup(n) : NULL;
        wresp_free(r);
    }
    char expect[128];
    snprintf(expect, sizeof expect, "%s %s %s", b, c, a);
    assert_string_equal(walk, expect);
    free(cur);
    /* updated_since: only a changed at or after that time */
    json_t *one = wexpect(&SIM, "GET", "/api/v1/interventions/", TOK_AGENT, NULL, 404);
    json_decref(one);
    snprintf(path, sizeof path, "/api/v1/interventions/%s", a);
    one = wexpect(&SIM, "GET", path, TOK_AGENT, NULL, 200);
    char *esc = ws_client_escape(json_string_value(json_object_get(one, "updated_at")));
    json_decref(one);
    snprintf(path, sizeof path, LIST "?updated_since=%s", esc);
    free(esc);
    r = api(LIST, "GET", path, TOK_AGENT, NULL, NULL, 200);
    ids_of(r, got, sizeof got);
    assert_string_equal(got, a);
    wresp_free(r);
    r = api(LIST, "GET", LIST "?updated_since=2000-01-01T00:00:00%2B01:00&status=received", TOK_AGENT, NULL, NULL, 200);
    ids_of(r, got, sizeof got);
    snprintf(expect, sizeof expect, "%s %s", b, c);
    assert_string_equal(got, expect);
    wresp_free(r);
    const char *bad[] = { "?updated_since=yesterday", "?per_page=0", "?per_page=501", "?page=x", "?cursor=12",
                          "?cursor=x~INT-1", "?status=lost" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(path, sizeof path, LIST "%s", bad[i]);
        r = api(LIST, "GET", path, TOK_AGENT, NULL, NULL, 400);
        assert_string_equal(err_code(r), "bad_request");
        wresp_free(r);
    }
}

static void test_advance_and_clock(void **state)
{
    char id[64];
    snprintf(id, sizeof id, "%s", wsim_create(&SIM, TOK_RELAIS, POTHOLE));
    char body[256];
    snprintf(body, sizeof body, "{\"id\":\"%s\"}", id);
    json_t *j = wexpect(&SIM, "POST", "/_sim/advance", NULL, body, 200);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "accepted");
    json_decref(j);
    snprintf(body, sizeof body, "{\"id\":\"%s\",\"status\":\"done\"}", id);
    json_decref(wexpect(&SIM, "POST", "/_sim/advance", NULL, body, 409));
    snprintf(body, sizeof body, "{\"id\":\"%s\",\"status\":\"planned\",\"comment\":\"Mardi\",\"account\":\"chef\"}", id);
    json_decref(wexpect(&SIM, "POST", "/_sim/advance", NULL, body, 200));
    json_decref(wexpect(&SIM, "POST", "/_sim/advance", NULL, "{\"id\":\"INT-2026-999999\"}", 404));
    json_decref(wexpect(&SIM, "POST", "/_sim/advance", NULL, "{\"status\":\"done\"}", 400));
    /* the clock: every 50 ms each open one moves a step, as the agent */
    wsim_ctl(&SIM, "/_sim/auto-advance", "{\"interval_ms\":50}");
    char path[128];
    snprintf(path, sizeof path, "/api/v1/interventions/%s", id);
    const char *st = NULL;
    for (int i = 0; i < 100; i++) {
        j = wexpect(&SIM, "GET", path, TOK_AGENT, NULL, 200);
        st = json_string_value(json_object_get(j, "status"));
        int done = st && !strcmp(st, "done");
        json_decref(j);
        if (done) break;
        ts_sleep_ms(20);
    }
    wsim_ctl(&SIM, "/_sim/auto-advance", "{\"interval_ms\":0}");
    snprintf(path, sizeof path, "/api/v1/interventions/%s/history", id);
    j = wexpect(&SIM, "GET", path, TOK_AGENT, NULL, 200);
    json_t *items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 5);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 2), "author")), "chef");
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 3), "author")), "agent.voirie");
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 4), "status")), "done");
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 4), "author")), "agent.voirie");
    json_decref(j);
}

/* --auto-advance MS on the command line: the clock runs from the start, and
 * /_sim/reset brings it back after a change */
static void test_auto_advance_option(void **state)
{
    wsim s2;
    const char *extra[] = { "--auto-advance", "40", NULL };
    wsim_spawn(&s2, extra);
    assert_int_equal(wsim_stat(&s2, "auto_advance_ms"), 40);
    wsim_ctl(&s2, "/_sim/auto-advance", "{\"interval_ms\":0}");
    assert_int_equal(wsim_stat(&s2, "auto_advance_ms"), 0);
    wsim_ctl(&s2, "/_sim/reset", "{}");
    assert_int_equal(wsim_stat(&s2, "auto_advance_ms"), 40);
    char id[64], path[128];
    snprintf(id, sizeof id, "%s", wsim_create(&s2, TOK_RELAIS, POTHOLE));
    snprintf(path, sizeof path, "/api/v1/interventions/%s", id);
    int done = 0;
    for (int i = 0; i < 100 && !done; i++) {
        json_t *j = wexpect(&s2, "GET", path, TOK_AGENT, NULL, 200);
        done = !strcmp(json_string_value(json_object_get(j, "status")), "done");
        json_decref(j);
        if (!done) ts_sleep_ms(20);
    }
    assert_true(done);
    wsim_kill(&s2);
}

static void test_faults(void **state)
{
    /* errors: two 503 then normal */
    wsim_ctl(&SIM, "/_sim/fail", "{\"status\":503,\"count\":2}");
    for (int i = 0; i < 2; i++) {
        wresp *r = api("/api/v1/types", "GET", "/api/v1/types", TOK_AGENT, NULL, NULL, 503);
        assert_string_equal(err_code(r), "unavailable");
        wresp_free(r);
    }
    wresp_free(api("/api/v1/types", "GET", "/api/v1/types", TOK_AGENT, NULL, NULL, 200));
    assert_int_equal(wsim_stat(&SIM, "failed"), 2);
    /* slow */
    wsim_ctl(&SIM, "/_sim/fail", "{\"delay_ms\":300,\"count\":1}");
    int64_t t0 = relais_mono_us();
    wresp_free(api("/api/v1/types", "GET", "/api/v1/types", TOK_AGENT, NULL, NULL, 200));
    assert_true(relais_mono_us() - t0 >= 300000);
    json_decref(wexpect(&SIM, "POST", "/_sim/fail", NULL, "{\"status\":42}", 400));
    /* reset mode: connections closed without an answer, then back */
    wsim_ctl(&SIM, "/_sim/down", "{\"seconds\":1,\"mode\":\"reset\"}");
    wresp *r = wcall(&SIM, "GET", "/api/v1/types", TOK_AGENT, NULL, NULL);
    assert_int_equal(r->status, 0);
    wresp_free(r);
    assert_true(wsim_stat(&SIM, "reset_connections") >= 1);
    long st = 0;
    for (int i = 0; i < 100 && st != 200; i++) {
        ts_sleep_ms(20);
        r = wcall(&SIM, "GET", "/api/v1/types", TOK_AGENT, NULL, NULL);
        st = r->status;
        wresp_free(r);
    }
    assert_int_equal(st, 200);
    wresp_free(api("/api/v1/types", "GET", "/api/v1/types", TOK_AGENT, NULL, NULL, 200));
    /* refuse mode: nothing listens, then the same port again */
    wsim_ctl(&SIM, "/_sim/down", "{\"seconds\":0.8}");
    wsim_wait_down(&SIM);
    r = wcall(&SIM, "GET", "/api/v1/types", TOK_AGENT, NULL, NULL);
    assert_int_equal(r->status, 0);
    wresp_free(r);
    int back = 0;
    for (int i = 0; i < 100 && !back; i++) {
        ts_sleep_ms(20);
        r = wcall(&SIM, "GET", "/api/v1/types", TOK_AGENT, NULL, NULL);
        back = r->status == 200;
        wresp_free(r);
    }
    assert_true(back);
    json_decref(wexpect(&SIM, "POST", "/_sim/down", NULL, "{\"seconds\":0}", 400));
    json_decref(wexpect(&SIM, "POST", "/_sim/down", NULL, "{\"seconds\":1,\"mode\":\"off\"}", 400));
    /* reset forgets everything */
    wsim_create(&SIM, TOK_RELAIS, POTHOLE);
    wsim_ctl(&SIM, "/_sim/fail", "{\"status\":500}");
    wsim_ctl(&SIM, "/_sim/reset", "{}");
    assert_int_equal(wsim_stat(&SIM, "interventions"), 0);
    wresp_free(api("/api/v1/types", "GET", "/api/v1/types", TOK_AGENT, NULL, NULL, 200));
    /* ids start again */
    assert_non_null(strstr(wsim_create(&SIM, TOK_RELAIS, POTHOLE), "-000001"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_tokens_and_types, reset),
        cmocka_unit_test_setup(test_create_is_idempotent, reset),
        cmocka_unit_test_setup(test_create_refusals, reset),
        cmocka_unit_test_setup(test_life_cycle_and_history, reset),
        cmocka_unit_test_setup(test_refused, reset),
        cmocka_unit_test_setup(test_list_cursor_misses_nothing, reset),
        cmocka_unit_test_setup(test_advance_and_clock, reset),
        cmocka_unit_test_setup(test_auto_advance_option, reset),
        cmocka_unit_test_setup(test_faults, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
