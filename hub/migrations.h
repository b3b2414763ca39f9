/*
 * migrations.h - the journal's versioned schema (hub/migrations.c).
 *
 * relais_migrations_apply() brings a database up to the newest version this
 * build knows, in one transaction under a transaction-scoped advisory lock,
 * so that two hubs starting together on an empty database do not race. It is
 * idempotent: on an up-to-date database it only reads the version table.
 */
#ifndef RELAIS_MIGRATIONS_H
#define RELAIS_MIGRATIONS_H
#include <stddef.h>
#include <libpq-fe.h>

/* The newest schema version this build knows. */
int relais_migrations_latest(void);

/* Apply every migration newer than the database's version. *applied (may be
 * NULL) receives the number of migrations applied by this call. 0 on
 * success; -1 with errstr naming the migration and PostgreSQL's message. */
int relais_migrations_apply(PGconn *c, int *applied, char *errstr, size_t errlen);
#endif
