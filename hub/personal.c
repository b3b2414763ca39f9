/*
 * personal.c - personal data in traces (see personal.h): the schemas'
 * "x-personal" keyword, masking along a type's schema, and the payloads of
 * a trace's events read from the journal.
 *
 * The schemas are the hub's own trusted files (schemas.dir), read raw with
 * jansson: masking needs the keywords the validator ignores. $ref is
 * resolved against the $id of the document holding it (relative references
 * such as "../common.json#/$defs/address" and JSON pointer fragments).
 *
 * Threads: none; a loaded relais_personal is only read.
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <libpq-fe.h>
#include "jsonptr.h"
#include "personal.h"

#define MAX_DEPTH 64        /* $ref / combinator hops while gathering one value's schemas */
#define MAX_FILES 10000

struct relais_personal {
    json_t *docs;     /* base URI -> schema document */
    json_t *types;    /* event type -> base URI of its schema */
};

/* ---- loading ----------------------------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int load_file(relais_personal *p, const char *path, const char *type, char *errstr, size_t errlen)
{
    json_error_t je;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        snprintf(errstr, errlen, "%s:%d: %s", path, je.line, je.text);
        return -1;
    }
    char uri[PATH_MAX + 16];
    const char *id = json_string_value(json_object_get(doc, "$id"));
    if (id) {
        snprintf(uri, sizeof uri, "%s", id);
    } else {
        char real[PATH_MAX];
        snprintf(uri, sizeof uri, "file://%s", realpath(path, real) ? real : path);
    }
    if (json_object_set_new(p->docs, uri, doc) != 0 ||
        (type && json_object_set_new(p->types, type, json_string(uri)) != 0)) {
        snprintf(errstr, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* Every *.json under dir; `top`: dir is the schema folder itself (its
 * examples/ is skipped), `events`: dir is its events/ folder. */
static int load_dir(relais_personal *p, const char *dir, int top, int events, int depth, size_t *nfiles,
                    char *errstr, size_t errlen)
{
    if (depth > 16) return 0;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(errstr, errlen, "%s: cannot open the folder", dir);
        return -1;
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char path[PATH_MAX];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= sizeof path) continue;
        struct stat st;
        if (stat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            if (top && strcmp(de->d_name, "examples") == 0) continue;
            rc = load_dir(p, path, 0, top && strcmp(de->d_name, "events") == 0, depth + 1, nfiles, errstr, errlen);
        } else if (S_ISREG(st.st_mode) && ends_with(de->d_name, ".json")) {
            if (++*nfiles > MAX_FILES) {
                snprintf(errstr, errlen, "%s: more than %d schema files", dir, MAX_FILES);
                rc = -1;
                break;
            }
            char type[256] = "";
            if (events) snprintf(type, sizeof type, "%.*s", (int)(strlen(de->d_name) - 5), de->d_name);
            rc = load_file(p, path, events ? type : NULL, errstr, errlen);
        }
    }
    closedir(d);
    return rc;
}

relais_personal *relais_personal_load(const char *dir, char *errstr, size_t errlen)
{
    relais_personal *p = calloc(1, sizeof *p);
    if (!p || !(p->docs = json_object()) || !(p->types = json_object())) {
        snprintf(errstr, errlen, "out of memory");
        relais_personal_destroy(p);
        return NULL;
    }
    size_t n = 0;
    if (load_dir(p, dir, 1, 0, 0, &n, errstr, errlen) != 0) {
        relais_personal_destroy(p);
        return NULL;
    }
    return p;
}

void relais_personal_destroy(relais_personal *p)
{
    if (!p) return;
    json_decref(p->docs);
    json_decref(p->types);
    free(p);
}

/* ---- schemas of a value ------------------------------------------------------------------ */

/* One schema object that applies to a value, and the base URI its $ref
 * are resolved against (a key of p->docs, borrowed). */
typedef struct cand {
    const json_t *s;
    const char   *base;
} cand;

typedef struct cands {
    cand  *v;
    size_t n, cap;
    int    oom;
} cands;

static void push(cands *c, const json_t *s, const char *base)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        cand *v = realloc(c->v, cap * sizeof *v);
        if (!v) { c->oom = 1; return; }
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = (cand){ s, base };
}

/* The document URI a reference names, from the base URI: "" (the base
 * itself), an absolute URI, or a path relative to the base's folder. */
static void ref_uri(const char *base, const char *ref, size_t reflen, char *out, size_t outlen)
{
    if (reflen == 0) {
        snprintf(out, outlen, "%s", base);
        return;
    }
    const char *colon = memchr(ref, ':', reflen), *slash = memchr(ref, '/', reflen);
    if (colon && (!slash || colon < slash)) {            /* a scheme: absolute */
        snprintf(out, outlen, "%.*s", (int)reflen, ref);
        return;
    }
    const char *last = strrchr(base, '/');
    size_t dirlen = last ? (size_t)(last - base) + 1 : 0;
    const char *floor = strstr(base, "://");
    size_t floorlen = floor ? (size_t)(floor - base) + 3 : 0;
    while (reflen >= 2 && (strncmp(ref, "./", 2) == 0 || (reflen >= 3 && strncmp(ref, "../", 3) == 0))) {
        if (ref[1] == '.') {                              /* "../": one folder up */
            if (dirlen > floorlen + 1) {
                size_t k = dirlen - 1;
                while (k > floorlen && base[k - 1] != '/') k--;
                dirlen = k;
            }
            ref += 3;
            reflen -= 3;
        } else {
            ref += 2;
            reflen -= 2;
        }
    }
    snprintf(out, outlen, "%.*s%.*s", (int)dirlen, base, (int)reflen, ref);
}

/* What "$ref" points at: the node and the base URI of its document. */
static const json_t *resolve(const relais_personal *p, const char *base, const char *ref, const char **nbase)
{
    const char *hash = strchr(ref, '#');
    size_t ulen = hash ? (size_t)(hash - ref) : strlen(ref);
    char uri[PATH_MAX + 64];
    ref_uri(base, ref, ulen, uri, sizeof uri);
    void *it = json_object_iter_at(p->docs, uri);
    if (!it) return NULL;
    *nbase = json_object_iter_key(it);
    json_t *doc = json_object_iter_value(it);
    if (!hash || !hash[1]) return doc;
    if (hash[1] != '/') return NULL;                      /* anchors are not used by the schemas */
    return relais_json_pointer(doc, hash + 1);
}

/* Every schema object that applies to a value described by s: s itself,
 * what its $ref names, and the branches of its combinators. */
static void gather(const relais_personal *p, const json_t *s, const char *base, cands *out, int depth)
{
    if (!json_is_object(s) || depth > MAX_DEPTH || out->oom) return;
    push(out, s, base);
    const char *ref = json_string_value(json_object_get(s, "$ref"));
    if (ref) {
        const char *nbase = base;
        const json_t *t = resolve(p, base, ref, &nbase);
        if (t) gather(p, t, nbase, out, depth + 1);
    }
    static const char *const arrays[] = { "allOf", "anyOf", "oneOf" };
    for (size_t k = 0; k < 3; k++) {
        size_t i;
        json_t *b;
        json_array_foreach(json_object_get(s, arrays[k]), i, b) gather(p, b, base, out, depth + 1);
    }
    gather(p, json_object_get(s, "then"), base, out, depth + 1);
    gather(p, json_object_get(s, "else"), base, out, depth + 1);
}

static int personal(const cands *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (json_is_true(json_object_get(c->v[i].s, "x-personal"))) return 1;
    return 0;
}

/* The schemas of member `key` of an object described by c. */
static void member(const relais_personal *p, const cands *c, const char *key, cands *out)
{
    int named = 0;
    for (size_t i = 0; i < c->n; i++) {
        const json_t *sub = json_object_get(json_object_get(c->v[i].s, "properties"), key);
        if (sub) {
            named = 1;
            gather(p, sub, c->v[i].base, out, 0);
        }
    }
    if (named) return;
    for (size_t i = 0; i < c->n; i++) {
        const json_t *ap = json_object_get(c->v[i].s, "additionalProperties");
        if (json_is_object(ap)) gather(p, ap, c->v[i].base, out, 0);
    }
}

static void items(const relais_personal *p, const cands *c, cands *out)
{
    for (size_t i = 0; i < c->n; i++) {
        const json_t *it = json_object_get(c->v[i].s, "items");
        if (json_is_object(it)) gather(p, it, c->v[i].base, out, 0);
    }
}

/* Mask in v (a copy the caller owns) what c says is personal. Returns 1
 * when v itself must be replaced, 0 otherwise, -1 out of memory. */
static int mask(const relais_personal *p, const cands *c, json_t *v, size_t *masked, int depth)
{
    if (c->oom) return -1;
    if (personal(c) || depth > MAX_DEPTH) return 1;
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        void *tmp;
        json_object_foreach_safe(v, tmp, k, m) {
            cands sub = { 0 };
            member(p, c, k, &sub);
            int r = sub.n == 0 ? 1 : mask(p, &sub, m, masked, depth + 1);   /* undescribed: masked */
            if (sub.oom) r = -1;
            free(sub.v);
            if (r < 0) return -1;
            if (r == 1) {
                if (json_object_set_new(v, k, json_string(RELAIS_PERSONAL_MASK)) != 0) return -1;
                (*masked)++;
            }
        }
    } else if (json_is_array(v)) {
        cands sub = { 0 };
        items(p, c, &sub);
        int rc = sub.oom ? -1 : 0;
        for (size_t i = 0; rc == 0 && i < json_array_size(v); i++) {
            int r = sub.n == 0 ? 1 : mask(p, &sub, json_array_get(v, i), masked, depth + 1);
            if (r < 0) rc = -1;
            else if (r == 1 && json_array_set_new(v, i, json_string(RELAIS_PERSONAL_MASK)) != 0) rc = -1;
            else if (r == 1) (*masked)++;
        }
        free(sub.v);
        return rc;
    }
    return 0;
}

json_t *relais_personal_redact(const relais_personal *p, const char *type, const json_t *data, size_t *masked)
{
    size_t n = 0;
    if (masked) *masked = 0;
    const char *uri = p && type ? json_string_value(json_object_get(p->types, type)) : NULL;
    void *it = uri ? json_object_iter_at(p->docs, uri) : NULL;
    if (!it || !data) {                                   /* no schema: nothing can be shown */
        if (masked && data) *masked = 1;
        return json_string(RELAIS_PERSONAL_MASK);
    }
    json_t *copy = json_deep_copy(data);
    if (!copy) return NULL;
    cands c = { 0 };
    gather(p, json_object_iter_value(it), json_object_iter_key(it), &c, 0);
    int r = mask(p, &c, copy, &n, 0);
    free(c.v);
    if (r < 0) {
        json_decref(copy);
        return NULL;
    }
    if (r == 1) {
        json_decref(copy);
        n = 1;
        copy = json_string(RELAIS_PERSONAL_MASK);
    }
    if (masked) *masked = n;
    return copy;
}

/* ---- payloads of a trace ----------------------------------------------------------------- */

#define SCRUB_MIN 4     /* shorter personal values are not looked for in texts ("12", "M.") */

/* Adds to `vals` (an object used as a set) every scalar of orig that the
 * masking replaced in red: the text of strings and numbers, and their
 * JSON-escaped ASCII form when it differs (a sink echoing a JSON body). */
static void add_value(json_t *vals, const char *s)
{
    if (strlen(s) >= SCRUB_MIN && strcmp(s, RELAIS_PERSONAL_MASK) != 0) json_object_set_new(vals, s, json_true());
}

static void collect_leaves(const json_t *v, json_t *vals, int depth)
{
    if (depth > MAX_DEPTH) return;
    if (json_is_string(v)) {
        add_value(vals, json_string_value(v));
        char *esc = json_dumps(v, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
        if (esc && strlen(esc) >= 2) {
            esc[strlen(esc) - 1] = '\0';
            add_value(vals, esc + 1);
        }
        free(esc);
    } else if (json_is_number(v)) {
        char *t = json_dumps(v, JSON_ENCODE_ANY);
        if (t) add_value(vals, t);
        free(t);
    } else if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)v, k, m) collect_leaves(m, vals, depth + 1);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m) collect_leaves(m, vals, depth + 1);
    }
}

static void collect_masked(const json_t *orig, const json_t *red, json_t *vals, int depth)
{
    if (depth > MAX_DEPTH) return;
    if (json_is_string(red) && strcmp(json_string_value(red), RELAIS_PERSONAL_MASK) == 0) {
        collect_leaves(orig, vals, depth);
    } else if (json_is_object(orig) && json_is_object(red)) {
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)orig, k, m) collect_masked(m, json_object_get(red, k), vals, depth + 1);
    } else if (json_is_array(orig) && json_is_array(red)) {
        for (size_t i = 0; i < json_array_size(orig) && i < json_array_size(red); i++)
            collect_masked(json_array_get(orig, i), json_array_get(red, i), vals, depth + 1);
    }
}

static int longer_first(const void *a, const void *b)
{
    size_t la = strlen(*(const char *const *)a), lb = strlen(*(const char *const *)b);
    return la < lb ? 1 : la > lb ? -1 : 0;
}

/* Replaces in member `key` of each element of `arr` every value of `sorted`
 * by the mask; returns the number of replacements. */
static size_t scrub_texts(json_t *arr, const char *key, const char **sorted, size_t n)
{
    size_t count = 0, i;
    json_t *o;
    json_array_foreach(arr, i, o) {
        const char *t = json_string_value(json_object_get(o, key));
        if (!t) continue;
        char *cur = strdup(t);
        for (size_t k = 0; cur && k < n; k++) {
            size_t vl = strlen(sorted[k]), ml = strlen(RELAIS_PERSONAL_MASK);
            char *hit;
            while (cur && (hit = strstr(cur, sorted[k])) != NULL) {
                size_t head = (size_t)(hit - cur), tail = strlen(hit + vl);
                char *next = malloc(head + ml + tail + 1);
                if (next) {
                    memcpy(next, cur, head);
                    memcpy(next + head, RELAIS_PERSONAL_MASK, ml);
                    memcpy(next + head + ml, hit + vl, tail + 1);
                    count++;
                }
                free(cur);
                cur = next;
            }
        }
        /* out of memory: the text is withheld rather than shown unscrubbed */
        json_object_set_new(o, key, json_string(cur ? cur : RELAIS_PERSONAL_MASK));
        free(cur);
    }
    return count;
}

/* The personal values masked in an event's data, looked for in its steps'
 * details and its deliveries' last details (a sink that echoes the record
 * in its error would put them there) and masked there too. */
static void scrub_event(json_t *ev, const json_t *data, const json_t *red)
{
    json_t *vals = json_object();
    if (!vals) return;
    collect_masked(data, red, vals, 0);
    size_t n = json_object_size(vals), k = 0;
    const char **sorted = n ? malloc(n * sizeof *sorted) : NULL;
    const char *key;
    json_t *m;
    if (sorted) {
        json_object_foreach(vals, key, m) sorted[k++] = key;
        qsort(sorted, n, sizeof *sorted, longer_first);
        size_t c = scrub_texts(json_object_get(ev, "steps"), "detail", sorted, n)
                 + scrub_texts(json_object_get(ev, "deliveries"), "last_detail", sorted, n);
        if (c) json_object_set_new(ev, "details_redacted", json_integer((json_int_t)c));
    }
    free(sorted);
    json_decref(vals);
}

static void first_line(char *errstr, size_t errlen, const char *what, const char *msg)
{
    snprintf(errstr, errlen, "%s: %s", what, msg && *msg ? msg : "unknown error");
    errstr[strcspn(errstr, "\n")] = '\0';
}

int relais_personal_attach(json_t *answer, const char *conninfo, const relais_personal *p, int show_personal,
                           size_t *shown, char *dbrole, size_t dbrolelen, char *errstr, size_t errlen)
{
    if (shown) *shown = 0;
    if (dbrole && dbrolelen) dbrole[0] = '\0';
    json_t *evs = json_object_get(answer, "events");
    if (json_array_size(evs) == 0) return 0;
    /* {"<uuid>","<uuid>"}: ids come from the journal (uuid text), checked by the ::uuid[] cast */
    json_t *ids = json_array();
    size_t i;
    json_t *ev;
    json_array_foreach(evs, i, ev) {
        const char *id = json_string_value(json_object_get(ev, "id"));
        if (id) json_array_append_new(ids, json_string(id));
    }
    char *idtext = json_dumps(ids, JSON_COMPACT);
    json_decref(ids);
    if (!idtext) {
        snprintf(errstr, errlen, "out of memory");
        return -1;
    }
    int rc = -1;
    PGresult *r = NULL;
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        first_line(errstr, errlen, "journal", PQerrorMessage(c));
        goto out;
    }
    /* a role that may not read payloads gets none, and the reason */
    r = PQexec(c, "SELECT has_column_privilege('events', 'body', 'SELECT'), session_user");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        first_line(errstr, errlen, "journal", PQerrorMessage(c));
        goto out;
    }
    int readable = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    if (dbrole && dbrolelen) snprintf(dbrole, dbrolelen, "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    const char *vals[1] = { idtext };
    r = PQexecParams(c, readable
        ? "SELECT id::text, relais_rfc3339(purged_at), (body->'data')::text FROM events"
          " WHERE id IN (SELECT json_array_elements_text($1::json)::uuid)"
        : "SELECT id::text, relais_rfc3339(purged_at), NULL FROM events"
          " WHERE id IN (SELECT json_array_elements_text($1::json)::uuid)",
        1, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        first_line(errstr, errlen, "journal", PQerrorMessage(c));
        goto out;
    }
    json_array_foreach(evs, i, ev) {
        const char *id = json_string_value(json_object_get(ev, "id"));
        int row = -1;
        for (int k = 0; id && k < PQntuples(r) && row < 0; k++)
            if (strcmp(PQgetvalue(r, k, 0), id) == 0) row = k;
        if (row < 0) continue;
        if (!PQgetisnull(r, row, 1)) {
            json_object_set_new(ev, "purged_at", json_string(PQgetvalue(r, row, 1)));
            continue;
        }
        if (!readable) {
            json_object_set_new(ev, "data_withheld", json_string("this database role may not read payloads"));
            continue;
        }
        if (PQgetisnull(r, row, 2)) continue;             /* a CloudEvent without data */
        json_error_t je;
        json_t *data = json_loads(PQgetvalue(r, row, 2), JSON_DECODE_ANY, &je);
        if (!data) {
            snprintf(errstr, errlen, "journal: event %s: bad JSON from PostgreSQL: %s", id, je.text);
            goto out;
        }
        if (show_personal) {
            json_object_set_new(ev, "data", data);
            if (shown) (*shown)++;
            continue;
        }
        json_t *red = relais_personal_redact(p, json_string_value(json_object_get(ev, "type")), data, NULL);
        if (red) scrub_event(ev, data, red);
        json_decref(data);
        if (!red) {
            snprintf(errstr, errlen, "out of memory");
            goto out;
        }
        json_object_set_new(ev, "data", red);
        json_object_set_new(ev, "data_redacted", json_true());
    }
    rc = 0;
out:
    PQclear(r);
    PQfinish(c);
    free(idtext);
    return rc;
}
