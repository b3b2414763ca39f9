/*
 * fuzz_jsonschema.c - libFuzzer target over the JSON Schema compiler and
 * validator (hub/jsonschema.c). Schemas come from the town's configuration
 * and instances from vendors' records, so both are fuzzed.
 *
 * Input: the schema JSON, a NUL byte, then the instance JSON (any value).
 * Properties checked: compile either succeeds or fails with a message; on
 * success, validation with and without fault collection gives the same
 * verdict, an invalid instance yields at least one fault (with a path rooted
 * at "$" and a message) and a valid one none.
 * Seeds: tests/fuzz/corpus/jsonschema/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "jsonschema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    if (!nul) return 0;
    size_t slen = (size_t)(nul - data);
    json_t *schema = json_loadb((const char *)data, slen, JSON_REJECT_DUPLICATES, NULL);
    json_t *inst = json_loadb((const char *)nul + 1, size - slen - 1, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    if (schema && inst) {
        char err[512] = "";
        relais_schema_set *set = relais_schema_set_new();
        check(set != NULL);
        int rc = relais_schema_set_add(set, schema, "https://fuzz.relais.test/s.json", "s.json", err, sizeof err);
        if (rc == 0) rc = relais_schema_set_compile(set, err, sizeof err);
        if (rc != 0) {
            check(err[0] != '\0');
        } else {
            const relais_schema *sc = relais_schema_set_get(set, "https://fuzz.relais.test/s.json");
            check(sc != NULL);
            relais_schema_fault f[4];
            size_t n = 99;
            int r = relais_schema_validate(sc, inst, "$", f, 4, &n);
            check(r == relais_schema_validate(sc, inst, NULL, NULL, 0, NULL));
            check(r ? n == 0 : (n >= 1 && n <= 4));
            for (size_t i = 0; i < n; i++) check(f[i].path[0] == '$' && f[i].message[0] != '\0');
        }
        relais_schema_set_destroy(set);
    }
    json_decref(schema);
    json_decref(inst);
    return 0;
}
