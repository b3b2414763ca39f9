/*
 * fuzz_json.c - libFuzzer target over relais_json_parse (hub/safeparse.c),
 * the parser of outside JSON (webhook bodies, JSON lines, Kafka records and
 * events go through it).
 *
 * Input: a JSON text. It is parsed with the default limits and with tight
 * ones (depth 4, 1 KiB). A refusal must come with a clean error text
 * ("fuzz.json:...", valid UTF-8, no control characters). An accepted value
 * must be no deeper than the limit; dumped compactly and parsed again it
 * must give an equal value.
 * Seeds: tests/fuzz/corpus/json/ (Open311 and w.c.s. examples, the
 * published Open311 files with leading zeros, plus hostile texts: duplicate
 * keys, deep nesting, \u0000, invalid UTF-8, brackets inside strings).
 *
 * Build and run by hand:
 *   CC=clang cmake -S . -B build-fuzz -DRELAIS_FUZZ=ON -DRELAIS_SANITIZE=ON -DRELAIS_TESTS=OFF
 *   cmake --build build-fuzz --target fuzz_json
 *   build-fuzz/tests/fuzz/fuzz_json -max_total_time=60 tests/fuzz/corpus/json
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "safeparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond) abort();
}

static void check_error(const char *err)
{
    check(strncmp(err, "fuzz.json:", 10) == 0);
    json_t *s = json_string(err);   /* jansson refuses invalid UTF-8 */
    check(s != NULL);
    json_decref(s);
    for (const char *p = err; *p; p++) check((unsigned char)*p >= 0x20 && *p != 0x7f);
}

static int depth(json_t *v)
{
    int d = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) {
            int dx = depth(x);
            if (dx > d) d = dx;
        }
        return d + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            int dx = depth(x);
            if (dx > d) d = dx;
        }
        return d + 1;
    }
    return 0;
}

static void one(const char *buf, size_t len, const relais_parse_limits *lim, int max_depth)
{
    char err[512];
    json_t *v = relais_json_parse(buf, len, "fuzz.json", lim, err, sizeof err);
    if (!v) {
        check_error(err);
        return;
    }
    check(depth(v) <= max_depth);
    char *out = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    check(out != NULL);
    relais_parse_limits again = { .max_bytes = (size_t)-1, .max_depth = max_depth };
    json_t *w = relais_json_parse(out, strlen(out), "fuzz.json", &again, err, sizeof err);
    check(w != NULL && json_equal(v, w));
    json_decref(w);
    free(out);
    json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one((const char *)data, size, NULL, 64);
    relais_parse_limits tight = { .max_bytes = 1024, .max_depth = 4 };
    one((const char *)data, size, &tight, 4);
    return 0;
}
