/*
 * jsonschema.c - JSON Schema (draft 2020-12) validator over jansson values.
 *
 * relais_schema_set_compile() turns every document of a set into a tree of
 * struct relais_schema nodes, one per (sub)schema: keyword values are checked
 * and stored in typed fields, "properties" are sorted for binary search,
 * regular expressions are compiled with PCRE2, every
 * $ref is resolved to the node it names, and $ref cycles that would never
 * consume any of the instance are refused. Validation then only reads that
 * tree: no URI or JSON pointer resolution, no regex compilation, no lock.
 *
 * PCRE2's JIT is not used: event strings are short, the interpreter matches
 * them in well under a microsecond, and JIT code makes valgrind report
 * false errors (tests run under valgrind).
 *
 * Threads: compile runs on one thread before any validation; afterwards the
 * set and its nodes are read-only and shared by every validating thread.
 * Each relais_schema_validate() call owns its context, its PCRE2 match data
 * and the path segments on its stack.
 *
 * URI resolution (RFC 3986, section 5.2) is done here rather than with
 * libxml2's xmlBuildURI(), which re-escapes and normalises the result
 * ("urn:uuid:x" becomes "urn:uuid%3Ax"): identifiers must compare exactly
 * as written.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "jsonschema.h"
#include "jsonptr.h"
#include <arpa/inet.h>
#include <dirent.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <openssl/crypto.h> /* OPENSSL_hexchar2int */
#include <pcre2.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define META_2020_12 "https://json-schema.org/draft/2020-12/schema"
#define MAX_DEPTH 1000          /* nested evaluations of one validation */
#define MATCH_LIMIT 1000000     /* PCRE2 backtracking bound per match */

enum { T_NULL = 1, T_BOOLEAN = 2, T_OBJECT = 4, T_ARRAY = 8, T_NUMBER = 16, T_STRING = 32,
       T_INTEGER = 64 };
enum { F_NONE, F_DATE, F_DATE_TIME, F_TIME, F_EMAIL, F_UUID, F_URI };

typedef struct num {
    int present;
    int is_int;
    json_int_t i;
    double d;
} num;

typedef struct named {
    const char *name;
    relais_schema *sc;
} named;

typedef struct patprop {
    const char *src;
    pcre2_code *re;
    relais_schema *sc;
} patprop;

typedef struct depreq {
    const char *name;
    const char **req;
    size_t n;
} depreq;

typedef struct sclist {
    relais_schema **v;
    size_t n;
} sclist;

struct relais_schema {
    const relais_schema_set *set;
    const char *doc;            /* document name, for messages */
    char *loc;                  /* "#/json/pointer" of this schema in its document */
    const char *base;           /* base URI for $ref */
    const json_t *json;
    int boolean;                /* 1 true, 0 false, -1 an object schema */
    unsigned types;             /* T_* mask, 0 = any */
    const json_t *enum_vals, *const_val;
    const char *ref_str;
    relais_schema *ref;
    named *props;               /* sorted by name */
    size_t nprops;
    patprop *pprops;
    size_t npprops;
    relais_schema *additional, *property_names;
    json_int_t min_props, max_props;            /* -1: absent */
    const char **required;
    size_t nrequired;
    depreq *dep_req;
    size_t ndep_req;
    named *dep_sch;
    size_t ndep_sch;
    relais_schema **prefix;
    size_t nprefix;
    relais_schema *items, *contains;
    json_int_t min_contains, max_contains, min_items, max_items, min_len, max_len;
    int unique;
    pcre2_code *pattern;
    const char *pattern_src;
    int format;
    num minimum, maximum, xmin, xmax, multiple;
    sclist all_of, any_of, one_of;
    relais_schema *not_, *if_, *then_, *else_;
    int mark;                   /* compile-time cycle detection */
};

typedef struct sdoc {
    json_t *json;
    char *uri;                  /* retrieval URI or NULL */
    char *base;                 /* $id resolved, else uri */
    char *name;
    char *type;                 /* event type (load_dir, events/) or NULL */
    relais_schema *root;
} sdoc;

typedef struct resource {       /* a URI (schema resource or anchor) and its schema */
    char *uri;
    const json_t *json;
    relais_schema *node;
} resource;

typedef struct ptrent {
    const json_t *j;
    relais_schema *n;
} ptrent;

typedef struct typeent {
    const char *type;
    relais_schema *n;
} typeent;

struct relais_schema_set {
    sdoc *docs;
    size_t ndocs, capdocs;
    relais_schema **nodes;
    size_t nnodes, capnodes;
    resource *res;
    size_t nres, capres;
    resource *anchors;
    size_t nanchors, capanchors;
    ptrent *ptrs;
    size_t nptrs, capptrs;
    typeent *types;
    size_t ntypes;
    const char **type_names;
    pcre2_code *uri_re;
    pcre2_match_context *mctx;
    int compiled;
};

/* ------------------------------------------------------------------ utils */

/* Room for one more element: returns the (possibly moved) array or NULL. */
static void *grow(void *v, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap) return v;
    size_t nc = *cap ? *cap * 2 : 8;
    void *p = realloc(v, nc * sz);
    if (!p) return NULL;
    *cap = nc;
    return p;
}

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static char *concat3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *p = malloc(la + lb + lc + 1);
    if (!p) return NULL;
    memcpy(p, a, la);
    memcpy(p + la, b, lb);
    memcpy(p + la + lb, c, lc);
    p[la + lb + lc] = '\0';
    return p;
}

/* ------------------------------------------------------- RFC 3986 URIs */

typedef struct uriparts {
    const char *scheme; size_t lscheme;
    const char *auth; size_t lauth; int has_auth;
    const char *path; size_t lpath;
    const char *query; size_t lquery; int has_query;
} uriparts;

/* Splits a URI reference without fragment (RFC 3986 appendix B). */
static void uri_split(const char *s, uriparts *u)
{
    memset(u, 0, sizeof *u);
    const char *p = s;
    const char *colon = p + strcspn(p, ":/?#");
    if (*colon == ':' && colon > p) {
        u->scheme = p;
        u->lscheme = (size_t)(colon - p);
        p = colon + 1;
    }
    if (p[0] == '/' && p[1] == '/') {
        p += 2;
        u->auth = p;
        u->lauth = strcspn(p, "/?#");
        u->has_auth = 1;
        p += u->lauth;
    }
    u->path = p;
    u->lpath = strcspn(p, "?#");
    p += u->lpath;
    if (*p == '?') {
        u->has_query = 1;
        u->query = p + 1;
        u->lquery = strcspn(p + 1, "#");
    }
}

/* RFC 3986 5.2.4 remove_dot_segments, in place on a NUL-terminated path. */
static void remove_dots(char *in)
{
    char *out = in;             /* output grows behind the input cursor */
    char *r = in;
    size_t o = 0;
    while (*r) {
        if (strncmp(r, "../", 3) == 0) r += 3;
        else if (strncmp(r, "./", 2) == 0) r += 2;
        else if (strncmp(r, "/./", 3) == 0) r += 2;
        else if (strcmp(r, "/.") == 0) { r += 1; *r = '/'; }
        else if (strncmp(r, "/../", 4) == 0 || strcmp(r, "/..") == 0) {
            if (r[3] == '\0') { r += 2; *r = '/'; }
            else r += 3;
            while (o > 0 && out[o - 1] != '/') o--;
            if (o > 0) o--;
        } else if (strcmp(r, ".") == 0 || strcmp(r, "..") == 0) {
            r += strlen(r);
        } else {
            size_t n = 1 + strcspn(r + 1, "/");
            memmove(out + o, r, n);
            o += n;
            r += n;
        }
    }
    out[o] = '\0';
}

/* Resolves reference `ref` (no fragment) against absolute `base` (no
 * fragment; may be NULL: ref is then returned as it is). Returns a new
 * string or NULL when out of memory. */
static char *uri_resolve(const char *base, const char *ref)
{
    uriparts b, r;
    uri_split(ref, &r);
    if (!base || r.scheme) {
        if (!r.scheme) return xstrdup(ref);
        base = ref;             /* absolute: only its dot segments change */
    }
    uri_split(base, &b);
    size_t cap = strlen(base) + strlen(ref) + 8;
    char *path = malloc(cap), *outp = malloc(cap);
    if (!path || !outp) {
        free(path);
        free(outp);
        return NULL;
    }
    const uriparts *auth = &b, *q = &r;
    if (r.scheme) {
        auth = &r;
        snprintf(path, cap, "%.*s", (int)r.lpath, r.path);
        remove_dots(path);
    } else if (r.has_auth) {
        auth = &r;
        snprintf(path, cap, "%.*s", (int)r.lpath, r.path);
        remove_dots(path);
    } else if (r.lpath == 0) {
        snprintf(path, cap, "%.*s", (int)b.lpath, b.path);
        if (!r.has_query) q = &b;
    } else if (r.path[0] == '/') {
        snprintf(path, cap, "%.*s", (int)r.lpath, r.path);
        remove_dots(path);
    } else {
        if (b.has_auth && b.lpath == 0) {
            snprintf(path, cap, "/%.*s", (int)r.lpath, r.path);
        } else {
            size_t keep = b.lpath;
            while (keep > 0 && b.path[keep - 1] != '/') keep--;
            snprintf(path, cap, "%.*s%.*s", (int)keep, b.path, (int)r.lpath, r.path);
        }
        remove_dots(path);
    }
    const uriparts *sch = r.scheme ? &r : &b;
    size_t o = 0;
    o += (size_t)snprintf(outp + o, cap - o, "%.*s:", (int)sch->lscheme, sch->scheme);
    if (auth->has_auth)
        o += (size_t)snprintf(outp + o, cap - o, "//%.*s", (int)auth->lauth, auth->auth);
    o += (size_t)snprintf(outp + o, cap - o, "%s", path);
    if (q->has_query) snprintf(outp + o, cap - o, "?%.*s", (int)q->lquery, q->query);
    free(path);
    return outp;
}

/* Percent-decodes a URI fragment; NULL on a malformed escape or no memory. */
static char *pct_decode(const char *s)
{
    char *out = malloc(strlen(s) + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '%') {
            int h = OPENSSL_hexchar2int((unsigned char)p[1]), l = h < 0 ? -1 : OPENSSL_hexchar2int((unsigned char)p[2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0)) {
                free(out);
                return NULL;
            }
            out[o++] = (char)(h * 16 + l);
            p += 2;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
    return out;
}

/* ------------------------------------------------------------ compiling */

typedef struct cctx {
    relais_schema_set *set;
    const sdoc *doc;
    char *err;
    size_t errlen;
} cctx;

static int cerr(cctx *c, const char *loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cerr(cctx *c, const char *loc, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->err && c->errlen) snprintf(c->err, c->errlen, "%s: %s: %s", c->doc->name, loc, msg);
    return -1;
}

/* loc + "/" + token (RFC 6901 escaped); NULL when out of memory. */
static char *loc_add(const char *loc, const char *tok)
{
    size_t n = strlen(loc), extra = 0, lt = strlen(tok);
    for (const char *p = tok; *p; p++) extra += (*p == '~' || *p == '/');
    char *s = malloc(n + 1 + lt + extra + 1);
    if (!s) return NULL;
    memcpy(s, loc, n);
    s[n++] = '/';
    for (const char *p = tok; *p; p++) {
        if (*p == '~') { s[n++] = '~'; s[n++] = '0'; }
        else if (*p == '/') { s[n++] = '~'; s[n++] = '1'; }
        else s[n++] = *p;
    }
    s[n] = '\0';
    return s;
}

static char *loc_add2(const char *loc, const char *a, const char *b)
{
    char *t = loc_add(loc, a);
    if (!t) return NULL;
    char *s = loc_add(t, b);
    free(t);
    return s;
}

static char *loc_add_idx(const char *loc, const char *a, size_t i)
{
    char idx[32];
    snprintf(idx, sizeof idx, "%zu", i);
    return loc_add2(loc, a, idx);
}

static resource *find_res(resource *v, size_t n, const char *uri)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].uri, uri) == 0) return &v[i];
    return NULL;
}

/* Registers uri (taken) -> node. 1 when already registered for another
 * schema (uri freed), -1 out of memory, 0 done. */
static int add_res(resource **v, size_t *n, size_t *cap, char *uri, const json_t *j, relais_schema *node)
{
    resource *old = find_res(*v, *n, uri);
    if (old) {
        int dup = old->json != j;
        free(uri);
        return dup;
    }
    resource *p = grow(*v, cap, *n, sizeof **v);
    if (!p) {
        free(uri);
        return -1;
    }
    *v = p;
    p[*n].uri = uri;
    p[*n].json = j;
    p[*n].node = node;
    (*n)++;
    return 0;
}

static relais_schema *compile_node(cctx *c, const json_t *j, const char *base, char *loc);

static relais_schema *child(cctx *c, const json_t *v, const char *base, char *loc)
{
    if (!loc) {
        snprintf(c->err, c->errlen, "%s: out of memory", c->doc->name);
        return NULL;
    }
    return compile_node(c, v, base, loc);
}

static int get_count(cctx *c, const char *loc, const char *kw, const json_t *v, json_int_t *out)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d >= 0 && d < 9.2e18 && floor(d) == d) {
            *out = (json_int_t)d;
            return 0;
        }
    }
    return cerr(c, loc, "'%s' must be a non-negative integer", kw);
}

static int get_num(cctx *c, const char *loc, const char *kw, const json_t *v, num *out)
{
    if (!json_is_number(v)) return cerr(c, loc, "'%s' must be a number", kw);
    out->present = 1;
    out->is_int = json_is_integer(v);
    out->i = out->is_int ? json_integer_value(v) : 0;
    out->d = json_number_value(v);
    return 0;
}

/* ECMA-262 writes Unicode property escapes with long names (\p{Letter},
 * \p{General_Category=Letter}, \p{Script=Greek}); PCRE2 10.42 knows the
 * short general category names and bare script names. Returns a copy of the
 * pattern with those names translated, or NULL when out of memory. */
static char *ecma_properties(const char *src)
{
    static const char *const gc[][2] = {
        {"Letter", "L"}, {"Cased_Letter", "L&"}, {"Uppercase_Letter", "Lu"}, {"Lowercase_Letter", "Ll"},
        {"Titlecase_Letter", "Lt"}, {"Modifier_Letter", "Lm"}, {"Other_Letter", "Lo"}, {"Mark", "M"},
        {"Combining_Mark", "M"}, {"Nonspacing_Mark", "Mn"}, {"Spacing_Mark", "Mc"}, {"Enclosing_Mark", "Me"},
        {"Number", "N"}, {"Decimal_Number", "Nd"}, {"digit", "Nd"}, {"Letter_Number", "Nl"},
        {"Other_Number", "No"}, {"Punctuation", "P"}, {"punct", "P"}, {"Connector_Punctuation", "Pc"},
        {"Dash_Punctuation", "Pd"}, {"Open_Punctuation", "Ps"}, {"Close_Punctuation", "Pe"},
        {"Initial_Punctuation", "Pi"}, {"Final_Punctuation", "Pf"}, {"Other_Punctuation", "Po"},
        {"Symbol", "S"}, {"Math_Symbol", "Sm"}, {"Currency_Symbol", "Sc"}, {"Modifier_Symbol", "Sk"},
        {"Other_Symbol", "So"}, {"Separator", "Z"}, {"Space_Separator", "Zs"}, {"Line_Separator", "Zl"},
        {"Paragraph_Separator", "Zp"}, {"Other", "C"}, {"Control", "Cc"}, {"cntrl", "Cc"}, {"Format", "Cf"},
        {"Surrogate", "Cs"}, {"Private_Use", "Co"}, {"Unassigned", "Cn"}};
    static const char *const prefixes[] = {"General_Category=", "gc=", "Script=", "sc=",
                                           "Script_Extensions=", "scx="};
    size_t len = strlen(src);
    char *out = malloc(len + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] != '\\' || i + 1 >= len) {
            out[o++] = src[i];
            continue;
        }
        const char *close = (src[i + 1] == 'p' || src[i + 1] == 'P') && src[i + 2] == '{'
                                ? strchr(src + i + 3, '}') : NULL;
        if (!close) {           /* any other escape: copied as it is */
            out[o++] = src[i++];
            out[o++] = src[i];
            continue;
        }
        const char *name = src + i + 3;
        size_t nl = (size_t)(close - name);
        for (size_t p = 0; p < sizeof prefixes / sizeof prefixes[0]; p++) {
            size_t pl = strlen(prefixes[p]);
            if (nl > pl && strncmp(name, prefixes[p], pl) == 0) {
                name += pl;
                nl -= pl;
                break;
            }
        }
        for (size_t g = 0; g < sizeof gc / sizeof gc[0]; g++) {
            if (strlen(gc[g][0]) == nl && strncmp(name, gc[g][0], nl) == 0) {
                name = gc[g][1];
                nl = strlen(name);
                break;
            }
        }
        out[o++] = '\\';
        out[o++] = src[i + 1];
        out[o++] = '{';
        memcpy(out + o, name, nl);   /* never longer than what it replaces */
        o += nl;
        out[o++] = '}';
        i = (size_t)(close - src);
    }
    out[o] = '\0';
    return out;
}

static pcre2_code *compile_re(cctx *c, const char *loc, const char *src)
{
    int ec;
    PCRE2_SIZE off;
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (!cc) {
        cerr(c, loc, "out of memory");
        return NULL;
    }
    char *pat = ecma_properties(src);
    if (!pat) {
        pcre2_compile_context_free(cc);
        cerr(c, loc, "out of memory");
        return NULL;
    }
    pcre2_set_compile_extra_options(cc, PCRE2_EXTRA_ALT_BSUX);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_ALT_BSUX | PCRE2_DOLLAR_ENDONLY, &ec, &off, cc);
    pcre2_compile_context_free(cc);
    free(pat);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        cerr(c, loc, "invalid regular expression '%s' at offset %zu: %s", src, (size_t)off, (char *)msg);
        return NULL;
    }
    return re;
}

static int cmp_named(const void *a, const void *b)
{
    return strcmp(((const named *)a)->name, ((const named *)b)->name);
}

/* Compiles an object of schemas (properties, dependentSchemas). */
static int compile_named(cctx *c, relais_schema *n, const json_t *v, const char *base, const char *kw,
                         named **out, size_t *nout)
{
    if (!json_is_object(v)) return cerr(c, n->loc, "'%s' must be an object", kw);
    size_t cnt = json_object_size(v), i = 0;
    *out = calloc(cnt ? cnt : 1, sizeof **out);
    if (!*out) return cerr(c, n->loc, "out of memory");
    const char *k;
    json_t *sv;
    json_object_foreach((json_t *)v, k, sv) {
        relais_schema *s = child(c, sv, base, loc_add2(n->loc, kw, k));
        if (!s) return -1;
        (*out)[i].name = k;
        (*out)[i].sc = s;
        *nout = ++i;
    }
    qsort(*out, cnt, sizeof **out, cmp_named);
    return 0;
}

static int compile_list(cctx *c, relais_schema *n, const json_t *v, const char *base, const char *kw,
                        relais_schema ***out, size_t *nout)
{
    if (!json_is_array(v) || json_array_size(v) == 0)
        return cerr(c, n->loc, "'%s' must be a non-empty array of schemas", kw);
    *out = calloc(json_array_size(v), sizeof **out);
    if (!*out) return cerr(c, n->loc, "out of memory");
    for (size_t i = 0; i < json_array_size(v); i++) {
        relais_schema *s = child(c, json_array_get(v, i), base, loc_add_idx(n->loc, kw, i));
        if (!s) return -1;
        (*out)[i] = s;
        *nout = i + 1;
    }
    return 0;
}

/* An array of unique strings (required, dependentRequired values). */
static int compile_strings(cctx *c, const char *loc, const char *kw, const json_t *v,
                           const char ***out, size_t *nout)
{
    if (!json_is_array(v)) return cerr(c, loc, "'%s' must be an array of strings", kw);
    size_t cnt = json_array_size(v);
    *out = calloc(cnt ? cnt : 1, sizeof **out);
    if (!*out) return cerr(c, loc, "out of memory");
    for (size_t i = 0; i < cnt; i++) {
        const char *s = json_string_value(json_array_get(v, i));
        if (!s) return cerr(c, loc, "'%s' must be an array of strings", kw);
        for (size_t k = 0; k < i; k++)
            if (strcmp((*out)[k], s) == 0) return cerr(c, loc, "'%s' lists '%s' twice", kw, s);
        (*out)[i] = s;
        *nout = i + 1;
    }
    return 0;
}

static int type_bit(const char *t)
{
    static const struct { const char *n; int bit; } names[] = {
        {"null", T_NULL}, {"boolean", T_BOOLEAN}, {"object", T_OBJECT}, {"array", T_ARRAY},
        {"number", T_NUMBER}, {"string", T_STRING}, {"integer", T_INTEGER}};
    for (size_t i = 0; t && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(t, names[i].n) == 0) return names[i].bit;
    return 0;
}

static int compile_type(cctx *c, relais_schema *n, const json_t *v)
{
    if (json_is_string(v)) {
        n->types = (unsigned)type_bit(json_string_value(v));
        if (!n->types) return cerr(c, n->loc, "unknown type '%s'", json_string_value(v));
        return 0;
    }
    if (!json_is_array(v)) return cerr(c, n->loc, "'type' must be a string or an array of strings");
    for (size_t i = 0; i < json_array_size(v); i++) {
        const char *t = json_string_value(json_array_get(v, i));
        unsigned bit = (unsigned)type_bit(t);
        if (!bit) return cerr(c, n->loc, "'type' lists an unknown type '%s'", t ? t : "(not a string)");
        if (n->types & bit) return cerr(c, n->loc, "'type' lists '%s' twice", t);
        n->types |= bit;
    }
    if (!n->types) return cerr(c, n->loc, "'type' must not be an empty array");
    return 0;
}

static int is_annotation(const char *k)
{
    static const char *const ann[] = {
        "title", "description", "$comment", "examples", "default", "deprecated", "readOnly",
        "writeOnly", "contentMediaType", "contentEncoding", "contentSchema"};
    if (strncmp(k, "x-", 2) == 0) return 1;
    for (size_t i = 0; i < sizeof ann / sizeof ann[0]; i++)
        if (strcmp(k, ann[i]) == 0) return 1;
    return 0;
}

static const char *refused_hint(const char *k)
{
    static const struct { const char *k, *hint; } refused[] = {
        {"unevaluatedProperties", " (use additionalProperties)"},
        {"unevaluatedItems", " (use items)"},
        {"$dynamicRef", " (use $ref)"},
        {"$dynamicAnchor", " (use $anchor)"},
        {"$vocabulary", ""},
        {"$recursiveRef", " (draft 2019-09; use $ref)"},
        {"$recursiveAnchor", " (draft 2019-09; use $anchor)"},
        {"definitions", " (draft 7; use $defs)"},
        {"dependencies", " (draft 7; use dependentRequired or dependentSchemas)"},
        {"additionalItems", " (draft 7; use prefixItems and items)"}};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (strcmp(k, refused[i].k) == 0) return refused[i].hint;
    return "";
}

static int compile_format(relais_schema *n, const char *f)
{
    static const struct { const char *n; int f; } fm[] = {
        {"date", F_DATE}, {"date-time", F_DATE_TIME}, {"time", F_TIME}, {"email", F_EMAIL},
        {"uuid", F_UUID}, {"uri", F_URI}};
    n->format = F_NONE;         /* other formats are annotations */
    for (size_t i = 0; i < sizeof fm / sizeof fm[0]; i++)
        if (strcmp(f, fm[i].n) == 0) n->format = fm[i].f;
    return 0;
}

static int compile_keyword(cctx *c, relais_schema *n, const char *k, const json_t *v, const char *base)
{
    const char *loc = n->loc;
    if (strcmp(k, "$id") == 0 || strcmp(k, "$schema") == 0 || strcmp(k, "$anchor") == 0) return 0;
    if (is_annotation(k)) return 0;
    if (strcmp(k, "$ref") == 0) {
        if (!json_is_string(v)) return cerr(c, loc, "'$ref' must be a string");
        n->ref_str = json_string_value(v);
        return 0;
    }
    if (strcmp(k, "$defs") == 0) {
        if (!json_is_object(v)) return cerr(c, loc, "'$defs' must be an object");
        const char *dk;
        json_t *dv;
        json_object_foreach((json_t *)v, dk, dv) {
            if (!child(c, dv, base, loc_add2(loc, k, dk))) return -1;
        }
        return 0;
    }
    if (strcmp(k, "type") == 0) return compile_type(c, n, v);
    if (strcmp(k, "enum") == 0) {
        if (!json_is_array(v)) return cerr(c, loc, "'enum' must be an array");
        n->enum_vals = v;
        return 0;
    }
    if (strcmp(k, "const") == 0) {
        n->const_val = v;
        return 0;
    }
    if (strcmp(k, "properties") == 0) return compile_named(c, n, v, base, k, &n->props, &n->nprops);
    if (strcmp(k, "dependentSchemas") == 0)
        return compile_named(c, n, v, base, k, &n->dep_sch, &n->ndep_sch);
    if (strcmp(k, "patternProperties") == 0) {
        if (!json_is_object(v)) return cerr(c, loc, "'patternProperties' must be an object");
        n->pprops = calloc(json_object_size(v) + 1, sizeof *n->pprops);
        if (!n->pprops) return cerr(c, loc, "out of memory");
        const char *pk;
        json_t *pv;
        json_object_foreach((json_t *)v, pk, pv) {
            patprop *pp = &n->pprops[n->npprops];
            pp->src = pk;
            pp->re = compile_re(c, loc, pk);
            if (!pp->re) return -1;
            n->npprops++;
            pp->sc = child(c, pv, base, loc_add2(loc, k, pk));
            if (!pp->sc) return -1;
        }
        return 0;
    }
    struct { const char *kw; relais_schema **dst; } single[] = {
        {"additionalProperties", &n->additional}, {"propertyNames", &n->property_names},
        {"items", &n->items}, {"contains", &n->contains}, {"not", &n->not_}, {"if", &n->if_},
        {"then", &n->then_}, {"else", &n->else_}};
    for (size_t i = 0; i < sizeof single / sizeof single[0]; i++) {
        if (strcmp(k, single[i].kw) != 0) continue;
        if (json_is_array(v) && strcmp(k, "items") == 0)
            return cerr(c, loc, "'items' must be a schema (an array of schemas is draft 7: use prefixItems)");
        *single[i].dst = child(c, v, base, loc_add(loc, k));
        return *single[i].dst ? 0 : -1;
    }
    if (strcmp(k, "prefixItems") == 0) return compile_list(c, n, v, base, k, &n->prefix, &n->nprefix);
    if (strcmp(k, "allOf") == 0) return compile_list(c, n, v, base, k, &n->all_of.v, &n->all_of.n);
    if (strcmp(k, "anyOf") == 0) return compile_list(c, n, v, base, k, &n->any_of.v, &n->any_of.n);
    if (strcmp(k, "oneOf") == 0) return compile_list(c, n, v, base, k, &n->one_of.v, &n->one_of.n);
    if (strcmp(k, "required") == 0) return compile_strings(c, loc, k, v, &n->required, &n->nrequired);
    if (strcmp(k, "dependentRequired") == 0) {
        if (!json_is_object(v)) return cerr(c, loc, "'dependentRequired' must be an object");
        n->dep_req = calloc(json_object_size(v) + 1, sizeof *n->dep_req);
        if (!n->dep_req) return cerr(c, loc, "out of memory");
        const char *dk;
        json_t *dv;
        json_object_foreach((json_t *)v, dk, dv) {
            depreq *d = &n->dep_req[n->ndep_req++];
            d->name = dk;
            if (compile_strings(c, loc, k, dv, &d->req, &d->n) != 0) return -1;
        }
        return 0;
    }
    struct { const char *kw; json_int_t *dst; } counts[] = {
        {"minProperties", &n->min_props}, {"maxProperties", &n->max_props},
        {"minContains", &n->min_contains}, {"maxContains", &n->max_contains},
        {"minItems", &n->min_items}, {"maxItems", &n->max_items},
        {"minLength", &n->min_len}, {"maxLength", &n->max_len}};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        if (strcmp(k, counts[i].kw) == 0) return get_count(c, loc, k, v, counts[i].dst);
    struct { const char *kw; num *dst; } nums[] = {
        {"minimum", &n->minimum}, {"maximum", &n->maximum}, {"exclusiveMinimum", &n->xmin},
        {"exclusiveMaximum", &n->xmax}, {"multipleOf", &n->multiple}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if (strcmp(k, nums[i].kw) != 0) continue;
        if (get_num(c, loc, k, v, nums[i].dst) != 0) return -1;
        if (nums[i].dst == &n->multiple && !(n->multiple.d > 0))
            return cerr(c, loc, "'multipleOf' must be greater than 0");
        return 0;
    }
    if (strcmp(k, "uniqueItems") == 0) {
        if (!json_is_boolean(v)) return cerr(c, loc, "'uniqueItems' must be true or false");
        n->unique = json_is_true(v);
        return 0;
    }
    if (strcmp(k, "pattern") == 0) {
        if (!json_is_string(v)) return cerr(c, loc, "'pattern' must be a string");
        n->pattern_src = json_string_value(v);
        n->pattern = compile_re(c, loc, n->pattern_src);
        return n->pattern ? 0 : -1;
    }
    if (strcmp(k, "format") == 0) {
        if (!json_is_string(v)) return cerr(c, loc, "'format' must be a string");
        return compile_format(n, json_string_value(v));
    }
    return cerr(c, loc, "unsupported keyword '%s'%s", k, refused_hint(k));
}

static relais_schema *new_node(cctx *c, const json_t *j, const char *base, char *loc)
{
    relais_schema_set *set = c->set;
    relais_schema *n = calloc(1, sizeof *n);
    relais_schema **nv = grow(set->nodes, &set->capnodes, set->nnodes, sizeof *set->nodes);
    if (nv) set->nodes = nv;
    ptrent *pv = grow(set->ptrs, &set->capptrs, set->nptrs, sizeof *set->ptrs);
    if (pv) set->ptrs = pv;
    if (!n || !nv || !pv) {
        free(n);
        free(loc);
        snprintf(c->err, c->errlen, "%s: out of memory", c->doc->name);
        return NULL;
    }
    n->set = set;
    n->doc = c->doc->name;
    n->loc = loc;
    n->base = base;
    n->json = j;
    n->boolean = -1;
    n->min_props = n->max_props = n->max_contains = n->min_items = n->max_items = -1;
    n->min_len = n->max_len = -1;
    n->min_contains = 1;
    set->nodes[set->nnodes++] = n;
    set->ptrs[set->nptrs].j = j;
    set->ptrs[set->nptrs].n = n;
    set->nptrs++;
    return n;
}

/* Compiles schema j found at loc (taken) of the current document. */
static relais_schema *compile_node(cctx *c, const json_t *j, const char *base, char *loc)
{
    relais_schema *n = new_node(c, j, base, loc);
    if (!n) return NULL;
    if (json_is_boolean(j)) {
        n->boolean = json_is_true(j);
        return n;
    }
    if (!json_is_object(j)) {
        cerr(c, n->loc, "a schema must be an object or a boolean");
        return NULL;
    }
    relais_schema_set *set = c->set;
    const json_t *id = json_object_get(j, "$id");
    if (id) {
        const char *ids = json_string_value(id);
        if (!ids) {
            cerr(c, n->loc, "'$id' must be a string");
            return NULL;
        }
        size_t l = strcspn(ids, "#");
        if (ids[l] == '#' && ids[l + 1] != '\0') {
            cerr(c, n->loc, "'$id' must not have a fragment ('%s'; use $anchor)", ids);
            return NULL;
        }
        char *idc = xstrndup(ids, l);
        char *abs = idc ? uri_resolve(base, idc) : NULL;
        free(idc);
        if (!abs) {
            cerr(c, n->loc, "out of memory");
            return NULL;
        }
        uriparts up;
        uri_split(abs, &up);
        if (!up.scheme) {
            cerr(c, n->loc, "'$id' '%s' is relative and the document has no URI", ids);
            free(abs);
            return NULL;
        }
        int r = add_res(&set->res, &set->nres, &set->capres, abs, j, n);
        if (r != 0) {
            cerr(c, n->loc, r > 0 ? "duplicate $id '%s'" : "out of memory (%s)", ids);
            return NULL;
        }
        base = set->res[set->nres - 1].uri;
        n->base = base;
    }
    const json_t *sch = json_object_get(j, "$schema");
    if (sch) {
        const char *s = json_string_value(sch);
        size_t ml = strlen(META_2020_12);
        if (!s || strncmp(s, META_2020_12, ml) != 0 || (s[ml] != '\0' && strcmp(s + ml, "#") != 0)) {
            cerr(c, n->loc, "unsupported $schema '%s' (only " META_2020_12 " is supported)",
                 s ? s : "(not a string)");
            return NULL;
        }
    }
    const json_t *anchor = json_object_get(j, "$anchor");
    if (anchor) {
        const char *a = json_string_value(anchor);
        if (!a || !((a[0] >= 'A' && a[0] <= 'Z') || (a[0] >= 'a' && a[0] <= 'z') || a[0] == '_') ||
            a[strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")] != '\0') {
            cerr(c, n->loc, "'$anchor' must be a name (letters, digits, '-', '_', '.')");
            return NULL;
        }
        if (!base) {
            cerr(c, n->loc, "'$anchor' in a document without a URI");
            return NULL;
        }
        char *full = concat3(base, "#", a);
        int r = full ? add_res(&set->anchors, &set->nanchors, &set->capanchors, full, j, n) : -1;
        if (r != 0) {
            cerr(c, n->loc, r > 0 ? "duplicate $anchor '%s'" : "out of memory (%s)", a);
            return NULL;
        }
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v) {
        if (compile_keyword(c, n, k, v, base) != 0) return NULL;
    }
    return n;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const ptrent *)a)->j, y = (uintptr_t)((const ptrent *)b)->j;
    return x < y ? -1 : x > y;
}

static relais_schema *node_of(const relais_schema_set *set, const json_t *j)
{
    ptrent key = {j, NULL};
    const ptrent *p = bsearch(&key, set->ptrs, set->nptrs, sizeof *set->ptrs, cmp_ptr);
    return p ? p->n : NULL;
}

/* Finds the schema named by ref, resolved against base. NULL with why set. */
static relais_schema *lookup(const relais_schema_set *set, const char *base, const char *ref,
                             char *why, size_t whylen)
{
    const char *hash = strchr(ref, '#');
    char *part = xstrndup(ref, hash ? (size_t)(hash - ref) : strlen(ref));
    char *abs = part ? uri_resolve(base, part) : NULL;
    free(part);
    if (!abs) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    relais_schema *out = NULL;
    const resource *r = find_res(set->res, set->nres, abs);
    if (!r) {
        snprintf(why, whylen, "no schema has the URI '%s'", abs);
    } else if (!hash || hash[1] == '\0') {
        out = r->node;
    } else {
        char *frag = pct_decode(hash + 1);
        if (!frag) {
            snprintf(why, whylen, "malformed fragment '%s'", hash);
        } else if (frag[0] == '/' ) {
            const json_t *t = relais_json_pointer((json_t *)r->json, frag);
            out = t ? node_of(set, t) : NULL;
            if (!t) snprintf(why, whylen, "nothing at '%s' in '%s'", frag, abs);
            else if (!out) snprintf(why, whylen, "'%s' in '%s' is not a schema", frag, abs);
        } else {
            char *full = concat3(abs, "#", frag);
            const resource *a = full ? find_res(set->anchors, set->nanchors, full) : NULL;
            if (a) out = a->node;
            else snprintf(why, whylen, "no $anchor '%s' in '%s'", frag, abs);
            free(full);
        }
        free(frag);
    }
    free(abs);
    return out;
}

/* Depth-first search over the edges that evaluate the same instance
 * location ($ref and the in-place applicators): a cycle there never ends. */
static const relais_schema *find_cycle(relais_schema *n)
{
    if (!n || n->mark == 2) return NULL;
    if (n->mark == 1) return n;
    n->mark = 1;
    const relais_schema *hit = find_cycle(n->ref);
    const sclist *lists[] = {&n->all_of, &n->any_of, &n->one_of};
    for (size_t l = 0; !hit && l < 3; l++)
        for (size_t i = 0; !hit && i < lists[l]->n; i++) hit = find_cycle(lists[l]->v[i]);
    relais_schema *singles[] = {n->not_, n->if_, n->then_, n->else_};
    for (size_t i = 0; !hit && i < 4; i++) hit = find_cycle(singles[i]);
    for (size_t i = 0; !hit && i < n->ndep_sch; i++) hit = find_cycle(n->dep_sch[i].sc);
    n->mark = 2;
    return hit;
}

static int cmp_type(const void *a, const void *b)
{
    return strcmp(((const typeent *)a)->type, ((const typeent *)b)->type);
}

/* RFC 3986 "URI" (absolute, scheme required), for format "uri". The
 * IP-literal host is captured and checked with inet_pton(). */
#define PCHAR "(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})"
static const char uri_regex[] =
    "\\A[A-Za-z][A-Za-z0-9+.-]*:"
    "(?://(?:(?:[A-Za-z0-9._~!$&'()*+,;=:-]|%[0-9A-Fa-f]{2})*@)?"
    "(?:\\[([^\\]]*)\\]|(?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*)"
    "(?::[0-9]*)?(?:/" PCHAR "*)*"
    "|/(?:" PCHAR "+(?:/" PCHAR "*)*)?"
    "|" PCHAR "+(?:/" PCHAR "*)*"
    "|)"
    "(?:\\?(?:" PCHAR "|[/?])*)?"
    "(?:#(?:" PCHAR "|[/?])*)?\\z";

int relais_schema_set_compile(relais_schema_set *set, char *errstr, size_t errlen)
{
    static const sdoc nodoc = {.name = "(schema set)"};
    char dummy[8];
    if (!errstr || !errlen) {
        errstr = dummy;
        errlen = sizeof dummy;
    }
    cctx c = {set, &nodoc, errstr, errlen};
    if (!set) return cerr(&c, "#", "no schema set");
    if (set->compiled) return cerr(&c, "#", "the schema set is already compiled");
    set->compiled = -1;         /* a failed compile leaves the set unusable */
    int ec;
    PCRE2_SIZE off;
    set->uri_re = pcre2_compile((PCRE2_SPTR)uri_regex, PCRE2_ZERO_TERMINATED, 0, &ec, &off, NULL);
    set->mctx = pcre2_match_context_create(NULL);
    if (!set->uri_re || !set->mctx) return cerr(&c, "#", "cannot prepare the uri format check");
    pcre2_set_match_limit(set->mctx, MATCH_LIMIT);

    for (size_t i = 0; i < set->ndocs; i++) {
        sdoc *d = &set->docs[i];
        c.doc = d;
        d->root = compile_node(&c, d->json, d->uri ? d->uri : d->base, xstrdup("#"));
        if (!d->root) return -1;
        const char *uris[2] = {d->base, d->uri};
        for (size_t u = 0; u < 2; u++) {
            if (!uris[u] || find_res(set->res, set->nres, uris[u])) continue;
            char *cp = xstrdup(uris[u]);
            if (!cp || add_res(&set->res, &set->nres, &set->capres, cp, d->json, d->root) < 0)
                return cerr(&c, "#", "out of memory");
        }
    }
    qsort(set->ptrs, set->nptrs, sizeof *set->ptrs, cmp_ptr);
    for (size_t i = 0; i < set->nnodes; i++) {
        relais_schema *n = set->nodes[i];
        if (!n->ref_str) continue;
        char why[300];
        n->ref = lookup(set, n->base, n->ref_str, why, sizeof why);
        if (!n->ref) {
            snprintf(errstr, errlen, "%s: %s: cannot resolve $ref '%s': %s", n->doc, n->loc, n->ref_str, why);
            return -1;
        }
    }
    for (size_t i = 0; i < set->nnodes; i++) {
        const relais_schema *hit = find_cycle(set->nodes[i]);
        if (hit) {
            snprintf(errstr, errlen, "%s: %s: $ref cycle: the schema refers back to itself "
                     "without descending into the instance", hit->doc, hit->loc);
            return -1;
        }
    }
    size_t nt = 0;
    for (size_t i = 0; i < set->ndocs; i++) nt += set->docs[i].type != NULL;
    set->types = calloc(nt + 1, sizeof *set->types);
    set->type_names = calloc(nt + 1, sizeof *set->type_names);
    if (!set->types || !set->type_names) return cerr(&c, "#", "out of memory");
    for (size_t i = 0; i < set->ndocs; i++) {
        if (!set->docs[i].type) continue;
        set->types[set->ntypes].type = set->docs[i].type;
        set->types[set->ntypes].n = set->docs[i].root;
        set->ntypes++;
    }
    qsort(set->types, set->ntypes, sizeof *set->types, cmp_type);
    for (size_t i = 0; i < set->ntypes; i++) {
        if (i > 0 && strcmp(set->types[i].type, set->types[i - 1].type) == 0) {
            snprintf(errstr, errlen, "%s: event type '%s' is described by two schemas (also %s)",
                     set->types[i].n->doc, set->types[i].type, set->types[i - 1].n->doc);
            return -1;
        }
        set->type_names[i] = set->types[i].type;
    }
    set->compiled = 1;
    return 0;
}

/* --------------------------------------------------------- set handling */

relais_schema_set *relais_schema_set_new(void)
{
    return calloc(1, sizeof(relais_schema_set));
}

static void free_node(relais_schema *n)
{
    free(n->loc);
    free(n->props);
    for (size_t i = 0; i < n->npprops; i++) pcre2_code_free(n->pprops[i].re);
    free(n->pprops);
    free(n->required);
    for (size_t i = 0; i < n->ndep_req; i++) free(n->dep_req[i].req);
    free(n->dep_req);
    free(n->dep_sch);
    free(n->prefix);
    pcre2_code_free(n->pattern);
    free(n->all_of.v);
    free(n->any_of.v);
    free(n->one_of.v);
    free(n);
}

void relais_schema_set_destroy(relais_schema_set *set)
{
    if (!set) return;
    for (size_t i = 0; i < set->nnodes; i++) free_node(set->nodes[i]);
    free(set->nodes);
    for (size_t i = 0; i < set->ndocs; i++) {
        json_decref(set->docs[i].json);
        free(set->docs[i].uri);
        free(set->docs[i].base);
        free(set->docs[i].name);
        free(set->docs[i].type);
    }
    free(set->docs);
    for (size_t i = 0; i < set->nres; i++) free(set->res[i].uri);
    free(set->res);
    for (size_t i = 0; i < set->nanchors; i++) free(set->anchors[i].uri);
    free(set->anchors);
    free(set->ptrs);
    free(set->types);
    free(set->type_names);
    pcre2_code_free(set->uri_re);
    pcre2_match_context_free(set->mctx);
    free(set);
}

int relais_schema_set_add(relais_schema_set *set, json_t *doc, const char *uri,
                          const char *name, char *errstr, size_t errlen)
{
    char dummy[8];
    if (!errstr || !errlen) {
        errstr = dummy;
        errlen = sizeof dummy;
    }
    if (!name) name = uri ? uri : "(schema)";
    if (!set || !doc) {
        snprintf(errstr, errlen, "%s: no schema set or document", name);
        return -1;
    }
    if (set->compiled) {
        snprintf(errstr, errlen, "%s: the schema set is already compiled", name);
        return -1;
    }
    const char *id = json_is_object(doc) ? json_string_value(json_object_get(doc, "$id")) : NULL;
    char *base = NULL;
    if (id) {
        char *idc = xstrndup(id, strcspn(id, "#"));
        base = idc ? uri_resolve(uri, idc) : NULL;
        free(idc);
    } else if (uri) {
        base = xstrdup(uri);
    } else {
        snprintf(errstr, errlen, "%s: the schema has no $id and no URI was given", name);
        return -1;
    }
    uriparts up;
    if (base) uri_split(base, &up);
    if (!base || !up.scheme) {
        snprintf(errstr, errlen, "%s: %s", name, base ? "the base URI is not absolute (no scheme)"
                                                        : "out of memory");
        free(base);
        return -1;
    }
    for (size_t i = 0; i < set->ndocs; i++) {
        const sdoc *o = &set->docs[i];
        if (strcmp(o->base, base) == 0 || (o->uri && strcmp(o->uri, base) == 0) ||
            (uri && (strcmp(o->base, uri) == 0 || (o->uri && strcmp(o->uri, uri) == 0)))) {
            snprintf(errstr, errlen, "%s: duplicate $id '%s' (also %s)", name, base, o->name);
            free(base);
            return -1;
        }
    }
    sdoc *d = grow(set->docs, &set->capdocs, set->ndocs, sizeof *set->docs);
    if (!d) {
        free(base);
        snprintf(errstr, errlen, "%s: out of memory", name);
        return -1;
    }
    set->docs = d;
    d = &set->docs[set->ndocs];
    memset(d, 0, sizeof *d);
    d->uri = xstrdup(uri);
    d->name = xstrdup(name);
    d->base = base;
    if ((uri && !d->uri) || !d->name) {
        free(d->uri);
        free(d->name);
        free(base);
        snprintf(errstr, errlen, "%s: out of memory", name);
        return -1;
    }
    d->json = json_incref(doc);
    set->ndocs++;
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

static int load_rec(relais_schema_set *set, const char *root, const char *rel, char *errstr, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", root, rel[0] ? "/" : "", rel);
    struct dirent **list = NULL;
    int n = scandir(path, &list, NULL, alphasort);
    if (n < 0) {
        snprintf(errstr, errlen, "%s: cannot read the directory", path);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = list[i]->d_name;
        char crel[4096], full[4096];
        if (rc != 0 || strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0) continue;
        int l1 = snprintf(crel, sizeof crel, "%s%s%s", rel, rel[0] ? "/" : "", nm);
        int l2 = snprintf(full, sizeof full, "%s/%s", root, crel);
        if (l1 < 0 || l2 < 0 || (size_t)l1 >= sizeof crel || (size_t)l2 >= sizeof full) {
            snprintf(errstr, errlen, "%s/%s: path too long", rel, nm);
            rc = -1;
            continue;
        }
        struct stat st;
        if (stat(full, &st) != 0) {
            snprintf(errstr, errlen, "%s: cannot stat", crel);
            rc = -1;
        } else if (S_ISDIR(st.st_mode)) {
            if (!(rel[0] == '\0' && strcmp(nm, "examples") == 0))
                rc = load_rec(set, root, crel, errstr, errlen);
        } else if (S_ISREG(st.st_mode) && ends_with(nm, ".json")) {
            json_error_t je;
            json_t *doc = json_load_file(full, JSON_REJECT_DUPLICATES, &je);
            if (!doc) {
                snprintf(errstr, errlen, "%s:%d: %s", crel, je.line, je.text);
                rc = -1;
                continue;
            }
            char uri[4200];
            snprintf(uri, sizeof uri, "file://%s", full);
            rc = relais_schema_set_add(set, doc, uri, crel, errstr, errlen);
            json_decref(doc);
            if (rc == 0 && strncmp(crel, "events/", 7) == 0) {
                char *t = xstrndup(nm, strlen(nm) - 5);
                if (!t) {
                    snprintf(errstr, errlen, "%s: out of memory", crel);
                    rc = -1;
                }
                set->docs[set->ndocs - 1].type = t;
            }
        }
    }
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
    return rc;
}

int relais_schema_set_load_dir(relais_schema_set *set, const char *dir, char *errstr, size_t errlen)
{
    char dummy[8];
    if (!errstr || !errlen) {
        errstr = dummy;
        errlen = sizeof dummy;
    }
    if (!set || !dir) {
        snprintf(errstr, errlen, "no schema set or directory");
        return -1;
    }
    char *abs = realpath(dir, NULL);
    if (!abs) {
        snprintf(errstr, errlen, "%s: no such directory", dir);
        return -1;
    }
    int rc = load_rec(set, abs, "", errstr, errlen);
    free(abs);
    return rc;
}

const relais_schema *relais_schema_set_get(const relais_schema_set *set, const char *uri)
{
    char why[300];
    if (!set || set->compiled != 1 || !uri) return NULL;
    return lookup(set, NULL, uri, why, sizeof why);
}

const relais_schema *relais_schema_set_for_type(const relais_schema_set *set, const char *type)
{
    if (!set || set->compiled != 1 || !type) return NULL;
    typeent key = {type, NULL};
    const typeent *t = bsearch(&key, set->types, set->ntypes, sizeof *set->types, cmp_type);
    return t ? t->n : NULL;
}

const char *const *relais_schema_set_types(const relais_schema_set *set)
{
    static const char *const none[] = {NULL};
    if (!set || set->compiled != 1) return none;
    return set->type_names;
}

/* ------------------------------------------------------------ formats */

static int digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

static int dnum(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) v = v * 10 + (s[i] - '0');
    return v;
}

static int is_date(const char *s, size_t len)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (len != 10 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2))
        return 0;
    int y = dnum(s, 4), m = dnum(s + 5, 2), d = dnum(s + 8, 2);
    if (m < 1 || m > 12 || d < 1) return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= mdays[m - 1] + (m == 2 && leap);
}

static int is_time(const char *s, size_t len)
{
    if (len < 9 || !digits(s, 2) || s[2] != ':' || !digits(s + 3, 2) || s[5] != ':' || !digits(s + 6, 2))
        return 0;
    int h = dnum(s, 2), mi = dnum(s + 3, 2), se = dnum(s + 6, 2);
    if (h > 23 || mi > 59 || se > 60) return 0;
    size_t p = 8;
    if (p < len && s[p] == '.') {
        size_t q = ++p;
        while (p < len && s[p] >= '0' && s[p] <= '9') p++;
        if (p == q) return 0;
    }
    int off = 0;
    if (p < len && (s[p] == 'Z' || s[p] == 'z')) {
        if (p + 1 != len) return 0;
    } else if (p < len && (s[p] == '+' || s[p] == '-')) {
        const char *o = s + p + 1;
        if (len - p != 6 || !digits(o, 2) || o[2] != ':' || !digits(o + 3, 2)) return 0;
        int oh = dnum(o, 2), om = dnum(o + 3, 2);
        if (oh > 23 || om > 59) return 0;
        off = (s[p] == '+' ? 1 : -1) * (oh * 60 + om);
    } else {
        return 0;
    }
    if (se == 60) {             /* a leap second is 23:59:60 UTC */
        int utc = ((h * 60 + mi - off) % 1440 + 1440) % 1440;
        if (utc != 23 * 60 + 59) return 0;
    }
    return 1;
}

static int is_date_time(const char *s, size_t len)
{
    return len > 11 && is_date(s, 10) && (s[10] == 'T' || s[10] == 't') && is_time(s + 11, len - 11);
}

static int is_uuid(const char *s, size_t len)
{
    if (len != 36) return 0;
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return 0;
        } else if (OPENSSL_hexchar2int((unsigned char)s[i]) < 0) {
            return 0;
        }
    }
    return 1;
}

static int is_hostname(const char *s, size_t len)
{
    if (len == 0 || len > 253) return 0;
    size_t lab = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            if (lab == 0 || lab > 63 || s[i - 1] == '-') return 0;
            lab = 0;
            continue;
        }
        char ch = s[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-';
        if (!ok || (lab == 0 && ch == '-')) return 0;
        lab++;
    }
    return 1;
}

/* RFC 5321 mailbox without comments or folding: dot-atom or quoted local
 * part, host name or [IPv4] / [IPv6:...] address literal. */
static int is_email(const char *s, size_t len)
{
    static const char atext[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                "!#$%&'*+-/=?^_`{|}~";
    size_t p = 0;
    if (len > 0 && s[0] == '"') {
        for (p = 1; p < len && s[p] != '"'; p++) {
            if (s[p] == '\\') p++;
            if (p >= len || (unsigned char)s[p] < 32 || (unsigned char)s[p] > 126) return 0;
        }
        if (p >= len) return 0;
        p++;
    } else {
        int prev_dot = 1;
        for (; p < len && s[p] != '@'; p++) {
            if (s[p] == '.') {
                if (prev_dot) return 0;
                prev_dot = 1;
            } else if (s[p] != '\0' && strchr(atext, s[p])) {
                prev_dot = 0;
            } else {
                return 0;
            }
        }
        if (p == 0 || prev_dot) return 0;
    }
    if (p >= len || s[p] != '@') return 0;
    const char *dom = s + p + 1;
    size_t dl = len - p - 1;
    if (memchr(dom, '\0', dl)) return 0;
    if (dl >= 2 && dom[0] == '[' && dom[dl - 1] == ']') {
        char lit[64];
        unsigned char addr[16];
        if (dl - 2 >= sizeof lit) return 0;
        snprintf(lit, sizeof lit, "%.*s", (int)(dl - 2), dom + 1);
        if (strncmp(lit, "IPv6:", 5) == 0) return inet_pton(AF_INET6, lit + 5, addr) == 1;
        return inet_pton(AF_INET, lit, addr) == 1;
    }
    return is_hostname(dom, dl);
}

static int is_uri(const relais_schema *n, const char *s, size_t len)
{
    const pcre2_code *re = n->set->uri_re;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) return 0;
    int rc = pcre2_match(re, (PCRE2_SPTR)s, len, 0, 0, md, n->set->mctx);
    int ok = rc > 0;
    if (ok && rc > 1) {         /* an IP-literal host: IPv6 or IPvFuture */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        const char *h = s + ov[2];
        size_t hl = ov[3] - ov[2];
        if (hl > 0 && (h[0] == 'v' || h[0] == 'V')) {
            size_t x = 1;
            while (x < hl && OPENSSL_hexchar2int((unsigned char)h[x]) >= 0) x++;
            ok = x > 1 && x + 1 < hl && h[x] == '.';
        } else {
            char lit[64];
            unsigned char addr[16];
            ok = hl < sizeof lit;
            if (ok) {
                snprintf(lit, sizeof lit, "%.*s", (int)hl, h);
                ok = inet_pton(AF_INET6, lit, addr) == 1;
            }
        }
    }
    pcre2_match_data_free(md);
    return ok;
}

/* ----------------------------------------------------------- validation */

typedef struct seg {            /* one step of the instance path, on the C stack */
    const struct seg *up;
    const char *key;            /* NULL: array index */
    size_t idx;
} seg;

typedef struct vctx {
    relais_schema_fault *faults;
    size_t max, n;
    const char *root;
    int quiet;                  /* record nothing, stop at the first failure */
    unsigned depth;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
} vctx;

#define STOP(c) ((c)->quiet || (c)->n >= (c)->max)

static int simple_ident(const char *k)
{
    if (!((k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z') || k[0] == '_')) return 0;
    return k[strspn(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")] == '\0';
}

static size_t render_path(const vctx *c, const seg *at, char *buf, size_t len, size_t o)
{
    if (!at) return (size_t)snprintf(buf, len, "%s", c->root);
    o = render_path(c, at->up, buf, len, o);
    if (o >= len) return o;
    if (!at->key) {
        o += (size_t)snprintf(buf + o, len - o, "[%zu]", at->idx);
    } else if (simple_ident(at->key)) {
        o += (size_t)snprintf(buf + o, len - o, ".%s", at->key);
    } else {
        o += (size_t)snprintf(buf + o, len - o, "[\"");
        for (const char *p = at->key; *p && o < len; p++) {
            if (*p == '"' || *p == '\\') o += (size_t)snprintf(buf + o, len - o, "\\%c", *p);
            else if ((unsigned char)*p < 32) o += (size_t)snprintf(buf + o, len - o, "\\u%04x", (unsigned char)*p);
            else o += (size_t)snprintf(buf + o, len - o, "%c", *p);
        }
        if (o < len) o += (size_t)snprintf(buf + o, len - o, "\"]");
    }
    return o;
}

static int fault(vctx *c, const seg *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fault(vctx *c, const seg *at, const char *fmt, ...)
{
    if (STOP(c)) return 0;
    relais_schema_fault *f = &c->faults[c->n++];
    render_path(c, at, f->path, sizeof f->path, 0);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof f->message, fmt, ap);
    va_end(ap);
    return 0;
}

/* A value as short text for messages: strings as they are, others as JSON. */
static void show(const json_t *v, char *buf, size_t len)
{
    if (json_is_string(v)) {
        snprintf(buf, len, "%s", json_string_value(v));
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        snprintf(buf, len, "%.15g", d);
        if (strtod(buf, NULL) != d) snprintf(buf, len, "%.17g", d);
    } else {
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        snprintf(buf, len, "%s", s ? s : "?");
        free(s);
    }
    if (strlen(buf) + 1 >= len && len > 4) memcpy(buf + len - 4, "...", 4);
}

static void show_num(const num *x, char *buf, size_t len)
{
    if (x->is_int) {
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, x->i);
    } else {
        snprintf(buf, len, "%.15g", x->d);
        if (strtod(buf, NULL) != x->d) snprintf(buf, len, "%.17g", x->d);
    }
}

static void num_of(const json_t *v, num *x)
{
    x->present = 1;
    x->is_int = json_is_integer(v);
    x->i = x->is_int ? json_integer_value(v) : 0;
    x->d = json_number_value(v);
}

/* Compares an integer with a real exactly. */
static int cmp_int_real(json_int_t i, double d)
{
    if (isnan(d)) return 0;
    if (d >= 9223372036854775808.0) return -1;
    if (d < -9223372036854775808.0) return 1;
    double fl = floor(d);
    json_int_t t = (json_int_t)fl;
    if (i < t) return -1;
    if (i > t) return 1;
    return d > fl ? -1 : 0;
}

static int num_cmp(const num *a, const num *b)
{
    if (a->is_int && b->is_int) return a->i < b->i ? -1 : a->i > b->i;
    if (a->is_int) return cmp_int_real(a->i, b->d);
    if (b->is_int) return -cmp_int_real(b->i, a->d);
    return a->d < b->d ? -1 : a->d > b->d;
}

/* JSON equality: 1 and 1.0 are equal, objects compare regardless of order. */
static int jeq(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        num x, y;
        num_of(a, &x);
        num_of(b, &y);
        return num_cmp(&x, &y) == 0;
    }
    if (json_typeof(a) != json_typeof(b)) return 0;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b)) return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!jeq(json_array_get(a, i), json_array_get(b, i))) return 0;
        return 1;
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b)) return 0;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)a, k, v) {
            const json_t *w = json_object_get(b, k);
            if (!w || !jeq(v, w)) return 0;
        }
        return 1;
    }
    default:
        return 1;
    }
}

static unsigned type_of(const json_t *x)
{
    switch (json_typeof(x)) {
    case JSON_NULL: return T_NULL;
    case JSON_TRUE: case JSON_FALSE: return T_BOOLEAN;
    case JSON_OBJECT: return T_OBJECT;
    case JSON_ARRAY: return T_ARRAY;
    case JSON_STRING: return T_STRING;
    case JSON_INTEGER: return T_NUMBER | T_INTEGER;
    case JSON_REAL: {
        double d = json_real_value(x);
        return isfinite(d) && floor(d) == d ? (T_NUMBER | T_INTEGER) : T_NUMBER;
    }
    }
    return 0;
}

static const char *type_name(const json_t *x)
{
    switch (json_typeof(x)) {
    case JSON_NULL: return "null";
    case JSON_TRUE: case JSON_FALSE: return "boolean";
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    }
    return "?";
}

static void type_list(unsigned mask, char *buf, size_t len)
{
    static const struct { unsigned bit; const char *n; } names[] = {
        {T_OBJECT, "object"}, {T_ARRAY, "array"}, {T_STRING, "string"}, {T_INTEGER, "integer"},
        {T_NUMBER, "number"}, {T_BOOLEAN, "boolean"}, {T_NULL, "null"}};
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0] && o < len; i++)
        if (mask & names[i].bit)
            o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? " or " : "", names[i].n);
}

static int v_node(vctx *c, const relais_schema *s, const json_t *x, const seg *at);

static int v_quiet(vctx *c, const relais_schema *s, const json_t *x, const seg *at)
{
    int q = c->quiet;
    c->quiet = 1;
    int r = v_node(c, s, x, at);
    c->quiet = q;
    return r;
}

/* 1 match, 0 no match, -1 could not be evaluated (match limit). */
static int re_match(vctx *c, const pcre2_code *re, const char *s, size_t len)
{
    if (!c->md) {
        c->md = pcre2_match_data_create(1, NULL);
        if (!c->md) return -1;
    }
    int rc = pcre2_match(re, (PCRE2_SPTR)s, len, 0, 0, c->md, c->mctx);
    if (rc >= 0) return 1;
    return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

static const named *find_named(const named *v, size_t n, const char *k)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int r = strcmp(k, v[mid].name);
        if (r == 0) return &v[mid];
        if (r < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

static int v_object(vctx *c, const relais_schema *s, const json_t *x, const seg *at)
{
    int ok = 1;
    json_int_t cnt = (json_int_t)json_object_size(x);
    if (s->min_props >= 0 && cnt < s->min_props) {
        ok = fault(c, at, "has %" JSON_INTEGER_FORMAT " properties, at least %" JSON_INTEGER_FORMAT
                   " required", cnt, s->min_props);
        if (STOP(c)) return 0;
    }
    if (s->max_props >= 0 && cnt > s->max_props) {
        ok = fault(c, at, "has %" JSON_INTEGER_FORMAT " properties, at most %" JSON_INTEGER_FORMAT
                   " allowed", cnt, s->max_props);
        if (STOP(c)) return 0;
    }
    for (size_t i = 0; i < s->nrequired; i++) {
        if (!json_object_get(x, s->required[i])) {
            ok = fault(c, at, "required property '%s' is missing", s->required[i]);
            if (STOP(c)) return 0;
        }
    }
    for (size_t i = 0; i < s->ndep_req; i++) {
        const depreq *d = &s->dep_req[i];
        if (!json_object_get(x, d->name)) continue;
        for (size_t k = 0; k < d->n; k++) {
            if (!json_object_get(x, d->req[k])) {
                ok = fault(c, at, "property '%s' requires property '%s', which is missing", d->name, d->req[k]);
                if (STOP(c)) return 0;
            }
        }
    }
    for (size_t i = 0; i < s->ndep_sch; i++) {
        if (json_object_get(x, s->dep_sch[i].name) && !v_node(c, s->dep_sch[i].sc, x, at)) {
            ok = 0;
            if (STOP(c)) return 0;
        }
    }
    if (!s->nprops && !s->npprops && !s->additional && !s->property_names) return ok;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)x, k, v) {
        seg here = {at, k, 0};
        int matched = 0;
        const named *p = s->nprops ? find_named(s->props, s->nprops, k) : NULL;
        if (p) {
            matched = 1;
            if (!v_node(c, p->sc, v, &here)) {
                ok = 0;
                if (STOP(c)) return 0;
            }
        }
        for (size_t i = 0; i < s->npprops; i++) {
            int m = re_match(c, s->pprops[i].re, k, strlen(k));
            if (m < 0) {
                ok = fault(c, &here, "property name cannot be checked against pattern '%s'", s->pprops[i].src);
                if (STOP(c)) return 0;
            } else if (m) {
                matched = 1;
                if (!v_node(c, s->pprops[i].sc, v, &here)) {
                    ok = 0;
                    if (STOP(c)) return 0;
                }
            }
        }
        if (!matched && s->additional) {
            if (s->additional->boolean == 0) {
                ok = fault(c, at, "property '%s' is not allowed", k);
                if (STOP(c)) return 0;
            } else if (!v_node(c, s->additional, v, &here)) {
                ok = 0;
                if (STOP(c)) return 0;
            }
        }
        if (s->property_names) {
            json_t *name = json_string(k);
            int r = name ? v_quiet(c, s->property_names, name, &here) : 0;
            json_decref(name);
            if (!r) {
                ok = fault(c, at, "property name '%s' does not match propertyNames", k);
                if (STOP(c)) return 0;
            }
        }
    }
    return ok;
}

static int v_array(vctx *c, const relais_schema *s, const json_t *x, const seg *at)
{
    int ok = 1;
    size_t n = json_array_size(x);
    if (s->min_items >= 0 && (json_int_t)n < s->min_items) {
        ok = fault(c, at, "has %zu items, at least %" JSON_INTEGER_FORMAT " required", n, s->min_items);
        if (STOP(c)) return 0;
    }
    if (s->max_items >= 0 && (json_int_t)n > s->max_items) {
        ok = fault(c, at, "has %zu items, at most %" JSON_INTEGER_FORMAT " allowed", n, s->max_items);
        if (STOP(c)) return 0;
    }
    if (s->unique) {
        for (size_t i = 0; i < n; i++) {
            for (size_t j = i + 1; j < n; j++) {
                if (jeq(json_array_get(x, i), json_array_get(x, j))) {
                    ok = fault(c, at, "items [%zu] and [%zu] are equal, items must be unique", i, j);
                    if (STOP(c)) return 0;
                    i = n;      /* one fault is enough */
                    break;
                }
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        const relais_schema *sc = i < s->nprefix ? s->prefix[i] : s->items;
        if (!sc) {
            if (i >= s->nprefix) break;
            continue;
        }
        seg here = {at, NULL, i};
        if (sc->boolean == 0 && i >= s->nprefix) {
            ok = fault(c, at, "has %zu items, at most %zu allowed", n, s->nprefix);
            if (STOP(c)) return 0;
            break;
        }
        if (!v_node(c, sc, json_array_get(x, i), &here)) {
            ok = 0;
            if (STOP(c)) return 0;
        }
    }
    if (s->contains) {
        json_int_t hits = 0;
        for (size_t i = 0; i < n; i++) {
            seg here = {at, NULL, i};
            if (v_quiet(c, s->contains, json_array_get(x, i), &here)) hits++;
            if (s->max_contains >= 0 && hits > s->max_contains) break;
            if (s->max_contains < 0 && hits >= s->min_contains) break;
        }
        if (hits < s->min_contains) {
            if (hits == 0)
                ok = fault(c, at, "contains no item matching 'contains', at least %" JSON_INTEGER_FORMAT
                           " required", s->min_contains);
            else
                ok = fault(c, at, "contains %" JSON_INTEGER_FORMAT " items matching 'contains', at least %"
                           JSON_INTEGER_FORMAT " required", hits, s->min_contains);
            if (STOP(c)) return 0;
        }
        if (s->max_contains >= 0 && hits > s->max_contains) {
            ok = fault(c, at, "contains more than %" JSON_INTEGER_FORMAT " items matching 'contains'",
                       s->max_contains);
            if (STOP(c)) return 0;
        }
    }
    return ok;
}

static int v_string(vctx *c, const relais_schema *s, const json_t *x, const seg *at)
{
    int ok = 1;
    const char *str = json_string_value(x);
    size_t blen = json_string_length(x);
    if (s->min_len >= 0 || s->max_len >= 0) {
        json_int_t cp = 0;      /* Unicode code points: bytes that do not continue a sequence */
        for (size_t i = 0; i < blen; i++) cp += ((unsigned char)str[i] & 0xC0) != 0x80;
        if (s->min_len >= 0 && cp < s->min_len) {
            ok = fault(c, at, "is %" JSON_INTEGER_FORMAT " characters long, at least %" JSON_INTEGER_FORMAT
                       " required", cp, s->min_len);
            if (STOP(c)) return 0;
        }
        if (s->max_len >= 0 && cp > s->max_len) {
            ok = fault(c, at, "is %" JSON_INTEGER_FORMAT " characters long, at most %" JSON_INTEGER_FORMAT
                       " allowed", cp, s->max_len);
            if (STOP(c)) return 0;
        }
    }
    if (s->pattern) {
        int m = re_match(c, s->pattern, str, blen);
        if (m <= 0) {
            ok = fault(c, at, m < 0 ? "cannot be checked against pattern '%s' (match limit)"
                                    : "does not match pattern '%s'", s->pattern_src);
            if (STOP(c)) return 0;
        }
    }
    const char *bad = NULL;
    switch (s->format) {
    case F_DATE: if (!is_date(str, blen)) bad = "is not a valid date (YYYY-MM-DD)"; break;
    case F_DATE_TIME:
        if (!is_date_time(str, blen)) bad = "is not a valid date-time (RFC 3339, YYYY-MM-DDTHH:MM:SS with offset)";
        break;
    case F_TIME: if (!is_time(str, blen)) bad = "is not a valid time (RFC 3339, HH:MM:SS with offset)"; break;
    case F_EMAIL: if (!is_email(str, blen)) bad = "is not a valid email address"; break;
    case F_UUID: if (!is_uuid(str, blen)) bad = "is not a valid UUID"; break;
    case F_URI: if (!is_uri(s, str, blen)) bad = "is not a valid URI (RFC 3986, with a scheme)"; break;
    default: break;
    }
    if (bad) {
        ok = fault(c, at, "%s", bad);
        if (STOP(c)) return 0;
    }
    return ok;
}

static int is_multiple(const num *x, const num *m)
{
    if (x->is_int && m->is_int) return m->i == 0 ? 0 : x->i % m->i == 0;
    double q = x->d / m->d;
    if (!isfinite(q)) return 0;
    /* the quotient of two decimal fractions carries a few ulps of error */
    return fabs(q - nearbyint(q)) <= fabs(q) * 16 * DBL_EPSILON;
}

static int v_number(vctx *c, const relais_schema *s, const json_t *x, const seg *at)
{
    int ok = 1;
    num v;
    char a[48], b[48];
    num_of(x, &v);
    struct { const num *lim; int bad_if; int or_equal; const char *what; } checks[] = {
        {&s->minimum, -1, 0, "is less than the minimum"},
        {&s->maximum, 1, 0, "is greater than the maximum"},
        {&s->xmin, -1, 1, "must be greater than"},
        {&s->xmax, 1, 1, "must be less than"}};
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        if (!checks[i].lim->present) continue;
        int r = num_cmp(&v, checks[i].lim);
        if (r == checks[i].bad_if || (checks[i].or_equal && r == 0)) {
            show_num(&v, a, sizeof a);
            show_num(checks[i].lim, b, sizeof b);
            ok = fault(c, at, "%s %s %s", a, checks[i].what, b);
            if (STOP(c)) return 0;
        }
    }
    if (s->multiple.present && !is_multiple(&v, &s->multiple)) {
        show_num(&v, a, sizeof a);
        show_num(&s->multiple, b, sizeof b);
        ok = fault(c, at, "%s is not a multiple of %s", a, b);
        if (STOP(c)) return 0;
    }
    return ok;
}

static void enum_fault(vctx *c, const relais_schema *s, const json_t *x, const seg *at)
{
    if (STOP(c)) return;
    char val[96], list[200];
    size_t o = 0;
    show(x, val, sizeof val);
    list[0] = '\0';
    for (size_t i = 0; i < json_array_size(s->enum_vals) && o < sizeof list; i++) {
        char one[96];
        show(json_array_get(s->enum_vals, i), one, sizeof one);
        o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", one);
    }
    if (o >= sizeof list) memcpy(list + sizeof list - 4, "...", 4);
    fault(c, at, "value '%s' is not one of: %s", val, list);
}

static int v_node(vctx *c, const relais_schema *s, const json_t *x, const seg *at)
{
    if (s->boolean == 1) return 1;
    if (s->boolean == 0) return fault(c, at, "no value is allowed here");
    if (c->depth >= MAX_DEPTH) return fault(c, at, "nested too deeply to be validated");
    c->depth++;
    int ok = 1;
    unsigned t = type_of(x);
    if (s->ref && !v_node(c, s->ref, x, at)) {
        ok = 0;
        if (STOP(c)) goto out;
    }
    if (s->types && !(s->types & t)) {
        char want[96];
        type_list(s->types, want, sizeof want);
        ok = fault(c, at, "expected %s, got %s", want, type_name(x));
        goto out;               /* the other keywords would only repeat it */
    }
    if (s->const_val && !jeq(s->const_val, x)) {
        char val[96], want[96];
        show(x, val, sizeof val);
        show(s->const_val, want, sizeof want);
        ok = fault(c, at, "value '%s' is not the constant '%s'", val, want);
        if (STOP(c)) goto out;
    }
    if (s->enum_vals) {
        size_t i, n = json_array_size(s->enum_vals);
        for (i = 0; i < n && !jeq(json_array_get(s->enum_vals, i), x); i++) {}
        if (i == n) {
            enum_fault(c, s, x, at);
            ok = 0;
            if (STOP(c)) goto out;
        }
    }
    int r = 1;
    if (t & T_OBJECT) r = v_object(c, s, x, at);
    else if (t & T_ARRAY) r = v_array(c, s, x, at);
    else if (t & T_STRING) r = v_string(c, s, x, at);
    else if (t & T_NUMBER) r = v_number(c, s, x, at);
    if (!r) {
        ok = 0;
        if (STOP(c)) goto out;
    }
    for (size_t i = 0; i < s->all_of.n; i++) {
        if (!v_node(c, s->all_of.v[i], x, at)) {
            ok = 0;
            if (STOP(c)) goto out;
        }
    }
    if (s->any_of.n) {
        size_t i;
        for (i = 0; i < s->any_of.n && !v_quiet(c, s->any_of.v[i], x, at); i++) {}
        if (i == s->any_of.n) {
            ok = fault(c, at, "matches none of the %zu alternatives of anyOf", s->any_of.n);
            if (STOP(c)) goto out;
        }
    }
    if (s->one_of.n) {
        size_t hits = 0, first = 0, second = 0;
        for (size_t i = 0; i < s->one_of.n && hits < 2; i++) {
            if (v_quiet(c, s->one_of.v[i], x, at)) {
                if (hits++) second = i;
                else first = i;
            }
        }
        if (hits == 0)
            ok = fault(c, at, "matches none of the %zu alternatives of oneOf", s->one_of.n);
        else if (hits > 1)
            ok = fault(c, at, "matches alternatives %zu and %zu of oneOf, exactly one must match",
                       first + 1, second + 1);
        if (hits != 1 && STOP(c)) goto out;
    }
    if (s->not_ && v_quiet(c, s->not_, x, at)) {
        ok = fault(c, at, "matches the schema in 'not'");
        if (STOP(c)) goto out;
    }
    if (s->if_) {
        const relais_schema *branch = v_quiet(c, s->if_, x, at) ? s->then_ : s->else_;
        if (branch && !v_node(c, branch, x, at)) ok = 0;
    }
out:
    c->depth--;
    return ok;
}

int relais_schema_validate(const relais_schema *sc, const json_t *instance, const char *root,
                           relais_schema_fault *faults, size_t max, size_t *nfaults)
{
    if (nfaults) *nfaults = 0;
    if (!sc || !instance) return 0;
    vctx c = {.faults = faults, .max = faults ? max : 0, .root = root ? root : "$",
              .mctx = sc->set->mctx};     /* only read by pcre2_match() */
    c.quiet = c.max == 0;
    int ok = v_node(&c, sc, instance, NULL);
    pcre2_match_data_free(c.md);
    if (nfaults) *nfaults = c.n;
    return ok;
}
