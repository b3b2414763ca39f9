/*
 * yamltree.c - load one YAML document into a yt_node tree (yamltree.h).
 *
 * Built on libyaml's event parser (yaml_parser_parse), with an explicit stack
 * instead of recursion so that the nesting bound is checked before anything
 * deep is built. Every node and every map key keeps its 1-based line and
 * column, so that the configuration layer can report FILE:LINE.
 *
 * Refused, with a "NAME:LINE: message" error:
 *   - anchors (&a) and aliases (*a): a config file should say things once,
 *     in place, and aliases are the classic "billion laughs" amplifier;
 *   - duplicate keys in one map (libyaml itself accepts them);
 *   - non-scalar map keys, scalars containing a NUL character;
 *   - more than YT_MAX_DEPTH nested collections;
 *   - input larger than YT_MAX_BYTES;
 *   - more than one document in the stream, or none at all.
 * No global state; single-threaded per call.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "yamltree.h"

#define YT_MAX_BYTES ((size_t)4 * 1024 * 1024)
#define YT_MAX_DEPTH 64

typedef struct yt_frame {
    yt_node *node;       /* the open map or sequence */
    char    *key;        /* map: the key waiting for its value */
    int      key_line;
    int      have_key;
} yt_frame;

typedef struct yt_builder {
    const char *name;
    char       *errstr;
    size_t      errlen;
    yt_frame    stack[YT_MAX_DEPTH];
    int         sp;
    yt_node    *root;
    int         failed;
} yt_builder;

static void set_error(yt_builder *b, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(yt_builder *b, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (b->errstr && b->errlen) {
        if (line > 0)
            snprintf(b->errstr, b->errlen, "%s:%d: %s", b->name, line, msg);
        else
            snprintf(b->errstr, b->errlen, "%s: %s", b->name, msg);
    }
    b->failed = 1;
}

void yt_free(yt_node *n)
{
    if (!n) return;
    for (size_t i = 0; i < n->count; i++) {
        if (n->keys) free(n->keys[i]);
        yt_free(n->values[i]);
    }
    free(n->keys);
    free(n->key_lines);
    free(n->values);
    free(n->scalar);
    free(n);
}

yt_node *yt_get(const yt_node *map, const char *key)
{
    if (!map || map->kind != YT_MAP || !key) return NULL;
    for (size_t i = 0; i < map->count; i++)
        if (strcmp(map->keys[i], key) == 0) return map->values[i];
    return NULL;
}

static yt_node *node_new(yt_kind kind, const yaml_mark_t *m)
{
    yt_node *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->kind = kind;
    n->line = (int)m->line + 1;
    n->col = (int)m->column + 1;
    return n;
}

/* Append a child (and, for maps, its key; ownership of both is taken). The
 * arrays grow by doubling: capacity is 4 up to 4 elements, then the next
 * power of two, so a reallocation is due when count is 0 or a power of two. */
static int node_append(yt_node *parent, char *key, int key_line, yt_node *child)
{
    size_t c = parent->count;
    if (c == 0 || (c >= 4 && (c & (c - 1)) == 0)) {
        size_t cap = c == 0 ? 4 : c * 2;
        yt_node **v = realloc(parent->values, cap * sizeof *v);
        if (!v) return -1;
        parent->values = v;
        if (parent->kind == YT_MAP) {
            char **k = realloc(parent->keys, cap * sizeof *k);
            if (!k) return -1;
            parent->keys = k;
            int *kl = realloc(parent->key_lines, cap * sizeof *kl);
            if (!kl) return -1;
            parent->key_lines = kl;
        }
    }
    parent->values[c] = child;
    if (parent->kind == YT_MAP) {
        parent->keys[c] = key;
        parent->key_lines[c] = key_line;
    }
    parent->count = c + 1;
    return 0;
}

/* Duplicate keys: sort the key indices and compare neighbours, so that a
 * large map costs n log n rather than n^2. The duplicate reported is the one
 * whose second occurrence comes first in the file. */
typedef struct { const char *key; size_t idx; } key_ref;

static int key_ref_cmp(const void *a, const void *b)
{
    const key_ref *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c) return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int check_duplicates(yt_builder *b, const yt_node *map)
{
    if (map->count < 2) return 0;
    key_ref *refs = malloc(map->count * sizeof *refs);
    if (!refs) {
        set_error(b, map->line, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < map->count; i++) {
        refs[i].key = map->keys[i];
        refs[i].idx = i;
    }
    qsort(refs, map->count, sizeof *refs, key_ref_cmp);
    size_t best = (size_t)-1, first = 0;
    for (size_t i = 1; i < map->count; i++) {
        if (strcmp(refs[i].key, refs[i - 1].key) == 0 && refs[i].idx < best) {
            best = refs[i].idx;
            first = refs[i - 1].idx;
        }
    }
    free(refs);
    if (best == (size_t)-1) return 0;
    set_error(b, map->key_lines[best], "duplicate key '%.100s' (first given at line %d)",
              map->keys[best], map->key_lines[first]);
    return -1;
}

/* A node is complete: attach it to the open collection, or make it the root. */
static int complete(yt_builder *b, yt_node *n)
{
    if (b->sp == 0) {
        b->root = n;
        return 0;
    }
    yt_frame *f = &b->stack[b->sp - 1];
    if (f->node->kind == YT_SEQ) {
        if (node_append(f->node, NULL, 0, n) != 0) {
            yt_free(n);
            set_error(b, 0, "out of memory");
            return -1;
        }
        return 0;
    }
    if (!f->have_key) {
        if (n->kind != YT_SCALAR) {
            set_error(b, n->line, "map keys must be plain scalars, not %s",
                      n->kind == YT_MAP ? "maps" : "sequences");
            yt_free(n);
            return -1;
        }
        f->key = n->scalar;
        f->key_line = n->line;
        f->have_key = 1;
        n->scalar = NULL;
        yt_free(n);
        return 0;
    }
    if (node_append(f->node, f->key, f->key_line, n) != 0) {
        yt_free(n);
        set_error(b, f->key_line, "out of memory");
        return -1;
    }
    f->key = NULL;
    f->have_key = 0;
    return 0;
}

static int anchor_refused(yt_builder *b, const yaml_char_t *anchor, const yaml_mark_t *m)
{
    if (!anchor) return 0;
    set_error(b, (int)m->line + 1,
              "anchors (&%.100s) and aliases are not supported: write the value out in place",
              (const char *)anchor);
    return -1;
}

static int handle_event(yt_builder *b, const yaml_event_t *ev, int *docs, int *done)
{
    const yaml_mark_t *m = &ev->start_mark;
    int line = (int)m->line + 1;
    switch (ev->type) {
    case YAML_STREAM_START_EVENT:
    case YAML_DOCUMENT_END_EVENT:
    case YAML_NO_EVENT:
        return 0;
    case YAML_STREAM_END_EVENT:
        *done = 1;
        return 0;
    case YAML_DOCUMENT_START_EVENT:
        if (*docs > 0) {
            set_error(b, line, "more than one YAML document ('---'): put the whole "
                      "configuration in one document");
            return -1;
        }
        (*docs)++;
        return 0;
    case YAML_ALIAS_EVENT:
        set_error(b, line, "aliases (*%.100s) and anchors are not supported: write the "
                  "value out in place", (const char *)ev->data.alias.anchor);
        return -1;
    case YAML_SCALAR_EVENT: {
        if (anchor_refused(b, ev->data.scalar.anchor, m) != 0) return -1;
        size_t len = ev->data.scalar.length;
        if (memchr(ev->data.scalar.value, '\0', len)) {
            set_error(b, line, "a value contains a NUL character");
            return -1;
        }
        yt_node *n = node_new(YT_SCALAR, m);
        if (n) n->scalar = malloc(len + 1);
        if (!n || !n->scalar) {
            yt_free(n);
            set_error(b, line, "out of memory");
            return -1;
        }
        memcpy(n->scalar, ev->data.scalar.value, len);
        n->scalar[len] = '\0';
        n->quoted = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                    ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
        return complete(b, n);
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        const yaml_char_t *anchor = ev->type == YAML_SEQUENCE_START_EVENT
                                        ? ev->data.sequence_start.anchor
                                        : ev->data.mapping_start.anchor;
        if (anchor_refused(b, anchor, m) != 0) return -1;
        if (b->sp >= YT_MAX_DEPTH) {
            set_error(b, line, "nesting deeper than %d levels", YT_MAX_DEPTH);
            return -1;
        }
        yt_node *n = node_new(ev->type == YAML_SEQUENCE_START_EVENT ? YT_SEQ : YT_MAP, m);
        if (!n) {
            set_error(b, line, "out of memory");
            return -1;
        }
        yt_frame *f = &b->stack[b->sp++];
        f->node = n;
        f->key = NULL;
        f->key_line = 0;
        f->have_key = 0;
        return 0;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
        if (b->sp == 0) return 0;   /* libyaml never does this; be safe */
        yt_frame *f = &b->stack[--b->sp];
        yt_node *n = f->node;
        free(f->key);               /* only set if the map was cut short */
        f->key = NULL;
        f->node = NULL;
        if (n->kind == YT_MAP && check_duplicates(b, n) != 0) {
            yt_free(n);
            return -1;
        }
        return complete(b, n);
    }
    }
    return 0;
}

/* Line of a byte offset, for reader errors (libyaml gives only the offset). */
static int line_of_offset(const char *buf, size_t len, size_t off)
{
    int line = 1;
    if (off > len) off = len;
    for (size_t i = 0; i < off; i++)
        if (buf[i] == '\n') line++;
    return line;
}

static void parser_error(yt_builder *b, const yaml_parser_t *p, const char *buf, size_t len)
{
    const char *problem = p->problem ? p->problem : "invalid YAML";
    switch (p->error) {
    case YAML_MEMORY_ERROR:
        set_error(b, 0, "out of memory while parsing");
        break;
    case YAML_READER_ERROR:
        set_error(b, line_of_offset(buf, len, p->problem_offset), "%s (byte offset %zu)",
                  problem, p->problem_offset);
        break;
    default:
        if (p->context)
            set_error(b, (int)p->problem_mark.line + 1, "%s (%s started at line %d)", problem,
                      p->context, (int)p->context_mark.line + 1);
        else
            set_error(b, (int)p->problem_mark.line + 1, "%s", problem);
        break;
    }
}

yt_node *yt_load_buffer(const char *name, const char *buf, size_t len, char *errstr, size_t errlen)
{
    yt_builder b;
    memset(&b, 0, sizeof b);
    b.name = name ? name : "<buffer>";
    b.errstr = errstr;
    b.errlen = errlen;
    if (errstr && errlen) errstr[0] = '\0';

    if (len > YT_MAX_BYTES) {
        set_error(&b, 0, "larger than 4 MiB (%zu bytes): refused", len);
        return NULL;
    }
    if (!buf) {
        buf = "";
        len = 0;
    }

    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        set_error(&b, 0, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);

    int docs = 0, done = 0;
    while (!done && !b.failed) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            parser_error(&b, &parser, buf, len);
            break;
        }
        handle_event(&b, &ev, &docs, &done);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);

    if (!b.failed && !b.root)
        set_error(&b, 1, "the document is empty");
    if (b.failed) {
        while (b.sp > 0) {
            yt_frame *f = &b.stack[--b.sp];
            free(f->key);
            yt_free(f->node);
        }
        yt_free(b.root);
        return NULL;
    }
    return b.root;
}

yt_node *yt_load_file(const char *path, char *errstr, size_t errlen)
{
    if (errstr && errlen) errstr[0] = '\0';
    if (!path) {
        if (errstr && errlen) snprintf(errstr, errlen, "<null>: no file name given");
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errstr && errlen) snprintf(errstr, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    /* Read at most one byte more than the limit, so that "too large" is seen
     * without trusting stat() (the path may be a pipe). */
    size_t cap = 64 * 1024, len = 0;
    char *buf = malloc(cap);
    int err = 0;
    while (buf) {
        if (len == cap) {
            if (cap > YT_MAX_BYTES) break;
            size_t ncap = cap * 2 > YT_MAX_BYTES + 1 ? YT_MAX_BYTES + 1 : cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) err = errno ? errno : EIO;
            break;
        }
    }
    fclose(f);
    if (!buf) {
        if (errstr && errlen) snprintf(errstr, errlen, "%s: out of memory", path);
        return NULL;
    }
    if (err) {
        free(buf);
        if (errstr && errlen) snprintf(errstr, errlen, "%s: cannot read: %s", path, strerror(err));
        return NULL;
    }
    yt_node *root = yt_load_buffer(path, buf, len, errstr, errlen);
    free(buf);
    return root;
}
