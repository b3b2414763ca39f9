/*
 * worksite_source.c - the source of the worksite connector: it polls the
 * work-order tool for status changes and submits each one as a canonical
 * work-order event (api/worksite-openapi.yaml for the tool's side).
 *
 * One poll:
 *   1. read the checkpoint (relais_state_get "checkpoint/<instance>"):
 *      {"since": <time of the newest change handled>, "seen": [record ids
 *      handled at exactly that time]};
 *   2. walk GET /api/v1/interventions?updated_since=<since> with the cursor
 *      (the walk misses nothing even when interventions change meanwhile);
 *   3. for each intervention, GET its history; every change at or after
 *      `since` (and not in `seen`) is new. Its record id is
 *      "<intervention id>/<change id>" (a repeated poll is a duplicate, never
 *      a second event). A change whose author is the connector's own account
 *      (self_account) is Relais's own write: relais_echo_skipped(). The
 *      others are submitted as records {"intervention", "change",
 *      "origin_request"} that the instance's inbound mapping
 *      (mappings/workorder.yaml) turns into workorder.updated / .completed /
 *      .created events; origin_request is the intervention's external_ref,
 *      else the request the hub's cross-references know for the
 *      intervention;
 *   4. only when every page was read and every change was handled (accepted,
 *      duplicate, or refused and journaled as such) is the checkpoint moved
 *      to the newest change seen. Anything else (the tool down or
 *      answering errors, the journal unavailable) leaves it where it was:
 *      the next poll starts again from it and the hub's dedupe drops what
 *      was already submitted.
 *
 * Threads: the poller thread (ws_source_start) calls ws_source_poll every
 * poll_interval; `poll_lock` makes polls exclusive (a test may also call
 * ws_source_poll) and guards `failing`. `lock`/`cv` guard `stop`. The rest
 * is written by new/destroy only.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "worksite_int.h"

#define MAX_PAGES 100000       /* a tool whose cursor never ends is broken */
#define RID_MAX 160

struct ws_source {
    relais_instance *inst;
    ws_client       *client;
    char            *self_account;
    long             poll_interval_ms;
    long             page_size;
    char             state_key[256];
    pthread_mutex_t  poll_lock;
    int              failing;      /* the last poll failed (log once) */
    pthread_mutex_t  lock;
    pthread_cond_t   cv;
    int              stop;
    int              started;
    pthread_t        thread;
};

/* Where the walk got: the newest change handled and the record ids at
 * exactly that time. */
typedef struct walk {
    int64_t max_us;
    char    max_at[64];
    json_t *seen;            /* array of record ids */
    int     moved;
} walk;

void ws_source_state_key(const relais_instance *inst, char *buf, size_t len)
{
    snprintf(buf, len, "checkpoint/%s", relais_instance_name(inst));
}

ws_source *ws_source_new(relais_instance *inst, const relais_worksite_config *cfg,
                         char *errstr, size_t errlen)
{
    if (!relais_instance_mapped(inst)) {
        snprintf(errstr, errlen, "a worksite source needs a mapping: it makes the work-order "
                 "events (see connectors/worksite/mappings/workorder.yaml)");
        return NULL;
    }
    if (!cfg->self_account || !*cfg->self_account) {
        snprintf(errstr, errlen, "option 'self_account' is required: the account of the token, "
                 "whose changes are Relais's own (no echo)");
        return NULL;
    }
    if (cfg->poll_interval <= 0 || cfg->page_size < 1 || cfg->page_size > 500) {
        snprintf(errstr, errlen, "poll_interval must be positive and page_size 1..500");
        return NULL;
    }
    ws_source *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    s->inst = inst;
    s->poll_interval_ms = cfg->poll_interval;
    s->page_size = cfg->page_size;
    pthread_mutex_init(&s->poll_lock, NULL);
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    ws_source_state_key(inst, s->state_key, sizeof s->state_key);
    s->self_account = strdup(cfg->self_account);
    if (!s->self_account) {
        snprintf(errstr, errlen, "out of memory");
        ws_source_destroy(s);
        return NULL;
    }
    s->client = ws_client_new(inst, cfg, errstr, errlen);
    if (!s->client) {
        ws_source_destroy(s);
        return NULL;
    }
    return s;
}

/* A poll that could not finish: warn once, then quietly until one succeeds. */
static int poll_failed(ws_source *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int poll_failed(ws_source *s, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    relais_instance_log(s->inst, s->failing ? RELAIS_LOG_DEBUG : RELAIS_LOG_WARN,
                        "poll stopped, checkpoint kept: %s", msg);
    s->failing = 1;
    return -1;
}

/* "HTTP 503 unavailable: ..." or the transport error. */
static void describe(const ws_response *r, char *buf, size_t len)
{
    if (r->transport) {
        snprintf(buf, len, "%s", r->error);
        return;
    }
    char text[256];
    ws_error_text(r->body, r->len, text, sizeof text);
    snprintf(buf, len, "HTTP %ld%s%s", r->status, text[0] ? " " : "", text);
}

static int seen_has(const json_t *seen, const char *rid)
{
    size_t i;
    json_t *v;
    json_array_foreach(seen, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), rid) == 0) return 1;
    }
    return 0;
}

static void walk_note(walk *w, const ws_change *c, const char *rid)
{
    if (c->at_us > w->max_us) {
        w->max_us = c->at_us;
        snprintf(w->max_at, sizeof w->max_at, "%s", c->at);
        json_array_clear(w->seen);
        json_array_append_new(w->seen, json_string(rid));
        w->moved = 1;
    } else if (c->at_us == w->max_us && !seen_has(w->seen, rid)) {
        json_array_append_new(w->seen, json_string(rid));
        w->moved = 1;
    }
}

/* The canonical request an intervention comes from: its external_ref, else
 * the cross-reference. 0 found, 1 none, -1 journal unavailable. */
static int origin_of(ws_source *s, json_t *item, const char *id, char *out, size_t outlen)
{
    const char *ext = json_string_value(json_object_get(item, "external_ref"));
    if (ext && *ext && strlen(ext) < outlen) {
        snprintf(out, outlen, "%s", ext);
        return 0;
    }
    return relais_xref_canonical(s->inst, NULL, "request", id, out, outlen);
}

/* New changes of one intervention: echoes skipped, the others submitted.
 * 0 when all were handled, -1 when the poll must stop. */
static int handle_item(ws_source *s, json_t *item, int64_t since_us, const json_t *since_seen, walk *w)
{
    const char *id = json_string_value(json_object_get(item, "id"));
    char path[160];
    snprintf(path, sizeof path, "/api/v1/interventions/%s/history", id);
    ws_response r;
    ws_client_call(s->client, "GET", path, NULL, 0, NULL, &r);
    if (!r.transport && r.status == 404) {
        ws_response_free(&r);
        return 0;   /* gone since it was listed */
    }
    if (r.transport || r.status != 200) {
        char text[320];
        describe(&r, text, sizeof text);
        ws_response_free(&r);
        return poll_failed(s, "history of %s: %s", id, text);
    }
    ws_history h;
    char err[256];
    int rc = ws_parse_history(r.body, r.len, id, &h, err, sizeof err);
    ws_response_free(&r);
    if (rc != 0) return poll_failed(s, "history of %s: %s", id, err);
    if (h.nbad) {
        char where[160];
        snprintf(where, sizeof where, "history of %s", id);
        relais_reject(s->inst, NULL, where, h.bad_reason, NULL, 0);
    }

    /* the new changes, oldest first */
    size_t n = 0;
    size_t *fresh = calloc(h.n ? h.n : 1, sizeof *fresh);
    char (*rids)[RID_MAX] = calloc(h.n ? h.n : 1, sizeof *rids);
    if (!fresh || !rids) {
        free(fresh);
        free(rids);
        ws_history_clear(&h);
        return poll_failed(s, "out of memory");
    }
    for (size_t i = 0; i < h.n; i++) {
        const ws_change *c = &h.changes[i];
        if (c->at_us < since_us) continue;
        snprintf(rids[i], RID_MAX, "%s/%lld", id, (long long)c->id);
        if (c->at_us == since_us && seen_has(since_seen, rids[i])) continue;
        fresh[n++] = i;
    }
    /* Relais's own changes are echoes; the others need the request they come from */
    size_t others = 0;
    for (size_t j = 0; j < n; j++) others += strcmp(h.changes[fresh[j]].author, s->self_account) != 0;
    rc = 0;
    char origin[256] = "";
    int has_origin = 0;
    if (others > 0) {
        int o = origin_of(s, item, id, origin, sizeof origin);
        if (o < 0) rc = poll_failed(s, "journal unavailable (cross-reference of %s)", id);
        has_origin = o == 0;
    }
    relais_record *recs = rc == 0 && others ? calloc(others, sizeof *recs) : NULL;
    relais_submit_result *res = recs ? calloc(others, sizeof *res) : NULL;
    if (rc == 0 && others && (!recs || !res)) rc = poll_failed(s, "out of memory");
    char subject[96];
    snprintf(subject, sizeof subject, "workorder/%s", id);
    size_t k = 0;
    for (size_t j = 0; rc == 0 && j < n; j++) {
        const ws_change *c = &h.changes[fresh[j]];
        if (strcmp(c->author, s->self_account) == 0) continue;
        json_t *data = json_pack("{s:O,s:O}", "intervention", item, "change", c->entry);
        if (data && has_origin) json_object_set_new(data, "origin_request", json_string(origin));
        if (!data) {
            rc = poll_failed(s, "out of memory");
            break;
        }
        recs[k] = (relais_record){ .record_id = rids[fresh[j]],
                                   .type = "fr.relais.technical.workorder.updated.v1",
                                   .subject = subject, .data = data };
        k++;
    }
    if (rc == 0 && k > 0) {
        relais_submit(s->inst, recs, k, res);
        for (size_t j = 0; j < k && rc == 0; j++) {
            if (res[j].status == RELAIS_SUBMIT_UNAVAILABLE)
                rc = poll_failed(s, "the hub cannot journal now (%s)", res[j].reason);
            else if (res[j].status == RELAIS_SUBMIT_REJECTED)   /* journaled and logged by the hub */
                relais_instance_log(s->inst, RELAIS_LOG_DEBUG, "change %s refused: %s", recs[j].record_id,
                                    res[j].reason);
        }
    }
    /* echoes are told once the changes around them are handled */
    for (size_t j = 0; rc == 0 && j < n; j++)
        if (strcmp(h.changes[fresh[j]].author, s->self_account) == 0)
            relais_echo_skipped(s->inst, rids[fresh[j]]);
    for (size_t j = 0; j < k; j++) json_decref(recs[j].data);
    if (rc == 0)
        for (size_t j = 0; j < n; j++) walk_note(w, &h.changes[fresh[j]], rids[fresh[j]]);
    free(recs);
    free(res);
    free(fresh);
    free(rids);
    ws_history_clear(&h);
    return rc;
}

static int poll_locked(ws_source *s)
{
    int err = 0;
    json_t *cp = relais_state_get(s->inst, s->state_key, &err);
    if (!cp && err) return poll_failed(s, "journal unavailable (checkpoint)");
    const char *since = json_string_value(json_object_get(cp, "since"));
    int64_t since_us = INT64_MIN;
    if (since && ws_time_parse(since, &since_us) != 0) {
        relais_instance_log(s->inst, RELAIS_LOG_WARN, "checkpoint '%.64s' is not an RFC 3339 time: "
                            "reading every change again", since);
        since = NULL;
        since_us = INT64_MIN;
    }
    json_t *since_seen = json_object_get(cp, "seen");
    walk w = { .max_us = since_us, .seen = json_is_array(since_seen) && since
                                           ? json_deep_copy(since_seen) : json_array() };
    if (since) snprintf(w.max_at, sizeof w.max_at, "%s", since);
    char *esc_since = since ? ws_client_escape(since) : NULL;
    char *cursor = NULL;
    int rc = w.seen && (!since || esc_since) ? 0 : poll_failed(s, "out of memory");
    for (long pages = 0; rc == 0; pages++) {
        if (pages >= MAX_PAGES) {
            rc = poll_failed(s, "more than %d pages: the tool's cursor does not end", MAX_PAGES);
            break;
        }
        char *esc_cursor = cursor ? ws_client_escape(cursor) : NULL;
        size_t pl = 96 + (esc_since ? strlen(esc_since) : 0) + (esc_cursor ? strlen(esc_cursor) : 0);
        char *path = malloc(pl);
        if (!path || (cursor && !esc_cursor)) {
            free(path);
            free(esc_cursor);
            rc = poll_failed(s, "out of memory");
            break;
        }
        snprintf(path, pl, "/api/v1/interventions?per_page=%ld%s%s%s%s", s->page_size,
                 esc_since ? "&updated_since=" : "", esc_since ? esc_since : "",
                 esc_cursor ? "&cursor=" : "", esc_cursor ? esc_cursor : "");
        free(esc_cursor);
        ws_response r;
        ws_client_call(s->client, "GET", path, NULL, 0, NULL, &r);
        free(path);
        if (r.transport || r.status != 200) {
            char text[320];
            describe(&r, text, sizeof text);
            ws_response_free(&r);
            rc = poll_failed(s, "listing interventions: %s", text);
            break;
        }
        ws_page page;
        char perr[256];
        if (ws_parse_page(r.body, r.len, &page, perr, sizeof perr) != 0) {
            ws_response_free(&r);
            rc = poll_failed(s, "listing interventions: %s", perr);
            break;
        }
        ws_response_free(&r);
        size_t i;
        json_t *item;
        json_array_foreach(page.items, i, item) {
            rc = handle_item(s, item, since_us, since_seen, &w);
            if (rc != 0) break;
        }
        char *next = page.next_cursor ? strdup(page.next_cursor) : NULL;
        int same = next && cursor && strcmp(next, cursor) == 0;
        int oom = page.next_cursor && !next;
        ws_page_clear(&page);
        free(cursor);
        cursor = next;
        if (rc == 0 && same) rc = poll_failed(s, "listing interventions: the cursor does not move");
        if (rc == 0 && oom) rc = poll_failed(s, "out of memory");
        if (!cursor) break;
    }
    free(cursor);
    free(esc_since);
    if (rc == 0 && w.moved) {
        json_t *v = json_pack("{s:s,s:O}", "since", w.max_at, "seen", w.seen);
        if (!v || relais_state_put(s->inst, s->state_key, v) != 0)
            rc = poll_failed(s, "journal unavailable (checkpoint not written)");
        json_decref(v);
    }
    if (rc == 0 && s->failing) {
        relais_instance_log(s->inst, RELAIS_LOG_INFO, "polling works again");
        s->failing = 0;
    }
    json_decref(w.seen);
    json_decref(cp);
    return rc;
}

int ws_source_poll(ws_source *s)
{
    pthread_mutex_lock(&s->poll_lock);
    int rc = poll_locked(s);
    pthread_mutex_unlock(&s->poll_lock);
    return rc;
}

static void *poller_main(void *arg)
{
    ws_source *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        pthread_mutex_unlock(&s->lock);
        if (relais_accepting(s->inst)) ws_source_poll(s);
        pthread_mutex_lock(&s->lock);
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += s->poll_interval_ms / 1000;
        until.tv_nsec += (s->poll_interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!s->stop && pthread_cond_timedwait(&s->cv, &s->lock, &until) != ETIMEDOUT) {}
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int ws_source_start(ws_source *s, char *errstr, size_t errlen)
{
    s->stop = 0;
    if (pthread_create(&s->thread, NULL, poller_main, s) != 0) {
        snprintf(errstr, errlen, "cannot start the poller thread");
        return -1;
    }
    s->started = 1;
    return 0;
}

void ws_source_stop(ws_source *s)
{
    if (!s || !s->started) return;
    pthread_mutex_lock(&s->lock);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    s->started = 0;
}

void ws_source_destroy(ws_source *s)
{
    if (!s) return;
    ws_source_stop(s);
    ws_client_destroy(s->client);
    free(s->self_account);
    pthread_mutex_destroy(&s->poll_lock);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cv);
    free(s);
}
