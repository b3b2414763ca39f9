/* Unit tests: RFC 6901 JSON pointers and scalar text (hub/jsonptr.c), used by
 * the http, file and kafka connectors. */
#include <stdlib.h>
#include <string.h>
#include "testsupport.h"
#include "jsonptr.h"

/* {"a/b":{"m~n":[10,{"x":"y"}]},"":5,"id":7,"a":{"b/c":["x","y"],"t~":"tilde"},
 *  " ":"space","arr":[0,1,2,3,4,5,6,7,8,9,10,11],"n":null} */
static json_t *doc(void)
{
    json_t *d = json_loads("{\"a/b\":{\"m~n\":[10,{\"x\":\"y\"}]},\"\":5,\"id\":7,"
                           "\"a\":{\"b/c\":[\"x\",\"y\"],\"t~\":\"tilde\",\"\":{\"\":\"deep\"}},"
                           "\" \":\"space\",\"arr\":[0,1,2,3,4,5,6,7,8,9,10,11],\"n\":null,"
                           "\"~01\":\"literal\"}", 0, NULL);
    assert_non_null(d);
    return d;
}

static void test_escapes(void **state)
{
    (void)state;
    json_t *d = doc();
    assert_int_equal(json_integer_value(relais_json_pointer(d, "/a~1b/m~0n/0")), 10);
    assert_string_equal(json_string_value(relais_json_pointer(d, "/a~1b/m~0n/1/x")), "y");
    assert_string_equal(json_string_value(relais_json_pointer(d, "/a/b~1c/1")), "y");
    assert_string_equal(json_string_value(relais_json_pointer(d, "/a/t~0")), "tilde");
    /* "~01" is "~" then "1" (not "/"): ~0 is decoded first, once */
    assert_string_equal(json_string_value(relais_json_pointer(d, "/~001")), "literal");
    assert_null(relais_json_pointer(d, "/~01"));            /* that is "~1", not present */
    assert_null(relais_json_pointer(d, "/a/b/c/1"));        /* '/' separates: a -> b -> ... */
    assert_null(relais_json_pointer(d, "/a~1b/m~n"));       /* '~n' is not an escape */
    json_decref(d);
}

static void test_whole_document_and_empty_tokens(void **state)
{
    (void)state;
    json_t *d = doc();
    assert_ptr_equal(relais_json_pointer(d, ""), d);
    assert_int_equal(json_integer_value(relais_json_pointer(d, "/")), 5);   /* member "" */
    assert_string_equal(json_string_value(relais_json_pointer(d, "/a//")), "deep");
    assert_string_equal(json_string_value(relais_json_pointer(d, "/ ")), "space");
    assert_null(relais_json_pointer(d, "/id/"));    /* a token applied to a scalar */
    assert_null(relais_json_pointer(d, "/id/0"));
    assert_null(relais_json_pointer(d, "/missing"));
    assert_null(relais_json_pointer(d, "/missing/x"));
    /* null is a value: found (callers decide what it means) */
    assert_true(json_is_null(relais_json_pointer(d, "/n")));
    assert_null(relais_json_pointer(d, "/n/x"));
    assert_null(relais_json_pointer(NULL, ""));
    assert_null(relais_json_pointer(NULL, "/id"));
    json_decref(d);
}

static void test_array_indexes(void **state)
{
    (void)state;
    json_t *d = doc();
    assert_int_equal(json_integer_value(relais_json_pointer(d, "/arr/0")), 0);
    assert_int_equal(json_integer_value(relais_json_pointer(d, "/arr/9")), 9);
    assert_int_equal(json_integer_value(relais_json_pointer(d, "/arr/11")), 11);
    assert_null(relais_json_pointer(d, "/arr/12"));       /* out of range */
    assert_null(relais_json_pointer(d, "/arr/01"));       /* leading zero */
    assert_null(relais_json_pointer(d, "/arr/00"));
    assert_null(relais_json_pointer(d, "/a~1b/m~0n/01"));
    assert_null(relais_json_pointer(d, "/arr/-"));        /* past the end: never present */
    assert_null(relais_json_pointer(d, "/arr/"));         /* empty token on an array */
    assert_null(relais_json_pointer(d, "/arr/+1"));
    assert_null(relais_json_pointer(d, "/arr/-1"));
    assert_null(relais_json_pointer(d, "/arr/1a"));
    assert_null(relais_json_pointer(d, "/arr/ 1"));
    /* beyond any size_t: absent, no overflow wrapping back to a small index */
    assert_null(relais_json_pointer(d, "/arr/18446744073709551617"));
    assert_null(relais_json_pointer(d, "/arr/99999999999999999999999999999"));
    /* on an object, digits are member names */
    json_t *o = json_loads("{\"01\":\"zero-one\",\"-\":\"dash\"}", 0, NULL);
    assert_string_equal(json_string_value(relais_json_pointer(o, "/01")), "zero-one");
    assert_string_equal(json_string_value(relais_json_pointer(o, "/-")), "dash");
    json_decref(o);
    json_decref(d);
}

static void test_invalid_pointers(void **state)
{
    (void)state;
    json_t *d = doc();
    assert_int_equal(relais_json_pointer_valid(""), 0);
    assert_int_equal(relais_json_pointer_valid("/"), 0);
    assert_int_equal(relais_json_pointer_valid("/a~0~1/0"), 0);
    assert_int_equal(relais_json_pointer_valid(NULL), -1);
    assert_int_equal(relais_json_pointer_valid("a"), -1);
    assert_int_equal(relais_json_pointer_valid("id"), -1);
    assert_int_equal(relais_json_pointer_valid("#/a"), -1);   /* URI fragment form: not supported */
    assert_int_equal(relais_json_pointer_valid("/a~2"), -1);
    assert_int_equal(relais_json_pointer_valid("/a~"), -1);
    assert_int_equal(relais_json_pointer_valid("/~/b"), -1);
    /* invalid pointers find nothing, even where a lax reading would */
    assert_null(relais_json_pointer(d, "id"));
    assert_null(relais_json_pointer(d, NULL));
    assert_null(relais_json_pointer(d, "/a/t~"));
    assert_null(relais_json_pointer(d, "/a/t~2"));
    json_decref(d);
}

/* Tokens longer than the on-stack scratch (256 bytes) still work. */
static void test_long_tokens(void **state)
{
    (void)state;
    char key[700], ptr[1500];
    for (size_t i = 0; i < sizeof key - 1; i++)
        key[i] = (i % 50 == 7) ? '/' : (i % 50 == 9) ? '~' : (char)('a' + i % 26);
    key[sizeof key - 1] = '\0';
    size_t n = 0;
    ptr[n++] = '/';
    for (const char *k = key; *k; k++) {
        if (*k == '/' || *k == '~') {
            ptr[n++] = '~';
            ptr[n++] = *k == '/' ? '1' : '0';
        } else {
            ptr[n++] = *k;
        }
    }
    ptr[n] = '\0';
    json_t *d = json_pack("{s:s}", key, "found");
    assert_non_null(d);
    assert_string_equal(json_string_value(relais_json_pointer(d, ptr)), "found");
    ptr[n - 1] = '\0';   /* one byte short: a different member */
    assert_null(relais_json_pointer(d, ptr));
    json_decref(d);
}

static void test_text_of_each_type(void **state)
{
    (void)state;
    json_t *d = json_loads("{\"s\":\"R-17\",\"e\":\"\",\"u\":\"é\",\"i\":-42,\"big\":9223372036854775807,"
                           "\"r\":1.5,\"r3\":3.0,\"tiny\":1e-300,\"t\":true,\"f\":false,\"n\":null,"
                           "\"o\":{\"k\":1},\"a\":[1]}", 0, NULL);
    assert_non_null(d);
    char buf[64];
    static const struct { const char *ptr, *text; } ok[] = {
        { "/s", "R-17" }, { "/e", "" }, { "/u", "é" }, { "/i", "-42" },
        { "/big", "9223372036854775807" }, { "/r", "1.5" }, { "/r3", "3" },
        { "/tiny", "1e-300" }, { "/t", "true" }, { "/f", "false" },
    };
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
        memcpy(buf, "garbage", 8);
        assert_int_equal(relais_json_pointer_text(d, ok[k].ptr, buf, sizeof buf), 0);
        assert_string_equal(buf, ok[k].text);
    }
    /* 0.1 round-trips with %.17g */
    json_t *r = json_real(0.1);
    assert_int_equal(relais_json_scalar_text(r, buf, sizeof buf), 0);
    assert_string_equal(buf, "0.10000000000000001");
    json_decref(r);
    /* null, containers, absent and invalid pointers: -1 and an empty buffer */
    static const char *const refused[] = { "/n", "/o", "/a", "", "/missing", "s", "/s~2" };
    for (size_t k = 0; k < sizeof refused / sizeof refused[0]; k++) {
        memcpy(buf, "garbage", 8);
        assert_int_equal(relais_json_pointer_text(d, refused[k], buf, sizeof buf), -1);
        assert_string_equal(buf, "");
    }
    assert_int_equal(relais_json_scalar_text(NULL, buf, sizeof buf), -1);
    /* a string holding NUL (jansson can build one) would end early as C text */
    json_t *nul = json_stringn("ab\0cd", 5);
    assert_non_null(nul);
    memcpy(buf, "garbage", 8);
    assert_int_equal(relais_json_scalar_text(nul, buf, sizeof buf), -1);
    assert_string_equal(buf, "");
    json_decref(nul);
    json_decref(d);
}

static void test_text_truncation(void **state)
{
    (void)state;
    json_t *d = json_loads("{\"s\":\"abcd\",\"i\":12345,\"r\":1.25,\"t\":true,\"f\":false}", 0, NULL);
    assert_non_null(d);
    char buf[16];
    /* exactly fits: text of len - 1 bytes */
    assert_int_equal(relais_json_pointer_text(d, "/s", buf, 5), 0);
    assert_string_equal(buf, "abcd");
    assert_int_equal(relais_json_pointer_text(d, "/i", buf, 6), 0);
    assert_string_equal(buf, "12345");
    assert_int_equal(relais_json_pointer_text(d, "/t", buf, 5), 0);
    assert_string_equal(buf, "true");
    /* one byte short: refused, never a truncated value */
    static const struct { const char *ptr; size_t len; } shorts[] = {
        { "/s", 4 }, { "/i", 5 }, { "/r", 4 }, { "/t", 4 }, { "/f", 5 }, { "/s", 1 },
    };
    for (size_t k = 0; k < sizeof shorts / sizeof shorts[0]; k++) {
        memset(buf, 'x', sizeof buf);
        assert_int_equal(relais_json_pointer_text(d, shorts[k].ptr, buf, shorts[k].len), -1);
        assert_string_equal(buf, "");
        assert_int_equal(buf[shorts[k].len], 'x');   /* nothing written past len */
    }
    /* no room at all: -1, nothing written */
    buf[0] = 'x';
    assert_int_equal(relais_json_pointer_text(d, "/s", buf, 0), -1);
    assert_int_equal(buf[0], 'x');
    json_decref(d);
}

/* The optional-field picker of the file and kafka sources. */
static void test_field(void **state)
{
    (void)state;
    json_t *d = json_loads("{\"id\":7,\"who\":{\"name\":\"Ana\"},\"e\":\"\",\"n\":null,\"o\":{},"
                           "\"a\":[],\"r\":2.5,\"t\":false,\"long\":\"0123456789\"}", 0, NULL);
    assert_non_null(d);
    char buf[8], err[128];
    const char *out = "stale";
    assert_int_equal(relais_json_pointer_field(d, "/id", "record_id_field", buf, sizeof buf, &out,
                                               err, sizeof err), 0);
    assert_ptr_equal(out, buf);
    assert_string_equal(out, "7");
    assert_int_equal(relais_json_pointer_field(d, "/who/name", "subject_field", buf, sizeof buf,
                                               &out, err, sizeof err), 0);
    assert_string_equal(out, "Ana");
    assert_int_equal(relais_json_pointer_field(d, "/r", "x", buf, sizeof buf, &out, err, sizeof err), 0);
    assert_string_equal(out, "2.5");
    assert_int_equal(relais_json_pointer_field(d, "/t", "x", buf, sizeof buf, &out, err, sizeof err), 0);
    assert_string_equal(out, "false");
    /* no pointer, absent, null, "" and invalid pointers: no value, no error */
    static const char *const none[] = { "/missing", "/n", "/e", "id" };
    for (size_t k = 0; k < sizeof none / sizeof none[0]; k++) {
        out = "stale";
        assert_int_equal(relais_json_pointer_field(d, none[k], "x", buf, sizeof buf, &out, err,
                                                   sizeof err), 0);
        assert_null(out);
    }
    out = "stale";
    assert_int_equal(relais_json_pointer_field(d, NULL, "x", buf, sizeof buf, &out, err, sizeof err), 0);
    assert_null(out);
    /* objects, arrays and values too long: refused, naming the option and the pointer */
    out = "stale";
    assert_int_equal(relais_json_pointer_field(d, "/o", "subject_field", buf, sizeof buf, &out, err,
                                               sizeof err), -1);
    assert_null(out);
    assert_string_equal(err, "subject_field /o is an object, not a text or a number");
    assert_int_equal(relais_json_pointer_field(d, "/a", "subject_field", buf, sizeof buf, &out, err,
                                               sizeof err), -1);
    assert_string_equal(err, "subject_field /a is an array, not a text or a number");
    assert_int_equal(relais_json_pointer_field(d, "/long", "record_id_field", buf, sizeof buf, &out,
                                               err, sizeof err), -1);
    assert_null(out);
    assert_string_equal(err, "record_id_field /long is longer than 7 bytes");
    json_t *nul = json_pack("{s:s%}", "z", "a\0b", (size_t)3);
    assert_non_null(nul);
    assert_int_equal(relais_json_pointer_field(nul, "/z", "subject_field", buf, sizeof buf, &out,
                                               err, sizeof err), -1);
    assert_string_equal(err, "subject_field /z holds a NUL character");
    json_decref(nul);
    json_decref(d);
}

static void test_check_option(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(relais_json_pointer_check_option("x", NULL, err, sizeof err), 0);
    assert_int_equal(relais_json_pointer_check_option("x", "/a/b", err, sizeof err), 0);
    assert_int_equal(relais_json_pointer_check_option("x", "", err, sizeof err), 0);
    assert_int_equal(relais_json_pointer_check_option("subject_field", "id", err, sizeof err), -1);
    assert_string_equal(err, "option 'subject_field': 'id' is not a JSON pointer (write '/id')");
    assert_int_equal(relais_json_pointer_check_option("f", "/a~2", err, sizeof err), -1);
    assert_non_null(strstr(err, "not a valid JSON pointer"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_whole_document_and_empty_tokens),
        cmocka_unit_test(test_array_indexes),
        cmocka_unit_test(test_invalid_pointers),
        cmocka_unit_test(test_long_tokens),
        cmocka_unit_test(test_text_of_each_type),
        cmocka_unit_test(test_text_truncation),
        cmocka_unit_test(test_field),
        cmocka_unit_test(test_check_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
