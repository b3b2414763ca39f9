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
 * Threads: MHD runs one thread per connection. All simulator state (struct
 * sim) is guarded by sim.lock; request bodies belong to their connection.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <microhttpd.h>
#include <jansson.h>
#include "relais/relais.h"
#include "../http/http_int.h"
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
    int     fail_status;
    long    fail_delay_ms;
    long    fail_count;   /* remaining; -1 = until changed */
    /* read-only after start */
    const char *key;
    const char *key_header;
    int     quiet;
};

struct req {
    relais_http_upload body;
};

static void sim_log(const struct sim *sim, const char *method, const char *url, unsigned status,
                    const char *extra)
{
    if (sim->quiet) return;
    relais_logf(RELAIS_LOG_INFO, "sim-sms", "%s %s -> %u%s%s", method, url, status, extra ? " " : "",
                extra ? extra : "");
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(body);
    const char *t = text ? text : "{}";
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(t), (void *)t, MHD_RESPMEM_MUST_COPY);
    free(text);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

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
                                   struct req *rq)
{
    int status = 0;
    long delay = 0;
    pthread_mutex_lock(&sim->lock);
    sim->requests++;
    if (sim->fail_count != 0) {
        status = sim->fail_status;
        delay = sim->fail_delay_ms;
        if (sim->fail_count > 0) sim->fail_count--;
    }
    pthread_mutex_unlock(&sim->lock);
    if (delay > 0) sleep_ms(delay);
    if (status != 0) {
        pthread_mutex_lock(&sim->lock);
        sim->failed++;
        pthread_mutex_unlock(&sim->lock);
        sim_log(sim, "POST", url, (unsigned)status, "injected");
        return reply(c, (unsigned)status, json_pack("{s:s}", "error", "injected failure"));
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
        sim_log(sim, "POST", url, (unsigned)status, why);
        return reply(c, (unsigned)status, json_pack("{s:s}", "error", why));
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
    sim_log(sim, "POST", url, dup ? 200 : 201, extra);
    json_t *ans = json_pack("{s:s,s:s,s:I}", "id", id, "status", "queued", "segments", (json_int_t)segs);
    if (dup) json_object_set_new(ans, "duplicate", json_true());
    return reply(c, dup ? MHD_HTTP_OK : MHD_HTTP_CREATED, ans);
}

static enum MHD_Result handle_fail(struct sim *sim, struct MHD_Connection *c, struct req *rq)
{
    json_t *o = rq->body.buf ? json_loadb(rq->body.buf, rq->body.len, 0, NULL) : NULL;
    json_t *st = json_object_get(o, "status"), *dl = json_object_get(o, "delay_ms"),
           *ct = json_object_get(o, "count");
    if (!json_is_object(o) || (st && !json_is_integer(st)) || (dl && !json_is_integer(dl))
        || (ct && !json_is_integer(ct)) || (!st && !dl)
        || (st && (json_integer_value(st) < 100 || json_integer_value(st) > 599))) {
        json_decref(o);
        sim_log(sim, "POST", "/_sim/fail", 400, NULL);
        return reply(c, MHD_HTTP_BAD_REQUEST,
                     json_pack("{s:s}", "error", "expected {\"status\":100..599,\"delay_ms\":N,\"count\":N}"));
    }
    pthread_mutex_lock(&sim->lock);
    sim->fail_status = st ? (int)json_integer_value(st) : 0;
    sim->fail_delay_ms = dl ? (long)json_integer_value(dl) : 0;
    sim->fail_count = ct ? (long)json_integer_value(ct) : -1;
    pthread_mutex_unlock(&sim->lock);
    json_decref(o);
    sim_log(sim, "POST", "/_sim/fail", 200, NULL);
    return reply(c, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct sim *sim = cls;
    struct req *rq = *con_cls;
    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (relais_http_upload_take(&rq->body, upload_data, upload_data_size, (size_t)SIM_MAX_BODY) != 0)
            return MHD_NO;
        return MHD_YES;
    }
    int post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    if (post && strcmp(url, "/api/sms") == 0) return handle_send(sim, c, url, rq);
    if (get && strcmp(url, "/_sim/messages") == 0) {
        pthread_mutex_lock(&sim->lock);
        json_t *out = json_deep_copy(sim->messages);
        pthread_mutex_unlock(&sim->lock);
        sim_log(sim, method, url, 200, NULL);
        return reply(c, MHD_HTTP_OK, out);
    }
    if (get && strcmp(url, "/_sim/stats") == 0) {
        pthread_mutex_lock(&sim->lock);
        json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:I}", "requests", (json_int_t)sim->requests, "sent",
                              (json_int_t)sim->sent, "duplicates", (json_int_t)sim->duplicates, "failed",
                              (json_int_t)sim->failed, "refused", (json_int_t)sim->refused);
        pthread_mutex_unlock(&sim->lock);
        sim_log(sim, method, url, 200, NULL);
        return reply(c, MHD_HTTP_OK, o);
    }
    if (post && strcmp(url, "/_sim/fail") == 0) return handle_fail(sim, c, rq);
    if (post && strcmp(url, "/_sim/reset") == 0) {
        pthread_mutex_lock(&sim->lock);
        sim->requests = sim->sent = sim->duplicates = sim->failed = sim->refused = 0;
        sim->next_id = 0;
        json_array_clear(sim->messages);
        json_object_clear(sim->refs);
        sim->fail_status = 0;
        sim->fail_delay_ms = 0;
        sim->fail_count = 0;
        pthread_mutex_unlock(&sim->lock);
        sim_log(sim, method, url, 200, NULL);
        return reply(c, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
    }
    sim_log(sim, method, url, 404, NULL);
    return reply(c, MHD_HTTP_NOT_FOUND, json_pack("{s:s}", "error", "not found"));
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct req *rq = *con_cls;
    if (!rq) return;
    relais_http_upload_free(&rq->body);
    free(rq);
    *con_cls = NULL;
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
        { "listen", required_argument, NULL, 'l' },
        { "port-file", required_argument, NULL, 'p' },
        { "key", required_argument, NULL, 'k' },
        { "key-header", required_argument, NULL, 'H' },
        { "keep", required_argument, NULL, 'n' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *listen = NULL, *port_file = NULL;
    struct sim sim;
    memset(&sim, 0, sizeof sim);
    sim.keep = 10000;
    sim.key_header = "X-API-Key";
    for (;;) {
        int opt = getopt_long(argc, argv, "l:p:k:H:n:qh", longopts, NULL);
        if (opt == -1) break;
        switch (opt) {
        case 'l': listen = optarg; break;
        case 'p': port_file = optarg; break;
        case 'k': sim.key = optarg; break;
        case 'H': sim.key_header = optarg; break;
        case 'n': sim.keep = (size_t)strtoul(optarg, NULL, 10); break;
        case 'q': sim.quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!listen) {
        usage(stderr);
        return 2;
    }
    char host[256], err[256];
    int port;
    if (relais_http_split_listen(listen, host, sizeof host, &port, err, sizeof err) != 0) {
        fprintf(stderr, "relais-sim-sms: %s\n", err);
        return 2;
    }
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host, portstr, &hints, &ai);
    if (gai != 0 || !ai) {
        fprintf(stderr, "relais-sim-sms: %s: %s\n", listen, gai_strerror(gai));
        return 2;
    }
    pthread_mutex_init(&sim.lock, NULL);
    sim.messages = json_array();
    sim.refs = json_object();

    sigset_t stopset;
    sigemptyset(&stopset);
    sigaddset(&stopset, SIGINT);
    sigaddset(&stopset, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stopset, NULL);

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG
                     | MHD_USE_AUTO;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    struct MHD_Daemon *d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, &sim,
                                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, &sim,
                                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!d) {
        fprintf(stderr, "relais-sim-sms: cannot listen on %s\n", listen);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int bound = info ? (int)info->port : port;
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        int bad = !f;
        if (f) {
            bad = fprintf(f, "%d\n", bound) < 0;
            bad |= fclose(f) != 0;
        }
        if (bad || rename(tmp, port_file) != 0) {
            fprintf(stderr, "relais-sim-sms: cannot write %s: %s\n", port_file, strerror(errno));
            MHD_stop_daemon(d);
            return 1;
        }
    }
    relais_logf(RELAIS_LOG_INFO, "sim-sms", "listening on http://%s:%d", host, bound);

    int sig = 0;
    sigwait(&stopset, &sig);
    relais_logf(RELAIS_LOG_INFO, "sim-sms", "stopping on signal %d", sig);
    MHD_stop_daemon(d);
    json_decref(sim.messages);
    json_decref(sim.refs);
    pthread_mutex_destroy(&sim.lock);
    return 0;
}
