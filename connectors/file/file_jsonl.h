/*
 * file_jsonl.h - one JSON record per line. Pure code, shared by the file
 * source and the kafka source (both take records as JSON objects), and by the
 * fuzz target. Fields are picked out of a record with the JSON pointers of
 * hub/jsonptr.h.
 */
#ifndef RELAIS_FILE_JSONL_H
#define RELAIS_FILE_JSONL_H
#include <stddef.h>
#include <jansson.h>

#define FILE_JSON_MAX_DEPTH 64

/* Parse one record: exactly one JSON object (surrounding whitespace allowed),
 * duplicate keys refused, nesting at most FILE_JSON_MAX_DEPTH. Returns a new
 * reference, or NULL with the reason ("invalid JSON at column 12: ...",
 * "not an object", "nested deeper than 64"). */
json_t *file_jsonl_parse(const char *buf, size_t len, char *errstr, size_t errlen);
#endif
