/*
 * jsonptr.c - RFC 6901 JSON pointers and scalar text (see jsonptr.h).
 * Pure functions, no state, no threads.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "jsonptr.h"

int relais_json_pointer_valid(const char *ptr)
{
    if (!ptr)
        return -1;
    if (*ptr == '\0')
        return 0;
    if (*ptr != '/')
        return -1;
    for (const char *s = ptr; *s; s++)
        if (*s == '~' && s[1] != '0' && s[1] != '1')
            return -1;
    return 0;
}

/* An array index token: decimal digits, no leading zero (except "0" itself).
 * 0 with *idx set, -1 when malformed ("", "01", "-", "+1", "1a") or too large
 * for any array. */
static int array_index(const char *tok, size_t n, size_t *idx)
{
    if (n == 0 || (n > 1 && tok[0] == '0'))
        return -1;
    size_t v = 0;
    for (size_t k = 0; k < n; k++) {
        if (tok[k] < '0' || tok[k] > '9' || v > (SIZE_MAX - 9) / 10)
            return -1;
        v = v * 10 + (size_t)(tok[k] - '0');
    }
    *idx = v;
    return 0;
}

/* One reference token (already unescaped, n bytes) applied to cur. */
static json_t *step(json_t *cur, const char *tok, size_t n)
{
    if (json_is_object(cur))
        return json_object_getn(cur, tok, n);
    if (json_is_array(cur)) {
        size_t idx;
        if (array_index(tok, n, &idx) != 0)
            return NULL;
        return json_array_get(cur, idx);
    }
    return NULL;
}

json_t *relais_json_pointer(json_t *root, const char *ptr)
{
    if (!root || relais_json_pointer_valid(ptr) != 0)
        return NULL;
    /* An unescaped token is never longer than the pointer. */
    size_t plen = strlen(ptr);
    char small[256];
    char *tok = plen < sizeof small ? small : malloc(plen + 1);
    if (!tok)
        return NULL;
    json_t *cur = root;
    const char *p = ptr;
    while (cur && *p == '/') {
        p++;
        size_t n = 0;
        while (*p && *p != '/') {
            if (*p == '~') {
                /* valid: '~' is followed by '0' or '1' */
                tok[n++] = p[1] == '0' ? '~' : '/';
                p += 2;
            } else {
                tok[n++] = *p++;
            }
        }
        cur = step(cur, tok, n);
    }
    if (tok != small)
        free(tok);
    return cur;
}

int relais_json_scalar_text(const json_t *v, char *buf, size_t len)
{
    if (!buf || len == 0)
        return -1;
    buf[0] = '\0';
    int n;
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t sl = json_string_length(v);
        if (sl >= len || strlen(s) != sl)
            return -1;
        memcpy(buf, s, sl + 1);
        return 0;
    }
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
        return -1;
    }
    if (n < 0 || (size_t)n >= len) {
        buf[0] = '\0';
        return -1;
    }
    return 0;
}

int relais_json_pointer_text(json_t *root, const char *ptr, char *buf, size_t len)
{
    return relais_json_scalar_text(relais_json_pointer(root, ptr), buf, len);
}

int relais_json_pointer_field(json_t *rec, const char *ptr, const char *what, char *buf,
                              size_t len, const char **out, char *errstr, size_t errlen)
{
    *out = NULL;
    if (!ptr)
        return 0;
    json_t *v = relais_json_pointer(rec, ptr);
    if (!v || json_is_null(v))
        return 0;
    if (json_is_object(v) || json_is_array(v)) {
        snprintf(errstr, errlen, "%s %s is an %s, not a text or a number", what, ptr,
                 json_is_object(v) ? "object" : "array");
        return -1;
    }
    if (relais_json_scalar_text(v, buf, len) != 0) {
        if (json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v))
            snprintf(errstr, errlen, "%s %s holds a NUL character", what, ptr);
        else
            snprintf(errstr, errlen, "%s %s is longer than %zu bytes", what, ptr,
                     len > 0 ? len - 1 : 0);
        return -1;
    }
    *out = buf[0] ? buf : NULL;
    return 0;
}

int relais_json_pointer_check_option(const char *name, const char *ptr, char *errstr, size_t errlen)
{
    if (!ptr || relais_json_pointer_valid(ptr) == 0) return 0;
    if (ptr[0] != '/')
        snprintf(errstr, errlen, "option '%s': '%.100s' is not a JSON pointer (write '/%.100s')", name, ptr, ptr);
    else
        snprintf(errstr, errlen, "option '%s': '%.100s' is not a valid JSON pointer ('~' must be followed by 0 or 1)",
                 name, ptr);
    return -1;
}
