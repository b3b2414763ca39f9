/*
 * http_body.c - the pure part of the http connector: webhook body -> records
 * (fields picked with hub/jsonptr.h), the X-Relais-Signature scheme (HMAC-SHA256 via
 * OpenSSL's EVP_MAC over "<t>.<nonce>.<body>", constant-time compare; the
 * replay memory of nonces is the source's, http_source.c). (Excerpts, the listen-address
 * split and the capped request-body buffer live in hub/httputil.c.) No I/O,
 * no threads, no global state (a new nonce's random bytes come from
 * OpenSSL's RAND_bytes): every function works on its arguments only,
 * so the webhook threads call them freely and tests/fuzz/fuzz_webhook.c
 * fuzzes relais_http_parse_body.
 *
 * Body forms (see README.md):
 *   - a JSON object: one record;
 *   - a JSON array of objects: a batch;
 *   - Content-Type application/cloudevents+json: one structured CloudEvent;
 *   - Content-Type application/cloudevents-batch+json: an array of them.
 * The body is parsed by relais_json_parse (hub/safeparse.h): duplicate keys,
 * invalid UTF-8 and \u0000 refused, nesting bounded by a pre-scan before
 * jansson runs (RELAIS_HTTP_MAX_DEPTH). Its "body:LINE:COLUMN: message" error
 * is split back into the batch's error, line and column.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include "http_int.h"
#include "safeparse.h"
#include "event_int.h"

/* ---- Identifier values ---------------------------------------------------- */

int relais_http_value_text(const json_t *v, char *buf, size_t len)
{
    if (!json_is_integer(v) && !(json_is_string(v) && json_string_length(v) > 0)) {
        if (len > 0) buf[0] = '\0';
        return -1;
    }
    return relais_json_scalar_text(v, buf, len);
}

/* ---- Records -------------------------------------------------------------- */

static int media_is(const char *ct, const char *media)
{
    if (!ct) return 0;
    while (*ct == ' ' || *ct == '\t') ct++;
    size_t n = strlen(media);
    if (strncasecmp(ct, media, n) != 0) return 0;
    ct += n;
    while (*ct == ' ' || *ct == '\t') ct++;
    return *ct == '\0' || *ct == ';';
}

/* Optional text at a pointer into `from`: 0 found (in buf), 1 absent or no
 * pointer, -1 present but not a usable scalar. */
static int opt_pointer(json_t *from, const char *pointer, char *buf, size_t len)
{
    if (!pointer || !*pointer) return 1;
    json_t *v = relais_json_pointer(from, pointer);
    if (!v || json_is_null(v)) return 1;
    return relais_http_value_text(v, buf, len);
}

static int invalid(relais_http_item *it, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int invalid(relais_http_item *it, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    it->valid = 0;
    vsnprintf(it->reason, sizeof it->reason, fmt, ap);
    va_end(ap);
    return -1;
}

/* A CloudEvent string attribute: 0 absent, 1 present (in *out), -1 invalid. */
static int ce_attr(relais_http_item *it, json_t *ce, const char *name, const char **out)
{
    json_t *v = json_object_get(ce, name);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v) || json_string_length(v) == 0
        || json_string_length(v) > RELAIS_HTTP_MAX_FIELD) {
        invalid(it, "CloudEvent attribute '%s' must be a non-empty string of at most 255 bytes",
                name);
        return -1;
    }
    *out = json_string_value(v);
    return 1;
}

/* The default record id from the Idempotency-Key header. */
static void key_record_id(relais_http_item *it, const relais_http_parse_opts *o, int single,
                          size_t index)
{
    if (!o->idempotency_key || !*o->idempotency_key) return;
    if (single) {
        it->rec.record_id = o->idempotency_key;
    } else {
        snprintf(it->idbuf, sizeof it->idbuf, "%s/%zu", o->idempotency_key, index);
        it->rec.record_id = it->idbuf;
    }
}

static int build_plain(relais_http_item *it, json_t *obj, const relais_http_parse_opts *o,
                        int single, size_t index)
{
    it->rec.data = obj;
    int r = opt_pointer(obj, o->type_pointer, it->typebuf, sizeof it->typebuf);
    if (r == 0) it->rec.type = it->typebuf;
    else if (r < 0) return invalid(it, "type at %s is not a string of at most 255 bytes", o->type_pointer);
    else if (o->event_type && *o->event_type) it->rec.type = o->event_type;
    else if (o->type_pointer && *o->type_pointer)
        return invalid(it, "missing type: nothing at type_pointer %s and no event_type configured",
                       o->type_pointer);
    else if (!o->mapped) return invalid(it, "missing type: no event_type or type_pointer configured");

    r = opt_pointer(obj, o->subject_pointer, it->subjbuf, sizeof it->subjbuf);
    if (r < 0) return invalid(it, "subject at %s is not a string or integer of at most 255 bytes", o->subject_pointer);
    if (r == 0) it->rec.subject = it->subjbuf;

    r = opt_pointer(obj, o->correlation_pointer, it->corrbuf, sizeof it->corrbuf);
    if (r < 0) return invalid(it, "correlation id at %s is not a string or integer of at most 255 bytes", o->correlation_pointer);
    if (r == 0) it->rec.correlation_id = it->corrbuf;

    if (o->record_id_pointer && *o->record_id_pointer) {
        r = opt_pointer(obj, o->record_id_pointer, it->idbuf, sizeof it->idbuf);
        if (r != 0) return invalid(it, "no record id (string or integer of at most 255 bytes) at %s", o->record_id_pointer);
        it->rec.record_id = it->idbuf;
    } else {
        key_record_id(it, o, single, index);
    }
    it->valid = 1;
    return 0;
}

static int build_cloudevent(relais_http_item *it, json_t *ce, const relais_http_parse_opts *o,
                             int single, size_t index)
{
    json_t *sv = json_object_get(ce, "specversion");
    if (!json_is_string(sv) || strcmp(json_string_value(sv), "1.0") != 0)
        return invalid(it, "CloudEvent: specversion must be \"1.0\"");
    if (json_object_get(ce, "data_base64"))
        return invalid(it, "CloudEvent: data_base64 is not supported, send data as a JSON object");
    json_t *data = json_object_get(ce, "data");
    if (!data || json_is_null(data)) {
        it->data_owned = json_object();
        if (!it->data_owned) return invalid(it, "out of memory");
        data = it->data_owned;
    } else if (!json_is_object(data)) {
        return invalid(it, "CloudEvent: data must be a JSON object");
    }
    it->rec.data = data;

    const char *v = NULL;
    int r = ce_attr(it, ce, "type", &v);
    if (r < 0) return -1;
    if (r == 0) return invalid(it, "CloudEvent: missing type");
    it->rec.type = v;

    r = ce_attr(it, ce, "subject", &v);
    if (r < 0) return -1;
    if (r == 1) {
        it->rec.subject = v;
    } else {
        r = opt_pointer(data, o->subject_pointer, it->subjbuf, sizeof it->subjbuf);
        if (r < 0) return invalid(it, "subject at %s (in data) is not a string or integer of at most 255 bytes", o->subject_pointer);
        if (r == 0) it->rec.subject = it->subjbuf;
    }

    r = ce_attr(it, ce, "correlationid", &v);
    if (r < 0) return -1;
    if (r == 1) {
        it->rec.correlation_id = v;
    } else {
        r = opt_pointer(data, o->correlation_pointer, it->corrbuf, sizeof it->corrbuf);
        if (r < 0) return invalid(it, "correlation id at %s (in data) is not a string or integer of at most 255 bytes", o->correlation_pointer);
        if (r == 0) it->rec.correlation_id = it->corrbuf;
    }

    r = ce_attr(it, ce, "traceparent", &v);
    if (r < 0) return -1;
    if (r == 1) it->rec.traceparent = v;

    /* record id: recordid, else the sender's CloudEvent id, else the key */
    r = ce_attr(it, ce, "recordid", &v);
    if (r < 0) return -1;
    if (r == 0) {
        r = ce_attr(it, ce, "id", &v);
        if (r < 0) return -1;
    }
    if (r == 1) it->rec.record_id = v;
    else key_record_id(it, o, single, index);
    it->valid = 1;
    return 0;
}

static relais_http_body_status malformed(relais_http_batch *b, const char *msg)
{
    snprintf(b->error, sizeof b->error, "%.*s", (int)sizeof b->error - 1, msg);   /* cut to fit */
    b->line = 0;
    b->column = 0;
    return RELAIS_HTTP_BODY_MALFORMED;
}

/* relais_json_parse's "body:LINE:COLUMN: message" (or "body: message") into
 * b->error, b->line, b->column. */
static relais_http_body_status parse_failed(relais_http_batch *b, const char *err)
{
    int line = 0, column = 0, n = 0;
    const char *msg = err;
    if (strncmp(err, "body:", 5) == 0) {
        if (sscanf(err + 5, "%d:%d: %n", &line, &column, &n) == 2 && n > 0) {
            msg = err + 5 + n;
        } else {
            line = column = 0;
            msg = err + 5 + (err[5] == ' ');
        }
    }
    snprintf(b->error, sizeof b->error, "%.*s", (int)sizeof b->error - 1, msg);   /* cut to fit */
    b->line = line;
    b->column = column;
    return RELAIS_HTTP_BODY_MALFORMED;
}

relais_http_body_status relais_http_parse_body(const char *body, size_t len,
                                               const relais_http_parse_opts *o,
                                               relais_http_batch *b)
{
    memset(b, 0, sizeof *b);
    /* the size is already bounded by the source's max_body */
    relais_parse_limits lim = { .max_bytes = SIZE_MAX, .max_depth = RELAIS_HTTP_MAX_DEPTH };
    char err[sizeof b->error + 64];
    b->root = relais_json_parse(body, len, "body", &lim, err, sizeof err);
    if (!b->root) return parse_failed(b, err);
    if (!json_is_object(b->root) && !json_is_array(b->root))
        return malformed(b, "body must be a JSON object or array");
    int ce_one = media_is(o->content_type, "application/cloudevents+json");
    int ce_batch = media_is(o->content_type, "application/cloudevents-batch+json");
    size_t n;
    if (json_is_object(b->root)) {
        if (ce_batch)
            return malformed(b, "application/cloudevents-batch+json body must be a JSON array");
        b->single = 1;
        n = 1;
    } else {
        if (ce_one)
            return malformed(b, "application/cloudevents+json body must be a JSON object");
        n = json_array_size(b->root);
    }
    if (o->max_batch && n > o->max_batch) {
        snprintf(b->error, sizeof b->error, "batch of %zu records exceeds max_batch %zu", n,
                 o->max_batch);
        return RELAIS_HTTP_BODY_TOO_MANY;
    }
    if (n > 0) {
        b->items = calloc(n, sizeof *b->items);
        if (!b->items) return malformed(b, "out of memory");
    }
    b->n = n;
    for (size_t i = 0; i < n; i++) {
        relais_http_item *it = &b->items[i];
        json_t *obj = b->single ? b->root : json_array_get(b->root, i);
        if (!json_is_object(obj)) {
            snprintf(it->reason, sizeof it->reason, "element %zu is not a JSON object", i);
            continue;
        }
        if (ce_one || ce_batch) build_cloudevent(it, obj, o, b->single, i);
        else build_plain(it, obj, o, b->single, i);
    }
    return RELAIS_HTTP_BODY_OK;
}

void relais_http_batch_free(relais_http_batch *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->n; i++)
        json_decref(b->items[i].data_owned);
    free(b->items);
    json_decref(b->root);
    b->items = NULL;
    b->root = NULL;
    b->n = 0;
}

/* ---- Signatures ----------------------------------------------------------- */

int relais_http_nonce_ok(const char *nonce)
{
    if (!nonce) return 0;
    size_t n = strlen(nonce);
    if (n < RELAIS_HTTP_NONCE_MIN || n > RELAIS_HTTP_NONCE_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = nonce[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

int relais_http_nonce_new(char out[33])
{
    unsigned char r[16];
    if (RAND_bytes(r, sizeof r) != 1) return -1;
    relais_hex(r, sizeof r, out);
    return 0;
}

int relais_http_sign(const char *secret, long long ts, const char *nonce, const void *body, size_t len,
                     char out_hex[65])
{
    int rc = -1;
    char head[32 + RELAIS_HTTP_NONCE_MAX + 2];
    if (!relais_http_nonce_ok(nonce)) return -1;
    int tn = snprintf(head, sizeof head, "%lld.%s.", ts, nonce);
    if (tn <= 0 || (size_t)tn >= sizeof head) return -1;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    if (ctx) {
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
            OSSL_PARAM_construct_end()
        };
        unsigned char md[32];
        size_t mdlen = 0;
        if (EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), params) == 1
            && EVP_MAC_update(ctx, (const unsigned char *)head, (size_t)tn) == 1
            && (len == 0 || EVP_MAC_update(ctx, body, len) == 1)
            && EVP_MAC_final(ctx, md, &mdlen, sizeof md) == 1 && mdlen == sizeof md) {
            relais_hex(md, sizeof md, out_hex);
            rc = 0;
        }
    }
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return rc;
}

int relais_http_signature_header(const char *secret, long long ts, const char *nonce, const void *body,
                                 size_t len, char *buf, size_t buflen)
{
    char hex[65];
    if (relais_http_sign(secret, ts, nonce, body, len, hex) != 0) return -1;
    int n = snprintf(buf, buflen, "t=%lld,v2=%s", ts, hex);
    return (n > 0 && (size_t)n < buflen) ? 0 : -1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

relais_http_sig_status relais_http_verify(const char *secret, const char *header, const char *nonce,
                                          long long now, long tolerance_s, const void *body, size_t len,
                                          long long *ts_out)
{
    if (ts_out) *ts_out = -1;
    if (!header || !*header) return RELAIS_HTTP_SIG_MISSING;
    long long ts = -1;
    int have_v1 = 0, have_v2 = 0;
    unsigned char cand[8][32];
    size_t ncand = 0;
    const char *p = header;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        const char *start = p;
        while (*p && *p != ',') p++;
        size_t n = (size_t)(p - start);
        while (n > 0 && start[n - 1] == ' ') n--;
        if (n > 2 && start[0] == 't' && start[1] == '=') {
            long long v = 0;
            if (n - 2 > 12) return RELAIS_HTTP_SIG_MALFORMED;
            for (size_t k = 2; k < n; k++) {
                if (start[k] < '0' || start[k] > '9') return RELAIS_HTTP_SIG_MALFORMED;
                v = v * 10 + (start[k] - '0');
            }
            ts = v;
        } else if (n > 3 && strncmp(start, "v1=", 3) == 0) {
            have_v1 = 1;
        } else if (n > 3 && strncmp(start, "v2=", 3) == 0) {
            have_v2 = 1;
            if (n - 3 != 64 || ncand == sizeof cand / sizeof cand[0]) continue;
            int ok = 1;
            for (size_t k = 0; k < 32; k++) {
                int hi = hexval(start[3 + 2 * k]), lo = hexval(start[4 + 2 * k]);
                if (hi < 0 || lo < 0) {
                    ok = 0;
                    break;
                }
                cand[ncand][k] = (unsigned char)(hi << 4 | lo);
            }
            if (ok) ncand++;
        }
    }
    if (ts < 0) return RELAIS_HTTP_SIG_MALFORMED;
    if (!have_v2) return have_v1 ? RELAIS_HTTP_SIG_LEGACY : RELAIS_HTTP_SIG_MALFORMED;
    if (!relais_http_nonce_ok(nonce)) return RELAIS_HTTP_SIG_NONCE;
    long long d = now - ts;
    if (d < 0) d = -d;
    if (d > tolerance_s) return RELAIS_HTTP_SIG_STALE;
    char hex[65];
    if (relais_http_sign(secret, ts, nonce, body, len, hex) != 0) return RELAIS_HTTP_SIG_MISMATCH;
    unsigned char want[32];
    for (size_t k = 0; k < 32; k++)
        want[k] = (unsigned char)(hexval(hex[2 * k]) << 4 | hexval(hex[2 * k + 1]));
    /* every candidate is compared in constant time, and all of them are
     * compared whatever the outcome, so the time taken says nothing */
    int match = 0;
    for (size_t c = 0; c < ncand; c++)
        match |= CRYPTO_memcmp(cand[c], want, sizeof want) == 0;
    OPENSSL_cleanse(want, sizeof want);
    if (match && ts_out) *ts_out = ts;
    return match ? RELAIS_HTTP_SIG_OK : RELAIS_HTTP_SIG_MISMATCH;
}

const char *relais_http_sig_status_text(relais_http_sig_status s)
{
    switch (s) {
    case RELAIS_HTTP_SIG_OK:        return "signature valid";
    case RELAIS_HTTP_SIG_MISSING:   return "missing " RELAIS_HTTP_SIG_HEADER " header";
    case RELAIS_HTTP_SIG_MALFORMED: return RELAIS_HTTP_SIG_HEADER " must be t=<unix seconds>,v2=<hex hmac-sha256>";
    case RELAIS_HTTP_SIG_STALE:     return "signature timestamp outside the accepted tolerance";
    case RELAIS_HTTP_SIG_MISMATCH:  return "signature does not match the body";
    case RELAIS_HTTP_SIG_NONCE:     return "missing or invalid " RELAIS_HTTP_NONCE_HEADER " header "
                                           "(16 to 64 of A-Z a-z 0-9 - _, new for every request)";
    case RELAIS_HTTP_SIG_LEGACY:    return "v1 signatures (without nonce) are no longer accepted: sign "
                                           "\"<t>.<nonce>.<body>\" as v2= and send the nonce in "
                                           RELAIS_HTTP_NONCE_HEADER;
    }
    return "signature invalid";
}
