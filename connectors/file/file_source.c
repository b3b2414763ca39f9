/*
 * file_source.c - the drop folder source of the `file` connector.
 *
 * receive() lists `dir`, takes every complete file matching `pattern`
 * (producers write elsewhere, or under a name starting with '.' or ending in
 * .tmp/.part, then rename: rename is atomic), in name order, and for each:
 *   - reads it record by record (JSON lines or CSV), memory bounded by
 *     max_line whatever the file size;
 *   - submits good records in batches of `batch` (relais_submit), and journals
 *     bad ones with relais_reject(where "<file>:<line>");
 *   - once every record has a verdict, renames the file into archive_dir
 *     (never overwriting: "name.1", "name.2"... when the name is taken);
 *   - when the hub answers UNAVAILABLE, stops, leaves the file where it is
 *     and returns: the next receive() starts that file again from its first
 *     line, and the hub dedupes the records it already has (record ids are
 *     stable: record_id_field or "<file name>:<line>").
 * A file that cannot be read as a whole (unreadable, bad CSV header, a
 * configured column missing from the header) is journaled as one rejection
 * and moved to error_dir.
 *
 * Threads: only the hub's source loop calls receive(), one call at a time (the
 * main thread in relais_hub_run); everything here is
 * local to the call.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "file_int.h"
#include "file_csv.h"
#include "file_jsonl.h"
#include "jsonptr.h"

#define RAW_EXCERPT 4096
#define FIELD_MAX   512

/* One good record waiting for relais_submit. */
typedef struct pending {
    json_t *data;
    char   *record_id;
    char   *subject;
    char   *correlation;
} pending;

typedef struct run {
    file_ctx             *c;
    const char           *name;      /* file name inside dir */
    pending              *p;
    relais_record        *recs;
    relais_submit_result *res;
    size_t                n;
    int                   unavailable;
    size_t                accepted, duplicates, refused;
} run;

typedef enum { FILE_DONE, FILE_UNAVAILABLE, FILE_BROKEN, FILE_IOERR } file_outcome;

static void pending_clear(pending *p)
{
    json_decref(p->data);
    free(p->record_id);
    free(p->subject);
    free(p->correlation);
    memset(p, 0, sizeof *p);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static int run_flush(run *r)
{
    if (r->n == 0 || r->unavailable)
        return r->unavailable ? -1 : 0;
    for (size_t i = 0; i < r->n; i++) {
        r->recs[i] = (relais_record){
            .record_id = r->p[i].record_id,
            .type = r->c->cfg->event_type,
            .subject = r->p[i].subject,
            .correlation_id = r->p[i].correlation,
            .data = r->p[i].data,
        };
        memset(&r->res[i], 0, sizeof r->res[i]);
    }
    int rc = relais_submit(r->c->inst, r->recs, r->n, r->res);
    for (size_t i = 0; i < r->n; i++) {
        switch (r->res[i].status) {
        case RELAIS_SUBMIT_ACCEPTED:  r->accepted++; break;
        case RELAIS_SUBMIT_DUPLICATE: r->duplicates++; break;
        case RELAIS_SUBMIT_REJECTED:  r->refused++; break;
        default:                      r->unavailable = 1; break;
        }
        pending_clear(&r->p[i]);
    }
    if (rc != 0)
        r->unavailable = 1;
    r->n = 0;
    return r->unavailable ? -1 : 0;
}

/* Queue a good record (takes the data reference). */
static int run_add(run *r, json_t *data, const char *record_id, const char *subject,
                   const char *correlation)
{
    pending *p = &r->p[r->n];
    p->data = data;
    p->record_id = dup_or_null(record_id);
    p->subject = dup_or_null(subject);
    p->correlation = dup_or_null(correlation);
    r->n++;
    if (!p->record_id || (subject && !p->subject) || (correlation && !p->correlation)) {
        r->unavailable = 1;   /* out of memory: retry the file later */
        return -1;
    }
    if (r->n >= r->c->batch)
        return run_flush(r);
    return 0;
}

static int run_reject(run *r, size_t line, const char *reason, const char *raw, size_t rawlen)
{
    char where[600];
    snprintf(where, sizeof where, "%s:%zu", r->name, line);
    r->refused++;
    if (relais_reject(r->c->inst, where, where, reason, raw, rawlen > RAW_EXCERPT ? RAW_EXCERPT : rawlen) != 0) {
        r->unavailable = 1;
        return -1;
    }
    return 0;
}

/* ---- XML: one vendor document per file --------------------------------------- */

#define XML_FILE_MAX (16L * 1024 * 1024)

/* The whole file is one record: its text goes to the hub, which parses it
 * safely and maps it with the instance's xml mapping. The record id is the
 * file name (a file dropped again under the same name is a duplicate). */
static file_outcome read_xml(run *r, int fd, char *why, size_t whylen)
{
    struct stat st;
    if (fstat(fd, &st) != 0) { close(fd); return FILE_IOERR; }
    if (st.st_size > XML_FILE_MAX) {
        close(fd);
        snprintf(why, whylen, "%lld bytes, larger than the %ld an XML file may have",
                 (long long)st.st_size, XML_FILE_MAX);
        return FILE_BROKEN;
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) { close(fd); return FILE_IOERR; }
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > (size_t)XML_FILE_MAX) {   /* grew while being read */
                free(buf);
                close(fd);
                snprintf(why, whylen, "larger than the %ld bytes an XML file may have", XML_FILE_MAX);
                return FILE_BROKEN;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); close(fd); return FILE_IOERR; }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { free(buf); close(fd); return FILE_IOERR; }
        if (n == 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = 0;
    relais_record rec = { .record_id = r->name, .type = r->c->cfg->event_type, .raw = buf, .raw_len = len };
    relais_submit_result res;
    memset(&res, 0, sizeof res);
    int rc = relais_submit(r->c->inst, &rec, 1, &res);
    free(buf);
    if (rc != 0 || res.status == RELAIS_SUBMIT_UNAVAILABLE) return FILE_UNAVAILABLE;
    if (res.status == RELAIS_SUBMIT_ACCEPTED) r->accepted++;
    else if (res.status == RELAIS_SUBMIT_DUPLICATE) r->duplicates++;
    else r->refused++;     /* journaled as rejected by the hub, with the reason */
    return FILE_DONE;
}

/* ---- JSON lines ------------------------------------------------------------ */

static file_outcome read_jsonl(run *r, int fd)
{
    file_ctx *c = r->c;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return FILE_IOERR;
    }
    size_t cap = c->max_line < 65536 ? c->max_line + 1 : 65536;
    char *buf = malloc(cap);
    size_t line = 0;
    file_outcome out = FILE_DONE;
    if (!buf) {
        fclose(f);
        return FILE_IOERR;
    }
    for (;;) {
        size_t len = 0, total = 0;
        int ch = EOF;
        line++;
        for (;;) {
            ch = getc_unlocked(f);
            if (ch == EOF || ch == '\n')
                break;
            total++;
            if (total > c->max_line)
                continue;          /* skip the rest; the excerpt is what was kept */
            if (len + 1 >= cap) {
                size_t ncap = cap * 2 > c->max_line + 1 ? c->max_line + 1 : cap * 2;
                char *nb = realloc(buf, ncap);
                if (!nb) {
                    out = FILE_IOERR;
                    goto done;
                }
                buf = nb;
                cap = ncap;
            }
            buf[len++] = (char)ch;
        }
        if (ferror(f)) {
            out = FILE_IOERR;
            goto done;
        }
        if (ch == EOF && total == 0)
            break;
        if (total > 0 && total <= c->max_line && buf[len - 1] == '\r')
            len--;
        /* Blank lines are not records. */
        size_t k = 0;
        while (k < len && (buf[k] == ' ' || buf[k] == '\t' || buf[k] == '\r'))
            k++;
        if (k == len && total <= c->max_line) {
            if (ch == EOF)
                break;
            continue;
        }
        char reason[300];
        if (total > c->max_line) {
            snprintf(reason, sizeof reason, "line longer than max_line (%zu bytes)", c->max_line);
            if (run_reject(r, line, reason, buf, len) != 0)
                break;
        } else {
            json_t *obj = file_jsonl_parse(buf, len, reason, sizeof reason);
            if (!obj) {
                if (run_reject(r, line, reason, buf, len) != 0)
                    break;
            } else {
                char ridbuf[FIELD_MAX], subbuf[FIELD_MAX], corbuf[FIELD_MAX], loc[600];
                const char *rid, *sub, *cor;
                if (relais_json_pointer_field(obj, c->cfg->record_id_field, "record_id_field",
                                              ridbuf, sizeof ridbuf, &rid, reason, sizeof reason) != 0 ||
                    relais_json_pointer_field(obj, c->cfg->subject_field, "subject_field",
                                              subbuf, sizeof subbuf, &sub, reason, sizeof reason) != 0 ||
                    relais_json_pointer_field(obj, c->cfg->correlation_field, "correlation_field",
                                              corbuf, sizeof corbuf, &cor, reason, sizeof reason) != 0) {
                    json_decref(obj);
                    if (run_reject(r, line, reason, buf, len) != 0)
                        break;
                } else {
                    if (!rid) {
                        snprintf(loc, sizeof loc, "%s:%zu", r->name, line);
                        rid = loc;
                    }
                    if (run_add(r, obj, rid, sub, cor) != 0)
                        break;
                }
            }
        }
        if (ch == EOF)
            break;
    }
done:
    free(buf);
    fclose(f);
    if (out == FILE_DONE && !r->unavailable)
        run_flush(r);
    if (out == FILE_DONE && r->unavailable)
        out = FILE_UNAVAILABLE;
    return out;
}

/* ---- CSV --------------------------------------------------------------------- */

static long fd_read(void *opaque, char *buf, size_t cap)
{
    int fd = *(int *)opaque;
    for (;;) {
        ssize_t n = read(fd, buf, cap);
        if (n >= 0 || errno != EINTR)
            return (long)n;
    }
}

/* Column index of an optional field; -1 when not configured. */
static int csv_column(const file_csv_header *h, const char *name, const char *opt, long *idx,
                      char *errstr, size_t errlen)
{
    *idx = -1;
    if (!name)
        return 0;
    *idx = file_csv_header_index(h, name);
    if (*idx < 0) {
        snprintf(errstr, errlen, "%s: column '%.64s' is not in the header", opt, name);
        return -1;
    }
    return 0;
}

static const char *csv_value(const file_csv_row *row, long idx)
{
    if (idx < 0 || (size_t)idx >= row->nfields || row->lens[idx] == 0)
        return NULL;
    return row->fields[idx];
}

static file_outcome read_csv(run *r, int fd, char *why, size_t whylen, size_t *whyline)
{
    file_ctx *c = r->c;
    file_csv_reader *rd = file_csv_reader_new(fd_read, &fd, c->delim, c->max_line);
    file_csv_header *h = NULL;
    file_csv_row row;
    char reason[300];
    file_outcome out = FILE_DONE;
    long i_rid, i_sub, i_cor;
    if (!rd) {
        close(fd);
        return FILE_IOERR;
    }
    *whyline = 1;
    int st = file_csv_next(rd, &row, reason, sizeof reason);
    if (st == FILE_CSV_IOERR) {
        out = FILE_IOERR;
        goto done;
    }
    if (st == FILE_CSV_END)
        goto done;             /* empty file: nothing to do, archive it */
    *whyline = row.line;
    if (st == FILE_CSV_BAD) {
        snprintf(why, whylen, "header: %s", reason);
        out = FILE_BROKEN;
        goto done;
    }
    h = file_csv_header_new(&row, why, whylen);
    if (!h || csv_column(h, c->cfg->record_id_field, "record_id_field", &i_rid, why, whylen) != 0 ||
        csv_column(h, c->cfg->subject_field, "subject_field", &i_sub, why, whylen) != 0 ||
        csv_column(h, c->cfg->correlation_field, "correlation_field", &i_cor, why, whylen) != 0) {
        out = FILE_BROKEN;
        goto done;
    }
    for (;;) {
        st = file_csv_next(rd, &row, reason, sizeof reason);
        if (st == FILE_CSV_END)
            break;
        if (st == FILE_CSV_IOERR) {
            out = FILE_IOERR;
            break;
        }
        if (st == FILE_CSV_BAD) {
            if (run_reject(r, row.line, reason, row.raw, row.rawlen) != 0)
                break;
            continue;
        }
        json_t *obj = file_csv_object(h, &row, reason, sizeof reason);
        if (!obj) {
            if (run_reject(r, row.line, reason, row.raw, row.rawlen) != 0)
                break;
            continue;
        }
        char loc[600];
        const char *rid = csv_value(&row, i_rid);
        if (!rid) {
            snprintf(loc, sizeof loc, "%s:%zu", r->name, row.line);
            rid = loc;
        }
        if (run_add(r, obj, rid, csv_value(&row, i_sub), csv_value(&row, i_cor)) != 0)
            break;
    }
done:
    file_csv_header_destroy(h);
    file_csv_reader_destroy(rd);
    close(fd);
    if (out == FILE_DONE && !r->unavailable)
        run_flush(r);
    if (out == FILE_DONE && r->unavailable)
        out = FILE_UNAVAILABLE;
    return out;
}

/* ---- Files --------------------------------------------------------------------- */

/* Rename dir/name into dest without overwriting: dest/name, else dest/name.1 ... */
static int move_file(file_ctx *c, const char *name, const char *dest, char *final, size_t flen)
{
    char from[4096];
    if ((size_t)snprintf(from, sizeof from, "%s/%s", c->dir, name) >= sizeof from) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (file_mkdirs(dest) != 0)
        return -1;
    for (int k = 0; k < 10000; k++) {
        int w = k == 0 ? snprintf(final, flen, "%s/%s", dest, name)
                       : snprintf(final, flen, "%s/%s.%d", dest, name, k);
        if (w < 0 || (size_t)w >= flen) {
            errno = ENAMETOOLONG;
            return -1;
        }
        if (renameat2(AT_FDCWD, from, AT_FDCWD, final, RENAME_NOREPLACE) == 0)
            return 0;
        if (errno == EEXIST)
            continue;
        if (errno == EINVAL || errno == ENOSYS) {
            /* File system without RENAME_NOREPLACE: check, then rename. */
            struct stat st;
            if (stat(final, &st) == 0)
                continue;
            return rename(from, final);
        }
        return -1;
    }
    errno = EEXIST;
    return -1;
}

static int take_name(const char *name, const char *pattern)
{
    size_t n = strlen(name);
    if (name[0] == '.')
        return 0;
    if ((n >= 4 && strcmp(name + n - 4, ".tmp") == 0) || (n >= 5 && strcmp(name + n - 5, ".part") == 0))
        return 0;
    return fnmatch(pattern, name, 0) == 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* 0 processed (archived, moved aside or left for an I/O retry), 1 the hub is
 * not accepting: stop this receive. */
static int process_file(file_ctx *c, const char *name, run *r)
{
    char path[4096], final[4096], why[400] = "";
    size_t whyline = 0;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", c->dir, name) >= sizeof path) {
        relais_instance_log(c->inst, RELAIS_LOG_ERROR, "%s/%s: path too long; file left in place", c->dir, name);
        return 0;
    }
    r->name = name;
    r->n = 0;
    r->unavailable = 0;
    r->accepted = r->duplicates = r->refused = 0;

    file_outcome out;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;          /* gone between listing and opening */
        snprintf(why, sizeof why, "cannot open: %s", strerror(errno));
        out = FILE_BROKEN;
    } else {
        struct stat st;
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            close(fd);
            return 0;
        }
        out = c->format == FILE_FMT_CSV ? read_csv(r, fd, why, sizeof why, &whyline)
            : c->format == FILE_FMT_XML ? read_xml(r, fd, why, sizeof why)
                                        : read_jsonl(r, fd);
    }
    for (size_t i = 0; i < r->n; i++)
        pending_clear(&r->p[i]);
    r->n = 0;

    switch (out) {
    case FILE_UNAVAILABLE:
        relais_instance_log(c->inst, RELAIS_LOG_INFO,
                            "file %s: hub not accepting, left in place, will be read again", name);
        return 1;
    case FILE_IOERR:
        relais_instance_log(c->inst, RELAIS_LOG_ERROR, "file %s: read error: %s; will retry", name,
                            strerror(errno));
        return 0;
    case FILE_BROKEN: {
        char where[600];
        if (whyline)
            snprintf(where, sizeof where, "%s:%zu", name, whyline);
        else
            snprintf(where, sizeof where, "%s", name);
        if (relais_reject(c->inst, where, where, why, NULL, 0) != 0) {
            relais_instance_log(c->inst, RELAIS_LOG_INFO,
                                "file %s: hub not accepting, left in place", name);
            return 1;
        }
        if (move_file(c, name, c->error_dir, final, sizeof final) != 0) {
            relais_instance_log(c->inst, RELAIS_LOG_ERROR, "file %s: %s; cannot move it to %s: %s",
                                name, why, c->error_dir, strerror(errno));
            return 0;
        }
        relais_instance_log(c->inst, RELAIS_LOG_WARN, "file %s rejected (%s: %s), moved to %s", name,
                            where, why, final);
        return 0;
    }
    case FILE_DONE:
        break;
    }
    if (move_file(c, name, c->archive_dir, final, sizeof final) != 0) {
        relais_instance_log(c->inst, RELAIS_LOG_ERROR, "file %s: cannot archive it in %s: %s",
                            name, c->archive_dir, strerror(errno));
        return 0;
    }
    relais_instance_log(c->inst, RELAIS_LOG_INFO,
                        "file %s: %zu accepted, %zu duplicates, %zu rejected; archived as %s", name,
                        r->accepted, r->duplicates, r->refused, final);
    return 0;
}

int file_source_receive(void *vctx)
{
    file_ctx *c = vctx;
    if (!relais_accepting(c->inst))
        return 0;
    DIR *d = opendir(c->dir);
    if (!d) {
        relais_instance_log(c->inst, RELAIS_LOG_ERROR, "cannot list %s: %s", c->dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (;;) {
        struct dirent *de = readdir(d);
        if (!de)
            break;
        if (!take_name(de->d_name, c->pattern))
            continue;
        if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **nn = realloc(names, ncap * sizeof *nn);
            if (!nn) {
                rc = -1;
                break;
            }
            names = nn;
            cap = ncap;
        }
        names[n] = strdup(de->d_name);
        if (!names[n]) {
            rc = -1;
            break;
        }
        n++;
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof *names, cmp_names);

    run r = { .c = c };
    r.p = calloc(c->batch, sizeof *r.p);
    r.recs = calloc(c->batch, sizeof *r.recs);
    r.res = calloc(c->batch, sizeof *r.res);
    if (!r.p || !r.recs || !r.res)
        rc = -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!relais_accepting(c->inst))
            break;
        if (process_file(c, names[i], &r) != 0)
            break;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(r.p);
    free(r.recs);
    free(r.res);
    return rc;
}
