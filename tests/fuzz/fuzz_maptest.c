/*
 * fuzz_maptest.c - libFuzzer target over `relais test` (hub/maptest.c): the
 * test file reader, the mapping it names, the comparison of JSON, XML and
 * text outputs and the line diff.
 *
 * Input: three parts separated by NUL bytes: a test file (YAML), a mapping
 * file (YAML), and a data file. They are written to a private temporary
 * folder as t.test.yaml, m.yaml and in.dat (a test file names them), and
 * relais_maptest_run() is run on t.test.yaml with the built-in schemas, its
 * report going to /dev/null. It must return 0 or 1 and count consistently.
 * Seeds: tests/fuzz/corpus/maptest/.
 *
 * Build and run by hand:
 *   CC=clang cmake -S . -B build-fuzz -DRELAIS_FUZZ=ON -DRELAIS_SANITIZE=ON -DRELAIS_TESTS=OFF
 *   cmake --build build-fuzz --target fuzz_maptest
 *   build-fuzz/tests/fuzz/fuzz_maptest -max_total_time=60 tests/fuzz/corpus/maptest
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "maptest.h"
#include "safeparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_dir[64];

static void check(int cond)
{
    if (!cond) abort();
}

static void put(const char *name, const uint8_t *p, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    check(f != NULL);
    if (n) check(fwrite(p, 1, n, f) == n);
    check(fclose(f) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_dir[0]) {
        relais_safeparse_init();
        snprintf(g_dir, sizeof g_dir, "/tmp/relais-fuzz-maptest-%d", (int)getpid());
        char cmd[128];
        snprintf(cmd, sizeof cmd, "mkdir -p %s", g_dir);
        check(system(cmd) == 0);
    }
    const uint8_t *parts[3] = { data, NULL, NULL };
    size_t lens[3] = { size, 0, 0 };
    for (int k = 0; k < 2; k++) {
        const uint8_t *nul = memchr(parts[k], 0, lens[k]);
        if (!nul) break;
        parts[k + 1] = nul + 1;
        lens[k + 1] = lens[k] - (size_t)(nul - parts[k]) - 1;
        lens[k] = (size_t)(nul - parts[k]);
    }
    put("t.test.yaml", parts[0], lens[0]);
    put("m.yaml", parts[1] ? parts[1] : (const uint8_t *)"", lens[1]);
    put("in.dat", parts[2] ? parts[2] : (const uint8_t *)"", lens[2]);

    char path[128];
    snprintf(path, sizeof path, "%s/t.test.yaml", g_dir);
    FILE *out = fopen("/dev/null", "w");
    check(out != NULL);
    relais_maptest_counts c;
    memset(&c, 0, sizeof c);
    int rc = relais_maptest_run(path, NULL, out, &c);
    fclose(out);
    check(rc == 0 || rc == 1);
    check(c.passed + c.failed == c.tests);
    check(c.invalid_files <= c.files);
    if (rc == 0) check(c.tests > 0 && c.failed == 0 && c.invalid_files == 0);
    return 0;
}
