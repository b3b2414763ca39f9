/*
 * publik_source.c - the source half of the publik connector: w.c.s. forms
 * become canonical request events, seen two ways that give the same record
 * ids (so the hub's inbox dedupe makes them one event):
 *
 *  - polling (receive(), every poll_interval): for each form type, the
 *    signed list GET /api/forms/<slug>/list?response_type=dict&full=on
 *    &filter-start-mtime=on&filter-start-mtime-value=<checkpoint>, paged
 *    with limit/offset; the checkpoint is kept per form type with
 *    relais_state_put("poll/<slug>") and only moves once every change read
 *    was accepted (or found a duplicate);
 *  - the webhook w.c.s. calls on each status change ("Webservice call"
 *    action sending the form, signed with a request signature key, SPEC
 *    section 4 case 1): the signature is checked as w.c.s. checks its own
 *    (bad or stale -> 403 with the {err:1} body, nothing journaled), and
 *    {"err":0} is answered only after relais_submit() accepted the changes
 *    (503 when the hub cannot journal).
 *
 * Each form gives its creation and each later status change or comment
 * (publik_wcs.c). Changes whose author is self_user (Relais's own API
 * access) are echoes: relais_echo_skipped(), not submitted. After the
 * creation is journaled, the cross-reference "request/wcs-<slug>-<id>" ->
 * "<slug>/<id>" is recorded so that the sink finds the form. A form that
 * Relais created (from another package's request) keeps that request's
 * canonical id: the subject comes from the cross-reference when there is one.
 *
 * Threads: receive()/poll run on the hub's main thread and alone touch
 * next_poll_us; the webhook's connection threads (libmicrohttpd, one per
 * connection, MHD_USE_THREAD_PER_CONNECTION: relais_submit blocks until the
 * group commit) read the immutable configuration, use the nonce memory
 * (its own lock) and call the hub's thread-safe functions. struct request
 * (raw URI and body) belongs to one connection thread.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include "publik_int.h"
#include "event_int.h"
#include "safeparse.h"
#include "httputil.h"   /* relais_http_upload (capped body), relais_http_split_listen */

#define PAGE_SIZE 100
#define MAX_PAGES 10000
#define RAW_EXCERPT 4096

struct relais_publik_source {
    relais_instance      *inst;
    relais_publik_client *client;        /* NULL: no polling */
    char                **formdefs;
    size_t                nformdefs;
    long                  poll_interval_ms;
    int64_t               next_poll_us;  /* main thread only */
    char                 *listen, *port_file, *path;
    char                 *webhook_orig, *webhook_key;
    char                 *self_user;
    size_t                max_body;
    relais_publik_nonces *nonces;
    struct MHD_Daemon    *daemon;
    int                   port;
};

static char *dup_opt(const char *s) { return s ? strdup(s) : NULL; }

void relais_publik_source_destroy(relais_publik_source *s)
{
    if (!s) return;
    relais_publik_source_stop(s);
    relais_publik_client_destroy(s->client);
    for (size_t i = 0; i < s->nformdefs; i++) free(s->formdefs[i]);
    free(s->formdefs);
    free(s->listen);
    free(s->port_file);
    free(s->path);
    free(s->webhook_orig);
    if (s->webhook_key) OPENSSL_cleanse(s->webhook_key, strlen(s->webhook_key));
    free(s->webhook_key);
    free(s->self_user);
    relais_publik_nonces_destroy(s->nonces);
    free(s);
}

relais_publik_source *relais_publik_source_new(relais_instance *inst, const relais_publik_config *cfg,
                                               char *errstr, size_t errlen)
{
    int polling = cfg->poll_interval > 0;
    if (!polling && !cfg->listen) {
        snprintf(errstr, errlen, "publik: a source polls (poll_interval > 0 with url, orig, key) "
                 "or listens for webhook calls (listen), or both");
        return NULL;
    }
    if (cfg->poll_interval < 0 || cfg->max_body <= 0) {
        snprintf(errstr, errlen, "publik: poll_interval must not be negative, max_body must be positive");
        return NULL;
    }
    if (cfg->listen) {
        char host[256];
        int port;
        if (relais_http_split_listen(cfg->listen, host, sizeof host, &port, errstr, errlen) != 0)
            return NULL;
        if (!cfg->path || cfg->path[0] != '/') {
            snprintf(errstr, errlen, "publik: path '%s' must start with '/'", cfg->path ? cfg->path : "");
            return NULL;
        }
        if (!cfg->webhook_orig || !*cfg->webhook_orig || !cfg->webhook_key || !*cfg->webhook_key) {
            snprintf(errstr, errlen, "publik: a webhook (listen) needs webhook_orig and webhook_key: "
                     "w.c.s.'s calls must be signed");
            return NULL;
        }
    }
    relais_publik_source *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    s->inst = inst;
    s->port = -1;
    s->poll_interval_ms = cfg->poll_interval;
    s->max_body = (size_t)cfg->max_body;
    if (polling) {
        if (!cfg->url || !cfg->orig || !cfg->key) {
            snprintf(errstr, errlen, "publik: polling (poll_interval > 0) needs url, orig and key; "
                     "set poll_interval: 0 for a webhook-only source");
            relais_publik_source_destroy(s);
            return NULL;
        }
        s->client = relais_publik_client_new(inst, cfg, errstr, errlen);
        if (!s->client) {
            relais_publik_source_destroy(s);
            return NULL;
        }
    }
    for (char **f = cfg->formdefs; f && *f; f++) s->nformdefs++;
    s->formdefs = calloc(s->nformdefs + 1, sizeof *s->formdefs);
    int oom = !s->formdefs;
    for (size_t i = 0; !oom && i < s->nformdefs; i++) {
        s->formdefs[i] = strdup(cfg->formdefs[i]);
        oom = !s->formdefs[i];
    }
    s->listen = dup_opt(cfg->listen);
    s->port_file = dup_opt(cfg->port_file);
    s->path = dup_opt(cfg->path);
    s->webhook_orig = dup_opt(cfg->webhook_orig);
    s->webhook_key = dup_opt(cfg->webhook_key);
    s->self_user = dup_opt(cfg->self_user ? cfg->self_user : cfg->orig);
    s->nonces = relais_publik_nonces_new(RELAIS_PUBLIK_WINDOW_S, 0);
    if (oom || !s->nonces || (cfg->listen && (!s->listen || !s->path || !s->webhook_orig || !s->webhook_key))) {
        relais_publik_source_destroy(s);
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    if (!s->self_user)
        relais_instance_log(inst, RELAIS_LOG_WARN, "no self_user nor orig: changes Relais writes into "
                            "w.c.s. cannot be told apart (echoes)");
    return s;
}

static int followed(const relais_publik_source *s, const char *slug)
{
    for (size_t i = 0; i < s->nformdefs; i++)
        if (strcmp(s->formdefs[i], slug) == 0) return 1;
    return 0;
}

/* ---- One form: its changes to the hub ----------------------------------------- */

typedef struct form_outcome {
    int    unavailable;   /* the hub could not journal: try again later */
    size_t accepted, duplicates, rejected, echoes;
    char   reason[256];   /* the first rejection */
} form_outcome;

static void submit_form(relais_publik_source *s, const json_t *form, const char *slug, form_outcome *o)
{
    char err[512];
    relais_publik_changes ch;
    if (relais_publik_form_changes(form, slug, s->self_user, &ch, err, sizeof err) != 0) {
        char *raw = json_dumps(form, JSON_COMPACT);
        size_t rl = raw ? strlen(raw) : 0;
        if (relais_reject(s->inst, NULL, "form export", err, raw, rl < RAW_EXCERPT ? rl : RAW_EXCERPT) != 0)
            o->unavailable = 1;
        free(raw);
        o->rejected++;
        snprintf(o->reason, sizeof o->reason, "%.255s", err);
        return;
    }
    char local[RELAIS_PUBLIK_MAX_SLUG + RELAIS_PUBLIK_MAX_ID + 2];
    char wcs_subject[RELAIS_PUBLIK_MAX_SLUG + RELAIS_PUBLIK_MAX_ID + 32];
    char subject[256];
    snprintf(local, sizeof local, "%s/%s", ch.slug, ch.id);
    snprintf(wcs_subject, sizeof wcs_subject, "request/wcs-%s-%s", ch.slug, ch.id);
    int x = ch.n ? relais_xref_canonical(s->inst, NULL, "request", local, subject, sizeof subject) : 1;
    if (x < 0) {
        o->unavailable = 1;
        relais_publik_changes_free(&ch);
        return;
    }
    if (x != 0) snprintf(subject, sizeof subject, "%s", wcs_subject);

    relais_record *recs = calloc(ch.n ? ch.n : 1, sizeof *recs);
    relais_submit_result *res = calloc(ch.n ? ch.n : 1, sizeof *res);
    size_t *which = calloc(ch.n ? ch.n : 1, sizeof *which);
    size_t k = 0;
    if (!recs || !res || !which) {
        o->unavailable = 1;
        goto out;
    }
    for (size_t i = 0; i < ch.n; i++) {
        if (ch.c[i].echo) {
            relais_echo_skipped(s->inst, ch.c[i].record_id);
            o->echoes++;
            continue;
        }
        json_object_set_new(ch.c[i].record, "subject", json_string(subject));
        recs[k] = (relais_record){ .record_id = ch.c[i].record_id,
                                   .type = ch.c[i].created ? RELAIS_PUBLIK_TYPE_CREATED : RELAIS_PUBLIK_TYPE_UPDATED,
                                   .subject = subject, .data = ch.c[i].record };
        which[k++] = i;
    }
    if (k == 0) goto out;
    int rc = relais_submit(s->inst, recs, k, res);
    for (size_t j = 0; j < k; j++) {
        switch (res[j].status) {
        case RELAIS_SUBMIT_ACCEPTED: o->accepted++; break;
        case RELAIS_SUBMIT_DUPLICATE: o->duplicates++; break;
        case RELAIS_SUBMIT_REJECTED:
            if (!o->rejected) snprintf(o->reason, sizeof o->reason, "%.60s: %.190s", recs[j].record_id, res[j].reason);
            o->rejected++;
            break;
        case RELAIS_SUBMIT_UNAVAILABLE: o->unavailable = 1; break;
        }
        /* the form is known to the hub as this request from now on */
        const relais_publik_change *c = &ch.c[which[j]];
        if (c->created && strcmp(subject, wcs_subject) == 0
            && (res[j].status == RELAIS_SUBMIT_ACCEPTED || res[j].status == RELAIS_SUBMIT_DUPLICATE)
            && relais_xref_put(s->inst, wcs_subject, local) != 0)
            o->unavailable = 1;
    }
    if (rc != 0) o->unavailable = 1;
out:
    free(recs);
    free(res);
    free(which);
    relais_publik_changes_free(&ch);
}

/* ---- Polling ------------------------------------------------------------------- */

/* A reply's envelope, or -1 with the reason logged. */
static int fetch(relais_publik_source *s, const char *path, const char *params, relais_publik_env *env,
                 const char *what)
{
    relais_publik_reply r;
    if (relais_publik_call(s->client, "GET", path, params, NULL, NULL, &r) != 0) {
        relais_instance_log(s->inst, RELAIS_LOG_WARN, "%s: %s", what, r.error);
        return -1;
    }
    relais_publik_env_kind k = r.truncated ? RELAIS_PUBLIK_ENV_MALFORMED
                                           : relais_publik_env_parse(r.body, r.len, env);
    if (r.status != 200 || k == RELAIS_PUBLIK_ENV_ERR || k == RELAIS_PUBLIK_ENV_MALFORMED) {
        char d[400];
        relais_publik_env_describe(k == RELAIS_PUBLIK_ENV_MALFORMED ? NULL : env, r.status, r.body,
                                   r.len, d, sizeof d);
        relais_instance_log(s->inst, RELAIS_LOG_WARN, "%s: %s%s", what, d,
                            r.truncated ? " (answer too large)" : "");
        if (k != RELAIS_PUBLIK_ENV_MALFORMED && !r.truncated) relais_publik_env_free(env);
        relais_publik_reply_free(&r);
        return -1;
    }
    relais_publik_reply_free(&r);
    return 0;
}

/* "YYYY-MM-DDTHH:MM:SS" -> "YYYY-MM-DD HH:MM" (the filter's granularity). */
static int minute_of(const char *t, char out[17])
{
    if (!t || strlen(t) < 16 || t[4] != '-' || t[7] != '-' || (t[10] != 'T' && t[10] != ' ') || t[13] != ':')
        return -1;
    memcpy(out, t, 16);
    out[10] = ' ';
    out[16] = '\0';
    return 0;
}

/* One form type: list what changed since the checkpoint, submit, move the
 * checkpoint. 0 ok, -1 not done (checkpoint kept). */
static int poll_formdef(relais_publik_source *s, const char *slug)
{
    char key[RELAIS_PUBLIK_MAX_SLUG + 8];
    snprintf(key, sizeof key, "poll/%s", slug);
    int serr = 0;
    json_t *st = relais_state_get(s->inst, key, &serr);
    if (!st && serr) {
        relais_instance_log(s->inst, RELAIS_LOG_WARN, "poll %s: journal unavailable (checkpoint)", slug);
        return -1;
    }
    const char *since = json_string_value(json_object_get(st, "since"));
    json_t *seen = json_object_get(st, "seen");

    char path[RELAIS_PUBLIK_MAX_SLUG + 32], what[RELAIS_PUBLIK_MAX_SLUG + 64];
    snprintf(path, sizeof path, "/api/forms/%s/list", slug);
    snprintf(what, sizeof what, "poll %s", slug);
    char *esince = since ? relais_publik_pct_encode(since, "", 1) : NULL;
    json_t *items = json_array();
    int rc = 0;
    long offset = 0;
    for (int page = 0; page < MAX_PAGES; page++) {
        char params[512];
        snprintf(params, sizeof params, "response_type=dict&full=on&limit=%d&offset=%ld%s%s", PAGE_SIZE,
                 offset, esince ? "&filter-start-mtime=on&filter-start-mtime-value=" : "",
                 esince ? esince : "");
        relais_publik_env env;
        if (fetch(s, path, params, &env, what) != 0) {
            rc = -1;
            break;
        }
        json_t *data = env.data;
        if (env.kind != RELAIS_PUBLIK_ENV_OK || !json_is_array(data)) {
            relais_instance_log(s->inst, RELAIS_LOG_WARN, "%s: the list answer has no \"data\" list "
                                "(response_type=dict ignored?)", what);
            relais_publik_env_free(&env);
            rc = -1;
            break;
        }
        size_t n = json_array_size(data);
        json_array_extend(items, data);
        json_int_t count = json_integer_value(json_object_get(env.root, "count"));
        relais_publik_env_free(&env);
        offset += (long)n;
        if (n < PAGE_SIZE || (count > 0 && offset >= count)) break;
    }
    free(esince);

    json_t *new_seen = json_object();
    char top[17] = "";
    if (since) snprintf(top, sizeof top, "%s", since);
    size_t i;
    json_t *it;
    form_outcome total = { 0 };
    json_array_foreach(items, i, it) {
        if (rc != 0) break;
        char id[RELAIS_PUBLIK_MAX_ID + 1];
        if (relais_publik_form_id(it, id, sizeof id) != 0) continue;
        const char *lut = json_string_value(json_object_get(it, "last_update_time"));
        json_t *form = json_incref(it);
        if (!json_is_array(json_object_get(form, "evolution"))) {
            /* a list item without history (full=on not honoured): read the form */
            char rpath[RELAIS_PUBLIK_MAX_SLUG + RELAIS_PUBLIK_MAX_ID + 32];
            snprintf(rpath, sizeof rpath, "/api/forms/%s/%s/", slug, id);
            relais_publik_env env;
            json_decref(form);
            form = NULL;
            if (fetch(s, rpath, NULL, &env, what) != 0) {
                rc = -1;
                break;
            }
            form = json_incref(env.root);
            relais_publik_env_free(&env);
        }
        char tag[128];
        snprintf(tag, sizeof tag, "%s#%zu", lut ? lut : "", json_array_size(json_object_get(form, "evolution")));
        const char *prev = json_string_value(json_object_get(seen, id));
        if (!prev || strcmp(prev, tag) != 0) {
            form_outcome o = { 0 };
            submit_form(s, form, slug, &o);
            total.accepted += o.accepted;
            total.duplicates += o.duplicates;
            total.echoes += o.echoes;
            if (o.rejected && !total.rejected) snprintf(total.reason, sizeof total.reason, "%s", o.reason);
            total.rejected += o.rejected;
            if (o.unavailable) {
                relais_instance_log(s->inst, RELAIS_LOG_WARN, "%s: hub unavailable; checkpoint kept", what);
                rc = -1;
            }
        }
        char m[17];
        if (rc == 0 && minute_of(lut, m) == 0) {
            if (strcmp(m, top) > 0) {
                snprintf(top, sizeof top, "%s", m);
                json_object_clear(new_seen);
            }
            if (strcmp(m, top) == 0) json_object_set_new(new_seen, id, json_string(tag));
        }
        json_decref(form);
    }
    json_decref(items);
    if (rc == 0 && top[0] && (!since || strcmp(top, since) != 0 || !json_equal(new_seen, seen ? seen : new_seen))) {
        json_t *v = json_pack("{s:s,s:O}", "since", top, "seen", new_seen);
        if (!v || relais_state_put(s->inst, key, v) != 0) {
            relais_instance_log(s->inst, RELAIS_LOG_WARN, "%s: could not save the checkpoint", what);
            rc = -1;
        }
        json_decref(v);
    }
    if (total.accepted || total.rejected || total.echoes)
        relais_instance_log(s->inst, RELAIS_LOG_INFO, "%s: %zu new change(s), %zu duplicate(s), %zu echo(es), "
                            "%zu rejected%s%s", what, total.accepted, total.duplicates, total.echoes,
                            total.rejected, total.rejected ? ": " : "", total.reason);
    json_decref(new_seen);
    json_decref(st);
    return rc;
}

int relais_publik_source_poll(relais_publik_source *s, int force)
{
    if (!s->client) return 0;
    int64_t now = relais_mono_us();
    if (!force && s->next_poll_us && now < s->next_poll_us) return 0;
    s->next_poll_us = now + (int64_t)s->poll_interval_ms * 1000;
    int rc = 0;
    for (size_t i = 0; i < s->nformdefs; i++)
        if (poll_formdef(s, s->formdefs[i]) != 0) rc = -1;
    return rc;
}

/* ---- The webhook ----------------------------------------------------------------- */

struct request {
    char              *uri;        /* raw request URI, query included (from the URI log callback) */
    int                started;    /* the first access-handler call was seen */
    int                answered;   /* a response was queued early */
    relais_http_upload body;
};

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, json_t *obj, int retry_after)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    const char *t = text ? text : "{\"err\":1}";
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(t), (void *)t, MHD_RESPMEM_MUST_COPY);
    free(text);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (retry_after) MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    enum MHD_Result ret = MHD_queue_response(c, text ? status : 500, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result respond_err(struct MHD_Connection *c, unsigned status, const char *cls,
                                   const char *code, const char *desc)
{
    return respond(c, status, relais_publik_error_body(cls, code, desc), status == 503);
}

static const char *webhook_key_for(void *arg, const char *orig)
{
    const relais_publik_source *s = arg;
    return strcmp(orig, s->webhook_orig) == 0 ? s->webhook_key : NULL;
}

static void reject_body(relais_publik_source *s, const char *where, const char *reason, const struct request *rq)
{
    size_t n = rq->body.len < RAW_EXCERPT ? rq->body.len : RAW_EXCERPT;
    if (relais_reject(s->inst, NULL, where, reason, rq->body.buf, n) != 0)
        relais_instance_log(s->inst, RELAIS_LOG_WARN, "could not journal the rejection (%s)", reason);
}

static enum MHD_Result handle_webhook(relais_publik_source *s, struct MHD_Connection *c, struct request *rq)
{
    const char *q = rq->uri ? strchr(rq->uri, '?') : NULL;
    q = q ? q + 1 : "";
    relais_publik_verify_opts vo = { .key_for = webhook_key_for, .arg = s, .nonces = s->nonces,
                                     .now = time(NULL), .window_s = RELAIS_PUBLIK_WINDOW_S };
    char err[512];
    if (relais_publik_verify(q, strlen(q), &vo, err, sizeof err, NULL, 0) != RELAIS_PUBLIK_SIG_OK) {
        relais_instance_log(s->inst, RELAIS_LOG_WARN, "webhook refused (403): %s", err);
        return respond_err(c, MHD_HTTP_FORBIDDEN, "Access denied", "access-denied", err);
    }
    if (rq->body.too_large) {
        snprintf(err, sizeof err, "body larger than max_body (%zu bytes)", s->max_body);
        return respond_err(c, MHD_HTTP_CONTENT_TOO_LARGE, "Invalid request", "invalid-request", err);
    }
    if (!relais_accepting(s->inst))
        return respond_err(c, MHD_HTTP_SERVICE_UNAVAILABLE, "Service unavailable", "unavailable",
                           "Relais cannot journal right now; call again later.");
    relais_parse_limits lim = { .max_bytes = s->max_body, .max_depth = 64 };
    json_t *form = relais_json_parse(rq->body.buf ? rq->body.buf : "", rq->body.len, "webhook body", &lim,
                                     err, sizeof err);
    char slug[RELAIS_PUBLIK_MAX_SLUG + 1];
    if (!form || relais_publik_form_slug(form, slug, sizeof slug) != 0 || !followed(s, slug)) {
        if (form && !slug[0])
            snprintf(err, sizeof err, "the body is not a form export (\"send the form\" option): "
                     "no api_url or url naming its form type");
        else if (form)
            snprintf(err, sizeof err, "form type '%s' is not one of this connector's formdefs", slug);
        json_decref(form);
        reject_body(s, "webhook body", err, rq);
        return respond_err(c, MHD_HTTP_BAD_REQUEST, "Invalid request", "invalid-request", err);
    }
    form_outcome o = { 0 };
    submit_form(s, form, slug, &o);
    json_decref(form);
    if (o.unavailable)
        return respond_err(c, MHD_HTTP_SERVICE_UNAVAILABLE, "Service unavailable", "unavailable",
                           "Relais cannot journal right now; call again later.");
    if (o.rejected && !o.accepted && !o.duplicates)
        return respond(c, MHD_HTTP_OK, json_pack("{s:i,s:s,s:s,s:s,s:n}", "err", 1, "err_class",
                                                 "relais.publik.Rejected", "err_code", "rejected",
                                                 "err_desc", o.reason, "data"), 0);
    return respond(c, MHD_HTTP_OK,
                   json_pack("{s:i,s:{s:I,s:I,s:I,s:I}}", "err", 0, "data", "accepted", (json_int_t)o.accepted,
                             "duplicates", (json_int_t)o.duplicates, "echoes", (json_int_t)o.echoes,
                             "rejected", (json_int_t)o.rejected), 0);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    struct request *rq = calloc(1, sizeof *rq);
    if (rq && uri) rq->uri = strdup(uri);
    return rq;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    relais_publik_source *s = cls;
    struct request *rq = *con_cls;
    if (!rq) return MHD_NO;   /* out of memory in on_uri */
    if (!rq->started) {
        rq->started = 1;
        rq->answered = 1;
        if (strcmp(url, s->path) != 0)
            return respond_err(c, MHD_HTTP_NOT_FOUND, "Page not found", "not-found", NULL);
        if (strcmp(method, MHD_HTTP_METHOD_POST) != 0 && strcmp(method, MHD_HTTP_METHOD_PUT) != 0)
            return respond_err(c, MHD_HTTP_METHOD_NOT_ALLOWED, "Invalid request", "invalid-request",
                               "Wrong HTTP method (must be POST or PUT).");
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            errno = 0;
            char *end = NULL;
            unsigned long long v = strtoull(cl, &end, 10);
            if (errno == 0 && end != cl && v > s->max_body)
                return respond_err(c, MHD_HTTP_CONTENT_TOO_LARGE, "Invalid request", "invalid-request",
                                   "body larger than max_body");
        }
        rq->answered = 0;
        return MHD_YES;
    }
    if (rq->answered) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0)
        return relais_http_upload_take(&rq->body, upload_data, upload_data_size, s->max_body) == 0 ? MHD_YES : MHD_NO;
    rq->answered = 1;
    return handle_webhook(s, c, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct request *rq = *con_cls;
    if (!rq) return;
    relais_http_upload_free(&rq->body);
    free(rq->uri);
    free(rq);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    relais_publik_source *s = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    relais_instance_log(s->inst, RELAIS_LOG_WARN, "microhttpd: %s", msg);
}

int relais_publik_source_start(relais_publik_source *s, char *errstr, size_t errlen)
{
    if (!s->listen || s->daemon) return 0;
    char host[256], portstr[16];
    int port;
    if (relais_http_split_listen(s->listen, host, sizeof host, &port, errstr, errlen) != 0) return -1;
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host, portstr, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(errstr, errlen, "publik: listen '%s': %s", s->listen, gai_strerror(gai));
        return -1;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG
                     | MHD_USE_AUTO;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, s,
                                 MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                                 MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                 MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                                 MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon) {
        snprintf(errstr, errlen, "publik: cannot listen on %s (address in use or not local?)", s->listen);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? (int)info->port : port;
    if (s->port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", s->port_file);
        FILE *f = fopen(tmp, "w");
        int bad = !f;
        if (f) {
            bad = fprintf(f, "%d\n", s->port) < 0;
            bad |= fclose(f) != 0;
        }
        if (bad || rename(tmp, s->port_file) != 0) {
            snprintf(errstr, errlen, "publik: port_file %s: %s", s->port_file, strerror(errno));
            MHD_stop_daemon(s->daemon);
            s->daemon = NULL;
            return -1;
        }
    }
    relais_instance_log(s->inst, RELAIS_LOG_INFO, "webhook listening on %s%s%s:%d%s", strchr(host, ':') ? "[" : "",
                        host, strchr(host, ':') ? "]" : "", s->port, s->path);
    return 0;
}

int relais_publik_source_port(const relais_publik_source *s)
{
    return s ? s->port : -1;
}

void relais_publik_source_stop(relais_publik_source *s)
{
    if (!s || !s->daemon) return;
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}
