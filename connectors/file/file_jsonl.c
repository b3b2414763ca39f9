/*
 * file_jsonl.c - JSON line records and JSON pointers (see file_jsonl.h).
 * Pure functions, no state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

json_t *file_json_pointer(json_t *root, const char *ptr)
{
    if (!root || !ptr)
        return NULL;
    if (!*ptr)
        return root;
    if (*ptr != '/')
        return NULL;
    json_t *cur = root;
    const char *p = ptr + 1;
    char tok[512];
    for (;;) {
        size_t n = 0;
        while (*p && *p != '/') {
            char ch = *p++;
            if (ch == '~') {
                if (*p == '0')
                    ch = '~';
                else if (*p == '1')
                    ch = '/';
                else
                    return NULL;
                p++;
            }
            if (n + 1 >= sizeof tok)
                return NULL;
            tok[n++] = ch;
        }
        tok[n] = '\0';
        if (json_is_object(cur)) {
            cur = json_object_get(cur, tok);
        } else if (json_is_array(cur)) {
            char *end;
            if (n == 0 || (n > 1 && tok[0] == '0') || tok[0] < '0' || tok[0] > '9')
                return NULL;
            unsigned long idx = strtoul(tok, &end, 10);
            if (*end)
                return NULL;
            cur = json_array_get(cur, idx);
        } else {
            return NULL;
        }
        if (!cur)
            return NULL;
        if (!*p)
            return cur;
        p++;   /* the '/' */
    }
}

const char *file_json_scalar(const json_t *v, char *buf, size_t len)
{
    int n;
    switch (json_typeof(v)) {
    case JSON_STRING:
        n = snprintf(buf, len, "%s", json_string_value(v));
        break;
    case JSON_INTEGER:
        n = snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        n = snprintf(buf, len, "%.17g", json_real_value(v));
        break;
    case JSON_TRUE:
        n = snprintf(buf, len, "true");
        break;
    case JSON_FALSE:
        n = snprintf(buf, len, "false");
        break;
    default:
        return NULL;
    }
    if (n < 0 || (size_t)n >= len)
        return NULL;
    return buf;
}

int file_json_field(json_t *rec, const char *ptr, const char *what, char *buf, size_t len,
                    const char **out, char *errstr, size_t errlen)
{
    *out = NULL;
    if (!ptr)
        return 0;
    json_t *v = file_json_pointer(rec, ptr);
    if (!v || json_is_null(v))
        return 0;
    if (json_is_object(v) || json_is_array(v)) {
        snprintf(errstr, errlen, "%s %s is an %s, not a text or a number", what, ptr,
                 json_is_object(v) ? "object" : "array");
        return -1;
    }
    const char *s = file_json_scalar(v, buf, len);
    if (!s) {
        snprintf(errstr, errlen, "%s %s is longer than %zu bytes", what, ptr, len - 1);
        return -1;
    }
    *out = *s ? s : NULL;
    return 0;
}
