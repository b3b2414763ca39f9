/*
 * publik_client.c - signed HTTP calls from Relais to w.c.s. (libcurl easy
 * interface): the query gets orig=<API access> and is signed at call time
 * (sha256, UTC timestamp, random nonce; SPEC section 3), with
 * Accept: application/json, and Content-Type: application/json when a body
 * is sent. Redirects are not followed; only http and https.
 *
 * Threads: the source's polling (hub main thread) and the sink's deliveries
 * (delivery workers, up to max_in_flight at once) call relais_publik_call().
 * Each call borrows a curl handle from the pool (free list under `lock`),
 * uses it alone, resets it and puts it back, so keep-alive connections are
 * reused. The rest of relais_publik_client is written by new/destroy only.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include "publik_int.h"

#define POOL_MAX 32
#define REPLY_CAP (64u * 1024 * 1024)

struct relais_publik_client {
    char           *base;        /* without a trailing '/' */
    char           *orig_enc;    /* "orig=<encoded>" */
    char           *key;
    long            timeout_ms;
    pthread_mutex_t lock;        /* guards pool/npool */
    CURL           *pool[POOL_MAX];
    size_t          npool;
};

relais_publik_client *relais_publik_client_new(const char *base_url, const char *orig, const char *key,
                                               long timeout_ms, char *errstr, size_t errlen)
{
    if (!base_url || !*base_url || !orig || !*orig || !key || !*key) {
        snprintf(errstr, errlen, "publik: url, orig and key are needed to call w.c.s.");
        return NULL;
    }
    if (timeout_ms <= 0) {
        snprintf(errstr, errlen, "publik: timeout must be positive");
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(errstr, errlen, "publik: curl_global_init failed");
        return NULL;
    }
    CURLU *u = curl_url();
    char *scheme = NULL, *query = NULL;
    CURLUcode uc = u ? curl_url_set(u, CURLUPART_URL, base_url, 0) : CURLUE_OUT_OF_MEMORY;
    if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    int ok = uc == CURLUE_OK && scheme && (!strcasecmp(scheme, "http") || !strcasecmp(scheme, "https"));
    if (ok && curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK && query) ok = 0;
    curl_free(scheme);
    curl_free(query);
    curl_url_cleanup(u);
    if (!ok) {
        snprintf(errstr, errlen, "publik: url '%.200s' is not an http:// or https:// site root (no query)",
                 base_url);
        curl_global_cleanup();
        return NULL;
    }
    relais_publik_client *c = calloc(1, sizeof *c);
    char *oe = relais_publik_pct_encode(orig, "", 1);
    if (c) {
        c->base = strdup(base_url);
        c->key = strdup(key);
        size_t n = oe ? strlen(oe) + 8 : 0;
        c->orig_enc = n ? malloc(n) : NULL;
        if (c->orig_enc) snprintf(c->orig_enc, n, "orig=%s", oe);
    }
    free(oe);
    if (!c || !c->base || !c->key || !c->orig_enc) {
        if (c) {
            free(c->base);
            free(c->key);
            free(c->orig_enc);
            free(c);
        }
        curl_global_cleanup();
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    size_t bl = strlen(c->base);
    while (bl > 0 && c->base[bl - 1] == '/') c->base[--bl] = '\0';
    c->timeout_ms = timeout_ms;
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void relais_publik_client_destroy(relais_publik_client *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->npool; i++) curl_easy_cleanup(c->pool[i]);
    pthread_mutex_destroy(&c->lock);
    free(c->base);
    if (c->key) OPENSSL_cleanse(c->key, strlen(c->key));
    free(c->key);
    free(c->orig_enc);
    free(c);
    curl_global_cleanup();
}

static CURL *pool_get(relais_publik_client *c)
{
    CURL *h = NULL;
    pthread_mutex_lock(&c->lock);
    if (c->npool > 0) h = c->pool[--c->npool];
    pthread_mutex_unlock(&c->lock);
    return h ? h : curl_easy_init();
}

static void pool_put(relais_publik_client *c, CURL *h)
{
    curl_easy_reset(h);
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
    relais_publik_reply *r = userdata;
    size_t n = size * nmemb;
    size_t room = REPLY_CAP - r->len;
    size_t take = n < room ? n : room;
    if (take < n) r->truncated = 1;
    if (take > 0) {
        char *nb = realloc(r->body, r->len + take + 1);
        if (!nb) return 0;
        r->body = nb;
        memcpy(r->body + r->len, ptr, take);
        r->len += take;
        r->body[r->len] = '\0';
    }
    return n;
}

void relais_publik_reply_free(relais_publik_reply *r)
{
    if (!r) return;
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

int relais_publik_call(relais_publik_client *c, const char *method, const char *path,
                       const char *params, const char *body, const char *idem,
                       relais_publik_reply *out)
{
    memset(out, 0, sizeof *out);
    size_t ql = (params ? strlen(params) : 0) + strlen(c->orig_enc) + 2;
    char *query = malloc(ql);
    if (!query) {
        snprintf(out->error, sizeof out->error, "out of memory");
        return -1;
    }
    snprintf(query, ql, "%s%s%s", params && *params ? params : "", params && *params ? "&" : "",
             c->orig_enc);
    char *signed_q = relais_publik_sign_query(query, c->key, "sha256", time(NULL), NULL);
    free(query);
    size_t ul = signed_q ? strlen(c->base) + strlen(path) + strlen(signed_q) + 2 : 0;
    char *url = ul ? malloc(ul) : NULL;
    if (!url) {
        free(signed_q);
        snprintf(out->error, sizeof out->error, "cannot sign the query (out of memory)");
        return -1;
    }
    snprintf(url, ul, "%s%s?%s", c->base, path, signed_q);
    free(signed_q);

    struct curl_slist *hl = NULL, *n;
    int oom = 0;
    char line[300];
    const char *hdrs[3] = { "Accept: application/json", body ? "Content-Type: application/json" : NULL, NULL };
    for (int i = 0; i < 2; i++) {
        if (!hdrs[i]) continue;
        n = curl_slist_append(hl, hdrs[i]);
        if (n) hl = n;
        else oom = 1;
    }
    if (idem) {
        snprintf(line, sizeof line, "Idempotency-Key: %s", idem);
        n = curl_slist_append(hl, line);
        if (n) hl = n;
        else oom = 1;
    }
    CURL *h = oom ? NULL : pool_get(c);
    if (!h) {
        curl_slist_free_all(hl);
        free(url);
        snprintf(out->error, sizeof out->error, "out of memory");
        return -1;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    long connect_ms = c->timeout_ms < 3000 ? c->timeout_ms : 3000;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "relais/" RELAIS_VERSION_STRING " (publik)");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? strlen(body) : 0));
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    pool_put(c, h);
    curl_slist_free_all(hl);
    free(url);
    if (rc != CURLE_OK) {
        out->status = 0;
        snprintf(out->error, sizeof out->error, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
        relais_publik_reply_free(out);
        return -1;
    }
    return 0;
}
