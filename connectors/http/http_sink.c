/*
 * http_sink.c - the sink of the http connector (libcurl easy interface).
 *
 * deliver() POSTs the event as a structured CloudEvent
 * (application/cloudevents+json) with Idempotency-Key = event id, ce-id,
 * ce-type, traceparent, X-Relais-Local-Id when the hub knows the
 * destination's id for the subject, Authorization: Bearer and
 * X-Relais-Signature when configured, plus the configured extra headers.
 * Verdicts: 2xx OK; 408, 425, 429, 5xx and transport errors (refused, reset,
 * timeout, DNS, TLS) RETRY; 3xx (redirects are not followed) and other 4xx
 * REJECT.
 *
 * Threads: deliver() runs on the hub's delivery workers, up to max_in_flight
 * at once. Each call borrows a CURL easy handle from the pool (free list under
 * `lock`), uses it alone, resets it and puts it back; a reset handle keeps its
 * live connections, so keep-alive connections are reused across deliveries.
 * Everything else in relais_http_sink is written by init/destroy (main
 * thread) and only read by deliver().
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include "http_int.h"

#define POOL_MAX 64
#define BODY_CAP (64 * 1024)
#define DETAIL_BODY 200

struct relais_http_sink {
    relais_instance *inst;
    char            *url;
    long             timeout_ms;
    long             connect_timeout_ms;
    char           **headers;      /* "Name: value", validated */
    size_t           nheaders;
    char            *auth_header;  /* "Authorization: Bearer ..." or NULL */
    char            *hmac_secret;
    char            *id_pointer;
    int              curl_inited;
    pthread_mutex_t  lock;         /* guards pool/npool */
    CURL            *pool[POOL_MAX];
    size_t           npool;
};

struct body {
    char  *buf;
    size_t len;
    int    truncated;
};

static int header_value_ok(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x20 || *p == 0x7F) return 0;
    return 1;
}

static int header_line_ok(const char *h)
{
    const char *colon = strchr(h, ':');
    if (!colon || colon == h) return 0;
    for (const char *p = h; p < colon; p++)
        if (!(*p == '-' || *p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9')))
            return 0;
    return header_value_ok(colon + 1);
}

relais_http_sink *relais_http_sink_new(relais_instance *inst, const relais_http_config *cfg,
                                       char *errstr, size_t errlen)
{
    if (!cfg->url || !*cfg->url) {
        snprintf(errstr, errlen, "http: option 'url' is required for a sink");
        return NULL;
    }
    if (cfg->timeout <= 0 || cfg->connect_timeout <= 0) {
        snprintf(errstr, errlen, "http: timeout and connect_timeout must be positive");
        return NULL;
    }
    if (cfg->id_pointer && relais_json_pointer_valid(cfg->id_pointer) != 0) {
        snprintf(errstr, errlen, "http: id_pointer '%s' is not a JSON pointer (\"\" or /a/b)",
                 cfg->id_pointer);
        return NULL;
    }
    if (cfg->auth_token && (!*cfg->auth_token || !header_value_ok(cfg->auth_token))) {
        snprintf(errstr, errlen, "http: auth_token is empty or contains control characters");
        return NULL;
    }
    if (cfg->hmac_secret && !*cfg->hmac_secret) {
        snprintf(errstr, errlen, "http: hmac_secret is empty");
        return NULL;
    }
    size_t nh = 0;
    for (char **h = cfg->headers; h && *h; h++, nh++) {
        if (!header_line_ok(*h)) {
            snprintf(errstr, errlen, "http: headers[%zu] '%.80s' must be \"Name: value\" "
                     "(token name, no control characters)", nh, *h);
            return NULL;
        }
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(errstr, errlen, "http: curl_global_init failed");
        return NULL;
    }
    /* the URL: parsed by libcurl, http or https only */
    CURLU *u = curl_url();
    char *scheme = NULL;
    CURLUcode uc = u ? curl_url_set(u, CURLUPART_URL, cfg->url, 0) : CURLUE_OUT_OF_MEMORY;
    if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    int scheme_ok = uc == CURLUE_OK && scheme
                    && (strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0);
    curl_free(scheme);
    curl_url_cleanup(u);
    if (!scheme_ok) {
        snprintf(errstr, errlen, "http: url '%.200s' is not a valid http:// or https:// URL%s%s",
                 cfg->url, uc != CURLUE_OK ? ": " : "", uc != CURLUE_OK ? curl_url_strerror(uc) : "");
        curl_global_cleanup();
        return NULL;
    }

    relais_http_sink *s = calloc(1, sizeof *s);
    if (!s) {
        curl_global_cleanup();
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    s->curl_inited = 1;
    s->inst = inst;
    pthread_mutex_init(&s->lock, NULL);
    s->url = strdup(cfg->url);
    s->timeout_ms = cfg->timeout;
    s->connect_timeout_ms = cfg->connect_timeout;
    s->nheaders = nh;
    s->headers = calloc(nh + 1, sizeof *s->headers);
    int oom = !s->url || !s->headers;
    for (size_t i = 0; !oom && i < nh; i++) {
        s->headers[i] = strdup(cfg->headers[i]);
        oom = !s->headers[i];
    }
    if (!oom && cfg->auth_token) {
        size_t n = strlen(cfg->auth_token) + 32;
        s->auth_header = malloc(n);
        oom = !s->auth_header;
        if (!oom) snprintf(s->auth_header, n, "Authorization: Bearer %s", cfg->auth_token);
    }
    if (!oom && cfg->hmac_secret) {
        s->hmac_secret = strdup(cfg->hmac_secret);
        oom = !s->hmac_secret;
    }
    if (!oom && cfg->id_pointer) {
        s->id_pointer = strdup(cfg->id_pointer);
        oom = !s->id_pointer;
    }
    if (oom) {
        relais_http_sink_destroy(s);
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    return s;
}

static CURL *pool_get(relais_http_sink *s)
{
    CURL *h = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->npool > 0) h = s->pool[--s->npool];
    pthread_mutex_unlock(&s->lock);
    return h ? h : curl_easy_init();
}

static void pool_put(relais_http_sink *s, CURL *h)
{
    curl_easy_reset(h);   /* keeps the handle's live connections */
    pthread_mutex_lock(&s->lock);
    if (s->npool < POOL_MAX) {
        s->pool[s->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    if (h) curl_easy_cleanup(h);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct body *b = userdata;
    size_t n = size * nmemb;
    size_t room = BODY_CAP - b->len;
    size_t take = n < room ? n : room;
    if (take < n) b->truncated = 1;
    if (take > 0) {
        char *nb = realloc(b->buf, b->len + take + 1);
        if (!nb) return 0;   /* aborts the transfer: CURLE_WRITE_ERROR -> RETRY */
        b->buf = nb;
        memcpy(b->buf + b->len, ptr, take);
        b->len += take;
        b->buf[b->len] = '\0';
    }
    return n;
}

static struct curl_slist *add_header(struct curl_slist *l, int *oom, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static struct curl_slist *add_header(struct curl_slist *l, int *oom, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    struct curl_slist *n = curl_slist_append(l, line);
    if (!n) *oom = 1;
    return n ? n : l;
}

static relais_verdict verdict_for_status(long code)
{
    if (code >= 200 && code < 300) return RELAIS_DELIVER_OK;
    if (code == 408 || code == 425 || code == 429 || code >= 500) return RELAIS_DELIVER_RETRY;
    if (code >= 300 && code < 500) return RELAIS_DELIVER_REJECT;
    return RELAIS_DELIVER_RETRY;   /* 1xx final status: not a sane answer, try again */
}

/* The local id at id_pointer in a JSON body: 0 found (in ans->local_id). */
static int extract_local_id(const relais_http_sink *s, const struct body *b, relais_answer *ans)
{
    if (!s->id_pointer || !b->buf || b->truncated) return -1;
    json_t *root = json_loadb(b->buf, b->len, 0, NULL);
    if (!root) return -1;
    int rc = relais_http_value_text(relais_json_pointer(root, s->id_pointer), ans->local_id,
                                    sizeof ans->local_id);
    json_decref(root);
    if (rc == 0 && !header_value_ok(ans->local_id)) rc = -1;
    if (rc != 0) ans->local_id[0] = '\0';
    return rc;
}

relais_verdict relais_http_sink_deliver(relais_http_sink *s, const relais_event *ev,
                                        const char *local_id, relais_answer *ans)
{
    ans->status = 0;
    ans->detail[0] = '\0';
    ans->local_id[0] = '\0';

    size_t len = 0;
    const char *json = relais_event_json(ev, &len);
    if (!json) {
        snprintf(ans->detail, sizeof ans->detail, "cannot serialise the event");
        return RELAIS_DELIVER_RETRY;
    }
    const char *id = relais_event_id(ev);
    const char *type = relais_event_type(ev);
    const char *tp = relais_event_traceparent(ev);

    int oom = 0;
    struct curl_slist *hl = NULL;
    hl = add_header(hl, &oom, "Content-Type: application/cloudevents+json");
    hl = add_header(hl, &oom, "Expect:");
    hl = add_header(hl, &oom, "Idempotency-Key: %s", id);
    hl = add_header(hl, &oom, "ce-id: %s", id);
    hl = add_header(hl, &oom, "ce-type: %s", type);
    if (tp && *tp && header_value_ok(tp)) hl = add_header(hl, &oom, "traceparent: %s", tp);
    if (local_id && *local_id) {
        if (header_value_ok(local_id)) hl = add_header(hl, &oom, "X-Relais-Local-Id: %s", local_id);
        else relais_instance_log(s->inst, RELAIS_LOG_WARN,
                                 "event %s: local id has control characters, not sent", id);
    }
    if (s->auth_header) {
        struct curl_slist *n = curl_slist_append(hl, s->auth_header);
        if (n) hl = n;
        else oom = 1;
    }
    if (s->hmac_secret) {
        char sig[128];
        if (relais_http_signature_header(s->hmac_secret, (long long)time(NULL), json, len,
                                         sig, sizeof sig) != 0) {
            curl_slist_free_all(hl);
            snprintf(ans->detail, sizeof ans->detail, "cannot compute the body signature");
            return RELAIS_DELIVER_RETRY;
        }
        hl = add_header(hl, &oom, RELAIS_HTTP_SIG_HEADER ": %s", sig);
    }
    for (size_t i = 0; i < s->nheaders; i++) {
        struct curl_slist *n = curl_slist_append(hl, s->headers[i]);
        if (n) hl = n;
        else oom = 1;
    }
    CURL *h = oom ? NULL : pool_get(s);
    if (!h) {
        curl_slist_free_all(hl);
        snprintf(ans->detail, sizeof ans->detail, "out of memory");
        return RELAIS_DELIVER_RETRY;
    }

    struct body b = { 0 };
    char errbuf[CURL_ERROR_SIZE];
    errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, s->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "relais/" RELAIS_VERSION_STRING);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);

    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    pool_put(s, h);
    curl_slist_free_all(hl);

    relais_verdict v;
    if (rc != CURLE_OK) {
        ans->status = 0;
        char msg[CURL_ERROR_SIZE + 64];
        snprintf(msg, sizeof msg, "%s: %s", curl_easy_strerror(rc),
                 errbuf[0] ? errbuf : "no detail");
        relais_http_excerpt(ans->detail, sizeof ans->detail, msg, strlen(msg),
                            sizeof ans->detail - 1, 1);
        /* transport trouble is transient; bad URLs were refused at init */
        v = (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL)
            ? RELAIS_DELIVER_REJECT : RELAIS_DELIVER_RETRY;
    } else {
        ans->status = (int)code;
        v = verdict_for_status(code);
        const char *why = v == RELAIS_DELIVER_OK ? "ok"
                        : (code >= 300 && code < 400) ? "redirect not followed"
                        : v == RELAIS_DELIVER_RETRY ? "transient, will retry" : "refused";
        snprintf(ans->detail, sizeof ans->detail, "HTTP %ld %s%s", code, why, b.len ? ": " : "");
        size_t used = strlen(ans->detail);
        relais_http_excerpt(ans->detail + used, sizeof ans->detail - used, b.buf ? b.buf : "",
                            b.len, DETAIL_BODY, 1);
        if (v == RELAIS_DELIVER_OK && s->id_pointer && extract_local_id(s, &b, ans) != 0) {
            size_t at = strlen(ans->detail);
            snprintf(ans->detail + at, sizeof ans->detail - at, " (no id at %s)",
                     s->id_pointer);
        }
    }
    free(b.buf);
    if (relais_log_get_level() >= RELAIS_LOG_DEBUG)
        relais_instance_log(s->inst, RELAIS_LOG_DEBUG, "event %s -> %d (%s)", id, ans->status,
                            v == RELAIS_DELIVER_OK ? "ok" : v == RELAIS_DELIVER_RETRY ? "retry" : "reject");
    return v;
}

void relais_http_sink_destroy(relais_http_sink *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->npool; i++) curl_easy_cleanup(s->pool[i]);
    pthread_mutex_destroy(&s->lock);
    free(s->url);
    for (size_t i = 0; s->headers && i < s->nheaders; i++) free(s->headers[i]);
    free(s->headers);
    if (s->auth_header) OPENSSL_cleanse(s->auth_header, strlen(s->auth_header));
    free(s->auth_header);
    if (s->hmac_secret) OPENSSL_cleanse(s->hmac_secret, strlen(s->hmac_secret));
    free(s->hmac_secret);
    free(s->id_pointer);
    if (s->curl_inited) curl_global_cleanup();
    free(s);
}
