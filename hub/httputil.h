/*
 * httputil.h - HTTP helpers shared by the connectors and their simulators:
 *
 *   - relais_http_split_listen: "host:port" / "[v6]:port" listen addresses;
 *   - relais_http_upload_*: a request body gathered from libmicrohttpd's
 *     upload callbacks, with a hard cap;
 *   - relais_http_excerpt: a bounded, valid UTF-8 excerpt of a vendor's text
 *     (answer details, log lines);
 *   - relais_http_allow_*: the hub's `outgoing.allow` list (host names and
 *     address ranges the hub may call);
 *   - relais_http_policy_*: the one policy every libcurl handle of the hub
 *     is set up with (protocols, no redirects, TLS verification, TLS 1.2
 *     minimum and ANSSI's cipher suites, timeouts, the allow-list checked on
 *     the address actually connected to); docs/SECURITY.md "Outgoing calls";
 *   - relais_nonce_*: a bounded memory of the nonces a signed webhook used
 *     within its replay window;
 *   - relais_http_base_url_ok, relais_http_pool, relais_http_perform: one
 *     libcurl request to a vendor's API (pooled easy handles, the policy
 *     above, the answer body kept up to a cap, curl's error texts kept for
 *     the caller's message).
 *
 * Threads: the functions keep no global state. A relais_http_upload belongs
 * to the connection thread that reads the request. A relais_http_pool may be
 * used by several threads at once (its free list is under a lock); each
 * relais_http_perform call uses its borrowed handle alone. An allow-list and
 * a policy are written once (config load, connector init) and then only
 * read, by any thread. A relais_nonce_cache is under its own lock.
 */
#ifndef RELAIS_HTTPUTIL_H
#define RELAIS_HTTPUTIL_H
#include <stddef.h>
#include <curl/curl.h>
#include "relais/connector.h"

/* ---- Text ------------------------------------------------------------------ */

/* Copy at most `max` bytes of `src` to `dst` (size dstlen) as valid UTF-8:
 * stops at a character boundary, invalid bytes and NUL become '?', and when
 * `oneline` control characters become ' '. Returns the bytes written. */
size_t relais_http_excerpt(char *dst, size_t dstlen, const char *src, size_t srclen,
                           size_t max, int oneline);

/* ---- Servers (libmicrohttpd) ---------------------------------------------- */

/* Split "host:port" / "[v6]:port" into host (no brackets) and port.
 * 0 ok, -1 invalid (message in errstr). */
int relais_http_split_listen(const char *listen, char *host, size_t hostlen, int *port,
                             char *errstr, size_t errlen);

/* A request body gathered from libmicrohttpd's upload callbacks, with a hard
 * cap (one connection thread owns it). Zero-initialised it is empty. */
typedef struct relais_http_upload {
    char  *buf;        /* NULL while empty; NUL-terminated after len bytes */
    size_t len, cap;
    int    too_large;  /* more than max bytes came: buf freed, the rest ignored */
} relais_http_upload;

/* Take the *size bytes of data that libmicrohttpd hands over (sets *size to
 * 0: consumed), unless the body would get longer than max: then too_large is
 * set and the buffer freed. 0 ok (also when too large), -1 out of memory. */
int relais_http_upload_take(relais_http_upload *u, const char *data, size_t *size, size_t max);
/* Frees the bytes and makes u empty again (u itself is the caller's); NULL: no-op. */
void relais_http_upload_free(relais_http_upload *u);

/* ---- Outgoing allow-list (hub config `outgoing.allow`) --------------------
 * Entries: a host name ("publik.mairie.example", compared without case, a
 * trailing dot ignored), "*.example.org" (any name below example.org, not
 * example.org itself), an IPv4 or IPv6 address ("127.0.0.1", "::1") or an
 * address range in CIDR form ("10.0.0.0/8", "fd00::/8").
 * A URL's host passes when it is a listed name, or an address inside a listed
 * range; the address a connection actually goes to passes when it is inside a
 * listed range (names alone never allow an address). */

typedef struct relais_http_allow relais_http_allow;

relais_http_allow *relais_http_allow_new(void);                /* NULL: out of memory */
void relais_http_allow_destroy(relais_http_allow *a);          /* NULL-safe */
/* Add one entry. 0 ok, -1 invalid (errstr names the entry and says why). */
int relais_http_allow_add(relais_http_allow *a, const char *entry, char *errstr, size_t errlen);
size_t relais_http_allow_names(const relais_http_allow *a);    /* name entries */
size_t relais_http_allow_ranges(const relais_http_allow *a);   /* address entries */
/* 1 when host (a name, or an address without brackets) passes, else 0. */
int relais_http_allow_host(const relais_http_allow *a, const char *host);
/* 1 when the numeric address ip (as libcurl's CURLINFO_PRIMARY_IP gives it)
 * is inside a listed range, else 0 (also when ip is not an address). */
int relais_http_allow_addr(const relais_http_allow *a, const char *ip);
/* The host of url as libcurl parses it, without IPv6 brackets. 0 ok, -1 when
 * url cannot be parsed or has no host (errstr says why). */
int relais_http_url_host(const char *url, char *host, size_t hostlen, char *errstr, size_t errlen);

/* ---- Outgoing policy (every libcurl handle) ---------------------------------
 * Cipher suites: ANSSI, "Recommandations de securite relatives a TLS"
 * (guide ANSSI-PA-035, SDE-NT-35, v1.2 of 26/03/2020), annex A.1 "Suites
 * recommandees": for TLS 1.3 TLS_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256,
 * TLS_AES_128_CCM_SHA256, TLS_CHACHA20_POLY1305_SHA256; for TLS 1.2 the
 * ECDHE suites of A.1 with AES-GCM, AES-CCM (ECDSA) and ChaCha20-Poly1305
 * below (OpenSSL names): a subset of A.1 (no DHE, Camellia or ARIA suite is
 * offered) and nothing of annex A.2 ("suites degradees", CBC). The list was
 * taken from a table derived from the guide, not from the PDF itself (not
 * reachable from the build machine): checking it against the PDF is noted
 * in docs/SECURITY.md. */
#define RELAIS_HTTP_TLS12_CIPHERS                                              \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:"            \
    "ECDHE-ECDSA-AES256-CCM:ECDHE-ECDSA-AES128-CCM:"                          \
    "ECDHE-ECDSA-CHACHA20-POLY1305:"                                          \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:"                \
    "ECDHE-RSA-CHACHA20-POLY1305"
#define RELAIS_HTTP_TLS13_CIPHERS                                              \
    "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_AES_128_CCM_SHA256:"   \
    "TLS_CHACHA20_POLY1305_SHA256"

#define RELAIS_HTTP_DEFAULT_TIMEOUT_MS 10000L
#define RELAIS_HTTP_DEFAULT_CONNECT_TIMEOUT_MS 3000L

typedef struct relais_http_policy {
    const char              *protocols;    /* NULL: "http,https"; the notify connector: "smtp,smtps" */
    const relais_http_allow *allow;        /* NULL: no outgoing.allow, any host and address */
    const char              *tls_ca_file;  /* NULL: the system's CA store */
    int                      tls_insecure; /* 1: certificates and host names NOT verified */
    const char              *instance;     /* for messages; may be NULL */
} relais_http_policy;

/* A connector instance's policy: the hub's outgoing.allow (from the
 * instance), protocols (NULL: http,https), the instance's tls_ca_file (NULL:
 * none; must be a readable file) and tls_verify (0 logs a warning). 0 ok, -1
 * with errstr naming the option. The strings must outlive the policy. */
int relais_http_policy_init(relais_http_policy *p, const relais_instance *inst, const char *protocols,
                            const char *tls_ca_file, int tls_verify, char *errstr, size_t errlen);

/* The option-table entries of an instance's TLS settings, for a connector
 * whose config struct `cfgtype` has `char *tls_ca_file` and `int tls_verify`
 * (include <stddef.h> for offsetof). */
#define RELAIS_HTTP_TLS_OPTIONS(cfgtype, modes_)                                                      \
    { .name = "tls_ca_file", .type = RELAIS_OPT_STR, .offset = offsetof(cfgtype, tls_ca_file),        \
      .modes = (modes_),                                                                         \
      .desc = "PEM file of the CA certificate(s) the destination's certificate must chain to "     \
              "(a private CA); default: the system's CA store" },                                 \
    { .name = "tls_verify", .type = RELAIS_OPT_BOOL, .def = "true", .offset = offsetof(cfgtype, tls_verify), \
      .modes = (modes_),                                                                         \
      .desc = "false turns TLS certificate and host name verification off for this instance "     \
              "(a warning is logged at start); prefer tls_ca_file" }

/* What the allow-list checks saw during one transfer; lives on the caller's
 * stack. */
typedef struct relais_http_guard {
    const relais_http_policy *policy;
    CURL                     *handle;
    int                       refused;     /* 1: the pre-request check refused the request */
    int                       blocked;     /* addresses refused before connecting */
    int                       opened;      /* sockets opened (allowed addresses) */
    char                      why[256];    /* last refusal or setup failure, one line */
} relais_http_guard;

/* 1 when a failed transfer failed because the allow-list refused its
 * destination (every address refused before connecting, or the pre-request
 * check refused), else 0. */
int relais_http_guard_refused(const relais_http_guard *g);

/* Set handle h up with policy p (NULL: the default policy: http,https, no
 * allow-list, verification on): protocols (also for redirects), redirects
 * not followed, no signals, TCP keep-alive, whole-transfer and connect
 * timeouts (<= 0: the defaults above), TLS verification, TLS 1.2 minimum,
 * the cipher suites above, the CA file, and with an allow-list two checks:
 * CURLOPT_OPENSOCKETFUNCTION refuses to open a socket to an address outside
 * the listed ranges (libcurl tries the next address; none left:
 * CURLE_COULDNT_CONNECT), and CURLOPT_PREREQFUNCTION, just before the request
 * is sent on a new or reused connection, aborts the transfer
 * (CURLE_ABORTED_BY_CALLBACK) when the URL's host is not allowed or the
 * address connected to is outside the ranges. relais_http_guard_refused(g)
 * tells such a refusal apart, g->why says it. g must live until the
 * transfer ends. 0 ok, -1 when an option could not be set (g->why). Call it after
 * curl_easy_reset and before curl_easy_perform; the caller sets the URL,
 * method, headers and callbacks. */
int relais_http_policy_apply(CURL *h, const relais_http_policy *p, relais_http_guard *g,
                             long timeout_ms, long connect_timeout_ms);

/* ---- Replay memory for signed webhooks -------------------------------------
 * Nonces used within their window: a nonce is remembered until its expiry
 * (the caller gives it: the signature's time plus the tolerance); entries
 * are dropped once expired (at the latest when the entries remembered
 * before them are: the memory is a queue in arrival order, so an entry may
 * stay at most one window longer than its own expiry), and at most `max` are
 * kept. Thread-safe. */
typedef struct relais_nonce_cache relais_nonce_cache;

typedef enum relais_nonce_status {
    RELAIS_NONCE_NEW = 0,      /* first use: remembered */
    RELAIS_NONCE_REPLAY = 1,   /* seen already and not expired */
    RELAIS_NONCE_FULL = 2,     /* `max` live nonces remembered: refused, not remembered */
    RELAIS_NONCE_ERROR = -1    /* out of memory */
} relais_nonce_status;

relais_nonce_cache *relais_nonce_cache_new(size_t max);      /* max 0: 100000. NULL: out of memory */
void relais_nonce_cache_destroy(relais_nonce_cache *c);       /* NULL-safe */
/* Use nonce at time now (seconds), remembering it until expiry. When FULL,
 * *retry_after (may be NULL) is the seconds until the oldest entry goes. */
relais_nonce_status relais_nonce_use(relais_nonce_cache *c, const char *nonce, long long expiry,
                                     long long now, long long *retry_after);
/* Forget a nonce (its request was not taken: the sender may send it again). */
void relais_nonce_forget(relais_nonce_cache *c, const char *nonce);
/* Entries held (live or waiting to be dropped), after dropping those expired at now. */
size_t relais_nonce_count(relais_nonce_cache *c, long long now);

/* ---- Clients (libcurl) ----------------------------------------------------- */

/* 1 when url is an http:// or https:// URL without a query (a base URL that
 * paths and queries are appended to), else 0. The caller has called
 * curl_global_init. */
int relais_http_base_url_ok(const char *url);

/* A pool of curl easy handles: a call borrows one, uses it alone, resets it
 * and puts it back, so keep-alive connections are reused across calls. */
typedef struct relais_http_pool relais_http_pool;

relais_http_pool *relais_http_pool_new(void);               /* NULL: out of memory */
void relais_http_pool_destroy(relais_http_pool *p);         /* NULL-safe */

typedef struct relais_http_request {
    const char        *method;             /* "POST", else a GET */
    const char        *url;
    const char *const *headers;            /* "Name: value" lines, NULL-terminated; may be NULL */
    const char        *body;               /* POST body (NULL: empty) */
    size_t             len;                /* its length */
    long               timeout_ms;         /* whole exchange */
    long               connect_timeout_ms;
    const char        *user_agent;
    size_t             max_answer;         /* answer bytes kept; the rest is read and dropped */
    const relais_http_policy *policy;      /* NULL: the default policy (relais_http_policy_apply) */
} relais_http_request;

typedef struct relais_http_answer {
    long        status;      /* HTTP status; 0 when no answer came */
    char       *body;        /* NUL-terminated; NULL when empty (free()) */
    size_t      len;
    int         truncated;   /* more than max_answer bytes came */
    const char *failure;     /* NULL when an answer came; else curl_easy_strerror()'s
                                text, or "out of memory" (static strings) */
    char        detail[256]; /* curl's error buffer for that failure (may be ""), or why
                                the outgoing policy refused the destination */
    int         code;        /* the CURLcode (0: an answer came) */
    int         refused;     /* 1: the outgoing allow-list refused the destination */
} relais_http_answer;

/* One exchange under rq->policy (relais_http_policy_apply; rq's timeouts).
 * 0 when an HTTP answer came (any status), -1 otherwise (a->failure,
 * a->detail, a->code, a->refused; a->body may hold what came before).
 * *a is always filled; free a->body. */
int relais_http_perform(relais_http_pool *p, const relais_http_request *rq, relais_http_answer *a);

#endif
