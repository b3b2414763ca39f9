/*
 * simkit.c - the common parts of the vendor simulators (see simkit.h):
 * options, the listen address, the libmicrohttpd daemon, the port file, the
 * stop signals, the request log, request bodies, JSON answers and failure
 * injection.
 *
 * Threads: no global state. relais_simkit is written by main before the
 * daemon starts, then only read; the request functions work on the state
 * of one request, owned by its connection thread; a relais_simkit_fault is
 * guarded by the caller's lock.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "relais/relais.h"
#include "simkit.h"

/* ---- Options and messages ----------------------------------------------- */

int relais_simkit_option(relais_simkit *k, int opt, const char *arg)
{
    switch (opt) {
    case 'l': k->listen = arg; return 1;
    case 'p': k->port_file = arg; return 1;
    case 'q': k->quiet = 1; return 1;
    default: return 0;
    }
}

void relais_simkit_error(const relais_simkit *k, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "relais-%s: %s\n", k->name, msg);
}

void relais_simkit_log(const relais_simkit *k, const char *method, const char *url, unsigned status,
                       const char *extra)
{
    if (k->quiet) return;
    relais_logf(RELAIS_LOG_INFO, k->name, "%s %s -> %u%s%s", method, url, status, extra ? " " : "",
                extra ? extra : "");
}

/* ---- Listening ------------------------------------------------------------ */

int relais_simkit_resolve(const relais_simkit *k, const char *listen, relais_simkit_addr *a)
{
    char err[256], portstr[16];
    memset(a, 0, sizeof *a);
    a->given = listen;
    if (relais_http_split_listen(listen, a->host, sizeof a->host, &a->port, err, sizeof err) != 0) {
        relais_simkit_error(k, "%s", err);
        return -1;
    }
    snprintf(portstr, sizeof portstr, "%d", a->port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(a->host, portstr, &hints, &ai);
    if (gai != 0 || !ai) {
        relais_simkit_error(k, "%s: %s", listen, gai_strerror(gai));
        if (ai) freeaddrinfo(ai);
        return -1;
    }
    a->v6 = ai->ai_family == AF_INET6;
    a->sslen = ai->ai_addrlen <= sizeof a->ss ? ai->ai_addrlen : sizeof a->ss;
    memcpy(&a->ss, ai->ai_addr, a->sslen);
    freeaddrinfo(ai);
    return 0;
}

void relais_simkit_block_signals(relais_simkit *k)
{
    sigemptyset(&k->stop);
    sigaddset(&k->stop, SIGINT);
    sigaddset(&k->stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &k->stop, NULL);
}

static struct MHD_Daemon *start(const relais_simkit_addr *a, int port, MHD_AccessHandlerCallback handler,
                                void *cls, MHD_RequestCompletedCallback done,
                                const struct MHD_OptionItem *extra)
{
    static const struct MHD_OptionItem none[] = { { MHD_OPTION_END, 0, NULL } };
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION
                     | MHD_USE_ERROR_LOG | MHD_USE_AUTO;
    if (a->v6) flags |= MHD_USE_IPv6;
    return MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handler, cls,
                            MHD_OPTION_ARRAY, extra ? extra : none,
                            MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&a->ss,
                            MHD_OPTION_NOTIFY_COMPLETED, done, cls,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                            MHD_OPTION_END);
}

struct MHD_Daemon *relais_simkit_listen(relais_simkit *k, MHD_AccessHandlerCallback handler, void *cls,
                                        MHD_RequestCompletedCallback done,
                                        const struct MHD_OptionItem *extra)
{
    relais_simkit_block_signals(k);
    struct MHD_Daemon *d = start(&k->at, k->at.port, handler, cls, done, extra);
    if (!d) {
        relais_simkit_error(k, "cannot listen on %s", k->at.given);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    k->bound = info ? (int)info->port : k->at.port;
    if (k->at.ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&k->at.ss)->sin_port = htons((uint16_t)k->bound);
    else if (k->at.ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&k->at.ss)->sin6_port = htons((uint16_t)k->bound);
    return d;
}

struct MHD_Daemon *relais_simkit_relisten(const relais_simkit *k, MHD_AccessHandlerCallback handler,
                                          void *cls, MHD_RequestCompletedCallback done,
                                          const struct MHD_OptionItem *extra)
{
    return start(&k->at, k->bound, handler, cls, done, extra);
}

int relais_simkit_write_port_file(const relais_simkit *k, const char *file, int port)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    FILE *f = fopen(tmp, "w");
    int bad = !f;
    if (f) {
        bad = fprintf(f, "%d\n", port) < 0;
        bad |= fclose(f) != 0;
    }
    if (bad || rename(tmp, file) != 0) {
        relais_simkit_error(k, "cannot write %s: %s", file, strerror(errno));
        return -1;
    }
    return 0;
}

int relais_simkit_ready(const relais_simkit *k, struct MHD_Daemon *d)
{
    if (!k->port_file || relais_simkit_write_port_file(k, k->port_file, k->bound) == 0) return 0;
    MHD_stop_daemon(d);
    return -1;
}

int relais_simkit_wait(const relais_simkit *k, long timeout_ms)
{
    int sig = 0;
    if (timeout_ms < 0) {
        if (sigwait(&k->stop, &sig) != 0) sig = 0;
    } else {
        struct timespec t = { timeout_ms / 1000, (timeout_ms % 1000) * 1000000L };
        sig = sigtimedwait(&k->stop, NULL, &t);
        if (sig < 0) sig = 0;
    }
    if (sig > 0) relais_logf(RELAIS_LOG_INFO, k->name, "stopping on signal %d", sig);
    return sig;
}

/* ---- Requests and answers ---------------------------------------------- */

int relais_simkit_upload(void **con_cls, const char *upload_data, size_t *upload_data_size, size_t max,
                         enum MHD_Result *ret)
{
    relais_simkit_request *rq = *con_cls;
    if (!rq) {
        rq = calloc(1, sizeof *rq);
        *ret = rq ? MHD_YES : MHD_NO;
        if (rq) rq->started = 1;
        *con_cls = rq;
        return 1;
    }
    if (!rq->started) {
        rq->started = 1;
        *ret = MHD_YES;
        return 1;
    }
    if (*upload_data_size > 0) {
        int rc = relais_http_upload_take(&rq->body, upload_data, upload_data_size, max);
        *ret = rc == 0 ? MHD_YES : MHD_NO;
        return 1;
    }
    return 0;
}

void *relais_simkit_on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    relais_simkit_request *rq = calloc(1, sizeof *rq);
    if (rq && uri) rq->uri = strdup(uri);
    return rq;
}

void relais_simkit_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                             enum MHD_RequestTerminationCode toe)
{
    relais_simkit_request *rq = *con_cls;
    if (!rq) return;
    relais_http_upload_free(&rq->body);
    free(rq->uri);
    free(rq);
    *con_cls = NULL;
}

struct MHD_Response *relais_simkit_json(json_t *body, size_t flags, const char *fallback)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY | flags) : NULL;
    json_decref(body);
    const char *t = text ? text : fallback ? fallback : "{}";
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(t), (void *)t, MHD_RESPMEM_MUST_COPY);
    free(text);
    if (r) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    return r;
}

enum MHD_Result relais_simkit_queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r)
{
    if (!r) return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result relais_simkit_reply(struct MHD_Connection *c, unsigned status, json_t *body)
{
    return relais_simkit_queue(c, status, relais_simkit_json(body, 0, NULL));
}

/* ---- Failure injection ------------------------------------------------- */

int relais_simkit_fault_parse(const json_t *o, const char *status_key, int lo, int hi,
                              relais_simkit_fault *f)
{
    const json_t *st = json_object_get(o, status_key), *ct = json_object_get(o, "count"),
                 *dl = json_object_get(o, "delay_ms");
    if (!json_is_object(o) || (st && !json_is_integer(st)) || (ct && !json_is_integer(ct))
        || (dl && !json_is_integer(dl)) || (st && (json_integer_value(st) < lo || json_integer_value(st) > hi)))
        return -1;
    f->status = st ? (int)json_integer_value(st) : 0;
    f->count = ct ? (long)json_integer_value(ct) : -1;
    f->delay_ms = dl ? (long)json_integer_value(dl) : 0;
    return 0;
}

int relais_simkit_fault_take(relais_simkit_fault *f, int *status, long *delay_ms)
{
    if (f->count == 0) return 0;
    *status = f->status;
    *delay_ms = f->delay_ms;
    if (f->count > 0) f->count--;
    return 1;
}

void relais_simkit_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}
