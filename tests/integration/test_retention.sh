#!/usr/bin/env bash
# Retention (issue 7, RGPD/CNIL): `relais retention run` empties the payloads
# of events past the retention of their type (rules, first match wins) and
# the raw input of old rejections; events whose deliveries are pending keep
# theirs; one signed step "purged" per run gives the counts; the purge does
# not break `relais audit verify`; `relais trace` still shows the steps and
# says the payload was purged. Retentions are seconds here, so that nothing
# has to be backdated (received_at is covered by the chain).
. "$(dirname "$0")/lib.sh"

DB=$(fresh_db retention)
start_sim archive
start_sim stuck
SRC=$(free_port)
STATE="$T/state"
cat >"$T/hub.yaml" <<YAML
hub:
  name: ret
  admin_listen: 127.0.0.1:0
  state_dir: $STATE
bus:
  brokers: embedded
  partitions: 2
journal:
  conninfo: "$DB"
  batch_wait: 1ms
delivery:
  workers: 2
  max_attempts: 1000
  circuit_failures: 0
  backoff_initial: 100ms
  backoff_max: 200ms
  poll_interval: 100ms
retention:
  payloads: 1s                       # the default: rejections and types without a rule
  rules:
    - match: "test.relais.short.**"
      payloads: 2s
    - match: test.relais.long.*
      payloads: 1y
connectors:
  - name: desk
    type: http
    mode: source
    listen: 127.0.0.1:$SRC
    path: /events
    type_pointer: /kind
    record_id_pointer: /id
  - name: archive
    type: http
    mode: sink
    url: $SIM_URL_archive/events
    timeout: 2s
  - name: stuck
    type: http
    mode: sink
    url: $SIM_URL_stuck/events
    timeout: 2s
routes:
  - name: all
    match: "test.relais.**"
    to: [archive]
  - name: held
    match: test.relais.short.held
    to: [stuck]
YAML
curl -fsS -X POST "$SIM_URL_stuck/_sim/fail" -d '{"status":503,"count":-1}' >/dev/null
start_hub a "$T/hub.yaml"
post() { out=$(post_json "http://127.0.0.1:$SRC/events" "$1"); [ "${out%% *}" = 202 ] || fail "POST $1 answered $out"; }
post '{"id":"S-1","kind":"test.relais.short.created","note":"court un"}'
post '{"id":"S-2","kind":"test.relais.short.created","note":"court deux"}'
post '{"id":"L-1","kind":"test.relais.long.created","note":"long un"}'
post '{"id":"H-1","kind":"test.relais.short.held","note":"retenu"}'
out=$(post_json "http://127.0.0.1:$SRC/events" '{"id": "X-1", "note": "coupé') || true
[ "${out%% *}" = 400 ] || fail "a truncated body should be refused (got $out)"
wait_eq "4 events at archive" 30 4 sim_stat "$SIM_URL_archive" distinct
wait_eq "H-1 tried at stuck" 30 t sql "$DB" "SELECT count(*) > 0 FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.record_id = 'H-1' AND d.destination = 'stuck' AND d.attempts > 0 AND d.status = 'pending'"
[ "$(sql "$DB" "SELECT count(*) FROM rejections WHERE raw IS NOT NULL")" = 1 ] || fail "the refused body is not kept as a rejection"
sleep 2.2

# a dry run counts and changes nothing
"$RELAIS_BIN" retention run -c "$T/hub.yaml" --dry-run >"$T/dry.txt" 2>&1 || { cat "$T/dry.txt"; fail "dry run"; }
grep -q '^test.relais.short.created: 2 payload(s) to purge' "$T/dry.txt" || { cat "$T/dry.txt"; fail "dry run count"; }
grep -q '^dry run: 2 event payload(s) and 1 rejection(s) to purge, 1 kept; nothing changed' "$T/dry.txt" || { cat "$T/dry.txt"; fail "dry run summary"; }
[ "$(sql "$DB" "SELECT count(*) FROM events WHERE body IS NULL OR purged_at IS NOT NULL")" = 0 ] || fail "the dry run purged"
[ "$(sql "$DB" "SELECT count(*) FROM steps WHERE step = 'purged'")" = 0 ] || fail "the dry run wrote a step"
pass "dry run: $(tail -n 1 "$T/dry.txt")"

# without the audit key, nothing is purged: no purge without its signed step
sed "s|^hub:|audit:\n  key_file: $T/missing.key\nhub:|" "$T/hub.yaml" >"$T/nokey.yaml"
if "$RELAIS_BIN" retention run -c "$T/nokey.yaml" >"$T/nokey.txt" 2>&1; then cat "$T/nokey.txt"; fail "a run without the audit key purged"; fi
grep -q "audit key" "$T/nokey.txt" || { cat "$T/nokey.txt"; fail "the refusal does not name the audit key"; }
[ "$(sql "$DB" "SELECT count(*) FROM events WHERE body IS NULL")" = 0 ] || fail "bodies purged without the signed step"
pass "without the audit key: refused, nothing purged"

"$RELAIS_BIN" retention run -c "$T/hub.yaml" >"$T/run1.txt" 2>&1 || { cat "$T/run1.txt"; fail "retention run"; }
cat "$T/run1.txt"
body() { sql "$DB" "SELECT coalesce(body->'data'->>'note', 'NULL') || '|' || (purged_at IS NOT NULL) || '|' || (body_sha256 IS NOT NULL) FROM events WHERE record_id = '$1'"; }
[ "$(body S-1)" = "NULL|true|true" ] || fail "S-1 (short, 2s) should be purged, hash kept: $(body S-1)"
[ "$(body S-2)" = "NULL|true|true" ] || fail "S-2 should be purged: $(body S-2)"
[ "$(body L-1)" = "long un|false|true" ] || fail "L-1 (long, 1y) should be kept: $(body L-1)"
[ "$(body H-1)" = "retenu|false|true" ] || fail "H-1 has a pending delivery: it must be kept: $(body H-1)"
[ "$(sql "$DB" "SELECT (raw IS NULL) || '|' || (purged_at IS NOT NULL) || '|' || (raw_sha256 IS NOT NULL) FROM rejections")" = "true|true|true" ] \
  || fail "the rejection's raw input should be purged, its hash kept"
grep -q '^test.relais.short.held: 0 payload(s) purged .*; 1 kept: a delivery pending or dead' "$T/run1.txt" || fail "the kept event is not said"
pass "short type purged, long type kept, pending delivery kept, rejection's raw purged; hashes kept"

# one signed step "purged", in the CLI's own stream, with the counts per type and the cut-off dates
[ "$(sql "$DB" "SELECT count(*) FROM steps WHERE step = 'purged' AND event_id IS NULL AND stream LIKE 'cli/%' AND mac IS NOT NULL")" = 1 ] \
  || fail "no signed step purged"
DETAIL=$(sql "$DB" "SELECT detail FROM steps WHERE step = 'purged'")
python3 - "$DETAIL" <<'PY' || fail "the purged step's detail: $DETAIL"
import json, sys
d = json.loads(sys.argv[1])
e = d["events"]
assert e["test.relais.short.created"]["purged"] == 2 and e["test.relais.short.created"]["kept"] == 0, e
assert e["test.relais.short.held"]["purged"] == 0 and e["test.relais.short.held"]["kept"] == 1, e
assert e["test.relais.short.created"]["retention_s"] == 2 and e["test.relais.short.created"]["received_before"].endswith("Z"), e
assert "test.relais.long.created" not in e, e
assert d["rejections"]["purged"] == 1 and d["rejections"]["retention_s"] == 1, d
PY
pass "one signed step purged: $DETAIL"

# the trail still verifies, and says what was purged
"$RELAIS_BIN" audit verify -c "$T/hub.yaml" >"$T/v1.txt" || { cat "$T/v1.txt"; fail "audit verify after the purge"; }
grep -q '^verified: .*2 event bodies purged by retention (their hashes verified)' "$T/v1.txt" || { cat "$T/v1.txt"; fail "verify does not note the purged bodies"; }
# a purged body that is put back differently is still caught (the kept hash is checked); then emptied again
sql "$DB" "UPDATE events SET body = '{\"data\":{\"note\":\"forged\"}}' WHERE record_id = 'S-1'" >/dev/null
if "$RELAIS_BIN" audit verify -c "$T/hub.yaml" >"$T/vt.txt" 2>&1; then
  cat "$T/vt.txt"; fail "a body put back after the purge verified"
fi
sql "$DB" "UPDATE events SET body = NULL WHERE record_id = 'S-1'" >/dev/null
grep -q "FAULT modified" "$T/vt.txt" || { cat "$T/vt.txt"; fail "expected a modified fault"; }
pass "audit verify passes after the purge ($(cat "$T/v1.txt")); a forged body put back is caught"

# trace: the steps are all there, and the payload is said to be purged
"$RELAIS_BIN" trace -c "$T/hub.yaml" S-1 >"$T/trace.txt" || { cat "$T/trace.txt"; fail "trace S-1"; }
for s in received routed delivered; do grep -qE "^  [0-9T:.Z-]+  $s " "$T/trace.txt" || { cat "$T/trace.txt"; fail "trace S-1 lacks step $s"; }; done
grep -q "^  data purged by retention at 20" "$T/trace.txt" || { cat "$T/trace.txt"; fail "trace does not say the payload was purged"; }
"$RELAIS_BIN" trace -c "$T/hub.yaml" --json S-1 | python3 -c 'import json,sys; e=json.load(sys.stdin)["events"][0]; assert e["purged_at"] and "data" not in e, e' \
  || fail "trace --json of a purged event"
"$RELAIS_BIN" trace -c "$T/hub.yaml" L-1 >"$T/trace-l.txt" || fail "trace L-1"
grep -q '^  data ' "$T/trace-l.txt" && ! grep -q "purged" "$T/trace-l.txt" || { cat "$T/trace-l.txt"; fail "trace of a kept event"; }
pass "trace of a purged event: its steps, and 'data purged by retention'"

# once the pending delivery is done, the next run purges that event too; a second signed step
curl -fsS -X POST "$SIM_URL_stuck/_sim/reset" >/dev/null
wait_eq "H-1 delivered to stuck" 30 delivered sql "$DB" "SELECT d.status FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.record_id = 'H-1' AND d.destination = 'stuck'"
"$RELAIS_BIN" retention run -c "$T/hub.yaml" >"$T/run2.txt" 2>&1 || { cat "$T/run2.txt"; fail "second run"; }
[ "$(body H-1)" = "NULL|true|true" ] || { cat "$T/run2.txt"; fail "H-1 should be purged once delivered: $(body H-1)"; }
[ "$(body L-1)" = "long un|false|true" ] || fail "L-1 must still be kept"
[ "$(sql "$DB" "SELECT count(*) FROM steps WHERE step = 'purged' AND mac IS NOT NULL")" = 2 ] || fail "one signed step per run"
"$RELAIS_BIN" audit verify -c "$T/hub.yaml" >"$T/v2.txt" || { cat "$T/v2.txt"; fail "verify after the second run"; }
grep -q '3 event bodies purged' "$T/v2.txt" || { cat "$T/v2.txt"; fail "verify count after the second run"; }
stop_hub "$HUB_PID"
pass "delivered at last: purged by the next run; verify passes ($(cat "$T/v2.txt"))"
