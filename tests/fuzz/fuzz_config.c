/*
 * fuzz_config.c - libFuzzer target for the configuration parser: the input
 * bytes are loaded as a YAML tree (yamltree.c), then as a whole hub
 * configuration (config.c, options.c). Besides memory errors (ASan/UBSan),
 * it checks the loader's contract: NULL exactly when an error was reported.
 *
 * Build: see tests/fuzz/CMakeLists.txt (-DRELAIS_FUZZ=ON with clang).
 * Run:   fuzz_config -dict=tests/fuzz/fuzz_config.dict tests/fuzz/corpus/config
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "config.h"
#include "yamltree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    yt_node *root = yt_load_buffer("fuzz.yaml", (const char *)data, size, err, sizeof err);
    if (!root && !err[0]) abort();    /* a refusal always says why */
    yt_free(root);

    relais_errlist errs;
    relais_errlist_init(&errs);
    relais_config *c = relais_config_load_buffer("fuzz.yaml", (const char *)data, size, &errs);
    if ((c == NULL) != (errs.count > 0)) abort();
    relais_config_destroy(c);
    relais_errlist_free(&errs);
    return 0;
}
