/*
 * test_publik_wcs.c - what the publik connector reads from w.c.s.
 * (connectors/publik/publik_wcs.c): the {err, data} envelope of every
 * example reply of the fixtures, malformed replies, the journal detail
 * line, error bodies valid against the envelope schema, local ids, slugs
 * and ids, and form exports turned into change records (record ids,
 * statuses before and after, comments, authors, echoes, file contents
 * left out).
 *
 * Fixtures: connectors/publik/fixtures/ (copies of
 * /work/shared/fixtures/wcs/examples/ and schema/). Single-threaded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "testsupport.h"
#include "jsonschema.h"
#include "../../connectors/publik/publik_int.h"

static relais_publik_env_kind parse_fixture(const char *name, relais_publik_env *env)
{
    char rel[256];
    size_t len;
    snprintf(rel, sizeof rel, "connectors/publik/fixtures/%s", name);
    char *body = ts_read_file(ts_source_path(rel), &len);
    relais_publik_env_kind k = relais_publik_env_parse(body, len, env);
    free(body);
    return k;
}

static void test_envelope_of_every_example(void **state)
{
    (void)state;
    relais_publik_env env;
    assert_int_equal(parse_fixture("error.403.json", &env), RELAIS_PUBLIK_ENV_ERR);
    assert_int_equal(env.err, 1);
    assert_string_equal(env.err_code, "access-denied");
    assert_string_equal(env.err_class, "Access denied");
    assert_string_equal(env.err_desc, "Invalid signature.");
    char d[300];
    relais_publik_env_describe(&env, 403, NULL, 0, d, sizeof d);
    assert_string_equal(d, "HTTP 403 access-denied: Invalid signature.");
    relais_publik_env_free(&env);

    assert_int_equal(parse_fixture("error.404.json", &env), RELAIS_PUBLIK_ENV_ERR);
    assert_null(env.err_desc);   /* null in the body */
    assert_string_equal(env.err_code, "not-found");
    relais_publik_env_describe(&env, 404, NULL, 0, d, sizeof d);
    assert_string_equal(d, "HTTP 404 not-found (err 1)");
    relais_publik_env_free(&env);

    assert_int_equal(parse_fixture("error.500.json", &env), RELAIS_PUBLIK_ENV_ERR);
    assert_null(env.err_code);
    relais_publik_env_describe(&env, 500, "{\"err\": 1}", 10, d, sizeof d);
    assert_string_equal(d, "HTTP 500: {\"err\": 1}");
    relais_publik_env_free(&env);

    assert_int_equal(parse_fixture("submit.response.json", &env), RELAIS_PUBLIK_ENV_OK);
    char id[64];
    assert_int_equal(relais_publik_form_id(env.data, id, sizeof id), 0);
    assert_string_equal(id, "42");
    assert_string_equal(json_string_value(json_object_get(env.root, "tracking_code")), "KZTWBNMQ");
    relais_publik_env_free(&env);

    assert_int_equal(parse_fixture("global_action_hook.response.json", &env), RELAIS_PUBLIK_ENV_OK);
    assert_null(env.data);
    relais_publik_env_free(&env);
    assert_int_equal(parse_fixture("trigger.response.json", &env), RELAIS_PUBLIK_ENV_OK);
    relais_publik_env_free(&env);
    assert_int_equal(parse_fixture("list.response.dict.json", &env), RELAIS_PUBLIK_ENV_OK);
    assert_int_equal(json_array_size(env.data), 2);
    assert_int_equal(json_integer_value(json_object_get(env.root, "count")), 3);
    relais_publik_env_free(&env);
    /* a read and the default list have no envelope */
    assert_int_equal(parse_fixture("list.response.json", &env), RELAIS_PUBLIK_ENV_BARE);
    relais_publik_env_free(&env);
    assert_int_equal(parse_fixture("form_read.response.json", &env), RELAIS_PUBLIK_ENV_BARE);
    assert_string_equal(json_string_value(json_object_get(env.root, "display_id")), "12-42");
    relais_publik_env_free(&env);
    relais_publik_env_free(NULL);
}

static void test_envelope_malformed(void **state)
{
    (void)state;
    relais_publik_env env;
    static const char *const bad[] = { "", "<html>Erreur</html>", "{\"err\": \"1\"}", "{\"err\": -1}",
                                       "{\"err\": 1.5}", "{\"err\": 0, \"err\": 1}", "{\"err\":0" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (relais_publik_env_parse(bad[i], strlen(bad[i]), &env) != RELAIS_PUBLIK_ENV_MALFORMED)
            fail_msg("'%s' was not refused", bad[i]);
        assert_null(env.root);
        assert_true(env.error[0] != '\0');
        relais_publik_env_free(&env);
    }
    /* err as a boolean, as w.c.s. accepts it from connectors */
    const char *okb = "{\"err\": false, \"data\": []}", *errb = "{\"err\": true}";
    assert_int_equal(relais_publik_env_parse(okb, strlen(okb), &env), RELAIS_PUBLIK_ENV_OK);
    relais_publik_env_free(&env);
    assert_int_equal(relais_publik_env_parse(errb, strlen(errb), &env), RELAIS_PUBLIK_ENV_ERR);
    relais_publik_env_free(&env);
    /* a detail from an HTML page: one line, cut */
    char d[300];
    const char *html = "<html>\n<body>Bad gateway</body>\n</html>";
    relais_publik_env_describe(NULL, 502, html, strlen(html), d, sizeof d);
    assert_string_equal(d, "HTTP 502: <html> <body>Bad gateway</body> </html>");
}

/* The envelope schema of the fixtures is draft-07; its keywords mean the
 * same in 2020-12, which the hub's validator speaks. */
static const relais_schema *envelope_schema(relais_schema_set **set)
{
    json_error_t je;
    json_t *doc = json_load_file(ts_source_path("connectors/publik/fixtures/envelope.schema.json"), 0, &je);
    if (!doc) fail_msg("envelope.schema.json: %s", je.text);
    json_object_set_new(doc, "$schema", json_string("https://json-schema.org/draft/2020-12/schema"));
    *set = relais_schema_set_new();
    char err[512];
    if (relais_schema_set_add(*set, doc, NULL, "envelope.schema.json", err, sizeof err) != 0
        || relais_schema_set_compile(*set, err, sizeof err) != 0)
        fail_msg("envelope schema: %s", err);
    json_decref(doc);
    const relais_schema *sc = relais_schema_set_get(*set, "https://relais.invalid/schemas/publik-envelope.schema.json");
    assert_non_null(sc);
    return sc;
}

static void test_error_bodies_follow_the_schema(void **state)
{
    (void)state;
    relais_schema_set *set;
    const relais_schema *sc = envelope_schema(&set);
    json_t *b = relais_publik_error_body("Access denied", "access-denied", "Invalid signature.");
    assert_int_equal(relais_schema_validate(sc, b, NULL, NULL, 0, NULL), 1);
    char *txt = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(txt, "{\"err\":1,\"err_class\":\"Access denied\",\"err_code\":\"access-denied\","
                             "\"err_desc\":\"Invalid signature.\"}");
    free(txt);
    json_decref(b);
    b = relais_publik_error_body("Page not found", "not-found", NULL);
    assert_true(json_is_null(json_object_get(b, "err_desc")));
    assert_int_equal(relais_schema_validate(sc, b, NULL, NULL, 0, NULL), 1);
    json_decref(b);
    /* the schema does refuse a success that carries an error text */
    b = json_pack("{s:i,s:s}", "err", 0, "err_desc", "x");
    assert_int_equal(relais_schema_validate(sc, b, NULL, NULL, 0, NULL), 0);
    json_decref(b);
    relais_schema_set_destroy(set);
}

static void test_identifiers(void **state)
{
    (void)state;
    char slug[128], id[80];
    assert_int_equal(relais_publik_local_split("signalement-voirie/12", slug, sizeof slug, id, sizeof id), 0);
    assert_string_equal(slug, "signalement-voirie");
    assert_string_equal(id, "12");
    assert_int_equal(relais_publik_local_split("demande/12-42", slug, sizeof slug, id, sizeof id), 0);
    assert_string_equal(id, "12-42");
    static const char *const bad[] = { "noslash", "/12", "slug/", "Slug/1", "a/b/c", "a/1?x=1", "a b/1",
                                       "a/../1", NULL };
    for (size_t i = 0; bad[i]; i++)
        if (relais_publik_local_split(bad[i], slug, sizeof slug, id, sizeof id) == 0)
            fail_msg("'%s' accepted as a local id", bad[i]);
    assert_int_equal(relais_publik_local_split(NULL, slug, sizeof slug, id, sizeof id), -1);
    assert_int_equal(relais_publik_slug_ok("signalement-voirie"), 0);
    assert_int_equal(relais_publik_slug_ok(""), -1);
    assert_int_equal(relais_publik_id_ok("12-42"), 0);

    json_t *f = json_pack("{s:s}", "url", "https://demarches.example.org/signalement-voirie/7/");
    assert_int_equal(relais_publik_form_slug(f, slug, sizeof slug), 0);
    assert_string_equal(slug, "signalement-voirie");
    json_object_set_new(f, "api_url", json_string("https://x.example/api/forms/demande-proprete/7/"));
    assert_int_equal(relais_publik_form_slug(f, slug, sizeof slug), 0);
    assert_string_equal(slug, "demande-proprete");
    json_decref(f);
    f = json_pack("{s:s}", "url", "https://x.example/");
    assert_int_equal(relais_publik_form_slug(f, slug, sizeof slug), -1);
    json_decref(f);
    f = json_pack("{s:i}", "id", 77);
    assert_int_equal(relais_publik_form_id(f, id, sizeof id), 0);
    assert_string_equal(id, "77");
    json_decref(f);
    f = json_pack("{s:s}", "id", "7/../8");
    assert_int_equal(relais_publik_form_id(f, id, sizeof id), -1);
    json_decref(f);
}

static json_t *form_read_fixture(void)
{
    json_error_t je;
    json_t *f = json_load_file(ts_source_path("connectors/publik/fixtures/form_read.response.json"), 0, &je);
    if (!f) fail_msg("form_read.response.json: %s", je.text);
    return f;
}

static void test_changes_of_the_read_example(void **state)
{
    (void)state;
    json_t *form = form_read_fixture();
    relais_publik_changes ch;
    char err[256];
    assert_int_equal(relais_publik_form_changes(form, NULL, "relais", &ch, err, sizeof err), 0);
    assert_string_equal(ch.slug, "demande-acte-etat-civil");
    assert_string_equal(ch.id, "42");
    assert_int_equal(ch.n, 2);
    assert_string_equal(ch.c[0].record_id, "demande-acte-etat-civil/42/created");
    assert_int_equal(ch.c[0].created, 1);
    assert_int_equal(ch.c[0].echo, 0);
    json_t *r = ch.c[0].record;
    assert_string_equal(json_string_value(json_object_get(r, "change")), "created");
    assert_string_equal(json_string_value(json_object_get(r, "status")), "new");
    assert_string_equal(json_string_value(json_object_get(r, "who")), "Camille Exemple");
    assert_string_equal(json_string_value(json_object_get(r, "time")), "2024-03-05T10:15:00.318205+01:00");
    assert_null(json_object_get(r, "previous_status"));
    assert_null(json_object_get(r, "subject"));   /* the caller adds it */
    /* the file's content is left out, the rest of the file kept */
    json_t *just = json_object_get(json_object_get(json_object_get(r, "form"), "fields"), "justificatif");
    assert_non_null(json_object_get(just, "filename"));
    assert_non_null(json_object_get(just, "url"));
    assert_null(json_object_get(just, "content"));
    assert_non_null(json_object_get(json_object_get(json_object_get(form, "fields"), "justificatif"), "content"));

    assert_string_equal(ch.c[1].record_id, "demande-acte-etat-civil/42/1");
    r = ch.c[1].record;
    assert_string_equal(json_string_value(json_object_get(r, "change")), "updated");
    assert_string_equal(json_string_value(json_object_get(r, "status")), "transmise");
    assert_string_equal(json_string_value(json_object_get(r, "previous_status")), "new");
    assert_int_equal(json_integer_value(json_object_get(r, "index")), 1);
    assert_null(json_object_get(r, "who"));       /* who_id null, no who */
    relais_publik_changes_free(&ch);

    /* the same form seen with a forced slug gives the same record ids */
    assert_int_equal(relais_publik_form_changes(form, "demande-acte-etat-civil", NULL, &ch, err, sizeof err), 0);
    assert_string_equal(ch.c[1].record_id, "demande-acte-etat-civil/42/1");
    relais_publik_changes_free(&ch);

    /* the submitter as self_user: the creation is an echo */
    assert_int_equal(relais_publik_form_changes(form, NULL, "Camille Exemple", &ch, err, sizeof err), 0);
    assert_int_equal(ch.c[0].echo, 1);
    assert_int_equal(ch.c[1].echo, 0);
    relais_publik_changes_free(&ch);
    json_decref(form);
}

static void test_changes_comments_and_echoes(void **state)
{
    (void)state;
    json_t *form = json_pack(
        "{s:s,s:s,s:s,s:[{s:s,s:s,s:s},{s:s,s:s,s:s,s:{s:s},s:s},{s:s,s:s},{s:s,s:s,s:s},{s:s,s:s,s:s,s:s}]}",
        "id", "5", "api_url", "http://w/api/forms/signalement-voirie/5/", "last_update_time", "2026-01-01T10:00:00",
        "evolution",
        "time", "t0", "who_id", "_submitter", "status", "new",
        "time", "t1", "who_id", "api-access:relais", "status", "en-cours", "who", "name", "relais",
            "comment", "Pris en compte",
        "time", "t2", "who_id", "101",                                /* no status, no comment: skipped */
        "time", "t3", "who_id", "101", "comment", "Photo reçue",      /* a comment alone */
        "time", "t4", "who_id", "relais", "status", "termine", "comment", "Fini");
    relais_publik_changes ch;
    char err[256];
    assert_int_equal(relais_publik_form_changes(form, NULL, "relais", &ch, err, sizeof err), 0);
    assert_int_equal(ch.n, 4);
    assert_string_equal(ch.c[1].record_id, "signalement-voirie/5/1");
    assert_int_equal(ch.c[1].echo, 1);   /* who.name */
    assert_string_equal(ch.c[2].record_id, "signalement-voirie/5/3");
    assert_int_equal(ch.c[2].echo, 0);
    /* a comment alone keeps the status in effect */
    assert_string_equal(json_string_value(json_object_get(ch.c[2].record, "status")), "en-cours");
    assert_string_equal(json_string_value(json_object_get(ch.c[2].record, "previous_status")), "en-cours");
    assert_string_equal(json_string_value(json_object_get(ch.c[2].record, "comment")), "Photo reçue");
    assert_string_equal(ch.c[3].record_id, "signalement-voirie/5/4");
    assert_int_equal(ch.c[3].echo, 1);   /* who_id */
    assert_string_equal(json_string_value(json_object_get(ch.c[3].record, "previous_status")), "en-cours");
    relais_publik_changes_free(&ch);
    relais_publik_changes_free(NULL);
    json_decref(form);

    /* a form without history (a draft, a list item) has no change */
    form = json_pack("{s:s,s:s}", "id", "6", "url", "http://w/signalement-voirie/6/");
    assert_int_equal(relais_publik_form_changes(form, NULL, NULL, &ch, err, sizeof err), 0);
    assert_int_equal(ch.n, 0);
    relais_publik_changes_free(&ch);
    json_decref(form);
}

static void test_changes_refused(void **state)
{
    (void)state;
    relais_publik_changes ch;
    char err[256];
    struct { const char *json; const char *slug; const char *msg; } cases[] = {
        { "[]", NULL, "not a JSON object" },
        { "{\"url\": \"http://w/s/1/\"}", NULL, "no usable \"id\"" },
        { "{\"id\": \"1\"}", NULL, "neither in \"api_url\"" },
        { "{\"id\": \"1\"}", "Bad Slug", "is not valid" },
        { "{\"id\": \"1\", \"url\": \"http://w/s/1/\", \"evolution\": {}}", NULL, "is not a list" },
        { "{\"id\": \"1\", \"url\": \"http://w/s/1/\", \"evolution\": [1]}", NULL, "evolution[0]" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *f = json_loads(cases[i].json, 0, NULL);
        assert_non_null(f);
        assert_int_equal(relais_publik_form_changes(f, cases[i].slug, NULL, &ch, err, sizeof err), -1);
        if (!strstr(err, cases[i].msg)) fail_msg("%s: '%s' lacks '%s'", cases[i].json, err, cases[i].msg);
        assert_int_equal(ch.n, 0);
        json_decref(f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_of_every_example),
        cmocka_unit_test(test_envelope_malformed),
        cmocka_unit_test(test_error_bodies_follow_the_schema),
        cmocka_unit_test(test_identifiers),
        cmocka_unit_test(test_changes_of_the_read_example),
        cmocka_unit_test(test_changes_comments_and_echoes),
        cmocka_unit_test(test_changes_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
