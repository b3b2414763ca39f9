/*
 * sim_smtp.c - relais-sim-smtp: a small SMTP server (RFC 5321 subset) that
 * plays the town's mail relay for the notify connector, in tests and in the
 * demo. It delivers nothing: it keeps the messages it receives.
 *
 *   relais-sim-smtp --listen 127.0.0.1:PORT --control 127.0.0.1:PORT
 *                   [--port-file F] [--control-port-file F]
 *                   [--auth USER:PASSWORD] [--max-size BYTES] [--keep N] [--quiet]
 *
 * SMTP (loopback): EHLO/HELO, AUTH PLAIN (only with --auth, and then
 * required before MAIL), MAIL FROM, RCPT TO, DATA with dot-stuffing, RSET,
 * NOOP, VRFY, HELP, QUIT; replies 220/250/354/221 and the usual 5xx for
 * syntax and sequence errors (the protocol is in notify_smtpd.c).
 * Control API (HTTP, libmicrohttpd):
 *   GET  /_sim/messages   [{"id","from","to":[..],"subject","body","header_from",
 *                           "header_to","message_id","date","content_type",
 *                           "transfer_encoding","headers":{..},"raw","size"}]
 *                         from/to: the envelope; subject and body decoded
 *   GET  /_sim/stats      {"connections","messages","failures"}
 *   POST /_sim/fail       {"code":451|550|..., "count":N, "stage":"rcpt"|"data",
 *                          "delay_ms":N}: the next N answers to RCPT TO (or to
 *                         DATA) are that code, after the delay; count -1, the
 *                         default, = until reset or the next fail; a delay
 *                         alone slows the answers down (timeouts)
 *   POST /_sim/reset      forget everything
 * Port 0 picks a free port; the bound ports are logged ("listening on
 * smtp://127.0.0.1:P, control on http://127.0.0.1:C") and written to the
 * port files. One log line per message or injected failure (never
 * addresses or text), unless --quiet. SIGINT/SIGTERM stop it.
 *
 * Threads: the main thread waits for signals; one acceptor thread; one
 * thread per SMTP connection, which owns its session and buffers; MHD's
 * threads for the control API. Everything shared (struct sim) is guarded by
 * sim.lock; `stopping` and the connection count by the same lock, with
 * sim.idle signalled when the last connection thread ends.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <microhttpd.h>
#include <jansson.h>
#include "relais/relais.h"
#include "../http/http_int.h"
#include "notify_smtpd.h"

#define CONTROL_MAX_BODY (64L * 1024)
#define IDLE_TIMEOUT_MS 60000

struct sim {
    pthread_mutex_t lock;
    pthread_cond_t  idle;
    long    connections, messages, failures;
    long    active;          /* connection threads running */
    int     stopping;
    json_t *store;           /* the last `keep` messages */
    size_t  keep;
    int     fail_code;       /* 0: none */
    int     fail_stage;      /* NOTIFY_SMTPD_RCPT or _DATA */
    long    fail_delay_ms;
    long    fail_count;      /* remaining; -1 = until changed */
    /* read-only after start */
    size_t  max_size;
    const char *user, *password;
    int     quiet;
    int     listen_fd;
};

struct conn {
    struct sim *sim;
    int fd;
};

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* ---- SMTP side ----------------------------------------------------------------- */

static int hook_fail(void *cls, notify_smtpd_stage stage)
{
    struct sim *sim = cls;
    int code = 0;
    long delay = 0;
    pthread_mutex_lock(&sim->lock);
    if (sim->fail_count != 0 && (int)stage == sim->fail_stage) {
        code = sim->fail_code;
        delay = sim->fail_delay_ms;
        if (sim->fail_count > 0) sim->fail_count--;
        if (code) sim->failures++;
    }
    pthread_mutex_unlock(&sim->lock);
    if (delay > 0) sleep_ms(delay);
    if (code && !sim->quiet)
        relais_logf(RELAIS_LOG_INFO, "sim-smtp", "%s answered %d (injected)",
                    stage == NOTIFY_SMTPD_RCPT ? "RCPT" : "DATA", code);
    return code;
}

static void hook_message(void *cls, const char *from, json_t *rcpts, const char *data, size_t len,
                         char *id, size_t idlen)
{
    struct sim *sim = cls;
    json_t *m = notify_smtpd_decode(data, len);
    if (!m) m = json_object();
    /* the raw text, for tests that look at the encoding itself */
    json_t *raw = json_stringn(data, len);
    json_object_set_new(m, "raw", raw ? raw : json_null());
    json_t *f = json_string(from);
    json_object_set_new(m, "from", f ? f : json_null());
    json_object_set_new(m, "to", json_deep_copy(rcpts));
    json_object_set_new(m, "size", json_integer((json_int_t)len));
    pthread_mutex_lock(&sim->lock);
    long n = ++sim->messages;
    snprintf(id, idlen, "M-%ld", n);
    json_object_set_new(m, "id", json_string(id));
    json_array_append_new(sim->store, m);
    while (json_array_size(sim->store) > sim->keep) json_array_remove(sim->store, 0);
    pthread_mutex_unlock(&sim->lock);
    if (!sim->quiet) relais_logf(RELAIS_LOG_INFO, "sim-smtp", "message %s received, %zu bytes", id, len);
}

static int stopping(struct sim *sim)
{
    pthread_mutex_lock(&sim->lock);
    int s = sim->stopping;
    pthread_mutex_unlock(&sim->lock);
    return s;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void *conn_main(void *arg)
{
    struct conn *cn = arg;
    struct sim *sim = cn->sim;
    int fd = cn->fd;
    free(cn);
    notify_smtpd_hooks hooks = { .fail = hook_fail, .message = hook_message, .cls = sim };
    notify_smtpd *s = notify_smtpd_new("relais-sim-smtp.localhost", &hooks, sim->max_size, sim->user,
                                       sim->password);
    notify_buf out = { 0 };
    char line[NOTIFY_SMTPD_LINE_MAX + 1];
    size_t ll = 0;
    int too_long = 0, done = !s;
    if (s) notify_smtpd_greeting(s, &out);
    long idle = 0;
    while (!done) {
        if (out.len) {
            if (send_all(fd, out.p, out.len) != 0) break;
            out.len = 0;
        }
        if (stopping(sim)) break;
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int pr = poll(&pfd, 1, 200);
        if (pr < 0 && errno == EINTR) continue;
        if (pr < 0) break;
        if (pr == 0) {
            idle += 200;
            if (idle >= IDLE_TIMEOUT_MS) {
                notify_buf_adds(&out, "421 4.4.2 idle for too long, closing\r\n");
                send_all(fd, out.p, out.len);
                break;
            }
            continue;
        }
        idle = 0;
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        for (ssize_t i = 0; i < n && !done; i++) {
            char c = buf[i];
            if (c != '\n') {
                if (ll < NOTIFY_SMTPD_LINE_MAX) line[ll++] = c;
                else too_long = 1;
                continue;
            }
            size_t len = ll > 0 && line[ll - 1] == '\r' ? ll - 1 : ll;
            done = notify_smtpd_line(s, line, len, too_long, &out);
            ll = 0;
            too_long = 0;
            if (out.oom) done = 1;
        }
        if (done && out.len) send_all(fd, out.p, out.len);
    }
    free(out.p);
    notify_smtpd_free(s);
    shutdown(fd, SHUT_RDWR);
    close(fd);
    pthread_mutex_lock(&sim->lock);
    if (--sim->active == 0) pthread_cond_broadcast(&sim->idle);
    pthread_mutex_unlock(&sim->lock);
    return NULL;
}

static void *accept_main(void *arg)
{
    struct sim *sim = arg;
    while (!stopping(sim)) {
        struct pollfd pfd = { .fd = sim->listen_fd, .events = POLLIN };
        int pr = poll(&pfd, 1, 200);
        if (pr <= 0) continue;
        int fd = accept(sim->listen_fd, NULL, NULL);
        if (fd < 0) continue;
        struct conn *cn = malloc(sizeof *cn);
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_mutex_lock(&sim->lock);
        sim->connections++;
        sim->active++;
        pthread_mutex_unlock(&sim->lock);
        if (cn) {
            cn->sim = sim;
            cn->fd = fd;
        }
        if (!cn || pthread_create(&t, &attr, conn_main, cn) != 0) {
            free(cn);
            close(fd);
            pthread_mutex_lock(&sim->lock);
            if (--sim->active == 0) pthread_cond_broadcast(&sim->idle);
            pthread_mutex_unlock(&sim->lock);
        }
        pthread_attr_destroy(&attr);
    }
    return NULL;
}

/* ---- Control API --------------------------------------------------------------- */

struct req {
    relais_http_upload body;
};

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

static enum MHD_Result handle_fail(struct sim *sim, struct MHD_Connection *c, struct req *rq)
{
    json_t *o = rq->body.buf ? json_loadb(rq->body.buf, rq->body.len, 0, NULL) : NULL;
    json_t *code = json_object_get(o, "code"), *ct = json_object_get(o, "count"),
           *st = json_object_get(o, "stage"), *dl = json_object_get(o, "delay_ms");
    const char *stage = json_string_value(st);
    if (!json_is_object(o) || (code && !json_is_integer(code)) || (ct && !json_is_integer(ct))
        || (dl && !json_is_integer(dl)) || (!code && !dl) || (st && !stage)
        || (stage && strcmp(stage, "rcpt") != 0 && strcmp(stage, "data") != 0)
        || (code && (json_integer_value(code) < 400 || json_integer_value(code) > 599))) {
        json_decref(o);
        return reply(c, MHD_HTTP_BAD_REQUEST,
                     json_pack("{s:s}", "error",
                               "expected {\"code\":400..599,\"count\":N,\"stage\":\"rcpt\"|\"data\",\"delay_ms\":N}"));
    }
    pthread_mutex_lock(&sim->lock);
    sim->fail_code = code ? (int)json_integer_value(code) : 0;
    sim->fail_count = ct ? (long)json_integer_value(ct) : -1;
    sim->fail_stage = stage && strcmp(stage, "data") == 0 ? NOTIFY_SMTPD_DATA : NOTIFY_SMTPD_RCPT;
    sim->fail_delay_ms = dl ? (long)json_integer_value(dl) : 0;
    pthread_mutex_unlock(&sim->lock);
    json_decref(o);
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
        if (relais_http_upload_take(&rq->body, upload_data, upload_data_size, (size_t)CONTROL_MAX_BODY) != 0)
            return MHD_NO;
        return MHD_YES;
    }
    int post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    if (get && strcmp(url, "/_sim/messages") == 0) {
        pthread_mutex_lock(&sim->lock);
        json_t *out = json_deep_copy(sim->store);
        pthread_mutex_unlock(&sim->lock);
        return reply(c, MHD_HTTP_OK, out);
    }
    if (get && strcmp(url, "/_sim/stats") == 0) {
        pthread_mutex_lock(&sim->lock);
        json_t *o = json_pack("{s:I,s:I,s:I}", "connections", (json_int_t)sim->connections, "messages",
                              (json_int_t)sim->messages, "failures", (json_int_t)sim->failures);
        pthread_mutex_unlock(&sim->lock);
        return reply(c, MHD_HTTP_OK, o);
    }
    if (post && strcmp(url, "/_sim/fail") == 0) return handle_fail(sim, c, rq);
    if (post && strcmp(url, "/_sim/reset") == 0) {
        pthread_mutex_lock(&sim->lock);
        sim->connections = sim->messages = sim->failures = 0;
        json_array_clear(sim->store);
        sim->fail_code = 0;
        sim->fail_count = 0;
        sim->fail_delay_ms = 0;
        pthread_mutex_unlock(&sim->lock);
        return reply(c, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
    }
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

/* ---- main ------------------------------------------------------------------------ */

static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int bad = !f;
    if (f) {
        bad = fprintf(f, "%d\n", port) < 0;
        bad |= fclose(f) != 0;
    }
    if (bad || rename(tmp, path) != 0) {
        fprintf(stderr, "relais-sim-smtp: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static struct addrinfo *resolve(const char *listen, char *host, size_t hostlen, int *port)
{
    char err[256], portstr[16];
    if (relais_http_split_listen(listen, host, hostlen, port, err, sizeof err) != 0) {
        fprintf(stderr, "relais-sim-smtp: %s\n", err);
        return NULL;
    }
    snprintf(portstr, sizeof portstr, "%d", *port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host, portstr, &hints, &ai);
    if (gai != 0 || !ai) {
        fprintf(stderr, "relais-sim-smtp: %s: %s\n", listen, gai_strerror(gai));
        return NULL;
    }
    return ai;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: relais-sim-smtp --listen HOST:PORT --control HOST:PORT [--port-file FILE]\n"
               "                       [--control-port-file FILE] [--auth USER:PASSWORD]\n"
               "                       [--max-size BYTES] [--keep N] [--quiet]\n"
               "  a fake SMTP relay that keeps what it receives; control API under /_sim/\n"
               "  (messages, stats, fail, reset); see connectors/notify/README.md\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "listen", required_argument, NULL, 'l' },
        { "control", required_argument, NULL, 'c' },
        { "port-file", required_argument, NULL, 'p' },
        { "control-port-file", required_argument, NULL, 'P' },
        { "auth", required_argument, NULL, 'a' },
        { "max-size", required_argument, NULL, 'm' },
        { "keep", required_argument, NULL, 'k' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *listen_at = NULL, *control_at = NULL, *port_file = NULL, *control_port_file = NULL;
    char *auth = NULL;
    struct sim sim;
    memset(&sim, 0, sizeof sim);
    sim.keep = 10000;
    sim.max_size = 10u * 1024 * 1024;
    for (;;) {
        int opt = getopt_long(argc, argv, "l:c:p:P:a:m:k:qh", longopts, NULL);
        if (opt == -1) break;
        switch (opt) {
        case 'l': listen_at = optarg; break;
        case 'c': control_at = optarg; break;
        case 'p': port_file = optarg; break;
        case 'P': control_port_file = optarg; break;
        case 'a': auth = optarg; break;
        case 'm': sim.max_size = (size_t)strtoul(optarg, NULL, 10); break;
        case 'k': sim.keep = (size_t)strtoul(optarg, NULL, 10); break;
        case 'q': sim.quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!listen_at || !control_at || sim.max_size == 0) {
        usage(stderr);
        return 2;
    }
    if (auth) {
        char *colon = strchr(auth, ':');
        if (!colon || colon == auth) {
            fprintf(stderr, "relais-sim-smtp: --auth wants USER:PASSWORD\n");
            return 2;
        }
        *colon = '\0';
        sim.user = auth;
        sim.password = colon + 1;
    }
    char host[256], chost[256];
    int port, cport;
    struct addrinfo *ai = resolve(listen_at, host, sizeof host, &port);
    if (!ai) return 2;
    struct addrinfo *cai = resolve(control_at, chost, sizeof chost, &cport);
    if (!cai) {
        freeaddrinfo(ai);
        return 2;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
        fprintf(stderr, "relais-sim-smtp: cannot listen on %s: %s\n", listen_at, strerror(errno));
        if (fd >= 0) close(fd);
        freeaddrinfo(ai);
        freeaddrinfo(cai);
        return 1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int bound = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        bound = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    sim.listen_fd = fd;
    pthread_mutex_init(&sim.lock, NULL);
    pthread_cond_init(&sim.idle, NULL);
    sim.store = json_array();

    sigset_t stopset;
    sigemptyset(&stopset);
    sigaddset(&stopset, SIGINT);
    sigaddset(&stopset, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stopset, NULL);

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG
                     | MHD_USE_AUTO;
    if (cai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    struct MHD_Daemon *d = MHD_start_daemon(flags, (uint16_t)cport, NULL, NULL, on_request, &sim,
                                            MHD_OPTION_SOCK_ADDR, cai->ai_addr,
                                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, &sim,
                                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_END);
    freeaddrinfo(cai);
    if (!d) {
        fprintf(stderr, "relais-sim-smtp: cannot listen on %s\n", control_at);
        close(fd);
        json_decref(sim.store);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int cbound = info ? (int)info->port : cport;
    pthread_t acceptor;
    if (pthread_create(&acceptor, NULL, accept_main, &sim) != 0
        || (port_file && write_port_file(port_file, bound) != 0)
        || (control_port_file && write_port_file(control_port_file, cbound) != 0)) {
        fprintf(stderr, "relais-sim-smtp: cannot start\n");
        return 1;
    }
    relais_logf(RELAIS_LOG_INFO, "sim-smtp", "listening on smtp://%s:%d, control on http://%s:%d", host,
                bound, chost, cbound);

    int sig = 0;
    sigwait(&stopset, &sig);
    relais_logf(RELAIS_LOG_INFO, "sim-smtp", "stopping on signal %d", sig);
    pthread_mutex_lock(&sim.lock);
    sim.stopping = 1;
    pthread_mutex_unlock(&sim.lock);
    pthread_join(acceptor, NULL);
    pthread_mutex_lock(&sim.lock);
    while (sim.active > 0) pthread_cond_wait(&sim.idle, &sim.lock);
    pthread_mutex_unlock(&sim.lock);
    close(fd);
    MHD_stop_daemon(d);
    json_decref(sim.store);
    pthread_cond_destroy(&sim.idle);
    pthread_mutex_destroy(&sim.lock);
    return 0;
}
