/*
 * worksite_client.c - the HTTP client of the worksite connector (libcurl easy
 * interface): base URL + path, Authorization: Bearer, JSON bodies,
 * Idempotency-Key, timeouts, only http/https, no redirects followed, answers
 * capped at WS_MAX_ANSWER bytes.
 *
 * The exchange itself is relais_http_perform (hub/httputil.h).
 *
 * Threads: ws_client_call() may run on several threads at once (the sink's
 * delivery workers, the source's poller). Each call borrows an easy handle
 * from the client's relais_http_pool, so keep-alive connections are reused.
 * The rest of ws_client is written by ws_client_new/destroy only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include "worksite_int.h"
#include "httputil.h"

struct ws_client {
    char             *base;          /* without a trailing '/' */
    char             *auth_header;   /* "Authorization: Bearer ..." */
    long              timeout_ms;
    long              connect_timeout_ms;
    relais_http_pool *pool;
    char             *tls_ca_file;   /* the policy points at it */
    relais_http_policy policy;       /* the instance's outgoing policy */
};

static int printable(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x21 || *p == 0x7F) return 0;
    return 1;
}

ws_client *ws_client_new(const relais_instance *inst, const relais_worksite_config *cfg, char *errstr, size_t errlen)
{
    const char *base_url = cfg->url, *token = cfg->token;
    long timeout_ms = cfg->timeout, connect_timeout_ms = cfg->connect_timeout;
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
    if (!relais_http_base_url_ok(base_url)) {
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
    c->timeout_ms = timeout_ms;
    c->connect_timeout_ms = connect_timeout_ms;
    c->base = strdup(base_url);
    size_t n = strlen(token) + 32;
    c->auth_header = malloc(n);
    c->pool = relais_http_pool_new();
    c->tls_ca_file = cfg->tls_ca_file ? strdup(cfg->tls_ca_file) : NULL;
    if (!c->base || !c->auth_header || !c->pool || (cfg->tls_ca_file && !c->tls_ca_file)) {
        ws_client_destroy(c);
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    snprintf(c->auth_header, n, "Authorization: Bearer %s", token);
    if (relais_http_policy_init(&c->policy, inst, NULL, c->tls_ca_file, cfg->tls_verify, errstr, errlen) != 0) {
        ws_client_destroy(c);
        return NULL;
    }
    size_t bl = strlen(c->base);
    while (bl > 0 && c->base[bl - 1] == '/') c->base[--bl] = '\0';
    return c;
}

void ws_client_destroy(ws_client *c)
{
    if (!c) return;
    relais_http_pool_destroy(c->pool);
    free(c->base);
    if (c->auth_header) OPENSSL_cleanse(c->auth_header, strlen(c->auth_header));
    free(c->auth_header);
    free(c->tls_ca_file);
    free(c);
    curl_global_cleanup();
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
    if (!url) {
        r->transport = 1;
        snprintf(r->error, sizeof r->error, "out of memory");
        return -1;
    }
    snprintf(url, ul, "%s%s", c->base, path_query);
    char line[512];
    const char *lines[6] = { c->auth_header, "Accept: application/json", NULL, NULL, NULL, NULL };
    size_t nl = 2;
    if (body) lines[nl++] = "Content-Type: application/json";
    if (idempotency_key) {
        snprintf(line, sizeof line, "Idempotency-Key: %s", idempotency_key);
        lines[nl++] = line;
    }
    lines[nl++] = "Expect:";
    relais_http_request rq = {
        .method = method, .url = url, .headers = lines, .body = body, .len = len,
        .timeout_ms = c->timeout_ms, .connect_timeout_ms = c->connect_timeout_ms,
        .user_agent = "relais/" RELAIS_VERSION_STRING, .max_answer = WS_MAX_ANSWER, .policy = &c->policy
    };
    relais_http_answer a;
    int rc = relais_http_perform(c->pool, &rq, &a);
    free(url);
    r->status = a.status;
    r->body = a.body;
    r->len = a.len;
    r->truncated = a.truncated;
    if (rc != 0) {
        r->transport = 1;
        /* curl's failure text, then its detail, cut to fit */
        snprintf(r->error, sizeof r->error, "%.60s%s%.190s", a.failure, a.detail[0] ? ": " : "", a.detail);
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
