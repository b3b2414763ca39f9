/*
 * httputil.c - HTTP helpers shared by the connectors and their simulators
 * (see httputil.h): UTF-8-safe excerpts, the listen-address split, the
 * capped request-body buffer (libmicrohttpd side); the outgoing allow-list,
 * the outgoing-call policy every libcurl handle is set up with, the replay
 * memory of signed webhooks, and one pooled libcurl request with a capped
 * answer (client side).
 *
 * Threads: no global state. A relais_http_pool's free list is guarded by its
 * lock; a borrowed curl handle is used by the calling thread alone until it
 * is put back. An allow-list and a policy are only read once built. A
 * relais_nonce_cache is guarded by its lock. Everything else works on its
 * arguments only. The pre-request callback runs on the thread that called
 * curl_easy_perform and only reads the policy and writes the caller's guard.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <curl/curl.h>
#include <jansson.h>
#include "httputil.h"
#include "instance.h"

_Static_assert(sizeof ((relais_http_answer *)0)->detail >= CURL_ERROR_SIZE, "detail holds curl's error buffer");

/* ---- Excerpts ------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned min;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

size_t relais_http_excerpt(char *dst, size_t dstlen, const char *src, size_t srclen,
                           size_t max, int oneline)
{
    if (dstlen == 0) return 0;
    size_t o = 0, i = 0;
    if (max > srclen) max = srclen;
    while (i < max) {
        const unsigned char *s = (const unsigned char *)src + i;
        size_t q = utf8_seq(s, max - i);
        if (q == 0) {
            if (o + 1 >= dstlen) break;
            dst[o++] = '?';
            i++;
            continue;
        }
        if (o + q >= dstlen) break;
        if (q == 1) {
            char c = (char)s[0];
            if (c == '\0') c = '?';
            else if (oneline && (s[0] < 0x20 || s[0] == 0x7F)) c = ' ';
            dst[o++] = c;
        } else {
            memcpy(dst + o, s, q);
            o += q;
        }
        i += q;
    }
    dst[o] = '\0';
    return o;
}

/* ---- Listen addresses ----------------------------------------------------- */

int relais_http_split_listen(const char *listen, char *host, size_t hostlen, int *port,
                             char *errstr, size_t errlen)
{
    const char *colon;
    const char *h = listen;
    size_t hl;
    if (!listen || !*listen) {
        snprintf(errstr, errlen, "listen: empty address");
        return -1;
    }
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':') {
            snprintf(errstr, errlen, "listen '%s': expected [ipv6]:port", listen);
            return -1;
        }
        h = listen + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon) {
            snprintf(errstr, errlen, "listen '%s': expected host:port", listen);
            return -1;
        }
        hl = (size_t)(colon - listen);
    }
    if (hl == 0 || hl >= hostlen) {
        snprintf(errstr, errlen, "listen '%s': bad host", listen);
        return -1;
    }
    const char *ps = colon + 1;
    long p = 0;
    if (!*ps || strlen(ps) > 5) {
        snprintf(errstr, errlen, "listen '%s': bad port", listen);
        return -1;
    }
    for (const char *c = ps; *c; c++) {
        if (!isdigit((unsigned char)*c)) {
            snprintf(errstr, errlen, "listen '%s': bad port", listen);
            return -1;
        }
        p = p * 10 + (*c - '0');
    }
    if (p > 65535) {
        snprintf(errstr, errlen, "listen '%s': port above 65535", listen);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

/* ---- Request body buffer ---------------------------------------------------- */

int relais_http_upload_take(relais_http_upload *u, const char *data, size_t *size, size_t max)
{
    size_t n = *size;
    *size = 0;
    if (u->too_large || n == 0)
        return 0;
    if (n > max - u->len) {
        u->too_large = 1;
        free(u->buf);
        u->buf = NULL;
        u->len = u->cap = 0;
        return 0;
    }
    if (u->len + n + 1 > u->cap) {          /* + 1: the NUL */
        size_t cap = u->cap ? u->cap : 4096;
        while (cap < u->len + n + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = max + 1;
        char *nb = realloc(u->buf, cap);
        if (!nb)
            return -1;
        u->buf = nb;
        u->cap = cap;
    }
    memcpy(u->buf + u->len, data, n);
    u->len += n;
    u->buf[u->len] = '\0';
    return 0;
}

void relais_http_upload_free(relais_http_upload *u)
{
    if (!u)
        return;
    free(u->buf);
    u->buf = NULL;
    u->len = u->cap = 0;
    u->too_large = 0;
}

/* ---- Outgoing allow-list ---------------------------------------------------- */

typedef struct allow_range {
    int           family;      /* AF_INET or AF_INET6 */
    unsigned char addr[16];    /* network address (4 or 16 bytes used) */
    int           bits;        /* prefix length */
} allow_range;

struct relais_http_allow {
    char       **names;        /* lower case, no trailing dot; "*.example.org" kept with its star */
    size_t       nnames, capnames;
    allow_range *ranges;
    size_t       nranges, capranges;
};

relais_http_allow *relais_http_allow_new(void)
{
    return calloc(1, sizeof(relais_http_allow));
}

void relais_http_allow_destroy(relais_http_allow *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->nnames; i++) free(a->names[i]);
    free(a->names);
    free(a->ranges);
    free(a);
}

size_t relais_http_allow_names(const relais_http_allow *a) { return a ? a->nnames : 0; }
size_t relais_http_allow_ranges(const relais_http_allow *a) { return a ? a->nranges : 0; }

/* An address in text form -> family and bytes (IPv4-mapped IPv6 addresses
 * become IPv4). 0 ok, -1 not an address. */
static int parse_addr(const char *s, int *family, unsigned char out[16])
{
    unsigned char b[16];
    if (inet_pton(AF_INET, s, b) == 1) {
        *family = AF_INET;
        memcpy(out, b, 4);
        return 0;
    }
    if (inet_pton(AF_INET6, s, b) == 1) {
        static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        if (memcmp(b, mapped, 12) == 0) {
            *family = AF_INET;
            memcpy(out, b + 12, 4);
        } else {
            *family = AF_INET6;
            memcpy(out, b, 16);
        }
        return 0;
    }
    return -1;
}

/* 1 when the first `bits` bits of x and y are equal. */
static int prefix_eq(const unsigned char *x, const unsigned char *y, int bits)
{
    int full = bits / 8, rest = bits % 8;
    if (memcmp(x, y, (size_t)full) != 0) return 0;
    if (rest == 0) return 1;
    unsigned char mask = (unsigned char)(0xFF << (8 - rest));
    return (x[full] & mask) == (y[full] & mask);
}

/* A host name: labels of letters, digits and '-', separated by dots, at
 * most 253 bytes; with `wild` a leading "*." is allowed. */
static int name_ok(const char *s, int wild)
{
    size_t n = strlen(s);
    if (wild && n > 2 && s[0] == '*' && s[1] == '.') s += 2;
    if (!*s || strlen(s) > 253) return 0;
    size_t label = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '.') {
            if (label == 0) return 0;
            label = 0;
        } else if (isalnum((unsigned char)*p) || *p == '-' || *p == '_') {
            if (++label > 63) return 0;
        } else {
            return 0;
        }
    }
    return 1;
}

static int add_range(relais_http_allow *a, const allow_range *r)
{
    if (a->nranges == a->capranges) {
        size_t cap = a->capranges ? a->capranges * 2 : 8;
        allow_range *nr = realloc(a->ranges, cap * sizeof *nr);
        if (!nr) return -1;
        a->ranges = nr;
        a->capranges = cap;
    }
    a->ranges[a->nranges++] = *r;
    return 0;
}

int relais_http_allow_add(relais_http_allow *a, const char *entry, char *errstr, size_t errlen)
{
    char buf[300];
    if (!entry || !*entry) {
        snprintf(errstr, errlen, "empty entry (a host name, an address or a range such as 10.0.0.0/8)");
        return -1;
    }
    if (strlen(entry) >= sizeof buf) {
        snprintf(errstr, errlen, "entry '%.60s...' is too long", entry);
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", entry);
    if (strstr(buf, "://")) {
        snprintf(errstr, errlen, "'%s' is a URL: give its host name only (publik.mairie.example)", entry);
        return -1;
    }
    const char *slash = strchr(buf, '/');
    allow_range r;
    memset(&r, 0, sizeof r);
    if (slash) {
        buf[slash - buf] = '\0';
        const char *bits = slash + 1;
        char *end = NULL;
        errno = 0;
        long b = strtol(bits, &end, 10);
        if (parse_addr(buf, &r.family, r.addr) != 0 || (strchr(buf, ':') && r.family == AF_INET)) {
            snprintf(errstr, errlen, "'%s' is not an address range: '%s' is not an IPv4 or IPv6 address "
                     "(write 10.0.0.0/8 or fd00::/8)", entry, buf);
            return -1;
        }
        int maxbits = r.family == AF_INET ? 32 : 128;
        if (!*bits || !end || *end || errno || b < 0 || b > maxbits) {
            snprintf(errstr, errlen, "'%s' is not an address range: the prefix length must be 0 to %d",
                     entry, maxbits);
            return -1;
        }
        r.bits = (int)b;
        unsigned char net[16];
        memcpy(net, r.addr, sizeof net);
        for (int i = r.bits; i < maxbits; i++) net[i / 8] &= (unsigned char)~(0x80 >> (i % 8));
        if (memcmp(net, r.addr, (size_t)maxbits / 8) != 0) {
            char canon[INET6_ADDRSTRLEN];
            inet_ntop(r.family, net, canon, sizeof canon);
            snprintf(errstr, errlen, "'%s' has address bits set beyond /%d (did you mean %s/%d?)", entry,
                     r.bits, canon, r.bits);
            return -1;
        }
    } else if (parse_addr(buf, &r.family, r.addr) == 0) {
        r.bits = r.family == AF_INET ? 32 : 128;
    } else {
        if (buf[0] == '[') {
            snprintf(errstr, errlen, "'%s': write IPv6 addresses without brackets (::1, fd00::/8)", entry);
            return -1;
        }
        size_t n = strlen(buf);
        if (n > 1 && buf[n - 1] == '.') buf[--n] = '\0';
        if (!name_ok(buf, 1)) {
            snprintf(errstr, errlen, "'%s' is neither a host name (letters, digits, '-', dots; "
                     "\"*.example.org\" for the names below it), an address nor a range (10.0.0.0/8)", entry);
            return -1;
        }
        for (char *p = buf; *p; p++) *p = (char)tolower((unsigned char)*p);
        if (a->nnames == a->capnames) {
            size_t cap = a->capnames ? a->capnames * 2 : 8;
            char **nn = realloc(a->names, cap * sizeof *nn);
            if (!nn) {
                snprintf(errstr, errlen, "out of memory");
                return -1;
            }
            a->names = nn;
            a->capnames = cap;
        }
        a->names[a->nnames] = strdup(buf);
        if (!a->names[a->nnames]) {
            snprintf(errstr, errlen, "out of memory");
            return -1;
        }
        a->nnames++;
        return 0;
    }
    if (add_range(a, &r) != 0) {
        snprintf(errstr, errlen, "out of memory");
        return -1;
    }
    return 0;
}

int relais_http_allow_addr(const relais_http_allow *a, const char *ip)
{
    int family;
    unsigned char b[16];
    if (!a || !ip || parse_addr(ip, &family, b) != 0) return 0;
    for (size_t i = 0; i < a->nranges; i++)
        if (a->ranges[i].family == family && prefix_eq(a->ranges[i].addr, b, a->ranges[i].bits))
            return 1;
    return 0;
}

int relais_http_allow_host(const relais_http_allow *a, const char *host)
{
    if (!a || !host || !*host) return 0;
    int family;
    unsigned char b[16];
    if (parse_addr(host, &family, b) == 0) return relais_http_allow_addr(a, host);
    char h[256];
    size_t n = strlen(host);
    if (n >= sizeof h) return 0;
    for (size_t i = 0; i <= n; i++) h[i] = (char)tolower((unsigned char)host[i]);
    if (n > 1 && h[n - 1] == '.') h[--n] = '\0';
    for (size_t i = 0; i < a->nnames; i++) {
        const char *e = a->names[i];
        if (e[0] == '*' && e[1] == '.') {
            size_t sl = strlen(e + 1);   /* ".example.org" */
            if (n > sl && strcmp(h + n - sl, e + 1) == 0) return 1;
        } else if (strcmp(h, e) == 0) {
            return 1;
        }
    }
    return 0;
}

int relais_http_url_host(const char *url, char *host, size_t hostlen, char *errstr, size_t errlen)
{
    CURLU *u = curl_url();
    char *h = NULL;
    CURLUcode uc = u ? curl_url_set(u, CURLUPART_URL, url, 0) : CURLUE_OUT_OF_MEMORY;
    if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_HOST, &h, 0);
    int rc = -1;
    if (uc != CURLUE_OK || !h || !*h) {
        snprintf(errstr, errlen, "'%.200s' is not a URL with a host%s%s", url, uc != CURLUE_OK ? ": " : "",
                 uc != CURLUE_OK ? curl_url_strerror(uc) : "");
    } else {
        const char *p = h;
        size_t n = strlen(h);
        if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
            p = h + 1;
            n -= 2;
        }
        if (n >= hostlen) {
            snprintf(errstr, errlen, "the host of '%.200s' is too long", url);
        } else {
            memcpy(host, p, n);
            host[n] = '\0';
            /* an IPv6 zone id ("fe80::1%25eth0") is not part of the address */
            char *zone = strchr(host, '%');
            if (zone && strchr(host, ':')) *zone = '\0';
            rc = 0;
        }
    }
    curl_free(h);
    curl_url_cleanup(u);
    return rc;
}

/* ---- Outgoing policy ----------------------------------------------------------- */

static const relais_http_policy default_policy = { 0 };

int relais_http_policy_init(relais_http_policy *p, const relais_instance *inst, const char *protocols,
                            const char *tls_ca_file, int tls_verify, char *errstr, size_t errlen)
{
    memset(p, 0, sizeof *p);
    p->protocols = protocols;
    p->allow = inst ? inst->outgoing_allow : NULL;
    p->instance = inst ? inst->name : NULL;
    p->tls_insecure = !tls_verify;
    if (tls_ca_file) {
        FILE *f = *tls_ca_file ? fopen(tls_ca_file, "r") : NULL;
        if (!f) {
            snprintf(errstr, errlen, "tls_ca_file '%.200s': %s", tls_ca_file,
                     *tls_ca_file ? strerror(errno) : "empty path");
            return -1;
        }
        fclose(f);
        p->tls_ca_file = tls_ca_file;
    }
    if (!tls_verify && inst)
        relais_instance_log(inst, RELAIS_LOG_WARN,
                            "tls_verify is false: the TLS certificate and host name of this instance's "
                            "destination are NOT verified, anyone on the path can read and change its "
                            "traffic (prefer tls_ca_file with the destination's CA)");
    return 0;
}

/* The host of the handle's URL, "" when unknown. */
static void guard_host(const relais_http_guard *g, char *host, size_t len)
{
    char *url = NULL, err[128];
    host[0] = '\0';
    if (curl_easy_getinfo(g->handle, CURLINFO_EFFECTIVE_URL, &url) != CURLE_OK || !url
        || relais_http_url_host(url, host, len, err, sizeof err) != 0)
        host[0] = '\0';
}

/* CURLOPT_OPENSOCKETFUNCTION: each address libcurl is about to connect to,
 * before the socket exists. A refused address gets no socket (libcurl then
 * tries the next one, if any): nothing at all reaches it, not even a TCP
 * SYN, a TLS hello or an SMTP EHLO and AUTH (those happen before the
 * pre-request callback runs). */
static curl_socket_t on_opensocket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    relais_http_guard *g = clientp;
    char ip[INET6_ADDRSTRLEN] = "";
    if (addr->family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)&addr->addr)->sin_addr, ip, sizeof ip);
    else if (addr->family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)&addr->addr)->sin6_addr, ip, sizeof ip);
    if (purpose != CURLSOCKTYPE_IPCXN || !relais_http_allow_addr(g->policy->allow, ip)) {
        char host[256];
        guard_host(g, host, sizeof host);
        g->blocked++;
        snprintf(g->why, sizeof g->why, "refused by outgoing.allow: %.80s resolves to %.46s, outside the "
                 "address ranges of the list (not connected)", host[0] ? host : "the destination",
                 ip[0] ? ip : "a non-IP address");
        return CURL_SOCKET_BAD;
    }
    curl_socket_t fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
    if (fd != CURL_SOCKET_BAD) g->opened++;
    return fd;
}

int relais_http_guard_refused(const relais_http_guard *g)
{
    return g->refused || (g->blocked > 0 && g->opened == 0);
}

/* CURLOPT_PREREQFUNCTION: after the connection is made (or reused), before
 * the request is sent: the URL's host must be allowed, and the address
 * connected to (again: a reused connection was opened by another request). */
static int on_prereq(void *clientp, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    relais_http_guard *g = clientp;
    const relais_http_allow *a = g->policy->allow;
    (void)local_ip;
    (void)local_port;
    char host[256];
    guard_host(g, host, sizeof host);
    if (!host[0] || !relais_http_allow_host(a, host)) {
        g->refused = 1;
        snprintf(g->why, sizeof g->why, "refused by outgoing.allow: host '%.80s' is not in the list (nothing sent)",
                 host);
        return CURL_PREREQFUNC_ABORT;
    }
    if (!relais_http_allow_addr(a, primary_ip)) {
        g->refused = 1;
        snprintf(g->why, sizeof g->why, "refused by outgoing.allow: %.80s connects to %.46s port %d, "
                 "outside the address ranges of the list (nothing sent)", host[0] ? host : "the destination",
                 primary_ip ? primary_ip : "?", primary_port);
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

static int setup_failed(relais_http_guard *g, const char *what, CURLcode rc)
{
    snprintf(g->why, sizeof g->why, "cannot apply the outgoing policy: %s: %s", what, curl_easy_strerror(rc));
    return -1;
}

#define POLICY_SET(h, g, opt, val)                                        \
    do {                                                                  \
        CURLcode rc_ = curl_easy_setopt((h), (opt), (val));               \
        if (rc_ != CURLE_OK) return setup_failed((g), #opt, rc_);         \
    } while (0)

int relais_http_policy_apply(CURL *h, const relais_http_policy *p, relais_http_guard *g,
                             long timeout_ms, long connect_timeout_ms)
{
    if (!p) p = &default_policy;
    memset(g, 0, sizeof *g);
    g->policy = p;
    g->handle = h;
    const char *protocols = p->protocols ? p->protocols : "http,https";
    POLICY_SET(h, g, CURLOPT_PROTOCOLS_STR, protocols);
    POLICY_SET(h, g, CURLOPT_REDIR_PROTOCOLS_STR, protocols);
    POLICY_SET(h, g, CURLOPT_FOLLOWLOCATION, 0L);
    POLICY_SET(h, g, CURLOPT_MAXREDIRS, 0L);
    POLICY_SET(h, g, CURLOPT_NOSIGNAL, 1L);
    POLICY_SET(h, g, CURLOPT_TCP_KEEPALIVE, 1L);
    POLICY_SET(h, g, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : RELAIS_HTTP_DEFAULT_TIMEOUT_MS);
    POLICY_SET(h, g, CURLOPT_CONNECTTIMEOUT_MS,
               connect_timeout_ms > 0 ? connect_timeout_ms : RELAIS_HTTP_DEFAULT_CONNECT_TIMEOUT_MS);
    POLICY_SET(h, g, CURLOPT_SSL_VERIFYPEER, p->tls_insecure ? 0L : 1L);
    POLICY_SET(h, g, CURLOPT_SSL_VERIFYHOST, p->tls_insecure ? 0L : 2L);
    POLICY_SET(h, g, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    POLICY_SET(h, g, CURLOPT_SSL_CIPHER_LIST, RELAIS_HTTP_TLS12_CIPHERS);
    POLICY_SET(h, g, CURLOPT_TLS13_CIPHERS, RELAIS_HTTP_TLS13_CIPHERS);
    if (p->tls_ca_file) POLICY_SET(h, g, CURLOPT_CAINFO, p->tls_ca_file);
    if (p->allow) {
        POLICY_SET(h, g, CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
        POLICY_SET(h, g, CURLOPT_OPENSOCKETDATA, g);
        POLICY_SET(h, g, CURLOPT_PREREQFUNCTION, on_prereq);
        POLICY_SET(h, g, CURLOPT_PREREQDATA, g);
    }
    return 0;
}

/* ---- Replay memory ------------------------------------------------------------ */

struct nonce_entry {
    char     *nonce;
    long long expiry;
    json_int_t seq;            /* the map holds the seq of the nonce's latest entry */
};

struct relais_nonce_cache {
    pthread_mutex_t     lock;  /* guards everything below */
    json_t             *seen;  /* nonce -> [seq, expiry] of its latest entry in the queue */
    struct nonce_entry *q;     /* ring of `max` entries, oldest at head */
    size_t              max, head, count;
    json_int_t          next_seq;
};

relais_nonce_cache *relais_nonce_cache_new(size_t max)
{
    relais_nonce_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->max = max ? max : 100000;
    c->seen = json_object();
    c->q = calloc(c->max, sizeof *c->q);
    if (!c->seen || !c->q) {
        json_decref(c->seen);
        free(c->q);
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void relais_nonce_cache_destroy(relais_nonce_cache *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->count; i++) free(c->q[(c->head + i) % c->max].nonce);
    free(c->q);
    json_decref(c->seen);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* Drop the expired entries at the head of the queue. Under the lock. */
static void nonce_drop_expired(relais_nonce_cache *c, long long now)
{
    while (c->count > 0 && c->q[c->head].expiry <= now) {
        struct nonce_entry *e = &c->q[c->head];
        json_t *v = json_object_get(c->seen, e->nonce);
        if (v && json_integer_value(json_array_get(v, 0)) == e->seq) json_object_del(c->seen, e->nonce);
        free(e->nonce);
        e->nonce = NULL;
        c->head = (c->head + 1) % c->max;
        c->count--;
    }
}

relais_nonce_status relais_nonce_use(relais_nonce_cache *c, const char *nonce, long long expiry,
                                     long long now, long long *retry_after)
{
    relais_nonce_status st = RELAIS_NONCE_NEW;
    pthread_mutex_lock(&c->lock);
    nonce_drop_expired(c, now);
    json_t *v = json_object_get(c->seen, nonce);
    if (v && json_integer_value(json_array_get(v, 1)) > now) st = RELAIS_NONCE_REPLAY;
    if (st == RELAIS_NONCE_NEW && c->count == c->max) {
        st = RELAIS_NONCE_FULL;
        if (retry_after) {
            long long d = c->q[c->head].expiry - now;
            *retry_after = d > 0 ? d : 1;
        }
    }
    if (st == RELAIS_NONCE_NEW) {
        struct nonce_entry *e = &c->q[(c->head + c->count) % c->max];
        e->nonce = strdup(nonce);
        e->expiry = expiry;
        e->seq = ++c->next_seq;
        if (!e->nonce || json_object_set_new(c->seen, nonce, json_pack("[I,I]", (json_int_t)e->seq,
                                                                       (json_int_t)expiry)) != 0) {
            free(e->nonce);
            e->nonce = NULL;
            st = RELAIS_NONCE_ERROR;
        } else {
            c->count++;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return st;
}

void relais_nonce_forget(relais_nonce_cache *c, const char *nonce)
{
    if (!c || !nonce) return;
    pthread_mutex_lock(&c->lock);
    json_object_del(c->seen, nonce);   /* its queue entry stays until it expires */
    pthread_mutex_unlock(&c->lock);
}

size_t relais_nonce_count(relais_nonce_cache *c, long long now)
{
    pthread_mutex_lock(&c->lock);
    nonce_drop_expired(c, now);
    size_t n = c->count;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* ---- Base URLs -------------------------------------------------------------- */

int relais_http_base_url_ok(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *query = NULL;
    CURLUcode uc = u ? curl_url_set(u, CURLUPART_URL, url, 0) : CURLUE_OUT_OF_MEMORY;
    if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    int has_query = uc == CURLUE_OK && curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK && query;
    int ok = uc == CURLUE_OK && scheme && !has_query
             && (strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0);
    curl_free(scheme);
    curl_free(query);
    curl_url_cleanup(u);
    return ok;
}

/* ---- The handle pool -------------------------------------------------------- */

#define POOL_MAX 32

struct relais_http_pool {
    pthread_mutex_t lock;          /* guards pool/npool */
    CURL           *pool[POOL_MAX];
    size_t          npool;
};

relais_http_pool *relais_http_pool_new(void)
{
    relais_http_pool *p = calloc(1, sizeof *p);
    if (p) pthread_mutex_init(&p->lock, NULL);
    return p;
}

void relais_http_pool_destroy(relais_http_pool *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->npool; i++) curl_easy_cleanup(p->pool[i]);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static CURL *pool_get(relais_http_pool *p)
{
    CURL *h = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->npool > 0) h = p->pool[--p->npool];
    pthread_mutex_unlock(&p->lock);
    return h ? h : curl_easy_init();
}

static void pool_put(relais_http_pool *p, CURL *h)
{
    curl_easy_reset(h);   /* keeps the handle's live connections */
    pthread_mutex_lock(&p->lock);
    if (p->npool < POOL_MAX) {
        p->pool[p->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    if (h) curl_easy_cleanup(h);
}

/* ---- One exchange ------------------------------------------------------------ */

struct sink {
    relais_http_answer *a;
    size_t              max;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct sink *s = userdata;
    relais_http_answer *a = s->a;
    size_t n = size * nmemb;
    size_t room = s->max - a->len;
    size_t take = n < room ? n : room;
    if (take < n) a->truncated = 1;
    if (take > 0) {
        char *nb = realloc(a->body, a->len + take + 1);
        if (!nb) return 0;   /* aborts the transfer: a transport error */
        a->body = nb;
        memcpy(a->body + a->len, ptr, take);
        a->len += take;
        a->body[a->len] = '\0';
    }
    return n;
}

int relais_http_perform(relais_http_pool *p, const relais_http_request *rq, relais_http_answer *a)
{
    memset(a, 0, sizeof *a);
    struct curl_slist *hl = NULL, *n;
    int oom = 0;
    for (size_t i = 0; !oom && rq->headers && rq->headers[i]; i++) {
        n = curl_slist_append(hl, rq->headers[i]);
        if (n) hl = n;
        else oom = 1;
    }
    CURL *h = oom ? NULL : pool_get(p);
    if (!h) {
        curl_slist_free_all(hl);
        a->failure = "out of memory";
        return -1;
    }
    struct sink s = { a, rq->max_answer };
    relais_http_guard g;
    if (relais_http_policy_apply(h, rq->policy, &g, rq->timeout_ms, rq->connect_timeout_ms) != 0) {
        pool_put(p, h);
        curl_slist_free_all(hl);
        a->failure = "outgoing policy not applied";
        a->code = CURLE_FAILED_INIT;
        snprintf(a->detail, sizeof a->detail, "%s", g.why);
        return -1;
    }
    curl_easy_setopt(h, CURLOPT_URL, rq->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_USERAGENT, rq->user_agent);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, a->detail);
    if (rq->method && strcmp(rq->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(rq->body ? rq->len : 0));
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
    pool_put(p, h);
    curl_slist_free_all(hl);
    if (rc != CURLE_OK) {
        a->status = 0;
        a->code = (int)rc;
        if (relais_http_guard_refused(&g)) {
            a->refused = 1;
            a->failure = "destination refused by the outgoing policy";
            snprintf(a->detail, sizeof a->detail, "%s", g.why);
        } else {
            a->failure = curl_easy_strerror(rc);
        }
        return -1;
    }
    a->detail[0] = '\0';
    return 0;
}
