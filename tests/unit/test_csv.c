/* Unit tests: the RFC 4180 CSV reader of the file connector
 * (connectors/file/file_csv.c) and the JSON line parser (file_jsonl.c).
 * Picking fields by JSON pointer: tests/unit/test_jsonptr.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "testsupport.h"
#include "../../connectors/file/file_csv.h"
#include "../../connectors/file/file_jsonl.h"

/* Read every record of text; returns a JSON array of
 * {"line":n,"fields":[...]} or {"line":n,"error":"..."} for inspection. */
static json_t *read_all(const char *text, size_t len, char delim, size_t max)
{
    file_csv_reader *r = file_csv_reader_new_mem(text, len, delim, max);
    assert_non_null(r);
    json_t *out = json_array();
    file_csv_row row;
    char err[256];
    for (;;) {
        int st = file_csv_next(r, &row, err, sizeof err);
        if (st == FILE_CSV_END)
            break;
        assert_true(st == FILE_CSV_ROW || st == FILE_CSV_BAD);
        json_t *o = json_pack("{s:I}", "line", (json_int_t)row.line);
        if (st == FILE_CSV_ROW) {
            json_t *f = json_array();
            for (size_t i = 0; i < row.nfields; i++)
                json_array_append_new(f, json_stringn(row.fields[i], row.lens[i]));
            json_object_set_new(o, "fields", f);
        } else {
            json_object_set_new(o, "error", json_string(err));
            json_object_set_new(o, "raw", json_stringn(row.raw, row.rawlen));
        }
        json_array_append_new(out, o);
    }
    file_csv_reader_destroy(r);
    return out;
}

static const char *field(json_t *all, size_t rec, size_t i)
{
    json_t *f = json_object_get(json_array_get(all, rec), "fields");
    assert_non_null(f);
    return json_string_value(json_array_get(f, i));
}

static size_t nfields(json_t *all, size_t rec)
{
    return json_array_size(json_object_get(json_array_get(all, rec), "fields"));
}

static long line_of(json_t *all, size_t rec)
{
    return (long)json_integer_value(json_object_get(json_array_get(all, rec), "line"));
}

static const char *error_of(json_t *all, size_t rec)
{
    return json_string_value(json_object_get(json_array_get(all, rec), "error"));
}

static void test_simple_and_empty_fields(void **state)
{
    (void)state;
    const char *t = "a,b,c\n1,,3\n,,\n";
    json_t *all = read_all(t, strlen(t), ',', 1024);
    assert_int_equal(json_array_size(all), 3);
    assert_int_equal(nfields(all, 1), 3);
    assert_string_equal(field(all, 1, 0), "1");
    assert_string_equal(field(all, 1, 1), "");
    assert_string_equal(field(all, 1, 2), "3");
    assert_int_equal(nfields(all, 2), 3);
    assert_string_equal(field(all, 2, 2), "");
    assert_int_equal(line_of(all, 2), 3);
    json_decref(all);
}

static void test_quotes_and_doubled_quotes(void **state)
{
    (void)state;
    const char *t = "name,comment\n\"Dupont, Jean\",\"il a dit \"\"bonjour\"\"\"\n\"\",\"x\"\n";
    json_t *all = read_all(t, strlen(t), ',', 1024);
    assert_int_equal(json_array_size(all), 3);
    assert_string_equal(field(all, 1, 0), "Dupont, Jean");
    assert_string_equal(field(all, 1, 1), "il a dit \"bonjour\"");
    assert_string_equal(field(all, 2, 0), "");
    assert_string_equal(field(all, 2, 1), "x");
    json_decref(all);
}

static void test_crlf_and_no_final_newline(void **state)
{
    (void)state;
    const char *t = "a;b\r\n1;2\r\n3;4";
    json_t *all = read_all(t, strlen(t), ';', 1024);
    assert_int_equal(json_array_size(all), 3);
    assert_string_equal(field(all, 0, 1), "b");     /* no '\r' left in the field */
    assert_string_equal(field(all, 1, 1), "2");
    assert_string_equal(field(all, 2, 0), "3");
    assert_string_equal(field(all, 2, 1), "4");
    assert_int_equal(line_of(all, 2), 3);
    json_decref(all);
}

static void test_embedded_newline_counts_lines(void **state)
{
    (void)state;
    /* Record 2 starts on line 2 and spans lines 2-4; record 3 is on line 5. */
    const char *t = "id,text\n1,\"first\nsecond\r\nthird\"\n2,after\n";
    json_t *all = read_all(t, strlen(t), ',', 1024);
    assert_int_equal(json_array_size(all), 3);
    assert_int_equal(line_of(all, 1), 2);
    assert_string_equal(field(all, 1, 1), "first\nsecond\r\nthird");
    assert_int_equal(line_of(all, 2), 5);
    assert_string_equal(field(all, 2, 1), "after");
    json_decref(all);
}

static void test_blank_lines_skipped(void **state)
{
    (void)state;
    const char *t = "a\n\n1\n\r\n2\n";
    json_t *all = read_all(t, strlen(t), ',', 1024);
    assert_int_equal(json_array_size(all), 3);
    assert_int_equal(line_of(all, 1), 3);
    assert_int_equal(line_of(all, 2), 5);
    json_decref(all);
}

static void test_unbalanced_quote_reports_line_and_resumes(void **state)
{
    (void)state;
    const char *t = "a,b\n1,2\n3,\"oops\n4,5\n6,7\n";
    json_t *all = read_all(t, strlen(t), ',', 1024);
    assert_int_equal(json_array_size(all), 5);
    assert_int_equal(line_of(all, 2), 3);
    assert_non_null(error_of(all, 2));
    assert_non_null(strstr(error_of(all, 2), "unbalanced quote"));
    assert_string_equal(json_string_value(json_object_get(json_array_get(all, 2), "raw")), "3,\"oops");
    /* The next physical lines are read again as records. */
    assert_int_equal(line_of(all, 3), 4);
    assert_string_equal(field(all, 3, 0), "4");
    assert_int_equal(line_of(all, 4), 5);
    assert_string_equal(field(all, 4, 1), "7");
    json_decref(all);
}

static void test_stray_quotes_refused(void **state)
{
    (void)state;
    const char *t = "a,b\nx\"y,1\n\"ab\"c,2\nok,3\n";
    json_t *all = read_all(t, strlen(t), ',', 1024);
    assert_int_equal(json_array_size(all), 4);
    assert_non_null(strstr(error_of(all, 1), "quote inside unquoted field 1"));
    assert_int_equal(line_of(all, 1), 2);
    assert_non_null(strstr(error_of(all, 2), "after the closing quote"));
    assert_int_equal(line_of(all, 2), 3);
    assert_string_equal(field(all, 3, 0), "ok");
    json_decref(all);
}

static void test_too_long_record(void **state)
{
    (void)state;
    const char *t = "a,b\n0123456789abcdef,\"x\ny\"\nshort,1\n";
    json_t *all = read_all(t, strlen(t), ',', 10);
    assert_int_equal(json_array_size(all), 3);
    assert_non_null(strstr(error_of(all, 1), "longer than max_line"));
    /* The long record (lines 2-3, a quoted newline) is skipped as a whole. */
    assert_int_equal(line_of(all, 2), 4);
    assert_string_equal(field(all, 2, 0), "short");
    json_decref(all);
}

static void test_bom_at_start_only(void **state)
{
    (void)state;
    const char *t = "\xEF\xBB\xBFid,name\n1,\xEF\xBB\xBFx\n";
    json_t *all = read_all(t, strlen(t), ',', 1024);
    assert_int_equal(json_array_size(all), 2);
    assert_string_equal(field(all, 0, 0), "id");
    assert_string_equal(field(all, 1, 1), "\xEF\xBB\xBFx");
    json_decref(all);
    /* A first byte that only looks like a BOM start is kept. */
    const char *u = "\xEF\xBBz\n";
    file_csv_reader *r = file_csv_reader_new_mem(u, strlen(u), ',', 1024);
    file_csv_row row;
    char err[256];
    assert_int_equal(file_csv_next(r, &row, err, sizeof err), FILE_CSV_ROW);
    assert_int_equal(row.lens[0], 3);
    assert_memory_equal(row.fields[0], "\xEF\xBBz", 3);
    file_csv_reader_destroy(r);
}

static void test_header_and_objects(void **state)
{
    (void)state;
    const char *t = "id,name,city\n1,Ana,Lyon\n2,Bob\n3,\"\xff\",x\n";
    file_csv_reader *r = file_csv_reader_new_mem(t, strlen(t), ',', 1024);
    file_csv_row row;
    char err[256];
    assert_int_equal(file_csv_next(r, &row, err, sizeof err), FILE_CSV_ROW);
    file_csv_header *h = file_csv_header_new(&row, err, sizeof err);
    assert_non_null(h);
    assert_int_equal(file_csv_header_index(h, "city"), 2);
    assert_int_equal(file_csv_header_index(h, "zip"), -1);

    assert_int_equal(file_csv_next(r, &row, err, sizeof err), FILE_CSV_ROW);
    json_t *o = file_csv_object(h, &row, err, sizeof err);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "name")), "Ana");
    assert_string_equal(json_string_value(json_object_get(o, "city")), "Lyon");
    json_decref(o);

    assert_int_equal(file_csv_next(r, &row, err, sizeof err), FILE_CSV_ROW);
    assert_null(file_csv_object(h, &row, err, sizeof err));
    assert_string_equal(err, "expected 3 columns, found 2");

    assert_int_equal(file_csv_next(r, &row, err, sizeof err), FILE_CSV_ROW);
    assert_null(file_csv_object(h, &row, err, sizeof err));
    assert_non_null(strstr(err, "not valid UTF-8"));
    assert_int_equal(file_csv_next(r, &row, err, sizeof err), FILE_CSV_END);
    file_csv_header_destroy(h);
    file_csv_reader_destroy(r);
}

static void test_bad_headers(void **state)
{
    (void)state;
    const char *bad[] = { "id,name,id\n", "id,,x\n" };
    const char *want[] = { "appears twice", "has no name" };
    for (size_t i = 0; i < 2; i++) {
        file_csv_reader *r = file_csv_reader_new_mem(bad[i], strlen(bad[i]), ',', 1024);
        file_csv_row row;
        char err[256];
        assert_int_equal(file_csv_next(r, &row, err, sizeof err), FILE_CSV_ROW);
        assert_null(file_csv_header_new(&row, err, sizeof err));
        assert_non_null(strstr(err, want[i]));
        file_csv_reader_destroy(r);
    }
}

/* Stream mode: a read function handing out 1 byte at a time must give the
 * same records as the whole buffer (record boundaries across refills). */
typedef struct drip { const char *p; size_t len, pos; int fail_at; } drip;

static long drip_read(void *opaque, char *buf, size_t cap)
{
    drip *d = opaque;
    (void)cap;
    if (d->fail_at >= 0 && d->pos == (size_t)d->fail_at) {
        errno = EIO;
        return -1;
    }
    if (d->pos >= d->len)
        return 0;
    buf[0] = d->p[d->pos++];
    return 1;
}

static void test_stream_reader(void **state)
{
    (void)state;
    const char *t = "\xEF\xBB\xBFk,v\r\n1,\"a\r\nb\"\r\n2,\"c\"\"d\"\r\n";
    drip d = { t, strlen(t), 0, -1 };
    file_csv_reader *r = file_csv_reader_new(drip_read, &d, ',', 1024);
    file_csv_row row;
    char err[256];
    assert_int_equal(file_csv_next(r, &row, err, sizeof err), FILE_CSV_ROW);
    assert_string_equal(row.fields[0], "k");
    assert_int_equal(file_csv_next(r, &row, err, sizeof err), FILE_CSV_ROW);
    assert_string_equal(row.fields[1], "a\r\nb");
    assert_int_equal(file_csv_next(r, &row, err, sizeof err), FILE_CSV_ROW);
    assert_int_equal(row.line, 4);
    assert_string_equal(row.fields[1], "c\"d");
    assert_int_equal(file_csv_next(r, &row, err, sizeof err), FILE_CSV_END);
    file_csv_reader_destroy(r);

    drip e = { t, strlen(t), 0, 8 };
    r = file_csv_reader_new(drip_read, &e, ',', 1024);
    assert_int_equal(file_csv_next(r, &row, err, sizeof err), FILE_CSV_ROW);
    assert_int_equal(file_csv_next(r, &row, err, sizeof err), FILE_CSV_IOERR);
    assert_non_null(strstr(err, "read error"));
    file_csv_reader_destroy(r);
}

static void test_jsonl_parse(void **state)
{
    (void)state;
    char err[256];
    const char *good = " {\"id\": 7, \"a\": {\"b/c\": [\"x\", \"y\"], \"t~\": \"tilde\"}} ";
    json_t *o = file_jsonl_parse(good, strlen(good), err, sizeof err);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(o, "id")), 7);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "a"), "t~")), "tilde");
    json_decref(o);

    assert_null(file_jsonl_parse("{\"a\":1,\"a\":2}", 13, err, sizeof err));
    assert_non_null(strstr(err, "invalid JSON"));
    assert_null(file_jsonl_parse("[1,2]", 5, err, sizeof err));
    assert_string_equal(err, "not a JSON object");
    assert_null(file_jsonl_parse("{\"a\":1} {}", 10, err, sizeof err));

    char deep[200];
    size_t n = 0;
    for (int i = 0; i < 65; i++)
        deep[n++] = '[';
    for (int i = 0; i < 65; i++)
        deep[n++] = ']';
    assert_null(file_jsonl_parse(deep, n, err, sizeof err));
    assert_non_null(strstr(err, "deeper than 64"));
    /* 64 levels are fine; brackets inside strings do not count. */
    n = 0;
    deep[n++] = '{';
    deep[n++] = '"';
    deep[n++] = 'k';
    deep[n++] = '"';
    deep[n++] = ':';
    for (int i = 0; i < 63; i++)
        deep[n++] = '[';
    memcpy(deep + n, "\"[[[\\\"\"", 7);
    n += 7;
    for (int i = 0; i < 63; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    o = file_jsonl_parse(deep, n, err, sizeof err);
    assert_non_null(o);
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_and_empty_fields),
        cmocka_unit_test(test_quotes_and_doubled_quotes),
        cmocka_unit_test(test_crlf_and_no_final_newline),
        cmocka_unit_test(test_embedded_newline_counts_lines),
        cmocka_unit_test(test_blank_lines_skipped),
        cmocka_unit_test(test_unbalanced_quote_reports_line_and_resumes),
        cmocka_unit_test(test_stray_quotes_refused),
        cmocka_unit_test(test_too_long_record),
        cmocka_unit_test(test_bom_at_start_only),
        cmocka_unit_test(test_header_and_objects),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_stream_reader),
        cmocka_unit_test(test_jsonl_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
