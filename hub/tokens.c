/*
 * tokens.c - the admin API's roles and bearer tokens (see tokens.h): the
 * tokens file parser, the constant-time lookup of a presented token, the
 * Authorization header, new tokens and the loopback test of admin_listen.
 * OpenSSL does the hashing, the comparison and the randomness.
 * No threads; a parsed table is never changed, so it may be shared.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "tokens.h"
#include "event_int.h"

#define HASH_LEN 32
#define HASH_TAG "sha256:"
#define RAW_BYTES 32

typedef struct tok_entry {
    char          name[RELAIS_TOKEN_NAME_MAX + 1];
    relais_role   role;
    unsigned char hash[HASH_LEN];
    int           line;
} tok_entry;

struct relais_tokens {
    tok_entry *v;
    size_t     n, cap;
};

/* ---- roles ---------------------------------------------------------------- */

static const char *const g_role_names[] = { "none", "auditor", "operator", "admin" };

const char *relais_role_name(relais_role r)
{
    return r >= RELAIS_ROLE_AUDITOR && r <= RELAIS_ROLE_ADMIN ? g_role_names[r] : "none";
}

int relais_role_parse(const char *s, relais_role *out)
{
    for (int r = RELAIS_ROLE_AUDITOR; s && r <= RELAIS_ROLE_ADMIN; r++) {
        if (strcmp(s, g_role_names[r]) == 0) {
            *out = (relais_role)r;
            return 0;
        }
    }
    return -1;
}

int relais_role_allows(relais_role have, relais_role need)
{
    if (need == RELAIS_ROLE_NONE) return 1;
    return have >= RELAIS_ROLE_AUDITOR && have <= RELAIS_ROLE_ADMIN && have >= need;
}

static int name_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-' || c == '@';
}

static int name_valid_n(const char *s, size_t n)
{
    if (n == 0 || n > RELAIS_TOKEN_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (!name_char((unsigned char)s[i])) return 0;
    return 1;
}

int relais_token_name_valid(const char *s)
{
    return s && name_valid_n(s, strlen(s));
}

/* ---- the file ------------------------------------------------------------- */

static int sha256(const void *buf, size_t len, unsigned char out[HASH_LEN])
{
    unsigned int n = 0;
    return EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL) == 1 && n == HASH_LEN ? 0 : -1;
}

/* A field of at most `max` bytes for an error message, non-printable bytes as '?'. */
static void quote(const char *s, size_t n, char *out, size_t max)
{
    size_t k = n < max - 1 ? n : max - 1;
    for (size_t i = 0; i < k; i++) out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    out[k] = '\0';
}

typedef struct field { const char *p; size_t n; } field;

static int blank(char c) { return c == ' ' || c == '\t'; }

/* One line (without its newline): 0 and *e filled, 1 for a comment or a
 * blank line, -1 with errstr. */
static int parse_line(const char *file, int lineno, const char *s, size_t n, const relais_tokens *t,
                      tok_entry *e, char *errstr, size_t errlen)
{
    if (n && s[n - 1] == '\r') n--;
    if (memchr(s, '\0', n)) {
        snprintf(errstr, errlen, "%s:%d: NUL byte in the line", file, lineno);
        return -1;
    }
    size_t i = 0;
    while (i < n && blank(s[i])) i++;
    if (i == n || s[i] == '#') return 1;
    static const char *const names[] = { "name", "role", "hash" };
    field f[4];
    int nf = 0;
    while (i < n && nf < 4) {
        size_t start = i;
        while (i < n && !blank(s[i])) i++;
        f[nf].p = s + start;
        f[nf].n = i - start;
        nf++;
        while (i < n && blank(s[i])) i++;
    }
    if (nf < 3) {
        snprintf(errstr, errlen, "%s:%d: field '%s' is missing: a line is '<name> <role> sha256:<64 hex digits>'",
                 file, lineno, names[nf]);
        return -1;
    }
    if (nf > 3) {
        snprintf(errstr, errlen, "%s:%d: unexpected text after field 'hash': a line is '<name> <role> "
                 "sha256:<64 hex digits>' (comments go on lines of their own)", file, lineno);
        return -1;
    }
    char q[RELAIS_TOKEN_NAME_MAX + 1];
    if (!name_valid_n(f[0].p, f[0].n)) {
        if (f[0].n > RELAIS_TOKEN_NAME_MAX) {
            snprintf(errstr, errlen, "%s:%d: field 'name': longer than %d characters", file, lineno,
                     RELAIS_TOKEN_NAME_MAX);
        } else {
            quote(f[0].p, f[0].n, q, sizeof q);
            snprintf(errstr, errlen, "%s:%d: field 'name': '%s' may only contain letters, digits, '.', '_', '-' "
                     "and '@'", file, lineno, q);
        }
        return -1;
    }
    memcpy(e->name, f[0].p, f[0].n);
    e->name[f[0].n] = '\0';
    char role[16] = "";
    if (f[1].n < sizeof role) {
        memcpy(role, f[1].p, f[1].n);
        role[f[1].n] = '\0';
    }
    if (!role[0] || relais_role_parse(role, &e->role) != 0) {
        quote(f[1].p, f[1].n, q, 20);
        snprintf(errstr, errlen, "%s:%d: field 'role': unknown role '%s'; expected auditor, operator or admin",
                 file, lineno, q);
        return -1;
    }
    size_t tag = strlen(HASH_TAG);
    int ok = f[2].n == tag + 2 * HASH_LEN && strncmp(f[2].p, HASH_TAG, tag) == 0;
    for (size_t k = 0; ok && k < HASH_LEN; k++) {
        int hi = OPENSSL_hexchar2int((unsigned char)f[2].p[tag + 2 * k]);
        int lo = OPENSSL_hexchar2int((unsigned char)f[2].p[tag + 2 * k + 1]);
        if (hi < 0 || lo < 0) ok = 0;
        else e->hash[k] = (unsigned char)(hi << 4 | lo);
    }
    if (!ok) {
        snprintf(errstr, errlen, "%s:%d: field 'hash': expected sha256: and 64 hex digits, the SHA-256 of the "
                 "token (relais token new writes the line; never the token itself)", file, lineno);
        return -1;
    }
    e->line = lineno;
    for (size_t k = 0; k < t->n; k++) {
        if (strcmp(t->v[k].name, e->name) == 0) {
            snprintf(errstr, errlen, "%s:%d: field 'name': duplicate name '%s' (first at line %d)", file, lineno,
                     e->name, t->v[k].line);
            return -1;
        }
        if (CRYPTO_memcmp(t->v[k].hash, e->hash, HASH_LEN) == 0) {
            snprintf(errstr, errlen, "%s:%d: field 'hash': the same token as '%s' at line %d", file, lineno,
                     t->v[k].name, t->v[k].line);
            return -1;
        }
    }
    return 0;
}

relais_tokens *relais_tokens_parse(const char *name, const char *buf, size_t len, char *errstr, size_t errlen)
{
    const char *file = name ? name : "<tokens>";
    if (errlen) errstr[0] = '\0';
    if (len > RELAIS_TOKENS_FILE_MAX) {
        snprintf(errstr, errlen, "%s: larger than %d bytes", file, RELAIS_TOKENS_FILE_MAX);
        return NULL;
    }
    relais_tokens *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(errstr, errlen, "%s: out of memory", file);
        return NULL;
    }
    int lineno = 0;
    for (size_t off = 0; off < len;) {
        const char *s = buf + off;
        const char *nl = memchr(s, '\n', len - off);
        size_t n = nl ? (size_t)(nl - s) : len - off;
        off += n + (nl ? 1 : 0);
        lineno++;
        tok_entry e;
        memset(&e, 0, sizeof e);
        int rc = parse_line(file, lineno, s, n, t, &e, errstr, errlen);
        if (rc < 0) {
            relais_tokens_destroy(t);
            return NULL;
        }
        if (rc > 0) continue;
        if (t->n == t->cap) {
            size_t cap = t->cap ? 2 * t->cap : 8;
            tok_entry *v = realloc(t->v, cap * sizeof *v);
            if (!v) {
                snprintf(errstr, errlen, "%s: out of memory", file);
                relais_tokens_destroy(t);
                return NULL;
            }
            t->v = v;
            t->cap = cap;
        }
        t->v[t->n++] = e;
    }
    return t;
}

relais_tokens *relais_tokens_load(const char *path, char *errstr, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(errstr, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(errstr, errlen, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(errstr, errlen, "%s: readable by others (mode %03o): chmod 600 it", path,
                 (unsigned)(st.st_mode & 0777));
        close(fd);
        return NULL;
    }
    if (st.st_size > RELAIS_TOKENS_FILE_MAX) {
        snprintf(errstr, errlen, "%s: larger than %d bytes", path, RELAIS_TOKENS_FILE_MAX);
        close(fd);
        return NULL;
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        snprintf(errstr, errlen, "%s: out of memory", path);
        close(fd);
        return NULL;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(errstr, errlen, "%s: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return NULL;
        }
        if (r == 0) break;
        len += (size_t)r;
        if (len == cap) {   /* grew since fstat */
            snprintf(errstr, errlen, "%s: changed while being read", path);
            free(buf);
            close(fd);
            return NULL;
        }
    }
    close(fd);
    relais_tokens *t = relais_tokens_parse(path, buf, len, errstr, errlen);
    free(buf);
    return t;
}

void relais_tokens_destroy(relais_tokens *t)
{
    if (!t) return;
    if (t->v) OPENSSL_cleanse(t->v, t->cap * sizeof *t->v);
    free(t->v);
    free(t);
}

size_t relais_tokens_count(const relais_tokens *t)
{
    return t ? t->n : 0;
}

int relais_tokens_check(const relais_tokens *t, const char *token, size_t len, const char **name,
                        relais_role *role)
{
    if (!t || !token || !len) return -1;
    unsigned char md[HASH_LEN];
    if (sha256(token, len, md) != 0) return -1;
    size_t found = SIZE_MAX;
    for (size_t i = 0; i < t->n; i++)
        if (CRYPTO_memcmp(md, t->v[i].hash, HASH_LEN) == 0) found = i;
    OPENSSL_cleanse(md, sizeof md);
    if (found == SIZE_MAX) return -1;
    if (name) *name = t->v[found].name;
    if (role) *role = t->v[found].role;
    return 0;
}

/* ---- the header ------------------------------------------------------------ */

static int token68_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~' || c == '+' || c == '/';
}

const char *relais_bearer_token(const char *header, size_t *len)
{
    if (!header) return NULL;
    const char *p = header;
    while (blank(*p)) p++;
    if (strncasecmp(p, "Bearer", 6) != 0 || !blank(p[6])) return NULL;
    p += 6;
    while (blank(*p)) p++;
    size_t n = 0;
    while (token68_char((unsigned char)p[n])) n++;
    if (n == 0) return NULL;
    size_t k = n;
    while (p[k] == '=') k++;
    size_t end = k;
    while (blank(p[end])) end++;
    if (p[end] != '\0') return NULL;
    *len = k;
    return p;
}

/* ---- new tokens ------------------------------------------------------------ */

int relais_token_new(const char *name, relais_role role, char token[RELAIS_TOKEN_BUF],
                     char line[RELAIS_TOKEN_LINE_BUF], char *errstr, size_t errlen)
{
    token[0] = line[0] = '\0';
    if (!relais_token_name_valid(name)) {
        snprintf(errstr, errlen, "name: 1 to %d letters, digits, '.', '_', '-' or '@'", RELAIS_TOKEN_NAME_MAX);
        return -1;
    }
    if (role < RELAIS_ROLE_AUDITOR || role > RELAIS_ROLE_ADMIN) {
        snprintf(errstr, errlen, "role: expected auditor, operator or admin");
        return -1;
    }
    unsigned char raw[RAW_BYTES], b64[4 * ((RAW_BYTES + 2) / 3) + 1], md[HASH_LEN];
    if (RAND_bytes(raw, sizeof raw) != 1) {
        snprintf(errstr, errlen, "the random generator failed");
        return -1;
    }
    int n = EVP_EncodeBlock(b64, raw, sizeof raw);
    OPENSSL_cleanse(raw, sizeof raw);
    while (n > 0 && b64[n - 1] == '=') n--;
    for (int i = 0; i < n; i++) {   /* base64 -> base64url (RFC 4648 section 5) */
        if (b64[i] == '+') b64[i] = '-';
        else if (b64[i] == '/') b64[i] = '_';
    }
    snprintf(token, RELAIS_TOKEN_BUF, "%s%.*s", RELAIS_TOKEN_PREFIX, n, (const char *)b64);
    OPENSSL_cleanse(b64, sizeof b64);
    char hex[2 * HASH_LEN + 1];
    if (sha256(token, strlen(token), md) != 0) {
        OPENSSL_cleanse(token, RELAIS_TOKEN_BUF);
        token[0] = '\0';
        snprintf(errstr, errlen, "SHA-256 failed");
        return -1;
    }
    relais_hex(md, sizeof md, hex);
    snprintf(line, RELAIS_TOKEN_LINE_BUF, "%s %s %s%s", name, relais_role_name(role), HASH_TAG, hex);
    return 0;
}

/* ---- admin_listen ------------------------------------------------------------ */

int relais_listen_is_loopback(const char *listen)
{
    if (!listen) return 0;
    const char *colon = strrchr(listen, ':');
    char host[64];
    if (!colon || (size_t)(colon - listen) >= sizeof host) return 0;
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) != 1) return 0;
    return (ntohl(a.s_addr) >> 24) == 127;
}
