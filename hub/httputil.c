/*
 * httputil.c - HTTP helpers shared by the connectors and their simulators
 * (see httputil.h): UTF-8-safe excerpts, the listen-address split, the
 * capped request-body buffer (libmicrohttpd side), and one pooled libcurl
 * request with a capped answer (client side).
 *
 * Threads: no global state. A relais_http_pool's free list is guarded by its
 * lock; a borrowed curl handle is used by the calling thread alone until it
 * is put back. Everything else works on its arguments only.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include "httputil.h"

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
    curl_easy_setopt(h, CURLOPT_URL, rq->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, rq->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, rq->connect_timeout_ms);
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
        a->failure = curl_easy_strerror(rc);
        return -1;
    }
    a->detail[0] = '\0';
    return 0;
}
