/*
 * instance.c - the source API of include/relais/connector.h, dispatched to
 * the hub through relais_instance_ops.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "instance.h"
#include "mapping.h"

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

relais_instance *relais_instance_new(const char *name, const char *tenant, unsigned mode,
                                     const relais_connector *desc, void *config,
                                     const relais_instance_ops *ops, void *hub,
                                     const char *bootstrap)
{
    relais_instance *i = calloc(1, sizeof *i);
    if (!i) return NULL;
    i->name = dup_or_null(name);
    i->tenant = dup_or_null(tenant ? tenant : "default");
    i->mode = mode;
    i->desc = desc;
    i->config = config;
    i->ops = ops;
    i->hub = hub;
    i->bootstrap = dup_or_null(bootstrap);
    i->max_in_flight = 4;
    return i;
}

void relais_instance_destroy(relais_instance *inst)
{
    if (!inst) return;
    free(inst->name);
    free(inst->tenant);
    free(inst->package);
    free(inst->bootstrap);
    free(inst);
}

const char *relais_instance_name(const relais_instance *inst) { return inst->name; }
const char *relais_instance_tenant(const relais_instance *inst) { return inst->tenant; }
unsigned relais_instance_mode(const relais_instance *inst) { return inst->mode; }
const char *relais_instance_bus_bootstrap(const relais_instance *inst) { return inst->bootstrap; }

void relais_instance_log(const relais_instance *inst, relais_log_level lvl, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    relais_logf(lvl, inst && inst->name ? inst->name : "connector", "%s", msg);
}

int relais_submit(relais_instance *inst, const relais_record *recs, size_t n,
                  relais_submit_result *results)
{
    if (!inst->ops || !inst->ops->submit) {
        for (size_t k = 0; k < n; k++) {
            results[k].status = RELAIS_SUBMIT_UNAVAILABLE;
            results[k].event_id[0] = '\0';
            snprintf(results[k].reason, sizeof results[k].reason, "hub not running");
        }
        return -1;
    }
    return inst->ops->submit(inst->hub, inst, recs, n, results);
}

int relais_reject(relais_instance *inst, const char *record_id, const char *where,
                  const char *reason, const char *raw, size_t rawlen)
{
    if (!inst->ops || !inst->ops->reject) return -1;
    return inst->ops->reject(inst->hub, inst, record_id, where, reason, raw, rawlen);
}

int relais_accepting(const relais_instance *inst)
{
    if (!inst->ops || !inst->ops->accepting) return 0;
    return inst->ops->accepting(inst->hub, inst);
}

/* ---- Packages: cross-references, state, echoes ------------------------------ */

const char *relais_instance_package(const relais_instance *inst)
{
    return inst->package ? inst->package : inst->name;
}

int relais_xref_local(const relais_instance *inst, const char *package, const char *canonical_id,
                      char *out, size_t outlen)
{
    if (!inst->ops || !inst->ops->xref_local || !canonical_id) return -1;
    return inst->ops->xref_local(inst->hub, inst, package, canonical_id, out, outlen);
}

int relais_xref_canonical(const relais_instance *inst, const char *package, const char *entity,
                          const char *local_id, char *out, size_t outlen)
{
    if (!inst->ops || !inst->ops->xref_canonical || !entity || !local_id) return -1;
    return inst->ops->xref_canonical(inst->hub, inst, package, entity, local_id, out, outlen);
}

int relais_xref_put(const relais_instance *inst, const char *canonical_id, const char *local_id)
{
    if (!inst->ops || !inst->ops->xref_put || !canonical_id || !local_id) return -1;
    return inst->ops->xref_put(inst->hub, inst, canonical_id, local_id);
}

static int valid_state_key(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    return n >= 1 && n <= 200;
}

int relais_state_put(const relais_instance *inst, const char *key, json_t *value)
{
    if (!inst->ops || !inst->ops->state_put || !valid_state_key(key) || !json_is_object(value)) return -1;
    return inst->ops->state_put(inst->hub, inst, key, value);
}

json_t *relais_state_get(const relais_instance *inst, const char *key, int *err)
{
    if (err) *err = 1;
    if (!inst->ops || !inst->ops->state_get || !valid_state_key(key)) return NULL;
    int e = 0;
    json_t *v = inst->ops->state_get(inst->hub, inst, key, &e);
    if (err) *err = e;
    return v;
}

json_t *relais_state_list(const relais_instance *inst, const char *prefix, const char *after, size_t limit)
{
    if (!inst->ops || !inst->ops->state_list) return NULL;
    return inst->ops->state_list(inst->hub, inst, prefix ? prefix : "", after, limit);
}

void relais_echo_skipped(relais_instance *inst, const char *record_id)
{
    if (inst->ops && inst->ops->echo) inst->ops->echo(inst->hub, inst, record_id);
}

/* ---- Sinks: rendering with the instance's outbound mapping ------------------ */

int relais_instance_mapped(const relais_instance *inst)
{
    return inst && __atomic_load_n(&inst->mapping, __ATOMIC_ACQUIRE) != NULL;
}

int relais_render(const relais_instance *inst, const relais_event *ev, const char *local_id,
                  relais_payload *out, relais_answer *ans)
{
    memset(out, 0, sizeof *out);
    const relais_mapping *map = __atomic_load_n(&inst->mapping, __ATOMIC_ACQUIRE);   /* a reload may switch it */
    if (!map) {
        out->body = relais_event_json(ev, &out->len);
        out->content_type = "application/cloudevents+json";
        return 0;
    }
    relais_rendered *r = calloc(1, sizeof *r);
    char err[512];
    if (!r) {
        if (ans) snprintf(ans->detail, sizeof ans->detail, "out of memory");
        return -1;
    }
    int rc = relais_mapping_outbound(map, relais_event_object(ev), local_id, r, err, sizeof err);
    if (rc != 0) {
        free(r);
        if (ans) {
            ans->status = 0;
            snprintf(ans->detail, sizeof ans->detail, "mapping: %.500s", err);
        }
        return -1;
    }
    out->body = r->body;
    out->len = r->len;
    out->content_type = r->content_type;
    out->priv = r;
    return 0;
}

void relais_payload_release(relais_payload *p)
{
    if (!p) return;
    relais_rendered *r = p->priv;
    if (r) {
        relais_rendered_clear(r);
        free(r);
    }
    memset(p, 0, sizeof *p);
}
