#!/usr/bin/env bash
# A record through the webhook to two HTTP sinks and a file drop, with the
# trace, the cross-reference, metrics, the bus readable by kcat, and the same
# record sent twice delivered once.
. "$(dirname "$0")/lib.sh"

DB=$(fresh_db e2e)
start_sim worksite
start_sim archive
SRC=$(free_port)
mkdir -p "$T/drop"
RID_POINTER=/ref write_config "$T/hub.yaml" "$DB" "$SRC" "worksite=$SIM_URL_worksite" "archive=$SIM_URL_archive" "drop=dir:$T/drop"
start_hub a "$T/hub.yaml"

for i in 1 2 3; do
  out=$(post_json "http://127.0.0.1:$SRC/events" "{\"id\":\"R-$i\",\"ref\":\"R-$i\",\"category\":\"voirie\",\"description\":\"nid de poule $i\"}")
  [ "${out%% *}" = 202 ] || fail "POST R-$i answered $out"
  echo "$out" | grep -q '"accepted"' || fail "R-$i not accepted: $out"
done
pass "three records accepted (202)"

wait_eq "worksite distinct" 20 3 sim_stat "$SIM_URL_worksite" distinct
wait_eq "archive distinct" 20 3 sim_stat "$SIM_URL_archive" distinct
wait_eq "file drop" 20 3 bash -c "ls '$T/drop' | grep -c '\.jsonl$'"
pass "each record delivered to both HTTP sinks and the file drop"

[ -z "$(ls -A "$T/drop" | grep '\.tmp$' || true)" ] || fail "temporary files left in the drop folder"

# the trace of R-1: every step, in order, with the answers
"$RELAIS_BIN" trace --db "$DB" R-1 >"$T/trace.txt" || fail "relais trace R-1 failed"
cat "$T/trace.txt"
for step in received published routed attempt delivered; do
  grep -q " $step " "$T/trace.txt" || fail "trace lacks step $step"
done
for d in worksite archive drop; do
  grep -E " delivered +$d" "$T/trace.txt" >/dev/null || fail "trace lacks 'delivered $d'"
done
grep -E "attempt +worksite attempt 1 -> 201" "$T/trace.txt" >/dev/null || fail "trace lacks the worksite answer 201"
# order: received before routed before delivered
awk '/ received /{r=NR} / routed /{if(!ro)ro=NR} / delivered /{d=NR} END{exit !(r<ro && ro<d)}' "$T/trace.txt" \
  || fail "steps out of order"
pass "trace shows received, published, routed, attempts with answers, delivered, in order"

"$RELAIS_BIN" trace --db "$DB" --json R-1 | python3 -c '
import json,sys
t=json.load(sys.stdin); e=t["events"][0]
assert e["recordid"]=="R-1", e
ats=[s["at"] for s in e["steps"]]
assert ats==sorted(ats), "steps not in time order"
assert {d["destination"] for d in e["deliveries"]}=={"worksite","archive","drop"}, e["deliveries"]
assert all(d["status"]=="delivered" for d in e["deliveries"])
' || fail "JSON trace incomplete"
EVID=$("$RELAIS_BIN" trace --db "$DB" --json R-1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"][0]["id"])')
"$RELAIS_BIN" trace --db "$DB" "$EVID" | grep "record R-1" >/dev/null || fail "trace by event id does not find R-1"
pass "trace by record id and by event id; JSON form"

# cross-reference: the local id the worksite gave request R-1
LOCAL=$(sql "$DB" "SELECT local_id FROM xref WHERE package='worksite' AND canonical_id='R-1'")
[ -n "$LOCAL" ] || fail "no cross-reference for R-1 at worksite"
pass "cross-reference recorded: R-1 is $LOCAL at worksite"

# the same record again: acknowledged as duplicate, not delivered again
out=$(post_json "http://127.0.0.1:$SRC/events" '{"id":"R-1","ref":"R-1","category":"voirie","description":"nid de poule 1"}')
[ "${out%% *}" = 202 ] || fail "duplicate POST answered $out"
echo "$out" | grep -q '"duplicate"' || fail "duplicate not reported: $out"
echo "$out" | grep -q "$EVID" || fail "duplicate does not name the first event id: $out"
sleep 1.5
[ "$(sim_stat "$SIM_URL_worksite" raw)" = 3 ] || fail "duplicate reached the worksite"
[ "$(sql "$DB" "SELECT count(*) FROM events")" = 3 ] || fail "duplicate journaled as a new event"
pass "the same record sent twice is acknowledged and delivered once"

# a later record about the same request (same subject, new record id) reaches
# the worksite with the local id the worksite gave it (cross-reference used)
out=$(post_json "http://127.0.0.1:$SRC/events" '{"id":"R-1","ref":"R-1-v2","category":"voirie","status":"update"}')
echo "$out" | grep -q '"accepted"' || fail "update not accepted: $out"
wait_eq "update delivered" 20 4 sim_stat "$SIM_URL_worksite" distinct
curl -fsS "$SIM_URL_worksite/_sim/events" | python3 -c '
import json,sys
evs=json.load(sys.stdin)
s=json.dumps(evs[-1])
assert "'"$LOCAL"'" in s and "R-1-v2" in s, s
' || fail "the update did not carry X-Relais-Local-Id $LOCAL"
pass "a later event about R-1 is delivered with the worksite's local id $LOCAL"

# metrics and health
curl -fsS "$ADMIN/healthz" | grep '"status":"ok"' >/dev/null || fail "healthz not ok"
curl -fsS "$ADMIN/metrics" >"$T/metrics.txt"
grep -q 'relais_delivered_total{connector="archive"} [1-9]' "$T/metrics.txt" || fail "metrics lack deliveries"
grep -q 'relais_events_in_total{connector="desk"} [1-9]' "$T/metrics.txt" || fail "metrics lack events in"
grep -q 'relais_duplicates_total{connector="desk"} 1' "$T/metrics.txt" || fail "metrics lack the duplicate"
grep -q 'relais_delivery_latency_seconds_count [1-9]' "$T/metrics.txt" || fail "metrics lack the latency histogram"
pass "/healthz ok and /metrics counts per connector with a latency histogram"

# the embedded broker is a Kafka broker any client can read
n=$(kcat -b "$BOOTSTRAP" -t relais.events -C -e -o beginning -q -m 10 2>/dev/null | grep -c '"specversion":"1.0"' || true)
[ "$n" -ge 4 ] || fail "kcat read $n events from the embedded broker"
pass "kcat reads the events from the embedded broker at $BOOTSTRAP"

stop_hub "$HUB_PID"
pass "graceful stop on SIGTERM exits 0"
