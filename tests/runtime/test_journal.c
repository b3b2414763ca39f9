/*
 * test_journal.c - the PostgreSQL journal (hub/journal.c, hub/migrations.c)
 * against the real throw-away PostgreSQL (RELAIS_TEST_PGHOST/PGPORT): a
 * fresh database per test. Migrations (once, idempotent, two hubs at once),
 * inbox dedupe, group commit under concurrency, routing, attempts and their
 * transitions, cross-references, claims with leases and SKIP LOCKED, replay,
 * trace, rejections, PostgreSQL unreachable at open, killed connections, a
 * longer outage with a bounded async queue, blocking-call timeout, a value
 * PostgreSQL refuses, draining at close, and the two writer lanes: blocking
 * calls commit while the async lane waits for a lock (and a route sees the
 * local id of an outcome not committed yet), outcomes lock delivery rows in
 * id order (two hubs, opposite orders, no deadlock), a deadlock lane B loses
 * is retried.
 *
 * Threads: the cmocka thread runs every assertion. Worker threads (concurrent
 * ingest, concurrent open, concurrent claim, a route racing an ingest) only
 * record what they saw in their own struct; the main thread checks it after
 * pthread_join.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libpq-fe.h>
#include "testsupport.h"
#include "journal.h"
#include "migrations.h"
#include "event_int.h"

/* ---- helpers --------------------------------------------------------------------- */

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ts_fresh_database returns a static buffer: keep a copy per test. */
static char *fresh_db(const char *name)
{
    char *ci = strdup(ts_fresh_database(name));
    assert_non_null(ci);
    return ci;
}

static void db_name(const char *conninfo, char *out, size_t len)
{
    const char *p = strstr(conninfo, "dbname=");
    assert_non_null(p);
    p += 7;
    size_t n = strcspn(p, " ");
    snprintf(out, len, "%.*s", (int)n, p);
}

static const char *admin_conninfo(void)
{
    static char buf[512];
    const char *host = getenv("RELAIS_TEST_PGHOST");
    const char *port = getenv("RELAIS_TEST_PGPORT");
    snprintf(buf, sizeof buf, "host=%s port=%s dbname=postgres user=postgres", host ? host : "",
             port && *port ? port : "5432");
    return buf;
}

/* A fixed test key: the trail is always on (hub/audit.h). */
static const unsigned char TEST_KEY[32] = "relais-test-audit-key-0123456789";

static relais_journal *open_j(const char *ci, int writer, long batch_wait_ms, long queue_max)
{
    relais_journal_opts o = { .conninfo = ci, .batch_max = 1000, .batch_wait_ms = batch_wait_ms, .writer = writer,
                              .queue_max = queue_max, .audit_key = TEST_KEY, .audit_keylen = sizeof TEST_KEY };
    char err[512] = "";
    relais_journal *j = relais_journal_open(&o, err, sizeof err);
    if (!j) fail_msg("open: %s", err);
    return j;
}

static relais_event *mk_event_full(const char *type, const char *subject, const char *record_id,
                                   const char *instance, const char *corr, const char *payload_key,
                                   const char *payload)
{
    json_t *data = json_object();
    json_object_set_new(data, payload_key ? payload_key : "n", payload ? json_string(payload) : json_integer(1));
    relais_record rec = { record_id, type, subject, corr, NULL, "ville", data, NULL, 0 };
    char err[256];
    relais_event *ev = relais_event_build(&rec, instance, "ville", err, sizeof err);
    json_decref(data);
    if (!ev) fail_msg("event build: %s", err);
    return ev;
}

static relais_event *mk_event(const char *subject, const char *record_id)
{
    return mk_event_full("fr.relais.grc.request.created", subject, record_id, "webhook", NULL, NULL, NULL);
}

static long sqll(const char *ci, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static long sqll(const char *ci, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return ts_sql_long(ci, sql);
}

static char *sqls(const char *ci, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *sqls(const char *ci, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    char *s = ts_sql(ci, sql);
    if (!s) fail_msg("SQL failed: %s", sql);
    return s;
}

/* Poll until the query's first value equals want (async jobs commit later). */
static void wait_long(const char *ci, long want, long timeout_ms, const char *sql)
{
    long long end = mono_ms() + timeout_ms;
    long got = -12345;
    while (mono_ms() < end) {
        char *s = ts_sql(ci, sql);
        if (s) {
            got = strtol(s, NULL, 10);
            free(s);
            if (got == want) return;
        }
        ts_sleep_ms(20);
    }
    fail_msg("timed out waiting for %ld (last %ld): %s", want, got, sql);
}

static void ingest_ok(relais_journal *j, relais_event *ev)
{
    relais_submit_result r;
    assert_int_equal(relais_journal_ingest(j, &ev, 1, &r), 0);
    assert_int_equal(r.status, RELAIS_SUBMIT_ACCEPTED);
    assert_string_equal(r.event_id, relais_event_id(ev));
}

/* Route one event to dests; returns the deliveries created. */
static relais_delivery *route1(relais_journal *j, relais_event *ev, const char *const *dests,
                               const char *const *routes, size_t nd, long lease_ms, size_t *nout)
{
    relais_route_item it = { ev, dests, routes, nd, NULL };
    relais_delivery *d = NULL;
    assert_int_equal(relais_journal_route(j, &it, 1, "hub-test", lease_ms, &d, nout), 0);
    return d;
}

static relais_answer answer(int status, const char *detail, const char *local_id)
{
    relais_answer a;
    memset(&a, 0, sizeof a);
    a.status = status;
    snprintf(a.detail, sizeof a.detail, "%s", detail ? detail : "");
    snprintf(a.local_id, sizeof a.local_id, "%s", local_id ? local_id : "");
    return a;
}

static int is_rfc3339_us(const char *s)
{
    /* 2026-11-25T19:06:30.123456Z */
    if (!s || strlen(s) != 27) return 0;
    return s[4] == '-' && s[10] == 'T' && s[19] == '.' && s[26] == 'Z';
}

/* ---- migrations and open ---------------------------------------------------------------- */

static void test_migrations_once_and_idempotent(void **state)
{
    (void)state;
    char *ci = fresh_db("jmig");
    relais_journal *j = open_j(ci, 1, 2, 0);
    relais_journal_close(j);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM relais_schema_version"), relais_migrations_latest());
    assert_int_equal(sqll(ci, "SELECT max(version) FROM relais_schema_version"), relais_migrations_latest());
    char *applied1 = sqls(ci, "SELECT applied_at::text FROM relais_schema_version");
    char *def;
    assert_int_equal(sqll(ci, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
                              " AND table_name IN ('events','steps','rejections','deliveries','xref','unrouted')"), 6);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM pg_indexes WHERE indexname IN ('events_correlation_id_idx',"
                              "'events_record_source_key','unrouted_pkey','steps_event_idx',"
                              "'deliveries_due_idx','xref_local_idx')"), 6);
    /* migration 2: events are insert-only (no routed_at to update) */
    assert_int_equal(sqll(ci, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'events'"
                              " AND column_name = 'routed_at'"), 0);
    /* the dedupe key leads with record_id so that it serves the trace by record id */
    def = sqls(ci, "SELECT indexdef FROM pg_indexes WHERE indexname = 'events_record_source_key'");
    assert_non_null(strstr(def, "UNIQUE INDEX events_record_source_key ON public.events USING btree (record_id, source)"));
    free(def);
    /* the due index is partial on pending rows */
    def = sqls(ci, "SELECT indexdef FROM pg_indexes WHERE indexname = 'deliveries_due_idx'");
    assert_non_null(strstr(def, "WHERE (status = 'pending'::text)"));
    free(def);
    /* body is jsonb */
    char *ty = sqls(ci, "SELECT data_type FROM information_schema.columns WHERE table_name = 'events'"
                        " AND column_name = 'body'");
    assert_string_equal(ty, "jsonb");
    free(ty);

    /* open again (writer and read-only): nothing re-applied */
    j = open_j(ci, 1, 2, 0);
    relais_journal_close(j);
    j = open_j(ci, 0, 2, 0);
    relais_journal_close(j);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM relais_schema_version"), relais_migrations_latest());
    char *applied2 = sqls(ci, "SELECT applied_at::text FROM relais_schema_version");
    assert_string_equal(applied1, applied2);
    free(applied1);
    free(applied2);

    /* a database newer than this build is refused with a clear message */
    free(sqls(ci, "INSERT INTO relais_schema_version (version) VALUES (9999)"));
    relais_journal_opts o = { .conninfo = ci };
    char err[512] = "";
    assert_null(relais_journal_open(&o, err, sizeof err));
    assert_non_null(strstr(err, "schema version 9999"));
    free(ci);
}

typedef struct open_arg { const char *ci; int ok; char err[512]; } open_arg;

static void *open_thread(void *p)
{
    open_arg *a = p;
    relais_journal_opts o = { .conninfo = a->ci, .writer = 1, .audit_key = TEST_KEY, .audit_keylen = sizeof TEST_KEY };
    relais_journal *j = relais_journal_open(&o, a->err, sizeof a->err);
    a->ok = j != NULL;
    relais_journal_close(j);
    return NULL;
}

static void test_migrations_two_hubs_at_once(void **state)
{
    (void)state;
    char *ci = fresh_db("jmig2");
    open_arg a[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        memset(&a[i], 0, sizeof a[i]);
        a[i].ci = ci;
        pthread_create(&t[i], NULL, open_thread, &a[i]);
    }
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++) {
        if (!a[i].ok) fail_msg("open %d failed: %s", i, a[i].err);
    }
    assert_int_equal(sqll(ci, "SELECT count(*) FROM relais_schema_version"), relais_migrations_latest());
    free(ci);
}

static void test_open_unreachable(void **state)
{
    (void)state;
    int port = ts_free_port();
    char ci[256];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d dbname=relais user=relais password=s3cret connect_timeout=3", port);
    relais_journal_opts o = { .conninfo = ci, .writer = 1, .audit_key = TEST_KEY, .audit_keylen = sizeof TEST_KEY };
    char err[512] = "";
    long long t0 = mono_ms();
    relais_journal *j = relais_journal_open(&o, err, sizeof err);
    assert_null(j);
    assert_true(mono_ms() - t0 < 5000);
    char want[64];
    snprintf(want, sizeof want, "port=%d", port);
    assert_non_null(strstr(err, "cannot connect to PostgreSQL"));
    assert_non_null(strstr(err, "host=127.0.0.1"));
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, "dbname=relais"));
    assert_null(strstr(err, "s3cret"));
    fprintf(stderr, "open error: %s\n", err);
}

/* ---- ingest ------------------------------------------------------------------------------ */

static void test_ingest_new(void **state)
{
    (void)state;
    char *ci = fresh_db("jing");
    relais_journal *j = open_j(ci, 1, 2, 0);
    relais_event *evs[3] = { mk_event("request/1", "R1"), mk_event("request/2", "R2"), mk_event(NULL, NULL) };
    relais_submit_result res[3];
    assert_int_equal(relais_journal_ingest(j, evs, 3, res), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(res[i].status, RELAIS_SUBMIT_ACCEPTED);
        assert_string_equal(res[i].event_id, relais_event_id(evs[i]));
    }
    assert_int_equal(sqll(ci, "SELECT count(*) FROM events"), 3);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE step = 'received'"), 3);
    char *v = sqls(ci, "SELECT body->>'id' = id::text AND source = 'webhook' AND tenant = 'ville'"
                       " AND record_id = 'R1' AND subject = 'request/1' AND correlation_id = id::text"
                       " AND type = 'fr.relais.grc.request.created'"
                       " AND EXISTS (SELECT 1 FROM unrouted u WHERE u.event_id = events.id)"
                       " FROM events WHERE id = '%s'", relais_event_id(evs[0]));
    assert_string_equal(v, "t");
    free(v);
    /* received_at and the step time are the hub's clock, with microseconds */
    assert_int_equal(sqll(ci, "SELECT count(*) FROM events e JOIN steps s ON s.event_id = e.id"
                              " WHERE s.at = e.received_at AND s.step = 'received'"), 3);
    /* no record id: the SHA-256 of the data is the dedupe key */
    v = sqls(ci, "SELECT length(record_id) FROM events WHERE id = '%s'", relais_event_id(evs[2]));
    assert_string_equal(v, "64");
    free(v);
    for (int i = 0; i < 3; i++) relais_event_unref(evs[i]);
    relais_journal_close(j);
    free(ci);
}

static void test_ingest_duplicates(void **state)
{
    (void)state;
    char *ci = fresh_db("jdup");
    relais_journal *j = open_j(ci, 1, 2, 0);
    /* within one batch: e1 and e2 have the same (source, record id) */
    relais_event *e1 = mk_event("request/1", "R1");
    relais_event *e2 = mk_event("request/1", "R1");
    relais_event *e3 = mk_event("request/2", "R2");
    relais_event *b1[3] = { e1, e2, e3 };
    relais_submit_result r1[3];
    assert_int_equal(relais_journal_ingest(j, b1, 3, r1), 0);
    assert_int_equal(r1[0].status, RELAIS_SUBMIT_ACCEPTED);
    assert_string_equal(r1[0].event_id, relais_event_id(e1));
    assert_int_equal(r1[1].status, RELAIS_SUBMIT_DUPLICATE);
    assert_string_equal(r1[1].event_id, relais_event_id(e1));
    assert_int_equal(r1[2].status, RELAIS_SUBMIT_ACCEPTED);

    /* across calls: the same record again, and the same record id from another source */
    relais_event *e4 = mk_event("request/1", "R1");
    relais_event *e5 = mk_event_full("fr.relais.grc.request.created", "request/1", "R1", "portail", NULL, NULL, NULL);
    relais_event *b2[2] = { e4, e5 };
    relais_submit_result r2[2];
    assert_int_equal(relais_journal_ingest(j, b2, 2, r2), 0);
    assert_int_equal(r2[0].status, RELAIS_SUBMIT_DUPLICATE);
    assert_string_equal(r2[0].event_id, relais_event_id(e1));
    assert_int_equal(r2[1].status, RELAIS_SUBMIT_ACCEPTED);
    assert_string_equal(r2[1].event_id, relais_event_id(e5));

    assert_int_equal(sqll(ci, "SELECT count(*) FROM events"), 3);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM events WHERE id IN ('%s','%s')",
                          relais_event_id(e2), relais_event_id(e4)), 0);
    /* the duplicates are journaled as steps of the first event */
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE step = 'duplicate' AND event_id = '%s'",
                          relais_event_id(e1)), 2);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE step = 'duplicate' AND detail LIKE '%%%s%%'",
                          relais_event_id(e4)), 1);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE step = 'received'"), 3);
    relais_event_unref(e1); relais_event_unref(e2); relais_event_unref(e3);
    relais_event_unref(e4); relais_event_unref(e5);
    relais_journal_close(j);
    free(ci);
}

typedef struct ingest_arg {
    relais_journal *j;
    int    thread_no;
    int    count;
    int    per_call;
    int    accepted, other, failed;
} ingest_arg;

static void *ingest_thread(void *p)
{
    ingest_arg *a = p;
    relais_event *evs[64];
    relais_submit_result res[64];
    for (int i = 0; i < a->count; i += a->per_call) {
        int k = a->per_call;
        if (i + k > a->count) k = a->count - i;
        for (int x = 0; x < k; x++) {
            char rid[64], subj[64];
            snprintf(rid, sizeof rid, "T%d-%d", a->thread_no, i + x);
            snprintf(subj, sizeof subj, "request/%d-%d", a->thread_no, i + x);
            json_t *data = json_pack("{s:i, s:s}", "n", i + x, "text", "Nid de poule rue de la Gare");
            relais_record rec = { rid, "fr.relais.grc.request.created", subj, NULL, NULL, "ville", data, NULL, 0 };
            char err[256];
            evs[x] = relais_event_build(&rec, "webhook", "ville", err, sizeof err);
            json_decref(data);
        }
        if (relais_journal_ingest(a->j, evs, (size_t)k, res) != 0) a->failed += k;
        else {
            for (int x = 0; x < k; x++) {
                if (res[x].status == RELAIS_SUBMIT_ACCEPTED) a->accepted++;
                else a->other++;
            }
        }
        for (int x = 0; x < k; x++) relais_event_unref(evs[x]);
    }
    return NULL;
}

static double run_ingest_threads(relais_journal *j, int nthreads, int count, int per_call, int base,
                                 int *accepted)
{
    ingest_arg a[8];
    pthread_t t[8];
    long long t0 = mono_ms();
    for (int i = 0; i < nthreads; i++) {
        a[i] = (ingest_arg){ j, base + i, count, per_call, 0, 0, 0 };
        pthread_create(&t[i], NULL, ingest_thread, &a[i]);
    }
    *accepted = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].failed, 0);
        assert_int_equal(a[i].other, 0);
        *accepted += a[i].accepted;
    }
    long long ms = mono_ms() - t0;
    return ms > 0 ? (double)nthreads * count * 1000.0 / (double)ms : 0;
}

static void test_ingest_concurrent_group_commit(void **state)
{
    (void)state;
    char *ci = fresh_db("jconc");
    relais_journal *j = open_j(ci, 1, 2, 0);
    uint64_t b0, j0, b1, j1;
    relais_journal_stats(j, &b0, &j0);
    /* 4 threads x 500 events, one event per call */
    int accepted;
    double rate1 = run_ingest_threads(j, 4, 500, 1, 0, &accepted);
    relais_journal_stats(j, &b1, &j1);
    assert_int_equal(accepted, 2000);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM events"), 2000);
    assert_int_equal(sqll(ci, "SELECT count(DISTINCT record_id) FROM events"), 2000);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE step = 'received'"), 2000);
    assert_int_equal(j1 - j0, 2000);                /* 2000 calls... */
    assert_true((b1 - b0) * 2 <= 2000);             /* ...in at most half as many transactions */
    fprintf(stderr, "group commit: 4 threads x 500 single-event calls: %llu transactions for 2000 events, "
            "%.0f events/s\n", (unsigned long long)(b1 - b0), rate1);

    /* the same with 25 events per call: batches of hundreds of events */
    double rate2 = run_ingest_threads(j, 4, 2500, 25, 10, &accepted);
    uint64_t b2, j2;
    relais_journal_stats(j, &b2, &j2);
    assert_int_equal(accepted, 10000);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM events"), 12000);
    assert_true((b2 - b1) * 2 <= 400);            /* 400 calls */
    fprintf(stderr, "group commit: 4 threads x 2500 events in calls of 25: %llu transactions for 10000 "
            "events, %.0f events/s (ASan build, shared 2-core machine)\n",
            (unsigned long long)(b2 - b1), rate2);
    relais_journal_close(j);
    free(ci);
}

/* ---- route, attempt, xref ------------------------------------------------------------------ */

static void test_route_once_and_unrouted(void **state)
{
    (void)state;
    char *ci = fresh_db("jroute");
    relais_journal *j = open_j(ci, 1, 2, 0);
    relais_event *e1 = mk_event("request/1", "R1");
    relais_event *e2 = mk_event("request/2", "R2");
    relais_event *e3 = mk_event("request/3", "R3");
    ingest_ok(j, e1); ingest_ok(j, e2); ingest_ok(j, e3);

    /* before routing, all three are unrouted, oldest first */
    relais_event **un = NULL;
    size_t nun = 0;
    assert_int_equal(relais_journal_unrouted(j, 10, &un, &nun), 0);
    assert_int_equal(nun, 3);
    assert_string_equal(relais_event_id(un[0]), relais_event_id(e1));
    assert_string_equal(relais_event_type(un[0]), "fr.relais.grc.request.created");
    assert_string_equal(relais_event_subject(un[0]), "request/1");
    for (size_t i = 0; i < nun; i++) relais_event_unref(un[i]);
    free(un);

    const char *dests[2] = { "sig", "atal" };
    const char *routes[2] = { "requests-to-sig", "requests-to-atal" };
    size_t n = 0;
    relais_delivery *d = route1(j, e1, dests, routes, 2, 60000, &n);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        assert_true(d[i].id > 0);
        assert_string_equal(relais_event_id(d[i].ev), relais_event_id(e1));
        assert_string_equal(d[i].tenant, "ville");
        assert_int_equal(d[i].attempts, 0);
        assert_null(d[i].local_id);
    }
    assert_true((!strcmp(d[0].destination, "sig") && !strcmp(d[1].destination, "atal")) ||
                (!strcmp(d[0].destination, "atal") && !strcmp(d[1].destination, "sig")));
    relais_deliveries_free(d, n);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM deliveries WHERE lease_owner = 'hub-test'"
                              " AND lease_until > now() + interval '50 seconds' AND status = 'pending'"), 2);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE step = 'routed' AND event_id = '%s'"
                              " AND ((destination = 'sig' AND detail = 'requests-to-sig') OR"
                              "      (destination = 'atal' AND detail = 'requests-to-atal'))",
                          relais_event_id(e1)), 2);

    /* routed again (Kafka redelivery): no new delivery, no new step */
    d = route1(j, e1, dests, routes, 2, 60000, &n);
    assert_int_equal(n, 0);
    assert_null(d);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM deliveries"), 2);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE step = 'routed'"), 2);

    /* no destination: step unrouted, and no longer in the unrouted set */
    d = route1(j, e2, NULL, NULL, 0, 60000, &n);
    assert_int_equal(n, 0);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE step = 'unrouted' AND event_id = '%s'",
                          relais_event_id(e2)), 1);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM events e"
                              " WHERE NOT EXISTS (SELECT 1 FROM unrouted u WHERE u.event_id = e.id)"), 2);

    /* only e3 is left to re-publish */
    assert_int_equal(relais_journal_unrouted(j, 10, &un, &nun), 0);
    assert_int_equal(nun, 1);
    assert_string_equal(relais_event_id(un[0]), relais_event_id(e3));
    relais_event_unref(un[0]);
    free(un);

    relais_event_unref(e1); relais_event_unref(e2); relais_event_unref(e3);
    relais_journal_close(j);
    free(ci);
}

static relais_delivery *find_dest(relais_delivery *d, size_t n, const char *dest)
{
    for (size_t i = 0; i < n; i++) if (!strcmp(d[i].destination, dest)) return &d[i];
    fail_msg("no delivery to %s", dest);
    return NULL;
}

static void test_attempt_transitions_and_xref(void **state)
{
    (void)state;
    char *ci = fresh_db("jatt");
    relais_journal *j = open_j(ci, 1, 2, 0);
    relais_event *e1 = mk_event("request/77", "R77");
    ingest_ok(j, e1);
    const char *dests[3] = { "sig", "atal", "ged" };
    size_t n = 0;
    relais_delivery *d = route1(j, e1, dests, NULL, 3, 60000, &n);
    assert_int_equal(n, 3);
    relais_delivery *sig = find_dest(d, n, "sig"), *atal = find_dest(d, n, "atal"), *ged = find_dest(d, n, "ged");

    int64_t t0 = relais_now_us();
    relais_answer a503 = answer(503, "Service Unavailable", NULL);
    assert_int_equal(relais_journal_attempt(j, sig, RELAIS_DELIVER_RETRY, &a503, 60000, 0, t0, t0 + 1500), 0);
    relais_answer a500 = answer(500, "boom", NULL);
    assert_int_equal(relais_journal_attempt(j, atal, RELAIS_DELIVER_RETRY, &a500, 0, 1, t0 + 10, t0 + 20), 0);
    relais_answer a201 = answer(201, "created", "INT-2024-42");
    assert_int_equal(relais_journal_attempt(j, ged, RELAIS_DELIVER_OK, &a201, 0, 0, t0 + 30, t0 + 40), 0);
    wait_long(ci, 6, 20000, "SELECT count(*) FROM steps WHERE step IN ('attempt','retry_scheduled',"
                           "'dead_lettered','delivered')");

    /* RETRY: pending, attempts 1, due in a minute, lease released */
    assert_int_equal(sqll(ci, "SELECT count(*) FROM deliveries WHERE id = %lld AND status = 'pending'"
                              " AND attempts = 1 AND next_attempt_at > now() + interval '50 seconds'"
                              " AND lease_owner IS NULL AND lease_until IS NULL AND last_status = 503"
                              " AND last_detail = 'Service Unavailable'", (long long)sig->id), 1);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE event_id = '%s' AND destination = 'sig'"
                              " AND ((step = 'attempt' AND status = 503 AND detail = 'Service Unavailable'"
                              "       AND attempt = 1)"
                              "   OR (step = 'retry_scheduled' AND detail = 'next attempt in 60000 ms'))",
                          relais_event_id(e1)), 2);
    /* the attempt step is at the start of the attempt, the outcome at its end */
    assert_int_equal(sqll(ci, "SELECT (extract(epoch FROM max(at) - min(at)) * 1000000)::bigint FROM steps"
                              " WHERE destination = 'sig' AND step IN ('attempt', 'retry_scheduled')"), 1500);
    /* dead */
    assert_int_equal(sqll(ci, "SELECT count(*) FROM deliveries WHERE id = %lld AND status = 'dead'"
                              " AND attempts = 1 AND last_status = 500", (long long)atal->id), 1);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE destination = 'atal'"
                              " AND step IN ('attempt','dead_lettered')"), 2);
    /* OK: delivered, xref filled */
    assert_int_equal(sqll(ci, "SELECT count(*) FROM deliveries WHERE id = %lld AND status = 'delivered'"
                              " AND attempts = 1 AND last_status = 201", (long long)ged->id), 1);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE destination = 'ged' AND step = 'delivered'"
                              " AND detail = 'local id INT-2024-42'"), 1);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM xref WHERE tenant = 'ville' AND entity = 'request'"
                              " AND canonical_id = 'request/77' AND package = 'ged' AND local_id = 'INT-2024-42'"), 1);
    char local[128] = "";
    assert_int_equal(relais_journal_xref_get(j, "ville", "request", "request/77", "ged", local, sizeof local), 0);
    assert_string_equal(local, "INT-2024-42");
    assert_int_equal(relais_journal_xref_get(j, "ville", "request", "request/77", "sig", local, sizeof local), 1);

    /* a late outcome for a delivered row does not move it back */
    assert_int_equal(relais_journal_attempt(j, ged, RELAIS_DELIVER_RETRY, &a503, 0, 0, 0, 0), 0);
    wait_long(ci, 2, 20000, "SELECT count(*) FROM steps WHERE destination = 'ged' AND step = 'attempt'");
    assert_int_equal(sqll(ci, "SELECT count(*) FROM deliveries WHERE id = %lld AND status = 'delivered'",
                          (long long)ged->id), 1);
    relais_deliveries_free(d, n);

    /* a later event about the same request: route gives the local id to ged only */
    relais_event *e2 = mk_event_full("fr.relais.grc.request.closed", "request/77", "R77-closed", "webhook",
                                     NULL, NULL, NULL);
    ingest_ok(j, e2);
    d = route1(j, e2, dests, NULL, 3, 1, &n);
    assert_int_equal(n, 3);
    assert_string_equal(find_dest(d, n, "ged")->local_id, "INT-2024-42");
    assert_null(find_dest(d, n, "sig")->local_id);
    relais_deliveries_free(d, n);
    /* and so does a claim of the same deliveries once their lease expired */
    ts_sleep_ms(20);
    relais_delivery *c = NULL;
    size_t nc = 0;
    assert_int_equal(relais_journal_claim_due(j, "hub-2", 60000, 10, &c, &nc), 0);
    assert_int_equal(nc, 3);
    relais_delivery *cg = find_dest(c, nc, "ged");
    assert_string_equal(cg->local_id, "INT-2024-42");
    assert_string_equal(relais_event_id(cg->ev), relais_event_id(e2));
    assert_string_equal(relais_event_type(cg->ev), "fr.relais.grc.request.closed");
    assert_null(find_dest(c, nc, "atal")->local_id);
    relais_deliveries_free(c, nc);

    /* the same subject under another entity kind has no xref */
    relais_event *e3 = mk_event_full("fr.relais.etatcivil.person.updated", "request/77", "P1", "webhook",
                                     NULL, NULL, NULL);
    ingest_ok(j, e3);
    d = route1(j, e3, dests, NULL, 3, 60000, &n);
    assert_null(find_dest(d, n, "ged")->local_id);
    relais_deliveries_free(d, n);

    /* two outcomes for one delivery in the same batch are applied in order
     * (a second writer that waits 300 ms to gather its batch) */
    relais_event *e4 = mk_event("request/88", "R88");
    ingest_ok(j, e4);
    d = route1(j, e4, dests, NULL, 1, 60000, &n);
    relais_journal *jw = open_j(ci, 1, 300, 0);
    relais_journal_attempt(jw, &d[0], RELAIS_DELIVER_RETRY, &a503, 0, 0, 0, 0);
    d[0].attempts = 1;
    relais_journal_attempt(jw, &d[0], RELAIS_DELIVER_OK, &a201, 0, 0, 0, 0);
    wait_long(ci, 2, 20000, "SELECT attempts FROM deliveries WHERE status = 'delivered' AND destination = 'sig'"
                           " AND last_status = 201");
    uint64_t nb, nj;
    relais_journal_stats(jw, &nb, &nj);
    assert_int_equal(nb, 1);
    assert_int_equal(nj, 2);
    relais_journal_close(jw);
    relais_deliveries_free(d, n);

    relais_event_unref(e1); relais_event_unref(e2); relais_event_unref(e3); relais_event_unref(e4);
    relais_journal_close(j);
    free(ci);
}

/* ---- claims ---------------------------------------------------------------------------------- */

typedef struct claim_arg { relais_journal *j; const char *owner; relais_delivery *d; size_t n; int rc; } claim_arg;

static void *claim_thread(void *p)
{
    claim_arg *a = p;
    a->rc = relais_journal_claim_due(a->j, a->owner, 60000, 25, &a->d, &a->n);
    return NULL;
}

static void route_many(relais_journal *j, int count, const char *prefix, long lease_ms, int64_t *ids)
{
    const char *dests[1] = { "sig" };
    for (int i = 0; i < count; i++) {
        char rid[64];
        snprintf(rid, sizeof rid, "%s-%d", prefix, i);
        relais_event *ev = mk_event(NULL, rid);
        ingest_ok(j, ev);
        size_t n = 0;
        relais_delivery *d = route1(j, ev, dests, NULL, 1, lease_ms, &n);
        assert_int_equal(n, 1);
        if (ids) ids[i] = d[0].id;
        relais_deliveries_free(d, n);
        relais_event_unref(ev);
    }
}

static int contains_id(const relais_delivery *d, size_t n, int64_t id)
{
    for (size_t i = 0; i < n; i++) if (d[i].id == id) return 1;
    return 0;
}

/* A stopping hub hands back the leases of its queued deliveries: another hub
 * claims them at once; another owner's leases are not touched. */
static void test_release(void **state)
{
    (void)state;
    char *ci = fresh_db("jrelease");
    relais_journal *j = open_j(ci, 1, 2, 0);
    int64_t ids[3];
    route_many(j, 3, "rel", 60000, ids);
    char *owner = sqls(ci, "SELECT lease_owner FROM deliveries LIMIT 1");
    relais_delivery *c = NULL;
    size_t nc = 0;
    assert_int_equal(relais_journal_claim_due(j, "B", 60000, 100, &c, &nc), 0);
    assert_int_equal(nc, 0);
    char err[256];
    assert_int_equal(relais_journal_release(j, "someone-else", ids, 3, err, sizeof err), 0);
    assert_int_equal(relais_journal_claim_due(j, "B", 60000, 100, &c, &nc), 0);
    assert_int_equal(nc, 0);
    assert_int_equal(relais_journal_release(j, owner, ids, 2, err, sizeof err), 0);
    assert_int_equal(relais_journal_claim_due(j, "B", 60000, 100, &c, &nc), 0);
    assert_int_equal(nc, 2);
    assert_true(contains_id(c, nc, ids[0]) && contains_id(c, nc, ids[1]));
    relais_deliveries_free(c, nc);
    assert_int_equal(relais_journal_release(j, owner, ids, 0, err, sizeof err), 0);
    free(owner);
    relais_journal_close(j);
    free(ci);
}

/* Migration 2 on a database of schema version 1 that holds events routed and
 * not routed: the not-yet-routed ones (routed_at NULL) land in `unrouted` and
 * are what relais_journal_unrouted returns; routed_at is gone. */
static void test_migration2_upgrade(void **state)
{
    (void)state;
    char *ci = fresh_db("jmig2");
    relais_journal *j = open_j(ci, 1, 2, 0);
    relais_event *a = mk_event(NULL, "M-routed"), *b = mk_event(NULL, "M-waiting");
    ingest_ok(j, a);
    ingest_ok(j, b);
    relais_journal_close(j);
    /* back to what version 1 left: routed_at on events, no unrouted table */
    free(sqls(ci, "DROP TABLE unrouted"));
    free(sqls(ci, "ALTER TABLE events ADD COLUMN routed_at timestamptz"));
    free(sqls(ci, "CREATE INDEX events_unrouted_idx ON events (received_at, id) WHERE routed_at IS NULL"));
    /* and undo versions 3 and 4 (they run again after 2) */
    free(sqls(ci, "DROP INDEX events_subject_idx"));
    free(sqls(ci, "DROP INDEX events_origin_request_idx"));
    free(sqls(ci, "DROP TABLE package_state"));
    free(sqls(ci, "ALTER TABLE deliveries DROP COLUMN order_key"));
    free(sqls(ci, "ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check"));
    free(sqls(ci, "ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check"
                  " CHECK (status IN ('pending', 'delivered', 'dead'))"));
    /* and version 6 (its views read version 5's columns) */
    free(sqls(ci, "DROP VIEW audit_events, audit_rejections"));
    free(sqls(ci, "DROP FUNCTION relais_events_mentioning(text), relais_events_from_request(text)"));
    /* and version 5 */
    free(sqls(ci, "DROP TABLE audit_epoch"));
    free(sqls(ci, "ALTER TABLE steps DROP COLUMN stream, DROP COLUMN seq, DROP COLUMN prev_hash,"
                  " DROP COLUMN hash, DROP COLUMN mac"));
    free(sqls(ci, "ALTER TABLE events DROP COLUMN body_sha256, DROP COLUMN purged_at, ALTER COLUMN body SET NOT NULL"));
    free(sqls(ci, "ALTER TABLE rejections DROP COLUMN stream, DROP COLUMN seq, DROP COLUMN raw_sha256,"
                  " DROP COLUMN purged_at"));
    free(sqls(ci, "DELETE FROM relais_schema_version WHERE version >= 2"));
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE events SET routed_at = now() WHERE id = '%s'", relais_event_id(a));
    free(sqls(ci, "%s", sql));
    j = open_j(ci, 1, 2, 0);
    assert_int_equal(sqll(ci, "SELECT max(version) FROM relais_schema_version"), relais_migrations_latest());
    assert_int_equal(sqll(ci, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'events'"
                              " AND column_name = 'routed_at'"), 0);
    relais_event **un = NULL;
    size_t nun = 0;
    assert_int_equal(relais_journal_unrouted(j, 10, &un, &nun), 0);
    assert_int_equal(nun, 1);
    assert_string_equal(relais_event_id(un[0]), relais_event_id(b));
    for (size_t i = 0; i < nun; i++) relais_event_unref(un[i]);
    free(un);
    relais_journal_close(j);
    relais_event_unref(a);
    relais_event_unref(b);
    free(ci);
}

static void test_claim_due(void **state)
{
    (void)state;
    char *ci = fresh_db("jclaim");
    relais_journal *j = open_j(ci, 1, 2, 0);
    relais_delivery *c = NULL;
    size_t nc = 0;

    /* leased by the router for a minute: nothing to claim */
    route_many(j, 4, "held", 60000, NULL);
    assert_int_equal(relais_journal_claim_due(j, "A", 60000, 100, &c, &nc), 0);
    assert_int_equal(nc, 0);

    /* short leases expire: claimable, and two claimers get disjoint sets */
    int64_t ids[6];
    route_many(j, 6, "short", 1, ids);
    ts_sleep_ms(20);
    assert_int_equal(relais_journal_claim_due(j, "A", 60000, 2, &c, &nc), 0);
    assert_int_equal(nc, 2);
    relais_delivery *c2 = NULL;
    size_t nc2 = 0;
    assert_int_equal(relais_journal_claim_due(j, "B", 60000, 100, &c2, &nc2), 0);
    assert_int_equal(nc2, 4);
    for (size_t i = 0; i < nc; i++) assert_false(contains_id(c2, nc2, c[i].id));
    for (int i = 0; i < 6; i++) assert_true(contains_id(c, nc, ids[i]) || contains_id(c2, nc2, ids[i]));
    assert_int_equal(sqll(ci, "SELECT count(*) FROM deliveries WHERE lease_owner = 'A'"), 2);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM deliveries WHERE lease_owner = 'B'"), 4);
    assert_non_null(c[0].ev);
    assert_string_equal(c[0].destination, "sig");
    assert_string_equal(c[0].tenant, "ville");

    /* next_attempt_at: a retry in a minute is not due; a retry now is, with attempts 1 */
    relais_answer a = answer(503, "busy", NULL);
    relais_journal_attempt(j, &c[0], RELAIS_DELIVER_RETRY, &a, 60000, 0, 0, 0);
    relais_journal_attempt(j, &c[1], RELAIS_DELIVER_RETRY, &a, 0, 0, 0, 0);
    wait_long(ci, 2, 20000, "SELECT count(*) FROM deliveries WHERE attempts = 1");
    relais_delivery *c3 = NULL;
    size_t nc3 = 0;
    assert_int_equal(relais_journal_claim_due(j, "C", 60000, 100, &c3, &nc3), 0);
    assert_int_equal(nc3, 1);
    assert_int_equal(c3[0].id, c[1].id);
    assert_int_equal(c3[0].attempts, 1);
    relais_deliveries_free(c, nc);
    relais_deliveries_free(c2, nc2);
    relais_deliveries_free(c3, nc3);

    /* SKIP LOCKED: a row locked by another transaction is skipped, not waited for */
    int64_t more[3];
    route_many(j, 3, "locked", 1, more);
    ts_sleep_ms(20);
    PGconn *other = PQconnectdb(ci);
    assert_int_equal(PQstatus(other), CONNECTION_OK);
    PQclear(PQexec(other, "BEGIN"));
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT id FROM deliveries WHERE id = %lld FOR UPDATE", (long long)more[0]);
    PGresult *r = PQexec(other, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    long long t0 = mono_ms();
    assert_int_equal(relais_journal_claim_due(j, "D", 60000, 100, &c, &nc), 0);
    assert_true(mono_ms() - t0 < 2000);
    assert_int_equal(nc, 2);
    assert_false(contains_id(c, nc, more[0]));
    relais_deliveries_free(c, nc);
    PQclear(PQexec(other, "ROLLBACK"));
    PQfinish(other);

    /* two hubs claiming at the same time from 40 due deliveries */
    free(sqls(ci, "UPDATE deliveries SET lease_until = NULL, lease_owner = NULL, status = 'delivered'"));
    route_many(j, 40, "race", 1, NULL);
    ts_sleep_ms(20);
    relais_journal *j2 = open_j(ci, 0, 2, 0);
    claim_arg ca = { j, "hub-1", NULL, 0, -1 }, cb = { j2, "hub-2", NULL, 0, -1 };
    pthread_t ta, tb;
    pthread_create(&ta, NULL, claim_thread, &ca);
    pthread_create(&tb, NULL, claim_thread, &cb);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(ca.rc, 0);
    assert_int_equal(cb.rc, 0);
    assert_int_equal(ca.n + cb.n, 40);             /* 25 + 15, whoever comes first */
    assert_true(ca.n == 25 || cb.n == 25);
    for (size_t i = 0; i < ca.n; i++) assert_false(contains_id(cb.d, cb.n, ca.d[i].id));
    fprintf(stderr, "concurrent claim: hub-1 got %zu, hub-2 got %zu\n", ca.n, cb.n);
    relais_deliveries_free(ca.d, ca.n);
    relais_deliveries_free(cb.d, cb.n);
    relais_journal_close(j2);
    relais_journal_close(j);
    free(ci);
}

/* ---- replay, dlq, trace, reject ------------------------------------------------------------- */

static void test_replay_and_dlq(void **state)
{
    (void)state;
    char *ci = fresh_db("jreplay");
    relais_journal *j = open_j(ci, 1, 2, 0);
    relais_event *e1 = mk_event("request/5", "R5");
    ingest_ok(j, e1);
    const char *dests[2] = { "sig", "atal" };
    size_t n = 0;
    relais_delivery *d = route1(j, e1, dests, NULL, 2, 60000, &n);
    relais_answer a = answer(422, "invalid address", NULL);
    for (size_t i = 0; i < n; i++) relais_journal_attempt(j, &d[i], RELAIS_DELIVER_REJECT, &a, 0, 0, 0, 0);
    wait_long(ci, 2, 20000, "SELECT count(*) FROM deliveries WHERE status = 'dead'");

    char err[256] = "";
    json_t *l = relais_journal_dlq_list(j, 10, err, sizeof err);
    assert_non_null(l);
    assert_int_equal(json_array_size(l), 2);
    json_t *x = json_array_get(l, 0);
    assert_string_equal(json_string_value(json_object_get(x, "event_id")), relais_event_id(e1));
    assert_string_equal(json_string_value(json_object_get(x, "type")), "fr.relais.grc.request.created");
    assert_int_equal(json_integer_value(json_object_get(x, "attempts")), 1);
    assert_int_equal(json_integer_value(json_object_get(x, "last_status")), 422);
    assert_string_equal(json_string_value(json_object_get(x, "last_detail")), "invalid address");
    assert_true(is_rfc3339_us(json_string_value(json_object_get(x, "updated_at"))));
    json_decref(l);

    /* by delivery id */
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)d[0].id);
    int count = -1;
    assert_int_equal(relais_journal_replay(j, id, &count, err, sizeof err), 0);
    assert_int_equal(count, 1);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM deliveries WHERE id = %lld AND status = 'pending'"
                              " AND attempts = 0 AND next_attempt_at <= now() AND lease_owner IS NULL",
                          (long long)d[0].id), 1);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE step = 'replayed' AND event_id = '%s'"
                              " AND destination = '%s'", relais_event_id(e1), d[0].destination), 1);
    /* only dead rows: a second replay finds nothing */
    assert_int_equal(relais_journal_replay(j, id, &count, err, sizeof err), 0);
    assert_int_equal(count, 0);
    l = relais_journal_dlq_list(j, 10, err, sizeof err);
    assert_int_equal(json_array_size(l), 1);
    json_decref(l);
    /* the replayed delivery is due now */
    relais_delivery *c = NULL;
    size_t nc = 0;
    assert_int_equal(relais_journal_claim_due(j, "hub", 60000, 10, &c, &nc), 0);
    assert_int_equal(nc, 1);
    assert_int_equal(c[0].id, d[0].id);
    relais_deliveries_free(c, nc);

    /* by event id: its remaining dead delivery */
    assert_int_equal(relais_journal_replay(j, relais_event_id(e1), &count, err, sizeof err), 0);
    assert_int_equal(count, 1);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM deliveries WHERE status = 'dead'"), 0);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE step = 'replayed'"), 2);

    /* neither digits nor a UUID */
    assert_int_equal(relais_journal_replay(j, "abc'; DROP TABLE steps; --", &count, err, sizeof err), -1);
    assert_non_null(strstr(err, "neither a delivery id"));
    relais_deliveries_free(d, n);
    relais_event_unref(e1);
    relais_journal_close(j);
    free(ci);
}

static void test_trace(void **state)
{
    (void)state;
    char *ci = fresh_db("jtrace");
    relais_journal *j = open_j(ci, 1, 2, 0);
    relais_event *ea = mk_event_full("fr.relais.grc.request.created", "request/9", "GRC-9", "webhook",
                                     "case-9", NULL, NULL);
    relais_event *eb = mk_event_full("fr.relais.technique.workorder.completed", "workorder/3", "WO-3", "atal",
                                     "case-9", NULL, NULL);
    relais_event *ec = mk_event("request/10", "GRC-10");
    ingest_ok(j, ea); ingest_ok(j, eb); ingest_ok(j, ec);
    int64_t received = relais_now_us();
    const char *dests[1] = { "atal" };
    const char *routes[1] = { "grc-to-atal" };
    size_t n = 0;
    relais_delivery *d = route1(j, ea, dests, routes, 1, 60000, &n);
    int64_t t0 = relais_now_us();
    relais_answer a = answer(201, "created", "WO-3");
    relais_journal_attempt(j, &d[0], RELAIS_DELIVER_OK, &a, 0, 0, t0, t0 + 2000);
    /* written last, but its time is earlier than the routing: the trace orders by time */
    relais_journal_step(j, relais_event_id(ea), "published", NULL, 0, "partition 0", received - 1);
    wait_long(ci, 5, 20000, "SELECT count(*) FROM steps WHERE event_id IN (SELECT id FROM events"
                           " WHERE record_id = 'GRC-9')");

    char err[256] = "";
    /* by event id */
    json_t *t = relais_journal_trace(j, relais_event_id(ea), err, sizeof err);
    assert_non_null(t);
    assert_string_equal(json_string_value(json_object_get(t, "query")), relais_event_id(ea));
    json_t *evs = json_object_get(t, "events");
    assert_int_equal(json_array_size(evs), 1);
    json_t *e = json_array_get(evs, 0);
    assert_string_equal(json_string_value(json_object_get(e, "id")), relais_event_id(ea));
    assert_string_equal(json_string_value(json_object_get(e, "correlationid")), "case-9");
    assert_string_equal(json_string_value(json_object_get(e, "recordid")), "GRC-9");
    assert_string_equal(json_string_value(json_object_get(e, "source")), "webhook");
    assert_string_equal(json_string_value(json_object_get(e, "subject")), "request/9");
    assert_string_equal(json_string_value(json_object_get(e, "tenant")), "ville");
    assert_true(is_rfc3339_us(json_string_value(json_object_get(e, "received_at"))));
    json_t *steps = json_object_get(e, "steps");
    const char *want[5] = { "received", "published", "routed", "attempt", "delivered" };
    assert_int_equal(json_array_size(steps), 5);
    const char *prev = "";
    for (size_t i = 0; i < 5; i++) {
        json_t *s = json_array_get(steps, i);
        assert_string_equal(json_string_value(json_object_get(s, "step")), want[i]);
        const char *at = json_string_value(json_object_get(s, "at"));
        assert_true(is_rfc3339_us(at));
        assert_true(strcmp(prev, at) <= 0);
        prev = at;
    }
    json_t *att = json_array_get(steps, 3);
    assert_string_equal(json_string_value(json_object_get(att, "destination")), "atal");
    assert_int_equal(json_integer_value(json_object_get(att, "attempt")), 1);
    assert_int_equal(json_integer_value(json_object_get(att, "status")), 201);
    assert_string_equal(json_string_value(json_object_get(att, "detail")), "created");
    assert_string_equal(json_string_value(json_object_get(json_array_get(steps, 2), "detail")), "grc-to-atal");
    json_t *dl = json_object_get(e, "deliveries");
    assert_int_equal(json_array_size(dl), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(dl, 0), "status")), "delivered");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(dl, 0), "attempts")), 1);
    assert_int_equal(json_array_size(json_object_get(t, "rejections")), 0);
    json_decref(t);

    /* by correlation id: both events of the case, oldest first */
    t = relais_journal_trace(j, "case-9", err, sizeof err);
    evs = json_object_get(t, "events");
    assert_int_equal(json_array_size(evs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(evs, 0), "id")), relais_event_id(ea));
    assert_string_equal(json_string_value(json_object_get(json_array_get(evs, 1), "id")), relais_event_id(eb));
    json_decref(t);

    /* by source record id */
    t = relais_journal_trace(j, "GRC-10", err, sizeof err);
    evs = json_object_get(t, "events");
    assert_int_equal(json_array_size(evs), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(evs, 0), "id")), relais_event_id(ec));
    json_decref(t);

    /* by the local id a package gave an entity (atal answered WO-3 for
     * request/9): the story of request/9, which shares its correlation with
     * the work order's event */
    t = relais_journal_trace(j, "WO-3", err, sizeof err);
    evs = json_object_get(t, "events");
    assert_int_equal(json_array_size(evs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(evs, 0), "id")), relais_event_id(ea));
    assert_string_equal(json_string_value(json_object_get(json_array_get(evs, 1), "id")), relais_event_id(eb));
    json_decref(t);

    /* by canonical id: the subject's events (request/10 has its own correlation) */
    t = relais_journal_trace(j, "request/10", err, sizeof err);
    evs = json_object_get(t, "events");
    assert_int_equal(json_array_size(evs), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(evs, 0), "id")), relais_event_id(ec));
    json_decref(t);

    /* unknown: empty, not an error */
    t = relais_journal_trace(j, "nothing-like-this", err, sizeof err);
    assert_non_null(t);
    assert_int_equal(json_array_size(json_object_get(t, "events")), 0);
    json_decref(t);
    t = relais_journal_trace(j, "0190d6a2-0000-7000-8000-000000000000", err, sizeof err);
    assert_int_equal(json_array_size(json_object_get(t, "events")), 0);
    json_decref(t);

    relais_deliveries_free(d, n);
    relais_event_unref(ea); relais_event_unref(eb); relais_event_unref(ec);
    relais_journal_close(j);
    free(ci);
}

static void test_reject_visible_in_trace(void **state)
{
    (void)state;
    char *ci = fresh_db("jrej");
    relais_journal *j = open_j(ci, 1, 2, 0);
    const char raw[] = "{\"bad\": \xff\x00 json";
    assert_int_equal(relais_journal_reject(j, "webhook", "GRC-404", "body offset 8", "malformed JSON",
                                           raw, sizeof raw - 1), 0);
    /* the raw excerpt is kept byte for byte, even bytes that are not text */
    assert_int_equal(sqll(ci, "SELECT count(*) FROM rejections WHERE source = 'webhook' AND record_id = 'GRC-404'"
                              " AND location = 'body offset 8' AND reason = 'malformed JSON'"
                              " AND raw = decode('%s', 'hex')", "7b2262616422" "3a20ff00206a736f6e"), 1);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE step = 'rejected' AND event_id IS NULL"
                              " AND detail LIKE 'body offset 8%%GRC-404%%malformed JSON'"), 1);
    char err[256] = "";
    json_t *t = relais_journal_trace(j, "GRC-404", err, sizeof err);
    assert_non_null(t);
    assert_int_equal(json_array_size(json_object_get(t, "events")), 0);
    json_t *rj = json_object_get(t, "rejections");
    assert_int_equal(json_array_size(rj), 1);
    json_t *x = json_array_get(rj, 0);
    assert_string_equal(json_string_value(json_object_get(x, "source")), "webhook");
    assert_string_equal(json_string_value(json_object_get(x, "location")), "body offset 8");
    assert_string_equal(json_string_value(json_object_get(x, "reason")), "malformed JSON");
    assert_true(is_rfc3339_us(json_string_value(json_object_get(x, "at"))));
    json_decref(t);
    /* a reason that is not valid UTF-8 is still journaled */
    assert_int_equal(relais_journal_reject(j, "file", NULL, "f.csv:3", "bad byte \xe9 here", NULL, 0), 0);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM rejections WHERE reason = 'bad byte ? here'"), 1);
    relais_journal_close(j);
    free(ci);
}

/* ---- failures -------------------------------------------------------------------------------- */

static void terminate_backends(const char *dbname)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
                              " WHERE datname = '%s' AND pid <> pg_backend_pid()", dbname);
    char *s = ts_sql(admin_conninfo(), sql);
    assert_non_null(s);
    free(s);
}

static void test_connection_killed(void **state)
{
    (void)state;
    char *ci = fresh_db("jkill");
    char dbname[128];
    db_name(ci, dbname, sizeof dbname);
    relais_journal *j = open_j(ci, 1, 2, 0);
    relais_event *e1 = mk_event("request/1", "K1");
    ingest_ok(j, e1);
    const char *dests[1] = { "sig" };
    size_t n = 0;
    relais_delivery *d = route1(j, e1, dests, NULL, 1, 60000, &n);

    /* kill both connections from another one, as the brief describes */
    char *s = ts_sql(ci, "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
                         " WHERE datname = current_database() AND pid <> pg_backend_pid()");
    assert_non_null(s);
    assert_true(atoi(s) >= 2);
    free(s);

    relais_answer a = answer(200, "ok", "SIG-1");
    assert_int_equal(relais_journal_attempt(j, &d[0], RELAIS_DELIVER_OK, &a, 0, 0, 0, 0), 0);
    wait_long(ci, 1, 10000, "SELECT count(*) FROM deliveries WHERE status = 'delivered'");
    wait_long(ci, 1, 10000, "SELECT count(*) FROM steps WHERE step = 'delivered'");
    ts_sleep_ms(200);   /* nothing more comes: once each */
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE step = 'attempt'"), 1);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE step = 'delivered'"), 1);
    assert_int_equal(relais_journal_healthy(j), 1);

    /* the read side reconnects too */
    char err[256] = "";
    json_t *t = relais_journal_trace(j, relais_event_id(e1), err, sizeof err);
    if (!t) fail_msg("trace after kill: %s", err);
    assert_int_equal(json_array_size(json_object_get(json_array_get(json_object_get(t, "events"), 0), "steps")), 4);
    json_decref(t);
    /* and blocking calls work again */
    relais_event *e2 = mk_event("request/2", "K2");
    ingest_ok(j, e2);
    relais_deliveries_free(d, n);
    relais_event_unref(e1);
    relais_event_unref(e2);
    relais_journal_close(j);
    free(ci);
}

static void test_outage_keeps_async_jobs(void **state)
{
    (void)state;
    char *ci = fresh_db("joutage");
    char dbname[128], sql[256];
    db_name(ci, dbname, sizeof dbname);
    relais_journal *j = open_j(ci, 1, 2, 3);   /* at most 3 queued async jobs */
    relais_event *e1 = mk_event("request/1", "O1");
    ingest_ok(j, e1);
    const char *dests[1] = { "sig" };
    size_t n = 0;
    relais_delivery *d = route1(j, e1, dests, NULL, 1, 60000, &n);
    assert_int_equal(relais_journal_healthy(j), 1);

    /* PostgreSQL "down" for this database: no new connections, existing ones killed */
    snprintf(sql, sizeof sql, "ALTER DATABASE \"%s\" WITH ALLOW_CONNECTIONS false", dbname);
    free(ts_sql(admin_conninfo(), sql));
    terminate_backends(dbname);

    /* idle, the writer notices by itself (connection check) and reports unhealthy */
    long long end = mono_ms() + 6000;
    while (relais_journal_healthy(j) && mono_ms() < end) ts_sleep_ms(10);
    assert_int_equal(relais_journal_healthy(j), 0);

    /* async jobs queued during the outage: 4 jobs for a bound of 3, the oldest is dropped */
    relais_journal_step(j, relais_event_id(e1), "custom-1", NULL, 0, NULL, 0);
    relais_journal_step(j, relais_event_id(e1), "custom-2", NULL, 0, NULL, 0);
    relais_answer a = answer(200, "ok", "SIG-9");
    assert_int_equal(relais_journal_attempt(j, &d[0], RELAIS_DELIVER_OK, &a, 0, 0, 0, 0), 0);
    relais_journal_step(j, relais_event_id(e1), "custom-3", NULL, 0, NULL, 0);

    /* blocking calls fail fast */
    relais_event *e2 = mk_event("request/2", "O2");
    relais_submit_result r;
    long long t0 = mono_ms();
    assert_int_equal(relais_journal_ingest(j, &e2, 1, &r), -1);
    assert_true(mono_ms() - t0 < 3000);
    assert_int_equal(r.status, RELAIS_SUBMIT_UNAVAILABLE);
    assert_non_null(strstr(r.reason, "unavailable"));
    char err[256] = "";
    assert_null(relais_journal_trace(j, "O1", err, sizeof err));

    /* PostgreSQL back: the kept jobs are written once */
    ts_sleep_ms(300);
    snprintf(sql, sizeof sql, "ALTER DATABASE \"%s\" WITH ALLOW_CONNECTIONS true", dbname);
    free(ts_sql(admin_conninfo(), sql));
    wait_long(ci, 1, 15000, "SELECT count(*) FROM deliveries WHERE status = 'delivered'");
    wait_long(ci, 2, 20000, "SELECT count(*) FROM steps WHERE step IN ('custom-2','custom-3')");
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE step = 'custom-1'"), 0);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE step = 'attempt'"), 1);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM xref WHERE local_id = 'SIG-9'"), 1);
    end = mono_ms() + 5000;
    while (!relais_journal_healthy(j) && mono_ms() < end) ts_sleep_ms(10);
    assert_int_equal(relais_journal_healthy(j), 1);
    ingest_ok(j, e2);
    json_t *t = relais_journal_trace(j, "O1", err, sizeof err);
    assert_non_null(t);
    json_decref(t);

    relais_deliveries_free(d, n);
    relais_event_unref(e1);
    relais_event_unref(e2);
    relais_journal_close(j);
    free(ci);
}

static void test_blocking_call_times_out(void **state)
{
    (void)state;
    char *ci = fresh_db("jtimeout");
    relais_journal *j = open_j(ci, 1, 2, 0);
    relais_journal_set_block_timeout(j, 300);
    PGconn *locker = PQconnectdb(ci);
    assert_int_equal(PQstatus(locker), CONNECTION_OK);
    PQclear(PQexec(locker, "BEGIN"));
    PGresult *r = PQexec(locker, "LOCK TABLE events IN ACCESS EXCLUSIVE MODE");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);

    relais_event *e1 = mk_event("request/1", "TO1");
    relais_submit_result res;
    long long t0 = mono_ms();
    assert_int_equal(relais_journal_ingest(j, &e1, 1, &res), -1);
    long long took = mono_ms() - t0;
    assert_true(took >= 250 && took < 3000);
    assert_int_equal(res.status, RELAIS_SUBMIT_UNAVAILABLE);
    assert_non_null(strstr(res.reason, "timed out"));

    /* the lock goes away: the abandoned job still commits (at-least-once), so
     * the sender's retry is acknowledged as a duplicate */
    PQclear(PQexec(locker, "COMMIT"));
    PQfinish(locker);
    relais_journal_set_block_timeout(j, 0);
    wait_long(ci, 1, 20000, "SELECT count(*) FROM events WHERE record_id = 'TO1'");
    relais_event *again = mk_event("request/1", "TO1");
    assert_int_equal(relais_journal_ingest(j, &again, 1, &res), 0);
    assert_int_equal(res.status, RELAIS_SUBMIT_DUPLICATE);
    assert_string_equal(res.event_id, relais_event_id(e1));

    /* close is bounded even when the writer hangs on a lock: after the 5 s
     * drain it cancels the statement and gives up on what is left */
    locker = PQconnectdb(ci);
    PQclear(PQexec(locker, "BEGIN"));
    r = PQexec(locker, "LOCK TABLE steps IN ACCESS EXCLUSIVE MODE");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    assert_int_equal(relais_journal_step(j, relais_event_id(e1), "stuck", NULL, 0, NULL, 0), 0);
    ts_sleep_ms(100);
    t0 = mono_ms();
    relais_journal_close(j);
    took = mono_ms() - t0;
    fprintf(stderr, "close with a hung writer took %lld ms\n", took);
    assert_true(took >= 4000 && took < 9000);
    PQclear(PQexec(locker, "ROLLBACK"));
    PQfinish(locker);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE step = 'stuck'"), 0);
    relais_event_unref(e1);
    relais_event_unref(again);
    free(ci);
}

typedef struct route_race { relais_journal *j; relais_event *ev; int rc; } route_race;

static void *route_thread(void *p)
{
    route_race *a = p;
    const char *dests[1] = { "sig" };
    relais_route_item it = { a->ev, dests, NULL, 1, NULL };
    relais_delivery *d = NULL;
    size_t n = 0;
    a->rc = relais_journal_route(a->j, &it, 1, "hub", 1000, &d, &n);
    relais_deliveries_free(d, n);
    return NULL;
}

static void test_refused_value_isolated(void **state)
{
    (void)state;
    char *ci = fresh_db("jrefuse");
    relais_journal *j = open_j(ci, 1, 300, 0);
    /* PostgreSQL's jsonb refuses \u0000: that event alone is rejected */
    json_t *data = json_object();
    json_object_set_new(data, "text", json_stringn("a\0b", 3));
    relais_record rec = { "BAD-1", "fr.relais.grc.request.created", "request/1", NULL, NULL, "ville", data, NULL, 0 };
    char err[256];
    relais_event *bad = relais_event_build(&rec, "webhook", "ville", err, sizeof err);
    json_decref(data);
    assert_non_null(bad);
    relais_event *g1 = mk_event("request/2", "GOOD-1"), *g2 = mk_event("request/3", "GOOD-2");
    relais_event *evs[3] = { g1, bad, g2 };
    relais_submit_result res[3];
    assert_int_equal(relais_journal_ingest(j, evs, 3, res), 0);
    assert_int_equal(res[0].status, RELAIS_SUBMIT_ACCEPTED);
    assert_int_equal(res[1].status, RELAIS_SUBMIT_REJECTED);
    assert_non_null(strstr(res[1].reason, "journal refused"));
    assert_int_equal(res[2].status, RELAIS_SUBMIT_ACCEPTED);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM events"), 2);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM rejections WHERE record_id = 'BAD-1' AND location = 'journal'"), 1);

    /* a route of an event that was never journaled, in the same batch as an
     * ingest: the route fails, the ingest commits */
    relais_event *ghost = mk_event("request/9", "GHOST");
    route_race rr = { j, ghost, 0 };
    pthread_t t;
    pthread_create(&t, NULL, route_thread, &rr);
    ts_sleep_ms(30);
    relais_event *g3 = mk_event("request/4", "GOOD-3");
    ingest_ok(j, g3);
    pthread_join(t, NULL);
    assert_int_equal(rr.rc, -1);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM deliveries"), 0);

    /* an async job PostgreSQL refuses (a time 31,700 years before 1970) is
     * dropped; the job queued with it in the same batch is written */
    assert_int_equal(relais_journal_step(j, relais_event_id(g1), "odd", NULL, 0, NULL, -1000000000000000000LL), 0);
    assert_int_equal(relais_journal_step(j, relais_event_id(g1), "fine", NULL, 0, NULL, 0), 0);
    wait_long(ci, 1, 20000, "SELECT count(*) FROM steps WHERE step = 'fine'");
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE step = 'odd'"), 0);
    assert_int_equal(relais_journal_healthy(j), 1);
    relais_event_unref(bad); relais_event_unref(g1); relais_event_unref(g2);
    relais_event_unref(g3); relais_event_unref(ghost);
    relais_journal_close(j);
    free(ci);
}

static void test_close_drains_and_read_only(void **state)
{
    (void)state;
    char *ci = fresh_db("jclose");
    relais_journal *j = open_j(ci, 1, 2, 0);
    relais_event *e1 = mk_event("request/1", "C1");
    ingest_ok(j, e1);
    for (int i = 0; i < 300; i++) {
        char detail[32];
        snprintf(detail, sizeof detail, "n%d", i);
        assert_int_equal(relais_journal_step(j, relais_event_id(e1), "note", NULL, 0, detail, 0), 0);
    }
    relais_journal_close(j);   /* drains what is queued */
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE step = 'note'"), 300);

    /* read only (the CLI): reads work, writes are refused */
    j = open_j(ci, 0, 2, 0);
    assert_int_equal(relais_journal_healthy(j), 1);
    relais_submit_result r;
    relais_event *e2 = mk_event("request/2", "C2");
    assert_int_equal(relais_journal_ingest(j, &e2, 1, &r), -1);
    assert_int_equal(r.status, RELAIS_SUBMIT_UNAVAILABLE);
    assert_int_equal(relais_journal_step(j, relais_event_id(e1), "note", NULL, 0, NULL, 0), -1);
    assert_int_equal(relais_journal_step(j, "not-a-uuid", "note", NULL, 0, NULL, 0), -1);
    char err[256];
    json_t *t = relais_journal_trace(j, "C1", err, sizeof err);
    assert_int_equal(json_array_size(json_object_get(json_array_get(json_object_get(t, "events"), 0), "steps")), 301);
    json_decref(t);
    relais_journal_close(j);
    relais_journal_close(NULL);
    relais_event_unref(e1);
    relais_event_unref(e2);
    free(ci);
}

/* ---- two lanes ------------------------------------------------------------------------------ */

/* How many threads of this process carry `name` (/proc/self/task/<tid>/comm). */
static int threads_named(const char *name)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int count = 0;
    for (struct dirent *de = readdir(d); de; de = readdir(d)) {
        if (de->d_name[0] == '.') continue;
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(comm, sizeof comm, f)) comm[strcspn(comm, "\n")] = '\0';
        fclose(f);
        if (!strcmp(comm, name)) count++;
    }
    closedir(d);
    return count;
}

/* Sessions of this test's database from a journal lane waiting for a lock. */
#define LANE_WAITING(app) "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()" \
                          " AND application_name = '" app "' AND wait_event_type = 'Lock'"

static PGconn *lock_delivery(const char *ci, int64_t id)
{
    PGconn *c = PQconnectdb(ci);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PQclear(PQexec(c, "BEGIN"));
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT id FROM deliveries WHERE id = %lld FOR UPDATE", (long long)id);
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    PQclear(r);
    return c;
}

/* Blocking calls (lane A) commit while the async lane (B) is stuck behind a
 * row lock: they no longer wait behind attempt outcomes. A route made
 * meanwhile already gets the local id of an outcome lane B has not
 * committed yet. */
static void test_lanes_blocking_not_behind_async(void **state)
{
    (void)state;
    char *ci = fresh_db("jlanes");
    relais_journal *j = open_j(ci, 1, 2, 0);
    relais_journal_set_block_timeout(j, 3000);   /* with one writer for all, the ingest below times out */
    /* two writer threads, each with its connection */
    assert_int_equal(threads_named("relais-journal"), 1);
    assert_int_equal(threads_named("relais-j-async"), 1);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                              " AND application_name IN ('relais-journal-writer', 'relais-journal-async')"), 2);

    relais_event *e1 = mk_event("request/5", "L1");
    ingest_ok(j, e1);
    const char *dests[2] = { "sig", "ged" };
    size_t n = 0, n2 = 0;
    relais_delivery *d = route1(j, e1, dests, NULL, 2, 60000, &n);
    assert_int_equal(n, 2);
    relais_delivery *sig = find_dest(d, n, "sig"), *ged = find_dest(d, n, "ged");

    /* another session holds sig's row: lane B's transaction waits for it */
    PGconn *locker = lock_delivery(ci, sig->id);
    relais_answer a503 = answer(503, "busy", NULL), a201 = answer(201, "created", "GED-7");
    assert_int_equal(relais_journal_attempt(j, sig, RELAIS_DELIVER_RETRY, &a503, 60000, 0, 0, 0), 0);
    assert_int_equal(relais_journal_attempt(j, ged, RELAIS_DELIVER_OK, &a201, 0, 0, 0, 0), 0);
    wait_long(ci, 1, 20000, LANE_WAITING("relais-journal-async"));

    /* meanwhile lane A commits at once: an ingest, a route, a rejection */
    relais_event *e2 = mk_event_full("fr.relais.grc.request.closed", "request/5", "L1-closed", "webhook",
                                     NULL, NULL, NULL);
    long long t0 = mono_ms();
    ingest_ok(j, e2);
    relais_delivery *d2 = route1(j, e2, dests, NULL, 2, 60000, &n2);
    assert_int_equal(relais_journal_reject(j, "webhook", "L-bad", "body", "malformed JSON", NULL, 0), 0);
    long long took = mono_ms() - t0;
    fprintf(stderr, "lane A: ingest + route + reject while lane B waits for a row lock: %lld ms\n", took);
    assert_true(took < 2000);
    assert_int_equal(n2, 2);
    /* the local id ged gave is not in xref yet, but the route knows it */
    assert_int_equal(sqll(ci, "SELECT count(*) FROM xref"), 0);
    assert_non_null(find_dest(d2, n2, "ged")->local_id);
    assert_string_equal(find_dest(d2, n2, "ged")->local_id, "GED-7");
    assert_null(find_dest(d2, n2, "sig")->local_id);
    /* lane B is still stuck: none of its work is visible */
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE step = 'attempt'"), 0);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM events"), 2);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM rejections WHERE record_id = 'L-bad'"), 1);
    assert_int_equal(relais_journal_healthy(j), 1);

    /* the lock goes: lane B commits both outcomes */
    PQclear(PQexec(locker, "ROLLBACK"));
    PQfinish(locker);
    wait_long(ci, 2, 20000, "SELECT count(*) FROM steps WHERE step = 'attempt'");
    assert_int_equal(sqll(ci, "SELECT count(*) FROM deliveries WHERE id = %lld AND status = 'pending'"
                              " AND attempts = 1", (long long)sig->id), 1);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM deliveries WHERE id = %lld AND status = 'delivered'",
                          (long long)ged->id), 1);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM xref WHERE canonical_id = 'request/5' AND package = 'ged'"
                              " AND local_id = 'GED-7'"), 1);
    uint64_t nb, nj;
    relais_journal_stats(j, &nb, &nj);
    assert_int_equal(nj, 7);                   /* 2 ingest, 2 route, 1 reject, 2 attempts: both lanes */
    relais_deliveries_free(d, n);
    relais_deliveries_free(d2, n2);
    relais_event_unref(e1);
    relais_event_unref(e2);
    relais_journal_close(j);
    free(ci);
}

/* Two hubs apply outcomes for the same deliveries, queued in opposite
 * orders: lane B locks the rows in id order, so they wait for each other
 * instead of deadlocking (deadlock_timeout is 5 s here: a deadlock would
 * show as a 5 s stall). */
static void test_outcomes_lock_rows_in_id_order(void **state)
{
    (void)state;
    char *ci = fresh_db("jorder");
    char dbname[128], sql[256];
    db_name(ci, dbname, sizeof dbname);
    snprintf(sql, sizeof sql, "ALTER DATABASE \"%s\" SET deadlock_timeout = '5s'", dbname);
    free(ts_sql(admin_conninfo(), sql));
    relais_journal *j = open_j(ci, 1, 2, 0);
    enum { N = 20 };
    int64_t ids[N];
    route_many(j, N, "ord", 60000, ids);
    relais_event *ev = mk_event(NULL, "ord-any");
    relais_delivery dv[N];
    for (int i = 0; i < N; i++) {
        dv[i] = (relais_delivery){ ids[i], ev, (char *)"sig", (char *)"ville", 0, NULL };
    }
    /* two hubs, each gathering its outcomes into one batch (100 ms) */
    relais_journal *h1 = open_j(ci, 1, 100, 0), *h2 = open_j(ci, 1, 100, 0);
    PGconn *locker = lock_delivery(ci, ids[N / 2]);
    relais_answer a = answer(503, "busy", NULL);
    for (int i = 0; i < N; i++) {
        assert_int_equal(relais_journal_attempt(h1, &dv[i], RELAIS_DELIVER_RETRY, &a, 60000, 0, 0, 0), 0);
        assert_int_equal(relais_journal_attempt(h2, &dv[N - 1 - i], RELAIS_DELIVER_RETRY, &a, 60000, 0, 0, 0), 0);
    }
    wait_long(ci, 2, 20000, LANE_WAITING("relais-journal-async"));
    long long t0 = mono_ms();
    PQclear(PQexec(locker, "ROLLBACK"));
    PQfinish(locker);
    wait_long(ci, N, 20000, "SELECT count(*) FROM deliveries WHERE attempts = 2");
    fprintf(stderr, "two hubs, %d outcomes each in opposite orders: applied %lld ms after the lock went\n",
            N, mono_ms() - t0);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE step = 'attempt'"), 2 * N);
    relais_journal_close(h1);
    relais_journal_close(h2);
    relais_event_unref(ev);
    relais_journal_close(j);
    free(ci);
}

/* A deadlock that lane B loses (40P01) is retried: the outcomes are written
 * once, nothing is dropped, the lane stays healthy. */
static void test_deadlock_retried(void **state)
{
    (void)state;
    char *ci = fresh_db("jdeadlock");
    char dbname[128], sql[256];
    db_name(ci, dbname, sizeof dbname);
    snprintf(sql, sizeof sql, "ALTER DATABASE \"%s\" SET deadlock_timeout = '200ms'", dbname);
    free(ts_sql(admin_conninfo(), sql));
    relais_journal *j = open_j(ci, 1, 20, 0);
    int64_t ids[2];
    route_many(j, 2, "dl", 60000, ids);
    assert_true(ids[0] < ids[1]);
    relais_event *ev = mk_event(NULL, "dl-any");
    relais_delivery d0 = { ids[0], ev, (char *)"sig", (char *)"ville", 0, NULL };
    relais_delivery d1 = { ids[1], ev, (char *)"sig", (char *)"ville", 0, NULL };

    /* the locker holds ids[1] and will not be the one PostgreSQL aborts */
    PGconn *locker = lock_delivery(ci, ids[1]);
    PQclear(PQexec(locker, "SET deadlock_timeout = '10s'"));
    relais_answer a = answer(503, "busy", NULL);
    assert_int_equal(relais_journal_attempt(j, &d0, RELAIS_DELIVER_RETRY, &a, 60000, 0, 0, 0), 0);
    assert_int_equal(relais_journal_attempt(j, &d1, RELAIS_DELIVER_RETRY, &a, 60000, 0, 0, 0), 0);
    /* lane B holds ids[0] and waits for ids[1]; the locker now asks for
     * ids[0]: a cycle, which lane B's deadlock check breaks by aborting */
    wait_long(ci, 1, 20000, LANE_WAITING("relais-journal-async"));
    snprintf(sql, sizeof sql, "SELECT id FROM deliveries WHERE id = %lld FOR UPDATE", (long long)ids[0]);
    PGresult *r = PQexec(locker, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);   /* it got the row: lane B gave way */
    PQclear(r);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM deliveries WHERE attempts > 0"), 0);
    PQclear(PQexec(locker, "ROLLBACK"));
    PQfinish(locker);
    wait_long(ci, 2, 20000, "SELECT count(*) FROM deliveries WHERE attempts = 1");
    wait_long(ci, 2, 20000, "SELECT count(*) FROM steps WHERE step = 'retry_scheduled'");
    ts_sleep_ms(100);   /* nothing more comes: once each */
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE step = 'attempt'"), 2);
    assert_int_equal(sqll(ci, "SELECT count(*) FROM steps WHERE step = 'retry_scheduled'"), 2);
    assert_int_equal(relais_journal_healthy(j), 1);
    relais_event_unref(ev);
    relais_journal_close(j);
    free(ci);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrations_once_and_idempotent),
        cmocka_unit_test(test_migrations_two_hubs_at_once),
        cmocka_unit_test(test_open_unreachable),
        cmocka_unit_test(test_ingest_new),
        cmocka_unit_test(test_ingest_duplicates),
        cmocka_unit_test(test_ingest_concurrent_group_commit),
        cmocka_unit_test(test_route_once_and_unrouted),
        cmocka_unit_test(test_attempt_transitions_and_xref),
        cmocka_unit_test(test_claim_due),
        cmocka_unit_test(test_release),
        cmocka_unit_test(test_migration2_upgrade),
        cmocka_unit_test(test_replay_and_dlq),
        cmocka_unit_test(test_trace),
        cmocka_unit_test(test_reject_visible_in_trace),
        cmocka_unit_test(test_connection_killed),
        cmocka_unit_test(test_outage_keeps_async_jobs),
        cmocka_unit_test(test_blocking_call_times_out),
        cmocka_unit_test(test_refused_value_isolated),
        cmocka_unit_test(test_close_drains_and_read_only),
        cmocka_unit_test(test_lanes_blocking_not_behind_async),
        cmocka_unit_test(test_outcomes_lock_rows_in_id_order),
        cmocka_unit_test(test_deadlock_retried),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
