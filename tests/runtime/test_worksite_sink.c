/*
 * test_worksite_sink.c - the worksite sink against relais-sim-worksite (a
 * child process), with the shipped mapping mappings/intervention.yaml:
 *   201 -> OK with the intervention id as local id (the body as the tool
 *   stored it: type from the code table, place, photo, references; the event
 *   id as Idempotency-Key); a repeated attempt -> the same intervention; a
 *   known cross-reference -> read, not created again;
 *   500, 503, 429 -> RETRY; 409, 422, 401 -> REJECT with the tool's text;
 *   timeout, connection refused (nothing listening, tool down) and reset ->
 *   RETRY, then OK once the tool is back;
 *   a category missing from the code table -> REJECT naming the mapping file,
 *   the rule's line and the field, nothing sent;
 *   options and init refusals.
 * The hub behind the instance is a ts_recorder (tests/support): the sink
 * never submits or rejects anything. No database: the sink needs none.
 */
#include "test_worksite_support.h"
#include "event_int.h"

static wsim SIM;
static ts_recorder *REC;   /* the hub behind the sink: it must never be asked to submit or reject */

static int group_setup(void **state)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    wsim_spawn(&SIM, NULL);
    REC = ts_recorder_new();
    return 0;
}

static int group_teardown(void **state)
{
    wsim_kill(&SIM);
    /* a sink derives nothing: no record submitted, nothing rejected */
    assert_int_equal(ts_recorder_submit_calls(REC), 0);
    assert_int_equal(ts_recorder_nrejs(REC), 0);
    ts_recorder_free(REC);
    curl_global_cleanup();
    return 0;
}

static int reset(void **state)
{
    wsim_ctl(&SIM, "/_sim/reset", "{}");
    return 0;
}

/* The pothole of schemas/examples, with `category` and subject request/<n>. */
static relais_event *request_event(const char *category, const char *n)
{
    json_error_t je;
    json_t *ex = json_load_file(ts_source_path("schemas/examples/fr.relais.grc.request.created.v1.json"), 0, &je);
    assert_non_null(ex);
    json_t *data = json_deep_copy(json_object_get(ex, "data"));
    json_decref(ex);
    json_object_set_new(data, "category", json_string(category));
    char subject[64];
    snprintf(subject, sizeof subject, "request/%s", n);
    relais_record rec = { .type = "fr.relais.grc.request.created.v1", .subject = subject, .record_id = n,
                          .data = data };
    char err[256];
    relais_event *ev = relais_event_build(&rec, "grc", "ville", err, sizeof err);
    json_decref(data);
    if (!ev) fail_msg("event: %s", err);
    return ev;
}

static void open_sink(wconn *c, const char *url, const char *extra)
{
    char yaml[512], err[512] = "";
    snprintf(yaml, sizeof yaml, "url: %s\ntoken: env:WS_TEST_TOKEN\ntimeout: 1s\nconnect_timeout: 500ms\n%s",
             url, extra ? extra : "");
    if (wconn_open(c, RELAIS_MODE_SINK, yaml, "intervention.yaml", ts_recorder_ops(), REC, 1, err, sizeof err) != 0)
        fail_msg("sink: %s", err);
}

static relais_verdict deliver(wconn *c, relais_event *ev, const char *local_id, relais_answer *a)
{
    memset(a, 0x5a, sizeof *a);   /* the connector must fill every field */
    return relais_connector_worksite.deliver(c->ctx, ev, local_id, a);
}

static void test_created_then_idempotent(void **state)
{
    wconn c;
    open_sink(&c, SIM.url, NULL);
    relais_event *ev = request_event("Nids de poule", "GRC-2026-000123");
    relais_answer a;
    assert_int_equal(deliver(&c, ev, NULL, &a), RELAIS_DELIVER_OK);
    assert_int_equal(a.status, 201);
    assert_string_equal(a.local_id, "INT-2026-000001");
    assert_non_null(strstr(a.detail, "intervention INT-2026-000001 created"));

    /* what the tool stored, as relais's account */
    json_t *all = wexpect(&SIM, "GET", "/_sim/interventions", NULL, NULL, 200);
    json_t *it = json_object_get(json_array_get(all, 0), "intervention");
    assert_string_equal(json_string_value(json_object_get(it, "type_code")), "VOI-03");
    assert_string_equal(json_string_value(json_object_get(it, "external_ref")), "request/GRC-2026-000123");
    assert_string_equal(json_string_value(json_object_get(it, "requester_ref")), "VB7K2QXM");
    assert_string_equal(json_string_value(json_object_get(it, "created_by")), "relais");
    json_t *loc = json_object_get(it, "location");
    assert_string_equal(json_string_value(json_object_get(loc, "address")), "12 bis rue des Tanneurs");
    assert_string_equal(json_string_value(json_object_get(loc, "city")), "Villebrune-sur-Vilaine");
    assert_true(json_real_value(json_object_get(loc, "lat")) == 48.11331);
    json_t *photo = json_array_get(json_object_get(it, "photos"), 0);
    assert_string_equal(json_string_value(json_object_get(photo, "url")), "https://grc.villebrune.example/pj/GRC-2026-000123/1");
    json_decref(all);

    /* the same event again (a retry after a lost answer): the same intervention */
    assert_int_equal(deliver(&c, ev, NULL, &a), RELAIS_DELIVER_OK);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.local_id, "INT-2026-000001");
    assert_non_null(strstr(a.detail, "same Idempotency-Key"));
    assert_int_equal(wsim_stat(&SIM, "interventions"), 1);
    assert_int_equal(wsim_stat(&SIM, "replayed"), 1);

    /* the hub knows the intervention of this request: read, not created */
    long before = wsim_stat(&SIM, "requests");
    assert_int_equal(deliver(&c, ev, "INT-2026-000001", &a), RELAIS_DELIVER_OK);
    assert_string_equal(a.local_id, "INT-2026-000001");
    assert_non_null(strstr(a.detail, "already created"));
    assert_int_equal(wsim_stat(&SIM, "requests"), before + 1);
    assert_int_equal(wsim_stat(&SIM, "replayed"), 1);
    /* ... unless the tool no longer has it: then it is created */
    relais_event *ev2 = request_event("Éclairage public", "GRC-2026-000124");
    assert_int_equal(deliver(&c, ev2, "INT-2026-000077", &a), RELAIS_DELIVER_OK);
    assert_string_equal(a.local_id, "INT-2026-000002");
    assert_int_equal(wsim_stat(&SIM, "interventions"), 2);
    relais_event_unref(ev2);
    relais_event_unref(ev);
    wconn_close(&c);
}

static void expect_verdict(wconn *c, const char *fail, relais_verdict want, int status, const char *detail)
{
    wsim_ctl(&SIM, "/_sim/fail", fail);
    relais_event *ev = request_event("Propreté", "GRC-9");
    relais_answer a;
    relais_verdict v = deliver(c, ev, NULL, &a);
    if (v != want) fail_msg("%s: verdict %d, expected %d (%s)", fail, v, want, a.detail);
    assert_int_equal(a.status, status);
    assert_string_equal(a.local_id, "");
    if (!strstr(a.detail, detail)) fail_msg("%s: detail '%s' does not say '%s'", fail, a.detail, detail);
    relais_event_unref(ev);
}

static void test_verdicts(void **state)
{
    wconn c;
    open_sink(&c, SIM.url, NULL);
    expect_verdict(&c, "{\"status\":500,\"count\":1}", RELAIS_DELIVER_RETRY, 500,
                   "HTTP 500 transient, will retry: unavailable: injected failure");
    expect_verdict(&c, "{\"status\":503,\"count\":1}", RELAIS_DELIVER_RETRY, 503, "HTTP 503");
    expect_verdict(&c, "{\"status\":429,\"count\":1}", RELAIS_DELIVER_RETRY, 429, "HTTP 429");
    expect_verdict(&c, "{\"status\":409,\"count\":1}", RELAIS_DELIVER_REJECT, 409,
                   "HTTP 409 refused: bad_request: injected failure");
    assert_int_equal(wsim_stat(&SIM, "interventions"), 0);
    /* after the 500, the same event goes through */
    relais_event *ev = request_event("Propreté", "GRC-9");
    relais_answer a;
    assert_int_equal(deliver(&c, ev, NULL, &a), RELAIS_DELIVER_OK);
    assert_int_equal(wsim_stat(&SIM, "interventions"), 1);
    relais_event_unref(ev);

    /* the tool's own refusal: a request without a place */
    json_t *d = json_pack("{s:s,s:s,s:s,s:s}", "channel", "phone", "category", "Graffitis", "status", "new",
                          "opened_at", "2026-03-05T10:14:00+01:00");
    relais_record rec = { .type = "fr.relais.grc.request.created.v1", .subject = "request/GRC-10", .data = d };
    char err[256];
    ev = relais_event_build(&rec, "grc", "ville", err, sizeof err);
    json_decref(d);
    assert_int_equal(deliver(&c, ev, NULL, &a), RELAIS_DELIVER_REJECT);
    assert_int_equal(a.status, 422);
    assert_non_null(strstr(a.detail, "invalid_field: required property 'location' is missing"));
    relais_event_unref(ev);
    wconn_close(&c);

    /* a token the tool does not know */
    setenv("WS_TEST_TOKEN", "wrong", 1);
    open_sink(&c, SIM.url, NULL);
    setenv("WS_TEST_TOKEN", TOK_RELAIS, 1);
    ev = request_event("Propreté", "GRC-11");
    assert_int_equal(deliver(&c, ev, NULL, &a), RELAIS_DELIVER_REJECT);
    assert_int_equal(a.status, 401);
    assert_non_null(strstr(a.detail, "unauthorized"));
    relais_event_unref(ev);
    wconn_close(&c);
}

static void test_transport_failures_retry(void **state)
{
    wconn c;
    relais_answer a;
    /* a timeout (the tool answers after 1.5 s, the sink waits 1 s) */
    open_sink(&c, SIM.url, NULL);
    wsim_ctl(&SIM, "/_sim/fail", "{\"delay_ms\":1500,\"count\":1}");
    relais_event *ev = request_event("Nids de poule", "GRC-20");
    assert_int_equal(deliver(&c, ev, NULL, &a), RELAIS_DELIVER_RETRY);
    assert_int_equal(a.status, 0);
    assert_non_null(strstr(a.detail, "Timeout"));
    /* the tool finishes that request (1.5 s after it came): created, then ... */
    for (int i = 0; i < 200 && wsim_stat(&SIM, "interventions") < 1; i++) ts_sleep_ms(50);
    assert_int_equal(wsim_stat(&SIM, "interventions"), 1);
    assert_int_equal(deliver(&c, ev, NULL, &a), RELAIS_DELIVER_OK);
    /* ... the retry answers that same intervention */
    assert_string_equal(a.local_id, "INT-2026-000001");
    assert_int_equal(wsim_stat(&SIM, "interventions"), 1);

    /* connections reset without an answer */
    wsim_ctl(&SIM, "/_sim/down", "{\"seconds\":1,\"mode\":\"reset\"}");
    relais_event *ev2 = request_event("Nids de poule", "GRC-21");
    assert_int_equal(deliver(&c, ev2, NULL, &a), RELAIS_DELIVER_RETRY);
    assert_int_equal(a.status, 0);
    assert_non_null(strstr(a.detail, "will retry"));
    relais_verdict v2 = RELAIS_DELIVER_RETRY;
    for (int i = 0; i < 60 && v2 == RELAIS_DELIVER_RETRY; i++) {
        ts_sleep_ms(50);
        v2 = deliver(&c, ev2, NULL, &a);
    }
    assert_int_equal(v2, RELAIS_DELIVER_OK);

    /* the tool down: connection refused, then back */
    wsim_ctl(&SIM, "/_sim/down", "{\"seconds\":1}");
    wsim_wait_down(&SIM);
    relais_event *ev3 = request_event("Nids de poule", "GRC-22");
    /* refused, or a pooled keep-alive connection found closed: no answer either way */
    assert_int_equal(deliver(&c, ev3, NULL, &a), RELAIS_DELIVER_RETRY);
    assert_int_equal(a.status, 0);
    assert_non_null(strstr(a.detail, "(will retry)"));
    relais_verdict v = RELAIS_DELIVER_RETRY;
    for (int i = 0; i < 60 && v == RELAIS_DELIVER_RETRY; i++) {
        ts_sleep_ms(50);
        v = deliver(&c, ev3, NULL, &a);
    }
    assert_int_equal(v, RELAIS_DELIVER_OK);
    assert_int_equal(wsim_stat(&SIM, "interventions"), 3);
    relais_event_unref(ev);
    relais_event_unref(ev2);
    relais_event_unref(ev3);
    wconn_close(&c);

    /* nothing listening at all */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ts_free_port());
    open_sink(&c, url, NULL);
    ev = request_event("Nids de poule", "GRC-23");
    assert_int_equal(deliver(&c, ev, NULL, &a), RELAIS_DELIVER_RETRY);
    assert_int_equal(a.status, 0);
    assert_non_null(strstr(a.detail, "Couldn't connect"));
    relais_event_unref(ev);
    wconn_close(&c);
}

/* The line of the first rule writing `to` in the shipped mapping. */
static int rule_line(const char *to)
{
    FILE *f = fopen(ts_source_path("connectors/worksite/mappings/intervention.yaml"), "r");
    assert_non_null(f);
    char line[512], want[64];
    snprintf(want, sizeof want, "- to: %s\n", to);
    int n = 0, found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        n++;
        found = strstr(line, want) != NULL;
    }
    fclose(f);
    assert_true(found);
    return n;
}

static void test_unknown_category_is_a_mapping_refusal(void **state)
{
    wconn c;
    open_sink(&c, SIM.url, NULL);
    relais_event *ev = request_event("Tags sur mobilier", "GRC-30");
    relais_answer a;
    long before = wsim_stat(&SIM, "requests");
    assert_int_equal(deliver(&c, ev, NULL, &a), RELAIS_DELIVER_REJECT);
    char want[256];
    snprintf(want, sizeof want, "intervention.yaml:%d: data /type_code: value 'Tags sur mobilier' is not in table "
             "'intervention_type'", rule_line("/type_code"));
    if (!strstr(a.detail, want)) fail_msg("detail '%s' does not say '%s'", a.detail, want);
    assert_string_equal(a.local_id, "");
    assert_int_equal(wsim_stat(&SIM, "requests"), before);   /* nothing sent */
    relais_event_unref(ev);
    wconn_close(&c);
}

static void test_options_and_init(void **state)
{
    wconn c;
    char err[512] = "";
    /* a sink needs a mapping */
    assert_int_equal(wconn_open(&c, RELAIS_MODE_SINK, "url: http://127.0.0.1:1\ntoken: env:WS_TEST_TOKEN\n", NULL,
                                NULL, NULL, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "needs a mapping"));
    wconn_close(&c);
    /* url and token are required; the token is a secret */
    assert_int_equal(wconn_open(&c, RELAIS_MODE_SINK, "token: env:WS_TEST_TOKEN\n", "intervention.yaml", NULL, NULL,
                                1, err, sizeof err), -1);
    assert_non_null(strstr(err, "url"));
    wconn_close(&c);
    assert_int_equal(wconn_open(&c, RELAIS_MODE_SINK, "url: http://x\ntoken: tok-in-clear\n", "intervention.yaml",
                                NULL, NULL, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "env:NAME or file:PATH"));
    wconn_close(&c);
    assert_int_equal(wconn_open(&c, RELAIS_MODE_SINK, "url: ftp://x/\ntoken: env:WS_TEST_TOKEN\n", "intervention.yaml",
                                NULL, NULL, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "not an http:// or https:// base URL"));
    wconn_close(&c);
    /* source-only options are refused on a sink */
    assert_int_equal(wconn_open(&c, RELAIS_MODE_SINK, "url: http://x\ntoken: env:WS_TEST_TOKEN\nself_account: relais\n",
                                "intervention.yaml", NULL, NULL, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "self_account"));
    wconn_close(&c);
    /* a base URL with a trailing slash works */
    char yaml[256];
    snprintf(yaml, sizeof yaml, "url: %s/\ntoken: env:WS_TEST_TOKEN\n", SIM.url);
    assert_int_equal(wconn_open(&c, RELAIS_MODE_SINK, yaml, "intervention.yaml", NULL, NULL, 1, err, sizeof err), 0);
    relais_event *ev = request_event("Espaces verts", "GRC-40");
    relais_answer a;
    assert_int_equal(deliver(&c, ev, NULL, &a), RELAIS_DELIVER_OK);
    relais_event_unref(ev);
    wconn_close(&c);
}

int main(void)
{
    setenv("WS_TEST_TOKEN", TOK_RELAIS, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_created_then_idempotent, reset),
        cmocka_unit_test_setup(test_verdicts, reset),
        cmocka_unit_test_setup(test_transport_failures_retry, reset),
        cmocka_unit_test_setup(test_unknown_category_is_a_mapping_refusal, reset),
        cmocka_unit_test_setup(test_options_and_init, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
