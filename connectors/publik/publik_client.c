/*
 * publik_client.c - signed HTTP calls from Relais to w.c.s. (libcurl easy
 * interface): the query gets orig=<API access> and is signed at call time
 * (sha256, UTC timestamp, random nonce; SPEC section 3), with
 * Accept: application/json, and Content-Type: application/json when a body
 * is sent. Redirects are not followed; only http and https.
 *
 * The exchange itself is relais_http_perform (hub/httputil.h).
 *
 * Threads: the source's polling (hub main thread) and the sink's deliveries
 * (delivery workers, up to max_in_flight at once) call relais_publik_call().
 * Each call borrows a curl handle from the client's relais_http_pool, so
 * keep-alive connections are reused. The rest of relais_publik_client is
 * written by new/destroy only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include "publik_int.h"
#include "httputil.h"

#define REPLY_CAP (64u * 1024 * 1024)

struct relais_publik_client {
    char             *base;        /* without a trailing '/' */
    char             *orig_enc;    /* "orig=<encoded>" */
    char             *key;
    long              timeout_ms;
    relais_http_pool *pool;
    char             *tls_ca_file;  /* the policy points at it */
    relais_http_policy policy;     /* the instance's outgoing policy */
};

relais_publik_client *relais_publik_client_new(const relais_instance *inst, const relais_publik_config *cfg,
                                               char *errstr, size_t errlen)
{
    const char *base_url = cfg->url, *orig = cfg->orig, *key = cfg->key;
    long timeout_ms = cfg->timeout;
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
    if (!relais_http_base_url_ok(base_url)) {
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
        c->pool = relais_http_pool_new();
        c->tls_ca_file = cfg->tls_ca_file ? strdup(cfg->tls_ca_file) : NULL;
    }
    free(oe);
    if (!c || !c->base || !c->key || !c->orig_enc || !c->pool || (cfg->tls_ca_file && !c->tls_ca_file)) {
        if (c) relais_publik_client_destroy(c);   /* and curl_global_cleanup */
        else curl_global_cleanup();
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    size_t bl = strlen(c->base);
    while (bl > 0 && c->base[bl - 1] == '/') c->base[--bl] = '\0';
    c->timeout_ms = timeout_ms;
    if (relais_http_policy_init(&c->policy, inst, NULL, c->tls_ca_file, cfg->tls_verify, errstr, errlen) != 0) {
        relais_publik_client_destroy(c);
        return NULL;
    }
    return c;
}

void relais_publik_client_destroy(relais_publik_client *c)
{
    if (!c) return;
    relais_http_pool_destroy(c->pool);
    free(c->base);
    if (c->key) OPENSSL_cleanse(c->key, strlen(c->key));
    free(c->key);
    free(c->orig_enc);
    free(c->tls_ca_file);
    free(c);
    curl_global_cleanup();
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

    char idem_line[300];
    const char *hdrs[4] = { "Accept: application/json", NULL, NULL, NULL };
    size_t nh = 1;
    if (body) hdrs[nh++] = "Content-Type: application/json";
    if (idem) {
        snprintf(idem_line, sizeof idem_line, "Idempotency-Key: %s", idem);
        hdrs[nh++] = idem_line;
    }
    relais_http_request rq = {
        .method = method, .url = url, .headers = hdrs, .body = body, .len = body ? strlen(body) : 0,
        .timeout_ms = c->timeout_ms, .connect_timeout_ms = c->timeout_ms < 3000 ? c->timeout_ms : 3000,
        .user_agent = "relais/" RELAIS_VERSION_STRING " (publik)", .max_answer = REPLY_CAP,
        .policy = &c->policy
    };
    relais_http_answer a;
    int rc = relais_http_perform(c->pool, &rq, &a);
    free(url);
    out->status = a.status;
    out->body = a.body;
    out->len = a.len;
    out->truncated = a.truncated;
    if (rc != 0) {
        snprintf(out->error, sizeof out->error, "%s", a.detail[0] ? a.detail : a.failure);
        relais_publik_reply_free(out);
        return -1;
    }
    return 0;
}
