/*
 * file.c - the generic `file` connector: descriptor, option table and
 * lifecycle. A drop folder source (file_source.c: complete files renamed
 * into `dir`, JSON lines or CSV, archived once every record has a verdict)
 * and a sink writing one file per event (file_sink.c: write a dot-file,
 * fsync, rename).
 *
 * Threads: init/start/stop/destroy run on the hub's main thread; receive()
 * by the hub's source loop (relais_hub_run); deliver() on delivery workers. The context is
 * read-only after init(), see file_int.h.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include "file_int.h"
#include "jsonptr.h"

#define SRC RELAIS_MODE_SOURCE
#define SNK RELAIS_MODE_SINK

static const relais_option file_options[] = {
    { .name = "dir", .type = RELAIS_OPT_STR, .required = 1,
      .offset = offsetof(file_config, dir),
      .desc = "drop folder (source) or output folder (sink)" },
    { .name = "pattern", .type = RELAIS_OPT_STR,
      .offset = offsetof(file_config, pattern), .modes = SRC,
      .desc = "fnmatch pattern of the file names taken; default \"*.jsonl\", or \"*.csv\" with format csv" },
    { .name = "format", .type = RELAIS_OPT_ENUM, .enum_values = "jsonl|csv|xml",
      .offset = offsetof(file_config, format),
      .desc = "record format; source default: from the pattern's extension (.csv -> csv, .xml -> xml, else jsonl); sink default jsonl; xml: one document per file, read with the instance's xml mapping" },
    { .name = "archive_dir", .type = RELAIS_OPT_STR,
      .offset = offsetof(file_config, archive_dir), .modes = SRC,
      .desc = "where a file goes once every record has a verdict; default <dir>/archive" },
    { .name = "error_dir", .type = RELAIS_OPT_STR,
      .offset = offsetof(file_config, error_dir), .modes = SRC,
      .desc = "where a file that cannot be read as a whole goes (bad CSV header, unreadable); default <dir>/rejected" },
    { .name = "event_type", .type = RELAIS_OPT_STR, .required = RELAIS_OPT_UNLESS_MAPPED,
      .offset = offsetof(file_config, event_type), .modes = SRC,
      .desc = "canonical event type of every record, e.g. fr.relais.grc.request.created" },
    { .name = "subject_field", .type = RELAIS_OPT_STR,
      .offset = offsetof(file_config, subject_field), .modes = SRC,
      .desc = "event subject: JSON pointer (jsonl, e.g. /request/id) or column name (csv)" },
    { .name = "record_id_field", .type = RELAIS_OPT_STR,
      .offset = offsetof(file_config, record_id_field), .modes = SRC,
      .desc = "record id (dedupe key): JSON pointer or column name; absent: \"<file name>:<line>\"" },
    { .name = "correlation_field", .type = RELAIS_OPT_STR,
      .offset = offsetof(file_config, correlation_field), .modes = SRC,
      .desc = "correlation id: JSON pointer or column name; absent: a new one per event" },
    { .name = "csv_delimiter", .type = RELAIS_OPT_STR, .def = ",",
      .offset = offsetof(file_config, csv_delimiter),
      .desc = "CSV field delimiter, one character (\";\" for French spreadsheets, \"\\t\")" },
    { .name = "max_line", .type = RELAIS_OPT_SIZE, .def = "1MB",
      .offset = offsetof(file_config, max_line), .modes = SRC,
      .desc = "longest record accepted, in bytes; longer ones are rejected" },
    { .name = "batch", .type = RELAIS_OPT_INT, .def = "500",
      .offset = offsetof(file_config, batch), .modes = SRC,
      .desc = "records per relais_submit call (one journal group commit)" },
    { .name = "columns", .type = RELAIS_OPT_STRLIST,
      .offset = offsetof(file_config, columns), .modes = SNK,
      .desc = "CSV sink: dotted paths into the event, one per column (\"id\", \"type\", \"data.category\"); required with format csv" },
    { .name = NULL }
};

int file_mkdirs(const char *path)
{
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "%s", path);
    if (n < 0 || (size_t)n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return -1;
    struct stat st;
    if (stat(buf, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

static void file_destroy(void *vctx)
{
    file_ctx *c = vctx;
    if (!c)
        return;
    free(c->dir);
    free(c->pattern);
    free(c->archive_dir);
    free(c->error_dir);
    free(c);
}

static int file_init(relais_instance *inst, void *config, void **out, char *errstr, size_t errlen)
{
    const file_config *cfg = config;
    unsigned mode = relais_instance_mode(inst);
    *out = NULL;
    if (!cfg->dir || !*cfg->dir) {
        snprintf(errstr, errlen, "file: option 'dir' is required");
        return -1;
    }
    file_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(errstr, errlen, "file: out of memory");
        return -1;
    }
    c->inst = inst;
    c->cfg = cfg;
    c->dir = strdup(cfg->dir);
    /* The format: explicit, else (source) from the pattern's extension. */
    if (cfg->format)
        c->format = strcmp(cfg->format, "csv") == 0 ? FILE_FMT_CSV
                  : strcmp(cfg->format, "xml") == 0 ? FILE_FMT_XML : FILE_FMT_JSONL;
    else if (mode == RELAIS_MODE_SOURCE && cfg->pattern && ends_with(cfg->pattern, ".csv"))
        c->format = FILE_FMT_CSV;
    else if (mode == RELAIS_MODE_SOURCE && cfg->pattern && ends_with(cfg->pattern, ".xml"))
        c->format = FILE_FMT_XML;
    else
        c->format = FILE_FMT_JSONL;
    if (cfg->format && strcmp(cfg->format, "jsonl") != 0 && strcmp(cfg->format, "csv") != 0 &&
        strcmp(cfg->format, "xml") != 0) {
        snprintf(errstr, errlen, "file: option 'format': '%s' is not one of jsonl|csv|xml", cfg->format);
        goto fail;
    }
    if (c->format == FILE_FMT_XML && (mode != RELAIS_MODE_SOURCE || !relais_instance_mapped(inst))) {
        snprintf(errstr, errlen, "file: format xml is for sources with an xml mapping (mapping: with format: xml); "
                 "sinks write what their mapping renders");
        goto fail;
    }
    const char *delim = cfg->csv_delimiter ? cfg->csv_delimiter : ",";
    if (strcmp(delim, "\\t") == 0)
        delim = "\t";
    if (strlen(delim) != 1 || delim[0] == '"' || delim[0] == '\n' || delim[0] == '\r') {
        snprintf(errstr, errlen, "file: option 'csv_delimiter': '%s' must be one character other than a quote or a newline",
                 delim);
        goto fail;
    }
    c->delim = delim[0];
    if (mode == RELAIS_MODE_SOURCE) {
        if ((!cfg->event_type || !*cfg->event_type) && !relais_instance_mapped(inst)) {
            snprintf(errstr, errlen, "file: option 'event_type' is required for a source without a mapping");
            goto fail;
        }
        if (c->format == FILE_FMT_JSONL) {
            char perr[300];
            if (relais_json_pointer_check_option("subject_field", cfg->subject_field, perr, sizeof perr) ||
                relais_json_pointer_check_option("record_id_field", cfg->record_id_field, perr, sizeof perr) ||
                relais_json_pointer_check_option("correlation_field", cfg->correlation_field, perr, sizeof perr)) {
                snprintf(errstr, errlen, "file: %s", perr);
                goto fail;
            }
        }
        c->pattern = strdup(cfg->pattern ? cfg->pattern
                                         : c->format == FILE_FMT_CSV ? "*.csv"
                                         : c->format == FILE_FMT_XML ? "*.xml" : "*.jsonl");
        c->archive_dir = cfg->archive_dir ? strdup(cfg->archive_dir) : path_join(cfg->dir, "archive");
        c->error_dir = cfg->error_dir ? strdup(cfg->error_dir) : path_join(cfg->dir, "rejected");
        if (cfg->max_line < 0 || cfg->batch < 0) {
            snprintf(errstr, errlen, "file: options 'max_line' and 'batch' must be positive");
            goto fail;
        }
        c->max_line = cfg->max_line > 0 ? (size_t)cfg->max_line : 1024 * 1024;
        c->batch = cfg->batch > 0 ? (size_t)cfg->batch : 500;
        if (!c->pattern || !c->archive_dir || !c->error_dir) {
            snprintf(errstr, errlen, "file: out of memory");
            goto fail;
        }
    } else {
        if (c->format == FILE_FMT_CSV && (!cfg->columns || !cfg->columns[0])) {
            snprintf(errstr, errlen, "file: option 'columns' is required with format csv");
            goto fail;
        }
    }
    if (!c->dir) {
        snprintf(errstr, errlen, "file: out of memory");
        goto fail;
    }
    *out = c;
    return 0;
fail:
    file_destroy(c);
    return -1;
}

static int file_start(void *vctx, char *errstr, size_t errlen)
{
    file_ctx *c = vctx;
    if (relais_instance_mode(c->inst) != RELAIS_MODE_SOURCE)
        return 0;
    /* The source needs its folders; the sink creates its own on demand so
     * that a missing mount only delays deliveries (RETRY). */
    const char *dirs[] = { c->dir, c->archive_dir, c->error_dir };
    for (size_t i = 0; i < 3; i++) {
        if (file_mkdirs(dirs[i]) != 0) {
            snprintf(errstr, errlen, "file: cannot create folder %s: %s", dirs[i], strerror(errno));
            return -1;
        }
    }
    return 0;
}

static void file_stop(void *vctx)
{
    /* receive() and deliver() hold no state between calls: nothing to hand back. */
    (void)vctx;
}

const relais_connector relais_connector_file = {
    .abi_version = RELAIS_CONNECTOR_ABI,
    .name = "file",
    .description = "drop folder: JSON lines or CSV files in (renamed into dir, archived), one file per event out",
    .modes = RELAIS_MODE_SOURCE | RELAIS_MODE_SINK,
    .options = file_options,
    .config_size = sizeof(file_config),
    .init = file_init,
    .start = file_start,
    .receive = file_source_receive,
    .deliver = file_sink_deliver,
    .stop = file_stop,
    .destroy = file_destroy,
};
