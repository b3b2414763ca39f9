#!/usr/bin/env bash
# Batch delivery: an http sink with batch_max 50 POSTs the events as
# CloudEvents batches. 500 records in 5 webhook requests reach the simulator
# as 500 distinct events in far fewer requests, and every event is still
# journaled on its own: its delivery, its answer, its cross-reference.
. "$(dirname "$0")/lib.sh"

DB=$(fresh_db batch)
start_sim worksite
SRC=$(free_port)
write_config "$T/hub.yaml" "$DB" "$SRC" "worksite=$SIM_URL_worksite"
sed -i '/^  - name: worksite$/,/^routes:/ s/^    timeout: 2s$/&\n    batch_max: 50/' "$T/hub.yaml"
grep -q '^    batch_max: 50$' "$T/hub.yaml" || fail "batch_max not added to the config"
start_hub a "$T/hub.yaml"

for b in 0 1 2 3 4; do
  body=$(python3 -c "
import json
print(json.dumps([{'id': 'R-%d' % i, 'category': 'voirie', 'n': i} for i in range($b*100, $b*100+100)]))")
  out=$(post_json "http://127.0.0.1:$SRC/events" "$body")
  [ "${out%% *}" = 202 ] || fail "batch $b answered ${out:0:200}"
  n=$(echo "${out#* }" | python3 -c 'import json,sys; print(sum(r["status"]=="accepted" for r in json.load(sys.stdin)["results"]))')
  [ "$n" = 100 ] || fail "batch $b: $n of 100 accepted"
done
pass "500 records accepted in 5 webhook requests"

wait_eq "worksite distinct" 60 500 sim_stat "$SIM_URL_worksite" distinct
requests=$(sim_stat "$SIM_URL_worksite" requests)
raw=$(sim_stat "$SIM_URL_worksite" raw)
echo "worksite: $raw events in $requests requests"
[ "$raw" = 500 ] || fail "worksite received $raw events for 500 (duplicates or retries)"
[ "$requests" -le 100 ] || fail "$requests requests for 500 events: not batched"
curl -fsS "$SIM_URL_worksite/_sim/events" | python3 -c '
import json,sys
evs=json.load(sys.stdin)
assert len(evs)==500, len(evs)
assert all(e["content_type"]=="application/cloudevents-batch+json" for e in evs), "a delivery was not a batch"
assert max(e["batch_size"] for e in evs) > 1
assert all(1 <= e["batch_size"] <= 50 for e in evs), "a batch larger than batch_max"
assert len({e["event"]["recordid"] for e in evs})==500
' || fail "the simulator's events are not 500 batched CloudEvents of at most 50"
pass "500 distinct events in $requests requests (batches of at most 50)"

# per-event journaling: every delivery delivered, answer and local id kept
[ "$(sql "$DB" "SELECT count(*) FROM deliveries WHERE destination='worksite' AND status='delivered'")" = 500 ] \
  || fail "not every delivery is journaled as delivered"
[ "$(sql "$DB" "SELECT count(DISTINCT local_id) FROM xref WHERE package='worksite' AND local_id LIKE 'L-%'")" = 500 ] \
  || fail "not every event got its own local id from the batch answer"
"$RELAIS_BIN" trace --db "$DB" R-123 >"$T/trace.txt" || fail "relais trace R-123 failed"
cat "$T/trace.txt"
grep -E " delivered +worksite" "$T/trace.txt" >/dev/null || fail "trace of R-123 lacks 'delivered worksite'"
grep -E "attempt +worksite attempt 1 -> 20[01]" "$T/trace.txt" >/dev/null || fail "trace of R-123 lacks the worksite answer"
LOCAL=$(sql "$DB" "SELECT local_id FROM xref WHERE package='worksite' AND canonical_id='R-123'")
EVID=$("$RELAIS_BIN" trace --db "$DB" --json R-123 | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"][0]["id"])')
curl -fsS "$SIM_URL_worksite/_sim/events" | python3 -c '
import json,sys
e=[e for e in json.load(sys.stdin) if e["event"]["id"]=="'"$EVID"'"]
assert len(e)==1 and e[0]["id"]=="'"$LOCAL"'", e
' || fail "R-123's local id $LOCAL is not the one the simulator gave its event"
pass "each event journaled on its own: 500 delivered, 500 local ids, trace shows delivered worksite"

stop_hub "$HUB_PID"
pass "graceful stop"
