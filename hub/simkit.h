/*
 * simkit.h - what the vendor simulators (connectors/<name>/sim_*.c, the
 * relais-sim-* programs used by tests and the demo) have in common:
 *
 *   - the options every one of them has (--listen, --port-file, --quiet);
 *   - the listen address resolved, libmicrohttpd started on it (one thread
 *     per connection), the bound port written to the port file;
 *   - SIGINT/SIGTERM blocked in every thread and waited for by main;
 *   - the one-line request log ("<method> <path> -> <status> <extra>") and
 *     messages on stderr prefixed with the program's name;
 *   - a request body read with a cap, JSON answers;
 *   - failure injection as POST /_sim/fail sets it: {"status","count",
 *     "delay_ms"} parsed, then taken request by request.
 *
 * Each simulator keeps its own state and owns its relais_simkit (usually a
 * member of its struct sim); nothing here is specific to one simulator.
 *
 * Threads: relais_simkit is written by main before the daemon starts and
 * only read afterwards (the log, the name), so connection threads may use
 * it freely. A relais_simkit_fault is guarded by the caller's lock. A
 * relais_simkit_request belongs to the connection thread of its request.
 */
#ifndef RELAIS_SIMKIT_H
#define RELAIS_SIMKIT_H
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <jansson.h>
#include <microhttpd.h>
#include "httputil.h"

/* A resolved listen address. */
typedef struct relais_simkit_addr {
    const char             *given;       /* "HOST:PORT" as given (the caller's string) */
    char                    host[256];   /* without brackets */
    int                     port;        /* as given (0: any free port) */
    int                     v6;          /* 1: an IPv6 address */
    struct sockaddr_storage ss;          /* the address to bind */
    socklen_t               sslen;
} relais_simkit_addr;

typedef struct relais_simkit {
    const char        *name;       /* "sim-http": the log component; messages on
                                      stderr start with "relais-sim-http: " */
    /* the common options (relais_simkit_option) */
    const char        *listen;     /* --listen HOST:PORT */
    const char        *port_file;  /* --port-file FILE (may be NULL) */
    int                quiet;      /* --quiet: no request log lines */
    /* set by relais_simkit_resolve (at) and relais_simkit_listen (bound) */
    relais_simkit_addr at;
    int                bound;      /* the port the daemon listens on */
    sigset_t           stop;       /* SIGINT, SIGTERM */
} relais_simkit;

/* ---- Options and messages ----------------------------------------------- */

/* The getopt_long entries of the options every simulator has, first in its
 * table: --listen (l), --port-file (p), --quiet (q), --help (h; the
 * simulator prints its usage). */
#define RELAIS_SIMKIT_LONGOPTS                               \
    { "listen", required_argument, NULL, 'l' },              \
    { "port-file", required_argument, NULL, 'p' },           \
    { "quiet", no_argument, NULL, 'q' },                     \
    { "help", no_argument, NULL, 'h' }

/* Takes the options every simulator has, by their short letter: 'l'
 * (--listen), 'p' (--port-file), 'q' (--quiet). 1 when opt was one of them,
 * 0 otherwise (the simulator's own option). */
int relais_simkit_option(relais_simkit *k, int opt, const char *arg);

/* "relais-<name>: <message>\n" on stderr. */
void relais_simkit_error(const relais_simkit *k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The request log line "<method> <url> -> <status>[ <extra>]" (never
 * bodies), unless quiet. */
void relais_simkit_log(const relais_simkit *k, const char *method, const char *url, unsigned status,
                       const char *extra);

/* ---- Listening ------------------------------------------------------------ */

/* Split "HOST:PORT" / "[V6]:PORT" and resolve it into *a. 0 ok; -1 with the
 * message on stderr (the caller exits with 2). */
int relais_simkit_resolve(const relais_simkit *k, const char *listen, relais_simkit_addr *a);

/* Block SIGINT and SIGTERM in the calling thread and in the threads it
 * starts from now on: relais_simkit_wait takes them. */
void relais_simkit_block_signals(relais_simkit *k);

/* Block the stop signals, then start libmicrohttpd on k->at (resolved
 * before): one thread per connection, MHD's error log, 60 s connection
 * timeout, handler/cls and done as the access and completion callbacks,
 * plus `extra` options (an array ending with MHD_OPTION_END; NULL: none;
 * callbacks cast to intptr_t as MHD_OPTION_ARRAY wants). Sets k->bound
 * (and k->at's port to it, for relais_simkit_relisten). NULL with
 * "cannot listen on <HOST:PORT>" on stderr. */
struct MHD_Daemon *relais_simkit_listen(relais_simkit *k, MHD_AccessHandlerCallback handler, void *cls,
                                        MHD_RequestCompletedCallback done,
                                        const struct MHD_OptionItem *extra);

/* The same daemon again on k->bound (after it was stopped on purpose);
 * NULL, silently, when the port cannot be bound yet. */
struct MHD_Daemon *relais_simkit_relisten(const relais_simkit *k, MHD_AccessHandlerCallback handler,
                                          void *cls, MHD_RequestCompletedCallback done,
                                          const struct MHD_OptionItem *extra);

/* The daemon d is ready: its bound port goes to --port-file, when given.
 * 0 ok; -1 with the message on stderr, d stopped. */
int relais_simkit_ready(const relais_simkit *k, struct MHD_Daemon *d);

/* Write "<port>\n" to file (FILE.tmp, then renamed: readers never see half
 * a number). 0 ok; -1 with "cannot write FILE: <why>" on stderr. */
int relais_simkit_write_port_file(const relais_simkit *k, const char *file, int port);

/* Wait for SIGINT or SIGTERM, at most timeout_ms (< 0: for ever). The
 * signal, logged as "stopping on signal N"; 0 when the time ran out. */
int relais_simkit_wait(const relais_simkit *k, long timeout_ms);

/* ---- Requests and answers ---------------------------------------------- */

/* Per request state (libmicrohttpd's *con_cls). */
typedef struct relais_simkit_request {
    relais_http_upload body;     /* the request body, capped */
    char              *uri;      /* the raw URI with its query, when
                                    relais_simkit_on_uri is the URI log callback */
    int                started;
} relais_simkit_request;

/* The beginning of an access handler: allocates the request state on the
 * first call and takes the body as it comes (at most max bytes kept; more
 * sets body.too_large). 1: the handler returns *ret now; 0: the request is
 * complete and *con_cls is its relais_simkit_request. */
int relais_simkit_upload(void **con_cls, const char *upload_data, size_t *upload_data_size, size_t max,
                         enum MHD_Result *ret);

/* MHD_OPTION_URI_LOG_CALLBACK: the request state made with the raw URI. */
void *relais_simkit_on_uri(void *cls, const char *uri, struct MHD_Connection *c);

/* MHD_OPTION_NOTIFY_COMPLETED: frees the request state. */
void relais_simkit_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                             enum MHD_RequestTerminationCode toe);

/* A JSON answer: body (taken; NULL allowed) written compact with
 * JSON_ENCODE_ANY plus `flags`, or `fallback` ("{}" when NULL) when there is
 * none; Content-Type application/json. NULL on out of memory. */
struct MHD_Response *relais_simkit_json(json_t *body, size_t flags, const char *fallback);

/* Queue r (may be NULL: MHD_NO) with status and destroy it. */
enum MHD_Result relais_simkit_queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r);

/* relais_simkit_queue(c, status, relais_simkit_json(body, 0, NULL)). */
enum MHD_Result relais_simkit_reply(struct MHD_Connection *c, unsigned status, json_t *body);

/* ---- Failure injection ------------------------------------------------- */

typedef struct relais_simkit_fault {
    int  status;     /* the status (or SMTP code) to answer; 0: a delay only */
    long delay_ms;   /* wait before answering */
    long count;      /* requests left; -1: until changed; 0: off */
} relais_simkit_fault;

/* The members of a /_sim/fail body: status_key ("status", or "code" for
 * SMTP) an integer in [lo, hi] (absent: 0), "count" an integer (absent: -1)
 * and "delay_ms" an integer (absent: 0). Other members are the caller's.
 * 0 ok (*f filled); -1 when o is not an object or one of them is malformed. */
int relais_simkit_fault_parse(const json_t *o, const char *status_key, int lo, int hi,
                              relais_simkit_fault *f);

/* The fault for one request, when armed (count != 0): *status and *delay_ms
 * set, count decremented (unless -1), 1 returned; 0 when none (outputs
 * untouched). Under the caller's lock. */
int relais_simkit_fault_take(relais_simkit_fault *f, int *status, long *delay_ms);

/* Sleep ms milliseconds (EINTR resumed). */
void relais_simkit_sleep_ms(long ms);

#endif
