/*
 * sim_sms.c - relais-sim-sms: a fake SMS gateway (HTTP API, libmicrohttpd)
 * for the notify connector, in tests and in the demo.
 *
 *   relais-sim-sms --listen 127.0.0.1:PORT [--port-file F] [--key K]
 *                  [--key-header X-API-Key] [--keep N] [--quiet]
 *
 * Send endpoint, modelled on the HTTP APIs of French SMS gateways:
 *   POST /api/sms   header <key-header>: <key> (when --key is given)
 *                   body {"to": "+33612345678" | "0612345678", "text": "...",
 *                         "sender": "MAIRIE", "reference": "<client id>"}
 *   201 {"id":"SMS-<n>","status":"queued","segments":S}   a new message
 *   200 {"id":"<same>","status":"queued","duplicate":true} same reference again:
 *                                                           nothing sent twice
 *   401 {"error":..}  missing or wrong key
 *   400 {"error":..}  body not a JSON object
 *   422 {"error":..}  bad number, empty or too long text (1600 characters)
 * Control API (tests):
 *   GET  /_sim/messages   [{"id","to","text","sender","reference","segments","seq"}]
 *   GET  /_sim/stats      {"requests","sent","duplicates","failed","refused"}
 *   POST /_sim/fail       {"status":503,"count":3,"delay_ms":2000} (each optional;
 *                         count -1, the default, = until reset or the next fail)
 *   POST /_sim/reset      forget everything
 * One log line per request on stderr (method, path, status; never the
 * number or the text), unless --quiet. SIGINT/SIGTERM stop it.
 * See connectors/notify/README.md.
 *
 * What every simulator does (options, daemon, port file, signals, request
 * log, bodies, /_sim/fail) is hub/simkit.h's.
 *
 * Threads: MHD runs one thread per connection. All simulator state (struct
 * sim) is guarded by sim.lock; request bodies belong to their connection.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <microhttpd.h>
#include <jansson.h>
#include "relais/relais.h"
#include "simkit.h"
#include "notify_int.h"

#define SIM_MAX_BODY (64L * 1024)
#define SMS_MAX_TEXT 1600

struct sim {
    pthread_mutex_t lock;
    long    requests, sent, duplicates, failed, refused;
    long    next_id;
    json_t *messages;     /* the last `keep` messages sent */
    json_t *refs;         /* reference -> message id */
    size_t  keep;
    relais_simkit_fault fault;
    /* read-only after start */
    relais_simkit kit;
    const char *key;
    const char *key_header;
};

/* Characters (code points) of UTF-8 text. */
static size_t chars(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xC0) != 0x80) n++;
    return n;
}

/* 1 when every character is in the GSM 03.38 basic set (ASCII subset plus
 * a few accented letters): such a text has 160 characters per SMS, others 70. */
static int gsm7(const char *s)
{
    static const char *const extra[] = { "é", "è", "à", "ù", "ì", "ò", "Ç", "ç", "É", "Ä", "Ö", "Ñ",
                                         "Ü", "ä", "ö", "ñ", "ü", "£", "¥", "§", "¿", "¡", "ß", NULL };
    for (const char *p = s; *p;) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x80) {
            if (c == '`') return 0;
            p++;
            continue;
        }
        int found = 0;
        for (int i = 0; extra[i] && !found; i++) {
            size_t l = strlen(extra[i]);
            if (strncmp(p, extra[i], l) == 0) {
                p += l;
                found = 1;
            }
        }
        if (!found) return 0;
    }
    return 1;
}

static long segments(const char *text)
{
    size_t n = chars(text);
    int g = gsm7(text);
    size_t one = g ? 160 : 70, multi = g ? 153 : 67;
    if (n <= one) return 1;
    return (long)((n + multi - 1) / multi);
}

static enum MHD_Result handle_send(struct sim *sim, struct MHD_Connection *c, const char *url,
                                   relais_simkit_request *rq)
{
    int status = 0;
    long delay = 0;
    pthread_mutex_lock(&sim->lock);
    sim->requests++;
    relais_simkit_fault_take(&sim->fault, &status, &delay);
    pthread_mutex_unlock(&sim->lock);
    if (delay > 0) relais_simkit_sleep_ms(delay);
    if (status != 0) {
        pthread_mutex_lock(&sim->lock);
        sim->failed++;
        pthread_mutex_unlock(&sim->lock);
        relais_simkit_log(&sim->kit, "POST", url, (unsigned)status, "injected");
        return relais_simkit_reply(c, (unsigned)status, json_pack("{s:s}", "error", "injected failure"));
    }
    const char *why = NULL;
    if (sim->key) {
        const char *k = MHD_lookup_connection_value(c, MHD_HEADER_KIND, sim->key_header);
        if (!k || strcmp(k, sim->key) != 0) {
            status = MHD_HTTP_UNAUTHORIZED;
            why = "missing or wrong API key";
        }
    }
    json_t *body = NULL;
    if (!status && rq->body.too_large) {
        status = MHD_HTTP_CONTENT_TOO_LARGE;
        why = "body too large";
    }
    if (!status) {
        body = rq->body.buf ? json_loadb(rq->body.buf, rq->body.len, JSON_REJECT_DUPLICATES, NULL) : NULL;
        if (!json_is_object(body)) {
            status = MHD_HTTP_BAD_REQUEST;
            why = "body is not a JSON object";
        }
    }
    const char *to = json_string_value(json_object_get(body, "to"));
    const char *text = json_string_value(json_object_get(body, "text"));
    json_t *sender = json_object_get(body, "sender"), *reference = json_object_get(body, "reference");
    if (!status) {
        if (!notify_phone_valid(to)) why = "'to' is not a phone number (+33612345678 or 0612345678)";
        else if (!text || !*text) why = "'text' is missing or empty";
        else if (chars(text) > SMS_MAX_TEXT) why = "'text' is longer than 1600 characters";
        else if (sender && (!json_is_string(sender) || chars(json_string_value(sender)) > 11))
            why = "'sender' must be a string of at most 11 characters";
        else if (reference && (!json_is_string(reference) || json_string_length(reference) > 200))
            why = "'reference' must be a string of at most 200 characters";
        if (why) status = MHD_HTTP_UNPROCESSABLE_CONTENT;
    }
    if (status) {
        pthread_mutex_lock(&sim->lock);
        sim->refused++;
        pthread_mutex_unlock(&sim->lock);
        json_decref(body);
        relais_simkit_log(&sim->kit, "POST", url, (unsigned)status, why);
        return relais_simkit_reply(c, (unsigned)status, json_pack("{s:s}", "error", why));
    }
    const char *ref = json_string_value(reference);
    char id[32];
    int dup = 0;
    long segs = segments(text);
    pthread_mutex_lock(&sim->lock);
    const char *prev = ref ? json_string_value(json_object_get(sim->refs, ref)) : NULL;
    if (prev) {
        dup = 1;
        snprintf(id, sizeof id, "%s", prev);
        sim->duplicates++;
    } else {
        snprintf(id, sizeof id, "SMS-%ld", ++sim->next_id);
        sim->sent++;
        if (ref) json_object_set_new(sim->refs, ref, json_string(id));
        json_t *m = json_pack("{s:s,s:s,s:s,s:O,s:O,s:I,s:I}", "id", id, "to", to, "text", text,
                              "sender", sender ? sender : json_null(), "reference",
                              reference ? reference : json_null(), "segments", (json_int_t)segs,
                              "seq", (json_int_t)sim->next_id);
        json_array_append_new(sim->messages, m);
        while (json_array_size(sim->messages) > sim->keep) json_array_remove(sim->messages, 0);
    }
    pthread_mutex_unlock(&sim->lock);
    json_decref(body);
    char extra[96];
    snprintf(extra, sizeof extra, "id=%s%s", id, dup ? " duplicate" : "");
    relais_simkit_log(&sim->kit, "POST", url, dup ? 200 : 201, extra);
    json_t *ans = json_pack("{s:s,s:s,s:I}", "id", id, "status", "queued", "segments", (json_int_t)segs);
    if (dup) json_object_set_new(ans, "duplicate", json_true());
    return relais_simkit_reply(c, dup ? MHD_HTTP_OK : MHD_HTTP_CREATED, ans);
}

static enum MHD_Result handle_fail(struct sim *sim, struct MHD_Connection *c, relais_simkit_request *rq)
{
    json_t *o = rq->body.buf ? json_loadb(rq->body.buf, rq->body.len, 0, NULL) : NULL;
    relais_simkit_fault f;
    if (relais_simkit_fault_parse(o, "status", 100, 599, &f) != 0
        || (!json_object_get(o, "status") && !json_object_get(o, "delay_ms"))) {
        json_decref(o);
        relais_simkit_log(&sim->kit, "POST", "/_sim/fail", 400, NULL);
        return relais_simkit_reply(c, MHD_HTTP_BAD_REQUEST,
                                   json_pack("{s:s}", "error",
                                             "expected {\"status\":100..599,\"delay_ms\":N,\"count\":N}"));
    }
    pthread_mutex_lock(&sim->lock);
    sim->fault = f;
    pthread_mutex_unlock(&sim->lock);
    json_decref(o);
    relais_simkit_log(&sim->kit, "POST", "/_sim/fail", 200, NULL);
    return relais_simkit_reply(c, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct sim *sim = cls;
    enum MHD_Result ret;
    if (relais_simkit_upload(con_cls, upload_data, upload_data_size, (size_t)SIM_MAX_BODY, &ret)) return ret;
    relais_simkit_request *rq = *con_cls;
    int post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    if (post && strcmp(url, "/api/sms") == 0) return handle_send(sim, c, url, rq);
    if (get && strcmp(url, "/_sim/messages") == 0) {
        pthread_mutex_lock(&sim->lock);
        json_t *out = json_deep_copy(sim->messages);
        pthread_mutex_unlock(&sim->lock);
        relais_simkit_log(&sim->kit, method, url, 200, NULL);
        return relais_simkit_reply(c, MHD_HTTP_OK, out);
    }
    if (get && strcmp(url, "/_sim/stats") == 0) {
        pthread_mutex_lock(&sim->lock);
        json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:I}", "requests", (json_int_t)sim->requests, "sent",
                              (json_int_t)sim->sent, "duplicates", (json_int_t)sim->duplicates, "failed",
                              (json_int_t)sim->failed, "refused", (json_int_t)sim->refused);
        pthread_mutex_unlock(&sim->lock);
        relais_simkit_log(&sim->kit, method, url, 200, NULL);
        return relais_simkit_reply(c, MHD_HTTP_OK, o);
    }
    if (post && strcmp(url, "/_sim/fail") == 0) return handle_fail(sim, c, rq);
    if (post && strcmp(url, "/_sim/reset") == 0) {
        pthread_mutex_lock(&sim->lock);
        sim->requests = sim->sent = sim->duplicates = sim->failed = sim->refused = 0;
        sim->next_id = 0;
        json_array_clear(sim->messages);
        json_object_clear(sim->refs);
        sim->fault = (relais_simkit_fault){ 0 };
        pthread_mutex_unlock(&sim->lock);
        relais_simkit_log(&sim->kit, method, url, 200, NULL);
        return relais_simkit_reply(c, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
    }
    relais_simkit_log(&sim->kit, method, url, 404, NULL);
    return relais_simkit_reply(c, MHD_HTTP_NOT_FOUND, json_pack("{s:s}", "error", "not found"));
}

static void usage(FILE *f)
{
    fprintf(f, "usage: relais-sim-sms --listen HOST:PORT [--port-file FILE] [--key KEY]\n"
               "                      [--key-header NAME] [--keep N] [--quiet]\n"
               "  a fake SMS gateway: POST /api/sms, control API under /_sim/\n"
               "  (messages, stats, fail, reset); see connectors/notify/README.md\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        RELAIS_SIMKIT_LONGOPTS,
        { "key", required_argument, NULL, 'k' },
        { "key-header", required_argument, NULL, 'H' },
        { "keep", required_argument, NULL, 'n' },
        { NULL, 0, NULL, 0 }
    };
    struct sim sim;
    memset(&sim, 0, sizeof sim);
    sim.kit.name = "sim-sms";
    sim.keep = 10000;
    sim.key_header = "X-API-Key";
    for (;;) {
        int opt = getopt_long(argc, argv, "l:p:k:H:n:qh", longopts, NULL);
        if (opt == -1) break;
        if (relais_simkit_option(&sim.kit, opt, optarg)) continue;
        switch (opt) {
        case 'k': sim.key = optarg; break;
        case 'H': sim.key_header = optarg; break;
        case 'n': sim.keep = (size_t)strtoul(optarg, NULL, 10); break;
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
    sim.messages = json_array();
    sim.refs = json_object();

    struct MHD_Daemon *d = relais_simkit_listen(&sim.kit, on_request, &sim, relais_simkit_completed, NULL);
    if (!d) return 1;
    if (relais_simkit_ready(&sim.kit, d) != 0) return 1;
    relais_logf(RELAIS_LOG_INFO, "sim-sms", "listening on http://%s:%d", sim.kit.at.host, sim.kit.bound);

    relais_simkit_wait(&sim.kit, -1);
    MHD_stop_daemon(d);
    json_decref(sim.messages);
    json_decref(sim.refs);
    pthread_mutex_destroy(&sim.lock);
    return 0;
}
