/*
 * fuzz_webhook.c - libFuzzer target over the webhook's outside-input parsers
 * (connectors/http/http_body.c): relais_http_parse_body, the
 * X-Relais-Signature header check and the X-Relais-Nonce check, JSON
 * pointers (hub/jsonptr.c) and the UTF-8 excerpt.
 *
 * Input: the first byte selects the request shape (Content-Type, which
 * options are set, whether an Idempotency-Key is present); the rest is the body.
 * Seeds: tests/fuzz/corpus/webhook/.
 *
 * Build and run by hand (needs http_body.c, hub/jsonptr.c, hub/safeparse.c, jansson,
 * libcrypto, libxml2):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Ihub -Iconnectors/http \
 *     $(pkg-config --cflags libxml-2.0) tests/fuzz/fuzz_webhook.c connectors/http/http_body.c \
 *     hub/jsonptr.c hub/safeparse.c -ljansson -lcrypto -lxml2 -o fuzz_webhook
 *   ./fuzz_webhook -max_total_time=60 tests/fuzz/corpus/webhook/
 * Or configure with -DRELAIS_FUZZ=ON (clang) when the build lists tests/fuzz.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "http_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t sel = data[0];
    const char *body = (const char *)data + 1;
    size_t len = size - 1;

    static const char *const cts[] = {
        NULL, "application/json", "application/cloudevents+json",
        "application/cloudevents-batch+json; charset=utf-8"
    };
    relais_http_parse_opts o = {
        .content_type = cts[sel & 3],
        .idempotency_key = (sel & 4) ? "key-1" : NULL,
        .event_type = (sel & 8) ? "fr.relais.fuzz.thing.created" : NULL,
        .type_pointer = (sel & 16) ? "/type" : NULL,
        .subject_pointer = (sel & 32) ? "/a/0/b" : NULL,
        .record_id_pointer = (sel & 64) ? "/id" : NULL,
        .correlation_pointer = (sel & 128) ? "/c~1d" : NULL,
        .max_batch = 64,
    };
    relais_http_batch b;
    relais_http_body_status st = relais_http_parse_body(body, len, &o, &b);
    if (st == RELAIS_HTTP_BODY_OK) {
        check(b.root != NULL);
        check(!b.single || b.n == 1);
        for (size_t i = 0; i < b.n; i++) {
            const relais_http_item *it = &b.items[i];
            if (!it->valid) {
                check(it->reason[0] != '\0');
                continue;
            }
            /* what the hub will read: a type, a data object, bounded strings */
            check(it->rec.type && it->rec.type[0]);
            check(json_is_object(it->rec.data));
            if (it->rec.record_id) check(strlen(it->rec.record_id) < 512);
            if (it->rec.subject) check(strlen(it->rec.subject) <= RELAIS_HTTP_MAX_FIELD);
            if (it->rec.correlation_id) check(strlen(it->rec.correlation_id) <= RELAIS_HTTP_MAX_FIELD);
        }
    } else {
        check(b.error[0] != '\0');
    }
    relais_http_batch_free(&b);

    /* the same bytes as a signature header, a JSON pointer and an excerpt */
    char *text = malloc(len + 1);
    if (!text) return 0;
    memcpy(text, body, len);
    text[len] = '\0';
    /* as the signature header with a fixed nonce, and as the nonce under a
     * fixed (wrong) signature: never OK without a v2 that matches */
    long long ts = 0;
    relais_http_sig_status ss = relais_http_verify("secret", text, "0123456789abcdef", 1700000000, 300, body,
                                                   len, &ts);
    check(ss != RELAIS_HTTP_SIG_OK || (strstr(text, "v2=") != NULL && ts >= 1700000000 - 300));
    check(ss == RELAIS_HTTP_SIG_OK || ts == -1);
    ss = relais_http_verify("secret", "t=1700000000,v2=00", text, 1700000000, 300, body, len, NULL);
    check(ss != RELAIS_HTTP_SIG_OK);
    check(relais_http_nonce_ok(text) == (ss != RELAIS_HTTP_SIG_NONCE));
    json_t *doc = json_pack("{s:[{s:i}],s:{s:s}}", "a", "b", 1, "c/d", "e", "f");
    json_t *found = relais_json_pointer(doc, text);
    check(found == NULL || relais_json_pointer_valid(text) == 0);
    char buf[64];
    if (relais_json_pointer_text(doc, text, buf, sizeof buf) == 0) check(found && strlen(buf) < sizeof buf);
    else check(buf[0] == '\0');
    if (relais_http_value_text(found, buf, sizeof buf) == 0) check(buf[0] != '\0');
    json_decref(doc);
    char ex[128];
    size_t n = relais_http_excerpt(ex, sizeof ex, body, len, 100, sel & 1);
    check(n < sizeof ex && strlen(ex) == n);
    json_t *s = json_string(ex);   /* jansson refuses invalid UTF-8: the excerpt must be valid */
    check(s != NULL);
    json_decref(s);
    free(text);
    return 0;
}
