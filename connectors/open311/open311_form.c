/*
 * open311_form.c - pure helpers of the open311 connector: the POSTed fields
 * of a GeoReport v2 service request as a vendor record (JSON), the record's
 * normalised hash and the ids derived from it, the spec's checks of a POST,
 * W3C datetimes, comma-separated lists and the client's form encoding.
 *
 * No I/O, no threads, no state: called from the server's connection threads,
 * the client's delivery workers, the simulator and the fuzz targets
 * (tests/fuzz/fuzz_open311_form.c).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include "open311_int.h"
#include "event_int.h"

/* ---- POST fields -> vendor record ----------------------------------------- */

static int name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 100) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!(isalnum(ch) || ch == '_' || ch == '-' || ch == '.')) return 0;
    }
    return 1;
}

static size_t fields_in(const json_t *rec)
{
    size_t n = json_object_size(rec);
    const json_t *attrs = json_object_get(rec, "attribute");
    if (json_is_object(attrs)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)attrs, k, v)
            n += json_is_array(v) ? json_array_size(v) : 1;
    }
    return n;
}

/* Insert s into the sorted list arr (kept sorted for a stable hash). */
static int insert_sorted(json_t *arr, json_t *s)
{
    size_t i = 0;
    for (; i < json_array_size(arr); i++)
        if (strcmp(json_string_value(json_array_get(arr, i)), json_string_value(s)) > 0) break;
    return json_array_insert_new(arr, i, s);
}

int o311_form_add(json_t *rec, const char *key, const char *value, size_t vlen,
                  char *errstr, size_t errlen)
{
    if (!json_is_object(rec) || !key) {
        snprintf(errstr, errlen, "internal: no record");
        return -1;
    }
    if (!strcmp(key, "api_key")) return 0;
    if (!value) { value = ""; vlen = 0; }
    if (vlen > O311_MAX_VALUE) {
        snprintf(errstr, errlen, "field '%.100s' is longer than %d bytes", key, O311_MAX_VALUE);
        return -1;
    }
    if (memchr(value, '\0', vlen)) {
        snprintf(errstr, errlen, "field '%.100s' contains a NUL byte", key);
        return -1;
    }
    while (vlen > 0 && isspace((unsigned char)value[0])) { value++; vlen--; }
    while (vlen > 0 && isspace((unsigned char)value[vlen - 1])) vlen--;
    json_t *s = json_stringn(value, vlen);
    if (!s) {
        snprintf(errstr, errlen, "field '%.100s' is not valid UTF-8", key);
        return -1;
    }
    if (vlen == 0) { json_decref(s); return 0; }
    if (fields_in(rec) >= O311_MAX_FIELDS) {
        json_decref(s);
        snprintf(errstr, errlen, "more than %d fields", O311_MAX_FIELDS);
        return -1;
    }
    size_t klen = strlen(key);
    if (!strncmp(key, "attribute[", 10)) {
        const char *code = key + 10;
        const char *close = strchr(code, ']');
        int multi = 0;
        if (close && !strcmp(close, "]")) multi = 0;
        else if (close && !strcmp(close, "][]")) multi = 1;
        else close = NULL;
        if (!close || !name_ok(code, (size_t)(close - code))) {
            json_decref(s);
            snprintf(errstr, errlen, "field '%.100s' is not attribute[CODE] or attribute[CODE][]", key);
            return -1;
        }
        char cbuf[101];
        snprintf(cbuf, sizeof cbuf, "%.*s", (int)(close - code), code);
        json_t *attrs = json_object_get(rec, "attribute");
        if (!json_is_object(attrs)) {
            attrs = json_object();
            if (!attrs || json_object_set_new(rec, "attribute", attrs) != 0) { json_decref(s); return -1; }
        }
        json_t *cur = json_object_get(attrs, cbuf);
        if (!multi) return json_object_set_new(attrs, cbuf, s) == 0 ? 0 : -1;
        if (!json_is_array(cur)) {
            json_t *arr = json_array();
            if (!arr) { json_decref(s); return -1; }
            if (json_is_string(cur)) json_array_append(arr, cur);
            if (json_object_set_new(attrs, cbuf, arr) != 0) { json_decref(s); return -1; }
            cur = arr;
        }
        return insert_sorted(cur, s) == 0 ? 0 : -1;
    }
    if (!name_ok(key, klen) || !strcmp(key, "attribute")) {
        json_decref(s);
        snprintf(errstr, errlen, "field name '%.100s' is not valid", key);
        return -1;
    }
    return json_object_set_new(rec, key, s) == 0 ? 0 : -1;
}

int o311_record_hash(const json_t *rec, char hex[65])
{
    json_t *c = json_deep_copy(rec);
    if (!c) return -1;
    json_object_del(c, "api_key");
    json_object_del(c, "requested_datetime");
    json_object_del(c, "service_request_id");
    char *text = json_dumps(c, JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(c);
    if (!text) return -1;
    relais_sha256_hex(text, strlen(text), hex);
    free(text);
    return 0;
}

static uint64_t first_8_bytes(const char *hex)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char ch = hex[i];
        unsigned d = (ch >= '0' && ch <= '9') ? (unsigned)(ch - '0') : (unsigned)(ch - 'a' + 10);
        v = (v << 4) | (d & 0xF);
    }
    return v;
}

void o311_id_from_hash(const char *hex, char out[O311_ID_LEN + 1])
{
    snprintf(out, O311_ID_LEN + 1, "%015" PRIu64, first_8_bytes(hex) % UINT64_C(1000000000000000));
}

void o311_token_from_hash(const char *hex, char out[O311_TOKEN_LEN + 1])
{
    snprintf(out, O311_TOKEN_LEN + 1, "%.*s", O311_TOKEN_LEN, hex);
}

int o311_id_from_token(const char *tok, char out[O311_ID_LEN + 1])
{
    if (!tok || strlen(tok) != O311_TOKEN_LEN) return -1;
    for (const char *p = tok; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return -1;
    o311_id_from_hash(tok, out);
    return 0;
}

/* ---- The spec's checks of a POST ------------------------------------------ */

static int number_in(const json_t *v, double lo, double hi, double *out)
{
    const char *s = json_string_value(v);
    if (!s || !*s) return -1;
    char *end = NULL;
    errno = 0;
    double d = strtod(s, &end);
    if (errno || !end || *end || !isfinite(d) || d < lo || d > hi) return -1;
    *out = d;
    return 0;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) n++;
    return n;
}

static int value_allowed(const json_t *def_attr, const char *v)
{
    const json_t *vals = json_object_get(def_attr, "values");
    size_t i;
    const json_t *it;
    json_array_foreach(vals, i, it) {
        const char *k = json_string_value(json_object_get(it, "key"));
        if (k && !strcmp(k, v)) return 1;
    }
    return 0;
}

int o311_request_check(const o311_catalog *cat, const json_t *rec, char *errstr, size_t errlen)
{
    const char *code = json_string_value(json_object_get(rec, "service_code"));
    if (!code) {
        snprintf(errstr, errlen, "service_code was not provided -- can't proceed with create_request.");
        return -1;
    }
    if (!cat || !json_object_get(cat->names, code)) {
        snprintf(errstr, errlen, "service_code '%.64s' was not found -- can't proceed with create_request.", code);
        return -1;
    }
    const json_t *lat = json_object_get(rec, "lat"), *lon = json_object_get(rec, "long");
    double d;
    if ((lat != NULL) != (lon != NULL)) {
        snprintf(errstr, errlen, "lat and long must be given together -- can't proceed with create_request.");
        return -1;
    }
    if (lat && (number_in(lat, -90, 90, &d) != 0 || number_in(lon, -180, 180, &d) != 0)) {
        snprintf(errstr, errlen, "lat and long must be WGS-84 decimal degrees -- can't proceed with create_request.");
        return -1;
    }
    if (!lat && !json_object_get(rec, "address_string") && !json_object_get(rec, "address_id")) {
        snprintf(errstr, errlen, "a location is required (lat and long, address_string or address_id) "
                 "-- can't proceed with create_request.");
        return -1;
    }
    const char *desc = json_string_value(json_object_get(rec, "description"));
    if (desc && utf8_chars(desc) > O311_MAX_DESCRIPTION) {
        snprintf(errstr, errlen, "description is longer than %d characters -- can't proceed with create_request.",
                 O311_MAX_DESCRIPTION);
        return -1;
    }
    const json_t *def = json_object_get(cat->definitions, code);
    const json_t *given = json_object_get(rec, "attribute");
    size_t i;
    const json_t *a;
    json_array_foreach(json_object_get(def, "attributes"), i, a) {
        const char *acode = json_string_value(json_object_get(a, "code"));
        const char *dt = json_string_value(json_object_get(a, "datatype"));
        const json_t *v = json_object_get(given, acode ? acode : "");
        if (!v) {
            if (json_is_true(json_object_get(a, "required")) && json_is_true(json_object_get(a, "variable"))) {
                snprintf(errstr, errlen, "attribute %.64s is required for service_code %.64s "
                         "-- can't proceed with create_request.", acode, code);
                return -1;
            }
            continue;
        }
        int list = dt && (!strcmp(dt, "singlevaluelist") || !strcmp(dt, "multivaluelist"));
        if (json_is_array(v) && !(dt && !strcmp(dt, "multivaluelist"))) {
            snprintf(errstr, errlen, "attribute %.64s takes one value -- can't proceed with create_request.", acode);
            return -1;
        }
        size_t k;
        const json_t *one;
        json_t *single = json_is_array(v) ? NULL : json_pack("[O]", v);
        json_array_foreach(single ? single : v, k, one) {
            const char *s = json_string_value(one);
            double num;
            int64_t t;
            int bad = list ? !value_allowed(a, s)
                    : (dt && !strcmp(dt, "number")) ? number_in(one, -HUGE_VAL, HUGE_VAL, &num) != 0
                    : (dt && !strcmp(dt, "datetime")) ? o311_parse_datetime(s, &t) != 0
                    : 0;
            if (bad) {
                snprintf(errstr, errlen, "attribute %.64s: '%.64s' is not a valid %s -- can't proceed with create_request.",
                         acode, s, list ? "value of its list" : dt);
                json_decref(single);
                return -1;
            }
        }
        json_decref(single);
    }
    return 0;
}

/* ---- W3C datetimes --------------------------------------------------------- */

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int days_in(int y, int m)
{
    static const int d[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return d[m - 1];
}

int o311_parse_datetime(const char *s, int64_t *out)
{
    if (!s) return -1;
    size_t n = strlen(s);
    int y, mo, d, h = 0, mi = 0, sec = 0, off = 0;
    if (n < 10 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-'
        || digits(s + 8, 2, &d))
        return -1;
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > days_in(y, mo)) return -1;
    const char *p = s + 10;
    if (*p) {
        if (*p != 'T' && *p != 't' && *p != ' ') return -1;
        p++;
        if (strlen(p) < 5 || digits(p, 2, &h) || p[2] != ':' || digits(p + 3, 2, &mi)) return -1;
        p += 5;
        if (*p == ':') {
            if (digits(p + 1, 2, &sec)) return -1;
            p += 3;
            if (*p == '.') {
                p++;
                if (*p < '0' || *p > '9') return -1;
                while (*p >= '0' && *p <= '9') p++;
            }
        }
        if (h > 23 || mi > 59 || sec > 60) return -1;
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int oh, om, sign = *p == '-' ? -1 : 1;
            p++;
            if (digits(p, 2, &oh)) return -1;
            p += 2;
            if (*p == ':') p++;
            if (digits(p, 2, &om)) return -1;
            p += 2;
            if (oh > 23 || om > 59) return -1;
            off = sign * (oh * 3600 + om * 60);
        }
        if (*p) return -1;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    *out = (int64_t)t - off;
    return 0;
}

void o311_format_datetime(time_t t, char *buf, size_t len)
{
    struct tm tm;
    char z[8] = "+0000";
    localtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    strftime(z, sizeof z, "%z", &tm);
    snprintf(buf, len, "%s%.3s:%.2s", base, z, z + 3);
}

/* ---- Lists, form encoding, keys -------------------------------------------- */

json_t *o311_split_csv(const char *s, size_t max)
{
    json_t *arr = json_array();
    if (!arr) return NULL;
    const char *p = s ? s : "";
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *a = p, *b = p + n;
        while (a < b && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        if (b > a) {
            json_t *it = (size_t)(b - a) <= 200 ? json_stringn(a, (size_t)(b - a)) : NULL;
            if (!it || json_array_size(arr) >= max) {
                json_decref(it);
                json_decref(arr);
                return NULL;
            }
            json_array_append_new(arr, it);
        }
        p = end ? end + 1 : p + n;
    }
    return arr;
}

/* Append "key=value" (both escaped; key may keep its brackets). */
static int append_pair(char **buf, size_t *len, const char *key_raw, const char *code, int multi,
                       const char *value)
{
    char *k = curl_easy_escape(NULL, code ? code : key_raw, 0);
    char *v = curl_easy_escape(NULL, value, 0);
    int rc = -1;
    if (k && v) {
        size_t need = *len + strlen(k) + strlen(v) + 32;
        char *nb = realloc(*buf, need);
        if (nb) {
            *buf = nb;
            int w = code ? snprintf(nb + *len, need - *len, "%sattribute[%s]%s=%s", *len ? "&" : "", k,
                                    multi ? "[]" : "", v)
                         : snprintf(nb + *len, need - *len, "%s%s=%s", *len ? "&" : "", k, v);
            if (w > 0) { *len += (size_t)w; rc = 0; }
        }
    }
    curl_free(k);
    curl_free(v);
    return rc;
}

static int scalar_text(const json_t *v, char *buf, size_t len)
{
    if (json_is_string(v)) snprintf(buf, len, "%s", json_string_value(v));
    else if (json_is_integer(v)) snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v)) snprintf(buf, len, "%.15g", json_real_value(v));
    else if (json_is_true(v)) snprintf(buf, len, "true");
    else if (json_is_false(v)) snprintf(buf, len, "false");
    else return -1;
    return 0;
}

char *o311_form_encode(const json_t *fields, const char *api_key, const char *jurisdiction_id)
{
    char *buf = calloc(1, 1);
    size_t len = 0;
    char text[O311_MAX_VALUE + 1];
    int bad = !buf;
    if (!bad && api_key) bad = append_pair(&buf, &len, "api_key", NULL, 0, api_key);
    if (!bad && jurisdiction_id) bad = append_pair(&buf, &len, "jurisdiction_id", NULL, 0, jurisdiction_id);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)fields, k, v) {
        if (bad) break;
        if (json_is_null(v) || !strcmp(k, "api_key") || !strcmp(k, "jurisdiction_id")) continue;
        if (json_is_object(v)) {
            const char *ak;
            json_t *av;
            json_object_foreach(v, ak, av) {
                if (bad) break;
                if (json_is_array(av)) {
                    size_t i;
                    json_t *it;
                    json_array_foreach(av, i, it) {
                        if (scalar_text(it, text, sizeof text) != 0) { bad = 1; break; }
                        bad = append_pair(&buf, &len, NULL, ak, 1, text);
                        if (bad) break;
                    }
                } else if (!json_is_null(av)) {
                    bad = scalar_text(av, text, sizeof text) != 0
                          || append_pair(&buf, &len, NULL, ak, 0, text) != 0;
                }
            }
        } else {
            bad = scalar_text(v, text, sizeof text) != 0 || append_pair(&buf, &len, k, NULL, 0, text) != 0;
        }
    }
    if (bad) {
        free(buf);
        return NULL;
    }
    return buf;
}

int o311_state_key(char *buf, size_t len, const char *prefix, const char *id)
{
    int n = snprintf(buf, len, "%s%s", prefix, id ? id : "");
    return (n < 0 || (size_t)n >= len || n > 200 || !id || !*id) ? -1 : 0;
}
