/*
 * mapping.c - the declarative mapping engine (see mapping.h, docs/MAPPINGS.md).
 *
 * Load: the YAML file is read into a yamltree, then compiled into the
 * structures below: sources (split JSON pointers, compiled XPath, column
 * names), templates, transforms, code tables (jansson hash objects, with a
 * reverse table built at load), output targets (pointer tokens, XML element
 * steps with their namespace, CSV column). The yamltree is freed at the end of
 * the load; nothing is looked up by name when a record is mapped.
 *
 * Apply: values flow as jansson values (NULL = no value). Inbound XML reads
 * through a per-call xmlXPathContext (compiled expressions are shared and
 * read-only); everything a call writes is its own. A loaded mapping is never
 * modified, so any number of threads may apply it at once.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include "mapping.h"
#include "yamltree.h"
#include "jsonptr.h"
#include "safeparse.h"
#include "router.h"
#include "event_int.h"

#define TEXT_MAX 65536      /* longest text value a rule handles */
#define TPL_MAX  8192       /* longest result of a template or a from-list */

/* ---- compiled structures --------------------------------------------------- */

typedef struct msrc {
    char   *text;              /* as written, for messages */
    char  **toks;              /* json pointer tokens (or the one csv column) */
    size_t  ntok;
    xmlXPathCompExprPtr xp;    /* xml inbound */
} msrc;

typedef enum {
    TF_TRIM = 1, TF_UPPER, TF_LOWER, TF_COLLAPSE, TF_DATE, TF_TABLE, TF_PREFIX, TF_SUFFIX,
    TF_CENTS, TF_FROM_CENTS, TF_SPLIT, TF_JOIN
} tf_kind;

typedef struct mtable mtable;

typedef struct mtf {
    tf_kind       kind;
    char         *a, *b;       /* date in/out; prefix/suffix text */
    int           utc;
    int           b_tz;        /* date: the input is Paris wall-clock time */
    int           reverse;
    const mtable *table;
} mtf;

struct mtable {
    char   *name;
    json_t *fwd;               /* vendor code -> canonical code (strings) */
    json_t *rev;               /* canonical -> vendor */
    char   *def, *rev_def;
    char   *ambiguous;         /* first canonical code with two vendor codes, NULL if none */
    int     line;
};

typedef struct tpl_part {
    char *lit;                 /* literal text, or NULL for a placeholder */
    msrc  src;
} tpl_part;

typedef enum { R_FROM = 1, R_FROM_LIST, R_TEMPLATE, R_VALUE, R_EACH } rkind;
typedef enum { AS_NONE = 0, AS_STRING, AS_INTEGER, AS_NUMBER, AS_BOOLEAN } as_kind;

typedef struct xstep {
    char *local;
    const char *prefix;        /* borrowed from the mapping's namespace list; NULL: none */
    const char *href;
    int   attr;
} xstep;

typedef struct mrule mrule;
struct mrule {
    int      line;
    char    *to;               /* as written */
    char   **toks;             /* json target tokens */
    size_t   ntok;
    xstep   *steps;            /* xml target */
    size_t   nsteps;
    rkind    kind;
    msrc    *srcs;
    size_t   nsrc;
    char    *join;
    tpl_part *parts;
    size_t   nparts;
    json_t  *value;
    mtf     *tfs;
    size_t   ntf;
    json_t  *def;
    int      required;
    as_kind  as;
    mrule   *sub;
    size_t   nsub;
};

typedef enum { W_EQUALS = 1, W_NOT_EQUALS, W_IN, W_EXISTS } wop;

typedef struct mcond {
    msrc   src;
    wop    op;
    char **values;             /* NULL-terminated */
    int    exists;
} mcond;

typedef struct mcase {
    int      line;
    char   **match;            /* outbound type patterns, NULL-terminated; NULL: any */
    mcond   *when;
    size_t   nwhen;
    mrule   *head[4];          /* inbound: type, subject, record_id, correlation_id */
    mrule   *data;
    size_t   ndata;
    xstep   *root;             /* outbound xml */
    size_t   nroot;
    int      header;           /* outbound csv */
    char    *content_type;
} mcase;

typedef struct mns { char *prefix, *href; } mns;

struct relais_mapping {
    char             *path;
    relais_map_format fmt;
    mns              *ns;
    size_t            nns;
    mtable           *tables;
    size_t            ntables;
    mcase            *in;
    size_t            nin;
    mcase            *out;
    size_t            nout;
    char            **in_types;
};

static const char *const head_names[4] = { "type", "subject", "record_id", "correlation_id" };

/* ---- small helpers ----------------------------------------------------------- */

static char *xstrdup(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

typedef struct loader {
    const char     *file;
    relais_errlist *errs;
    relais_mapping *m;
    int             nerr;
} loader;

__attribute__((format(printf, 3, 4)))
static void lerr(loader *L, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    relais_errlist_add(L->errs, L->file, line, "%s", msg);
    L->nerr++;
}

/* Unknown keys are errors, naming the known ones. */
static void check_keys(loader *L, const yt_node *map, const char *what, const char *const *known)
{
    for (size_t i = 0; i < map->count; i++) {
        int ok = 0;
        for (size_t k = 0; known[k]; k++)
            if (strcmp(map->keys[i], known[k]) == 0) { ok = 1; break; }
        if (ok) continue;
        char list[256] = "";
        size_t off = 0;
        for (size_t k = 0; known[k] && off < sizeof list; k++)
            off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", k ? ", " : "", known[k]);
        lerr(L, map->key_lines[i], "%s: unknown key '%s'; known keys: %s", what, map->keys[i], list);
    }
}

static const char *scalar_of(loader *L, const yt_node *n, const char *what)
{
    if (!n) return NULL;
    if (n->kind != YT_SCALAR) { lerr(L, n->line, "%s must be a text value", what); return NULL; }
    return n->scalar;
}

/* A YAML scalar as a JSON literal: quoted -> string; plain -> number/bool/string. */
static json_t *literal_of(const yt_node *n)
{
    if (n->quoted) return json_string(n->scalar);
    const char *s = n->scalar;
    if (!strcmp(s, "true")) return json_true();
    if (!strcmp(s, "false")) return json_false();
    if (*s) {
        char *end;
        errno = 0;
        long long ll = strtoll(s, &end, 10);
        if (!*end && !errno && (isdigit((unsigned char)s[0]) || s[0] == '-') && !(s[0] == '0' && s[1]))
            return json_integer(ll);
        double d = strtod(s, &end);
        if (!*end && isfinite(d) && (isdigit((unsigned char)s[0]) || s[0] == '-') && strchr(s, '.'))
            return json_real(d);
    }
    return json_string(s);
}

/* Split a JSON pointer into unescaped tokens. -1 when not a pointer. */
static int split_pointer(const char *p, char ***toks, size_t *ntok)
{
    *toks = NULL;
    *ntok = 0;
    if (relais_json_pointer_valid(p) != 0) return -1;
    if (!*p) return 0;
    size_t n = 0;
    for (const char *c = p; *c; c++) if (*c == '/') n++;
    char **t = calloc(n, sizeof *t);
    if (!t) return -1;
    const char *c = p + 1;
    for (size_t i = 0; i < n; i++) {
        const char *e = strchr(c, '/');
        size_t len = e ? (size_t)(e - c) : strlen(c);
        char *tok = malloc(len + 1);
        if (!tok) { for (size_t k = 0; k < i; k++) free(t[k]); free(t); return -1; }
        size_t o = 0;
        for (size_t k = 0; k < len; k++) {
            if (c[k] == '~') { tok[o++] = c[k + 1] == '1' ? '/' : '~'; k++; }
            else tok[o++] = c[k];
        }
        tok[o] = 0;
        t[i] = tok;
        c = e ? e + 1 : c + len;
    }
    *toks = t;
    *ntok = n;
    return 0;
}

static void free_toks(char **t, size_t n)
{
    for (size_t i = 0; i < n; i++) free(t[i]);
    free(t);
}

static const mns *find_ns(const relais_mapping *m, const char *prefix, size_t plen)
{
    for (size_t i = 0; i < m->nns; i++)
        if (strlen(m->ns[i].prefix) == plen && !strncmp(m->ns[i].prefix, prefix, plen)) return &m->ns[i];
    return NULL;
}

/* ---- sources ------------------------------------------------------------------- */

static void xpath_silent(void *ud, xmlErrorPtr e)
{
    char *buf = ud;
    if (buf && !buf[0] && e && e->message) {
        snprintf(buf, 256, "%s", e->message);
        size_t n = strlen(buf);
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) buf[--n] = 0;
    }
}

static void register_ns(const relais_mapping *m, xmlXPathContextPtr x)
{
    for (size_t i = 0; i < m->nns; i++)
        xmlXPathRegisterNs(x, BAD_CAST m->ns[i].prefix, BAD_CAST m->ns[i].href);
}

/* how: the format sources are read with (inbound: the mapping's; outbound: json). */
static int compile_src(loader *L, msrc *s, const char *text, relais_map_format how, int line,
                       const char *what)
{
    memset(s, 0, sizeof *s);
    s->text = xstrdup(text);
    if (!s->text) { lerr(L, line, "out of memory"); return -1; }
    if (how == RELAIS_MAP_CSV) {
        if (!*text) { lerr(L, line, "%s: empty column name", what); return -1; }
        s->toks = calloc(1, sizeof *s->toks);
        if (!s->toks || !(s->toks[0] = xstrdup(text))) { lerr(L, line, "out of memory"); return -1; }
        s->ntok = 1;
        return 0;
    }
    if (how == RELAIS_MAP_JSON) {
        if (split_pointer(text, &s->toks, &s->ntok) != 0) {
            lerr(L, line, "%s: '%s' is not a JSON pointer (write '/%s')", what, text, text);
            return -1;
        }
        return 0;
    }
    /* XPath: compile, then try it once on an empty document so that an
     * unknown namespace prefix or function is reported now, with the line. */
    char xerr[256] = "";
    xmlXPathContextPtr x = xmlXPathNewContext(NULL);
    if (!x) { lerr(L, line, "out of memory"); return -1; }
    x->error = xpath_silent;
    x->userData = xerr;
    register_ns(L->m, x);
    /* Compiled inside parentheses: libxml2 would otherwise compile a plain
     * location path as a "streaming" pattern, which visits the whole subtree
     * of the context node (measured: 15 % of the inbound cost of a Cityweb
     * record, bench/translate). The value is the same. */
    size_t tl = strlen(text);
    char *wrapped = malloc(tl + 3);
    if (!wrapped) { xmlXPathFreeContext(x); lerr(L, line, "out of memory"); return -1; }
    wrapped[0] = '(';
    memcpy(wrapped + 1, text, tl);
    wrapped[tl + 1] = ')';
    wrapped[tl + 2] = 0;
    s->xp = xmlXPathCtxtCompile(x, BAD_CAST wrapped);
    free(wrapped);
    if (!s->xp) {
        xmlXPathFreeContext(x);
        lerr(L, line, "%s: XPath '%s' does not compile%s%s", what, text, xerr[0] ? ": " : "", xerr);
        return -1;
    }
    xmlDocPtr d = xmlReadMemory("<x/>", 4, "probe.xml", NULL, XML_PARSE_NONET);
    if (d) {
        x->doc = d;
        x->node = xmlDocGetRootElement(d);
        xmlXPathObjectPtr r = xmlXPathCompiledEval(s->xp, x);
        if (!r) {
            lerr(L, line, "%s: XPath '%s' fails%s%s", what, text, xerr[0] ? ": " : "", xerr);
            xmlXPathFreeContext(x);
            xmlFreeDoc(d);
            return -1;
        }
        xmlXPathFreeObject(r);
        xmlFreeDoc(d);
    }
    xmlXPathFreeContext(x);
    return 0;
}

static void free_src(msrc *s)
{
    free(s->text);
    free_toks(s->toks, s->ntok);
    if (s->xp) xmlXPathFreeCompExpr(s->xp);
}

/* ---- templates ------------------------------------------------------------------ */

static int compile_template(loader *L, mrule *r, const char *t, relais_map_format how)
{
    size_t cap = 4;
    r->parts = calloc(cap, sizeof *r->parts);
    if (!r->parts) { lerr(L, r->line, "out of memory"); return -1; }
    char lit[1024];
    size_t ll = 0;
    const char *c = t;
    while (*c) {
        if (r->nparts + 2 > cap) {
            tpl_part *np = realloc(r->parts, cap * 2 * sizeof *np);
            if (!np) { lerr(L, r->line, "out of memory"); return -1; }
            memset(np + cap, 0, cap * sizeof *np);
            r->parts = np;
            cap *= 2;
        }
        if ((c[0] == '{' && c[1] == '{') || (c[0] == '}' && c[1] == '}')) {
            if (ll + 1 < sizeof lit) lit[ll++] = c[0];
            c += 2;
            continue;
        }
        if (*c == '}') { lerr(L, r->line, "template: single '}' (write '}}' for a brace)"); return -1; }
        if (*c == '{') {
            const char *e = strchr(c + 1, '}');
            if (!e) { lerr(L, r->line, "template: '{' without its '}'"); return -1; }
            if (ll) {
                lit[ll] = 0;
                r->parts[r->nparts++].lit = xstrdup(lit);
                ll = 0;
            }
            char src[512];
            size_t n = (size_t)(e - c - 1);
            if (n == 0 || n >= sizeof src) { lerr(L, r->line, "template: empty or too long placeholder"); return -1; }
            memcpy(src, c + 1, n);
            src[n] = 0;
            int rc = compile_src(L, &r->parts[r->nparts].src, src, how, r->line, "template");
            r->nparts++;                    /* counted even when refused: freed with the rule */
            if (rc != 0) return -1;
            c = e + 1;
            continue;
        }
        if (ll + 1 < sizeof lit) lit[ll++] = *c;
        else { lerr(L, r->line, "template: literal text longer than 1023 bytes"); return -1; }
        c++;
    }
    if (ll) {
        lit[ll] = 0;
        r->parts[r->nparts++].lit = xstrdup(lit);
    }
    return 0;
}

/* ---- transforms ----------------------------------------------------------------- */

static const mtable *find_table(const relais_mapping *m, const char *name)
{
    for (size_t i = 0; i < m->ntables; i++)
        if (!strcmp(m->tables[i].name, name)) return &m->tables[i];
    return NULL;
}

static int compile_tf(loader *L, mtf *tf, const yt_node *n)
{
    static const struct { const char *name; tf_kind k; } words[] = {
        { "trim", TF_TRIM }, { "upper", TF_UPPER }, { "lower", TF_LOWER }, { "collapse", TF_COLLAPSE },
        { "cents", TF_CENTS }, { "from_cents", TF_FROM_CENTS }, { NULL, 0 }
    };
    const char *known = "trim, upper, lower, collapse, cents, from_cents, date, table, prefix, suffix, split, join";
    memset(tf, 0, sizeof *tf);
    if (n->kind == YT_SCALAR) {
        for (size_t i = 0; words[i].name; i++)
            if (!strcmp(n->scalar, words[i].name)) { tf->kind = words[i].k; return 0; }
        lerr(L, n->line, "unknown transform '%s'; known: %s", n->scalar, known);
        return -1;
    }
    if (n->kind != YT_MAP || n->count == 0) {
        lerr(L, n->line, "a transform is a word (trim) or a map ({table: NAME})");
        return -1;
    }
    const char *k = n->keys[0];
    if (!strcmp(k, "date")) {
        static const char *const dk[] = { "date", NULL };
        check_keys(L, n, "transform", dk);
        const yt_node *d = n->values[0];
        static const char *const keys[] = { "in", "out", "utc", "tz", NULL };
        if (d->kind != YT_MAP) { lerr(L, d->line, "date: give {in: FORMAT, out: FORMAT}"); return -1; }
        check_keys(L, d, "date", keys);
        const char *in = scalar_of(L, yt_get(d, "in"), "date.in");
        const char *out = scalar_of(L, yt_get(d, "out"), "date.out");
        const char *utc = scalar_of(L, yt_get(d, "utc"), "date.utc");
        if (!in || !out) { lerr(L, d->line, "date: both 'in' and 'out' formats are required"); return -1; }
        tf->kind = TF_DATE;
        tf->a = xstrdup(in);
        tf->b = xstrdup(out);
        tf->utc = utc && (!strcmp(utc, "true") || !strcmp(utc, "yes"));
        const char *tz = scalar_of(L, yt_get(d, "tz"), "date.tz");
        if (tz) {
            if (strcmp(tz, "Europe/Paris") != 0) {
                lerr(L, yt_get(d, "tz")->line, "date.tz: only Europe/Paris is known (metropolitan French time)");
                return -1;
            }
            tf->b_tz = 1;
        }
        return 0;
    }
    if (!strcmp(k, "table")) {
        static const char *const keys[] = { "table", "reverse", NULL };
        check_keys(L, n, "transform", keys);
        const char *name = scalar_of(L, n->values[0], "table");
        const char *rev = scalar_of(L, yt_get(n, "reverse"), "reverse");
        if (!name) return -1;
        tf->kind = TF_TABLE;
        tf->table = find_table(L->m, name);
        tf->reverse = rev && (!strcmp(rev, "true") || !strcmp(rev, "yes"));
        if (!tf->table) { lerr(L, n->line, "no table named '%s' in tables:", name); return -1; }
        if (tf->reverse && tf->table->ambiguous) {
            lerr(L, n->line, "table '%s' cannot be used in reverse: code '%s' comes from two vendor codes",
                 name, tf->table->ambiguous);
            return -1;
        }
        return 0;
    }
    if (!strcmp(k, "split") || !strcmp(k, "join")) {
        static const char *const keys[] = { "split", "join", NULL };
        check_keys(L, n, "transform", keys);
        if (n->count != 1) { lerr(L, n->line, "one of split or join per transform"); return -1; }
        const char *v = scalar_of(L, n->values[0], k);
        if (!v) return -1;
        if (k[0] == 's' && !*v) { lerr(L, n->line, "split: the separator must not be empty"); return -1; }
        tf->kind = k[0] == 's' ? TF_SPLIT : TF_JOIN;
        tf->a = xstrdup(v);
        return 0;
    }
    if (!strcmp(k, "prefix") || !strcmp(k, "suffix")) {
        static const char *const keys[] = { "prefix", "suffix", NULL };
        check_keys(L, n, "transform", keys);
        if (n->count != 1) { lerr(L, n->line, "one of prefix or suffix per transform"); return -1; }
        const char *v = scalar_of(L, n->values[0], k);
        if (!v) return -1;
        tf->kind = k[0] == 'p' ? TF_PREFIX : TF_SUFFIX;
        tf->a = xstrdup(v);
        return 0;
    }
    lerr(L, n->key_lines[0], "unknown transform '%s'; known: %s", k, known);
    return -1;
}

/* ---- rules ---------------------------------------------------------------------- */

typedef enum { TGT_NONE = 0, TGT_JSON, TGT_XML, TGT_CSV } tgt_kind;

static void free_rule(mrule *r);
static int compile_rules(loader *L, const yt_node *seq, mrule **out, size_t *nout,
                         relais_map_format how, tgt_kind tgt, const char *what);

static int compile_xml_path(loader *L, const char *path, int line, xstep **steps, size_t *nsteps,
                            int allow_attr)
{
    *steps = NULL;
    *nsteps = 0;
    if (!*path) { lerr(L, line, "empty XML path"); return -1; }
    size_t n = 1;
    for (const char *c = path; *c; c++) if (*c == '/') n++;
    xstep *s = calloc(n, sizeof *s);
    if (!s) { lerr(L, line, "out of memory"); return -1; }
    *steps = s;
    const char *c = path;
    for (size_t i = 0; i < n; i++) {
        const char *e = strchr(c, '/');
        size_t len = e ? (size_t)(e - c) : strlen(c);
        char step[256];
        if (len == 0 || len >= sizeof step) {
            lerr(L, line, "XML path '%s': empty or too long step", path);
            return -1;
        }
        memcpy(step, c, len);
        step[len] = 0;
        const char *name = step;
        if (step[0] == '@') {
            if (!allow_attr || i != n - 1) {
                lerr(L, line, "XML path '%s': an attribute (@name) can only be the last step", path);
                return -1;
            }
            s[i].attr = 1;
            name = step + 1;
        }
        const char *colon = strchr(name, ':');
        if (colon) {
            const mns *ns = find_ns(L->m, name, (size_t)(colon - name));
            if (!ns) {
                lerr(L, line, "XML path '%s': prefix '%.*s' is not declared in namespaces:", path,
                     (int)(colon - name), name);
                return -1;
            }
            s[i].prefix = ns->prefix;
            s[i].href = ns->href;
            name = colon + 1;
        }
        if (xmlValidateNCName(BAD_CAST name, 0) != 0) {
            lerr(L, line, "XML path '%s': '%s' is not an XML name", path, name);
            return -1;
        }
        s[i].local = xstrdup(name);
        (*nsteps)++;
        c = e ? e + 1 : c + len;
    }
    return 0;
}

static int compile_target(loader *L, mrule *r, tgt_kind tgt)
{
    if (tgt == TGT_JSON) {
        if (split_pointer(r->to, &r->toks, &r->ntok) != 0) {
            lerr(L, r->line, "to: '%s' is not a JSON pointer (write '/%s')", r->to, r->to);
            return -1;
        }
        return 0;
    }
    if (tgt == TGT_XML) {
        if (!*r->to) {
            r->nsteps = 0;         /* the current element itself (text content) */
            return 0;
        }
        return compile_xml_path(L, r->to, r->line, &r->steps, &r->nsteps, r->kind != R_EACH);
    }
    if (tgt == TGT_CSV && !*r->to) { lerr(L, r->line, "to: empty column name"); return -1; }
    return 0;
}

static as_kind parse_as(loader *L, const yt_node *n)
{
    const char *s = scalar_of(L, n, "as");
    if (!s) return AS_NONE;
    if (!strcmp(s, "string")) return AS_STRING;
    if (!strcmp(s, "integer")) return AS_INTEGER;
    if (!strcmp(s, "number")) return AS_NUMBER;
    if (!strcmp(s, "boolean")) return AS_BOOLEAN;
    lerr(L, n->line, "as: '%s' is not one of string, integer, number, boolean", s);
    return AS_NONE;
}

/* One rule. tgt TGT_NONE: a head rule (type, subject...) with no `to`. */
static int compile_rule(loader *L, mrule *r, const yt_node *n, relais_map_format how,
                        tgt_kind tgt, const char *what)
{
    static const char *const keys[] = { "to", "from", "join", "template", "value", "each", "data",
                                        "transform", "default", "required", "as", NULL };
    static const char *const head_keys[] = { "from", "join", "template", "value", "transform",
                                             "default", "required", "as", NULL };
    memset(r, 0, sizeof *r);
    r->line = n->line;
    if (n->kind == YT_SCALAR && tgt == TGT_NONE) {      /* a literal: type: fr.relais... */
        r->kind = R_VALUE;
        r->value = json_string(n->scalar);
        r->to = xstrdup(what);
        return 0;
    }
    if (n->kind != YT_MAP) { lerr(L, n->line, "%s: a rule is a map (to:, from:, ...)", what); return -1; }
    check_keys(L, n, what, tgt == TGT_NONE ? head_keys : keys);
    int before = L->nerr;

    const yt_node *to = yt_get(n, "to");
    if (tgt != TGT_NONE) {
        if (!to || to->kind != YT_SCALAR) { lerr(L, n->line, "%s: 'to' is required", what); return -1; }
        r->to = xstrdup(to->scalar);
    } else {
        r->to = xstrdup(what);
    }
    const yt_node *from = yt_get(n, "from"), *tpl = yt_get(n, "template"), *val = yt_get(n, "value"),
                  *each = yt_get(n, "each");
    int nkinds = !!from + !!tpl + !!val + !!each;
    if (nkinds != 1) {
        lerr(L, n->line, "%s %s: give exactly one of from, template, value, each", what, r->to);
        return -1;
    }
    if (from && from->kind == YT_SEQ) {
        r->kind = R_FROM_LIST;
        r->srcs = calloc(from->count ? from->count : 1, sizeof *r->srcs);
        if (!r->srcs) { lerr(L, n->line, "out of memory"); return -1; }
        for (size_t i = 0; i < from->count; i++) {
            const char *s = scalar_of(L, from->values[i], "from");
            r->nsrc++;
            if (s) compile_src(L, &r->srcs[i], s, how, from->values[i]->line, "from");
        }
        const char *j = scalar_of(L, yt_get(n, "join"), "join");
        r->join = xstrdup(j ? j : "");
    } else if (from) {
        const char *s = scalar_of(L, from, "from");
        r->kind = R_FROM;
        r->srcs = calloc(1, sizeof *r->srcs);
        if (!r->srcs) { lerr(L, n->line, "out of memory"); return -1; }
        r->nsrc = 1;
        if (s) compile_src(L, &r->srcs[0], s, how, from->line, "from");
        if (yt_get(n, "join")) lerr(L, yt_get(n, "join")->line, "join: only with a list of from sources");
    } else if (tpl) {
        const char *s = scalar_of(L, tpl, "template");
        r->kind = R_TEMPLATE;
        if (!s || compile_template(L, r, s, how) != 0) return -1;
    } else if (val) {
        if (val->kind != YT_SCALAR) { lerr(L, val->line, "value: a literal text, number or boolean"); return -1; }
        r->kind = R_VALUE;
        r->value = literal_of(val);
    } else {
        const char *s = scalar_of(L, each, "each");
        r->kind = R_EACH;
        r->srcs = calloc(1, sizeof *r->srcs);
        if (!r->srcs) { lerr(L, each->line, "out of memory"); return -1; }
        r->nsrc = 1;
        if (!s || compile_src(L, &r->srcs[0], s, how, each->line, "each") != 0) return -1;
        if (tgt == TGT_CSV) { lerr(L, each->line, "each: CSV output has no repeated fields"); return -1; }
        const yt_node *d = yt_get(n, "data");
        if (!d || d->kind != YT_SEQ) { lerr(L, each->line, "each: give the item's rules as data: [..]"); return -1; }
        if (compile_rules(L, d, &r->sub, &r->nsub, how, tgt, "data") != 0) return -1;
    }
    if (r->kind != R_EACH && yt_get(n, "data"))
        lerr(L, yt_get(n, "data")->line, "data: only with each:");
    const yt_node *tfs = yt_get(n, "transform");
    if (tfs) {
        if (tfs->kind == YT_SCALAR || tfs->kind == YT_MAP) {
            r->tfs = calloc(1, sizeof *r->tfs);
            if (!r->tfs) return -1;
            compile_tf(L, &r->tfs[0], tfs);
            r->ntf = 1;                     /* counted even when refused: freed with the rule */
        } else {
            r->tfs = calloc(tfs->count ? tfs->count : 1, sizeof *r->tfs);
            if (!r->tfs) return -1;
            for (size_t i = 0; i < tfs->count; i++) {
                compile_tf(L, &r->tfs[r->ntf], tfs->values[i]);
                r->ntf++;
            }
        }
        if (r->kind == R_EACH) lerr(L, tfs->line, "transform: not with each: (transform the item's fields)");
    }
    const yt_node *def = yt_get(n, "default");
    if (def) {
        if (def->kind != YT_SCALAR) lerr(L, def->line, "default: a literal value");
        else r->def = literal_of(def);
    }
    const char *req = scalar_of(L, yt_get(n, "required"), "required");
    if (req) {
        if (!strcmp(req, "true") || !strcmp(req, "yes")) r->required = 1;
        else if (strcmp(req, "false") && strcmp(req, "no"))
            lerr(L, yt_get(n, "required")->line, "required: true or false");
    }
    if (yt_get(n, "as")) r->as = parse_as(L, yt_get(n, "as"));
    if (tgt != TGT_NONE) compile_target(L, r, tgt);
    return L->nerr > before ? -1 : 0;
}

static int compile_rules(loader *L, const yt_node *seq, mrule **out, size_t *nout,
                         relais_map_format how, tgt_kind tgt, const char *what)
{
    *out = NULL;
    *nout = 0;
    if (seq->kind != YT_SEQ) { lerr(L, seq->line, "%s: a list of rules", what); return -1; }
    mrule *rs = calloc(seq->count ? seq->count : 1, sizeof *rs);
    if (!rs) { lerr(L, seq->line, "out of memory"); return -1; }
    *out = rs;
    int rc = 0;
    for (size_t i = 0; i < seq->count; i++) {
        if (compile_rule(L, &rs[i], seq->values[i], how, tgt, what) != 0) rc = -1;
        (*nout)++;
    }
    return rc;
}

static void free_rules(mrule *rs, size_t n)
{
    for (size_t i = 0; i < n; i++) free_rule(&rs[i]);
    free(rs);
}

static void free_rule(mrule *r)
{
    if (!r) return;
    free(r->to);
    free_toks(r->toks, r->ntok);
    for (size_t i = 0; i < r->nsteps; i++) free(r->steps[i].local);
    free(r->steps);
    for (size_t i = 0; i < r->nsrc; i++) free_src(&r->srcs[i]);
    free(r->srcs);
    free(r->join);
    for (size_t i = 0; i < r->nparts; i++) {
        free(r->parts[i].lit);
        free_src(&r->parts[i].src);
    }
    free(r->parts);
    json_decref(r->value);
    for (size_t i = 0; i < r->ntf; i++) { free(r->tfs[i].a); free(r->tfs[i].b); }
    free(r->tfs);
    json_decref(r->def);
    free_rules(r->sub, r->nsub);
}

/* ---- cases ---------------------------------------------------------------------- */

static int compile_when(loader *L, mcase *c, const yt_node *w, relais_map_format how)
{
    size_t n = w->kind == YT_SEQ ? w->count : 1;
    c->when = calloc(n, sizeof *c->when);
    if (!c->when) return -1;
    for (size_t i = 0; i < n; i++) {
        const yt_node *e = w->kind == YT_SEQ ? w->values[i] : w;
        static const char *const keys[] = { "from", "equals", "not_equals", "in", "exists", NULL };
        if (e->kind != YT_MAP) { lerr(L, e->line, "when: {from: SRC, equals: V}"); return -1; }
        check_keys(L, e, "when", keys);
        mcond *cd = &c->when[c->nwhen];
        const char *src = scalar_of(L, yt_get(e, "from"), "when.from");
        if (!src) { lerr(L, e->line, "when: 'from' is required"); return -1; }
        int rc = compile_src(L, &cd->src, src, how, e->line, "when");
        c->nwhen++;
        if (rc != 0) return -1;
        const yt_node *eq = yt_get(e, "equals"), *ne = yt_get(e, "not_equals"), *in = yt_get(e, "in"),
                      *ex = yt_get(e, "exists");
        if (!!eq + !!ne + !!in + !!ex != 1) {
            lerr(L, e->line, "when: give exactly one of equals, not_equals, in, exists");
            return -1;
        }
        if (ex) {
            const char *s = scalar_of(L, ex, "exists");
            cd->op = W_EXISTS;
            cd->exists = s && (!strcmp(s, "true") || !strcmp(s, "yes"));
            continue;
        }
        const yt_node *vals = eq ? eq : ne ? ne : in;
        cd->op = eq ? W_EQUALS : ne ? W_NOT_EQUALS : W_IN;
        size_t nv = vals->kind == YT_SEQ ? vals->count : 1;
        cd->values = calloc(nv + 1, sizeof *cd->values);
        if (!cd->values) return -1;
        for (size_t k = 0; k < nv; k++) {
            const char *s = scalar_of(L, vals->kind == YT_SEQ ? vals->values[k] : vals, "when value");
            cd->values[k] = xstrdup(s ? s : "");
        }
    }
    return 0;
}

static int compile_case(loader *L, mcase *c, const yt_node *n, int outbound)
{
    static const char *const in_keys[] = { "when", "type", "subject", "record_id", "correlation_id",
                                           "data", NULL };
    static const char *const out_keys[] = { "match", "when", "root", "header", "content_type", "data", NULL };
    relais_map_format fmt = L->m->fmt;
    memset(c, 0, sizeof *c);
    c->line = n->line;
    c->header = 1;
    if (n->kind != YT_MAP) { lerr(L, n->line, "%s: each case is a map", outbound ? "outbound" : "inbound"); return -1; }
    check_keys(L, n, outbound ? "outbound case" : "inbound case", outbound ? out_keys : in_keys);
    /* inbound reads the vendor record; outbound reads the event (JSON) */
    relais_map_format how = outbound ? RELAIS_MAP_JSON : fmt;
    const yt_node *w = yt_get(n, "when");
    if (w) compile_when(L, c, w, how);
    const yt_node *data = yt_get(n, "data");
    if (!outbound) {
        for (int h = 0; h < 4; h++) {
            const yt_node *hn = yt_get(n, head_names[h]);
            if (!hn) continue;
            c->head[h] = calloc(1, sizeof *c->head[h]);
            if (!c->head[h]) return -1;
            compile_rule(L, c->head[h], hn, how, TGT_NONE, head_names[h]);
        }
        if (!c->head[0]) lerr(L, n->line, "inbound case: 'type' is required (the canonical event type)");
        else if (c->head[0]->kind == R_VALUE) {
            const char *t = json_string_value(c->head[0]->value);
            if (!t || !relais_event_type_valid(t))
                lerr(L, c->head[0]->line, "type: '%s' is not a valid event type", t ? t : "");
        }
        if (!data) lerr(L, n->line, "inbound case: 'data' rules are required");
        else compile_rules(L, data, &c->data, &c->ndata, how, TGT_JSON, "data");
        return 0;
    }
    const yt_node *match = yt_get(n, "match");
    if (match) {
        size_t nm = match->kind == YT_SEQ ? match->count : 1;
        c->match = calloc(nm + 1, sizeof *c->match);
        if (!c->match) return -1;
        for (size_t i = 0; i < nm; i++) {
            const char *s = scalar_of(L, match->kind == YT_SEQ ? match->values[i] : match, "match");
            c->match[i] = xstrdup(s ? s : "");
        }
    }
    const char *ct = scalar_of(L, yt_get(n, "content_type"), "content_type");
    if (ct) {
        if (strlen(ct) >= 64 || strpbrk(ct, "\r\n")) lerr(L, yt_get(n, "content_type")->line, "content_type: too long or not one line");
        c->content_type = xstrdup(ct);
    }
    const char *hdr = scalar_of(L, yt_get(n, "header"), "header");
    if (hdr) {
        if (fmt != RELAIS_MAP_CSV) lerr(L, yt_get(n, "header")->line, "header: only for csv mappings");
        c->header = !(strcmp(hdr, "false") == 0 || strcmp(hdr, "no") == 0);
    }
    const yt_node *root = yt_get(n, "root");
    if (fmt == RELAIS_MAP_XML) {
        const char *rs = scalar_of(L, root, "root");
        size_t nsteps = 0;
        if (!rs) lerr(L, n->line, "outbound case: 'root' (the document element) is required for xml");
        else if (compile_xml_path(L, rs, root->line, &c->root, &c->nroot, 0) == 0 && (nsteps = c->nroot) != 1)
            lerr(L, root->line, "root: one element name, e.g. ec:demande");
    } else if (root) {
        lerr(L, root->line, "root: only for xml mappings");
    }
    tgt_kind tgt = fmt == RELAIS_MAP_XML ? TGT_XML : fmt == RELAIS_MAP_CSV ? TGT_CSV : TGT_JSON;
    if (!data) lerr(L, n->line, "outbound case: 'data' rules are required");
    else compile_rules(L, data, &c->data, &c->ndata, how, tgt, "data");
    return 0;
}

static void free_case(mcase *c)
{
    if (c->match) for (size_t i = 0; c->match[i]; i++) free(c->match[i]);
    free(c->match);
    for (size_t i = 0; i < c->nwhen; i++) {
        free_src(&c->when[i].src);
        if (c->when[i].values) for (size_t k = 0; c->when[i].values[k]; k++) free(c->when[i].values[k]);
        free(c->when[i].values);
    }
    free(c->when);
    for (int h = 0; h < 4; h++) { free_rule(c->head[h]); free(c->head[h]); }
    free_rules(c->data, c->ndata);
    for (size_t i = 0; c->root && i < c->nroot; i++) free(c->root[i].local);
    free(c->root);
    free(c->content_type);
}

/* ---- load ----------------------------------------------------------------------- */

static void compile_tables(loader *L, const yt_node *t)
{
    if (t->kind != YT_MAP) { lerr(L, t->line, "tables: a map of table name -> {values: {...}}"); return; }
    L->m->tables = calloc(t->count ? t->count : 1, sizeof *L->m->tables);
    if (!L->m->tables) return;
    for (size_t i = 0; i < t->count; i++) {
        mtable *tb = &L->m->tables[L->m->ntables++];
        const yt_node *d = t->values[i];
        tb->name = xstrdup(t->keys[i]);
        tb->line = t->key_lines[i];
        tb->fwd = json_object();
        tb->rev = json_object();
        static const char *const keys[] = { "values", "default", "reverse_default", NULL };
        if (d->kind != YT_MAP) { lerr(L, d->line, "table '%s': {values: {...}, default: ...}", tb->name); continue; }
        check_keys(L, d, "table", keys);
        const yt_node *v = yt_get(d, "values");
        if (!v || v->kind != YT_MAP) { lerr(L, d->line, "table '%s': 'values' (a map of code -> code) is required", tb->name); continue; }
        for (size_t k = 0; k < v->count; k++) {
            const char *to = scalar_of(L, v->values[k], "table value");
            if (!to) continue;
            json_object_set_new(tb->fwd, v->keys[k], json_string(to));
            if (json_object_get(tb->rev, to)) {
                if (!tb->ambiguous) tb->ambiguous = xstrdup(to);
            } else {
                json_object_set_new(tb->rev, to, json_string(v->keys[k]));
            }
        }
        const char *def = scalar_of(L, yt_get(d, "default"), "default");
        const char *rdef = scalar_of(L, yt_get(d, "reverse_default"), "reverse_default");
        tb->def = xstrdup(def);
        tb->rev_def = xstrdup(rdef);
    }
}

static relais_mapping *load_tree(const char *name, yt_node *root, relais_errlist *errs)
{
    relais_mapping *m = calloc(1, sizeof *m);
    if (!m) { relais_errlist_add(errs, name, 0, "out of memory"); return NULL; }
    m->path = xstrdup(name);
    loader L = { .file = name, .errs = errs, .m = m };
    static const char *const keys[] = { "format", "namespaces", "tables", "inbound", "outbound",
                                        "description", NULL };
    if (root->kind != YT_MAP) {
        lerr(&L, root->line, "a mapping file is a map (format:, inbound:, outbound:)");
        relais_mapping_destroy(m);
        return NULL;
    }
    check_keys(&L, root, "mapping", keys);
    const char *fmt = scalar_of(&L, yt_get(root, "format"), "format");
    if (!fmt) lerr(&L, root->line, "format: is required (json, xml or csv)");
    else if (!strcmp(fmt, "json")) m->fmt = RELAIS_MAP_JSON;
    else if (!strcmp(fmt, "xml")) m->fmt = RELAIS_MAP_XML;
    else if (!strcmp(fmt, "csv")) m->fmt = RELAIS_MAP_CSV;
    else lerr(&L, yt_get(root, "format")->line, "format: '%s' is not one of json, xml, csv", fmt);
    if (!m->fmt) { relais_mapping_destroy(m); return NULL; }

    const yt_node *ns = yt_get(root, "namespaces");
    if (ns) {
        if (ns->kind != YT_MAP) lerr(&L, ns->line, "namespaces: a map of prefix -> URI");
        else if (m->fmt != RELAIS_MAP_XML) lerr(&L, ns->line, "namespaces: only for xml mappings");
        else {
            m->ns = calloc(ns->count ? ns->count : 1, sizeof *m->ns);
            for (size_t i = 0; m->ns && i < ns->count; i++) {
                const char *href = scalar_of(&L, ns->values[i], "namespace URI");
                if (xmlValidateNCName(BAD_CAST ns->keys[i], 0) != 0 || strchr(ns->keys[i], ':'))
                    lerr(&L, ns->key_lines[i], "namespaces: '%s' is not a valid prefix", ns->keys[i]);
                if (!href || !*href) { lerr(&L, ns->key_lines[i], "namespaces: '%s' needs a URI", ns->keys[i]); continue; }
                m->ns[m->nns].prefix = xstrdup(ns->keys[i]);
                m->ns[m->nns].href = xstrdup(href);
                m->nns++;
            }
        }
    }
    const yt_node *t = yt_get(root, "tables");
    if (t) compile_tables(&L, t);

    const yt_node *in = yt_get(root, "inbound"), *out = yt_get(root, "outbound");
    if (!in && !out) lerr(&L, root->line, "a mapping needs inbound:, outbound: or both");
    if (in) {
        size_t n = in->kind == YT_SEQ ? in->count : 1;
        m->in = calloc(n ? n : 1, sizeof *m->in);
        m->in_types = calloc(n + 1, sizeof *m->in_types);
        if (m->in && m->in_types) {
            size_t nt = 0;
            for (size_t i = 0; i < n; i++) {
                compile_case(&L, &m->in[m->nin], in->kind == YT_SEQ ? in->values[i] : in, 0);
                mcase *c = &m->in[m->nin++];
                if (c->head[0] && c->head[0]->kind == R_VALUE && json_is_string(c->head[0]->value))
                    m->in_types[nt++] = xstrdup(json_string_value(c->head[0]->value));
            }
        }
    }
    if (out) {
        size_t n = out->kind == YT_SEQ ? out->count : 1;
        m->out = calloc(n ? n : 1, sizeof *m->out);
        for (size_t i = 0; m->out && i < n; i++)
            compile_case(&L, &m->out[m->nout++], out->kind == YT_SEQ ? out->values[i] : out, 1);
    }
    if (L.nerr) { relais_mapping_destroy(m); return NULL; }
    return m;
}

relais_mapping *relais_mapping_load(const char *path, relais_errlist *errs)
{
    char err[512] = "";
    yt_node *root = yt_load_file(path, err, sizeof err);
    if (!root) { relais_errlist_add(errs, NULL, 0, "%s", err[0] ? err : "cannot read the mapping"); return NULL; }
    relais_mapping *m = load_tree(path, root, errs);
    yt_free(root);
    return m;
}

relais_mapping *relais_mapping_load_buffer(const char *name, const char *buf, size_t len,
                                           relais_errlist *errs)
{
    char err[512] = "";
    yt_node *root = yt_load_buffer(name, buf, len, err, sizeof err);
    if (!root) { relais_errlist_add(errs, NULL, 0, "%s", err[0] ? err : "cannot read the mapping"); return NULL; }
    relais_mapping *m = load_tree(name, root, errs);
    yt_free(root);
    return m;
}

void relais_mapping_destroy(relais_mapping *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->nin; i++) free_case(&m->in[i]);
    free(m->in);
    for (size_t i = 0; i < m->nout; i++) free_case(&m->out[i]);
    free(m->out);
    if (m->in_types) for (size_t i = 0; m->in_types[i]; i++) free(m->in_types[i]);
    free(m->in_types);
    for (size_t i = 0; i < m->ntables; i++) {
        mtable *t = &m->tables[i];
        free(t->name);
        json_decref(t->fwd);
        json_decref(t->rev);
        free(t->def);
        free(t->rev_def);
        free(t->ambiguous);
    }
    free(m->tables);
    for (size_t i = 0; i < m->nns; i++) { free(m->ns[i].prefix); free(m->ns[i].href); }
    free(m->ns);
    free(m->path);
    free(m);
}

const char *relais_mapping_path(const relais_mapping *m) { return m ? m->path : NULL; }
relais_map_format relais_mapping_format(const relais_mapping *m) { return m->fmt; }
int relais_mapping_has_inbound(const relais_mapping *m) { return m && m->nin > 0; }
int relais_mapping_has_outbound(const relais_mapping *m) { return m && m->nout > 0; }
const char *const *relais_mapping_inbound_types(const relais_mapping *m)
{
    static const char *const none[] = { NULL };
    return m && m->in_types ? (const char *const *)m->in_types : none;
}

/* ---- applying ------------------------------------------------------------------- */

typedef struct mctx {
    const relais_mapping *m;
    relais_map_format how;        /* how sources are read */
    json_t           *jnode;      /* json/csv/outbound: the current node */
    json_t           *jroot;      /* outbound: the event */
    xmlXPathContextPtr x;         /* xml inbound */
    char              xerr[256];
    const char       *local_id;
    char             *err;
    size_t            errlen;
    /* The field being written, for messages, kept as a stack of labels
     * ("data", "/members", index 2, "/given_name") and only formatted when
     * an error is reported: "data /members[2] /given_name". */
    struct { const char *text; long idx; } lab[32];
    int               nlab;
} mctx;

static void label_set(mctx *c, const char *text)
{
    c->lab[0].text = text;
    c->lab[0].idx = -1;
    c->nlab = 1;
}

static int label_push(mctx *c, const char *text)
{
    int old = c->nlab;
    if (c->nlab < (int)(sizeof c->lab / sizeof c->lab[0])) {
        c->lab[c->nlab].text = text;
        c->lab[c->nlab].idx = -1;
        c->nlab++;
    }
    return old;
}

static void label_format(const mctx *c, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = 0;
    for (int i = 0; i < c->nlab && off < len; i++) {
        int n = c->lab[i].idx >= 0
              ? snprintf(buf + off, len - off, "%s%s[%ld]", i ? " " : "", c->lab[i].text, c->lab[i].idx)
              : snprintf(buf + off, len - off, "%s%s", i ? " " : "", c->lab[i].text);
        if (n < 0) break;
        off += (size_t)n;
    }
}

__attribute__((format(printf, 3, 4)))
static int aerr(mctx *c, int line, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char field[256];
    label_format(c, field, sizeof field);
    snprintf(c->err, c->errlen, "%s:%d: %s: %s", c->m->path, line, field, msg);
    return -1;
}

/* The text of a scalar value; -1 for objects/arrays/null/too long. Reals
 * get the shortest of %.15g/%.16g/%.17g that reads back the same value, so
 * a longitude 2.3522 stays "2.3522" in vendor documents. */
static int text_of(const json_t *v, char *buf, size_t len)
{
    if (json_is_real(v) && len >= 32) {
        double d = json_real_value(v);
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, len, "%.*g", prec, d);
            if (strtod(buf, NULL) == d) break;
        }
        return 0;
    }
    return relais_json_scalar_text(v, buf, len);
}

static json_t *xpath_value(xmlXPathObjectPtr r)
{
    if (!r) return NULL;
    switch (r->type) {
    case XPATH_NODESET: {
        if (!r->nodesetval || r->nodesetval->nodeNr == 0) return NULL;
        xmlChar *s = xmlXPathCastNodeToString(r->nodesetval->nodeTab[0]);
        json_t *v = s ? json_string((const char *)s) : NULL;
        xmlFree(s);
        return v;
    }
    case XPATH_STRING:
        return json_string(r->stringval ? (const char *)r->stringval : "");
    case XPATH_BOOLEAN:
        return json_boolean(r->boolval);
    case XPATH_NUMBER:
        if (isnan(r->floatval)) return NULL;
        if (r->floatval == floor(r->floatval) && fabs(r->floatval) < 9e15)
            return json_integer((json_int_t)r->floatval);
        return json_real(r->floatval);
    default:
        return NULL;
    }
}

/* Read a source: a new reference, or NULL (no value). -1 on an XPath error. */
static int read_src(mctx *c, const msrc *s, int line, json_t **out)
{
    *out = NULL;
    if (s->xp) {
        c->xerr[0] = 0;
        xmlXPathObjectPtr r = xmlXPathCompiledEval(s->xp, c->x);
        if (!r) return aerr(c, line, "XPath '%s' failed%s%s", s->text, c->xerr[0] ? ": " : "", c->xerr);
        *out = xpath_value(r);
        xmlXPathFreeObject(r);
        return 0;
    }
    json_t *v = c->jnode;
    for (size_t i = 0; v && i < s->ntok; i++) {
        if (json_is_object(v)) {
            json_t *nv = json_object_get(v, s->toks[i]);
            if (!nv && i == 0 && c->jroot && v == c->jroot && c->local_id && !strcmp(s->toks[0], "localid"))
                return (*out = s->ntok == 1 ? json_string(c->local_id) : NULL), 0;
            v = nv;
        } else if (json_is_array(v)) {
            const char *t = s->toks[i];
            char *end;
            if (!isdigit((unsigned char)t[0]) || (t[0] == '0' && t[1])) return 0;
            unsigned long idx = strtoul(t, &end, 10);
            if (*end) return 0;
            v = json_array_get(v, idx);
        } else {
            return 0;
        }
    }
    if (v && !json_is_null(v)) *out = json_incref(v);
    return 0;
}

static int is_empty_text(const json_t *v)
{
    return json_is_string(v) && json_string_length(v) == 0;
}

/* UTF-8 aware case change for ASCII, Latin-1 letters and oe/OE. */
static void change_case(char *s, int upper)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        if (*p < 0x80) {
            *p = (unsigned char)(upper ? toupper(*p) : tolower(*p));
            p++;
        } else if (p[0] == 0xC3 && p[1]) {
            unsigned char b = p[1];
            if (upper && b >= 0xA0 && b <= 0xBE && b != 0xB7) p[1] = (unsigned char)(b - 0x20);
            else if (!upper && b >= 0x80 && b <= 0x9E && b != 0x97) p[1] = (unsigned char)(b + 0x20);
            p += 2;
        } else if (p[0] == 0xC5 && (p[1] == 0x92 || p[1] == 0x93)) {
            p[1] = upper ? 0x92 : 0x93;
            p += 2;
        } else {
            p++;
        }
    }
}

static void trim(char *s)
{
    size_t n = strlen(s), a = 0;
    while (a < n && isspace((unsigned char)s[a])) a++;
    while (n > a && isspace((unsigned char)s[n - 1])) n--;
    memmove(s, s + a, n - a);
    s[n - a] = 0;
}

static void collapse(char *s)
{
    char *w = s;
    int sp = 0;
    for (char *r = s; *r; r++) {
        if (isspace((unsigned char)*r)) { sp = 1; continue; }
        if (sp && w != s) *w++ = ' ';
        sp = 0;
        *w++ = *r;
    }
    *w = 0;
}

/* "42.50", "42,5", "-3" -> cents. -1 when not a decimal with at most 2 decimals. */
static int parse_cents(const char *s, long long *out)
{
    int neg = 0;
    if (*s == '-') { neg = 1; s++; } else if (*s == '+') s++;
    if (!isdigit((unsigned char)*s)) return -1;
    long long units = 0;
    while (isdigit((unsigned char)*s)) {
        if (units > LLONG_MAX / 1000) return -1;
        units = units * 10 + (*s++ - '0');
    }
    long long frac = 0;
    if (*s == '.' || *s == ',') {
        s++;
        int nd = 0;
        while (isdigit((unsigned char)*s)) {
            if (nd < 2) frac = frac * 10 + (*s - '0');
            else if (*s != '0') return -1;
            nd++;
            s++;
        }
        if (nd == 0) return -1;
        if (nd == 1) frac *= 10;
    }
    if (*s) return -1;
    *out = (units * 100 + frac) * (neg ? -1 : 1);
    return 0;
}

/* UTC offset in seconds of Paris wall-clock time tm (EU rule: summer time
 * from the last Sunday of March 02:00 to the last Sunday of October 03:00). */
static long paris_offset(const struct tm *tm)
{
    int y = tm->tm_year + 1900, mon = tm->tm_mon + 1;
    if (mon < 3 || mon > 10) return 3600;
    if (mon > 3 && mon < 10) return 7200;
    struct tm last = { .tm_year = tm->tm_year, .tm_mon = tm->tm_mon, .tm_mday = 31, .tm_hour = 12 };
    time_t t = timegm(&last);
    struct tm g;
    gmtime_r(&t, &g);
    int sunday = 31 - g.tm_wday;
    (void)y;
    if (mon == 3) return tm->tm_mday > sunday || (tm->tm_mday == sunday && tm->tm_hour >= 2) ? 7200 : 3600;
    return tm->tm_mday < sunday || (tm->tm_mday == sunday && tm->tm_hour < 3) ? 7200 : 3600;
}

/* strftime with "%:z" (RFC 3339 offset "+01:00") taken from off seconds. */
static size_t format_date(char *out, size_t len, const char *fmt, const struct tm *tm, long off)
{
    char f2[256], oz[48];
    snprintf(oz, sizeof oz, "%c%02ld:%02ld", off < 0 ? '-' : '+', labs(off) / 3600, (labs(off) % 3600) / 60);
    size_t o = 0;
    for (const char *p = fmt; *p && o + 8 < sizeof f2; p++) {
        if (p[0] == '%' && p[1] == ':' && p[2] == 'z') {
            for (const char *q = oz; *q; q++) f2[o++] = *q;
            p += 2;
        } else if (p[0] == '%' && p[1] == '%') {
            f2[o++] = '%';
            f2[o++] = '%';
            p++;
        } else {
            f2[o++] = *p;
        }
    }
    f2[o] = 0;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    return strftime(out, len, f2, tm);   /* the format comes from the mapping file */
#pragma GCC diagnostic pop
}

static int apply_tf(mctx *c, const mrule *r, const mtf *tf, json_t **v)
{
    char buf[TEXT_MAX];
    if (tf->kind == TF_JOIN) {
        /* a list of texts -> one text; a single text passes as it is */
        if (!json_is_array(*v)) return text_of(*v, buf, sizeof buf) == 0 ? 0 : aerr(c, r->line, "join: needs a list of texts");
        size_t off = 0, i;
        json_t *it;
        buf[0] = 0;
        json_array_foreach(*v, i, it) {
            char piece[4096];
            if (text_of(it, piece, sizeof piece) != 0) return aerr(c, r->line, "join: item %zu is not a text", i);
            if (!piece[0]) continue;
            int n = snprintf(buf + off, sizeof buf - off, "%s%s", off ? tf->a : "", piece);
            if (n < 0 || (size_t)n >= sizeof buf - off) return aerr(c, r->line, "value too long");
            off += (size_t)n;
        }
        json_decref(*v);
        *v = json_string(buf);
        return *v ? 0 : aerr(c, r->line, "out of memory");
    }
    if (text_of(*v, buf, sizeof buf) != 0)
        return aerr(c, r->line, "a transform needs a text or number value, got %s",
                    json_is_object(*v) ? "an object" : json_is_array(*v) ? "a list" : "an unusable value");
    json_t *nv = NULL;
    switch (tf->kind) {
    case TF_TRIM: trim(buf); break;
    case TF_UPPER: change_case(buf, 1); break;
    case TF_LOWER: change_case(buf, 0); break;
    case TF_COLLAPSE: collapse(buf); break;
    case TF_PREFIX:
    case TF_SUFFIX: {
        char tmp[TEXT_MAX];
        int n = tf->kind == TF_PREFIX ? snprintf(tmp, sizeof tmp, "%s%s", tf->a, buf)
                                      : snprintf(tmp, sizeof tmp, "%s%s", buf, tf->a);
        if (n < 0 || (size_t)n >= sizeof tmp) return aerr(c, r->line, "value too long");
        memcpy(buf, tmp, (size_t)n + 1);
        break;
    }
    case TF_DATE: {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        tm.tm_mday = 1;
        char *end = strptime(buf, tf->a, &tm);
        if (!end || *end) return aerr(c, r->line, "'%s' does not match the date format '%s'", buf, tf->a);
        long off = tf->b_tz ? paris_offset(&tm) : tm.tm_gmtoff;
        tm.tm_gmtoff = off;
        if (tf->utc) {
            time_t t = timegm(&tm) - off;
            gmtime_r(&t, &tm);
            off = 0;
        }
        char out[256];
        size_t n = format_date(out, sizeof out, tf->b, &tm, off);
        if (n == 0) return aerr(c, r->line, "date format '%s' gives nothing", tf->b);
        memcpy(buf, out, n + 1);
        break;
    }
    case TF_TABLE: {
        const mtable *t = tf->table;
        json_t *hit = json_object_get(tf->reverse ? t->rev : t->fwd, buf);
        const char *def = tf->reverse ? t->rev_def : t->def;
        if (hit) snprintf(buf, sizeof buf, "%s", json_string_value(hit));
        else if (def) snprintf(buf, sizeof buf, "%s", def);
        else return aerr(c, r->line, "value '%s' is not in table '%s'%s", buf, t->name,
                         tf->reverse ? " (reverse)" : "");
        break;
    }
    case TF_CENTS: {
        long long cents;
        if (parse_cents(buf, &cents) != 0) return aerr(c, r->line, "'%s' is not an amount (like 42.50)", buf);
        nv = json_integer(cents);
        break;
    }
    case TF_SPLIT: {
        /* one text -> a list of the non-empty, trimmed parts */
        nv = json_array();
        size_t sl = strlen(tf->a);
        char *p = buf;
        for (;;) {
            char *e = strstr(p, tf->a);
            if (e) *e = 0;
            trim(p);
            if (*p) json_array_append_new(nv, json_string(p));
            if (!e) break;
            p = e + sl;
        }
        break;
    }
    case TF_JOIN:
        break;
    case TF_FROM_CENTS: {
        char *end;
        errno = 0;
        long long cents = strtoll(buf, &end, 10);
        if (!buf[0] || *end || errno) return aerr(c, r->line, "'%s' is not a whole number of cents", buf);
        unsigned long long a = cents < 0 ? (unsigned long long)(-(cents + 1)) + 1 : (unsigned long long)cents;
        snprintf(buf, sizeof buf, "%s%llu.%02llu", cents < 0 ? "-" : "", a / 100, a % 100);
        break;
    }
    }
    if (!nv) nv = json_string(buf);
    if (!nv) return aerr(c, r->line, "value is not valid UTF-8 or out of memory");
    json_decref(*v);
    *v = nv;
    return 0;
}

static int convert_as(mctx *c, const mrule *r, json_t **v)
{
    char buf[512];
    json_t *nv = NULL;
    if (r->as == AS_NONE) return 0;
    if (r->as == AS_STRING) {
        if (json_is_string(*v)) return 0;
        if (text_of(*v, buf, sizeof buf) != 0) return aerr(c, r->line, "cannot be a text");
        nv = json_string(buf);
    } else if (r->as == AS_INTEGER) {
        if (json_is_integer(*v)) return 0;
        if (json_is_real(*v) && json_real_value(*v) == floor(json_real_value(*v)) &&
            fabs(json_real_value(*v)) < 9e15)
            nv = json_integer((json_int_t)json_real_value(*v));
        else if (json_is_string(*v)) {
            snprintf(buf, sizeof buf, "%s", json_string_value(*v));
            trim(buf);
            char *end;
            errno = 0;
            long long ll = strtoll(buf, &end, 10);
            if (!buf[0] || *end || errno) return aerr(c, r->line, "'%s' is not an integer", json_string_value(*v));
            nv = json_integer(ll);
        } else return aerr(c, r->line, "is not an integer");
    } else if (r->as == AS_NUMBER) {
        if (json_is_number(*v)) return 0;
        if (!json_is_string(*v)) return aerr(c, r->line, "is not a number");
        snprintf(buf, sizeof buf, "%s", json_string_value(*v));
        trim(buf);
        for (char *p = buf; *p; p++) if (*p == ',') *p = '.';
        char *end;
        errno = 0;
        double d = strtod(buf, &end);
        if (!buf[0] || *end || errno || !isfinite(d)) return aerr(c, r->line, "'%s' is not a number", json_string_value(*v));
        if (d == floor(d) && fabs(d) < 9e15 && !strpbrk(buf, ".eE")) nv = json_integer((json_int_t)d);
        else nv = json_real(d);
    } else {
        if (json_is_boolean(*v)) return 0;
        if (text_of(*v, buf, sizeof buf) != 0) return aerr(c, r->line, "is not a boolean");
        change_case(buf, 0);
        trim(buf);
        if (!strcmp(buf, "true") || !strcmp(buf, "1") || !strcmp(buf, "yes") || !strcmp(buf, "oui") ||
            !strcmp(buf, "o") || !strcmp(buf, "y")) nv = json_true();
        else if (!strcmp(buf, "false") || !strcmp(buf, "0") || !strcmp(buf, "no") || !strcmp(buf, "non") ||
                 !strcmp(buf, "n")) nv = json_false();
        else return aerr(c, r->line, "'%s' is not a boolean (true/false, oui/non, 1/0)", buf);
    }
    json_decref(*v);
    *v = nv;
    return 0;
}

/* The value of a non-each rule: *out a new reference or NULL (no value). */
static int eval_rule(mctx *c, const mrule *r, json_t **out)
{
    *out = NULL;
    json_t *v = NULL;
    switch (r->kind) {
    case R_FROM:
        if (read_src(c, &r->srcs[0], r->line, &v) != 0) return -1;
        break;
    case R_FROM_LIST:
    case R_TEMPLATE: {
        char acc[TPL_MAX];              /* on the stack: this runs for every record */
        size_t al = 0;
        int any = 0, missing = 0;
        size_t n = r->kind == R_FROM_LIST ? r->nsrc : r->nparts;
        for (size_t i = 0; i < n; i++) {
            const char *lit = r->kind == R_TEMPLATE ? r->parts[i].lit : NULL;
            char piece[4096];
            if (lit) {
                snprintf(piece, sizeof piece, "%s", lit);
            } else {
                const msrc *s = r->kind == R_FROM_LIST ? &r->srcs[i] : &r->parts[i].src;
                json_t *pv = NULL;
                if (read_src(c, s, r->line, &pv) != 0) return -1;
                int bad = pv && text_of(pv, piece, sizeof piece) != 0;
                json_decref(pv);
                if (bad) return aerr(c, r->line, "'%s' is not a text value", s->text);
                if (!pv || !piece[0]) {
                    missing = 1;
                    continue;
                }
                if (r->kind == R_FROM_LIST && any && al + strlen(r->join) < TPL_MAX) {
                    memcpy(acc + al, r->join, strlen(r->join));
                    al += strlen(r->join);
                }
                any = 1;
            }
            size_t pl = strlen(piece);
            if (al + pl >= TPL_MAX) return aerr(c, r->line, "value longer than %d bytes", TPL_MAX - 1);
            memcpy(acc + al, piece, pl);
            al += pl;
        }
        acc[al] = 0;
        if (r->kind == R_FROM_LIST ? any : !missing) v = json_string(acc);
        break;
    }
    case R_VALUE:
        v = json_incref(r->value);
        break;
    case R_EACH:
        return aerr(c, r->line, "internal: each evaluated as a value");
    }
    if (v && json_is_null(v)) { json_decref(v); v = NULL; }
    for (size_t i = 0; v && i < r->ntf; i++)
        if (apply_tf(c, r, &r->tfs[i], &v) != 0) { json_decref(v); return -1; }
    if (v && (is_empty_text(v) || (json_is_array(v) && json_array_size(v) == 0))) { json_decref(v); v = NULL; }
    if (!v && r->def) v = json_incref(r->def);
    if (!v) {
        if (r->required) {
            const char *src = r->nsrc ? r->srcs[0].text : r->kind == R_TEMPLATE ? "template" : "value";
            return aerr(c, r->line, "required value is missing (from %s)", src);
        }
        return 0;
    }
    if (convert_as(c, r, &v) != 0) { json_decref(v); return -1; }
    *out = v;
    return 0;
}

/* ---- writers -------------------------------------------------------------------- */

/* Set v (stolen) at toks in obj, creating intermediate objects. */
static int json_put(mctx *c, const mrule *r, json_t *obj, json_t *v)
{
    if (r->ntok == 0) { json_decref(v); return aerr(c, r->line, "to: cannot replace the whole document"); }
    json_t *cur = obj;
    for (size_t i = 0; i + 1 < r->ntok; i++) {
        json_t *next = json_object_get(cur, r->toks[i]);
        if (!next) {
            next = json_object();
            if (!next || json_object_set_new(cur, r->toks[i], next) != 0) { json_decref(v); return aerr(c, r->line, "out of memory"); }
        } else if (!json_is_object(next)) {
            json_decref(v);
            return aerr(c, r->line, "'%s' is already set to a value that is not an object", r->toks[i]);
        }
        cur = next;
    }
    if (json_object_set_new(cur, r->toks[r->ntok - 1], v) != 0) return aerr(c, r->line, "out of memory");
    return 0;
}

static xmlNsPtr ns_for(xmlNodePtr at, const xstep *s)
{
    if (!s->href) return NULL;
    return xmlSearchNsByHref(at->doc, at, BAD_CAST s->href);
}

static xmlNodePtr xml_child(xmlNodePtr parent, const xstep *s, int create_new)
{
    if (!create_new) {
        for (xmlNodePtr ch = parent->children; ch; ch = ch->next) {
            if (ch->type != XML_ELEMENT_NODE || strcmp((const char *)ch->name, s->local)) continue;
            const char *h = ch->ns ? (const char *)ch->ns->href : NULL;
            if ((!h && !s->href) || (h && s->href && !strcmp(h, s->href))) return ch;
        }
    }
    return xmlNewChild(parent, ns_for(parent, s), BAD_CAST s->local, NULL);
}

/* Walk/create steps[0..n-1) under at; the last step: element (new if
 * create_last) or attribute. Returns the element written into. */
static xmlNodePtr xml_walk(xmlNodePtr at, const xstep *steps, size_t n, int create_last)
{
    for (size_t i = 0; at && i + 1 < n; i++) at = xml_child(at, &steps[i], 0);
    if (!at || n == 0) return at;
    if (steps[n - 1].attr) return at;
    return xml_child(at, &steps[n - 1], create_last);
}

static int xml_put(mctx *c, const mrule *r, xmlNodePtr at, const json_t *v)
{
    char buf[TEXT_MAX];
    if (text_of(v, buf, sizeof buf) != 0) return aerr(c, r->line, "an XML value must be a text or a number");
    xmlNodePtr el = xml_walk(at, r->steps, r->nsteps, 0);
    if (!el) return aerr(c, r->line, "out of memory");
    if (r->nsteps && r->steps[r->nsteps - 1].attr) {
        const xstep *s = &r->steps[r->nsteps - 1];
        if (!xmlSetNsProp(el, ns_for(el, s), BAD_CAST s->local, BAD_CAST buf)) return aerr(c, r->line, "out of memory");
        return 0;
    }
    xmlNodeSetContent(el, NULL);
    xmlNodeAddContent(el, BAD_CAST buf);
    return 0;
}

typedef struct out_t {
    tgt_kind   kind;
    json_t    *obj;        /* json: the object written into; csv: column -> value */
    xmlNodePtr node;       /* xml: the element written into */
} out_t;

static int run_rules(mctx *c, const mrule *rs, size_t n, out_t *o);

static int run_each(mctx *c, const mrule *r, out_t *o)
{
    json_t *list = NULL;
    xmlXPathObjectPtr xr = NULL;
    size_t count = 0;
    if (r->srcs[0].xp) {
        c->xerr[0] = 0;
        xr = xmlXPathCompiledEval(r->srcs[0].xp, c->x);
        if (!xr) return aerr(c, r->line, "XPath '%s' failed%s%s", r->srcs[0].text, c->xerr[0] ? ": " : "", c->xerr);
        if (xr->type != XPATH_NODESET) { xmlXPathFreeObject(xr); return aerr(c, r->line, "each: '%s' does not give nodes", r->srcs[0].text); }
        count = xr->nodesetval ? (size_t)xr->nodesetval->nodeNr : 0;
    } else {
        if (read_src(c, &r->srcs[0], r->line, &list) != 0) return -1;
        if (list && !json_is_array(list)) {       /* one object where a list was expected */
            json_t *a = json_array();
            json_array_append_new(a, list);
            list = a;
        }
        count = list ? json_array_size(list) : 0;
    }
    if (count == 0 && r->required) {
        json_decref(list);
        xmlXPathFreeObject(xr);
        return aerr(c, r->line, "required list is empty or missing (each %s)", r->srcs[0].text);
    }
    json_t *arr = NULL;
    int rc = 0;
    json_t *saved_j = c->jnode;
    xmlNodePtr saved_x = c->x ? c->x->node : NULL;
    int top = c->nlab - 1;
    for (size_t i = 0; i < count && rc == 0; i++) {
        if (top >= 0) c->lab[top].idx = (long)i;
        if (xr) c->x->node = xr->nodesetval->nodeTab[i];
        else c->jnode = json_array_get(list, i);
        if (o->kind == TGT_XML) {
            xmlNodePtr el = r->nsteps ? xml_walk(o->node, r->steps, r->nsteps, 1) : o->node;
            out_t sub = { .kind = TGT_XML, .node = el };
            rc = el ? run_rules(c, r->sub, r->nsub, &sub) : aerr(c, r->line, "out of memory");
        } else {
            json_t *item = json_object();
            out_t sub = { .kind = TGT_JSON, .obj = item };
            /* a single rule with to "" makes list items scalars */
            if (r->nsub == 1 && r->sub[0].ntok == 0 && r->sub[0].kind != R_EACH) {
                json_t *v = NULL;
                rc = eval_rule(c, &r->sub[0], &v);
                json_decref(item);
                item = v;
            } else {
                rc = run_rules(c, r->sub, r->nsub, &sub);
                if (rc == 0 && json_object_size(item) == 0) { json_decref(item); item = NULL; }
            }
            if (rc == 0 && item) {
                if (!arr) arr = json_array();
                json_array_append_new(arr, item);
            } else {
                json_decref(item);
            }
        }
    }
    c->jnode = saved_j;
    if (c->x) c->x->node = saved_x;
    if (top >= 0 && rc == 0) c->lab[top].idx = -1;
    json_decref(list);
    xmlXPathFreeObject(xr);
    if (rc == 0 && arr) rc = json_put(c, r, o->obj, arr);
    else json_decref(arr);
    return rc;
}

static int run_rules(mctx *c, const mrule *rs, size_t n, out_t *o)
{
    int saved = c->nlab;
    for (size_t i = 0; i < n; i++) {
        const mrule *r = &rs[i];
        c->nlab = saved;
        label_push(c, r->to);
        int rc;
        if (r->kind == R_EACH) {
            rc = run_each(c, r, o);
        } else {
            json_t *v = NULL;
            rc = eval_rule(c, r, &v);
            if (rc == 0 && v) {
                if (o->kind == TGT_XML) { rc = xml_put(c, r, o->node, v); json_decref(v); }
                else if (o->kind == TGT_CSV) {
                    char buf[TEXT_MAX];
                    if (text_of(v, buf, sizeof buf) != 0) rc = aerr(c, r->line, "a CSV value must be a text or a number");
                    else json_object_set_new(o->obj, r->to, json_string(buf));
                    json_decref(v);
                } else rc = json_put(c, r, o->obj, v);
            }
        }
        if (rc != 0) return -1;       /* the labels stay: the caller reports them */
    }
    c->nlab = saved;
    return 0;
}

static int cond_holds(mctx *c, const mcase *cs, int *holds)
{
    *holds = 1;
    for (size_t i = 0; i < cs->nwhen && *holds; i++) {
        const mcond *w = &cs->when[i];
        json_t *v = NULL;
        label_set(c, "when");
        if (read_src(c, &w->src, cs->line, &v) != 0) return -1;
        char buf[1024] = "";
        int has = v && text_of(v, buf, sizeof buf) == 0;
        int present = v != NULL && !is_empty_text(v);
        json_decref(v);
        switch (w->op) {
        case W_EXISTS: *holds = present == w->exists; break;
        case W_EQUALS: *holds = has && !strcmp(buf, w->values[0]); break;
        case W_NOT_EQUALS: *holds = !(has && !strcmp(buf, w->values[0])); break;
        case W_IN: {
            int hit = 0;
            for (size_t k = 0; has && w->values[k]; k++) if (!strcmp(buf, w->values[k])) hit = 1;
            *holds = hit;
            break;
        }
        }
    }
    return 0;
}

static int map_in(mctx *c, relais_mapped_record *out)
{
    for (size_t i = 0; i < c->m->nin; i++) {
        const mcase *cs = &c->m->in[i];
        int holds;
        if (cond_holds(c, cs, &holds) != 0) return -1;
        if (!holds) continue;
        relais_mapped_record r = { 0 };
        char *heads[4] = { NULL, NULL, NULL, NULL };
        for (int h = 0; h < 4; h++) {
            if (!cs->head[h]) continue;
            json_t *v = NULL;
            label_set(c, head_names[h]);
            if (eval_rule(c, cs->head[h], &v) != 0) goto fail;
            if (v) {
                char buf[1024];
                if (text_of(v, buf, sizeof buf) != 0) {
                    json_decref(v);
                    aerr(c, cs->head[h]->line, "must be a text value");
                    goto fail;
                }
                heads[h] = xstrdup(buf);
                json_decref(v);
            }
        }
        if (!heads[0]) {
            label_set(c, "type");
            aerr(c, cs->head[0]->line, "no event type");
            goto fail;
        }
        r.data = json_object();
        label_set(c, "data");
        out_t o = { .kind = TGT_JSON, .obj = r.data };
        if (run_rules(c, cs->data, cs->ndata, &o) != 0) { json_decref(r.data); goto fail; }
        r.type = heads[0];
        r.subject = heads[1];
        r.record_id = heads[2];
        r.correlation_id = heads[3];
        *out = r;
        return 0;
    fail:
        /* the record's id, when it could be read, names the refusal in the
         * rejections journal */
        out->record_id = heads[2];
        heads[2] = NULL;
        for (int h = 0; h < 4; h++) free(heads[h]);
        return -1;
    }
    snprintf(c->err, c->errlen, "%s: no inbound case matches this record", c->m->path);
    return 1;
}

int relais_mapping_inbound_json(const relais_mapping *m, const json_t *rec,
                                relais_mapped_record *out, char *errstr, size_t errlen)
{
    if (m->fmt == RELAIS_MAP_XML) {
        snprintf(errstr, errlen, "%s: an xml mapping needs an XML record", m->path);
        return -1;
    }
    if (!json_is_object(rec)) {
        snprintf(errstr, errlen, "%s: the record is not a JSON object", m->path);
        return -1;
    }
    mctx c = { .m = m, .how = m->fmt, .jnode = (json_t *)rec, .err = errstr, .errlen = errlen };
    return map_in(&c, out);
}

/* One XPath context per thread, reused from record to record with libxml2's
 * object cache on (a new context per record was 7 % of the inbound cost).
 * Freed when the thread ends. */
static pthread_key_t  g_xkey;
static pthread_once_t g_xonce = PTHREAD_ONCE_INIT;

static void xctx_free(void *p) { xmlXPathFreeContext(p); }
static void xkey_init(void) { (void)pthread_key_create(&g_xkey, xctx_free); }

static xmlXPathContextPtr thread_xpath(const relais_mapping *m, xmlDocPtr doc)
{
    pthread_once(&g_xonce, xkey_init);
    xmlXPathContextPtr x = pthread_getspecific(g_xkey);
    if (!x) {
        x = xmlXPathNewContext(doc);
        if (!x) return NULL;
        xmlXPathContextSetCache(x, 1, -1, 0);
        if (pthread_setspecific(g_xkey, x) != 0) {
            xmlXPathFreeContext(x);
            return NULL;
        }
    }
    x->doc = doc;
    xmlXPathRegisteredNsCleanup(x);
    register_ns(m, x);
    return x;
}

int relais_mapping_inbound_xml(const relais_mapping *m, xmlDocPtr doc,
                               relais_mapped_record *out, char *errstr, size_t errlen)
{
    if (m->fmt != RELAIS_MAP_XML) {
        snprintf(errstr, errlen, "%s: not an xml mapping", m->path);
        return -1;
    }
    xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
    if (!root) {
        snprintf(errstr, errlen, "%s: the document has no root element", m->path);
        return -1;
    }
    mctx c = { .m = m, .how = RELAIS_MAP_XML, .err = errstr, .errlen = errlen };
    c.x = thread_xpath(m, doc);
    if (!c.x) { snprintf(errstr, errlen, "out of memory"); return -1; }
    c.x->error = xpath_silent;
    c.x->userData = c.xerr;
    c.x->node = root;
    int rc = map_in(&c, out);
    c.x->userData = NULL;          /* c.xerr dies with this call */
    c.x->error = NULL;
    c.x->doc = NULL;
    c.x->node = NULL;
    return rc;
}

int relais_mapping_inbound_raw(const relais_mapping *m, const char *buf, size_t len,
                               const char *name, relais_mapped_record *out,
                               char *errstr, size_t errlen)
{
    if (m->fmt == RELAIS_MAP_XML) {
        xmlDocPtr doc = relais_xml_parse(buf, len, name, NULL, errstr, errlen);
        if (!doc) return -1;
        int rc = relais_mapping_inbound_xml(m, doc, out, errstr, errlen);
        xmlFreeDoc(doc);
        return rc;
    }
    if (m->fmt == RELAIS_MAP_CSV) {
        snprintf(errstr, errlen, "%s: a csv mapping takes records as column -> value objects, not raw text", m->path);
        return -1;
    }
    json_t *rec = relais_json_parse(buf, len, name, NULL, errstr, errlen);
    if (!rec) return -1;
    int rc = relais_mapping_inbound_json(m, rec, out, errstr, errlen);
    json_decref(rec);
    return rc;
}

void relais_mapped_record_clear(relais_mapped_record *r)
{
    if (!r) return;
    free(r->type);
    free(r->subject);
    free(r->record_id);
    free(r->correlation_id);
    json_decref(r->data);
    memset(r, 0, sizeof *r);
}

/* ---- outbound ------------------------------------------------------------------- */

static int csv_field(char **buf, size_t *len, size_t *cap, const char *s)
{
    int quote = strpbrk(s, ",\"\r\n") != NULL || (s[0] == ' ' || (s[0] && s[strlen(s) - 1] == ' '));
    size_t need = strlen(s) * 2 + 4;
    if (*len + need >= *cap) {
        size_t nc = (*cap + need) * 2;
        char *nb = realloc(*buf, nc);
        if (!nb) return -1;
        *buf = nb;
        *cap = nc;
    }
    char *w = *buf + *len;
    if (quote) *w++ = '"';
    for (const char *p = s; *p; p++) {
        if (*p == '"') *w++ = '"';
        *w++ = *p;
    }
    if (quote) *w++ = '"';
    *len = (size_t)(w - *buf);
    return 0;
}

static int render_csv(const mcase *cs, json_t *row, relais_rendered *out)
{
    size_t cap = 256, len = 0;
    char *buf = malloc(cap);
    if (!buf) return -1;
    for (int pass = cs->header ? 0 : 1; pass < 2; pass++) {
        for (size_t i = 0; i < cs->ndata; i++) {
            if (i && csv_field(&buf, &len, &cap, "") == 0) buf[len++] = ',';
            const char *v = pass == 0 ? cs->data[i].to : json_string_value(json_object_get(row, cs->data[i].to));
            if (csv_field(&buf, &len, &cap, v ? v : "") != 0) { free(buf); return -1; }
        }
        if (csv_field(&buf, &len, &cap, "") != 0) { free(buf); return -1; }
        buf[len++] = '\n';
    }
    buf[len] = 0;
    out->body = buf;
    out->len = len;
    return 0;
}

int relais_mapping_outbound(const relais_mapping *m, const json_t *event, const char *local_id,
                            relais_rendered *out, char *errstr, size_t errlen)
{
    mctx c = { .m = m, .how = RELAIS_MAP_JSON, .jnode = (json_t *)event, .jroot = (json_t *)event,
               .local_id = local_id, .err = errstr, .errlen = errlen };
    const char *type = json_string_value(json_object_get(event, "type"));
    for (size_t i = 0; i < m->nout; i++) {
        const mcase *cs = &m->out[i];
        if (cs->match) {
            int hit = 0;
            for (size_t k = 0; cs->match[k] && type; k++) if (relais_pattern_match(cs->match[k], type)) hit = 1;
            if (!hit) continue;
        }
        int holds;
        if (cond_holds(&c, cs, &holds) != 0) return -1;
        if (!holds) continue;
        relais_rendered r;
        memset(&r, 0, sizeof r);
        label_set(&c, "data");
        if (m->fmt == RELAIS_MAP_XML) {
            xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
            xmlNodePtr root = doc ? xmlNewDocNode(doc, NULL, BAD_CAST cs->root[0].local, NULL) : NULL;
            if (!root) { xmlFreeDoc(doc); return aerr(&c, cs->line, "out of memory"); }
            xmlDocSetRootElement(doc, root);
            for (size_t k = 0; k < m->nns; k++) {
                xmlNsPtr ns = xmlNewNs(root, BAD_CAST m->ns[k].href, BAD_CAST m->ns[k].prefix);
                if (ns && cs->root[0].href && !strcmp(m->ns[k].href, cs->root[0].href)) xmlSetNs(root, ns);
            }
            out_t o = { .kind = TGT_XML, .node = root };
            if (run_rules(&c, cs->data, cs->ndata, &o) != 0) { xmlFreeDoc(doc); return -1; }
            xmlChar *mem = NULL;
            int n = 0;
            xmlDocDumpFormatMemoryEnc(doc, &mem, &n, "UTF-8", 1);
            xmlFreeDoc(doc);
            if (!mem) return aerr(&c, cs->line, "out of memory");
            r.body = malloc((size_t)n + 1);
            if (r.body) { memcpy(r.body, mem, (size_t)n); r.body[n] = 0; r.len = (size_t)n; }
            xmlFree(mem);
            snprintf(r.content_type, sizeof r.content_type, "application/xml");
        } else if (m->fmt == RELAIS_MAP_CSV) {
            json_t *row = json_object();
            out_t o = { .kind = TGT_CSV, .obj = row };
            int rc = run_rules(&c, cs->data, cs->ndata, &o);
            if (rc == 0) rc = render_csv(cs, row, &r);
            json_decref(row);
            if (rc != 0) return -1;
            snprintf(r.content_type, sizeof r.content_type, "text/csv");
        } else {
            json_t *doc = json_object();
            out_t o = { .kind = TGT_JSON, .obj = doc };
            if (run_rules(&c, cs->data, cs->ndata, &o) != 0) { json_decref(doc); return -1; }
            r.body = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(15));
            json_decref(doc);
            if (r.body) r.len = strlen(r.body);
            snprintf(r.content_type, sizeof r.content_type, "application/json");
        }
        if (!r.body) return aerr(&c, cs->line, "out of memory");
        if (cs->content_type) snprintf(r.content_type, sizeof r.content_type, "%s", cs->content_type);
        *out = r;
        return 0;
    }
    snprintf(errstr, errlen, "%s: no outbound case matches event type %s", m->path, type ? type : "(none)");
    return 1;
}

void relais_rendered_clear(relais_rendered *r)
{
    if (!r) return;
    free(r->body);
    memset(r, 0, sizeof *r);
}
