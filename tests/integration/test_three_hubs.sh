#!/usr/bin/env bash
# Scale-out past one process: three `relais run` processes on the same
# configuration, the same Kafka (a shared `relais broker`) and the same
# journal share the deliveries through the consumer group; one is killed
# with SIGKILL while records keep coming, the two others take over its
# partitions, and the totals stay exact (every record delivered, once per
# event id, and the journal agrees).
. "$(dirname "$0")/lib.sh"

"$RELAIS_BIN" broker --partitions 6 --bootstrap-file "$T/bootstrap" >"$T/broker.log" 2>&1 &
PIDS+=($!)
wait_for "broker" 20 test -s "$T/bootstrap"
BROKERS=$(cat "$T/bootstrap")
export BROKERS LEASE=3s

DB=$(fresh_db three)
start_sim worksite
declare -A PORT PID ADM
for h in a b c; do
  PORT[$h]=$(free_port)
  write_config "$T/$h.yaml" "$DB" "${PORT[$h]}" "worksite=$SIM_URL_worksite"
done
for h in a b c; do start_hub "$h" "$T/$h.yaml"; PID[$h]=$HUB_PID; ADM[$h]=$ADMIN; done

batch() { python3 -c "import json; print(json.dumps([{'id':'T-%d'%i,'category':'voirie'} for i in range($1,$2)]))"; }
att() { curl -fsS "$1/metrics" | sed -n 's/^relais_delivery_attempts_total{connector="worksite"} //p'; }
# rounds of 150 records (50 to each webhook) until all three hubs have delivered
sent=0
for round in $(seq 1 8); do
  for h in a b c; do
    post_json "http://127.0.0.1:${PORT[$h]}/events" "$(batch $sent $((sent+50)))" | grep -q '^202' || fail "batch to $h"
    sent=$((sent+50))
  done
  wait_eq "$sent delivered" 60 $sent sim_stat "$SIM_URL_worksite" distinct
  a=$(att "${ADM[a]}"); b=$(att "${ADM[b]}"); c=$(att "${ADM[c]}")
  echo "round $round: attempts A $a, B $b, C $c"
  [ "$a" -gt 0 ] && [ "$b" -gt 0 ] && [ "$c" -gt 0 ] && break
  sleep 2
done
[ "$a" -gt 0 ] && [ "$b" -gt 0 ] && [ "$c" -gt 0 ] || fail "all three hubs must deliver (A $a, B $b, C $c)"
pass "three hubs in one consumer group share the deliveries (A $a, B $b, C $c; $sent records)"

# kill A while B and C keep receiving
post_json "http://127.0.0.1:${PORT[b]}/events" "$(batch $sent $((sent+100)))" | grep -q '^202' || fail "batch to B"
sent=$((sent+100))
kill -9 "${PID[a]}"
for h in b c; do
  post_json "http://127.0.0.1:${PORT[$h]}/events" "$(batch $sent $((sent+100)))" | grep -q '^202' || fail "batch to $h after A died"
  sent=$((sent+100))
done
wait_eq "$sent delivered" 120 $sent sim_stat "$SIM_URL_worksite" distinct
[ "$(sql "$DB" "SELECT count(*) FROM deliveries WHERE status='delivered'")" = $sent ] || fail "journal: delivered rows differ from $sent"
[ "$(sql "$DB" "SELECT count(*) FROM events")" = $sent ] || fail "journal: events differ from $sent"
raw=$(sim_stat "$SIM_URL_worksite" raw)
b2=$(att "${ADM[b]}"); c2=$(att "${ADM[c]}")
pass "hub A killed: B and C took over; $sent distinct records delivered, $raw raw deliveries (B $b2, C $c2 attempts)"
stop_hub "${PID[b]}"
stop_hub "${PID[c]}"
