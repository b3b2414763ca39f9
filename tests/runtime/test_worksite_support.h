/*
 * test_worksite_support.h - test-only helpers shared by the worksite runtime
 * tests (test_worksite_sim.c, test_worksite_sink.c, test_worksite_source.c):
 * relais-sim-worksite started as a child process (found via
 * RELAIS_BUILD_DIR, set by ctest) with two tokens, Relais's and an agent's;
 * HTTP calls to it with libcurl; a worksite connector instance built from
 * YAML options through the real option table, with a mapping file of
 * connectors/worksite/mappings/ and the caller's hub ops.
 *
 * Header-only (static functions): each test executable includes it once.
 * Used from the test thread only.
 */
#ifndef TEST_WORKSITE_SUPPORT_H
#define TEST_WORKSITE_SUPPORT_H
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <curl/curl.h>
#include <jansson.h>
#include "testsupport.h"
#include "instance.h"
#include "options.h"
#include "yamltree.h"
#include "errlist.h"
#include "mapping.h"
#include "../../connectors/worksite/worksite_int.h"

#define WS_UNUSED __attribute__((unused))
#define TOK_RELAIS "tok-relais-1"
#define TOK_AGENT "tok-agent-2"

extern const relais_connector relais_connector_worksite;

typedef struct wsim {
    pid_t pid;
    int   port;
    char  url[64];
} wsim;

/* Start relais-sim-worksite on a free port: tokens TOK_RELAIS=relais and
 * TOK_AGENT=agent.voirie, agent agent.voirie, plus `extra` arguments. */
WS_UNUSED static void wsim_spawn(wsim *s, const char *const *extra)
{
    const char *bd = getenv("RELAIS_BUILD_DIR");
    if (!bd || !*bd) fail_msg("RELAIS_BUILD_DIR is not set (run through ctest)");
    char exe[1024], pf[256];
    snprintf(exe, sizeof exe, "%s/relais-sim-worksite", bd);
    if (access(exe, X_OK) != 0) fail_msg("%s: %s", exe, strerror(errno));
    snprintf(pf, sizeof pf, "/tmp/relais-sim-worksite-%d-%p.port", (int)getpid(), (void *)s);
    unlink(pf);
    const char *argv[24] = { exe, "--listen", "127.0.0.1:0", "--port-file", pf, "--quiet",
                             "--token", TOK_RELAIS "=relais", "--token", TOK_AGENT "=agent.voirie",
                             "--agent", "agent.voirie" };
    size_t k = 12;
    for (const char *const *x = extra; x && *x && k < 23; x++) argv[k++] = *x;
    argv[k] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    assert_true(pid > 0);
    s->pid = pid;
    for (int i = 0; i < 1000; i++) {
        FILE *f = fopen(pf, "r");
        if (f) {
            int ok = fscanf(f, "%d", &s->port) == 1;
            fclose(f);
            if (ok) {
                unlink(pf);
                snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", s->port);
                return;
            }
        }
        ts_sleep_ms(10);
    }
    fail_msg("relais-sim-worksite did not start");
}

WS_UNUSED static void wsim_kill(wsim *s)
{
    if (s->pid <= 0) return;
    kill(s->pid, SIGTERM);
    int st = 0;
    waitpid(s->pid, &st, 0);
    s->pid = 0;
}

typedef struct wresp {
    long    status;
    char   *body;
    size_t  len;
    json_t *json;          /* parsed body or NULL */
    char    headers[4096];
} wresp;

static size_t wresp_body(char *p, size_t sz, size_t n, void *ud)
{
    wresp *r = ud;
    size_t k = sz * n;
    char *nb = realloc(r->body, r->len + k + 1);
    if (!nb) return 0;
    r->body = nb;
    memcpy(r->body + r->len, p, k);
    r->len += k;
    r->body[r->len] = '\0';
    return k;
}

static size_t wresp_header(char *p, size_t sz, size_t n, void *ud)
{
    wresp *r = ud;
    size_t k = sz * n, used = strlen(r->headers);
    if (used + k + 1 < sizeof r->headers) {
        memcpy(r->headers + used, p, k);
        r->headers[used + k] = '\0';
    }
    return k;
}

/* One request to the simulator; token and idem may be NULL. The caller
 * frees the answer with wresp_free. status 0 when no HTTP answer came. */
WS_UNUSED static wresp *wcall(const wsim *s, const char *method, const char *path, const char *token,
                              const char *body, const char *idem)
{
    wresp *r = calloc(1, sizeof *r);
    CURL *h = curl_easy_init();
    assert_non_null(r);
    assert_non_null(h);
    char url[2048], auth[256], key[512];
    snprintf(url, sizeof url, "%s%s", s->url, path);
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        hl = curl_slist_append(hl, auth);
    }
    if (idem) {
        snprintf(key, sizeof key, "Idempotency-Key: %s", idem);
        hl = curl_slist_append(hl, key);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, wresp_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, wresp_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    if (r->body) r->json = json_loads(r->body, 0, NULL);
    return r;
}

WS_UNUSED static void wresp_free(wresp *r)
{
    if (!r) return;
    free(r->body);
    json_decref(r->json);
    free(r);
}

/* A call that must answer `want`; returns the parsed body (new reference). */
WS_UNUSED static json_t *wexpect(const wsim *s, const char *method, const char *path, const char *token,
                                 const char *body, long want)
{
    wresp *r = wcall(s, method, path, token, body, NULL);
    if (r->status != want) fail_msg("%s %s: HTTP %ld, expected %ld: %s", method, path, r->status, want,
                                    r->body ? r->body : "");
    json_t *j = json_incref(r->json);
    wresp_free(r);
    return j;
}

WS_UNUSED static void wsim_ctl(const wsim *s, const char *path, const char *body)
{
    json_decref(wexpect(s, "POST", path, NULL, body, 200));
}

WS_UNUSED static long wsim_stat(const wsim *s, const char *name)
{
    json_t *st = wexpect(s, "GET", "/_sim/stats", NULL, NULL, 200);
    long v = (long)json_integer_value(json_object_get(st, name));
    json_decref(st);
    return v;
}

/* After /_sim/down in refuse mode: wait until connections are refused. */
WS_UNUSED static void wsim_wait_down(const wsim *s)
{
    for (int i = 0; i < 200; i++) {
        wresp *r = wcall(s, "GET", "/_sim/stats", NULL, NULL, NULL);
        long st = r->status;
        wresp_free(r);
        if (st == 0) return;
        ts_sleep_ms(10);
    }
    fail_msg("relais-sim-worksite did not go down");
}

/* Create an intervention with `token`; returns its id (static buffer). */
WS_UNUSED static const char *wsim_create(const wsim *s, const char *token, const char *body)
{
    static char id[64];
    json_t *j = wexpect(s, "POST", "/api/v1/interventions", token, body, 201);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    return id;
}

/* ---- A worksite instance ------------------------------------------------------- */

typedef struct wconn {
    relais_worksite_config *cfg;
    relais_instance        *inst;
    void                   *ctx;
    relais_mapping         *map;
    int                     started;
} wconn;

/* Options from YAML through the real option table, the mapping
 * connectors/worksite/mappings/<mapping> (NULL: none), an instance "works"
 * of tenant "ville" with ops/hub, init, and start when `start`. 0, or -1
 * with the message in err (options, init or start refused). */
WS_UNUSED static int wconn_open(wconn *c, unsigned mode, const char *yaml, const char *mapping,
                                const relais_instance_ops *ops, void *hub, int start, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    yt_node *map = yt_load_buffer("test.yaml", yaml, strlen(yaml), err, errlen);
    assert_non_null(map);
    c->cfg = calloc(1, sizeof *c->cfg);
    relais_errlist errs;
    relais_errlist_init(&errs);
    int rc = relais_options_apply(relais_connector_worksite.options, c->cfg, mode, map, NULL, "test.yaml", &errs);
    if (rc != 0) snprintf(err, errlen, "%s", errs.count ? errs.msgs[0] : "?");
    relais_errlist_free(&errs);
    yt_free(map);
    if (rc != 0) return -1;
    if (mapping) {
        char rel[256];
        snprintf(rel, sizeof rel, "connectors/worksite/mappings/%s", mapping);
        relais_errlist_init(&errs);
        c->map = relais_mapping_load(ts_source_path(rel), &errs);
        if (!c->map) fail_msg("%s: %s", rel, errs.count ? errs.msgs[0] : "?");
        relais_errlist_free(&errs);
    }
    c->inst = relais_instance_new("works", "ville", mode, &relais_connector_worksite, c->cfg, ops, hub, NULL);
    c->inst->mapping = c->map;
    if (relais_connector_worksite.init(c->inst, c->cfg, &c->ctx, err, errlen) != 0) {
        c->ctx = NULL;
        return -1;
    }
    c->inst->ctx = c->ctx;
    if (start) {
        if (relais_connector_worksite.start(c->ctx, err, errlen) != 0) return -1;
        c->started = 1;
    }
    return 0;
}

WS_UNUSED static void wconn_close(wconn *c)
{
    if (c->ctx) {
        relais_connector_worksite.stop(c->ctx);
        relais_connector_worksite.destroy(c->ctx);
    }
    relais_instance_destroy(c->inst);
    if (c->cfg) relais_options_free(relais_connector_worksite.options, c->cfg);
    free(c->cfg);
    relais_mapping_destroy(c->map);
    memset(c, 0, sizeof *c);
}

/* The connector context's halves. */
WS_UNUSED static ws_source *wconn_source(const wconn *c)
{
    return ((relais_worksite_ctx *)c->ctx)->source;
}
#endif
