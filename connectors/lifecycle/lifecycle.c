/*
 * lifecycle.c - the `lifecycle` connector: the request tracker of the
 * pothole flow. A sink that follows each citizen's request from the work
 * orders of the technical services, derives the GRC's events from them, and
 * measures the time taken against the town's commitment.
 *
 *   fr.relais.grc.request.created.v1      remember opened_at, category and
 *                                          the commitment (working days) and
 *                                          its deadline: state "sla/<subject>"
 *   fr.relais.technical.workorder.updated.v1    -> fr.relais.grc.request.updated.v1
 *                                          (status and a message the citizen
 *                                          can read), subject = the work
 *                                          order's origin_request
 *   fr.relais.technical.workorder.completed.v1  -> fr.relais.grc.request.closed.v1
 *                                          (outcome, answer, delay in working
 *                                          days, commitment, kept or not)
 *   fr.relais.grc.request.closed.v1       (from the GRC or derived here)
 *                                          record the closing in the state
 *
 * Derived events are journaled with relais_submit() from deliver() (the
 * instance is their source), with record id "<delivered event id>/derived":
 * a redelivery of the same work-order event is answered "duplicate", so
 * nothing is derived twice. They carry the correlation id of the request's
 * created event, so `relais trace` follows the request across packages.
 * `relais sla` and /metrics read the "sla/" state (hub/sla.c).
 *
 * Threads: deliver() runs on the hub's delivery workers, possibly several at
 * once; the connector has no mutable state of its own (everything is in the
 * package state, in PostgreSQL), the configuration is read-only.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "relais/connector.h"
#include "workdays.h"

typedef struct lifecycle_config {
    char      *calendar;
    long       commitment_default;
    relais_kv *commitments;       /* commitment.<category code or label>: days */
} lifecycle_config;

static const relais_option lifecycle_options[] = {
    { .name = "calendar", .type = RELAIS_OPT_ENUM, .def = "fr", .enum_values = "fr|fr-alsace-moselle",
      .offset = offsetof(lifecycle_config, calendar),
      .desc = "public holidays not counted as working days: fr (metropolitan) or fr-alsace-moselle" },
    { .name = "commitment_default", .type = RELAIS_OPT_INT, .def = "10",
      .offset = offsetof(lifecycle_config, commitment_default),
      .desc = "working days the town commits to for a category without its own commitment" },
    { .name = "commitment.", .type = RELAIS_OPT_PREFIX, .offset = offsetof(lifecycle_config, commitments),
      .desc = "commitment.<category code or label>: working days for that category (commitment.VOIRIE-NDP: 5)" },
    { .name = NULL }
};

typedef struct lifecycle_ctx {
    relais_instance        *inst;
    const lifecycle_config *cfg;
    relais_calendar         cal;
} lifecycle_ctx;

static int lifecycle_init(relais_instance *inst, void *config, void **ctxp, char *errstr, size_t errlen)
{
    const lifecycle_config *cfg = config;
    lifecycle_ctx *c = calloc(1, sizeof *c);
    if (!c) { snprintf(errstr, errlen, "out of memory"); return -1; }
    c->inst = inst;
    c->cfg = cfg;
    if (relais_calendar_parse(cfg->calendar ? cfg->calendar : "fr", &c->cal) != 0) {
        snprintf(errstr, errlen, "calendar: unknown calendar '%s'", cfg->calendar);
        free(c);
        return -1;
    }
    if (cfg->commitment_default < 0 || cfg->commitment_default > 365) {
        snprintf(errstr, errlen, "commitment_default: %ld is not a number of days from 0 to 365",
                 cfg->commitment_default);
        free(c);
        return -1;
    }
    for (const relais_kv *kv = cfg->commitments; kv; kv = kv->next) {
        char *end = NULL;
        long v = strtol(kv->value, &end, 10);
        if (!*kv->key || !end || *end || end == kv->value || v < 0 || v > 365) {
            snprintf(errstr, errlen, "commitment.%s: '%s' is not a number of working days from 0 to 365",
                     kv->key, kv->value);
            free(c);
            return -1;
        }
    }
    *ctxp = c;
    return 0;
}

static int lifecycle_start(void *ctx, char *errstr, size_t errlen)
{
    (void)ctx; (void)errstr; (void)errlen;
    return 0;
}

static void lifecycle_stop(void *ctx) { (void)ctx; }
static void lifecycle_destroy(void *ctx) { free(ctx); }

/* ---- helpers ------------------------------------------------------------------ */

static const char *sget(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* The commitment for a category: its code first, then its label, else the default. */
static long commitment_for(const lifecycle_ctx *c, const char *code, const char *label)
{
    for (int pass = 0; pass < 2; pass++) {
        const char *want = pass == 0 ? code : label;
        if (!want) continue;
        for (const relais_kv *kv = c->cfg->commitments; kv; kv = kv->next)
            if (strcmp(kv->key, want) == 0) return strtol(kv->value, NULL, 10);
    }
    return c->cfg->commitment_default;
}

static void paris_ddmmyyyy(const char *rfc3339, char *out, size_t outlen)
{
    int64_t t;
    out[0] = '\0';
    if (!rfc3339 || relais_rfc3339_parse(rfc3339, &t) != 0) return;
    relais_date d = relais_paris_date(t);
    snprintf(out, outlen, "%02d/%02d/%04d", d.d, d.m, d.y);
}

static relais_verdict answer(relais_answer *ans, relais_verdict v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static relais_verdict answer(relais_answer *ans, relais_verdict v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ans->detail, sizeof ans->detail, fmt, ap);
    va_end(ap);
    return v;
}

/* Journal one derived event; the verdict of the delivery that caused it. */
static relais_verdict derive(lifecycle_ctx *c, const relais_event *from, const char *type, const char *subject,
                             const char *correlation, json_t *data, relais_answer *ans)
{
    char rid[96];
    snprintf(rid, sizeof rid, "%s/derived", relais_event_id(from));
    relais_record rec;
    memset(&rec, 0, sizeof rec);
    rec.record_id = rid;
    rec.type = type;
    rec.subject = subject;
    rec.correlation_id = correlation;
    rec.traceparent = relais_event_traceparent(from);
    rec.tenant = relais_event_tenant(from);
    rec.data = data;
    relais_submit_result res;
    memset(&res, 0, sizeof res);
    relais_submit(c->inst, &rec, 1, &res);
    switch (res.status) {
    case RELAIS_SUBMIT_ACCEPTED:
    case RELAIS_SUBMIT_DUPLICATE:
        snprintf(ans->detail, sizeof ans->detail, "%s %s for %.200s", type,
                 res.status == RELAIS_SUBMIT_DUPLICATE ? "already derived" : "derived", subject);
        snprintf(ans->local_id, sizeof ans->local_id, "%.127s", res.event_id);
        return RELAIS_DELIVER_OK;
    case RELAIS_SUBMIT_REJECTED:
        snprintf(ans->detail, sizeof ans->detail, "derived %s refused: %.400s", type, res.reason);
        return RELAIS_DELIVER_REJECT;
    default:
        snprintf(ans->detail, sizeof ans->detail, "journal unavailable: %.400s", res.reason);
        return RELAIS_DELIVER_RETRY;
    }
}

static json_t *sla_state(lifecycle_ctx *c, const char *subject, int *err)
{
    char key[256];
    snprintf(key, sizeof key, "sla/%s", subject);
    return relais_state_get(c->inst, key, err);
}

static int sla_put(lifecycle_ctx *c, const char *subject, json_t *st)
{
    char key[256];
    snprintf(key, sizeof key, "sla/%s", subject);
    return relais_state_put(c->inst, key, st);
}

/* ---- events ------------------------------------------------------------------ */

static relais_verdict on_created(lifecycle_ctx *c, const relais_event *ev, relais_answer *ans)
{
    const char *subject = relais_event_subject(ev);
    const json_t *d = relais_event_data(ev);
    const char *opened = sget(d, "opened_at");
    int64_t t;
    if (!subject || !opened || relais_rfc3339_parse(opened, &t) != 0)
        return answer(ans, RELAIS_DELIVER_REJECT, "request without subject or opened_at");
    int err = 0;
    json_t *known = sla_state(c, subject, &err);
    if (err) return answer(ans, RELAIS_DELIVER_RETRY, "state unavailable");
    if (known) {      /* a redelivery, or the request seen again: keep the first */
        json_decref(known);
        return answer(ans, RELAIS_DELIVER_OK, "request %s already followed", subject);
    }
    const char *code = sget(d, "category_code"), *label = sget(d, "category");
    long days = commitment_for(c, code, label);
    relais_date opened_day = relais_paris_date(t);
    char deadline[16], opened_s[16];
    relais_date_format(relais_workdays_add(opened_day, (int)days, c->cal), deadline, sizeof deadline);
    relais_date_format(opened_day, opened_s, sizeof opened_s);
    json_t *st = json_pack("{s:s,s:s,s:s*,s:s*,s:s,s:s,s:I,s:s,s:s,s:s}",
                           "subject", subject, "tenant", relais_event_tenant(ev) ? relais_event_tenant(ev) : "",
                           "category", label, "category_code", code,
                           "opened_at", opened, "opened_day", opened_s, "commitment_days", (json_int_t)days,
                           "deadline", deadline, "status", "open",
                           "correlation_id", relais_event_correlation(ev) ? relais_event_correlation(ev) : "");
    if (!st) return answer(ans, RELAIS_DELIVER_RETRY, "out of memory");
    int rc = sla_put(c, subject, st);
    json_decref(st);
    if (rc != 0) return answer(ans, RELAIS_DELIVER_RETRY, "state unavailable");
    snprintf(ans->detail, sizeof ans->detail, "followed: %ld working days, deadline %s", days, deadline);
    return RELAIS_DELIVER_OK;
}

/* The GRC's status and the citizen's message for a work order's status. */
static const char *request_status_of(const char *wo_status)
{
    if (!strcmp(wo_status, "new")) return "acknowledged";
    if (!strcmp(wo_status, "planned") || !strcmp(wo_status, "in_progress")) return "in_progress";
    if (!strcmp(wo_status, "suspended")) return "waiting";
    if (!strcmp(wo_status, "done")) return "resolved";
    return NULL;
}

static void citizen_message(const char *wo_status, const json_t *d, char *out, size_t outlen)
{
    char when[16];
    if (!strcmp(wo_status, "new")) {
        snprintf(out, outlen, "Votre demande a été transmise aux services techniques.");
    } else if (!strcmp(wo_status, "planned")) {
        paris_ddmmyyyy(sget(d, "planned_start"), when, sizeof when);
        if (when[0]) snprintf(out, outlen, "Une intervention est planifiée le %s.", when);
        else snprintf(out, outlen, "Une intervention est planifiée.");
    } else if (!strcmp(wo_status, "in_progress")) {
        snprintf(out, outlen, "Une équipe des services techniques intervient sur place.");
    } else if (!strcmp(wo_status, "suspended")) {
        snprintf(out, outlen, "L'intervention est suspendue pour le moment ; nous revenons vers vous dès que possible.");
    } else {
        snprintf(out, outlen, "Votre demande suit son cours.");
    }
}

static const char *origin_of(const json_t *d)
{
    return sget(json_object_get(d, "origin_request"), "subject");
}

/* the work order reference carried in the GRC's update */
static json_t *workorder_ref(const relais_event *ev)
{
    const char *subject = relais_event_subject(ev);
    if (!subject) return NULL;
    const char *slash = strchr(subject, '/');
    json_t *ref = json_pack("{s:s}", "subject", subject);
    /* the emitting instance: the last segment of the source "/relais/<tenant>/<instance>" */
    const char *src = relais_event_source(ev);
    const char *last = src ? strrchr(src, '/') : NULL;
    src = last ? last + 1 : src;
    if (ref && slash && slash[1] && src && *src && strlen(src) <= 64
        && strspn(src, "abcdefghijklmnopqrstuvwxyz0123456789_-") == strlen(src))
        json_object_set_new(ref, "local", json_pack("{s:s,s:s}", "package", src, "id", slash + 1));
    return ref;
}

static relais_verdict on_workorder_updated(lifecycle_ctx *c, const relais_event *ev, relais_answer *ans)
{
    const json_t *d = relais_event_data(ev);
    const char *origin = origin_of(d), *wo = sget(d, "status");
    if (!origin) return answer(ans, RELAIS_DELIVER_OK, "work order not linked to a request: nothing to derive");
    const char *rs = wo ? request_status_of(wo) : NULL;
    if (!rs) return answer(ans, RELAIS_DELIVER_OK, "work order status '%s': nothing to derive", wo);
    int err = 0;
    json_t *st = sla_state(c, origin, &err);
    if (err) return answer(ans, RELAIS_DELIVER_RETRY, "state unavailable");
    char msg[512];
    citizen_message(wo, d, msg, sizeof msg);
    const char *when = sget(d, "updated_at") ? sget(d, "updated_at") : relais_event_time(ev);
    json_t *data = json_pack("{s:s,s:s,s:s,s:s}", "status", rs, "updated_at", when,
                             "comment", msg, "comment_visibility", "public");
    json_t *ref = workorder_ref(ev);
    if (data && ref) json_object_set_new(data, "workorder", ref);
    else json_decref(ref);
    const char *corr = sget(st, "correlation_id");
    relais_verdict v = data ? derive(c, ev, "fr.relais.grc.request.updated.v1", origin, corr && *corr ? corr : NULL,
                                     data, ans)
                            : answer(ans, RELAIS_DELIVER_RETRY, "out of memory");
    json_decref(data);
    json_decref(st);
    return v;
}

static const char *outcome_of(const char *wo_status, const char *cancel_reason)
{
    if (!strcmp(wo_status, "done")) return "resolved";
    if (cancel_reason && !strcmp(cancel_reason, "duplicate")) return "duplicate";
    if (cancel_reason && !strcmp(cancel_reason, "not_municipal")) return "not_municipal";
    if (cancel_reason && !strcmp(cancel_reason, "not_found")) return "no_action";
    return "rejected";
}

static relais_verdict on_workorder_completed(lifecycle_ctx *c, const relais_event *ev, relais_answer *ans)
{
    const json_t *d = relais_event_data(ev);
    const char *origin = origin_of(d), *wo = sget(d, "status"), *done_at = sget(d, "done_at");
    if (!origin) return answer(ans, RELAIS_DELIVER_OK, "work order not linked to a request: nothing to derive");
    if (!wo || !done_at) return answer(ans, RELAIS_DELIVER_REJECT, "completed work order without status or done_at");
    int err = 0;
    json_t *st = sla_state(c, origin, &err);
    if (err) return answer(ans, RELAIS_DELIVER_RETRY, "state unavailable");
    const char *outcome = outcome_of(wo, sget(d, "cancel_reason"));
    char text[1024], when[16];
    paris_ddmmyyyy(done_at, when, sizeof when);
    const char *report = sget(d, "report");
    if (!strcmp(outcome, "resolved"))
        snprintf(text, sizeof text, "L'intervention demandée a été réalisée le %s.%s%s Merci pour votre signalement.",
                 when, report ? " " : "", report ? report : "");
    else if (!strcmp(outcome, "duplicate"))
        snprintf(text, sizeof text, "Votre signalement rejoint une demande déjà en cours de traitement. Merci.");
    else if (!strcmp(outcome, "not_municipal"))
        snprintf(text, sizeof text, "Ce signalement ne relève pas de la commune ; il a été transmis au service compétent.");
    else if (!strcmp(outcome, "no_action"))
        snprintf(text, sizeof text, "Les services techniques sont passés le %s et n'ont rien constaté à réparer.", when);
    else
        snprintf(text, sizeof text, "Votre demande n'a pas pu être traitée.%s%s", report ? " " : "", report ? report : "");
    json_t *data = json_pack("{s:s,s:s,s:s,s:s}", "closed_at", done_at, "outcome", outcome,
                             "answer", text, "delay_basis", "working_days");
    const char *opened = sget(st, "opened_at");
    int64_t t0, t1;
    if (data && opened && relais_rfc3339_parse(opened, &t0) == 0 && relais_rfc3339_parse(done_at, &t1) == 0) {
        int delay = relais_workdays_between(relais_paris_date(t0), relais_paris_date(t1), c->cal);
        json_int_t commit = json_integer_value(json_object_get(st, "commitment_days"));
        json_object_set_new(data, "opened_at", json_string(opened));
        json_object_set_new(data, "delay_days", json_integer(delay));
        json_object_set_new(data, "commitment_days", json_integer(commit));
        json_object_set_new(data, "commitment_met", json_boolean(delay <= commit));
    }
    const char *corr = sget(st, "correlation_id");
    relais_verdict v = data ? derive(c, ev, "fr.relais.grc.request.closed.v1", origin, corr && *corr ? corr : NULL,
                                     data, ans)
                            : answer(ans, RELAIS_DELIVER_RETRY, "out of memory");
    json_decref(data);
    json_decref(st);
    return v;
}

/* A request closed (by the GRC, or derived above): record it for the SLA. */
static relais_verdict on_closed(lifecycle_ctx *c, const relais_event *ev, relais_answer *ans)
{
    const char *subject = relais_event_subject(ev);
    const json_t *d = relais_event_data(ev);
    if (!subject) return answer(ans, RELAIS_DELIVER_OK, "closed request without subject");
    int err = 0;
    json_t *st = sla_state(c, subject, &err);
    if (err) return answer(ans, RELAIS_DELIVER_RETRY, "state unavailable");
    if (!st) {
        return answer(ans, RELAIS_DELIVER_OK, "request %s was not followed (its creation was not seen)", subject);
    }
    if (!strcmp(sget(st, "status") ? sget(st, "status") : "", "closed")) {
        json_decref(st);
        return answer(ans, RELAIS_DELIVER_OK, "request %s already closed", subject);
    }
    const char *closed = sget(d, "closed_at");
    int64_t t0, t1;
    if (!closed || relais_rfc3339_parse(closed, &t1) != 0) {
        json_decref(st);
        return answer(ans, RELAIS_DELIVER_REJECT, "closed request without a valid closed_at");
    }
    json_int_t commit = json_integer_value(json_object_get(st, "commitment_days"));
    int delay = 0;
    if (relais_rfc3339_parse(sget(st, "opened_at"), &t0) == 0)
        delay = relais_workdays_between(relais_paris_date(t0), relais_paris_date(t1), c->cal);
    char day[16];
    relais_date_format(relais_paris_date(t1), day, sizeof day);
    json_object_set_new(st, "status", json_string("closed"));
    json_object_set_new(st, "closed_at", json_string(closed));
    json_object_set_new(st, "closed_day", json_string(day));
    json_object_set_new(st, "outcome", json_string(sget(d, "outcome") ? sget(d, "outcome") : "resolved"));
    json_object_set_new(st, "delay_days", json_integer(delay));
    json_object_set_new(st, "commitment_met", json_boolean(delay <= commit));
    int rc = sla_put(c, subject, st);
    json_decref(st);
    if (rc != 0) return answer(ans, RELAIS_DELIVER_RETRY, "state unavailable");
    snprintf(ans->detail, sizeof ans->detail, "closed after %d working day(s), commitment %lld: %s", delay,
             (long long)commit, delay <= commit ? "kept" : "missed");
    return RELAIS_DELIVER_OK;
}

static relais_verdict lifecycle_deliver(void *ctx, const relais_event *ev, const char *local_id, relais_answer *ans)
{
    lifecycle_ctx *c = ctx;
    (void)local_id;
    const char *type = relais_event_type(ev);
    if (!strcmp(type, "fr.relais.grc.request.created.v1")) return on_created(c, ev, ans);
    if (!strcmp(type, "fr.relais.technical.workorder.updated.v1")) return on_workorder_updated(c, ev, ans);
    if (!strcmp(type, "fr.relais.technical.workorder.completed.v1")) return on_workorder_completed(c, ev, ans);
    if (!strcmp(type, "fr.relais.grc.request.closed.v1")) return on_closed(c, ev, ans);
    snprintf(ans->detail, sizeof ans->detail, "type %.200s is not followed by the lifecycle: nothing to do", type);
    return RELAIS_DELIVER_OK;
}

const relais_connector relais_connector_lifecycle = {
    .abi_version = RELAIS_CONNECTOR_ABI,
    .name = "lifecycle",
    .description = "request tracker: work orders' progress -> GRC request updates and closing, "
                   "time taken against the town's commitment (working days)",
    .modes = RELAIS_MODE_SINK,
    .options = lifecycle_options,
    .config_size = sizeof(lifecycle_config),
    .init = lifecycle_init,
    .start = lifecycle_start,
    .receive = NULL,
    .deliver = lifecycle_deliver,
    .stop = lifecycle_stop,
    .destroy = lifecycle_destroy,
};
