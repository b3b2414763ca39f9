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
sleep 8    # let the group settle: both members assigned

batch() {  # batch FROM TO -> JSON array of records with distinct subjects
  python3 -c "import json,sys; print(json.dumps([{'id':'S-%d'%i,'category':'voirie'} for i in range($1,$2)]))"
}
post_json "http://127.0.0.1:$SA/events" "$(batch 0 150)" | grep -q '^202' || fail "batch to A"
post_json "http://127.0.0.1:$SB/events" "$(batch 150 300)" | grep -q '^202' || fail "batch to B"
wait_eq "300 delivered" 60 300 sim_stat "$SIM_URL_worksite" distinct
att() { curl -fsS "$1/metrics" | sed -n 's/^relais_delivery_attempts_total{connector="worksite"} //p'; }
a=$(att "$ADMIN_A"); b=$(att "$ADMIN_B")
echo "attempts: hub A $a, hub B $b"
[ "$a" -gt 0 ] && [ "$b" -gt 0 ] || fail "both hubs must deliver (A $a, B $b)"
pass "two hubs in one consumer group share the deliveries (A $a, B $b)"

kill -9 "$PA"
post_json "http://127.0.0.1:$SB/events" "$(batch 300 400)" | grep -q '^202' || fail "batch to B after A died"
wait_eq "400 delivered" 90 400 sim_stat "$SIM_URL_worksite" distinct
[ "$(sql "$DB" "SELECT count(*) FROM deliveries WHERE status='delivered'")" = 400 ] || fail "journal totals"
raw=$(sim_stat "$SIM_URL_worksite" raw)
pass "hub A killed: hub B took over; 400 distinct records delivered ($raw raw deliveries)"
stop_hub "$PB"
