/*
 * file_csv.h - an RFC 4180 CSV reader, pure code (no hub dependency) so that
 * unit tests and the fuzz target can drive it directly.
 *
 * Accepted: quoted fields, doubled quotes inside quotes, CRLF, LF or a lone
 * CR as record end, newlines inside quoted fields, a UTF-8 byte order mark at
 * the very start, any one-byte delimiter. Blank lines are skipped (they are
 * not records). A record is reported with the physical line on which it
 * starts (newlines inside quotes count toward later lines).
 *
 * Refused records (FILE_CSV_BAD, the reader stays usable):
 *   - a quote inside an unquoted field, a character after a closing quote;
 *   - a record longer than max_record bytes (the rest is skipped);
 *   - a quote never closed before the end of the input: the record is
 *     reported at its first line and reading resumes on the next physical
 *     line (when the record fitted in max_record), so that one stray quote
 *     does not swallow the rest of the file.
 * The column count is checked by file_csv_object() against the header.
 */
#ifndef RELAIS_FILE_CSV_H
#define RELAIS_FILE_CSV_H
#include <stddef.h>
#include <jansson.h>

/* Reads up to cap bytes: returns the count, 0 at end of input, -1 on error
 * (errno set). */
typedef long (*file_csv_read_fn)(void *opaque, char *buf, size_t cap);

typedef struct file_csv_reader file_csv_reader;

/* One record, valid until the next file_csv_next() call. */
typedef struct file_csv_row {
    size_t       nfields;
    char       **fields;  /* NUL-terminated (a field may also hold NUL bytes: use lens) */
    size_t      *lens;
    size_t       line;    /* physical line where the record starts, 1-based */
    const char  *raw;     /* the record as read (without its line end), at most max_record bytes */
    size_t       rawlen;
} file_csv_row;

enum {
    FILE_CSV_END   = 0,   /* no more records */
    FILE_CSV_ROW   = 1,   /* *row holds a record */
    FILE_CSV_BAD   = -1,  /* a refused record: row->line, row->raw and errstr say which and why */
    FILE_CSV_IOERR = -2   /* the read function failed (errno) */
};

file_csv_reader *file_csv_reader_new(file_csv_read_fn fn, void *opaque, char delim,
                                     size_t max_record);
/* Over a memory buffer (borrowed for the reader's life). */
file_csv_reader *file_csv_reader_new_mem(const char *buf, size_t len, char delim,
                                         size_t max_record);
int  file_csv_next(file_csv_reader *r, file_csv_row *row, char *errstr, size_t errlen);
void file_csv_reader_destroy(file_csv_reader *r);

/* Column names from a header row: none empty, no duplicates. */
typedef struct file_csv_header {
    size_t  n;
    char  **names;
} file_csv_header;

file_csv_header *file_csv_header_new(const file_csv_row *row, char *errstr, size_t errlen);
void             file_csv_header_destroy(file_csv_header *h);
/* Index of a column, -1 when absent. */
long             file_csv_header_index(const file_csv_header *h, const char *name);
/* {column: string} for one record; NULL with the reason when the column
 * count differs from the header's or a field is not valid UTF-8. */
json_t *file_csv_object(const file_csv_header *h, const file_csv_row *row,
                        char *errstr, size_t errlen);
#endif
