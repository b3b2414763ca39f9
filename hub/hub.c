/*
 * hub.c - the running hub.
 *
 * Threads and what each owns:
 *   main thread     relais_hub_run(): calls receive() of pull sources (file)
 *                   every poll interval; start/stop of everything.
 *   bus thread      the only caller of relais_bus_consume()/relais_bus_poll():
 *                   consumes events, routes them, journals the routing
 *                   (blocking group commit), stores offsets, queues deliveries.
 *   scheduler       claims due deliveries from the journal (retries, replays,
 *                   orphans of a dead hub) and re-publishes events journaled
 *                   but never routed (a crash between journal and bus).
 *   workers (N)     take deliveries from the per-destination queues, at most
 *                   max_in_flight at once per destination, and beyond a fair
 *                   share only while a worker stays free for every idle
 *                   destination (worker_main), call deliver(),
 *                   queue the outcome to the journal (async).
 *   journal writer  inside journal.c; admin HTTP and push sources run their
 *                   own threads and only call thread-safe functions here.
 * The delivery queues (dests[], dq_total) are guarded by dq_mu.
 * Counters are atomics (metrics.h).
 * Pause (relais_hub_pause, called by the admin HTTP threads; docs/RELIABILITY.md
 * "Pausing a connector"): one pause or resume at a time (pause_mu, which
 * also guards pausers). ps[i].on is atomic: sources read it through
 * relais_accepting() on their own threads; for a sink it is written under
 * dq_mu too, so that the bus thread and the scheduler, which queue under
 * dq_mu, never queue for a paused sink. ps[i].by and the held/unheld lists
 * of a destination are guarded by dq_mu; the strings ps[i].by points to
 * are kept until relais_hub_destroy, so a step may name them after dq_mu
 * is released.
 *
 * Flow of one record: source -> relais_submit() -> event built -> journal
 * ingest (inbox dedupe, step "received", durable) -> produce to Kafka keyed
 * by subject -> bus thread -> router -> journal route (deliveries rows,
 * steps "routed") -> offsets stored -> workers -> deliver() -> journal
 * attempt (delivered / retry_scheduled / dead_lettered).
 * At-least-once on the bus; the journal's unique keys make effects
 * idempotent, and every destination receives the event id.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "hub.h"
#include "tokens.h"
#include "backoff.h"
#include "event_int.h"
#include "instance.h"
#include "router.h"
#include "safeparse.h"
#include "mapping.h"
#include "canonical.h"
#include "auditlog.h"
#include "workdays.h"
#include <openssl/crypto.h>

#define CONSUME_BATCH 1000
#define WORKER_BATCH 10000     /* upper bound of batch_max (config.c) */
#define SWEEP_INTERVAL_US (15 * 1000000LL)
#define SWEEP_MIN_AGE_US (60 * 1000000LL)

typedef struct dq_node {
    relais_delivery  d;
    struct dq_node  *next;
} dq_node;

/* An operator's pause of one instance. */
typedef struct pause_state {
    atomic_int  on;      /* 1 while paused */
    const char *by;      /* "<token name> (<role>)" of the last pause, one of pausers[]; dq_mu */
} pause_state;

/* A delivery held for a paused destination: leased to this hub in the
 * journal but not queued in memory (queue_max does not count it, and the
 * claim never hands a hub its own expired leases). */
typedef struct held_d {
    int64_t     id;
    char        event_id[40];
    const char *dest;    /* the instance's name */
    const char *by;      /* who paused it (held) or resumed it (unheld) */
} held_d;

typedef struct held_list {
    held_d *v;
    size_t  n, cap;
} held_list;

typedef struct dest {
    relais_instance     *inst;
    long                 max_in_flight;
    long                 batch_max;      /* > 1 only when the connector has deliver_batch */
    int                  ordered;        /* order: subject (claimed through the journal only) */
    long                 in_flight;      /* deliver()/deliver_batch() calls under way */
    dq_node             *head, *tail;
    size_t               queued;
    relais_conn_metrics *m;
    /* circuit breaker (guarded by dq_mu): after circuit_failures attempts
     * in a row that all failed, the destination is left alone until
     * open_until (monotonic µs): its queued deliveries go back to the journal,
     * due then; after that one probe at a time until an answer comes. */
    long                 fails;
    int64_t              open_until;     /* 0: closed */
    /* pause (guarded by dq_mu): while ps->on, deliveries are held instead of
     * queued; a resume moves them to unheld, handed back to the journal */
    pause_state         *ps;             /* the instance's, in h->ps[] */
    held_list            held;
    held_list            unheld;
} dest;

struct relais_hub {
    relais_config   *cfg;
    relais_journal  *j;
    relais_bus      *bus;
    relais_router   *router;
    relais_metrics  *metrics;
    relais_admin    *admin;
    relais_instance **insts;
    size_t           n_insts;
    pause_state     *ps;               /* per insts[i] */
    pthread_mutex_t  pause_mu;         /* one pause or resume at a time; guards pausers */
    char           **pausers;          /* every "who" of a pause or resume, kept until destroy */
    size_t           n_pausers;

    dest            *dests;
    size_t           n_dests;
    pthread_mutex_t  dq_mu;
    pthread_cond_t   dq_cv;
    size_t           dq_total;
    size_t           dq_rr;
    int              dq_stop;

    pthread_t       *workers;
    size_t           n_workers;
    pthread_t        bus_thread, sched_thread;
    int              threads_started;
    atomic_int       stop_requested;
    atomic_int       bus_stop;
    atomic_int       sched_stop;
    int              started;
    int              stopped;
    char             owner[160];
    char             admin_url[80];

    pthread_mutex_t  reload_mu;        /* one reload at a time; guards retired */
    struct relais_mapping **retired;   /* mappings replaced by a reload */
    size_t           n_retired;
    atomic_int       reload_requested;
};

/* ---- small helpers ---------------------------------------------------------- */

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static int64_t parse_time_us(const char *t)
{
    int64_t us;
    return relais_rfc3339_parse_us(t, &us) == 0 ? us : 0;   /* 2026-11-25T19:06:30.123456Z */
}

static dest *find_dest(relais_hub *h, const char *name)
{
    for (size_t i = 0; i < h->n_dests; i++)
        if (strcmp(h->dests[i].inst->name, name) == 0) return &h->dests[i];
    return NULL;
}

int relais_hub_accepting(relais_hub *h)
{
    return !atomic_load(&h->stop_requested) && relais_journal_healthy(h->j) && relais_bus_healthy(h->bus);
}

static pause_state *pause_of(relais_hub *h, const relais_instance *inst)
{
    for (size_t i = 0; i < h->n_insts; i++)
        if (h->insts[i] == inst) return &h->ps[i];
    return NULL;
}

static int held_push(held_list *l, int64_t id, const char *event_id, const char *dest_name, const char *by)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 64;
        held_d *nv = realloc(l->v, ncap * sizeof *nv);
        if (!nv) return -1;
        l->v = nv;
        l->cap = ncap;
    }
    held_d *e = &l->v[l->n++];
    e->id = id;
    snprintf(e->event_id, sizeof e->event_id, "%s", event_id ? event_id : "");
    e->dest = dest_name;
    e->by = by;
    return 0;
}

/* Move every entry of from to the end of to, setting their `by` when not
 * NULL; from is left empty. -1 (nothing moved) out of memory. */
static int held_move(held_list *to, held_list *from, const char *by)
{
    if (to->n == 0 && !by) {
        held_list t = *to;
        *to = *from;
        *from = t;
        return 0;
    }
    for (size_t i = 0; i < from->n; i++)
        if (held_push(to, from->v[i].id, from->v[i].event_id, from->v[i].dest, by ? by : from->v[i].by) != 0) {
            to->n -= i;
            return -1;
        }
    from->n = 0;
    return 0;
}

/* ---- source side: relais_instance_ops ---------------------------------------- */

/* A paused source is told to push back, as when the journal is down. */
static int op_accepting(void *hubp, const relais_instance *inst)
{
    relais_hub *h = hubp;
    const pause_state *ps = pause_of(h, inst);
    return relais_hub_accepting(h) && !(ps && atomic_load(&ps->on));
}

static int op_reject(void *hubp, relais_instance *inst, const char *record_id, const char *where,
                     const char *reason, const char *raw, size_t rawlen)
{
    relais_hub *h = hubp;
    relais_conn_metrics *m = relais_metrics_conn(h->metrics, inst->name);
    if (m) atomic_fetch_add(&m->rejected, 1);
    relais_logf(RELAIS_LOG_WARN, inst->name, "rejected %s%s%s: %s", where ? where : "input",
                record_id ? " record " : "", record_id ? record_id : "", reason);
    return relais_journal_reject(h->j, inst->name, record_id, where, reason, raw, rawlen);
}

static void publish(relais_hub *h, relais_event *ev)
{
    const char *key = relais_event_subject(ev) ? relais_event_subject(ev) : relais_event_id(ev);
    size_t len;
    const char *json = relais_event_json(ev, &len);
    relais_event_ref(ev);    /* released by on_produced */
    if (relais_bus_produce(h->bus, key, json, len, ev) != 0) {
        atomic_fetch_add(&h->metrics->publish_errors, 1);
        relais_logf(RELAIS_LOG_WARN, "hub", "event %s journaled but not published yet; "
                    "the scheduler will publish it again", relais_event_id(ev));
        relais_event_unref(ev);
    }
}

/* A record excerpt for the rejections table: the raw text or the data JSON. */
static void reject_record(relais_hub *h, relais_instance *inst, const relais_record *rec,
                          const char *record_id, const char *where, const char *reason)
{
    if (rec->raw) {
        op_reject(h, inst, record_id, where, reason, rec->raw, rec->raw_len);
        return;
    }
    char *txt = rec->data ? json_dumps(rec->data, JSON_COMPACT) : NULL;
    op_reject(h, inst, record_id, where, reason, txt, txt ? strlen(txt) : 0);
    free(txt);
}

/* Record -> canonical event: the instance's inbound mapping (when it has
 * one), the envelope, then the canonical schema of the type. NULL when the
 * record is refused; res says why and the refusal is journaled. */
static relais_event *canonical_event(relais_hub *h, relais_instance *inst, const relais_record *in,
                                     relais_submit_result *res)
{
    char err[1024];
    relais_record rec = *in;
    relais_mapped_record mr;
    memset(&mr, 0, sizeof mr);
    /* one version of the mapping for the whole record (a reload may switch it) */
    const relais_mapping *map = __atomic_load_n(&inst->mapping, __ATOMIC_ACQUIRE);
    if (map && relais_mapping_has_inbound(map)) {
        /* parse errors name the record by its id when the source gave one
         * (the file name for a dropped XML file) */
        const char *name = in->record_id ? in->record_id : "record";
        int rc = rec.raw ? relais_mapping_inbound_raw(map, rec.raw, rec.raw_len, name,
                                                      &mr, err, sizeof err)
               : rec.data ? relais_mapping_inbound_json(map, rec.data, &mr, err, sizeof err)
               : (snprintf(err, sizeof err, "record has no data"), -1);
        if (rc != 0) {
            res->status = RELAIS_SUBMIT_REJECTED;
            snprintf(res->reason, sizeof res->reason, "%.255s", err);
            reject_record(h, inst, in, mr.record_id ? mr.record_id : in->record_id, "mapping", err);
            relais_mapped_record_clear(&mr);
            return NULL;
        }
        rec.type = mr.type;
        if (mr.subject) rec.subject = mr.subject;
        if (mr.record_id) rec.record_id = mr.record_id;
        if (mr.correlation_id) rec.correlation_id = mr.correlation_id;
        rec.data = mr.data;
        rec.raw = NULL;
    } else if (rec.raw && !rec.data) {
        snprintf(err, sizeof err, "connector '%s' has no mapping to read raw (XML) records", inst->name);
        res->status = RELAIS_SUBMIT_REJECTED;
        snprintf(res->reason, sizeof res->reason, "%.255s", err);
        reject_record(h, inst, in, in->record_id, "record", err);
        return NULL;
    }
    /* mapped data is ours: the event takes it without a copy */
    relais_event *ev = mr.data ? relais_event_build_take(&rec, json_incref(mr.data), inst->name, inst->tenant,
                                                         err, sizeof err)
                               : relais_event_build(&rec, inst->name, inst->tenant, err, sizeof err);
    if (!ev) {
        res->status = RELAIS_SUBMIT_REJECTED;
        snprintf(res->reason, sizeof res->reason, "%.255s", err);
        reject_record(h, inst, &rec, rec.record_id, "record", err);
        relais_mapped_record_clear(&mr);
        return NULL;
    }
    if (relais_hub_check_schema(h, ev, err, sizeof err) != 0) {
        res->status = RELAIS_SUBMIT_REJECTED;
        snprintf(res->reason, sizeof res->reason, "%.255s", err);
        reject_record(h, inst, &rec, relais_event_record_id(ev), "schema", err);
        relais_event_unref(ev);
        ev = NULL;
    }
    relais_mapped_record_clear(&mr);
    return ev;
}

int relais_hub_check_schema(const relais_hub *h, const relais_event *ev, char *errstr, size_t errlen)
{
    return relais_schema_check_event(h->cfg->schema_set,
                                     h->cfg->schemas.private_types && !strcmp(h->cfg->schemas.private_types, "reject"),
                                     ev, errstr, errlen);
}

static int op_submit(void *hubp, relais_instance *inst, const relais_record *recs, size_t n,
                     relais_submit_result *res)
{
    relais_hub *h = hubp;
    relais_conn_metrics *m = relais_metrics_conn(h->metrics, inst->name);
    if (!relais_hub_accepting(h)) {
        for (size_t i = 0; i < n; i++) {
            res[i].status = RELAIS_SUBMIT_UNAVAILABLE;
            res[i].event_id[0] = '\0';
            snprintf(res[i].reason, sizeof res[i].reason, "the hub cannot journal or publish right now");
        }
        return -1;
    }
    relais_event **evs = calloc(n ? n : 1, sizeof *evs);
    size_t *slot = calloc(n ? n : 1, sizeof *slot);
    relais_submit_result *tmp = calloc(n ? n : 1, sizeof *tmp);
    if (!evs || !slot || !tmp) {
        free(evs); free(slot); free(tmp);
        for (size_t i = 0; i < n; i++) res[i].status = RELAIS_SUBMIT_UNAVAILABLE;
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof res[i]);
        relais_event *ev = canonical_event(h, inst, &recs[i], &res[i]);
        if (!ev) continue;      /* refused, counted and journaled by op_reject */
        evs[k] = ev;
        slot[k] = i;
        k++;
    }
    int rc = 0;
    if (k > 0 && relais_journal_ingest(h->j, evs, k, tmp) != 0) {
        for (size_t x = 0; x < k; x++) {
            res[slot[x]].status = RELAIS_SUBMIT_UNAVAILABLE;
            snprintf(res[slot[x]].reason, sizeof res[slot[x]].reason, "journal unavailable");
        }
        rc = -1;
    } else {
        for (size_t x = 0; x < k; x++) {
            res[slot[x]] = tmp[x];
            if (tmp[x].status == RELAIS_SUBMIT_ACCEPTED) {
                if (m) atomic_fetch_add(&m->events_in, 1);
                publish(h, evs[x]);
            } else if (tmp[x].status == RELAIS_SUBMIT_DUPLICATE) {
                if (m) atomic_fetch_add(&m->duplicates, 1);
            } else if (tmp[x].status == RELAIS_SUBMIT_REJECTED) {
                if (m) atomic_fetch_add(&m->rejected, 1);   /* refused by PostgreSQL (journal.h) */
            }
        }
    }
    for (size_t x = 0; x < k; x++) relais_event_unref(evs[x]);
    free(evs);
    free(slot);
    free(tmp);
    return rc;
}

/* entity of a canonical id: what comes before its first '/' */
static int entity_of(const char *canonical_id, char *out, size_t outlen)
{
    const char *slash = strchr(canonical_id, '/');
    if (!slash || slash == canonical_id || (size_t)(slash - canonical_id) >= outlen) return -1;
    memcpy(out, canonical_id, (size_t)(slash - canonical_id));
    out[slash - canonical_id] = '\0';
    return 0;
}

static int op_xref_local(void *hubp, const relais_instance *inst, const char *package,
                         const char *canonical_id, char *out, size_t outlen)
{
    relais_hub *h = hubp;
    char entity[128];
    if (entity_of(canonical_id, entity, sizeof entity) != 0) return 1;   /* not a canonical id: none */
    const char *p = package ? package : relais_instance_package(inst);
    return relais_journal_xref_get(h->j, inst->tenant, entity, canonical_id, p, out, outlen);
}

static int op_xref_canonical(void *hubp, const relais_instance *inst, const char *package,
                             const char *entity, const char *local_id, char *out, size_t outlen)
{
    relais_hub *h = hubp;
    return relais_journal_xref_canonical(h->j, inst->tenant, entity,
                                         package ? package : relais_instance_package(inst), local_id, out, outlen);
}

static int op_xref_put(void *hubp, const relais_instance *inst, const char *canonical_id, const char *local_id)
{
    relais_hub *h = hubp;
    char entity[128];
    if (entity_of(canonical_id, entity, sizeof entity) != 0) return -1;
    return relais_journal_xref_put(h->j, inst->tenant, entity, canonical_id, relais_instance_package(inst), local_id);
}

static int op_state_put(void *hubp, const relais_instance *inst, const char *key, json_t *value)
{
    relais_hub *h = hubp;
    return relais_journal_state_put(h->j, inst->tenant, relais_instance_package(inst), key, value);
}

static json_t *op_state_get(void *hubp, const relais_instance *inst, const char *key, int *err)
{
    relais_hub *h = hubp;
    return relais_journal_state_get(h->j, inst->tenant, relais_instance_package(inst), key, err);
}

static json_t *op_state_list(void *hubp, const relais_instance *inst, const char *prefix, const char *after,
                             size_t limit)
{
    relais_hub *h = hubp;
    return relais_journal_state_list(h->j, inst->tenant, relais_instance_package(inst), prefix, after, limit);
}

static void op_echo(void *hubp, relais_instance *inst, const char *record_id)
{
    relais_hub *h = hubp;
    relais_conn_metrics *m = relais_metrics_conn(h->metrics, inst->name);
    if (m) atomic_fetch_add(&m->echoes, 1);
    relais_logf(RELAIS_LOG_DEBUG, inst->name, "change %s was written by Relais itself: not submitted again",
                record_id ? record_id : "?");
}

static const relais_instance_ops g_ops = {
    .submit = op_submit, .reject = op_reject, .accepting = op_accepting,
    .xref_local = op_xref_local, .xref_canonical = op_xref_canonical, .xref_put = op_xref_put,
    .state_put = op_state_put, .state_get = op_state_get, .state_list = op_state_list,
    .echo = op_echo,
};

static void on_produced(void *opaque, int err, const char *errstr, void *msg_opaque)
{
    relais_hub *h = opaque;
    relais_event *ev = msg_opaque;
    if (!ev) return;
    if (err == 0) {
        atomic_fetch_add(&h->metrics->published, 1);
        relais_journal_step(h->j, relais_event_id(ev), "published", NULL, 0, NULL, relais_now_us());
    } else {
        atomic_fetch_add(&h->metrics->publish_errors, 1);
        relais_logf(RELAIS_LOG_WARN, "bus", "event %s not acknowledged by the bus (%s); it will be "
                    "published again from the journal", relais_event_id(ev), errstr ? errstr : "?");
    }
    relais_event_unref(ev);
}

/* ---- delivery queues --------------------------------------------------------- */

static void postpone_nodes(relais_hub *h, dest *ds, dq_node *list, long delay_ms);

/* A step per entry of l ("paused" when held, "resumed" when handed back),
 * naming who; async. Empties l. */
static void journal_held(relais_hub *h, held_list *l, const char *step)
{
    char detail[256];
    for (size_t i = 0; i < l->n; i++) {
        held_d *e = &l->v[i];
        if (!strcmp(step, "paused"))
            snprintf(detail, sizeof detail, "held: the destination was paused by %s", e->by ? e->by : "?");
        else
            snprintf(detail, sizeof detail, "handed back: the destination was resumed by %s", e->by ? e->by : "?");
        relais_journal_step(h->j, e->event_id[0] ? e->event_id : NULL, step, e->dest, 0, detail, 0);
    }
    l->n = 0;
}

/* Takes ownership of the contents of d[0..n) (the array itself is freed). */
static void enqueue_deliveries(relais_hub *h, relais_delivery *d, size_t n)
{
    dq_node *back = NULL;        /* for destinations whose circuit is open */
    dest *back_ds = NULL;
    int64_t back_until = 0;
    held_list noted = { 0 };     /* held for paused destinations, to journal */
    dq_node *later = NULL;       /* paused but not noted (out of memory) */
    dest *later_ds = NULL;
    int64_t now = relais_mono_us();
    pthread_mutex_lock(&h->dq_mu);
    for (size_t i = 0; i < n; i++) {
        dest *ds = find_dest(h, d[i].destination);
        if (!ds) {
            relais_logf(RELAIS_LOG_WARN, "hub", "delivery %lld to unknown destination '%s' left pending",
                        (long long)d[i].id, d[i].destination);
            continue;   /* freed below with the array */
        }
        if (atomic_load(&ds->ps->on)) {
            /* paused: stays leased to this hub, pending, until resumed; when
             * it cannot be noted it is handed back (due in a second) */
            const char *eid = relais_event_id(d[i].ev);
            if (held_push(&ds->held, d[i].id, eid, ds->inst->name, ds->ps->by) == 0) {
                if (held_push(&noted, d[i].id, eid, ds->inst->name, ds->ps->by) != 0)
                    relais_logf(RELAIS_LOG_WARN, ds->inst->name, "delivery %lld held (paused) without its step: "
                                "out of memory", (long long)d[i].id);
                continue;   /* freed below with the array */
            }
            dq_node *nd = calloc(1, sizeof *nd);
            if (!nd) continue;
            nd->d = d[i];
            memset(&d[i], 0, sizeof d[i]);
            nd->next = later;
            later = nd;
            later_ds = ds;
            continue;
        }
        dq_node *nd = calloc(1, sizeof *nd);
        if (!nd) continue;
        nd->d = d[i];
        memset(&d[i], 0, sizeof d[i]);
        if (ds->open_until > now) {
            nd->next = back;
            back = nd;
            back_ds = ds;
            back_until = ds->open_until;
            continue;
        }
        if (ds->tail) ds->tail->next = nd; else ds->head = nd;
        ds->tail = nd;
        ds->queued++;
        atomic_store(&ds->m->queued, (long long)ds->queued);
        h->dq_total++;
    }
    pthread_cond_broadcast(&h->dq_cv);
    pthread_mutex_unlock(&h->dq_mu);
    relais_deliveries_free(d, n);
    journal_held(h, &noted, "paused");
    free(noted.v);
    if (later) postpone_nodes(h, later_ds, later, 1000);
    if (back) {
        /* due when the circuit lets one probe through */
        long left = (long)((back_until - now) / 1000);
        postpone_nodes(h, back_ds, back, left > 0 ? left : 0);
    }
}

static size_t dq_total(relais_hub *h)
{
    pthread_mutex_lock(&h->dq_mu);
    size_t t = h->dq_total;
    pthread_mutex_unlock(&h->dq_mu);
    return t;
}

/* Journal the outcome of one attempt and count it. */
static void record_outcome(relais_hub *h, dest *ds, relais_delivery *d, relais_verdict v,
                           const relais_answer *ans, int64_t t0, int64_t t1, uint64_t *rng)
{
    int attempt_no = d->attempts + 1;
    atomic_fetch_add(&ds->m->attempts, 1);
    atomic_store(&ds->m->last_status, ans->status);
    const relais_config *c = h->cfg;
    if (v == RELAIS_DELIVER_OK) {
        relais_journal_attempt(h->j, d, v, ans, 0, 0, t0, t1);
        atomic_fetch_add(&ds->m->delivered, 1);
        relais_metrics_observe_latency(h->metrics, t1 - parse_time_us(relais_event_time(d->ev)));
    } else if (v == RELAIS_DELIVER_REJECT || attempt_no >= c->delivery.max_attempts) {
        relais_journal_attempt(h->j, d, v, ans, 0, 1, t0, t1);
        atomic_fetch_add(&ds->m->dead_lettered, 1);
        relais_logf(RELAIS_LOG_WARN, ds->inst->name, "event %s dead-lettered after %d attempt(s): %d %s",
                    relais_event_id(d->ev), attempt_no, ans->status, ans->detail);
    } else {
        long wait = relais_backoff_ms(attempt_no, c->delivery.backoff_initial_ms,
                                      c->delivery.backoff_max_ms, rng);
        relais_journal_attempt(h->j, d, v, ans, wait, 0, t0, t1);
        atomic_fetch_add(&ds->m->retried, 1);
    }
}

/* One call to the connector for nodes[0..n) (n > 1 only with deliver_batch). */
static int attempt(relais_hub *h, dest *ds, dq_node **nodes, size_t n, uint64_t *rng)
{
    const relais_connector *desc = ds->inst->desc;
    relais_answer one;
    relais_verdict v1;
    relais_answer *ans = n > 1 ? calloc(n, sizeof *ans) : &one;
    relais_verdict *verdicts = n > 1 ? calloc(n, sizeof *verdicts) : &v1;
    const relais_event **evs = n > 1 ? calloc(n, sizeof *evs) : NULL;
    const char **lids = n > 1 ? calloc(n, sizeof *lids) : NULL;
    if (n > 1 && (!ans || !verdicts || !evs || !lids)) {
        free(ans); free(verdicts); free(evs); free(lids);
        /* out of memory: one by one */
        int all_failed = 1;
        for (size_t i = 0; i < n; i++) all_failed &= attempt(h, ds, &nodes[i], 1, rng);
        return all_failed;
    }
    memset(ans, 0, n * sizeof *ans);
    int64_t t0 = relais_now_us();
    if (n == 1) {
        v1 = desc->deliver(ds->inst->ctx, nodes[0]->d.ev, nodes[0]->d.local_id, &one);
    } else {
        for (size_t i = 0; i < n; i++) {
            evs[i] = nodes[i]->d.ev;
            lids[i] = nodes[i]->d.local_id;
            verdicts[i] = RELAIS_DELIVER_RETRY;
        }
        desc->deliver_batch(ds->inst->ctx, evs, lids, n, verdicts, ans);
    }
    int64_t t1 = relais_now_us();
    int all_failed = 1;
    for (size_t i = 0; i < n; i++) {
        record_outcome(h, ds, &nodes[i]->d, verdicts[i], &ans[i], t0, t1, rng);
        if (verdicts[i] != RELAIS_DELIVER_RETRY) all_failed = 0;
    }
    if (n > 1) {
        free(ans);
        free(verdicts);
        free(evs);
        free(lids);
    }
    return all_failed;     /* 1: the destination did not answer usefully (circuit breaker) */
}

/* Give queued deliveries back to the journal, due in delay_ms, and free them
 * (a destination whose circuit is open). Called without dq_mu. */
static void postpone_nodes(relais_hub *h, dest *ds, dq_node *list, long delay_ms)
{
    size_t n = 0;
    for (dq_node *nd = list; nd; nd = nd->next) n++;
    int64_t *ids = n ? malloc(n * sizeof *ids) : NULL;
    size_t k = 0;
    for (dq_node *nd = list; nd && ids; nd = nd->next) ids[k++] = nd->d.id;
    char err[300];
    if (k && relais_journal_postpone(h->j, h->owner, ids, k, delay_ms, err, sizeof err) != 0)
        relais_logf(RELAIS_LOG_WARN, ds->inst->name, "%zu deliveries not handed back (%s); "
                    "they are claimed again when their lease expires", k, err);
    free(ids);
    while (list) {
        dq_node *next = list->next;
        relais_delivery_clear(&list->d);
        free(list);
        list = next;
    }
}

/* Detach the whole queue of ds (dq_mu held). */
static dq_node *detach_queue(relais_hub *h, dest *ds)
{
    dq_node *list = ds->head;
    h->dq_total -= ds->queued;
    ds->head = ds->tail = NULL;
    ds->queued = 0;
    atomic_store(&ds->m->queued, 0);
    return list;
}

/* After an attempt on ds (dq_mu held): count it for the circuit breaker.
 * Returns the queue to hand back when the circuit has just opened. */
static dq_node *circuit_after(relais_hub *h, dest *ds, int failed)
{
    const relais_config *c = h->cfg;
    if (c->delivery.circuit_failures <= 0) return NULL;
    if (!failed) {
        if (ds->open_until)
            relais_logf(RELAIS_LOG_INFO, ds->inst->name, "circuit closed: the destination answers again");
        ds->fails = 0;
        ds->open_until = 0;
        atomic_store(&ds->m->circuit_open, 0);
        return NULL;
    }
    ds->fails++;
    if (ds->fails < c->delivery.circuit_failures && !ds->open_until) return NULL;
    /* open (or a failed probe: open again) */
    ds->open_until = relais_mono_us() + c->delivery.circuit_open_ms * 1000;
    atomic_store(&ds->m->circuit_open, 1);
    atomic_fetch_add(&ds->m->circuit_opened, 1);
    dq_node *list = detach_queue(h, ds);
    relais_logf(RELAIS_LOG_WARN, ds->inst->name, "circuit open after %ld failed attempts in a row: "
                "deliveries wait %ld ms, then one probe", ds->fails, c->delivery.circuit_open_ms);
    return list;
}

static void *worker_main(void *arg)
{
    relais_hub *h = arg;
    pthread_setname_np(pthread_self(), "relais-deliver");
    uint64_t rng = (uint64_t)relais_mono_us() ^ (uint64_t)(uintptr_t)&rng;
    dq_node *nodes[WORKER_BATCH];
    pthread_mutex_lock(&h->dq_mu);
    for (;;) {
        if (h->dq_stop) break;
        dest *pick = NULL;
        int64_t now = relais_mono_us();
        /* Workers are shared; a destination that hangs (timeouts, a slow
         * package) must not take them all. Each destination may use its fair
         * share (workers / destinations, at least 1) at any time; beyond it,
         * only while one free worker stays for every other destination that
         * has none in flight, so a destination with new work always finds
         * one. With a single busy destination nothing is held back. */
        long busy = 0, idle = 0;
        for (size_t k = 0; k < h->n_dests; k++) {
            busy += h->dests[k].in_flight;
            if (h->dests[k].in_flight == 0 && h->dests[k].open_until <= now && !atomic_load(&h->dests[k].ps->on))
                idle++;
        }
        long free_w = (long)h->n_workers - busy;
        long share = (long)h->n_workers / (long)(h->n_dests ? h->n_dests : 1);
        if (share < 1) share = 1;
        for (size_t k = 0; k < h->n_dests && !pick; k++) {
            dest *ds = &h->dests[(h->dq_rr + k) % h->n_dests];
            /* open circuit: left alone; after open_until: one probe at a time */
            if (ds->open_until > now) continue;
            long limit = ds->open_until ? 1 : ds->max_in_flight;
            if (ds->queued == 0 || ds->in_flight >= limit) continue;
            long idle_others = idle - (ds->in_flight == 0 ? 1 : 0);
            if (ds->in_flight >= share && free_w - 1 < idle_others) continue;
            pick = ds;
        }
        if (!pick) {
            pthread_cond_wait(&h->dq_cv, &h->dq_mu);
            continue;
        }
        h->dq_rr++;
        size_t n = 0;
        while (pick->head && n < (size_t)pick->batch_max && n < WORKER_BATCH) {
            dq_node *nd = pick->head;
            pick->head = nd->next;
            nodes[n++] = nd;
        }
        if (!pick->head) pick->tail = NULL;
        pick->queued -= n;
        h->dq_total -= n;
        pick->in_flight++;
        atomic_store(&pick->m->queued, (long long)pick->queued);
        atomic_store(&pick->m->in_flight, pick->in_flight);
        pthread_mutex_unlock(&h->dq_mu);

        int failed = attempt(h, pick, nodes, n, &rng);
        for (size_t i = 0; i < n; i++) {
            relais_delivery_clear(&nodes[i]->d);
            free(nodes[i]);
        }

        pthread_mutex_lock(&h->dq_mu);
        dq_node *back = circuit_after(h, pick, failed);
        if (back) {
            pthread_mutex_unlock(&h->dq_mu);
            postpone_nodes(h, pick, back, h->cfg->delivery.circuit_open_ms);
            pthread_mutex_lock(&h->dq_mu);
        }
        pick->in_flight--;
        atomic_store(&pick->m->in_flight, pick->in_flight);
        pthread_cond_broadcast(&h->dq_cv);
    }
    pthread_mutex_unlock(&h->dq_mu);
    return NULL;
}

/* ---- bus thread: consume, route, journal, queue ---------------------------------- */

static void route_batch(relais_hub *h, relais_bus_msg *msgs, int n)
{
    relais_event **evs = calloc((size_t)n, sizeof *evs);
    relais_route_item *items = calloc((size_t)n, sizeof *items);
    const char **dests = calloc((size_t)n * h->n_dests + 1, sizeof *dests);
    const char **routes = calloc((size_t)n * h->n_dests + 1, sizeof *routes);
    unsigned char *ordered = calloc((size_t)n * h->n_dests + 1, 1);
    if (!evs || !items || !dests || !routes || !ordered) {
        free(evs); free(items); free(dests); free(routes); free(ordered);
        return;   /* offsets not stored: the messages come again */
    }
    size_t k = 0, used = 0;
    for (int i = 0; i < n; i++) {
        char err[256];
        relais_event *ev = relais_event_parse(msgs[i].value, msgs[i].len, err, sizeof err);
        if (!ev) {
            relais_logf(RELAIS_LOG_ERROR, "bus", "skipping a message that is not a Relais event "
                        "(partition %d offset %lld): %s", (int)msgs[i].partition,
                        (long long)msgs[i].offset, err);
            continue;
        }
        size_t nd = relais_router_match(h->router, ev, dests + used, routes + used, h->n_dests);
        items[k].ev = ev;
        items[k].dests = dests + used;
        items[k].routes = routes + used;
        items[k].ordered = ordered + used;
        for (size_t d = 0; d < nd; d++) {
            const dest *ds = find_dest(h, dests[used + d]);
            ordered[used + d] = ds && ds->ordered;
        }
        items[k].ndest = nd;
        used += nd;
        evs[k++] = ev;
    }
    relais_delivery *out = NULL;
    size_t nout = 0;
    long backoff = 100;
    while (k > 0) {
        if (relais_journal_route(h->j, items, k, h->owner, h->cfg->delivery.lease_ms, &out, &nout) == 0)
            break;
        if (atomic_load(&h->bus_stop)) { k = 0; goto done; }  /* not stored: redelivered later */
        relais_logf(RELAIS_LOG_WARN, "hub", "journal unavailable while routing; retrying in %ld ms", backoff);
        sleep_ms(backoff);
        backoff = backoff < 2000 ? backoff * 2 : 2000;
    }
    for (size_t i = 0; i < k; i++) {
        if (items[i].ndest > 0) atomic_fetch_add(&h->metrics->routed, 1);
        else atomic_fetch_add(&h->metrics->unrouted, 1);
    }
    for (int i = 0; i < n; i++) relais_bus_store_offset(h->bus, &msgs[i]);
    if (nout > 0) enqueue_deliveries(h, out, nout);
    else relais_deliveries_free(out, 0);
done:
    for (size_t i = 0; i < (size_t)n && evs[i]; i++) relais_event_unref(evs[i]);
    free(evs);
    free(items);
    free(dests);
    free(routes);
    free(ordered);
}

static void *bus_main(void *arg)
{
    relais_hub *h = arg;
    pthread_setname_np(pthread_self(), "relais-route");
    relais_bus_msg *msgs = calloc(CONSUME_BATCH, sizeof *msgs);
    if (!msgs) return NULL;
    while (!atomic_load(&h->bus_stop)) {
        relais_bus_poll(h->bus, 0);
        if (dq_total(h) > (size_t)h->cfg->delivery.queue_max) {   /* back-pressure: deliveries are behind */
            sleep_ms(5);
            continue;
        }
        int n = relais_bus_consume(h->bus, msgs, CONSUME_BATCH, 100);
        if (n < 0) {                       /* consumer failed for good: do not spin */
            if (!atomic_load(&h->bus_stop))
                relais_logf(RELAIS_LOG_ERROR, "hub", "the bus consumer failed; routing is stopped "
                            "until the hub is restarted (journaled events are kept)");
            while (!atomic_load(&h->bus_stop)) sleep_ms(100);
            break;
        }
        if (n == 0) continue;
        route_batch(h, msgs, n);
        for (int i = 0; i < n; i++) relais_bus_msg_release(&msgs[i]);
    }
    free(msgs);
    return NULL;
}

/* ---- scheduler: due deliveries and unpublished events ----------------------------- */

/* Hand the deliveries of resumed destinations (their `unheld` lists) back to
 * the journal, due at once, so that the next claim takes them; a step
 * "resumed" for each. Those the journal does not take stay listed for the
 * next round (the scheduler calls this every poll interval): the claim never
 * gives a hub its own leases, so they must not be dropped. Called without
 * dq_mu; the admin thread (resume) and the scheduler may both call it, each
 * takes whole lists. Returns how many were handed back. */
static size_t release_unheld(relais_hub *h)
{
    size_t done = 0;
    for (size_t i = 0; i < h->n_dests; i++) {
        dest *ds = &h->dests[i];
        held_list l = { 0 };
        pthread_mutex_lock(&h->dq_mu);
        if (ds->unheld.n > 0) held_move(&l, &ds->unheld, NULL);
        pthread_mutex_unlock(&h->dq_mu);
        if (l.n == 0) {
            free(l.v);
            continue;
        }
        int64_t *ids = malloc(l.n * sizeof *ids);
        char err[300] = "out of memory";
        for (size_t k = 0; ids && k < l.n; k++) ids[k] = l.v[k].id;
        if (!ids || relais_journal_release(h->j, h->owner, ids, l.n, err, sizeof err) != 0) {
            relais_logf(RELAIS_LOG_WARN, ds->inst->name, "%zu held deliveries not handed back yet (%s); "
                        "trying again", l.n, err);
            pthread_mutex_lock(&h->dq_mu);
            if (held_move(&ds->unheld, &l, NULL) != 0)
                relais_logf(RELAIS_LOG_ERROR, ds->inst->name, "out of memory: %zu held deliveries are "
                            "claimed again only once this hub has stopped", l.n);
            pthread_mutex_unlock(&h->dq_mu);
        } else {
            done += l.n;
            journal_held(h, &l, "resumed");
        }
        free(ids);
        free(l.v);
    }
    return done;
}

static void republish_unrouted(relais_hub *h, int64_t min_age_us)
{
    relais_event **evs = NULL;
    size_t n = 0;
    if (relais_journal_unrouted(h->j, 5000, &evs, &n) != 0) return;
    int64_t now = relais_now_us();
    size_t again = 0;
    for (size_t i = 0; i < n; i++) {
        if (now - parse_time_us(relais_event_time(evs[i])) >= min_age_us) {
            publish(h, evs[i]);
            again++;
        }
        relais_event_unref(evs[i]);
    }
    free(evs);
    if (again) relais_logf(RELAIS_LOG_INFO, "hub", "published again %zu event(s) journaled but not routed", again);
}

static void *sched_main(void *arg)
{
    relais_hub *h = arg;
    pthread_setname_np(pthread_self(), "relais-sched");
    int64_t last_sweep = relais_mono_us();
    while (!atomic_load(&h->sched_stop)) {
        long slept = 0;
        while (slept < h->cfg->delivery.poll_interval_ms && !atomic_load(&h->sched_stop)) {
            sleep_ms(20);
            slept += 20;
        }
        if (atomic_load(&h->sched_stop)) break;
        release_unheld(h);
        size_t queued = dq_total(h);
        size_t high = (size_t)h->cfg->delivery.queue_max;
        if (queued < high / 2) {
            relais_delivery *d = NULL;
            size_t n = 0;
            size_t want = high / 2 - queued;
            if (want > 2000) want = 2000;
            if (relais_journal_claim_due(h->j, h->owner, h->cfg->delivery.lease_ms, want, &d, &n) == 0 && n > 0)
                enqueue_deliveries(h, d, n);
            else
                relais_deliveries_free(d, n);
        }
        if (relais_mono_us() - last_sweep > SWEEP_INTERVAL_US) {
            republish_unrouted(h, SWEEP_MIN_AGE_US);
            last_sweep = relais_mono_us();
        }
    }
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------ */

static int mkdir_p(const char *path)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

static void write_state(const char *dir, const char *name, const char *value)
{
    char path[1100], tmp[1100];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    fprintf(f, "%s\n", value);
    fclose(f);
    rename(tmp, path);
}

relais_hub *relais_hub_new(relais_config *cfg, char *errstr, size_t errlen)
{
    relais_safeparse_init();   /* before any thread parses XML or JSON */
    relais_hub *h = calloc(1, sizeof *h);
    if (!h) { snprintf(errstr, errlen, "out of memory"); return NULL; }
    h->cfg = cfg;
    pthread_mutex_init(&h->dq_mu, NULL);
    pthread_mutex_init(&h->reload_mu, NULL);
    pthread_mutex_init(&h->pause_mu, NULL);
    pthread_cond_init(&h->dq_cv, NULL);
    atomic_init(&h->stop_requested, 0);
    atomic_init(&h->bus_stop, 0);
    atomic_init(&h->sched_stop, 0);
    atomic_init(&h->reload_requested, 0);
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    char rnd[37];
    relais_uuid_v7(rnd);
    snprintf(h->owner, sizeof h->owner, "%s/%s/%d/%.8s", cfg->hub.name, host, (int)getpid(), rnd + 28);

    const char **names = calloc(cfg->n_connectors + 1, sizeof *names);
    for (size_t i = 0; names && i < cfg->n_connectors; i++) names[i] = cfg->connectors[i].name;
    h->metrics = names ? relais_metrics_new(names, cfg->n_connectors) : NULL;
    free(names);
    if (!h->metrics) { snprintf(errstr, errlen, "out of memory"); relais_hub_destroy(h); return NULL; }

    char err[512];
    /* the trail's key and witness file live outside the database */
    char keypath[1024], cppath[1024];
    unsigned char *akey = NULL;
    size_t akeylen = 0;
    relais_auditlog_paths(cfg, keypath, sizeof keypath, cppath, sizeof cppath);
    if (mkdir_p(cfg->hub.state_dir) != 0) {
        snprintf(errstr, errlen, "cannot create state_dir %s: %s", cfg->hub.state_dir, strerror(errno));
        relais_hub_destroy(h);
        return NULL;
    }
    if (relais_auditlog_key(keypath, !cfg->audit.key_file, &akey, &akeylen, err, sizeof err) != 0) {
        snprintf(errstr, errlen, "audit.key_file: %s", err);
        relais_hub_destroy(h);
        return NULL;
    }
    relais_journal_opts jo = { .conninfo = cfg->journal.conninfo, .batch_max = cfg->journal.batch_max,
                               .batch_wait_ms = cfg->journal.batch_wait_ms > 0 ? cfg->journal.batch_wait_ms : -1,  /* config 0 = no wait */
                               .writer = 1, .queue_max = 100000,
                               .audit_key = akey, .audit_keylen = akeylen, .audit_checkpoints = cppath,
                               .audit_name = h->owner, .audit_checkpoint_ms = cfg->audit.checkpoint_interval_ms,
                               .audit_stream_max = cfg->audit.stream_max };
    h->j = relais_journal_open(&jo, err, sizeof err);
    OPENSSL_cleanse(akey, akeylen);
    free(akey);
    if (!h->j) { snprintf(errstr, errlen, "journal: %s", err); relais_hub_destroy(h); return NULL; }

    relais_bus_conf bc = {
        .brokers = cfg->bus.brokers, .embedded_brokers = (int)cfg->bus.embedded_brokers,
        .topic = cfg->bus.topic, .partitions = (int)cfg->bus.partitions, .group = cfg->bus.group,
        .client_id = cfg->hub.name, .rdkafka = cfg->bus.rdkafka,
        .on_produced = on_produced, .opaque = h,
    };
    h->bus = relais_bus_new(&bc, err, sizeof err);
    if (!h->bus) { snprintf(errstr, errlen, "bus: %s", err); relais_hub_destroy(h); return NULL; }

    h->router = relais_router_new(cfg, err, sizeof err);
    if (!h->router) { snprintf(errstr, errlen, "router: %s", err); relais_hub_destroy(h); return NULL; }

    h->insts = calloc(cfg->n_connectors + 1, sizeof *h->insts);
    h->dests = calloc(cfg->n_connectors + 1, sizeof *h->dests);
    h->ps = calloc(cfg->n_connectors + 1, sizeof *h->ps);
    if (!h->insts || !h->dests || !h->ps) { snprintf(errstr, errlen, "out of memory"); relais_hub_destroy(h); return NULL; }
    for (size_t i = 0; i < cfg->n_connectors; i++) {
        relais_conn_cfg *cc = &cfg->connectors[i];
        relais_instance *inst = relais_instance_new(cc->name, cc->tenant, cc->mode, cc->desc, cc->opts,
                                                    &g_ops, h, relais_bus_bootstrap(h->bus));
        if (!inst) { snprintf(errstr, errlen, "out of memory"); relais_hub_destroy(h); return NULL; }
        inst->max_in_flight = cc->max_in_flight > 0 ? cc->max_in_flight : 4;
        inst->mapping = cc->mapping;
        inst->outgoing_allow = cfg->outgoing.allow;
        if (cc->package && !(inst->package = strdup(cc->package))) {
            snprintf(errstr, errlen, "out of memory");
            relais_instance_destroy(inst);
            relais_hub_destroy(h);
            return NULL;
        }
        atomic_init(&h->ps[h->n_insts].on, 0);
        h->insts[h->n_insts++] = inst;
        if (cc->desc->init && cc->desc->init(inst, cc->opts, &inst->ctx, err, sizeof err) != 0) {
            snprintf(errstr, errlen, "%s:%d: connector '%s' (%s): %s", cfg->path ? cfg->path : "config",
                     cc->line, cc->name, cc->type, err);
            inst->ctx = NULL;
            relais_hub_destroy(h);
            return NULL;
        }
        if (cc->mode & RELAIS_MODE_SINK) {
            dest *ds = &h->dests[h->n_dests++];
            ds->inst = inst;
            ds->max_in_flight = inst->max_in_flight;
            ds->batch_max = cc->desc->deliver_batch && cc->batch_max > 1 ? cc->batch_max : 1;
            ds->m = relais_metrics_conn(h->metrics, cc->name);
            ds->ordered = cc->order_subject;
            ds->ps = &h->ps[h->n_insts - 1];
        }
    }
    /* cross-references are kept per package */
    {
        const char **inames = calloc(h->n_insts + 1, sizeof *inames);
        const char **pkgs = calloc(h->n_insts + 1, sizeof *pkgs);
        int rc = inames && pkgs ? 0 : -1;
        for (size_t i = 0; rc == 0 && i < h->n_insts; i++) {
            inames[i] = h->insts[i]->name;
            pkgs[i] = relais_instance_package(h->insts[i]);
        }
        if (rc == 0) rc = relais_journal_set_packages(h->j, inames, pkgs, h->n_insts);
        free(inames);
        free(pkgs);
        if (rc != 0) { snprintf(errstr, errlen, "out of memory"); relais_hub_destroy(h); return NULL; }
    }
    return h;
}

int relais_hub_start(relais_hub *h, char *errstr, size_t errlen)
{
    char err[512];
    const relais_config *c = h->cfg;
    if (mkdir_p(c->hub.state_dir) != 0) {
        snprintf(errstr, errlen, "cannot create state_dir %s: %s", c->hub.state_dir, strerror(errno));
        return -1;
    }
    write_state(c->hub.state_dir, "bootstrap.txt", relais_bus_bootstrap(h->bus));
    if (c->hub.admin_listen && *c->hub.admin_listen) {
        h->admin = relais_admin_start(h, c->hub.admin_listen, err, sizeof err);
        if (!h->admin) { snprintf(errstr, errlen, "admin HTTP: %s", err); return -1; }
        const char *colon = strrchr(c->hub.admin_listen, ':');
        snprintf(h->admin_url, sizeof h->admin_url, "http://%.*s:%u",
                 colon ? (int)(colon - c->hub.admin_listen) : 9, colon ? c->hub.admin_listen : "127.0.0.1",
                 relais_admin_port(h->admin));
        write_state(c->hub.state_dir, "admin.txt", h->admin_url);
    }
    /* Deliveries first, so that sources never feed a hub that cannot deliver. */
    h->n_workers = (size_t)(c->delivery.workers > 0 ? c->delivery.workers : 1);
    h->workers = calloc(h->n_workers, sizeof *h->workers);
    if (!h->workers) { snprintf(errstr, errlen, "out of memory"); return -1; }
    for (size_t i = 0; i < h->n_workers; i++) pthread_create(&h->workers[i], NULL, worker_main, h);
    pthread_create(&h->bus_thread, NULL, bus_main, h);
    pthread_create(&h->sched_thread, NULL, sched_main, h);
    h->threads_started = 1;
    /* Anything journaled but never routed (crash between journal and bus, or an
     * embedded broker whose memory died with the last process). */
    republish_unrouted(h, 0);
    for (size_t i = 0; i < h->n_insts; i++) {
        relais_instance *inst = h->insts[i];
        if (inst->desc->start && inst->desc->start(inst->ctx, err, sizeof err) != 0) {
            snprintf(errstr, errlen, "connector '%s': %s", inst->name, err);
            return -1;
        }
    }
    h->started = 1;
    relais_logf(RELAIS_LOG_INFO, "hub", "running: bus %s, %zu connector(s), %zu route(s)%s%s",
                relais_bus_bootstrap(h->bus), h->n_insts, c->n_routes,
                h->admin ? ", admin " : "", h->admin ? h->admin_url : "");
    return 0;
}

int relais_hub_reload_mappings(relais_hub *h, char *errstr, size_t errlen)
{
    relais_config *cfg = h->cfg;
    pthread_mutex_lock(&h->reload_mu);
    relais_mapping **fresh = calloc(cfg->n_connectors + 1, sizeof *fresh);
    relais_errlist errs;
    relais_errlist_init(&errs);
    int n = 0, bad = !fresh;
    relais_tokens *tokens = NULL;     /* the admin tokens file again, when the API uses one */
    if (h->admin && cfg->hub.admin_tokens) {   /* the API uses tokens exactly when this is set */
        char terr[512];
        tokens = relais_tokens_load(cfg->hub.admin_tokens, terr, sizeof terr);
        if (!tokens) {
            relais_errlist_add(&errs, NULL, 0, "%s", terr);
            bad = 1;
        }
    }
    for (size_t i = 0; fresh && i < cfg->n_connectors; i++) {
        relais_conn_cfg *cc = &cfg->connectors[i];
        if (!cc->mapping_path) continue;
        size_t before = errs.count;
        fresh[i] = relais_mapping_load(cc->mapping_path, &errs);
        if (!fresh[i]) {
            if (errs.count == before) relais_errlist_add(&errs, cc->mapping_path, 0, "cannot load the mapping");
            bad = 1;
        } else if (cc->mode == RELAIS_MODE_SOURCE && !relais_mapping_has_inbound(fresh[i])) {
            relais_errlist_add(&errs, cc->mapping_path, 0, "no inbound: section, which source '%s' needs", cc->name);
            bad = 1;
        } else if (cc->mode == RELAIS_MODE_SINK && !relais_mapping_has_outbound(fresh[i])) {
            relais_errlist_add(&errs, cc->mapping_path, 0, "no outbound: section, which sink '%s' needs", cc->name);
            bad = 1;
        }
    }
    if (!bad) {
        size_t want = 0;
        for (size_t i = 0; i < cfg->n_connectors; i++) if (fresh[i]) want++;
        relais_mapping **r = realloc(h->retired, (h->n_retired + want + 1) * sizeof *r);
        if (!r) {
            relais_errlist_add(&errs, NULL, 0, "out of memory");
            bad = 1;
        } else {
            h->retired = r;
        }
    }
    if (bad) {
        size_t off = 0;
        if (errstr && errlen) errstr[0] = '\0';
        for (size_t k = 0; errstr && k < errs.count && off + 1 < errlen; k++) {
            int w = snprintf(errstr + off, errlen - off, "%s%s", k ? "\n" : "", errs.msgs[k]);
            if (w < 0) break;
            off += (size_t)w;
        }
        for (size_t i = 0; fresh && i < cfg->n_connectors; i++) relais_mapping_destroy(fresh[i]);
        free(fresh);
        relais_tokens_destroy(tokens);
        relais_errlist_free(&errs);
        pthread_mutex_unlock(&h->reload_mu);
        relais_logf(RELAIS_LOG_WARN, "hub", "mappings not reloaded: %s", errstr ? errstr : "errors");
        return -1;
    }
    for (size_t i = 0; i < cfg->n_connectors; i++) {
        if (!fresh[i]) continue;
        relais_conn_cfg *cc = &cfg->connectors[i];
        relais_instance *inst = relais_hub_instance(h, cc->name);
        h->retired[h->n_retired++] = cc->mapping;
        cc->mapping = fresh[i];
        if (inst) __atomic_store_n(&inst->mapping, (const relais_mapping *)fresh[i], __ATOMIC_RELEASE);
        n++;
    }
    free(fresh);
    relais_errlist_free(&errs);
    if (tokens) {
        size_t nt = relais_admin_set_tokens(h->admin, tokens);
        relais_logf(RELAIS_LOG_INFO, "admin", "%zu admin token(s) reloaded from %s", nt, cfg->hub.admin_tokens);
    }
    pthread_mutex_unlock(&h->reload_mu);
    relais_logf(RELAIS_LOG_INFO, "hub", "%d mapping(s) reloaded", n);
    return n;
}

void relais_hub_request_reload(relais_hub *h)
{
    atomic_store(&h->reload_requested, 1);
}

int relais_hub_pause(relais_hub *h, const char *name, int pause, const char *who, char *errstr, size_t errlen)
{
    size_t i;
    for (i = 0; i < h->n_insts && strcmp(h->insts[i]->name, name) != 0; i++) {}
    if (i == h->n_insts) {
        snprintf(errstr, errlen, "no connector instance named '%s'", name);
        return -1;
    }
    pause = pause != 0;
    pause_state *ps = &h->ps[i];
    dest *ds = find_dest(h, name);
    pthread_mutex_lock(&h->pause_mu);
    if (atomic_load(&ps->on) == pause) {
        pthread_mutex_unlock(&h->pause_mu);
        return 1;
    }
    char **np = realloc(h->pausers, (h->n_pausers + 1) * sizeof *np);
    char *by = np ? strdup(who ? who : "?") : NULL;
    if (np) h->pausers = np;
    if (!by) {
        pthread_mutex_unlock(&h->pause_mu);
        snprintf(errstr, errlen, "out of memory");
        return -1;
    }
    h->pausers[h->n_pausers++] = by;
    /* journaled first: a pause or resume the trail does not show does not happen */
    char err[512];
    if (relais_journal_note(h->j, NULL, pause ? "paused" : "resumed", name, by, err, sizeof err) != 0) {
        pthread_mutex_unlock(&h->pause_mu);
        snprintf(errstr, errlen, "the journal cannot record the %s now (%s); nothing changed",
                 pause ? "pause" : "resume", err);
        return -1;
    }
    held_list noted = { 0 };
    dq_node *list = NULL;
    pthread_mutex_lock(&h->dq_mu);
    atomic_store(&ps->on, pause);
    if (pause) ps->by = by;
    if (ds && pause) {
        /* what is queued is held; attempts under way finish */
        list = detach_queue(h, ds);
        for (dq_node *nd = list; nd; nd = nd->next) {
            const char *eid = relais_event_id(nd->d.ev);
            if (held_push(&ds->held, nd->d.id, eid, ds->inst->name, by) == 0)
                held_push(&noted, nd->d.id, eid, ds->inst->name, by);
        }
    } else if (ds) {
        if (held_move(&ds->unheld, &ds->held, by) != 0)
            relais_logf(RELAIS_LOG_ERROR, name, "out of memory: %zu held deliveries are claimed again only "
                        "once this hub has stopped", ds->held.n);
        ds->held.n = 0;
    }
    pthread_mutex_unlock(&h->dq_mu);
    relais_conn_metrics *m = relais_metrics_conn(h->metrics, name);
    if (m) atomic_store(&m->paused, pause);
    pthread_mutex_unlock(&h->pause_mu);
    journal_held(h, &noted, "paused");
    free(noted.v);
    while (list) {
        dq_node *next = list->next;
        relais_delivery_clear(&list->d);
        free(list);
        list = next;
    }
    if (ds && !pause) release_unheld(h);
    relais_logf(RELAIS_LOG_INFO, name, "%s by %s", pause ? (ds ? "paused: no new delivery attempts until resumed"
                                                                  : "paused: takes no records until resumed")
                                                            : "resumed", by);
    return 0;
}

json_t *relais_hub_connectors(relais_hub *h)
{
    json_t *a = json_array();
    int64_t now = relais_mono_us();
    pthread_mutex_lock(&h->dq_mu);
    for (size_t i = 0; a && i < h->n_insts; i++) {
        const relais_instance *inst = h->insts[i];
        int on = atomic_load(&h->ps[i].on);
        json_t *o = json_pack("{s:s, s:s, s:s, s:b}", "name", inst->name, "type", inst->desc->name,
                              "mode", inst->mode & RELAIS_MODE_SINK ? "sink" : "source", "paused", on);
        if (o && on) json_object_set_new(o, "paused_by", json_string(h->ps[i].by ? h->ps[i].by : "?"));
        const dest *ds = find_dest(h, inst->name);
        if (o && ds) {
            json_object_set_new(o, "circuit", json_string(!ds->open_until ? "closed"
                                                          : ds->open_until > now ? "open" : "half-open"));
            json_object_set_new(o, "queued", json_integer((json_int_t)ds->queued));
            json_object_set_new(o, "held", json_integer((json_int_t)(ds->held.n + ds->unheld.n)));
        }
        if (!o || json_array_append_new(a, o) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    pthread_mutex_unlock(&h->dq_mu);
    return a;
}

int relais_hub_run(relais_hub *h)
{
    while (!atomic_load(&h->stop_requested)) {
        if (atomic_exchange(&h->reload_requested, 0)) {
            char err[2048];
            relais_hub_reload_mappings(h, err, sizeof err);
        }
        for (size_t i = 0; i < h->n_insts; i++) {
            relais_instance *inst = h->insts[i];
            if ((inst->mode & RELAIS_MODE_SOURCE) && inst->desc->receive && op_accepting(h, inst))
                inst->desc->receive(inst->ctx);
        }
        for (int k = 0; k < 10 && !atomic_load(&h->stop_requested); k++) sleep_ms(20);
    }
    return 0;
}

void relais_hub_request_stop(relais_hub *h)
{
    atomic_store(&h->stop_requested, 1);
}

void relais_hub_stop(relais_hub *h)
{
    if (!h || h->stopped) return;
    h->stopped = 1;
    atomic_store(&h->stop_requested, 1);
    /* 1. sources stop accepting */
    for (size_t i = 0; i < h->n_insts; i++)
        if ((h->insts[i]->mode & RELAIS_MODE_SOURCE) && h->insts[i]->desc->stop && h->insts[i]->ctx)
            h->insts[i]->desc->stop(h->insts[i]->ctx);
    if (h->threads_started) {
        /* 2. routing and scheduling stop (unstored offsets come again later) */
        atomic_store(&h->bus_stop, 1);
        atomic_store(&h->sched_stop, 1);
        pthread_join(h->bus_thread, NULL);
        pthread_join(h->sched_thread, NULL);
        /* 3. deliveries in flight finish; queued ones are handed back below */
        pthread_mutex_lock(&h->dq_mu);
        h->dq_stop = 1;
        pthread_cond_broadcast(&h->dq_cv);
        pthread_mutex_unlock(&h->dq_mu);
        for (size_t i = 0; i < h->n_workers; i++) pthread_join(h->workers[i], NULL);
        h->threads_started = 0;
    }
    /* deliveries still queued: give their leases back so that any hub (this
     * one restarted, or another) claims them at once */
    size_t nq = 0;
    for (size_t i = 0; i < h->n_dests; i++)
        nq += h->dests[i].queued + h->dests[i].held.n + h->dests[i].unheld.n;
    int64_t *ids = nq ? calloc(nq, sizeof *ids) : NULL;
    size_t k = 0;
    for (size_t i = 0; i < h->n_dests; i++) {
        /* held for a pause: the pause ends with this process */
        for (size_t x = 0; ids && x < h->dests[i].held.n; x++) ids[k++] = h->dests[i].held.v[x].id;
        for (size_t x = 0; ids && x < h->dests[i].unheld.n; x++) ids[k++] = h->dests[i].unheld.v[x].id;
        h->dests[i].held.n = h->dests[i].unheld.n = 0;
        dq_node *nd = h->dests[i].head;
        while (nd) {
            dq_node *next = nd->next;
            if (ids && k < nq) ids[k++] = nd->d.id;
            relais_delivery_clear(&nd->d);
            free(nd);
            nd = next;
        }
        h->dests[i].head = h->dests[i].tail = NULL;
        h->dests[i].queued = 0;
    }
    if (k > 0) {
        char err[256];
        if (relais_journal_release(h->j, h->owner, ids, k, err, sizeof err) == 0)
            relais_logf(RELAIS_LOG_INFO, "hub", "handed back %zu queued deliver%s", k, k == 1 ? "y" : "ies");
        else
            relais_logf(RELAIS_LOG_WARN, "hub", "could not hand back %zu queued deliveries (%s); "
                        "they are claimed again when their lease expires", k, err);
    }
    free(ids);
    /* 4. sinks stop */
    for (size_t i = 0; i < h->n_insts; i++)
        if ((h->insts[i]->mode & RELAIS_MODE_SINK) && h->insts[i]->desc->stop && h->insts[i]->ctx)
            h->insts[i]->desc->stop(h->insts[i]->ctx);
    relais_admin_stop(h->admin);
    h->admin = NULL;
    /* 5. the bus commits offsets and flushes (delivery reports reach the journal) */
    relais_bus_destroy(h->bus);
    h->bus = NULL;
    relais_journal_close(h->j);
    h->j = NULL;
}

void relais_hub_destroy(relais_hub *h)
{
    if (!h) return;
    relais_hub_stop(h);
    for (size_t i = 0; i < h->n_insts; i++) {
        relais_instance *inst = h->insts[i];
        if (inst->desc->destroy && inst->ctx) inst->desc->destroy(inst->ctx);
        relais_instance_destroy(inst);
    }
    free(h->insts);
    for (size_t i = 0; i < h->n_dests; i++) {
        free(h->dests[i].held.v);
        free(h->dests[i].unheld.v);
    }
    free(h->dests);
    free(h->ps);
    for (size_t i = 0; i < h->n_pausers; i++) free(h->pausers[i]);
    free(h->pausers);
    pthread_mutex_destroy(&h->pause_mu);
    free(h->workers);
    relais_router_destroy(h->router);
    relais_metrics_destroy(h->metrics);
    pthread_mutex_destroy(&h->dq_mu);
    for (size_t i = 0; i < h->n_retired; i++) relais_mapping_destroy(h->retired[i]);
    free(h->retired);
    pthread_mutex_destroy(&h->reload_mu);
    pthread_cond_destroy(&h->dq_cv);
    free(h);
}

relais_bus *relais_hub_bus(relais_hub *h) { return h->bus; }
const relais_config *relais_hub_config(const relais_hub *h) { return h->cfg; }
relais_journal *relais_hub_journal(relais_hub *h) { return h->j; }
relais_metrics *relais_hub_metrics(relais_hub *h) { return h->metrics; }
const char *relais_hub_admin_url(relais_hub *h) { return h->admin_url[0] ? h->admin_url : NULL; }

relais_instance *relais_hub_instance(relais_hub *h, const char *name)
{
    for (size_t i = 0; i < h->n_insts; i++)
        if (strcmp(h->insts[i]->name, name) == 0) return h->insts[i];
    return NULL;
}
