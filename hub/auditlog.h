/*
 * auditlog.h - the tamper-evident trail against the journal: where the key
 * and the checkpoints live for a config, and `relais audit verify`, which
 * rebuilds every signed entry from the stored rows and checks the chains
 * (hub/audit.h) and the checkpoints written outside the database.
 *
 * What an entry is (the writer side is audit_chain in hub/journal.c): one
 * `steps` row, as the JSON object {at, event_id, step, destination, attempt,
 * status, detail} (NULL columns left out, times in integer microseconds),
 * plus for a "received" step the event it covers
 *   "event": {id, tenant, source, record_id, type, subject, correlation_id,
 *             received_at, body_sha256}
 * (body_sha256: SHA-256 of jsonb's text of the body; from the stored column
 * once retention purged the body) and for a "rejected" step the rejection
 *   "rejection": {at, source, record_id, location, reason, raw_sha256}
 * whose row names the step by (stream, seq).
 *
 * Threads: none; each call opens its own connection.
 */
#ifndef RELAIS_AUDITLOG_H
#define RELAIS_AUDITLOG_H
#include <stdint.h>
#include <stdio.h>
#include "config.h"

/* The key file and checkpoint file of a config (audit.key_file and
 * audit.checkpoints, or their defaults under hub.state_dir). */
void relais_auditlog_paths(const relais_config *c, char *key, size_t keylen, char *cps, size_t cpslen);

/* Load the key file; with create, make it first when it does not exist
 * (the hub at its first start; logged). 0, or -1 with errstr. */
int relais_auditlog_key(const char *path, int create, unsigned char **key, size_t *keylen,
                        char *errstr, size_t errlen);

typedef struct relais_auditlog_result {
    long streams, entries, checkpoints, legacy, purged;
    long faults;
} relais_auditlog_result;

/* Verify the journal at conninfo between from_us and to_us (0: unbounded),
 * writing one line per fault and a summary to out. Returns 0 when it
 * verifies, 1 when a fault was found, -1 when it could not run (errstr). */
int relais_auditlog_verify(const char *conninfo, const unsigned char *key, size_t keylen, const char *cps_path,
                           int64_t from_us, int64_t to_us, FILE *out, relais_auditlog_result *res,
                           char *errstr, size_t errlen);
/* What `relais audit export` takes: a time range, a correlation id (or an
 * event id), or a list of event ids (a person's, from relais_journal_person). */
typedef struct relais_auditlog_selection {
    int64_t            from_us, to_us;     /* 0: unbounded */
    const char        *correlation;
    const char *const *event_ids;
    size_t             n_event_ids;
    const char        *label;              /* what was asked, written in the header */
    int                no_bodies;          /* 1: proofs and hashes only (the read could not be journaled) */
} relais_auditlog_selection;

/* Write a self-contained extract as JSON lines (docs/SECURITY.md, "Audit
 * export"): a header, per stream the contiguous segment from the first to the
 * last selected entry (selected entries with their content and event body,
 * the others with their proofs only), the stream's checkpoints in that
 * segment, and a trailer. *entries: the entries written. 0, or -1 (errstr). */
int relais_auditlog_export(const char *conninfo, const relais_auditlog_selection *sel, const char *cps_path,
                           FILE *out, long *entries, char *errstr, size_t errlen);

/* Verify an extract offline with the key: links, contents, bodies, MACs and
 * checkpoints; faults written to out like relais_auditlog_verify. Returns 0,
 * 1 (a fault), or -1 when the file cannot be read or is not an extract
 * (errstr names FILE:LINE). `name` stands for the file in messages. */
int relais_auditlog_verify_export(const char *name, const char *buf, size_t len, const unsigned char *key,
                                  size_t keylen, FILE *out, relais_auditlog_result *res,
                                  char *errstr, size_t errlen);
#endif
