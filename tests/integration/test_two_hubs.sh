#!/usr/bin/env bash
# Two `relais run` processes on the same bus, journal and routes share the
# deliveries through the consumer group; when one is killed the other takes
# over its partitions and every record is still delivered.
. "$(dirname "$0")/lib.sh"

"$RELAIS_BIN" broker --partitions 6 --bootstrap-file "$T/bootstrap" >"$T/broker.log" 2>&1 &
PIDS+=($!)
wait_for "broker" 20 test -s "$T/bootstrap"
BROKERS=$(cat "$T/bootstrap")
export BROKERS LEASE=3s

DB=$(fresh_db two)
start_sim worksite
SA=$(free_port); SB=$(free_port)
write_config "$T/a.yaml" "$DB" "$SA" "worksite=$SIM_URL_worksite"
write_config "$T/b.yaml" "$DB" "$SB" "worksite=$SIM_URL_worksite"
# the two files differ only in the webhook port and the state folder
[ "$(diff "$T/a.yaml" "$T/b.yaml" | grep -c '^[<>]')" = 4 ] || { diff "$T/a.yaml" "$T/b.yaml"; fail "configs differ in more than port and state"; }
start_hub a "$T/a.yaml"; PA=$HUB_PID; ADMIN_A=$ADMIN
start_hub b "$T/b.yaml"; PB=$HUB_PID; ADMIN_B=$ADMIN
batch() {  # batch FROM TO -> JSON array of records with distinct subjects
  python3 -c "import json,sys; print(json.dumps([{'id':'S-%d'%i,'category':'voirie'} for i in range($1,$2)]))"
}
att() { curl -fsS "$1/metrics" | sed -n 's/^relais_delivery_attempts_total{connector="worksite"} //p'; }
# The group needs a few seconds to settle after B joins (the mock cluster
# rebalances in session.timeout - 1 s): send rounds of 100 records, half to
# each webhook, until both hubs have delivered some (at most 6 rounds).
sent=0
for round in 1 2 3 4 5 6; do
  post_json "http://127.0.0.1:$SA/events" "$(batch $sent $((sent+50)))" | grep -q '^202' || fail "batch to A"
  post_json "http://127.0.0.1:$SB/events" "$(batch $((sent+50)) $((sent+100)))" | grep -q '^202' || fail "batch to B"
  sent=$((sent+100))
  wait_eq "$sent delivered" 60 $sent sim_stat "$SIM_URL_worksite" distinct
  a=$(att "$ADMIN_A"); b=$(att "$ADMIN_B")
  echo "round $round: attempts hub A $a, hub B $b"
  [ "$a" -gt 0 ] && [ "$b" -gt 0 ] && break
  sleep 2
done
[ "$a" -gt 0 ] && [ "$b" -gt 0 ] || fail "both hubs must deliver (A $a, B $b)"
pass "two hubs in one consumer group share the deliveries (A $a, B $b, $sent records)"

kill -9 "$PA"
post_json "http://127.0.0.1:$SB/events" "$(batch $sent $((sent+100)))" | grep -q '^202' || fail "batch to B after A died"
sent=$((sent+100))
wait_eq "$sent delivered" 90 $sent sim_stat "$SIM_URL_worksite" distinct
[ "$(sql "$DB" "SELECT count(*) FROM deliveries WHERE status='delivered'")" = $sent ] || fail "journal totals"
raw=$(sim_stat "$SIM_URL_worksite" raw)
pass "hub A killed: hub B took over; $sent distinct records delivered ($raw raw deliveries)"
stop_hub "$PB"
