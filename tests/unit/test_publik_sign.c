/*
 * test_publik_sign.c - Publik signed URLs (connectors/publik/publik_sign.c):
 * the six known-answer vectors of the w.c.s. fixtures with their alternative
 * encodings (clock injected), the w.c.s. signer's exact output, every
 * refusal with w.c.s.'s text and in w.c.s.'s order of checks, the
 * timestamp window both ways, nonce replay, and the pieces (query decoding,
 * percent-encoding, Python strptime rules).
 *
 * Fixtures: connectors/publik/fixtures/signature_vectors.json (a copy of
 * /work/shared/fixtures/wcs/examples/). Single-threaded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include "testsupport.h"
#include "../../connectors/publik/publik_int.h"

static json_t *load_vectors(void)
{
    json_error_t je;
    json_t *v = json_load_file(ts_source_path("connectors/publik/fixtures/signature_vectors.json"), 0, &je);
    if (!v) fail_msg("signature_vectors.json: %s", je.text);
    assert_int_equal(json_array_size(json_object_get(v, "vectors")), 6);
    return v;
}

/* The vectors' origs, with the key the test passes (vectors 3 and 4 use
 * another key than the others). */
static const char *fixed_key(void *arg, const char *orig)
{
    return strcmp(orig, "relais") == 0 || strcmp(orig, "montpellier") == 0 ? arg : NULL;
}

static time_t ts_of(const char *q)
{
    relais_publik_query pq;
    assert_int_equal(relais_publik_query_parse(q, strlen(q), &pq), 0);
    const char *ts = relais_publik_query_get(&pq, "timestamp", NULL);
    assert_non_null(ts);
    time_t t;
    char err[256];
    assert_int_equal(relais_publik_parse_timestamp(ts, &t, err, sizeof err), 0);
    relais_publik_query_free(&pq);
    return t;
}

static relais_publik_sig check(const char *q, const char *key, time_t now, relais_publik_nonces *n,
                               char *err, size_t errlen)
{
    relais_publik_verify_opts o = { .key_for = fixed_key, .arg = (void *)key, .nonces = n, .now = now };
    return relais_publik_verify(q, strlen(q), &o, err, errlen, NULL, 0);
}

static void test_vectors_known_answers(void **state)
{
    (void)state;
    json_t *root = load_vectors();
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(root, "vectors"), i, v) {
        const char *algo = json_string_value(json_object_get(v, "algo"));
        const char *key = json_string_value(json_object_get(v, "key"));
        const char *uq = json_string_value(json_object_get(v, "unsigned_query"));
        const char *sig = json_string_value(json_object_get(v, "signature_base64"));
        const char *sq = json_string_value(json_object_get(v, "signed_query"));
        char b64[256];
        assert_int_equal(relais_publik_hmac_b64(algo, key, uq, strlen(uq), b64, sizeof b64), 0);
        assert_string_equal(b64, sig);

        time_t now = ts_of(sq);
        char err[256];
        char origbuf[64];
        relais_publik_verify_opts o = { .key_for = fixed_key, .arg = (void *)key, .now = now + 7 };
        assert_int_equal(relais_publik_verify(sq, strlen(sq), &o, err, sizeof err, origbuf, sizeof origbuf),
                         RELAIS_PUBLIK_SIG_OK);
        assert_true(strcmp(origbuf, "relais") == 0 || strcmp(origbuf, "montpellier") == 0);
        size_t k;
        json_t *alt;
        size_t nalt = 0;
        json_array_foreach(json_object_get(v, "signed_query_alternatives"), k, alt) {
            const char *a = json_string_value(alt);
            assert_int_equal(check(a, key, now - 5, NULL, err, sizeof err), RELAIS_PUBLIK_SIG_OK);
            nalt++;
        }
        if (json_integer_value(json_object_get(v, "id")) >= 4) assert_true(nalt >= 1);
        /* the wrong key refuses the same query */
        assert_int_equal(check(sq, "not-the-key", now, NULL, err, sizeof err), RELAIS_PUBLIK_SIG_REFUSED);
        assert_string_equal(err, RELAIS_PUBLIK_E_SIGNATURE);
    }
    json_decref(root);
}

/* Vectors 5 and 6 are what the w.c.s. signer emits: ours gives the same bytes. */
static void test_signer_matches_wcs(void **state)
{
    (void)state;
    json_t *root = load_vectors();
    json_t *vs = json_object_get(root, "vectors");
    struct { int idx; const char *base; const char *nonce; } cases[] = {
        { 4, "orig=relais&email=agent%40example.org", "4f1c2b3a9d8e7f60" },
        { 5, "response_type=dict&filter=all&filter-start-mtime=on&filter-start-mtime-value=2024-03-05"
             "&limit=2&email=agent%40example.org&orig=relais", "9e3c51d2a4b6f708" },
    };
    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_array_get(vs, (size_t)cases[i].idx);
        const char *sq = json_string_value(json_object_get(v, "signed_query"));
        char *mine = relais_publik_sign_query(cases[i].base, "12345", "sha256", ts_of(sq), cases[i].nonce);
        assert_non_null(mine);
        assert_string_equal(mine, sq);
        free(mine);
    }
    /* an empty query: no leading '&' */
    char *q = relais_publik_sign_query("", "12345", "sha256", 0, "ab");
    assert_non_null(q);
    static const char prefix[] = "algo=sha256&timestamp=1970-01-01T00%3A00%3A00Z&nonce=ab&signature=";
    assert_memory_equal(q, prefix, sizeof prefix - 1);
    free(q);
    /* a random nonce: 128 bits in hex, no zero padding, different each time */
    char *a = relais_publik_sign_query("orig=relais", "12345", "sha256", time(NULL), NULL);
    char *b = relais_publik_sign_query("orig=relais", "12345", "sha256", time(NULL), NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_not_equal(a, b);
    const char *na = strstr(a, "&nonce=") + 7;
    size_t nl = strcspn(na, "&");
    assert_true(nl >= 1 && nl <= 32);
    assert_true(na[0] != '0' || nl == 1);
    /* and what we sign, we accept */
    char err[256];
    assert_int_equal(check(a, "12345", time(NULL), NULL, err, sizeof err), RELAIS_PUBLIK_SIG_OK);
    free(a);
    free(b);
    assert_null(relais_publik_sign_query("orig=relais", "12345", "sha999", 0, "x"));
    assert_null(relais_publik_sign_query("orig=relais", "", "sha256", 0, "x"));
    json_decref(root);
}

/* A query signed with key 12345 at `ts` by our signer, with extra params. */
static char *signed_at(const char *base, time_t ts, const char *nonce)
{
    char *q = relais_publik_sign_query(base, "12345", "sha256", ts, nonce);
    assert_non_null(q);
    return q;
}

/* Sign an arbitrary text the way w.c.s. checks it (HMAC over everything
 * before &signature=), for queries our signer would not make. */
static char *hand_signed(const char *text, const char *algo)
{
    char b64[256];
    assert_int_equal(relais_publik_hmac_b64(algo, "12345", text, strlen(text), b64, sizeof b64), 0);
    char *enc = relais_publik_pct_encode(b64, "/", 0);
    size_t n = strlen(text) + strlen(enc) + 16;
    char *q = malloc(n);
    snprintf(q, n, "%s&signature=%s", text, enc);
    free(enc);
    return q;
}

static void expect_refusal(const char *q, time_t now, const char *text)
{
    char err[256];
    relais_publik_sig s = check(q, "12345", now, NULL, err, sizeof err);
    if (s != RELAIS_PUBLIK_SIG_REFUSED || strcmp(err, text) != 0)
        fail_msg("query %s: expected refusal '%s', got %d '%s'", q, text, (int)s, err);
}

static void test_refusals_in_wcs_order(void **state)
{
    (void)state;
    time_t t0 = 1709633700;   /* 2024-03-05T10:15:00Z */
    char err[256];
    /* no signature at all, or two: not signed */
    assert_int_equal(check("orig=relais&algo=sha256", "12345", t0, NULL, err, sizeof err),
                     RELAIS_PUBLIK_SIG_UNSIGNED);
    assert_string_equal(err, RELAIS_PUBLIK_E_UNSIGNED);
    assert_int_equal(check("", "12345", t0, NULL, err, sizeof err), RELAIS_PUBLIK_SIG_UNSIGNED);
    assert_int_equal(check("signature=a&signature=b&orig=relais", "12345", t0, NULL, err, sizeof err),
                     RELAIS_PUBLIK_SIG_UNSIGNED);

    /* orig */
    char *q = signed_at("email=a%40b.c", t0, "n1");
    expect_refusal(q, t0, RELAIS_PUBLIK_E_ORIG_MISS);
    free(q);
    q = signed_at("orig=relais&orig=relais", t0, "n1");
    expect_refusal(q, t0, RELAIS_PUBLIK_E_ORIG_MISS);
    free(q);
    q = signed_at("orig=intrus", t0, "n1");
    expect_refusal(q, t0, RELAIS_PUBLIK_E_ORIG);
    free(q);
    expect_refusal("orig=relais%00x&algo=sha256&signature=x", t0, RELAIS_PUBLIK_E_ORIG);

    /* algo */
    expect_refusal("orig=relais&timestamp=x&signature=abc", t0, RELAIS_PUBLIK_E_ALGO_MISS);
    expect_refusal("orig=relais&algo=sha256&algo=sha1&signature=abc", t0, RELAIS_PUBLIK_E_ALGO_MISS);
    expect_refusal("orig=relais&algo=SHA256&signature=abc", t0, RELAIS_PUBLIK_E_ALGO);
    expect_refusal("orig=relais&algo=sha999&signature=abc", t0, RELAIS_PUBLIK_E_ALGO);
    /* md5 is a w.c.s. algorithm that Relais refuses; the simulator's mode takes it */
    q = relais_publik_sign_query("orig=relais", "12345", "md5", t0, "n1");
    expect_refusal(q, t0, RELAIS_PUBLIK_E_ALGO);
    relais_publik_verify_opts all = { .key_for = fixed_key, .arg = "12345", .now = t0, .all_algos = 1 };
    assert_int_equal(relais_publik_verify(q, strlen(q), &all, err, sizeof err, NULL, 0), RELAIS_PUBLIK_SIG_OK);
    free(q);
    static const char *const wcs_algos[] = { "sha224", "sha384", "sha3_256", "sha3_512", "blake2b", "blake2s" };
    for (size_t i = 0; i < sizeof wcs_algos / sizeof wcs_algos[0]; i++) {
        q = relais_publik_sign_query("orig=relais", "12345", wcs_algos[i], t0, "n1");
        assert_non_null(q);
        assert_int_equal(relais_publik_verify(q, strlen(q), &all, err, sizeof err, NULL, 0), RELAIS_PUBLIK_SIG_OK);
        free(q);
    }

    /* signature: a flipped byte, unpadded, URL-safe alphabet, '+' sent raw */
    q = signed_at("orig=relais", t0, "n1");
    char *s = strstr(q, "&signature=") + 11;
    s[0] = s[0] == 'A' ? 'B' : 'A';
    expect_refusal(q, t0, RELAIS_PUBLIK_E_SIGNATURE);
    free(q);
    json_t *root = load_vectors();
    json_t *v6 = json_array_get(json_object_get(root, "vectors"), 5);
    const char *sq6 = json_string_value(json_object_get(v6, "signed_query"));
    time_t t6 = ts_of(sq6);
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", sq6);
    char *pad = strstr(buf, "%3D");
    *pad = '\0';                                  /* no '=' padding */
    expect_refusal(buf, t6, RELAIS_PUBLIK_E_SIGNATURE);
    snprintf(buf, sizeof buf, "%s", sq6);
    for (char *p = strstr(buf, "&signature=") + 11; *p; p++) {   /* URL-safe base64 */
        if (p[0] == '/') p[0] = '_';
        if (p[0] == '%' && p[1] == '2' && p[2] == 'B') { p[0] = '-'; memmove(p + 1, p + 3, strlen(p + 3) + 1); }
    }
    expect_refusal(buf, t6, RELAIS_PUBLIK_E_SIGNATURE);
    snprintf(buf, sizeof buf, "%s", sq6);
    for (char *p = strstr(buf, "&signature=") + 11; *p; p++)     /* raw '+' reads as a space */
        if (p[0] == '%' && p[1] == '2' && p[2] == 'B') { p[0] = '+'; memmove(p + 1, p + 3, strlen(p + 3) + 1); }
    expect_refusal(buf, t6, RELAIS_PUBLIK_E_SIGNATURE);
    /* lower-case escapes are fine */
    snprintf(buf, sizeof buf, "%s", sq6);
    for (char *p = strstr(buf, "&signature=") + 11; *p; p++) if (*p == 'B' && p[-1] == '2' && p[-2] == '%') *p = 'b';
    for (char *p = strstr(buf, "&signature=") + 11; *p; p++) if (*p == 'D' && p[-1] == '3' && p[-2] == '%') *p = 'd';
    assert_int_equal(check(buf, "12345", t6, NULL, err, sizeof err), RELAIS_PUBLIK_SIG_OK);
    json_decref(root);
    /* the signed text is the raw left side: re-encoding one byte breaks it */
    q = signed_at("orig=relais&email=agent%40example.org", t0, "n1");
    snprintf(buf, sizeof buf, "%s", q);
    char *at = strstr(buf, "%40");
    memmove(at + 1, at + 3, strlen(at + 3) + 1);
    *at = '@';
    expect_refusal(buf, t0, RELAIS_PUBLIK_E_SIGNATURE);
    /* what follows the signature is not signed (w.c.s. ignores it) */
    snprintf(buf, sizeof buf, "%s&extra=1", q);
    assert_int_equal(check(buf, "12345", t0, NULL, err, sizeof err), RELAIS_PUBLIK_SIG_OK);
    free(q);
    /* signature first: w.c.s. signs all but the last byte, so this fails */
    char *h = hand_signed("orig=relais&algo=sha256&timestamp=2024-03-05T10:15:00Z", "sha256");
    char *sigpart = strstr(h, "&signature=");
    snprintf(buf, sizeof buf, "%s&%.*s", sigpart + 1, (int)(sigpart - h), h);
    expect_refusal(buf, t0, RELAIS_PUBLIK_E_SIGNATURE);
    free(h);

    /* the signature is checked before the timestamp: a bad and stale query says signature */
    q = signed_at("orig=relais", t0 - 3600, "n1");
    s = strstr(q, "&signature=") + 11;
    s[1] = s[1] == 'A' ? 'B' : 'A';
    expect_refusal(q, t0, RELAIS_PUBLIK_E_SIGNATURE);
    free(q);

    /* timestamp */
    h = hand_signed("orig=relais&algo=sha256&nonce=n1", "sha256");
    expect_refusal(h, t0, RELAIS_PUBLIK_E_TS_MISS);
    free(h);
    h = hand_signed("orig=relais&algo=sha256&timestamp=2024-03-05T10:15:00Z&timestamp=2024-03-05T10:15:00Z",
                    "sha256");
    expect_refusal(h, t0, RELAIS_PUBLIK_E_TS_MISS);
    free(h);
    h = hand_signed("orig=relais&algo=sha256&timestamp=2024-03-05", "sha256");
    expect_refusal(h, t0, "Invalid timestamp field; time data '2024-03-05' does not match format "
                          "'%Y-%m-%dT%H:%M:%SZ'.");
    free(h);
    h = hand_signed("orig=relais&algo=sha256&timestamp=2024-03-05T10:15:00+01:00", "sha256");
    expect_refusal(h, t0, "Invalid timestamp field; time data '2024-03-05T10:15:00 01:00' does not match "
                          "format '%Y-%m-%dT%H:%M:%SZ'.");
    free(h);
    h = hand_signed("orig=relais&algo=sha256&timestamp=2024-03-05T10:15:00Zx", "sha256");
    expect_refusal(h, t0, "Invalid timestamp field; unconverted data remains: x.");
    free(h);
    /* within 30 s either way; 31 s is too much, past or future */
    q = signed_at("orig=relais", t0, "n1");
    assert_int_equal(check(q, "12345", t0 + 30, NULL, err, sizeof err), RELAIS_PUBLIK_SIG_OK);
    assert_int_equal(check(q, "12345", t0 - 30, NULL, err, sizeof err), RELAIS_PUBLIK_SIG_OK);
    expect_refusal(q, t0 + 31, "timestamp is more than 30 seconds in the past: 0:00:31");
    expect_refusal(q, t0 - 31, "timestamp is more than 30 seconds in the future: 0:00:31");
    expect_refusal(q, t0 + 3723, "timestamp is more than 30 seconds in the past: 1:02:03");
    expect_refusal(q, t0 + 86400 + 5, "timestamp is more than 30 seconds in the past: 1 day, 0:00:05");
    expect_refusal(q, t0 + 597 * 86400L + 900, "timestamp is more than 30 seconds in the past: 597 days, 0:15:00");
    free(q);
    /* the timestamp may travel with raw or encoded colons */
    h = hand_signed("orig=relais&algo=sha256&timestamp=2024-03-05T10:15:00Z", "sha256");
    assert_int_equal(check(h, "12345", t0, NULL, err, sizeof err), RELAIS_PUBLIK_SIG_OK);
    free(h);
}

static void test_nonce_replay(void **state)
{
    (void)state;
    time_t t0 = 1709633700;
    relais_publik_nonces *n = relais_publik_nonces_new(30, 0);
    char err[256];
    char *q = signed_at("orig=relais", t0, "4f1c2b3a9d8e7f60");
    assert_int_equal(check(q, "12345", t0, n, err, sizeof err), RELAIS_PUBLIK_SIG_OK);
    assert_int_equal(check(q, "12345", t0 + 5, n, err, sizeof err), RELAIS_PUBLIK_SIG_REFUSED);
    assert_string_equal(err, RELAIS_PUBLIK_E_NONCE);
    free(q);
    /* the nonce is normalised as w.c.s. does (case, punctuation) */
    q = signed_at("orig=relais", t0, "4F1C2B3A9D8E7F60");
    assert_int_equal(check(q, "12345", t0 + 6, n, err, sizeof err), RELAIS_PUBLIK_SIG_REFUSED);
    assert_string_equal(err, RELAIS_PUBLIK_E_NONCE);
    free(q);
    /* another nonce passes; no nonce at all passes too (the w.c.s. test helper sends none) */
    q = signed_at("orig=relais", t0, "other");
    assert_int_equal(check(q, "12345", t0 + 6, n, err, sizeof err), RELAIS_PUBLIK_SIG_OK);
    free(q);
    char *h = hand_signed("orig=relais&algo=sha256&timestamp=2024-03-05T10%3A15%3A00Z", "sha256");
    assert_int_equal(check(h, "12345", t0, n, err, sizeof err), RELAIS_PUBLIK_SIG_OK);
    assert_int_equal(check(h, "12345", t0, n, err, sizeof err), RELAIS_PUBLIK_SIG_OK);
    free(h);
    /* the memory itself: forgotten after the window */
    assert_int_equal(relais_publik_nonce_use(n, "z", t0), 0);
    assert_int_equal(relais_publik_nonce_use(n, "z", t0 + 29), 1);
    assert_int_equal(relais_publik_nonce_use(n, "z", t0 + 31), 0);
    relais_publik_nonces_destroy(n);
    /* a full memory refuses new nonces rather than forgetting live ones */
    n = relais_publik_nonces_new(30, 2);
    assert_int_equal(relais_publik_nonce_use(n, "a", t0), 0);
    assert_int_equal(relais_publik_nonce_use(n, "b", t0), 0);
    assert_int_equal(relais_publik_nonce_use(n, "c", t0), 1);
    assert_int_equal(relais_publik_nonce_use(n, "c", t0 + 31), 0);
    relais_publik_nonces_destroy(n);
    relais_publik_nonces_destroy(NULL);
}

static void test_timestamp_like_python(void **state)
{
    (void)state;
    time_t t;
    char err[256];
    assert_int_equal(relais_publik_parse_timestamp("2024-03-05T10:15:00Z", &t, err, sizeof err), 0);
    assert_int_equal((long long)t, 1709633700LL);
    /* one-digit fields and lower-case letters, as strptime allows */
    assert_int_equal(relais_publik_parse_timestamp("2024-3-5t10:15:0z", &t, err, sizeof err), 0);
    assert_int_equal((long long)t, 1709633700LL);
    assert_int_equal(relais_publik_parse_timestamp("2024-02-30T00:00:00Z", &t, err, sizeof err), -1);
    assert_string_equal(err, "day is out of range for month");
    assert_int_equal(relais_publik_parse_timestamp("2024-02-29T00:00:00Z", &t, err, sizeof err), 0);
    assert_int_equal(relais_publik_parse_timestamp("2024-03-05T10:15:60Z", &t, err, sizeof err), -1);
    assert_string_equal(err, "second must be in 0..59");
    assert_int_equal(relais_publik_parse_timestamp("2024-13-05T10:15:00Z", &t, err, sizeof err), -1);
    assert_int_equal(relais_publik_parse_timestamp("24-03-05T10:15:00Z", &t, err, sizeof err), -1);
    assert_int_equal(relais_publik_parse_timestamp("", &t, err, sizeof err), -1);
    assert_string_equal(err, "time data '' does not match format '%Y-%m-%dT%H:%M:%SZ'");
    /* "1" then ":" - the regex backtracks from "10" style alternatives */
    assert_int_equal(relais_publik_parse_timestamp("2024-1-1T1:1:1Z", &t, err, sizeof err), 0);
}

static void test_query_and_encoding(void **state)
{
    (void)state;
    relais_publik_query q;
    const char *raw = "a=1&b=x+y&c=%41%2f%zz&&d&e=&a=2&f=%00";
    assert_int_equal(relais_publik_query_parse(raw, strlen(raw), &q), 0);
    int count;
    assert_null(relais_publik_query_get(&q, "a", &count));
    assert_int_equal(count, 2);
    assert_string_equal(relais_publik_query_get(&q, "b", NULL), "x y");
    assert_string_equal(relais_publik_query_get(&q, "c", NULL), "A/%zz");
    assert_string_equal(relais_publik_query_get(&q, "d", NULL), "");
    assert_string_equal(relais_publik_query_get(&q, "e", NULL), "");
    assert_null(relais_publik_query_get(&q, "f", &count));   /* a NUL never matches */
    assert_int_equal(count, 1);
    assert_null(relais_publik_query_get(&q, "zz", &count));
    assert_int_equal(count, 0);
    relais_publik_query_free(&q);
    relais_publik_query_free(NULL);

    char *e = relais_publik_pct_encode("a b+c/d=e:é~", "/", 0);
    assert_string_equal(e, "a%20b%2Bc/d%3De%3A%C3%A9~");
    free(e);
    e = relais_publik_pct_encode("a b/c", "", 1);
    assert_string_equal(e, "a+b%2Fc");
    free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_known_answers),
        cmocka_unit_test(test_signer_matches_wcs),
        cmocka_unit_test(test_refusals_in_wcs_order),
        cmocka_unit_test(test_nonce_replay),
        cmocka_unit_test(test_timestamp_like_python),
        cmocka_unit_test(test_query_and_encoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
