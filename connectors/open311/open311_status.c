/*
 * open311_status.c - role server, mode sink (the demo's open311-status):
 * keeps the GeoReport v2 endpoint's view of the town's requests up to date.
 *
 * It receives fr.relais.grc.request.created / updated / closed events. The
 * instance's outbound mapping renders each one as the GeoReport fields it
 * changes (a JSON object: status from the canonical status through a code
 * table, status_notes from a public comment or the closing answer,
 * updated_datetime, expected_datetime, agency_responsible; for a creation
 * also service_code, service_name, description, address, lat, long...),
 * and this file merges them into the stored request "request/<id>" of the
 * package state, which the server (open311_server.c) answers GET with:
 *
 *   subject request/o311-<id>  a request born on this endpoint: <id>
 *   subject request/<other>    a request born elsewhere (the GRC): <other>,
 *                              stored at its creation so that GET requests
 *                              lists every request of the town
 *
 * Echo: a creation whose subject is request/o311-* was posted to this
 * endpoint; the server already stored it, so it is not stored twice (when
 * the event overtakes the server's own write, it is stored from the event
 * and the server completes it). An update of a request not stored yet is a
 * RETRY for one of ours (the server is about to store it) and ignored (OK,
 * said in the detail) for another.
 *
 * Threads: deliver() runs on the hub's delivery workers; `lock` makes the
 * read-merge-write of one process atomic (several hubs rely on the
 * per-subject ordering of deliveries, `order: subject`).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "open311_int.h"

struct o311_status {
    relais_instance *inst;
    pthread_mutex_t  lock;
};

o311_status *o311_status_new(relais_instance *inst, char *errstr, size_t errlen)
{
    o311_status *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    s->inst = inst;
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

void o311_status_destroy(o311_status *s)
{
    if (!s) return;
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static relais_verdict verdict(relais_answer *ans, relais_verdict v, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static relais_verdict verdict(relais_answer *ans, relais_verdict v, const char *id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ans->detail, sizeof ans->detail, fmt, ap);
    va_end(ap);
    ans->status = 0;
    snprintf(ans->local_id, sizeof ans->local_id, "%s", v == RELAIS_DELIVER_OK && id ? id : "");
    return v;
}

static int id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 150) return 0;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        if (*p < 0x21 || *p == '/' || *p == 0x7F) return 0;
    return 1;
}

/* The patch the mapping made, or NULL (ans filled). */
static json_t *render_patch(o311_status *s, const relais_event *ev, const char *local_id, relais_answer *ans)
{
    relais_payload p;
    memset(&p, 0, sizeof p);
    if (relais_render(s->inst, ev, local_id, &p, ans) != 0) return NULL;
    json_t *patch = p.body ? json_loadb(p.body, p.len, 0, NULL) : NULL;
    relais_payload_release(&p);
    if (!json_is_object(patch)) {
        json_decref(patch);
        snprintf(ans->detail, sizeof ans->detail, "open311: the mapping's output is not a JSON object "
                 "(an open311 server mapping renders GeoReport request fields)");
        return NULL;
    }
    return patch;
}

relais_verdict o311_status_deliver(o311_status *s, const relais_event *ev, const char *local_id,
                                   relais_answer *ans)
{
    const char *type = relais_event_type(ev);
    const char *subject = relais_event_subject(ev);
    ans->local_id[0] = '\0';
    if (strncmp(type, "fr.relais.grc.request.", 22) != 0)
        return verdict(ans, RELAIS_DELIVER_REJECT, NULL, "open311: %s is not a grc.request event", type);
    if (!subject || strncmp(subject, "request/", 8) != 0)
        return verdict(ans, RELAIS_DELIVER_REJECT, NULL, "open311: subject '%.200s' is not request/<id>",
                       subject ? subject : "");
    const char *canon = subject + 8;
    int ours = !strncmp(canon, "o311-", 5);
    const char *id = ours ? canon + 5 : canon;
    if (!id_ok(id))
        return verdict(ans, RELAIS_DELIVER_REJECT, NULL, "open311: '%.200s' cannot be a service_request_id "
                       "(1 to 150 printable characters, no '/')", id);
    int created = strstr(type, ".created.") != NULL;
    char key[256];
    if (o311_state_key(key, sizeof key, "request/", id) != 0)
        return verdict(ans, RELAIS_DELIVER_REJECT, NULL, "open311: id too long");

    json_t *patch = render_patch(s, ev, local_id, ans);
    if (!patch) return RELAIS_DELIVER_REJECT;

    pthread_mutex_lock(&s->lock);
    int err = 0;
    json_t *have = relais_state_get(s->inst, key, &err);
    json_t *put = NULL;
    relais_verdict v = RELAIS_DELIVER_OK;
    if (err) {
        v = verdict(ans, RELAIS_DELIVER_RETRY, NULL, "open311: the package state is unavailable");
    } else if (created) {
        if (have && ours) {
            v = verdict(ans, RELAIS_DELIVER_OK, id, "echo: request %s was posted to this GeoReport endpoint "
                        "and is stored already", id);
        } else if (have) {
            /* a redelivery: fields the request already has (its status may
             * have moved on) are kept */
            put = json_deep_copy(have);
            const char *k;
            json_t *val;
            json_object_foreach(patch, k, val)
                if (!json_object_get(put, k)) json_object_set(put, k, val);
        } else {
            put = json_deep_copy(patch);
            json_object_set_new(put, "service_request_id", json_string(id));
            json_object_set_new(put, "subject", json_string(subject));
            if (!json_object_get(put, "status")) json_object_set_new(put, "status", json_string("open"));
            if (!json_string_value(json_object_get(put, "requested_datetime")))
                json_object_set_new(put, "requested_datetime", json_string(relais_event_time(ev)));
            if (!json_object_get(put, "updated_datetime"))
                json_object_set(put, "updated_datetime", json_object_get(put, "requested_datetime"));
        }
    } else if (!have) {
        v = ours ? verdict(ans, RELAIS_DELIVER_RETRY, NULL, "open311: request %s is not stored yet "
                           "(the endpoint stores it once journaled)", id)
                 : verdict(ans, RELAIS_DELIVER_OK, NULL, "open311: request %s is not listed (its creation "
                           "was not stored by this instance): update ignored", id);
    } else {
        int64_t t_new = 0, t_old = 0;
        const char *un = json_string_value(json_object_get(patch, "updated_datetime"));
        const char *uo = json_string_value(json_object_get(have, "updated_datetime"));
        if (un && uo && o311_parse_datetime(un, &t_new) == 0 && o311_parse_datetime(uo, &t_old) == 0
            && t_new < t_old) {
            v = verdict(ans, RELAIS_DELIVER_OK, id, "open311: request %s: update of %s is older than the "
                        "stored state (%s): ignored", id, un, uo);
        } else {
            put = json_deep_copy(have);
            json_object_update(put, patch);
        }
    }
    if (put) {
        if (relais_state_put(s->inst, key, put) != 0)
            v = verdict(ans, RELAIS_DELIVER_RETRY, NULL, "open311: the package state is unavailable");
        else
            v = verdict(ans, RELAIS_DELIVER_OK, id, "request %s stored: status %s", id,
                        json_string_value(json_object_get(put, "status")) ? json_string_value(json_object_get(put, "status")) : "open");
    }
    pthread_mutex_unlock(&s->lock);
    json_decref(put);
    json_decref(have);
    json_decref(patch);
    return v;
}
