/*
 * test_tokens.c - the admin API's roles and tokens (hub/tokens.c): role
 * order, the tokens file parser (valid files, every refusal with its
 * FILE:LINE and field), the permission check of the file, the lookup of a
 * presented token, the Authorization header, new tokens and the loopback
 * test of admin_listen.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "tokens.h"

static void sha_hex(const char *s, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void test_roles(void **state)
{
    (void)state;
    relais_role r = RELAIS_ROLE_NONE;
    assert_int_equal(relais_role_parse("auditor", &r), 0);
    assert_int_equal(r, RELAIS_ROLE_AUDITOR);
    assert_int_equal(relais_role_parse("operator", &r), 0);
    assert_int_equal(r, RELAIS_ROLE_OPERATOR);
    assert_int_equal(relais_role_parse("admin", &r), 0);
    assert_int_equal(r, RELAIS_ROLE_ADMIN);
    assert_int_equal(relais_role_parse("Admin", &r), -1);
    assert_int_equal(relais_role_parse("none", &r), -1);
    assert_int_equal(relais_role_parse("", &r), -1);
    assert_int_equal(relais_role_parse(NULL, &r), -1);
    assert_string_equal(relais_role_name(RELAIS_ROLE_OPERATOR), "operator");
    assert_string_equal(relais_role_name((relais_role)9), "none");

    /* each role includes the rights of the one before, and only those */
    static const struct { relais_role have, need; int ok; } m[] = {
        { RELAIS_ROLE_AUDITOR, RELAIS_ROLE_AUDITOR, 1 },   { RELAIS_ROLE_AUDITOR, RELAIS_ROLE_OPERATOR, 0 },
        { RELAIS_ROLE_AUDITOR, RELAIS_ROLE_ADMIN, 0 },     { RELAIS_ROLE_OPERATOR, RELAIS_ROLE_AUDITOR, 1 },
        { RELAIS_ROLE_OPERATOR, RELAIS_ROLE_OPERATOR, 1 }, { RELAIS_ROLE_OPERATOR, RELAIS_ROLE_ADMIN, 0 },
        { RELAIS_ROLE_ADMIN, RELAIS_ROLE_AUDITOR, 1 },     { RELAIS_ROLE_ADMIN, RELAIS_ROLE_OPERATOR, 1 },
        { RELAIS_ROLE_ADMIN, RELAIS_ROLE_ADMIN, 1 },       { RELAIS_ROLE_NONE, RELAIS_ROLE_AUDITOR, 0 },
        { RELAIS_ROLE_NONE, RELAIS_ROLE_NONE, 1 },         { RELAIS_ROLE_AUDITOR, RELAIS_ROLE_NONE, 1 },
        { (relais_role)7, RELAIS_ROLE_AUDITOR, 0 },
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        assert_int_equal(relais_role_allows(m[i].have, m[i].need), m[i].ok);
}

static void test_names(void **state)
{
    (void)state;
    assert_true(relais_token_name_valid("alice"));
    assert_true(relais_token_name_valid("Alice.Martin_2@mairie-x"));
    assert_false(relais_token_name_valid(""));
    assert_false(relais_token_name_valid(NULL));
    assert_false(relais_token_name_valid("a b"));
    assert_false(relais_token_name_valid("a:b"));
    assert_false(relais_token_name_valid("caf\xc3\xa9"));
    char n64[65], n65[66];
    memset(n64, 'a', 64); n64[64] = '\0';
    memset(n65, 'a', 65); n65[65] = '\0';
    assert_true(relais_token_name_valid(n64));
    assert_false(relais_token_name_valid(n65));
}

/* A file of three tokens made by relais_token_new, with comments, blank
 * lines, tabs, CRLF and upper-case hex. */
static void test_parse_and_check(void **state)
{
    (void)state;
    char tok[3][RELAIS_TOKEN_BUF], line[3][RELAIS_TOKEN_LINE_BUF], err[512];
    const char *names[3] = { "carole", "olivier", "anne@mairie" };
    relais_role roles[3] = { RELAIS_ROLE_AUDITOR, RELAIS_ROLE_OPERATOR, RELAIS_ROLE_ADMIN };
    for (int i = 0; i < 3; i++)
        assert_int_equal(relais_token_new(names[i], roles[i], tok[i], line[i], err, sizeof err), 0);
    /* the second line with a tab and CRLF, the third with upper-case hex */
    char *p = strchr(line[1], ' ');
    *p = '\t';
    for (char *h = strstr(line[2], "sha256:") + 7; *h; h++)
        if (*h >= 'a' && *h <= 'f') *h = (char)(*h - 'a' + 'A');
    char buf[1024];
    snprintf(buf, sizeof buf, "# admin API tokens\n\n   # indented comment\n%s\n  %s\r\n\t\n%s", line[0], line[1], line[2]);
    relais_tokens *t = relais_tokens_parse("tokens", buf, strlen(buf), err, sizeof err);
    assert_non_null(t);
    assert_string_equal(err, "");
    assert_int_equal(relais_tokens_count(t), 3);
    for (int i = 0; i < 3; i++) {
        const char *who = NULL;
        relais_role r = RELAIS_ROLE_NONE;
        assert_int_equal(relais_tokens_check(t, tok[i], strlen(tok[i]), &who, &r), 0);
        assert_string_equal(who, names[i]);
        assert_int_equal(r, roles[i]);
    }
    /* a token one character off, a prefix, a longer one, empty: unknown */
    char off[RELAIS_TOKEN_BUF];
    snprintf(off, sizeof off, "%s", tok[0]);
    off[20] = off[20] == 'A' ? 'B' : 'A';
    assert_int_equal(relais_tokens_check(t, off, strlen(off), NULL, NULL), -1);
    assert_int_equal(relais_tokens_check(t, tok[0], strlen(tok[0]) - 1, NULL, NULL), -1);
    char longer[RELAIS_TOKEN_BUF + 2];
    snprintf(longer, sizeof longer, "%sx", tok[0]);
    assert_int_equal(relais_tokens_check(t, longer, strlen(longer), NULL, NULL), -1);
    assert_int_equal(relais_tokens_check(t, "", 0, NULL, NULL), -1);
    /* the hash of the line is the file's, not the token: the hash itself is no token */
    const char *h = strstr(line[0], "sha256:") + 7;
    assert_int_equal(relais_tokens_check(t, h, strlen(h), NULL, NULL), -1);
    relais_tokens_destroy(t);
    assert_int_equal(relais_tokens_check(NULL, tok[0], strlen(tok[0]), NULL, NULL), -1);
    relais_tokens_destroy(NULL);

    /* a file without any token is valid, and knows no token */
    t = relais_tokens_parse("empty", "# nobody yet\n\n", 14, err, sizeof err);
    assert_non_null(t);
    assert_int_equal(relais_tokens_count(t), 0);
    assert_int_equal(relais_tokens_check(t, tok[0], strlen(tok[0]), NULL, NULL), -1);
    relais_tokens_destroy(t);
    t = relais_tokens_parse("empty", "", 0, err, sizeof err);
    assert_non_null(t);
    relais_tokens_destroy(t);
}

/* Each bad file: the error names FILE:LINE and the field. */
static void test_refusals(void **state)
{
    (void)state;
    char h0[65], h1[65], bad[512];
    sha_hex("relais_first", h0);
    sha_hex("relais_second", h1);
    static const char token_like[] = "relais_q2uO2Vj53tZKjDCDiWj0Sa3fq6ex-GGdFQYK9nXPWY";
    struct { char text[512]; const char *want; } cases[16];
    size_t n = 0;
#define CASE(want_, ...) do { snprintf(cases[n].text, sizeof cases[n].text, __VA_ARGS__); cases[n++].want = want_; } while (0)
    CASE("f:2: field 'role' is missing", "# c\nalice\n");
    CASE("f:1: field 'hash' is missing", "alice auditor\n");
    CASE("f:1: unexpected text after field 'hash'", "alice auditor sha256:%s # me\n", h0);
    CASE("f:2: field 'name': 'al!ce' may only contain", "\nal!ce auditor sha256:%s\n", h0);
    CASE("f:1: field 'name': longer than 64 characters", "%070d auditor sha256:%s\n", 0, h0);
    CASE("f:1: field 'role': unknown role 'root'", "alice root sha256:%s\n", h0);
    CASE("f:1: field 'role': unknown role 'Auditor'", "alice Auditor sha256:%s\n", h0);
    CASE("f:1: field 'hash': expected sha256: and 64 hex digits", "alice auditor %s\n", h0);
    CASE("f:1: field 'hash': expected sha256: and 64 hex digits", "alice auditor sha256:%.63s\n", h0);
    CASE("f:1: field 'hash': expected sha256: and 64 hex digits", "alice auditor sha256:%s0\n", h0);
    CASE("f:1: field 'hash': expected sha256: and 64 hex digits", "alice auditor sha256:%.63sg\n", h0);
    CASE("f:1: field 'hash': expected sha256: and 64 hex digits", "alice auditor %s\n", token_like);
    CASE("f:3: field 'name': duplicate name 'alice' (first at line 1)",
         "alice auditor sha256:%s\n\nalice admin sha256:%s\n", h0, h1);
    CASE("f:2: field 'hash': the same token as 'alice' at line 1",
         "alice auditor sha256:%s\nbob admin sha256:%s\n", h0, h0);
#undef CASE
    char err[512];
    for (size_t i = 0; i < n; i++) {
        err[0] = '\0';
        relais_tokens *t = relais_tokens_parse("f", cases[i].text, strlen(cases[i].text), err, sizeof err);
        if (t || !strstr(err, cases[i].want))
            fail_msg("case %zu: '%s' gave '%s', expected '%s'", i, cases[i].text, t ? "(accepted)" : err, cases[i].want);
        /* the hash field is never quoted back: it could be a raw token */
        assert_null(strstr(err, token_like));
        assert_null(strstr(err, h0 + 8));
    }
    /* a NUL byte in a line */
    snprintf(bad, sizeof bad, "alice auditor sha256:%s\nbob", h0);
    size_t len = strlen(bad);
    memcpy(bad + len, "\0 admin sha256:x\n", 17);
    assert_null(relais_tokens_parse("f", bad, len + 17, err, sizeof err));
    assert_non_null(strstr(err, "f:2: NUL byte"));
    /* a file too large */
    size_t big = RELAIS_TOKENS_FILE_MAX + 1;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, '\n', big);
    assert_null(relais_tokens_parse("f", huge, big, err, sizeof err));
    assert_non_null(strstr(err, "f: larger than"));
    free(huge);
}

static void test_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/relais-tokens-XXXXXX", path[256], err[512], h[65];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tokens", dir);
    sha_hex("relais_secret", h);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "# tokens\nalice operator sha256:%s\n", h);
    fclose(f);
    static const mode_t refused[] = { 0640, 0604, 0660, 0620, 0602, 0610 };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        assert_int_equal(chmod(path, refused[i]), 0);
        assert_null(relais_tokens_load(path, err, sizeof err));
        char want[400];
        snprintf(want, sizeof want, "%s: readable by others (mode %03o): chmod 600 it", path, (unsigned)refused[i]);
        assert_string_equal(err, want);
    }
    assert_int_equal(chmod(path, 0600), 0);
    relais_tokens *t = relais_tokens_load(path, err, sizeof err);
    assert_non_null(t);
    const char *who = NULL;
    relais_role r = RELAIS_ROLE_NONE;
    assert_int_equal(relais_tokens_check(t, "relais_secret", 13, &who, &r), 0);
    assert_string_equal(who, "alice");
    assert_int_equal(r, RELAIS_ROLE_OPERATOR);
    relais_tokens_destroy(t);
    /* errors of a file name it with the line */
    f = fopen(path, "a");
    fputs("bob operator\n", f);
    fclose(f);
    assert_null(relais_tokens_load(path, err, sizeof err));
    char want[300];
    snprintf(want, sizeof want, "%s:3: field 'hash' is missing", path);
    assert_non_null(strstr(err, want));
    assert_int_equal(unlink(path), 0);
    assert_null(relais_tokens_load(path, err, sizeof err));
    assert_non_null(strstr(err, "No such file"));
    assert_null(relais_tokens_load(dir, err, sizeof err));
    assert_non_null(strstr(err, "not a regular file"));
    rmdir(dir);
}

static void test_bearer(void **state)
{
    (void)state;
    size_t n = 0;
    const char *t = relais_bearer_token("Bearer relais_abc-_DEF123", &n);
    assert_non_null(t);
    assert_int_equal(n, strlen("relais_abc-_DEF123"));
    assert_memory_equal(t, "relais_abc-_DEF123", n);
    t = relais_bearer_token("  bearer   abc==  ", &n);
    assert_non_null(t);
    assert_int_equal(n, 5);
    assert_memory_equal(t, "abc==", 5);
    assert_non_null(relais_bearer_token("BEARER\tx", &n));
    static const char *const bad[] = { NULL, "", "Bearer", "Bearer ", "Basic YWxhZGRpbjpvcGVu", "Bearerabc",
                                       "Bearer a b", "Bearer a=b", "Bearer \"abc\"", "Bearer abc;", "Token abc" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (relais_bearer_token(bad[i], &n)) fail_msg("'%s' accepted", bad[i] ? bad[i] : "(null)");
    }
}

static void test_token_new(void **state)
{
    (void)state;
    char a[RELAIS_TOKEN_BUF], b[RELAIS_TOKEN_BUF], la[RELAIS_TOKEN_LINE_BUF], lb[RELAIS_TOKEN_LINE_BUF], err[256], h[65];
    assert_int_equal(relais_token_new("alice", RELAIS_ROLE_ADMIN, a, la, err, sizeof err), 0);
    assert_int_equal(relais_token_new("alice", RELAIS_ROLE_ADMIN, b, lb, err, sizeof err), 0);
    assert_string_not_equal(a, b);                       /* random */
    assert_int_equal(strlen(a), strlen(RELAIS_TOKEN_PREFIX) + 43);   /* 256 bits in base64url */
    assert_memory_equal(a, RELAIS_TOKEN_PREFIX, strlen(RELAIS_TOKEN_PREFIX));
    for (const char *p = a + strlen(RELAIS_TOKEN_PREFIX); *p; p++)
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p));
    sha_hex(a, h);
    char want[RELAIS_TOKEN_LINE_BUF];
    snprintf(want, sizeof want, "alice admin sha256:%s", h);
    assert_string_equal(la, want);
    assert_null(strstr(la, a + strlen(RELAIS_TOKEN_PREFIX)));
    /* the line parses and the token is found */
    relais_tokens *t = relais_tokens_parse("new", la, strlen(la), err, sizeof err);
    assert_non_null(t);
    assert_int_equal(relais_tokens_check(t, a, strlen(a), NULL, NULL), 0);
    assert_int_equal(relais_tokens_check(t, b, strlen(b), NULL, NULL), -1);
    relais_tokens_destroy(t);
    assert_int_equal(relais_token_new("a b", RELAIS_ROLE_ADMIN, a, la, err, sizeof err), -1);
    assert_non_null(strstr(err, "name"));
    assert_string_equal(a, "");
    assert_int_equal(relais_token_new("alice", RELAIS_ROLE_NONE, a, la, err, sizeof err), -1);
    assert_non_null(strstr(err, "role"));
}

static void test_loopback(void **state)
{
    (void)state;
    assert_true(relais_listen_is_loopback("127.0.0.1:0"));
    assert_true(relais_listen_is_loopback("127.0.0.1:8080"));
    assert_true(relais_listen_is_loopback("127.9.8.7:1"));
    assert_false(relais_listen_is_loopback("0.0.0.0:0"));
    assert_false(relais_listen_is_loopback("10.0.0.1:8080"));
    assert_false(relais_listen_is_loopback("128.0.0.1:80"));
    assert_false(relais_listen_is_loopback("localhost:8080"));
    assert_false(relais_listen_is_loopback("127.0.0.1"));
    assert_false(relais_listen_is_loopback(""));
    assert_false(relais_listen_is_loopback(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_parse_and_check),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_token_new),
        cmocka_unit_test(test_loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
