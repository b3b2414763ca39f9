/*
 * file_int.h - internals of the generic `file` connector (drop folder source
 * and sink, JSON lines and CSV), shared by file.c, file_source.c and
 * file_sink.c. Not a public header.
 */
#ifndef RELAIS_FILE_INT_H
#define RELAIS_FILE_INT_H
#include <stddef.h>
#include "relais/connector.h"

/* Filled by the hub from file_options (file.c). Strings are owned by the
 * config; a NULL string means "unset" (the default is derived in init). */
typedef struct file_config {
    char  *dir;
    char  *pattern;            /* source: fnmatch on file names */
    char  *format;             /* "jsonl" | "csv" */
    char  *archive_dir;        /* source */
    char  *error_dir;          /* source */
    char  *event_type;         /* source */
    char  *subject_field;      /* source: JSON pointer (jsonl) or column (csv) */
    char  *record_id_field;    /* source */
    char  *correlation_field;  /* source */
    char  *csv_delimiter;      /* one character */
    long   max_line;           /* source: bytes per record */
    long   batch;              /* source: records per relais_submit */
    char **columns;            /* sink, csv: dotted paths into the event */
} file_config;

typedef enum { FILE_FMT_JSONL = 0, FILE_FMT_CSV = 1, FILE_FMT_XML = 2 } file_format;

/* Per-instance context. Everything is set in init() and read-only after,
 * except what file_source.c touches: the source is only ever driven from
 * the hub's source loop (receive(), one call at a time), so it needs no lock. The sink keeps no
 * mutable state: concurrent deliver() calls share nothing but read-only
 * fields. */
typedef struct file_ctx {
    relais_instance   *inst;
    const file_config *cfg;
    file_format        format;
    char              *dir;
    char              *pattern;
    char              *archive_dir;
    char              *error_dir;
    char               delim;
    size_t             max_line;
    size_t             batch;
} file_ctx;

/* file_source.c */
int file_source_receive(void *ctx);
/* file_sink.c */
relais_verdict file_sink_deliver(void *ctx, const relais_event *ev, const char *local_id,
                                 relais_answer *ans);

/* mkdir -p; 0 ok, -1 with errno set. */
int file_mkdirs(const char *path);
#endif
