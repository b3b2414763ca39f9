/*
 * http_source.c - the webhook source of the http connector (libmicrohttpd).
 *
 * Threading model: MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION.
 * relais_submit() blocks until the journal's group commit (a few ms), so the
 * request handler must be allowed to block. With a thread pool, one blocked
 * handler would stall every other connection served by the same pool thread;
 * with a thread per connection only its own client waits, and many clients
 * submitting at once is exactly what lets the journal batch them into one
 * commit. The number of threads is bounded by `max_connections`
 * (MHD_OPTION_CONNECTION_LIMIT), idle clients by a 30 s connection timeout.
 *
 * Data ownership:
 *   - relais_http_source (config copy, daemon, port) is written by the main
 *     thread in new/start/stop/destroy only; connection threads read it.
 *   - the nonce memory (relais_nonce_cache, hub/httputil.h) is shared by the
 *     connection threads under its own lock.
 *   - struct request (the body buffer) belongs to one connection thread; MHD
 *     hands it back through con_cls and frees it in request_done().
 *   - the submit/reject calls go to the hub, which is thread-safe.
 *
 * Request flow: path/method (404/405) and Content-Length (413) are checked
 * before the body is read; then body cap (413), signature (401), hub
 * accepting (503), nonce (409 when seen within the replay window, 429 when
 * the memory of nonces is full), parse (400/413), submit (503 on
 * UNAVAILABLE), answer 202 (or 422 for a single rejected record).
 *
 * Signed requests (hmac_secret set) carry X-Relais-Signature: t=<unix
 * seconds>,v2=<hex HMAC-SHA256(secret, "<t>.<nonce>.<body>")> and
 * X-Relais-Nonce (http_body.c). A nonce is remembered until t + hmac_tolerance,
 * when the signature itself goes stale; the same signed request sent again
 * in that window is refused with 409 even though its signature is valid. A
 * request answered 503 (not taken) forgets its nonce, so that the sender may
 * send the very same request again.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include "http_int.h"

#define RAW_EXCERPT 4096
#define MAX_KEY_LEN 200

struct relais_http_source {
    relais_instance    *inst;
    char               *listen;
    char               *port_file;
    char               *path;
    char               *event_type;
    char               *type_pointer;
    char               *subject_pointer;
    char               *record_id_pointer;
    char               *correlation_pointer;
    char               *hmac_secret;
    long                hmac_tolerance_s;
    relais_nonce_cache *nonces;        /* NULL without hmac_secret */
    size_t              max_body;
    size_t              max_batch;
    unsigned            max_connections;
    struct MHD_Daemon  *daemon;
    int                 port;
};

struct request {
    relais_http_upload body;
    int                answered;     /* a response was queued on the first call */
    int                unavailable;  /* the answer is a 503: the request was not taken */
};

static char *dup_opt(const char *s) { return s ? strdup(s) : NULL; }

static int check_pointer(const char *name, const char *p, char *errstr, size_t errlen)
{
    if (p && relais_json_pointer_valid(p) != 0) {
        snprintf(errstr, errlen, "http: %s '%s' is not a JSON pointer (\"\" or /a/b, ~0 ~1 escapes)",
                 name, p);
        return -1;
    }
    return 0;
}

relais_http_source *relais_http_source_new(relais_instance *inst, const relais_http_config *cfg,
                                           char *errstr, size_t errlen)
{
    char host[256];
    int port;
    if (!cfg->listen || !*cfg->listen) {
        snprintf(errstr, errlen, "http: option 'listen' is required for a source");
        return NULL;
    }
    if (relais_http_split_listen(cfg->listen, host, sizeof host, &port, errstr, errlen) != 0)
        return NULL;
    const char *path = cfg->path ? cfg->path : "/events";
    if (path[0] != '/') {
        snprintf(errstr, errlen, "http: path '%s' must start with '/'", path);
        return NULL;
    }
    if (check_pointer("type_pointer", cfg->type_pointer, errstr, errlen) != 0
        || check_pointer("subject_pointer", cfg->subject_pointer, errstr, errlen) != 0
        || check_pointer("record_id_pointer", cfg->record_id_pointer, errstr, errlen) != 0
        || check_pointer("correlation_pointer", cfg->correlation_pointer, errstr, errlen) != 0)
        return NULL;
    if (cfg->max_body <= 0 || cfg->max_batch <= 0 || cfg->max_connections <= 0
        || cfg->hmac_tolerance < 0 || cfg->hmac_nonce_max <= 0) {
        snprintf(errstr, errlen, "http: max_body, max_batch, max_connections and hmac_nonce_max must be "
                 "positive, hmac_tolerance not negative");
        return NULL;
    }
    if (cfg->hmac_secret && !*cfg->hmac_secret) {
        snprintf(errstr, errlen, "http: hmac_secret is empty");
        return NULL;
    }
    relais_http_source *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    s->inst = inst;
    s->listen = dup_opt(cfg->listen);
    s->port_file = dup_opt(cfg->port_file);
    s->path = dup_opt(path);
    s->event_type = dup_opt(cfg->event_type);
    s->type_pointer = dup_opt(cfg->type_pointer);
    s->subject_pointer = dup_opt(cfg->subject_pointer);
    s->record_id_pointer = dup_opt(cfg->record_id_pointer);
    s->correlation_pointer = dup_opt(cfg->correlation_pointer);
    s->hmac_secret = dup_opt(cfg->hmac_secret);
    s->hmac_tolerance_s = cfg->hmac_tolerance / 1000;
    s->max_body = (size_t)cfg->max_body;
    s->max_batch = (size_t)cfg->max_batch;
    s->max_connections = (unsigned)cfg->max_connections;
    s->port = -1;
    if (s->hmac_secret) s->nonces = relais_nonce_cache_new((size_t)cfg->hmac_nonce_max);
    if (!s->listen || !s->path || (s->hmac_secret && !s->nonces)) {
        relais_http_source_destroy(s);
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    return s;
}

/* ---- Responses ------------------------------------------------------------ */

static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned status, const char *body,
                                    const char *extra_name, const char *extra_value)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body,
                                                             MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (extra_name) MHD_add_response_header(r, extra_name, extra_value);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Takes ownership of obj. */
static enum MHD_Result respond_json(struct MHD_Connection *c, unsigned status, json_t *obj,
                                    const char *extra_name, const char *extra_value)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    enum MHD_Result ret = respond_text(c, text ? status : 500,
                                       text ? text : "{\"error\":\"out of memory\"}",
                                       extra_name, extra_value);
    free(text);
    return ret;
}

static enum MHD_Result respond_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
    return respond_json(c, status, json_pack("{s:s}", "error", msg), NULL, NULL);
}

static enum MHD_Result respond_unavailable(struct MHD_Connection *c, const char *msg)
{
    return respond_json(c, MHD_HTTP_SERVICE_UNAVAILABLE, json_pack("{s:s}", "error", msg),
                        MHD_HTTP_HEADER_RETRY_AFTER, "1");
}

/* ---- Handling a complete body --------------------------------------------- */

static void reject_raw(relais_http_source *s, const char *record_id, const char *where,
                       const char *reason, const char *raw, size_t rawlen)
{
    char ex[RAW_EXCERPT + 1];
    size_t n = raw ? relais_http_excerpt(ex, sizeof ex, raw, rawlen, RAW_EXCERPT, 0) : 0;
    if (relais_reject(s->inst, record_id, where, reason, raw ? ex : NULL, n) != 0)
        relais_instance_log(s->inst, RELAIS_LOG_WARN, "could not journal the rejection at %s (%s)",
                            where, reason);
}

static void reject_item(relais_http_source *s, relais_http_batch *b, size_t i)
{
    char where[64];
    json_t *el = b->single ? b->root : json_array_get(b->root, i);
    char *raw = json_dumps(el, JSON_COMPACT | JSON_ENCODE_ANY);
    if (b->single) snprintf(where, sizeof where, "body");
    else snprintf(where, sizeof where, "body element %zu", i);
    reject_raw(s, b->items[i].rec.record_id, where, b->items[i].reason, raw, raw ? strlen(raw) : 0);
    free(raw);
}

static const char *status_name(relais_submit_status st)
{
    switch (st) {
    case RELAIS_SUBMIT_ACCEPTED:    return "accepted";
    case RELAIS_SUBMIT_DUPLICATE:   return "duplicate";
    case RELAIS_SUBMIT_REJECTED:    return "rejected";
    case RELAIS_SUBMIT_UNAVAILABLE: return "unavailable";
    }
    return "rejected";
}

static json_t *result_json(relais_submit_status st, const char *event_id, const char *reason)
{
    json_t *o = json_pack("{s:s}", "status", status_name(st));
    if (o && event_id && *event_id) json_object_set_new(o, "event_id", json_string(event_id));
    if (o && reason && *reason) {
        char r[512];
        relais_http_excerpt(r, sizeof r, reason, strlen(reason), sizeof r - 1, 1);
        json_object_set_new(o, "reason", json_string(r));
    }
    return o;
}

/* A 503 for a request that was not taken (its nonce is then forgotten). */
static enum MHD_Result not_taken(struct request *rq, struct MHD_Connection *c, const char *msg)
{
    rq->unavailable = 1;
    return respond_unavailable(c, msg);
}

static enum MHD_Result handle_records(relais_http_source *s, struct MHD_Connection *c,
                                      struct request *rq, relais_http_batch *b)
{
    size_t nvalid = 0;
    for (size_t i = 0; i < b->n; i++) nvalid += b->items[i].valid ? 1 : 0;
    relais_record *recs = NULL;
    relais_submit_result *res = NULL;
    if (nvalid > 0) {
        recs = calloc(nvalid, sizeof *recs);
        res = calloc(nvalid, sizeof *res);
        if (!recs || !res) {
            free(recs);
            free(res);
            return not_taken(rq, c, "out of memory");
        }
        size_t k = 0;
        for (size_t i = 0; i < b->n; i++)
            if (b->items[i].valid) recs[k++] = b->items[i].rec;
        int rc = relais_submit(s->inst, recs, nvalid, res);
        int unavailable = rc != 0;
        for (size_t k2 = 0; k2 < nvalid; k2++)
            unavailable |= res[k2].status == RELAIS_SUBMIT_UNAVAILABLE;
        if (unavailable) {
            free(recs);
            free(res);
            relais_instance_log(s->inst, RELAIS_LOG_WARN,
                                "hub unavailable: answered 503 to a request of %zu records", b->n);
            return not_taken(rq, c, "hub unavailable, retry later");
        }
    }
    /* every valid record has a verdict: journal the invalid ones, answer */
    json_t *results = json_array();
    size_t k = 0, accepted = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->items[i].valid) {
            json_array_append_new(results, result_json(res[k].status, res[k].event_id,
                                                       res[k].reason));
            accepted += res[k].status != RELAIS_SUBMIT_REJECTED;
            k++;
        } else {
            reject_item(s, b, i);
            json_array_append_new(results, result_json(RELAIS_SUBMIT_REJECTED, NULL,
                                                       b->items[i].reason));
        }
    }
    free(recs);
    free(res);
    if (relais_log_get_level() >= RELAIS_LOG_DEBUG)
        relais_instance_log(s->inst, RELAIS_LOG_DEBUG, "request of %zu records: %zu accepted or duplicate",
                            b->n, accepted);
    if (b->single) {
        json_t *one = json_incref(json_array_get(results, 0));
        json_decref(results);
        return respond_json(c, accepted ? MHD_HTTP_ACCEPTED : MHD_HTTP_UNPROCESSABLE_CONTENT, one,
                            NULL, NULL);
    }
    return respond_json(c, MHD_HTTP_ACCEPTED, json_pack("{s:o}", "results", results), NULL, NULL);
}

/* application/xml, text/xml, application/<x>+xml (parameters ignored). */
static int is_xml_type(const char *ct)
{
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) n--;
    if ((n == 15 && !strncasecmp(ct, "application/xml", 15)) || (n == 8 && !strncasecmp(ct, "text/xml", 8)))
        return 1;
    return n > 4 && !strncasecmp(ct + n - 4, "+xml", 4);
}

static enum MHD_Result handle_signed_body(relais_http_source *s, struct MHD_Connection *c,
                                          struct request *rq);

static enum MHD_Result handle_body(relais_http_source *s, struct MHD_Connection *c,
                                   struct request *rq)
{
    if (rq->body.too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "body larger than max_body (%zu bytes)", s->max_body);
        return respond_error(c, MHD_HTTP_CONTENT_TOO_LARGE, msg);
    }
    const char *nonce = NULL;
    long long sig_ts = -1;
    if (s->hmac_secret) {
        const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, RELAIS_HTTP_SIG_HEADER);
        nonce = MHD_lookup_connection_value(c, MHD_HEADER_KIND, RELAIS_HTTP_NONCE_HEADER);
        relais_http_sig_status st = relais_http_verify(s->hmac_secret, sig, nonce, (long long)time(NULL),
                                                       s->hmac_tolerance_s, rq->body.buf,
                                                       rq->body.len, &sig_ts);
        if (st != RELAIS_HTTP_SIG_OK) {
            relais_instance_log(s->inst, RELAIS_LOG_WARN, "401: %s", relais_http_sig_status_text(st));
            return respond_error(c, MHD_HTTP_UNAUTHORIZED, relais_http_sig_status_text(st));
        }
    }
    if (!relais_accepting(s->inst))
        return respond_unavailable(c, "hub not accepting, retry later");
    if (s->hmac_secret) {
        long long retry = 1;
        relais_nonce_status ns = relais_nonce_use(s->nonces, nonce, sig_ts + s->hmac_tolerance_s,
                                                  (long long)time(NULL), &retry);
        if (ns == RELAIS_NONCE_REPLAY) {
            relais_instance_log(s->inst, RELAIS_LOG_WARN, "409: replayed nonce (a signed request sent again)");
            return respond_error(c, MHD_HTTP_CONFLICT, "nonce already used within the replay window "
                                 "(hmac_tolerance): sign every request with a new " RELAIS_HTTP_NONCE_HEADER);
        }
        if (ns == RELAIS_NONCE_FULL) {
            char ra[24];
            snprintf(ra, sizeof ra, "%lld", retry);
            relais_instance_log(s->inst, RELAIS_LOG_WARN, "429: the memory of nonces is full "
                                "(hmac_nonce_max signed requests within hmac_tolerance)");
            return respond_json(c, MHD_HTTP_TOO_MANY_REQUESTS,
                                json_pack("{s:s}", "error", "too many signed requests within the replay "
                                          "window (hmac_nonce_max): retry later"),
                                MHD_HTTP_HEADER_RETRY_AFTER, ra);
        }
        if (ns != RELAIS_NONCE_NEW) return respond_unavailable(c, "out of memory");
    }
    enum MHD_Result r = handle_signed_body(s, c, rq);
    if (rq->unavailable && nonce) relais_nonce_forget(s->nonces, nonce);
    return r;
}

/* The body of a request whose signature (if any) was checked. */
static enum MHD_Result handle_signed_body(relais_http_source *s, struct MHD_Connection *c,
                                          struct request *rq)
{

    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    if (key && strlen(key) > MAX_KEY_LEN)
        return respond_error(c, MHD_HTTP_BAD_REQUEST, "Idempotency-Key longer than 200 bytes");
    const char *ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ctype && is_xml_type(ctype)) {
        /* one XML vendor record: the hub parses it safely and maps it with
         * the instance's (xml) mapping */
        if (!relais_instance_mapped(s->inst))
            return respond_error(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                 "XML bodies need a mapping (mapping: with format: xml) on this connector");
        relais_http_batch xb;
        memset(&xb, 0, sizeof xb);
        xb.single = 1;
        xb.n = 1;
        xb.items = calloc(1, sizeof *xb.items);
        if (!xb.items) return not_taken(rq, c, "out of memory");
        xb.items[0].valid = 1;
        xb.items[0].rec.record_id = key;
        xb.items[0].rec.raw = rq->body.buf ? rq->body.buf : "";
        xb.items[0].rec.raw_len = rq->body.len;
        enum MHD_Result xr = handle_records(s, c, rq, &xb);
        relais_http_batch_free(&xb);
        return xr;
    }
    relais_http_parse_opts o = {
        .content_type = ctype,
        .idempotency_key = key,
        .event_type = s->event_type,
        .type_pointer = s->type_pointer,
        .subject_pointer = s->subject_pointer,
        .record_id_pointer = s->record_id_pointer,
        .correlation_pointer = s->correlation_pointer,
        .max_batch = s->max_batch,
        .mapped = relais_instance_mapped(s->inst),
    };
    relais_http_batch b;
    relais_http_body_status st = relais_http_parse_body(rq->body.buf ? rq->body.buf : "",
                                                        rq->body.len, &o, &b);
    enum MHD_Result ret;
    if (st == RELAIS_HTTP_BODY_OK) {
        ret = handle_records(s, c, rq, &b);
    } else {
        char where[96];
        if (b.line > 0) snprintf(where, sizeof where, "body line %d column %d", b.line, b.column);
        else snprintf(where, sizeof where, "body");
        reject_raw(s, key, where, b.error, rq->body.buf, rq->body.len);
        json_t *e = json_pack("{s:s}", "error", b.error);
        if (e && b.line > 0) {
            json_object_set_new(e, "line", json_integer(b.line));
            json_object_set_new(e, "column", json_integer(b.column));
        }
        ret = respond_json(c, st == RELAIS_HTTP_BODY_TOO_MANY ? MHD_HTTP_CONTENT_TOO_LARGE
                                                             : MHD_HTTP_BAD_REQUEST,
                           e, NULL, NULL);
    }
    relais_http_batch_free(&b);
    return ret;
}

/* ---- MHD callbacks (connection threads) ----------------------------------- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    relais_http_source *s = cls;
    struct request *rq = *con_cls;
    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        *con_cls = rq;
        rq->answered = 1;
        if (strcmp(url, s->path) != 0)
            return respond_error(c, MHD_HTTP_NOT_FOUND, "not found");
        if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
            return respond_json(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                                json_pack("{s:s}", "error", "method not allowed, use POST"),
                                MHD_HTTP_HEADER_ALLOW, "POST");
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end = NULL;
            errno = 0;
            unsigned long long v = strtoull(cl, &end, 10);
            if (errno == 0 && end != cl && v > s->max_body) {
                char msg[128];
                snprintf(msg, sizeof msg, "body larger than max_body (%zu bytes)", s->max_body);
                return respond_error(c, MHD_HTTP_CONTENT_TOO_LARGE, msg);
            }
        }
        rq->answered = 0;
        return MHD_YES;
    }
    if (rq->answered) {
        *upload_data_size = 0;   /* discard what follows an early answer */
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (relais_http_upload_take(&rq->body, upload_data, upload_data_size, s->max_body) != 0)
            return MHD_NO;
        return MHD_YES;
    }
    rq->answered = 1;
    return handle_body(s, c, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct request *rq = *con_cls;
    if (!rq) return;
    relais_http_upload_free(&rq->body);
    free(rq);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    relais_http_source *s = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    relais_instance_log(s->inst, RELAIS_LOG_WARN, "microhttpd: %s", msg);
}

/* ---- Lifecycle (main thread) ---------------------------------------------- */

static int write_port_file(const char *file, int port, char *errstr, size_t errlen)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(errstr, errlen, "http: port_file %s: %s", tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0 || rename(tmp, file) != 0) {
        snprintf(errstr, errlen, "http: port_file %s: %s", file, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int relais_http_source_start(relais_http_source *s, char *errstr, size_t errlen)
{
    char host[256];
    int port;
    if (s->daemon) return 0;
    if (relais_http_split_listen(s->listen, host, sizeof host, &port, errstr, errlen) != 0)
        return -1;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE };
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host, portstr, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(errstr, errlen, "http: listen '%s': %s", s->listen, gai_strerror(gai));
        return -1;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION
                     | MHD_USE_ERROR_LOG | MHD_USE_AUTO;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, s,
                                 MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                                 MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_CONNECTION_LIMIT, s->max_connections,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                                 MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon) {
        snprintf(errstr, errlen, "http: cannot listen on %s (address in use or not local?)",
                 s->listen);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? (int)info->port : port;
    if (s->port_file && write_port_file(s->port_file, s->port, errstr, errlen) != 0) {
        MHD_stop_daemon(s->daemon);
        s->daemon = NULL;
        return -1;
    }
    relais_instance_log(s->inst, RELAIS_LOG_INFO, "webhook listening on %s%s%s:%d%s (port %d)",
                        strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
                        s->port, s->path, s->port);
    return 0;
}

int relais_http_source_port(const relais_http_source *s)
{
    return s ? s->port : -1;
}

void relais_http_source_stop(relais_http_source *s)
{
    if (!s || !s->daemon) return;
    MHD_stop_daemon(s->daemon);   /* joins the connection threads */
    s->daemon = NULL;
}

void relais_http_source_destroy(relais_http_source *s)
{
    if (!s) return;
    relais_http_source_stop(s);
    free(s->listen);
    free(s->port_file);
    free(s->path);
    free(s->event_type);
    free(s->type_pointer);
    free(s->subject_pointer);
    free(s->record_id_pointer);
    free(s->correlation_pointer);
    if (s->hmac_secret) OPENSSL_cleanse(s->hmac_secret, strlen(s->hmac_secret));
    free(s->hmac_secret);
    relais_nonce_cache_destroy(s->nonces);
    free(s);
}
