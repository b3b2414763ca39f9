/*
 * errlist.c - a growable list of "FILE:LINE: message" diagnostics (errlist.h).
 *
 * Used by the configuration loader so that `relais check` can report every
 * error in a file at once. Messages are formatted when added and owned by the
 * list. A NULL `file` adds the message as it is (for text that already carries
 * its own "FILE:LINE: " prefix, such as a YAML syntax error from yamltree.c).
 * On allocation failure the message is dropped; callers that must know whether
 * an error happened keep their own flag (config.c does).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "errlist.h"

void relais_errlist_init(relais_errlist *l)
{
    l->msgs = NULL;
    l->count = 0;
    l->cap = 0;
}

static char *format_va(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

static char *format_va(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

void relais_errlist_add(relais_errlist *l, const char *file, int line, const char *fmt, ...)
{
    if (!l || !fmt) return;
    va_list ap;
    va_start(ap, fmt);
    char *body = format_va(fmt, ap);
    va_end(ap);
    if (!body) return;

    char *msg;
    if (!file) {
        msg = body;
    } else {
        char prefix[32] = "";
        if (line > 0) snprintf(prefix, sizeof prefix, ":%d", line);
        size_t n = strlen(file) + strlen(prefix) + 2 + strlen(body) + 1;
        msg = malloc(n);
        if (msg) snprintf(msg, n, "%s%s: %s", file, prefix, body);
        free(body);
        if (!msg) return;
    }

    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char **m = realloc(l->msgs, cap * sizeof *m);
        if (!m) {
            free(msg);
            return;
        }
        l->msgs = m;
        l->cap = cap;
    }
    l->msgs[l->count++] = msg;
}

void relais_errlist_print(const relais_errlist *l, FILE *out)
{
    if (!l || !out) return;
    for (size_t i = 0; i < l->count; i++)
        fprintf(out, "%s\n", l->msgs[i]);
}

void relais_errlist_free(relais_errlist *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->count; i++)
        free(l->msgs[i]);
    free(l->msgs);
    relais_errlist_init(l);
}
