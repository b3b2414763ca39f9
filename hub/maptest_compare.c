/*
 * maptest_compare.c - how `relais test` compares what a mapping produced with
 * what a test expects, and how it shows the difference (maptest.h):
 *   JSON  as JSON values (numbers by value, keys in any order), shown
 *         indented with sorted keys;
 *   XML   in canonical form: comments and whitespace-only text between
 *         elements dropped, one prefix per namespace URI shared by both
 *         documents (taken from the expected one where possible), attributes
 *         sorted, then exclusive C14N (libxml2) compared byte for byte; shown
 *         as the indented serialisation of the normalised documents;
 *   diff  a unified line diff (LCS over the lines between the common head
 *         and tail; no library of our set does diffs).
 * Pure functions; no global state.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libxml/c14n.h>
#include <libxml/tree.h>
#include "maptest.h"

#define MT_DIFF_CONTEXT  3
#define MT_LCS_MAX_CELLS (4u * 1024 * 1024)    /* beyond: the changed middle is shown whole */

/* ---- JSON comparison ------------------------------------------------------ */

/* Equal as JSON values: numbers by value (1 == 1.0), objects regardless of
 * key order. */
int relais_maptest_json_equal(const json_t *a, const json_t *b)
{
    if (!a || !b) return a == b;
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b)) return 0;
    switch (json_typeof(a)) {
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b)) return 0;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)a, k, v) {
            if (!relais_maptest_json_equal(v, json_object_get(b, k))) return 0;
        }
        return 1;
    }
    case JSON_ARRAY: {
        if (json_array_size(a) != json_array_size(b)) return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!relais_maptest_json_equal(json_array_get(a, i), json_array_get(b, i))) return 0;
        return 1;
    }
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    default:
        return 1;   /* true, false, null */
    }
}

char *relais_maptest_json_pretty(const json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    return s ? s : strdup("(cannot serialise)");
}

/* ---- XML canonical form --------------------------------------------------- */

/* One prefix per namespace URI, shared by the expected and the actual
 * document so that prefix choices do not matter. `prefix` may be "" (the
 * default namespace, for elements only); `aprefix` is never empty (for
 * attributes). Prefixes come from the expected document where possible. */
typedef struct ns_entry {
    char *uri, *prefix, *aprefix;
} ns_entry;

typedef struct ns_table {
    ns_entry *e;
    size_t    n, cap;
    int       nons_elements;   /* some element has no namespace: no default namespace then */
} ns_table;

static void ns_table_free(ns_table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->e[i].uri);
        free(t->e[i].prefix);
        free(t->e[i].aprefix);
    }
    free(t->e);
}

static ns_entry *ns_find(ns_table *t, const char *uri)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->e[i].uri, uri) == 0) return &t->e[i];
    return NULL;
}

static int prefix_used(const ns_table *t, const char *p)
{
    for (size_t i = 0; i < t->n; i++)
        if ((t->e[i].prefix && strcmp(t->e[i].prefix, p) == 0) ||
            (t->e[i].aprefix && strcmp(t->e[i].aprefix, p) == 0))
            return 1;
    return 0;
}

static char *fresh_prefix(const ns_table *t)
{
    char p[32];
    for (int k = 1;; k++) {
        snprintf(p, sizeof p, "ns%d", k);
        if (!prefix_used(t, p)) return strdup(p);
    }
}

/* Record that uri is used with prefix (NULL: default namespace) by an
 * element (is_attr 0) or an attribute. -1 on allocation failure. */
static int ns_note(ns_table *t, const char *uri, const char *prefix, int is_attr)
{
    ns_entry *e = ns_find(t, uri);
    if (!e) {
        if (t->n == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 8;
            ns_entry *ne = realloc(t->e, cap * sizeof *ne);
            if (!ne) return -1;
            t->e = ne;
            t->cap = cap;
        }
        e = &t->e[t->n];
        memset(e, 0, sizeof *e);
        e->uri = strdup(uri);
        if (!e->uri) return -1;
        t->n++;
        const char *want = prefix ? prefix : "";
        e->prefix = prefix_used(t, want) ? fresh_prefix(t) : strdup(want);
        if (!e->prefix) return -1;
    }
    if (is_attr && !e->aprefix) {
        if (*e->prefix) e->aprefix = strdup(e->prefix);
        else if (prefix && !prefix_used(t, prefix)) e->aprefix = strdup(prefix);
        else e->aprefix = fresh_prefix(t);
        if (!e->aprefix) return -1;
    }
    return 0;
}

static int ns_scan(ns_table *t, xmlNodePtr n)
{
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE) continue;
        if (n->ns && n->ns->href) {
            if (ns_note(t, (const char *)n->ns->href, (const char *)n->ns->prefix, 0) != 0) return -1;
        } else {
            t->nons_elements = 1;
        }
        for (xmlAttrPtr a = n->properties; a; a = a->next)
            if (a->ns && a->ns->href &&
                ns_note(t, (const char *)a->ns->href, (const char *)a->ns->prefix, 1) != 0)
                return -1;
        if (ns_scan(t, n->children) != 0) return -1;
    }
    return 0;
}

/* No default namespace when some element is in no namespace (the canonical
 * form and the indented text would otherwise be ambiguous to read). */
static int ns_finish(ns_table *t)
{
    if (!t->nons_elements) return 0;
    for (size_t i = 0; i < t->n; i++) {
        if (*t->e[i].prefix) continue;
        char *p = t->e[i].aprefix ? strdup(t->e[i].aprefix) : fresh_prefix(t);
        if (!p) return -1;
        free(t->e[i].prefix);
        t->e[i].prefix = p;
    }
    return 0;
}

static int only_space(const xmlChar *s)
{
    for (; s && *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') return 0;
    return 1;
}

static int has_element_child(xmlNodePtr n)
{
    for (xmlNodePtr c = n->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE) return 1;
    return 0;
}

static const char *attr_uri(xmlAttrPtr a)
{
    return a->ns && a->ns->href ? (const char *)a->ns->href : "";
}

static int attr_cmp(const void *pa, const void *pb)
{
    xmlAttrPtr a = *(xmlAttrPtr const *)pa, b = *(xmlAttrPtr const *)pb;
    int c = strcmp(attr_uri(a), attr_uri(b));
    return c ? c : strcmp((const char *)a->name, (const char *)b->name);
}

/* Namespaces of the table declared on the new root, looked up by URI. */
typedef struct ns_decls {
    xmlNsPtr *elem, *attr;   /* parallel to the table entries */
} ns_decls;

static xmlNsPtr decl_for(const ns_table *t, const ns_decls *d, const char *uri, int is_attr)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->e[i].uri, uri) == 0) return is_attr ? d->attr[i] : d->elem[i];
    return NULL;
}

static int norm_copy(xmlDocPtr nd, xmlNodePtr parent, xmlNodePtr src, const ns_table *t,
                     const ns_decls *d)
{
    xmlNodePtr node = xmlNewDocNode(nd, NULL, src->name, NULL);
    if (!node) return -1;
    if (parent) {
        xmlAddChild(parent, node);
    } else {
        xmlDocSetRootElement(nd, node);
    }
    if (!parent) {
        /* every namespace of both documents declared once, on the root */
        for (size_t i = 0; i < t->n; i++) {
            const xmlChar *href = (const xmlChar *)t->e[i].uri;
            d->elem[i] = xmlNewNs(node, href, *t->e[i].prefix ? (const xmlChar *)t->e[i].prefix : NULL);
            if (t->e[i].aprefix && strcmp(t->e[i].aprefix, t->e[i].prefix) != 0)
                d->attr[i] = xmlNewNs(node, href, (const xmlChar *)t->e[i].aprefix);
            else
                d->attr[i] = d->elem[i];
        }
    }
    if (src->ns && src->ns->href) xmlSetNs(node, decl_for(t, d, (const char *)src->ns->href, 0));

    size_t na = 0;
    for (xmlAttrPtr a = src->properties; a; a = a->next) na++;
    if (na) {
        xmlAttrPtr *attrs = malloc(na * sizeof *attrs);
        if (!attrs) return -1;
        na = 0;
        for (xmlAttrPtr a = src->properties; a; a = a->next) attrs[na++] = a;
        qsort(attrs, na, sizeof *attrs, attr_cmp);
        for (size_t i = 0; i < na; i++) {
            xmlChar *val = xmlNodeListGetString(src->doc, attrs[i]->children, 1);
            xmlNsPtr ns = attrs[i]->ns && attrs[i]->ns->href
                              ? decl_for(t, d, (const char *)attrs[i]->ns->href, 1) : NULL;
            xmlNewNsProp(node, ns, attrs[i]->name, val ? val : (const xmlChar *)"");
            xmlFree(val);
        }
        free(attrs);
    }

    int mixed = has_element_child(src);
    for (xmlNodePtr c = src->children; c; c = c->next) {
        if (c->type == XML_ELEMENT_NODE) {
            if (norm_copy(nd, node, c, t, d) != 0) return -1;
        } else if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
            if (mixed && only_space(c->content)) continue;
            xmlNodePtr tx = xmlNewDocText(nd, c->content);
            if (!tx) return -1;
            if (!xmlAddChild(node, tx)) xmlFreeNode(tx);   /* merged into the previous text */
        } else if (c->type == XML_PI_NODE) {
            xmlNodePtr pi = xmlNewDocPI(nd, c->name, c->content);
            if (pi) xmlAddChild(node, pi);
        }
        /* comments are not compared */
    }
    return 0;
}

static xmlDocPtr normalise(xmlDocPtr src, const ns_table *t)
{
    xmlNodePtr root = xmlDocGetRootElement(src);
    xmlDocPtr nd = xmlNewDoc((const xmlChar *)"1.0");
    ns_decls d = { calloc(t->n + 1, sizeof(xmlNsPtr)), calloc(t->n + 1, sizeof(xmlNsPtr)) };
    int rc = -1;
    if (nd && root && d.elem && d.attr) rc = norm_copy(nd, NULL, root, t, &d);
    free(d.elem);
    free(d.attr);
    if (rc != 0) { xmlFreeDoc(nd); return NULL; }
    return nd;
}

static char *xml_c14n(xmlDocPtr d, int *len)
{
    xmlChar *out = NULL;
    *len = xmlC14NDocDumpMemory(d, NULL, XML_C14N_EXCLUSIVE_1_0, NULL, 0, &out);
    if (*len < 0) { xmlFree(out); return NULL; }
    return (char *)out;
}

static char *xml_pretty(xmlDocPtr d)
{
    xmlChar *mem = NULL;
    int len = 0;
    xmlDocDumpFormatMemoryEnc(d, &mem, &len, "UTF-8", 1);
    char *s = mem ? strndup((const char *)mem, (size_t)len) : strdup("(cannot serialise)");
    xmlFree(mem);
    return s;
}

int relais_maptest_xml_equal(xmlDocPtr expected, xmlDocPtr actual, char **exp_text, char **act_text)
{
    ns_table tab;
    memset(&tab, 0, sizeof tab);
    xmlDocPtr ne = NULL, na = NULL;
    int rc = -1;
    *exp_text = *act_text = NULL;
    if (ns_scan(&tab, xmlDocGetRootElement(expected)) == 0 &&
        ns_scan(&tab, xmlDocGetRootElement(actual)) == 0 && ns_finish(&tab) == 0) {
        ne = normalise(expected, &tab);
        na = normalise(actual, &tab);
    }
    int el = 0, al = 0;
    char *ec = ne ? xml_c14n(ne, &el) : NULL, *ac = na ? xml_c14n(na, &al) : NULL;
    if (ec && ac) {
        rc = el == al && memcmp(ec, ac, (size_t)el) == 0;
        if (!rc) {
            *exp_text = xml_pretty(ne);
            *act_text = xml_pretty(na);
        }
    }
    xmlFree(ec);
    xmlFree(ac);
    xmlFreeDoc(ne);
    xmlFreeDoc(na);
    ns_table_free(&tab);
    return rc;
}

/* ---- line diff ------------------------------------------------------------ */

typedef struct mt_lines {
    const char **p;
    size_t      *len;
    size_t       n;
} mt_lines;

static int split_lines(const char *s, mt_lines *l)
{
    size_t n = 0;
    for (const char *q = s; *q; q++) if (*q == '\n') n++;
    n++;
    l->p = malloc(n * sizeof *l->p);
    l->len = malloc(n * sizeof *l->len);
    if (!l->p || !l->len) { free(l->p); free(l->len); return -1; }
    l->n = 0;
    const char *q = s;
    while (*q) {
        const char *e = strchr(q, '\n');
        size_t len = e ? (size_t)(e - q) : strlen(q);
        l->p[l->n] = q;
        l->len[l->n] = len;
        l->n++;
        q += len + (e ? 1 : 0);
    }
    return 0;
}

static int line_eq(const mt_lines *a, size_t i, const mt_lines *b, size_t j)
{
    return a->len[i] == b->len[j] && memcmp(a->p[i], b->p[j], a->len[i]) == 0;
}

/* Edit script: ' ' keep (advances both), '-' expected only, '+' actual only. */
static char *edit_script(const mt_lines *a, const mt_lines *b, size_t *nops)
{
    size_t pre = 0;
    while (pre < a->n && pre < b->n && line_eq(a, pre, b, pre)) pre++;
    size_t suf = 0;
    while (suf < a->n - pre && suf < b->n - pre && line_eq(a, a->n - 1 - suf, b, b->n - 1 - suf)) suf++;
    size_t n = a->n - pre - suf, m = b->n - pre - suf;
    char *ops = malloc(a->n + b->n + 1);
    if (!ops) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < pre; i++) ops[k++] = ' ';
    uint32_t *dp = NULL;
    if (n && m && (n + 1) * (m + 1) <= MT_LCS_MAX_CELLS) dp = calloc((n + 1) * (m + 1), sizeof *dp);
    if (dp) {
        /* dp[i][j]: length of the LCS of a[pre+i..] and b[pre+j..] */
        for (size_t i = n; i-- > 0;)
            for (size_t j = m; j-- > 0;)
                dp[i * (m + 1) + j] = line_eq(a, pre + i, b, pre + j)
                    ? dp[(i + 1) * (m + 1) + j + 1] + 1
                    : (dp[(i + 1) * (m + 1) + j] >= dp[i * (m + 1) + j + 1]
                           ? dp[(i + 1) * (m + 1) + j] : dp[i * (m + 1) + j + 1]);
        size_t i = 0, j = 0;
        while (i < n && j < m) {
            if (line_eq(a, pre + i, b, pre + j)) { ops[k++] = ' '; i++; j++; }
            else if (dp[(i + 1) * (m + 1) + j] >= dp[i * (m + 1) + j + 1]) { ops[k++] = '-'; i++; }
            else { ops[k++] = '+'; j++; }
        }
        while (i++ < n) ops[k++] = '-';
        while (j++ < m) ops[k++] = '+';
        free(dp);
    } else {
        for (size_t i = 0; i < n; i++) ops[k++] = '-';
        for (size_t j = 0; j < m; j++) ops[k++] = '+';
    }
    for (size_t i = 0; i < suf; i++) ops[k++] = ' ';
    *nops = k;
    return ops;
}

void relais_maptest_diff(FILE *out, const char *expected, const char *actual, const char *indent)
{
    mt_lines a, b;
    if (strcmp(expected, actual) == 0) return;
    if (split_lines(expected, &a) != 0) return;
    if (split_lines(actual, &b) != 0) { free(a.p); free(a.len); return; }
    size_t nops = 0;
    char *ops = edit_script(&a, &b, &nops);
    if (ops) {
        fprintf(out, "%s--- expected\n%s+++ actual\n", indent, indent);
        /* line numbers (0-based) in a and b before each op */
        size_t *ai = malloc((nops + 1) * sizeof *ai), *bi = malloc((nops + 1) * sizeof *bi);
        if (ai && bi) {
            ai[0] = bi[0] = 0;
            for (size_t k = 0; k < nops; k++) {
                ai[k + 1] = ai[k] + (ops[k] != '+');
                bi[k + 1] = bi[k] + (ops[k] != '-');
            }
            size_t k = 0;
            while (k < nops) {
                while (k < nops && ops[k] == ' ') k++;
                if (k == nops) break;
                size_t start = k > MT_DIFF_CONTEXT ? k - MT_DIFF_CONTEXT : 0;
                /* extend while the next change is within 2 * context lines */
                size_t end = k;   /* exclusive end of the last change seen */
                for (;;) {
                    while (end < nops && ops[end] != ' ') end++;
                    size_t next = end;
                    while (next < nops && ops[next] == ' ') next++;
                    if (next < nops && next - end <= 2 * MT_DIFF_CONTEXT) { end = next; continue; }
                    break;
                }
                size_t stop = end + MT_DIFF_CONTEXT < nops ? end + MT_DIFF_CONTEXT : nops;
                size_t acount = ai[stop] - ai[start], bcount = bi[stop] - bi[start];
                fprintf(out, "%s@@ -%zu,%zu +%zu,%zu @@\n", indent,
                        acount ? ai[start] + 1 : ai[start], acount,
                        bcount ? bi[start] + 1 : bi[start], bcount);
                for (size_t q = start; q < stop; q++) {
                    if (ops[q] == '+')
                        fprintf(out, "%s+%.*s\n", indent, (int)b.len[bi[q]], b.p[bi[q]]);
                    else
                        fprintf(out, "%s%c%.*s\n", indent, ops[q], (int)a.len[ai[q]], a.p[ai[q]]);
                }
                k = stop;
            }
        }
        free(ai);
        free(bi);
        free(ops);
    }
    free(a.p); free(a.len); free(b.p); free(b.len);
}
