/*
 * fuzz_audit.c - libFuzzer target over the two outside inputs of the
 * tamper-evident trail (hub/audit.h, hub/auditlog.h): the checkpoint file
 * (relais_audit_checkpoints_parse) and an audit extract given to
 * `relais audit verify --file` (relais_auditlog_verify_export).
 *
 * Input: the first byte chooses the parser (even: checkpoints, odd:
 * extract), the rest is the file. Both must either accept or refuse with a
 * message naming "<name>:<line>:"; an accepted checkpoint has a stream, a
 * seq >= 1 and 64-digit hash and MAC; an extract's verdict is 0 or 1 and
 * its counters are consistent (faults > 0 exactly when the verdict is 1).
 * Seeds: tests/fuzz/corpus/audit/ (a checkpoint file and a real extract made
 * by tests/integration/test_audit_trail.sh, each prefixed with its selector).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "audit.h"
#include "auditlog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        abort();
}

static const unsigned char KEY[32] = "relais-fuzz-audit-key-0123456789";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;
    char err[512] = "";
    if (data[0] % 2 == 0) {
        relais_audit_cplist l;
        int torn = 0;
        if (relais_audit_checkpoints_parse("cps", buf, len, &l, &torn, err, sizeof err) == 0) {
            for (size_t i = 0; i < l.n; i++) {
                check(l.v[i].stream && *l.v[i].stream && l.v[i].seq >= 1);
                check(strlen(l.v[i].hash) == 64 && strlen(l.v[i].mac) == 64);
            }
            relais_audit_cplist_free(&l);
        } else {
            check(strncmp(err, "cps:", 4) == 0);
        }
        return 0;
    }
    FILE *out = fopen("/dev/null", "w");
    if (!out) return 0;
    relais_auditlog_result res;
    int rc = relais_auditlog_verify_export("x", buf, len, KEY, sizeof KEY, out, &res, err, sizeof err);
    fclose(out);
    check(rc == -1 || rc == 0 || rc == 1);
    if (rc == -1) check(strncmp(err, "x:", 2) == 0);
    else check((rc == 1) == (res.faults > 0));
    return 0;
}
