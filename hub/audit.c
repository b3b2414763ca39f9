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
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include "audit.h"
#include "fileio.h"
#include "event_int.h"
#include "workdays.h"

static const char ZERO_HASH[] = "0000000000000000000000000000000000000000000000000000000000000000";

char *relais_audit_canonical(const json_t *v, size_t *len)
{
    if (!v) return NULL;
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    if (s && len) *len = strlen(s);
    return s;
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
        relais_hex(md, mdlen, out);
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
    relais_hex(md, mdlen, out);
    return 0;
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
        int hi = OPENSSL_hexchar2int((unsigned char)buf[2 * i]);
        int lo = OPENSSL_hexchar2int((unsigned char)buf[2 * i + 1]);
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

/* ---- helpers for the journal and the verifier ---------------------------------------- */

int relais_audit_key_ensure(const char *path, int *made, char *errstr, size_t errlen)
{
    if (made) *made = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST) return 0;
        snprintf(errstr, errlen, "%s: cannot create the audit key: %s", path, strerror(errno));
        return -1;
    }
    unsigned char k[RELAIS_AUDIT_KEY_MIN];
    char hex[2 * RELAIS_AUDIT_KEY_MIN + 2];
    int ok = RAND_bytes(k, sizeof k) == 1;
    relais_hex(k, sizeof k, hex);
    OPENSSL_cleanse(k, sizeof k);
    size_t n = strlen(hex);
    hex[n++] = '\n';
    ok = ok && write(fd, hex, n) == (ssize_t)n && fsync(fd) == 0;
    OPENSSL_cleanse(hex, sizeof hex);
    if (close(fd) != 0) ok = 0;
    if (!ok) {
        unlink(path);
        snprintf(errstr, errlen, "%s: cannot write the audit key: %s", path, strerror(errno ? errno : EIO));
        return -1;
    }
    if (made) *made = 1;
    return 0;
}

char *relais_audit_checkpoint_line(const unsigned char *key, size_t keylen, const char *stream, int64_t seq,
                                   const char *hash, int64_t at_us)
{
    char mac[RELAIS_AUDIT_HEX], at[40];
    if (relais_audit_mac(key, keylen, stream, seq, hash, mac) != 0) return NULL;
    relais_time_rfc3339(at_us, at, sizeof at);
    json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:s}", "at", at, "hash", hash, "mac", mac, "seq", (json_int_t)seq,
                          "stream", stream);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    if (!s) return NULL;
    size_t len = strlen(s);
    char *line = realloc(s, len + 2);
    if (!line) {
        free(s);
        return NULL;
    }
    line[len] = '\n';
    line[len + 1] = '\0';
    return line;
}

static int is_hex64(const char *s)
{
    if (!s || strlen(s) != 64) return 0;
    for (const char *p = s; *p; p++) if (OPENSSL_hexchar2int((unsigned char)*p) < 0) return 0;
    return 1;
}

/* "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" -> microseconds; -1 for anything else
 * (UTC only: a checkpoint's time is written so). */
static int64_t parse_at(const char *s)
{
    int64_t us;
    size_t n = s ? strlen(s) : 0;
    if (n < 20 || s[10] != 'T' || s[n - 1] != 'Z' || relais_rfc3339_parse_us(s, &us) != 0 || us < 0) return -1;
    return us;
}

int relais_audit_checkpoints_parse(const char *name, const char *buf, size_t len, relais_audit_cplist *out,
                                   int *torn, char *errstr, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (torn) *torn = 0;
    size_t pos = 0;
    int line = 0;
    while (pos < len) {
        const char *start = buf + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t l = nl ? (size_t)(nl - start) : len - pos;
        pos += l + (nl ? 1 : 0);
        line++;
        if (l == 0) continue;
        json_error_t je;
        json_t *o = json_loadb(start, l, JSON_REJECT_DUPLICATES, &je);
        const char *stream = NULL, *hash = NULL, *mac = NULL, *at = NULL;
        json_int_t seq = 0;
        const char *why = NULL;
        if (!o) {
            if (!nl && torn) {          /* the last line, cut short by a crash */
                (*torn)++;
                break;
            }
            why = je.text;
        } else if (json_unpack(o, "{s:s,s:I,s:s,s:s,s:s}", "stream", &stream, "seq", &seq, "hash", &hash,
                               "mac", &mac, "at", &at) != 0) {
            why = "expected {\"stream\":..,\"seq\":N,\"hash\":..,\"mac\":..,\"at\":..}";
        } else if (!*stream || strlen(stream) > 300) {
            why = "'stream' must have 1 to 300 characters";
        } else if (seq < 1) {
            why = "'seq' must be at least 1";
        } else if (!is_hex64(hash) || !is_hex64(mac)) {
            why = "'hash' and 'mac' must be 64 hex digits";
        } else if (parse_at(at) < 0) {
            why = "'at' must be an RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SS[.ffffff]Z)";
        }
        if (why) {
            snprintf(errstr, errlen, "%s:%d: %s", name, line, why);
            json_decref(o);
            relais_audit_cplist_free(out);
            return -1;
        }
        if (out->n == out->cap) {
            size_t cap = out->cap ? out->cap * 2 : 16;
            relais_audit_cp *v = realloc(out->v, cap * sizeof *v);
            if (!v) {
                json_decref(o);
                relais_audit_cplist_free(out);
                snprintf(errstr, errlen, "%s:%d: out of memory", name, line);
                return -1;
            }
            out->v = v;
            out->cap = cap;
        }
        relais_audit_cp *cp = &out->v[out->n];
        cp->stream = strdup(stream);
        cp->seq = (int64_t)seq;
        cp->at_us = parse_at(at);
        cp->line = line;
        snprintf(cp->hash, sizeof cp->hash, "%s", hash);
        snprintf(cp->mac, sizeof cp->mac, "%s", mac);
        json_decref(o);
        if (!cp->stream) {
            relais_audit_cplist_free(out);
            snprintf(errstr, errlen, "%s:%d: out of memory", name, line);
            return -1;
        }
        out->n++;
    }
    return 0;
}

int relais_audit_checkpoints_load(const char *path, relais_audit_cplist *out, int *torn,
                                  char *errstr, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (torn) *torn = 0;
    size_t len = 0;
    char *buf = relais_read_file(path, 0, &len, errstr, errlen);
    if (!buf) return errno == ENOENT ? 0 : -1;     /* no checkpoint written yet */
    int rc = relais_audit_checkpoints_parse(path, buf, len, out, torn, errstr, errlen);
    free(buf);
    return rc;
}

void relais_audit_cplist_free(relais_audit_cplist *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) free(l->v[i].stream);
    free(l->v);
    memset(l, 0, sizeof *l);
}
