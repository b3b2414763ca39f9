/*
 * testsupport.h - helpers shared by the runtime tests: a throw-away database
 * per test, SQL, paths, ports, temp files, a recording stand-in for the hub
 * behind a single connector instance (ts_recorder) and that instance itself
 * (ts_conn).
 */
#ifndef RELAIS_TESTSUPPORT_H
#define RELAIS_TESTSUPPORT_H
#include <stddef.h>
#include <stdarg.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "relais/connector.h"

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
/* The whole file at path (malloc'd, NUL-terminated; *len its size when len
 * is not NULL); fails the test when it cannot be read. */
char *ts_read_file(const char *path, size_t *len);
/* A TCP port free on 127.0.0.1 now, below the kernel's ephemeral range. */
int ts_free_port(void);
/* Write text to a new temp file; returns its path (static buffer per call slot). */
char *ts_write_temp(const char *suffix, const char *text);
/* Sleep in milliseconds. */
void ts_sleep_ms(long ms);

/* ---- Recording hub ops for tests of one connector ----------------------------
 * A ts_recorder plays the hub behind a stand-alone instance: pass
 * ts_recorder_ops() as ops and the recorder as `hub` to relais_instance_new().
 * It records every record submitted and every relais_reject, answers
 * DUPLICATE for a record id it accepted before (the hub's dedupe), and can
 * play a hub that does not accept, whose journal goes down for submits after
 * a number of calls, or whose rejects fail.
 * Threads: a mutex guards the recorder (connector threads call the ops, the
 * test thread reads and sets). Entries are not changed once recorded; the
 * pointers handed out stay valid until ts_recorder_reset or ts_recorder_free. */
struct relais_instance_ops;

typedef struct ts_submitted {
    char *record_id, *type, *subject, *correlation_id;
    char *data;                 /* JSON text, compact with sorted keys */
} ts_submitted;

typedef struct ts_rejected {
    char *record_id, *where, *reason, *raw;
} ts_rejected;

typedef struct ts_recorder ts_recorder;

ts_recorder *ts_recorder_new(void);
void ts_recorder_free(ts_recorder *r);                  /* NULL: no-op */
/* Forget everything recorded; accepting again, no failures. */
void ts_recorder_reset(ts_recorder *r);
const struct relais_instance_ops *ts_recorder_ops(void);

void ts_recorder_set_accepting(ts_recorder *r, int accepting);
/* Submit calls answered before the journal goes down (every record of a
 * later call UNAVAILABLE, nothing recorded); -1 = never down (default). */
void ts_recorder_set_submit_budget(ts_recorder *r, long calls);
/* relais_reject answers -1 and records nothing. */
void ts_recorder_set_reject_fails(ts_recorder *r, int fails);
/* Journal down (1) or back (0) for submits and rejects at once. */
void ts_recorder_set_down(ts_recorder *r, int down);

size_t ts_recorder_nsubs(ts_recorder *r);
size_t ts_recorder_nrejs(ts_recorder *r);
size_t ts_recorder_submit_calls(ts_recorder *r);
/* Distinct record ids accepted (the others came back as duplicates). */
size_t ts_recorder_naccepted(ts_recorder *r);
/* The i-th record submitted / rejection; fails the test when out of range. */
const ts_submitted *ts_recorder_sub(ts_recorder *r, size_t i);
const ts_rejected *ts_recorder_rej(ts_recorder *r, size_t i);
/* The first record submitted with that id, or NULL. */
const ts_submitted *ts_recorder_find(ts_recorder *r, const char *record_id);

/* A canonical event for sink tests: type fr.relais.grc.request.created,
 * record id "r-1", subject (may be NULL), data parsed from data_json; built by
 * instance "desk" of tenant "ville". Fails the test when it cannot be built. */
relais_event *ts_event(const char *subject, const char *data_json);

/* ---- One connector instance with a ts_recorder as its hub ------------------ */
typedef struct ts_conn {
    const relais_connector *desc;
    relais_instance        *inst;   /* NULL when the options were refused */
    void                   *cfg;    /* the option struct (config_size bytes) */
    void                   *ctx;    /* from desc->init */
} ts_conn;

/* Options from YAML through the connector's real option table, then an
 * instance `name` of tenant "ville" (bus bootstrap may be NULL), init and
 * start. 0 when started; -1 with the message in err when the options, init
 * or start refuse. After options are refused only cfg is set (free it with
 * relais_options_free + free, or ts_conn_close). */
int ts_conn_open(ts_conn *c, const relais_connector *desc, const char *name, unsigned mode,
                 const char *yaml, ts_recorder *rec, const char *bootstrap, char *err,
                 size_t errlen);
/* stop (when init succeeded), destroy, free the instance and options. */
void ts_conn_close(ts_conn *c);
#endif
