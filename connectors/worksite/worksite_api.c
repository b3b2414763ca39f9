/*
 * worksite_api.c - the work-order tool's interface as data
 * (api/worksite-openapi.yaml): statuses and their life cycle, RFC 3339
 * times, identifiers, and the parsers of the tool's answers that the sink
 * and the poller read (error bodies, an intervention's id, a page of the
 * list, a history).
 *
 * Pure functions: no I/O, no state, no threads of their own; safe from any
 * thread. Every answer is outside input: it goes through relais_json_parse
 * (hub/safeparse.h: duplicate keys, depth and size bounded) and only what is
 * checked here is used. tests/fuzz/fuzz_worksite_answers.c fuzzes them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "worksite_int.h"
#include "safeparse.h"

static const char *const status_names[WS_STATUS_COUNT] = {
    "received", "accepted", "planned", "in_progress", "done", "refused"
};

const char *ws_status_name(ws_status s)
{
    return (int)s >= 0 && s < WS_STATUS_COUNT ? status_names[s] : NULL;
}

int ws_status_parse(const char *name, ws_status *out)
{
    for (int i = 0; name && i < WS_STATUS_COUNT; i++) {
        if (strcmp(name, status_names[i]) == 0) {
            *out = (ws_status)i;
            return 0;
        }
    }
    return -1;
}

int ws_status_allowed(ws_status from, ws_status to)
{
    switch (to) {
    case WS_ACCEPTED:    return from == WS_RECEIVED;
    case WS_PLANNED:     return from == WS_ACCEPTED;
    case WS_IN_PROGRESS: return from == WS_PLANNED;
    case WS_DONE:        return from == WS_IN_PROGRESS;
    case WS_REFUSED:     return from == WS_RECEIVED || from == WS_ACCEPTED;
    default:             return 0;
    }
}

int ws_status_next(ws_status s, ws_status *next)
{
    if (s >= WS_RECEIVED && s < WS_DONE) {
        *next = (ws_status)(s + 1);
        return 0;
    }
    return -1;
}

/* ---- Times ------------------------------------------------------------------ */

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

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int month_days(int y, int m)
{
    static const int md[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : md[m - 1];
}

int ws_time_parse(const char *s, int64_t *us)
{
    int Y, M, D, h, mi, sec;
    if (!s || strlen(s) < 20) return -1;
    if (digits(s, 4, &Y) || s[4] != '-' || digits(s + 5, 2, &M) || s[7] != '-'
        || digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &h)
        || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &sec))
        return -1;
    if (Y < 1 || M < 1 || M > 12 || D < 1 || D > month_days(Y, M) || h > 23 || mi > 59 || sec > 60)
        return -1;
    const char *p = s + 19;
    int64_t frac = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        int64_t scale = 100000;
        while (*p >= '0' && *p <= '9') {
            if (n < 6) frac += (*p - '0') * scale;
            scale /= 10;
            n++;
            p++;
        }
        if (n == 0) return -1;
    }
    int off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p) return -1;
    if (sec == 60) sec = 59;   /* a leap second counts as the second before it */
    int64_t t = days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400 + h * 3600 + mi * 60 + sec - off;
    *us = t * 1000000 + frac;
    return 0;
}

int ws_id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > 64 || strcmp(id, ".") == 0 || strcmp(id, "..") == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'
              || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

/* ---- Answers ---------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 when invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t k;
    unsigned min;
    unsigned cp;
    if (p[0] < 0x80) return 1;
    if ((p[0] & 0xE0) == 0xC0) { k = 2; min = 0x80; cp = p[0] & 0x1F; }
    else if ((p[0] & 0xF0) == 0xE0) { k = 3; min = 0x800; cp = p[0] & 0x0F; }
    else if ((p[0] & 0xF8) == 0xF0) { k = 4; min = 0x10000; cp = p[0] & 0x07; }
    else return 0;
    if (k > n) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return k;
}

/* At most `max` bytes of src as one line of valid UTF-8: control characters
 * become ' ', invalid bytes '?'; cut at a character boundary. */
static void excerpt(char *out, size_t outlen, const char *src, size_t len, size_t max)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)src;
    if (outlen == 0) return;
    if (max > outlen - 1) max = outlen - 1;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_len(p + i, len - i);
        if (k == 0) {
            if (o + 1 > max) break;
            out[o++] = '?';
            i++;
            continue;
        }
        if (o + k > max) break;
        if (k == 1) {
            out[o++] = (p[i] < 0x20 || p[i] == 0x7F) ? ' ' : (char)p[i];
        } else {
            memcpy(out + o, p + i, k);
            o += k;
        }
        i += k;
    }
    out[o] = '\0';
}

static json_t *parse(const char *body, size_t len, const char *what, char *errstr, size_t errlen)
{
    if (!body || len == 0) {
        snprintf(errstr, errlen, "%s: empty answer", what);
        return NULL;
    }
    relais_parse_limits lim = { .max_bytes = WS_MAX_ANSWER, .max_depth = 32 };
    return relais_json_parse(body, len, what, &lim, errstr, errlen);
}

void ws_error_text(const char *body, size_t len, char *out, size_t outlen)
{
    char err[256];
    if (outlen == 0) return;
    out[0] = '\0';
    json_t *root = body && len ? parse(body, len, "error", err, sizeof err) : NULL;
    json_t *e = json_object_get(root, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *field = json_string_value(json_object_get(e, "field"));
    if (code || msg) {
        char text[1024];
        snprintf(text, sizeof text, "%s%s%s%s%s%s", code ? code : "", code && msg ? ": " : "",
                 msg ? msg : "", field ? " (" : "", field ? field : "", field ? ")" : "");
        excerpt(out, outlen, text, strlen(text), outlen - 1);
    } else if (body && len) {
        excerpt(out, outlen, body, len, outlen - 1 < 200 ? outlen - 1 : 200);
    }
    json_decref(root);
}

int ws_parse_intervention_id(const char *body, size_t len, char *id, size_t idlen,
                             char *errstr, size_t errlen)
{
    id[0] = '\0';
    json_t *root = parse(body, len, "intervention", errstr, errlen);
    if (!root) return -1;
    const char *v = json_string_value(json_object_get(root, "id"));
    int rc = -1;
    if (!json_is_object(root))
        snprintf(errstr, errlen, "intervention: the answer is not an object");
    else if (!v)
        snprintf(errstr, errlen, "intervention: no \"id\" in the answer");
    else if (!ws_id_valid(v) || strlen(v) >= idlen)
        snprintf(errstr, errlen, "intervention: unusable id in the answer");
    else {
        snprintf(id, idlen, "%s", v);
        rc = 0;
    }
    json_decref(root);
    return rc;
}

void ws_page_clear(ws_page *page)
{
    if (!page) return;
    json_decref(page->root);
    memset(page, 0, sizeof *page);
}

int ws_parse_page(const char *body, size_t len, ws_page *page, char *errstr, size_t errlen)
{
    memset(page, 0, sizeof *page);
    json_t *root = parse(body, len, "list", errstr, errlen);
    if (!root) return -1;
    json_t *items = json_object_get(root, "items");
    json_t *next = json_object_get(root, "next_cursor");
    if (!json_is_array(items)) {
        snprintf(errstr, errlen, "list: no \"items\" array");
        json_decref(root);
        return -1;
    }
    if (next && !json_is_null(next) && !(json_is_string(next) && json_string_length(next) > 0
                                         && json_string_length(next) <= 200)) {
        snprintf(errstr, errlen, "list: \"next_cursor\" is neither null nor a short text");
        json_decref(root);
        return -1;
    }
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        int64_t us;
        json_t *ext = json_object_get(it, "external_ref");
        const char *why = !json_is_object(it) ? "is not an object"
                        : !ws_id_valid(json_string_value(json_object_get(it, "id"))) ? "has no usable id"
                        : ws_time_parse(json_string_value(json_object_get(it, "updated_at")), &us) != 0
                              ? "has no RFC 3339 updated_at"
                        : (ext && !json_is_string(ext)) ? "has an external_ref that is not a text"
                        : NULL;
        if (why) {
            snprintf(errstr, errlen, "list: item %zu %s", i, why);
            json_decref(root);
            return -1;
        }
    }
    page->root = root;
    page->items = items;
    page->next_cursor = json_is_string(next) ? json_string_value(next) : NULL;
    return 0;
}

void ws_history_clear(ws_history *h)
{
    if (!h) return;
    json_decref(h->root);
    free(h->changes);
    memset(h, 0, sizeof *h);
}

static int change_cmp(const void *a, const void *b)
{
    const ws_change *x = a, *y = b;
    if (x->at_us != y->at_us) return x->at_us < y->at_us ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

int ws_parse_history(const char *body, size_t len, const char *intervention_id, ws_history *h,
                     char *errstr, size_t errlen)
{
    memset(h, 0, sizeof *h);
    json_t *root = parse(body, len, "history", errstr, errlen);
    if (!root) return -1;
    json_t *items = json_object_get(root, "items");
    const char *of = json_string_value(json_object_get(root, "intervention_id"));
    if (!json_is_array(items)) {
        snprintf(errstr, errlen, "history: no \"items\" array");
        json_decref(root);
        return -1;
    }
    if (intervention_id && of && strcmp(of, intervention_id) != 0) {
        snprintf(errstr, errlen, "history: the answer is about another intervention");
        json_decref(root);
        return -1;
    }
    size_t n = json_array_size(items);
    h->changes = calloc(n ? n : 1, sizeof *h->changes);
    if (!h->changes) {
        snprintf(errstr, errlen, "history: out of memory");
        json_decref(root);
        return -1;
    }
    h->root = root;
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        ws_change c = { .entry = it };
        json_t *id = json_object_get(it, "id");
        const char *status = json_string_value(json_object_get(it, "status"));
        c.at = json_string_value(json_object_get(it, "at"));
        c.author = json_string_value(json_object_get(it, "author"));
        const char *why = !json_is_object(it) ? "is not an object"
                        : !json_is_integer(id) || json_integer_value(id) < 1 ? "has no positive integer id"
                        : ws_status_parse(status, &c.status) != 0 ? "has an unknown status"
                        : ws_time_parse(c.at, &c.at_us) != 0 ? "has no RFC 3339 at"
                        : !c.author || !*c.author ? "has no author"
                        : NULL;
        if (why) {
            if (h->nbad++ == 0) snprintf(h->bad_reason, sizeof h->bad_reason, "history entry %zu %s", i, why);
            continue;
        }
        c.id = json_integer_value(id);
        h->changes[h->n++] = c;
    }
    qsort(h->changes, h->n, sizeof *h->changes, change_cmp);
    return 0;
}
