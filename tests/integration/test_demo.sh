#!/usr/bin/env bash
# The README's first command: tools/demo runs its scenario and exits 0.
# (It reuses this build instead of building a release one, and its own folder.)
. "$(dirname "$0")/lib.sh"
RELAIS_DEMO_BUILD_DIR="$RELAIS_BUILD_DIR" RELAIS_DEMO_RUN_DIR="$T/demo" \
  "$RELAIS_SOURCE_DIR/tools/demo" >"$T/demo.log" 2>&1 || { cat "$T/demo.log"; fail "tools/demo exited non-zero"; }
cat "$T/demo.log"
grep -q "worksite received 2 request(s) (voirie only), archive 3, drop folder 3 file(s)" "$T/demo.log" || fail "demo deliveries"
grep -q '"status":"duplicate"' "$T/demo.log" || fail "demo duplicate"
grep -qE "delivered +worksite" "$T/demo.log" || fail "demo trace"
grep -q "hub stopped cleanly (exit 0)" "$T/demo.log" || fail "demo stop"
pass "tools/demo: records cross packages, the duplicate is caught, the trace is printed, all stops cleanly"
