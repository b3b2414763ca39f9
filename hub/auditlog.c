/*
 * auditlog.c - `relais audit verify` against the journal (see auditlog.h):
 * every chain stream is read back in seq order, each entry rebuilt from the
 * stored rows exactly as the writer hashed it, and checked with
 * relais_audit_verify_stream together with the checkpoints read from the
 * witness file. Then the rows that should be signed and are not (written
 * around the hub after the trail began) are looked for.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include "audit.h"
#include "auditlog.h"
#include "event_int.h"
#include "relais/relais.h"

#define COMP "audit"
#define US(col) "(extract(epoch FROM " col ") * 1000000)::bigint"

void relais_auditlog_paths(const relais_config *c, char *key, size_t keylen, char *cps, size_t cpslen)
{
    const char *dir = c && c->hub.state_dir ? c->hub.state_dir : ".";
    if (c && c->audit.key_file) snprintf(key, keylen, "%s", c->audit.key_file);
    else snprintf(key, keylen, "%s/audit.key", dir);
    if (c && c->audit.checkpoints) snprintf(cps, cpslen, "%s", c->audit.checkpoints);
    else snprintf(cps, cpslen, "%s/audit.checkpoints", dir);
}

int relais_auditlog_key(const char *path, int create, unsigned char **key, size_t *keylen,
                        char *errstr, size_t errlen)
{
    if (create) {
        int made = 0;
        if (relais_audit_key_ensure(path, &made, errstr, errlen) != 0) return -1;
        if (made)
            relais_logf(RELAIS_LOG_WARN, COMP, "made a new audit key in %s: keep a copy outside this machine "
                        "(verifying the journal needs it; docs/SECURITY.md)", path);
    }
    return relais_audit_key_load(path, key, keylen, errstr, errlen);
}

/* ---- verify ------------------------------------------------------------------------------ */

typedef struct vctx {
    PGconn *c;
    const unsigned char *key;
    size_t keylen;
    FILE *out;
    relais_auditlog_result *res;
    const char *from, *to;      /* microseconds as text, or NULL */
} vctx;

/* Connects v->c and opens one read-only snapshot for the whole run (writers
 * may be running). 0, or -1 with errstr. */
static int snapshot_open(vctx *v, const char *conninfo, char *errstr, size_t errlen)
{
    v->c = PQconnectdb(conninfo);
    if (PQstatus(v->c) != CONNECTION_OK) {
        snprintf(errstr, errlen, "journal: %s", PQerrorMessage(v->c));
        errstr[strcspn(errstr, "\n")] = '\0';
        return -1;
    }
    PGresult *r = PQexec(v->c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
        snprintf(errstr, errlen, "journal: BEGIN: %s", PQerrorMessage(v->c));
        errstr[strcspn(errstr, "\n")] = '\0';
        return -1;
    }
    return 0;
}

static PGresult *q(vctx *v, const char *sql, int n, const char *const *vals, char *errstr, size_t errlen)
{
    PGresult *r = PQexecParams(v->c, sql, n, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(errstr, errlen, "journal: %s", PQerrorMessage(v->c));
        errstr[strcspn(errstr, "\n")] = '\0';
        PQclear(r);
        return NULL;
    }
    return r;
}

static int isnull(const PGresult *r, int row, int col) { return PQgetisnull(r, row, col); }
static const char *val(const PGresult *r, int row, int col) { return PQgetvalue(r, row, col); }

static void set_text(json_t *o, const char *k, const PGresult *r, int row, int col)
{
    if (!isnull(r, row, col)) json_object_set_new(o, k, json_string(val(r, row, col)));
}

static void set_int(json_t *o, const char *k, const PGresult *r, int row, int col)
{
    if (!isnull(r, row, col)) json_object_set_new(o, k, json_integer(strtoll(val(r, row, col), NULL, 10)));
}

/* The entry of one row of the stream query (columns: see STREAM_SQL).
 * *missing: the row the step covers is gone. */
static json_t *rebuild(const PGresult *r, int row, int *missing)
{
    *missing = 0;
    json_t *o = json_object();
    set_int(o, "at", r, row, 5);
    set_text(o, "event_id", r, row, 6);
    set_text(o, "step", r, row, 7);
    set_text(o, "destination", r, row, 8);
    set_int(o, "attempt", r, row, 9);
    set_int(o, "status", r, row, 10);
    set_text(o, "detail", r, row, 11);
    const char *step = val(r, row, 7);
    if (strcmp(step, "received") == 0 && !isnull(r, row, 6)) {
        if (isnull(r, row, 12)) {
            *missing = 1;
            return o;
        }
        json_t *e = json_object();
        set_text(e, "id", r, row, 12);
        set_text(e, "tenant", r, row, 13);
        set_text(e, "source", r, row, 14);
        set_text(e, "record_id", r, row, 15);
        set_text(e, "type", r, row, 16);
        set_text(e, "subject", r, row, 17);
        set_text(e, "correlation_id", r, row, 18);
        set_int(e, "received_at", r, row, 19);
        if (!isnull(r, row, 20)) {           /* the body as stored, hashed again (BODY_SHA) */
            set_text(e, "body_sha256", r, row, 20);
        } else {                             /* purged by retention: the hash kept */
            set_text(e, "body_sha256", r, row, 21);
        }
        json_object_set_new(o, "event", e);
    } else if (strcmp(step, "rejected") == 0) {
        if (isnull(r, row, 22)) {
            *missing = 1;
            return o;
        }
        json_t *x = json_object();
        set_int(x, "at", r, row, 23);
        set_text(x, "source", r, row, 24);
        set_text(x, "record_id", r, row, 25);
        set_text(x, "location", r, row, 26);
        set_text(x, "reason", r, row, 27);
        set_text(x, "raw_sha256", r, row, 28);   /* of the raw input now, or the hash kept once purged */
        json_object_set_new(o, "rejection", x);
    }
    return o;
}

/* The SHA-256 of an event's body as stored now (NULL once purged),
 * computed by PostgreSQL so that no payload leaves the database: read
 * through the views audit_events and audit_rejections (migration 6), so
 * that a role that may not read payloads (relais_auditor) verifies too. */
#define BODY_SHA "e.body_sha256_now"

#define STREAM_SQL \
    "SELECT s.seq, s.prev_hash, s.hash, s.mac, s.id, " US("s.at") ", s.event_id, s.step, s.destination," \
    "       s.attempt, s.status, s.detail," \
    "       e.id, e.tenant, e.source, e.record_id, e.type, e.subject, e.correlation_id, " US("e.received_at") "," \
    "       " BODY_SHA ", e.body_sha256," \
    "       x.id, " US("x.at") ", x.source, x.record_id, x.location, x.reason, x.raw_sha256" \
    " FROM steps s" \
    " LEFT JOIN audit_events e ON s.step = 'received' AND e.id = s.event_id" \
    " LEFT JOIN (SELECT id, at, source, record_id, location, reason, stream, seq," \
    "                   coalesce(raw_sha256_now, raw_sha256) AS raw_sha256 FROM audit_rejections) x" \
    "   ON s.step = 'rejected' AND x.stream = s.stream AND x.seq = s.seq" \
    " WHERE s.stream = $1 AND s.seq BETWEEN $2::bigint AND $3::bigint ORDER BY s.seq, s.id"

static void say_fault(vctx *v, const char *stream, const relais_audit_report *rep)
{
    v->res->faults++;
    fprintf(v->out, "FAULT %s: stream %s, entry %lld%s%s: %s\n", relais_audit_fault_name(rep->fault), stream,
            (long long)rep->seq, rep->ref[0] ? ", " : "", rep->ref, rep->detail);
}

/* One stream: entries lo..hi (lo = 1 unless a time range starts later). */
static int verify_stream(vctx *v, const char *stream, int64_t lo, int64_t hi, int64_t top,
                         const relais_audit_cplist *cps, char *errstr, size_t errlen)
{
    char slo[24], shi[24];
    snprintf(slo, sizeof slo, "%lld", (long long)lo);
    snprintf(shi, sizeof shi, "%lld", (long long)hi);
    const char *vals[3] = { stream, slo, shi };
    PGresult *r = q(v, STREAM_SQL, 3, vals, errstr, errlen);
    if (!r) return -1;
    int n = PQntuples(r);
    relais_audit_entry *e = calloc((size_t)n + 1, sizeof *e);
    char **bytes = calloc((size_t)n + 1, sizeof *bytes);
    char (*refs)[96] = calloc((size_t)n + 1, sizeof *refs);
    int *missing = calloc((size_t)n + 1, sizeof *missing);
    relais_audit_checkpoint *mine = calloc(cps->n + 1, sizeof *mine);
    int rc = -1;
    if (!e || !bytes || !refs || !missing || !mine) {
        snprintf(errstr, errlen, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        json_t *o = rebuild(r, i, &missing[i]);
        bytes[i] = relais_audit_canonical(o, &e[i].len);
        json_decref(o);
        snprintf(refs[i], sizeof refs[i], "step %s (%s%s%.40s)", val(r, i, 4), val(r, i, 7),
                 isnull(r, i, 6) ? "" : " ", val(r, i, 6));
        e[i].seq = strtoll(val(r, i, 0), NULL, 10);
        e[i].prev = val(r, i, 1);
        e[i].hash = val(r, i, 2);
        e[i].mac = val(r, i, 3);
        e[i].bytes = bytes[i] ? bytes[i] : "";
        e[i].ref = refs[i];
    }
    size_t nmine = 0;
    relais_audit_report rep;
    for (size_t k = 0; k < cps->n; k++) {
        const relais_audit_cp *cp = &cps->v[k];
        if (strcmp(cp->stream, stream) != 0) continue;
        v->res->checkpoints++;
        if (cp->seq > top) {                 /* what the checkpoint saw is no longer there */
            memset(&rep, 0, sizeof rep);
            char mac[RELAIS_AUDIT_HEX];
            if (relais_audit_mac(v->key, v->keylen, stream, cp->seq, cp->hash, mac) != 0
                || CRYPTO_memcmp(mac, cp->mac, 64) != 0)
                continue;
            rep.fault = RELAIS_AUDIT_TRUNCATED;
            rep.seq = cp->seq;
            snprintf(rep.detail, sizeof rep.detail,
                     "the checkpoint at line %d saw entry %lld but the journal ends at %lld: its tail was cut off",
                     cp->line, (long long)cp->seq, (long long)top);
            say_fault(v, stream, &rep);
            rc = 1;
            goto out;
        }
        if (cp->seq < lo || cp->seq > hi) continue;
        mine[nmine++] = (relais_audit_checkpoint){ cp->seq, cp->hash, cp->mac };
    }
    const char *first_prev = lo > 1 && n > 0 ? e[0].prev : NULL;
    v->res->entries += n;
    if (relais_audit_verify_stream(v->key, v->keylen, stream, lo, first_prev, e, (size_t)n, mine, nmine, &rep)) {
        int64_t at = rep.seq - lo;
        if (at >= 0 && at < n && missing[at] && rep.fault == RELAIS_AUDIT_MODIFIED) {
            rep.fault = RELAIS_AUDIT_DELETED;
            snprintf(rep.detail, sizeof rep.detail, "the %s this signed step covers was deleted",
                     strcmp(val(r, (int)at, 7), "received") == 0 ? "event" : "rejection");
        }
        say_fault(v, stream, &rep);
        rc = 1;
    } else {
        rc = 0;
    }
out:
    for (int i = 0; bytes && i < n; i++) free(bytes[i]);
    free(bytes);
    free(e);
    free(refs);
    free(missing);
    free(mine);
    PQclear(r);
    return rc;
}

/* Rows that should carry a proof and do not, written after the trail
 * began; and rejections that name a step that is not theirs. */
static int unsigned_rows(vctx *v, char *errstr, size_t errlen)
{
    static const char sql[] =
        "WITH ep AS (SELECT min(started_at) AS t FROM audit_epoch)"
        " (SELECT 'step', s.id::text, s.step FROM steps s, ep WHERE s.stream IS NULL AND s.at >= ep.t"
        "   AND ($1::bigint IS NULL OR " US("s.at") " >= $1::bigint) AND ($2::bigint IS NULL OR " US("s.at") " <= $2::bigint)"
        "   ORDER BY s.id LIMIT 20)"
        " UNION ALL (SELECT 'event', e.id::text, e.type FROM events e, ep WHERE e.received_at >= ep.t"
        "   AND ($1::bigint IS NULL OR " US("e.received_at") " >= $1::bigint)"
        "   AND ($2::bigint IS NULL OR " US("e.received_at") " <= $2::bigint)"
        "   AND NOT EXISTS (SELECT 1 FROM steps s WHERE s.event_id = e.id AND s.step = 'received'"
        "                   AND s.stream IS NOT NULL) LIMIT 20)"
        " UNION ALL (SELECT 'rejection', x.id::text, x.source FROM rejections x, ep"
        "   WHERE ($1::bigint IS NULL OR " US("x.at") " >= $1::bigint) AND ($2::bigint IS NULL OR " US("x.at") " <= $2::bigint)"
        "   AND ((x.stream IS NULL AND x.at >= ep.t) OR (x.stream IS NOT NULL AND NOT EXISTS"
        "        (SELECT 1 FROM steps s WHERE s.stream = x.stream AND s.seq = x.seq AND s.step = 'rejected')))"
        "   ORDER BY x.id LIMIT 20)";
    const char *vals[2] = { v->from, v->to };
    PGresult *r = q(v, sql, 2, vals, errstr, errlen);
    if (!r) return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        v->res->faults++;
        fprintf(v->out, "FAULT inserted: %s %s (%s) is not covered by any signed entry: written around the hub\n",
                val(r, i, 0), val(r, i, 1), val(r, i, 2));
    }
    int n = PQntuples(r);
    PQclear(r);
    return n ? 1 : 0;
}

int relais_auditlog_verify(const char *conninfo, const unsigned char *key, size_t keylen, const char *cps_path,
                           int64_t from_us, int64_t to_us, FILE *out, relais_auditlog_result *res,
                           char *errstr, size_t errlen)
{
    memset(res, 0, sizeof *res);
    relais_audit_cplist cps;
    int torn = 0;
    if (relais_audit_checkpoints_load(cps_path, &cps, &torn, errstr, errlen) != 0) return -1;
    if (torn) fprintf(out, "note: %s: the last line was cut short (a crash while writing it); skipped\n", cps_path);
    vctx v = { .key = key, .keylen = keylen, .out = out, .res = res };
    char sfrom[24], sto[24];
    if (from_us) { snprintf(sfrom, sizeof sfrom, "%lld", (long long)from_us); v.from = sfrom; }
    if (to_us) { snprintf(sto, sizeof sto, "%lld", (long long)to_us); v.to = sto; }
    int rc = -1;
    PGresult *r = NULL;
    if (snapshot_open(&v, conninfo, errstr, errlen) != 0) goto out;
    const char *vals[2] = { v.from, v.to };
    r = q(&v, "SELECT stream, max(seq),"
              " min(seq) FILTER (WHERE $1::bigint IS NULL OR " US("at") " >= $1::bigint),"
              " max(seq) FILTER (WHERE $2::bigint IS NULL OR " US("at") " <= $2::bigint)"
              " FROM steps WHERE stream IS NOT NULL GROUP BY stream ORDER BY min(at), stream",
          2, vals, errstr, errlen);
    if (!r) goto out;
    int found = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        if (isnull(r, i, 2) || isnull(r, i, 3)) continue;        /* nothing of it in the range */
        int64_t top = strtoll(val(r, i, 1), NULL, 10);
        int64_t lo = v.from ? strtoll(val(r, i, 2), NULL, 10) : 1;
        int64_t hi = strtoll(val(r, i, 3), NULL, 10);
        if (hi < lo) continue;
        res->streams++;
        int s = verify_stream(&v, val(r, i, 0), lo, hi, top, &cps, errstr, errlen);
        if (s < 0) goto out;
        if (s) found = 1;
    }
    /* streams the checkpoints saw that the journal no longer has at all */
    for (size_t k = 0; k < cps.n; k++) {
        const relais_audit_cp *cp = &cps.v[k];
        if ((from_us && cp->at_us < from_us) || (to_us && cp->at_us > to_us)) continue;
        int known = 0;
        for (int i = 0; i < PQntuples(r) && !known; i++) known = strcmp(val(r, i, 0), cp->stream) == 0;
        if (known) continue;
        int seen_before = 0;
        for (size_t p = 0; p < k && !seen_before; p++) seen_before = strcmp(cps.v[p].stream, cp->stream) == 0;
        if (seen_before) continue;
        char mac[RELAIS_AUDIT_HEX];
        if (relais_audit_mac(key, keylen, cp->stream, cp->seq, cp->hash, mac) != 0 || CRYPTO_memcmp(mac, cp->mac, 64) != 0)
            continue;
        res->faults++;
        found = 1;
        fprintf(out, "FAULT truncated: stream %s: the checkpoint at line %d saw %lld entries; the journal has none\n",
                cp->stream, cp->line, (long long)cp->seq);
    }
    int u = unsigned_rows(&v, errstr, errlen);
    if (u < 0) goto out;
    if (u) found = 1;
    PQclear(r);
    r = q(&v, "SELECT (SELECT count(*) FROM steps WHERE stream IS NULL"
              "          AND at < (SELECT min(started_at) FROM audit_epoch)),"
              "       (SELECT count(*) FROM events WHERE purged_at IS NOT NULL)", 0, NULL, errstr, errlen);
    if (!r) goto out;
    res->legacy = strtol(val(r, 0, 0), NULL, 10);
    res->purged = strtol(val(r, 0, 1), NULL, 10);
    fprintf(out, "%s: %ld entries in %ld streams, %ld checkpoints%s; %ld faults",
            found ? "NOT VERIFIED" : "verified", res->entries, res->streams, res->checkpoints,
            from_us || to_us ? " (time range)" : "", res->faults);
    if (res->purged) fprintf(out, "; %ld event bodies purged by retention (their hashes verified)", res->purged);
    if (res->legacy) fprintf(out, "; %ld steps from before the trail began (not covered)", res->legacy);
    fputc('\n', out);
    rc = found ? 1 : 0;
out:
    PQclear(r);
    PQfinish(v.c);
    relais_audit_cplist_free(&cps);
    return rc;
}

/* ---- export ------------------------------------------------------------------------------ */

typedef struct seg { char *stream; int64_t lo, hi; int64_t *sel; size_t nsel, cap; } seg;

static int seg_add(seg **v, size_t *n, size_t *cap, const char *stream, int64_t seq)
{
    if (*n && strcmp((*v)[*n - 1].stream, stream) == 0) {
        seg *s = &(*v)[*n - 1];
        if (s->nsel == s->cap) {
            size_t c = s->cap ? s->cap * 2 : 64;
            int64_t *p = realloc(s->sel, c * sizeof *p);
            if (!p) return -1;
            s->sel = p;
            s->cap = c;
        }
        s->sel[s->nsel++] = seq;
        if (seq < s->lo) s->lo = seq;
        if (seq > s->hi) s->hi = seq;
        return 0;
    }
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        seg *p = realloc(*v, c * sizeof *p);
        if (!p) return -1;
        *v = p;
        *cap = c;
    }
    seg *s = &(*v)[(*n)++];
    memset(s, 0, sizeof *s);
    s->stream = strdup(stream);
    s->lo = s->hi = seq;
    if (!s->stream) return -1;
    return seg_add(v, n, cap, stream, seq);
}

static int is_selected(const seg *s, int64_t seq)
{
    size_t lo = 0, hi = s->nsel;              /* sel is sorted (ORDER BY stream, seq) */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->sel[mid] < seq) lo = mid + 1;
        else hi = mid;
    }
    return lo < s->nsel && s->sel[lo] == seq;
}

static int emit(FILE *out, json_t *o)
{
    int rc = o && json_dumpf(o, out, JSON_COMPACT | JSON_SORT_KEYS) == 0 && fputc('\n', out) != EOF ? 0 : -1;
    json_decref(o);
    return rc;
}

int relais_auditlog_export(const char *conninfo, const relais_auditlog_selection *sel, const char *cps_path,
                           FILE *out, long *entries, char *errstr, size_t errlen)
{
    *entries = 0;
    relais_audit_cplist cps;
    if (relais_audit_checkpoints_load(cps_path, &cps, NULL, errstr, errlen) != 0) return -1;
    vctx v = { .out = out };
    relais_auditlog_result res;
    memset(&res, 0, sizeof res);
    v.res = &res;
    seg *segs = NULL;
    size_t nseg = 0, capseg = 0;
    char *ids = NULL;
    int rc = -1;
    PGresult *r = NULL;
    if (snapshot_open(&v, conninfo, errstr, errlen) != 0) goto out;
    /* the selected entries */
    char sfrom[24], sto[24];
    snprintf(sfrom, sizeof sfrom, "%lld", (long long)sel->from_us);
    snprintf(sto, sizeof sto, "%lld", (long long)sel->to_us);
    if (sel->event_ids) {
        size_t len = 3;
        for (size_t i = 0; i < sel->n_event_ids; i++) len += strlen(sel->event_ids[i]) + 1;
        ids = malloc(len);
        if (!ids) { snprintf(errstr, errlen, "out of memory"); goto out; }
        size_t p = 0;
        ids[p++] = '{';
        for (size_t i = 0; i < sel->n_event_ids; i++)
            p += (size_t)snprintf(ids + p, len - p, "%s%s", i ? "," : "", sel->event_ids[i]);
        snprintf(ids + p, len - p, "}");
    }
    const char *vals[4] = { sel->from_us ? sfrom : NULL, sel->to_us ? sto : NULL, sel->correlation, ids };
    r = q(&v, "SELECT s.stream, s.seq FROM steps s WHERE s.stream IS NOT NULL"
              " AND ($1::bigint IS NULL OR " US("s.at") " >= $1::bigint)"
              " AND ($2::bigint IS NULL OR " US("s.at") " <= $2::bigint)"
              " AND ($3::text IS NULL OR s.event_id IN (SELECT id FROM events WHERE correlation_id = $3"
              "                                         OR id::text = $3))"
              " AND ($4::uuid[] IS NULL OR s.event_id = ANY($4::uuid[]))"
              " ORDER BY s.stream, s.seq", 4, vals, errstr, errlen);
    if (!r) goto out;
    for (int i = 0; i < PQntuples(r); i++) {
        if (seg_add(&segs, &nseg, &capseg, val(r, i, 0), strtoll(val(r, i, 1), NULL, 10)) != 0) {
            snprintf(errstr, errlen, "out of memory");
            goto out;
        }
    }
    PQclear(r);
    /* a role that may not read payloads (relais_auditor) exports the proofs
     * and the bodies' hashes, not the bodies */
    r = q(&v, "SELECT has_column_privilege('events', 'body', 'SELECT')", 0, NULL, errstr, errlen);
    if (!r) goto out;
    int bodies = strcmp(val(r, 0, 0), "t") == 0 && !sel->no_bodies;
    PQclear(r);
    r = NULL;
    char now[40];
    relais_time_rfc3339(relais_now_us(), now, sizeof now);
    if (emit(out, json_pack("{s:i,s:s,s:s,s:I,s:b}", "relais_audit_export", 1, "created_at", now,
                            "selection", sel->label ? sel->label : "", "streams", (json_int_t)nseg,
                            "bodies", bodies)) != 0)
        goto write_error;
    for (size_t k = 0; k < nseg; k++) {
        seg *s = &segs[k];
        char slo[24], shi[24];
        snprintf(slo, sizeof slo, "%lld", (long long)s->lo);
        snprintf(shi, sizeof shi, "%lld", (long long)s->hi);
        const char *sv[3] = { s->stream, slo, shi };
        r = q(&v, STREAM_SQL, 3, sv, errstr, errlen);
        if (!r) goto out;
        if (emit(out, json_pack("{s:s,s:I,s:I,s:s}", "stream", s->stream, "first_seq", (json_int_t)s->lo,
                                "last_seq", (json_int_t)s->hi, "first_prev",
                                PQntuples(r) ? val(r, 0, 1) : "")) != 0)
            goto write_error;
        for (int i = 0; i < PQntuples(r); i++) {
            int64_t seq = strtoll(val(r, i, 0), NULL, 10);
            json_t *o = json_pack("{s:s,s:I,s:s,s:s,s:s}", "stream", s->stream, "seq", (json_int_t)seq,
                                  "prev_hash", val(r, i, 1), "hash", val(r, i, 2), "mac", val(r, i, 3));
            if (o && is_selected(s, seq)) {
                int missing;
                json_object_set_new(o, "entry", rebuild(r, i, &missing));
                if (bodies && !isnull(r, i, 12) && strcmp(val(r, i, 7), "received") == 0) {
                    const char *bv[1] = { val(r, i, 12) };
                    PGresult *b = q(&v, "SELECT body::text FROM events WHERE id = $1::uuid AND body IS NOT NULL",
                                    1, bv, errstr, errlen);
                    if (!b) { json_decref(o); goto out; }
                    if (PQntuples(b)) json_object_set_new(o, "body", json_string(val(b, 0, 0)));
                    PQclear(b);
                }
            }
            if (emit(out, o) != 0) goto write_error;
            ++*entries;
        }
        PQclear(r);
        r = NULL;
        for (size_t c = 0; c < cps.n; c++) {
            const relais_audit_cp *cp = &cps.v[c];
            if (strcmp(cp->stream, s->stream) != 0 || cp->seq < s->lo || cp->seq > s->hi) continue;
            char at[40];
            relais_time_rfc3339(cp->at_us, at, sizeof at);
            if (emit(out, json_pack("{s:{s:s,s:I,s:s,s:s,s:s}}", "checkpoint", "stream", cp->stream,
                                    "seq", (json_int_t)cp->seq, "hash", cp->hash, "mac", cp->mac, "at", at)) != 0)
                goto write_error;
        }
    }
    if (emit(out, json_pack("{s:b,s:I}", "end", 1, "entries", (json_int_t)*entries)) != 0 || fflush(out) != 0)
        goto write_error;
    rc = 0;
    goto out;
write_error:
    snprintf(errstr, errlen, "cannot write the extract: %s", strerror(errno));
out:
    PQclear(r);
    PQfinish(v.c);
    for (size_t k = 0; k < nseg; k++) {
        free(segs[k].stream);
        free(segs[k].sel);
    }
    free(segs);
    free(ids);
    relais_audit_cplist_free(&cps);
    return rc;
}

/* ---- offline verification of an extract -------------------------------------------------- */

typedef struct xstream {
    char    *name;
    int64_t  lo, next, last;            /* last: the header's last_seq */
    char     prev[RELAIS_AUDIT_HEX];
    char   (*hashes)[RELAIS_AUDIT_HEX];   /* hashes[seq - lo] */
    size_t   nh, caph;
} xstream;

static int xfault(FILE *out, relais_auditlog_result *res, const char *kind, const char *stream, int64_t seq,
                  const char *detail)
{
    res->faults++;
    fprintf(out, "FAULT %s: stream %s, entry %lld: %s\n", kind, stream, (long long)seq, detail);
    return 1;
}

/* The stream just read ends where its header said. */
static int xstream_end(FILE *out, relais_auditlog_result *res, const xstream *x)
{
    if (!x->name || x->next == x->last + 1) return 0;
    char d[160];
    snprintf(d, sizeof d, "the extract announced entries up to %lld; they stop before", (long long)x->last);
    return xfault(out, res, "deleted", x->name, x->next, d);
}

int relais_auditlog_verify_export(const char *name, const char *buf, size_t len, const unsigned char *key,
                                  size_t keylen, FILE *out, relais_auditlog_result *res,
                                  char *errstr, size_t errlen)
{
    memset(res, 0, sizeof *res);
    xstream cur;
    memset(&cur, 0, sizeof cur);
    size_t pos = 0;
    int line = 0, header = 0, ended = 0, found = 0, bad = 0;
    const char *why = NULL;
    while (pos < len && !bad) {
        const char *start = buf + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t l = nl ? (size_t)(nl - start) : len - pos;
        pos += l + (nl ? 1 : 0);
        line++;
        if (!l) continue;
        json_error_t je;
        json_t *o = json_loadb(start, l, JSON_REJECT_DUPLICATES, &je);
        why = NULL;
        if (!json_is_object(o)) {
            why = o ? "not a JSON object" : je.text;
        } else if (ended) {
            why = "a line after the end of the extract";
        } else if (!header) {
            if (json_integer_value(json_object_get(o, "relais_audit_export")) != 1)
                why = "not a Relais audit extract (no header {\"relais_audit_export\":1,...})";
            header = 1;
        } else if (json_object_get(o, "end")) {
            json_int_t n = json_integer_value(json_object_get(o, "entries"));
            if (n != res->entries) why = "the trailer's entry count does not match the entries read";
            if (xstream_end(out, res, &cur)) found = 1;
            ended = 1;
        } else if (json_object_get(o, "checkpoint")) {
            const char *st = NULL, *h = NULL, *m = NULL;
            json_int_t seq = 0;
            if (json_unpack(json_object_get(o, "checkpoint"), "{s:s,s:I,s:s,s:s}", "stream", &st, "seq", &seq,
                            "hash", &h, "mac", &m) != 0 || !cur.name || strcmp(st, cur.name) != 0) {
                why = "a checkpoint must name the stream just read and have stream, seq, hash, mac";
            } else {
                char mac[RELAIS_AUDIT_HEX];
                res->checkpoints++;
                if (relais_audit_mac(key, keylen, st, seq, h, mac) != 0 || strlen(m) != 64
                    || CRYPTO_memcmp(mac, m, 64) != 0) {
                    fprintf(out, "note: line %d: a checkpoint with a wrong MAC, ignored\n", line);
                } else if (seq >= cur.lo && seq < cur.lo + (int64_t)cur.nh
                           && strcmp(cur.hashes[seq - cur.lo], h) != 0) {
                    found = xfault(out, res, "rewritten", st, seq, "the extract's hash at this checkpoint is not the one it saw");
                }
            }
        } else if (json_object_get(o, "first_seq")) {
            const char *st = NULL, *fp = NULL;
            json_int_t lo = 0, last = 0;
            if (json_unpack(o, "{s:s,s:I,s:I,s:s}", "stream", &st, "first_seq", &lo, "last_seq", &last,
                            "first_prev", &fp) != 0 || lo < 1 || last < lo) {
                why = "a stream header needs stream, first_seq (>= 1), last_seq (>= first_seq) and first_prev";
            } else {
                if (xstream_end(out, res, &cur)) found = 1;
                free(cur.name);
                free(cur.hashes);
                memset(&cur, 0, sizeof cur);
                cur.name = strdup(st);
                cur.lo = cur.next = lo;
                cur.last = last;
                snprintf(cur.prev, sizeof cur.prev, "%s", fp);
                res->streams++;
                if (!cur.name) why = "out of memory";
            }
        } else {
            const char *st = NULL, *pv = NULL, *h = NULL, *m = NULL;
            json_int_t seq = 0;
            if (json_unpack(o, "{s:s,s:I,s:s,s:s,s:s}", "stream", &st, "seq", &seq, "prev_hash", &pv, "hash", &h,
                            "mac", &m) != 0 || !cur.name || strcmp(st, cur.name) != 0) {
                why = "an entry needs stream (the one just announced), seq, prev_hash, hash and mac";
            } else {
                res->entries++;
                char d[200], hx[RELAIS_AUDIT_HEX], mac[RELAIS_AUDIT_HEX];
                json_t *entry = json_object_get(o, "entry");
                json_t *body = json_object_get(o, "body");
                if (seq != cur.next) {
                    snprintf(d, sizeof d, "entry %lld expected: %s", (long long)cur.next,
                             seq > cur.next ? "entries were taken out of the extract" : "a number repeated");
                    found = xfault(out, res, seq > cur.next ? "deleted" : "inserted", st, seq, d);
                } else if (strcmp(pv, cur.prev) != 0) {
                    found = xfault(out, res, "reordered", st, seq, "its link does not name the entry before it");
                } else if (relais_audit_mac(key, keylen, st, seq, h, mac) != 0 || strlen(m) != 64
                           || CRYPTO_memcmp(mac, m, 64) != 0) {
                    found = xfault(out, res, "inserted", st, seq, "its hash is not signed by the audit key");
                } else if (entry) {
                    size_t bl;
                    char *bytes = relais_audit_canonical(entry, &bl);
                    if (bytes) relais_audit_chain(pv, bytes, bl, hx);
                    free(bytes);
                    if (!bytes || strcmp(hx, h) != 0)
                        found = xfault(out, res, "modified", st, seq, "the content no longer gives its hash");
                    else if (json_is_string(body)) {
                        const char *want = json_string_value(json_object_get(json_object_get(entry, "event"),
                                                                             "body_sha256"));
                        relais_sha256_hex(json_string_value(body), json_string_length(body), hx);
                        if (!want || strcmp(hx, want) != 0)
                            found = xfault(out, res, "modified", st, seq, "the event body is not the one the entry covers");
                    }
                }
                if (cur.nh == cur.caph) {
                    size_t c = cur.caph ? cur.caph * 2 : 64;
                    void *p = realloc(cur.hashes, c * sizeof *cur.hashes);
                    if (!p) why = "out of memory";
                    else { cur.hashes = p; cur.caph = c; }
                }
                if (!why) {
                    snprintf(cur.hashes[cur.nh++], RELAIS_AUDIT_HEX, "%s", h);
                    snprintf(cur.prev, sizeof cur.prev, "%s", h);
                    cur.next = seq + 1;
                }
            }
        }
        json_decref(o);
        if (why) {
            snprintf(errstr, errlen, "%s:%d: %s", name, line, why);
            bad = 1;
        }
    }
    free(cur.name);
    free(cur.hashes);
    if (bad) return -1;
    if (!header || !ended) {
        snprintf(errstr, errlen, "%s:%d: %s", name, line,
                 !header ? "empty: not a Relais audit extract" : "no trailer: the extract was cut short");
        return -1;
    }
    fprintf(out, "%s: %ld entries in %ld streams, %ld checkpoints; %ld faults\n",
            found ? "NOT VERIFIED" : "verified", res->entries, res->streams, res->checkpoints, res->faults);
    return found ? 1 : 0;
}
