/*
 * test_worksite_openapi.h - test-only helpers shared by the worksite tests
 * (tests/unit/test_worksite_api.c, tests/runtime/test_worksite_*.c): the
 * OpenAPI file connectors/worksite/api/worksite-openapi.yaml read as JSON,
 * its schemas compiled with the hub's validator (from
 * api/worksite.schema.json, which the unit test proves equal to the YAML's
 * components), and wo_check_answer(): an answer of the tool must have a
 * status code the OpenAPI documents for that operation, and a JSON body
 * valid against the schema it documents for that status.
 *
 * Header-only (static functions): each test executable includes it once.
 * No threads; no state beyond what the caller holds.
 */
#ifndef TEST_WORKSITE_OPENAPI_H
#define TEST_WORKSITE_OPENAPI_H
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "testsupport.h"
#include "yamltree.h"
#include "jsonschema.h"

#define WO_UNUSED __attribute__((unused))
#define WO_SCHEMA_ID "https://relais.example/connectors/worksite/api/worksite.schema.json"

WO_UNUSED static int wo_is_int(const char *s)
{
    const char *p = s;
    if (*p == '-' || *p == '+') p++;
    if (!*p) return 0;
    for (; *p; p++)
        if (*p < '0' || *p > '9') return 0;
    return 1;
}

WO_UNUSED static int wo_is_float(const char *s)
{
    char *end;
    if (!*s || wo_is_int(s)) return 0;
    errno = 0;
    strtod(s, &end);
    return errno == 0 && *end == '\0' && strpbrk(s, "0123456789") != NULL && !strpbrk(s, "xXnN");
}

/* YAML as PyYAML's safe_load reads these files: unquoted null/~, booleans,
 * integers and decimals become JSON values; every other scalar a string. */
WO_UNUSED static json_t *wo_yaml_json(const yt_node *n)
{
    if (n->kind == YT_SCALAR) {
        const char *s = n->scalar;
        if (!n->quoted) {
            if (!*s || !strcmp(s, "~") || !strcmp(s, "null")) return json_null();
            if (!strcmp(s, "true")) return json_true();
            if (!strcmp(s, "false")) return json_false();
            if (wo_is_int(s)) return json_integer((json_int_t)strtoll(s, NULL, 10));
            if (wo_is_float(s)) return json_real(strtod(s, NULL));
        }
        return json_string(s);
    }
    json_t *out = n->kind == YT_MAP ? json_object() : json_array();
    for (size_t i = 0; i < n->count; i++) {
        json_t *v = wo_yaml_json(n->values[i]);
        assert_non_null(v);
        if (n->kind == YT_MAP) json_object_set_new(out, n->keys[i], v);
        else json_array_append_new(out, v);
    }
    return out;
}

/* The OpenAPI document as JSON (new reference). */
WO_UNUSED static json_t *wo_openapi(void)
{
    char err[512];
    yt_node *y = yt_load_file(ts_source_path("connectors/worksite/api/worksite-openapi.yaml"), err, sizeof err);
    if (!y) fail_msg("%s", err);
    json_t *j = wo_yaml_json(y);
    yt_free(y);
    return j;
}

/* api/worksite.schema.json compiled (destroy with relais_schema_set_destroy). */
WO_UNUSED static relais_schema_set *wo_schemas(void)
{
    char err[512];
    json_error_t je;
    const char *path = ts_source_path("connectors/worksite/api/worksite.schema.json");
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!doc) fail_msg("%s:%d: %s", path, je.line, je.text);
    relais_schema_set *set = relais_schema_set_new();
    if (relais_schema_set_add(set, doc, NULL, "worksite.schema.json", err, sizeof err) != 0
        || relais_schema_set_compile(set, err, sizeof err) != 0)
        fail_msg("worksite.schema.json: %s", err);
    json_decref(doc);
    return set;
}

/* The compiled schema of components/schemas/<name>. */
WO_UNUSED static const relais_schema *wo_schema(const relais_schema_set *set, const char *name)
{
    char uri[256];
    snprintf(uri, sizeof uri, WO_SCHEMA_ID "#/$defs/%s", name);
    const relais_schema *sc = relais_schema_set_get(set, uri);
    if (!sc) fail_msg("no schema %s", uri);
    return sc;
}

/* 1 when instance is valid against components/schemas/<name>; else 0 and
 * the first fault in why (may be NULL). */
WO_UNUSED static int wo_valid(const relais_schema_set *set, const char *name, const json_t *instance, char *why,
                    size_t whylen)
{
    relais_schema_fault f[4];
    size_t nf = 0;
    int ok = relais_schema_validate(wo_schema(set, name), instance, "$", f, 4, &nf);
    if (!ok && why) snprintf(why, whylen, "%s: %s", nf ? f[0].path : "$", nf ? f[0].message : "invalid");
    return ok;
}

/* Follow a "$ref": "#/components/..." of the OpenAPI document. */
WO_UNUSED static json_t *wo_deref(json_t *api, json_t *v)
{
    const char *ref = json_string_value(json_object_get(v, "$ref"));
    if (!ref) return v;
    if (strncmp(ref, "#/", 2) != 0) fail_msg("unexpected $ref %s", ref);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", ref + 2);
    json_t *cur = api;
    for (char *save = NULL, *tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save))
        cur = json_object_get(cur, tok);
    if (!cur) fail_msg("dangling $ref %s", ref);
    return cur;
}

/* The answer (status, JSON body) of `method` on the OpenAPI path template
 * (e.g. "/api/v1/interventions/{id}") must be documented: its status (or
 * `default`) listed for the operation, and the body valid against that
 * response's application/json schema. Fails the test otherwise. Returns the
 * schema name it was checked against. */
WO_UNUSED static const char *wo_check_answer(json_t *api, const relais_schema_set *set, const char *tmpl,
                                   const char *method, long status, const char *body)
{
    json_t *op = json_object_get(json_object_get(json_object_get(api, "paths"), tmpl), method);
    if (!op) fail_msg("OpenAPI has no %s %s", method, tmpl);
    char code[8];
    snprintf(code, sizeof code, "%ld", status);
    json_t *resps = json_object_get(op, "responses");
    json_t *resp = json_object_get(resps, code);
    if (!resp && status >= 500) resp = json_object_get(resps, "default");
    if (!resp) fail_msg("%s %s: status %ld is not documented", method, tmpl, status);
    resp = wo_deref(api, resp);
    json_t *schema = json_object_get(json_object_get(json_object_get(resp, "content"), "application/json"),
                                     "schema");
    const char *ref = json_string_value(json_object_get(schema, "$ref"));
    if (!ref || strncmp(ref, "#/components/schemas/", 21) != 0)
        fail_msg("%s %s %ld: no schema reference", method, tmpl, status);
    const char *name = ref + 21;
    json_error_t je;
    json_t *j = json_loads(body ? body : "", 0, &je);
    if (!j) fail_msg("%s %s %ld: body is not JSON: %s", method, tmpl, status, je.text);
    char why[600];
    if (!wo_valid(set, name, j, why, sizeof why))
        fail_msg("%s %s %ld: body not valid against %s: %s\n%s", method, tmpl, status, name, why, body);
    json_decref(j);
    return name;
}
#endif
