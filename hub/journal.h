/*
 * journal.h - the PostgreSQL journal: every step of every event, the inbox
 * (dedupe by source and source record id), the deliveries (the durable retry
 * queue), the dead-letter queue and the cross-reference store.
 *
 * Threads: two writer "lanes", each a queue, a thread and its own
 * connection: the blocking calls (ingest, reject, route) go to one, the async
 * ones (attempt, step) to the other, so a blocking call never waits behind a
 * batch of outcomes. Each writer takes all the jobs queued on its lane (up
 * to batch_max, waiting up to batch_wait for more), runs them in ONE
 * transaction and commits (group commit: no per-event commit on the hot
 * path), then wakes the callers of the blocking calls. The read-side calls
 * (trace, dlq, replay, claim, unrouted, xref_get) use a third connection
 * guarded by a mutex.
 * When PostgreSQL is down, blocking calls return -1 with
 * RELAIS_SUBMIT_UNAVAILABLE results, async jobs stay queued and are retried
 * (bounded queue), and both writers reconnect with backoff.
 *
 * Schema: see hub/migrations.c (versioned, applied at open under an advisory lock).
 *   events(id uuid pk, tenant, source, record_id, type, subject, correlation_id,
 *          received_at, body jsonb, body_sha256, purged_at)
 *          unique(record_id, source); insert-only (retention may purge body)
 *   unrouted(event_id pk, received_at)  events not routed yet (deleted by routing)
 *   steps(id bigserial, at, event_id, step, destination, attempt, status, detail,
 *         stream, seq, prev_hash, hash, mac)     the chain (hub/audit.h): unique(stream, seq)
 *   rejections(id bigserial, at, source, record_id, location, reason, raw,
 *              stream, seq, raw_sha256)          (stream, seq) of its "rejected" step
 *   deliveries(id bigserial, event_id, destination, route, status pending|delivered|dead,
 *              attempts, next_attempt_at, lease_owner, lease_until,
 *              last_status, last_detail, updated_at)     unique(event_id, destination)
 *   xref(tenant, entity, canonical_id, package, local_id, updated_at)
 *          pk(tenant, entity, canonical_id, package)
 *
 * Step names (stable; the trace shows them): received, duplicate, rejected,
 * published, routed, unrouted, attempt, delivered, retry_scheduled,
 * dead_lettered, replayed, discarded, paused, resumed, purged,
 * personal_data_read. Every step row is signed (hub/audit.h).
 */
#ifndef RELAIS_JOURNAL_H
#define RELAIS_JOURNAL_H
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "relais/connector.h"

typedef struct relais_journal relais_journal;

typedef struct relais_journal_opts {
    const char *conninfo;
    long        batch_max;       /* default 1000 */
    long        batch_wait_ms;   /* 0: default (2); negative: no wait */
    int         writer;          /* 1: start the writer thread (the hub); 0: read side only (CLI) */
    long        queue_max;       /* most queued async jobs before blocking calls fail; default 100000 */
    /* The tamper-evident trail (hub/audit.h, docs/SECURITY.md). Every step
     * row is chained and MACed with this key (copied); required with a
     * writer. The read side needs it only to write steps (replay, discard). */
    const unsigned char *audit_key;
    size_t      audit_keylen;
    const char *audit_checkpoints;   /* append-only checkpoint file; NULL: none */
    const char *audit_name;          /* first part of stream names (the hub's owner name) */
    long        audit_checkpoint_ms; /* default 10000 */
    long        audit_stream_max;    /* entries before a writer starts a new stream; default 100000 */
} relais_journal_opts;

/* Connect, apply migrations, start the writer when asked. */
relais_journal *relais_journal_open(const relais_journal_opts *o, char *errstr, size_t errlen);
/* Drain the queue (bounded wait), stop the writer, close connections. NULL-safe. */
void relais_journal_close(relais_journal *j);
/* 1 when the last transaction or connection check of BOTH writers succeeded
 * (read only: the read connection's last query). */
int  relais_journal_healthy(relais_journal *j);
/* Counters of the writers since open (both lanes added up): transactions
 * committed and jobs they carried (group commit: batches is far below jobs
 * under load). NULL-safe outs. */
void relais_journal_stats(relais_journal *j, uint64_t *batches, uint64_t *jobs);
/* Blocking calls (ingest, reject, route) give up after ms (default 30000). */
void relais_journal_set_block_timeout(relais_journal *j, long ms);

/* ---- write side (via the writer threads) ---- */

/* Journal n new events (inbox dedupe on (source instance, record id)).
 * Steps "received" or "duplicate". Blocks until committed.
 * out[i].status: ACCEPTED (event_id = evs[i]'s id), DUPLICATE (event_id = the
 * first event's id), REJECTED (PostgreSQL refused that event, e.g. \u0000 in
 * jsonb; reason says why, rejections row written) or UNAVAILABLE. Returns -1
 * when the journal could not commit. */
int relais_journal_ingest(relais_journal *j, relais_event *const *evs, size_t n,
                          relais_submit_result *out);

/* Journal an input that could not become an event: rejections row + step
 * "rejected" (event_id NULL; detail = where + reason). Blocks until committed. */
int relais_journal_reject(relais_journal *j, const char *source, const char *record_id,
                          const char *where, const char *reason, const char *raw, size_t rawlen);

/* What the router decided for one event. */
typedef struct relais_route_item {
    relais_event      *ev;
    const char *const *dests;     /* ndest sink instance names */
    const char *const *routes;    /* ndest route names, parallel to dests */
    size_t             ndest;
    /* NULL, or ndest flags parallel to dests: 1 for a destination that
     * delivers in order per subject. Such deliveries are created unleased
     * and not returned: relais_journal_claim_due hands them out one subject
     * at a time (no earlier delivery of the subject pending or dead). */
    const unsigned char *ordered;
} relais_route_item;

/* A delivery to attempt: one event to one destination. */
typedef struct relais_delivery {
    int64_t       id;
    relais_event *ev;            /* owned reference */
    char         *destination;
    char         *tenant;
    int           attempts;      /* attempts already made */
    char         *local_id;      /* xref of the event's subject at this destination, or NULL */
} relais_delivery;

/* Create the delivery rows (ON CONFLICT DO NOTHING: an event routed twice is
 * delivered once), take the events out of `unrouted`, write steps "routed" (one per
 * destination, detail = route name) or "unrouted". Blocks until committed.
 * *out receives the rows actually created, leased to `owner` for lease_ms,
 * with the xref local id filled. */
int relais_journal_route(relais_journal *j, const relais_route_item *items, size_t n,
                         const char *owner, long lease_ms,
                         relais_delivery **out, size_t *nout);
/* Frees the contents of d[0..n) and then the array d itself. */
void relais_deliveries_free(relais_delivery *d, size_t n);
/* Frees the contents of ONE delivery (not the struct): the strings are plain
 * malloc()/strdup() allocations and ev a counted reference. Leaves d zeroed. */
static inline void relais_delivery_clear(relais_delivery *d)
{
    relais_event_unref(d->ev);
    free(d->destination);
    free(d->tenant);
    free(d->local_id);
    memset(d, 0, sizeof *d);
}

/* Outcome of one attempt (async: queued, committed with the next batch).
 *   OK           -> delivered; steps attempt + delivered; xref upsert when ans->local_id[0]
 *   RETRY, !dead -> pending, attempts+1, next_attempt_at = now + retry_in_ms, lease released;
 *                   steps attempt + retry_scheduled
 *   dead         -> dead (dead-letter); steps attempt + dead_lettered
 * `started_us`/`ended_us`: wall-clock bounds of the attempt, the attempt step's time. */
int relais_journal_attempt(relais_journal *j, const relais_delivery *d, relais_verdict v,
                           const relais_answer *ans, long retry_in_ms, int dead,
                           int64_t started_us, int64_t ended_us);

/* A free-form step (async), e.g. "published" from the producer's delivery report. */
int relais_journal_step(relais_journal *j, const char *event_id, const char *step,
                        const char *destination, int status, const char *detail, int64_t at_us);

/* Give back the leases `owner` holds on pending deliveries ids[0..n) (a hub
 * stopping with deliveries still queued), so that any hub claims them at
 * once instead of when the lease expires. Read-side connection; blocking. */
int relais_journal_release(relais_journal *j, const char *owner, const int64_t *ids, size_t n,
                           char *errstr, size_t errlen);
/* Hand deliveries back like relais_journal_release, and make them due only
 * in delay_ms (a destination's circuit breaker is open): no attempt is
 * counted. delay_ms < 0: keep their due time (that is, release). */
int relais_journal_postpone(relais_journal *j, const char *owner, const int64_t *ids, size_t n,
                            long delay_ms, char *errstr, size_t errlen);

/* ---- read side ---- */

/* Lease up to max due deliveries (pending, next_attempt_at <= now, lease free
 * or expired) to owner for lease_ms (FOR UPDATE SKIP LOCKED: several hubs can
 * claim concurrently). */
int relais_journal_claim_due(relais_journal *j, const char *owner, long lease_ms, size_t max,
                             relais_delivery **out, size_t *nout);

/* Tell the journal which package each destination instance belongs to
 * (the `package:` key): cross-references are kept per package. Call before
 * the first route; copies the strings. Destinations not listed are their
 * own package. 0, or -1 out of memory. */
int relais_journal_set_packages(relais_journal *j, const char *const *names,
                                const char *const *packages, size_t n);

/* Reverse cross-reference: the canonical id of `entity` to which `package`
 * gave `local_id`. 0 found, 1 none, -1 error. */
int relais_journal_xref_canonical(relais_journal *j, const char *tenant, const char *entity,
                                  const char *package, const char *local_id, char *out, size_t outlen);
/* Upsert one cross-reference now (read connection, autocommit). 0 / -1. */
int relais_journal_xref_put(relais_journal *j, const char *tenant, const char *entity,
                            const char *canonical_id, const char *package, const char *local_id);

/* Durable state of a package (connector.h relais_state_*): 0 / -1. */
int relais_journal_state_put(relais_journal *j, const char *tenant, const char *package,
                             const char *key, const json_t *value);
/* New reference or NULL (*err 0: unknown key; 1: error). */
json_t *relais_journal_state_get(relais_journal *j, const char *tenant, const char *package,
                                 const char *key, int *err);
/* [{"key","value","updated_at"}] in key order, keys starting with prefix,
 * after `after` (NULL: from the first); NULL on error. */
json_t *relais_journal_state_list(relais_journal *j, const char *tenant, const char *package,
                                  const char *prefix, const char *after, size_t limit);

/* Every package's state entries whose key starts with prefix, of one tenant
 * (NULL: all): [{"tenant","package","key","value","updated_at"}] in
 * (tenant, package, key) order; NULL on error. For reports (relais sla). */
json_t *relais_journal_state_scan(relais_journal *j, const char *tenant, const char *prefix,
                                  char *errstr, size_t errlen);

/* Set aside a dead delivery for good (an operator's decision: the event will
 * not be delivered to that destination): status "discarded", step
 * "discarded" with `why`. `id` as for replay. Lets the deliveries of the
 * same subject that wait behind it go, at an ordered destination. */
int relais_journal_discard(relais_journal *j, const char *id, const char *why, int *count,
                           char *errstr, size_t errlen);

/* Events journaled but never routed (to re-publish at start), oldest first. */
int relais_journal_unrouted(relais_journal *j, size_t max, relais_event ***out, size_t *nout);

/* The local id package `package` gave (tenant, entity, canonical_id); 0 found, 1 none, -1 error. */
int relais_journal_xref_get(relais_journal *j, const char *tenant, const char *entity,
                            const char *canonical_id, const char *package, char *out, size_t outlen);

/* Everything known about `id`, which may be an event id, a correlation id or
 * a source record id; or an entity's story when `id` is a canonical id
 * ("request/wcs-signalement-12") or a local id a package gave one (a GRC
 * form id, through xref): the events of that subject, the events whose
 * data.origin_request is it (its work orders), and those sharing their
 * correlation ids:
 * {"query": id, "events": [{"id","type","source","subject","tenant","correlationid",
 *   "recordid","received_at", "steps":[{"at","step","destination","attempt","status","detail"}],
 *   "deliveries":[{"id","destination","status","attempts","last_status","last_detail"}]}],
 *  "rejections":[{"at","source","record_id","location","reason"}]}
 * Steps in time order. NULL with errstr on error; "events" empty when unknown. */
json_t *relais_journal_trace(relais_journal *j, const char *id, char *errstr, size_t errlen);

/* A step written at once on the read connection, signed in a stream of its
 * own (hub/audit.h) with its checkpoint: what an operator or a job did
 * outside the writer lanes ("purged", "personal_data_read"...). event_id:
 * NULL or a UUID. Needs the audit key. 0, or -1 with errstr. */
int relais_journal_note(relais_journal *j, const char *event_id, const char *step, const char *destination,
                        const char *detail, char *errstr, size_t errlen);

/* A person's data, for a subject access request: the events whose subject is
 * `id`, or whose data holds `id` as a value anywhere (an email, a phone
 * number, a canonical person id person/...), or the canonical id a package
 * knows under the local id `id`; and the packages those events were
 * delivered to.
 * {"query", "events":[{"id","type","source","subject","tenant","received_at"}],
 *  "packages":[{"destination","events","first","last"}]}, oldest first.
 * A full scan of the events' data: for occasional requests, not a hot path. */
json_t *relais_journal_person(relais_journal *j, const char *id, char *errstr, size_t errlen);

/* Dead-lettered deliveries, newest first:
 * [{"id","event_id","type","destination","attempts","last_status","last_detail","updated_at"}] */
json_t *relais_journal_dlq_list(relais_journal *j, size_t limit, char *errstr, size_t errlen);

/* Put dead deliveries back: `id` is a delivery id (digits) or an event id
 * (all of its dead deliveries). status pending, attempts 0, due now, step
 * "replayed". *count = rows replayed. -1 with errstr on error; 0 and count 0
 * when nothing matched. */
int relais_journal_replay(relais_journal *j, const char *id, int *count, char *errstr, size_t errlen);
#endif
