/*
 * retention.h - `relais retention run`: payloads kept only as long as the
 * configuration says (section `retention`, docs/CONFIG.md; why and how:
 * docs/SECURITY.md, Retention).
 *
 * A run, in one transaction of its own connection:
 *   - for every event type with payloads left, the retention of its first
 *     matching rule (or the default): events received before now minus it
 *     get body = NULL and purged_at = now(), unless one of their deliveries
 *     is pending or dead (it may still be attempted or replayed) or the
 *     event is not routed yet; those are counted as kept;
 *   - rejections older than the default retention get raw = NULL and
 *     purged_at = now();
 *   - then one signed step "purged" (relais_journal_note, a stream of its
 *     own) whose detail gives the counts per type and the cut-off dates; the
 *     purge commits only once that step is written.
 * Event metadata, events.body_sha256 and every step stay: `relais audit
 * verify` checks a purged event against its kept hash. --dry-run counts and
 * changes nothing.
 *
 * Meant for cron or a systemd timer, under a LOGIN role member of
 * relais_retention (schemas/sql/roles.sql): it may empty payloads, never
 * delete a row or read a payload.
 *
 * Threads: none.
 */
#ifndef RELAIS_RETENTION_H
#define RELAIS_RETENTION_H
#include <stdio.h>
#include "config.h"
#include "journal.h"

/* Seconds the payloads of events of `type` are kept under c: the first
 * retention rule one of whose patterns matches the type, else the default.
 * -1: never purged. */
long relais_retention_secs(const relais_config *c, const char *type);

typedef struct relais_retention_result {
    long events_purged;       /* payloads emptied (or that would be, dry run) */
    long events_kept;         /* past their retention but a delivery is pending or dead, or not routed */
    long rejections_purged;
} relais_retention_result;

/* One run against the journal at conninfo; j writes the signed "purged"
 * step (it needs the audit key) and may be NULL for a dry run. A line per
 * event type and a summary go to out. 0, or -1 with errstr (nothing
 * changed). */
int relais_retention_run(const relais_config *c, const char *conninfo, relais_journal *j, int dry_run,
                         FILE *out, relais_retention_result *res, char *errstr, size_t errlen);
#endif
