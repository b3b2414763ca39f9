/*
 * test_audit.c - the tamper-evident trail's pure parts (hub/audit.c): the
 * canonical bytes, the chain, the MAC, the key file, and the verification of
 * a stream against modification, deletion, insertion, reordering,
 * truncation and a chain rewritten with another key.
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
#include "audit.h"

#define N 6
static unsigned char KEY[32], OTHER[32];

typedef struct stream {
    char bytes[N + 1][64];
    char prev[N + 1][RELAIS_AUDIT_HEX], hash[N + 1][RELAIS_AUDIT_HEX], mac[N + 1][RELAIS_AUDIT_HEX];
    char ref[N + 1][32];
    relais_audit_entry e[N + 1];
    size_t n;
} stream;

/* a genuine stream of N entries signed with key */
static void build(stream *s, const unsigned char *key)
{
    memset(s, 0, sizeof *s);
    const char *prev = "";
    for (int i = 0; i < N; i++) {
        snprintf(s->bytes[i], sizeof s->bytes[i], "{\"n\":%d,\"step\":\"received\"}", i + 1);
        snprintf(s->prev[i], sizeof s->prev[i], "%s", *prev ? prev : "0000000000000000000000000000000000000000000000000000000000000000");
        relais_audit_chain(prev, s->bytes[i], strlen(s->bytes[i]), s->hash[i]);
        assert_int_equal(relais_audit_mac(key, 32, "hub-a/1", i + 1, s->hash[i], s->mac[i]), 0);
        snprintf(s->ref[i], sizeof s->ref[i], "step %d", i + 1);
        prev = s->hash[i];
    }
    s->n = N;
    for (int i = 0; i < N; i++)
        s->e[i] = (relais_audit_entry){ i + 1, s->prev[i], s->hash[i], s->mac[i], s->bytes[i], strlen(s->bytes[i]), s->ref[i] };
}

static int verify(stream *s, const relais_audit_checkpoint *cps, size_t ncp, relais_audit_report *r)
{
    return relais_audit_verify_stream(KEY, 32, "hub-a/1", 1, NULL, s->e, s->n, cps, ncp, r);
}

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < 32; i++) { KEY[i] = (unsigned char)(i * 7 + 1); OTHER[i] = (unsigned char)(255 - i); }
    return 0;
}

static void test_canonical(void **state)
{
    (void)state;
    json_t *a = json_loads("{\"b\": 1, \"a\": {\"y\": [1, 2.5, \"é\"], \"x\": null}, \"c\": 48.7309}", 0, NULL);
    size_t len;
    char *s = relais_audit_canonical(a, &len);
    /* reals with 17 significant digits: the same double gives the same text on every side */
    assert_string_equal(s, "{\"a\":{\"x\":null,\"y\":[1,2.5,\"é\"]},\"b\":1,\"c\":48.730899999999998}");
    /* read back (as from PostgreSQL) and written again: the same bytes */
    json_t *b = json_loads(s, 0, NULL);
    char *s2 = relais_audit_canonical(b, NULL);
    assert_string_equal(s, s2);
    free(s); free(s2);
    json_decref(a); json_decref(b);
}

static void test_chain_and_mac(void **state)
{
    (void)state;
    char h1[RELAIS_AUDIT_HEX], h2[RELAIS_AUDIT_HEX], m1[RELAIS_AUDIT_HEX], m2[RELAIS_AUDIT_HEX];
    relais_audit_chain(NULL, "abc", 3, h1);
    /* sha256("0"*64 + "\n" + "abc") */
    /* printf '0000...0000\nabc' | sha256sum (64 zeros) */
    assert_string_equal(h1, "ac10ec504bb4ed3d77c3b3d1cf8fc534a2f6658185a64fc00b24a1afce46cec3");
    relais_audit_chain(h1, "abc", 3, h2);
    assert_string_not_equal(h1, h2);              /* the previous hash counts */
    assert_int_equal(relais_audit_mac(KEY, 32, "s", 1, h1, m1), 0);
    assert_int_equal(relais_audit_mac(KEY, 32, "s", 2, h1, m2), 0);
    assert_string_not_equal(m1, m2);              /* the position counts */
    assert_int_equal(relais_audit_mac(OTHER, 32, "s", 1, h1, m2), 0);
    assert_string_not_equal(m1, m2);              /* the key counts */
    assert_int_equal(relais_audit_mac(KEY, 16, "s", 1, h1, m2), -1);   /* short key refused */
}

static void test_untouched(void **state)
{
    (void)state;
    stream s;
    build(&s, KEY);
    relais_audit_checkpoint cp = { 6, s.hash[5], s.mac[5] };
    char cmac[RELAIS_AUDIT_HEX];
    relais_audit_mac(KEY, 32, "hub-a/1", 6, s.hash[5], cmac);
    cp.mac = cmac;
    relais_audit_report r;
    assert_int_equal(verify(&s, &cp, 1, &r), 0);
    assert_int_equal(r.fault, RELAIS_AUDIT_OK);
}

static void test_modified(void **state)
{
    (void)state;
    stream s;
    build(&s, KEY);
    s.bytes[2][5] = '9';      /* {"n":9,...} */
    relais_audit_report r;
    assert_int_equal(verify(&s, NULL, 0, &r), 1);
    assert_int_equal(r.fault, RELAIS_AUDIT_MODIFIED);
    assert_int_equal(r.seq, 3);
    assert_string_equal(r.ref, "step 3");
}

static void test_deleted(void **state)
{
    (void)state;
    stream s;
    build(&s, KEY);
    memmove(&s.e[2], &s.e[3], 3 * sizeof s.e[0]);   /* entry 3 removed */
    s.n = 5;
    relais_audit_report r;
    assert_int_equal(verify(&s, NULL, 0, &r), 1);
    assert_int_equal(r.fault, RELAIS_AUDIT_DELETED);
    assert_int_equal(r.seq, 3);
}

static void test_inserted(void **state)
{
    (void)state;
    stream s;
    build(&s, KEY);
    /* someone with write access appends a well-chained entry 7: no key, no MAC */
    static char b[] = "{\"n\":7,\"step\":\"delivered\"}";
    char h[RELAIS_AUDIT_HEX], fake[RELAIS_AUDIT_HEX];
    relais_audit_chain(s.hash[5], b, strlen(b), h);
    relais_audit_mac(OTHER, 32, "hub-a/1", 7, h, fake);
    s.e[6] = (relais_audit_entry){ 7, s.hash[5], h, fake, b, strlen(b), "step 7" };
    s.n = 7;
    relais_audit_report r;
    assert_int_equal(verify(&s, NULL, 0, &r), 1);
    assert_int_equal(r.fault, RELAIS_AUDIT_INSERTED);
    assert_int_equal(r.seq, 7);
    /* and a repeated sequence number */
    build(&s, KEY);
    s.e[3].seq = 3;
    assert_int_equal(verify(&s, NULL, 0, &r), 1);
    assert_int_equal(r.fault, RELAIS_AUDIT_INSERTED);
    assert_int_equal(r.seq, 3);
}

static void test_reordered(void **state)
{
    (void)state;
    stream s;
    build(&s, KEY);
    /* rows 3 and 4 exchange their places (and numbers): each is genuine */
    relais_audit_entry t = s.e[2];
    s.e[2] = s.e[3];
    s.e[3] = t;
    s.e[2].seq = 3;
    s.e[3].seq = 4;
    relais_audit_report r;
    assert_int_equal(verify(&s, NULL, 0, &r), 1);
    /* entry 4's content under number 3: genuine (signed at another place) but out of place */
    assert_int_equal(r.fault, RELAIS_AUDIT_REORDERED);
    assert_int_equal(r.seq, 3);
    assert_string_equal(r.ref, "step 4");
}

static void test_truncated_and_rewritten(void **state)
{
    (void)state;
    stream s;
    build(&s, KEY);
    char cmac[RELAIS_AUDIT_HEX];
    relais_audit_mac(KEY, 32, "hub-a/1", 6, s.hash[5], cmac);
    relais_audit_checkpoint cp = { 6, s.hash[5], cmac };
    s.n = 4;                                   /* entries 5 and 6 cut off */
    relais_audit_report r;
    assert_int_equal(verify(&s, &cp, 1, &r), 1);
    assert_int_equal(r.fault, RELAIS_AUDIT_TRUNCATED);
    assert_int_equal(r.seq, 6);
    /* without the checkpoint the cut is invisible: that is why checkpoints exist */
    assert_int_equal(verify(&s, NULL, 0, &r), 0);

    /* the whole chain rewritten with another key: every MAC is wrong */
    stream w;
    build(&w, OTHER);
    assert_int_equal(verify(&w, NULL, 0, &r), 1);
    assert_int_equal(r.fault, RELAIS_AUDIT_INSERTED);
    assert_int_equal(r.seq, 1);
    /* a checkpoint whose hash the stream no longer has at its seq */
    build(&s, KEY);
    char other_hash[RELAIS_AUDIT_HEX];
    relais_audit_chain(NULL, "x", 1, other_hash);
    relais_audit_mac(KEY, 32, "hub-a/1", 4, other_hash, cmac);
    relais_audit_checkpoint cp2 = { 4, other_hash, cmac };
    assert_int_equal(verify(&s, &cp2, 1, &r), 1);
    assert_int_equal(r.fault, RELAIS_AUDIT_REWRITTEN);
    /* a forged checkpoint (wrong MAC) is ignored, and said */
    relais_audit_checkpoint cp3 = { 9, s.hash[5], "00" };
    assert_int_equal(verify(&s, &cp3, 1, &r), 0);
    assert_non_null(strstr(r.detail, "wrong MAC"));
}

static void test_key_file(void **state)
{
    (void)state;
    char path[] = "/tmp/relais-audit-key-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
    assert_int_equal(write(fd, hex, strlen(hex)), (ssize_t)strlen(hex));
    close(fd);
    unsigned char *k = NULL;
    size_t kl = 0;
    char err[256];
    chmod(path, 0644);
    assert_int_equal(relais_audit_key_load(path, &k, &kl, err, sizeof err), -1);
    assert_non_null(strstr(err, "readable by others"));
    chmod(path, 0600);
    assert_int_equal(relais_audit_key_load(path, &k, &kl, err, sizeof err), 0);
    assert_int_equal(kl, 32);
    assert_int_equal(k[31], 0x1f);
    free(k);
    FILE *f = fopen(path, "w");
    fputs("00112233", f);
    fclose(f);
    assert_int_equal(relais_audit_key_load(path, &k, &kl, err, sizeof err), -1);
    assert_non_null(strstr(err, "at least 64 hex digits"));
    f = fopen(path, "w");
    fputs("zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", f);
    fclose(f);
    assert_int_equal(relais_audit_key_load(path, &k, &kl, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a hex digit"));
    unlink(path);
    assert_int_equal(relais_audit_key_load(path, &k, &kl, err, sizeof err), -1);
}

/* The hub makes its key once (0600), never overwrites it. */
static void test_key_ensure(void **state)
{
    (void)state;
    char path[] = "/tmp/relais-audit-key-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    char err[256];
    int made = 0;
    assert_int_equal(relais_audit_key_ensure(path, &made, err, sizeof err), 0);
    assert_int_equal(made, 1);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    unsigned char *k = NULL, *k2 = NULL;
    size_t kl = 0, kl2 = 0;
    assert_int_equal(relais_audit_key_load(path, &k, &kl, err, sizeof err), 0);
    assert_int_equal(kl, RELAIS_AUDIT_KEY_MIN);
    assert_int_equal(relais_audit_key_ensure(path, &made, err, sizeof err), 0);
    assert_int_equal(made, 0);
    assert_int_equal(relais_audit_key_load(path, &k2, &kl2, err, sizeof err), 0);
    assert_memory_equal(k, k2, kl);
    free(k);
    free(k2);
    unlink(path);
    assert_int_equal(relais_audit_key_ensure("/nonexistent-dir/audit.key", &made, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent-dir/audit.key"));
}

/* Checkpoint lines: written, read back, MAC verifiable; errors name the line;
 * a last line cut short by a crash is skipped and counted. */
static void test_checkpoints(void **state)
{
    (void)state;
    char h[RELAIS_AUDIT_HEX], mac[RELAIS_AUDIT_HEX];
    relais_audit_chain(NULL, "x", 1, h);
    char *l1 = relais_audit_checkpoint_line(KEY, 32, "hub-a/1", 7, h, 1767225600123456LL);
    char *l2 = relais_audit_checkpoint_line(KEY, 32, "hub-a/2", 1, h, 1767225601000000LL);
    assert_non_null(l1);
    assert_non_null(l2);
    assert_non_null(strstr(l1, "\"at\":\"2026-01-01T00:00:00.123456Z\""));
    char buf[2048];
    snprintf(buf, sizeof buf, "%s\n%s%.30s", l1, l2, l1);   /* a blank line, then a torn last line */
    relais_audit_cplist l;
    int torn = 0;
    char err[256];
    assert_int_equal(relais_audit_checkpoints_parse("cps", buf, strlen(buf), &l, &torn, err, sizeof err), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(torn, 1);
    assert_string_equal(l.v[0].stream, "hub-a/1");
    assert_int_equal(l.v[0].seq, 7);
    assert_int_equal(l.v[0].at_us, 1767225600123456LL);
    assert_int_equal(l.v[1].line, 3);
    assert_int_equal(relais_audit_mac(KEY, 32, "hub-a/1", 7, l.v[0].hash, mac), 0);
    assert_string_equal(mac, l.v[0].mac);
    relais_audit_cplist_free(&l);
    /* a bad line in the middle is an error naming it */
    snprintf(buf, sizeof buf, "%s{\"stream\":\"s\",\"seq\":0,\"hash\":\"%s\",\"mac\":\"%s\",\"at\":\"x\"}\n%s",
             l1, h, h, l2);
    assert_int_equal(relais_audit_checkpoints_parse("cps", buf, strlen(buf), &l, &torn, err, sizeof err), -1);
    assert_string_equal(err, "cps:2: 'seq' must be at least 1");
    snprintf(buf, sizeof buf, "%snot json\n%s", l1, l2);
    assert_int_equal(relais_audit_checkpoints_parse("cps", buf, strlen(buf), &l, &torn, err, sizeof err), -1);
    assert_non_null(strstr(err, "cps:2: "));
    free(l1);
    free(l2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_chain_and_mac),
        cmocka_unit_test(test_untouched),
        cmocka_unit_test(test_modified),
        cmocka_unit_test(test_deleted),
        cmocka_unit_test(test_inserted),
        cmocka_unit_test(test_reordered),
        cmocka_unit_test(test_truncated_and_rewritten),
        cmocka_unit_test(test_key_file),
        cmocka_unit_test(test_key_ensure),
        cmocka_unit_test(test_checkpoints),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
