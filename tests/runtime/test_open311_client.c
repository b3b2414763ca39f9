/*
 * test_open311_client.c - the open311 connector, role client, against
 * relais-sim-open311 (started as a child process; found via
 * RELAIS_BUILD_DIR), with the hub as a library (real PostgreSQL journal,
 * package state and cross-references, embedded broker, the shipped mapping
 * connectors/open311/mappings/client.yaml).
 *
 *   sink:   a created request is POSTed form-urlencoded with api_key,
 *           jurisdiction_id and Idempotency-Key; the answer's id is the
 *           local id and kept for polling; an event with a cross-reference
 *           is not posted again; 403 and other 4xx REJECT with the spec's
 *           error description, 503 and transport errors RETRY; numeric ids
 *           (the spec's examples) are read as text; a token-only answer is
 *           resolved by the source, which records the cross-reference;
 *           updated/closed events are refused.
 *   source: the first sight of an open request is only remembered; a change
 *           of notes -> fr.relais.grc.request.updated.v1, closed ->
 *           closed.v1, subject the canonical request, record id
 *           "<id>@<updated_datetime>"; the same change seen again is a
 *           duplicate (no second event); closed requests are no longer
 *           polled; an unavailable endpoint ends the round (-1).
 *
 * The poller threads run with a poll_interval of an hour: the test calls
 * o311_client_poll_once() itself.
 */
#include <curl/curl.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include "testsupport.h"
#include "hub.h"
#include "instance.h"
#include "event_int.h"
#include "../../connectors/open311/open311_int.h"

typedef struct resp {
    long  status;
    char *body;
    size_t len;
} resp;

static size_t on_data(char *p, size_t s, size_t n, void *u)
{
    resp *r = u;
    char *nb = realloc(r->body, r->len + s * n + 1);
    if (!nb) return 0;
    memcpy(nb + r->len, p, s * n);
    r->body = nb;
    r->len += s * n;
    nb[r->len] = '\0';
    return s * n;
}

static resp http(const char *method, const char *url, const char *body)
{
    resp r = { 0 };
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) fail_msg("%s %s: %s", method, url, curl_easy_strerror(rc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(h);
    if (!r.body) r.body = calloc(1, 1);
    return r;
}

typedef struct fixture_t {
    char db[512];
    char state[128];
    char sim[128];
    pid_t sim_pid;
    relais_config *cfg;
    relais_hub *hub;
} fixture_t;

static fixture_t *F;

static json_t *sim_json(const char *method, const char *path, const char *body)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", F->sim, path);
    resp r = http(method, url, body);
    if (r.status != 200) fail_msg("%s %s: %ld %s", method, path, r.status, r.body);
    json_t *v = json_loads(r.body, 0, NULL);
    free(r.body);
    assert_non_null(v);
    return v;
}

static long sim_stat(const char *name)
{
    json_t *v = sim_json("GET", "/_sim/stats", NULL);
    long n = (long)json_integer_value(json_object_get(v, name));
    json_decref(v);
    return n;
}

static void start_sim(void)
{
    char bin[1024], portfile[256];
    const char *build = getenv("RELAIS_BUILD_DIR");
    if (!build) fail_msg("RELAIS_BUILD_DIR is not set: run through ctest");
    snprintf(bin, sizeof bin, "%s/relais-sim-open311", build);
    snprintf(portfile, sizeof portfile, "/tmp/relais-o311cl-sim-%d.port", (int)getpid());
    unlink(portfile);
    F->sim_pid = fork();
    if (F->sim_pid == 0) {
        execl(bin, bin, "--listen", "127.0.0.1:0", "--port-file", portfile, "--api-key", "cle-ville",
              "--jurisdiction", "ville.example", "--quiet", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) {
        FILE *f = fopen(portfile, "r");
        int port = 0;
        if (f && fscanf(f, "%d", &port) == 1 && port > 0) {
            fclose(f);
            snprintf(F->sim, sizeof F->sim, "http://127.0.0.1:%d", port);
            unlink(portfile);
            return;
        }
        if (f) fclose(f);
        ts_sleep_ms(50);
    }
    fail_msg("relais-sim-open311 did not start (%s)", bin);
}

static int setup(void **st)
{
    F = calloc(1, sizeof *F);
    start_sim();
    setenv("O311_CLIENT_KEY", "cle-ville", 1);
    setenv("O311_WRONG_KEY", "pas-la-bonne", 1);
    snprintf(F->db, sizeof F->db, "%s", ts_fresh_database("o311cl"));
    snprintf(F->state, sizeof F->state, "/tmp/relais-o311cl-%d", (int)getpid());
    char mapping[1024];
    snprintf(mapping, sizeof mapping, "%s", ts_source_path("connectors/open311/mappings/client.yaml"));
    int closed_port = ts_free_port();
    char yaml[8192];
    snprintf(yaml, sizeof yaml,
             "hub: { name: t, tenant: ville, admin_listen: \"127.0.0.1:0\", state_dir: %s, log_level: warn }\n"
             "bus: { brokers: embedded, partitions: 1 }\n"
             "journal: { conninfo: \"%s\" }\n"
             "delivery: { workers: 2, poll_interval: 100ms, backoff_initial: 100ms, backoff_max: 200ms }\n"
             "connectors:\n"
             "  - { name: works-out, type: open311, mode: sink, package: works, role: client, endpoint: \"%s/\",\n"
             "      api_key: \"env:O311_CLIENT_KEY\", jurisdiction_id: ville.example, timeout: 2s, mapping: %s }\n"
             "  - { name: works-in, type: open311, mode: source, package: works, role: client, endpoint: \"%s\",\n"
             "      jurisdiction_id: ville.example, poll_interval: 1h, poll_batch: 2, mapping: %s }\n"
             "  - { name: works-badkey, type: open311, mode: sink, package: works, role: client, endpoint: \"%s\",\n"
             "      api_key: \"env:O311_WRONG_KEY\", mapping: %s }\n"
             "  - { name: works-down, type: open311, mode: sink, package: works, role: client,\n"
             "      endpoint: \"http://127.0.0.1:%d\", timeout: 1s, connect_timeout: 1s, mapping: %s }\n"
             "routes:\n"
             "  - { name: none, match: \"test.relais.nothing\", to: [works-out] }\n",
             F->state, F->db, F->sim, mapping, F->sim, mapping, F->sim, mapping, closed_port, mapping);
    relais_errlist errs;
    relais_errlist_init(&errs);
    F->cfg = relais_config_load_buffer("o311cl.yaml", yaml, strlen(yaml), &errs);
    if (!F->cfg) { relais_errlist_print(&errs, stderr); fail_msg("config"); }
    relais_errlist_free(&errs);
    char err[512];
    F->hub = relais_hub_new(F->cfg, err, sizeof err);
    if (!F->hub) fail_msg("hub: %s", err);
    if (relais_hub_start(F->hub, err, sizeof err) != 0) fail_msg("start: %s", err);
    for (int i = 0; i < 300 && !relais_hub_accepting(F->hub); i++) ts_sleep_ms(50);
    assert_true(relais_hub_accepting(F->hub));
    *st = F;
    return 0;
}

static int teardown(void **st)
{
    relais_hub_destroy(F->hub);
    relais_config_destroy(F->cfg);
    kill(F->sim_pid, SIGTERM);
    waitpid(F->sim_pid, NULL, 0);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", F->state);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", F->state);
    free(F);
    return 0;
}

static relais_event *created(const char *subject, const char *category)
{
    char data[1024];
    snprintf(data, sizeof data,
             "{\"channel\":\"web\",\"category\":\"%s\",\"description\":\"Nid de poule devant le 12\","
             "\"status\":\"new\",\"opened_at\":\"2026-11-25T10:00:00+01:00\","
             "\"location\":{\"point\":{\"lat\":48.7309,\"lon\":2.2713},\"address\":{\"street\":\"12 rue de la Mairie\","
             "\"postcode\":\"91300\",\"city\":\"Massy\"}},"
             "\"requester\":{\"identity\":{\"family_name\":\"Martin\",\"given_names\":[\"Camille\"]}}}", category);
    json_t *d = json_loads(data, 0, NULL);
    relais_record rec = { .record_id = subject, .type = "fr.relais.grc.request.created.v1", .subject = subject, .data = d };
    char err[256];
    relais_event *ev = relais_event_build(&rec, "grc-in", "ville", err, sizeof err);
    if (!ev) fail_msg("event: %s", err);
    json_decref(d);
    return ev;
}

static relais_verdict deliver(const char *instance, relais_event *ev, const char *local_id, relais_answer *ans)
{
    relais_instance *inst = relais_hub_instance(F->hub, instance);
    memset(ans, 0, sizeof *ans);
    return inst->desc->deliver(inst->ctx, ev, local_id, ans);
}

static int poll_once(void)
{
    relais_instance *inst = relais_hub_instance(F->hub, "works-in");
    return o311_client_poll_once(((o311_ctx *)inst->ctx)->cl);
}

static long events_of(const char *q_where)
{
    char q[512];
    snprintf(q, sizeof q, "SELECT count(*) FROM events WHERE source='works-in' %s", q_where);
    return ts_sql_long(F->db, q);
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_sink_posts(void **st)
{
    relais_event *ev = created("request/wcs-voirie-12", "Nids de poule");
    relais_answer a;
    assert_int_equal(deliver("works-out", ev, NULL, &a), RELAIS_DELIVER_OK);
    assert_string_equal(a.local_id, "1001");
    assert_int_equal(a.status, 200);
    json_t *all = sim_json("GET", "/_sim/requests", NULL);
    json_t *r = json_array_get(all, 0);
    json_t *posted = json_object_get(r, "posted");
    assert_string_equal(json_string_value(json_object_get(posted, "service_code")), "VOI-03");
    assert_string_equal(json_string_value(json_object_get(posted, "jurisdiction_id")), "ville.example");
    assert_string_equal(json_string_value(json_object_get(posted, "lat")), "48.7309");
    assert_string_equal(json_string_value(json_object_get(posted, "address_string")), "12 rue de la Mairie 91300 Massy");
    assert_string_equal(json_string_value(json_object_get(posted, "last_name")), "Martin");
    assert_string_equal(json_string_value(json_object_get(json_object_get(posted, "attribute"), "relais_subject")),
                        "request/wcs-voirie-12");
    assert_string_equal(json_string_value(json_object_get(r, "idempotency_key")), relais_event_id(ev));
    json_decref(all);
    /* kept for the source to poll */
    relais_instance *inst = relais_hub_instance(F->hub, "works-out");
    int err;
    json_t *kept = relais_state_get(inst, "req/1001", &err);
    assert_non_null(kept);
    assert_string_equal(json_string_value(json_object_get(kept, "subject")), "request/wcs-voirie-12");
    json_decref(kept);
    /* delivered again (a redelivery): the same answer from the endpoint's Idempotency-Key */
    assert_int_equal(deliver("works-out", ev, NULL, &a), RELAIS_DELIVER_OK);
    assert_string_equal(a.local_id, "1001");
    assert_int_equal(sim_stat("duplicates"), 1);
    /* with the cross-reference known, nothing is posted */
    long posts = sim_stat("posts");
    assert_int_equal(deliver("works-out", ev, "1001", &a), RELAIS_DELIVER_OK);
    assert_string_equal(a.local_id, "1001");
    assert_int_equal(sim_stat("posts"), posts);
    relais_event_unref(ev);
}

static void test_sink_refusals(void **st)
{
    relais_event *ev = created("request/wcs-voirie-13", "Propreté");
    relais_answer a;
    long created_before = sim_stat("created");
    assert_int_equal(deliver("works-badkey", ev, NULL, &a), RELAIS_DELIVER_REJECT);
    assert_int_equal(a.status, 403);
    if (!strstr(a.detail, "403 Invalid api_key received")) fail_msg("detail: %s", a.detail);
    assert_int_equal(deliver("works-down", ev, NULL, &a), RELAIS_DELIVER_RETRY);
    json_decref(sim_json("POST", "/_sim/fail", "{\"status\":503,\"count\":1}"));
    assert_int_equal(deliver("works-out", ev, NULL, &a), RELAIS_DELIVER_RETRY);
    assert_int_equal(a.status, 503);
    json_decref(sim_json("POST", "/_sim/fail", "{\"status\":400,\"count\":1}"));
    assert_int_equal(deliver("works-out", ev, NULL, &a), RELAIS_DELIVER_REJECT);
    assert_non_null(strstr(a.detail, "injected failure"));
    assert_int_equal(sim_stat("created"), created_before);
    assert_int_equal(deliver("works-out", ev, NULL, &a), RELAIS_DELIVER_OK);     /* the endpoint is back */
    assert_int_equal(sim_stat("created"), created_before + 1);
    relais_event_unref(ev);
    /* GeoReport v2 cannot change a request */
    json_t *d = json_loads("{\"status\":\"in_progress\",\"updated_at\":\"2026-11-26T10:00:00+01:00\"}", 0, NULL);
    relais_record rec = { .record_id = "u1", .type = "fr.relais.grc.request.updated.v1", .subject = "request/x", .data = d };
    char err[256];
    ev = relais_event_build(&rec, "grc-in", "ville", err, sizeof err);
    json_decref(d);
    assert_int_equal(deliver("works-out", ev, NULL, &a), RELAIS_DELIVER_REJECT);
    assert_non_null(strstr(a.detail, "no call to change a request"));
    relais_event_unref(ev);
}

/* A 2xx whose body is not a GeoReport answer: the request may exist, so no
 * retry (that could post it twice): REJECT, saying so. */
static enum MHD_Result html_handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                    const char *version, const char *data, size_t *size, void **con)
{
    if (!*con) { *con = cls; return MHD_YES; }
    if (*size) { *size = 0; return MHD_YES; }
    static const char page[] = "<html>Bienvenue</html>";
    struct MHD_Response *r = MHD_create_response_from_buffer(sizeof page - 1, (void *)page, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static void test_sink_unreadable_answer(void **st)
{
    int port = ts_free_port();
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION,
                                            (uint16_t)port, NULL, NULL, html_handler, F, MHD_OPTION_END);
    assert_non_null(d);
    relais_instance *inst = relais_hub_instance(F->hub, "works-out");
    o311_config cfg = { .role = "client", .endpoint = NULL, .timeout = 2000, .connect_timeout = 1000 };
    char ep[64], err[256];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", port);
    cfg.endpoint = ep;
    o311_client *cl = o311_client_new(inst, &cfg, RELAIS_MODE_SINK, err, sizeof err);
    assert_non_null(cl);
    relais_event *ev = created("request/wcs-voirie-99", "Nids de poule");
    relais_answer a;
    memset(&a, 0, sizeof a);
    assert_int_equal(o311_client_deliver(cl, ev, NULL, &a), RELAIS_DELIVER_REJECT);
    if (!strstr(a.detail, "not a GeoReport POST answer")) fail_msg("detail: %s", a.detail);
    relais_event_unref(ev);
    o311_client_destroy(cl);
    MHD_stop_daemon(d);
    /* a slow endpoint (the simulator's delay_ms): the call times out, RETRY
     * (this client has no api_key: the late call creates nothing there) */
    cfg.endpoint = F->sim;
    cfg.timeout = 300;
    cl = o311_client_new(inst, &cfg, RELAIS_MODE_SINK, err, sizeof err);
    assert_non_null(cl);
    json_decref(sim_json("POST", "/_sim/fail", "{\"delay_ms\":800,\"count\":1}"));
    ev = created("request/wcs-voirie-98", "Nids de poule");
    memset(&a, 0, sizeof a);
    assert_int_equal(o311_client_deliver(cl, ev, NULL, &a), RELAIS_DELIVER_RETRY);
    if (!strstr(a.detail, "imeout")) fail_msg("detail: %s", a.detail);
    relais_event_unref(ev);
    o311_client_destroy(cl);
    ts_sleep_ms(600);                               /* the delayed call ends at the simulator */
}

static void test_numeric_ids_and_tokens(void **st)
{
    json_decref(sim_json("POST", "/_sim/config", "{\"numeric_ids\":true}"));
    relais_event *ev = created("request/wcs-voirie-20", "Espaces verts");
    relais_answer a;
    assert_int_equal(deliver("works-out", ev, NULL, &a), RELAIS_DELIVER_OK);
    assert_true(a.local_id[0] >= '1' && a.local_id[0] <= '9');      /* a JSON number, read as its text */
    relais_event_unref(ev);
    json_decref(sim_json("POST", "/_sim/config", "{\"numeric_ids\":false,\"answer\":\"token\"}"));
    ev = created("request/wcs-voirie-21", "Espaces verts");
    assert_int_equal(deliver("works-out", ev, NULL, &a), RELAIS_DELIVER_OK);
    assert_string_equal(a.local_id, "");
    assert_non_null(strstr(a.detail, "token tok-"));
    relais_event_unref(ev);
    json_decref(sim_json("POST", "/_sim/config", "{\"answer\":\"id\"}"));
    /* the source asks for the token's id and records the cross-reference */
    relais_instance *in = relais_hub_instance(F->hub, "works-in");
    char local[128];
    assert_int_equal(relais_xref_local(in, NULL, "request/wcs-voirie-21", local, sizeof local), 1);
    assert_true(poll_once() >= 0);
    assert_int_equal(relais_xref_local(in, NULL, "request/wcs-voirie-21", local, sizeof local), 0);
    char key[160];
    snprintf(key, sizeof key, "req/%s", local);
    int err;
    json_t *kept = relais_state_get(in, key, &err);
    assert_non_null(kept);
    json_decref(kept);
}

static void test_source_polls(void **st)
{
    /* the requests posted so far were seen once: nothing to say yet */
    assert_int_equal(poll_once(), 0);
    assert_int_equal(events_of(""), 0);
    long gets = sim_stat("gets");
    assert_int_equal(poll_once(), 0);
    assert_true(sim_stat("gets") - gets >= 2);          /* poll_batch 2: several GETs for 4 open requests */

    json_decref(sim_json("POST", "/_sim/requests/1001", "{\"status_notes\":\"Équipe envoyée\","
                         "\"agency_responsible\":\"Voirie\",\"updated_datetime\":\"2026-11-26T09:00:00+01:00\"}"));
    assert_int_equal(poll_once(), 1);
    assert_int_equal(events_of("AND type='fr.relais.grc.request.updated.v1' AND subject='request/wcs-voirie-12' "
                               "AND record_id='1001@2026-11-26T09:00:00+01:00'"), 1);
    char *c = ts_sql(F->db, "SELECT (body->'data'->>'comment') || '|' || (body->'data'->>'comment_visibility') "
                            "|| '|' || (body->'data'->'service'->>'label') FROM events WHERE source='works-in'");
    assert_string_equal(c, "Équipe envoyée|public|Voirie");
    free(c);
    assert_int_equal(poll_once(), 0);                       /* nothing new */
    assert_int_equal(events_of(""), 1);

    /* the same change seen again (state written back): a duplicate, no second event */
    relais_instance *in = relais_hub_instance(F->hub, "works-in");
    int err;
    json_t *kept = relais_state_get(in, "req/1001", &err);
    json_object_set_new(kept, "status_notes", json_null());
    assert_int_equal(relais_state_put(in, "req/1001", kept), 0);
    json_decref(kept);
    assert_int_equal(poll_once(), 1);
    assert_int_equal(events_of(""), 1);

    /* closed */
    json_decref(sim_json("POST", "/_sim/requests/1001", "{\"status\":\"closed\",\"status_notes\":\"Trou rebouché\","
                         "\"updated_datetime\":\"2026-11-27T16:00:00+01:00\"}"));
    assert_int_equal(poll_once(), 1);
    assert_int_equal(events_of("AND type='fr.relais.grc.request.closed.v1' AND subject='request/wcs-voirie-12' "
                               "AND body->'data'->>'answer'='Trou rebouché' "
                               "AND body->'data'->>'closed_at'='2026-11-27T16:00:00+01:00'"), 1);
    /* no longer polled */
    json_decref(sim_json("POST", "/_sim/requests/1001", "{\"status\":\"open\",\"status_notes\":\"rouvert\"}"));
    assert_int_equal(poll_once(), 0);
    assert_int_equal(events_of(""), 2);

    /* a server that gives no updated_datetime: the change is named by its content */
    json_decref(sim_json("POST", "/_sim/requests/1003", "{\"status_notes\":\"Taille prévue\",\"updated_datetime\":null}"));
    assert_int_equal(poll_once(), 1);
    assert_int_equal(events_of("AND subject='request/wcs-voirie-20' AND record_id ~ '^1003@[0-9a-f]{16}$' "
                               "AND body->'data'->>'updated_at' IS NOT NULL"), 1);
    assert_int_equal(poll_once(), 0);
    assert_int_equal(events_of("AND subject='request/wcs-voirie-20'"), 1);

    /* the endpoint down: the round stops, nothing remembered */
    json_decref(sim_json("POST", "/_sim/requests/1002", "{\"status_notes\":\"Plus tard\","
                         "\"updated_datetime\":\"2026-11-26T11:00:00+01:00\"}"));
    json_decref(sim_json("POST", "/_sim/fail", "{\"status\":503,\"count\":5}"));
    assert_int_equal(poll_once(), -1);
    json_decref(sim_json("POST", "/_sim/fail", "{\"count\":0}"));
    assert_int_equal(poll_once(), 1);
    assert_int_equal(events_of("AND subject='request/wcs-voirie-13'"), 1);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sink_posts),
        cmocka_unit_test(test_sink_refusals),
        cmocka_unit_test(test_sink_unreadable_answer),
        cmocka_unit_test(test_numeric_ids_and_tokens),
        cmocka_unit_test(test_source_polls),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
