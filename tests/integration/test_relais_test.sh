#!/usr/bin/env bash
# `relais test DIR`: the built binary on the fixtures of tests/data/maptest/
# (json, xml and csv mappings; inbound, outbound and expect_error tests):
# a passing suite exits 0; wrong expectations exit 1 with a diff; an invalid
# test file is named FILE:LINE; usage errors exit 2.
# Needs no database (it does not source lib.sh, whose prelude requires one).
set -euo pipefail
: "${RELAIS_SOURCE_DIR:?run through ctest (tools/test)}"
: "${RELAIS_BUILD_DIR:?run through ctest (tools/test)}"
RELAIS_BIN=${RELAIS_BIN:-$RELAIS_BUILD_DIR/relais}
DATA=$RELAIS_SOURCE_DIR/tests/data/maptest
T=$(mktemp -d /tmp/relais-it-maptest.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$T/out" ] && { echo "---- output:" >&2; cat "$T/out" >&2; }; exit 1; }
pass() { echo "ok - $*"; }
[ -x "$RELAIS_BIN" ] || fail "$RELAIS_BIN is not built"
has() { grep -qF -- "$1" "$T/out" || fail "output lacks: $1"; }

cd "$DATA"

# ---- a passing suite ----------------------------------------------------------
set +e
"$RELAIS_BIN" test pass --schemas schemas >"$T/out" 2>&1; rc=$?
set -e
[ $rc -eq 0 ] || fail "passing suite: exit $rc"
has "PASS pass/grc/requests.test.yaml: pothole reported on the web portal"
has "PASS pass/grc/requests.test.yaml: request closed, outbound only"
has "PASS pass/grc/requests.test.yaml: bad category is refused"
has "PASS pass/etatcivil/acte.test.yaml: birth certificate requested at the desk"
has "PASS pass/billing/payments.test.yaml: payment as a CSV line, decimal comma"
has "13 tests, 13 passed, 0 failed"
grep -q "^FAIL" "$T/out" && fail "a FAIL line in the passing suite"
# files in sorted order: billing, etatcivil, grc
[ "$(grep -o '^PASS pass/[a-z]*' "$T/out" | uniq | tr '\n' ' ')" = \
  "PASS pass/billing PASS pass/etatcivil PASS pass/grc " ] || fail "files not run in sorted order"
pass "passing suite exits 0, every test reported"

# one file given directly
set +e
"$RELAIS_BIN" test pass/grc/requests.test.yaml --schemas schemas >"$T/out" 2>&1; rc=$?
set -e
[ $rc -eq 0 ] || fail "single file: exit $rc"
has "6 tests, 6 passed, 0 failed"
pass "a single test file"

# ---- failures -------------------------------------------------------------------
set +e
"$RELAIS_BIN" test fail --schemas schemas >"$T/out" 2>&1; rc=$?
set -e
[ $rc -eq 1 ] || fail "failing suite: exit $rc (expected 1)"
has "fail/invalid.test.yaml:5: unknown key 'expect_evnt' in a test"
has "fail/invalid.test.yaml:7: input_file: cannot read fail/records/missing.json"
has "FAIL fail/wrong.test.yaml:4: wrong category expected"
has "  --- expected"
has "  +++ actual"
has '  -    "category": "VOI-04",'
has '  +    "category": "VOI-03",'
has "FAIL fail/wrong.test.yaml:14: an error that does not happen"
has '  expect_error: "not in table" but the record mapped without error'
has "FAIL fail/wrong.test.yaml:18: a record the canonical schema refuses"
has "  data does not match the canonical schema of fr.relais.grc.request.created.v1:"
has '    $.data.channel: '
has "FAIL fail/xml.test.yaml:3: a different text in the vendor document"
has "  -    <nom>DUPONT</nom>"
has "  +    <nom>DURAND</nom>"
has "4 tests, 0 passed, 4 failed, 1 invalid test file"
pass "failing suite exits 1 with diffs and FILE:LINE errors"

# ---- usage ------------------------------------------------------------------------
"$RELAIS_BIN" --help | grep "test DIR \[--schemas DIR\]" >/dev/null || fail "--help lacks test"
set +e
"$RELAIS_BIN" test >"$T/out" 2>&1; rc=$?
[ $rc -eq 2 ] || fail "test without DIR: exit $rc (expected 2)"
"$RELAIS_BIN" test pass --schemas >"$T/out" 2>&1; rc=$?
[ $rc -eq 2 ] || fail "--schemas without a value: exit $rc (expected 2)"
"$RELAIS_BIN" test "$T/empty-nothing" --schemas schemas >"$T/out" 2>&1; rc=$?
set -e
[ $rc -eq 1 ] || fail "missing directory: exit $rc (expected 1)"
pass "usage errors exit 2, a missing directory 1"

# ---- the default schema directory -----------------------------------------------
# Without --schemas the canonical schemas the binary was built with (the source
# tree's schemas/) are used: they load (no "canonical schemas DIR:" error) and
# every test runs against them.
set +e
"$RELAIS_BIN" test pass >"$T/out" 2>&1
set -e
grep -q "^canonical schemas " "$T/out" && fail "the default schema directory does not load"
has "13 tests, "
pass "default schema directory"
