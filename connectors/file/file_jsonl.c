/*
 * file_jsonl.c - JSON line records (see file_jsonl.h).
 * Pure functions, no state.
 */
#include <stdio.h>
#include "file_jsonl.h"

/* Deepest nesting of arrays/objects in buf, scanning outside strings. Stops
 * counting once past limit. */
static size_t json_depth(const char *buf, size_t len, size_t limit)
{
    size_t depth = 0, max = 0;
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = buf[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = 0;
        } else if (ch == '"') {
            in_str = 1;
        } else if (ch == '{' || ch == '[') {
            if (++depth > max) {
                max = depth;
                if (max > limit)
                    return max;
            }
        } else if ((ch == '}' || ch == ']') && depth > 0) {
            depth--;
        }
    }
    return max;
}

json_t *file_jsonl_parse(const char *buf, size_t len, char *errstr, size_t errlen)
{
    if (json_depth(buf, len, FILE_JSON_MAX_DEPTH) > FILE_JSON_MAX_DEPTH) {
        snprintf(errstr, errlen, "JSON nested deeper than %d levels", FILE_JSON_MAX_DEPTH);
        return NULL;
    }
    json_error_t jerr;
    json_t *v = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!v) {
        snprintf(errstr, errlen, "invalid JSON at column %d: %s", jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        snprintf(errstr, errlen, "not a JSON object");
        json_decref(v);
        return NULL;
    }
    return v;
}
