/*
 * worksite_sink.c - the sink of the worksite connector: a canonical request
 * (fr.relais.grc.request.created.v1) becomes an intervention request in the
 * work-order tool (POST /api/v1/interventions, api/worksite-openapi.yaml).
 *
 * The body is the instance's outbound mapping's output
 * (mappings/intervention.yaml: category -> intervention type through a code
 * table without default, place, description, photos, references): a mapping
 * refusal is a REJECT naming the mapping file, line and field. The event id
 * is the Idempotency-Key, so a repeated attempt answers the intervention
 * created the first time. When the hub already knows the intervention of the
 * event's subject (local_id), the sink reads it instead of creating one.
 * Verdicts: 2xx OK (ans->local_id = the intervention id, recorded by the hub
 * as the cross-reference); 408, 425, 429, 5xx, a 2xx without a usable id,
 * and transport errors (refused, reset, timeout) RETRY; other statuses
 * REJECT with the tool's error text.
 *
 * Threads: ws_sink_deliver() runs on the hub's delivery workers, up to the
 * instance's max_in_flight at once; it only reads the sink, and the client
 * is thread-safe (worksite_client.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "worksite_int.h"

struct ws_sink {
    relais_instance *inst;
    ws_client       *client;
};

ws_sink *ws_sink_new(relais_instance *inst, const relais_worksite_config *cfg, char *errstr,
                     size_t errlen)
{
    if (!relais_instance_mapped(inst)) {
        snprintf(errstr, errlen, "a worksite sink needs a mapping: the intervention body is its "
                 "output (see connectors/worksite/mappings/intervention.yaml)");
        return NULL;
    }
    ws_sink *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    s->inst = inst;
    s->client = ws_client_new(inst, cfg, errstr, errlen);
    if (!s->client) {
        free(s);
        return NULL;
    }
    return s;
}

void ws_sink_destroy(ws_sink *s)
{
    if (!s) return;
    ws_client_destroy(s->client);
    free(s);
}

static relais_verdict verdict_for_status(long code)
{
    if (code >= 200 && code < 300) return RELAIS_DELIVER_OK;
    if (code == 408 || code == 425 || code == 429 || code >= 500 || code < 200)
        return RELAIS_DELIVER_RETRY;
    return RELAIS_DELIVER_REJECT;
}

/* ans for an answer that is not a success: status, and
 * "HTTP <code> <refused|transient, will retry>: <the tool's error text>". */
static relais_verdict failure(const ws_response *r, const char *what, relais_answer *ans)
{
    if (r->transport) {
        ans->status = 0;
        snprintf(ans->detail, sizeof ans->detail, "%s: %s (will retry)", what, r->error);
        return RELAIS_DELIVER_RETRY;
    }
    relais_verdict v = verdict_for_status(r->status);
    char text[400];
    ws_error_text(r->body, r->len, text, sizeof text);
    ans->status = (int)r->status;
    snprintf(ans->detail, sizeof ans->detail, "%s: HTTP %ld %s%s%s", what, r->status,
             v == RELAIS_DELIVER_RETRY ? "transient, will retry" : "refused", text[0] ? ": " : "", text);
    return v;
}

/* The intervention the hub already knows for the subject: 0 when it exists
 * (verdict OK in *v), 1 when the tool no longer has it (create it), -1 when
 * the answer decides the verdict (in *v). */
static int known_intervention(ws_sink *s, const char *local_id, relais_answer *ans, relais_verdict *v)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/interventions/%s", local_id);
    ws_response r;
    ws_client_call(s->client, "GET", path, NULL, 0, NULL, &r);
    int rc;
    char id[80], err[256];
    if (!r.transport && r.status == 200
        && ws_parse_intervention_id(r.body, r.len, id, sizeof id, err, sizeof err) == 0
        && strcmp(id, local_id) == 0) {
        ans->status = 200;
        snprintf(ans->local_id, sizeof ans->local_id, "%s", id);
        snprintf(ans->detail, sizeof ans->detail, "HTTP 200: intervention %s already created for this "
                 "request, not created again", id);
        *v = RELAIS_DELIVER_OK;
        rc = 0;
    } else if (!r.transport && r.status == 404) {
        rc = 1;
    } else if (!r.transport && r.status == 200) {
        ans->status = 200;
        snprintf(ans->detail, sizeof ans->detail, "reading intervention %s: unusable answer (will retry)",
                 local_id);
        *v = RELAIS_DELIVER_RETRY;
        rc = -1;
    } else {
        char what[128];
        snprintf(what, sizeof what, "reading intervention %s", local_id);
        *v = failure(&r, what, ans);
        rc = -1;
    }
    ws_response_free(&r);
    return rc;
}

relais_verdict ws_sink_deliver(ws_sink *s, const relais_event *ev, const char *local_id,
                               relais_answer *ans)
{
    ans->status = 0;
    ans->detail[0] = '\0';
    ans->local_id[0] = '\0';
    relais_verdict v = RELAIS_DELIVER_RETRY;
    if (local_id && *local_id) {
        if (ws_id_valid(local_id)) {
            if (known_intervention(s, local_id, ans, &v) <= 0) return v;
        } else {
            relais_instance_log(s->inst, RELAIS_LOG_WARN, "event %s: cross-reference is not an "
                                "intervention id; creating (idempotently)", relais_event_id(ev));
        }
    }
    relais_payload pl;
    if (relais_render(s->inst, ev, local_id, &pl, ans) != 0) return RELAIS_DELIVER_REJECT;
    ws_response r;
    ws_client_call(s->client, "POST", "/api/v1/interventions", pl.body, pl.len, relais_event_id(ev), &r);
    relais_payload_release(&pl);
    if (r.transport || r.status < 200 || r.status >= 300) {
        v = failure(&r, "creating the intervention", ans);
    } else {
        char id[80], err[256];
        ans->status = (int)r.status;
        if (ws_parse_intervention_id(r.body, r.len, id, sizeof id, err, sizeof err) == 0) {
            snprintf(ans->local_id, sizeof ans->local_id, "%s", id);
            snprintf(ans->detail, sizeof ans->detail, "HTTP %ld: intervention %s%s", r.status, id,
                     r.status == 201 ? " created" : " (created earlier with the same Idempotency-Key)");
            v = RELAIS_DELIVER_OK;
        } else {
            /* created, but the id cannot be read: asking again with the same
             * Idempotency-Key answers the same intervention */
            snprintf(ans->detail, sizeof ans->detail, "HTTP %ld but %s (will retry)", r.status, err);
            v = RELAIS_DELIVER_RETRY;
        }
    }
    ws_response_free(&r);
    if (relais_log_get_level() >= RELAIS_LOG_DEBUG)
        relais_instance_log(s->inst, RELAIS_LOG_DEBUG, "event %s -> %d %s", relais_event_id(ev),
                            ans->status, ans->local_id);
    return v;
}
