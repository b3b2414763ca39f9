/*
 * config.c - load and validate the hub's YAML configuration (config.h holds
 * the format; docs/CONFIG.md documents every key).
 *
 * The file is read into a yt_node tree (yamltree.c), then every section is
 * checked and copied into a relais_config. Validation does not stop at the
 * first problem: every error found is added to the caller's relais_errlist as
 * "FILE:LINE: message", and the messages this call added are finally put in
 * line order, so `relais check` can list them all at once. When any error was
 * found the config is freed and NULL is returned.
 *
 * The scalar sections (hub, bus, journal, delivery) are described by option
 * tables, like connectors, and filled by relais_options_apply(); connectors'
 * own options come from their descriptor's table. Stateless; no threads.
 */
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "config.h"
#include "options.h"
#include "yamltree.h"
#include "mapping.h"
#include "jsonschema.h"
#include "httputil.h"
#include "tokens.h"

#define DEFAULT_MAX_IN_FLIGHT 4
/* Numeric section fields start at this value: apply() overwrites it with the
 * given value or the default, and leaves it when the given value was invalid
 * (already reported), so range checks do not report the same key twice. */
#define UNPARSED LONG_MIN

/* ---- section tables ------------------------------------------------------- */

#define OPT(n, t, d, field, e, ds) { n, t, d, 0, offsetof(relais_config, field), e, ds, 0 }

static const relais_option hub_opts[] = {
    OPT("name", RELAIS_OPT_STR, "relais", hub.name, NULL, "instance name, prefix of Kafka client ids"),
    OPT("tenant", RELAIS_OPT_STR, "default", hub.tenant, NULL, "tenant of connectors that name none"),
    OPT("admin_listen", RELAIS_OPT_STR, NULL, hub.admin_listen, NULL, "admin HTTP address; empty: off"),
    OPT("state_dir", RELAIS_OPT_STR, ".run/relais", hub.state_dir, NULL, "directory for runtime state files"),
    OPT("log_level", RELAIS_OPT_ENUM, "info", hub.log_level, "error|warn|info|debug", "log verbosity"),
    OPT("fault_injection", RELAIS_OPT_BOOL, "false", hub.fault_injection, NULL,
        "tests only: the admin server takes POST /fault/bus (embedded broker down/up, request errors, leader change)"),
    OPT("admin_tokens", RELAIS_OPT_STR, NULL, hub.admin_tokens, NULL,
        "file of the admin API's bearer tokens, one '<name> <role> sha256:<hex>' per line (relais token new); "
        "required when admin_listen is not a loopback address"),
    { NULL, 0, NULL, 0, 0, NULL, NULL, 0 }
};

static const relais_option bus_opts[] = {
    OPT("brokers", RELAIS_OPT_STR, NULL, bus.brokers, NULL, "\"embedded\" or bootstrap servers"),
    OPT("embedded_brokers", RELAIS_OPT_INT, "1", bus.embedded_brokers, NULL, "mock cluster size"),
    OPT("topic", RELAIS_OPT_STR, "relais.events", bus.topic, NULL, "topic carrying events"),
    OPT("partitions", RELAIS_OPT_INT, "6", bus.partitions, NULL, "partitions of the topic"),
    OPT("group", RELAIS_OPT_STR, "relais-hub", bus.group, NULL, "consumer group"),
    OPT("rdkafka.", RELAIS_OPT_PREFIX, NULL, bus.rdkafka, NULL, "librdkafka properties, passed as is"),
    { NULL, 0, NULL, 0, 0, NULL, NULL, 0 }
};

static const relais_option journal_opts[] = {
    OPT("conninfo", RELAIS_OPT_STR, NULL, journal.conninfo, NULL, "libpq conninfo, or env:NAME / file:PATH"),
    OPT("batch_max", RELAIS_OPT_INT, "1000", journal.batch_max, NULL, "most jobs per group commit"),
    OPT("batch_wait", RELAIS_OPT_DURATION, "0ms", journal.batch_wait_ms, NULL, "extra wait to fill a batch (jobs queued during a commit form the next batch anyway)"),
    { NULL, 0, NULL, 0, 0, NULL, NULL, 0 }
};

static const relais_option delivery_opts[] = {
    OPT("workers", RELAIS_OPT_INT, "8", delivery.workers, NULL, "delivery threads"),
    OPT("max_attempts", RELAIS_OPT_INT, "8", delivery.max_attempts, NULL, "attempts before dead-letter"),
    OPT("backoff_initial", RELAIS_OPT_DURATION, "500ms", delivery.backoff_initial_ms, NULL, "first retry delay"),
    OPT("backoff_max", RELAIS_OPT_DURATION, "5m", delivery.backoff_max_ms, NULL, "longest retry delay"),
    OPT("lease", RELAIS_OPT_DURATION, "60s", delivery.lease_ms, NULL, "claim lifetime"),
    OPT("poll_interval", RELAIS_OPT_DURATION, "200ms", delivery.poll_interval_ms, NULL, "retry scan period"),
    OPT("circuit_failures", RELAIS_OPT_INT, "5", delivery.circuit_failures, NULL,
        "consecutive failed attempts (timeouts, refused connections, 5xx) after which a destination is left alone; 0: never"),
    OPT("queue_max", RELAIS_OPT_INT, "20000", delivery.queue_max, NULL,
        "deliveries held in memory above which routing pauses (back-pressure); the rest waits in Kafka and the journal"),
    OPT("circuit_open", RELAIS_OPT_DURATION, "30s", delivery.circuit_open_ms, NULL,
        "how long a destination is left alone before one probe delivery"),
    { NULL, 0, NULL, 0, 0, NULL, NULL, 0 }
};

static const relais_option schema_opts[] = {
    OPT("dir", RELAIS_OPT_STR, NULL, schemas.dir, NULL, "folder of the canonical JSON Schemas (default: the built-in schemas/)"),
    OPT("private_types", RELAIS_OPT_ENUM, "accept", schemas.private_types, "accept|reject",
        "events of types outside fr.relais. that have no schema: accept unvalidated, or reject"),
    { NULL, 0, NULL, 0, 0, NULL, NULL, 0 }
};

static const relais_option audit_opts[] = {
    OPT("key_file", RELAIS_OPT_STR, NULL, audit.key_file, NULL,
        "MAC key of the journal's chain (64+ hex digits, mode 0600, outside the database); default <state_dir>/audit.key, made at first start"),
    OPT("checkpoints", RELAIS_OPT_STR, NULL, audit.checkpoints, NULL,
        "append-only file of signed checkpoints (the witness outside the database); default <state_dir>/audit.checkpoints"),
    OPT("checkpoint_interval", RELAIS_OPT_DURATION, "10s", audit.checkpoint_interval_ms, NULL,
        "how often each journal writer appends a checkpoint (when it wrote something)"),
    OPT("stream_max", RELAIS_OPT_INT, "100000", audit.stream_max, NULL,
        "entries per chain stream before a writer starts a new one (bounds what verify holds in memory)"),
    { NULL, 0, NULL, 0, 0, NULL, NULL, 0 }
};

typedef struct section {
    const char          *name;
    const relais_option *opts;
} section;

static const section g_sections[] = {
    { "hub", hub_opts },
    { "bus", bus_opts },
    { "journal", journal_opts },
    { "delivery", delivery_opts },
    { "schemas", schema_opts },
    { "audit", audit_opts },
};
#define N_SECTIONS (sizeof g_sections / sizeof g_sections[0])

static const char *const g_top_keys[] = { "hub", "bus", "journal", "delivery", "schemas", "audit", "retention", "outgoing",
                                          "connectors", "routes", NULL };
static const char *const g_conn_keys[] = { "name", "type", "mode", "tenant", "max_in_flight", "batch_max", "mapping",
                                           "package", "order", NULL };
static const char *const g_route_keys[] = { "name", "match", "tenant", "where", "to", NULL };
static const char *const g_where_keys[] = { "field", "equals", "not_equals", "in", "exists", NULL };

/* ---- loader context and helpers ------------------------------------------- */

typedef struct loader {
    const char     *file;
    relais_errlist *errs;
    int             nerr;
    relais_config  *cfg;
} loader;

static void err_at(loader *L, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void err_at(loader *L, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    relais_errlist_add(L->errs, L->file, line, "%s", msg);
    L->nerr++;
}

static char *dup_or_err(loader *L, const char *s, int line)
{
    char *d = strdup(s ? s : "");
    if (!d) err_at(L, line, "out of memory");
    return d;
}

static int is_null(const yt_node *v)
{
    if (!v || v->kind != YT_SCALAR || v->quoted) return 0;
    return !v->scalar[0] || strcmp(v->scalar, "~") == 0 || strcasecmp(v->scalar, "null") == 0;
}

static const char *kind_name(const yt_node *v)
{
    return v->kind == YT_MAP ? "a map" : v->kind == YT_SEQ ? "a list" : "a plain value";
}

static int key_line(const yt_node *map, const char *key, int fallback)
{
    for (size_t i = 0; map && map->kind == YT_MAP && i < map->count; i++)
        if (strcmp(map->keys[i], key) == 0) return map->key_lines[i];
    return fallback;
}

static int in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0) return 1;
    return 0;
}

static void join_list(const char *const *list, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; list[i] && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", list[i]);
}

/* Report keys of `map` not in `known`. */
static void check_keys(loader *L, const yt_node *map, const char *const *known, const char *where)
{
    char list[512];
    join_list(known, list, sizeof list);
    for (size_t i = 0; i < map->count; i++)
        if (!in_list(known, map->keys[i]))
            err_at(L, map->key_lines[i], "unknown key '%.100s' in %s; known keys: %s",
                   map->keys[i], where, list);
}

/* A plain value, or NULL with an error "<label>: '<key>' must be ...". */
static const char *scalar_of(loader *L, const yt_node *v, int line, const char *label,
                             const char *key)
{
    if (v->kind != YT_SCALAR) {
        err_at(L, line, "%s: '%s' must be a plain value, not %s", label, key, kind_name(v));
        return NULL;
    }
    return v->scalar;
}

/* [a-z0-9_-]+ */
static int valid_name(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static void strlist_free(char **l)
{
    if (!l) return;
    for (char **p = l; *p; p++) free(*p);
    free(l);
}

/* A plain value (comma-separated items allowed) or a list of plain values ->
 * NULL-terminated list of trimmed, non-empty items. NULL on error. */
static char **list_of(loader *L, const yt_node *v, int line, const char *what)
{
    if (v->kind == YT_MAP) {
        err_at(L, line, "%s must be a value or a list of values, not a map", what);
        return NULL;
    }
    if (v->kind == YT_SCALAR) {
        char **out = relais_split_list(v->scalar);
        if (!out) err_at(L, line, "out of memory");
        return out;
    }
    char **out = calloc(v->count + 1, sizeof *out);
    if (!out) {
        err_at(L, line, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < v->count; i++) {
        const yt_node *it = v->values[i];
        if (it->kind != YT_SCALAR) {
            err_at(L, it->line, "%s: list items must be plain values, not %s", what, kind_name(it));
            strlist_free(out);
            return NULL;
        }
        out[i] = dup_or_err(L, it->scalar, it->line);
        if (!out[i]) { strlist_free(out); return NULL; }
    }
    return out;
}

/* ---- sections ------------------------------------------------------------- */

static void load_section(loader *L, const yt_node *root, const section *s)
{
    const yt_node *map = yt_get(root, s->name);
    int line = key_line(root, s->name, root->line);
    if (map && is_null(map)) map = NULL;
    if (map && map->kind != YT_MAP) {
        err_at(L, line, "section '%s' must be a map of keys, not %s", s->name, kind_name(map));
        map = NULL;
    }
    /* Unknown keys are reported here (naming the section) and skipped by the
     * option table; everything else is the table's job. */
    const char **skip = NULL;
    if (map) {
        skip = calloc(map->count + 1, sizeof *skip);
        if (!skip) {
            err_at(L, line, "out of memory");
            return;
        }
        size_t ns = 0;
        char known[512];
        size_t o = 0;
        known[0] = '\0';
        for (const relais_option *p = s->opts; p->name && o < sizeof known; p++)
            o += (size_t)snprintf(known + o, sizeof known - o, "%s%s%s", o ? ", " : "", p->name,
                                  p->type == RELAIS_OPT_PREFIX ? "*" : "");
        for (size_t i = 0; i < map->count; i++) {
            const char *k = map->keys[i];
            int found = 0;
            for (const relais_option *p = s->opts; p->name && !found; p++)
                found = p->type == RELAIS_OPT_PREFIX ? strncmp(k, p->name, strlen(p->name)) == 0
                                                     : strcmp(k, p->name) == 0;
            if (!found) {
                err_at(L, map->key_lines[i], "unknown key '%.100s' in section '%s'; known keys: %s",
                       k, s->name, known);
                skip[ns++] = k;
            }
        }
    }
    if (relais_options_apply(s->opts, L->cfg, 0, map, skip, L->file, L->errs) != 0)
        L->nerr++;
    free(skip);
}

/* Non-empty string value of a section key. */
static void require_text(loader *L, const yt_node *root, const char *sec, const char *key,
                         const char *value)
{
    const yt_node *map = yt_get(root, sec);
    int sec_line = key_line(root, sec, root->line);
    if (!value) {
        const yt_node *v = map && map->kind == YT_MAP ? yt_get(map, key) : NULL;
        if (v && is_null(v))
            err_at(L, key_line(map, key, sec_line), "'%s.%s' has no value", sec, key);
        else if (v)
            return;   /* given but invalid: already reported */
        else if (map && map->kind == YT_MAP)
            err_at(L, map->line, "missing required key '%s.%s'", sec, key);
        else if (!map)
            err_at(L, root->line, "missing required section '%s' (it needs at least '%s.%s')",
                   sec, sec, key);
        else if (is_null(map))
            err_at(L, sec_line, "missing required key '%s.%s' (section '%s' is empty)", sec, key,
                   sec);
        /* else: section of the wrong type, already reported */
        return;
    }
    if (!*value)
        err_at(L, key_line(map, key, sec_line), "'%s.%s' must not be empty", sec, key);
}

static void require_min(loader *L, const yt_node *root, const char *sec, const char *key,
                        long value, long min, const char *unit)
{
    if (value >= min || value == UNPARSED) return;
    const yt_node *map = yt_get(root, sec);
    err_at(L, key_line(map, key, key_line(root, sec, 1)), "'%s.%s' must be at least %ld%s (got %ld)",
           sec, key, min, unit, value);
}

/* hub.admin_tokens: loaded (and checked) with the configuration; without
 * it the admin API is unauthenticated, allowed on a loopback address only. */
static void load_admin_tokens(loader *L, const yt_node *root)
{
    relais_config *c = L->cfg;
    const yt_node *hub = yt_get(root, "hub");
    int hub_line = key_line(root, "hub", root->line);
    if (c->hub.admin_tokens) {
        char err[1024];
        int line = key_line(hub, "admin_tokens", hub_line);
        if (!*c->hub.admin_tokens) {
            err_at(L, line, "'hub.admin_tokens' must not be empty");
            return;
        }
        c->hub.tokens = relais_tokens_load(c->hub.admin_tokens, err, sizeof err);
        if (!c->hub.tokens) err_at(L, line, "'hub.admin_tokens': %s", err);
    } else if (c->hub.admin_listen && *c->hub.admin_listen && !relais_listen_is_loopback(c->hub.admin_listen)) {
        err_at(L, key_line(hub, "admin_listen", hub_line), "'hub.admin_listen' %.100s is not a loopback address "
               "(127.x.x.x): set 'hub.admin_tokens' (docs/SECURITY.md, Roles and tokens), or the admin API "
               "would be open to the network without authentication", c->hub.admin_listen);
    }
}

static void check_sections(loader *L, const yt_node *root)
{
    relais_config *c = L->cfg;
    require_text(L, root, "hub", "name", c->hub.name);
    require_text(L, root, "hub", "tenant", c->hub.tenant);
    require_text(L, root, "hub", "state_dir", c->hub.state_dir);
    require_text(L, root, "bus", "brokers", c->bus.brokers);
    require_text(L, root, "bus", "topic", c->bus.topic);
    require_text(L, root, "bus", "group", c->bus.group);
    require_text(L, root, "journal", "conninfo", c->journal.conninfo);
    load_admin_tokens(L, root);

    require_min(L, root, "bus", "embedded_brokers", c->bus.embedded_brokers, 1, "");
    require_min(L, root, "bus", "partitions", c->bus.partitions, 1, "");
    require_min(L, root, "journal", "batch_max", c->journal.batch_max, 1, "");
    require_min(L, root, "delivery", "workers", c->delivery.workers, 1, "");
    require_min(L, root, "delivery", "max_attempts", c->delivery.max_attempts, 1, "");
    require_min(L, root, "delivery", "backoff_initial", c->delivery.backoff_initial_ms, 1, "ms");
    require_min(L, root, "delivery", "lease", c->delivery.lease_ms, 1, "ms");
    require_min(L, root, "delivery", "poll_interval", c->delivery.poll_interval_ms, 1, "ms");
    require_min(L, root, "delivery", "circuit_failures", c->delivery.circuit_failures, 0, "");
    require_min(L, root, "delivery", "circuit_open", c->delivery.circuit_open_ms, 1, "ms");
    require_min(L, root, "delivery", "queue_max", c->delivery.queue_max, 100, "");
    require_min(L, root, "audit", "checkpoint_interval", c->audit.checkpoint_interval_ms, 100, "ms");
    require_min(L, root, "audit", "stream_max", c->audit.stream_max, 10, "");
    if (c->delivery.backoff_max_ms != UNPARSED && c->delivery.backoff_initial_ms != UNPARSED &&
        c->delivery.backoff_max_ms < c->delivery.backoff_initial_ms) {
        const yt_node *d = yt_get(root, "delivery");
        err_at(L, key_line(d, "backoff_max", key_line(root, "delivery", 1)),
               "'delivery.backoff_max' (%ldms) must not be shorter than 'delivery.backoff_initial' (%ldms)",
               c->delivery.backoff_max_ms, c->delivery.backoff_initial_ms);
    }

    /* journal.conninfo: env:NAME / file:PATH are resolved, anything else is
     * the conninfo itself. The resolved text is never quoted back. */
    const char *ci = c->journal.conninfo;
    if (ci && (strncmp(ci, "env:", 4) == 0 || strncmp(ci, "file:", 5) == 0)) {
        char errbuf[512], *resolved = NULL;
        const yt_node *j = yt_get(root, "journal");
        if (relais_resolve_secret(ci, &resolved, errbuf, sizeof errbuf) != 0) {
            err_at(L, key_line(j, "conninfo", 1), "'journal.conninfo': %s", errbuf);
        } else {
            free(c->journal.conninfo);
            c->journal.conninfo = resolved;
        }
    }
}

/* ---- connectors ----------------------------------------------------------- */

static void known_types(char *buf, size_t len)
{
    size_t n = 0, o = 0;
    const relais_connector *const *all = relais_registry_all(&n);
    buf[0] = '\0';
    for (size_t i = 0; i < n && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", all[i]->name);
}

static const char *modes_list(unsigned modes)
{
    if ((modes & RELAIS_MODE_SOURCE) && (modes & RELAIS_MODE_SINK)) return "source, sink";
    if (modes & RELAIS_MODE_SOURCE) return "source";
    if (modes & RELAIS_MODE_SINK) return "sink";
    return "none";
}

/* A hub-level whole-number option of sink instances (max_in_flight, batch_max):
 * 1..max; an error on a source. */
static void sink_int(loader *L, const yt_node *m, const relais_conn_cfg *cc, const char *label,
                     const char *key, long max, long *out)
{
    const yt_node *v = yt_get(m, key);
    if (!v || is_null(v)) return;
    int line = key_line(m, key, m->line);
    const char *s = scalar_of(L, v, line, label, key);
    char *end = NULL;
    long n = s ? strtol(s, &end, 10) : 0;
    if (cc->mode == RELAIS_MODE_SOURCE)
        err_at(L, line, "option '%s' applies only to sink instances", key);
    else if (s && (!*s || *end || n < 1 || n > max))
        err_at(L, line, "%s: '%s' must be a whole number from 1 to %ld (got '%.60s')", label, key, max, s);
    else if (s)
        *out = n;
}

/* Load the instance's mapping file (its own errors carry its own FILE:LINE)
 * and check that it fits the instance's mode. */
static void load_mapping(loader *L, relais_conn_cfg *cc, const char *given, int line, const char *label)
{
    char path[4096];
    const char *slash = strrchr(L->file, '/');
    if (given[0] == '/' || !slash)
        snprintf(path, sizeof path, "%s", given);
    else
        snprintf(path, sizeof path, "%.*s/%s", (int)(slash - L->file), L->file, given);
    cc->mapping_path = dup_or_err(L, path, line);
    size_t before = L->errs->count;
    cc->mapping = relais_mapping_load(path, L->errs);
    if (!cc->mapping) {
        if (L->errs->count == before) err_at(L, line, "%s: cannot load mapping '%s'", label, path);
        else L->nerr++;
        err_at(L, line, "%s: mapping '%s' has errors (listed with its own file and line)", label, path);
        return;
    }
    if (cc->mode == RELAIS_MODE_SOURCE && !relais_mapping_has_inbound(cc->mapping))
        err_at(L, line, "%s: mapping '%s' has no inbound: section, which a source needs", label, path);
    if (cc->mode == RELAIS_MODE_SINK && !relais_mapping_has_outbound(cc->mapping))
        err_at(L, line, "%s: mapping '%s' has no outbound: section, which a sink needs", label, path);
    if (cc->mode == RELAIS_MODE_SINK && cc->batch_max > 1)
        err_at(L, line, "%s: a sink with a mapping delivers one vendor record at a time; 'batch_max' must be 1", label);
}

static void load_connector(loader *L, const yt_node *m, size_t idx)
{
    relais_config *c = L->cfg;
    relais_conn_cfg *cc = &c->connectors[c->n_connectors++];
    cc->line = m->line;
    cc->max_in_flight = DEFAULT_MAX_IN_FLIGHT;
    cc->batch_max = 1;
    char label[160];

    /* name */
    const yt_node *v = yt_get(m, "name");
    if (!v || is_null(v)) {
        err_at(L, m->line, "connector #%zu has no 'name'", idx + 1);
    } else {
        int line = key_line(m, "name", m->line);
        snprintf(label, sizeof label, "connector #%zu", idx + 1);
        const char *s = scalar_of(L, v, line, label, "name");
        if (s && !valid_name(s)) {
            err_at(L, line, "connector name '%.100s' is invalid: use lower-case letters, digits, '_' and '-'", s);
        } else if (s) {
            for (size_t i = 0; i + 1 < c->n_connectors; i++) {
                if (c->connectors[i].name && strcmp(c->connectors[i].name, s) == 0) {
                    err_at(L, line, "duplicate connector name '%s' (first used at line %d)", s,
                           c->connectors[i].line);
                    s = NULL;
                    break;
                }
            }
            if (s) cc->name = dup_or_err(L, s, line);
        }
    }
    if (cc->name)
        snprintf(label, sizeof label, "connector '%s'", cc->name);
    else
        snprintf(label, sizeof label, "connector #%zu", idx + 1);

    /* type */
    v = yt_get(m, "type");
    if (!v || is_null(v)) {
        char types[256];
        known_types(types, sizeof types);
        err_at(L, m->line, "%s has no 'type' (one of: %s)", label, types);
    } else {
        int line = key_line(m, "type", m->line);
        const char *s = scalar_of(L, v, line, label, "type");
        if (s) {
            cc->desc = relais_registry_find(s);
            if (!cc->desc) {
                char types[256];
                known_types(types, sizeof types);
                err_at(L, line, "unknown connector type '%.100s'; known types: %s", s, types);
            }
            cc->type = dup_or_err(L, s, line);
        }
    }

    /* mode */
    v = yt_get(m, "mode");
    if (!v || is_null(v)) {
        err_at(L, m->line, "%s has no 'mode' (source or sink)", label);
    } else {
        int line = key_line(m, "mode", m->line);
        const char *s = scalar_of(L, v, line, label, "mode");
        unsigned mode = 0;
        if (s && strcmp(s, "source") == 0) mode = RELAIS_MODE_SOURCE;
        else if (s && strcmp(s, "sink") == 0) mode = RELAIS_MODE_SINK;
        else if (s) err_at(L, line, "%s: mode must be source or sink (got '%.60s')", label, s);
        if (mode && cc->desc && !(cc->desc->modes & mode)) {
            err_at(L, line, "connector type '%s' cannot be a %s (supported modes: %s)",
                   cc->desc->name, s, modes_list(cc->desc->modes));
            mode = 0;
        }
        cc->mode = mode;
    }

    /* tenant */
    v = yt_get(m, "tenant");
    if (v && !is_null(v)) {
        int line = key_line(m, "tenant", m->line);
        const char *s = scalar_of(L, v, line, label, "tenant");
        if (s && !*s) err_at(L, line, "%s: 'tenant' must not be empty", label);
        else if (s) cc->tenant = dup_or_err(L, s, line);
    } else if (c->hub.tenant) {
        cc->tenant = dup_or_err(L, c->hub.tenant, m->line);
    }

    /* hub-level options of sink instances */
    sink_int(L, m, cc, label, "max_in_flight", 100000, &cc->max_in_flight);
    sink_int(L, m, cc, label, "batch_max", 10000, &cc->batch_max);
    if (cc->batch_max > 1 && cc->desc && !cc->desc->deliver_batch)
        err_at(L, key_line(m, "batch_max", m->line),
               "%s: connector type '%s' delivers one event at a time; 'batch_max' must be 1", label, cc->type);

    /* package: the vendor package the instance speaks to */
    v = yt_get(m, "package");
    if (v && !is_null(v)) {
        int line = key_line(m, "package", m->line);
        const char *s = scalar_of(L, v, line, label, "package");
        if (s && !valid_name(s))
            err_at(L, line, "%s: package name '%.100s' is invalid: use lower-case letters, digits, '_' and '-'", label, s);
        else if (s) cc->package = dup_or_err(L, s, line);
    }

    /* order: none | subject (sinks) */
    v = yt_get(m, "order");
    if (v && !is_null(v)) {
        int line = key_line(m, "order", m->line);
        const char *s = scalar_of(L, v, line, label, "order");
        if (cc->mode == RELAIS_MODE_SOURCE)
            err_at(L, line, "option 'order' applies only to sink instances");
        else if (s && strcmp(s, "subject") == 0)
            cc->order_subject = 1;
        else if (s && strcmp(s, "none") != 0)
            err_at(L, line, "%s: 'order' must be none or subject (got '%.60s')", label, s);
    }

    /* mapping: a file relative to the configuration's folder */
    v = yt_get(m, "mapping");
    if (v && !is_null(v)) {
        int line = key_line(m, "mapping", m->line);
        const char *s = scalar_of(L, v, line, label, "mapping");
        if (s && !*s) err_at(L, line, "%s: 'mapping' must not be empty", label);
        else if (s) load_mapping(L, cc, s, line, label);
    }

    /* the descriptor's own options */
    if (cc->desc) {
        cc->opts = calloc(1, cc->desc->config_size ? cc->desc->config_size : 1);
        if (!cc->opts) {
            err_at(L, m->line, "out of memory");
            return;
        }
        if (relais_options_apply(cc->desc->options, cc->opts, cc->mode, m, g_conn_keys,
                                 L->file, L->errs) != 0)
            L->nerr++;
    }
}

static void load_connectors(loader *L, const yt_node *root)
{
    const yt_node *seq = yt_get(root, "connectors");
    if (!seq || is_null(seq)) return;
    if (seq->kind != YT_SEQ) {
        err_at(L, key_line(root, "connectors", 1), "'connectors' must be a list of connectors "
               "(- name: ..., type: ..., mode: ...), not %s", kind_name(seq));
        return;
    }
    L->cfg->connectors = calloc(seq->count ? seq->count : 1, sizeof *L->cfg->connectors);
    if (!L->cfg->connectors) {
        err_at(L, seq->line, "out of memory");
        return;
    }
    for (size_t i = 0; i < seq->count; i++) {
        const yt_node *m = seq->values[i];
        if (m->kind != YT_MAP) {
            err_at(L, m->line, "connector #%zu must be a map (name:, type:, mode:, ...), not %s",
                   i + 1, kind_name(m));
            continue;
        }
        load_connector(L, m, i);
    }
}

/* ---- routes --------------------------------------------------------------- */

/* [a-z0-9_.*-]+ with no empty dot segment. */
static const char *pattern_problem(const char *p)
{
    if (!*p) return "is empty";
    for (const char *s = p; *s; s++)
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || strchr("_.*-", *s)))
            return "may only contain lower-case letters, digits, '_', '-', '.' and '*'";
    if (p[0] == '.' || p[strlen(p) - 1] == '.' || strstr(p, ".."))
        return "has an empty segment (leading, trailing or double '.')";
    return NULL;
}

/* The 'match' member of a route or a retention rule (label names it in
 * errors): at least one event type pattern, each valid. NULL when absent or
 * wrong, after saying why. */
static char **match_of(loader *L, const yt_node *m, const char *label)
{
    const yt_node *v = yt_get(m, "match");
    if (!v || is_null(v)) {
        err_at(L, m->line, "%s has no 'match' (event type patterns)", label);
        return NULL;
    }
    int line = key_line(m, "match", m->line);
    char what[200];
    snprintf(what, sizeof what, "%s: 'match'", label);
    char **match = list_of(L, v, line, what);
    if (match && !match[0]) err_at(L, line, "%s: 'match' must name at least one pattern", label);
    for (char **p = match; p && *p; p++) {
        const char *why = pattern_problem(*p);
        if (why) err_at(L, line, "%s: match pattern '%.100s' %s", label, *p, why);
    }
    return match;
}

static const char *path_problem(const char *p)
{
    if (!*p) return "is empty";
    if (p[0] == '.' || p[strlen(p) - 1] == '.' || strstr(p, ".."))
        return "has an empty segment (leading, trailing or double '.')";
    return NULL;
}

static const relais_conn_cfg *find_connector(const relais_config *c, const char *name)
{
    for (size_t i = 0; i < c->n_connectors; i++)
        if (c->connectors[i].name && strcmp(c->connectors[i].name, name) == 0)
            return &c->connectors[i];
    return NULL;
}

static void load_where(loader *L, const yt_node *m, relais_where *w, const char *label)
{
    check_keys(L, m, g_where_keys, "a 'where' condition");
    const yt_node *v = yt_get(m, "field");
    if (!v || is_null(v)) {
        err_at(L, m->line, "%s: a 'where' condition needs 'field'", label);
    } else {
        int line = key_line(m, "field", m->line);
        const char *s = scalar_of(L, v, line, label, "field");
        const char *why = s ? path_problem(s) : NULL;
        if (why) err_at(L, line, "%s: field '%.100s' %s", label, s, why);
        else if (s) w->field = dup_or_err(L, s, line);
    }

    static const char *const ops[] = { "equals", "not_equals", "in", "exists" };
    static const relais_where_op codes[] = { WHERE_EQUALS, WHERE_NOT_EQUALS, WHERE_IN, WHERE_EXISTS };
    const char *given = NULL;
    int n_ops = 0;
    for (size_t k = 0; k < 4; k++) {
        v = yt_get(m, ops[k]);
        if (!v) continue;
        int line = key_line(m, ops[k], m->line);
        if (++n_ops > 1) {
            err_at(L, line, "%s: a 'where' condition takes exactly one of equals, not_equals, in, "
                   "exists (got both '%s' and '%s')", label, given, ops[k]);
            continue;
        }
        given = ops[k];
        w->op = codes[k];
        char what[200];
        snprintf(what, sizeof what, "%s: '%s'", label, ops[k]);
        if (codes[k] == WHERE_EQUALS || codes[k] == WHERE_NOT_EQUALS) {
            const char *s = scalar_of(L, v, line, label, ops[k]);
            if (!s) continue;
            w->values = calloc(2, sizeof *w->values);
            if (w->values) w->values[0] = strdup(s);
            if (!w->values || !w->values[0]) err_at(L, line, "out of memory");
        } else if (codes[k] == WHERE_IN) {
            if (v->kind != YT_SEQ) {
                err_at(L, line, "%s: 'in' must be a list of values ([a, b]), not %s", label,
                       kind_name(v));
                continue;
            }
            if (v->count == 0) {
                err_at(L, line, "%s: 'in' must list at least one value", label);
                continue;
            }
            w->values = list_of(L, v, line, what);
        } else {
            const char *s = scalar_of(L, v, line, label, ops[k]);
            if (s && relais_parse_bool(s, &w->exists) != 0)
                err_at(L, line, "%s: 'exists' must be true or false (got '%.60s')", label, s);
        }
    }
    if (n_ops == 0)
        err_at(L, m->line, "%s: a 'where' condition needs one of equals, not_equals, in, exists",
               label);
}

static void load_route(loader *L, const yt_node *m, size_t idx)
{
    relais_config *c = L->cfg;
    relais_route_cfg *r = &c->routes[c->n_routes++];
    r->line = m->line;
    char label[160];
    check_keys(L, m, g_route_keys, "a route");

    const yt_node *v = yt_get(m, "name");
    if (!v || is_null(v)) {
        err_at(L, m->line, "route #%zu has no 'name'", idx + 1);
    } else {
        int line = key_line(m, "name", m->line);
        snprintf(label, sizeof label, "route #%zu", idx + 1);
        const char *s = scalar_of(L, v, line, label, "name");
        if (s && !valid_name(s)) {
            err_at(L, line, "route name '%.100s' is invalid: use lower-case letters, digits, '_' and '-'", s);
        } else if (s) {
            for (size_t i = 0; i + 1 < c->n_routes; i++) {
                if (c->routes[i].name && strcmp(c->routes[i].name, s) == 0) {
                    err_at(L, line, "duplicate route name '%s' (first used at line %d)", s,
                           c->routes[i].line);
                    s = NULL;
                    break;
                }
            }
            if (s) r->name = dup_or_err(L, s, line);
        }
    }
    if (r->name)
        snprintf(label, sizeof label, "route '%s'", r->name);
    else
        snprintf(label, sizeof label, "route #%zu", idx + 1);

    r->match = match_of(L, m, label);

    v = yt_get(m, "tenant");
    if (v && !is_null(v)) {
        int line = key_line(m, "tenant", m->line);
        const char *s = scalar_of(L, v, line, label, "tenant");
        if (s && !*s) err_at(L, line, "%s: 'tenant' must not be empty", label);
        else if (s) r->tenant = dup_or_err(L, s, line);
    }

    v = yt_get(m, "where");
    if (v && !is_null(v)) {
        int line = key_line(m, "where", m->line);
        if (v->kind != YT_SEQ) {
            err_at(L, line, "%s: 'where' must be a list of conditions (- field: ...), not %s",
                   label, kind_name(v));
        } else if (v->count) {
            r->where = calloc(v->count, sizeof *r->where);
            if (!r->where) {
                err_at(L, line, "out of memory");
            } else {
                for (size_t i = 0; i < v->count; i++) {
                    const yt_node *cond = v->values[i];
                    if (cond->kind != YT_MAP) {
                        err_at(L, cond->line, "%s: each 'where' condition must be a map "
                               "(field: ..., equals: ...), not %s", label, kind_name(cond));
                        continue;
                    }
                    load_where(L, cond, &r->where[r->n_where++], label);
                }
            }
        }
    }

    v = yt_get(m, "to");
    if (!v || is_null(v)) {
        err_at(L, m->line, "%s has no 'to' (sink connector names)", label);
    } else {
        int line = key_line(m, "to", m->line);
        char what[200];
        snprintf(what, sizeof what, "%s: 'to'", label);
        r->to = list_of(L, v, line, what);
        if (r->to && !r->to[0])
            err_at(L, line, "%s: 'to' must name at least one sink connector", label);
        for (char **p = r->to; p && *p; p++) {
            const relais_conn_cfg *cc = find_connector(c, *p);
            if (!cc)
                err_at(L, line, "%s: 'to' names '%.100s', which is not a configured connector",
                       label, *p);
            else if (cc->mode == RELAIS_MODE_SOURCE)
                err_at(L, line, "%s: 'to' names '%s', which is a source; routes deliver to sink "
                       "connectors only", label, *p);
        }
    }
}

static void load_routes(loader *L, const yt_node *root)
{
    const yt_node *seq = yt_get(root, "routes");
    if (!seq || is_null(seq)) return;
    if (seq->kind != YT_SEQ) {
        err_at(L, key_line(root, "routes", 1), "'routes' must be a list of routes "
               "(- name: ..., match: ..., to: ...), not %s", kind_name(seq));
        return;
    }
    L->cfg->routes = calloc(seq->count ? seq->count : 1, sizeof *L->cfg->routes);
    if (!L->cfg->routes) {
        err_at(L, seq->line, "out of memory");
        return;
    }
    for (size_t i = 0; i < seq->count; i++) {
        const yt_node *m = seq->values[i];
        if (m->kind != YT_MAP) {
            err_at(L, m->line, "route #%zu must be a map (name:, match:, to:), not %s", i + 1,
                   kind_name(m));
            continue;
        }
        load_route(L, m, i);
    }
}

/* ---- retention: how long payloads are kept (hub/retention.h) --------------- */

/* The default payload retention: CNIL délibération 2021-122 keeps logs
 * six months to a year; payloads are the personal data the log should hold
 * least (docs/SECURITY.md, Retention), hence the lower bound. */
#define RETENTION_DEFAULT_SECS (180L * 86400)

/* "180d", "26w", "1y" (365 days), "12h", "30m" (minutes), "10s", or
 * "never" (-1). 0, or -1 when invalid (or above 100 years). */
static int parse_retention(const char *s, long *secs)
{
    if (strcmp(s, "never") == 0) {
        *secs = -1;
        return 0;
    }
    static const struct { const char *unit; long secs; } units[] = {
        { "s", 1 }, { "m", 60 }, { "h", 3600 }, { "d", 86400 }, { "w", 7 * 86400L }, { "y", 365 * 86400L } };
    if (!isdigit((unsigned char)s[0])) return -1;
    char *end = NULL;
    long n = strtol(s, &end, 10);
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(end, units[i].unit) == 0 && n >= 1 && n <= 100 * 365 * 86400L / units[i].secs) {
            *secs = n * units[i].secs;
            return 0;
        }
    return -1;
}

static int retention_value(loader *L, const yt_node *m, int line, const char *label, long *secs)
{
    const char *s = scalar_of(L, m, line, label, "payloads");
    if (!s) return -1;
    if (parse_retention(s, secs) != 0) {
        err_at(L, line, "%s: 'payloads' must be a duration with its unit, s, m (minutes), h, d, w or y "
               "(180d, 26w, 1y; at most 100 years), or 'never' (got '%.60s')", label, s);
        return -1;
    }
    return 0;
}

/* `retention`: the default payload retention and rules per event type
 * (first match wins). Runs after the routes (same pattern checks). */
static void load_retention(loader *L, const yt_node *root)
{
    relais_config *c = L->cfg;
    c->retention.secs = RETENTION_DEFAULT_SECS;
    const yt_node *sec = yt_get(root, "retention");
    int sec_line = key_line(root, "retention", root->line);
    if (!sec || is_null(sec)) return;
    if (sec->kind != YT_MAP) {
        err_at(L, sec_line, "section 'retention' must be a map (payloads: 180d, rules: [...]), not %s", kind_name(sec));
        return;
    }
    static const char *const known[] = { "payloads", "rules", NULL };
    static const char *const rule_keys[] = { "match", "payloads", NULL };
    check_keys(L, sec, known, "section 'retention'");
    const yt_node *v = yt_get(sec, "payloads");
    if (v) retention_value(L, v, key_line(sec, "payloads", sec_line), "retention", &c->retention.secs);
    v = yt_get(sec, "rules");
    if (!v || is_null(v)) return;
    int line = key_line(sec, "rules", sec_line);
    if (v->kind != YT_SEQ) {
        err_at(L, line, "'retention.rules' must be a list of rules (- match: ..., payloads: ...), not %s", kind_name(v));
        return;
    }
    c->retention.rules = calloc(v->count ? v->count : 1, sizeof *c->retention.rules);
    if (!c->retention.rules) {
        err_at(L, line, "out of memory");
        return;
    }
    for (size_t i = 0; i < v->count; i++) {
        const yt_node *m = v->values[i];
        char label[64];
        snprintf(label, sizeof label, "retention rule #%zu", i + 1);
        if (m->kind != YT_MAP) {
            err_at(L, m->line, "%s must be a map (match: ..., payloads: ...), not %s", label, kind_name(m));
            continue;
        }
        relais_retention_rule *r = &c->retention.rules[c->retention.n_rules++];
        r->line = m->line;
        check_keys(L, m, rule_keys, "a retention rule");
        r->match = match_of(L, m, label);
        const yt_node *x = yt_get(m, "payloads");
        if (!x || is_null(x))
            err_at(L, m->line, "%s has no 'payloads' (how long: 180d, 1y, never)", label);
        else
            retention_value(L, x, key_line(m, "payloads", m->line), label, &r->secs);
    }
}

/* ---- outgoing: the allow-list of outgoing calls (hub/httputil.h) ---------- */

/* The connector map of cc in the YAML tree (matched by line), or NULL. */
static const yt_node *outgoing_conn_node(const yt_node *root, const relais_conn_cfg *cc)
{
    const yt_node *seq = yt_get(root, "connectors");
    for (size_t i = 0; seq && seq->kind == YT_SEQ && i < seq->count; i++)
        if (seq->values[i]->kind == YT_MAP && seq->values[i]->line == cc->line) return seq->values[i];
    return NULL;
}

/* The scheme of an outgoing URL option: only what the hub's connectors
 * speak (http, https; smtp, smtps for email). Each connector then checks the
 * ones it takes; libcurl is limited to them too (relais_http_policy_apply). */
static int outgoing_scheme_ok(const char *url, char *scheme, size_t len)
{
    size_t n = strcspn(url, ":");
    snprintf(scheme, len, "%.*s", (int)(n < 32 ? n : 32), url);
    if (strncmp(url + n, "://", 3) != 0) return 0;
    static const char *const ok[] = { "http", "https", "smtp", "smtps", NULL };
    for (size_t i = 0; ok[i]; i++)
        if (strcasecmp(scheme, ok[i]) == 0) return 1;
    return 0;
}

/* `outgoing.allow`, compiled (NULL when the key is absent). Errors go to L. */
static void load_outgoing_allow(loader *L, const yt_node *root)
{
    relais_config *c = L->cfg;
    const yt_node *sec = yt_get(root, "outgoing");
    int sec_line = key_line(root, "outgoing", root->line);
    if (!sec || is_null(sec)) return;
    if (sec->kind != YT_MAP) {
        err_at(L, sec_line, "section 'outgoing' must be a map (allow: [...]), not %s", kind_name(sec));
        return;
    }
    static const char *const known[] = { "allow", NULL };
    check_keys(L, sec, known, "section 'outgoing'");
    const yt_node *v = yt_get(sec, "allow");
    if (!v) return;
    int line = key_line(sec, "allow", sec_line);
    c->outgoing.set = 1;
    c->outgoing.line = line;
    c->outgoing.allow = relais_http_allow_new();
    if (!c->outgoing.allow) {
        err_at(L, line, "out of memory");
        return;
    }
    if (v->kind != YT_SEQ) {
        err_at(L, line, "'outgoing.allow' must be a list of host names and address ranges "
               "(- publik.mairie.example, - 10.0.0.0/8), not %s%s", is_null(v) ? "an empty value" : kind_name(v),
               is_null(v) ? " (write [] to allow no outgoing call at all, or remove the key to allow any)" : "");
        c->outgoing.bad = 1;
        return;
    }
    for (size_t i = 0; i < v->count; i++) {
        const yt_node *it = v->values[i];
        char err[512];
        if (it->kind != YT_SCALAR) {
            err_at(L, it->line, "'outgoing.allow': items must be plain values, not %s", kind_name(it));
            c->outgoing.bad = 1;
        } else if (relais_http_allow_add(c->outgoing.allow, it->scalar, err, sizeof err) != 0) {
            err_at(L, it->line, "'outgoing.allow' item %zu: %s", i + 1, err);
            c->outgoing.bad = 1;
        }
    }
    if (!c->outgoing.bad && relais_http_allow_names(c->outgoing.allow) > 0
        && relais_http_allow_ranges(c->outgoing.allow) == 0) {
        err_at(L, line, "'outgoing.allow' lists host names but no address range: every connection would be "
               "refused, since the address a name resolves to must be in a listed range (add e.g. 10.0.0.0/8)");
        c->outgoing.bad = 1;
    }
}

/* Every outgoing URL option (RELAIS_OPT_URL) of every connector: its scheme
 * must be one the hub speaks and, when `outgoing.allow` is set, its host
 * must be allowed. Runs after the connectors are loaded. */
static void load_outgoing(loader *L, const yt_node *root)
{
    relais_config *c = L->cfg;
    load_outgoing_allow(L, root);
    for (size_t i = 0; i < c->n_connectors; i++) {
        const relais_conn_cfg *cc = &c->connectors[i];
        if (!cc->desc || !cc->opts || !cc->name) continue;
        const yt_node *m = outgoing_conn_node(root, cc);
        for (const relais_option *o = cc->desc->options; o && o->name; o++) {
            if (o->type != RELAIS_OPT_URL || (o->modes && !(o->modes & cc->mode))) continue;
            const char *url = *(char *const *)(const void *)((const char *)cc->opts + o->offset);
            if (!url || !*url) continue;
            char host[256], err[512], scheme[40];
            int oline = key_line(m, o->name, cc->line);
            if (!outgoing_scheme_ok(url, scheme, sizeof scheme))
                err_at(L, oline, "connector '%s': option '%s': '%.200s' is not an http, https, smtp or smtps "
                       "URL (scheme '%s'): the hub makes no other outgoing calls", cc->name, o->name, url, scheme);
            else if (!c->outgoing.allow || c->outgoing.bad)
                continue;
            else if (relais_http_url_host(url, host, sizeof host, err, sizeof err) != 0)
                err_at(L, oline, "connector '%s': option '%s': %s", cc->name, o->name, err);
            else if (!relais_http_allow_host(c->outgoing.allow, host))
                err_at(L, oline, "connector '%s': option '%s': host '%s' is not in outgoing.allow "
                       "(line %d): add the name, or the address's range", cc->name, o->name, host,
                       c->outgoing.line);
        }
    }
}

/* ---- entry points --------------------------------------------------------- */

/* Line number of a message this loader produced ("FILE:LINE: ..."), 0 when
 * it has none. */
static long msg_line(const char *msg, const char *file)
{
    size_t n = strlen(file);
    if (strncmp(msg, file, n) != 0 || msg[n] != ':') return 0;
    char *end;
    long line = strtol(msg + n + 1, &end, 10);
    return *end == ':' ? line : 0;
}

typedef struct line_ref { long line; size_t idx; char *msg; } line_ref;

static int line_ref_cmp(const void *a, const void *b)
{
    const line_ref *x = a, *y = b;
    if (x->line != y->line) return x->line < y->line ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Sort errs->msgs[from..] by line, keeping the order of equal lines:
 * diagnostics come out in file order even though routes are checked after
 * connectors and sections after the top-level keys. */
static void sort_by_line(relais_errlist *errs, size_t from, const char *file)
{
    size_t n = errs->count - from;
    if (n < 2) return;
    line_ref *refs = malloc(n * sizeof *refs);
    if (!refs) return;   /* unsorted is still correct */
    for (size_t i = 0; i < n; i++) {
        refs[i].msg = errs->msgs[from + i];
        refs[i].line = msg_line(refs[i].msg, file);
        refs[i].idx = i;
    }
    qsort(refs, n, sizeof *refs, line_ref_cmp);
    for (size_t i = 0; i < n; i++) errs->msgs[from + i] = refs[i].msg;
    free(refs);
}

/* The canonical schemas: every event type's JSON Schema, compiled once. */
static void load_schemas(loader *L, const yt_node *root)
{
    relais_config *c = L->cfg;
    const char *dir = c->schemas.dir ? c->schemas.dir : RELAIS_DEFAULT_SCHEMA_DIR;
    int line = key_line(yt_get(root, "schemas"), "dir", key_line(root, "schemas", 0));
    char err[1024] = "";
    c->schema_set = relais_schema_set_new();
    if (!c->schema_set) { err_at(L, line, "out of memory"); return; }
    if (relais_schema_set_load_dir(c->schema_set, dir, err, sizeof err) != 0 ||
        relais_schema_set_compile(c->schema_set, err, sizeof err) != 0)
        err_at(L, line, "canonical schemas in '%s': %s", dir, err);
}

static relais_config *load_tree(const char *file, const yt_node *root, relais_errlist *errs)
{
    loader L = { file, errs, 0, NULL };
    L.cfg = calloc(1, sizeof *L.cfg);
    if (!L.cfg) {
        relais_errlist_add(errs, file, 0, "out of memory");
        return NULL;
    }
    L.cfg->path = dup_or_err(&L, file, 0);
    if (root->kind != YT_MAP) {
        err_at(&L, root->line, "the configuration must be a map of sections (hub, bus, journal, "
               "delivery, connectors, routes), not %s", kind_name(root));
    } else {
        char list[256];
        join_list(g_top_keys, list, sizeof list);
        for (size_t i = 0; i < root->count; i++)
            if (!in_list(g_top_keys, root->keys[i]))
                err_at(&L, root->key_lines[i], "unknown top-level key '%.100s'; known keys: %s",
                       root->keys[i], list);
        for (size_t i = 0; i < N_SECTIONS; i++) {
            for (const relais_option *o = g_sections[i].opts; o->name; o++)
                if (o->type == RELAIS_OPT_INT || o->type == RELAIS_OPT_DURATION)
                    *(long *)(void *)((char *)L.cfg + o->offset) = UNPARSED;
            load_section(&L, root, &g_sections[i]);
        }
        check_sections(&L, root);
        load_schemas(&L, root);
        load_connectors(&L, root);
        load_outgoing(&L, root);
        load_routes(&L, root);
        load_retention(&L, root);
    }
    if (L.nerr) {
        relais_config_destroy(L.cfg);
        return NULL;
    }
    return L.cfg;
}

static relais_config *finish(const char *file, yt_node *root, const char *yerr, relais_errlist *errs)
{
    size_t before = errs->count;
    relais_config *c = NULL;
    if (!root) {
        relais_errlist_add(errs, NULL, 0, "%s", yerr[0] ? yerr : "cannot load the configuration");
    } else {
        c = load_tree(file, root, errs);
        yt_free(root);
    }
    sort_by_line(errs, before, file);
    return c;
}

relais_config *relais_config_load(const char *path, relais_errlist *errs)
{
    char yerr[1024];
    const char *file = path ? path : "<null>";
    yt_node *root = yt_load_file(file, yerr, sizeof yerr);
    return finish(file, root, yerr, errs);
}

relais_config *relais_config_load_buffer(const char *name, const char *buf, size_t len,
                                         relais_errlist *errs)
{
    char yerr[1024];
    const char *file = name ? name : "<buffer>";
    yt_node *root = yt_load_buffer(file, buf, len, yerr, sizeof yerr);
    return finish(file, root, yerr, errs);
}

void relais_config_destroy(relais_config *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n_connectors; i++) {
        relais_conn_cfg *cc = &c->connectors[i];
        if (cc->desc && cc->opts) relais_options_free(cc->desc->options, cc->opts);
        free(cc->opts);
        free(cc->name);
        free(cc->type);
        free(cc->tenant);
        free(cc->mapping_path);
        free(cc->package);
        relais_mapping_destroy(cc->mapping);
    }
    free(c->connectors);
    relais_schema_set_destroy(c->schema_set);
    for (size_t i = 0; i < c->n_routes; i++) {
        relais_route_cfg *r = &c->routes[i];
        free(r->name);
        strlist_free(r->match);
        free(r->tenant);
        for (size_t k = 0; k < r->n_where; k++) {
            free(r->where[k].field);
            strlist_free(r->where[k].values);
        }
        free(r->where);
        strlist_free(r->to);
    }
    free(c->routes);
    relais_http_allow_destroy(c->outgoing.allow);
    for (size_t i = 0; i < c->retention.n_rules; i++) strlist_free(c->retention.rules[i].match);
    free(c->retention.rules);
    relais_tokens_destroy(c->hub.tokens);
    if (c->journal.conninfo) explicit_bzero(c->journal.conninfo, strlen(c->journal.conninfo));
    for (size_t i = 0; i < N_SECTIONS; i++)
        relais_options_free(g_sections[i].opts, c);
    free(c->path);
    free(c);
}
