/*
 * file_jsonl.h - one JSON record per line, and JSON pointers (RFC 6901) to
 * pick fields out of a record. Pure code, shared by the file source and the
 * kafka source (both take records as JSON objects), and by the fuzz target.
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

/* Resolve a JSON pointer ("" = the whole value, "/a/0/b", "~0" and "~1"
 * escapes). Borrowed reference, NULL when absent or the pointer is invalid. */
json_t *file_json_pointer(json_t *root, const char *ptr);

/* The text of a scalar (string as is, integer/real/true/false in JSON form)
 * into buf. Returns buf, or NULL for null, objects and arrays or when the text
 * does not fit. */
const char *file_json_scalar(const json_t *v, char *buf, size_t len);

/* Pick an optional field by JSON pointer: 0 with *out = text (or NULL when
 * the pointer is NULL, the field absent, null or an empty string), -1 when
 * the field is an object or an array (errstr says which). */
int file_json_field(json_t *rec, const char *ptr, const char *what, char *buf, size_t len,
                    const char **out, char *errstr, size_t errlen);
#endif
