/*
 * personal.h - personal data in traces (docs/SECURITY.md, "Personal data in
 * traces"): which members of an event's data are personal, masking them,
 * and reading events' payloads for `relais trace` and `relais person`.
 *
 * What is personal is said in one place, the canonical schemas: a schema
 * carrying `"x-personal": true` (the validator ignores "x-" keys) marks its
 * whole value as personal, wherever it is used. common.json marks
 * civil_identity, email, phone, contact, address, family_quotient and
 * attachment; event schemas mark their free-text fields (description,
 * comment, answer...) and personal identifiers (national_voter_id,
 * benefit_number, account_number). Masking walks the data along its type's
 * schema ($ref, allOf/anyOf/oneOf, if/then/else, properties, items) and
 * replaces each personal value by "***". It fails closed: a member the
 * schema does not describe, an array without an items schema and the data
 * of a type without a schema are masked whole.
 *
 * Threads: none. A relais_personal is read-only once loaded.
 */
#ifndef RELAIS_PERSONAL_H
#define RELAIS_PERSONAL_H
#include <stddef.h>
#include <jansson.h>

#define RELAIS_PERSONAL_MASK "***"

typedef struct relais_personal relais_personal;

/* Read the schemas under dir (every *.json but examples/, as the hub's
 * validator does; files under events/ describe the type their name gives).
 * NULL with errstr naming the file on error. */
relais_personal *relais_personal_load(const char *dir, char *errstr, size_t errlen);
void relais_personal_destroy(relais_personal *p);     /* NULL-safe */

/* A copy of `data` of an event of `type` with every personal value replaced
 * by "***" (the whole data when the type has no schema). *masked (may be
 * NULL) receives the number of values masked. New reference; NULL when out
 * of memory. */
json_t *relais_personal_redact(const relais_personal *p, const char *type, const json_t *data, size_t *masked);

/* Add to every event of a trace or person answer ({"events":[{"id","type",
 * ...}]}) what is known of its payload, read on a connection of its own to
 * `conninfo`:
 *   "purged_at"      when retention purged it (no data left);
 *   "data"           its data, masked with p unless show_personal;
 *   "data_redacted"  true when masked;
 *   "data_withheld"  why no data is shown: the database role may not read
 *                    payloads (events.body; relais_auditor, relais_operator);
 *   "details_redacted" when masked, the number of personal values (the masked
 *                    ones, 4 characters or more) replaced by "***" in the
 *                    event's steps[].detail and deliveries[].last_detail.
 * *shown (may be NULL): the number of events whose data was added unmasked
 * (each to be journaled before it is printed); dbrole (may be NULL): the
 * database role the data was read as (session_user). 0, or -1 with errstr. */
int relais_personal_attach(json_t *answer, const char *conninfo, const relais_personal *p, int show_personal,
                           size_t *shown, char *dbrole, size_t dbrolelen, char *errstr, size_t errlen);
#endif
