/*
 * maptest.h - `relais test`: mapping unit tests that IT staff write next to
 * their configuration (docs/MAPPINGS.md, "Testing mappings").
 *
 * A test file (DIR/.../NAME.test.yaml) names one mapping file and lists tests:
 * a vendor record in, the canonical record expected, the vendor output
 * expected (or a canonical event in and the vendor output expected), or the
 * error expected. Every mapped `data` is also validated against the canonical
 * schema of its event type. Failures print a unified diff of the expected and
 * actual documents, pretty-printed (JSON with sorted keys, XML indented after
 * normalising namespace prefixes and attribute order).
 *
 * Single-threaded; no global state besides relais_safeparse_init().
 */
#ifndef RELAIS_MAPTEST_H
#define RELAIS_MAPTEST_H
#include <stdio.h>
#include <jansson.h>
#include <libxml/tree.h>

typedef struct relais_maptest_counts {
    int tests;          /* tests run (tests of invalid files are not run) */
    int passed;
    int failed;
    int files;          /* test files found */
    int invalid_files;  /* test files that could not be loaded */
} relais_maptest_counts;

/* Run every "*.test.yaml" under path (recursively, in sorted order of path),
 * or the one test file `path` names. schema_dir: the canonical schemas (NULL:
 * the compile-time default RELAIS_DEFAULT_SCHEMA_DIR). Writes "PASS ...",
 * "FAIL FILE:LINE: ..." with diffs, "FILE:LINE: message" for invalid test
 * files and a summary line to out. counts may be NULL.
 * Returns 0 when every test passed (and there was at least one), 1 otherwise. */
int relais_maptest_run(const char *path, const char *schema_dir, FILE *out,
                       relais_maptest_counts *counts);

/* ---- comparisons (maptest_compare.c), exposed for maptest.c and tests ---- */

/* Equal as JSON values: numbers by value (1 == 1.0), object keys in any order. */
int relais_maptest_json_equal(const json_t *a, const json_t *b);
/* Indented (2), sorted keys; caller frees. Never NULL but on allocation failure. */
char *relais_maptest_json_pretty(const json_t *v);
/* 1 when the documents have the same canonical form (namespace prefixes,
 * attribute order, comments and whitespace-only text between elements do
 * not matter), 0 when not (then *exp_text and *act_text hold the indented
 * normalised documents, caller frees), -1 on failure. */
int relais_maptest_xml_equal(xmlDocPtr expected, xmlDocPtr actual, char **exp_text, char **act_text);

/* Print a unified line diff of two texts ("--- expected", "+++ actual",
 * "@@ -a,b +c,d @@" hunks with 3 lines of context), each line prefixed with
 * indent. Nothing is printed when the texts are equal. Exposed for tests. */
void relais_maptest_diff(FILE *out, const char *expected, const char *actual, const char *indent);

#endif
