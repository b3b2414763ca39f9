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
 * deliver_batch() POSTs n events in one request as a JSON array
 * (application/cloudevents-batch+json) with Relais-Batch-Size and, when the
 * line stays under 8 KiB, Relais-Batch-Ids (no Idempotency-Key: the
 * destination deduplicates on each element's id); a known local id travels
 * in the element as the extension attribute relaislocalid. The HTTP status
 * gives every event its verdict, unless a 2xx answer is an array (or
 * {"results":[...]}) of exactly n elements: then element i gives event i its
 * local id (id_pointer applied to the element) and, when it has an integer
 * "status", its own verdict. See README.md.
 *
 * Every exchange is relais_http_perform (hub/httputil.h) under the
 * instance's outgoing policy: http and https only, redirects not followed,
 * TLS verified (tls_ca_file, tls_verify), TLS 1.2 minimum with ANSSI's
 * cipher suites, timeouts, and the hub's outgoing.allow checked on the
 * address actually connected to; a destination the allow-list refuses is a
 * REJECT (nothing was sent) with the reason in the detail.
 *
 * Threads: deliver() and deliver_batch() run on the hub's delivery workers,
 * up to max_in_flight at once. Each call borrows a CURL easy handle from the
 * instance's relais_http_pool (thread-safe), uses it alone and puts it back;
 * a returned handle keeps its live connections, so keep-alive connections
 * are reused across deliveries. Everything else in relais_http_sink is
 * written by init/destroy (main thread) and only read by the delivery calls.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include "http_int.h"

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
    char            *tls_ca_file;
    relais_http_policy policy;     /* points at tls_ca_file */
    int              curl_inited;
    relais_http_pool *pool;
};

/* The request headers of one exchange: "Name: value" lines, NULL-terminated
 * (relais_http_request.headers); oom is sticky. */
struct hdrs {
    char  **v;
    size_t  n, cap;
    int     oom;
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
    s->pool = relais_http_pool_new();
    s->url = strdup(cfg->url);
    s->timeout_ms = cfg->timeout;
    s->connect_timeout_ms = cfg->connect_timeout;
    s->nheaders = nh;
    s->headers = calloc(nh + 1, sizeof *s->headers);
    int oom = !s->url || !s->headers || !s->pool;
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
    if (!oom && cfg->tls_ca_file) {
        s->tls_ca_file = strdup(cfg->tls_ca_file);
        oom = !s->tls_ca_file;
    }
    if (oom) {
        relais_http_sink_destroy(s);
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    char perr[300];
    if (relais_http_policy_init(&s->policy, inst, NULL, s->tls_ca_file, cfg->tls_verify, perr, sizeof perr) != 0) {
        relais_http_sink_destroy(s);
        snprintf(errstr, errlen, "http: %s", perr);
        return NULL;
    }
    return s;
}

static void hdr_add(struct hdrs *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void hdr_add(struct hdrs *h, const char *fmt, ...)
{
    if (h->oom) return;
    if (h->n + 2 > h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        char **nv = realloc(h->v, cap * sizeof *nv);
        if (!nv) {
            h->oom = 1;
            return;
        }
        h->v = nv;
        h->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *line = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!line) {
        h->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, (size_t)n + 1, fmt, ap);
    va_end(ap);
    h->v[h->n++] = line;
    h->v[h->n] = NULL;
}

static void hdrs_free(struct hdrs *h)
{
    for (size_t i = 0; i < h->n; i++) {
        OPENSSL_cleanse(h->v[i], strlen(h->v[i]));   /* Authorization lines */
        free(h->v[i]);
    }
    free(h->v);
    memset(h, 0, sizeof *h);
}

static relais_verdict verdict_for_status(long code)
{
    if (code >= 200 && code < 300) return RELAIS_DELIVER_OK;
    if (code == 408 || code == 425 || code == 429 || code >= 500) return RELAIS_DELIVER_RETRY;
    if (code >= 300 && code < 500) return RELAIS_DELIVER_REJECT;
    return RELAIS_DELIVER_RETRY;   /* 1xx final status: not a sane answer, try again */
}

/* The local id at id_pointer in one JSON answer (a whole body, or one element
 * of a batch's answer): 0 found (in ans->local_id). */
static int local_id_in(const relais_http_sink *s, json_t *root, relais_answer *ans)
{
    int rc = relais_http_value_text(relais_json_pointer(root, s->id_pointer), ans->local_id,
                                    sizeof ans->local_id);
    if (rc == 0 && !header_value_ok(ans->local_id)) rc = -1;
    if (rc != 0) ans->local_id[0] = '\0';
    return rc;
}

/* The local id at id_pointer in a JSON body: 0 found (in ans->local_id). */
static int extract_local_id(const relais_http_sink *s, const relais_http_answer *b, relais_answer *ans)
{
    if (!s->id_pointer || !b->body || b->truncated) return -1;
    json_t *root = json_loadb(b->body, b->len, 0, NULL);
    if (!root) return -1;
    int rc = local_id_in(s, root, ans);
    json_decref(root);
    return rc;
}

/* Authorization, X-Relais-Signature and X-Relais-Nonce (over the whole
 * body, a new nonce for every exchange) and the configured extra headers.
 * -1 when the signature cannot be computed. */
static int add_common_headers(const relais_http_sink *s, struct hdrs *h, const char *body, size_t len)
{
    if (s->auth_header) hdr_add(h, "%s", s->auth_header);
    if (s->hmac_secret) {
        char sig[128], nonce[33];
        if (relais_http_nonce_new(nonce) != 0
            || relais_http_signature_header(s->hmac_secret, (long long)time(NULL), nonce, body, len,
                                            sig, sizeof sig) != 0)
            return -1;
        hdr_add(h, RELAIS_HTTP_SIG_HEADER ": %s", sig);
        hdr_add(h, RELAIS_HTTP_NONCE_HEADER ": %s", nonce);
    }
    for (size_t i = 0; i < s->nheaders; i++) hdr_add(h, "%s", s->headers[i]);
    return 0;
}

/* POST body with the headers h under the instance's policy; the answer
 * (up to cap bytes) goes to *a (free a->body). 0: an HTTP answer came. */
static int post(relais_http_sink *s, const char *body, size_t len, const struct hdrs *h, size_t cap,
                relais_http_answer *a)
{
    relais_http_request rq = {
        .method = "POST", .url = s->url, .headers = (const char *const *)h->v, .body = body, .len = len,
        .timeout_ms = s->timeout_ms, .connect_timeout_ms = s->connect_timeout_ms,
        .user_agent = "relais/" RELAIS_VERSION_STRING, .max_answer = cap, .policy = &s->policy,
    };
    return relais_http_perform(s->pool, &rq, a);
}

static const char *why_text(relais_verdict v, long code)
{
    return v == RELAIS_DELIVER_OK ? "ok"
         : (code >= 300 && code < 400) ? "redirect not followed"
         : v == RELAIS_DELIVER_RETRY ? "transient, will retry" : "refused";
}

/* The verdict of one exchange (rc: relais_http_perform's), with
 * ans->status and ans->detail filled: the transport error, the outgoing
 * policy's refusal, or "HTTP <code> <why>: <excerpt of the answer>". */
static relais_verdict exchange_verdict(int rc, const relais_http_answer *a, relais_answer *ans)
{
    if (rc != 0) {
        ans->status = 0;
        char msg[CURL_ERROR_SIZE + 320];
        if (a->refused)   /* the detail says it all: "refused by outgoing.allow: ..." */
            snprintf(msg, sizeof msg, "%s", a->detail);
        else
            snprintf(msg, sizeof msg, "%s: %s", a->failure ? a->failure : "transport error",
                     a->detail[0] ? a->detail : "no detail");
        relais_http_excerpt(ans->detail, sizeof ans->detail, msg, strlen(msg),
                            sizeof ans->detail - 1, 1);
        /* nothing was sent to a destination the allow-list refuses: trying
         * again does not help; other transport trouble is transient (bad
         * URLs and schemes were refused at init) */
        return (a->refused || a->code == CURLE_URL_MALFORMAT || a->code == CURLE_UNSUPPORTED_PROTOCOL)
               ? RELAIS_DELIVER_REJECT : RELAIS_DELIVER_RETRY;
    }
    long code = a->status;
    ans->status = (int)code;
    relais_verdict v = verdict_for_status(code);
    snprintf(ans->detail, sizeof ans->detail, "HTTP %ld %s%s", code, why_text(v, code),
             a->len ? ": " : "");
    size_t used = strlen(ans->detail);
    relais_http_excerpt(ans->detail + used, sizeof ans->detail - used, a->body ? a->body : "",
                        a->len, DETAIL_BODY, 1);
    return v;
}

static const char *verdict_name(relais_verdict v)
{
    return v == RELAIS_DELIVER_OK ? "ok" : v == RELAIS_DELIVER_RETRY ? "retry" : "reject";
}

relais_verdict relais_http_sink_deliver(relais_http_sink *s, const relais_event *ev,
                                        const char *local_id, relais_answer *ans)
{
    ans->status = 0;
    ans->detail[0] = '\0';
    ans->local_id[0] = '\0';

    /* the body: the vendor record made by the instance's mapping, or the
     * CloudEvent itself (structured mode) */
    relais_payload pl;
    if (relais_render(s->inst, ev, local_id, &pl, ans) != 0) return RELAIS_DELIVER_REJECT;
    size_t len = pl.len;
    const char *json = pl.body;
    if (!json) {
        relais_payload_release(&pl);
        snprintf(ans->detail, sizeof ans->detail, "cannot serialise the event");
        return RELAIS_DELIVER_RETRY;
    }
    const char *id = relais_event_id(ev);
    const char *type = relais_event_type(ev);
    const char *tp = relais_event_traceparent(ev);

    struct hdrs h = { 0 };
    hdr_add(&h, "Content-Type: %s", pl.content_type);
    hdr_add(&h, "Expect:");
    hdr_add(&h, "Idempotency-Key: %s", id);
    hdr_add(&h, "ce-id: %s", id);
    hdr_add(&h, "ce-type: %s", type);
    if (tp && *tp && header_value_ok(tp)) hdr_add(&h, "traceparent: %s", tp);
    if (local_id && *local_id) {
        if (header_value_ok(local_id)) hdr_add(&h, "X-Relais-Local-Id: %s", local_id);
        else relais_instance_log(s->inst, RELAIS_LOG_WARN,
                                 "event %s: local id has control characters, not sent", id);
    }
    if (add_common_headers(s, &h, json, len) != 0) {
        hdrs_free(&h);
        relais_payload_release(&pl);
        snprintf(ans->detail, sizeof ans->detail, "cannot compute the body signature");
        return RELAIS_DELIVER_RETRY;
    }
    if (h.oom) {
        hdrs_free(&h);
        relais_payload_release(&pl);
        snprintf(ans->detail, sizeof ans->detail, "out of memory");
        return RELAIS_DELIVER_RETRY;
    }

    relais_http_answer a;
    int rc = post(s, json, len, &h, BODY_CAP, &a);
    hdrs_free(&h);
    relais_payload_release(&pl);
    relais_verdict v = exchange_verdict(rc, &a, ans);
    if (v == RELAIS_DELIVER_OK && s->id_pointer && extract_local_id(s, &a, ans) != 0) {
        size_t at = strlen(ans->detail);
        snprintf(ans->detail + at, sizeof ans->detail - at, " (no id at %s)", s->id_pointer);
    }
    free(a.body);
    if (relais_log_get_level() >= RELAIS_LOG_DEBUG)
        relais_instance_log(s->inst, RELAIS_LOG_DEBUG, "event %s -> %d (%s)", id, ans->status,
                            verdict_name(v));
    return v;
}

/* ---- Batches ---------------------------------------------------------------- */

#define BATCH_TYPE "application/cloudevents-batch+json"
#define BATCH_IDS_MAX 8192                      /* longest Relais-Batch-Ids line sent */
#define BATCH_ANSWER_PER_EVENT 1024             /* answer bytes kept per event ... */
#define BATCH_ANSWER_MAX (16u * 1024 * 1024)    /* ... up to this */

/* A growing text buffer; oom is sticky. */
struct text {
    char  *p;
    size_t len, cap;
    int    oom;
};

static void text_add(struct text *t, const char *s, size_t n)
{
    if (t->oom) return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n + 1) cap *= 2;
        char *np = realloc(t->p, cap);
        if (!np) {
            t->oom = 1;
            return;
        }
        t->p = np;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

/* The request body: a JSON array of the events as relais_event_json() gives
 * them; an event whose local id the hub knows gets it as the extension
 * attribute "relaislocalid", added before the object's closing brace (the
 * shared, immutable event is not touched). 0, or -1 out of memory or an
 * event that cannot be serialised. */
static int batch_body(const relais_http_sink *s, const relais_event *const *evs,
                      const char *const *lids, size_t n, struct text *t)
{
    text_add(t, "[", 1);
    for (size_t i = 0; i < n && !t->oom; i++) {
        size_t len = 0;
        const char *j = relais_event_json(evs[i], &len);
        if (!j || len < 2) return -1;
        if (i) text_add(t, ",", 1);
        const char *lid = lids ? lids[i] : NULL;
        json_t *lv = lid && *lid ? json_string(lid) : NULL;
        char *lq = lv ? json_dumps(lv, JSON_ENCODE_ANY) : NULL;
        json_decref(lv);
        if (lid && *lid && !lq)
            relais_instance_log(s->inst, RELAIS_LOG_WARN, "event %s: local id is not valid UTF-8, "
                                "not sent", relais_event_id(evs[i]));
        if (lq && j[len - 1] == '}') {
            text_add(t, j, len - 1);
            text_add(t, ",\"relaislocalid\":", 17);
            text_add(t, lq, strlen(lq));
            text_add(t, "}", 1);
        } else {
            text_add(t, j, len);
        }
        free(lq);
    }
    text_add(t, "]", 1);
    return t->oom ? -1 : 0;
}

/* The per-event answers in a parsed 2xx answer: the answer itself when it is
 * an array, else its "results" member when that is an array; NULL with the
 * reason in why when neither, or when it does not hold exactly n elements. */
static json_t *batch_results(json_t *root, size_t n, char *why, size_t whylen)
{
    json_t *res = json_is_array(root) ? root : json_object_get(root, "results");
    if (!json_is_array(res)) {
        snprintf(why, whylen, "answer is neither an array nor {\"results\":[...]}");
        return NULL;
    }
    if (json_array_size(res) != n) {
        snprintf(why, whylen, "answer has %zu results for %zu events", json_array_size(res), n);
        return NULL;
    }
    return res;
}

/* Event i's outcome from element e of a 2xx answer (HTTP status code): its
 * own "status" (an integer 100..599) when it has one, else OK; its local id
 * at id_pointer in e. */
static relais_verdict element_verdict(const relais_http_sink *s, json_t *e, size_t i, size_t n,
                                      long code, relais_answer *a)
{
    json_t *st = json_object_get(e, "status");
    long es = json_is_integer(st) ? (long)json_integer_value(st) : 0;
    if (es < 100 || es > 599) es = 0;
    relais_verdict v = es ? verdict_for_status(es) : RELAIS_DELIVER_OK;
    a->status = es ? (int)es : (int)code;
    if (es)
        snprintf(a->detail, sizeof a->detail, "HTTP %ld, element %zu of %zu: %ld %s: ", code, i,
                 n, es, why_text(v, es));
    else
        snprintf(a->detail, sizeof a->detail, "HTTP %ld ok, element %zu of %zu: ", code, i, n);
    char *text = json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY);
    size_t used = strlen(a->detail);
    if (text) relais_http_excerpt(a->detail + used, sizeof a->detail - used, text, strlen(text),
                                  DETAIL_BODY, 1);
    free(text);
    if (v == RELAIS_DELIVER_OK && s->id_pointer && local_id_in(s, e, a) != 0) {
        size_t at = strlen(a->detail);
        snprintf(a->detail + at, sizeof a->detail - at, " (no id at %s)", s->id_pointer);
    }
    return v;
}

static void batch_fail(size_t n, relais_verdict *verdicts, relais_answer *ans, const char *why)
{
    for (size_t i = 0; i < n; i++) {
        verdicts[i] = RELAIS_DELIVER_RETRY;
        snprintf(ans[i].detail, sizeof ans[i].detail, "%s", why);
    }
}

void relais_http_sink_deliver_batch(relais_http_sink *s, const relais_event *const *evs,
                                    const char *const *lids, size_t n, relais_verdict *verdicts,
                                    relais_answer *ans)
{
    for (size_t i = 0; i < n; i++) {
        verdicts[i] = RELAIS_DELIVER_RETRY;
        ans[i].status = 0;
        ans[i].detail[0] = '\0';
        ans[i].local_id[0] = '\0';
    }
    if (n == 0) return;

    struct text body = { 0 }, ids = { 0 };
    if (batch_body(s, evs, lids, n, &body) != 0) {
        free(body.p);
        batch_fail(n, verdicts, ans, "cannot serialise the batch (out of memory?)");
        return;
    }
    struct hdrs h = { 0 };
    hdr_add(&h, "Content-Type: " BATCH_TYPE);
    hdr_add(&h, "Expect:");
    hdr_add(&h, "Relais-Batch-Size: %zu", n);
    const char *tp = relais_event_traceparent(evs[0]);
    if (tp && *tp && header_value_ok(tp)) hdr_add(&h, "traceparent: %s", tp);
    text_add(&ids, "Relais-Batch-Ids: ", 18);
    for (size_t i = 0; i < n && ids.len <= BATCH_IDS_MAX; i++) {
        const char *id = relais_event_id(evs[i]);
        if (i) text_add(&ids, ",", 1);
        text_add(&ids, id, strlen(id));
    }
    if (ids.oom) h.oom = 1;
    else if (ids.len <= BATCH_IDS_MAX) hdr_add(&h, "%s", ids.p);
    free(ids.p);
    const char *fail = NULL;
    if (add_common_headers(s, &h, body.p, body.len) != 0)
        fail = "cannot compute the body signature";
    else if (h.oom)
        fail = "out of memory";
    if (fail) {
        hdrs_free(&h);
        free(body.p);
        batch_fail(n, verdicts, ans, fail);
        return;
    }

    size_t cap = BODY_CAP + n * BATCH_ANSWER_PER_EVENT;
    if (cap > BATCH_ANSWER_MAX) cap = BATCH_ANSWER_MAX;
    relais_http_answer b;
    int rc = post(s, body.p, body.len, &h, cap, &b);
    hdrs_free(&h);
    free(body.p);
    relais_answer whole = { 0 };
    relais_verdict v = exchange_verdict(rc, &b, &whole);
    long code = b.status;

    /* a 2xx answer may speak for each event */
    json_t *root = NULL, *res = NULL;
    char why[128] = "";
    if (v == RELAIS_DELIVER_OK) {
        if (b.truncated)
            snprintf(why, sizeof why, "answer longer than %zu bytes", cap);
        else if (!(root = json_loadb(b.body ? b.body : "", b.len, 0, NULL)))
            snprintf(why, sizeof why, "answer is not JSON");
        else
            res = batch_results(root, n, why, sizeof why);
    }
    for (size_t i = 0; i < n; i++) {
        if (res) {
            verdicts[i] = element_verdict(s, json_array_get(res, i), i, n, code, &ans[i]);
            continue;
        }
        verdicts[i] = v;
        ans[i] = whole;
        if (v == RELAIS_DELIVER_OK && s->id_pointer) {
            size_t at = strlen(ans[i].detail);
            snprintf(ans[i].detail + at, sizeof ans[i].detail - at, " (no ids: %s)", why);
        }
    }
    json_decref(root);
    free(b.body);
    if (relais_log_get_level() >= RELAIS_LOG_DEBUG)
        relais_instance_log(s->inst, RELAIS_LOG_DEBUG, "batch of %zu (%s...) -> %d (%s%s)", n,
                            relais_event_id(evs[0]), whole.status, verdict_name(v),
                            res ? ", per event" : "");
}

void relais_http_sink_destroy(relais_http_sink *s)
{
    if (!s) return;
    relais_http_pool_destroy(s->pool);
    free(s->url);
    free(s->tls_ca_file);
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
