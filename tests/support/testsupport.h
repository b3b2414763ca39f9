/*
 * testsupport.h - helpers shared by the runtime tests.
 */
#ifndef RELAIS_TESTSUPPORT_H
#define RELAIS_TESTSUPPORT_H
#include <stddef.h>
#include <stdarg.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* Create a fresh, empty database on the throw-away cluster of tools/test
 * (RELAIS_TEST_PGHOST / RELAIS_TEST_PGPORT) and return its libpq conninfo
 * (static buffer). Fails the test when the cluster is not there: tests are
 * never skipped. `name` is a prefix; a unique suffix is added. */
const char *ts_fresh_database(const char *name);
/* Run one SQL statement on conninfo; returns the first column of the first
 * row as a newly allocated string ("" when no row), NULL on error. */
char *ts_sql(const char *conninfo, const char *sql);
/* Same, parsed as a long. Fails the test on error. */
long ts_sql_long(const char *conninfo, const char *sql);
/* Path under the source tree (static buffer). */
const char *ts_source_path(const char *rel);
/* A free TCP port on 127.0.0.1. */
int ts_free_port(void);
/* Write text to a new temp file; returns its path (static buffer per call slot). */
char *ts_write_temp(const char *suffix, const char *text);
/* Sleep in milliseconds. */
void ts_sleep_ms(long ms);
#endif
