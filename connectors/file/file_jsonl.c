/*
 * file_jsonl.c - JSON line records (see file_jsonl.h), parsed by
 * relais_json_parse (hub/safeparse.h). Pure functions, no state.
 */
#include <stdint.h>
#include <stdio.h>
#include "file_jsonl.h"
#include "safeparse.h"

json_t *file_jsonl_parse(const char *buf, size_t len, char *errstr, size_t errlen)
{
    /* the size is already bounded by the caller (max_line, the message size) */
    relais_parse_limits lim = { .max_bytes = SIZE_MAX, .max_depth = FILE_JSON_MAX_DEPTH };
    char err[300];
    json_t *v = relais_json_parse(buf, len, "record", &lim, err, sizeof err);
    if (!v) {
        /* "record:LINE:COLUMN: message" -> "invalid JSON at column C: message" */
        int line = 0, column = 0, n = 0;
        if (sscanf(err, "record:%d:%d: %n", &line, &column, &n) == 2 && n > 0) {
            if (line > 1)
                snprintf(errstr, errlen, "invalid JSON at line %d column %d: %s", line, column,
                         err + n);
            else
                snprintf(errstr, errlen, "invalid JSON at column %d: %s", column, err + n);
        } else {
            snprintf(errstr, errlen, "invalid JSON: %s", err);
        }
        return NULL;
    }
    if (!json_is_object(v)) {
        snprintf(errstr, errlen, "not a JSON object");
        json_decref(v);
        return NULL;
    }
    return v;
}
