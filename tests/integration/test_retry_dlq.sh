#!/usr/bin/env bash
# Retries with backoff, dead-letter queue, replay after the sink recovers,
# and a permanent refusal dead-lettered at once.
. "$(dirname "$0")/lib.sh"

DB=$(fresh_db retry)
start_sim worksite
start_sim archive
SRC=$(free_port)
MAX_ATTEMPTS=3 write_config "$T/hub.yaml" "$DB" "$SRC" "worksite=$SIM_URL_worksite" "archive=$SIM_URL_archive"
start_hub a "$T/hub.yaml"

# 1. worksite answers 500 twice then 200: delivered on the third attempt
curl -fsS -X POST "$SIM_URL_worksite/_sim/fail" -d '{"status":500,"count":2}' >/dev/null
out=$(post_json "http://127.0.0.1:$SRC/events" '{"id":"R-10","category":"voirie"}')
[ "${out%% *}" = 202 ] || fail "POST answered $out"
wait_eq "R-10 at worksite" 20 1 sim_stat "$SIM_URL_worksite" distinct
"$RELAIS_BIN" trace --db "$DB" R-10 >"$T/t10.txt"
[ "$(grep -cE 'retry_scheduled +worksite' "$T/t10.txt")" = 2 ] || { cat "$T/t10.txt"; fail "expected 2 retries for worksite"; }
grep -E 'attempt +worksite attempt 1 -> 500' "$T/t10.txt" >/dev/null || fail "first answer 500 not traced"
grep -E 'attempt +worksite attempt 3 -> 201' "$T/t10.txt" >/dev/null || fail "third answer 201 not traced"
grep -E 'delivered +worksite' "$T/t10.txt" >/dev/null || fail "not delivered after retry"
[ "$(grep -cE 'retry_scheduled +archive' "$T/t10.txt")" = 0 ] || fail "archive retried although it answered"
pass "500, 500, then 201: delivered after two retries; the other sink unaffected"

# 2. archive always fails: dead-lettered after 3 attempts, listed, then replayed
curl -fsS -X POST "$SIM_URL_archive/_sim/fail" -d '{"status":503,"count":-1}' >/dev/null
post_json "http://127.0.0.1:$SRC/events" '{"id":"R-20","category":"voirie"}' >/dev/null
EV20=""
wait_for "R-20 dead-lettered" 30 bash -c "'$RELAIS_BIN' dlq list --db '$DB' | grep -q archive"
"$RELAIS_BIN" dlq list --db "$DB" >"$T/dlq.txt"
cat "$T/dlq.txt"
grep -qE '^[0-9]+ +[0-9a-f-]{36} +archive +3 +503' "$T/dlq.txt" || fail "dlq list lacks the archive delivery after 3 attempts"
"$RELAIS_BIN" dlq list --db "$DB" --json | python3 -c 'import json,sys; l=json.load(sys.stdin); assert len(l)==1 and l[0]["destination"]=="archive", l'
EV20=$("$RELAIS_BIN" trace --db "$DB" --json R-20 | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"][0]["id"])')
"$RELAIS_BIN" trace --db "$DB" R-20 | grep -E 'dead_lettered +archive' >/dev/null || fail "trace lacks dead_lettered"
[ "$(sim_stat "$SIM_URL_worksite" distinct)" = 2 ] || fail "worksite should have R-10 and R-20"
pass "a sink that always fails: dead-lettered after 3 attempts, visible in 'relais dlq list'"

# replay while still failing is allowed but must not deliver; recover then replay
curl -fsS -X POST "$SIM_URL_archive/_sim/reset" >/dev/null
"$RELAIS_BIN" replay -c "$T/hub.yaml" "$EV20" | grep "replayed 1" >/dev/null || fail "replay did not report one delivery"
wait_eq "R-20 at archive after replay" 20 1 sim_stat "$SIM_URL_archive" distinct
"$RELAIS_BIN" trace --db "$DB" R-20 >"$T/t20.txt"
awk '/dead_lettered +archive/{d=NR} /replayed/{r=NR} /delivered +archive/{v=NR} END{exit !(d && r>d && v>r)}' "$T/t20.txt" \
  || { cat "$T/t20.txt"; fail "trace order dead_lettered < replayed < delivered wrong"; }
[ "$("$RELAIS_BIN" dlq list --db "$DB" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 0 ] \
  || fail "dlq not empty after replay"
if "$RELAIS_BIN" replay -c "$T/hub.yaml" "$EV20" 2>/dev/null; then fail "replaying a delivered event should fail"; fi
pass "replay after recovery delivers it; dlq empty; replaying again is refused"

# 3. a permanent refusal (404) is dead-lettered at the first attempt
curl -fsS -X POST "$SIM_URL_worksite/_sim/fail" -d '{"status":404,"count":1}' >/dev/null
post_json "http://127.0.0.1:$SRC/events" '{"id":"R-30","category":"voirie"}' >/dev/null
wait_for "R-30 dead" 20 bash -c "'$RELAIS_BIN' trace --db '$DB' R-30 | grep -qE 'dead_lettered +worksite'"
[ "$("$RELAIS_BIN" trace --db "$DB" --json R-30 | python3 -c '
import json,sys; e=json.load(sys.stdin)["events"][0]
print([d["attempts"] for d in e["deliveries"] if d["destination"]=="worksite"][0])')" = 1 ] || fail "404 retried"
pass "404 is a permanent refusal: dead-lettered after one attempt"

curl -fsS "$ADMIN/metrics" >"$T/m.txt"
grep -q 'relais_dead_lettered_total{connector="archive"} 1' "$T/m.txt" || fail "metrics: archive dead-lettered"
grep -q 'relais_retried_total{connector="worksite"} 2' "$T/m.txt" || fail "metrics: worksite retried"
pass "metrics count retries and dead letters per destination"
stop_hub "$HUB_PID"
