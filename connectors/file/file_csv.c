/*
 * file_csv.c - RFC 4180 CSV reader (see file_csv.h): a byte-at-a-time state
 * machine over a refillable buffer, so that files of any size are read with
 * memory bounded by max_record. Single-threaded: a reader belongs to the
 * caller.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "file_csv.h"

#define CSV_CHUNK 65536

typedef struct dynbuf {
    char  *p;
    size_t len, cap;
} dynbuf;

struct file_csv_reader {
    file_csv_read_fn fn;
    void            *opaque;
    const char      *mem;      /* memory mode: the whole input */
    size_t           memlen;
    char             delim;
    size_t           max_record;
    char            *chunk;    /* stream mode buffer */
    size_t           cpos, clen;
    int              eof;
    dynbuf           back;     /* bytes pushed back, read before the stream */
    size_t           backpos;
    int              started;  /* BOM looked for */
    int              pending;  /* one unread byte, -3 when none */
    size_t           line;     /* physical line of the next byte */
    dynbuf           field;    /* fields of the current record, NUL-separated */
    dynbuf           raw;      /* the current record as read */
    size_t          *offs;     /* field start offsets in `field` */
    size_t           noffs, capoffs;
    char           **fields;
    size_t          *lens;
    size_t           capfields;
};

static int db_put(dynbuf *b, char ch)
{
    if (b->len + 1 >= b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 256;
        char *np = realloc(b->p, ncap);
        if (!np)
            return -1;
        b->p = np;
        b->cap = ncap;
    }
    b->p[b->len++] = ch;
    return 0;
}

static file_csv_reader *reader_alloc(char delim, size_t max_record)
{
    file_csv_reader *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->delim = delim;
    r->max_record = max_record ? max_record : 1024 * 1024;
    r->line = 1;
    r->pending = -3;
    return r;
}

file_csv_reader *file_csv_reader_new(file_csv_read_fn fn, void *opaque, char delim,
                                     size_t max_record)
{
    file_csv_reader *r = reader_alloc(delim, max_record);
    if (!r)
        return NULL;
    r->fn = fn;
    r->opaque = opaque;
    r->chunk = malloc(CSV_CHUNK);
    if (!r->chunk) {
        free(r);
        return NULL;
    }
    return r;
}

file_csv_reader *file_csv_reader_new_mem(const char *buf, size_t len, char delim,
                                         size_t max_record)
{
    file_csv_reader *r = reader_alloc(delim, max_record);
    if (!r)
        return NULL;
    r->mem = buf ? buf : "";
    r->memlen = buf ? len : 0;
    return r;
}

void file_csv_reader_destroy(file_csv_reader *r)
{
    if (!r)
        return;
    free(r->chunk);
    free(r->back.p);
    free(r->field.p);
    free(r->raw.p);
    free(r->offs);
    free(r->fields);
    free(r->lens);
    free(r);
}

/* Next byte (0..255), -1 at end of input, -2 on read error. */
static int next_byte(file_csv_reader *r)
{
    if (r->pending != -3) {
        int c = r->pending;
        r->pending = -3;
        return c;
    }
    if (r->backpos < r->back.len)
        return (unsigned char)r->back.p[r->backpos++];
    if (r->mem) {
        if (r->cpos >= r->memlen)
            return -1;
        return (unsigned char)r->mem[r->cpos++];
    }
    if (r->cpos >= r->clen) {
        if (r->eof)
            return -1;
        long n = r->fn(r->opaque, r->chunk, CSV_CHUNK);
        if (n < 0)
            return -2;
        if (n == 0) {
            r->eof = 1;
            return -1;
        }
        r->cpos = 0;
        r->clen = (size_t)n;
    }
    return (unsigned char)r->chunk[r->cpos++];
}

/* Skip a UTF-8 byte order mark at the very start of the input. */
static int skip_bom(file_csv_reader *r)
{
    static const unsigned char bom[3] = { 0xEF, 0xBB, 0xBF };
    unsigned char got[3];
    size_t n = 0;
    r->started = 1;
    while (n < 3) {
        int c = next_byte(r);
        if (c == -2)
            return -1;
        if (c < 0)
            break;
        got[n++] = (unsigned char)c;
        if (got[n - 1] != bom[n - 1])
            break;
    }
    if (n == 3 && memcmp(got, bom, 3) == 0)
        return 0;
    /* Not a BOM: hand the bytes back (the push-back buffer is empty here). */
    for (size_t i = 0; i < n; i++)
        if (db_put(&r->back, (char)got[i]) != 0)
            return -1;
    return 0;
}

static int end_field(file_csv_reader *r)
{
    if (db_put(&r->field, '\0') != 0)
        return -1;
    if (r->noffs + 1 >= r->capoffs) {
        size_t ncap = r->capoffs ? r->capoffs * 2 : 16;
        size_t *np = realloc(r->offs, ncap * sizeof *np);
        if (!np)
            return -1;
        r->offs = np;
        r->capoffs = ncap;
    }
    /* offs[k] is where field k starts; the next one starts after the NUL. */
    r->offs[++r->noffs] = r->field.len;
    return 0;
}

static int fill_row(file_csv_reader *r, file_csv_row *row)
{
    if (r->noffs > r->capfields) {
        char **nf = realloc(r->fields, r->noffs * sizeof *nf);
        if (!nf)
            return -1;
        r->fields = nf;
        size_t *nl = realloc(r->lens, r->noffs * sizeof *nl);
        if (!nl)
            return -1;
        r->lens = nl;
        r->capfields = r->noffs;
    }
    for (size_t k = 0; k < r->noffs; k++) {
        r->fields[k] = r->field.p + r->offs[k];
        r->lens[k] = r->offs[k + 1] - r->offs[k] - 1;
    }
    row->nfields = r->noffs;
    row->fields = r->fields;
    row->lens = r->lens;
    return 0;
}

enum { ST_FIELD_START, ST_UNQUOTED, ST_QUOTED, ST_QUOTE_IN_QUOTED };

int file_csv_next(file_csv_reader *r, file_csv_row *row, char *errstr, size_t errlen)
{
    char err[200] = "";
    int st = ST_FIELD_START;
    int any = 0;          /* a byte of this record was consumed */
    int toolong = 0;
    size_t field_no = 1;  /* 1-based, for messages */
    size_t quote_field = 0;

    memset(row, 0, sizeof *row);
    if (!r->started && skip_bom(r) != 0)
        goto ioerr;
    r->field.len = 0;
    r->raw.len = 0;
    r->noffs = 0;
    if (!r->offs) {
        r->offs = malloc(16 * sizeof *r->offs);
        if (!r->offs)
            goto ioerr;
        r->capoffs = 16;
    }
    r->offs[0] = 0;
    row->line = r->line;

    for (;;) {
        int c = next_byte(r);
        if (c == -2)
            goto ioerr;
        if (c == -1) {
            if (!any)
                return FILE_CSV_END;
            if (st == ST_QUOTED) {
                snprintf(err, sizeof err, "unbalanced quote: field %zu opens a quote that is never closed",
                         quote_field);
                /* Resume on the line after the record's first one, so that a
                 * stray quote costs one line, not the rest of the file. */
                if (!toolong) {
                    size_t k = 0;
                    while (k < r->raw.len && r->raw.p[k] != '\n' && r->raw.p[k] != '\r')
                        k++;
                    if (k < r->raw.len) {
                        if (r->raw.p[k] == '\r' && k + 1 < r->raw.len && r->raw.p[k + 1] == '\n')
                            k++;
                        k++;
                        dynbuf nb = { 0 };
                        for (size_t j = k; j < r->raw.len; j++)
                            if (db_put(&nb, r->raw.p[j]) != 0) {
                                free(nb.p);
                                goto ioerr;
                            }
                        free(r->back.p);
                        r->back = nb;
                        r->backpos = 0;
                        r->line = row->line + 1;
                        r->raw.len = k - 1;
                        while (r->raw.len > 0 && (r->raw.p[r->raw.len - 1] == '\n' ||
                                                  r->raw.p[r->raw.len - 1] == '\r'))
                            r->raw.len--;
                    }
                }
            }
            break;
        }
        int is_nl = (c == '\n' || c == '\r');
        if (is_nl) {
            if (c == '\r') {
                int d = next_byte(r);
                if (d == -2)
                    goto ioerr;
                if (d == '\n') {
                    if (st == ST_QUOTED && !toolong && r->raw.len < r->max_record &&
                        db_put(&r->raw, '\r') != 0)
                        goto ioerr;
                    if (st == ST_QUOTED && !toolong && db_put(&r->field, '\r') != 0)
                        goto ioerr;
                    c = '\n';
                } else if (d >= 0) {
                    r->pending = d;
                }
            }
            r->line++;
            if (st != ST_QUOTED) {
                if (!any) {              /* blank line: not a record */
                    row->line = r->line;
                    continue;
                }
                break;
            }
        }
        any = 1;
        if (!toolong) {
            if (r->raw.len >= r->max_record) {
                toolong = 1;
            } else if (db_put(&r->raw, (char)c) != 0) {
                goto ioerr;
            }
        }
        if (toolong)
            goto scan_only;
        switch (st) {
        case ST_FIELD_START:
            if (c == '"') {
                st = ST_QUOTED;
                quote_field = field_no;
            } else if (c == (unsigned char)r->delim) {
                if (end_field(r) != 0)
                    goto ioerr;
                field_no++;
            } else {
                if (db_put(&r->field, (char)c) != 0)
                    goto ioerr;
                st = ST_UNQUOTED;
            }
            break;
        case ST_UNQUOTED:
            if (c == (unsigned char)r->delim) {
                if (end_field(r) != 0)
                    goto ioerr;
                field_no++;
                st = ST_FIELD_START;
            } else {
                if (c == '"' && !err[0])
                    snprintf(err, sizeof err, "quote inside unquoted field %zu", field_no);
                if (db_put(&r->field, (char)c) != 0)
                    goto ioerr;
            }
            break;
        case ST_QUOTED:
            if (c == '"')
                st = ST_QUOTE_IN_QUOTED;
            else if (db_put(&r->field, (char)c) != 0)
                goto ioerr;
            break;
        case ST_QUOTE_IN_QUOTED:
            if (c == '"') {
                if (db_put(&r->field, '"') != 0)
                    goto ioerr;
                st = ST_QUOTED;
            } else if (c == (unsigned char)r->delim) {
                if (end_field(r) != 0)
                    goto ioerr;
                field_no++;
                st = ST_FIELD_START;
            } else {
                if (!err[0])
                    snprintf(err, sizeof err, "unexpected character after the closing quote of field %zu",
                             field_no);
                if (db_put(&r->field, (char)c) != 0)
                    goto ioerr;
                st = ST_UNQUOTED;
            }
            break;
        }
        continue;
scan_only:
        /* Past max_record: only follow quotes to find the record's end. */
        if (st == ST_QUOTED) {
            if (c == '"')
                st = ST_QUOTE_IN_QUOTED;
        } else if (st == ST_QUOTE_IN_QUOTED) {
            st = c == '"' ? ST_QUOTED : ST_UNQUOTED;
        } else if (c == '"' && st == ST_FIELD_START) {
            st = ST_QUOTED;
        } else {
            st = c == (unsigned char)r->delim ? ST_FIELD_START : ST_UNQUOTED;
        }
    }

    row->raw = r->raw.p ? r->raw.p : "";
    row->rawlen = r->raw.len;
    if (toolong) {
        snprintf(errstr, errlen, "record longer than max_line (%zu bytes)", r->max_record);
        return FILE_CSV_BAD;
    }
    if (err[0]) {
        snprintf(errstr, errlen, "%s", err);
        return FILE_CSV_BAD;
    }
    if (end_field(r) != 0 || fill_row(r, row) != 0)
        goto ioerr;
    return FILE_CSV_ROW;
ioerr:
    if (errno == 0)
        errno = ENOMEM;
    snprintf(errstr, errlen, "read error: %s", strerror(errno));
    return FILE_CSV_IOERR;
}

void file_csv_header_destroy(file_csv_header *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++)
        free(h->names[i]);
    free(h->names);
    free(h);
}

file_csv_header *file_csv_header_new(const file_csv_row *row, char *errstr, size_t errlen)
{
    file_csv_header *h = calloc(1, sizeof *h);
    if (h)
        h->names = calloc(row->nfields ? row->nfields : 1, sizeof *h->names);
    if (!h || !h->names) {
        free(h);
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < row->nfields; i++) {
        if (row->lens[i] == 0) {
            snprintf(errstr, errlen, "header: column %zu has no name", i + 1);
            goto fail;
        }
        if (strlen(row->fields[i]) != row->lens[i]) {
            snprintf(errstr, errlen, "header: column %zu name holds a NUL byte", i + 1);
            goto fail;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(h->names[j], row->fields[i]) == 0) {
                snprintf(errstr, errlen, "header: column name '%.64s' appears twice (columns %zu and %zu)",
                         row->fields[i], j + 1, i + 1);
                goto fail;
            }
        }
        h->names[i] = strdup(row->fields[i]);
        if (!h->names[i]) {
            snprintf(errstr, errlen, "out of memory");
            goto fail;
        }
        h->n = i + 1;
    }
    return h;
fail:
    file_csv_header_destroy(h);
    return NULL;
}

long file_csv_header_index(const file_csv_header *h, const char *name)
{
    for (size_t i = 0; h && name && i < h->n; i++)
        if (strcmp(h->names[i], name) == 0)
            return (long)i;
    return -1;
}

json_t *file_csv_object(const file_csv_header *h, const file_csv_row *row,
                        char *errstr, size_t errlen)
{
    if (row->nfields != h->n) {
        snprintf(errstr, errlen, "expected %zu columns, found %zu", h->n, row->nfields);
        return NULL;
    }
    json_t *obj = json_object();
    if (!obj) {
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < h->n; i++) {
        json_t *v = json_stringn(row->fields[i], row->lens[i]);
        if (!v) {
            snprintf(errstr, errlen, "column '%.64s' is not valid UTF-8", h->names[i]);
            json_decref(obj);
            return NULL;
        }
        if (json_object_set_new(obj, h->names[i], v) != 0) {
            snprintf(errstr, errlen, "column '%.64s' name is not valid UTF-8", h->names[i]);
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}
