/*
 * event.c - the canonical envelope (CloudEvents 1.0, JSON): building from
 * source records, parsing, accessors, ids and times.
 *
 * An event is immutable after construction and reference counted (atomic),
 * so the bus thread, the router and delivery workers can share it.
 */
#include <ctype.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include "event_int.h"
#include "safeparse.h"

struct relais_event {
    atomic_int  refs;
    json_t     *obj;          /* the whole CloudEvent */
    const char *id, *source, *type, *subject, *time, *correlation, *tenant, *traceparent, *record_id;
    const char *source_instance;
    char       *json;         /* compact serialisation */
    size_t      json_len;
};

/* ---- clocks, ids, hashes ------------------------------------------------- */

int64_t relais_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t relais_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void relais_time_rfc3339(int64_t us, char *buf, size_t len)
{
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    if (n > 0 && n < len) snprintf(buf + n, len - n, ".%06ldZ", (long)(us % 1000000));
}

static void random_bytes(unsigned char *p, size_t n)
{
    if (RAND_bytes(p, (int)n) != 1) {
        /* RAND_bytes does not fail on Linux with a seeded DRBG; fall back anyway */
        for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(rand() & 0xff);
    }
}

void relais_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void relais_uuid_v7(char out[37])
{
    unsigned char b[16];
    uint64_t ms = (uint64_t)(relais_now_us() / 1000);
    random_bytes(b + 6, 10);
    for (int i = 0; i < 6; i++) b[i] = (unsigned char)(ms >> (8 * (5 - i)));
    b[6] = (unsigned char)(0x70 | (b[6] & 0x0f));
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
    char h[33];
    relais_hex(b, 16, h);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}

void relais_sha256_hex(const void *buf, size_t len, char out[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(buf, len, md);
    relais_hex(md, sizeof md, out);
}

/* ---- validation ------------------------------------------------------------ */

int relais_event_type_valid(const char *type)
{
    if (!type || !*type || strlen(type) > 200) return 0;
    int segs = 1, seglen = 0;
    for (const char *p = type; *p; p++) {
        if (*p == '.') {
            if (seglen == 0) return 0;
            segs++;
            seglen = 0;
        } else if (islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_' || *p == '-') {
            seglen++;
        } else {
            return 0;
        }
    }
    return seglen > 0 && segs >= 2;
}

static int traceparent_valid(const char *tp)
{
    /* 00-<32 hex>-<16 hex>-<2 hex> */
    if (!tp || strlen(tp) != 55) return 0;
    for (int i = 0; i < 55; i++) {
        char c = tp[i];
        if (i == 2 || i == 35 || i == 52) { if (c != '-') return 0; }
        else if (!isxdigit((unsigned char)c) || isupper((unsigned char)c)) return 0;
    }
    return strncmp(tp, "ff", 2) != 0;
}

static void new_traceparent(char out[56])
{
    unsigned char b[24];
    random_bytes(b, sizeof b);
    char trace[33], span[17];
    relais_hex(b, 16, trace);
    relais_hex(b + 16, 8, span);
    snprintf(out, 56, "00-%s-%s-01", trace, span);
}

static const char *str_member(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Fill the cached pointers and the serialisation. Takes obj's reference. */
static relais_event *wrap(json_t *obj)
{
    relais_event *ev = calloc(1, sizeof *ev);
    if (!ev) { json_decref(obj); return NULL; }
    atomic_init(&ev->refs, 1);
    ev->obj = obj;
    ev->id = str_member(obj, "id");
    ev->source = str_member(obj, "source");
    ev->type = str_member(obj, "type");
    ev->subject = str_member(obj, "subject");
    ev->time = str_member(obj, "time");
    ev->correlation = str_member(obj, "correlationid");
    ev->tenant = str_member(obj, "tenant");
    ev->traceparent = str_member(obj, "traceparent");
    ev->record_id = str_member(obj, "recordid");
    ev->source_instance = ev->source;
    const char *last = ev->source ? strrchr(ev->source, '/') : NULL;
    if (last && strncmp(ev->source, "/relais/", 8) == 0 && last[1]) ev->source_instance = last + 1;
    ev->json = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!ev->json) { relais_event_unref(ev); return NULL; }
    ev->json_len = strlen(ev->json);
    return ev;
}

static relais_event *build(const relais_record *rec, json_t *data_taken, const char *source_instance,
                           const char *default_tenant, char *errstr, size_t errlen);

relais_event *relais_event_build(const relais_record *rec, const char *source_instance,
                                 const char *default_tenant, char *errstr, size_t errlen)
{
    return build(rec, NULL, source_instance, default_tenant, errstr, errlen);
}

relais_event *relais_event_build_take(const relais_record *rec, json_t *data, const char *source_instance,
                                      const char *default_tenant, char *errstr, size_t errlen)
{
    relais_record r = *rec;
    r.data = data;
    relais_event *ev = build(&r, data, source_instance, default_tenant, errstr, errlen);
    json_decref(data);       /* the event holds its own reference when it was built */
    return ev;
}

/* data_taken: NULL (rec->data is copied) or rec->data itself, which the
 * event then shares (a new reference) instead of copying. */
static relais_event *build(const relais_record *rec, json_t *data_taken, const char *source_instance,
                           const char *default_tenant, char *errstr, size_t errlen)
{
    if (!rec->type) { snprintf(errstr, errlen, "type: missing"); return NULL; }
    if (!relais_event_type_valid(rec->type)) {
        snprintf(errstr, errlen, "type: '%.80s' is not a valid event type (dot-separated [a-z0-9_-] segments)", rec->type);
        return NULL;
    }
    if (!json_is_object(rec->data)) { snprintf(errstr, errlen, "data: must be a JSON object"); return NULL; }
    if (rec->subject && (!*rec->subject || strlen(rec->subject) > 512)) {
        snprintf(errstr, errlen, "subject: must be 1 to 512 characters");
        return NULL;
    }
    if (rec->record_id && (!*rec->record_id || strlen(rec->record_id) > 512)) {
        snprintf(errstr, errlen, "recordid: must be 1 to 512 characters");
        return NULL;
    }
    const char *tenant = rec->tenant && *rec->tenant ? rec->tenant : (default_tenant ? default_tenant : "default");

    char id[37];
    relais_uuid_v7(id);
    char when[40];
    relais_time_rfc3339(relais_now_us(), when, sizeof when);
    char tp[56];
    if (rec->traceparent && traceparent_valid(rec->traceparent)) snprintf(tp, sizeof tp, "%s", rec->traceparent);
    else new_traceparent(tp);
    char rid[65];
    const char *record_id = rec->record_id;
    if (!record_id) {
        char *canon = json_dumps(rec->data, JSON_COMPACT | JSON_SORT_KEYS);
        if (!canon) { snprintf(errstr, errlen, "data: cannot serialise"); return NULL; }
        relais_sha256_hex(canon, strlen(canon), rid);
        free(canon);
        record_id = rid;
    }
    char source[600];
    snprintf(source, sizeof source, "/relais/%s/%s", tenant, source_instance ? source_instance : "unknown");

    json_t *o = json_object();
    json_object_set_new(o, "specversion", json_string("1.0"));
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "source", json_string(source));
    json_object_set_new(o, "type", json_string(rec->type));
    if (rec->subject) json_object_set_new(o, "subject", json_string(rec->subject));
    json_object_set_new(o, "time", json_string(when));
    json_object_set_new(o, "datacontenttype", json_string("application/json"));
    json_object_set_new(o, "correlationid",
                        json_string(rec->correlation_id && *rec->correlation_id ? rec->correlation_id : id));
    json_object_set_new(o, "tenant", json_string(tenant));
    json_object_set_new(o, "traceparent", json_string(tp));
    json_object_set_new(o, "recordid", json_string(record_id));
    json_object_set_new(o, "data", data_taken ? json_incref(data_taken) : json_deep_copy(rec->data));
    /* json_string returns NULL on invalid UTF-8: then a member is missing */
    if (json_object_size(o) < (size_t)(rec->subject ? 12 : 11)) {
        json_decref(o);
        snprintf(errstr, errlen, "record: a string attribute is not valid UTF-8");
        return NULL;
    }
    relais_event *ev = wrap(o);
    if (!ev) snprintf(errstr, errlen, "out of memory");
    return ev;
}

static int ext_name_valid(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > 20) return 0;
    for (const char *p = k; *p; p++)
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p)) return 0;
    return 1;
}

relais_event *relais_event_from_json(json_t *obj, char *errstr, size_t errlen)
{
    if (!json_is_object(obj)) { snprintf(errstr, errlen, "$: must be a JSON object"); return NULL; }
    json_t *sv = json_object_get(obj, "specversion");
    if (!json_is_string(sv) || strcmp(json_string_value(sv), "1.0") != 0) {
        snprintf(errstr, errlen, "$.specversion: must be \"1.0\"");
        return NULL;
    }
    static const char *const required[] = { "id", "source", "type" };
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_object_get(obj, required[i]);
        if (!v) { snprintf(errstr, errlen, "$.%s: missing", required[i]); return NULL; }
        if (!json_is_string(v) || !*json_string_value(v)) {
            snprintf(errstr, errlen, "$.%s: must be a non-empty string", required[i]);
            return NULL;
        }
    }
    if (!relais_event_type_valid(json_string_value(json_object_get(obj, "type")))) {
        snprintf(errstr, errlen, "$.type: not a valid event type");
        return NULL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        if (strcmp(key, "data") == 0) {
            if (!json_is_object(v)) { snprintf(errstr, errlen, "$.data: must be a JSON object"); return NULL; }
            continue;
        }
        if (strcmp(key, "data_base64") == 0) {
            snprintf(errstr, errlen, "$.data_base64: binary data is not supported");
            return NULL;
        }
        if (!ext_name_valid(key)) {
            snprintf(errstr, errlen, "$.%.40s: attribute names must be 1-20 lower-case letters or digits", key);
            return NULL;
        }
        if (!json_is_string(v) && !json_is_integer(v) && !json_is_boolean(v)) {
            snprintf(errstr, errlen, "$.%s: attribute values must be strings, integers or booleans", key);
            return NULL;
        }
    }
    json_t *copy = json_deep_copy(obj);
    /* defaults for the Relais extensions */
    if (!json_is_string(json_object_get(copy, "correlationid")))
        json_object_set(copy, "correlationid", json_object_get(copy, "id"));
    if (!json_is_string(json_object_get(copy, "tenant")))
        json_object_set_new(copy, "tenant", json_string("default"));
    if (!json_is_string(json_object_get(copy, "recordid")))
        json_object_set(copy, "recordid", json_object_get(copy, "id"));
    if (!json_object_get(copy, "data")) json_object_set_new(copy, "data", json_object());
    relais_event *ev = wrap(copy);
    if (!ev) snprintf(errstr, errlen, "out of memory");
    return ev;
}

/* Events read back from the bus and the journal. Sources bound their
 * records at 64 levels and an event wraps its data one or two levels deeper:
 * twice that leaves room and still stops a hostile message on a shared
 * topic. The size is bounded by the bus (message.max.bytes). */
#define EVENT_MAX_DEPTH 128

relais_event *relais_event_parse(const char *buf, size_t len, char *errstr, size_t errlen)
{
    relais_parse_limits lim = { .max_bytes = SIZE_MAX, .max_depth = EVENT_MAX_DEPTH };
    char err[300];
    json_t *obj = relais_json_parse(buf, len, "event", &lim, err, sizeof err);
    if (!obj) {
        /* "event:LINE:COLUMN: message" -> "line L column C: message" */
        int line = 0, column = 0, n = 0;
        if (sscanf(err, "event:%d:%d: %n", &line, &column, &n) == 2 && n > 0)
            snprintf(errstr, errlen, "line %d column %d: %s", line, column, err + n);
        else
            snprintf(errstr, errlen, "%s", err);
        return NULL;
    }
    relais_event *ev = relais_event_from_json(obj, errstr, errlen);
    json_decref(obj);
    return ev;
}

/* ---- accessors ------------------------------------------------------------ */

const char *relais_event_id(const relais_event *ev) { return ev->id; }
const char *relais_event_source(const relais_event *ev) { return ev->source; }
const char *relais_event_type(const relais_event *ev) { return ev->type; }
const char *relais_event_subject(const relais_event *ev) { return ev->subject; }
const char *relais_event_time(const relais_event *ev) { return ev->time; }
const char *relais_event_correlation(const relais_event *ev) { return ev->correlation; }
const char *relais_event_tenant(const relais_event *ev) { return ev->tenant; }
const char *relais_event_traceparent(const relais_event *ev) { return ev->traceparent; }
const char *relais_event_record_id(const relais_event *ev) { return ev->record_id; }
const char *relais_event_source_instance(const relais_event *ev) { return ev->source_instance; }
json_t *relais_event_data(const relais_event *ev) { return json_object_get(ev->obj, "data"); }
json_t *relais_event_object(const relais_event *ev) { return ev->obj; }

const char *relais_event_json(const relais_event *ev, size_t *len)
{
    if (len) *len = ev->json_len;
    return ev->json;
}

void relais_event_entity(const relais_event *ev, char *buf, size_t len)
{
    /* fr.relais.<domain>.<entity>.<verb>[.vN] */
    const char *t = ev->type;
    if (t && strncmp(t, "fr.relais.", 10) == 0) {
        const char *dom_end = strchr(t + 10, '.');
        if (dom_end) {
            const char *ent = dom_end + 1;
            const char *ent_end = strchr(ent, '.');
            if (ent_end && ent_end > ent) {
                snprintf(buf, len, "%.*s", (int)(ent_end - ent), ent);
                return;
            }
        }
    }
    snprintf(buf, len, "subject");
}

relais_event *relais_event_ref(relais_event *ev)
{
    if (ev) atomic_fetch_add(&ev->refs, 1);
    return ev;
}

void relais_event_unref(relais_event *ev)
{
    if (!ev) return;
    if (atomic_fetch_sub(&ev->refs, 1) == 1) {
        free(ev->json);
        json_decref(ev->obj);
        free(ev);
    }
}
