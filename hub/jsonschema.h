/*
 * jsonschema.h - JSON Schema (draft 2020-12) validation of canonical event data.
 *
 * No C library for JSON Schema is packaged in Debian, so Relais has its own
 * validator over jansson values. It is checked against the official
 * JSON-Schema-Test-Suite (tests/unit/test_jsonschema_suite.c) for every
 * keyword it supports; docs/SCHEMAS.md lists the supported keywords and the
 * ones it refuses.
 *
 * Schemas are loaded into a set, compiled once (every $ref resolved, every
 * regex compiled, every keyword checked), then used read-only: validation
 * takes no lock and may run in any number of threads at once.
 *
 * A keyword the validator does not implement is a load error, never silently
 * ignored (a schema author would believe a rule holds when it does not).
 * Annotations (title, description, $comment, examples, default, deprecated,
 * readOnly, writeOnly, contentMediaType, contentEncoding, contentSchema) are
 * accepted and ignored, as are keys starting with "x-".
 *
 * Ownership: the set owns the schema documents added to it (a new reference
 * is taken); relais_schema pointers are borrowed from the set and live until
 * relais_schema_set_destroy().
 */
#ifndef RELAIS_JSONSCHEMA_H
#define RELAIS_JSONSCHEMA_H
#include <stddef.h>
#include <jansson.h>

typedef struct relais_schema_set relais_schema_set;
typedef struct relais_schema     relais_schema;      /* one compiled (sub)schema */

/* One reason an instance is invalid.
 * path: where in the instance, as a JSON path rooted at the caller's `root`
 *       ("$.data.location.lat", "$.data.members[2].birth_date");
 * message: what is wrong ("required property 'category' is missing",
 *       "\"x\" is not one of the allowed values", "expected integer, got string"). */
typedef struct relais_schema_fault {
    char path[256];
    char message[256];
} relais_schema_fault;

relais_schema_set *relais_schema_set_new(void);
void relais_schema_set_destroy(relais_schema_set *set);     /* NULL-safe */

/* Add one schema document (a new reference to doc is taken). Its base URI is
 * its "$id" when present, else `uri` (which must then be given). Documents may
 * $ref each other by absolute or relative URI, resolved against the base URI
 * of the schema resource containing the $ref (RFC 3986), with an optional
 * "#/json/pointer" or "#anchor" fragment. `name` is used in error messages
 * (usually the file name). When the document has an "$id" and `uri` is also
 * given, it can be found (looked up, $ref'ed) by either. -1 with errstr on a
 * duplicate $id, a document with neither "$id" nor `uri`, or after compile. */
int relais_schema_set_add(relais_schema_set *set, json_t *doc, const char *uri,
                          const char *name, char *errstr, size_t errlen);

/* Load every "*.json" file under dir (recursively, in sorted order) with
 * relais_schema_set_add (uri = "file://<absolute path>"). Files under
 * "<dir>/events/" are event schemas: the file name without ".json" is the
 * event type it describes ("events/fr.relais.grc.request.created.v1.json").
 * Files under "<dir>/examples/" are not schemas and are skipped.
 * -1 with errstr naming the file (and the JSON parse line) on failure. */
int relais_schema_set_load_dir(relais_schema_set *set, const char *dir,
                               char *errstr, size_t errlen);

/* Compile every document added: resolve all $ref, compile patterns (PCRE2,
 * UTF mode; the closest Debian-packaged engine to ECMA-262 regular expressions),
 * check keyword value types, refuse unsupported keywords. Must be called once
 * after the last add and before any lookup or validation. -1 with errstr
 * naming the file and the schema location ("common.json: #/$defs/address/
 * properties/postcode: unsupported keyword 'unevaluatedProperties'"). $ref
 * cycles that never descend into the instance ({"$ref": "#"}) are refused.
 * A failed compile leaves the set unusable (lookups return NULL). */
int relais_schema_set_compile(relais_schema_set *set, char *errstr, size_t errlen);

/* Lookups (after compile). NULL when unknown. */
const relais_schema *relais_schema_set_get(const relais_schema_set *set, const char *uri);
const relais_schema *relais_schema_set_for_type(const relais_schema_set *set, const char *type);
/* Event types known to the set, sorted; borrowed, NULL-terminated. */
const char *const *relais_schema_set_types(const relais_schema_set *set);

/* Validate `instance` against schema `sc`. Collects at most max faults (in
 * instance document order as found; the first one is the most useful) into
 * faults, sets *nfaults (may be NULL). root: the path prefix ("$" when NULL).
 * Returns 1 valid, 0 invalid. Thread-safe (each call uses its own PCRE2
 * match data). */
int relais_schema_validate(const relais_schema *sc, const json_t *instance, const char *root,
                           relais_schema_fault *faults, size_t max, size_t *nfaults);

#endif
