/*
 * mapping.h - declarative mappings between a vendor's records and canonical
 * events (docs/MAPPINGS.md is the user's guide to the file format).
 *
 * A mapping file (YAML) belongs to one connector instance ("mapping:" key of
 * the instance) and says, field by field:
 *   inbound   vendor record -> canonical record (type, subject, record id,
 *             correlation id, data), read with JSON pointers (json), XPath 1.0
 *             (xml) or column names (csv);
 *   outbound  canonical event -> vendor payload (JSON document, XML document
 *             with namespaces, attributes and repeated elements, or a CSV
 *             document), read with JSON pointers into the whole event.
 * With small transforms (trim, upper, lower, date formats, templates and
 * concatenation, defaults, code tables, cents) and code tables (the GRC's
 * "Nids de poule" -> the technical services' "VOI-03").
 *
 * Everything is compiled once at load (JSON pointers split, XPath compiled,
 * templates parsed, tables hashed, reverse tables checked for ambiguity);
 * applying a mapping does no parsing of the mapping. A loaded mapping is
 * read-only: any number of threads may apply it at once.
 *
 * Errors at load: "FILE:LINE: message" in the errlist, every error found.
 * Errors when applying name the file, the line of the rule and the field:
 *   "grc.yaml:31: data /category: value 'Tags' is not in table 'intervention'".
 *
 * Ownership: relais_mapping is owned by whoever loaded it; results
 * (relais_mapped_record, relais_rendered) are owned by the caller and freed
 * with their _clear function.
 */
#ifndef RELAIS_MAPPING_H
#define RELAIS_MAPPING_H
#include <stddef.h>
#include <jansson.h>
#include <libxml/tree.h>
#include "errlist.h"

typedef struct relais_mapping relais_mapping;

typedef enum relais_map_format {
    RELAIS_MAP_JSON = 1,
    RELAIS_MAP_XML  = 2,
    RELAIS_MAP_CSV  = 3
} relais_map_format;

/* Load and compile. NULL when any error was found (all are in errs). */
relais_mapping *relais_mapping_load(const char *path, relais_errlist *errs);
relais_mapping *relais_mapping_load_buffer(const char *name, const char *buf, size_t len,
                                           relais_errlist *errs);
void relais_mapping_destroy(relais_mapping *m);            /* NULL-safe */

const char       *relais_mapping_path(const relais_mapping *m);   /* as given to load */
relais_map_format relais_mapping_format(const relais_mapping *m);
int               relais_mapping_has_inbound(const relais_mapping *m);
int               relais_mapping_has_outbound(const relais_mapping *m);
/* Literal event types the inbound cases can produce (NULL-terminated,
 * borrowed); a type computed from the record is not listed. */
const char *const *relais_mapping_inbound_types(const relais_mapping *m);

/* ---- Inbound: vendor record -> canonical record ------------------------- */

typedef struct relais_mapped_record {
    char   *type;            /* owned; NULL when the case gives none */
    char   *subject;         /* owned; NULL when none */
    char   *record_id;       /* owned; NULL when none */
    char   *correlation_id;  /* owned; NULL when none */
    json_t *data;            /* owned reference; a JSON object */
} relais_mapped_record;

/* json and csv mappings: rec is the vendor record as a JSON object (csv: a
 * flat object of column name -> string, as the file connector reads it).
 * xml mappings: doc is the parsed vendor document (see safeparse.h); rules
 * are evaluated with the root element as context node.
 * The first inbound case whose `when` holds is applied.
 * out must be zeroed (or cleared) by the caller.
 * 0: out filled. 1: no inbound case matches (out untouched; the caller
 * rejects the record, saying so). -1: a rule failed; errstr names the file,
 * line and field; only out->record_id may be set (the record's id when its
 * rule ran before the failing one, so that the refusal can be journaled
 * under it): release it with relais_mapped_record_clear(). */
int relais_mapping_inbound_json(const relais_mapping *m, const json_t *rec,
                                relais_mapped_record *out, char *errstr, size_t errlen);
int relais_mapping_inbound_xml(const relais_mapping *m, xmlDocPtr doc,
                               relais_mapped_record *out, char *errstr, size_t errlen);
/* Parse raw bytes for the mapping's format with safeparse (json, xml; a csv
 * mapping refuses raw input) and map them. `name` names the input in errors. */
int relais_mapping_inbound_raw(const relais_mapping *m, const char *buf, size_t len,
                               const char *name, relais_mapped_record *out,
                               char *errstr, size_t errlen);
void relais_mapped_record_clear(relais_mapped_record *r);   /* frees members, NULL-safe */

/* ---- Outbound: canonical event -> vendor payload ------------------------ */

typedef struct relais_rendered {
    char  *body;               /* owned (free()); NUL-terminated for convenience */
    size_t len;                /* bytes in body, without the NUL */
    char   content_type[64];   /* "application/json", "application/xml", "text/csv" or the case's */
} relais_rendered;

/* event: the whole CloudEvent as a JSON object (relais_event_object()).
 * local_id: the id this destination gave the event's subject (cross
 * reference) or NULL; rules read it as the pointer "/localid".
 * The first outbound case whose `match` (event type patterns, as in routes)
 * and `when` hold is applied.
 * 0: out filled. 1: no outbound case matches this event. -1: a rule failed
 * (errstr names file, line, field). */
int relais_mapping_outbound(const relais_mapping *m, const json_t *event, const char *local_id,
                            relais_rendered *out, char *errstr, size_t errlen);
void relais_rendered_clear(relais_rendered *r);              /* NULL-safe */

#endif
