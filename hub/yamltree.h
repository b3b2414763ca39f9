/*
 * yamltree.h - a YAML document loaded (libyaml) into a small tree that keeps
 * the line and column of every node, so that config errors can say FILE:LINE.
 * Anchors/aliases are refused; documents are bounded in size and depth.
 */
#ifndef RELAIS_YAMLTREE_H
#define RELAIS_YAMLTREE_H
#include <stddef.h>

typedef enum { YT_SCALAR = 1, YT_MAP, YT_SEQ } yt_kind;

typedef struct yt_node yt_node;
struct yt_node {
    yt_kind  kind;
    int      line;          /* 1-based */
    int      col;           /* 1-based */
    char    *scalar;        /* YT_SCALAR: the text (NUL-terminated) */
    int      quoted;        /* YT_SCALAR: was single- or double-quoted */
    /* YT_MAP: keys[i] -> values[i]; YT_SEQ: values[i] */
    char   **keys;
    int     *key_lines;
    yt_node **values;
    size_t   count;
};

/* Load a file. NULL on error with "FILE:LINE: message" in errstr. */
yt_node *yt_load_file(const char *path, char *errstr, size_t errlen);
/* Load from memory; `name` is used in messages. */
yt_node *yt_load_buffer(const char *name, const char *buf, size_t len, char *errstr, size_t errlen);
void     yt_free(yt_node *n);
/* Map lookup; NULL when absent or n is not a map. */
yt_node *yt_get(const yt_node *map, const char *key);
#endif
