/*
 * errlist.h - a list of "FILE:LINE: message" diagnostics, for `relais check`
 * and anything else that should report every error it finds, not just the first.
 */
#ifndef RELAIS_ERRLIST_H
#define RELAIS_ERRLIST_H
#include <stddef.h>
#include <stdio.h>

typedef struct relais_errlist {
    char  **msgs;
    size_t  count;
    size_t  cap;
} relais_errlist;

void relais_errlist_init(relais_errlist *l);
/* Adds "FILE:LINE: message" (line <= 0: "FILE: message"; file NULL: the
 * message as it is, for text that already carries its place). */
void relais_errlist_add(relais_errlist *l, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void relais_errlist_print(const relais_errlist *l, FILE *out);
void relais_errlist_free(relais_errlist *l);
#endif
