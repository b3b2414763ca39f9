/*
 * fileio.h - reading a whole file, the one way the hub does it (checkpoint
 * files, audit extracts, mapping test inputs).
 * Thread-safety: reentrant.
 */
#ifndef RELAIS_FILEIO_H
#define RELAIS_FILEIO_H
#include <stddef.h>

/* The whole file as a malloc'd, NUL-terminated buffer (*len without the
 * NUL; len may be NULL). max: the largest size accepted (0: no limit). NULL with errstr
 * naming the file ("cannot read F: reason", "F: larger than N bytes");
 * errno is left as the failing call set it (ENOENT for a missing file). */
char *relais_read_file(const char *path, size_t max, size_t *len, char *errstr, size_t errlen);
#endif
