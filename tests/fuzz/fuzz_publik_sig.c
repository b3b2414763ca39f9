/*
 * fuzz_publik_sig.c - libFuzzer target over the Publik signed-URL checker
 * (connectors/publik/publik_sign.c): the input is a raw query string as a
 * webhook or the simulator receives it. It goes through
 * relais_publik_verify (with and without every hashlib algorithm, with a
 * nonce memory), the query decoder and the strptime-like timestamp parser.
 * Invariants: an accepted query has a single orig, algo, timestamp and
 * signature, a known orig, a timestamp within 30 s of the clock, and its
 * signature is the base64 HMAC of the bytes before "&signature="; decoded
 * values never hold a NUL; every refusal has a text.
 *
 * Seeds: tests/fuzz/corpus/publik_sig/ (the six vectors of the w.c.s.
 * fixtures and variants). Build and run by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Ihub -Iconnectors/publik \
 *     tests/fuzz/fuzz_publik_sig.c connectors/publik/publik_sign.c -ljansson -lcrypto \
 *     -o fuzz_publik_sig
 *   ./fuzz_publik_sig -max_total_time=60 tests/fuzz/corpus/publik_sig/
 * Or configure with -DRELAIS_FUZZ=ON (clang).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "publik_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond) abort();
}

static const char *key_for(void *arg, const char *orig)
{
    (void)arg;
    if (strcmp(orig, "relais") == 0 || strcmp(orig, "montpellier") == 0) return "12345";
    if (strcmp(orig, "wcs.example.org") == 0) return "secret-key";
    return NULL;
}

/* The clock of the seed vectors: 2024-03-05T10:15:00Z. */
#define NOW 1709633700

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *qs = (const char *)data;
    static relais_publik_nonces *nonces;
    if (!nonces) nonces = relais_publik_nonces_new(30, 1000);

    for (int all = 0; all < 2; all++) {
        char err[512], orig[128];
        relais_publik_verify_opts o = { .key_for = key_for, .now = NOW + (all ? 20 : 0), .all_algos = all,
                                        .nonces = all ? nonces : NULL };
        relais_publik_sig s = relais_publik_verify(qs, size, &o, err, sizeof err, orig, sizeof orig);
        if (s == RELAIS_PUBLIK_SIG_OK) {
            relais_publik_query q;
            check(relais_publik_query_parse(qs, size, &q) == 0);
            const char *ts = relais_publik_query_get(&q, "timestamp", NULL);
            const char *algo = relais_publik_query_get(&q, "algo", NULL);
            const char *sig = relais_publik_query_get(&q, "signature", NULL);
            check(ts && algo && sig && relais_publik_query_get(&q, "orig", NULL));
            check(strcmp(orig, relais_publik_query_get(&q, "orig", NULL)) == 0);
            time_t t;
            char perr[256];
            check(relais_publik_parse_timestamp(ts, &t, perr, sizeof perr) == 0);
            check(t >= o.now - 30 && t <= o.now + 30);
            const char *at = memmem(qs, size, "&signature=", 11);
            size_t left = at ? (size_t)(at - qs) : size - 1;
            char b64[200];
            check(relais_publik_hmac_b64(algo, key_for(NULL, orig), qs, left, b64, sizeof b64) == 0);
            check(strcmp(b64, sig) == 0);
            relais_publik_query_free(&q);
        } else {
            check(err[0] != '\0');
            check(orig[0] == '\0');
        }
    }

    /* the decoder: values never hold a NUL; a NUL makes get() answer NULL */
    relais_publik_query q;
    if (relais_publik_query_parse(qs, size, &q) == 0) {
        for (size_t i = 0; i < q.n; i++) {
            int count;
            const char *v = relais_publik_query_get(&q, q.p[i].name, &count);
            check(count >= 1);
            if (v) check(count == 1 && !q.p[i].has_nul);
        }
        relais_publik_query_free(&q);
    }

    /* the same bytes as a timestamp */
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    time_t t;
    char err[256];
    if (relais_publik_parse_timestamp(text, &t, err, sizeof err) == 0) {
        struct tm tm;
        check(gmtime_r(&t, &tm) != NULL);
    } else {
        check(err[0] != '\0');
    }
    char *enc = relais_publik_pct_encode(text, "/", 0);
    if (enc) {
        check(strlen(enc) <= 3 * strlen(text));
        free(enc);
    }
    free(text);
    return 0;
}
