/*
 * fuzz_mapping.c - libFuzzer target over the declarative mapping engine
 * (hub/mapping.c): the mapping file compiler and the inbound and outbound
 * application.
 *
 * Input: a mapping file (YAML), a NUL byte, then a vendor record (JSON or
 * XML, as the mapping's format says). The mapping is compiled; a refusal must
 * come with at least one "fuzz.yaml..." message. A compiled mapping is
 * applied inbound to the record (relais_mapping_inbound_raw), and outbound to
 * a fixed canonical event and to the inbound result wrapped as an event: the
 * result codes must be 0, 1 or -1, with an error text on -1 and a body on 0.
 * Seeds: tests/fuzz/corpus/mapping/ (the shipped mappings of
 * connectors/mappings with their records).
 *
 * Build and run by hand:
 *   CC=clang cmake -S . -B build-fuzz -DRELAIS_FUZZ=ON -DRELAIS_SANITIZE=ON -DRELAIS_TESTS=OFF
 *   cmake --build build-fuzz --target fuzz_mapping
 *   build-fuzz/tests/fuzz/fuzz_mapping -max_total_time=60 tests/fuzz/corpus/mapping
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "mapping.h"
#include "safeparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond) abort();
}

static const char *EVENT =
    "{\"specversion\":\"1.0\",\"id\":\"0190\",\"type\":\"fr.relais.grc.request.created.v1\","
    "\"subject\":\"request/1\",\"time\":\"2026-01-01T00:00:00Z\",\"data\":{\"category\":\"Nids de poule\","
    "\"copies\":2,\"names\":[\"a\",\"b\"],\"location\":{\"point\":{\"lat\":48.1,\"lon\":2.2}}}}";

static void outbound(const relais_mapping *m, json_t *ev)
{
    relais_rendered r;
    char err[512] = "";
    int rc = relais_mapping_outbound(m, ev, "L-1", &r, err, sizeof err);
    check(rc == 0 || rc == 1 || rc == -1);
    if (rc == 0) {
        check(r.body != NULL && strlen(r.body) == r.len);
        relais_rendered_clear(&r);
    } else {
        check(err[0] != 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    relais_safeparse_init();
    const uint8_t *nul = memchr(data, 0, size);
    size_t ylen = nul ? (size_t)(nul - data) : size;
    const char *rec = nul ? (const char *)nul + 1 : "";
    size_t rlen = nul ? size - ylen - 1 : 0;

    relais_errlist errs;
    relais_errlist_init(&errs);
    relais_mapping *m = relais_mapping_load_buffer("fuzz.yaml", (const char *)data, ylen, &errs);
    if (!m) {
        check(errs.count > 0);
        for (size_t i = 0; i < errs.count; i++) check(strncmp(errs.msgs[i], "fuzz.yaml", 9) == 0);
        relais_errlist_free(&errs);
        return 0;
    }
    relais_errlist_free(&errs);
    json_t *ev = json_loads(EVENT, 0, NULL);
    if (relais_mapping_has_inbound(m) && relais_mapping_format(m) != RELAIS_MAP_CSV) {
        relais_mapped_record r = { 0 };
        char err[512] = "";
        int rc = relais_mapping_inbound_raw(m, rec, rlen, "fuzz.rec", &r, err, sizeof err);
        check(rc == 0 || rc == 1 || rc == -1);
        if (rc == 0) {
            check(r.type != NULL && json_is_object(r.data));
            json_t *mine = json_pack("{s:s,s:s,s:s,s:O}", "specversion", "1.0", "id", "x", "type", r.type,
                                     "data", r.data);
            if (mine && relais_mapping_has_outbound(m)) outbound(m, mine);
            json_decref(mine);
            relais_mapped_record_clear(&r);
        } else {
            check(err[0] != 0);
            check(r.type == NULL && r.data == NULL);
            relais_mapped_record_clear(&r);
        }
    } else if (relais_mapping_format(m) == RELAIS_MAP_CSV && relais_mapping_has_inbound(m)) {
        json_t *row = json_loadb(rec, rlen, 0, NULL);
        if (json_is_object(row)) {
            relais_mapped_record r = { 0 };
            char err[512];
            relais_mapping_inbound_json(m, row, &r, err, sizeof err);
            relais_mapped_record_clear(&r);
        }
        json_decref(row);
    }
    if (relais_mapping_has_outbound(m)) outbound(m, ev);
    json_decref(ev);
    relais_mapping_destroy(m);
    return 0;
}
