/*
 * retention.c - `relais retention run` (see retention.h): payloads past
 * their retention emptied in one transaction, committed only after the
 * signed "purged" step that tells what was done is in the journal.
 *
 * Every statement names its columns: the relais_retention role may read
 * events' id, type, received_at and purged_at and write body and purged_at
 * (schemas/sql/roles.sql), nothing more.
 *
 * Threads: none; the connection is the run's own.
 */
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>
#include "retention.h"
#include "router.h"

long relais_retention_secs(const relais_config *c, const char *type)
{
    for (size_t i = 0; i < c->retention.n_rules; i++)
        for (char **p = c->retention.rules[i].match; p && *p; p++)
            if (relais_pattern_match(*p, type)) return c->retention.rules[i].secs;
    return c->retention.secs;
}

/* "180 days", "12 hours", "90 seconds": a retention as people read it */
static void say_secs(long secs, char *buf, size_t len)
{
    if (secs % 86400 == 0) snprintf(buf, len, "%ld day%s", secs / 86400, secs == 86400 ? "" : "s");
    else if (secs % 3600 == 0) snprintf(buf, len, "%ld hour%s", secs / 3600, secs == 3600 ? "" : "s");
    else snprintf(buf, len, "%ld second%s", secs, secs == 1 ? "" : "s");
}

/* The events of one type past `secs` seconds: purged (unless dry), or kept
 * because a delivery may still need the payload. Columns: purged or due,
 * kept, cut-off. */
#define EVENTS_SQL \
    "WITH cut AS (SELECT now() - make_interval(secs => $2::bigint) AS t)," \
    " due AS (SELECT e.id, EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id" \
    "                              AND d.status IN ('pending', 'dead'))" \
    "                   OR EXISTS (SELECT 1 FROM unrouted u WHERE u.event_id = e.id) AS held" \
    "         FROM events e, cut WHERE e.type = $1 AND e.purged_at IS NULL AND e.received_at < cut.t)," \
    " upd AS (UPDATE events e SET body = NULL, purged_at = now() FROM due" \
    "         WHERE e.id = due.id AND NOT due.held AND $3::boolean RETURNING e.id)" \
    " SELECT (SELECT count(*) FROM due WHERE NOT held), (SELECT count(*) FROM due WHERE held)," \
    "        (SELECT relais_rfc3339(t) FROM cut), (SELECT count(*) FROM upd)"

#define REJECTIONS_SQL \
    "WITH cut AS (SELECT now() - make_interval(secs => $1::bigint) AS t)," \
    " due AS (SELECT x.id FROM rejections x, cut WHERE x.purged_at IS NULL AND x.at < cut.t)," \
    " upd AS (UPDATE rejections x SET raw = NULL, purged_at = now() FROM due" \
    "         WHERE x.id = due.id AND $2::boolean RETURNING x.id)" \
    " SELECT (SELECT count(*) FROM due), (SELECT relais_rfc3339(t) FROM cut)"

static PGresult *q(PGconn *c, const char *sql, int n, const char *const *vals, char *errstr, size_t errlen)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        snprintf(errstr, errlen, "journal: %s", PQerrorMessage(c));
        errstr[strcspn(errstr, "\n")] = '\0';
        PQclear(r);
        return NULL;
    }
    return r;
}

int relais_retention_run(const relais_config *c, const char *conninfo, relais_journal *j, int dry_run,
                         FILE *out, relais_retention_result *res, char *errstr, size_t errlen)
{
    memset(res, 0, sizeof *res);
    if (!dry_run && !j) {
        snprintf(errstr, errlen, "retention: a run writes a signed step: it needs the journal and the audit key");
        return -1;
    }
    int rc = -1;
    PGresult *types = NULL, *r = NULL;
    json_t *detail = json_pack("{s:o, s:o}", "events", json_object(), "rejections", json_object());
    PGconn *pc = PQconnectdb(conninfo);
    if (PQstatus(pc) != CONNECTION_OK) {
        snprintf(errstr, errlen, "journal: %s", PQerrorMessage(pc));
        errstr[strcspn(errstr, "\n")] = '\0';
        goto out;
    }
    if (!detail) {
        snprintf(errstr, errlen, "out of memory");
        goto out;
    }
    if (!(r = q(pc, "BEGIN", 0, NULL, errstr, errlen))) goto rollback;
    PQclear(r);
    types = q(pc, "SELECT type FROM events WHERE purged_at IS NULL GROUP BY type ORDER BY type", 0, NULL,
              errstr, errlen);
    if (!types) goto rollback;
    const char *apply = dry_run ? "false" : "true";
    for (int i = 0; i < PQntuples(types); i++) {
        const char *type = PQgetvalue(types, i, 0);
        long secs = relais_retention_secs(c, type);
        if (secs < 0) continue;                             /* kept for good */
        char ssecs[24], said[64];
        snprintf(ssecs, sizeof ssecs, "%ld", secs);
        say_secs(secs, said, sizeof said);
        const char *vals[3] = { type, ssecs, apply };
        if (!(r = q(pc, EVENTS_SQL, 3, vals, errstr, errlen))) goto rollback;
        long due = strtol(PQgetvalue(r, 0, 0), NULL, 10), kept = strtol(PQgetvalue(r, 0, 1), NULL, 10);
        if (due || kept) {
            res->events_purged += due;
            res->events_kept += kept;
            json_object_set_new(json_object_get(detail, "events"), type,
                                json_pack("{s:I, s:I, s:s, s:I}", "purged", (json_int_t)due, "kept", (json_int_t)kept,
                                          "received_before", PQgetvalue(r, 0, 2), "retention_s", (json_int_t)secs));
            fprintf(out, "%s: %ld payload(s) %s (received before %s: %s)", type, due,
                    dry_run ? "to purge" : "purged", PQgetvalue(r, 0, 2), said);
            if (kept) fprintf(out, "; %ld kept: a delivery pending or dead, or not routed yet", kept);
            fputc('\n', out);
        }
        PQclear(r);
    }
    if (c->retention.secs >= 0) {
        char ssecs[24];
        snprintf(ssecs, sizeof ssecs, "%ld", c->retention.secs);
        const char *vals[2] = { ssecs, apply };
        if (!(r = q(pc, REJECTIONS_SQL, 2, vals, errstr, errlen))) goto rollback;
        res->rejections_purged = strtol(PQgetvalue(r, 0, 0), NULL, 10);
        json_object_set_new(detail, "rejections", json_pack("{s:I, s:s, s:I}", "purged", (json_int_t)res->rejections_purged,
                                                             "before", PQgetvalue(r, 0, 1), "retention_s", (json_int_t)c->retention.secs));
        if (res->rejections_purged)
            fprintf(out, "rejections: %ld raw input(s) %s (before %s)\n", res->rejections_purged,
                    dry_run ? "to purge" : "purged", PQgetvalue(r, 0, 1));
        PQclear(r);
    }
    if (dry_run) {
        fprintf(out, "dry run: %ld event payload(s) and %ld rejection(s) to purge, %ld kept; nothing changed\n",
                res->events_purged, res->rejections_purged, res->events_kept);
        rc = 0;
        goto rollback;
    }
    /* the signed record of the run first: no purge without it */
    char *text = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
    int noted = text ? relais_journal_note(j, NULL, "purged", NULL, text, errstr, errlen) : -1;
    if (!text) snprintf(errstr, errlen, "out of memory");
    free(text);
    if (noted != 0) goto rollback;
    if (!(r = q(pc, "COMMIT", 0, NULL, errstr, errlen))) {
        fprintf(out, "retention: the step \"purged\" was journaled but the purge did not commit\n");
        goto out;
    }
    PQclear(r);
    fprintf(out, "purged %ld event payload(s) and %ld rejection(s), %ld kept; journaled as step \"purged\"\n",
            res->events_purged, res->rejections_purged, res->events_kept);
    rc = 0;
    goto out;
rollback:
    PQclear(PQexec(pc, "ROLLBACK"));
out:
    PQclear(types);
    PQfinish(pc);
    json_decref(detail);
    return rc;
}
