/*
 * jsonptr.h - RFC 6901 JSON pointers over jansson values, and the text of
 * the scalar found there. One implementation for every connector that picks
 * fields out of records or answers by pointer (http, file, kafka).
 *
 * Pointer syntax: "" is the whole document; otherwise '/' followed by
 * reference tokens separated by '/', where "~0" stands for '~' and "~1" for
 * '/' (any other '~' makes the pointer invalid). On an object a token is a
 * member name (possibly empty: "/" is the member ""); on an array it is a
 * decimal index without leading zeros ("0", "17", not "01", "+1" or "-"); the
 * RFC's "-" (the element after the last one) never exists, so it is absent.
 *
 * Pure functions, no state, no threads: safe to call from any thread on
 * values that thread owns or that nobody modifies.
 */
#ifndef RELAIS_JSONPTR_H
#define RELAIS_JSONPTR_H
#include <stddef.h>
#include <jansson.h>

/* 0 when ptr is a syntactically valid pointer ("" or starting with '/',
 * every '~' followed by '0' or '1'); -1 otherwise (also for NULL). */
int relais_json_pointer_valid(const char *ptr);

/* For connector options holding a JSON pointer: 0 when ptr is NULL or valid;
 * -1 with "option 'NAME': 'id' is not a JSON pointer (write '/id')" in errstr. */
int relais_json_pointer_check_option(const char *name, const char *ptr, char *errstr, size_t errlen);

/* The value at ptr in root: a borrowed reference, or NULL when root or ptr is
 * NULL, the pointer is invalid, or nothing is there (missing member, index
 * out of range or malformed, "-", a token applied to a scalar). No length
 * limit on tokens (one allocation for pointers of 256 bytes or more: NULL if
 * it fails). */
json_t *relais_json_pointer(json_t *root, const char *ptr);

/* The text of a scalar into buf (size len, always NUL-terminated when
 * len > 0): strings as they are (possibly ""), integers in decimal, reals
 * with "%.17g" (3.0 gives "3"), true and false as "true" and "false".
 * Returns 0, or -1 when v is NULL, null, an object or an array, a string
 * holding a NUL byte (jansson can build one; C text would silently end
 * there), or when the text needs more than len - 1 bytes; on -1 buf holds ""
 * (never a truncated value). */
int relais_json_scalar_text(const json_t *v, char *buf, size_t len);

/* relais_json_scalar_text() of the value at ptr: 0, or -1 (buf "") when the
 * pointer is invalid, nothing is there, or the value is not a scalar that
 * fits (see above). Callers that must tell "absent" from "unusable" look the
 * value up with relais_json_pointer() first and convert it with
 * relais_json_scalar_text(). */
int relais_json_pointer_text(json_t *root, const char *ptr, char *buf, size_t len);

/* An optional record field named by a pointer (the file and kafka sources'
 * subject_field, record_id_field, correlation_field):
 *   0 with *out = the text in buf, or *out = NULL when ptr is NULL, nothing
 *     is there (an invalid pointer finds nothing), the value is null or the
 *     empty string;
 *  -1 with *out = NULL and errstr naming `what` and the pointer when the value
 *     is an object or an array ("subject_field /a is an object, not a text or
 *     a number"), a string with a NUL byte, or its text is longer than
 *     len - 1 bytes ("... is longer than 511 bytes"). */
int relais_json_pointer_field(json_t *rec, const char *ptr, const char *what, char *buf,
                              size_t len, const char **out, char *errstr, size_t errlen);
#endif
