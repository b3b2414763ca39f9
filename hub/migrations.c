/*
 * migrations.c - the journal's schema as a versioned list of migrations.
 *
 * Each migration is constant SQL (no values are ever pasted into it) and runs
 * once; relais_schema_version(version, applied_at) records which ran. Never
 * edit a migration that has shipped: append a new one.
 *
 * relais_migrations_apply() runs on one connection, in one transaction:
 *   BEGIN; SELECT pg_advisory_xact_lock(key);  -- two hubs starting together wait here
 *   CREATE TABLE IF NOT EXISTS relais_schema_version ...;
 *   read max(version); run the newer migrations; record them; COMMIT.
 * The lock is released by COMMIT or ROLLBACK, so a failed migration leaves the
 * database as it was.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "migrations.h"

typedef struct migration {
    int         version;
    const char *name;
    const char *sql;
} migration;

/* Advisory lock key: the bytes of "relais" (any constant shared by every hub). */
#define MIGRATION_LOCK_KEY "125779476784499"

static const migration g_migrations[] = {
    { 1, "journal schema: events, steps, rejections, deliveries, xref",
      /* the inbox: one row per accepted event, deduplicated by (source instance, record id) */
      "CREATE TABLE events (\n"
      "    id             uuid PRIMARY KEY,\n"
      "    tenant         text NOT NULL,\n"
      "    source         text NOT NULL,\n"           /* connector instance that journaled it */
      "    record_id      text NOT NULL,\n"           /* id the source package gave the record */
      "    type           text NOT NULL,\n"
      "    subject        text,\n"
      "    correlation_id text NOT NULL,\n"
      "    received_at    timestamptz NOT NULL,\n"
      "    routed_at      timestamptz,\n"
      "    body           jsonb NOT NULL,\n"          /* the whole CloudEvent */
      /* record_id first: the dedupe key also serves lookups by record id (trace) */
      "    CONSTRAINT events_record_source_key UNIQUE (record_id, source)\n"
      ");\n"
      "CREATE INDEX events_correlation_id_idx ON events (correlation_id);\n"
      "CREATE INDEX events_unrouted_idx ON events (received_at, id) WHERE routed_at IS NULL;\n"
      /* every step of every event; append-only, no foreign key (hot path) */
      "CREATE TABLE steps (\n"
      "    id          bigserial PRIMARY KEY,\n"
      "    at          timestamptz NOT NULL,\n"        /* the hub's wall clock, not now() */
      "    event_id    uuid,\n"
      "    step        text NOT NULL,\n"
      "    destination text,\n"
      "    attempt     integer,\n"
      "    status      integer,\n"
      "    detail      text\n"
      ");\n"
      "CREATE INDEX steps_event_idx ON steps (event_id, at, id);\n"
      /* inputs that could not become events */
      "CREATE TABLE rejections (\n"
      "    id        bigserial PRIMARY KEY,\n"
      "    at        timestamptz NOT NULL,\n"
      "    source    text NOT NULL,\n"
      "    record_id text,\n"
      "    location  text,\n"
      "    reason    text NOT NULL,\n"
      "    raw       bytea\n"                          /* excerpt, at most 4 KiB, any bytes */
      ");\n"
      "CREATE INDEX rejections_record_id_idx ON rejections (record_id);\n"
      /* the durable retry queue and the dead-letter queue */
      "CREATE TABLE deliveries (\n"
      "    id              bigserial PRIMARY KEY,\n"
      "    event_id        uuid NOT NULL REFERENCES events (id),\n"
      "    destination     text NOT NULL,\n"
      "    route           text,\n"
      "    status          text NOT NULL DEFAULT 'pending'\n"
      "                    CHECK (status IN ('pending', 'delivered', 'dead')),\n"
      "    attempts        integer NOT NULL DEFAULT 0,\n"
      "    next_attempt_at timestamptz NOT NULL DEFAULT now(),\n"
      "    lease_owner     text,\n"
      "    lease_until     timestamptz,\n"
      "    last_status     integer,\n"
      "    last_detail     text,\n"
      "    updated_at      timestamptz NOT NULL DEFAULT now(),\n"
      "    CONSTRAINT deliveries_event_destination_key UNIQUE (event_id, destination)\n"
      ");\n"
      "CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE status = 'pending';\n"
      "CREATE INDEX deliveries_dead_idx ON deliveries (updated_at) WHERE status = 'dead';\n"
      /* cross-reference: the local id each package gave a canonical entity */
      "CREATE TABLE xref (\n"
      "    tenant       text NOT NULL,\n"
      "    entity       text NOT NULL,\n"
      "    canonical_id text NOT NULL,\n"
      "    package      text NOT NULL,\n"
      "    local_id     text NOT NULL,\n"
      "    updated_at   timestamptz NOT NULL DEFAULT now(),\n"
      "    PRIMARY KEY (tenant, entity, canonical_id, package)\n"
      ");\n"
      "CREATE INDEX xref_local_idx ON xref (tenant, package, entity, local_id);\n"
      /* RFC 3339 in UTC with microseconds, as the CLI and the admin API print times */
      "CREATE FUNCTION relais_rfc3339(t timestamptz) RETURNS text LANGUAGE sql STABLE AS\n"
      "$$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') $$;\n" },
    { 2, "insert-only events: events not routed yet kept in their own small table",
      /* Routing used to UPDATE events.routed_at: a non-HOT update of a wide
       * row and of its four indexes for every event. A small row inserted at
       * ingest and deleted at routing costs far less (docs/PERFORMANCE.md). */
      "CREATE TABLE unrouted (\n"
      "    event_id    uuid PRIMARY KEY REFERENCES events (id),\n"
      "    received_at timestamptz NOT NULL\n"
      ");\n"
      "INSERT INTO unrouted (event_id, received_at)\n"
      "  SELECT id, received_at FROM events WHERE routed_at IS NULL;\n"
      "DROP INDEX events_unrouted_idx;\n"
      "ALTER TABLE events DROP COLUMN routed_at;\n" },
    { 3, "ordering per subject, discarded deliveries, packages' durable state",
      /* order_key: the event's subject for a destination that delivers in
       * order per subject (NULL otherwise); the claim looks for an earlier
       * delivery of the same key that is not delivered yet. */
      "ALTER TABLE deliveries ADD COLUMN order_key text;\n"
      "CREATE INDEX deliveries_order_idx ON deliveries (destination, order_key, id)\n"
      "  WHERE order_key IS NOT NULL AND status IN ('pending', 'dead');\n"
      "ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;\n"
      "ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check\n"
      "  CHECK (status IN ('pending', 'delivered', 'dead', 'discarded'));\n"
      /* small durable state of connectors, per tenant and package
       * (poll checkpoints, the requests an Open311 server answers for) */
      "CREATE TABLE package_state (\n"
      "    tenant     text NOT NULL,\n"
      "    package    text NOT NULL,\n"
      "    key        text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),\n"
      "    value      jsonb NOT NULL,\n"
      "    updated_at timestamptz NOT NULL DEFAULT now(),\n"
      "    PRIMARY KEY (tenant, package, key)\n"
      ");\n" },
    { 4, "trace by entity: events by subject, and by the request a work order comes from",
      "CREATE INDEX events_subject_idx ON events (subject);\n"
      "CREATE INDEX events_origin_request_idx ON events ((body->'data'->'origin_request'->>'subject'))\n"
      "  WHERE body->'data' ? 'origin_request';\n" },
};

#define N_MIGRATIONS (sizeof g_migrations / sizeof g_migrations[0])

int relais_migrations_latest(void)
{
    return g_migrations[N_MIGRATIONS - 1].version;
}

/* First line of PostgreSQL's message, without the trailing newline. */
static void pg_message(PGconn *c, const PGresult *r, char *buf, size_t len)
{
    const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!m || !*m) m = r ? PQresultErrorMessage(r) : NULL;
    if (!m || !*m) m = PQerrorMessage(c);
    snprintf(buf, len, "%s", m && *m ? m : "unknown error");
    buf[strcspn(buf, "\n")] = '\0';
}

/* Run constant SQL (no parameters, possibly several statements). */
static int run(PGconn *c, const char *sql, char *msg, size_t msglen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) pg_message(c, r, msg, msglen);
    PQclear(r);
    return ok ? 0 : -1;
}

int relais_migrations_apply(PGconn *c, int *applied, char *errstr, size_t errlen)
{
    char msg[512];
    PGresult *r;
    int count = 0;
    if (applied) *applied = 0;
    if (run(c, "BEGIN", msg, sizeof msg) != 0) {
        snprintf(errstr, errlen, "migrations: BEGIN: %s", msg);
        return -1;
    }
    if (run(c, "SET LOCAL client_min_messages = warning", msg, sizeof msg) != 0 ||
        run(c, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK_KEY ")", msg, sizeof msg) != 0 ||
        run(c, "CREATE TABLE IF NOT EXISTS relais_schema_version (\n"
               "    version    integer PRIMARY KEY,\n"
               "    applied_at timestamptz NOT NULL DEFAULT now()\n"
               ")", msg, sizeof msg) != 0) {
        snprintf(errstr, errlen, "migrations: cannot lock or create relais_schema_version: %s", msg);
        goto fail;
    }
    r = PQexec(c, "SELECT coalesce(max(version), 0) FROM relais_schema_version");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        pg_message(c, r, msg, sizeof msg);
        PQclear(r);
        snprintf(errstr, errlen, "migrations: cannot read relais_schema_version: %s", msg);
        goto fail;
    }
    int current = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (current > relais_migrations_latest()) {
        snprintf(errstr, errlen, "migrations: the database is at schema version %d, newer than this "
                 "relais knows (%d): upgrade relais", current, relais_migrations_latest());
        goto fail;
    }
    for (size_t i = 0; i < N_MIGRATIONS; i++) {
        const migration *m = &g_migrations[i];
        if (m->version <= current) continue;
        if (run(c, m->sql, msg, sizeof msg) != 0) {
            snprintf(errstr, errlen, "migrations: version %d (%s): %s", m->version, m->name, msg);
            goto fail;
        }
        char v[16];
        snprintf(v, sizeof v, "%d", m->version);
        const char *vals[1] = { v };
        r = PQexecParams(c, "INSERT INTO relais_schema_version (version) VALUES ($1::integer)",
                         1, NULL, vals, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            pg_message(c, r, msg, sizeof msg);
            PQclear(r);
            snprintf(errstr, errlen, "migrations: recording version %d: %s", m->version, msg);
            goto fail;
        }
        PQclear(r);
        count++;
    }
    if (run(c, "COMMIT", msg, sizeof msg) != 0) {
        snprintf(errstr, errlen, "migrations: COMMIT: %s", msg);
        return -1;
    }
    if (applied) *applied = count;
    return 0;
fail:
    run(c, "ROLLBACK", msg, sizeof msg);
    return -1;
}
