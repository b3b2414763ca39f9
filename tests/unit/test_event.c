/* Unit tests: the canonical envelope (hub/event.c). */
#include <stdlib.h>
#include <string.h>
#include "testsupport.h"
#include "event_int.h"

static relais_event *build(const char *type, const char *subject, const char *rid, json_t *data)
{
    relais_record r = { .record_id = rid, .type = type, .subject = subject, .data = data };
    char err[256];
    return relais_event_build(&r, "desk", "ville", err, sizeof err);
}

static void test_build_sets_cloudevents_attributes(void **state)
{
    (void)state;
    json_t *data = json_pack("{s:s}", "category", "voirie");
    relais_event *ev = build("fr.relais.grc.request.created", "request/42", "R-1", data);
    assert_non_null(ev);
    json_t *o = relais_event_object(ev);
    assert_string_equal(json_string_value(json_object_get(o, "specversion")), "1.0");
    assert_int_equal(strlen(relais_event_id(ev)), 36);
    assert_int_equal(relais_event_id(ev)[14], '7');                 /* UUID version 7 */
    assert_string_equal(relais_event_source(ev), "/relais/ville/desk");
    assert_string_equal(relais_event_source_instance(ev), "desk");
    assert_string_equal(relais_event_type(ev), "fr.relais.grc.request.created");
    assert_string_equal(relais_event_subject(ev), "request/42");
    assert_string_equal(relais_event_tenant(ev), "ville");
    assert_string_equal(relais_event_record_id(ev), "R-1");
    /* no correlation given: the event starts its own case */
    assert_string_equal(relais_event_correlation(ev), relais_event_id(ev));
    assert_int_equal(strlen(relais_event_traceparent(ev)), 55);
    assert_int_equal(strncmp(relais_event_traceparent(ev), "00-", 3), 0);
    assert_string_equal(json_string_value(json_object_get(relais_event_data(ev), "category")), "voirie");
    /* the data was copied: changing the caller's object does not change the event */
    json_object_set_new(data, "category", json_string("other"));
    assert_string_equal(json_string_value(json_object_get(relais_event_data(ev), "category")), "voirie");
    /* the serialisation round-trips through the parser */
    size_t len;
    const char *js = relais_event_json(ev, &len);
    char err[256];
    relais_event *back = relais_event_parse(js, len, err, sizeof err);
    assert_non_null(back);
    assert_string_equal(relais_event_id(back), relais_event_id(ev));
    assert_string_equal(relais_event_source_instance(back), "desk");
    assert_string_equal(relais_event_record_id(back), "R-1");
    relais_event_unref(back);
    relais_event_unref(ev);
    json_decref(data);
}

/* build_take shares the caller's data (no copy) and releases it on failure
 * (ASan/valgrind would report a leak or a double free). */
static void test_build_take_shares_data(void **state)
{
    (void)state;
    json_t *d = json_pack("{s:s}", "category", "voirie");
    relais_record r = { .type = "fr.relais.grc.request.created.v1", .record_id = "R-1" };
    char err[256];
    relais_event *ev = relais_event_build_take(&r, json_incref(d), "desk", "ville", err, sizeof err);
    assert_non_null(ev);
    assert_ptr_equal(relais_event_data(ev), d);          /* the same object, not a copy */
    assert_int_equal(d->refcount, 2);
    relais_event_unref(ev);
    assert_int_equal(d->refcount, 1);
    r.type = "Not A Type";
    assert_null(relais_event_build_take(&r, json_incref(d), "desk", "ville", err, sizeof err));
    assert_int_equal(d->refcount, 1);                    /* released on failure */
    json_decref(d);
}

static void test_record_id_defaults_to_content_hash(void **state)
{
    (void)state;
    json_t *a = json_pack("{s:i, s:s}", "b", 1, "a", "x");
    json_t *b = json_pack("{s:s, s:i}", "a", "x", "b", 1);   /* same content, other key order */
    relais_event *e1 = build("fr.relais.grc.request.created", NULL, NULL, a);
    relais_event *e2 = build("fr.relais.grc.request.created", NULL, NULL, b);
    assert_non_null(e1);
    assert_non_null(e2);
    assert_int_equal(strlen(relais_event_record_id(e1)), 64);
    assert_string_equal(relais_event_record_id(e1), relais_event_record_id(e2));
    assert_string_not_equal(relais_event_id(e1), relais_event_id(e2));
    relais_event_unref(e1);
    relais_event_unref(e2);
    json_decref(a);
    json_decref(b);
}

static void test_given_correlation_and_traceparent_kept(void **state)
{
    (void)state;
    json_t *d = json_object();
    const char *tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    relais_record r = { .type = "fr.relais.x.y", .correlation_id = "case-7", .traceparent = tp, .data = d };
    char err[256];
    relais_event *ev = relais_event_build(&r, "desk", NULL, err, sizeof err);
    assert_non_null(ev);
    assert_string_equal(relais_event_correlation(ev), "case-7");
    assert_string_equal(relais_event_traceparent(ev), tp);
    assert_string_equal(relais_event_tenant(ev), "default");
    relais_event_unref(ev);
    /* a malformed traceparent is replaced by a new trace */
    r.traceparent = "00-XYZ";
    ev = relais_event_build(&r, "desk", NULL, err, sizeof err);
    assert_non_null(ev);
    assert_string_not_equal(relais_event_traceparent(ev), "00-XYZ");
    relais_event_unref(ev);
    json_decref(d);
}

static void test_build_rejects_bad_records(void **state)
{
    (void)state;
    char err[256];
    json_t *d = json_object();
    json_t *arr = json_array();
    relais_record r = { .type = NULL, .data = d };
    assert_null(relais_event_build(&r, "desk", NULL, err, sizeof err));
    assert_non_null(strstr(err, "type"));
    r.type = "Bad Type";
    assert_null(relais_event_build(&r, "desk", NULL, err, sizeof err));
    assert_non_null(strstr(err, "type"));
    r.type = "single";
    assert_null(relais_event_build(&r, "desk", NULL, err, sizeof err));
    r.type = "fr.relais.x.y";
    r.data = arr;
    assert_null(relais_event_build(&r, "desk", NULL, err, sizeof err));
    assert_non_null(strstr(err, "data"));
    r.data = d;
    r.subject = "";
    assert_null(relais_event_build(&r, "desk", NULL, err, sizeof err));
    assert_non_null(strstr(err, "subject"));
    json_decref(d);
    json_decref(arr);
}

static void test_parse_reports_json_path(void **state)
{
    (void)state;
    char err[256];
    const char *cases[][2] = {
        { "{\"id\":\"1\",\"source\":\"s\",\"type\":\"a.b\"}", "$.specversion" },
        { "{\"specversion\":\"1.0\",\"source\":\"s\",\"type\":\"a.b\"}", "$.id: missing" },
        { "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":7}", "$.type" },
        { "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"a.b\",\"data\":[1]}", "$.data" },
        { "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"a.b\",\"Bad\":\"x\"}", "$.Bad" },
        { "{\"specversion\":\"1.0\",\"id\":\"1\",\"id\":\"2\",\"source\":\"s\",\"type\":\"a.b\"}", "duplicate" },
        { "{\"specversion\":\"1.0\",", "line 1" },
        { "[]", "$: must be a JSON object" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        relais_event *ev = relais_event_parse(cases[i][0], strlen(cases[i][0]), err, sizeof err);
        assert_null(ev);
        if (!strstr(err, cases[i][1])) fail_msg("case %zu: '%s' does not contain '%s'", i, err, cases[i][1]);
    }
    const char *ok = "{\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"/x\",\"type\":\"a.b\"}";
    relais_event *ev = relais_event_parse(ok, strlen(ok), err, sizeof err);
    assert_non_null(ev);
    assert_string_equal(relais_event_tenant(ev), "default");     /* defaults for Relais extensions */
    assert_string_equal(relais_event_correlation(ev), "e1");
    assert_non_null(relais_event_data(ev));
    relais_event_unref(ev);
}

static void test_entity_from_type(void **state)
{
    (void)state;
    json_t *d = json_object();
    char buf[64];
    relais_event *ev = build("fr.relais.grc.request.created", "request/1", "r", d);
    relais_event_entity(ev, buf, sizeof buf);
    assert_string_equal(buf, "request");
    relais_event_unref(ev);
    ev = build("com.example.thing", "x", "r", d);
    relais_event_entity(ev, buf, sizeof buf);
    assert_string_equal(buf, "subject");
    relais_event_unref(ev);
    json_decref(d);
}

static void test_time_and_uuid_helpers(void **state)
{
    (void)state;
    char t[40];
    relais_time_rfc3339(1764097590123456LL, t, sizeof t);
    assert_string_equal(t, "2025-11-25T19:06:30.123456Z");
    char a[37], b[37];
    relais_uuid_v7(a);
    relais_uuid_v7(b);
    assert_string_not_equal(a, b);
    assert_int_equal(a[8], '-');
    assert_true(a[19] == '8' || a[19] == '9' || a[19] == 'a' || a[19] == 'b');   /* RFC 9562 variant */
    char h[65];
    relais_sha256_hex("abc", 3, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_true(relais_event_type_valid("fr.relais.grc.request.created"));
    assert_false(relais_event_type_valid("fr..x"));
    assert_false(relais_event_type_valid("fr.x."));
    assert_false(relais_event_type_valid("FR.x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_sets_cloudevents_attributes),
        cmocka_unit_test(test_record_id_defaults_to_content_hash),
        cmocka_unit_test(test_given_correlation_and_traceparent_kept),
        cmocka_unit_test(test_build_rejects_bad_records),
        cmocka_unit_test(test_parse_reports_json_path),
        cmocka_unit_test(test_entity_from_type),
        cmocka_unit_test(test_build_take_shares_data),
        cmocka_unit_test(test_time_and_uuid_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
