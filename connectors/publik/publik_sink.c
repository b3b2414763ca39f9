/*
 * publik_sink.c - the sink half of the publik connector: canonical request
 * events written into w.c.s. with signed calls (publik_client.c).
 *
 *  - fr.relais.grc.request.updated / .closed: POST the form's global-action
 *    hook /api/forms/<slug>/<id>/hooks/<hook>/ with the body the instance's
 *    mapping renders ({"status", "message", "event_id"}: the message the
 *    citizen reads). The form is the delivery's local id "<slug>/<id>" (the
 *    cross-reference the source or a submission recorded); none -> REJECT.
 *    An event that came from this very form (its record id is
 *    "<slug>/<id>/<n>") is not written back: w.c.s. has it already.
 *  - fr.relais.grc.request.created from another package (no local id):
 *    POST /api/formdefs/<first formdef>/submit with the rendered body;
 *    the answer's data.id gives ans->local_id "<slug>/<id>", from which the
 *    hub records the cross-reference. A request born in w.c.s.
 *    (request/wcs-...) or already known there (a local id) is not submitted.
 *
 * The event id travels as Idempotency-Key (honoured by relais-sim-publik;
 * w.c.s. ignores it) and as event_id in hook bodies.
 * Verdicts: 2xx with err 0 -> OK; err != 0 or another 4xx -> REJECT with
 * err_desc; 403 "Formdata currently processing actions.", 408, 429, 5xx,
 * timeouts and connection errors -> RETRY.
 *
 * Threads: deliver() runs on the hub's delivery workers (max_in_flight at
 * once); the sink's fields are written by new/destroy only, the client is
 * thread-safe.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "publik_int.h"

struct relais_publik_sink {
    relais_instance      *inst;
    relais_publik_client *client;
    char                 *submit_slug;
    char                 *hook;
};

relais_publik_sink *relais_publik_sink_new(relais_instance *inst, const relais_publik_config *cfg,
                                           char *errstr, size_t errlen)
{
    if (!cfg->url || !cfg->orig || !cfg->key) {
        snprintf(errstr, errlen, "publik: a sink needs url, orig and key (the API access Relais writes with)");
        return NULL;
    }
    if (!cfg->hook || relais_publik_slug_ok(cfg->hook) != 0) {
        snprintf(errstr, errlen, "publik: hook '%.100s' is not a hook identifier ([a-z0-9_-])",
                 cfg->hook ? cfg->hook : "");
        return NULL;
    }
    relais_publik_sink *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    s->inst = inst;
    s->client = relais_publik_client_new(inst, cfg, errstr, errlen);
    s->submit_slug = strdup(cfg->formdefs[0]);
    s->hook = strdup(cfg->hook);
    if (!s->client || !s->submit_slug || !s->hook) {
        if (s->client) snprintf(errstr, errlen, "out of memory");
        relais_publik_sink_destroy(s);
        return NULL;
    }
    return s;
}

void relais_publik_sink_destroy(relais_publik_sink *s)
{
    if (!s) return;
    relais_publik_client_destroy(s->client);
    free(s->submit_slug);
    free(s->hook);
    free(s);
}

/* "fr.relais.grc.request.<verb>.v1" -> 1 when the verb is `verb`. */
static int type_is(const char *type, const char *verb)
{
    char mid[64];
    snprintf(mid, sizeof mid, ".grc.request.%s", verb);
    const char *p = strstr(type, mid);
    if (!p) return 0;
    p += strlen(mid);
    return *p == '\0' || *p == '.';
}

static relais_verdict ok(relais_answer *ans, const char *local, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static relais_verdict ok(relais_answer *ans, const char *local, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ans->status = 0;
    vsnprintf(ans->detail, sizeof ans->detail, fmt, ap);
    va_end(ap);
    snprintf(ans->local_id, sizeof ans->local_id, "%s", local ? local : "");
    return RELAIS_DELIVER_OK;
}

/* The verdict of a w.c.s. answer; the envelope (when OK) stays in *env for
 * the caller (released here otherwise). */
static relais_verdict judge(const relais_publik_reply *r, relais_publik_env *env, relais_answer *ans)
{
    ans->status = (int)r->status;
    relais_publik_env_kind k = relais_publik_env_parse(r->body, r->len, env);
    relais_publik_env_describe(k == RELAIS_PUBLIK_ENV_MALFORMED ? NULL : env, r->status, r->body, r->len,
                               ans->detail, sizeof ans->detail);
    relais_verdict v;
    if (r->status >= 200 && r->status < 300) {
        if (k == RELAIS_PUBLIK_ENV_OK) {
            snprintf(ans->detail, sizeof ans->detail, "HTTP %ld err 0", r->status);
            return RELAIS_DELIVER_OK;
        }
        if (k == RELAIS_PUBLIK_ENV_BARE || k == RELAIS_PUBLIK_ENV_MALFORMED)
            snprintf(ans->detail, sizeof ans->detail, "HTTP %ld without the {err, data} envelope: "
                     "w.c.s. did not take it as a JSON call", r->status);
        v = RELAIS_DELIVER_REJECT;
    } else if (r->status == 408 || r->status == 429 || r->status >= 500) {
        v = RELAIS_DELIVER_RETRY;
    } else if (r->status == 403 && env->err_desc && strstr(env->err_desc, "currently processing")) {
        v = RELAIS_DELIVER_RETRY;   /* w.c.s. is running the form's workflow: a moment later */
    } else {
        v = RELAIS_DELIVER_REJECT;
    }
    relais_publik_env_free(env);
    return v;
}

static relais_verdict post(relais_publik_sink *s, const char *path, const relais_payload *p,
                           const relais_event *ev, relais_publik_env *env, relais_answer *ans)
{
    relais_publik_reply r;
    char *body = strndup(p->body, p->len);
    if (!body) {
        snprintf(ans->detail, sizeof ans->detail, "out of memory");
        return RELAIS_DELIVER_RETRY;
    }
    int rc = relais_publik_call(s->client, "POST", path, NULL, body, relais_event_id(ev), &r);
    free(body);
    if (rc != 0) {
        ans->status = 0;
        snprintf(ans->detail, sizeof ans->detail, "%s", r.error);
        return RELAIS_DELIVER_RETRY;
    }
    relais_verdict v = judge(&r, env, ans);
    relais_publik_reply_free(&r);
    return v;
}

relais_verdict relais_publik_sink_deliver(relais_publik_sink *s, const relais_event *ev,
                                          const char *local_id, relais_answer *ans)
{
    ans->status = 0;
    ans->detail[0] = '\0';
    ans->local_id[0] = '\0';
    const char *type = relais_event_type(ev);
    const char *subject = relais_event_subject(ev);
    int created = type_is(type, "created");
    if (!created && !type_is(type, "updated") && !type_is(type, "closed")) {
        snprintf(ans->detail, sizeof ans->detail, "publik: no w.c.s. call for events of type %.200s", type);
        return RELAIS_DELIVER_REJECT;
    }
    if (created && local_id && *local_id)
        return ok(ans, local_id, "form %s exists already: nothing to create", local_id);
    if (created && subject && strncmp(subject, "request/wcs-", 12) == 0)
        return ok(ans, NULL, "%s was born in w.c.s.: nothing to create", subject);

    char slug[RELAIS_PUBLIK_MAX_SLUG + 1], id[RELAIS_PUBLIK_MAX_ID + 1];
    if (!created) {
        if (!local_id || !*local_id) {
            snprintf(ans->detail, sizeof ans->detail, "publik: no w.c.s. form is known for %.200s "
                     "(no cross-reference at package '%.100s'): the request was never created in w.c.s.",
                     subject ? subject : "(no subject)", relais_instance_package(s->inst));
            return RELAIS_DELIVER_REJECT;
        }
        if (relais_publik_local_split(local_id, slug, sizeof slug, id, sizeof id) != 0) {
            snprintf(ans->detail, sizeof ans->detail, "publik: local id '%.200s' is not <formdef slug>/<form id>",
                     local_id);
            return RELAIS_DELIVER_REJECT;
        }
        /* a change read from this very form: w.c.s. has it already */
        const char *rid = relais_event_record_id(ev);
        size_t ll = strlen(local_id);
        if (rid && strncmp(rid, local_id, ll) == 0 && rid[ll] == '/')
            return ok(ans, local_id, "change %s came from this form: not written back", rid);
    }

    relais_payload p;
    if (relais_render(s->inst, ev, local_id, &p, ans) != 0) return RELAIS_DELIVER_REJECT;
    char path[RELAIS_PUBLIK_MAX_SLUG * 2 + RELAIS_PUBLIK_MAX_ID + 64];
    if (created) snprintf(path, sizeof path, "/api/formdefs/%s/submit", s->submit_slug);
    else snprintf(path, sizeof path, "/api/forms/%s/%s/hooks/%s/", slug, id, s->hook);
    relais_publik_env env;
    relais_verdict v = post(s, path, &p, ev, &env, ans);
    relais_payload_release(&p);
    if (v != RELAIS_DELIVER_OK) return v;
    if (created) {
        char fid[RELAIS_PUBLIK_MAX_ID + 1];
        if (relais_publik_form_id(env.data, fid, sizeof fid) != 0) {
            relais_publik_env_free(&env);
            snprintf(ans->detail, sizeof ans->detail, "HTTP %d err 0 but no usable data.id: the form was "
                     "created without Relais knowing its number", ans->status);
            return RELAIS_DELIVER_REJECT;
        }
        snprintf(ans->local_id, sizeof ans->local_id, "%s/%s", s->submit_slug, fid);
        snprintf(ans->detail, sizeof ans->detail, "form %s created", ans->local_id);
    } else {
        snprintf(ans->local_id, sizeof ans->local_id, "%s", local_id);
        snprintf(ans->detail, sizeof ans->detail, "hook %s of form %s fired", s->hook, local_id);
    }
    relais_publik_env_free(&env);
    return RELAIS_DELIVER_OK;
}
