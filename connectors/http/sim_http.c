/*
 * sim_http.c - relais-sim-http: a small HTTP server (libmicrohttpd) that plays
 * a destination package for the http sink, in tests and in the demo.
 *
 *   relais-sim-http --listen 127.0.0.1:PORT [--port-file F] [--hmac-secret S]
 *                   [--token T] [--keep N] [--quiet]
 *
 * Event endpoints: POST /events and POST /in/<anything>. Each path is its own
 * destination (dedupe and per-path stats), so one simulator can play several
 * sinks. A delivery is deduped on (path, Idempotency-Key): a new one answers
 * 201 {"id":"L-<n>"}, a repeat 200 {"id":"<same>","duplicate":true}.
 * A batch (Content-Type application/cloudevents-batch+json, a JSON array of
 * CloudEvents) is deduped event by event on (path, element "id"), the same
 * memory as single deliveries; the answer is an array in body order of
 * {"id":"L-<n>"} / {"id":..,"duplicate":true} / {"status":S,"error":..}
 * An XML body (Content-Type containing "xml": a sink with an xml mapping)
 * is accepted as one record and kept as text ("raw" in /_sim/events).
 * (an element without an id, or an injected per-event failure), with 201
 * when some event was new, 207 when some element failed, else 200.
 * Control API (tests):
 *   GET  /_sim/stats            {"raw":N,"distinct":M,"duplicates":D,"failed":F,"requests":R,
 *                                "connections":C,
 *                                "paths":{"/events":{"raw":..,"distinct":..,"requests":..}}}
 *                               raw/distinct/duplicates/failed count events, requests the POSTs
 *   GET  /_sim/events[?path=P]  array of the events received (the last --keep)
 *   POST /_sim/fail             {"status":500,"count":3} / {"delay_ms":2000} / both;
 *                               count: how many next requests, -1 (default) = until
 *                               reset or the next /_sim/fail; with "per_event":true the
 *                               status goes to the next `count` events of batches
 *                               (element by element) instead of whole requests;
 *                               "close":true drops the connection without an answer;
 *                               "echo":true puts the record received (an event's data) in
 *                               the error answer ({"error","status","record"}), as some
 *                               packages do
 *   POST /_sim/reset            forget everything
 * One log line per request on stderr (method, path, status; never bodies),
 * unless --quiet. SIGINT/SIGTERM stop it. See connectors/http/README.md.
 *
 * What every simulator does (options, daemon, port file, signals, request
 * log, bodies, /_sim/fail's common members) is hub/simkit.h's.
 *
 * Threads: MHD runs one thread per connection (a delayed answer blocks only
 * its own client). All simulator state (struct sim) is guarded by sim.lock;
 * per-request body buffers belong to their connection thread.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <microhttpd.h>
#include <jansson.h>
#include "relais/relais.h"
#include "http_int.h"
#include "simkit.h"

#define SIM_MAX_BODY (8L * 1024 * 1024)

struct sim {
    pthread_mutex_t lock;
    long   raw, distinct, duplicates, failed;   /* events */
    long   requests;     /* POSTs to event paths */
    long   connections;  /* TCP connections opened (keep-alive reuse shows here) */
    long   next_local;
    json_t *seen;        /* "<path> <key>" -> local id */
    json_t *events;      /* array of the last `keep` deliveries */
    json_t *paths;       /* path -> {"raw":n,"distinct":m} */
    size_t keep;
    relais_simkit_fault fault;   /* status 0: none */
    int    fail_per_event; /* 1: fault.status goes to batch elements, count counts events */
    int    fail_close;   /* 1: drop the connection without an answer (a reset) */
    int    fail_echo;    /* 1: an injected error answer carries the request's body */
    /* read-only after start */
    relais_simkit kit;
    const char *hmac_secret;
    const char *token;
};


static json_t *header_or_null(struct MHD_Connection *c, const char *name)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    return v ? json_string(v) : json_null();
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    json_t *o = cls;
    char name[128];
    size_t i = 0;
    for (; key[i] && i + 1 < sizeof name; i++)
        name[i] = (char)((key[i] >= 'A' && key[i] <= 'Z') ? key[i] - 'A' + 'a' : key[i]);
    name[i] = '\0';
    if (strcmp(name, "authorization") == 0) value = "(redacted)";
    json_object_set_new(o, name, json_string(value ? value : ""));
    return MHD_YES;
}

static void bump_path(struct sim *sim, const char *path, const char *field)
{
    json_t *p = json_object_get(sim->paths, path);
    if (!p) {
        p = json_pack("{s:i,s:i,s:i}", "raw", 0, "distinct", 0, "requests", 0);
        json_object_set_new(sim->paths, path, p);
    }
    json_object_set_new(p, field, json_integer(json_integer_value(json_object_get(p, field)) + 1));
}

static void remember(struct sim *sim, json_t *entry)
{
    json_array_append_new(sim->events, entry);
    while (json_array_size(sim->events) > sim->keep) json_array_remove(sim->events, 0);
}

/* What the log of received events keeps about the request: path and headers. */
static json_t *request_entry(struct MHD_Connection *c, const char *url)
{
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    json_t *entry = json_pack("{s:s}", "path", url);
    json_object_set_new(entry, "idempotency_key", key ? json_string(key) : json_null());
    json_object_set_new(entry, "ce_id", header_or_null(c, "ce-id"));
    json_object_set_new(entry, "ce_type", header_or_null(c, "ce-type"));
    json_object_set_new(entry, "traceparent", header_or_null(c, "traceparent"));
    json_object_set_new(entry, "local_id_header", header_or_null(c, "X-Relais-Local-Id"));
    json_object_set_new(entry, "content_type", header_or_null(c, MHD_HTTP_HEADER_CONTENT_TYPE));
    json_object_set_new(entry, "signature", header_or_null(c, RELAIS_HTTP_SIG_HEADER));
    json_object_set_new(entry, "authorization",
                        json_boolean(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                                 MHD_HTTP_HEADER_AUTHORIZATION) != NULL));
    json_t *headers = json_object();
    MHD_get_connection_values(c, MHD_HEADER_KIND, collect_header, headers);
    json_object_set_new(entry, "headers", headers);
    return entry;
}

/* The refusal of a request as a whole, before its content is looked at: body
 * too large, bad token, bad signature. 0 when none. */
static int request_refusal(const struct sim *sim, struct MHD_Connection *c, const relais_simkit_request *rq,
                           const char **refusal)
{
    if (rq->body.too_large) {
        *refusal = "body too large";
        return MHD_HTTP_CONTENT_TOO_LARGE;
    }
    if (sim->token) {
        const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                       MHD_HTTP_HEADER_AUTHORIZATION);
        char want[512];
        snprintf(want, sizeof want, "Bearer %s", sim->token);
        if (!auth || strcmp(auth, want) != 0) {
            *refusal = "bad or missing bearer token";
            return MHD_HTTP_UNAUTHORIZED;
        }
    }
    if (sim->hmac_secret) {
        relais_http_sig_status st = relais_http_verify(
            sim->hmac_secret, MHD_lookup_connection_value(c, MHD_HEADER_KIND, RELAIS_HTTP_SIG_HEADER),
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, RELAIS_HTTP_NONCE_HEADER),
            (long long)time(NULL), 300, rq->body.buf ? rq->body.buf : "", rq->body.len, NULL);
        if (st != RELAIS_HTTP_SIG_OK) {
            *refusal = relais_http_sig_status_text(st);
            return MHD_HTTP_UNAUTHORIZED;
        }
    }
    return 0;
}

/* "echo": the record a package would quote back: an event's data (a batch:
 * each element's), else the body as it came. */
static void echo_record(json_t *answer, json_t *body)
{
    json_t *rec;
    if (json_is_array(body)) {
        rec = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(body, i, e) {
            json_t *d = json_object_get(e, "data");
            json_array_append(rec, d ? d : e);
        }
    } else {
        json_t *d = json_object_get(body, "data");
        rec = json_incref(d ? d : body);
    }
    json_object_set_new(answer, "record", rec);
}

static enum MHD_Result handle_event(struct sim *sim, struct MHD_Connection *c, const char *url,
                                    relais_simkit_request *rq)
{
    int status;
    long delay;
    pthread_mutex_lock(&sim->lock);
    sim->requests++;
    bump_path(sim, url, "requests");
    sim->raw++;
    bump_path(sim, url, "raw");
    long seq = sim->raw;
    status = 0;
    delay = 0;
    int drop = 0;
    if (relais_simkit_fault_take(&sim->fault, &status, &delay)) {
        drop = sim->fail_close;
        if (drop) sim->failed++;
    }
    pthread_mutex_unlock(&sim->lock);
    if (delay > 0) relais_simkit_sleep_ms(delay);
    if (drop) {
        relais_simkit_log(&sim->kit, "POST", url, 0, "connection dropped (injected)");
        return MHD_NO;     /* libmicrohttpd closes the connection: no answer at all */
    }

    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    json_t *entry = request_entry(c, url);
    json_object_set_new(entry, "seq", json_integer((json_int_t)seq));
    json_t *body = rq->body.buf ? json_loadb(rq->body.buf, rq->body.len, 0, NULL) : NULL;
    json_object_set_new(entry, "event", body ? body : json_null());
    /* a vendor record in XML (a sink with an xml mapping): kept as text */
    const char *ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    int xml = ctype && strstr(ctype, "xml") != NULL;
    if (xml) {
        json_object_set_new(entry, "raw", json_stringn(rq->body.buf ? rq->body.buf : "", rq->body.len));
        json_object_set_new(entry, "content_type", json_string(ctype));
    }

    const char *refusal = NULL;
    if (status == 0) status = request_refusal(sim, c, rq, &refusal);
    if (status == 0 && !xml && !json_is_object(body)) {
        status = MHD_HTTP_BAD_REQUEST;
        refusal = "body is not a JSON object";
    }

    json_t *answer;
    int duplicate = 0;
    char local[64] = "";
    pthread_mutex_lock(&sim->lock);
    if (status != 0) {
        sim->failed++;
        answer = json_pack("{s:s,s:i}", "error", refusal ? refusal : "injected failure",
                           "status", status);
        if (sim->fail_echo && !refusal && body) echo_record(answer, body);
    } else {
        char seenkey[512];
        const char *prev = NULL;
        if (key) {
            snprintf(seenkey, sizeof seenkey, "%s %s", url, key);
            prev = json_string_value(json_object_get(sim->seen, seenkey));
        }
        if (prev) {
            duplicate = 1;
            snprintf(local, sizeof local, "%s", prev);
            sim->duplicates++;
            status = MHD_HTTP_OK;
            answer = json_pack("{s:s,s:b}", "id", local, "duplicate", 1);
        } else {
            snprintf(local, sizeof local, "L-%ld", ++sim->next_local);
            sim->distinct++;
            bump_path(sim, url, "distinct");
            if (key) json_object_set_new(sim->seen, seenkey, json_string(local));
            status = MHD_HTTP_CREATED;
            answer = json_pack("{s:s}", "id", local);
        }
        json_object_set_new(entry, "id", json_string(local));
    }
    json_object_set_new(entry, "status", json_integer(status));
    json_object_set_new(entry, "duplicate", json_boolean(duplicate));
    remember(sim, entry);
    pthread_mutex_unlock(&sim->lock);

    char extra[256];
    snprintf(extra, sizeof extra, "key=%s%s%s%s", key ? key : "-", local[0] ? " id=" : "", local,
             duplicate ? " duplicate" : refusal ? " refused" : status >= 300 ? " injected" : "");
    relais_simkit_log(&sim->kit, "POST", url, (unsigned)status, extra);
    return relais_simkit_reply(c, (unsigned)status, answer);
}

#define BATCH_TYPE "application/cloudevents-batch+json"

/* 1 when the request's Content-Type is the CloudEvents batch type (any case,
 * parameters after ';' allowed). */
static int is_batch(struct MHD_Connection *c)
{
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    size_t n = strlen(BATCH_TYPE);
    if (!ct || strncasecmp(ct, BATCH_TYPE, n) != 0) return 0;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t';
}

/* A batch: every element is one event, deduped on (path, its "id"). */
static enum MHD_Result handle_batch(struct sim *sim, struct MHD_Connection *c, const char *url,
                                    relais_simkit_request *rq)
{
    int status = 0;
    long delay = 0;
    pthread_mutex_lock(&sim->lock);
    long req_no = ++sim->requests;
    bump_path(sim, url, "requests");
    if (sim->fault.count != 0) {
        delay = sim->fault.delay_ms;
        if (!sim->fail_per_event) relais_simkit_fault_take(&sim->fault, &status, &delay);
    }
    pthread_mutex_unlock(&sim->lock);
    if (delay > 0) relais_simkit_sleep_ms(delay);

    json_t *common = request_entry(c, url);
    json_object_set_new(common, "request", json_integer((json_int_t)req_no));
    json_t *body = rq->body.buf ? json_loadb(rq->body.buf, rq->body.len, 0, NULL) : NULL;
    const char *refusal = NULL;
    if (status == 0) status = request_refusal(sim, c, rq, &refusal);
    if (status == 0 && !json_is_array(body)) {
        status = MHD_HTTP_BAD_REQUEST;
        refusal = "batch body is not a JSON array";
    }
    size_t n = json_is_array(body) ? json_array_size(body) : 1;
    json_object_set_new(common, "batch_size", json_integer((json_int_t)n));

    json_t *answer;
    long fresh = 0, dups = 0, bad = 0;
    pthread_mutex_lock(&sim->lock);
    if (status != 0) {
        answer = json_pack("{s:s,s:i}", "error", refusal ? refusal : "injected failure",
                           "status", status);
        if (sim->fail_echo && !refusal && body) echo_record(answer, body);
    } else {
        answer = json_array();
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_is_array(body) ? json_array_get(body, i) : NULL;
        sim->raw++;
        bump_path(sim, url, "raw");
        json_t *entry = json_deep_copy(common);
        json_object_set_new(entry, "seq", json_integer((json_int_t)sim->raw));
        json_object_set_new(entry, "batch_index", json_integer((json_int_t)i));
        json_object_set_new(entry, "event", e ? json_incref(e) : json_null());
        const char *eid = json_string_value(json_object_get(e, "id"));
        json_object_set_new(entry, "ce_id", eid ? json_string(eid) : json_null());
        json_t *et = json_object_get(e, "type");
        json_object_set_new(entry, "ce_type", json_is_string(et) ? json_incref(et) : json_null());
        int es = status, duplicate = 0;
        const char *err = refusal;
        char local[64] = "";
        long unused_delay;
        if (es == 0 && sim->fail_per_event && sim->fault.status
            && relais_simkit_fault_take(&sim->fault, &es, &unused_delay)) {
            err = "injected failure";
        } else if (es == 0 && (!json_is_object(e) || !eid || !*eid)) {
            es = MHD_HTTP_BAD_REQUEST;
            err = "element is not a JSON object with a non-empty \"id\"";
        }
        if (es != 0) {
            sim->failed++;
            if (status == 0) {
                bad++;
                json_array_append_new(answer, json_pack("{s:i,s:s}", "status", es, "error", err));
            }
        } else {
            char seenkey[512];
            snprintf(seenkey, sizeof seenkey, "%s %s", url, eid);
            const char *prev = json_string_value(json_object_get(sim->seen, seenkey));
            if (prev) {
                duplicate = 1;
                dups++;
                snprintf(local, sizeof local, "%s", prev);
                sim->duplicates++;
                es = MHD_HTTP_OK;
                json_array_append_new(answer, json_pack("{s:s,s:b}", "id", local, "duplicate", 1));
            } else {
                fresh++;
                snprintf(local, sizeof local, "L-%ld", ++sim->next_local);
                sim->distinct++;
                bump_path(sim, url, "distinct");
                json_object_set_new(sim->seen, seenkey, json_string(local));
                es = MHD_HTTP_CREATED;
                json_array_append_new(answer, json_pack("{s:s}", "id", local));
            }
            json_object_set_new(entry, "id", json_string(local));
        }
        json_object_set_new(entry, "status", json_integer(es));
        json_object_set_new(entry, "duplicate", json_boolean(duplicate));
        remember(sim, entry);
    }
    pthread_mutex_unlock(&sim->lock);
    if (status == 0) status = bad ? 207 : fresh ? MHD_HTTP_CREATED : MHD_HTTP_OK;
    json_decref(common);
    json_decref(body);

    char extra[256];
    snprintf(extra, sizeof extra, "batch=%zu new=%ld duplicate=%ld failed=%ld%s", n, fresh, dups,
             refusal ? (long)n : bad, refusal ? " refused" : status >= 300 ? " injected" : "");
    relais_simkit_log(&sim->kit, "POST", url, (unsigned)status, extra);
    return relais_simkit_reply(c, (unsigned)status, answer);
}

static enum MHD_Result handle_fail(struct sim *sim, struct MHD_Connection *c, relais_simkit_request *rq)
{
    json_t *o = rq->body.buf ? json_loadb(rq->body.buf, rq->body.len, 0, NULL) : NULL;
    json_t *st = json_object_get(o, "status"), *pe = json_object_get(o, "per_event"),
           *cl = json_object_get(o, "close"), *ec = json_object_get(o, "echo");
    relais_simkit_fault f;
    if (relais_simkit_fault_parse(o, "status", 100, 599, &f) != 0 || (cl && !json_is_boolean(cl))
        || (ec && !json_is_boolean(ec))
        || (pe && !json_is_boolean(pe)) || (json_is_true(pe) && !st)) {
        json_decref(o);
        relais_simkit_log(&sim->kit, "POST", "/_sim/fail", 400, NULL);
        return relais_simkit_reply(c, MHD_HTTP_BAD_REQUEST,
                                   json_pack("{s:s}", "error",
                                             "expected {\"status\":100..599,\"delay_ms\":N,\"count\":N,"
                                             "\"per_event\":bool,\"close\":bool,\"echo\":bool} (per_event needs a "
                                             "status)"));
    }
    pthread_mutex_lock(&sim->lock);
    sim->fault = f;
    sim->fail_per_event = json_is_true(pe);
    sim->fail_close = json_is_true(cl);
    sim->fail_echo = json_is_true(ec);
    if (sim->fail_close && !sim->fault.status) sim->fault.status = 599;   /* counted as a failure */
    pthread_mutex_unlock(&sim->lock);
    json_decref(o);
    relais_simkit_log(&sim->kit, "POST", "/_sim/fail", 200, NULL);
    return relais_simkit_reply(c, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct sim *sim = cls;
    enum MHD_Result ret;
    if (relais_simkit_upload(con_cls, upload_data, upload_data_size, (size_t)SIM_MAX_BODY, &ret)) return ret;
    relais_simkit_request *rq = *con_cls;
    int post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    if (post && (strcmp(url, "/events") == 0 || (strncmp(url, "/in/", 4) == 0 && url[4])))
        return is_batch(c) ? handle_batch(sim, c, url, rq) : handle_event(sim, c, url, rq);
    if (get && strcmp(url, "/_sim/stats") == 0) {
        pthread_mutex_lock(&sim->lock);
        /* a deep copy: the answer is serialised after the lock is released, while
         * other connections keep counting into sim->paths */
        json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:o}", "raw", (json_int_t)sim->raw,
                              "distinct", (json_int_t)sim->distinct,
                              "duplicates", (json_int_t)sim->duplicates,
                              "failed", (json_int_t)sim->failed,
                              "requests", (json_int_t)sim->requests,
                              "connections", (json_int_t)sim->connections, "paths", json_deep_copy(sim->paths));
        pthread_mutex_unlock(&sim->lock);
        relais_simkit_log(&sim->kit, method, url, 200, NULL);
        return relais_simkit_reply(c, MHD_HTTP_OK, o);
    }
    if (get && strcmp(url, "/_sim/events") == 0) {
        const char *only = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "path");
        json_t *out = json_array();
        pthread_mutex_lock(&sim->lock);
        size_t i;
        json_t *e;
        json_array_foreach(sim->events, i, e) {
            if (!only || strcmp(json_string_value(json_object_get(e, "path")), only) == 0)
                json_array_append_new(out, json_deep_copy(e));
        }
        pthread_mutex_unlock(&sim->lock);
        relais_simkit_log(&sim->kit, method, url, 200, NULL);
        return relais_simkit_reply(c, MHD_HTTP_OK, out);
    }
    if (post && strcmp(url, "/_sim/fail") == 0) return handle_fail(sim, c, rq);
    if (post && strcmp(url, "/_sim/reset") == 0) {
        pthread_mutex_lock(&sim->lock);
        sim->raw = sim->distinct = sim->duplicates = sim->failed = sim->connections = 0;
        sim->requests = 0;
        sim->next_local = 0;
        json_object_clear(sim->seen);
        json_array_clear(sim->events);
        json_object_clear(sim->paths);
        sim->fault = (relais_simkit_fault){ 0 };
        sim->fail_per_event = sim->fail_close = sim->fail_echo = 0;
        pthread_mutex_unlock(&sim->lock);
        relais_simkit_log(&sim->kit, method, url, 200, NULL);
        return relais_simkit_reply(c, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
    }
    relais_simkit_log(&sim->kit, method, url, 404, NULL);
    return relais_simkit_reply(c, MHD_HTTP_NOT_FOUND, json_pack("{s:s}", "error", "not found"));
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct sim *sim = cls;
    if (toe != MHD_CONNECTION_NOTIFY_STARTED) return;
    pthread_mutex_lock(&sim->lock);
    sim->connections++;
    pthread_mutex_unlock(&sim->lock);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: relais-sim-http --listen HOST:PORT [--port-file FILE] [--hmac-secret S]\n"
            "                       [--token T] [--keep N] [--quiet]\n"
            "  a fake destination for the http sink; POST /events or /in/<name>,\n"
            "  control API under /_sim/ (stats, events, fail, reset); see connectors/http/README.md\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        RELAIS_SIMKIT_LONGOPTS,
        { "hmac-secret", required_argument, NULL, 's' },
        { "token", required_argument, NULL, 't' },
        { "keep", required_argument, NULL, 'k' },
        { NULL, 0, NULL, 0 }
    };
    struct sim sim;
    memset(&sim, 0, sizeof sim);
    sim.kit.name = "sim-http";
    sim.keep = 10000;
    int opt;
    while ((opt = getopt_long(argc, argv, "l:p:s:t:k:qh", longopts, NULL)) != -1) {
        if (relais_simkit_option(&sim.kit, opt, optarg)) continue;
        switch (opt) {
        case 's': sim.hmac_secret = optarg; break;
        case 't': sim.token = optarg; break;
        case 'k': sim.keep = (size_t)strtoul(optarg, NULL, 10); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!sim.kit.listen) {
        usage(stderr);
        return 2;
    }
    if (relais_simkit_resolve(&sim.kit, sim.kit.listen, &sim.kit.at) != 0) return 2;
    pthread_mutex_init(&sim.lock, NULL);
    sim.seen = json_object();
    sim.events = json_array();
    sim.paths = json_object();

    const struct MHD_OptionItem extra[] = {
        { MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, &sim },
        { MHD_OPTION_END, 0, NULL }
    };
    struct MHD_Daemon *d = relais_simkit_listen(&sim.kit, on_request, &sim, relais_simkit_completed, extra);
    if (!d) return 1;
    if (relais_simkit_ready(&sim.kit, d) != 0) return 1;
    relais_logf(RELAIS_LOG_INFO, "sim-http", "listening on %s (port %d)", sim.kit.listen, sim.kit.bound);

    relais_simkit_wait(&sim.kit, -1);
    MHD_stop_daemon(d);
    json_decref(sim.seen);
    json_decref(sim.events);
    json_decref(sim.paths);
    pthread_mutex_destroy(&sim.lock);
    return 0;
}
