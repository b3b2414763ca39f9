/*
 * sim_publik.c - relais-sim-publik: a Publik w.c.s. simulator (libmicrohttpd)
 * for the publik connector's tests and the demo, written from the
 * published interface (/work/shared/fixtures/wcs/SPEC.md; see
 * connectors/publik/README.md).
 *
 *   relais-sim-publik --listen HOST:PORT [--port-file F] [--state FILE]
 *                     [--key ORIG=SECRET]... [--webhook URL]
 *                     [--webhook-key ORIG=SECRET] [--base-url URL] [--quiet]
 *
 * What it plays:
 *  - two form types with the same fields and workflow: signalement-voirie
 *    and demande-proprete (fields categorie (list: categorie, _raw,
 *    _structured), description, localisation {lat, lon}, photo (file), nom,
 *    prenom, email, telephone; statuses new "Nouveau", en-cours "En cours
 *    de traitement", planifiee "Intervention planifiée", termine "Terminé"
 *    and rejete "Rejeté" (end statuses));
 *  - API accesses from --key ORIG=SECRET (each with roles: an agent-level
 *    API user); signed URLs checked exactly as w.c.s. does (orig, key,
 *    algo (any hashlib-guaranteed hash), signature, timestamp +-30 s, nonce
 *    replay), refusals as 403 {err:1, err_class, err_code, err_desc} with
 *    w.c.s.'s texts;
 *  - GET /api/formdefs/; POST /api/formdefs/<slug>/submit (signed,
 *    Content-Type application/json, an Idempotency-Key gives the same form
 *    back); GET /api/forms/<slug>/<id>/ (a read; include-files-content);
 *    GET /api/forms/<slug>/list (bare list, or response_type=dict with
 *    count/next/previous; full=on; limit/offset; order_by; filter;
 *    filter-start-mtime; unsigned: 401 with WWW-Authenticate);
 *    POST|PUT /api/forms/<slug>/<id>/hooks/relais-update/ (a global action
 *    for signed calls: the body {"status": <canonical request status>,
 *    "message", "event_id"} is stored in workflow data under the hook's
 *    name, the form jumps to the matching status with the message as the
 *    evolution's comment and the API access as its author; an event_id
 *    already applied to the form changes nothing);
 *  - the webservice call on every status change (creation included): POST
 *    of the form export (file contents included) to --webhook, with
 *    orig=<ORIG> added to its query and signed with --webhook-key (SPEC
 *    section 4, case 1), from a worker thread, no retry.
 * Control endpoints (tests, demo), unsigned:
 *   POST /_sim/forms/<slug>             a citizen fills the form: {"fields":{...},
 *                                       "user":{"name","email"}, "channel":"web"} -> the export
 *   POST /_sim/forms/<slug>/<id>/status an agent acts: {"status","comment","agent"}
 *   GET  /_sim/forms/<slug>/<id>        the whole export
 *   GET  /_sim/forms/<slug>/<id>/history {"status","status_name","evolution","workflow_data"}
 *   GET  /_sim/stats                    counters; GET /_sim/webhooks: the calls made
 *   POST /_sim/fail                     {"status":500,"count":N,"delay_ms":D} for the next /api/ calls
 *   POST /_sim/reset                    forget every form and counter
 * Forms live in memory; with --state FILE they are also written to FILE
 * (JSON, after every change) and read back at start.
 *
 * Threads: MHD runs one thread per connection. Everything in struct sim
 * (forms, counters, failure injection, the webhook log) is guarded by
 * sim.lock; the webhook queue by sim.qlock/qcond, drained by the webhook
 * thread, which alone uses its curl handle. Request buffers belong to
 * their connection thread.
 * What every simulator does (options, daemon, port file, signals, request
 * log, bodies, /_sim/fail's common members) is hub/simkit.h's.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/rand.h>
#include "relais/relais.h"
#include "event_int.h"
#include "publik_int.h"
#include "simkit.h"

#define SIM_MAX_BODY (32L * 1024 * 1024)
#define MAX_KEYS 16
#define WEBHOOK_LOG 1000
#define HOOK_NAME "relais-update"

/* ---- The form types --------------------------------------------------------------- */

static const struct formdef {
    const char *slug, *title, *category, *service;
    int num;
} FORMDEFS[] = {
    { "signalement-voirie", "Signalement sur la voirie", "Voirie", "Service voirie", 1 },
    { "demande-proprete", "Demande de propreté", "Propreté", "Service propreté", 2 },
};
#define NFORMDEFS (sizeof FORMDEFS / sizeof FORMDEFS[0])

static const struct { const char *id, *text; } CATEGORIES[] = {
    { "nid-de-poule", "Nid de poule" }, { "eclairage", "Éclairage public" }, { "proprete", "Propreté" },
    { "espaces-verts", "Espaces verts" }, { "tags", "Tags et graffitis" },
};

static const struct status { const char *id, *name; int endpoint; } STATUSES[] = {
    { "new", "Nouveau", 0 }, { "en-cours", "En cours de traitement", 0 },
    { "planifiee", "Intervention planifiée", 0 }, { "termine", "Terminé", 1 }, { "rejete", "Rejeté", 1 },
};

/* The hook's global action: canonical request status -> status to jump to. */
static const struct { const char *canonical, *status; } HOOK_JUMPS[] = {
    { "new", "new" }, { "acknowledged", "new" }, { "in_progress", "en-cours" }, { "waiting", "planifiee" },
    { "resolved", "termine" }, { "closed", "termine" }, { "rejected", "rejete" },
};

static const char *const VARNAMES[] = { "categorie", "description", "localisation", "photo", "nom", "prenom",
                                        "email", "telephone", NULL };

static const struct formdef *formdef_of(const char *slug)
{
    for (size_t i = 0; i < NFORMDEFS; i++)
        if (strcmp(FORMDEFS[i].slug, slug) == 0) return &FORMDEFS[i];
    return NULL;
}

static const struct status *status_of(const char *id)
{
    for (size_t i = 0; i < sizeof STATUSES / sizeof STATUSES[0]; i++)
        if (strcmp(STATUSES[i].id, id) == 0 || strcmp(STATUSES[i].name, id) == 0) return &STATUSES[i];
    return NULL;
}

/* ---- State ------------------------------------------------------------------------ */

struct key { char *orig, *secret; };

struct webhook_job {
    char *body;                 /* the export, JSON text */
    char *caller;               /* Publik-Caller-URL */
    char  form[160];            /* "<slug>/<id>" */
    char  status[64];
    struct webhook_job *next;
};

struct sim {
    pthread_mutex_t lock;
    json_t *forms;              /* slug -> {id -> export} */
    json_t *next_id;            /* slug -> last id given */
    json_t *idem;               /* Idempotency-Key -> {"form": "<slug>/<id>", "answer": {...}} */
    json_t *applied;            /* "<slug>/<id>" -> {event_id: true} (hook bodies applied) */
    json_t *webhooks;           /* log of webhook calls made (last WEBHOOK_LOG) */
    json_t *counters;           /* name -> n */
    relais_simkit_fault fault;
    relais_publik_nonces *nonces;
    /* read-only after start */
    relais_simkit kit;
    char   *base;
    const char *state_file;
    struct key keys[MAX_KEYS];
    size_t  nkeys;
    const char *webhook_url;
    struct key webhook_key;
    /* webhook queue */
    pthread_mutex_t qlock;
    pthread_cond_t  qcond;
    struct webhook_job *qhead, *qtail;
    int     qbusy;              /* a call is being made */
    int     qstop;
};

static void bump(struct sim *sim, const char *name)
{
    json_t *v = json_object_get(sim->counters, name);
    json_object_set_new(sim->counters, name, json_integer(json_integer_value(v) + 1));
}

/* Write the state file (under sim.lock). */
static void persist(struct sim *sim)
{
    if (!sim->state_file) return;
    json_t *all = json_pack("{s:O,s:O,s:O,s:O}", "forms", sim->forms, "next_id", sim->next_id,
                            "idempotency", sim->idem, "applied", sim->applied);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", sim->state_file);
    if (!all || json_dump_file(all, tmp, JSON_INDENT(1) | JSON_SORT_KEYS) != 0 || rename(tmp, sim->state_file) != 0)
        relais_logf(RELAIS_LOG_WARN, "sim-publik", "cannot write %s: %s", sim->state_file, strerror(errno));
    json_decref(all);
}

static int load_state(struct sim *sim, char *err, size_t errlen)
{
    if (!sim->state_file || access(sim->state_file, F_OK) != 0) return 0;
    json_error_t je;
    json_t *all = json_load_file(sim->state_file, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(all)) {
        snprintf(err, errlen, "%s:%d: %s", sim->state_file, je.line, all ? "not a JSON object" : je.text);
        json_decref(all);
        return -1;
    }
    static const char *const keys[] = { "forms", "next_id", "idempotency", "applied" };
    json_t **dst[] = { &sim->forms, &sim->next_id, &sim->idem, &sim->applied };
    for (size_t i = 0; i < 4; i++) {
        json_t *v = json_object_get(all, keys[i]);
        if (json_is_object(v)) {
            json_decref(*dst[i]);
            *dst[i] = json_incref(v);
        }
    }
    json_decref(all);
    return 0;
}

/* ---- Times ------------------------------------------------------------------------- */

/* Local time without zone: "2026-03-05T10:15:00" (receipt_time, last_update_time). */
static void local_time(const struct timeval *tv, char *buf, size_t len)
{
    struct tm tm;
    time_t t = tv->tv_sec;
    localtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
}

/* With microseconds and offset: "2026-03-05T10:15:00.318205+01:00" (evolution times). */
static void offset_time(const struct timeval *tv, char *buf, size_t len)
{
    struct tm tm;
    time_t t = tv->tv_sec;
    localtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    long off = tm.tm_gmtoff;
    char sign = off < 0 ? '-' : '+';
    if (off < 0) off = -off;
    if (snprintf(buf, len, "%s.%06ld%c%02ld:%02ld", base, (long)tv->tv_usec, sign, off / 3600, off % 3600 / 60)
        >= (int)len && len)
        buf[0] = '\0';   /* never: callers give 40 bytes */
}

/* ---- Responses --------------------------------------------------------------------- */

/* A JSON answer (body taken); w.c.s.'s {"err":1} when there is none. */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, json_t *body, const char *hname,
                             const char *hvalue)
{
    struct MHD_Response *r = relais_simkit_json(body, 0, "{\"err\":1}");
    if (r && hname) MHD_add_response_header(r, hname, hvalue);
    return relais_simkit_queue(c, status, r);
}

static enum MHD_Result error_reply(struct sim *sim, struct MHD_Connection *c, const char *method,
                                   const char *url, unsigned status, const char *desc)
{
    const char *cls = "Invalid request", *code = "invalid-request";
    if (status == 401) { cls = "Access denied"; code = "access-unauthorized"; }
    else if (status == 403) { cls = "Access denied"; code = "access-denied"; }
    else if (status == 404) { cls = "Page not found"; code = "not-found"; }
    relais_simkit_log(&sim->kit, method, url, status, desc);
    if (status == 403) {
        pthread_mutex_lock(&sim->lock);
        bump(sim, "refused");
        pthread_mutex_unlock(&sim->lock);
    }
    if (status >= 500) return reply(c, status, json_pack("{s:i}", "err", 1), NULL, NULL);
    return reply(c, status, relais_publik_error_body(cls, code, desc),
                 status == 401 ? MHD_HTTP_HEADER_WWW_AUTHENTICATE : NULL, "Basic realm=\"list\"");
}

/* ---- Signatures -------------------------------------------------------------------- */

static const char *key_for(void *arg, const char *orig)
{
    const struct sim *sim = arg;
    for (size_t i = 0; i < sim->nkeys; i++)
        if (strcmp(sim->keys[i].orig, orig) == 0) return sim->keys[i].secret;
    return NULL;
}

/* The query string of the raw request URI. */
static const char *raw_query(const relais_simkit_request *rq)
{
    const char *q = rq->uri ? strchr(rq->uri, '?') : NULL;
    return q ? q + 1 : "";
}

/* RELAIS_PUBLIK_SIG_*; err holds w.c.s.'s text; orig the caller. */
static relais_publik_sig signed_by(struct sim *sim, const relais_simkit_request *rq, char *err, size_t errlen,
                                   char *orig, size_t origlen)
{
    const char *q = raw_query(rq);
    relais_publik_verify_opts o = { .key_for = key_for, .arg = sim, .nonces = sim->nonces, .now = time(NULL),
                                    .window_s = RELAIS_PUBLIK_WINDOW_S, .all_algos = 1 };
    return relais_publik_verify(q, strlen(q), &o, err, errlen, orig, origlen);
}

/* ---- Form exports ------------------------------------------------------------------ */

static json_t *status_object(const struct status *st, const char *at)
{
    return json_pack("{s:s,s:s,s:b,s:s,s:s}", "id", st->id, "name", st->name, "endpoint", st->endpoint,
                     "first_arrival_datetime", at, "latest_arrival_datetime", at);
}

static json_t *role_list(const struct formdef *fd)
{
    json_t *role = json_pack("{s:s,s:s,s:b,s:[],s:s,s:b,s:s,s:s}", "name", fd->service, "text", fd->service,
                             "allows_backoffice_access", 1, "emails", "details", "", "emails_to_members", 0,
                             "slug", fd->num == 1 ? "service-voirie" : "service-proprete", "id",
                             fd->num == 1 ? "3" : "4");
    return json_pack("[o]", role);
}

/* Keep the formdef's fields from a submitted "data" (or the control API's
 * "fields"); the list field gets its display text, _raw and _structured. */
static json_t *form_fields(struct sim *sim, const json_t *in, const char *url_base)
{
    json_t *f = json_object();
    for (size_t i = 0; VARNAMES[i]; i++) {
        const char *k = VARNAMES[i];
        json_t *v = json_object_get(in, k);
        if (strcmp(k, "categorie") == 0) {
            const char *raw = json_string_value(json_object_get(in, "categorie_raw"));
            const char *txt = json_string_value(v);
            int found = 0;
            for (size_t j = 0; j < sizeof CATEGORIES / sizeof CATEGORIES[0] && !found; j++) {
                if ((raw && strcmp(raw, CATEGORIES[j].id) == 0)
                    || (!raw && txt && (strcmp(txt, CATEGORIES[j].id) == 0 || strcmp(txt, CATEGORIES[j].text) == 0))) {
                    json_object_set_new(f, "categorie", json_string(CATEGORIES[j].text));
                    json_object_set_new(f, "categorie_raw", json_string(CATEGORIES[j].id));
                    json_object_set_new(f, "categorie_structured",
                                        json_pack("{s:s,s:s}", "id", CATEGORIES[j].id, "text", CATEGORIES[j].text));
                    found = 1;
                }
            }
            if (!found && (raw || txt)) {   /* stored as given */
                json_object_set_new(f, "categorie", json_string(txt ? txt : raw));
                json_object_set_new(f, "categorie_raw", json_string(raw ? raw : txt));
            }
        } else if (strcmp(k, "photo") == 0 && json_is_object(v)) {
            char url[512];
            if (snprintf(url, sizeof url, "%sdownload?f=photo", url_base) >= (int)sizeof url) url[0] = '\0';
            const char *fn = json_string_value(json_object_get(v, "filename"));
            const char *ct = json_string_value(json_object_get(v, "content_type"));
            const char *content = json_string_value(json_object_get(v, "content"));
            json_object_set_new(f, "photo", json_pack("{s:s,s:s,s:s,s:s}", "filename", fn ? fn : "photo.jpg",
                                                     "content_type", ct ? ct : "image/jpeg",
                                                     "content", content ? content : "", "url", url));
        } else if (v && !json_is_null(v)) {
            json_object_set(f, k, v);
        }
    }
    (void)sim;
    return f;
}

static json_t *who_agent(const char *name)
{
    return json_pack("{s:i,s:s,s:s}", "id", 101, "name", name ? name : "Agent", "email", "agent@example.org");
}

static json_t *who_api(const char *orig)
{
    char id[160];
    snprintf(id, sizeof id, "api-access:%s", orig);
    return json_pack("{s:s,s:s}", "id", id, "name", orig);
}

/* Append an evolution entry and move the form (under sim.lock). status may
 * be NULL (a comment). who_id may be NULL. Returns 1 when the status changed. */
static int evolve(json_t *form, const char *status, const char *comment, const char *who_id, json_t *who)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char lt[32], ot[48];
    local_time(&tv, lt, sizeof lt);
    offset_time(&tv, ot, sizeof ot);
    json_t *e = json_pack("{s:s,s:n,s:o}", "time", ot, "last_jump_datetime", "who_id",
                          who_id ? json_string(who_id) : json_null());
    json_t *wf = json_object_get(form, "workflow");
    const char *cur = json_string_value(json_object_get(json_object_get(wf, "status"), "id"));
    int changed = status && (!cur || strcmp(cur, status) != 0);
    if (status) json_object_set_new(e, "status", json_string(status));
    if (who) json_object_set_new(e, "who", who);
    if (comment && *comment) json_object_set_new(e, "comment", json_string(comment));
    json_array_append_new(json_object_get(form, "evolution"), e);
    if (changed) {
        const struct status *st = status_of(status);
        json_object_set_new(wf, "status", status_object(st, ot));
        json_object_set_new(wf, "real_status", status_object(st, ot));
    }
    json_object_set_new(form, "last_update_time", json_string(lt));
    return changed;
}

/* A new form (under sim.lock): the export, stored. who: the author of the
 * first evolution entry (taken). */
static json_t *create_form(struct sim *sim, const struct formdef *fd, const json_t *data, json_t *user,
                           const char *channel, int backoffice, const char *who_id, json_t *who)
{
    json_int_t n = json_integer_value(json_object_get(sim->next_id, fd->slug)) + 1;
    json_object_set_new(sim->next_id, fd->slug, json_integer(n));
    char id[32], display[48], name[256], url[512], api[512], bo[512], uuid[37];
    snprintf(id, sizeof id, "%" JSON_INTEGER_FORMAT, n);
    snprintf(display, sizeof display, "%d-%s", fd->num, id);
    snprintf(name, sizeof name, "%s #%s", fd->title, display);
    snprintf(url, sizeof url, "%s/%s/%s/", sim->base, fd->slug, id);
    snprintf(api, sizeof api, "%s/api/forms/%s/%s/", sim->base, fd->slug, id);
    snprintf(bo, sizeof bo, "%s/backoffice/management/%s/%s/", sim->base, fd->slug, id);
    relais_uuid_v7(uuid);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char lt[32];
    local_time(&tv, lt, sizeof lt);
    json_t *fields = form_fields(sim, data, url);
    const char *cat = json_string_value(json_object_get(fields, "categorie"));
    json_t *form = json_pack("{s:s,s:s,s:s,s:s,s:s,s:{s:o},s:s,s:s,s:s,s:o,s:i,s:s,s:s,s:o,"
                             "s:{s:n,s:n,s:{},s:{}},s:{s:o,s:o,s:o},s:{s:b,s:s},s:[]}",
                             "uuid", uuid, "id", id, "internal_id", id, "display_id", display, "display_name", name,
                             "digests", "default", cat ? json_string(cat) : json_null(), "text", name, "url", url,
                             "receipt_time", lt, "user", user ? user : json_null(), "criticality_level", 0,
                             "api_url", api, "backoffice_url", bo, "fields", fields,
                             "workflow", "status", "real_status", "fields", "data",
                             "roles", "_receiver", role_list(fd), "concerned", role_list(fd), "actions", role_list(fd),
                             "submission", "backoffice", backoffice, "channel", channel ? channel : "web",
                             "evolution");
    if (!form) {
        json_decref(who);
        return NULL;
    }
    json_t *loc = json_object_get(fields, "localisation");
    if (json_is_object(loc)) json_object_set_new(form, "geolocations", json_pack("{s:O}", "base", loc));
    evolve(form, "new", NULL, who_id, who);
    json_t *slot = json_object_get(sim->forms, fd->slug);
    if (!slot) {
        slot = json_object();
        json_object_set_new(sim->forms, fd->slug, slot);
    }
    json_object_set_new(slot, id, form);
    bump(sim, "forms_created");
    return form;
}

static json_t *find_form(struct sim *sim, const char *slug, const char *id)
{
    return json_object_get(json_object_get(sim->forms, slug), id);
}

/* The export without file contents (lists, include-files-content=off). */
static json_t *without_files(const json_t *form)
{
    return relais_publik_strip_files(form);
}

static json_t *reduced_item(const json_t *form)
{
    json_t *o = json_object();
    static const char *const keys[] = { "id", "internal_id", "display_id", "display_name", "text", "url",
                                        "receipt_time", "last_update_time", "uuid", NULL };
    for (size_t i = 0; keys[i]; i++) json_object_set(o, keys[i], json_object_get(form, keys[i]));
    json_object_set(o, "digest", json_object_get(json_object_get(form, "digests"), "default"));
    return o;
}

/* ---- The webservice call (webhook) --------------------------------------------------- */

/* Queue a call for a form that just changed status (under sim.lock). */
static void queue_webhook(struct sim *sim, const char *slug, const json_t *form)
{
    if (!sim->webhook_url) return;
    struct webhook_job *j = calloc(1, sizeof *j);
    if (!j) return;
    j->body = json_dumps(form, JSON_COMPACT);
    const char *bo = json_string_value(json_object_get(form, "backoffice_url"));
    j->caller = strdup(bo ? bo : "");
    snprintf(j->form, sizeof j->form, "%s/%s", slug, json_string_value(json_object_get(form, "id")));
    snprintf(j->status, sizeof j->status, "%s",
             json_string_value(json_object_get(json_object_get(json_object_get(form, "workflow"), "status"), "id")));
    if (!j->body || !j->caller) {
        free(j->body);
        free(j->caller);
        free(j);
        return;
    }
    pthread_mutex_lock(&sim->qlock);
    if (sim->qtail) sim->qtail->next = j;
    else sim->qhead = j;
    sim->qtail = j;
    pthread_cond_signal(&sim->qcond);
    pthread_mutex_unlock(&sim->qlock);
}

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    relais_publik_reply *r = userdata;
    size_t n = size * nmemb;
    if (r->len + n > 65536) return n;   /* keep the start only */
    char *nb = realloc(r->body, r->len + n + 1);
    if (!nb) return 0;
    r->body = nb;
    memcpy(r->body + r->len, ptr, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

static void call_webhook(struct sim *sim, CURL *h, struct webhook_job *j)
{
    /* the configured URL, orig= added to its query, signed now */
    const char *url = sim->webhook_url;
    const char *qm = strchr(url, '?');
    char *oenc = relais_publik_pct_encode(sim->webhook_key.orig, "", 1);
    size_t n = strlen(url) + (oenc ? strlen(oenc) : 0) + 16;
    char *query = malloc(n);
    char *signed_q = NULL;
    if (query && oenc) {
        snprintf(query, n, "%s%sorig=%s", qm ? qm + 1 : "", qm && qm[1] ? "&" : "", oenc);
        signed_q = relais_publik_sign_query(query, sim->webhook_key.secret, "sha256", time(NULL), NULL);
    }
    free(oenc);
    free(query);
    size_t ul = signed_q ? strlen(url) + strlen(signed_q) + 2 : 0;
    char *full = ul ? malloc(ul) : NULL;
    if (full) snprintf(full, ul, "%.*s?%s", (int)(qm ? (size_t)(qm - url) : strlen(url)), url, signed_q);
    free(signed_q);

    relais_publik_reply r = { 0 };
    long code = 0;
    char errbuf[CURL_ERROR_SIZE] = "";
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    struct curl_slist *hl = NULL;
    char caller[1024];
    snprintf(caller, sizeof caller, "Publik-Caller-URL: %s", j->caller);
    hl = curl_slist_append(hl, "Accept: application/json");
    hl = curl_slist_append(hl, "Content-type: application/json");
    hl = curl_slist_append(hl, caller);
    if (full && hl) {
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, full);
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, j->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(j->body));
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "w.c.s./relais-sim-publik");
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 15000L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
        rc = curl_easy_perform(h);
        if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    }
    curl_slist_free_all(hl);
    free(full);
    /* w.c.s.: the application error is `err` of a JSON object answer */
    long app_err = -1;
    json_t *ans = r.body ? json_loads(r.body, 0, NULL) : NULL;
    json_t *e = json_object_get(ans, "err");
    if (json_is_object(ans)) app_err = e ? (json_is_integer(e) ? (long)json_integer_value(e) : json_is_true(e)) : 0;
    int ok = rc == CURLE_OK && code >= 200 && code < 300 && app_err == 0;
    json_t *entry = json_pack("{s:s,s:s,s:i,s:I,s:b}", "form", j->form, "status", j->status, "http_status", (int)code,
                              "err", (json_int_t)app_err, "ok", ok);
    if (rc != CURLE_OK) json_object_set_new(entry, "error", json_string(errbuf[0] ? errbuf : curl_easy_strerror(rc)));
    if (ans) json_object_set_new(entry, "answer", ans);
    pthread_mutex_lock(&sim->lock);
    bump(sim, ok ? "webhook_ok" : "webhook_failed");
    json_array_append_new(sim->webhooks, entry);
    while (json_array_size(sim->webhooks) > WEBHOOK_LOG) json_array_remove(sim->webhooks, 0);
    pthread_mutex_unlock(&sim->lock);
    if (!sim->kit.quiet)
        relais_logf(ok ? RELAIS_LOG_INFO : RELAIS_LOG_WARN, "sim-publik", "webhook %s (%s) -> %ld%s%s", j->form,
                    j->status, code, rc != CURLE_OK ? " " : "", rc != CURLE_OK ? curl_easy_strerror(rc) : "");
    free(r.body);
}

static void *webhook_main(void *arg)
{
    struct sim *sim = arg;
    CURL *h = curl_easy_init();
    for (;;) {
        pthread_mutex_lock(&sim->qlock);
        while (!sim->qhead && !sim->qstop) pthread_cond_wait(&sim->qcond, &sim->qlock);
        struct webhook_job *j = sim->qhead;
        if (j) {
            sim->qhead = j->next;
            if (!sim->qhead) sim->qtail = NULL;
            sim->qbusy = 1;
        }
        int stop = sim->qstop && !j;
        pthread_mutex_unlock(&sim->qlock);
        if (stop) break;
        if (j && h) call_webhook(sim, h, j);
        if (j) {
            free(j->body);
            free(j->caller);
            free(j);
            pthread_mutex_lock(&sim->qlock);
            sim->qbusy = 0;
            pthread_mutex_unlock(&sim->qlock);
        }
    }
    if (h) curl_easy_cleanup(h);
    return NULL;
}

/* ---- API handlers -------------------------------------------------------------------- */

/* An injected failure for the next /api/ call: 0 none, else the status to answer. */
static int injected(struct sim *sim)
{
    int st = 0;
    long delay = 0;
    pthread_mutex_lock(&sim->lock);
    relais_simkit_fault_take(&sim->fault, &st, &delay);
    pthread_mutex_unlock(&sim->lock);
    if (delay > 0) relais_simkit_sleep_ms(delay);
    return st;
}

static enum MHD_Result api_formdefs(struct sim *sim, struct MHD_Connection *c, const char *url)
{
    json_t *data = json_array();
    for (size_t i = 0; i < NFORMDEFS; i++) {
        char u[512];
        snprintf(u, sizeof u, "%s/%s/", sim->base, FORMDEFS[i].slug);
        char cslug[64];
        snprintf(cslug, sizeof cslug, "%s", FORMDEFS[i].num == 1 ? "voirie" : "proprete");
        json_array_append_new(data, json_pack("{s:s,s:s,s:s,s:s,s:[],s:b,s:b,s:n,s:{},s:s,s:s}",
                                              "title", FORMDEFS[i].title, "slug", FORMDEFS[i].slug, "url", u,
                                              "description", "", "keywords", "authentication_required", 0,
                                              "always_advertise", 0, "redirection", "functions",
                                              "category", FORMDEFS[i].category, "category_slug", cslug));
    }
    relais_simkit_log(&sim->kit, "GET", url, 200, NULL);
    return reply(c, 200, json_pack("{s:i,s:o}", "err", 0, "data", data), NULL, NULL);
}

/* Content-Type application/json, parameters allowed. */
static int json_content_type(struct MHD_Connection *c)
{
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct) return 0;
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) n--;
    return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

static enum MHD_Result api_submit(struct sim *sim, struct MHD_Connection *c, const char *url, const char *slug,
                                  relais_simkit_request *rq)
{
    const struct formdef *fd = formdef_of(slug);
    if (!fd) return error_reply(sim, c, "POST", url, 404, NULL);
    char err[512], orig[128];
    relais_publik_sig sg = signed_by(sim, rq, err, sizeof err, orig, sizeof orig);
    if (sg != RELAIS_PUBLIK_SIG_OK)
        return error_reply(sim, c, "POST", url, 403, sg == RELAIS_PUBLIK_SIG_UNSIGNED ? RELAIS_PUBLIK_E_UNSIGNED : err);
    if (!json_content_type(c))
        return error_reply(sim, c, "POST", url, 400, "Expected JSON but missing appropriate content-type.");
    json_t *body = rq->body.buf ? json_loadb(rq->body.buf, rq->body.len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    json_t *data = json_object_get(body, "data");
    if (!json_is_object(body) || (data && !json_is_object(data))) {
        json_decref(body);
        return error_reply(sim, c, "POST", url, 400, "Invalid JSON content.");
    }
    const char *idem = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    pthread_mutex_lock(&sim->lock);
    bump(sim, "submits");
    json_t *prev = idem ? json_object_get(json_object_get(sim->idem, idem), "answer") : NULL;
    json_t *answer;
    if (prev) {
        answer = json_deep_copy(prev);
        bump(sim, "submit_replays");
    } else {
        json_t *u = json_object_get(body, "user");
        const char *email = json_string_value(json_object_get(u, "email"));
        json_t *user = email ? json_pack("{s:i,s:s,s:s,s:[]}", "id", 500, "name", email, "email", email, "NameID")
                             : NULL;
        char wid[160];
        snprintf(wid, sizeof wid, "api-access:%s", orig);
        json_t *form = create_form(sim, fd, data ? data : body, user, "web", 1, wid, who_api(orig));
        if (form) {
            char code[9];
            unsigned char rb[8];
            RAND_bytes(rb, sizeof rb);
            for (int i = 0; i < 8; i++) code[i] = (char)('A' + rb[i] % 26);
            code[8] = '\0';
            answer = json_pack("{s:i,s:{s:O,s:O,s:O,s:O},s:s}", "err", 0, "data", "id", json_object_get(form, "id"),
                               "url", json_object_get(form, "url"), "backoffice_url",
                               json_object_get(form, "backoffice_url"), "api_url", json_object_get(form, "api_url"),
                               "tracking_code", code);
            if (idem && answer)
                json_object_set_new(sim->idem, idem, json_pack("{s:O}", "answer", answer));
            queue_webhook(sim, slug, form);
            persist(sim);
        } else {
            answer = NULL;
        }
    }
    pthread_mutex_unlock(&sim->lock);
    json_decref(body);
    if (!answer) return error_reply(sim, c, "POST", url, 500, NULL);
    relais_simkit_log(&sim->kit, "POST", url, 200, prev ? "(idempotent replay)" : NULL);
    return reply(c, 200, answer, NULL, NULL);
}

/* on/off/true/false/1/0 flag of the query; def when absent or other. */
static int flag(const relais_publik_query *q, const char *name, int def)
{
    const char *v = relais_publik_query_get(q, name, NULL);
    if (!v) return def;
    if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "1")) return 1;
    if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "0")) return 0;
    return def;
}

static enum MHD_Result api_read(struct sim *sim, struct MHD_Connection *c, const char *url, const char *slug,
                                const char *id, relais_simkit_request *rq)
{
    char err[512], orig[128];
    relais_publik_sig sg = signed_by(sim, rq, err, sizeof err, orig, sizeof orig);
    if (sg == RELAIS_PUBLIK_SIG_REFUSED) return error_reply(sim, c, "GET", url, 403, err);
    if (sg == RELAIS_PUBLIK_SIG_UNSIGNED) return error_reply(sim, c, "GET", url, 403, "User not authenticated.");
    relais_publik_query q;
    const char *qs = raw_query(rq);
    if (relais_publik_query_parse(qs, strlen(qs), &q) != 0) return error_reply(sim, c, "GET", url, 500, NULL);
    int files = flag(&q, "include-files-content", 1);
    relais_publik_query_free(&q);
    pthread_mutex_lock(&sim->lock);
    bump(sim, "reads");
    json_t *form = find_form(sim, slug, id);
    json_t *out = form ? (files ? json_deep_copy(form) : without_files(form)) : NULL;
    pthread_mutex_unlock(&sim->lock);
    if (!out) return error_reply(sim, c, "GET", url, 404, NULL);
    relais_simkit_log(&sim->kit, "GET", url, 200, NULL);
    return reply(c, 200, out, NULL, NULL);
}

/* Order of a list: order_by = [-]receipt_time | [-]last_update_time | [-]id. */
struct order { const char *key; int desc; };

static int cmp_forms(const void *a, const void *b, void *arg)
{
    const struct order *o = arg;
    const json_t *fa = *(json_t *const *)a, *fb = *(json_t *const *)b;
    int r;
    if (strcmp(o->key, "id") == 0) {
        long ia = strtol(json_string_value(json_object_get(fa, "id")), NULL, 10);
        long ib = strtol(json_string_value(json_object_get(fb, "id")), NULL, 10);
        r = ia < ib ? -1 : ia > ib;
    } else {
        const char *sa = json_string_value(json_object_get(fa, o->key));
        const char *sb = json_string_value(json_object_get(fb, o->key));
        r = strcmp(sa ? sa : "", sb ? sb : "");
        if (r == 0) {
            long ia = strtol(json_string_value(json_object_get(fa, "id")), NULL, 10);
            long ib = strtol(json_string_value(json_object_get(fb, "id")), NULL, 10);
            r = ia < ib ? -1 : ia > ib;
        }
    }
    return o->desc ? -r : r;
}

static int parse_nonneg(const char *s, long *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0) return -1;
    *out = v;
    return 0;
}

/* "YYYY-MM-DD" or "YYYY-MM-DD HH:MM" -> "YYYY-MM-DDTHH:MM:00". */
static int mtime_bound(const char *v, char out[20])
{
    size_t n = strlen(v);
    if ((n != 10 && n != 16) || v[4] != '-' || v[7] != '-') return -1;
    if (n == 16 && (v[10] != ' ' || v[13] != ':')) return -1;
    for (size_t i = 0; i < n; i++)
        if (i != 4 && i != 7 && i != 10 && i != 13 && (v[i] < '0' || v[i] > '9')) return -1;
    snprintf(out, 20, "%.10sT%s:00", v, n == 16 ? v + 11 : "00:00");
    return 0;
}

/* The request's query with its offset parameter set to `offset`. */
static char *with_offset(const char *qs, long offset)
{
    size_t n = strlen(qs);
    char *out = malloc(n + 32);
    if (!out) return NULL;
    size_t k = 0;
    const char *p = qs;
    while (*p) {
        size_t len = strcspn(p, "&");
        if (!(len >= 7 && strncmp(p, "offset=", 7) == 0) && len > 0) {
            if (k) out[k++] = '&';
            memcpy(out + k, p, len);
            k += len;
        }
        p += len;
        if (*p == '&') p++;
    }
    snprintf(out + k, 32, "%soffset=%ld", k ? "&" : "", offset);
    return out;
}

/* out[key] = base + the request's query with offset set (a page link). */
static void page_link(json_t *out, const char *key, const char *base, const char *qs, long offset)
{
    char *q = with_offset(qs, offset);
    size_t ln = q ? strlen(base) + strlen(q) + 1 : 0;
    char *u = ln ? malloc(ln) : NULL;
    if (u) {
        snprintf(u, ln, "%s%s", base, q);
        json_object_set_new(out, key, json_string(u));
    }
    free(u);
    free(q);
}

static enum MHD_Result api_list(struct sim *sim, struct MHD_Connection *c, const char *url, const char *slug,
                                relais_simkit_request *rq)
{
    if (!formdef_of(slug)) return error_reply(sim, c, "GET", url, 404, NULL);
    char err[512], orig[128];
    relais_publik_sig sg = signed_by(sim, rq, err, sizeof err, orig, sizeof orig);
    if (sg == RELAIS_PUBLIK_SIG_REFUSED) return error_reply(sim, c, "GET", url, 403, err);
    if (sg == RELAIS_PUBLIK_SIG_UNSIGNED) return error_reply(sim, c, "GET", url, 401, NULL);
    relais_publik_query q;
    const char *qs = raw_query(rq);
    if (relais_publik_query_parse(qs, strlen(qs), &q) != 0) return error_reply(sim, c, "GET", url, 500, NULL);
    const char *rt = relais_publik_query_get(&q, "response_type", NULL);
    int dict = rt && strcmp(rt, "dict") == 0;
    int full = flag(&q, "full", 0);
    const char *ls = relais_publik_query_get(&q, "limit", NULL), *os = relais_publik_query_get(&q, "offset", NULL);
    long limit = -1, offset = 0;
    if ((ls && parse_nonneg(ls, &limit) != 0) || (os && parse_nonneg(os, &offset) != 0)) {
        relais_publik_query_free(&q);
        return error_reply(sim, c, "GET", url, 400, "invalid value for limit or offset");
    }
    char bound[20] = "";
    if (flag(&q, "filter-start-mtime", 0)) {
        const char *v = relais_publik_query_get(&q, "filter-start-mtime-value", NULL);
        if (!v || mtime_bound(v, bound) != 0) {
            relais_publik_query_free(&q);
            return error_reply(sim, c, "GET", url, 400, "invalid value for filter-start-mtime-value");
        }
    }
    const char *filter = relais_publik_query_get(&q, "filter", NULL);
    const char *order = relais_publik_query_get(&q, "order_by", NULL);
    if (!order) order = "-receipt_time";
    int desc = order[0] == '-';
    const char *okey = order + desc;
    if (strcmp(okey, "receipt_time") != 0 && strcmp(okey, "last_update_time") != 0 && strcmp(okey, "id") != 0) {
        relais_publik_query_free(&q);
        return error_reply(sim, c, "GET", url, 400, "invalid value for order_by");
    }

    pthread_mutex_lock(&sim->lock);
    bump(sim, "lists");
    json_t *all = json_object_get(sim->forms, slug);
    size_t cap = json_object_size(all), n = 0;
    json_t **sel = calloc(cap ? cap : 1, sizeof *sel);
    const char *k;
    json_t *f;
    json_object_foreach(all, k, f) {
        const char *lut = json_string_value(json_object_get(f, "last_update_time"));
        if (bound[0] && (!lut || strcmp(lut, bound) < 0)) continue;
        const char *sid = json_string_value(json_object_get(json_object_get(json_object_get(f, "workflow"), "status"), "id"));
        const struct status *st = sid ? status_of(sid) : NULL;
        if (filter && strcmp(filter, "all") != 0) {
            if (strcmp(filter, "pending") == 0) { if (!st || st->endpoint) continue; }
            else if (strcmp(filter, "done") == 0) { if (!st || !st->endpoint) continue; }
            else if (!st || (strcmp(filter, st->id) != 0 && strcmp(filter, st->name) != 0)) continue;
        }
        if (sel) sel[n++] = f;
    }
    struct order ord = { okey, desc };
    if (sel) qsort_r(sel, n, sizeof *sel, cmp_forms, &ord);
    json_t *items = json_array();
    for (size_t i = (size_t)offset; i < n && (limit < 0 || (long)(i - (size_t)offset) < limit); i++)
        json_array_append_new(items, full ? without_files(sel[i]) : reduced_item(sel[i]));
    pthread_mutex_unlock(&sim->lock);
    free(sel);
    relais_publik_query_free(&q);

    json_t *out;
    if (dict) {
        out = json_pack("{s:i,s:I,s:o}", "err", 0, "count", (json_int_t)n, "data", items);
        if (limit >= 0) {
            char base[512];
            snprintf(base, sizeof base, "%s/api/forms/%s/list?", sim->base, slug);
            if (offset + limit < (long)n) page_link(out, "next", base, qs, offset + limit);
            if (offset > 0) page_link(out, "previous", base, qs, offset > limit ? offset - limit : 0);
        }
    } else {
        out = items;
    }
    char extra[64];
    snprintf(extra, sizeof extra, "(%zu of %zu)", json_array_size(dict ? json_object_get(out, "data") : out), n);
    relais_simkit_log(&sim->kit, "GET", url, 200, extra);
    return reply(c, 200, out, NULL, NULL);
}

static enum MHD_Result api_hook(struct sim *sim, struct MHD_Connection *c, const char *method, const char *url,
                                const char *slug, const char *id, const char *hook, relais_simkit_request *rq)
{
    json_t *exists;
    pthread_mutex_lock(&sim->lock);
    exists = find_form(sim, slug, id);
    pthread_mutex_unlock(&sim->lock);
    if (!exists || strcmp(hook, HOOK_NAME) != 0) return error_reply(sim, c, method, url, 404, NULL);
    if (strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0)
        return error_reply(sim, c, method, url, 403, "Wrong HTTP method (must be POST or PUT).");
    char err[512], orig[128];
    relais_publik_sig sg = signed_by(sim, rq, err, sizeof err, orig, sizeof orig);
    if (sg == RELAIS_PUBLIK_SIG_REFUSED) return error_reply(sim, c, method, url, 403, err);
    if (sg == RELAIS_PUBLIK_SIG_UNSIGNED) return error_reply(sim, c, method, url, 403, "Insufficient roles.");
    json_t *body = NULL;
    if (rq->body.len > 0 && strcmp(method, "POST") == 0) {
        body = json_loadb(rq->body.buf, rq->body.len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
        if (!body) return error_reply(sim, c, method, url, 400, "Invalid JSON content.");
    }
    const char *event_id = json_string_value(json_object_get(body, "event_id"));
    const char *canonical = json_string_value(json_object_get(body, "status"));
    const char *message = json_string_value(json_object_get(body, "message"));
    const char *target = NULL;
    for (size_t i = 0; canonical && i < sizeof HOOK_JUMPS / sizeof HOOK_JUMPS[0]; i++)
        if (strcmp(HOOK_JUMPS[i].canonical, canonical) == 0) target = HOOK_JUMPS[i].status;
    const char *what = "applied";
    pthread_mutex_lock(&sim->lock);
    bump(sim, "hooks");
    json_t *form = find_form(sim, slug, id);
    char fkey[160];
    snprintf(fkey, sizeof fkey, "%s/%s", slug, id);
    json_t *seen = json_object_get(sim->applied, fkey);
    if (event_id && json_object_get(seen, event_id)) {
        what = "event already applied";
        bump(sim, "hook_replays");
    } else if (form) {
        json_object_set(json_object_get(json_object_get(form, "workflow"), "data"), hook, body ? body : json_null());
        char wid[160];
        snprintf(wid, sizeof wid, "api-access:%s", orig);
        const char *cur = json_string_value(json_object_get(json_object_get(json_object_get(form, "workflow"), "status"), "id"));
        if (target && cur && strcmp(target, cur) != 0) {
            evolve(form, target, message, wid, who_api(orig));
            queue_webhook(sim, slug, form);
            what = target;
        } else if (message && *message) {
            evolve(form, NULL, message, wid, who_api(orig));
            what = "comment";
        } else {
            what = "nothing to do";
        }
        if (event_id) {
            if (!seen) {
                seen = json_object();
                json_object_set_new(sim->applied, fkey, seen);
            }
            json_object_set_new(seen, event_id, json_true());
        }
        persist(sim);
    }
    pthread_mutex_unlock(&sim->lock);
    json_decref(body);
    relais_simkit_log(&sim->kit, method, url, 200, what);
    return reply(c, 200, json_pack("{s:i}", "err", 0), NULL, NULL);
}

/* ---- Control endpoints ----------------------------------------------------------------- */

static json_t *body_object(const relais_simkit_request *rq)
{
    return rq->body.buf ? json_loadb(rq->body.buf, rq->body.len, JSON_REJECT_DUPLICATES, NULL) : NULL;
}

static enum MHD_Result ctl_create(struct sim *sim, struct MHD_Connection *c, const char *url, const char *slug,
                                  relais_simkit_request *rq)
{
    const struct formdef *fd = formdef_of(slug);
    if (!fd) return error_reply(sim, c, "POST", url, 404, NULL);
    json_t *b = body_object(rq);
    json_t *fields = json_object_get(b, "fields");
    if (!json_is_object(b) || !json_is_object(fields)) {
        json_decref(b);
        return error_reply(sim, c, "POST", url, 400, "expected {\"fields\": {...}, \"user\": {...}, \"channel\": \"web\"}");
    }
    json_t *u = json_object_get(b, "user");
    json_t *user = json_is_object(u) ? json_pack("{s:i,s:s,s:s?,s:[]}", "id", 7, "name",
                                                 json_string_value(json_object_get(u, "name")) ?
                                                 json_string_value(json_object_get(u, "name")) : "Usager",
                                                 "email", json_string_value(json_object_get(u, "email")), "NameID")
                                     : NULL;
    const char *channel = json_string_value(json_object_get(b, "channel"));
    pthread_mutex_lock(&sim->lock);
    json_t *who = user ? json_deep_copy(user) : NULL;
    json_t *form = create_form(sim, fd, fields, user, channel, channel && strcmp(channel, "web") != 0, "_submitter", who);
    json_t *out = form ? json_deep_copy(form) : NULL;
    if (form) {
        queue_webhook(sim, slug, form);
        persist(sim);
    }
    pthread_mutex_unlock(&sim->lock);
    json_decref(b);
    if (!out) return error_reply(sim, c, "POST", url, 500, NULL);
    relais_simkit_log(&sim->kit, "POST", url, 201, json_string_value(json_object_get(out, "id")));
    return reply(c, 201, out, NULL, NULL);
}

static enum MHD_Result ctl_status(struct sim *sim, struct MHD_Connection *c, const char *url, const char *slug,
                                  const char *id, relais_simkit_request *rq)
{
    json_t *b = body_object(rq);
    const char *st = json_string_value(json_object_get(b, "status"));
    const char *comment = json_string_value(json_object_get(b, "comment"));
    const char *agent = json_string_value(json_object_get(b, "agent"));
    if (!json_is_object(b) || (!st && !comment) || (st && !status_of(st))) {
        json_decref(b);
        return error_reply(sim, c, "POST", url, 400, "expected {\"status\": new|en-cours|planifiee|termine|rejete, "
                                                     "\"comment\": \"...\", \"agent\": \"name\"}");
    }
    pthread_mutex_lock(&sim->lock);
    json_t *form = find_form(sim, slug, id);
    json_t *out = NULL;
    if (form) {
        int changed = evolve(form, st ? status_of(st)->id : NULL, comment, "101", who_agent(agent));
        if (changed) queue_webhook(sim, slug, form);
        persist(sim);
        out = json_deep_copy(form);
    }
    pthread_mutex_unlock(&sim->lock);
    if (out) relais_simkit_log(&sim->kit, "POST", url, 200, st ? st : "comment");
    json_decref(b);
    if (!out) return error_reply(sim, c, "POST", url, 404, NULL);
    return reply(c, 200, out, NULL, NULL);
}

static enum MHD_Result ctl_get(struct sim *sim, struct MHD_Connection *c, const char *url, const char *slug,
                               const char *id, int history)
{
    pthread_mutex_lock(&sim->lock);
    json_t *form = find_form(sim, slug, id);
    json_t *out = NULL;
    if (form && history) {
        json_t *wf = json_object_get(form, "workflow");
        json_t *st = json_object_get(wf, "status");
        json_t *live = json_pack("{s:O,s:O,s:O,s:O,s:O}", "status", json_object_get(st, "id"), "status_name",
                                 json_object_get(st, "name"), "last_update_time",
                                 json_object_get(form, "last_update_time"), "evolution",
                                 json_object_get(form, "evolution"), "workflow_data", json_object_get(wf, "data"));
        out = live ? json_deep_copy(live) : NULL;   /* detached from the live form */
        json_decref(live);
    } else if (form) {
        out = json_deep_copy(form);
    }
    pthread_mutex_unlock(&sim->lock);
    if (!out) return error_reply(sim, c, "GET", url, 404, NULL);
    relais_simkit_log(&sim->kit, "GET", url, 200, NULL);
    return reply(c, 200, out, NULL, NULL);
}

static enum MHD_Result ctl_fail(struct sim *sim, struct MHD_Connection *c, relais_simkit_request *rq)
{
    json_t *o = body_object(rq);
    relais_simkit_fault f;
    if (relais_simkit_fault_parse(o, "status", 100, 599, &f) != 0) {
        json_decref(o);
        return error_reply(sim, c, "POST", "/_sim/fail", 400, "expected {\"status\":100..599,\"delay_ms\":N,\"count\":N}");
    }
    pthread_mutex_lock(&sim->lock);
    sim->fault = f;
    pthread_mutex_unlock(&sim->lock);
    json_decref(o);
    relais_simkit_log(&sim->kit, "POST", "/_sim/fail", 200, NULL);
    return reply(c, 200, json_pack("{s:b}", "ok", 1), NULL, NULL);
}

/* ---- Routing ------------------------------------------------------------------------- */

/* Split a path into at most max segments (copied into buf). */
static int split_path(const char *url, char *buf, size_t buflen, char **seg, int max)
{
    snprintf(buf, buflen, "%s", url);
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (n == max) return -1;
        seg[n++] = t;
    }
    return n;
}

static enum MHD_Result route(struct sim *sim, struct MHD_Connection *c, const char *url, const char *method,
                             relais_simkit_request *rq)
{
    int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    char buf[1024];
    char *s[8];
    int n = split_path(url, buf, sizeof buf, s, 8);
    if (n < 0) return error_reply(sim, c, method, url, 404, NULL);

    if (n >= 1 && strcmp(s[0], "_sim") == 0) {
        if (get && n == 2 && strcmp(s[1], "stats") == 0) {
            pthread_mutex_lock(&sim->lock);
            json_t *o = json_deep_copy(sim->counters);
            size_t nforms = 0;
            const char *k;
            json_t *v;
            json_object_foreach(sim->forms, k, v) nforms += json_object_size(v);
            json_object_set_new(o, "forms", json_integer((json_int_t)nforms));
            pthread_mutex_unlock(&sim->lock);
            pthread_mutex_lock(&sim->qlock);
            size_t queued = (size_t)sim->qbusy;   /* the call being made counts */
            for (struct webhook_job *j = sim->qhead; j; j = j->next) queued++;
            pthread_mutex_unlock(&sim->qlock);
            json_object_set_new(o, "webhook_queued", json_integer((json_int_t)queued));
            relais_simkit_log(&sim->kit, method, url, 200, NULL);
            return reply(c, 200, o, NULL, NULL);
        }
        if (get && n == 2 && strcmp(s[1], "webhooks") == 0) {
            pthread_mutex_lock(&sim->lock);
            json_t *o = json_deep_copy(sim->webhooks);
            pthread_mutex_unlock(&sim->lock);
            relais_simkit_log(&sim->kit, method, url, 200, NULL);
            return reply(c, 200, o, NULL, NULL);
        }
        if (post && n == 2 && strcmp(s[1], "fail") == 0) return ctl_fail(sim, c, rq);
        if (post && n == 2 && strcmp(s[1], "reset") == 0) {
            pthread_mutex_lock(&sim->lock);
            json_object_clear(sim->forms);
            json_object_clear(sim->next_id);
            json_object_clear(sim->idem);
            json_object_clear(sim->applied);
            json_object_clear(sim->counters);
            json_array_clear(sim->webhooks);
            sim->fault = (relais_simkit_fault){ 0 };
            persist(sim);
            pthread_mutex_unlock(&sim->lock);
            relais_simkit_log(&sim->kit, method, url, 200, NULL);
            return reply(c, 200, json_pack("{s:b}", "ok", 1), NULL, NULL);
        }
        if (post && n == 3 && strcmp(s[1], "forms") == 0) return ctl_create(sim, c, url, s[2], rq);
        if (post && n == 5 && strcmp(s[1], "forms") == 0 && strcmp(s[4], "status") == 0)
            return ctl_status(sim, c, url, s[2], s[3], rq);
        if (get && n == 4 && strcmp(s[1], "forms") == 0) return ctl_get(sim, c, url, s[2], s[3], 0);
        if (get && n == 5 && strcmp(s[1], "forms") == 0 && strcmp(s[4], "history") == 0)
            return ctl_get(sim, c, url, s[2], s[3], 1);
        return error_reply(sim, c, method, url, 404, NULL);
    }

    if (n >= 1 && strcmp(s[0], "api") == 0) {
        pthread_mutex_lock(&sim->lock);
        bump(sim, "api_requests");
        pthread_mutex_unlock(&sim->lock);
        int inj = injected(sim);
        if (inj) {
            relais_simkit_log(&sim->kit, method, url, (unsigned)inj, "(injected)");
            if (inj >= 500) return reply(c, (unsigned)inj, json_pack("{s:i}", "err", 1), NULL, NULL);
            return reply(c, (unsigned)inj, relais_publik_error_body("Injected failure", "injected", "injected failure"),
                         NULL, NULL);
        }
        if (get && n == 2 && strcmp(s[1], "formdefs") == 0) return api_formdefs(sim, c, url);
        if (post && n == 4 && strcmp(s[1], "formdefs") == 0 && strcmp(s[3], "submit") == 0)
            return api_submit(sim, c, url, s[2], rq);
        if (n == 4 && strcmp(s[1], "forms") == 0 && strcmp(s[3], "list") == 0 && get)
            return api_list(sim, c, url, s[2], rq);
        if (n == 4 && strcmp(s[1], "forms") == 0 && get) {
            if (relais_publik_slug_ok(s[2]) != 0 || relais_publik_id_ok(s[3]) != 0)
                return error_reply(sim, c, method, url, 404, NULL);
            return api_read(sim, c, url, s[2], s[3], rq);
        }
        if (n == 6 && strcmp(s[1], "forms") == 0 && strcmp(s[4], "hooks") == 0)
            return api_hook(sim, c, method, url, s[2], s[3], s[5], rq);
    }
    return error_reply(sim, c, method, url, 404, NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct sim *sim = cls;
    if (!*con_cls) return MHD_NO;   /* relais_simkit_on_uri could not allocate */
    enum MHD_Result ret;
    if (relais_simkit_upload(con_cls, upload_data, upload_data_size, (size_t)SIM_MAX_BODY, &ret)) return ret;
    relais_simkit_request *rq = *con_cls;
    if (rq->body.too_large) return error_reply(sim, c, method, url, 413, "body too large");
    return route(sim, c, url, method, rq);
}

/* ---- main ------------------------------------------------------------------------------ */

static int parse_key(const char *arg, struct key *k)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1]) return -1;
    k->orig = strndup(arg, (size_t)(eq - arg));
    k->secret = strdup(eq + 1);
    return k->orig && k->secret ? 0 : -1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: relais-sim-publik --listen HOST:PORT [--port-file FILE] [--state FILE]\n"
            "                         [--key ORIG=SECRET]... [--webhook URL] [--webhook-key ORIG=SECRET]\n"
            "                         [--base-url URL] [--quiet]\n"
            "  a Publik w.c.s. simulator: /api/formdefs/, submit, read, list, hooks/relais-update,\n"
            "  signed URLs, a signed webservice call on each status change; control API under\n"
            "  /_sim/ (forms, status, history, stats, webhooks, fail, reset); see connectors/publik/README.md\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        RELAIS_SIMKIT_LONGOPTS,
        { "state", required_argument, NULL, 's' },
        { "key", required_argument, NULL, 'k' },
        { "webhook", required_argument, NULL, 'w' },
        { "webhook-key", required_argument, NULL, 'W' },
        { "base-url", required_argument, NULL, 'b' },
        { NULL, 0, NULL, 0 }
    };
    static struct sim sim;
    const char *base_url = NULL;
    sim.kit.name = "sim-publik";
    for (;;) {
        int opt = getopt_long(argc, argv, "l:p:s:k:w:W:b:qh", longopts, NULL);
        if (opt == -1) break;
        if (relais_simkit_option(&sim.kit, opt, optarg)) continue;
        switch (opt) {
        case 's': sim.state_file = optarg; break;
        case 'k':
            if (sim.nkeys == MAX_KEYS || parse_key(optarg, &sim.keys[sim.nkeys]) != 0) {
                relais_simkit_error(&sim.kit, "--key ORIG=SECRET (at most %d)", MAX_KEYS);
                return 2;
            }
            sim.nkeys++;
            break;
        case 'w': sim.webhook_url = optarg; break;
        case 'W':
            if (parse_key(optarg, &sim.webhook_key) != 0) {
                relais_simkit_error(&sim.kit, "--webhook-key ORIG=SECRET");
                return 2;
            }
            break;
        case 'b': base_url = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    const char *listen = sim.kit.listen;
    if (!listen || (sim.webhook_url && !sim.webhook_key.orig)) {
        if (listen) relais_simkit_error(&sim.kit, "--webhook needs --webhook-key ORIG=SECRET");
        usage(stderr);
        return 2;
    }
    if (relais_simkit_resolve(&sim.kit, listen, &sim.kit.at) != 0) return 2;
    /* w.c.s. times are local; a French town's server is on Paris time */
    setenv("TZ", "Europe/Paris", 1);
    tzset();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_mutex_init(&sim.lock, NULL);
    pthread_mutex_init(&sim.qlock, NULL);
    pthread_cond_init(&sim.qcond, NULL);
    sim.forms = json_object();
    sim.next_id = json_object();
    sim.idem = json_object();
    sim.applied = json_object();
    sim.webhooks = json_array();
    sim.counters = json_object();
    sim.nonces = relais_publik_nonces_new(RELAIS_PUBLIK_WINDOW_S, 0);
    char err[512];
    if (load_state(&sim, err, sizeof err) != 0) {
        relais_simkit_error(&sim.kit, "--state: %s", err);
        return 1;
    }

    const struct MHD_OptionItem extra[] = {
        { MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)relais_simkit_on_uri, &sim },
        { MHD_OPTION_END, 0, NULL }
    };
    struct MHD_Daemon *d = relais_simkit_listen(&sim.kit, on_request, &sim, relais_simkit_completed, extra);
    if (!d) return 1;
    const char *host = sim.kit.at.host;
    int bound = sim.kit.bound;
    char base[600];
    if (base_url) snprintf(base, sizeof base, "%s", base_url);
    else snprintf(base, sizeof base, "http://%s%s%s:%d", strchr(host, ':') ? "[" : "", host,
                  strchr(host, ':') ? "]" : "", bound);
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/') base[--bl] = '\0';
    sim.base = base;
    pthread_t wt;
    pthread_create(&wt, NULL, webhook_main, &sim);
    if (relais_simkit_ready(&sim.kit, d) != 0) return 1;
    relais_logf(RELAIS_LOG_INFO, "sim-publik", "listening on http://%s%s%s:%d (%zu API access(es)%s%s)",
                strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", bound, sim.nkeys,
                sim.webhook_url ? ", webhook " : "", sim.webhook_url ? sim.webhook_url : "");
    relais_simkit_wait(&sim.kit, -1);
    MHD_stop_daemon(d);
    pthread_mutex_lock(&sim.qlock);
    sim.qstop = 1;
    /* calls not made yet are dropped, as a stopped w.c.s. would */
    while (sim.qhead) {
        struct webhook_job *j = sim.qhead;
        sim.qhead = j->next;
        free(j->body);
        free(j->caller);
        free(j);
    }
    sim.qtail = NULL;
    pthread_cond_signal(&sim.qcond);
    pthread_mutex_unlock(&sim.qlock);
    pthread_join(wt, NULL);
    json_decref(sim.forms);
    json_decref(sim.next_id);
    json_decref(sim.idem);
    json_decref(sim.applied);
    json_decref(sim.webhooks);
    json_decref(sim.counters);
    relais_publik_nonces_destroy(sim.nonces);
    for (size_t i = 0; i < sim.nkeys; i++) {
        free(sim.keys[i].orig);
        free(sim.keys[i].secret);
    }
    free(sim.webhook_key.orig);
    free(sim.webhook_key.secret);
    pthread_mutex_destroy(&sim.lock);
    curl_global_cleanup();
    return 0;
}
