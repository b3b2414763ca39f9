/*
 * safeparse.h - the only way Relais parses outside XML and JSON.
 *
 * XML (libxml2): network access off (XML_PARSE_NONET), no entity
 * substitution, no DTD loading, and a document that carries a DOCTYPE is
 * refused outright (NONET alone does not stop file:// external entities, and
 * an internal subset is where entity-expansion bombs live). While a document
 * is parsed, the external entity loader is one that denies everything. Depth
 * and size are bounded. Errors carry the line and column libxml2 reports.
 *
 * JSON (jansson): duplicate keys refused (JSON_REJECT_DUPLICATES), invalid
 * UTF-8 refused (jansson always does), NUL in strings refused, bounded depth
 * and size. Errors carry line and column.
 *
 * Both are thread-safe. relais_safeparse_init() must be called once at
 * start, before any thread parses (it installs the deny-all entity loader
 * process-wide and initialises libxml2); calling it again is harmless.
 * relais_hub_new() calls it; relais_xml_parse() calls it too. The deny-all
 * loader applies to every libxml2 use in the process: xmlReadFile() and XSD
 * include/import of files fail once it is installed (load such trusted files
 * from memory).
 *
 * Error texts (errstr) have one stable shape, so callers may split them:
 *   "<name>:<line>:<column>: <message>"   about a place in the input
 *   "<name>: <message>"                    about the whole input (size)
 * Lines are 1-based; columns are 1-based, in characters for JSON (jansson's
 * count) and as libxml2 reports them for XML (for the depth limit, just
 * past the start tag's name and attributes; for a DOCTYPE, its '[' or its
 * closing '>'). The text is valid UTF-8
 * without control characters (a caller may put it into JSON or a log). A
 * buffer of 512 bytes always holds it whole with a name under 100 bytes.
 * The size check comes before any parsing; the JSON depth check is a scan
 * of the bytes before jansson runs. Nothing is printed on stderr.
 */
#ifndef RELAIS_SAFEPARSE_H
#define RELAIS_SAFEPARSE_H
#include <stddef.h>
#include <jansson.h>
#include <libxml/tree.h>

typedef struct relais_parse_limits {
    size_t max_bytes;   /* 0: default 16 MiB */
    int    max_depth;   /* 0: default 64 (nesting of elements / of arrays+objects) */
} relais_parse_limits;

void relais_safeparse_init(void);

/* Parse an XML document. `name` names the input in errors ("request body",
 * "drop/x.xml"). Returns a document the caller frees with xmlFreeDoc(), or
 * NULL with errstr such as:
 *   "drop/x.xml:1:10: DOCTYPE refused (no DTDs or entities are accepted)"
 *   "request body:3:5: nesting deeper than 64 levels"
 *   "request body: 20000000 bytes, larger than the 16777216 allowed"
 *   "request body:2:14: Opening and ending tag mismatch: a line 2 and b" */
xmlDocPtr relais_xml_parse(const char *buf, size_t len, const char *name,
                           const relais_parse_limits *lim, char *errstr, size_t errlen);

/* Parse a JSON text (any JSON value at the top). Returns a new reference or
 * NULL with errstr ("body:1:17: duplicate object key 'a'",
 * "body:1:130: nesting deeper than 64 levels"). */
json_t *relais_json_parse(const char *buf, size_t len, const char *name,
                          const relais_parse_limits *lim, char *errstr, size_t errlen);

#endif
