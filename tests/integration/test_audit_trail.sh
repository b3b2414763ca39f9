#!/usr/bin/env bash
# The tamper-evident trail (issue 7): every step row is chained by hash and
# MACed with a key outside the database; checkpoints are appended to a file
# outside it. `relais audit verify` passes on an untouched journal, and names
# the first entry modified, deleted, inserted or reordered, and a tail cut
# off, when rows are changed directly with psql (each case on a copy of the
# journal made with CREATE DATABASE ... TEMPLATE).
. "$(dirname "$0")/lib.sh"

DB=$(fresh_db audit)
DBNAME=${DB##*dbname=}; DBNAME=${DBNAME%% *}
start_sim archive
SRC=$(free_port)
write_config "$T/hub.yaml" "$DB" "$SRC" "archive=$SIM_URL_archive"
STATE="$T/state-hub"
start_hub a "$T/hub.yaml"
for i in $(seq 1 12); do
  out=$(post_json "http://127.0.0.1:$SRC/events" "{\"id\":\"A-$i\",\"category\":\"voirie\",\"description\":\"nid de poule $i\"}")
  [ "${out%% *}" = 202 ] || fail "POST A-$i answered $out"
done
# SQL in a record id and a description: kept as data (statements are parameterised)
out=$(post_json "http://127.0.0.1:$SRC/events" "{\"id\":\"A-q'); DROP TABLE steps; --\",\"category\":\"voirie\",\"description\":\"x' OR '1'='1\"}")
[ "${out%% *}" = 202 ] || fail "POST of the quoted id answered $out"
out=$(post_json "http://127.0.0.1:$SRC/events" '{"id": "A-bad", ') || true
[ "${out%% *}" = 400 ] || fail "a truncated body should be refused (got $out)"
wait_eq "13 records at archive" 30 13 sim_stat "$SIM_URL_archive" distinct
[ "$(sql "$DB" "SELECT count(*) FROM events WHERE record_id = 'A-q''); DROP TABLE steps; --'")" = 1 ] \
  || fail "the record id with SQL in it was not kept verbatim"
"$RELAIS_BIN" trace --db "$DB" "A-q'); DROP TABLE steps; --" | grep -E 'delivered +archive' >/dev/null || fail "trace by the quoted record id"
stop_hub "$HUB_PID"

KEY="$STATE/audit.key"; CPS="$STATE/audit.checkpoints"
[ -s "$KEY" ] || fail "the hub did not make its audit key in $KEY"
[ "$(stat -c %a "$KEY")" = 600 ] || fail "audit key mode is $(stat -c %a "$KEY"), not 600"
[ -s "$CPS" ] || fail "no checkpoint written to $CPS"
[ "$(sql "$DB" "SELECT count(*) FROM steps WHERE stream IS NULL OR hash IS NULL OR mac IS NULL")" = 0 ] \
  || fail "some steps carry no chain proof"
[ "$(sql "$DB" "SELECT count(*) FROM rejections WHERE stream IS NULL")" = 0 ] || fail "the rejection names no step"
[ "$(sql "$DB" "SELECT count(*) FROM events WHERE body_sha256 IS NULL")" = 0 ] || fail "events without body_sha256"

"$RELAIS_BIN" audit verify -c "$T/hub.yaml" >"$T/v0.txt" || { cat "$T/v0.txt"; fail "an untouched journal must verify"; }
grep -q '^verified: ' "$T/v0.txt" || { cat "$T/v0.txt"; fail "no verified summary"; }
pass "untouched journal verifies: $(cat "$T/v0.txt")"

# a copy of the journal per case; verify it with the hub's key and checkpoints
n=0
tamper() {  # tamper EXPECTED-REGEX SQL...
  local want=$1; shift
  n=$((n + 1))
  local copy="${DBNAME}_t$n"
  psql -X -q -h "$RELAIS_TEST_PGHOST" -p "$PGPORT_" -U postgres -d postgres -c "CREATE DATABASE $copy TEMPLATE $DBNAME" >/dev/null
  local ci="host=$RELAIS_TEST_PGHOST port=$PGPORT_ dbname=$copy user=postgres"
  for q in "$@"; do psql -X -q -v ON_ERROR_STOP=1 "$ci" -c "$q" >/dev/null || fail "case $n: $q"; done
  if "$RELAIS_BIN" audit verify --db "$ci" --audit-key "$KEY" --checkpoints "$CPS" >"$T/v$n.txt" 2>&1; then
    cat "$T/v$n.txt"; fail "case $n: verify passed after: $*"
  fi
  grep -qE "$want" "$T/v$n.txt" || { cat "$T/v$n.txt"; fail "case $n: expected /$want/ after: $*"; }
  echo "   case $n: $(grep -m1 FAULT "$T/v$n.txt")"
}

# a delivered step inside its stream (neither its first entry nor its last:
# deleting the last one is a tail cut off, the case further down; which
# lane's stream ends where depends on timing) and the received step of A-7
DELIV=$(sql "$DB" "SELECT s.id FROM steps s WHERE s.step = 'delivered' AND s.seq > 1
                   AND s.seq < (SELECT max(t.seq) FROM steps t WHERE t.stream = s.stream) ORDER BY s.id LIMIT 1")
RECV7=$(sql "$DB" "SELECT s.id FROM steps s JOIN events e ON e.id = s.event_id WHERE e.record_id = 'A-7' AND s.step = 'received'")
EV7=$(sql "$DB" "SELECT id FROM events WHERE record_id = 'A-7'")
read -r S SEQ <<<"$(sql "$DB" "SELECT stream, seq FROM steps WHERE id = $DELIV" | tr '|' ' ')"
read -r LAST_SEQ LAST_HASH <<<"$(sql "$DB" "SELECT seq, hash FROM steps WHERE stream = '$S' ORDER BY seq DESC LIMIT 1" | tr '|' ' ')"
[ -n "$DELIV" ] && [ -n "$RECV7" ] && [ -n "$S" ] || fail "steps to tamper with not found"

tamper "FAULT modified: stream .*step $DELIV " \
  "UPDATE steps SET detail = 'local id FORGED' WHERE id = $DELIV"
tamper "FAULT modified: .*step $RECV7 " \
  "UPDATE events SET body = jsonb_set(body, '{data,description}', '\"forged\"') WHERE record_id = 'A-7'"
tamper "FAULT modified: .*step $RECV7 " \
  "UPDATE events SET received_at = received_at - interval '1 day' WHERE record_id = 'A-7'"
tamper "FAULT deleted: stream $S, entry $SEQ" \
  "DELETE FROM steps WHERE id = $DELIV"
tamper "FAULT deleted: .*step $RECV7 .*event this signed step covers was deleted" \
  "DELETE FROM deliveries WHERE event_id = '$EV7'" "DELETE FROM unrouted WHERE event_id = '$EV7'" \
  "DELETE FROM events WHERE id = '$EV7'"
tamper "FAULT inserted: step [0-9]+ \\(delivered\\) is not covered" \
  "INSERT INTO steps (at, event_id, step, destination, detail) VALUES (now(), '$EV7', 'delivered', 'archive', 'forged')"
tamper "FAULT inserted: event [0-9a-f-]+ \\(test.relais" \
  "INSERT INTO events (id, tenant, source, record_id, type, correlation_id, received_at, body) SELECT gen_random_uuid(), tenant, source, 'A-forged', type, correlation_id, now(), body FROM events WHERE id = '$EV7'"
# appended with a correct chain hash (anyone can compute SHA-256) but no key for the MAC
FORGED_HASH=$(python3 -c 'import hashlib,sys; print(hashlib.sha256((sys.argv[1] + "\n" + "{\"at\":1767225600000000,\"detail\":\"forged\",\"step\":\"delivered\"}").encode()).hexdigest())' "$LAST_HASH")
tamper "FAULT inserted: stream $S, entry $((LAST_SEQ + 1)), .*not signed by the audit key" \
  "INSERT INTO steps (at, step, detail, stream, seq, prev_hash, hash, mac) VALUES ('2026-01-01 00:00:00+00', 'delivered', 'forged', '$S', $((LAST_SEQ + 1)), '$LAST_HASH', '$FORGED_HASH', repeat('cd', 32))"
tamper "FAULT reordered: stream $S, entry $((SEQ - 1))" \
  "UPDATE steps SET seq = -1 WHERE stream = '$S' AND seq = $((SEQ - 1))" \
  "UPDATE steps SET seq = $((SEQ - 1)) WHERE stream = '$S' AND seq = $SEQ" \
  "UPDATE steps SET seq = $SEQ WHERE stream = '$S' AND seq = -1"
tamper "FAULT truncated: stream $S, entry $LAST_SEQ" \
  "DELETE FROM steps WHERE stream = '$S' AND seq > $((LAST_SEQ - 3))"
tamper "FAULT truncated: stream $S: the checkpoint .* the journal has none" \
  "DELETE FROM rejections WHERE stream = '$S'" "DELETE FROM steps WHERE stream = '$S'"
tamper "FAULT inserted: rejection" \
  "INSERT INTO rejections (at, source, reason) VALUES (now(), 'desk', 'forged')"
pass "modified (step, event body, event time), deleted (step, event), inserted (unsigned step, event, forged MAC, rejection), reordered, tail cut off and whole stream deleted: each named"

# replay and discard write signed steps too (the CLI's own stream)
psql -X -q "$DB" -c "UPDATE deliveries SET status = 'dead' WHERE id = (SELECT min(id) FROM deliveries)" >/dev/null
"$RELAIS_BIN" replay -c "$T/hub.yaml" "$(sql "$DB" "SELECT min(id) FROM deliveries")" | grep 'replayed 1' >/dev/null || fail "replay"
[ "$(sql "$DB" "SELECT count(*) FROM steps WHERE step = 'replayed' AND stream LIKE 'cli/%/R' AND mac IS NOT NULL")" = 1 ] \
  || fail "the replayed step is not signed in a cli stream"
"$RELAIS_BIN" audit verify -c "$T/hub.yaml" >"$T/v-replay.txt" || { cat "$T/v-replay.txt"; fail "verify after replay"; }
if "$RELAIS_BIN" replay --db "$DB" "$(sql "$DB" "SELECT min(id) FROM deliveries")" 2>"$T/nokey.txt"; then fail "replay without the key"; fi
grep -q "audit key" "$T/nokey.txt" || fail "replay without the key should say it needs the audit key"
pass "replay writes a signed step (stream cli/USER@HOST/...); without the key it is refused"

# a time range; a bad checkpoint file is named with its line
TODAY=$(date -u +%F)
"$RELAIS_BIN" audit verify -c "$T/hub.yaml" --from "$TODAY" --to "$TODAY" | grep '^verified: .*(time range)' >/dev/null || fail "verify --from --to"
cp "$CPS" "$T/bad.cps"; echo '{"stream":"x","seq":0}' >>"$T/bad.cps"; echo '{}' >>"$T/bad.cps"
if "$RELAIS_BIN" audit verify --db "$DB" --audit-key "$KEY" --checkpoints "$T/bad.cps" 2>"$T/badcp.txt"; then fail "bad checkpoint file accepted"; fi
grep -qE "bad.cps:[0-9]+: " "$T/badcp.txt" || { cat "$T/badcp.txt"; fail "bad checkpoint line not named"; }
# a key readable by others is refused, naming the file
chmod 644 "$KEY"
if "$RELAIS_BIN" run -c "$T/hub.yaml" >"$T/hub-badkey.log" 2>&1; then fail "hub started with a world-readable key"; fi
grep -q "audit.key" "$T/hub-badkey.log" || { cat "$T/hub-badkey.log"; fail "the refusal does not name the key file"; }
pass "time range; bad checkpoint line named FILE:LINE; world-readable key refused"

# export: a self-contained extract verified offline; tampering with it is named
chmod 600 "$KEY"
CORR=$(sql "$DB" "SELECT correlation_id FROM events WHERE record_id = 'A-3'")
"$RELAIS_BIN" audit export -c "$T/hub.yaml" --correlation "$CORR" -o "$T/x.jsonl" 2>"$T/x.err" || { cat "$T/x.err"; fail "export"; }
grep -q '"relais_audit_export":1' "$T/x.jsonl" || fail "no extract header"
grep -q '"end":true' "$T/x.jsonl" || fail "no extract trailer"
grep -q 'nid de poule 3' "$T/x.jsonl" || fail "the extract lacks A-3's body"
if grep -q 'nid de poule 4' "$T/x.jsonl"; then fail "the extract holds another citizen's body (A-4)"; fi
"$RELAIS_BIN" audit verify --file "$T/x.jsonl" --audit-key "$KEY" >"$T/xv.txt" || { cat "$T/xv.txt"; fail "the extract must verify offline"; }
grep -q '^verified: ' "$T/xv.txt" || fail "no verified line for the extract"
[ "$(sql "$DB" "SELECT count(*) FROM steps WHERE step = 'personal_data_read' AND detail LIKE '%audit export of correlation $CORR%' AND mac IS NOT NULL")" = 1 ] \
  || fail "the export is not journaled as a signed personal_data_read step"
xcase() {  # xcase EXPECTED-REGEX PYTHON-EXPR-ON-LINES
  python3 - "$T/x.jsonl" "$T/xt.jsonl" "$2" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
exec(sys.argv[3])
open(sys.argv[2], "w").write("".join(json.dumps(l, separators=(",", ":")) + "\n" for l in lines))
PY
  if "$RELAIS_BIN" audit verify --file "$T/xt.jsonl" --audit-key "$KEY" >"$T/xtv.txt" 2>&1; then cat "$T/xtv.txt"; fail "tampered extract verified: $2"; fi
  grep -qE "$1" "$T/xtv.txt" || { cat "$T/xtv.txt"; fail "expected /$1/ for: $2"; }
}
xcase "FAULT modified: .*body is not the one" \
  'e = next(l for l in lines if "body" in l); e["body"] = e["body"].replace("nid de poule 3", "forged")'
xcase "FAULT modified: .*content no longer" \
  'e = next(l for l in lines if "entry" in l and l["entry"].get("step") == "delivered"); e["entry"]["detail"] = "forged"'
xcase "FAULT deleted: " \
  'i = next(i for i, l in enumerate(lines) if "entry" in l and l["entry"].get("step") == "routed"); del lines[i]; lines[-1]["entries"] -= 1'
xcase "no trailer: the extract was cut short" 'del lines[-1]'
# by person (a value in the data: what a subject access request gives) and by time range
"$RELAIS_BIN" audit export -c "$T/hub.yaml" --person "nid de poule 5" -o "$T/xp.jsonl" 2>/dev/null || fail "export --person"
grep -q 'nid de poule 5' "$T/xp.jsonl" || fail "the person's extract lacks A-5's body"
if grep -q 'nid de poule 6' "$T/xp.jsonl"; then fail "the person's extract holds another citizen's body"; fi
"$RELAIS_BIN" audit verify --file "$T/xp.jsonl" --audit-key "$KEY" | grep '^verified: [1-9]' >/dev/null || fail "the person's extract does not verify"
"$RELAIS_BIN" audit export -c "$T/hub.yaml" --from "$(date -u +%F)" --to "$(date -u +%F)" -o "$T/xr.jsonl" 2>/dev/null || fail "export --from --to"
[ "$(grep -c '"body":' "$T/xr.jsonl")" -ge 13 ] || fail "the day's extract lacks bodies"
"$RELAIS_BIN" audit verify --file "$T/xr.jsonl" --audit-key "$KEY" | grep '^verified: ' >/dev/null || fail "the day's extract does not verify"
if "$RELAIS_BIN" audit export -c "$T/hub.yaml" --person x --correlation y 2>/dev/null; then fail "two selections accepted"; fi
pass "audit export by correlation, person and time range: only the selected bodies, verified offline; the read journaled; a changed body, entry, or a removed entry named"
