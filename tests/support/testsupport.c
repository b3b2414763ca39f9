/*
 * testsupport.c - helpers shared by the runtime tests (see testsupport.h).
 * Threads: only ts_recorder is used from several threads; its mutex guards
 * all of its fields.
 */
#include "testsupport.h"
#include <errno.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "event_int.h"
#include "instance.h"
#include "options.h"

static char g_conninfo[512];

const char *ts_fresh_database(const char *name)
{
    const char *host = getenv("RELAIS_TEST_PGHOST");
    const char *port = getenv("RELAIS_TEST_PGPORT");
    if (!host || !*host) {
        fail_msg("RELAIS_TEST_PGHOST is not set: run the suite with tools/test "
                 "(it starts a throw-away PostgreSQL)");
    }
    if (!port || !*port) port = "5432";
    char admin[512];
    snprintf(admin, sizeof admin, "host=%s port=%s dbname=postgres user=postgres", host, port);
    PGconn *c = PQconnectdb(admin);
    if (PQstatus(c) != CONNECTION_OK) {
        fail_msg("cannot reach the test PostgreSQL (%s): %s", admin, PQerrorMessage(c));
    }
    static unsigned seq;
    char db[128];
    snprintf(db, sizeof db, "%s_%d_%u_%ld", name, (int)getpid(), seq++, (long)time(NULL) % 100000);
    for (char *p = db; *p; p++) if (*p == '-' || *p == '/') *p = '_';
    char sql[256];
    snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", db);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fail_msg("CREATE DATABASE %s: %s", db, PQerrorMessage(c));
    }
    PQclear(r);
    PQfinish(c);
    snprintf(g_conninfo, sizeof g_conninfo, "host=%s port=%s dbname=%s user=postgres", host, port, db);
    return g_conninfo;
}

char *ts_sql(const char *conninfo, const char *sql)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) { PQfinish(c); return NULL; }
    PGresult *r = PQexec(c, sql);
    char *out = NULL;
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK) {
        out = strdup(PQntuples(r) > 0 && PQnfields(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    } else if (st == PGRES_COMMAND_OK) {
        out = strdup("");
    } else {
        fprintf(stderr, "ts_sql: %s: %s", sql, PQerrorMessage(c));
    }
    PQclear(r);
    PQfinish(c);
    return out;
}

long ts_sql_long(const char *conninfo, const char *sql)
{
    char *s = ts_sql(conninfo, sql);
    if (!s) fail_msg("SQL failed: %s", sql);
    long v = strtol(s, NULL, 10);
    free(s);
    return v;
}

const char *ts_source_path(const char *rel)
{
    static char buf[1024];
    const char *root = getenv("RELAIS_SOURCE_DIR");
    snprintf(buf, sizeof buf, "%s/%s", root ? root : ".", rel);
    return buf;
}

char *ts_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot read %s", path);
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&buf, &cap, '\0', f);
    fclose(f);
    if (n < 0) {
        free(buf);
        fail_msg("cannot read %s", path);
    }
    if (len) *len = (size_t)n;
    return buf;
}

/* Below the kernel's ephemeral range (see tools/free-port): a port handed
 * out by bind(port 0) may be taken by any outgoing connection of a test
 * running in parallel before the caller binds it; below that range only
 * another random draw could take it. */
static int ephemeral_low(void)
{
    int lo = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d", &lo) != 1) lo = 32768;
        fclose(f);
    }
    return lo;
}

int ts_free_port(void)
{
    static unsigned seed;
    if (!seed) seed = (unsigned)time(NULL) ^ (unsigned)getpid() << 16;
    int hi = ephemeral_low() - 1, lo = hi > 12000 ? 10000 : 1024;
    for (int tries = 0; tries < 10000; tries++) {
        int port = lo + (int)(rand_r(&seed) % (unsigned)(hi - lo + 1));
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) fail_msg("ts_free_port: socket: %s", strerror(errno));
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons((uint16_t)port);
        int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok) return port;
    }
    fail_msg("ts_free_port: no free port in %d-%d", lo, hi);
    return -1;
}

char *ts_write_temp(const char *suffix, const char *text)
{
    static char paths[8][256];
    static unsigned slot;
    char *p = paths[slot++ % 8];
    snprintf(p, 256, "/tmp/relais-test-XXXXXX%s", suffix ? suffix : "");
    int fd = mkstemps(p, suffix ? (int)strlen(suffix) : 0);
    if (fd < 0) fail_msg("mkstemps failed");
    size_t n = strlen(text);
    if (write(fd, text, n) != (ssize_t)n) fail_msg("write failed");
    close(fd);
    return p;
}

void ts_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* ---- ts_recorder ------------------------------------------------------------ */

struct ts_recorder {
    pthread_mutex_t mu;
    ts_submitted  **subs;
    size_t          nsubs, capsubs;
    ts_rejected   **rejs;
    size_t          nrejs, caprejs;
    char          **seen;           /* record ids accepted (the hub's dedupe) */
    size_t          nseen, capseen;
    size_t          submit_calls;
    int             accepting;
    long            submit_budget;  /* submit calls answered before down; -1 = always */
    int             reject_fails;
};

static char *ts_dup0(const char *s) { return s ? strdup(s) : NULL; }

/* arr (n elements of size elem used, *cap allocated) with room for one more. */
static void *ts_room(void *arr, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return arr;
    size_t nc = *cap ? *cap * 2 : 64;
    void *na = realloc(arr, nc * elem);
    if (!na)
        abort();
    *cap = nc;
    return na;
}

static void ts_recorder_clear(ts_recorder *r)
{
    for (size_t i = 0; i < r->nsubs; i++) {
        ts_submitted *s = r->subs[i];
        free(s->record_id);
        free(s->type);
        free(s->subject);
        free(s->correlation_id);
        free(s->data);
        free(s);
    }
    for (size_t i = 0; i < r->nrejs; i++) {
        ts_rejected *j = r->rejs[i];
        free(j->record_id);
        free(j->where);
        free(j->reason);
        free(j->raw);
        free(j);
    }
    for (size_t i = 0; i < r->nseen; i++)
        free(r->seen[i]);
    r->nsubs = r->nrejs = r->nseen = r->submit_calls = 0;
    r->accepting = 1;
    r->submit_budget = -1;
    r->reject_fails = 0;
}

ts_recorder *ts_recorder_new(void)
{
    ts_recorder *r = calloc(1, sizeof *r);
    if (!r) abort();
    pthread_mutex_init(&r->mu, NULL);
    ts_recorder_clear(r);
    return r;
}

void ts_recorder_free(ts_recorder *r)
{
    if (!r) return;
    ts_recorder_clear(r);
    free(r->subs);
    free(r->rejs);
    free(r->seen);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void ts_recorder_reset(ts_recorder *r)
{
    pthread_mutex_lock(&r->mu);
    ts_recorder_clear(r);
    pthread_mutex_unlock(&r->mu);
}

static int ts_rec_submit(void *hub, relais_instance *inst, const relais_record *recs, size_t n,
                         relais_submit_result *res)
{
    (void)inst;
    ts_recorder *r = hub;
    pthread_mutex_lock(&r->mu);
    r->submit_calls++;
    int down = r->submit_budget == 0;
    if (r->submit_budget > 0)
        r->submit_budget--;
    for (size_t i = 0; i < n; i++) {
        if (down) {
            res[i].status = RELAIS_SUBMIT_UNAVAILABLE;
            continue;
        }
        ts_submitted *s = calloc(1, sizeof *s);
        if (!s) abort();
        s->record_id = ts_dup0(recs[i].record_id);
        s->type = ts_dup0(recs[i].type);
        s->subject = ts_dup0(recs[i].subject);
        s->correlation_id = ts_dup0(recs[i].correlation_id);
        s->data = json_dumps(recs[i].data, JSON_COMPACT | JSON_SORT_KEYS);
        r->subs = ts_room(r->subs, r->nsubs, &r->capsubs, sizeof *r->subs);
        r->subs[r->nsubs++] = s;
        res[i].status = RELAIS_SUBMIT_ACCEPTED;
        for (size_t k = 0; k < r->nseen && recs[i].record_id; k++)
            if (strcmp(r->seen[k], recs[i].record_id) == 0)
                res[i].status = RELAIS_SUBMIT_DUPLICATE;
        if (res[i].status == RELAIS_SUBMIT_ACCEPTED && recs[i].record_id) {
            r->seen = ts_room(r->seen, r->nseen, &r->capseen, sizeof *r->seen);
            r->seen[r->nseen++] = strdup(recs[i].record_id);
        }
    }
    pthread_mutex_unlock(&r->mu);
    return down ? -1 : 0;
}

static int ts_rec_reject(void *hub, relais_instance *inst, const char *record_id,
                         const char *where, const char *reason, const char *raw, size_t rawlen)
{
    (void)inst;
    ts_recorder *r = hub;
    pthread_mutex_lock(&r->mu);
    int fails = r->reject_fails;
    if (!fails) {
        ts_rejected *j = calloc(1, sizeof *j);
        if (!j) abort();
        j->record_id = ts_dup0(record_id);
        j->where = ts_dup0(where);
        j->reason = ts_dup0(reason);
        j->raw = raw ? strndup(raw, rawlen) : NULL;
        r->rejs = ts_room(r->rejs, r->nrejs, &r->caprejs, sizeof *r->rejs);
        r->rejs[r->nrejs++] = j;
    }
    pthread_mutex_unlock(&r->mu);
    return fails ? -1 : 0;
}

static int ts_rec_accepting(void *hub, const relais_instance *inst)
{
    (void)inst;
    ts_recorder *r = hub;
    pthread_mutex_lock(&r->mu);
    int a = r->accepting;
    pthread_mutex_unlock(&r->mu);
    return a;
}

static const relais_instance_ops ts_recorder_ops_table = {
    .submit = ts_rec_submit, .reject = ts_rec_reject, .accepting = ts_rec_accepting
};

const struct relais_instance_ops *ts_recorder_ops(void)
{
    return &ts_recorder_ops_table;
}

/* Set the failure knobs under the lock; NULL pointers leave a knob as it is. */
static void ts_rec_set(ts_recorder *r, const int *accepting, const long *budget, const int *fails)
{
    pthread_mutex_lock(&r->mu);
    if (accepting)
        r->accepting = *accepting;
    if (budget)
        r->submit_budget = *budget;
    if (fails)
        r->reject_fails = *fails;
    pthread_mutex_unlock(&r->mu);
}

void ts_recorder_set_accepting(ts_recorder *r, int accepting)
{
    ts_rec_set(r, &accepting, NULL, NULL);
}

void ts_recorder_set_submit_budget(ts_recorder *r, long calls)
{
    ts_rec_set(r, NULL, &calls, NULL);
}

void ts_recorder_set_reject_fails(ts_recorder *r, int fails)
{
    ts_rec_set(r, NULL, NULL, &fails);
}

void ts_recorder_set_down(ts_recorder *r, int down)
{
    long budget = down ? 0 : -1;
    ts_rec_set(r, NULL, &budget, &down);
}

/* Read one size_t field under the lock. */
static size_t ts_rec_count(ts_recorder *r, const size_t *field)
{
    pthread_mutex_lock(&r->mu);
    size_t n = *field;
    pthread_mutex_unlock(&r->mu);
    return n;
}

size_t ts_recorder_nsubs(ts_recorder *r) { return ts_rec_count(r, &r->nsubs); }
size_t ts_recorder_nrejs(ts_recorder *r) { return ts_rec_count(r, &r->nrejs); }
size_t ts_recorder_submit_calls(ts_recorder *r) { return ts_rec_count(r, &r->submit_calls); }
size_t ts_recorder_naccepted(ts_recorder *r) { return ts_rec_count(r, &r->nseen); }

const ts_submitted *ts_recorder_sub(ts_recorder *r, size_t i)
{
    pthread_mutex_lock(&r->mu);
    const ts_submitted *s = i < r->nsubs ? r->subs[i] : NULL;
    size_t n = r->nsubs;
    pthread_mutex_unlock(&r->mu);
    if (!s) fail_msg("ts_recorder_sub(%zu): only %zu records submitted", i, n);
    return s;
}

const ts_rejected *ts_recorder_rej(ts_recorder *r, size_t i)
{
    pthread_mutex_lock(&r->mu);
    const ts_rejected *j = i < r->nrejs ? r->rejs[i] : NULL;
    size_t n = r->nrejs;
    pthread_mutex_unlock(&r->mu);
    if (!j) fail_msg("ts_recorder_rej(%zu): only %zu rejections", i, n);
    return j;
}

const ts_submitted *ts_recorder_find(ts_recorder *r, const char *record_id)
{
    const ts_submitted *found = NULL;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->nsubs && !found; i++)
        if (r->subs[i]->record_id && strcmp(r->subs[i]->record_id, record_id) == 0)
            found = r->subs[i];
    pthread_mutex_unlock(&r->mu);
    return found;
}

relais_event *ts_event(const char *subject, const char *data_json)
{
    json_error_t je;
    json_t *d = json_loads(data_json, 0, &je);
    if (!d)
        fail_msg("ts_event: %s: %s", data_json, je.text);
    relais_record r = { .type = "fr.relais.grc.request.created", .subject = subject,
                        .record_id = "r-1", .data = d };
    char err[256];
    relais_event *ev = relais_event_build(&r, "desk", "ville", err, sizeof err);
    json_decref(d);
    if (!ev)
        fail_msg("ts_event: %s", err);
    return ev;
}

/* ---- ts_conn ------------------------------------------------------------------ */

int ts_conn_open(ts_conn *c, const relais_connector *desc, const char *name, unsigned mode,
                 const char *yaml, ts_recorder *rec, const char *bootstrap, char *err,
                 size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->desc = desc;
    yt_node *map = yt_load_buffer("test.yaml", yaml, strlen(yaml), err, errlen);
    assert_non_null(map);
    c->cfg = calloc(1, desc->config_size);
    relais_errlist errs;
    relais_errlist_init(&errs);
    int rc = relais_options_apply(desc->options, c->cfg, mode, map, NULL, "test.yaml", &errs);
    if (rc != 0)
        snprintf(err, errlen, "%s", errs.count ? errs.msgs[0] : "?");
    relais_errlist_free(&errs);
    yt_free(map);
    if (rc != 0)
        return -1;
    c->inst = relais_instance_new(name, "ville", mode, desc, c->cfg, ts_recorder_ops(), rec,
                                  bootstrap);
    if (desc->init(c->inst, c->cfg, &c->ctx, err, errlen) != 0)
        return -1;
    c->inst->ctx = c->ctx;
    return desc->start(c->ctx, err, errlen);
}

void ts_conn_close(ts_conn *c)
{
    if (c->ctx)
        c->desc->stop(c->ctx);
    c->desc->destroy(c->ctx);
    relais_instance_destroy(c->inst);
    relais_options_free(c->desc->options, c->cfg);
    free(c->cfg);
}
