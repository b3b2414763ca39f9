/*
 * test_publik_connector.c - the publik connector against relais-sim-publik
 * (started as a child process, found via RELAIS_BUILD_DIR), without
 * PostgreSQL: instances made with relais_instance_new() whose hub is a
 * ts_recorder (tests/support) behind ops that first apply the instance's
 * mapping (connectors/publik/mappings/request.yaml) and check the canonical
 * schema, as the hub does, and that keep package state, cross-references
 * and echoes in memory.
 *
 * Source: polling (created and updated events, record ids, subjects, the
 * checkpoint, nothing read twice), the webhook the simulator calls (same
 * record ids as polling: duplicates), its refusals (bad, stale, unsigned,
 * replayed signatures -> 403 with w.c.s.'s texts and nothing journaled;
 * hub down -> 503), echoes of Relais's own changes.
 * Sink: hooks (status and message in the simulator, idempotent per event),
 * closing, form submission for requests born elsewhere, every verdict.
 * Options: what init refuses.
 *
 * Threads: the fake package state (struct pkg) is written by the
 * connector's threads (webhook connections, poll) under pkg.lock and read
 * by the test thread under it; the recorder has its own lock.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#include <curl/curl.h>
#include <jansson.h>
#include "testsupport.h"
#include "instance.h"
#include "event_int.h"
#include "options.h"
#include "yamltree.h"
#include "errlist.h"
#include "mapping.h"
#include "jsonschema.h"
#include "../../connectors/publik/publik_int.h"

extern const relais_connector relais_connector_publik;

#define KEY "s3cret-relais"
#define WH_ORIG "wcs.example.org"
#define WH_KEY "s3cret-webhook"

/* ---- The fake hub: mapping + schema, then the recorder; package state --------- */

static struct pkg {
    pthread_mutex_t lock;
    json_t *state;            /* key -> value */
    json_t *xref;             /* canonical -> local */
    json_t *echoes;           /* record ids */
} P = { .lock = PTHREAD_MUTEX_INITIALIZER };

static relais_schema_set *SCHEMAS;
static relais_mapping *MAPPING;
static ts_recorder *REC;

static int fake_submit(void *hub, relais_instance *inst, const relais_record *recs, size_t n,
                       relais_submit_result *res)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof res[i]);
        relais_mapped_record mr;
        memset(&mr, 0, sizeof mr);
        char err[1024];
        if (relais_mapping_inbound_json(inst->mapping, recs[i].data, &mr, err, sizeof err) != 0) {
            res[i].status = RELAIS_SUBMIT_REJECTED;
            snprintf(res[i].reason, sizeof res[i].reason, "%.255s", err);
            ts_recorder_ops()->reject(hub, inst, recs[i].record_id, "mapping", err, NULL, 0);
            relais_mapped_record_clear(&mr);
            continue;
        }
        const relais_schema *sc = relais_schema_set_for_type(SCHEMAS, mr.type);
        relais_schema_fault f[4];
        size_t nf = 0;
        if (!sc || !relais_schema_validate(sc, mr.data, "$.data", f, 4, &nf)) {
            fail_msg("%s: mapped data refused by the schema of %s: %s %s", recs[i].record_id, mr.type,
                     nf ? f[0].path : "", nf ? f[0].message : "no schema");
        }
        /* what the connector gives and what the mapping gives agree */
        assert_string_equal(mr.type, recs[i].type);
        assert_string_equal(mr.subject, recs[i].subject);
        assert_string_equal(mr.record_id, recs[i].record_id);
        relais_record m = { .record_id = mr.record_id, .type = mr.type, .subject = mr.subject, .data = mr.data };
        if (ts_recorder_ops()->submit(hub, inst, &m, 1, &res[i]) != 0) rc = -1;
        relais_mapped_record_clear(&mr);
    }
    return rc;
}

static int fake_xref_canonical(void *hub, const relais_instance *inst, const char *package, const char *entity,
                               const char *local_id, char *out, size_t outlen)
{
    int rc = 1;
    pthread_mutex_lock(&P.lock);
    const char *k;
    json_t *v;
    json_object_foreach(P.xref, k, v) {
        if (strcmp(json_string_value(v), local_id) == 0 && strncmp(k, entity, strlen(entity)) == 0) {
            snprintf(out, outlen, "%s", k);
            rc = 0;
        }
    }
    pthread_mutex_unlock(&P.lock);
    return rc;
}

static int fake_xref_put(void *hub, const relais_instance *inst, const char *canonical, const char *local)
{
    pthread_mutex_lock(&P.lock);
    json_object_set_new(P.xref, canonical, json_string(local));
    pthread_mutex_unlock(&P.lock);
    return 0;
}

static int fake_state_put(void *hub, const relais_instance *inst, const char *key, json_t *value)
{
    pthread_mutex_lock(&P.lock);
    json_object_set_new(P.state, key, json_deep_copy(value));
    pthread_mutex_unlock(&P.lock);
    return 0;
}

static json_t *fake_state_get(void *hub, const relais_instance *inst, const char *key, int *err)
{
    *err = 0;
    pthread_mutex_lock(&P.lock);
    json_t *v = json_deep_copy(json_object_get(P.state, key));
    pthread_mutex_unlock(&P.lock);
    return v;
}

static void fake_echo(void *hub, relais_instance *inst, const char *record_id)
{
    pthread_mutex_lock(&P.lock);
    json_array_append_new(P.echoes, json_string(record_id));
    pthread_mutex_unlock(&P.lock);
}

static relais_instance_ops OPS;

static size_t echoes(void)
{
    pthread_mutex_lock(&P.lock);
    size_t n = json_array_size(P.echoes);
    pthread_mutex_unlock(&P.lock);
    return n;
}

static char *xref_of(const char *canonical)
{
    pthread_mutex_lock(&P.lock);
    const char *v = json_string_value(json_object_get(P.xref, canonical));
    char *r = v ? strdup(v) : NULL;
    pthread_mutex_unlock(&P.lock);
    return r;
}

static void pkg_reset(void)
{
    pthread_mutex_lock(&P.lock);
    json_object_clear(P.state);
    json_object_clear(P.xref);
    json_array_clear(P.echoes);
    pthread_mutex_unlock(&P.lock);
    ts_recorder_reset(REC);
}

/* ---- The simulator ------------------------------------------------------------------ */

static struct simproc {
    pid_t pid;
    int   port;
    char  base[64];
    int   hook_port;   /* the connector's webhook port the simulator calls */
} SIM;

static void sim_start(void)
{
    const char *bd = getenv("RELAIS_BUILD_DIR");
    if (!bd || !*bd) fail_msg("RELAIS_BUILD_DIR is not set (run through ctest)");
    char exe[1024], pf[256], hook[128], whk[128];
    snprintf(exe, sizeof exe, "%s/relais-sim-publik", bd);
    if (access(exe, X_OK) != 0) fail_msg("%s: %s", exe, strerror(errno));
    snprintf(pf, sizeof pf, "/tmp/relais-sim-publik-%d.port", (int)getpid());
    unlink(pf);
    SIM.hook_port = ts_free_port();
    snprintf(hook, sizeof hook, "http://127.0.0.1:%d/publik/webhook", SIM.hook_port);
    snprintf(whk, sizeof whk, "%s=%s", WH_ORIG, WH_KEY);
    const char *argv[] = { exe, "--listen", "127.0.0.1:0", "--port-file", pf, "--quiet", "--key", "relais=" KEY,
                           "--key", "other=other-key", "--webhook", hook, "--webhook-key", whk, NULL };
    pid_t pid = fork();
    if (pid == 0) {
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    assert_true(pid > 0);
    SIM.pid = pid;
    for (int i = 0; i < 500; i++) {
        FILE *f = fopen(pf, "r");
        if (f) {
            int ok = fscanf(f, "%d", &SIM.port) == 1;
            fclose(f);
            if (ok) {
                unlink(pf);
                snprintf(SIM.base, sizeof SIM.base, "http://127.0.0.1:%d", SIM.port);
                return;
            }
        }
        ts_sleep_ms(10);
    }
    fail_msg("relais-sim-publik did not start");
}

static void sim_stop(void)
{
    if (SIM.pid <= 0) return;
    kill(SIM.pid, SIGTERM);
    int st = 0;
    waitpid(SIM.pid, &st, 0);
    SIM.pid = 0;
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ---- HTTP from the test ------------------------------------------------------------- */

struct buf { char *p; size_t n; };

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct buf *b = ud;
    size_t n = size * nmemb;
    b->p = realloc(b->p, b->n + n + 1);
    memcpy(b->p + b->n, ptr, n);
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

/* method GET or POST; returns the HTTP status; *out the parsed JSON answer (may be NULL). */
static long http(const char *method, const char *url, const char *body, json_t **out)
{
    CURL *h = curl_easy_init();
    struct buf b = { 0 };
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
    }
    long code = 0;
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    if (out) *out = b.p ? json_loads(b.p, JSON_DECODE_ANY, NULL) : NULL;
    free(b.p);
    return code;
}

static json_t *sim_json(const char *method, const char *path, const char *body)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", SIM.base, path);
    json_t *o = NULL;
    long code = http(method, url, body, &o);
    if (code < 200 || code >= 300) fail_msg("%s %s -> %ld", method, path, code);
    return o;
}

static void sim_reset(void)
{
    json_decref(sim_json("POST", "/_sim/reset", "{}"));
}

/* A citizen fills a form; returns its id (static buffer). */
static const char *citizen_form(const char *slug, const char *fields_json)
{
    static char id[32];
    char path[128], body[2048];
    snprintf(path, sizeof path, "/_sim/forms/%s", slug);
    snprintf(body, sizeof body, "{\"fields\": %s, \"user\": {\"name\": \"Camille Kermarrec\", "
             "\"email\": \"camille@example.org\"}}", fields_json);
    json_t *f = sim_json("POST", path, body);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(f, "id")));
    json_decref(f);
    return id;
}

static void agent_status(const char *slug, const char *id, const char *status, const char *comment)
{
    char path[128], body[512];
    snprintf(path, sizeof path, "/_sim/forms/%s/%s/status", slug, id);
    snprintf(body, sizeof body, "{\"status\": \"%s\", \"agent\": \"Agent Voirie\"%s%s%s}", status,
             comment ? ", \"comment\": \"" : "", comment ? comment : "", comment ? "\"" : "");
    json_decref(sim_json("POST", path, body));
}

static json_t *history(const char *slug, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/_sim/forms/%s/%s/history", slug, id);
    return sim_json("GET", path, NULL);
}

static long sim_counter(const char *name)
{
    json_t *s = sim_json("GET", "/_sim/stats", NULL);
    long v = (long)json_integer_value(json_object_get(s, name));
    json_decref(s);
    return v;
}

#define POTHOLE "{\"categorie\": \"nid-de-poule\", \"description\": \"Trou devant le 12\", " \
                "\"localisation\": {\"lat\": 48.7309, \"lon\": 2.2713}, \"nom\": \"KERMARREC\", " \
                "\"prenom\": \"Camille\", \"email\": \"camille@example.org\", \"telephone\": \"06 12 34 56 78\", " \
                "\"photo\": {\"filename\": \"trou.jpg\", \"content_type\": \"image/jpeg\", \"content\": \"/9j/4AAQ\"}}"

/* ---- Instances -------------------------------------------------------------------------- */

typedef struct conn {
    relais_instance *inst;
    void *cfg;
    void *ctx;
} conn;

/* Options from YAML, an instance with the mapping, init and start. 0 ok;
 * -1 with err when refused (the instance is then closed already). */
static int conn_open(conn *c, unsigned mode, const char *yaml, int mapped, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    yt_node *map = yt_load_buffer("test.yaml", yaml, strlen(yaml), err, errlen);
    assert_non_null(map);
    c->cfg = calloc(1, relais_connector_publik.config_size);
    relais_errlist errs;
    relais_errlist_init(&errs);
    int rc = relais_options_apply(relais_connector_publik.options, c->cfg, mode, map, NULL, "test.yaml", &errs);
    if (rc != 0) snprintf(err, errlen, "%s", errs.count ? errs.msgs[0] : "?");
    relais_errlist_free(&errs);
    yt_free(map);
    if (rc == 0) {
        c->inst = relais_instance_new(mode == RELAIS_MODE_SOURCE ? "grc-in" : "grc-out", "ville", mode,
                                      &relais_connector_publik, c->cfg, &OPS, REC, NULL);
        c->inst->package = strdup("publik");
        c->inst->mapping = mapped ? MAPPING : NULL;
        rc = relais_connector_publik.init(c->inst, c->cfg, &c->ctx, err, errlen);
        if (rc == 0) {
            c->inst->ctx = c->ctx;
            rc = relais_connector_publik.start(c->ctx, err, errlen);
        }
    }
    if (rc != 0) {
        if (c->ctx) relais_connector_publik.destroy(c->ctx);
        relais_instance_destroy(c->inst);
        relais_options_free(relais_connector_publik.options, c->cfg);
        free(c->cfg);
        memset(c, 0, sizeof *c);
    }
    return rc;
}

static void conn_close(conn *c)
{
    if (!c->inst) return;
    relais_connector_publik.stop(c->ctx);
    relais_connector_publik.destroy(c->ctx);
    relais_instance_destroy(c->inst);
    relais_options_free(relais_connector_publik.options, c->cfg);
    free(c->cfg);
    memset(c, 0, sizeof *c);
}

static void source_open(conn *c, int webhook, int polling)
{
    char yaml[1024], more[256] = "", err[512];
    if (webhook)
        snprintf(more, sizeof more, "listen: 127.0.0.1:%d\nwebhook_orig: %s\nwebhook_key: env:RELAIS_TEST_PUBLIK_WHKEY\n",
                 SIM.hook_port, WH_ORIG);
    snprintf(yaml, sizeof yaml,
             "url: %s\norig: relais\nkey: env:RELAIS_TEST_PUBLIK_KEY\n"
             "formdefs: [signalement-voirie, demande-proprete]\npoll_interval: %s\ntimeout: 3s\n%s",
             SIM.base, polling ? "1h" : "0", more);
    if (conn_open(c, RELAIS_MODE_SOURCE, yaml, 1, err, sizeof err) != 0) fail_msg("source: %s", err);
}

static void poll_now(conn *c)
{
    relais_publik_ctx *ctx = c->ctx;
    assert_int_equal(relais_publik_source_poll(ctx->source, 1), 0);
}

static const ts_submitted *wait_record(const char *rid)
{
    for (int i = 0; i < 500; i++) {
        const ts_submitted *s = ts_recorder_find(REC, rid);
        if (s) return s;
        ts_sleep_ms(10);
    }
    fail_msg("record %s never submitted", rid);
    return NULL;
}

/* ---- Setup ------------------------------------------------------------------------------ */

static int group_setup(void **state)
{
    setenv("RELAIS_TEST_PUBLIK_KEY", KEY, 1);
    setenv("RELAIS_TEST_PUBLIK_WHKEY", WH_KEY, 1);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    relais_errlist errs;
    relais_errlist_init(&errs);
    MAPPING = relais_mapping_load(ts_source_path("connectors/publik/mappings/request.yaml"), &errs);
    if (!MAPPING) fail_msg("mapping: %s", errs.count ? errs.msgs[0] : "?");
    relais_errlist_free(&errs);
    SCHEMAS = relais_schema_set_new();
    char err[512];
    if (relais_schema_set_load_dir(SCHEMAS, ts_source_path("schemas"), err, sizeof err) != 0
        || relais_schema_set_compile(SCHEMAS, err, sizeof err) != 0)
        fail_msg("schemas: %s", err);
    REC = ts_recorder_new();
    OPS = *ts_recorder_ops();
    OPS.submit = fake_submit;
    OPS.xref_canonical = fake_xref_canonical;
    OPS.xref_put = fake_xref_put;
    OPS.state_put = fake_state_put;
    OPS.state_get = fake_state_get;
    OPS.echo = fake_echo;
    P.state = json_object();
    P.xref = json_object();
    P.echoes = json_array();
    sim_start();
    return 0;
}

static int group_teardown(void **state)
{
    sim_stop();
    ts_recorder_free(REC);
    relais_mapping_destroy(MAPPING);
    relais_schema_set_destroy(SCHEMAS);
    json_decref(P.state);
    json_decref(P.xref);
    json_decref(P.echoes);
    curl_global_cleanup();
    return 0;
}

static int each_setup(void **state)
{
    /* calls the simulator still has to make belong to the previous test */
    for (int i = 0; i < 2000 && sim_counter("webhook_queued") > 0; i++) ts_sleep_ms(10);
    sim_reset();
    pkg_reset();
    return 0;
}

/* ---- Source: polling ------------------------------------------------------------------------ */

static void test_polling_created_and_updated(void **state)
{
    conn c;
    source_open(&c, 0, 1);
    const char *id1 = strdup(citizen_form("signalement-voirie", POTHOLE));
    char *id2 = strdup(citizen_form("demande-proprete", "{\"categorie\": \"proprete\", \"description\": \"Dépôt sauvage\"}"));
    /* receive() polls at once the first time */
    assert_int_equal(relais_connector_publik.receive(c.ctx), 0);
    assert_int_equal(ts_recorder_naccepted(REC), 2);
    char rid[128];
    snprintf(rid, sizeof rid, "signalement-voirie/%s/created", id1);
    const ts_submitted *s = ts_recorder_find(REC, rid);
    assert_non_null(s);
    assert_string_equal(s->type, RELAIS_PUBLIK_TYPE_CREATED);
    char subject[128];
    snprintf(subject, sizeof subject, "request/wcs-signalement-voirie-%s", id1);
    assert_string_equal(s->subject, subject);
    json_t *d = json_loads(s->data, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(d, "category")), "Nids de poule");
    assert_string_equal(json_string_value(json_object_get(d, "category_code")), "VOIRIE-NDP");
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(d, "requester"), "contact"),
                                                          "mobile")), "0612345678");
    json_t *att = json_array_get(json_object_get(d, "attachments"), 0);
    assert_string_equal(json_string_value(json_object_get(att, "filename")), "trou.jpg");
    assert_null(json_object_get(att, "content"));
    json_decref(d);
    /* the cross-reference for the sink */
    char *x = xref_of(subject);
    char local[64];
    snprintf(local, sizeof local, "signalement-voirie/%s", id1);
    assert_non_null(x);
    assert_string_equal(x, local);
    free(x);
    snprintf(rid, sizeof rid, "demande-proprete/%s/created", id2);
    s = ts_recorder_find(REC, rid);
    assert_non_null(s);
    assert_null(strstr(s->data, "requester"));   /* no name: no requester */
    /* the checkpoint is kept per form type */
    pthread_mutex_lock(&P.lock);
    json_t *cp = json_object_get(P.state, "poll/signalement-voirie");
    assert_non_null(json_string_value(json_object_get(cp, "since")));
    assert_non_null(json_object_get(json_object_get(cp, "seen"), id1));
    assert_non_null(json_object_get(P.state, "poll/demande-proprete"));
    pthread_mutex_unlock(&P.lock);

    /* nothing changed: nothing is submitted again, even within the same minute */
    size_t calls = ts_recorder_submit_calls(REC);
    poll_now(&c);
    assert_int_equal(ts_recorder_submit_calls(REC), calls);
    /* not yet time: receive() does not call w.c.s. */
    long lists = sim_counter("lists");
    assert_int_equal(relais_connector_publik.receive(c.ctx), 0);
    assert_int_equal(sim_counter("lists"), lists);

    /* an agent plans the intervention */
    agent_status("signalement-voirie", id1, "planifiee", "Intervention prévue jeudi");
    poll_now(&c);
    snprintf(rid, sizeof rid, "signalement-voirie/%s/1", id1);
    s = ts_recorder_find(REC, rid);
    assert_non_null(s);
    assert_string_equal(s->type, RELAIS_PUBLIK_TYPE_UPDATED);
    assert_string_equal(s->subject, subject);
    d = json_loads(s->data, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(d, "status")), "waiting");
    assert_string_equal(json_string_value(json_object_get(d, "previous_status")), "new");
    assert_string_equal(json_string_value(json_object_get(d, "comment")), "Intervention prévue jeudi");
    json_decref(d);
    assert_int_equal(ts_recorder_naccepted(REC), 3);   /* the creation came again only as a duplicate */
    free((char *)id1);
    free(id2);
    conn_close(&c);
}

static void test_polling_pages_and_unavailable_hub(void **state)
{
    conn c;
    source_open(&c, 0, 1);
    for (int i = 0; i < 105; i++) citizen_form("signalement-voirie", "{\"categorie\": \"eclairage\", \"description\": \"x\"}");
    /* the journal goes down after two calls: the checkpoint is not moved */
    ts_recorder_set_submit_budget(REC, 2);
    relais_publik_ctx *ctx = c.ctx;
    assert_int_equal(relais_publik_source_poll(ctx->source, 1), -1);
    pthread_mutex_lock(&P.lock);
    assert_null(json_object_get(P.state, "poll/signalement-voirie"));
    pthread_mutex_unlock(&P.lock);
    ts_recorder_set_submit_budget(REC, -1);
    poll_now(&c);
    assert_int_equal(ts_recorder_naccepted(REC), 105);   /* two pages of 100 */
    /* w.c.s. down: the poll fails, nothing lost */
    json_decref(sim_json("POST", "/_sim/fail", "{\"status\": 500, \"count\": 1}"));
    citizen_form("signalement-voirie", "{\"categorie\": \"eclairage\", \"description\": \"y\"}");
    assert_int_equal(relais_publik_source_poll(ctx->source, 1), -1);
    poll_now(&c);
    assert_int_equal(ts_recorder_naccepted(REC), 106);
    conn_close(&c);
}

static void test_unknown_category_rejected(void **state)
{
    conn c;
    source_open(&c, 0, 1);
    const char *id = citizen_form("signalement-voirie", "{\"categorie\": \"tags\", \"description\": \"Tag\"}");
    char rid[128];
    snprintf(rid, sizeof rid, "signalement-voirie/%s/created", id);
    poll_now(&c);
    assert_int_equal(ts_recorder_naccepted(REC), 0);
    assert_int_equal(ts_recorder_nrejs(REC), 1);
    const ts_rejected *r = ts_recorder_rej(REC, 0);
    assert_string_equal(r->record_id, rid);
    assert_non_null(strstr(r->reason, "value 'tags' is not in table 'category'"));
    assert_non_null(strstr(r->reason, "request.yaml"));
    conn_close(&c);
}

/* ---- Source: webhook ------------------------------------------------------------------------ */

static void test_webhook_and_polling_give_one_event(void **state)
{
    conn c;
    source_open(&c, 1, 1);
    const char *id = citizen_form("signalement-voirie", POTHOLE);
    char rid[128];
    snprintf(rid, sizeof rid, "signalement-voirie/%s/created", id);
    wait_record(rid);
    /* the simulator's call was answered {"err": 0} */
    json_t *calls = NULL;
    for (int i = 0; i < 200 && json_array_size(calls) == 0; i++) {
        json_decref(calls);
        calls = sim_json("GET", "/_sim/webhooks", NULL);
        if (json_array_size(calls) == 0) ts_sleep_ms(10);
    }
    json_t *call = json_array_get(calls, 0);
    assert_true(json_is_true(json_object_get(call, "ok")));
    assert_int_equal(json_integer_value(json_object_get(call, "http_status")), 200);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(call, "answer"), "err")), 0);
    json_decref(calls);
    /* polling sees the same change: a duplicate, still one event */
    poll_now(&c);
    assert_int_equal(ts_recorder_naccepted(REC), 1);
    assert_true(ts_recorder_nsubs(REC) >= 2);
    /* a status change comes by the webhook */
    agent_status("signalement-voirie", id, "en-cours", NULL);
    snprintf(rid, sizeof rid, "signalement-voirie/%s/1", id);
    const ts_submitted *s = wait_record(rid);
    assert_null(strstr(s->data, "\"comment\""));
    poll_now(&c);
    assert_int_equal(ts_recorder_naccepted(REC), 2);
    assert_int_equal(sim_counter("webhook_failed"), 0);
    conn_close(&c);
}

/* POST a body to the connector's webhook with this query; the answer's JSON in *out. */
static long webhook_post(const char *query, const char *body, json_t **out)
{
    char url[2048];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/publik/webhook%s%s", SIM.hook_port, query ? "?" : "",
             query ? query : "");
    return http("POST", url, body, out);
}

static void expect_403(const char *query, const char *body, const char *desc)
{
    json_t *o = NULL;
    long code = webhook_post(query, body, &o);
    if (code != 403) fail_msg("query %s: HTTP %ld", query ? query : "(none)", code);
    assert_int_equal(json_integer_value(json_object_get(o, "err")), 1);
    assert_string_equal(json_string_value(json_object_get(o, "err_code")), "access-denied");
    const char *got = json_string_value(json_object_get(o, "err_desc"));
    if (!got || strncmp(got, desc, strlen(desc)) != 0) fail_msg("expected '%s', got '%s'", desc, got ? got : "");
    json_decref(o);
}

static void test_webhook_refusals(void **state)
{
    conn c;
    source_open(&c, 1, 0);
    /* a form export to send by hand */
    const char *id = citizen_form("signalement-voirie", POTHOLE);
    char path[128];
    snprintf(path, sizeof path, "/_sim/forms/signalement-voirie/%s", id);
    json_t *form = sim_json("GET", path, NULL);
    char *body = json_dumps(form, JSON_COMPACT);
    json_decref(form);
    /* let the simulator's own call land first */
    char rid[128];
    snprintf(rid, sizeof rid, "signalement-voirie/%s/created", id);
    wait_record(rid);
    ts_recorder_reset(REC);

    time_t now = time(NULL);
    char *q = relais_publik_sign_query("orig=" WH_ORIG, WH_KEY, "sha256", now, NULL);
    char *bad = relais_publik_sign_query("orig=" WH_ORIG, "not-the-key", "sha256", now, NULL);
    char *stale = relais_publik_sign_query("orig=" WH_ORIG, WH_KEY, "sha256", now - 120, NULL);
    char *future = relais_publik_sign_query("orig=" WH_ORIG, WH_KEY, "sha256", now + 120, NULL);
    char *intrus = relais_publik_sign_query("orig=intrus", WH_KEY, "sha256", now, NULL);
    char *other = relais_publik_sign_query("orig=relais", KEY, "sha256", now, NULL);
    expect_403(bad, body, RELAIS_PUBLIK_E_SIGNATURE);
    expect_403(stale, body, "timestamp is more than 30 seconds in the past: 0:0");
    expect_403(future, body, "timestamp is more than 30 seconds in the future: 0:0");
    expect_403(NULL, body, RELAIS_PUBLIK_E_UNSIGNED);
    expect_403("orig=" WH_ORIG, body, RELAIS_PUBLIK_E_UNSIGNED);
    expect_403(intrus, body, RELAIS_PUBLIK_E_ORIG);
    expect_403(other, body, RELAIS_PUBLIK_E_ORIG);   /* the API access key is not the webhook's */
    /* nothing journaled for refused calls */
    assert_int_equal(ts_recorder_submit_calls(REC), 0);
    assert_int_equal(ts_recorder_nrejs(REC), 0);

    /* the good one, then the same query again: the nonce is spent */
    json_t *o = NULL;
    assert_int_equal(webhook_post(q, body, &o), 200);
    assert_int_equal(json_integer_value(json_object_get(o, "err")), 0);
    json_t *counts = json_object_get(o, "data");
    assert_int_equal(json_integer_value(json_object_get(counts, "accepted"))
                     + json_integer_value(json_object_get(counts, "duplicates")), 1);
    json_decref(o);
    expect_403(q, body, RELAIS_PUBLIK_E_NONCE);

    /* a hub that cannot journal: 503, err 1 */
    ts_recorder_set_down(REC, 1);
    char *q2 = relais_publik_sign_query("orig=" WH_ORIG, WH_KEY, "sha256", time(NULL), NULL);
    assert_int_equal(webhook_post(q2, body, &o), 503);
    assert_int_equal(json_integer_value(json_object_get(o, "err")), 1);
    json_decref(o);
    ts_recorder_set_down(REC, 0);
    ts_recorder_set_accepting(REC, 0);
    char *q3 = relais_publik_sign_query("orig=" WH_ORIG, WH_KEY, "sha256", time(NULL), NULL);
    assert_int_equal(webhook_post(q3, body, &o), 503);
    json_decref(o);
    ts_recorder_set_accepting(REC, 1);

    /* signed but not a form of ours: 400, journaled as rejected */
    char *q4 = relais_publik_sign_query("orig=" WH_ORIG, WH_KEY, "sha256", time(NULL), NULL);
    assert_int_equal(webhook_post(q4, "{\"id\": \"1\", \"url\": \"http://w/etat-civil/1/\"}", &o), 400);
    assert_string_equal(json_string_value(json_object_get(o, "err_code")), "invalid-request");
    assert_non_null(strstr(json_string_value(json_object_get(o, "err_desc")), "etat-civil"));
    json_decref(o);
    char *q5 = relais_publik_sign_query("orig=" WH_ORIG, WH_KEY, "sha256", time(NULL), NULL);
    assert_int_equal(webhook_post(q5, "{not json", &o), 400);
    json_decref(o);
    assert_int_equal(ts_recorder_nrejs(REC), 2);
    /* other paths and methods */
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/other", SIM.hook_port);
    assert_int_equal(http("POST", url, "{}", &o), 404);
    assert_int_equal(json_integer_value(json_object_get(o, "err")), 1);
    json_decref(o);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/publik/webhook", SIM.hook_port);
    assert_int_equal(http("GET", url, NULL, &o), 405);
    json_decref(o);
    free(q); free(bad); free(stale); free(future); free(intrus); free(other); free(q2); free(q3); free(q4); free(q5);
    free(body);
    conn_close(&c);
}

/* ---- Sink --------------------------------------------------------------------------------- */

static relais_event *event(const char *type, const char *subject, const char *record_id, const char *data)
{
    json_t *d = json_loads(data, 0, NULL);
    assert_non_null(d);
    relais_record r = { .type = type, .subject = subject, .record_id = record_id, .data = d };
    char err[256];
    relais_event *ev = relais_event_build(&r, "requests", "ville", err, sizeof err);
    json_decref(d);
    if (!ev) fail_msg("event: %s", err);
    return ev;
}

static void sink_open(conn *c, const char *key_env, const char *url, const char *timeout)
{
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml, "url: %s\norig: relais\nkey: env:%s\nformdefs: [signalement-voirie]\ntimeout: %s\n",
             url ? url : SIM.base, key_env, timeout ? timeout : "3s");
    if (conn_open(c, RELAIS_MODE_SINK, yaml, 1, err, sizeof err) != 0) fail_msg("sink: %s", err);
}

static relais_verdict deliver(conn *c, relais_event *ev, const char *local, relais_answer *ans)
{
    memset(ans, 0, sizeof *ans);
    return relais_connector_publik.deliver(c->ctx, ev, local, ans);
}

static void test_sink_hooks(void **state)
{
    conn src, snk;
    source_open(&src, 0, 1);
    sink_open(&snk, "RELAIS_TEST_PUBLIK_KEY", NULL, NULL);
    char *id = strdup(citizen_form("signalement-voirie", POTHOLE));
    char local[64], subject[96];
    snprintf(local, sizeof local, "signalement-voirie/%s", id);
    snprintf(subject, sizeof subject, "request/wcs-signalement-voirie-%s", id);
    poll_now(&src);

    relais_answer ans;
    relais_event *ev = event("fr.relais.grc.request.updated.v1", subject, "wo-1/planned",
                             "{\"status\": \"in_progress\", \"updated_at\": \"2026-03-06T08:30:12+01:00\", "
                             "\"comment\": \"Intervention prévue jeudi 12 mars.\", \"comment_visibility\": \"public\"}");
    assert_int_equal(deliver(&snk, ev, local, &ans), RELAIS_DELIVER_OK);
    assert_int_equal(ans.status, 200);
    assert_string_equal(ans.local_id, local);
    json_t *h = history("signalement-voirie", id);
    assert_string_equal(json_string_value(json_object_get(h, "status")), "en-cours");
    json_t *last = json_array_get(json_object_get(h, "evolution"), 1);
    assert_string_equal(json_string_value(json_object_get(last, "comment")), "Intervention prévue jeudi 12 mars.");
    assert_string_equal(json_string_value(json_object_get(json_object_get(last, "who"), "name")), "relais");
    json_t *wd = json_object_get(json_object_get(h, "workflow_data"), "relais-update");
    assert_string_equal(json_string_value(json_object_get(wd, "event_id")), relais_event_id(ev));
    assert_string_equal(json_string_value(json_object_get(wd, "status")), "in_progress");
    json_decref(h);
    /* delivered again (a retry after a lost answer): applied once */
    assert_int_equal(deliver(&snk, ev, local, &ans), RELAIS_DELIVER_OK);
    h = history("signalement-voirie", id);
    assert_int_equal(json_array_size(json_object_get(h, "evolution")), 2);
    json_decref(h);
    relais_event_unref(ev);

    /* the change Relais wrote comes back by polling: an echo, not an event */
    size_t before = ts_recorder_naccepted(REC);
    poll_now(&src);
    assert_int_equal(ts_recorder_naccepted(REC), before);
    assert_int_equal(echoes(), 1);

    /* an update without public comment: the status's own message */
    ev = event("fr.relais.grc.request.updated.v1", subject, "wo-1/waiting",
               "{\"status\": \"waiting\", \"updated_at\": \"2026-03-06T09:00:00+01:00\", "
               "\"comment\": \"camion 3\", \"comment_visibility\": \"internal\"}");
    assert_int_equal(deliver(&snk, ev, local, &ans), RELAIS_DELIVER_OK);
    relais_event_unref(ev);
    h = history("signalement-voirie", id);
    assert_string_equal(json_string_value(json_object_get(h, "status")), "planifiee");
    last = json_array_get(json_object_get(h, "evolution"), 2);
    assert_string_equal(json_string_value(json_object_get(last, "comment")),
                        "Une intervention est programmée pour traiter votre demande.");
    json_decref(h);

    /* closed with the answer */
    ev = event("fr.relais.grc.request.closed.v1", subject, "wo-1/done",
               "{\"closed_at\": \"2026-03-09T17:00:00+01:00\", \"outcome\": \"resolved\", "
               "\"answer\": \"Le trou a été rebouché le 9 mars.\"}");
    assert_int_equal(deliver(&snk, ev, local, &ans), RELAIS_DELIVER_OK);
    relais_event_unref(ev);
    h = history("signalement-voirie", id);
    assert_string_equal(json_string_value(json_object_get(h, "status")), "termine");
    json_decref(h);

    /* an update read from this very form is not written back */
    char rid[96];
    snprintf(rid, sizeof rid, "%s/1", local);
    long hooks = sim_counter("hooks");
    ev = event("fr.relais.grc.request.updated.v1", subject, rid,
               "{\"status\": \"in_progress\", \"updated_at\": \"2026-03-06T08:30:12+01:00\"}");
    assert_int_equal(deliver(&snk, ev, local, &ans), RELAIS_DELIVER_OK);
    assert_non_null(strstr(ans.detail, "came from this form"));
    assert_int_equal(sim_counter("hooks"), hooks);
    /* no form known: REJECT with a clear reason */
    assert_int_equal(deliver(&snk, ev, NULL, &ans), RELAIS_DELIVER_REJECT);
    assert_non_null(strstr(ans.detail, "no w.c.s. form is known for request/wcs-"));
    assert_int_equal(deliver(&snk, ev, "pas un id", &ans), RELAIS_DELIVER_REJECT);
    /* an unknown form: w.c.s. says 404 */
    assert_int_equal(deliver(&snk, ev, "signalement-voirie/999", &ans), RELAIS_DELIVER_REJECT);
    assert_int_equal(ans.status, 404);
    assert_non_null(strstr(ans.detail, "not-found"));
    relais_event_unref(ev);
    free(id);
    conn_close(&snk);
    conn_close(&src);
}

static void test_sink_creates_forms(void **state)
{
    conn src, snk;
    source_open(&src, 0, 1);
    sink_open(&snk, "RELAIS_TEST_PUBLIK_KEY", NULL, NULL);
    relais_answer ans;
    relais_event *ev = event("fr.relais.grc.request.created.v1", "request/o311-88", "o311-88",
                             "{\"channel\": \"web\", \"category\": \"Éclairage public\", "
                             "\"description\": \"Lampadaire éteint\", \"status\": \"new\", "
                             "\"opened_at\": \"2026-03-05T21:00:00+01:00\", "
                             "\"location\": {\"point\": {\"lat\": 48.73, \"lon\": 2.27}}, "
                             "\"requester\": {\"identity\": {\"family_name\": \"DUPONT\"}, "
                             "\"contact\": {\"email\": \"jean@example.org\"}}}");
    assert_int_equal(deliver(&snk, ev, NULL, &ans), RELAIS_DELIVER_OK);
    assert_int_equal(ans.status, 200);
    assert_string_equal(ans.local_id, "signalement-voirie/1");
    json_t *f = sim_json("GET", "/_sim/forms/signalement-voirie/1", NULL);
    json_t *fields = json_object_get(f, "fields");
    assert_string_equal(json_string_value(json_object_get(fields, "categorie_raw")), "eclairage");
    assert_string_equal(json_string_value(json_object_get(fields, "nom")), "DUPONT");
    assert_string_equal(json_string_value(json_object_get(json_object_get(f, "user"), "email")), "jean@example.org");
    json_decref(f);
    /* a retry with the same event (Idempotency-Key): the same form */
    assert_int_equal(deliver(&snk, ev, NULL, &ans), RELAIS_DELIVER_OK);
    assert_string_equal(ans.local_id, "signalement-voirie/1");
    assert_int_equal(sim_counter("forms"), 1);
    relais_event_unref(ev);
    /* the hub recorded the cross-reference; the source sees the form as an echo, under its request */
    fake_xref_put(NULL, NULL, "request/o311-88", "signalement-voirie/1");
    poll_now(&src);
    assert_int_equal(ts_recorder_naccepted(REC), 0);
    assert_int_equal(echoes(), 1);
    /* an agent's change on it is an update of request/o311-88 */
    agent_status("signalement-voirie", "1", "en-cours", NULL);
    poll_now(&src);
    const ts_submitted *s = ts_recorder_find(REC, "signalement-voirie/1/1");
    assert_non_null(s);
    assert_string_equal(s->subject, "request/o311-88");
    char *x = xref_of("request/wcs-signalement-voirie-1");
    assert_null(x);   /* no second canonical id for that form */

    /* requests that need no form */
    ev = event("fr.relais.grc.request.created.v1", "request/wcs-signalement-voirie-7", "signalement-voirie/7/created",
               "{\"channel\": \"web\", \"category\": \"Propreté\", \"status\": \"new\", "
               "\"opened_at\": \"2026-03-05T21:00:00+01:00\"}");
    assert_int_equal(deliver(&snk, ev, NULL, &ans), RELAIS_DELIVER_OK);
    assert_non_null(strstr(ans.detail, "born in w.c.s."));
    relais_event_unref(ev);
    ev = event("fr.relais.grc.request.created.v1", "request/o311-90", "o311-90",
               "{\"channel\": \"web\", \"category\": \"Propreté\", \"status\": \"new\", "
               "\"opened_at\": \"2026-03-05T21:00:00+01:00\"}");
    assert_int_equal(deliver(&snk, ev, "signalement-voirie/1", &ans), RELAIS_DELIVER_OK);
    assert_string_equal(ans.local_id, "signalement-voirie/1");
    assert_int_equal(sim_counter("forms"), 1);
    relais_event_unref(ev);
    /* a category w.c.s. has no item for: the mapping refuses, naming its file */
    ev = event("fr.relais.grc.request.created.v1", "request/o311-91", "o311-91",
               "{\"channel\": \"web\", \"category\": \"Tags\", \"status\": \"new\", "
               "\"opened_at\": \"2026-03-05T21:00:00+01:00\"}");
    assert_int_equal(deliver(&snk, ev, NULL, &ans), RELAIS_DELIVER_REJECT);
    assert_non_null(strstr(ans.detail, "request.yaml"));
    assert_non_null(strstr(ans.detail, "not in table 'category'"));
    relais_event_unref(ev);
    conn_close(&snk);
    conn_close(&src);
}

static void test_sink_verdicts(void **state)
{
    conn snk;
    sink_open(&snk, "RELAIS_TEST_PUBLIK_KEY", NULL, "1s");
    const char *id = citizen_form("signalement-voirie", POTHOLE);
    char local[64];
    snprintf(local, sizeof local, "signalement-voirie/%s", id);
    relais_answer ans;
    relais_event *ev = event("fr.relais.grc.request.updated.v1", "request/x-1", "x-1",
                             "{\"status\": \"in_progress\", \"updated_at\": \"2026-03-06T08:30:12+01:00\"}");
    json_decref(sim_json("POST", "/_sim/fail", "{\"status\": 500, \"count\": 1}"));
    assert_int_equal(deliver(&snk, ev, local, &ans), RELAIS_DELIVER_RETRY);
    assert_int_equal(ans.status, 500);
    json_decref(sim_json("POST", "/_sim/fail", "{\"status\": 429, \"count\": 1}"));
    assert_int_equal(deliver(&snk, ev, local, &ans), RELAIS_DELIVER_RETRY);
    json_decref(sim_json("POST", "/_sim/fail", "{\"status\": 400, \"count\": 1}"));
    assert_int_equal(deliver(&snk, ev, local, &ans), RELAIS_DELIVER_REJECT);
    assert_non_null(strstr(ans.detail, "injected failure"));
    /* a timeout */
    json_decref(sim_json("POST", "/_sim/fail", "{\"status\": 200, \"delay_ms\": 1500, \"count\": 1}"));
    assert_int_equal(deliver(&snk, ev, local, &ans), RELAIS_DELIVER_RETRY);
    assert_int_equal(ans.status, 0);
    ts_sleep_ms(600);
    /* the right answer at last */
    assert_int_equal(deliver(&snk, ev, local, &ans), RELAIS_DELIVER_OK);
    conn_close(&snk);

    /* a wrong key: w.c.s. refuses the signature for good */
    setenv("RELAIS_TEST_PUBLIK_BADKEY", "not-the-key", 1);
    sink_open(&snk, "RELAIS_TEST_PUBLIK_BADKEY", NULL, NULL);
    assert_int_equal(deliver(&snk, ev, local, &ans), RELAIS_DELIVER_REJECT);
    assert_int_equal(ans.status, 403);
    assert_string_equal(ans.detail, "HTTP 403 access-denied: Invalid signature.");
    conn_close(&snk);
    /* nobody listening: retry */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ts_free_port());
    sink_open(&snk, "RELAIS_TEST_PUBLIK_KEY", url, NULL);
    assert_int_equal(deliver(&snk, ev, local, &ans), RELAIS_DELIVER_RETRY);
    assert_int_equal(ans.status, 0);
    assert_true(ans.detail[0] != '\0');
    conn_close(&snk);
    /* an event type the sink has no call for */
    sink_open(&snk, "RELAIS_TEST_PUBLIK_KEY", NULL, NULL);
    relais_event *other = event("fr.relais.technical.workorder.created.v1", "workorder/1", "w-1",
                                "{\"intervention_type\": \"x\"}");
    assert_int_equal(deliver(&snk, other, local, &ans), RELAIS_DELIVER_REJECT);
    relais_event_unref(other);
    relais_event_unref(ev);
    conn_close(&snk);
}

/* ---- Options -------------------------------------------------------------------------------- */

static void expect_refused(unsigned mode, const char *yaml, int mapped, const char *msg)
{
    conn c;
    char err[512] = "";
    if (conn_open(&c, mode, yaml, mapped, err, sizeof err) == 0) {
        conn_close(&c);
        fail_msg("accepted: %s", yaml);
    }
    if (!strstr(err, msg)) fail_msg("'%s' lacks '%s'", err, msg);
}

static void test_options_refused(void **state)
{
    const char *ok = "url: http://127.0.0.1:1\norig: relais\nkey: env:RELAIS_TEST_PUBLIK_KEY\nformdefs: [a]\n";
    expect_refused(RELAIS_MODE_SINK, ok, 0, "needs a mapping");
    expect_refused(RELAIS_MODE_SINK, "url: http://127.0.0.1:1\norig: relais\nkey: env:RELAIS_TEST_PUBLIK_KEY\n",
                   1, "formdefs");
    expect_refused(RELAIS_MODE_SINK, "url: http://x\norig: relais\nkey: env:RELAIS_TEST_PUBLIK_KEY\nformdefs: [Bad]\n",
                   1, "not a form type slug");
    expect_refused(RELAIS_MODE_SINK, "orig: relais\nkey: env:RELAIS_TEST_PUBLIK_KEY\nformdefs: [a]\n", 1,
                   "needs url, orig and key");
    expect_refused(RELAIS_MODE_SINK, "url: ftp://x\norig: relais\nkey: env:RELAIS_TEST_PUBLIK_KEY\nformdefs: [a]\n",
                   1, "not an http");
    expect_refused(RELAIS_MODE_SINK, "url: http://x\norig: relais\nkey: relais-key\nformdefs: [a]\n", 1,
                   "env:NAME or file:PATH");
    expect_refused(RELAIS_MODE_SOURCE, "formdefs: [a]\npoll_interval: 0\n", 1, "polls");
    expect_refused(RELAIS_MODE_SOURCE, "formdefs: [a]\n", 1, "needs url, orig and key");
    expect_refused(RELAIS_MODE_SOURCE, "formdefs: [a]\npoll_interval: 0\nlisten: 127.0.0.1:0\n", 1,
                   "needs webhook_orig and webhook_key");
    expect_refused(RELAIS_MODE_SOURCE, "formdefs: [a]\nhook: x\n", 1, "applies only to sink");
    /* a webhook-only source is fine */
    conn c;
    char err[512];
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, "formdefs: [a]\npoll_interval: 0\nlisten: 127.0.0.1:0\n"
                               "webhook_orig: w\nwebhook_key: env:RELAIS_TEST_PUBLIK_WHKEY\n", 1, err, sizeof err), 0);
    assert_true(relais_publik_ctx_port(c.ctx) > 0);
    assert_int_equal(relais_connector_publik.receive(c.ctx), 0);   /* no polling: nothing */
    conn_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_polling_created_and_updated, each_setup),
        cmocka_unit_test_setup(test_polling_pages_and_unavailable_hub, each_setup),
        cmocka_unit_test_setup(test_unknown_category_rejected, each_setup),
        cmocka_unit_test_setup(test_webhook_and_polling_give_one_event, each_setup),
        cmocka_unit_test_setup(test_webhook_refusals, each_setup),
        cmocka_unit_test_setup(test_sink_hooks, each_setup),
        cmocka_unit_test_setup(test_sink_creates_forms, each_setup),
        cmocka_unit_test_setup(test_sink_verdicts, each_setup),
        cmocka_unit_test(test_options_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
