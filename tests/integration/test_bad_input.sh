#!/usr/bin/env bash
# Malformed input and invalid configuration: clear errors, nothing else lost.
. "$(dirname "$0")/lib.sh"

DB=$(fresh_db bad)
start_sim worksite
SRC=$(free_port)
write_config "$T/hub.yaml" "$DB" "$SRC" "worksite=$SIM_URL_worksite"

# relais check on a valid file
"$RELAIS_BIN" check -c "$T/hub.yaml" | grep "valid" >/dev/null || fail "valid config not reported valid"
# an invalid config: every error with FILE:LINE
cat >"$T/bad.yaml" <<YAML
hub:
  name: x
  colour: blue
bus:
  brokers: embedded
  partitions: many
journal:
  conninfo: "host=/nowhere"
connectors:
  - name: desk
    type: carrier-pigeon
    mode: source
routes:
  - name: r
    match: "test.relais.**"
    to: [nobody]
YAML
set +e
"$RELAIS_BIN" check -c "$T/bad.yaml" >"$T/check.out" 2>&1; rc=$?
set -e
cat "$T/check.out"
[ $rc -eq 1 ] || fail "relais check on an invalid file exited $rc, expected 1"
grep -q "$T/bad.yaml:3: .*colour" "$T/check.out" || fail "no error for the unknown key at line 3"
grep -q "$T/bad.yaml:6: .*partitions" "$T/check.out" || fail "no error for the non-numeric partitions at line 6"
grep -q "$T/bad.yaml:11: .*carrier-pigeon" "$T/check.out" || fail "no error for the unknown connector type at line 11"
grep -q "$T/bad.yaml:16: .*nobody" "$T/check.out" || fail "no error for the unknown destination at line 16"
pass "relais check reports every error as FILE:LINE: message and exits 1"
set +e
"$RELAIS_BIN" run -c "$T/bad.yaml" >"$T/run.out" 2>&1; rc=$?
set -e
[ $rc -eq 1 ] && grep -q "$T/bad.yaml:11:" "$T/run.out" || fail "relais run with an invalid config: rc $rc"
pass "relais run refuses an invalid config with the same errors"

start_hub a "$T/hub.yaml"
post_json "http://127.0.0.1:$SRC/events" '{"id":"OK-1","category":"voirie"}' | grep -q '^202' || fail "first good record"
out=$(post_json "http://127.0.0.1:$SRC/events" '{"id":"BAD-1", "category": voirie}')
echo "$out"
[ "${out%% *}" = 400 ] || fail "malformed JSON answered $out, expected 400"
echo "$out" | grep -q '"line"' || fail "error lacks the line"
echo "$out" | grep -q '"column"' || fail "error lacks the column"
out=$(post_json "http://127.0.0.1:$SRC/events" '[{"id":"OK-2"}, 42, {"id":"OK-3"}]')
[ "${out%% *}" = 202 ] || fail "batch with one bad element answered $out"
echo "$out" | python3 -c '
import json,sys
b=json.loads(sys.stdin.read().split(" ",1)[1]); r=b["results"]
assert [x["status"] for x in r]==["accepted","rejected","accepted"], r' || fail "batch results wrong: $out"
post_json "http://127.0.0.1:$SRC/events" '{"id":"OK-4","category":"voirie"}' | grep -q '^202' || fail "good record after bad ones"
wait_eq "good records delivered" 20 4 sim_stat "$SIM_URL_worksite" distinct
[ "$(sql "$DB" "SELECT count(*) FROM rejections")" -ge 2 ] || fail "rejections not journaled"
sql "$DB" "SELECT location || ': ' || reason FROM rejections ORDER BY id LIMIT 1" | grep -q "body line 1 column [0-9]*: invalid token" || fail "rejection lacks the place and reason"
pass "malformed JSON: 400 with line and column, journaled as rejected; good records before and after delivered"
stop_hub "$HUB_PID"
