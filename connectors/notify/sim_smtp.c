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
 * What every simulator does (options, daemon, port files, signals, bodies,
 * /_sim/fail's common members) is hub/simkit.h's.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <microhttpd.h>
#include <jansson.h>
#include "relais/relais.h"
#include "simkit.h"
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
    relais_simkit_fault fault;  /* status: the SMTP code (0: none) */
    int     fail_stage;      /* NOTIFY_SMTPD_RCPT or _DATA */
    /* read-only after start */
    relais_simkit kit;       /* its address: the control API's */
    size_t  max_size;
    const char *user, *password;
    int     listen_fd;
};

struct conn {
    struct sim *sim;
    int fd;
};

/* ---- SMTP side ----------------------------------------------------------------- */

static int hook_fail(void *cls, notify_smtpd_stage stage)
{
    struct sim *sim = cls;
    int code = 0;
    long delay = 0;
    pthread_mutex_lock(&sim->lock);
    if ((int)stage == sim->fail_stage && relais_simkit_fault_take(&sim->fault, &code, &delay) && code)
        sim->failures++;
    pthread_mutex_unlock(&sim->lock);
    if (delay > 0) relais_simkit_sleep_ms(delay);
    if (code && !sim->kit.quiet)
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
    if (!sim->kit.quiet) relais_logf(RELAIS_LOG_INFO, "sim-smtp", "message %s received, %zu bytes", id, len);
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

static enum MHD_Result handle_fail(struct sim *sim, struct MHD_Connection *c, relais_simkit_request *rq)
{
    json_t *o = rq->body.buf ? json_loadb(rq->body.buf, rq->body.len, 0, NULL) : NULL;
    json_t *st = json_object_get(o, "stage");
    const char *stage = json_string_value(st);
    relais_simkit_fault f;
    if (relais_simkit_fault_parse(o, "code", 400, 599, &f) != 0
        || (!json_object_get(o, "code") && !json_object_get(o, "delay_ms")) || (st && !stage)
        || (stage && strcmp(stage, "rcpt") != 0 && strcmp(stage, "data") != 0)) {
        json_decref(o);
        return relais_simkit_reply(c, MHD_HTTP_BAD_REQUEST,
                                   json_pack("{s:s}", "error", "expected {\"code\":400..599,\"count\":N,"
                                             "\"stage\":\"rcpt\"|\"data\",\"delay_ms\":N}"));
    }
    pthread_mutex_lock(&sim->lock);
    sim->fault = f;
    sim->fail_stage = stage && strcmp(stage, "data") == 0 ? NOTIFY_SMTPD_DATA : NOTIFY_SMTPD_RCPT;
    pthread_mutex_unlock(&sim->lock);
    json_decref(o);
    return relais_simkit_reply(c, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct sim *sim = cls;
    enum MHD_Result ret;
    if (relais_simkit_upload(con_cls, upload_data, upload_data_size, (size_t)CONTROL_MAX_BODY, &ret)) return ret;
    relais_simkit_request *rq = *con_cls;
    int post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    if (get && strcmp(url, "/_sim/messages") == 0) {
        pthread_mutex_lock(&sim->lock);
        json_t *out = json_deep_copy(sim->store);
        pthread_mutex_unlock(&sim->lock);
        return relais_simkit_reply(c, MHD_HTTP_OK, out);
    }
    if (get && strcmp(url, "/_sim/stats") == 0) {
        pthread_mutex_lock(&sim->lock);
        json_t *o = json_pack("{s:I,s:I,s:I}", "connections", (json_int_t)sim->connections, "messages",
                              (json_int_t)sim->messages, "failures", (json_int_t)sim->failures);
        pthread_mutex_unlock(&sim->lock);
        return relais_simkit_reply(c, MHD_HTTP_OK, o);
    }
    if (post && strcmp(url, "/_sim/fail") == 0) return handle_fail(sim, c, rq);
    if (post && strcmp(url, "/_sim/reset") == 0) {
        pthread_mutex_lock(&sim->lock);
        sim->connections = sim->messages = sim->failures = 0;
        json_array_clear(sim->store);
        sim->fault = (relais_simkit_fault){ 0 };
        pthread_mutex_unlock(&sim->lock);
        return relais_simkit_reply(c, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
    }
    return relais_simkit_reply(c, MHD_HTTP_NOT_FOUND, json_pack("{s:s}", "error", "not found"));
}

/* ---- main ------------------------------------------------------------------------ */

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
        RELAIS_SIMKIT_LONGOPTS,
        { "control", required_argument, NULL, 'c' },
        { "control-port-file", required_argument, NULL, 'P' },
        { "auth", required_argument, NULL, 'a' },
        { "max-size", required_argument, NULL, 'm' },
        { "keep", required_argument, NULL, 'k' },
        { NULL, 0, NULL, 0 }
    };
    const char *control_at = NULL, *control_port_file = NULL;
    char *auth = NULL;
    struct sim sim;
    memset(&sim, 0, sizeof sim);
    sim.kit.name = "sim-smtp";
    sim.keep = 10000;
    sim.max_size = 10u * 1024 * 1024;
    for (;;) {
        int opt = getopt_long(argc, argv, "l:c:p:P:a:m:k:qh", longopts, NULL);
        if (opt == -1) break;
        if (relais_simkit_option(&sim.kit, opt, optarg)) continue;
        switch (opt) {
        case 'c': control_at = optarg; break;
        case 'P': control_port_file = optarg; break;
        case 'a': auth = optarg; break;
        case 'm': sim.max_size = (size_t)strtoul(optarg, NULL, 10); break;
        case 'k': sim.keep = (size_t)strtoul(optarg, NULL, 10); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!sim.kit.listen || !control_at || sim.max_size == 0) {
        usage(stderr);
        return 2;
    }
    if (auth) {
        char *colon = strchr(auth, ':');
        if (!colon || colon == auth) {
            relais_simkit_error(&sim.kit, "--auth wants USER:PASSWORD");
            return 2;
        }
        *colon = '\0';
        sim.user = auth;
        sim.password = colon + 1;
    }
    relais_simkit_addr smtp_at;
    if (relais_simkit_resolve(&sim.kit, sim.kit.listen, &smtp_at) != 0
        || relais_simkit_resolve(&sim.kit, control_at, &sim.kit.at) != 0)
        return 2;
    int fd = socket(smtp_at.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (const struct sockaddr *)&smtp_at.ss, smtp_at.sslen) != 0 || listen(fd, 64) != 0) {
        relais_simkit_error(&sim.kit, "cannot listen on %s: %s", sim.kit.listen, strerror(errno));
        if (fd >= 0) close(fd);
        return 1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int bound = smtp_at.port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        bound = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    sim.listen_fd = fd;
    pthread_mutex_init(&sim.lock, NULL);
    pthread_cond_init(&sim.idle, NULL);
    sim.store = json_array();

    struct MHD_Daemon *d = relais_simkit_listen(&sim.kit, on_request, &sim, relais_simkit_completed, NULL);
    if (!d) {
        close(fd);
        json_decref(sim.store);
        return 1;
    }
    /* the port files before the acceptor: no thread is left running on sim
     * (main's) when main returns on a failure */
    pthread_t acceptor;
    if ((sim.kit.port_file && relais_simkit_write_port_file(&sim.kit, sim.kit.port_file, bound) != 0)
        || (control_port_file && relais_simkit_write_port_file(&sim.kit, control_port_file, sim.kit.bound) != 0)
        || pthread_create(&acceptor, NULL, accept_main, &sim) != 0) {
        relais_simkit_error(&sim.kit, "cannot start");
        return 1;
    }
    relais_logf(RELAIS_LOG_INFO, "sim-smtp", "listening on smtp://%s:%d, control on http://%s:%d", smtp_at.host,
                bound, sim.kit.at.host, sim.kit.bound);

    relais_simkit_wait(&sim.kit, -1);
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
