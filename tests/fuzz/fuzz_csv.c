/*
 * fuzz_csv.c - libFuzzer target over the file connector's CSV reader
 * (connectors/file/file_csv.c): records, header, {column: value} objects.
 *
 * Input: the first byte picks the delimiter (',' ';' '\t' '|'), the record
 * size limit (small limits reach the "too long" path) and the size of the
 * chunks the stream reader is fed; the rest is the file. The same input is
 * read from memory and as a stream, and both must give the same records
 * (differential check); line numbers never go backwards; no field or raw
 * excerpt is longer than the limit.
 * Seeds: tests/fuzz/corpus/csv/.
 *
 * Build and run by hand (needs only file_csv.c and jansson):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iconnectors/file \
 *     tests/fuzz/fuzz_csv.c connectors/file/file_csv.c -ljansson -o fuzz_csv
 *   ./fuzz_csv -max_total_time=60 tests/fuzz/corpus/csv/
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "../../connectors/file/file_csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        abort();
}

typedef struct feed {
    const char *p;
    size_t      len, pos, chunk;
} feed;

static long feed_read(void *opaque, char *buf, size_t cap)
{
    feed *f = opaque;
    size_t n = f->len - f->pos;
    if (n > f->chunk)
        n = f->chunk;
    if (n > cap)
        n = cap;
    memcpy(buf, f->p + f->pos, n);
    f->pos += n;
    return (long)n;
}

/* One record as bytes for the comparison: status, line, then each field
 * with its length (fields may hold any byte). */
typedef struct desc {
    char  *p;
    size_t len;
} desc;

static void desc_add(desc *d, const void *src, size_t n)
{
    char *np = realloc(d->p, d->len + n + 1);
    check(np != NULL);
    d->p = np;
    memcpy(d->p + d->len, src, n);
    d->len += n;
}

static desc describe(int st, const file_csv_row *row)
{
    desc d = { NULL, 0 };
    desc_add(&d, &st, sizeof st);
    desc_add(&d, &row->line, sizeof row->line);
    if (st == FILE_CSV_ROW) {
        for (size_t i = 0; i < row->nfields; i++) {
            desc_add(&d, &row->lens[i], sizeof row->lens[i]);
            desc_add(&d, row->fields[i], row->lens[i]);
        }
    } else if (st == FILE_CSV_BAD) {
        desc_add(&d, &row->rawlen, sizeof row->rawlen);
        desc_add(&d, row->raw, row->rawlen);
    }
    return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char delims[4] = { ',', ';', '\t', '|' };
    char delim = delims[data[0] & 3];
    size_t max = (data[0] & 4) ? 16 : 4096;
    size_t chunk = 1 + ((data[0] >> 3) & 31);
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    file_csv_reader *mem = file_csv_reader_new_mem(text, len, delim, max);
    feed f = { text, len, 0, chunk };
    file_csv_reader *str = file_csv_reader_new(feed_read, &f, delim, max);
    check(mem && str);
    file_csv_header *h = NULL;
    size_t last_line = 0;
    for (int guard = 0; guard < 100000; guard++) {
        file_csv_row a, b;
        char ea[256], eb[256];
        int sa = file_csv_next(mem, &a, ea, sizeof ea);
        desc da = describe(sa, &a);
        if (sa != FILE_CSV_END) {
            check(a.line >= last_line);
            check(a.rawlen <= max);
            last_line = a.line;
        }
        if (sa == FILE_CSV_ROW) {
            for (size_t i = 0; i < a.nfields; i++)
                check(a.lens[i] <= max);
            if (!h) {
                char e[256];
                h = file_csv_header_new(&a, e, sizeof e);
                if (!h)
                    check(e[0] != '\0');
            } else {
                char e[256];
                json_t *o = file_csv_object(h, &a, e, sizeof e);
                if (o)
                    check(json_object_size(o) == h->n);
                else
                    check(e[0] != '\0');
                json_decref(o);
            }
        }
        int sb = file_csv_next(str, &b, eb, sizeof eb);
        desc db = describe(sb, &b);
        check(sa == sb);
        check(da.len == db.len && memcmp(da.p, db.p, da.len) == 0);
        if (sa == FILE_CSV_BAD)
            check(strcmp(ea, eb) == 0);
        free(da.p);
        free(db.p);
        check(sa != FILE_CSV_IOERR);
        if (sa == FILE_CSV_END)
            break;
    }
    file_csv_header_destroy(h);
    file_csv_reader_destroy(mem);
    file_csv_reader_destroy(str);
    return 0;
}
