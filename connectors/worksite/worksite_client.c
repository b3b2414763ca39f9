/*
 * worksite_client.c - the HTTP client of the worksite connector (libcurl easy
 * interface): base URL + path, Authorization: Bearer, JSON bodies,
 * Idempotency-Key, timeouts, only http/https, no redirects followed, answers
 * capped at WS_MAX_ANSWER bytes.
 *
 * Threads: ws_client_call() may run on several threads at once (the sink's
 * delivery workers, the source's poller). Each call borrows an easy handle
 * from the pool (free list under `lock`), uses it alone, resets it and puts
 * it back, so keep-alive connections are reused. The rest of ws_client is
 * written by ws_client_new/destroy only.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include "worksite_int.h"

#define POOL_MAX 32

struct ws_client {
    char           *base;          /* without a trailing '/' */
    char           *auth_header;   /* "Authorization: Bearer ..." */
    long            timeout_ms;
    long            connect_timeout_ms;
    pthread_mutex_t lock;          /* guards pool/npool */
    CURL           *pool[POOL_MAX];
    size_t          npool;
};

static int printable(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x21 || *p == 0x7F) return 0;
    return 1;
}

ws_client *ws_client_new(const char *base_url, const char *token, long timeout_ms,
                         long connect_timeout_ms, char *errstr, size_t errlen)
{
    if (!base_url || !*base_url) {
        snprintf(errstr, errlen, "option 'url' is required");
        return NULL;
    }
    if (!token || !*token || !printable(token)) {
        snprintf(errstr, errlen, "option 'token' is empty or holds spaces or control characters");
        return NULL;
    }
    if (timeout_ms <= 0 || connect_timeout_ms <= 0) {
        snprintf(errstr, errlen, "timeout and connect_timeout must be positive");
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(errstr, errlen, "curl_global_init failed");
        return NULL;
    }
    CURLU *u = curl_url();
    char *scheme = NULL, *query = NULL;
    CURLUcode uc = u ? curl_url_set(u, CURLUPART_URL, base_url, 0) : CURLUE_OUT_OF_MEMORY;
    if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    int has_query = uc == CURLUE_OK && curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK;
    int ok = uc == CURLUE_OK && scheme && !has_query
             && (strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0);
    curl_free(scheme);
    curl_free(query);
    curl_url_cleanup(u);
    if (!ok) {
        snprintf(errstr, errlen, "url '%.200s' is not an http:// or https:// base URL without a query",
                 base_url);
        curl_global_cleanup();
        return NULL;
    }
    ws_client *c = calloc(1, sizeof *c);
    if (!c) {
        curl_global_cleanup();
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    c->timeout_ms = timeout_ms;
    c->connect_timeout_ms = connect_timeout_ms;
    c->base = strdup(base_url);
    size_t n = strlen(token) + 32;
    c->auth_header = malloc(n);
    if (!c->base || !c->auth_header) {
        ws_client_destroy(c);
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    snprintf(c->auth_header, n, "Authorization: Bearer %s", token);
    size_t bl = strlen(c->base);
    while (bl > 0 && c->base[bl - 1] == '/') c->base[--bl] = '\0';
    return c;
}

void ws_client_destroy(ws_client *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->npool; i++) curl_easy_cleanup(c->pool[i]);
    pthread_mutex_destroy(&c->lock);
    free(c->base);
    if (c->auth_header) OPENSSL_cleanse(c->auth_header, strlen(c->auth_header));
    free(c->auth_header);
    free(c);
    curl_global_cleanup();
}

static CURL *pool_get(ws_client *c)
{
    CURL *h = NULL;
    pthread_mutex_lock(&c->lock);
    if (c->npool > 0) h = c->pool[--c->npool];
    pthread_mutex_unlock(&c->lock);
    return h ? h : curl_easy_init();
}

static void pool_put(ws_client *c, CURL *h)
{
    curl_easy_reset(h);   /* keeps the handle's live connections */
    pthread_mutex_lock(&c->lock);
    if (c->npool < POOL_MAX) {
        c->pool[c->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    if (h) curl_easy_cleanup(h);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    ws_response *r = userdata;
    size_t n = size * nmemb;
    size_t room = WS_MAX_ANSWER - r->len;
    size_t take = n < room ? n : room;
    if (take < n) r->truncated = 1;
    if (take > 0) {
        char *nb = realloc(r->body, r->len + take + 1);
        if (!nb) return 0;   /* aborts the transfer: a transport error */
        r->body = nb;
        memcpy(r->body + r->len, ptr, take);
        r->len += take;
        r->body[r->len] = '\0';
    }
    return n;
}

char *ws_client_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *out = e ? strdup(e) : NULL;
    curl_free(e);
    return out;
}

int ws_client_call(ws_client *c, const char *method, const char *path_query, const char *body,
                   size_t len, const char *idempotency_key, ws_response *r)
{
    memset(r, 0, sizeof *r);
    if (idempotency_key && (!printable(idempotency_key) || strlen(idempotency_key) > 255)) {
        r->transport = 1;
        snprintf(r->error, sizeof r->error, "Idempotency-Key is longer than 255 bytes or holds "
                 "spaces or control characters");
        return -1;
    }
    size_t ul = strlen(c->base) + strlen(path_query) + 1;
    char *url = malloc(ul);
    CURL *h = url ? pool_get(c) : NULL;
    struct curl_slist *hl = NULL, *n;
    int oom = !url || !h;
    char line[512];
    const char *lines[4] = { c->auth_header, "Accept: application/json", NULL, NULL };
    if (body) lines[2] = "Content-Type: application/json";
    for (size_t i = 0; !oom && i < 3; i++) {
        if (!lines[i]) continue;
        n = curl_slist_append(hl, lines[i]);
        if (n) hl = n;
        else oom = 1;
    }
    if (!oom && idempotency_key) {
        snprintf(line, sizeof line, "Idempotency-Key: %s", idempotency_key);
        n = curl_slist_append(hl, line);
        if (n) hl = n;
        else oom = 1;
    }
    if (!oom) {
        n = curl_slist_append(hl, "Expect:");
        if (n) hl = n;
        else oom = 1;
    }
    if (oom) {
        curl_slist_free_all(hl);
        if (h) pool_put(c, h);
        free(url);
        r->transport = 1;
        snprintf(r->error, sizeof r->error, "out of memory");
        return -1;
    }
    snprintf(url, ul, "%s%s", c->base, path_query);
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "relais/" RELAIS_VERSION_STRING);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    pool_put(c, h);
    curl_slist_free_all(hl);
    free(url);
    if (rc != CURLE_OK) {
        r->transport = 1;
        r->status = 0;
        snprintf(r->error, sizeof r->error, "%s%s%s", curl_easy_strerror(rc), errbuf[0] ? ": " : "",
                 errbuf);
        return -1;
    }
    return 0;
}

void ws_response_free(ws_response *r)
{
    if (!r) return;
    free(r->body);
    r->body = NULL;
    r->len = 0;
}
