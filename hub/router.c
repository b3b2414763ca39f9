/*
 * router.c - see router.h.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "router.h"

struct relais_router {
    const relais_config *cfg;    /* borrowed: lives as long as the hub */
};

relais_router *relais_router_new(const relais_config *cfg, char *errstr, size_t errlen)
{
    relais_router *r = calloc(1, sizeof *r);
    if (!r) { snprintf(errstr, errlen, "out of memory"); return NULL; }
    r->cfg = cfg;
    return r;
}

void relais_router_destroy(relais_router *r) { free(r); }

static int match_segments(const char *pat, const char *type)
{
    for (;;) {
        const char *pe = strchr(pat, '.');
        size_t plen = pe ? (size_t)(pe - pat) : strlen(pat);
        if (plen == 2 && pat[0] == '*' && pat[1] == '*') {
            if (!pe) return 1;                       /* "**" at the end: any tail */
            /* "**" in the middle: try every split */
            for (const char *t = type;; ) {
                if (match_segments(pe + 1, t)) return 1;
                const char *te = strchr(t, '.');
                if (!te) return 0;
                t = te + 1;
            }
        }
        const char *te = strchr(type, '.');
        size_t tlen = te ? (size_t)(te - type) : strlen(type);
        char ps[128], ts[128];
        if (plen >= sizeof ps || tlen >= sizeof ts) return 0;
        memcpy(ps, pat, plen); ps[plen] = '\0';
        memcpy(ts, type, tlen); ts[tlen] = '\0';
        if (fnmatch(ps, ts, 0) != 0) return 0;
        if (!pe && !te) return 1;
        if (pe && !te) return strcmp(pe + 1, "**") == 0;   /* "a.**" matches "a" */
        if (!pe || !te) return 0;
        pat = pe + 1;
        type = te + 1;
    }
}

int relais_pattern_match(const char *pattern, const char *type)
{
    if (!pattern || !type) return 0;
    return match_segments(pattern, type);
}

const char *relais_event_field(const relais_event *ev, const char *path, char *buf, size_t len)
{
    json_t *cur = relais_event_object(ev);
    char seg[128];
    const char *p = path;
    while (cur && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 0 || n >= sizeof seg) return NULL;
        memcpy(seg, p, n);
        seg[n] = '\0';
        cur = json_is_object(cur) ? json_object_get(cur, seg) : NULL;
        p = dot ? dot + 1 : p + n;
    }
    if (!cur) return NULL;
    if (json_is_string(cur)) { snprintf(buf, len, "%s", json_string_value(cur)); return buf; }
    if (json_is_integer(cur)) { snprintf(buf, len, "%lld", (long long)json_integer_value(cur)); return buf; }
    if (json_is_real(cur)) { snprintf(buf, len, "%.17g", json_real_value(cur)); return buf; }
    if (json_is_boolean(cur)) { snprintf(buf, len, "%s", json_is_true(cur) ? "true" : "false"); return buf; }
    return NULL;
}

static int where_holds(const relais_where *w, const relais_event *ev)
{
    char buf[512];
    const char *v = relais_event_field(ev, w->field, buf, sizeof buf);
    switch (w->op) {
    case WHERE_EXISTS:
        return w->exists ? v != NULL : v == NULL;
    case WHERE_EQUALS:
        return v && w->values && w->values[0] && strcmp(v, w->values[0]) == 0;
    case WHERE_NOT_EQUALS:
        return !v || !w->values || !w->values[0] || strcmp(v, w->values[0]) != 0;
    case WHERE_IN:
        if (!v || !w->values) return 0;
        for (char **x = w->values; *x; x++)
            if (strcmp(v, *x) == 0) return 1;
        return 0;
    }
    return 0;
}

static const relais_conn_cfg *find_conn(const relais_config *c, const char *name)
{
    for (size_t i = 0; i < c->n_connectors; i++)
        if (strcmp(c->connectors[i].name, name) == 0) return &c->connectors[i];
    return NULL;
}

size_t relais_router_match(const relais_router *r, const relais_event *ev,
                           const char **dests, const char **routes, size_t max)
{
    size_t n = 0;
    const char *tenant = relais_event_tenant(ev);
    for (size_t i = 0; i < r->cfg->n_routes; i++) {
        const relais_route_cfg *rt = &r->cfg->routes[i];
        if (rt->tenant && (!tenant || strcmp(rt->tenant, tenant) != 0)) continue;
        int type_ok = 0;
        for (char **m = rt->match; m && *m && !type_ok; m++)
            type_ok = relais_pattern_match(*m, relais_event_type(ev));
        if (!type_ok) continue;
        int ok = 1;
        for (size_t k = 0; k < rt->n_where && ok; k++) ok = where_holds(&rt->where[k], ev);
        if (!ok) continue;
        for (char **d = rt->to; d && *d; d++) {
            const relais_conn_cfg *cc = find_conn(r->cfg, *d);
            if (!cc || !(cc->mode & RELAIS_MODE_SINK)) continue;
            if (tenant && cc->tenant && strcmp(cc->tenant, tenant) != 0) continue;  /* tenant isolation */
            int seen = 0;
            for (size_t k = 0; k < n && !seen; k++) seen = strcmp(dests[k], *d) == 0;
            if (seen || n >= max) continue;
            dests[n] = *d;
            routes[n] = rt->name;
            n++;
        }
    }
    return n;
}
