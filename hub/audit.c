/*
 * audit.c - hash chain, MAC, key file and stream verification of the
 * tamper-evident trail (see audit.h). OpenSSL does the hashing and the HMAC.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "audit.h"

static const char ZERO_HASH[] = "0000000000000000000000000000000000000000000000000000000000000000";

char *relais_audit_canonical(const json_t *v, size_t *len)
{
    if (!v) return NULL;
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    if (s && len) *len = strlen(s);
    return s;
}

static void to_hex(const unsigned char *d, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[d[i] >> 4];
        out[2 * i + 1] = hx[d[i] & 15];
    }
    out[2 * n] = '\0';
}

void relais_audit_chain(const char *prev, const void *bytes, size_t len, char out[RELAIS_AUDIT_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    const char *p = prev && *prev ? prev : ZERO_HASH;
    if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(c, p, strlen(p)) != 1
        || EVP_DigestUpdate(c, "\n", 1) != 1 || (len && EVP_DigestUpdate(c, bytes, len) != 1)
        || EVP_DigestFinal_ex(c, md, &mdlen) != 1) {
        out[0] = '\0';     /* never equal to a stored hash: verification fails closed */
    } else {
        to_hex(md, mdlen, out);
    }
    EVP_MD_CTX_free(c);
}

int relais_audit_mac(const unsigned char *key, size_t keylen, const char *stream, int64_t seq,
                     const char *hash, char out[RELAIS_AUDIT_HEX])
{
    out[0] = '\0';
    if (!key || keylen < RELAIS_AUDIT_KEY_MIN || !stream || !hash) return -1;
    char msg[512];
    int n = snprintf(msg, sizeof msg, "%s\n%lld\n%s", stream, (long long)seq, hash);
    if (n < 0 || (size_t)n >= sizeof msg) return -1;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, (size_t)n, md, &mdlen)) return -1;
    to_hex(md, mdlen, out);
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int relais_audit_key_load(const char *path, unsigned char **key, size_t *keylen, char *errstr, size_t errlen)
{
    *key = NULL;
    *keylen = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(errstr, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(errstr, errlen, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(errstr, errlen, "%s: readable by others (mode %03o): chmod 600 it", path,
                 (unsigned)(st.st_mode & 0777));
        close(fd);
        return -1;
    }
    char buf[1024];
    ssize_t r = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (r < 0) {
        snprintf(errstr, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    size_t n = (size_t)r;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
    if (n % 2 || n / 2 < RELAIS_AUDIT_KEY_MIN) {
        snprintf(errstr, errlen, "%s: expected at least %d hex digits (openssl rand -hex 32)", path,
                 2 * RELAIS_AUDIT_KEY_MIN);
        return -1;
    }
    unsigned char *k = malloc(n / 2);
    if (!k) {
        snprintf(errstr, errlen, "%s: out of memory", path);
        return -1;
    }
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(buf[2 * i]), lo = hexval(buf[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            OPENSSL_cleanse(k, n / 2);
            free(k);
            OPENSSL_cleanse(buf, sizeof buf);
            snprintf(errstr, errlen, "%s: character %zu is not a hex digit", path, 2 * i + (hi < 0 ? 1 : 2));
            return -1;
        }
        k[i] = (unsigned char)(hi << 4 | lo);
    }
    OPENSSL_cleanse(buf, sizeof buf);
    *key = k;
    *keylen = n / 2;
    return 0;
}

static int same(const char *a, const char *b)
{
    size_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0;
    return la == lb && la > 0 && CRYPTO_memcmp(a, b, la) == 0;
}

static int fault(relais_audit_report *r, relais_audit_fault f, int64_t seq, const char *ref, const char *detail)
{
    r->fault = f;
    r->seq = seq;
    snprintf(r->ref, sizeof r->ref, "%s", ref ? ref : "");
    snprintf(r->detail, sizeof r->detail, "%s", detail);
    return 1;
}

/* 1 when `mac` signs `hash` at some position of the stream in [lo, hi]:
 * a genuine entry moved to another place. */
static int signed_elsewhere(const unsigned char *key, size_t keylen, const char *stream, const char *hash,
                            const char *mac, int64_t lo, int64_t hi)
{
    char m[RELAIS_AUDIT_HEX];
    for (int64_t s = lo; s <= hi; s++)
        if (relais_audit_mac(key, keylen, stream, s, hash, m) == 0 && same(m, mac)) return 1;
    return 0;
}

int relais_audit_verify_stream(const unsigned char *key, size_t keylen, const char *stream,
                               int64_t first_seq, const char *first_prev,
                               const relais_audit_entry *e, size_t n,
                               const relais_audit_checkpoint *cps, size_t ncp,
                               relais_audit_report *r)
{
    memset(r, 0, sizeof *r);
    char h[RELAIS_AUDIT_HEX], m[RELAIS_AUDIT_HEX];
    int64_t expect = first_seq > 0 ? first_seq : 1;
    const char *prev = first_prev && *first_prev ? first_prev : ZERO_HASH;
    for (size_t i = 0; i < n; i++) {
        if (e[i].seq > expect)
            return fault(r, RELAIS_AUDIT_DELETED, expect, i ? e[i - 1].ref : "",
                         "sequence number missing: the entry after this one was deleted");
        if (e[i].seq < expect)
            return fault(r, RELAIS_AUDIT_INSERTED, e[i].seq, e[i].ref, "sequence number used twice");
        relais_audit_chain(e[i].prev, e[i].bytes, e[i].len, h);
        int content_ok = same(h, e[i].hash);
        int mac_ok = relais_audit_mac(key, keylen, stream, e[i].seq, e[i].hash, m) == 0 && same(m, e[i].mac);
        if (!same(e[i].prev, prev)) {
            int64_t lo = first_seq > 0 ? first_seq : 1, hi = lo + (int64_t)n - 1;
            if (content_ok && (mac_ok || signed_elsewhere(key, keylen, stream, e[i].hash, e[i].mac, lo, hi)))
                return fault(r, RELAIS_AUDIT_REORDERED, e[i].seq, e[i].ref,
                             "a genuine entry that does not follow the one before it");
            if (!mac_ok && content_ok)
                return fault(r, RELAIS_AUDIT_INSERTED, e[i].seq, e[i].ref, "an entry the audit key did not sign");
            return fault(r, RELAIS_AUDIT_MODIFIED, e[i].seq, e[i].ref, "the entry and its link were changed");
        }
        if (!content_ok)
            return fault(r, RELAIS_AUDIT_MODIFIED, e[i].seq, e[i].ref, "the content no longer gives the stored hash");
        if (!mac_ok)
            return fault(r, RELAIS_AUDIT_INSERTED, e[i].seq, e[i].ref,
                         "the stored hash is not signed by the audit key (entry forged or chain rewritten)");
        prev = e[i].hash;
        expect++;
    }
    /* checkpoints: the journal must still hold what they saw */
    int64_t last = expect - 1;
    int bad_cp = 0;
    for (size_t k = 0; k < ncp; k++) {
        if (relais_audit_mac(key, keylen, stream, cps[k].seq, cps[k].hash, m) != 0 || !same(m, cps[k].mac)) {
            bad_cp++;
            continue;
        }
        if (cps[k].seq > last) {
            char d[256];
            snprintf(d, sizeof d, "a checkpoint saw entry %lld but the stream ends at %lld: its tail was cut off",
                     (long long)cps[k].seq, (long long)last);
            return fault(r, RELAIS_AUDIT_TRUNCATED, cps[k].seq, "", d);
        }
        if (cps[k].seq >= (first_seq > 0 ? first_seq : 1)) {
            const relais_audit_entry *at = &e[cps[k].seq - (first_seq > 0 ? first_seq : 1)];
            if (!same(at->hash, cps[k].hash))
                return fault(r, RELAIS_AUDIT_REWRITTEN, cps[k].seq, at->ref,
                             "the stream's hash at this checkpoint is not the one the checkpoint saw");
        }
    }
    if (bad_cp)
        snprintf(r->detail, sizeof r->detail, "%d checkpoint(s) with a wrong MAC ignored", bad_cp);
    return 0;
}

const char *relais_audit_fault_name(relais_audit_fault f)
{
    switch (f) {
    case RELAIS_AUDIT_OK: return "ok";
    case RELAIS_AUDIT_MODIFIED: return "modified";
    case RELAIS_AUDIT_DELETED: return "deleted";
    case RELAIS_AUDIT_INSERTED: return "inserted";
    case RELAIS_AUDIT_REORDERED: return "reordered";
    case RELAIS_AUDIT_TRUNCATED: return "truncated";
    case RELAIS_AUDIT_REWRITTEN: return "rewritten";
    }
    return "?";
}
