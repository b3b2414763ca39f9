/*
 * httputil.h - HTTP helpers shared by the connectors and their simulators:
 *
 *   - relais_http_split_listen: "host:port" / "[v6]:port" listen addresses;
 *   - relais_http_upload_*: a request body gathered from libmicrohttpd's
 *     upload callbacks, with a hard cap;
 *   - relais_http_excerpt: a bounded, valid UTF-8 excerpt of a vendor's text
 *     (answer details, log lines);
 *   - relais_http_base_url_ok, relais_http_pool, relais_http_perform: one
 *     libcurl request to a vendor's API (pooled easy handles, only http and
 *     https, no redirects, the answer body kept up to a cap, curl's error
 *     texts kept for the caller's message).
 *
 * Threads: the functions keep no global state. A relais_http_upload belongs
 * to the connection thread that reads the request. A relais_http_pool may be
 * used by several threads at once (its free list is under a lock); each
 * relais_http_perform call uses its borrowed handle alone.
 */
#ifndef RELAIS_HTTPUTIL_H
#define RELAIS_HTTPUTIL_H
#include <stddef.h>

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
} relais_http_request;

typedef struct relais_http_answer {
    long        status;      /* HTTP status; 0 when no answer came */
    char       *body;        /* NUL-terminated; NULL when empty (free()) */
    size_t      len;
    int         truncated;   /* more than max_answer bytes came */
    const char *failure;     /* NULL when an answer came; else curl_easy_strerror()'s
                                text, or "out of memory" (static strings) */
    char        detail[256]; /* curl's error buffer for that failure (may be "") */
} relais_http_answer;

/* One exchange: only http and https, redirects not followed, TCP keep-alive,
 * no signals. 0 when an HTTP answer came (any status), -1 otherwise
 * (a->failure, a->detail; a->body may hold what came before the failure).
 * *a is always filled; free a->body. */
int relais_http_perform(relais_http_pool *p, const relais_http_request *rq, relais_http_answer *a);

#endif
