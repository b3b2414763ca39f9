/*
 * publik_sign.c - Publik signed URLs (SPEC section 3): query strings
 * decoded as Python's parse_qsl does, the w.c.s. signer (sign_query) and
 * the w.c.s. check (is_url_signed) with its error texts, the timestamp
 * parsed as Python's strptime parses it, and the memory of recent nonces.
 *
 * HMAC and base64 are OpenSSL's (EVP_Q_mac, EVP_EncodeBlock); signatures
 * are compared with CRYPTO_memcmp. Everything here is pure except the
 * nonce's random bytes (RAND_bytes) and the nonce memory, whose lock
 * (relais_publik_nonces.lock) guards its table: any thread may call any
 * function.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "publik_int.h"

/* ---- Query strings ---------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Python's unquote_plus on [s, s+n): '+' is a space, %XX a byte, a bad
 * escape stays as it is. *nul set when a NUL byte comes out. */
static char *decode_part(const char *s, size_t n, int *nul)
{
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[k++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0
                   && hexval((unsigned char)s[i + 2]) >= 0) {
            char c = (char)(hexval((unsigned char)s[i + 1]) * 16 + hexval((unsigned char)s[i + 2]));
            if (c == '\0') *nul = 1;
            out[k++] = c;
            i += 2;
        } else {
            out[k++] = s[i];
        }
    }
    out[k] = '\0';
    return out;
}

void relais_publik_query_free(relais_publik_query *q)
{
    if (!q) return;
    for (size_t i = 0; i < q->n; i++) {
        free(q->p[i].name);
        free(q->p[i].value);
    }
    free(q->p);
    q->p = NULL;
    q->n = 0;
}

int relais_publik_query_parse(const char *qs, size_t len, relais_publik_query *q)
{
    q->p = NULL;
    q->n = 0;
    size_t cap = 0;
    size_t i = 0;
    while (i <= len && len > 0) {
        size_t j = i;
        while (j < len && qs[j] != '&') j++;
        if (j > i) {
            const char *chunk = qs + i;
            size_t clen = j - i;
            const char *eq = memchr(chunk, '=', clen);
            size_t nlen = eq ? (size_t)(eq - chunk) : clen;
            if (q->n == cap) {
                size_t nc = cap ? cap * 2 : 16;
                relais_publik_param *np = realloc(q->p, nc * sizeof *np);
                if (!np) {
                    relais_publik_query_free(q);
                    return -1;
                }
                q->p = np;
                cap = nc;
            }
            int nul = 0;
            relais_publik_param *p = &q->p[q->n];
            p->name = decode_part(chunk, nlen, &nul);
            p->value = eq ? decode_part(eq + 1, clen - nlen - 1, &nul) : strdup("");
            p->has_nul = nul;
            if (!p->name || !p->value) {
                free(p->name);
                free(p->value);
                relais_publik_query_free(q);
                return -1;
            }
            q->n++;
        }
        i = j + 1;
    }
    return 0;
}

/* The parameter named `name` when given exactly once (else NULL); *count
 * says how many times it was given. */
static const relais_publik_param *query_param(const relais_publik_query *q, const char *name, int *count)
{
    const relais_publik_param *found = NULL;
    int n = 0;
    for (size_t i = 0; i < q->n; i++) {
        if (strcmp(q->p[i].name, name) == 0) {
            if (!found) found = &q->p[i];
            n++;
        }
    }
    if (count) *count = n;
    return n == 1 ? found : NULL;
}

const char *relais_publik_query_get(const relais_publik_query *q, const char *name, int *count)
{
    const relais_publik_param *p = query_param(q, name, count);
    return p && !p->has_nul ? p->value : NULL;
}

char *relais_publik_pct_encode(const char *s, const char *safe, int plus)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(n * 3 + 1);
    if (!out) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '_' || c == '.' || c == '-' || c == '~' || (c && safe && strchr(safe, c))) {
            out[k++] = (char)c;
        } else if (c == ' ' && plus) {
            out[k++] = '+';
        } else {
            out[k++] = '%';
            out[k++] = hex[c >> 4];
            out[k++] = hex[c & 15];
        }
    }
    out[k] = '\0';
    return out;
}

/* ---- HMAC ------------------------------------------------------------------ */

/* Python hashlib names -> OpenSSL digest names. The first three are the
 * ones Relais accepts; the others are what w.c.s. accepts too
 * (hashlib.algorithms_guaranteed; shake_* cannot make an HMAC). */
static const struct { const char *py, *ossl; } ALGOS[] = {
    { "sha1", "SHA1" }, { "sha256", "SHA256" }, { "sha512", "SHA512" },
    { "md5", "MD5" }, { "sha224", "SHA224" }, { "sha384", "SHA384" },
    { "sha3_224", "SHA3-224" }, { "sha3_256", "SHA3-256" }, { "sha3_384", "SHA3-384" },
    { "sha3_512", "SHA3-512" }, { "blake2b", "BLAKE2B-512" }, { "blake2s", "BLAKE2S-256" },
};
#define RELAIS_ALGOS_RELAIS 3

static const char *digest_name(const char *algo, int all)
{
    size_t n = all ? sizeof ALGOS / sizeof ALGOS[0] : RELAIS_ALGOS_RELAIS;
    for (size_t i = 0; i < n; i++)
        if (strcmp(ALGOS[i].py, algo) == 0) return ALGOS[i].ossl;
    return NULL;
}

int relais_publik_hmac_b64(const char *algo, const char *key, const void *data, size_t len,
                           char *out, size_t outlen)
{
    const char *dn = digest_name(algo, 1);
    if (!dn || !key || !*key) return -1;
    unsigned char md[EVP_MAX_MD_SIZE];
    size_t mdlen = 0;
    static const unsigned char empty[1] = { 0 };
    if (!EVP_Q_mac(NULL, "HMAC", NULL, dn, NULL, key, strlen(key), len ? data : empty, len,
                   md, sizeof md, &mdlen))
        return -1;
    if (outlen < 4 * ((mdlen + 2) / 3) + 1) return -1;
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
    OPENSSL_cleanse(md, sizeof md);
    return 0;
}

/* ---- Signing ---------------------------------------------------------------- */

static int random_nonce(char out[33])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) return -1;
    static const char hex[] = "0123456789abcdef";
    char full[33];
    for (int i = 0; i < 16; i++) {
        full[2 * i] = hex[b[i] >> 4];
        full[2 * i + 1] = hex[b[i] & 15];
    }
    full[32] = '\0';
    /* Python's hex(getrandbits(128)): no zero padding, "0" for zero */
    const char *p = full;
    while (*p == '0' && p[1]) p++;
    snprintf(out, 33, "%s", p);
    return 0;
}

char *relais_publik_sign_query(const char *query, const char *key, const char *algo,
                               time_t now, const char *nonce)
{
    if (!key || !*key || !algo || !digest_name(algo, 1)) return NULL;
    char nbuf[33];
    if (!nonce) {
        if (random_nonce(nbuf) != 0) return NULL;
        nonce = nbuf;
    }
    struct tm tm;
    char ts[32];
    if (!gmtime_r(&now, &tm) || strftime(ts, sizeof ts, RELAIS_PUBLIK_TS_FORMAT, &tm) == 0) return NULL;
    char *ealgo = relais_publik_pct_encode(algo, "", 1);
    char *ets = relais_publik_pct_encode(ts, "", 1);
    char *enonce = relais_publik_pct_encode(nonce, "", 1);
    char *out = NULL;
    if (ealgo && ets && enonce) {
        size_t qlen = query ? strlen(query) : 0;
        size_t n = qlen + strlen(ealgo) + strlen(ets) + strlen(enonce) + 64 + 3 * 128;
        out = malloc(n);
        if (out) {
            int k = snprintf(out, n, "%s%salgo=%s&timestamp=%s&nonce=%s", qlen ? query : "",
                             qlen ? "&" : "", ealgo, ets, enonce);
            char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
            char *esig = NULL;
            if (k < 0 || (size_t)k >= n
                || relais_publik_hmac_b64(algo, key, out, (size_t)k, b64, sizeof b64) != 0
                || !(esig = relais_publik_pct_encode(b64, "/", 0))
                || snprintf(out + k, n - (size_t)k, "&signature=%s", esig) >= (int)(n - (size_t)k)) {
                free(out);
                out = NULL;
            }
            free(esig);
        }
    }
    free(ealgo);
    free(ets);
    free(enonce);
    return out;
}

/* ---- Nonce memory ----------------------------------------------------------- */

struct relais_publik_nonces {
    pthread_mutex_t lock;     /* guards seen and last_purge */
    json_t         *seen;     /* nonce -> expiry (unix seconds) */
    long            window_s;
    size_t          max;
    time_t          last_purge;
};

relais_publik_nonces *relais_publik_nonces_new(long window_s, size_t max)
{
    relais_publik_nonces *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->seen = json_object();
    if (!n->seen) {
        free(n);
        return NULL;
    }
    pthread_mutex_init(&n->lock, NULL);
    n->window_s = window_s > 0 ? window_s : RELAIS_PUBLIK_WINDOW_S;
    n->max = max ? max : 100000;
    return n;
}

void relais_publik_nonces_destroy(relais_publik_nonces *n)
{
    if (!n) return;
    json_decref(n->seen);
    pthread_mutex_destroy(&n->lock);
    free(n);
}

static void purge_expired(relais_publik_nonces *n, time_t now)
{
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(n->seen, tmp, k, v) {
        if ((time_t)json_integer_value(v) <= now) json_object_del(n->seen, k);
    }
    n->last_purge = now;
}

int relais_publik_nonce_use(relais_publik_nonces *n, const char *nonce, time_t now)
{
    int rc = 0;
    pthread_mutex_lock(&n->lock);
    if (now != n->last_purge || json_object_size(n->seen) >= n->max) purge_expired(n, now);
    json_t *v = json_object_get(n->seen, nonce);
    if (v && (time_t)json_integer_value(v) > now) {
        rc = 1;
    } else if (json_object_size(n->seen) >= n->max) {
        rc = 1;
    } else if (json_object_set_new(n->seen, nonce, json_integer((json_int_t)(now + n->window_s))) != 0) {
        rc = -1;
    }
    pthread_mutex_unlock(&n->lock);
    return rc;
}

/* w.c.s.: simplify(nonce[:128]).replace('/', '-'): lower case, every run
 * of other characters than letters and digits becomes one '-', no '-' at
 * either end. */
static void normalise_nonce(const char *in, char out[129])
{
    size_t k = 0;
    int dash = 0;
    for (size_t i = 0; in[i] && i < 128; i++) {
        unsigned char c = (unsigned char)in[i];
        if (isalnum(c)) {
            if (dash && k > 0) out[k++] = '-';
            dash = 0;
            out[k++] = (char)tolower(c);
        } else {
            dash = 1;
        }
    }
    out[k] = '\0';
}

/* ---- Timestamps (Python's strptime) ----------------------------------------- */

/* The pieces of the regex Python builds for "%Y-%m-%dT%H:%M:%SZ": each
 * field is a list of alternatives tried in order ('d' a digit, other
 * characters literal), between literal separators (case-insensitive). */
typedef struct ts_field { const char *alts[5]; } ts_field;
static const ts_field TS_FIELDS[6] = {
    { { "dddd", NULL } },                                     /* %Y */
    { { "1[0-2]", "0[1-9]", "[1-9]", NULL } },                /* %m */
    { { "3[01]", "[12]d", "0[1-9]", "[1-9]", " [1-9]" } },    /* %d */
    { { "2[0-3]", "[0-1]d", "d", NULL } },                    /* %H */
    { { "[0-5]d", "d", NULL } },                              /* %M */
    { { "6[0-1]", "[0-5]d", "d", NULL } },                    /* %S */
};
static const char TS_SEPS[6] = { '-', '-', 'T', ':', ':', 'Z' };   /* after each field */

/* Match one alternative (a tiny pattern: 'd', "[a-b]" ranges/sets, or a
 * literal) at s; returns the characters matched or -1. */
static int match_alt(const char *pat, const char *s)
{
    int n = 0;
    while (*pat) {
        unsigned char c = (unsigned char)s[n];
        if (*pat == 'd') {
            if (!isdigit(c)) return -1;
            pat++;
        } else if (*pat == '[') {
            const char *end = strchr(pat, ']');
            int ok = 0;
            for (const char *p = pat + 1; p < end; p++) {
                if (p + 2 < end && p[1] == '-') {
                    if (c >= (unsigned char)p[0] && c <= (unsigned char)p[2]) ok = 1;
                    p += 2;
                } else if (c == (unsigned char)*p) {
                    ok = 1;
                }
            }
            if (!ok || !c) return -1;
            pat = end + 1;
        } else {
            if (c != (unsigned char)*pat) return -1;
            pat++;
        }
        n++;
    }
    return n;
}

/* Depth-first over the fields, alternatives in order, as the regex engine
 * does: the first complete match wins. vals receives the numbers. */
static int match_from(const char *s, int field, int vals[6])
{
    if (field == 6) return 0;
    for (int a = 0; a < 5 && TS_FIELDS[field].alts[a]; a++) {
        int n = match_alt(TS_FIELDS[field].alts[a], s);
        if (n < 0) continue;
        if (toupper((unsigned char)s[n]) != TS_SEPS[field]) continue;
        int v = 0;
        for (int i = 0; i < n; i++)
            if (isdigit((unsigned char)s[i])) v = v * 10 + (s[i] - '0');
        int rest = match_from(s + n + 1, field + 1, vals);
        if (rest >= 0) {
            vals[field] = v;
            return n + 1 + rest;
        }
    }
    return -1;
}

static int days_in_month(int y, int m)
{
    static const int d[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return d[m - 1];
}

/* s with control characters made visible, for error texts. */
static void visible(const char *s, char *out, size_t outlen)
{
    size_t k = 0;
    for (size_t i = 0; s[i] && k + 1 < outlen; i++)
        out[k++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    out[k] = '\0';
}

int relais_publik_parse_timestamp(const char *ts, time_t *out, char *err, size_t errlen)
{
    int vals[6] = { 0 };
    int n = match_from(ts, 0, vals);
    char vis[160];
    if (n < 0) {
        visible(ts, vis, sizeof vis);
        snprintf(err, errlen, "time data '%s' does not match format '%s'", vis, RELAIS_PUBLIK_TS_FORMAT);
        return -1;
    }
    if (ts[n]) {
        visible(ts + n, vis, sizeof vis);
        snprintf(err, errlen, "unconverted data remains: %s", vis);
        return -1;
    }
    if (vals[0] < 1) {
        snprintf(err, errlen, "year %d is out of range", vals[0]);
        return -1;
    }
    if (vals[2] > days_in_month(vals[0], vals[1])) {
        snprintf(err, errlen, "day is out of range for month");
        return -1;
    }
    if (vals[5] > 59) {
        snprintf(err, errlen, "second must be in 0..59");
        return -1;
    }
    struct tm tm = { .tm_year = vals[0] - 1900, .tm_mon = vals[1] - 1, .tm_mday = vals[2],
                     .tm_hour = vals[3], .tm_min = vals[4], .tm_sec = vals[5] };
    *out = timegm(&tm);
    return 0;
}

/* Python's str(timedelta) of a whole number of seconds: "0:00:45",
 * "1 day, 2:03:04", "597 days, 0:15:00". */
static void format_delta(long long secs, char *buf, size_t len)
{
    long long days = secs / 86400, rest = secs % 86400;
    if (days > 0)
        snprintf(buf, len, "%lld day%s, %lld:%02lld:%02lld", days, days == 1 ? "" : "s",
                 rest / 3600, rest % 3600 / 60, rest % 60);
    else
        snprintf(buf, len, "%lld:%02lld:%02lld", rest / 3600, rest % 3600 / 60, rest % 60);
}

/* ---- Checking ---------------------------------------------------------------- */

static relais_publik_sig refuse(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return RELAIS_PUBLIK_SIG_REFUSED;
}

/* Find "&signature=" in [qs, qs+len). */
static long find_signature(const char *qs, size_t len)
{
    static const char needle[] = "&signature=";
    size_t nl = sizeof needle - 1;
    for (size_t i = 0; i + nl <= len; i++)
        if (memcmp(qs + i, needle, nl) == 0) return (long)i;
    return -1;
}

relais_publik_sig relais_publik_verify(const char *qs, size_t len, const relais_publik_verify_opts *o,
                                       char *err, size_t errlen, char *orig_out, size_t origlen)
{
    if (orig_out && origlen) orig_out[0] = '\0';
    snprintf(err, errlen, "%s", RELAIS_PUBLIK_E_UNSIGNED);
    if (!qs || len == 0) return RELAIS_PUBLIK_SIG_UNSIGNED;
    relais_publik_query q;
    if (relais_publik_query_parse(qs, len, &q) != 0) return refuse(err, errlen, "out of memory");
    relais_publik_sig rc = RELAIS_PUBLIK_SIG_REFUSED;
    int count = 0;
    const relais_publik_param *sig = query_param(&q, "signature", &count);
    if (!sig) {
        rc = RELAIS_PUBLIK_SIG_UNSIGNED;
        goto done;
    }
    const relais_publik_param *orig = query_param(&q, "orig", &count);
    if (!orig) {
        rc = refuse(err, errlen, RELAIS_PUBLIK_E_ORIG_MISS);
        goto done;
    }
    const char *key = orig->has_nul ? NULL : o->key_for(o->arg, orig->value);
    if (!key || !*key) {
        rc = refuse(err, errlen, RELAIS_PUBLIK_E_ORIG);
        goto done;
    }
    const relais_publik_param *algo = query_param(&q, "algo", &count);
    if (!algo) {
        rc = refuse(err, errlen, RELAIS_PUBLIK_E_ALGO_MISS);
        goto done;
    }
    if (algo->has_nul || !digest_name(algo->value, o->all_algos)) {
        rc = refuse(err, errlen, RELAIS_PUBLIK_E_ALGO);
        goto done;
    }
    /* the signed text: the raw bytes before the first "&signature="; w.c.s.
     * slices with find(), so without one it takes all but the last byte */
    long at = find_signature(qs, len);
    size_t signed_len = at >= 0 ? (size_t)at : len - 1;
    char expect[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    if (relais_publik_hmac_b64(algo->value, key, qs, signed_len, expect, sizeof expect) != 0) {
        rc = refuse(err, errlen, RELAIS_PUBLIK_E_ALGO);
        goto done;
    }
    size_t elen = strlen(expect), glen = strlen(sig->value);
    if (sig->has_nul || glen != elen || CRYPTO_memcmp(sig->value, expect, elen) != 0) {
        rc = refuse(err, errlen, RELAIS_PUBLIK_E_SIGNATURE);
        goto done;
    }
    const relais_publik_param *tsp = query_param(&q, "timestamp", &count);
    if (!tsp) {
        rc = refuse(err, errlen, RELAIS_PUBLIK_E_TS_MISS);
        goto done;
    }
    time_t ts;
    char perr[256];
    if (tsp->has_nul) {
        rc = refuse(err, errlen, "Invalid timestamp field; embedded null character.");
        goto done;
    }
    if (relais_publik_parse_timestamp(tsp->value, &ts, perr, sizeof perr) != 0) {
        snprintf(err, errlen, "Invalid timestamp field; %s.", perr);
        goto done;
    }
    long window = o->window_s > 0 ? o->window_s : RELAIS_PUBLIK_WINDOW_S;
    long long delta = (long long)o->now - (long long)ts;
    if (delta > window || -delta > window) {
        char d[64];
        format_delta(delta < 0 ? -delta : delta, d, sizeof d);
        snprintf(err, errlen, "timestamp is more than %ld seconds in the %s: %s", window,
                 delta < 0 ? "future" : "past", d);
        goto done;
    }
    /* the nonce: w.c.s. takes form.get('nonce'); several are not a str (its
     * code would then fail); the first one is used here */
    const char *nonce = NULL;
    for (size_t i = 0; i < q.n && !nonce; i++)
        if (strcmp(q.p[i].name, "nonce") == 0) nonce = q.p[i].value;
    if (nonce && *nonce && o->nonces) {
        char norm[129];
        normalise_nonce(nonce, norm);
        int used = relais_publik_nonce_use(o->nonces, norm, o->now);
        if (used != 0) {
            rc = refuse(err, errlen, used > 0 ? RELAIS_PUBLIK_E_NONCE : "out of memory");
            goto done;
        }
    }
    if (orig_out && origlen) snprintf(orig_out, origlen, "%s", orig->value);
    err[0] = '\0';
    rc = RELAIS_PUBLIK_SIG_OK;
done:
    relais_publik_query_free(&q);
    return rc;
}
