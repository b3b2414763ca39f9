/*
 * open311_catalog.c - the GeoReport v2 service list and service definitions
 * of a server instance, read from the `tables:` section of its mapping file
 * (the same code tables that map service_code to the GRC's category), so
 * that the list stays declarative and in one place. Tables (all optional
 * except `services`; keys are vendor codes, values texts):
 *
 *   services                        service_code -> service_name
 *   service_groups                  service_code -> group
 *   service_descriptions            service_code -> description
 *   service_keywords                service_code -> keywords ("a, b, c")
 *   service_types                   service_code -> realtime|batch|blackbox (default realtime)
 *   service_notices                 service_code -> service_notice of a POST answer
 *   service_attributes              "CODE/ATTR" -> the attribute's description (question);
 *                                   their order in the file is the attributes' order
 *   attribute_datatypes             "CODE/ATTR" -> string|number|datetime|text|
 *                                   singlevaluelist|multivaluelist (default string)
 *   attribute_required              "CODE/ATTR" -> true|false (default false)
 *   attribute_variable              "CODE/ATTR" -> true|false (default true)
 *   attribute_datatype_descriptions "CODE/ATTR" -> datatype_description
 *   attribute_values                "CODE/ATTR/KEY" -> name (list datatypes)
 *
 * Loaded once at init (main thread); read-only afterwards, shared by the
 * server's connection threads.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "open311_int.h"
#include "yamltree.h"

typedef struct cload {
    const char *file;
    char       *errstr;
    size_t      errlen;
    int         failed;
} cload;

static void cerr(cload *L, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cerr(cload *L, int line, const char *fmt, ...)
{
    if (L->failed) return;              /* the first error is reported */
    L->failed = 1;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(L->errstr, L->errlen, "%s:%d: %s", L->file, line, msg);
}

/* The `values:` map of table `name`, or NULL when the table is absent. */
static const yt_node *table_values(cload *L, const yt_node *tables, const char *name)
{
    const yt_node *t = yt_get(tables, name);
    if (!t) return NULL;
    const yt_node *v = yt_get(t, "values");
    if (!v || v->kind != YT_MAP) {
        cerr(L, t->line, "table '%s': 'values' (a map of code -> text) is required", name);
        return NULL;
    }
    for (size_t i = 0; i < v->count; i++)
        if (v->values[i]->kind != YT_SCALAR) {
            cerr(L, v->values[i]->line, "table '%s': the value of '%s' must be a text", name, v->keys[i]);
            return NULL;
        }
    return v;
}

static const char *lookup(const yt_node *vals, const char *key)
{
    const yt_node *n = vals ? yt_get(vals, key) : NULL;
    return n && n->kind == YT_SCALAR ? n->scalar : NULL;
}

/* Every key of table `name` must be a service code (per_service) or a
 * "CODE/ATTR" of service_attributes (per_attr). */
static void check_keys(cload *L, const yt_node *vals, const char *name, const yt_node *services,
                       const yt_node *attrs, int parts)
{
    if (!vals) return;
    for (size_t i = 0; i < vals->count; i++) {
        const char *k = vals->keys[i];
        if (parts == 1 && !yt_get(services, k))
            cerr(L, vals->key_lines[i], "table '%s': '%s' is not a service_code of table 'services'", name, k);
        if (parts == 2 && !(attrs && yt_get(attrs, k)))
            cerr(L, vals->key_lines[i], "table '%s': '%s' is not a CODE/ATTR of table 'service_attributes'", name, k);
        if (parts == 3) {
            const char *slash = strrchr(k, '/');
            char ca[256];
            snprintf(ca, sizeof ca, "%.*s", slash ? (int)(slash - k) : 0, k);
            if (!slash || !slash[1] || !attrs || !yt_get(attrs, ca))
                cerr(L, vals->key_lines[i], "table '%s': '%s' is not CODE/ATTR/KEY of an attribute of table "
                     "'service_attributes'", name, k);
        }
    }
}

static int bool_text(const char *s, int def, int *out)
{
    if (!s) { *out = def; return 0; }
    if (!strcmp(s, "true") || !strcmp(s, "yes")) { *out = 1; return 0; }
    if (!strcmp(s, "false") || !strcmp(s, "no")) { *out = 0; return 0; }
    return -1;
}

static json_t *text_or_null(const char *s) { return s ? json_string(s) : json_null(); }

static int build(cload *L, const yt_node *root, o311_catalog *c)
{
    const yt_node *tables = root && root->kind == YT_MAP ? yt_get(root, "tables") : NULL;
    if (!tables || tables->kind != YT_MAP) {
        cerr(L, root ? root->line : 1, "a GeoReport server needs the service list in the mapping's "
             "tables: (table 'services': service_code -> service_name)");
        return -1;
    }
    const yt_node *services = table_values(L, tables, "services");
    if (!services && !L->failed)
        cerr(L, tables->line, "tables: a table 'services' (service_code -> service_name) is required");
    if (L->failed) return -1;
    const yt_node *groups = table_values(L, tables, "service_groups");
    const yt_node *descs = table_values(L, tables, "service_descriptions");
    const yt_node *kws = table_values(L, tables, "service_keywords");
    const yt_node *types = table_values(L, tables, "service_types");
    const yt_node *notices = table_values(L, tables, "service_notices");
    const yt_node *attrs = table_values(L, tables, "service_attributes");
    const yt_node *dts = table_values(L, tables, "attribute_datatypes");
    const yt_node *reqs = table_values(L, tables, "attribute_required");
    const yt_node *vars = table_values(L, tables, "attribute_variable");
    const yt_node *dtds = table_values(L, tables, "attribute_datatype_descriptions");
    const yt_node *avals = table_values(L, tables, "attribute_values");
    if (L->failed) return -1;
    for (size_t i = 0; i < services->count; i++) {
        const char *code = services->keys[i];
        if (!*code || strchr(code, '/') || strlen(code) > 64)
            cerr(L, services->key_lines[i], "table 'services': service_code '%s' must be 1 to 64 characters "
                 "without '/'", code);
    }
    check_keys(L, groups, "service_groups", services, attrs, 1);
    check_keys(L, descs, "service_descriptions", services, attrs, 1);
    check_keys(L, kws, "service_keywords", services, attrs, 1);
    check_keys(L, types, "service_types", services, attrs, 1);
    check_keys(L, notices, "service_notices", services, attrs, 1);
    check_keys(L, dts, "attribute_datatypes", services, attrs, 2);
    check_keys(L, reqs, "attribute_required", services, attrs, 2);
    check_keys(L, vars, "attribute_variable", services, attrs, 2);
    check_keys(L, dtds, "attribute_datatype_descriptions", services, attrs, 2);
    check_keys(L, avals, "attribute_values", services, attrs, 3);
    for (size_t i = 0; attrs && i < attrs->count; i++) {
        const char *k = attrs->keys[i];
        const char *slash = strchr(k, '/');
        char code[128];
        snprintf(code, sizeof code, "%.*s", slash ? (int)(slash - k) : 0, k);
        if (!slash || !slash[1] || strchr(slash + 1, '/') || !yt_get(services, code))
            cerr(L, attrs->key_lines[i], "table 'service_attributes': '%s' must be CODE/ATTR with CODE a "
                 "service_code of table 'services'", k);
    }
    if (L->failed) return -1;

    c->services = json_array();
    c->definitions = json_object();
    c->names = json_object();
    c->notices = json_object();
    if (!c->services || !c->definitions || !c->names || !c->notices) {
        cerr(L, 1, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < services->count; i++) {
        const char *code = services->keys[i];
        const char *type = lookup(types, code);
        if (type && strcmp(type, "realtime") && strcmp(type, "batch") && strcmp(type, "blackbox")) {
            cerr(L, yt_get(types, code)->line, "table 'service_types': '%s' is not realtime, batch or blackbox", type);
            return -1;
        }
        json_t *def_attrs = json_array();
        size_t codelen = strlen(code);
        int order = 0;
        for (size_t a = 0; attrs && a < attrs->count; a++) {
            const char *k = attrs->keys[a];
            if (strncmp(k, code, codelen) || k[codelen] != '/') continue;
            const char *acode = k + codelen + 1;
            const char *dt = lookup(dts, k);
            static const char *const dtypes[] = { "string", "number", "datetime", "text", "singlevaluelist",
                                                  "multivaluelist", NULL };
            int dt_ok = !dt;
            for (size_t d = 0; dt && dtypes[d]; d++) dt_ok |= !strcmp(dt, dtypes[d]);
            if (!dt_ok) {
                cerr(L, yt_get(dts, k)->line, "table 'attribute_datatypes': '%s' is not one of string, number, "
                     "datetime, text, singlevaluelist, multivaluelist", dt);
                json_decref(def_attrs);
                return -1;
            }
            int required, variable;
            if (bool_text(lookup(reqs, k), 0, &required) != 0 || bool_text(lookup(vars, k), 1, &variable) != 0) {
                cerr(L, attrs->key_lines[a], "attribute '%s': attribute_required and attribute_variable take "
                     "true or false", k);
                json_decref(def_attrs);
                return -1;
            }
            json_t *at = json_pack("{s:b,s:s,s:s,s:b,s:o,s:i,s:s}", "variable", variable, "code", acode,
                                   "datatype", dt ? dt : "string", "required", required,
                                   "datatype_description", text_or_null(lookup(dtds, k)), "order", ++order,
                                   "description", attrs->values[a]->scalar);
            int is_list = dt && (!strcmp(dt, "singlevaluelist") || !strcmp(dt, "multivaluelist"));
            json_t *values = json_array();
            size_t klen = strlen(k);
            for (size_t v = 0; avals && v < avals->count; v++) {
                const char *vk = avals->keys[v];
                if (strncmp(vk, k, klen) || vk[klen] != '/') continue;
                json_array_append_new(values, json_pack("{s:s,s:s}", "key", vk + klen + 1,
                                                        "name", avals->values[v]->scalar));
            }
            if (is_list && json_array_size(values) == 0) {
                cerr(L, attrs->key_lines[a], "attribute '%s' is a %s: give its values in table 'attribute_values' "
                     "(\"%s/KEY\": name)", k, dt, k);
                json_decref(values);
                json_decref(at);
                json_decref(def_attrs);
                return -1;
            }
            if (!is_list && json_array_size(values) > 0) {
                cerr(L, attrs->key_lines[a], "attribute '%s' has values in table 'attribute_values' but its "
                     "datatype is %s, not a list", k, dt ? dt : "string");
                json_decref(values);
                json_decref(at);
                json_decref(def_attrs);
                return -1;
            }
            if (is_list) json_object_set_new(at, "values", values);
            else json_decref(values);
            json_array_append_new(def_attrs, at);
        }
        int metadata = json_array_size(def_attrs) > 0;
        json_t *svc = json_pack("{s:s,s:s,s:o,s:b,s:s,s:o,s:o}", "service_code", code,
                                "service_name", services->values[i]->scalar,
                                "description", text_or_null(lookup(descs, code)), "metadata", metadata,
                                "type", type ? type : "realtime", "keywords", text_or_null(lookup(kws, code)),
                                "group", text_or_null(lookup(groups, code)));
        json_array_append_new(c->services, svc);
        json_object_set_new(c->definitions, code, json_pack("{s:s,s:o}", "service_code", code,
                                                            "attributes", def_attrs));
        json_object_set_new(c->names, code, json_string(services->values[i]->scalar));
        const char *notice = lookup(notices, code);
        if (notice) json_object_set_new(c->notices, code, json_string(notice));
    }
    return 0;
}

static void changeset_of(time_t t, char *buf, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M", &tm);
}

int o311_catalog_load_buffer(const char *name, const char *buf, size_t len, o311_catalog *out,
                             char *errstr, size_t errlen)
{
    memset(out, 0, sizeof *out);
    yt_node *root = yt_load_buffer(name, buf, len, errstr, errlen);
    if (!root) return -1;
    cload L = { .file = name, .errstr = errstr, .errlen = errlen };
    int rc = build(&L, root, out);
    yt_free(root);
    if (rc != 0) {
        o311_catalog_clear(out);
        return -1;
    }
    changeset_of(time(NULL), out->changeset, sizeof out->changeset);
    return 0;
}

int o311_catalog_load(const char *path, o311_catalog *out, char *errstr, size_t errlen)
{
    memset(out, 0, sizeof *out);
    yt_node *root = yt_load_file(path, errstr, errlen);
    if (!root) return -1;
    cload L = { .file = path, .errstr = errstr, .errlen = errlen };
    int rc = build(&L, root, out);
    yt_free(root);
    if (rc != 0) {
        o311_catalog_clear(out);
        return -1;
    }
    struct stat st;
    changeset_of(stat(path, &st) == 0 ? st.st_mtime : time(NULL), out->changeset, sizeof out->changeset);
    return 0;
}

void o311_catalog_clear(o311_catalog *c)
{
    if (!c) return;
    json_decref(c->services);
    json_decref(c->definitions);
    json_decref(c->names);
    json_decref(c->notices);
    c->services = c->definitions = c->names = c->notices = NULL;
}
