/*
 * fileio.c - see fileio.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fileio.h"

char *relais_read_file(const char *path, size_t max, size_t *len, char *errstr, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(errstr, errlen, "cannot read %s: %s", path, strerror(e));
        errno = e;
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    while (s) {
        if (n + 1 >= cap) {
            if (max && cap > max) {
                snprintf(errstr, errlen, "%s: larger than %zu bytes", path, max);
                free(s);
                fclose(f);
                errno = EFBIG;
                return NULL;
            }
            char *t = realloc(s, cap * 2);
            if (!t) {
                free(s);
                s = NULL;
                break;
            }
            s = t;
            cap *= 2;
        }
        size_t r = fread(s + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    int bad = !s || ferror(f);
    fclose(f);
    if (bad) {
        free(s);
        snprintf(errstr, errlen, "cannot read %s%s", path, s ? "" : ": out of memory");
        errno = s ? EIO : ENOMEM;
        return NULL;
    }
    s[n] = '\0';
    if (len) *len = n;
    return s;
}
