/*
 * test_worksite_source.c - the worksite source (the poller) against
 * relais-sim-worksite (a child process), with the shipped mapping
 * mappings/workorder.yaml and a fake hub that maps records the way the hub
 * does (the instance's inbound mapping, then the canonical schema of the
 * type), dedupes on record ids, keeps package state and cross-references in
 * memory and counts echoes:
 *   changes by the agent -> workorder.updated / .completed / .created with
 *   origin_request (external_ref, else the cross-reference), record id
 *   "<intervention>/<change>"; changes by Relais's own account -> echoes,
 *   never events; a second poll submits nothing; a lost checkpoint only
 *   brings duplicates; pages walked with the cursor;
 *   the checkpoint stays where it was when the hub, the journal or the tool
 *   is unavailable, and everything comes once they are back;
 *   the poller thread polls by itself; option and init refusals.
 * No database: the fake hub stands for the journal.
 */
#include <pthread.h>
#include "test_worksite_support.h"
#include "jsonschema.h"
#include "jsonptr.h"

static wsim SIM;
static relais_schema_set *CANON;

/* ---- The fake hub ---------------------------------------------------------------
 * Written by the poller thread (through the ops) and read by the test thread:
 * everything under F.lock. */
static struct fake {
    pthread_mutex_t lock;
    json_t *events;      /* every event accepted: {record_id,type,subject,data} */
    json_t *seen;        /* record id -> 1 */
    json_t *echoes;      /* record ids */
    json_t *rejects;     /* {where, reason} */
    json_t *state;       /* key -> value */
    json_t *xref;        /* local id -> canonical id (package worksite, entity request) */
    long    submits;     /* submit calls */
    long    duplicates;
    int     unavailable; /* submit answers UNAVAILABLE */
    int     journal_down;/* state and xref calls fail */
    int     xref_down;   /* xref calls fail */
} F = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int fake_submit(void *hub, relais_instance *inst, const relais_record *recs, size_t n,
                       relais_submit_result *res)
{
    pthread_mutex_lock(&F.lock);
    F.submits++;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof res[i]);
        if (F.unavailable) {
            res[i].status = RELAIS_SUBMIT_UNAVAILABLE;
            snprintf(res[i].reason, sizeof res[i].reason, "journal down");
            rc = -1;
            continue;
        }
        relais_mapped_record mr;
        memset(&mr, 0, sizeof mr);
        char err[512];
        if (relais_mapping_inbound_json(inst->mapping, recs[i].data, &mr, err, sizeof err) != 0)
            fail_msg("record %s refused by the mapping: %s", recs[i].record_id, err);
        relais_schema_fault f;
        size_t nf = 0;
        const relais_schema *sc = relais_schema_set_for_type(CANON, mr.type);
        if (!sc) fail_msg("no canonical schema for %s", mr.type);
        if (!relais_schema_validate(sc, mr.data, "$.data", &f, 1, &nf))
            fail_msg("record %s: %s is not canonical: %s: %s", recs[i].record_id, mr.type, f.path, f.message);
        if (strcmp(mr.record_id, recs[i].record_id) != 0 || strcmp(mr.subject, recs[i].subject) != 0)
            fail_msg("the mapping's record id / subject (%s %s) differ from the connector's (%s %s)", mr.record_id,
                     mr.subject, recs[i].record_id, recs[i].subject);
        if (json_object_get(F.seen, mr.record_id)) {
            res[i].status = RELAIS_SUBMIT_DUPLICATE;
            F.duplicates++;
        } else {
            res[i].status = RELAIS_SUBMIT_ACCEPTED;
            json_object_set_new(F.seen, mr.record_id, json_true());
            json_array_append_new(F.events, json_pack("{s:s,s:s,s:s,s:O}", "record_id", mr.record_id, "type",
                                                      mr.type, "subject", mr.subject, "data", mr.data));
        }
        relais_mapped_record_clear(&mr);
    }
    pthread_mutex_unlock(&F.lock);
    return rc;
}

static int fake_reject(void *hub, relais_instance *inst, const char *record_id, const char *where,
                       const char *reason, const char *raw, size_t rawlen)
{
    pthread_mutex_lock(&F.lock);
    json_array_append_new(F.rejects, json_pack("{s:s,s:s}", "where", where, "reason", reason));
    pthread_mutex_unlock(&F.lock);
    return 0;
}

static int fake_accepting(void *hub, const relais_instance *inst)
{
    return 1;
}

static int fake_xref_canonical(void *hub, const relais_instance *inst, const char *package, const char *entity,
                               const char *local_id, char *out, size_t outlen)
{
    pthread_mutex_lock(&F.lock);
    int rc = F.journal_down || F.xref_down ? -1 : 1;
    const char *c = json_string_value(json_object_get(F.xref, local_id));
    if (rc == 1 && c && !package && !strcmp(entity, "request")) {
        snprintf(out, outlen, "%s", c);
        rc = 0;
    }
    pthread_mutex_unlock(&F.lock);
    return rc;
}

static int fake_state_put(void *hub, const relais_instance *inst, const char *key, json_t *value)
{
    pthread_mutex_lock(&F.lock);
    int rc = F.journal_down ? -1 : 0;
    if (rc == 0) json_object_set_new(F.state, key, json_deep_copy(value));
    pthread_mutex_unlock(&F.lock);
    return rc;
}

static json_t *fake_state_get(void *hub, const relais_instance *inst, const char *key, int *err)
{
    pthread_mutex_lock(&F.lock);
    *err = F.journal_down;
    json_t *v = F.journal_down ? NULL : json_deep_copy(json_object_get(F.state, key));
    pthread_mutex_unlock(&F.lock);
    return v;
}

static void fake_echo(void *hub, relais_instance *inst, const char *record_id)
{
    pthread_mutex_lock(&F.lock);
    json_array_append_new(F.echoes, json_string(record_id));
    pthread_mutex_unlock(&F.lock);
}

static const relais_instance_ops fake_ops = {
    .submit = fake_submit, .reject = fake_reject, .accepting = fake_accepting,
    .xref_canonical = fake_xref_canonical, .state_put = fake_state_put, .state_get = fake_state_get,
    .echo = fake_echo,
};

static void fake_reset(void)
{
    pthread_mutex_lock(&F.lock);
    json_t **all[] = { &F.events, &F.seen, &F.echoes, &F.rejects, &F.state, &F.xref };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) json_decref(*all[i]);
    F.events = json_array();
    F.seen = json_object();
    F.echoes = json_array();
    F.rejects = json_array();
    F.state = json_object();
    F.xref = json_object();
    F.submits = F.duplicates = 0;
    F.unavailable = F.journal_down = F.xref_down = 0;
    pthread_mutex_unlock(&F.lock);
}

static size_t count(json_t **arr)
{
    pthread_mutex_lock(&F.lock);
    size_t n = json_array_size(*arr);
    pthread_mutex_unlock(&F.lock);
    return n;
}

/* Event i (a copy). */
static json_t *event(size_t i)
{
    pthread_mutex_lock(&F.lock);
    json_t *e = json_deep_copy(json_array_get(F.events, i));
    pthread_mutex_unlock(&F.lock);
    if (!e) fail_msg("no event %zu", i);
    return e;
}

/* The checkpoint as text ("" when none). */
static char *checkpoint(void)
{
    pthread_mutex_lock(&F.lock);
    json_t *v = json_object_get(F.state, "checkpoint/works");
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : strdup("");
    pthread_mutex_unlock(&F.lock);
    return s;
}

static const char *S(json_t *o, const char *ptr)
{
    json_t *v = relais_json_pointer(o, ptr);
    if (!json_is_string(v)) fail_msg("no text at %s", ptr);
    return json_string_value(v);
}

/* ---- Setup -------------------------------------------------------------------- */

static int group_setup(void **state)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    wsim_spawn(&SIM, NULL);
    char err[512];
    CANON = relais_schema_set_new();
    if (relais_schema_set_load_dir(CANON, ts_source_path("schemas"), err, sizeof err) != 0
        || relais_schema_set_compile(CANON, err, sizeof err) != 0)
        fail_msg("canonical schemas: %s", err);
    return 0;
}

static int group_teardown(void **state)
{
    wsim_kill(&SIM);
    relais_schema_set_destroy(CANON);
    fake_reset();
    json_t **all[] = { &F.events, &F.seen, &F.echoes, &F.rejects, &F.state, &F.xref };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        json_decref(*all[i]);
        *all[i] = NULL;
    }
    curl_global_cleanup();
    return 0;
}

static int reset(void **state)
{
    wsim_ctl(&SIM, "/_sim/reset", "{}");
    fake_reset();
    return 0;
}

static void open_source(wconn *c, const char *extra, int start)
{
    char yaml[512], err[512] = "";
    snprintf(yaml, sizeof yaml, "url: %s\ntoken: env:WS_TEST_TOKEN\nself_account: relais\ntimeout: 2s\n%s%s",
             SIM.url, extra && strstr(extra, "poll_interval") ? "" : "poll_interval: 1h\n", extra ? extra : "");
    if (wconn_open(c, RELAIS_MODE_SOURCE, yaml, "workorder.yaml", &fake_ops, NULL, start, err, sizeof err) != 0)
        fail_msg("source: %s", err);
}

static int poll_once(wconn *c)
{
    return ws_source_poll(wconn_source(c));
}

#define POTHOLE(ext) "{\"type_code\":\"VOI-03\",\"description\":\"Nid de poule\",\"location\":{\"address\":\"12 rue des Tanneurs\"," \
                     "\"city\":\"Villebrune\",\"lat\":48.11,\"lon\":-1.68}" ext "}"

static void move(const char *id, const char *token, const char *body)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/interventions/%s/status", id);
    json_decref(wexpect(&SIM, "POST", path, token, body, 200));
}

static void agent_next(const char *id, const char *extra)
{
    char body[256];
    snprintf(body, sizeof body, "{\"id\":\"%s\"%s}", id, extra ? extra : "");
    wsim_ctl(&SIM, "/_sim/advance", body);
}

/* ---- Tests ---------------------------------------------------------------------- */

static void test_changes_become_events_echoes_do_not(void **state)
{
    wconn c;
    open_source(&c, NULL, 0);
    char id[64], rid[96];
    snprintf(id, sizeof id, "%s", wsim_create(&SIM, TOK_RELAIS, POTHOLE(",\"external_ref\":\"request/GRC-1\"")));
    /* the creation was Relais's own write: an echo */
    assert_int_equal(poll_once(&c), 0);
    assert_int_equal(count(&F.events), 0);
    assert_int_equal(count(&F.echoes), 1);
    snprintf(rid, sizeof rid, "%s/1", id);
    pthread_mutex_lock(&F.lock);
    assert_string_equal(json_string_value(json_array_get(F.echoes, 0)), rid);
    pthread_mutex_unlock(&F.lock);
    char *cp = checkpoint();
    assert_non_null(strstr(cp, rid));
    free(cp);

    /* the agent accepts it: workorder.updated with the request it comes from */
    move(id, TOK_AGENT, "{\"status\":\"accepted\",\"comment\":\"Pris en compte\"}");
    assert_int_equal(poll_once(&c), 0);
    assert_int_equal(count(&F.events), 1);
    json_t *e = event(0);
    snprintf(rid, sizeof rid, "%s/2", id);
    assert_string_equal(S(e, "/record_id"), rid);
    assert_string_equal(S(e, "/type"), "fr.relais.technical.workorder.updated.v1");
    char subj[96];
    snprintf(subj, sizeof subj, "workorder/%s", id);
    assert_string_equal(S(e, "/subject"), subj);
    assert_string_equal(S(e, "/data/status"), "new");
    assert_string_equal(S(e, "/data/previous_status"), "new");
    assert_string_equal(S(e, "/data/comment"), "Pris en compte");
    assert_string_equal(S(e, "/data/origin_request/subject"), "request/GRC-1");
    assert_string_equal(S(e, "/data/team/label"), "Régie voirie");
    json_decref(e);

    /* polling again: nothing new, nothing submitted, no echo counted twice */
    long calls = F.submits;
    assert_int_equal(poll_once(&c), 0);
    assert_int_equal(poll_once(&c), 0);
    assert_int_equal(F.submits, calls);
    assert_int_equal(count(&F.echoes), 1);

    /* Relais plans it itself (its own account): an echo, not an event */
    move(id, TOK_RELAIS, "{\"status\":\"planned\",\"planned_start\":\"2026-03-09T07:30:00Z\"}");
    assert_int_equal(poll_once(&c), 0);
    assert_int_equal(count(&F.events), 1);
    assert_int_equal(count(&F.echoes), 2);

    /* the agent goes on site, then finishes */
    agent_next(id, NULL);
    agent_next(id, ",\"comment\":\"Trou rebouché\"");
    assert_int_equal(poll_once(&c), 0);
    assert_int_equal(count(&F.events), 3);
    e = event(1);
    assert_string_equal(S(e, "/type"), "fr.relais.technical.workorder.updated.v1");
    assert_string_equal(S(e, "/data/status"), "in_progress");
    assert_string_equal(S(e, "/data/previous_status"), "planned");
    json_decref(e);
    e = event(2);
    assert_string_equal(S(e, "/type"), "fr.relais.technical.workorder.completed.v1");
    assert_string_equal(S(e, "/data/status"), "done");
    assert_string_equal(S(e, "/data/report"), "Trou rebouché");
    assert_string_equal(S(e, "/data/origin_request/subject"), "request/GRC-1");
    json_t *hist = wexpect(&SIM, "GET", "/_sim/interventions", NULL, NULL, 200);
    assert_string_equal(S(e, "/data/done_at"), S(hist, "/0/history/4/at"));
    json_decref(hist);
    json_decref(e);

    /* the checkpoint lost: every change again, only duplicates */
    pthread_mutex_lock(&F.lock);
    json_object_clear(F.state);
    pthread_mutex_unlock(&F.lock);
    assert_int_equal(poll_once(&c), 0);
    assert_int_equal(count(&F.events), 3);
    assert_int_equal(F.duplicates, 3);
    assert_int_equal(count(&F.rejects), 0);
    wconn_close(&c);
}

static void test_origin_from_the_cross_reference(void **state)
{
    wconn c;
    open_source(&c, NULL, 0);
    char a[32], b[32];
    snprintf(a, sizeof a, "%s", wsim_create(&SIM, TOK_RELAIS, POTHOLE("")));
    snprintf(b, sizeof b, "%s", wsim_create(&SIM, TOK_RELAIS, POTHOLE("")));
    pthread_mutex_lock(&F.lock);
    json_object_set_new(F.xref, a, json_string("request/wcs-signalement-17"));
    pthread_mutex_unlock(&F.lock);
    agent_next(a, NULL);
    agent_next(b, NULL);
    assert_int_equal(poll_once(&c), 0);
    assert_int_equal(count(&F.events), 2);
    json_t *e = event(0);
    assert_string_equal(S(e, "/data/origin_request/subject"), "request/wcs-signalement-17");
    json_decref(e);
    e = event(1);
    assert_null(json_object_get(json_object_get(e, "data"), "origin_request"));
    json_decref(e);
    /* the journal cannot answer the cross-reference: the poll stops, checkpoint kept */
    agent_next(b, NULL);
    char *before = checkpoint();
    pthread_mutex_lock(&F.lock);
    F.xref_down = 1;
    pthread_mutex_unlock(&F.lock);
    assert_int_equal(poll_once(&c), -1);
    assert_int_equal(count(&F.events), 2);
    pthread_mutex_lock(&F.lock);
    F.xref_down = 0;
    pthread_mutex_unlock(&F.lock);
    char *after = checkpoint();
    assert_string_equal(before, after);
    free(before);
    free(after);
    wconn_close(&c);
}

static void test_agent_created_and_refused(void **state)
{
    wconn c;
    open_source(&c, NULL, 0);
    char a[32], b[32];
    snprintf(a, sizeof a, "%s", wsim_create(&SIM, TOK_AGENT, "{\"type_code\":\"ESV-01\",\"description\":\"Branche cassée\","
                                            "\"location\":{\"lat\":48.112,\"lon\":-1.679,\"details\":\"Square Victor Hugo\"},"
                                            "\"priority\":\"high\"}"));
    snprintf(b, sizeof b, "%s", wsim_create(&SIM, TOK_RELAIS, POTHOLE(",\"external_ref\":\"request/o311-42\"")));
    move(b, TOK_AGENT, "{\"status\":\"refused\",\"reason\":\"doublon\",\"comment\":\"Déjà signalé\"}");
    assert_int_equal(poll_once(&c), 0);
    assert_int_equal(count(&F.events), 2);
    assert_int_equal(count(&F.echoes), 1);   /* b's creation */
    json_t *e = event(0);
    assert_string_equal(S(e, "/type"), "fr.relais.technical.workorder.created.v1");
    assert_string_equal(S(e, "/data/intervention_code"), "ESV-01");
    assert_string_equal(S(e, "/data/location/description"), "Square Victor Hugo");
    assert_string_equal(S(e, "/data/priority"), "high");
    assert_null(json_object_get(json_object_get(e, "data"), "origin_request"));
    json_decref(e);
    e = event(1);
    assert_string_equal(S(e, "/type"), "fr.relais.technical.workorder.completed.v1");
    assert_string_equal(S(e, "/data/status"), "cancelled");
    assert_string_equal(S(e, "/data/cancel_reason"), "duplicate");
    assert_string_equal(S(e, "/data/report"), "Déjà signalé");
    assert_string_equal(S(e, "/data/origin_request/subject"), "request/o311-42");
    json_decref(e);
    wconn_close(&c);
}

static void test_pages(void **state)
{
    wconn c;
    open_source(&c, "page_size: 2\n", 0);
    char ids[5][32];
    for (int i = 0; i < 5; i++) snprintf(ids[i], sizeof ids[i], "%s", wsim_create(&SIM, TOK_RELAIS, POTHOLE("")));
    for (int i = 4; i >= 0; i--) agent_next(ids[i], NULL);
    long before = wsim_stat(&SIM, "requests");
    assert_int_equal(poll_once(&c), 0);
    assert_int_equal(count(&F.events), 5);
    assert_int_equal(count(&F.echoes), 5);
    /* 3 pages and 5 histories */
    assert_int_equal(wsim_stat(&SIM, "requests") - before, 3 + 5);
    wconn_close(&c);
}

static void test_checkpoint_kept_when_unavailable(void **state)
{
    wconn c;
    open_source(&c, NULL, 0);
    char a[32], b[32];
    snprintf(a, sizeof a, "%s", wsim_create(&SIM, TOK_RELAIS, POTHOLE("")));
    assert_int_equal(poll_once(&c), 0);
    char *cp0 = checkpoint();
    snprintf(b, sizeof b, "%s", wsim_create(&SIM, TOK_RELAIS, POTHOLE("")));
    agent_next(a, NULL);
    agent_next(b, NULL);

    /* the hub cannot journal */
    pthread_mutex_lock(&F.lock);
    F.unavailable = 1;
    pthread_mutex_unlock(&F.lock);
    assert_int_equal(poll_once(&c), -1);
    char *cp = checkpoint();
    assert_string_equal(cp, cp0);
    free(cp);
    pthread_mutex_lock(&F.lock);
    F.unavailable = 0;
    pthread_mutex_unlock(&F.lock);

    /* the journal cannot give the checkpoint: the tool is not even asked */
    pthread_mutex_lock(&F.lock);
    F.journal_down = 1;
    pthread_mutex_unlock(&F.lock);
    long before = wsim_stat(&SIM, "requests");
    assert_int_equal(poll_once(&c), -1);
    assert_int_equal(wsim_stat(&SIM, "requests"), before);
    pthread_mutex_lock(&F.lock);
    F.journal_down = 0;
    pthread_mutex_unlock(&F.lock);

    /* the tool answers errors, then is down */
    wsim_ctl(&SIM, "/_sim/fail", "{\"status\":500,\"count\":1}");
    assert_int_equal(poll_once(&c), -1);
    wsim_ctl(&SIM, "/_sim/down", "{\"seconds\":0.8}");
    wsim_wait_down(&SIM);
    assert_int_equal(poll_once(&c), -1);
    cp = checkpoint();
    assert_string_equal(cp, cp0);
    free(cp);
    assert_int_equal(count(&F.events), 0);

    /* all back: both changes, once */
    int rc = -1;
    for (int i = 0; i < 50 && rc != 0; i++) {
        ts_sleep_ms(50);
        rc = poll_once(&c);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(count(&F.events), 2);
    cp = checkpoint();
    assert_string_not_equal(cp, cp0);
    free(cp);
    free(cp0);
    wconn_close(&c);
}

static void test_poller_thread(void **state)
{
    wconn c;
    open_source(&c, "poll_interval: 100ms\n", 1);
    char a[32];
    snprintf(a, sizeof a, "%s", wsim_create(&SIM, TOK_RELAIS, POTHOLE(",\"external_ref\":\"request/GRC-5\"")));
    agent_next(a, NULL);
    agent_next(a, NULL);
    for (int i = 0; i < 400 && count(&F.events) < 2; i++) ts_sleep_ms(50);
    assert_int_equal(count(&F.events), 2);
    /* the tool's clock moves it on; the poller follows */
    wsim_ctl(&SIM, "/_sim/auto-advance", "{\"interval_ms\":50}");
    for (int i = 0; i < 400 && count(&F.events) < 4; i++) ts_sleep_ms(50);
    wsim_ctl(&SIM, "/_sim/auto-advance", "{\"interval_ms\":0}");
    assert_int_equal(count(&F.events), 4);
    json_t *e = event(3);
    assert_string_equal(S(e, "/type"), "fr.relais.technical.workorder.completed.v1");
    json_decref(e);
    wconn_close(&c);   /* stops the thread */
}

static void test_options_and_init(void **state)
{
    wconn c;
    char err[512] = "", yaml[512];
    snprintf(yaml, sizeof yaml, "url: %s\ntoken: env:WS_TEST_TOKEN\n", SIM.url);
    assert_int_equal(wconn_open(&c, RELAIS_MODE_SOURCE, yaml, "workorder.yaml", &fake_ops, NULL, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "self_account"));
    wconn_close(&c);
    snprintf(yaml, sizeof yaml, "url: %s\ntoken: env:WS_TEST_TOKEN\nself_account: relais\n", SIM.url);
    assert_int_equal(wconn_open(&c, RELAIS_MODE_SOURCE, yaml, NULL, &fake_ops, NULL, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "needs a mapping"));
    wconn_close(&c);
    snprintf(yaml, sizeof yaml, "url: %s\ntoken: env:WS_TEST_TOKEN\nself_account: relais\npage_size: 0\n", SIM.url);
    assert_int_equal(wconn_open(&c, RELAIS_MODE_SOURCE, yaml, "workorder.yaml", &fake_ops, NULL, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "page_size"));
    wconn_close(&c);
    char key[64];
    open_source(&c, NULL, 0);
    ws_source_state_key(c.inst, key, sizeof key);
    assert_string_equal(key, "checkpoint/works");
    wconn_close(&c);
}

int main(void)
{
    setenv("WS_TEST_TOKEN", TOK_RELAIS, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_changes_become_events_echoes_do_not, reset),
        cmocka_unit_test_setup(test_origin_from_the_cross_reference, reset),
        cmocka_unit_test_setup(test_agent_created_and_refused, reset),
        cmocka_unit_test_setup(test_pages, reset),
        cmocka_unit_test_setup(test_checkpoint_kept_when_unavailable, reset),
        cmocka_unit_test_setup(test_poller_thread, reset),
        cmocka_unit_test_setup(test_options_and_init, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
