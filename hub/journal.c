/*
 * journal.c - the PostgreSQL journal (API and schema in hub/journal.h,
 * migrations in hub/migrations.c, design in docs/JOURNAL.md).
 *
 * Write side: callers turn each write into a job that owns copies or
 * references of everything it needs, and queue it on one of two lanes. A
 * lane is a queue, a writer thread and that thread's own connection:
 *   lane A "relais-journal"   the blocking jobs: ingest, reject, route (a
 *                             source or the bus thread waits for them);
 *   lane B "relais-j-async"   the async jobs: attempt outcomes and free-form
 *                             steps (nobody waits for them).
 * Each writer takes every job queued on its lane (up to batch_max items,
 * waiting up to batch_wait_ms for more), runs them in ONE transaction where
 * jobs of one kind are merged into one statement (a JSON array parameter
 * expanded with json_to_recordset), and commits. Blocking callers then get
 * their results; async jobs are freed. The two lanes commit independently,
 * so a blocking call never waits behind a large batch of outcomes.
 *
 * Why two lanes are safe (docs/JOURNAL.md, "Why two lanes"):
 *   - an attempt outcome is queued only after the route that created its
 *     delivery committed, a "published" step only after its ingest
 *     committed (the hub's order); lane B is FIFO, so two outcomes of one
 *     delivery apply in order (in one batch: one statement per "round");
 *   - lane B never waits for a lock lane A holds (it updates deliveries rows
 *     that committed routes created, in id order, and upserts xref; lane A
 *     inserts new rows and only reads xref), so no lock cycle between them;
 *     a deadlock or serialization failure (class 40) is retried anyway;
 *   - a route reads the cross-references lane B has not committed yet from
 *     lane B's list of pending outcomes (pending_xref), so a local id
 *     learned before the route was queued reaches it, as with one writer.
 *
 * Failures (per lane):
 *   - connection lost (or a server-side condition such as a statement timeout):
 *     when it was lost before COMMIT was sent, the lane reconnects at once and
 *     runs the batch again (a connection killed while idle costs no call);
 *     otherwise blocking jobs of the batch fail (ingest results UNAVAILABLE),
 *     async jobs go back to the head of the queue, the writer reconnects with
 *     backoff 100 ms .. 5 s; meanwhile blocking calls fail at once. The async
 *     queue is bounded by queue_max: when over, the oldest async job is
 *     dropped with an error log.
 *   - deadlock / serialization failure: the batch is run again after a short
 *     pause (CONFLICT_TRIES times), then async jobs go back to the head of
 *     the queue without disconnecting and blocking jobs fail.
 *   - data error (PostgreSQL refused a value): the batch is re-run job by job,
 *     an ingest job event by event, so one bad input cannot sink the others.
 *     A refused event gets REJECTED and a rejections row; a refused async job
 *     is dropped with an error log.
 *   - blocking calls give up after block_timeout_ms (default 30 s).
 *
 * Threads and ownership:
 *   writer threads each owns its lane's wconn, next_connect_us, backoff_ms,
 *                  batch array and every job it took off its queue until it
 *                  completes it.
 *   any thread     queues jobs; a lane's mu guards its queue (head, tail,
 *                  counters, the pending-xref list), job states and results
 *                  hand-over, stopping, down, wcancel, dropped. Lane A's mu
 *                  also guards block_timeout_ms. No thread ever holds both
 *                  lanes' mutexes. A blocking caller waits on its job's
 *                  condvar; when it gives up on a running job it marks it
 *                  abandoned and the writer frees it.
 *   lane A writer  reads lane B's pending-xref list under lane B's mu (the
 *                  jobs on it are immutable until completed, which happens
 *                  under that mutex).
 *   read side      j->rmu guards j->rconn (trace, dlq, replay, claim,
 *                  unrouted, xref_get), usable from any thread.
 *   healthy (per lane and the read-only one), batches, jobs are atomics.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "journal.h"
#include "migrations.h"
#include "event_int.h"
#include "audit.h"

#define COMP "journal"
#define DEFAULT_BATCH_MAX      1000
#define DEFAULT_BATCH_WAIT_MS  2
#define DEFAULT_QUEUE_MAX      100000
#define DEFAULT_BLOCK_TIMEOUT  30000
#define CLOSE_DRAIN_MS         5000
#define BACKOFF_MIN_MS         100
#define BACKOFF_MAX_MS         5000
#define IDLE_PING_MS           2000
#define TRANSIENT_TRIES        3
#define CONFLICT_TRIES         5      /* deadlock / serialization failure */
#define CONFLICT_PAUSE_MS      20     /* times the try number */
#define RAW_MAX                4096
#define AUDIT_CP_MS            10000
#define AUDIT_STREAM_MAX       100000

/* ---- jobs ------------------------------------------------------------------------ */

typedef enum job_kind { JOB_INGEST, JOB_REJECT, JOB_ATTEMPT, JOB_ROUTE, JOB_STEP } job_kind;
typedef enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE } job_state;
typedef enum outcome { OUT_OK, OUT_RETRY, OUT_DEAD } outcome;

typedef struct route_in {
    relais_event  *ev;
    char         **dests;
    char         **routes;
    unsigned char *ordered;    /* NULL: none; else 1 for a destination ordered by subject */
    size_t         ndest;
} route_in;

typedef struct job {
    struct job *next;
    job_kind    kind;
    int         blocking;     /* ingest, reject, route: lane A; attempt, step: lane B */
    int         owned;        /* 0 for the writer's temporary sub-jobs: nothing to free */
    job_state   state;        /* under its lane's mu */
    int         rc;           /* under its lane's mu */
    int         abandoned;    /* under its lane's mu: the caller gave up, the writer frees */
    int         in_xlist;     /* under lane B's mu: on the pending-xref list */
    struct job *xprev, *xnext;
    pthread_cond_t cond;      /* blocking jobs */
    int64_t     at_us;        /* when the call was made (hub wall clock) */
    union {
        struct { relais_event **evs; relais_submit_result *res; size_t n; } ingest;
        struct { char *source, *record_id, *where, *reason; unsigned char *raw; size_t rawlen; } reject;
        struct { route_in *items; size_t n; char *owner; long lease_ms;
                 relais_delivery *out; size_t nout; } route;
        struct { int64_t delivery_id; char event_id[40]; char *destination, *tenant, *subject;
                 char entity[128]; int attempt; outcome out; relais_verdict v; long retry_ms;
                 int status; char *detail, *local_id; int64_t started_us, ended_us; } attempt;
        struct { char event_id[40]; char *step, *destination, *detail; int status; } step;
    } u;
} job;

enum { LANE_BLOCKING, LANE_ASYNC, NLANES };

/* One queue, one writer thread, one connection. */
typedef struct lane {
    struct relais_journal *j;
    const char     *name;         /* in logs: "writer", "async writer" */
    const char     *thread_name;  /* at most 15 characters (Linux) */
    const char     *app_name;     /* PostgreSQL application_name */

    pthread_mutex_t mu;           /* the queue */
    pthread_cond_t  wake;         /* the writer waits here */
    job            *head, *tail;
    size_t          qasync;       /* queued async jobs */
    size_t          qitems;       /* items (events, rows) of the queued jobs */
    job            *xhead, *xtail; /* lane B: queued or running OK outcomes with a local id, queue order */
    int             stopping;
    int64_t         stop_deadline_us;
    int             down;         /* writer disconnected: blocking calls fail at once */
    uint64_t        dropped;
    pthread_t       thread;
    int             thread_started;
    PGcancel       *wcancel;      /* cancel handle of the writer connection (close uses it) */

    atomic_int      healthy;
    _Atomic uint64_t batches, jobs;

    /* writer thread only */
    char    astream[200];         /* the lane's current chain stream */
    int64_t aseq;                 /* its last committed entry (0: none yet) */
    char    aprev[RELAIS_AUDIT_HEX];  /* that entry's hash (64 zeros before the first) */
    int64_t acp_seq, acp_at_us;   /* last checkpoint written (seq, monotonic time) */
    job   **batch;                /* batch_max slots */
    PGconn *wconn;
    int64_t next_connect_us;
    long    backoff_ms;
} lane;

struct relais_journal {
    char *conninfo;
    long  batch_max, batch_wait_ms, queue_max;
    long  block_timeout_ms;       /* under lanes[LANE_BLOCKING].mu */
    int   writer;

    pthread_mutex_t rmu;          /* read side */
    PGconn         *rconn;
    atomic_int      healthy;      /* read only (no writer): the read connection; else unused */

    lane            lanes[NLANES];

    /* the trail (read-only after open; the checkpoint fd is written with
     * single O_APPEND writes by the lanes and the read side) */
    unsigned char  *akey;
    size_t          akeylen;
    char           *aname;
    int             acp_fd;
    long            acp_ms, astream_max;

    /* destination instance -> its package (relais_journal_set_packages),
     * set once before the writer's first route; read-only after */
    char          **pk_names, **pk_packages;
    size_t          n_pk;
};

/* The package cross-references of a destination are kept under. */
static const char *pkg(const relais_journal *j, const char *dest)
{
    for (size_t i = 0; dest && i < j->n_pk; i++)
        if (strcmp(j->pk_names[i], dest) == 0) return j->pk_packages[i];
    return dest;
}

/* ---- small helpers ------------------------------------------------------------- */

static int64_t mono_us(void) { return relais_mono_us(); }

static void cond_init_mono(pthread_cond_t *c)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
}

/* Wait on c until the monotonic deadline; returns ETIMEDOUT when passed. */
static int cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, int64_t deadline_us)
{
    struct timespec ts = { (time_t)(deadline_us / 1000000), (long)(deadline_us % 1000000) * 1000 };
    return pthread_cond_timedwait(c, m, &ts);
}

static char *xstrdup(const char *s) { return s ? strdup(s) : NULL; }
static const char *or_empty(const char *s) { return s ? s : ""; }

static int is_uuid(const char *s)
{
    if (!s || strlen(s) != 36) return 0;
    for (int i = 0; i < 36; i++) {
        char ch = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-') return 0;
        } else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))) {
            return 0;
        }
    }
    return 1;
}

static int is_digits(const char *s)
{
    if (!s || !*s || strlen(s) > 18) return 0;
    for (const char *p = s; *p; p++) if (*p < '0' || *p > '9') return 0;
    return 1;
}

/* A JSON string; invalid UTF-8 (a body excerpt cut mid-character...) has its
 * non-ASCII bytes replaced by '?' rather than failing the whole batch. */
static json_t *jstr(const char *s)
{
    if (!s) return json_null();
    json_t *v = json_string(s);
    if (v) return v;
    char *copy = strdup(s);
    if (!copy) return json_null();
    for (char *p = copy; *p; p++) if ((unsigned char)*p >= 0x80) *p = '?';
    v = json_string(copy);
    free(copy);
    return v ? v : json_null();
}

/* Times travel as integer microseconds since the epoch (cheaper than text on
 * both sides); SQL turns them back with US_TO_TS, exactly (< 2^53). */
static json_t *jtime(int64_t us)
{
    return json_integer((json_int_t)us);
}
#define US_TO_TS(col) "(timestamptz 'epoch' + " col " * interval '1 microsecond')"


static void set_opt(json_t *o, const char *k, const char *v)
{
    if (v) json_object_set_new(o, k, jstr(v));
}

/* PostgreSQL's message (primary text when the server sent one), one line. */
static void pg_message(PGconn *c, const PGresult *r, char *buf, size_t len)
{
    const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!m || !*m) m = r ? PQresultErrorMessage(r) : NULL;
    if (!m || !*m) m = c ? PQerrorMessage(c) : NULL;
    snprintf(buf, len, "%s", m && *m ? m : "unknown error");
    buf[strcspn(buf, "\n")] = '\0';
}

/* Connect with a connect timeout and UTF-8; the conninfo may be key=value or
 * a URI. errstr names host, port and database, never the password. */
static PGconn *pg_connect(const char *conninfo, const char *app, char *errstr, size_t errlen)
{
    const char *kw[] = { "connect_timeout", "fallback_application_name", "dbname", "client_encoding", NULL };
    const char *vals[] = { "10", app, conninfo, "UTF8", NULL };
    PGconn *c = PQconnectdbParams(kw, vals, 1);
    if (!c) {
        snprintf(errstr, errlen, "cannot connect to PostgreSQL: out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[512];
        pg_message(c, NULL, msg, sizeof msg);
        const char *h = PQhost(c), *p = PQport(c), *d = PQdb(c);
        snprintf(errstr, errlen, "cannot connect to PostgreSQL (host=%s port=%s dbname=%s): %s",
                 h && *h ? h : "default", p && *p ? p : "default", d && *d ? d : "default", msg);
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* ---- job lifetime -------------------------------------------------------------- */

static job *job_new(job_kind kind, int blocking)
{
    job *jb = calloc(1, sizeof *jb);
    if (!jb) return NULL;
    jb->kind = kind;
    jb->blocking = blocking;
    jb->owned = 1;
    jb->at_us = relais_now_us();
    if (blocking) cond_init_mono(&jb->cond);
    return jb;
}

static void free_strv(char **v, size_t n)
{
    if (!v) return;
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

static void route_out_clear(job *jb)
{
    relais_deliveries_free(jb->u.route.out, jb->u.route.nout);
    jb->u.route.out = NULL;
    jb->u.route.nout = 0;
}

static void job_free(job *jb)
{
    if (!jb || !jb->owned) return;
    switch (jb->kind) {
    case JOB_INGEST:
        for (size_t i = 0; i < jb->u.ingest.n; i++) relais_event_unref(jb->u.ingest.evs[i]);
        free(jb->u.ingest.evs);
        free(jb->u.ingest.res);
        break;
    case JOB_REJECT:
        free(jb->u.reject.source);
        free(jb->u.reject.record_id);
        free(jb->u.reject.where);
        free(jb->u.reject.reason);
        free(jb->u.reject.raw);
        break;
    case JOB_ROUTE:
        for (size_t i = 0; i < jb->u.route.n; i++) {
            route_in *it = &jb->u.route.items[i];
            relais_event_unref(it->ev);
            free_strv(it->dests, it->ndest);
            free_strv(it->routes, it->ndest);
            free(it->ordered);
        }
        free(jb->u.route.items);
        free(jb->u.route.owner);
        route_out_clear(jb);
        break;
    case JOB_ATTEMPT:
        free(jb->u.attempt.destination);
        free(jb->u.attempt.tenant);
        free(jb->u.attempt.subject);
        free(jb->u.attempt.detail);
        free(jb->u.attempt.local_id);
        break;
    case JOB_STEP:
        free(jb->u.step.step);
        free(jb->u.step.destination);
        free(jb->u.step.detail);
        break;
    }
    if (jb->blocking) pthread_cond_destroy(&jb->cond);
    free(jb);
}

static size_t job_items(const job *jb)
{
    if (jb->kind == JOB_INGEST) return jb->u.ingest.n;
    if (jb->kind == JOB_ROUTE) {
        size_t k = 0;
        for (size_t i = 0; i < jb->u.route.n; i++) k += jb->u.route.items[i].ndest ? jb->u.route.items[i].ndest : 1;
        return k;
    }
    return 1;
}

static const char *kind_name(job_kind k)
{
    switch (k) {
    case JOB_INGEST: return "ingest";
    case JOB_REJECT: return "reject";
    case JOB_ATTEMPT: return "attempt";
    case JOB_ROUTE: return "route";
    case JOB_STEP: return "step";
    }
    return "?";
}

/* Results a job carries before (and after a failed) transaction. */
static void job_reset_results(job *jb, const char *reason)
{
    if (jb->kind == JOB_INGEST) {
        for (size_t i = 0; i < jb->u.ingest.n; i++) {
            relais_submit_result *r = &jb->u.ingest.res[i];
            r->status = RELAIS_SUBMIT_UNAVAILABLE;
            r->event_id[0] = '\0';
            snprintf(r->reason, sizeof r->reason, "%s", reason);
        }
    } else if (jb->kind == JOB_ROUTE) {
        route_out_clear(jb);
    }
}

/* ---- the queue (caller holds l->mu) ----------------------------------------------- */

static void q_push_tail(lane *l, job *jb)
{
    jb->next = NULL;
    jb->state = JOB_QUEUED;
    if (l->tail) l->tail->next = jb; else l->head = jb;
    l->tail = jb;
    if (!jb->blocking) l->qasync++;
    l->qitems += job_items(jb);
}

static void q_unlink(lane *l, job *prev, job *jb)
{
    if (prev) prev->next = jb->next; else l->head = jb->next;
    if (l->tail == jb) l->tail = prev;
    jb->next = NULL;
    if (!jb->blocking) l->qasync--;
    l->qitems -= job_items(jb);
}

static int q_remove(lane *l, job *jb)
{
    job *prev = NULL;
    for (job *p = l->head; p; prev = p, p = p->next) {
        if (p == jb) { q_unlink(l, prev, p); return 0; }
    }
    return -1;
}

/* The pending-xref list: lane B's OK outcomes that carry a local id, from
 * queueing until completion, in queue order (a route reads it, pending_xref). */
static int teaches_xref(const job *jb)
{
    return jb->kind == JOB_ATTEMPT && jb->u.attempt.out == OUT_OK && jb->u.attempt.local_id &&
           jb->u.attempt.local_id[0] && jb->u.attempt.subject;
}

static void xlist_append(lane *l, job *jb)
{
    jb->xnext = NULL;
    jb->xprev = l->xtail;
    if (l->xtail) l->xtail->xnext = jb; else l->xhead = jb;
    l->xtail = jb;
    jb->in_xlist = 1;
}

static void xlist_unlink(lane *l, job *jb)
{
    if (!jb->in_xlist) return;
    if (jb->xprev) jb->xprev->xnext = jb->xnext; else l->xhead = jb->xnext;
    if (jb->xnext) jb->xnext->xprev = jb->xprev; else l->xtail = jb->xprev;
    jb->xprev = jb->xnext = NULL;
    jb->in_xlist = 0;
}

/* Mark done and hand over; frees async and abandoned jobs. */
static void complete_locked(lane *l, job *jb, int rc)
{
    xlist_unlink(l, jb);
    jb->rc = rc;
    jb->state = JOB_DONE;
    if (!jb->blocking || jb->abandoned) job_free(jb);
    else pthread_cond_signal(&jb->cond);
}

/* Keep the async queue within queue_max: drop the oldest async jobs. */
static void q_bound_locked(lane *l)
{
    long queue_max = l->j->queue_max;
    while (l->qasync > (size_t)queue_max) {
        job *prev = NULL, *p = l->head;
        while (p && p->blocking) { prev = p; p = p->next; }
        if (!p) break;
        q_unlink(l, prev, p);
        l->dropped++;
        relais_logf(RELAIS_LOG_ERROR, COMP, "queue full (%ld async jobs waiting for PostgreSQL): "
                    "dropped the oldest %s job%s%s (%llu dropped so far)", queue_max, kind_name(p->kind),
                    p->kind == JOB_ATTEMPT || p->kind == JOB_STEP ? " of event " : "",
                    p->kind == JOB_ATTEMPT ? p->u.attempt.event_id : p->kind == JOB_STEP ? p->u.step.event_id : "",
                    (unsigned long long)l->dropped);
        complete_locked(l, p, -1);
    }
}

/* Fail every queued blocking job (the writer is disconnected). */
static void q_fail_blocking_locked(lane *l, const char *reason)
{
    job *prev = NULL, *p = l->head;
    while (p) {
        job *next = p->next;
        if (p->blocking) {
            q_unlink(l, prev, p);
            job_reset_results(p, reason);
            complete_locked(l, p, -1);
        } else {
            prev = p;
        }
        p = next;
    }
}

static int submit_async(relais_journal *j, job *jb)
{
    lane *l = &j->lanes[LANE_ASYNC];
    if (!j->writer) {
        relais_logf(RELAIS_LOG_ERROR, COMP, "%s job refused: the journal is open without a writer",
                    kind_name(jb->kind));
        job_free(jb);
        return -1;
    }
    pthread_mutex_lock(&l->mu);
    if (l->stopping) {
        pthread_mutex_unlock(&l->mu);
        relais_logf(RELAIS_LOG_ERROR, COMP, "%s job refused: the journal is closing", kind_name(jb->kind));
        job_free(jb);
        return -1;
    }
    q_push_tail(l, jb);
    if (teaches_xref(jb)) xlist_append(l, jb);
    q_bound_locked(l);
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->mu);
    return 0;
}

/* Queue a blocking job on lane A and wait for it. Returns the job's rc, or
 * -1 when it could not run. *abandoned = 1 when the writer still holds the
 * job (the caller must not touch or free it), else the caller frees it. */
static int submit_blocking(relais_journal *j, job *jb, int *abandoned)
{
    *abandoned = 0;
    job_reset_results(jb, "journal unavailable");
    lane *l = &j->lanes[LANE_BLOCKING], *la = &j->lanes[LANE_ASYNC];
    const char *why = NULL;
    if (!j->writer) {
        why = "the journal is open without a writer";
    } else {
        /* the async lane's bound applies to blocking calls too: a hub whose
         * outcomes cannot be written takes no new work */
        pthread_mutex_lock(&la->mu);
        if (la->qasync >= (size_t)j->queue_max) why = "the journal queue is full";
        pthread_mutex_unlock(&la->mu);
    }
    if (!why) {
        pthread_mutex_lock(&l->mu);
        if (l->stopping) why = "the journal is closing";
        else if (l->down) why = "PostgreSQL is unreachable";
        if (why) pthread_mutex_unlock(&l->mu);
    }
    if (why) {
        char reason[128];
        snprintf(reason, sizeof reason, "journal unavailable: %s", why);
        job_reset_results(jb, reason);
        return -1;
    }
    q_push_tail(l, jb);
    pthread_cond_signal(&l->wake);
    int64_t deadline = mono_us() + j->block_timeout_ms * 1000;
    while (jb->state != JOB_DONE) {
        if (cond_wait_until(&jb->cond, &l->mu, deadline) == ETIMEDOUT && jb->state != JOB_DONE) break;
    }
    int rc;
    if (jb->state == JOB_DONE) {
        rc = jb->rc;
    } else {
        rc = -1;
        relais_logf(RELAIS_LOG_ERROR, COMP, "%s call timed out after %ld ms waiting for PostgreSQL",
                    kind_name(jb->kind), j->block_timeout_ms);
        if (jb->state == JOB_QUEUED) {
            q_remove(l, jb);
        } else {
            jb->abandoned = 1;
            *abandoned = 1;
        }
    }
    pthread_mutex_unlock(&l->mu);
    if (rc != 0 && !*abandoned && jb->state != JOB_DONE) job_reset_results(jb, "journal timed out");
    return rc;
}

/* ---- the writer's statements -------------------------------------------------------- */

/* The step rows with their chain proof (audit_chain); $2: their stream
 * (one per batch: not repeated in every row). */
#define STEPS_SQL \
      "INSERT INTO steps (at, event_id, step, destination, attempt, status, detail," \
      "   stream, seq, prev_hash, hash, mac)" \
      " SELECT " US_TO_TS("x.at") ", x.event_id, x.step, x.destination, x.attempt, x.status, x.detail," \
      "        $2, x.seq, x.prev_hash, x.hash, x.mac" \
      " FROM json_to_recordset($1::json) AS x(at bigint, event_id uuid, step text," \
      "   destination text, attempt int, status int, detail text," \
      "   seq bigint, prev_hash text, hash text, mac text)"

/* Every statement takes its rows as ONE JSON array ($1) expanded server side
 * (json_to_recordset: the json type is parsed once, streaming, cheaper than
 * jsonb for rows read once). */
static const struct { const char *name; const char *sql; } g_stmts[] = {
    { "ingest",
      "WITH m AS (SELECT * FROM json_to_recordset($1::json) AS m(n int, id uuid, tenant text,"
      "   source text, record_id text, type text, subject text, corr text, at bigint)),"
      " b AS (SELECT (o - 1)::int AS n, body FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS b(body, o)),"
      /* body_sha256: SHA-256 of the body as PostgreSQL stores it (jsonb's
       * text), what `relais audit verify` hashes again; the "received" step
       * covers it, so a purged body still verifies */
      " ins AS (INSERT INTO events (id, tenant, source, record_id, type, subject, correlation_id, received_at,"
      "   body, body_sha256)"
      "   SELECT DISTINCT ON (m.source, m.record_id) m.id, m.tenant, m.source, m.record_id, m.type,"
      "          m.subject, m.corr, " US_TO_TS("m.at") ", b.body,"
      "          encode(sha256(convert_to(b.body::text, 'UTF8')), 'hex')"
      "   FROM m JOIN b USING (n) ORDER BY m.source, m.record_id, m.n"
      "   ON CONFLICT (source, record_id) DO NOTHING RETURNING id, received_at, body_sha256),"
      " un AS (INSERT INTO unrouted (event_id, received_at) SELECT id, received_at FROM ins)"
      " SELECT DISTINCT ON (ins.id) m.n, ins.body_sha256 FROM ins JOIN m USING (id) ORDER BY ins.id, m.n" },
    { "ingest_dups",
      "SELECT k.n, e.id FROM json_to_recordset($1::json) AS k(n int, source text, record_id text)"
      " JOIN events e ON e.source = k.source AND e.record_id = k.record_id" },
    { "reject",
      "INSERT INTO rejections (at, source, record_id, location, reason, raw, stream, seq, raw_sha256)"
      " SELECT " US_TO_TS("x.at") ", x.source, x.record_id, x.location, x.reason, decode(x.raw, 'base64'),"
      "        x.stream, x.seq, x.raw_sha256"
      " FROM json_to_recordset($1::json) AS x(at bigint, source text, record_id text,"
      "   location text, reason text, raw text, stream text, seq bigint, raw_sha256 text)" },
    { "attempt",
      /* lk locks the delivery rows in id order before the UPDATE touches
       * them (LockRows runs above the Sort), so two writers updating the
       * same rows (two hubs, a late answer) cannot wait for each other in a
       * cycle; FOR NO KEY UPDATE is the lock the UPDATE itself takes. */
      "WITH x AS (SELECT * FROM json_to_recordset($1::json) AS x(n int, id bigint, outcome text,"
      "   retry_ms bigint, status int, detail text, tenant text, entity text, subject text,"
      "   destination text, package text, local_id text)),"
      " lk AS MATERIALIZED (SELECT d.id FROM deliveries d WHERE d.id IN (SELECT x.id FROM x)"
      "   ORDER BY d.id FOR NO KEY UPDATE OF d),"
      " upd AS (UPDATE deliveries d SET"
      "   status = CASE x.outcome WHEN 'ok' THEN 'delivered' WHEN 'dead' THEN 'dead' ELSE 'pending' END,"
      "   attempts = d.attempts + 1,"
      "   next_attempt_at = CASE WHEN x.outcome = 'retry'"
      "                     THEN now() + x.retry_ms * interval '1 millisecond' ELSE d.next_attempt_at END,"
      "   lease_owner = NULL, lease_until = NULL, last_status = x.status, last_detail = x.detail,"
      "   updated_at = now()"
      "   FROM x, lk WHERE d.id = x.id AND lk.id = x.id AND d.status = 'pending' RETURNING d.id)"
      " INSERT INTO xref (tenant, entity, canonical_id, package, local_id, updated_at)"
      " SELECT DISTINCT ON (tenant, entity, subject, package) tenant, entity, subject, package,"
      "        local_id, now()"
      " FROM x WHERE x.outcome = 'ok' AND x.local_id <> '' AND x.subject IS NOT NULL"
      " ORDER BY tenant, entity, subject, package, n DESC"
      " ON CONFLICT (tenant, entity, canonical_id, package)"
      " DO UPDATE SET local_id = EXCLUDED.local_id, updated_at = EXCLUDED.updated_at" },
    { "route",
      /* ON CONFLICT DO NOTHING also skips a pair repeated within the batch.
       * Result: ('d', delivery id, n, local id) for the deliveries created,
       * by id then n (a repeated pair shows twice: the client keeps the
       * first); ('e', NULL, NULL, NULL, event id) for the events routed now
       * (the client writes "unrouted" for those without destination). */
      "WITH x AS (SELECT * FROM json_to_recordset($1::json) AS x(n int, event_id uuid, destination text,"
      "   route text, tenant text, entity text, subject text, package text, order_key text, at bigint)),"
      /* a delivery ordered by subject (order_key) is not leased here: the
       * scheduler claims it when no earlier one of its subject is left
       * (relais_journal_claim_due) */
      " ins AS (INSERT INTO deliveries (event_id, destination, route, status, attempts, next_attempt_at,"
      "   lease_owner, lease_until, updated_at, order_key)"
      "   SELECT event_id, destination, route, 'pending', 0, now(),"
      "          CASE WHEN order_key IS NULL THEN $2 END,"
      "          CASE WHEN order_key IS NULL THEN now() + $3::bigint * interval '1 millisecond' END,"
      "          now(), order_key FROM x WHERE destination IS NOT NULL"
      "   ON CONFLICT (event_id, destination) DO NOTHING RETURNING id, event_id, destination, order_key),"
      " upd AS (DELETE FROM unrouted u USING x WHERE u.event_id = x.event_id RETURNING u.event_id AS id)"
      " SELECT 'd', ins.id, x.n, xr.local_id, NULL, ins.order_key IS NOT NULL FROM ins JOIN x USING (event_id, destination)"
      "   LEFT JOIN xref xr ON xr.tenant = x.tenant AND xr.entity = x.entity"
      "                    AND xr.canonical_id = x.subject AND xr.package = x.package"
      " UNION ALL SELECT 'e', NULL, NULL, NULL, upd.id::text, NULL FROM upd"
      " ORDER BY 1, 2, 3" },
    { "steps",
      STEPS_SQL },
};

/* B_CONFLICT: deadlock detected or serialization failure: nothing was
 * written, running the batch again is the cure. */
typedef enum brc { B_OK = 0, B_DATA, B_TRANSIENT, B_CONN, B_CONFLICT } brc;
/* at_commit: the failure came from COMMIT itself (the outcome may be unknown). */
typedef struct berr { char msg[512]; char state[8]; int at_commit; } berr;

static brc classify(PGconn *c, const PGresult *r, berr *e)
{
    pg_message(c, r, e->msg, sizeof e->msg);
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    snprintf(e->state, sizeof e->state, "%s", st ? st : "");
    if (!c || PQstatus(c) != CONNECTION_OK) return B_CONN;
    if (!st) return B_TRANSIENT;                     /* client side: out of memory... */
    if (!strncmp(st, "08", 2)) return B_CONN;        /* connection exception */
    if (!strcmp(st, "40P01") || !strcmp(st, "40001")) return B_CONFLICT;
    if (!strncmp(st, "40", 2) || !strncmp(st, "53", 2) || !strncmp(st, "57", 2) ||
        !strncmp(st, "58", 2) || !strncmp(st, "XX", 2)) return B_TRANSIENT;
    return B_DATA;                                   /* PostgreSQL refused a value */
}

static brc wexec(lane *l, const char *stmt, int n, const char *const *vals,
                 PGresult **out, berr *e)
{
    PGresult *r = PQexecPrepared(l->wconn, stmt, n, vals, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (out) *out = r; else PQclear(r);
        return B_OK;
    }
    brc c = classify(l->wconn, r, e);
    PQclear(r);
    return c;
}

static brc wexec_plain(lane *l, const char *sql, berr *e)
{
    PGresult *r = PQexec(l->wconn, sql);
    ExecStatusType st = PQresultStatus(r);
    brc c = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) ? B_OK : classify(l->wconn, r, e);
    PQclear(r);
    return c;
}

/* Run a statement with one JSON array parameter (plus extra text ones). */
static brc wexec_json(lane *l, const char *stmt, json_t *arr, const char *p2, const char *p3,
                      PGresult **out, berr *e)
{
    char *js = json_dumps(arr, JSON_COMPACT);
    if (!js) {
        snprintf(e->msg, sizeof e->msg, "out of memory serialising %s rows", stmt);
        e->state[0] = '\0';
        return B_TRANSIENT;
    }
    const char *vals[3] = { js, p2, p3 };
    brc c = wexec(l, stmt, p3 ? 3 : p2 ? 2 : 1, vals, out, e);
    free(js);
    return c;
}

static void add_step(json_t *steps, int64_t at_us, const char *event_id, const char *step,
                     const char *dest, int attempt, int status, const char *detail)
{
    json_t *o = json_object();
    json_object_set_new(o, "at", jtime(at_us));
    if (event_id && *event_id) json_object_set_new(o, "event_id", json_string(event_id));
    json_object_set_new(o, "step", json_string(step));
    set_opt(o, "destination", dest);
    if (attempt > 0) json_object_set_new(o, "attempt", json_integer(attempt));
    if (status) json_object_set_new(o, "status", json_integer(status));
    if (detail && *detail) set_opt(o, "detail", detail);
    json_array_append_new(steps, o);
}

/* ---- one batch, one transaction ------------------------------------------------------ */

typedef struct ingest_ref { relais_event *ev; relais_submit_result *res; int64_t at_us; } ingest_ref;

static brc batch_ingest(lane *l, job **b, size_t n, json_t *steps, berr *e)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) if (b[i]->kind == JOB_INGEST) total += b[i]->u.ingest.n;
    if (!total) return B_OK;
    brc rc = B_TRANSIENT;
    ingest_ref *it = calloc(total, sizeof *it);
    unsigned char *inserted = calloc(total, 1);
    json_t *meta = json_array(), *keys = NULL;
    char *bodies = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&bodies, &blen);
    PGresult *r = NULL;
    snprintf(e->msg, sizeof e->msg, "out of memory building the ingest batch");
    e->state[0] = '\0';
    if (!it || !inserted || !meta || !f) goto out;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (b[i]->kind != JOB_INGEST) continue;
        for (size_t x = 0; x < b[i]->u.ingest.n; x++, k++) {
            it[k] = (ingest_ref){ b[i]->u.ingest.evs[x], &b[i]->u.ingest.res[x], b[i]->at_us };
        }
    }
    fputc('[', f);
    for (k = 0; k < total; k++) {
        relais_event *ev = it[k].ev;
        const char *rid = relais_event_record_id(ev);
        json_t *o = json_object();
        json_object_set_new(o, "n", json_integer((json_int_t)k));
        json_object_set_new(o, "id", jstr(relais_event_id(ev)));
        json_object_set_new(o, "tenant", jstr(or_empty(relais_event_tenant(ev))));
        json_object_set_new(o, "source", jstr(or_empty(relais_event_source_instance(ev))));
        json_object_set_new(o, "record_id", jstr(rid ? rid : relais_event_id(ev)));
        json_object_set_new(o, "type", jstr(relais_event_type(ev)));
        set_opt(o, "subject", relais_event_subject(ev));
        json_object_set_new(o, "corr", jstr(relais_event_correlation(ev) ? relais_event_correlation(ev)
                                                                         : relais_event_id(ev)));
        json_object_set_new(o, "at", jtime(it[k].at_us));
        json_array_append_new(meta, o);
        size_t len;
        const char *js = relais_event_json(ev, &len);
        if (k) fputc(',', f);
        fwrite(js, 1, len, f);
    }
    fputc(']', f);
    if (fclose(f) != 0) { f = NULL; goto out; }
    f = NULL;

    char *mjs = json_dumps(meta, JSON_COMPACT);
    if (!mjs) goto out;
    const char *vals[2] = { mjs, bodies };
    rc = wexec(l, "ingest", 2, vals, &r, e);
    free(mjs);
    if (rc != B_OK) goto out;
    char (*sha)[RELAIS_AUDIT_HEX] = calloc(total, sizeof *sha);
    if (!sha) {
        rc = B_TRANSIENT;
        goto out;
    }
    for (int row = 0; row < PQntuples(r); row++) {
        long nn = strtol(PQgetvalue(r, row, 0), NULL, 10);
        if (nn >= 0 && (size_t)nn < total) {
            inserted[nn] = 1;
            snprintf(sha[nn], sizeof sha[nn], "%s", PQgetvalue(r, row, 1));
        }
    }
    PQclear(r);
    r = NULL;

    size_t ndup = 0;
    for (k = 0; k < total; k++) {
        relais_event *ev = it[k].ev;
        if (!inserted[k]) { ndup++; continue; }
        it[k].res->status = RELAIS_SUBMIT_ACCEPTED;
        snprintf(it[k].res->event_id, sizeof it[k].res->event_id, "%s", relais_event_id(ev));
        it[k].res->reason[0] = '\0';
        add_step(steps, it[k].at_us, relais_event_id(ev), "received", NULL, 0, 0,
                 relais_event_source_instance(ev));
        /* the step covers its event: the row's columns and its body's hash */
        const json_t *m = json_array_get(meta, k);
        json_t *cover = json_pack("{s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:s}", "id", json_object_get(m, "id"),
                                  "tenant", json_object_get(m, "tenant"), "source", json_object_get(m, "source"),
                                  "record_id", json_object_get(m, "record_id"), "type", json_object_get(m, "type"),
                                  "correlation_id", json_object_get(m, "corr"),
                                  "received_at", json_object_get(m, "at"), "body_sha256", sha[k]);
        if (cover && json_object_get(m, "subject"))
            json_object_set(cover, "subject", json_object_get(m, "subject"));
        if (!cover) {
            free(sha);
            snprintf(e->msg, sizeof e->msg, "out of memory building the ingest batch");
            rc = B_TRANSIENT;
            goto out;
        }
        json_object_set_new(json_array_get(steps, json_array_size(steps) - 1), "event", cover);
    }
    free(sha);
    if (ndup) {
        keys = json_array();
        for (k = 0; k < total; k++) {
            if (inserted[k]) continue;
            const char *rid = relais_event_record_id(it[k].ev);
            json_t *o = json_object();
            json_object_set_new(o, "n", json_integer((json_int_t)k));
            json_object_set_new(o, "source", jstr(or_empty(relais_event_source_instance(it[k].ev))));
            json_object_set_new(o, "record_id", jstr(rid ? rid : relais_event_id(it[k].ev)));
            json_array_append_new(keys, o);
        }
        rc = wexec_json(l, "ingest_dups", keys, NULL, NULL, &r, e);
        if (rc != B_OK) goto out;
        for (int row = 0; row < PQntuples(r); row++) {
            long nn = strtol(PQgetvalue(r, row, 0), NULL, 10);
            if (nn < 0 || (size_t)nn >= total || inserted[nn]) continue;
            ingest_ref *d = &it[nn];
            d->res->status = RELAIS_SUBMIT_DUPLICATE;
            snprintf(d->res->event_id, sizeof d->res->event_id, "%s", PQgetvalue(r, row, 1));
            snprintf(d->res->reason, sizeof d->res->reason, "record %.100s from %.100s was received before",
                     relais_event_record_id(d->ev) ? relais_event_record_id(d->ev) : "?",
                     relais_event_source_instance(d->ev) ? relais_event_source_instance(d->ev) : "?");
            char detail[160];
            snprintf(detail, sizeof detail, "sent again as event %s (not kept)", relais_event_id(d->ev));
            add_step(steps, d->at_us, d->res->event_id, "duplicate", NULL, 0, 0, detail);
        }
        for (k = 0; k < total; k++) {
            if (!inserted[k] && it[k].res->status != RELAIS_SUBMIT_DUPLICATE) {
                relais_logf(RELAIS_LOG_ERROR, COMP, "event %s neither inserted nor found as a duplicate",
                            relais_event_id(it[k].ev));
            }
        }
    }
    rc = B_OK;
out:
    if (f) fclose(f);
    PQclear(r);
    free(bodies);
    json_decref(meta);
    json_decref(keys);
    free(inserted);
    free(it);
    return rc;
}

static brc batch_reject(lane *l, job **b, size_t n, json_t *steps, berr *e)
{
    json_t *rows = NULL;
    for (size_t i = 0; i < n; i++) {
        if (b[i]->kind != JOB_REJECT) continue;
        if (!rows) rows = json_array();
        const job *jb = b[i];
        json_t *o = json_object();
        json_object_set_new(o, "at", jtime(jb->at_us));
        json_object_set_new(o, "source", jstr(jb->u.reject.source));
        set_opt(o, "record_id", jb->u.reject.record_id);
        set_opt(o, "location", jb->u.reject.where);
        json_object_set_new(o, "reason", jstr(jb->u.reject.reason));
        if (jb->u.reject.raw && jb->u.reject.rawlen) {
            char *b64 = malloc(4 * ((jb->u.reject.rawlen + 2) / 3) + 1);
            if (b64) {
                EVP_EncodeBlock((unsigned char *)b64, jb->u.reject.raw, (int)jb->u.reject.rawlen);
                json_object_set_new(o, "raw", json_string(b64));
                free(b64);
                char sha[RELAIS_AUDIT_HEX];
                relais_sha256_hex(jb->u.reject.raw, jb->u.reject.rawlen, sha);
                json_object_set_new(o, "raw_sha256", json_string(sha));
            }
        }
        /* the row names its "rejected" step: the next entry of the lane's
         * stream once audit_chain numbers this batch's steps in order */
        json_object_set_new(o, "stream", json_string(l->astream));
        json_object_set_new(o, "seq", json_integer((json_int_t)(l->aseq + (int64_t)json_array_size(steps) + 1)));
        char detail[1024];
        snprintf(detail, sizeof detail, "%s%s%s: %s", jb->u.reject.where ? jb->u.reject.where : "input",
                 jb->u.reject.record_id ? " record " : "", jb->u.reject.record_id ? jb->u.reject.record_id : "",
                 jb->u.reject.reason);
        add_step(steps, jb->at_us, NULL, "rejected", NULL, 0, 0, detail);
        json_t *cover = json_object();
        const char *ck[] = { "at", "source", "record_id", "location", "reason", "raw_sha256" };
        for (size_t c = 0; cover && c < sizeof ck / sizeof ck[0]; c++) {
            json_t *v = json_object_get(o, ck[c]);
            if (v && !json_is_null(v)) json_object_set(cover, ck[c], v);
        }
        json_object_set_new(json_array_get(steps, json_array_size(steps) - 1), "rejection", cover);
        json_array_append_new(rows, o);
    }
    if (!rows) return B_OK;
    brc rc = wexec_json(l, "reject", rows, NULL, NULL, NULL, e);
    json_decref(rows);
    return rc;
}

typedef struct attempt_ord { int64_t id; size_t pos; } attempt_ord;

static int cmp_attempt_ord(const void *a, const void *b)
{
    const attempt_ord *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static brc batch_attempt(lane *l, job **b, size_t n, json_t *steps, berr *e)
{
    size_t na = 0;
    for (size_t i = 0; i < n; i++) if (b[i]->kind == JOB_ATTEMPT) na++;
    if (!na) return B_OK;
    /* Two outcomes for one delivery in a batch go to separate statements
     * ("rounds"), in queue order: one UPDATE cannot change a row twice. */
    attempt_ord *ord = calloc(na, sizeof *ord);
    size_t *round = calloc(n, sizeof *round);
    if (!ord || !round) {
        free(ord);
        free(round);
        snprintf(e->msg, sizeof e->msg, "out of memory");
        e->state[0] = '\0';
        return B_TRANSIENT;
    }
    size_t k = 0, nrounds = 1;
    for (size_t i = 0; i < n; i++) {
        if (b[i]->kind == JOB_ATTEMPT) ord[k++] = (attempt_ord){ b[i]->u.attempt.delivery_id, i };
    }
    qsort(ord, na, sizeof *ord, cmp_attempt_ord);
    for (k = 1; k < na; k++) {
        if (ord[k].id == ord[k - 1].id) {
            round[ord[k].pos] = round[ord[k - 1].pos] + 1;
            if (round[ord[k].pos] + 1 > nrounds) nrounds = round[ord[k].pos] + 1;
        }
    }
    free(ord);
    brc rc = B_OK;
    for (size_t rd = 0; rd < nrounds && rc == B_OK; rd++) {
        json_t *rows = json_array();
        for (size_t i = 0; i < n; i++) {
            if (b[i]->kind != JOB_ATTEMPT || round[i] != rd) continue;
            const job *jb = b[i];
            const char *oc = jb->u.attempt.out == OUT_OK ? "ok" : jb->u.attempt.out == OUT_DEAD ? "dead" : "retry";
            json_t *o = json_object();
            json_object_set_new(o, "n", json_integer((json_int_t)i));
            json_object_set_new(o, "id", json_integer((json_int_t)jb->u.attempt.delivery_id));
            json_object_set_new(o, "outcome", json_string(oc));
            json_object_set_new(o, "retry_ms", json_integer(jb->u.attempt.retry_ms));
            json_object_set_new(o, "status", json_integer(jb->u.attempt.status));
            set_opt(o, "detail", jb->u.attempt.detail);
            set_opt(o, "tenant", jb->u.attempt.tenant);
            json_object_set_new(o, "entity", jstr(jb->u.attempt.entity));
            set_opt(o, "subject", jb->u.attempt.subject);
            set_opt(o, "destination", jb->u.attempt.destination);
            set_opt(o, "package", pkg(l->j, jb->u.attempt.destination));
            set_opt(o, "local_id", jb->u.attempt.local_id);
            json_array_append_new(rows, o);
        }
        rc = wexec_json(l, "attempt", rows, NULL, NULL, NULL, e);
        json_decref(rows);
    }
    free(round);
    if (rc != B_OK) return rc;
    for (size_t i = 0; i < n; i++) {
        if (b[i]->kind != JOB_ATTEMPT) continue;
        const job *jb = b[i];
        const char *eid = jb->u.attempt.event_id, *dest = jb->u.attempt.destination;
        int no = jb->u.attempt.attempt;
        add_step(steps, jb->u.attempt.started_us, eid, "attempt", dest, no, jb->u.attempt.status,
                 jb->u.attempt.detail);
        char detail[256];
        if (jb->u.attempt.out == OUT_OK) {
            if (jb->u.attempt.local_id && *jb->u.attempt.local_id)
                snprintf(detail, sizeof detail, "local id %s", jb->u.attempt.local_id);
            else
                detail[0] = '\0';
            add_step(steps, jb->u.attempt.ended_us, eid, "delivered", dest, no, 0, detail);
        } else if (jb->u.attempt.out == OUT_RETRY) {
            snprintf(detail, sizeof detail, "next attempt in %ld ms", jb->u.attempt.retry_ms);
            add_step(steps, jb->u.attempt.ended_us, eid, "retry_scheduled", dest, no, 0, detail);
        } else {
            if (jb->u.attempt.v == RELAIS_DELIVER_REJECT)
                snprintf(detail, sizeof detail, "refused by the destination");
            else
                snprintf(detail, sizeof detail, "gave up after %d attempt%s", no, no > 1 ? "s" : "");
            add_step(steps, jb->u.attempt.ended_us, eid, "dead_lettered", dest, no, 0, detail);
        }
    }
    return B_OK;
}

typedef struct route_ref { job *jb; size_t item; size_t dest; } route_ref;
#define NO_DEST ((size_t)-1)

static int cmp_ref_event(const void *a, const void *b)
{
    const route_ref *x = *(route_ref *const *)a, *y = *(route_ref *const *)b;
    return strcmp(relais_event_id(x->jb->u.route.items[x->item].ev),
                  relais_event_id(y->jb->u.route.items[y->item].ev));
}

/* A cross-reference key: (tenant, entity, canonical id, package). */
typedef struct xkey { const char *tenant, *entity, *subject, *dest; size_t n; } xkey;

static int cmp_xkey(const void *a, const void *b)
{
    const xkey *x = a, *y = b;
    int c = strcmp(x->subject, y->subject);
    if (!c) c = strcmp(x->dest, y->dest);
    if (!c) c = strcmp(x->entity, y->entity);
    if (!c) c = strcmp(x->tenant, y->tenant);
    return c;
}

/* The local ids that lane B has been given but not committed yet, for the
 * rows refs[0..nr) of one route statement: ov[i] = the local id of the LAST
 * pending OK outcome with row i's key (the one xref will keep), else NULL.
 * Called by lane A before the route statement runs: an outcome queued
 * earlier is either still on lane B's list (seen here) or committed (seen
 * by the statement). NULL when nothing is pending (or out of memory: the
 * statement's own xref lookup still applies). */
static char **pending_xref(relais_journal *j, const route_ref *refs, size_t nr)
{
    lane *lb = &j->lanes[LANE_ASYNC];
    pthread_mutex_lock(&lb->mu);
    int any = lb->xhead != NULL;
    pthread_mutex_unlock(&lb->mu);
    if (!any || !nr) return NULL;
    xkey *keys = calloc(nr, sizeof *keys);
    char (*ents)[128] = calloc(nr, sizeof *ents);
    const char **src = calloc(nr, sizeof *src);
    char **ov = calloc(nr, sizeof *ov);
    if (!keys || !ents || !src || !ov) {
        free(keys); free(ents); free(src); free(ov);
        return NULL;
    }
    size_t nk = 0;
    for (size_t i = 0; i < nr; i++) {
        const route_ref *ref = &refs[i];
        if (ref->dest == NO_DEST) continue;
        const route_in *it = &ref->jb->u.route.items[ref->item];
        const char *subject = relais_event_subject(it->ev);
        if (!subject) continue;
        relais_event_entity(it->ev, ents[nk], sizeof ents[nk]);
        keys[nk] = (xkey){ or_empty(relais_event_tenant(it->ev)), ents[nk], subject,
                           pkg(j, it->dests[ref->dest]), i };
        nk++;
    }
    qsort(keys, nk, sizeof *keys, cmp_xkey);
    int found = 0;
    pthread_mutex_lock(&lb->mu);
    for (const job *x = lb->xhead; x && nk; x = x->xnext) {
        xkey probe = { x->u.attempt.tenant, x->u.attempt.entity, x->u.attempt.subject,
                       pkg(j, x->u.attempt.destination), 0 };
        size_t lo = 0, hi = nk;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cmp_xkey(&keys[mid], &probe) < 0) lo = mid + 1; else hi = mid;
        }
        for (size_t k = lo; k < nk && cmp_xkey(&keys[k], &probe) == 0; k++) {
            src[keys[k].n] = x->u.attempt.local_id;   /* later in the queue wins */
            found = 1;
        }
    }
    for (size_t i = 0; found && i < nr; i++) if (src[i]) ov[i] = strdup(src[i]);
    pthread_mutex_unlock(&lb->mu);
    free(keys);
    free(ents);
    free(src);
    if (!found) { free(ov); ov = NULL; }
    return ov;
}

static void free_overlay(char **ov, size_t n)
{
    free_strv(ov, n);
}

static brc batch_route(lane *l, job **b, size_t n, json_t *steps, berr *e)
{
    size_t total = 0;
    const job *first = NULL;
    for (size_t i = 0; i < n; i++) {
        if (b[i]->kind != JOB_ROUTE) continue;
        total += job_items(b[i]);
        if (!first) first = b[i];
    }
    if (!total) return B_OK;
    /* Lease owner and duration are per job; a batch normally holds one hub's
     * jobs, all with the same ones. Jobs with another owner/lease get their
     * own statement. */
    brc rc = B_OK;
    route_ref *refs = calloc(total, sizeof *refs);
    route_ref **bare = calloc(total, sizeof *bare);   /* refs of events without destination */
    unsigned char *doneflag = calloc(n, 1);
    if (!refs || !bare || !doneflag) {
        free(refs);
        free(bare);
        free(doneflag);
        snprintf(e->msg, sizeof e->msg, "out of memory");
        e->state[0] = '\0';
        return B_TRANSIENT;
    }
    for (size_t i = 0; i < n; i++) {
        if (b[i]->kind != JOB_ROUTE) continue;
        job *jb = b[i];
        size_t cap = job_items(jb);
        jb->u.route.out = calloc(cap, sizeof *jb->u.route.out);
        jb->u.route.nout = 0;
        if (!jb->u.route.out) {
            rc = B_TRANSIENT;
            snprintf(e->msg, sizeof e->msg, "out of memory");
            e->state[0] = '\0';
            break;
        }
    }
    for (size_t lead = 0; lead < n && rc == B_OK; lead++) {
        if (b[lead]->kind != JOB_ROUTE || doneflag[lead]) continue;
        const char *owner = b[lead]->u.route.owner;
        long lease = b[lead]->u.route.lease_ms;
        json_t *rows = json_array();
        size_t nr = 0, nbare = 0;
        for (size_t i = lead; i < n; i++) {
            job *jb = b[i];
            if (jb->kind != JOB_ROUTE || doneflag[i]) continue;
            if (strcmp(jb->u.route.owner, owner) != 0 || jb->u.route.lease_ms != lease) continue;
            doneflag[i] = 1;
            for (size_t t = 0; t < jb->u.route.n; t++) {
                route_in *it = &jb->u.route.items[t];
                char entity[128];
                relais_event_entity(it->ev, entity, sizeof entity);
                size_t nd = it->ndest ? it->ndest : 1;
                for (size_t d = 0; d < nd; d++) {
                    refs[nr] = (route_ref){ jb, t, it->ndest ? d : NO_DEST };
                    if (!it->ndest) bare[nbare++] = &refs[nr];
                    json_t *o = json_object();
                    json_object_set_new(o, "n", json_integer((json_int_t)nr));
                    json_object_set_new(o, "event_id", jstr(relais_event_id(it->ev)));
                    if (it->ndest) {
                        json_object_set_new(o, "destination", jstr(it->dests[d]));
                        json_object_set_new(o, "package", jstr(pkg(l->j, it->dests[d])));
                        set_opt(o, "route", it->routes ? it->routes[d] : NULL);
                        if (it->ordered && it->ordered[d] && relais_event_subject(it->ev))
                            json_object_set_new(o, "order_key", jstr(relais_event_subject(it->ev)));
                    }
                    json_object_set_new(o, "tenant", jstr(or_empty(relais_event_tenant(it->ev))));
                    json_object_set_new(o, "entity", jstr(entity));
                    set_opt(o, "subject", relais_event_subject(it->ev));
                    json_object_set_new(o, "at", jtime(jb->at_us));
                    json_array_append_new(rows, o);
                    nr++;
                }
            }
        }
        char lease_s[32];
        snprintf(lease_s, sizeof lease_s, "%ld", lease);
        char **ov = pending_xref(l->j, refs, nr);
        PGresult *r = NULL;
        rc = wexec_json(l, "route", rows, owner, lease_s, &r, e);
        json_decref(rows);
        if (rc != B_OK) { free_overlay(ov, nr); break; }
        qsort(bare, nbare, sizeof *bare, cmp_ref_event);
        int64_t prev_id = -1;
        for (int row = 0; row < PQntuples(r); row++) {
            const char *kind = PQgetvalue(r, row, 0);
            if (kind[0] == 'e') {
                /* first item (in batch order) of this event without destination */
                const char *eid = PQgetvalue(r, row, 4);
                route_ref **hit = NULL;
                size_t lo = 0, hi = nbare;
                while (lo < hi) {
                    size_t mid = (lo + hi) / 2;
                    int c = strcmp(relais_event_id(bare[mid]->jb->u.route.items[bare[mid]->item].ev), eid);
                    if (c < 0) lo = mid + 1; else hi = mid;
                }
                for (size_t k = lo; k < nbare; k++) {
                    route_ref *b2 = bare[k];
                    if (strcmp(relais_event_id(b2->jb->u.route.items[b2->item].ev), eid) != 0) break;
                    if (!hit || b2 < *hit) hit = &bare[k];
                }
                if (hit) {
                    route_ref *ref = *hit;
                    add_step(steps, ref->jb->at_us, eid, "unrouted", NULL, 0, 0, "no route matched");
                }
                continue;
            }
            long nn = strtol(PQgetvalue(r, row, 2), NULL, 10);
            if (nn < 0 || (size_t)nn >= nr) continue;
            route_ref *ref = &refs[nn];
            route_in *it = &ref->jb->u.route.items[ref->item];
            if (ref->dest != NO_DEST) {
                int64_t id = strtoll(PQgetvalue(r, row, 1), NULL, 10);
                if (id == prev_id) continue;     /* the pair repeated in the batch: first n wins */
                prev_id = id;
                if (PQgetvalue(r, row, 5)[0] == 't') {   /* ordered by subject: the scheduler claims it */
                    add_step(steps, ref->jb->at_us, relais_event_id(it->ev), "routed", it->dests[ref->dest], 0, 0,
                             it->routes ? it->routes[ref->dest] : NULL);
                    continue;
                }
                relais_delivery *dv = &ref->jb->u.route.out[ref->jb->u.route.nout++];
                dv->id = id;
                dv->ev = relais_event_ref(it->ev);
                dv->destination = xstrdup(it->dests[ref->dest]);
                dv->tenant = xstrdup(relais_event_tenant(it->ev) ? relais_event_tenant(it->ev) : "");
                dv->attempts = 0;
                if (ov && ov[nn]) {   /* a newer local id, not committed by lane B yet */
                    dv->local_id = ov[nn];
                    ov[nn] = NULL;
                } else {
                    dv->local_id = PQgetisnull(r, row, 3) ? NULL : xstrdup(PQgetvalue(r, row, 3));
                }
                add_step(steps, ref->jb->at_us, relais_event_id(it->ev), "routed", it->dests[ref->dest], 0, 0,
                         it->routes ? it->routes[ref->dest] : NULL);
            }
        }
        PQclear(r);
        free_overlay(ov, nr);
    }
    free(refs);
    free(bare);
    free(doneflag);
    return rc;
}

static void batch_steps(job **b, size_t n, json_t *steps)
{
    for (size_t i = 0; i < n; i++) {
        if (b[i]->kind != JOB_STEP) continue;
        const job *jb = b[i];
        add_step(steps, jb->at_us, jb->u.step.event_id, jb->u.step.step, jb->u.step.destination, 0,
                 jb->u.step.status, jb->u.step.detail);
    }
}

/* ---- the tamper-evident trail (hub/audit.h) ----------------------------------------------- */

/* Keys whose value is null are left out: the verifier rebuilds the entry
 * from the stored row, where they are NULL columns, i.e. absent. */
static void strip_nulls(json_t *o)
{
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(o, tmp, k, v) {
        if (json_is_null(v)) json_object_del(o, k);
        else if (json_is_object(v)) strip_nulls(v);
    }
}

/* Start a new stream "<audit name>/<uuid v7>/<lane letter>" (writer
 * thread, or the read side under rmu). */
static void audit_new_stream(relais_journal *j, char *stream, size_t len, char letter)
{
    char id[37];
    relais_uuid_v7(id);
    snprintf(stream, len, "%.150s/%s/%c", j->aname, id, letter);   /* aname: set at open */
}

/* Append the checkpoint (stream, seq, hash) to the witness file. */
static void audit_write_checkpoint(relais_journal *j, const char *stream, int64_t seq, const char *hash)
{
    if (j->acp_fd < 0 || seq < 1) return;
    char *line = relais_audit_checkpoint_line(j->akey, j->akeylen, stream, seq, hash, relais_now_us());
    size_t len = line ? strlen(line) : 0;
    if (!line || write(j->acp_fd, line, len) != (ssize_t)len || fdatasync(j->acp_fd) != 0)
        relais_logf(RELAIS_LOG_ERROR, COMP, "cannot append the checkpoint of %s at %lld: %s", stream,
                    (long long)seq, line ? strerror(errno) : "out of memory");
    free(line);
}

static void lane_checkpoint(lane *l)
{
    if (l->aseq > l->acp_seq) audit_write_checkpoint(l->j, l->astream, l->aseq, l->aprev);
    l->acp_seq = l->aseq;
    l->acp_at_us = mono_us();
}

/* A checkpoint right after a stream's first commit, then every acp_ms. */
static void lane_checkpoint_due(lane *l)
{
    if (l->aseq > l->acp_seq && (l->acp_seq == 0 || mono_us() - l->acp_at_us >= l->j->acp_ms * 1000))
        lane_checkpoint(l);
}

static void lane_new_stream(lane *l)
{
    if (l->aseq) lane_checkpoint(l);
    audit_new_stream(l->j, l->astream, sizeof l->astream, l == &l->j->lanes[LANE_BLOCKING] ? 'A' : 'B');
    l->aseq = l->acp_seq = 0;
    memset(l->aprev, '0', RELAIS_AUDIT_HEX - 1);
    l->aprev[RELAIS_AUDIT_HEX - 1] = '\0';
}

/* Number the steps from *seq on, after the entry whose hash is prev (both
 * advanced), and give each its proof: hash = chain(prev, canonical bytes
 * of the step and of what it covers), mac = HMAC(key, stream, seq, hash).
 * *wire (malloc'd) receives the rows for STEPS_SQL: each row is its
 * canonical bytes with the proof members spliced in before the closing
 * brace (serialised once; json_to_recordset ignores the covered
 * "event"/"rejection" members). */
static int audit_chain(const relais_journal *j, const char *stream, int64_t *seq, char prev[RELAIS_AUDIT_HEX],
                       json_t *steps, char **wire, char *errstr, size_t errlen)
{
    *wire = NULL;
    char *buf = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&buf, &blen);
    if (!f) {
        snprintf(errstr, errlen, "out of memory");
        return -1;
    }
    fputc('[', f);
    size_t i;
    json_t *o;
    json_array_foreach(steps, i, o) {
        strip_nulls(o);
        size_t len;
        char *bytes = relais_audit_canonical(o, &len);
        char hash[RELAIS_AUDIT_HEX], mac[RELAIS_AUDIT_HEX];
        if (bytes) relais_audit_chain(prev, bytes, len, hash);
        if (!bytes || len < 3 || bytes[len - 1] != '}' || !hash[0]
            || relais_audit_mac(j->akey, j->akeylen, stream, *seq + 1, hash, mac) != 0) {
            free(bytes);
            fclose(f);
            free(buf);
            snprintf(errstr, errlen, "cannot compute the chain proof of step %zu (no audit key, or out of memory)", i);
            return -1;
        }
        ++*seq;
        if (i) fputc(',', f);
        fwrite(bytes, 1, len - 1, f);
        fprintf(f, ",\"seq\":%lld,\"prev_hash\":\"%s\",\"hash\":\"%s\",\"mac\":\"%s\"}",
                (long long)*seq, prev, hash, mac);
        free(bytes);
        memcpy(prev, hash, RELAIS_AUDIT_HEX);
    }
    fputc(']', f);
    if (fclose(f) != 0) {
        free(buf);
        snprintf(errstr, errlen, "out of memory");
        return -1;
    }
    *wire = buf;
    return 0;
}

/* Run jobs b[0..n) in one transaction. Results land in the jobs only when the
 * transaction committed. */
static brc run_batch(lane *l, job **b, size_t n, berr *e)
{
    e->at_commit = 0;
    for (size_t i = 0; i < n; i++) job_reset_results(b[i], "journal unavailable");
    json_t *steps = json_array();
    if (!steps) {
        snprintf(e->msg, sizeof e->msg, "out of memory");
        e->state[0] = '\0';
        return B_TRANSIENT;
    }
    if (l->aseq >= l->j->astream_max) lane_new_stream(l);
    brc rc = wexec_plain(l, "BEGIN", e);
    if (rc == B_OK) rc = batch_ingest(l, b, n, steps, e);
    if (rc == B_OK) rc = batch_reject(l, b, n, steps, e);
    if (rc == B_OK) rc = batch_attempt(l, b, n, steps, e);
    if (rc == B_OK) rc = batch_route(l, b, n, steps, e);
    if (rc == B_OK) batch_steps(b, n, steps);
    int64_t pseq = l->aseq;                  /* the batch's entries, kept if it commits */
    char pprev[RELAIS_AUDIT_HEX];
    memcpy(pprev, l->aprev, sizeof pprev);
    char *wire = NULL;
    if (rc == B_OK && json_array_size(steps) > 0) {
        if (audit_chain(l->j, l->astream, &pseq, pprev, steps, &wire, e->msg, sizeof e->msg) != 0) {
            e->state[0] = '\0';
            rc = B_TRANSIENT;
        } else {
            const char *vals[2] = { wire, l->astream };
            rc = wexec(l, "steps", 2, vals, NULL, e);
        }
        free(wire);
    }
    if (rc == B_OK) {
        rc = wexec_plain(l, "COMMIT", e);
        if (rc != B_OK) e->at_commit = 1;
    }
    json_decref(steps);
    if (rc == B_OK) {
        atomic_fetch_add(&l->batches, 1);
        l->aseq = pseq;                      /* the stream advances with the commit */
        memcpy(l->aprev, pprev, sizeof l->aprev);
        lane_checkpoint_due(l);
        return B_OK;
    }
    /* COMMIT's outcome unknown: the rows may be in; never number twice */
    if (e->at_commit) lane_new_stream(l);
    if (PQstatus(l->wconn) == CONNECTION_OK) {
        berr ignored;
        if (wexec_plain(l, "ROLLBACK", &ignored) != B_OK) rc = B_CONN;
    } else {
        rc = B_CONN;
    }
    for (size_t i = 0; i < n; i++) job_reset_results(b[i], "journal unavailable");
    return rc;
}

/* ---- the writer threads ---------------------------------------------------------------- */

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static void finish_ok(lane *l, job **b, size_t n)
{
    atomic_fetch_add(&l->jobs, n);
    atomic_store(&l->healthy, 1);
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < n; i++) complete_locked(l, b[i], 0);
    pthread_mutex_unlock(&l->mu);
}

/* Install (c != NULL) or drop the writer connection (the old one, if any,
 * is closed); the cancel handle is published under l->mu for
 * relais_journal_close. */
static void set_writer_conn(lane *l, PGconn *c)
{
    PGcancel *cancel = c ? PQgetCancel(c) : NULL;
    pthread_mutex_lock(&l->mu);
    PGcancel *old = l->wcancel;
    l->wcancel = cancel;
    l->down = c ? 0 : 1;
    pthread_mutex_unlock(&l->mu);
    PQfreeCancel(old);
    if (l->wconn && l->wconn != c) PQfinish(l->wconn);
    l->wconn = c;
}

static void disconnect_writer(lane *l)
{
    set_writer_conn(l, NULL);
    atomic_store(&l->healthy, 0);
    l->next_connect_us = mono_us() + (int64_t)l->backoff_ms * 1000;
}

static int prepare_all(PGconn *c, char *errstr, size_t errlen)
{
    for (size_t i = 0; i < sizeof g_stmts / sizeof g_stmts[0]; i++) {
        PGresult *r = PQprepare(c, g_stmts[i].name, g_stmts[i].sql, 0, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            char msg[512];
            pg_message(c, r, msg, sizeof msg);
            snprintf(errstr, errlen, "cannot prepare statement %s: %s", g_stmts[i].name, msg);
            PQclear(r);
            return -1;
        }
        PQclear(r);
    }
    return 0;
}

static PGconn *connect_writer(lane *l, char *errstr, size_t errlen)
{
    PGconn *c = pg_connect(l->j->conninfo, l->app_name, errstr, errlen);
    if (c && prepare_all(c, errstr, errlen) != 0) {
        PQfinish(c);
        c = NULL;
    }
    return c;
}

/* The connection turned out broken before anything was committed (a backend
 * killed while the lane was idle, a PostgreSQL restart): one new connection
 * at once, rather than failing the batch or waiting for the backoff.
 * 1 when connected. */
static int reconnect_now(lane *l, const berr *e)
{
    char err[700];
    PGconn *c = connect_writer(l, err, sizeof err);
    if (!c) return 0;
    set_writer_conn(l, c);
    l->backoff_ms = BACKOFF_MIN_MS;
    atomic_store(&l->healthy, 1);
    relais_logf(RELAIS_LOG_INFO, COMP, "%s: connection lost (%s); connected again", l->name, e->msg);
    return 1;
}

/* The transaction could not run: fail the blocking jobs, put the async ones
 * back at the head of the queue (in order). With `disconnect` (connection
 * lost, or a server-side condition) the connection is dropped and the writer
 * reconnects with backoff; without (a deadlock or serialization failure that
 * persisted) the next loop simply runs the async jobs again. */
static void outage(lane *l, job **b, size_t n, const berr *e, int disconnect)
{
    size_t kept = 0, failed = 0;
    char reason[256];
    snprintf(reason, sizeof reason, "journal unavailable: %.200s", e->msg);
    if (disconnect) disconnect_writer(l);
    pthread_mutex_lock(&l->mu);
    job *chain = NULL, *ctail = NULL;
    for (size_t i = 0; i < n; i++) {
        job *jb = b[i];
        if (jb->blocking) {
            job_reset_results(jb, reason);
            complete_locked(l, jb, -1);
            failed++;
            continue;
        }
        jb->state = JOB_QUEUED;
        jb->next = NULL;
        if (ctail) ctail->next = jb; else chain = jb;
        ctail = jb;
        l->qasync++;
        l->qitems += job_items(jb);
        kept++;
    }
    if (chain) {
        ctail->next = l->head;
        if (!l->head) l->tail = ctail;
        l->head = chain;
    }
    q_bound_locked(l);
    pthread_mutex_unlock(&l->mu);
    if (disconnect) {
        relais_logf(RELAIS_LOG_WARN, COMP, "%s: transaction failed (%s%s%s): %zu blocking call(s) failed, %zu async "
                    "job(s) kept for retry; reconnecting in %ld ms", l->name, e->state[0] ? e->state : "",
                    e->state[0] ? ": " : "", e->msg, failed, kept, l->backoff_ms);
    } else {
        relais_logf(RELAIS_LOG_WARN, COMP, "%s: transaction failed %d times (%s: %s): %zu blocking call(s) failed, "
                    "%zu async job(s) kept for retry", l->name, CONFLICT_TRIES, e->state, e->msg, failed, kept);
    }
}

/* Run the batch; transient errors are tried TRANSIENT_TRIES times, conflicts
 * (deadlock, serialization failure) CONFLICT_TRIES times with a growing pause
 * so that the other transaction can finish. */
static brc run_with_retries(lane *l, job **b, size_t n, berr *e)
{
    int transient = 0, conflicts = 0;
    for (;;) {
        brc rc = run_batch(l, b, n, e);
        if (rc == B_TRANSIENT && ++transient < TRANSIENT_TRIES) continue;
        if (rc == B_CONFLICT && ++conflicts < CONFLICT_TRIES) {
            relais_logf(RELAIS_LOG_INFO, COMP, "%s: %s (%s); running the batch of %zu job(s) again", l->name,
                        e->msg, e->state, n);
            sleep_ms((long)CONFLICT_PAUSE_MS * conflicts);
            continue;
        }
        return rc;
    }
}

/* run_with_retries, plus one immediate reconnection when the connection was
 * found broken before COMMIT (nothing of the batch can have been written). */
static brc run_or_reconnect(lane *l, job **b, size_t n, berr *e)
{
    brc rc = run_with_retries(l, b, n, e);
    if (rc == B_CONN && !e->at_commit && reconnect_now(l, e)) rc = run_with_retries(l, b, n, e);
    return rc;
}

/* A job refused by PostgreSQL alone: events one by one, the rest fail or drop. */
static brc refuse_job(lane *l, job *jb, const berr *e0, berr *eout)
{
    if (jb->kind != JOB_INGEST) {
        if (jb->blocking) {
            relais_logf(RELAIS_LOG_ERROR, COMP, "%s refused by PostgreSQL: %s", kind_name(jb->kind), e0->msg);
            job_reset_results(jb, e0->msg);
            pthread_mutex_lock(&l->mu);
            complete_locked(l, jb, -1);
            pthread_mutex_unlock(&l->mu);
        } else {
            const char *eid = jb->kind == JOB_ATTEMPT ? jb->u.attempt.event_id
                            : jb->kind == JOB_STEP ? jb->u.step.event_id : "";
            relais_logf(RELAIS_LOG_ERROR, COMP, "dropped %s job%s%s: PostgreSQL refused it: %s",
                        kind_name(jb->kind), *eid ? " of event " : "", eid, e0->msg);
            pthread_mutex_lock(&l->mu);
            l->dropped++;
            complete_locked(l, jb, -1);
            pthread_mutex_unlock(&l->mu);
        }
        return B_OK;
    }
    /* Ingest: each event in its own transaction; a refused one is REJECTED and
     * recorded in rejections. */
    size_t n = jb->u.ingest.n;
    relais_submit_result *res = calloc(n, sizeof *res);
    if (!res) {
        snprintf(eout->msg, sizeof eout->msg, "out of memory");
        eout->state[0] = '\0';
        eout->at_commit = 0;
        return B_TRANSIENT;
    }
    for (size_t x = 0; x < n; x++) {
        job sub;
        memset(&sub, 0, sizeof sub);
        sub.kind = JOB_INGEST;
        sub.at_us = jb->at_us;
        sub.u.ingest.evs = &jb->u.ingest.evs[x];
        sub.u.ingest.res = &res[x];
        sub.u.ingest.n = 1;
        job *sp = &sub;
        berr e;
        brc rc = run_with_retries(l, &sp, 1, &e);
        if (rc == B_OK) continue;
        if (rc != B_DATA) { *eout = e; free(res); return rc; }
        relais_event *ev = jb->u.ingest.evs[x];
        res[x].status = RELAIS_SUBMIT_REJECTED;
        res[x].event_id[0] = '\0';
        snprintf(res[x].reason, sizeof res[x].reason, "the journal refused the event: %.200s", e.msg);
        relais_logf(RELAIS_LOG_ERROR, COMP, "event %s refused by PostgreSQL: %s", relais_event_id(ev), e.msg);
        job rj;
        memset(&rj, 0, sizeof rj);
        rj.kind = JOB_REJECT;
        rj.at_us = jb->at_us;
        size_t len;
        const char *js = relais_event_json(ev, &len);
        rj.u.reject.source = (char *)(relais_event_source_instance(ev) ? relais_event_source_instance(ev) : "unknown");
        rj.u.reject.record_id = (char *)relais_event_record_id(ev);
        rj.u.reject.where = "journal";
        rj.u.reject.reason = res[x].reason;
        rj.u.reject.raw = (unsigned char *)js;
        rj.u.reject.rawlen = len > RAW_MAX ? RAW_MAX : len;
        job *rp = &rj;
        berr e2;
        rc = run_with_retries(l, &rp, 1, &e2);
        if (rc == B_CONN || rc == B_TRANSIENT || rc == B_CONFLICT) { *eout = e2; free(res); return rc; }
        if (rc != B_OK) relais_logf(RELAIS_LOG_ERROR, COMP, "cannot record the rejection of event %s: %s",
                                    relais_event_id(ev), e2.msg);
    }
    memcpy(jb->u.ingest.res, res, n * sizeof *res);
    free(res);
    atomic_fetch_add(&l->jobs, 1);
    pthread_mutex_lock(&l->mu);
    complete_locked(l, jb, 0);
    pthread_mutex_unlock(&l->mu);
    return B_OK;
}

static void isolate(lane *l, job **b, size_t n, const berr *e0)
{
    relais_logf(RELAIS_LOG_WARN, COMP, "a batch of %zu job(s) was refused (%s%s%s); running its jobs one by one",
                n, e0->state, e0->state[0] ? ": " : "", e0->msg);
    for (size_t i = 0; i < n; i++) {
        berr e;
        brc rc = run_with_retries(l, &b[i], 1, &e);
        if (rc == B_OK) { finish_ok(l, &b[i], 1); continue; }
        if (rc == B_DATA) {
            berr e2 = e;
            rc = refuse_job(l, b[i], &e, &e2);
            e = e2;
        }
        if (rc != B_OK) {
            outage(l, b + i, n - i, &e, rc != B_CONFLICT);
            return;
        }
    }
}

static void process(lane *l, job **b, size_t n)
{
    berr e;
    brc rc = run_or_reconnect(l, b, n, &e);
    if (rc == B_OK) finish_ok(l, b, n);
    else if (rc == B_DATA) isolate(l, b, n, &e);
    else outage(l, b, n, &e, rc != B_CONFLICT);
}

/* Take queued jobs up to batch_max items (at least one job). Holds l->mu. */
static size_t take_batch(lane *l, job **b, size_t cap)
{
    size_t n = 0, items = 0;
    while (l->head && n < cap) {
        job *jb = l->head;
        size_t k = job_items(jb);
        if (n > 0 && items + k > (size_t)l->j->batch_max) break;
        q_unlink(l, NULL, jb);
        jb->state = JOB_RUNNING;
        b[n++] = jb;
        items += k;
    }
    return n;
}

static void *writer_main(void *arg)
{
    lane *l = arg;
    relais_journal *j = l->j;
    size_t cap = (size_t)j->batch_max;
    job **batch = l->batch;
    int64_t last_activity = mono_us();
    int warned = 0;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        int64_t now = mono_us();
        if (l->stopping && (!l->head || now >= l->stop_deadline_us)) break;
        if (!l->wconn) {
            if (now < l->next_connect_us) {
                q_fail_blocking_locked(l, "journal unavailable: PostgreSQL is unreachable");
                int64_t until = l->next_connect_us;
                if (l->stopping && l->stop_deadline_us < until) until = l->stop_deadline_us;
                cond_wait_until(&l->wake, &l->mu, until);
                continue;
            }
            pthread_mutex_unlock(&l->mu);
            char err[700];
            PGconn *c = connect_writer(l, err, sizeof err);
            if (c) {
                set_writer_conn(l, c);
                l->backoff_ms = BACKOFF_MIN_MS;
                atomic_store(&l->healthy, 1);
                relais_logf(RELAIS_LOG_INFO, COMP, "%s connected to PostgreSQL again", l->name);
                warned = 0;
            } else {
                if (!warned) relais_logf(RELAIS_LOG_WARN, COMP, "%s: %s; retrying with backoff", l->name, err);
                warned = 1;
                atomic_store(&l->healthy, 0);
                l->next_connect_us = mono_us() + (int64_t)l->backoff_ms * 1000;
                l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff_ms * 2;
            }
            pthread_mutex_lock(&l->mu);
            if (!c) q_fail_blocking_locked(l, "journal unavailable: PostgreSQL is unreachable");
            last_activity = mono_us();
            continue;
        }
        if (!l->head) {
            if (l->stopping) break;
            cond_wait_until(&l->wake, &l->mu, now + IDLE_PING_MS * 1000);
            if (!l->head && !l->stopping && mono_us() - last_activity >= IDLE_PING_MS * 1000) {
                /* idle: check the connection so that healthy() tells the truth */
                pthread_mutex_unlock(&l->mu);
                berr e;
                if (wexec_plain(l, "SELECT 1", &e) != B_OK) {
                    if (!reconnect_now(l, &e)) {
                        relais_logf(RELAIS_LOG_WARN, COMP, "%s connection lost: %s", l->name, e.msg);
                        disconnect_writer(l);
                    }
                } else {
                    atomic_store(&l->healthy, 1);
                }
                last_activity = mono_us();
                lane_checkpoint_due(l);
                pthread_mutex_lock(&l->mu);
            }
            continue;
        }
        if (l->qitems < (size_t)j->batch_max && j->batch_wait_ms > 0 && !l->stopping) {
            int64_t deadline = now + j->batch_wait_ms * 1000;
            while (l->qitems < (size_t)j->batch_max && !l->stopping &&
                   cond_wait_until(&l->wake, &l->mu, deadline) != ETIMEDOUT) {
            }
        }
        size_t n = take_batch(l, batch, cap);
        pthread_mutex_unlock(&l->mu);
        process(l, batch, n);
        last_activity = mono_us();
        pthread_mutex_lock(&l->mu);
    }
    /* closing: whatever is left could not be written in time */
    size_t lost = 0;
    while (l->head) {
        job *jb = l->head;
        q_unlink(l, NULL, jb);
        if (!jb->blocking) lost++;
        job_reset_results(jb, "the journal is closing");
        complete_locked(l, jb, -1);
    }
    pthread_mutex_unlock(&l->mu);
    lane_checkpoint(l);                      /* the stream's last entry, seen outside the database */
    if (lost) relais_logf(RELAIS_LOG_ERROR, COMP, "closing: %zu async job(s) could not be written and are lost", lost);
    return NULL;
}

/* ---- open / close ------------------------------------------------------------------------- */

static const struct { const char *name, *thread_name, *app_name; } g_lanes[NLANES] = {
    [LANE_BLOCKING] = { "writer", "relais-journal", "relais-journal-writer" },
    [LANE_ASYNC]    = { "async writer", "relais-j-async", "relais-journal-async" },
};

static void lane_init(relais_journal *j, lane *l, int which)
{
    l->j = j;
    l->name = g_lanes[which].name;
    l->thread_name = g_lanes[which].thread_name;
    l->app_name = g_lanes[which].app_name;
    l->backoff_ms = BACKOFF_MIN_MS;
    pthread_mutex_init(&l->mu, NULL);
    cond_init_mono(&l->wake);
    atomic_init(&l->healthy, 0);
    atomic_init(&l->batches, 0);
    atomic_init(&l->jobs, 0);
}

/* Connect the lane's writer and start its thread. */
static int lane_start(lane *l, char *errstr, size_t errlen)
{
    char err[600];
    l->batch = calloc((size_t)l->j->batch_max, sizeof *l->batch);
    if (!l->batch) { snprintf(errstr, errlen, "journal: out of memory"); return -1; }
    lane_new_stream(l);
    PGconn *wc = connect_writer(l, err, sizeof err);
    if (!wc) { snprintf(errstr, errlen, "journal: %s", err); return -1; }
    set_writer_conn(l, wc);
    atomic_store(&l->healthy, 1);
    if (pthread_create(&l->thread, NULL, writer_main, l) != 0) {
        snprintf(errstr, errlen, "journal: cannot start the %s thread", l->name);
        return -1;
    }
    l->thread_started = 1;
    pthread_setname_np(l->thread, l->thread_name);   /* named before open returns */
    return 0;
}

relais_journal *relais_journal_open(const relais_journal_opts *o, char *errstr, size_t errlen)
{
    if (!o || !o->conninfo) {
        snprintf(errstr, errlen, "journal: no conninfo");
        return NULL;
    }
    relais_journal *j = calloc(1, sizeof *j);
    if (!j) { snprintf(errstr, errlen, "journal: out of memory"); return NULL; }
    j->conninfo = strdup(o->conninfo);
    j->batch_max = o->batch_max > 0 ? o->batch_max : DEFAULT_BATCH_MAX;
    j->batch_wait_ms = o->batch_wait_ms > 0 ? o->batch_wait_ms : o->batch_wait_ms < 0 ? 0 : DEFAULT_BATCH_WAIT_MS;
    j->queue_max = o->queue_max > 0 ? o->queue_max : DEFAULT_QUEUE_MAX;
    j->block_timeout_ms = DEFAULT_BLOCK_TIMEOUT;
    j->writer = o->writer ? 1 : 0;
    j->acp_fd = -1;
    j->acp_ms = o->audit_checkpoint_ms > 0 ? o->audit_checkpoint_ms : AUDIT_CP_MS;
    j->astream_max = o->audit_stream_max > 0 ? o->audit_stream_max : AUDIT_STREAM_MAX;
    pthread_mutex_init(&j->rmu, NULL);
    atomic_init(&j->healthy, 0);
    for (int i = 0; i < NLANES; i++) lane_init(j, &j->lanes[i], i);
    if (!j->conninfo) { snprintf(errstr, errlen, "journal: out of memory"); goto fail; }
    if (o->audit_key && o->audit_keylen >= RELAIS_AUDIT_KEY_MIN) {
        j->akey = malloc(o->audit_keylen);
        if (!j->akey) { snprintf(errstr, errlen, "journal: out of memory"); goto fail; }
        memcpy(j->akey, o->audit_key, o->audit_keylen);
        j->akeylen = o->audit_keylen;
    } else if (j->writer) {
        snprintf(errstr, errlen, "journal: the writer needs the audit key (audit.key_file) to chain the steps");
        goto fail;
    }
    j->aname = strdup(o->audit_name ? o->audit_name : "relais");
    if (!j->aname) { snprintf(errstr, errlen, "journal: out of memory"); goto fail; }
    if (o->audit_checkpoints) {
        j->acp_fd = open(o->audit_checkpoints, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (j->acp_fd < 0) {
            snprintf(errstr, errlen, "journal: %s: %s", o->audit_checkpoints, strerror(errno));
            goto fail;
        }
    }

    char err[600];
    j->rconn = pg_connect(j->conninfo, "relais-journal", err, sizeof err);
    if (!j->rconn) { snprintf(errstr, errlen, "journal: %s", err); goto fail; }
    PGresult *r = PQexec(j->rconn, "SHOW server_encoding");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "UTF8") != 0) {
        relais_logf(RELAIS_LOG_WARN, COMP, "database encoding is %s, not UTF8: events with characters "
                    "outside it will be refused", PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    int applied = 0;
    if (relais_migrations_apply(j->rconn, &applied, err, sizeof err) != 0) {
        snprintf(errstr, errlen, "journal: %s", err);
        goto fail;
    }
    if (applied) relais_logf(RELAIS_LOG_INFO, COMP, "applied %d migration(s); schema at version %d",
                             applied, relais_migrations_latest());
    if (j->writer) {
        for (int i = 0; i < NLANES; i++) {
            if (lane_start(&j->lanes[i], errstr, errlen) != 0) goto fail;
        }
    }
    atomic_store(&j->healthy, 1);
    return j;
fail:
    relais_journal_close(j);
    return NULL;
}

void relais_journal_close(relais_journal *j)
{
    if (!j) return;
    /* Both lanes drain at the same time, within the same deadline. */
    int64_t deadline = mono_us() + (int64_t)CLOSE_DRAIN_MS * 1000;
    for (int i = 0; i < NLANES; i++) {
        lane *l = &j->lanes[i];
        if (!l->thread_started) continue;
        pthread_mutex_lock(&l->mu);
        l->stopping = 1;
        l->stop_deadline_us = deadline;
        pthread_cond_signal(&l->wake);
        pthread_mutex_unlock(&l->mu);
    }
    /* A writer stuck in a statement (a table locked by someone else) is
     * cancelled once the drain time is over, as often as needed. */
    struct timespec first;
    clock_gettime(CLOCK_REALTIME, &first);
    first.tv_sec += CLOSE_DRAIN_MS / 1000 + 1;
    for (int i = 0; i < NLANES; i++) {
        lane *l = &j->lanes[i];
        if (!l->thread_started) continue;
        struct timespec ts = first;
        while (pthread_timedjoin_np(l->thread, NULL, &ts) == ETIMEDOUT) {
            char err[256];
            pthread_mutex_lock(&l->mu);
            if (l->wcancel) PQcancel(l->wcancel, err, sizeof err);
            pthread_mutex_unlock(&l->mu);
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        }
    }
    for (int i = 0; i < NLANES; i++) {
        lane *l = &j->lanes[i];
        PQfreeCancel(l->wcancel);
        PQfinish(l->wconn);
        free(l->batch);
        pthread_cond_destroy(&l->wake);
        pthread_mutex_destroy(&l->mu);
    }
    PQfinish(j->rconn);
    pthread_mutex_destroy(&j->rmu);
    if (j->acp_fd >= 0) close(j->acp_fd);
    if (j->akey) OPENSSL_cleanse(j->akey, j->akeylen);
    free(j->akey);
    free(j->aname);
    free_strv(j->pk_names, j->n_pk);
    free_strv(j->pk_packages, j->n_pk);
    free(j->conninfo);
    free(j);
}

/* With a writer: 1 when BOTH lanes' last transaction or connection check
 * succeeded. Read only: the read connection's last query. */
int relais_journal_healthy(relais_journal *j)
{
    if (!j) return 0;
    if (!j->writer) return atomic_load(&j->healthy);
    for (int i = 0; i < NLANES; i++) {
        if (!atomic_load(&j->lanes[i].healthy)) return 0;
    }
    return 1;
}

void relais_journal_set_block_timeout(relais_journal *j, long ms)
{
    if (!j) return;
    lane *l = &j->lanes[LANE_BLOCKING];
    pthread_mutex_lock(&l->mu);
    j->block_timeout_ms = ms > 0 ? ms : DEFAULT_BLOCK_TIMEOUT;
    pthread_mutex_unlock(&l->mu);
}

/* The sum of both lanes. */
void relais_journal_stats(relais_journal *j, uint64_t *batches, uint64_t *jobs)
{
    uint64_t b = 0, n = 0;
    for (int i = 0; j && i < NLANES; i++) {
        b += atomic_load(&j->lanes[i].batches);
        n += atomic_load(&j->lanes[i].jobs);
    }
    if (batches) *batches = b;
    if (jobs) *jobs = n;
}

/* ---- write API ------------------------------------------------------------------------------ */

int relais_journal_ingest(relais_journal *j, relais_event *const *evs, size_t n,
                          relais_submit_result *out)
{
    if (!out || (n && !evs)) return -1;
    for (size_t i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].status = RELAIS_SUBMIT_UNAVAILABLE;
        snprintf(out[i].reason, sizeof out[i].reason, "journal unavailable");
    }
    if (!j) return -1;
    if (n == 0) return 0;
    job *jb = job_new(JOB_INGEST, 1);
    if (!jb) return -1;
    jb->u.ingest.evs = calloc(n, sizeof *jb->u.ingest.evs);
    jb->u.ingest.res = calloc(n, sizeof *jb->u.ingest.res);
    if (!jb->u.ingest.evs || !jb->u.ingest.res) { job_free(jb); return -1; }
    for (size_t i = 0; i < n; i++) jb->u.ingest.evs[i] = relais_event_ref(evs[i]);
    jb->u.ingest.n = n;
    int abandoned;
    int rc = submit_blocking(j, jb, &abandoned);
    if (abandoned) {
        for (size_t i = 0; i < n; i++) snprintf(out[i].reason, sizeof out[i].reason, "journal timed out");
        return -1;
    }
    memcpy(out, jb->u.ingest.res, n * sizeof *out);
    job_free(jb);
    return rc;
}

int relais_journal_reject(relais_journal *j, const char *source, const char *record_id,
                          const char *where, const char *reason, const char *raw, size_t rawlen)
{
    if (!j) return -1;
    job *jb = job_new(JOB_REJECT, 1);
    if (!jb) return -1;
    jb->u.reject.source = strdup(source && *source ? source : "unknown");
    jb->u.reject.record_id = xstrdup(record_id);
    jb->u.reject.where = xstrdup(where);
    jb->u.reject.reason = strdup(reason && *reason ? reason : "rejected");
    if (raw && rawlen) {
        if (rawlen > RAW_MAX) rawlen = RAW_MAX;
        jb->u.reject.raw = malloc(rawlen);
        if (jb->u.reject.raw) {
            memcpy(jb->u.reject.raw, raw, rawlen);
            jb->u.reject.rawlen = rawlen;
        }
    }
    if (!jb->u.reject.source || !jb->u.reject.reason) { job_free(jb); return -1; }
    int abandoned;
    int rc = submit_blocking(j, jb, &abandoned);
    if (!abandoned) job_free(jb);
    return rc;
}

static char **dup_strv(const char *const *v, size_t n, int *fail)
{
    if (!v || !n) return NULL;
    char **o = calloc(n, sizeof *o);
    if (!o) { *fail = 1; return NULL; }
    for (size_t i = 0; i < n; i++) {
        o[i] = xstrdup(v[i]);
        if (v[i] && !o[i]) *fail = 1;
    }
    return o;
}

int relais_journal_route(relais_journal *j, const relais_route_item *items, size_t n,
                         const char *owner, long lease_ms,
                         relais_delivery **out, size_t *nout)
{
    if (out) *out = NULL;
    if (nout) *nout = 0;
    if (!j || !out || !nout || (n && !items)) return -1;
    if (n == 0) return 0;
    job *jb = job_new(JOB_ROUTE, 1);
    if (!jb) return -1;
    int fail = 0;
    jb->u.route.items = calloc(n, sizeof *jb->u.route.items);
    jb->u.route.owner = strdup(owner ? owner : "");
    jb->u.route.lease_ms = lease_ms > 0 ? lease_ms : 0;
    if (!jb->u.route.items || !jb->u.route.owner) { job_free(jb); return -1; }
    jb->u.route.n = n;
    for (size_t i = 0; i < n; i++) {
        route_in *it = &jb->u.route.items[i];
        it->ev = relais_event_ref(items[i].ev);
        it->ndest = items[i].dests ? items[i].ndest : 0;
        it->dests = dup_strv(items[i].dests, it->ndest, &fail);
        it->routes = dup_strv(items[i].routes, it->ndest, &fail);
        if (items[i].ordered && it->ndest) {
            it->ordered = malloc(it->ndest);
            if (!it->ordered) fail = 1;
            else memcpy(it->ordered, items[i].ordered, it->ndest);
        }
        for (size_t d = 0; d < it->ndest; d++) if (!it->dests[d]) fail = 1;
        if (!it->ev) fail = 1;
    }
    if (fail) {
        relais_logf(RELAIS_LOG_ERROR, COMP, "route: invalid item (no event or no destination name)");
        job_free(jb);
        return -1;
    }
    int abandoned;
    int rc = submit_blocking(j, jb, &abandoned);
    if (abandoned) return -1;
    if (rc == 0 && jb->u.route.nout > 0) {
        *out = jb->u.route.out;
        *nout = jb->u.route.nout;
        jb->u.route.out = NULL;
        jb->u.route.nout = 0;
    }
    job_free(jb);
    return rc;
}

void relais_deliveries_free(relais_delivery *d, size_t n)
{
    if (!d) return;
    for (size_t i = 0; i < n; i++) relais_delivery_clear(&d[i]);
    free(d);
}

int relais_journal_attempt(relais_journal *j, const relais_delivery *d, relais_verdict v,
                           const relais_answer *ans, long retry_in_ms, int dead,
                           int64_t started_us, int64_t ended_us)
{
    if (!j || !d || !d->ev || !d->destination) return -1;
    job *jb = job_new(JOB_ATTEMPT, 0);
    if (!jb) return -1;
    const relais_event *ev = d->ev;
    jb->u.attempt.delivery_id = d->id;
    snprintf(jb->u.attempt.event_id, sizeof jb->u.attempt.event_id, "%s", relais_event_id(ev));
    jb->u.attempt.destination = strdup(d->destination);
    jb->u.attempt.tenant = strdup(d->tenant ? d->tenant : relais_event_tenant(ev) ? relais_event_tenant(ev) : "");
    jb->u.attempt.subject = xstrdup(relais_event_subject(ev));
    relais_event_entity(ev, jb->u.attempt.entity, sizeof jb->u.attempt.entity);
    jb->u.attempt.attempt = d->attempts + 1;
    jb->u.attempt.v = v;
    jb->u.attempt.out = v == RELAIS_DELIVER_OK ? OUT_OK
                      : (dead || v == RELAIS_DELIVER_REJECT) ? OUT_DEAD : OUT_RETRY;
    jb->u.attempt.retry_ms = retry_in_ms > 0 ? retry_in_ms : 0;
    jb->u.attempt.status = ans ? ans->status : 0;
    jb->u.attempt.detail = xstrdup(ans && ans->detail[0] ? ans->detail : NULL);
    jb->u.attempt.local_id = xstrdup(ans && ans->local_id[0] ? ans->local_id : NULL);
    jb->u.attempt.started_us = started_us ? started_us : relais_now_us();
    jb->u.attempt.ended_us = ended_us ? ended_us : jb->u.attempt.started_us;
    if (!jb->u.attempt.destination || !jb->u.attempt.tenant) { job_free(jb); return -1; }
    return submit_async(j, jb);
}

int relais_journal_step(relais_journal *j, const char *event_id, const char *step,
                        const char *destination, int status, const char *detail, int64_t at_us)
{
    if (!j || !step || !*step) return -1;
    if (event_id && !is_uuid(event_id)) {
        relais_logf(RELAIS_LOG_ERROR, COMP, "step %s refused: '%.60s' is not an event id", step, event_id);
        return -1;
    }
    job *jb = job_new(JOB_STEP, 0);
    if (!jb) return -1;
    if (event_id) snprintf(jb->u.step.event_id, sizeof jb->u.step.event_id, "%s", event_id);
    jb->u.step.step = strdup(step);
    jb->u.step.destination = xstrdup(destination);
    jb->u.step.detail = xstrdup(detail);
    jb->u.step.status = status;
    if (at_us) jb->at_us = at_us;
    if (!jb->u.step.step) { job_free(jb); return -1; }
    return submit_async(j, jb);
}

/* ---- read side ------------------------------------------------------------------------------ */

/* Run one statement on the read connection (caller holds j->rmu); reconnects
 * a broken connection and retries once. NULL with errstr on failure. */
static PGresult *rexec(relais_journal *j, const char *sql, int n, const char *const *vals,
                       char *errstr, size_t errlen)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!j->rconn) {
            char err[600];
            j->rconn = pg_connect(j->conninfo, "relais-journal", err, sizeof err);
            if (!j->rconn) {
                snprintf(errstr, errlen, "journal: %s", err);
                if (!j->writer) atomic_store(&j->healthy, 0);
                return NULL;
            }
        } else if (PQstatus(j->rconn) != CONNECTION_OK) {
            PQreset(j->rconn);
            if (PQstatus(j->rconn) != CONNECTION_OK) {
                char msg[512];
                pg_message(j->rconn, NULL, msg, sizeof msg);
                snprintf(errstr, errlen, "journal: cannot reconnect to PostgreSQL: %s", msg);
                if (!j->writer) atomic_store(&j->healthy, 0);
                return NULL;
            }
        }
        PGresult *r = PQexecParams(j->rconn, sql, n, NULL, vals, NULL, NULL, 0);
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
            if (!j->writer) atomic_store(&j->healthy, 1);
            return r;
        }
        char msg[512];
        pg_message(j->rconn, r, msg, sizeof msg);
        PQclear(r);
        if (PQstatus(j->rconn) != CONNECTION_OK && attempt == 0) continue;
        snprintf(errstr, errlen, "journal: %s", msg);
        if (!j->writer && PQstatus(j->rconn) != CONNECTION_OK) atomic_store(&j->healthy, 0);
        return NULL;
    }
    return NULL;
}

/* Fill local_id of deliveries from xref (one query for all). Holds j->rmu. */
static int fill_xref(relais_journal *j, relais_delivery *d, size_t n, char *errstr, size_t errlen)
{
    json_t *keys = json_array();
    for (size_t i = 0; i < n; i++) {
        const char *subject = relais_event_subject(d[i].ev);
        if (!subject) continue;
        char entity[128];
        relais_event_entity(d[i].ev, entity, sizeof entity);
        json_t *o = json_object();
        json_object_set_new(o, "n", json_integer((json_int_t)i));
        json_object_set_new(o, "tenant", jstr(d[i].tenant));
        json_object_set_new(o, "entity", jstr(entity));
        json_object_set_new(o, "subject", jstr(subject));
        json_object_set_new(o, "package", jstr(pkg(j, d[i].destination)));
        json_array_append_new(keys, o);
    }
    if (json_array_size(keys) == 0) { json_decref(keys); return 0; }
    char *js = json_dumps(keys, JSON_COMPACT);
    json_decref(keys);
    if (!js) { snprintf(errstr, errlen, "journal: out of memory"); return -1; }
    const char *vals[1] = { js };
    PGresult *r = rexec(j, "SELECT k.n, x.local_id FROM json_to_recordset($1::json)"
                           " AS k(n int, tenant text, entity text, subject text, package text)"
                           " JOIN xref x ON x.tenant = k.tenant AND x.entity = k.entity"
                           " AND x.canonical_id = k.subject AND x.package = k.package",
                        1, vals, errstr, errlen);
    free(js);
    if (!r) return -1;
    for (int row = 0; row < PQntuples(r); row++) {
        long i = strtol(PQgetvalue(r, row, 0), NULL, 10);
        if (i >= 0 && (size_t)i < n && !d[i].local_id) d[i].local_id = strdup(PQgetvalue(r, row, 1));
    }
    PQclear(r);
    return 0;
}

int relais_journal_claim_due(relais_journal *j, const char *owner, long lease_ms, size_t max,
                             relais_delivery **out, size_t *nout)
{
    if (out) *out = NULL;
    if (nout) *nout = 0;
    if (!j || !out || !nout || !owner) return -1;
    if (max == 0) return 0;
    char lease_s[32], max_s[32], err[600];
    snprintf(lease_s, sizeof lease_s, "%ld", lease_ms > 0 ? lease_ms : 0);
    snprintf(max_s, sizeof max_s, "%zu", max);
    const char *vals[3] = { owner, lease_s, max_s };
    pthread_mutex_lock(&j->rmu);
    PGresult *r = rexec(j,
        "WITH c AS (UPDATE deliveries SET lease_owner = $1,"
        "   lease_until = now() + $2::bigint * interval '1 millisecond'"
        "  WHERE id IN (SELECT id FROM deliveries d WHERE status = 'pending' AND next_attempt_at <= now()"
        /* an expired lease of this very process is a delivery still in its
         * memory (queued or being attempted; an outcome clears the lease):
         * claiming it again would attempt it twice */
        "     AND (lease_until IS NULL OR (lease_until < now() AND lease_owner IS DISTINCT FROM $1))"
        /* ordered by subject: only the first delivery of its subject to its
         * destination that is not delivered (a pending one, being attempted
         * or waiting for its retry, or a dead one, holds those behind it) */
        "     AND (order_key IS NULL OR NOT EXISTS (SELECT 1 FROM deliveries p"
        "          WHERE p.destination = d.destination AND p.order_key = d.order_key AND p.id < d.id"
        "            AND p.status IN ('pending', 'dead')))"
        "     ORDER BY next_attempt_at LIMIT $3::bigint FOR UPDATE SKIP LOCKED)"
        "  RETURNING id, event_id, destination, attempts, next_attempt_at)"
        " SELECT c.id, c.destination, c.attempts, e.tenant, e.body::text"
        " FROM c JOIN events e ON e.id = c.event_id ORDER BY c.next_attempt_at, c.id",
        3, vals, err, sizeof err);
    if (!r) {
        pthread_mutex_unlock(&j->rmu);
        relais_logf(RELAIS_LOG_WARN, COMP, "claim: %s", err);
        return -1;
    }
    int rows = PQntuples(r);
    relais_delivery *d = calloc(rows ? (size_t)rows : 1, sizeof *d);
    size_t k = 0;
    for (int row = 0; d && row < rows; row++) {
        char perr[256];
        const char *body = PQgetvalue(r, row, 4);
        relais_event *ev = relais_event_parse(body, strlen(body), perr, sizeof perr);
        if (!ev) {
            relais_logf(RELAIS_LOG_ERROR, COMP, "delivery %s: journaled event cannot be parsed (%s); skipped",
                        PQgetvalue(r, row, 0), perr);
            continue;
        }
        d[k].id = strtoll(PQgetvalue(r, row, 0), NULL, 10);
        d[k].ev = ev;
        d[k].destination = strdup(PQgetvalue(r, row, 1));
        d[k].attempts = atoi(PQgetvalue(r, row, 2));
        d[k].tenant = strdup(PQgetvalue(r, row, 3));
        k++;
    }
    PQclear(r);
    if (!d) {
        pthread_mutex_unlock(&j->rmu);
        return -1;
    }
    if (k && fill_xref(j, d, k, err, sizeof err) != 0) {
        relais_logf(RELAIS_LOG_WARN, COMP, "claim: cross-references not read: %s", err);
    }
    pthread_mutex_unlock(&j->rmu);
    if (k == 0) { free(d); d = NULL; }
    *out = d;
    *nout = k;
    return 0;
}

int relais_journal_unrouted(relais_journal *j, size_t max, relais_event ***out, size_t *nout)
{
    if (out) *out = NULL;
    if (nout) *nout = 0;
    if (!j || !out || !nout) return -1;
    if (max == 0) return 0;
    char max_s[32], err[600];
    snprintf(max_s, sizeof max_s, "%zu", max);
    const char *vals[1] = { max_s };
    pthread_mutex_lock(&j->rmu);
    PGresult *r = rexec(j, "SELECT e.body::text FROM unrouted u JOIN events e ON e.id = u.event_id"
                           " ORDER BY u.received_at, u.event_id LIMIT $1::bigint", 1, vals, err, sizeof err);
    pthread_mutex_unlock(&j->rmu);
    if (!r) {
        relais_logf(RELAIS_LOG_WARN, COMP, "unrouted: %s", err);
        return -1;
    }
    int rows = PQntuples(r);
    relais_event **evs = calloc(rows ? (size_t)rows : 1, sizeof *evs);
    size_t k = 0;
    for (int row = 0; evs && row < rows; row++) {
        char perr[256];
        const char *body = PQgetvalue(r, row, 0);
        relais_event *ev = relais_event_parse(body, strlen(body), perr, sizeof perr);
        if (ev) evs[k++] = ev;
        else relais_logf(RELAIS_LOG_ERROR, COMP, "unrouted: journaled event cannot be parsed: %s", perr);
    }
    PQclear(r);
    if (!evs) return -1;
    if (k == 0) { free(evs); evs = NULL; }
    *out = evs;
    *nout = k;
    return 0;
}

/* Run a query whose answer is at most one text value: 0 found (out filled),
 * 1 no row, -1 error (logged under `what`). */
static int read_text(relais_journal *j, const char *what, const char *sql, int n, const char *const *vals,
                     char *out, size_t outlen)
{
    char err[600];
    pthread_mutex_lock(&j->rmu);
    PGresult *r = rexec(j, sql, n, vals, err, sizeof err);
    pthread_mutex_unlock(&j->rmu);
    if (!r) {
        relais_logf(RELAIS_LOG_WARN, COMP, "%s: %s", what, err);
        return -1;
    }
    int found = PQntuples(r) >= 1;
    if (found && out && outlen) snprintf(out, outlen, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return found ? 0 : 1;
}

int relais_journal_xref_get(relais_journal *j, const char *tenant, const char *entity,
                            const char *canonical_id, const char *package, char *out, size_t outlen)
{
    if (!j || !tenant || !entity || !canonical_id || !package) return -1;
    const char *vals[4] = { tenant, entity, canonical_id, package };
    return read_text(j, "xref", "SELECT local_id FROM xref WHERE tenant = $1 AND entity = $2"
                                " AND canonical_id = $3 AND package = $4", 4, vals, out, outlen);
}

/* Run a query whose single value is a JSON document. */
static json_t *read_json(relais_journal *j, const char *sql, int n, const char *const *vals,
                         char *errstr, size_t errlen)
{
    pthread_mutex_lock(&j->rmu);
    PGresult *r = rexec(j, sql, n, vals, errstr, errlen);
    pthread_mutex_unlock(&j->rmu);
    if (!r) return NULL;
    json_t *doc = NULL;
    if (PQntuples(r) == 1) {
        json_error_t je;
        doc = json_loads(PQgetvalue(r, 0, 0), 0, &je);
        if (!doc) snprintf(errstr, errlen, "journal: bad JSON from PostgreSQL: %s", je.text);
    } else {
        snprintf(errstr, errlen, "journal: no result");
    }
    PQclear(r);
    return doc;
}

json_t *relais_journal_trace(relais_journal *j, const char *id, char *errstr, size_t errlen)
{
    if (!j || !id || !*id) {
        snprintf(errstr, errlen, "trace: no id given");
        return NULL;
    }
    const char *vals[2] = { id, is_uuid(id) ? id : NULL };
    return read_json(j,
        /* the entity's story when the id is a canonical id (request/...) or
         * the local id a package gave one (a GRC form id): its events, the
         * events of what comes from it (a work order's origin_request), and
         * the events sharing their correlation ids */
        "WITH subj AS (SELECT $1::text AS s WHERE $1 ~ '^[a-z][a-z_]*/[^[:space:]]+$'"
        "   UNION SELECT canonical_id FROM xref WHERE local_id = $1),"
        " story AS (SELECT e.id, e.correlation_id FROM events e WHERE e.subject IN (SELECT s FROM subj)"
        "   UNION SELECT e.id, e.correlation_id FROM events e"
        "     WHERE e.id IN (SELECT relais_events_from_request(s) FROM subj)),"
        /* no payload read here: roles that may not read events.body
         * (relais_auditor, schemas/sql/roles.sql) trace too */
        " ev AS (SELECT e.id, e.type, e.source, e.subject, e.tenant, e.correlation_id, e.record_id,"
        "               e.received_at FROM events e"
        "   WHERE e.id = $2::uuid OR e.correlation_id = $1 OR e.record_id = $1"
        "      OR e.id IN (SELECT id FROM story)"
        "      OR e.correlation_id IN (SELECT correlation_id FROM story))"
        " SELECT json_build_object("
        "  'query', $1::text,"
        "  'events', coalesce((SELECT json_agg(json_build_object("
        "     'id', ev.id, 'type', ev.type, 'source', ev.source, 'subject', ev.subject,"
        "     'tenant', ev.tenant, 'correlationid', ev.correlation_id, 'recordid', ev.record_id,"
        "     'received_at', relais_rfc3339(ev.received_at), 'routed_at', relais_rfc3339((SELECT min(s.at) FROM steps s WHERE s.event_id = ev.id AND s.step IN ('routed', 'unrouted'))),"
        "     'steps', coalesce((SELECT json_agg(json_build_object("
        "         'at', relais_rfc3339(s.at), 'step', s.step, 'destination', s.destination,"
        "         'attempt', s.attempt, 'status', s.status, 'detail', s.detail) ORDER BY s.at, s.id)"
        "       FROM steps s WHERE s.event_id = ev.id), '[]'::json),"
        "     'deliveries', coalesce((SELECT json_agg(json_build_object("
        "         'id', d.id, 'destination', d.destination, 'route', d.route, 'status', d.status,"
        "         'attempts', d.attempts, 'last_status', d.last_status, 'last_detail', d.last_detail,"
        "         'next_attempt_at', relais_rfc3339(d.next_attempt_at),"
        "         'updated_at', relais_rfc3339(d.updated_at)) ORDER BY d.id)"
        "       FROM deliveries d WHERE d.event_id = ev.id), '[]'::json)"
        "   ) ORDER BY ev.received_at, ev.id) FROM ev), '[]'::json),"
        "  'rejections', coalesce((SELECT json_agg(json_build_object("
        "     'at', relais_rfc3339(r.at), 'source', r.source, 'record_id', r.record_id,"
        "     'location', r.location, 'reason', r.reason) ORDER BY r.at, r.id)"
        "   FROM rejections r WHERE r.record_id = $1), '[]'::json))::text",
        2, vals, errstr, errlen);
}

json_t *relais_journal_person(relais_journal *j, const char *id, char *errstr, size_t errlen)
{
    if (!j || !id || !*id) {
        snprintf(errstr, errlen, "person: no id given");
        return NULL;
    }
    const char *vals[1] = { id };
    return read_json(j,
        "WITH ids AS (SELECT $1::text AS v UNION SELECT canonical_id FROM xref WHERE local_id = $1),"
        " ev AS (SELECT e.id, e.type, e.source, e.subject, e.tenant, e.received_at FROM events e"
        "   WHERE e.subject IN (SELECT v FROM ids)"
        "      OR e.id IN (SELECT relais_events_mentioning(ids.v) FROM ids))"
        " SELECT json_build_object('query', $1::text,"
        "  'events', coalesce((SELECT json_agg(json_build_object('id', ev.id, 'type', ev.type, 'source', ev.source,"
        "     'subject', ev.subject, 'tenant', ev.tenant, 'received_at', relais_rfc3339(ev.received_at))"
        "     ORDER BY ev.received_at, ev.id) FROM ev), '[]'::json),"
        "  'packages', coalesce((SELECT json_agg(json_build_object('destination', p.destination, 'events', p.n,"
        "     'first', relais_rfc3339(p.first), 'last', relais_rfc3339(p.last)) ORDER BY p.destination)"
        "   FROM (SELECT d.destination, count(*) AS n, min(d.updated_at) AS first, max(d.updated_at) AS last"
        "         FROM deliveries d WHERE d.status = 'delivered' AND d.event_id IN (SELECT id FROM ev)"
        "         GROUP BY d.destination) p), '[]'::json))::text",
        1, vals, errstr, errlen);
}

json_t *relais_journal_dlq_list(relais_journal *j, size_t limit, char *errstr, size_t errlen)
{
    if (!j) {
        snprintf(errstr, errlen, "dlq: no journal");
        return NULL;
    }
    char lim[32];
    snprintf(lim, sizeof lim, "%zu", limit ? limit : 1000);
    const char *vals[1] = { lim };
    return read_json(j,
        "SELECT coalesce(json_agg(json_build_object("
        "   'id', d.id, 'event_id', d.event_id, 'type', e.type, 'destination', d.destination,"
        "   'attempts', d.attempts, 'last_status', d.last_status, 'last_detail', d.last_detail,"
        "   'updated_at', relais_rfc3339(d.updated_at)) ORDER BY d.updated_at DESC, d.id DESC), '[]'::json)::text"
        " FROM (SELECT * FROM deliveries WHERE status = 'dead'"
        "       ORDER BY updated_at DESC, id DESC LIMIT $1::bigint) d"
        " JOIN events e ON e.id = d.event_id",
        1, vals, errstr, errlen);
}

/* On the read connection, inside a transaction the caller began (under
 * rmu): sign `steps` in a stream of their own, insert them, COMMIT (or
 * ROLLBACK on failure) and append the stream's checkpoint. 0 or -1. */
static int signed_commit(relais_journal *j, json_t *steps, char *errstr, size_t errlen)
{
    char stream[200], prev[RELAIS_AUDIT_HEX];
    int64_t seq = 0;
    audit_new_stream(j, stream, sizeof stream, 'R');
    memset(prev, '0', RELAIS_AUDIT_HEX - 1);
    prev[RELAIS_AUDIT_HEX - 1] = '\0';
    PGresult *r = NULL;
    char *js = NULL;
    if (audit_chain(j, stream, &seq, prev, steps, &js, errstr, errlen) != 0) goto rollback;
    const char *sv[2] = { js, stream };
    r = js ? PQexecParams(j->rconn, STEPS_SQL, 2, NULL, sv, NULL, NULL, 0) : NULL;
    free(js);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        pg_message(j->rconn, r, errstr, errlen);
        goto rollback;
    }
    PQclear(r);
    r = PQexec(j->rconn, "COMMIT");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) pg_message(j->rconn, r, errstr, errlen);
    PQclear(r);
    if (ok) audit_write_checkpoint(j, stream, seq, prev);
    return ok ? 0 : -1;
rollback:
    PQclear(r);
    PQclear(PQexec(j->rconn, "ROLLBACK"));
    return -1;
}

/* Change the dead deliveries that `id` names (a delivery id, or an event id:
 * all of its dead deliveries) and journal one step each. `set` is the SQL
 * assignment list, `step` the step name, `detail` its text after
 * "delivery <id>". 0 with *count rows, -1 with errstr. */
static int dead_deliveries(relais_journal *j, const char *verb, const char *id, const char *set,
                           const char *step, const char *detail, int *count, char *errstr, size_t errlen)
{
    if (count) *count = 0;
    if (!j || !id) {
        snprintf(errstr, errlen, "%s: no id given", verb);
        return -1;
    }
    int digits = is_digits(id), uuid = is_uuid(id);
    if (!digits && !uuid) {
        snprintf(errstr, errlen, "%s: '%.80s' is neither a delivery id (digits) nor an event id (UUID)", verb, id);
        return -1;
    }
    if (!j->akey) {
        snprintf(errstr, errlen, "%s writes steps to the journal: it needs the audit key (audit.key_file)", verb);
        return -1;
    }
    char sql[1024];
    const char *vals[2] = { digits ? id : NULL, uuid ? id : NULL };
    snprintf(sql, sizeof sql,
        "UPDATE deliveries SET %s, lease_owner = NULL, lease_until = NULL, updated_at = now()"
        " WHERE status = 'dead' AND (id = $1::bigint OR event_id = $2::uuid)"
        " RETURNING id, event_id, destination", set);
    int rc = -1;
    json_t *steps = json_array();
    pthread_mutex_lock(&j->rmu);
    PGresult *r = rexec(j, "BEGIN", 0, NULL, errstr, errlen);
    if (!r) goto out;
    PQclear(r);
    r = PQexecParams(j->rconn, sql, 2, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_message(j->rconn, r, errstr, errlen);
        goto rollback;
    }
    /* the steps are signed like the writers' (hub/audit.h), in a stream of their own */
    int64_t now = relais_now_us();
    for (int row = 0; steps && row < PQntuples(r); row++) {
        char d[700];
        snprintf(d, sizeof d, "delivery %s%s", PQgetvalue(r, row, 0), detail ? detail : "");
        add_step(steps, now, PQgetvalue(r, row, 1), step, PQgetvalue(r, row, 2), 0, 0, d);
    }
    int n = PQntuples(r);
    PQclear(r);
    r = NULL;
    if (!steps || signed_commit(j, steps, errstr, errlen) != 0) goto out;
    if (count) *count = n;
    rc = 0;
    goto out;
rollback:
    PQclear(r);
    r = PQexec(j->rconn, "ROLLBACK");
out:
    PQclear(r);
    pthread_mutex_unlock(&j->rmu);
    json_decref(steps);
    return rc;
}

int relais_journal_note(relais_journal *j, const char *event_id, const char *step, const char *destination,
                        const char *detail, char *errstr, size_t errlen)
{
    if (!j || !step || !*step) {
        snprintf(errstr, errlen, "note: no step name");
        return -1;
    }
    if (!j->akey) {
        snprintf(errstr, errlen, "note: writing a step needs the audit key (audit.key_file)");
        return -1;
    }
    if (event_id && !is_uuid(event_id)) {
        snprintf(errstr, errlen, "note: '%.80s' is not an event id (UUID)", event_id);
        return -1;
    }
    json_t *steps = json_array();
    if (!steps) {
        snprintf(errstr, errlen, "out of memory");
        return -1;
    }
    add_step(steps, relais_now_us(), event_id, step, destination, 0, 0, detail);
    int rc = -1;
    pthread_mutex_lock(&j->rmu);
    PGresult *r = rexec(j, "BEGIN", 0, NULL, errstr, errlen);
    if (r) {
        PQclear(r);
        rc = signed_commit(j, steps, errstr, errlen);
    }
    pthread_mutex_unlock(&j->rmu);
    json_decref(steps);
    return rc;
}

int relais_journal_replay(relais_journal *j, const char *id, int *count, char *errstr, size_t errlen)
{
    return dead_deliveries(j, "replay", id, "status = 'pending', attempts = 0, next_attempt_at = now()",
                           "replayed", NULL, count, errstr, errlen);
}

int relais_journal_discard(relais_journal *j, const char *id, const char *why, int *count,
                           char *errstr, size_t errlen)
{
    char detail[600];
    snprintf(detail, sizeof detail, ": %.580s", why && *why ? why : "discarded by an operator");
    return dead_deliveries(j, "discard", id, "status = 'discarded'", "discarded", detail, count, errstr, errlen);
}

int relais_journal_set_packages(relais_journal *j, const char *const *names,
                                const char *const *packages, size_t n)
{
    if (!j) return -1;
    char **a = calloc(n ? n : 1, sizeof *a), **b = calloc(n ? n : 1, sizeof *b);
    int fail = !a || !b;
    for (size_t i = 0; !fail && i < n; i++) {
        a[i] = strdup(names[i]);
        b[i] = strdup(packages[i] ? packages[i] : names[i]);
        if (!a[i] || !b[i]) fail = 1;
    }
    if (fail) {
        free_strv(a, a ? n : 0);
        free_strv(b, b ? n : 0);
        return -1;
    }
    free_strv(j->pk_names, j->n_pk);
    free_strv(j->pk_packages, j->n_pk);
    j->pk_names = a;
    j->pk_packages = b;
    j->n_pk = n;
    return 0;
}

int relais_journal_xref_canonical(relais_journal *j, const char *tenant, const char *entity,
                                  const char *package, const char *local_id, char *out, size_t outlen)
{
    if (!j || !tenant || !entity || !package || !local_id) return -1;
    const char *vals[4] = { tenant, package, entity, local_id };
    return read_text(j, "xref", "SELECT canonical_id FROM xref WHERE tenant = $1 AND package = $2"
                                " AND entity = $3 AND local_id = $4 ORDER BY updated_at DESC LIMIT 1",
                     4, vals, out, outlen);
}

int relais_journal_xref_put(relais_journal *j, const char *tenant, const char *entity,
                            const char *canonical_id, const char *package, const char *local_id)
{
    if (!j || !tenant || !entity || !canonical_id || !package || !local_id) return -1;
    char err[600];
    const char *vals[5] = { tenant, entity, canonical_id, package, local_id };
    pthread_mutex_lock(&j->rmu);
    PGresult *r = rexec(j, "INSERT INTO xref (tenant, entity, canonical_id, package, local_id, updated_at)"
                           " VALUES ($1, $2, $3, $4, $5, now())"
                           " ON CONFLICT (tenant, entity, canonical_id, package)"
                           " DO UPDATE SET local_id = EXCLUDED.local_id, updated_at = EXCLUDED.updated_at",
                        5, vals, err, sizeof err);
    pthread_mutex_unlock(&j->rmu);
    if (!r) {
        relais_logf(RELAIS_LOG_WARN, COMP, "xref: %s", err);
        return -1;
    }
    PQclear(r);
    return 0;
}

int relais_journal_state_put(relais_journal *j, const char *tenant, const char *package,
                             const char *key, const json_t *value)
{
    if (!j || !tenant || !package || !key || !value) return -1;
    char *js = json_dumps(value, JSON_COMPACT);
    if (!js) return -1;
    char err[600];
    const char *vals[4] = { tenant, package, key, js };
    pthread_mutex_lock(&j->rmu);
    PGresult *r = rexec(j, "INSERT INTO package_state (tenant, package, key, value, updated_at)"
                           " VALUES ($1, $2, $3, $4::jsonb, now())"
                           " ON CONFLICT (tenant, package, key)"
                           " DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
                        4, vals, err, sizeof err);
    pthread_mutex_unlock(&j->rmu);
    free(js);
    if (!r) {
        relais_logf(RELAIS_LOG_WARN, COMP, "state: %s", err);
        return -1;
    }
    PQclear(r);
    return 0;
}

json_t *relais_journal_state_get(relais_journal *j, const char *tenant, const char *package,
                                 const char *key, int *err)
{
    if (err) *err = 1;
    if (!j || !tenant || !package || !key) return NULL;
    char e[600];
    const char *vals[3] = { tenant, package, key };
    pthread_mutex_lock(&j->rmu);
    PGresult *r = rexec(j, "SELECT value::text FROM package_state WHERE tenant = $1 AND package = $2"
                           " AND key = $3", 3, vals, e, sizeof e);
    pthread_mutex_unlock(&j->rmu);
    if (!r) {
        relais_logf(RELAIS_LOG_WARN, COMP, "state: %s", e);
        return NULL;
    }
    json_t *v = NULL;
    if (PQntuples(r) == 1) {
        json_error_t je;
        v = json_loads(PQgetvalue(r, 0, 0), 0, &je);
        if (!v) {
            PQclear(r);
            return NULL;
        }
    }
    PQclear(r);
    if (err) *err = 0;
    return v;
}

json_t *relais_journal_state_list(relais_journal *j, const char *tenant, const char *package,
                                  const char *prefix, const char *after, size_t limit)
{
    if (!j || !tenant || !package) return NULL;
    char lim[32], e[600];
    snprintf(lim, sizeof lim, "%zu", limit ? limit : 1000);
    const char *vals[5] = { tenant, package, prefix ? prefix : "", after, lim };
    /* the prefix is matched with starts_with (no LIKE escapes to worry about) */
    return read_json(j,
        "SELECT coalesce(json_agg(json_build_object('key', key, 'value', value,"
        "   'updated_at', relais_rfc3339(updated_at)) ORDER BY key), '[]'::json)::text"
        " FROM (SELECT key, value, updated_at FROM package_state WHERE tenant = $1 AND package = $2"
        "   AND starts_with(key, $3) AND ($4::text IS NULL OR key > $4) ORDER BY key LIMIT $5::bigint) s",
        5, vals, e, sizeof e);
}

json_t *relais_journal_state_scan(relais_journal *j, const char *tenant, const char *prefix,
                                  char *errstr, size_t errlen)
{
    if (!j) return NULL;
    const char *vals[2] = { tenant, prefix ? prefix : "" };
    return read_json(j,
        "SELECT coalesce(json_agg(json_build_object('tenant', tenant, 'package', package, 'key', key,"
        "   'value', value, 'updated_at', relais_rfc3339(updated_at)) ORDER BY tenant, package, key),"
        "   '[]'::json)::text"
        " FROM package_state WHERE ($1::text IS NULL OR tenant = $1) AND starts_with(key, $2)",
        2, vals, errstr, errlen);
}

int relais_journal_release(relais_journal *j, const char *owner, const int64_t *ids, size_t n,
                           char *errstr, size_t errlen)
{
    return relais_journal_postpone(j, owner, ids, n, -1, errstr, errlen);
}

int relais_journal_postpone(relais_journal *j, const char *owner, const int64_t *ids, size_t n,
                            long delay_ms, char *errstr, size_t errlen)
{
    if (!j || !owner || n == 0) return 0;
    /* ids as a PostgreSQL array literal of integers: digits and commas only */
    size_t cap = n * 21 + 3;
    char *arr = malloc(cap);
    if (!arr) {
        snprintf(errstr, errlen, "release: out of memory");
        return -1;
    }
    size_t len = 0;
    arr[len++] = '{';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(arr + len, cap - len, "%s%lld", i ? "," : "", (long long)ids[i]);
    arr[len++] = '}';
    arr[len] = '\0';
    char delay_s[32];
    snprintf(delay_s, sizeof delay_s, "%ld", delay_ms);
    const char *vals[3] = { arr, owner, delay_s };
    pthread_mutex_lock(&j->rmu);
    PGresult *r = rexec(j,
        "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL,"
        "   next_attempt_at = CASE WHEN $3::bigint < 0 THEN next_attempt_at"
        "                          ELSE now() + $3::bigint * interval '1 millisecond' END"
        " WHERE id = ANY($1::bigint[]) AND lease_owner = $2 AND status = 'pending'",
        3, vals, errstr, errlen);
    pthread_mutex_unlock(&j->rmu);
    free(arr);
    if (!r) return -1;
    PQclear(r);
    return 0;
}
