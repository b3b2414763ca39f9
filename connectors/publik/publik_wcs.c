/*
 * publik_wcs.c - what the publik connector reads from w.c.s., without I/O:
 * the {err, data} envelope of its replies (SPEC section 2), local ids
 * "<slug>/<id>", and form exports (a read, a full=on list item or the body
 * of a webservice call) turned into change records: the creation and each
 * later status change or comment, with record ids that do not depend on
 * how the form was seen (polling or webhook), and echoes (changes written
 * by Relais's own API access) marked.
 *
 * Pure functions over jansson values; any thread. Outside JSON is parsed
 * with hub/safeparse.c; texts for the journal are made valid UTF-8 with
 * relais_http_excerpt (hub/httputil.c). Fuzzed by
 * tests/fuzz/fuzz_publik_form.c.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "publik_int.h"
#include "safeparse.h"
#include "httputil.h"   /* relais_http_excerpt */

/* ---- Envelope ----------------------------------------------------------------- */

void relais_publik_env_free(relais_publik_env *env)
{
    if (!env) return;
    json_decref(env->root);
    env->root = NULL;
    env->data = NULL;
    env->err_desc = env->err_class = env->err_code = NULL;
}

static const char *str_member(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

relais_publik_env_kind relais_publik_env_parse(const char *body, size_t len, relais_publik_env *env)
{
    memset(env, 0, sizeof *env);
    char perr[512];
    relais_parse_limits lim = { .max_bytes = 64u * 1024 * 1024, .max_depth = 64 };
    env->root = relais_json_parse(body ? body : "", body ? len : 0, "reply", &lim, perr, sizeof perr);
    if (!env->root) {
        snprintf(env->error, sizeof env->error, "%.255s", perr);
        return env->kind = RELAIS_PUBLIK_ENV_MALFORMED;
    }
    json_t *err = json_object_get(env->root, "err");
    if (!json_is_object(env->root) || !err) return env->kind = RELAIS_PUBLIK_ENV_BARE;
    if (json_is_integer(err) && json_integer_value(err) >= 0) {
        env->err = (long)json_integer_value(err);
    } else if (json_is_boolean(err)) {
        env->err = json_is_true(err) ? 1 : 0;
    } else {
        snprintf(env->error, sizeof env->error, "\"err\" is neither an integer >= 0 nor a boolean");
        json_decref(env->root);
        env->root = NULL;
        return env->kind = RELAIS_PUBLIK_ENV_MALFORMED;
    }
    env->err_desc = str_member(env->root, "err_desc");
    env->err_class = str_member(env->root, "err_class");
    env->err_code = str_member(env->root, "err_code");
    env->data = json_object_get(env->root, "data");
    return env->kind = env->err == 0 ? RELAIS_PUBLIK_ENV_OK : RELAIS_PUBLIK_ENV_ERR;
}

/* At most max bytes of s as one line of valid UTF-8 (the journal keeps
 * details as text): relais_http_excerpt (hub/httputil.h). */
static void one_line(char *dst, size_t dstlen, const char *s, size_t len, size_t max)
{
    relais_http_excerpt(dst, dstlen, s, len, max, 1);
}

void relais_publik_env_describe(const relais_publik_env *env, long http_status, const char *body,
                                size_t len, char *buf, size_t buflen)
{
    char excerpt[201], codebuf[81];
    const char *code = env && env->root ? (env->err_code ? env->err_code : env->err_class) : NULL;
    const char *desc = env && env->root ? env->err_desc : NULL;
    if (code) {
        one_line(codebuf, sizeof codebuf, code, strlen(code), 80);
        code = codebuf;
    }
    if (desc) {
        one_line(excerpt, sizeof excerpt, desc, strlen(desc), 200);
        snprintf(buf, buflen, "HTTP %ld %s%s%s", http_status, code ? code : "err", ": ", excerpt);
    } else if (code) {
        snprintf(buf, buflen, "HTTP %ld %s (err %ld)", http_status, code, env->err);
    } else {
        one_line(excerpt, sizeof excerpt, body ? body : "", body ? len : 0, 200);
        snprintf(buf, buflen, "HTTP %ld%s%s", http_status, excerpt[0] ? ": " : "", excerpt);
    }
}

json_t *relais_publik_error_body(const char *err_class, const char *err_code, const char *desc)
{
    return json_pack("{s:i,s:s,s:s,s:o}", "err", 1, "err_class", err_class, "err_code", err_code,
                     "err_desc", desc ? json_string(desc) : json_null());
}

/* ---- Identifiers ----------------------------------------------------------------- */

static int chars_ok(const char *s, size_t max, int upper)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'
              || (upper && c >= 'A' && c <= 'Z')))
            return -1;
    }
    return 0;
}

int relais_publik_slug_ok(const char *s) { return chars_ok(s, RELAIS_PUBLIK_MAX_SLUG, 0); }
int relais_publik_id_ok(const char *s) { return chars_ok(s, RELAIS_PUBLIK_MAX_ID, 1); }

int relais_publik_local_split(const char *local, char *slug, size_t slen, char *id, size_t idlen)
{
    const char *slash = local ? strchr(local, '/') : NULL;
    if (!slash || (size_t)(slash - local) >= slen) return -1;
    memcpy(slug, local, (size_t)(slash - local));
    slug[slash - local] = '\0';
    if (strlen(slash + 1) >= idlen) return -1;
    snprintf(id, idlen, "%s", slash + 1);
    return relais_publik_slug_ok(slug) == 0 && relais_publik_id_ok(id) == 0 ? 0 : -1;
}

/* The path segment starting at p (up to '/', '?' or the end) into out. */
static int segment(const char *p, char *out, size_t outlen)
{
    size_t n = strcspn(p, "/?#");
    if (n == 0 || n >= outlen) return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

int relais_publik_form_slug(const json_t *form, char *slug, size_t slen)
{
    const char *api = str_member(form, "api_url");
    const char *at = api ? strstr(api, "/api/forms/") : NULL;
    if (at && segment(at + strlen("/api/forms/"), slug, slen) == 0 && relais_publik_slug_ok(slug) == 0)
        return 0;
    /* url: ".../<slug>/<id>/" */
    const char *url = str_member(form, "url");
    if (url) {
        size_t n = strlen(url);
        while (n > 0 && url[n - 1] == '/') n--;
        size_t idstart = n;
        while (idstart > 0 && url[idstart - 1] != '/') idstart--;
        if (idstart > 1) {
            size_t send = idstart - 1, sstart = send;
            while (sstart > 0 && url[sstart - 1] != '/') sstart--;
            if (send > sstart && send - sstart < slen) {
                memcpy(slug, url + sstart, send - sstart);
                slug[send - sstart] = '\0';
                if (relais_publik_slug_ok(slug) == 0) return 0;
            }
        }
    }
    if (slen) slug[0] = '\0';
    return -1;
}

int relais_publik_form_id(const json_t *form, char *id, size_t idlen)
{
    const json_t *v = json_object_get(form, "id");
    int n;
    if (json_is_string(v)) n = snprintf(id, idlen, "%s", json_string_value(v));
    else if (json_is_integer(v) && json_integer_value(v) >= 0)
        n = snprintf(id, idlen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else n = -1;
    if (n < 0 || (size_t)n >= idlen || relais_publik_id_ok(id) != 0) {
        if (idlen) id[0] = '\0';
        return -1;
    }
    return 0;
}

/* ---- Form exports -> change records -------------------------------------------- */

static json_t *strip_value(const json_t *v)
{
    if (json_is_object(v)) {
        json_t *o = json_object();
        int file = json_object_get(v, "filename") && json_object_get(v, "content");
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) {
            if (file && strcmp(k, "content") == 0) continue;
            json_object_set_new(o, k, strip_value(x));
        }
        return o;
    }
    if (json_is_array(v)) {
        json_t *a = json_array();
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) json_array_append_new(a, strip_value(x));
        return a;
    }
    return json_deep_copy(v);
}

json_t *relais_publik_strip_files(const json_t *form)
{
    return strip_value(form);
}

void relais_publik_changes_free(relais_publik_changes *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) json_decref(c->c[i].record);
    free(c->c);
    c->c = NULL;
    c->n = 0;
}

/* The author of an evolution entry: who.name, else who_id. */
static const char *who_of(const json_t *e)
{
    const json_t *who = json_object_get(e, "who");
    const char *name = json_is_object(who) ? str_member(who, "name") : NULL;
    return name ? name : str_member(e, "who_id");
}

static int is_self(const json_t *e, const char *self_user)
{
    if (!self_user || !*self_user) return 0;
    const json_t *who = json_object_get(e, "who");
    const char *name = json_is_object(who) ? str_member(who, "name") : NULL;
    const char *wid = str_member(e, "who_id");
    return (name && strcmp(name, self_user) == 0) || (wid && strcmp(wid, self_user) == 0);
}

int relais_publik_form_changes(const json_t *form, const char *slug, const char *self_user,
                               relais_publik_changes *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(form)) {
        snprintf(err, errlen, "the form export is not a JSON object");
        return -1;
    }
    if (relais_publik_form_id(form, out->id, sizeof out->id) != 0) {
        snprintf(err, errlen, "the form export has no usable \"id\" (1 to %d of [A-Za-z0-9_-])",
                 RELAIS_PUBLIK_MAX_ID);
        return -1;
    }
    if (slug) {
        if (relais_publik_slug_ok(slug) != 0) {
            snprintf(err, errlen, "formdef slug '%.100s' is not valid", slug);
            return -1;
        }
        snprintf(out->slug, sizeof out->slug, "%s", slug);
    } else if (relais_publik_form_slug(form, out->slug, sizeof out->slug) != 0) {
        snprintf(err, errlen, "the form export gives its form type neither in \"api_url\" "
                 "(.../api/forms/<slug>/<id>/) nor in \"url\"");
        return -1;
    }
    const json_t *evo = json_object_get(form, "evolution");
    if (evo && !json_is_array(evo)) {
        snprintf(err, errlen, "\"evolution\" of form %s/%s is not a list", out->slug, out->id);
        return -1;
    }
    size_t n = json_array_size(evo);
    if (n == 0) return 0;
    out->c = calloc(n, sizeof *out->c);
    json_t *stripped = relais_publik_strip_files(form);
    if (!out->c || !stripped) {
        json_decref(stripped);
        relais_publik_changes_free(out);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const json_t *wf_status = json_object_get(json_object_get(json_object_get(form, "workflow"), "status"), "id");
    const char *prev = NULL;    /* status in effect before entry i */
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(evo, i);
        if (!json_is_object(e)) {
            snprintf(err, errlen, "evolution[%zu] of form %s/%s is not an object", i, out->slug, out->id);
            json_decref(stripped);
            relais_publik_changes_free(out);
            return -1;
        }
        const char *st = str_member(e, "status");
        const char *comment = str_member(e, "comment");
        const char *cur = st ? st : prev;
        if (i == 0 && !cur) cur = json_string_value(wf_status);
        int created = i == 0;
        int wanted = created ? cur != NULL : (cur != NULL && (st || (comment && *comment)));
        if (wanted) {
            relais_publik_change *c = &out->c[out->n];
            if (created)
                snprintf(c->record_id, sizeof c->record_id, "%s/%s/created", out->slug, out->id);
            else
                snprintf(c->record_id, sizeof c->record_id, "%s/%s/%zu", out->slug, out->id, i);
            c->created = created;
            c->echo = is_self(e, self_user);
            json_t *r = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:O}", "change", created ? "created" : "updated",
                                  "record_id", c->record_id, "formdef", out->slug, "form_id", out->id,
                                  "index", (json_int_t)i, "status", cur, "form", stripped);
            if (!r) {
                json_decref(stripped);
                relais_publik_changes_free(out);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            if (!created && prev) json_object_set_new(r, "previous_status", json_string(prev));
            const char *t = str_member(e, "time");
            if (!t) t = str_member(form, "last_update_time");
            if (t) json_object_set_new(r, "time", json_string(t));
            if (comment && *comment) json_object_set_new(r, "comment", json_string(comment));
            const char *who = who_of(e);
            if (who) json_object_set_new(r, "who", json_string(who));
            c->record = r;
            out->n++;
        }
        if (cur) prev = cur;
    }
    json_decref(stripped);
    return 0;
}
