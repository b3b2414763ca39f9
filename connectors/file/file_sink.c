/*
 * file_sink.c - the sink of the `file` connector: one file per event.
 *
 * deliver() writes "<dir>/.<event id>.tmp", fsyncs it, renames it to
 * "<dir>/<event id>.<jsonl|csv>" and fsyncs the folder: a reader of `dir`
 * never sees a partial file (dot-files and .tmp are what the file source, and
 * most drop-folder readers, ignore), and delivering the same event again
 * rewrites the same file: applied once.
 *   jsonl: the CloudEvent as one JSON line.
 *   csv:   a header row (the column paths) and one row of values, CRLF.
 * Local I/O errors (ENOSPC, EACCES, ENOTDIR, EROFS...) may be fixed by an
 * operator: RETRY, with the failing call and path in the answer's detail.
 *
 * Threads: deliver() runs on several delivery workers at once; it only reads
 * the context, and each call works on its own file names (the hub never
 * delivers one event to one sink twice at the same time).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "file_int.h"

typedef struct strbuf {
    char  *p;
    size_t len, cap;
    int    oom;
} strbuf;

/* Append n bytes and keep the buffer NUL-terminated. Sizes are checked
 * before any arithmetic that could wrap: len + n + 1 is computed only once
 * n < SIZE_MAX - len is known, and the capacity doubles only while that
 * cannot overflow (else it becomes exactly what is needed). */
static void sb_add(strbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (n >= SIZE_MAX - b->len) {
        b->oom = 1;
        return;
    }
    size_t need = b->len + n + 1;
    if (need > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < need)
            ncap = ncap <= SIZE_MAX / 2 ? ncap * 2 : need;
        char *np = realloc(b->p, ncap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* A number formatted into a small buffer; a failed or cut format (which
 * %lld and %.17g cannot produce in 64 bytes) marks the buffer failed rather
 * than adding garbage. */
static void sb_add_formatted(strbuf *b, const char *num, int n, size_t size)
{
    if (n < 0 || (size_t)n >= size) {
        b->oom = 1;
        return;
    }
    sb_add(b, num, (size_t)n);
}

/* One CSV cell, quoted when it holds the delimiter, a quote or a line end. */
static void sb_csv_cell(strbuf *b, const char *s, size_t n, char delim)
{
    int quote = 0;
    for (size_t i = 0; i < n && !quote; i++)
        quote = s[i] == delim || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
    if (!quote) {
        sb_add(b, s, n);
        return;
    }
    sb_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            sb_add(b, "\"\"", 2);
        else
            sb_add(b, &s[i], 1);
    }
    sb_add(b, "\"", 1);
}

/* The value at a dotted path of the event object ("id", "data.category"). */
static json_t *event_path(const relais_event *ev, const char *path)
{
    json_t *cur = relais_event_object(ev);
    const char *p = path;
    while (cur && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        cur = json_is_object(cur) ? json_object_getn(cur, p, n) : NULL;
        p = dot ? dot + 1 : p + n;
    }
    return cur;
}

/* Scalars as text, null/absent as an empty cell, objects and arrays as
 * compact JSON. */
static void sb_csv_value(strbuf *b, json_t *v, char delim)
{
    char num[64];
    int n;
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_STRING:
        sb_csv_cell(b, json_string_value(v), json_string_length(v), delim);
        return;
    case JSON_INTEGER:
        n = snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        sb_add_formatted(b, num, n, sizeof num);
        return;
    case JSON_REAL:
        n = snprintf(num, sizeof num, "%.17g", json_real_value(v));
        sb_add_formatted(b, num, n, sizeof num);
        return;
    case JSON_TRUE:
        sb_add(b, "true", 4);
        return;
    case JSON_FALSE:
        sb_add(b, "false", 5);
        return;
    case JSON_NULL:
        return;
    default: {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!s) {
            b->oom = 1;
            return;
        }
        sb_csv_cell(b, s, strlen(s), delim);
        free(s);
        return;
    }
    }
}

static int safe_id(const char *id)
{
    if (!id || !*id || id[0] == '.' || strlen(id) > 100)
        return 0;
    for (const char *p = id; *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return 0;
    }
    return 1;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Longest part of a path quoted in a detail message (bytes). */
#define PATH_SHOWN 300

/* The part of path a detail message quotes: all of it when it is at most
 * PATH_SHOWN bytes, else its end (the file name is what tells files apart),
 * starting on a UTF-8 character boundary so that the detail stays valid
 * text; *cut says whether the start was dropped. */
static const char *path_shown(const char *path, int *cut)
{
    size_t n = strlen(path);
    *cut = n > PATH_SHOWN;
    if (!*cut)
        return path;
    const char *p = path + n - PATH_SHOWN;
    while (((unsigned char)*p & 0xC0) == 0x80)
        p++;
    return p;
}

/* RETRY with "<call> <path>: <error>"; at most 6 + 1 + 3 + PATH_SHOWN + 2 +
 * 150 bytes, within the 512 of ans->detail. */
static relais_verdict io_retry(relais_answer *ans, const char *call, const char *path, int err)
{
    int cut;
    const char *shown = path_shown(path, &cut);
    snprintf(ans->detail, sizeof ans->detail, "%.6s %s%.300s: %.150s", call, cut ? "..." : "",
             shown, strerror(err));
    return RELAIS_DELIVER_RETRY;
}

/* "<dir>/<pre><id><post>", allocated to its length (no limit here: a path
 * the system refuses fails in open or rename with ENAMETOOLONG, a RETRY
 * naming it, never a silently shortened name). NULL when out of memory. */
static char *sink_path(const char *dir, const char *pre, const char *id, const char *post)
{
    size_t n = strlen(dir) + strlen(pre) + strlen(id) + strlen(post) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s%s%s", dir, pre, id, post);
    return p;
}

/* Write buf to tmp, fsync, rename to final, fsync the folder. */
static relais_verdict write_file(const file_ctx *c, const char *tmp, const char *final,
                                 const strbuf *b, relais_answer *ans)
{
    relais_verdict v = RELAIS_DELIVER_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT && file_mkdirs(c->dir) == 0)
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return io_retry(ans, "open", tmp, errno);
    if (write_all(fd, b->p, b->len) != 0)
        v = io_retry(ans, "write", tmp, errno);
    else if (fsync(fd) != 0)
        v = io_retry(ans, "fsync", tmp, errno);
    if (close(fd) != 0 && v == RELAIS_DELIVER_OK)
        v = io_retry(ans, "close", tmp, errno);
    if (v == RELAIS_DELIVER_OK && rename(tmp, final) != 0)
        v = io_retry(ans, "rename", final, errno);
    if (v != RELAIS_DELIVER_OK) {
        unlink(tmp);
        return v;
    }
    /* Make the rename itself durable. */
    int dfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) != 0)
            v = io_retry(ans, "fsync", c->dir, errno);
        close(dfd);
    }
    return v;
}

relais_verdict file_sink_deliver(void *vctx, const relais_event *ev, const char *local_id,
                                 relais_answer *ans)
{
    file_ctx *c = vctx;
    const char *id = relais_event_id(ev);
    const char *ext = c->format == FILE_FMT_CSV ? ".csv" : ".jsonl";
    int mapped = relais_instance_mapped(c->inst);
    ans->status = 0;
    ans->detail[0] = '\0';
    ans->local_id[0] = '\0';
    if (!safe_id(id)) {
        snprintf(ans->detail, sizeof ans->detail,
                 "event id '%.100s' cannot be a file name ([A-Za-z0-9._-], not starting with '.')",
                 id ? id : "");
        return RELAIS_DELIVER_REJECT;
    }

    strbuf b = { 0 };
    if (mapped) {
        /* the vendor record made by the instance's mapping, as it is */
        relais_payload pl;
        if (relais_render(c->inst, ev, local_id, &pl, ans) != 0) return RELAIS_DELIVER_REJECT;
        sb_add(&b, pl.body, pl.len);
        ext = strstr(pl.content_type, "xml") ? ".xml" : strstr(pl.content_type, "csv") ? ".csv" : ".json";
        relais_payload_release(&pl);
    } else if (c->format == FILE_FMT_CSV) {
        for (char **col = c->cfg->columns; col && *col; col++) {
            if (col != c->cfg->columns)
                sb_add(&b, &c->delim, 1);
            sb_csv_cell(&b, *col, strlen(*col), c->delim);
        }
        sb_add(&b, "\r\n", 2);
        for (char **col = c->cfg->columns; col && *col; col++) {
            if (col != c->cfg->columns)
                sb_add(&b, &c->delim, 1);
            sb_csv_value(&b, event_path(ev, *col), c->delim);
        }
        sb_add(&b, "\r\n", 2);
    } else {
        size_t len = 0;
        const char *json = relais_event_json(ev, &len);
        if (!json)
            b.oom = 1;
        else {
            sb_add(&b, json, len);
            sb_add(&b, "\n", 1);
        }
    }
    if (b.oom) {
        free(b.p);
        snprintf(ans->detail, sizeof ans->detail, "out of memory");
        return RELAIS_DELIVER_RETRY;
    }

    char *tmp = sink_path(c->dir, ".", id, ".tmp");
    char *final = sink_path(c->dir, "", id, ext);
    relais_verdict v;
    if (!tmp || !final) {
        snprintf(ans->detail, sizeof ans->detail, "out of memory");
        v = RELAIS_DELIVER_RETRY;
    } else {
        v = write_file(c, tmp, final, &b, ans);
    }
    if (v == RELAIS_DELIVER_OK) {
        int cut;
        const char *shown = path_shown(final, &cut);
        snprintf(ans->local_id, sizeof ans->local_id, "%.100s%s", id, ext);
        snprintf(ans->detail, sizeof ans->detail, "written %s%.300s", cut ? "..." : "", shown);
    }
    free(b.p);
    free(tmp);
    free(final);
    return v;
}
