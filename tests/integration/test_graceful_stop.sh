#!/usr/bin/env bash
# Graceful stop on SIGTERM with deliveries still queued: the attempt in
# flight finishes, the hub exits 0, the queued deliveries' leases are handed
# back, and a restarted hub delivers them at once (not after the 60 s lease).
. "$(dirname "$0")/lib.sh"

DB=$(fresh_db graceful)
start_sim worksite
SRC=$(free_port)
write_config "$T/hub.yaml" "$DB" "$SRC" "worksite=$SIM_URL_worksite"
sed -i 's/^    timeout: 2s$/    timeout: 2s\n    max_in_flight: 1/' "$T/hub.yaml"
grep -q "max_in_flight: 1" "$T/hub.yaml" || fail "config edit"
curl -fsS -X POST "$SIM_URL_worksite/_sim/fail" -d '{"delay_ms":400}' >/dev/null
start_hub a "$T/hub.yaml"
recs=$(python3 -c "import json; print(json.dumps([{'id':'G-%d'%i} for i in range(10)]))")
post_json "http://127.0.0.1:$SRC/events" "$recs" | grep -q '^202' || fail "batch"
wait_for "first delivery" 20 bash -c "[ \"\$(curl -fsS '$SIM_URL_worksite/_sim/stats' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"raw\"])')\" -ge 1 ]"
stop_hub "$HUB_PID"
got=$(sim_stat "$SIM_URL_worksite" distinct)
[ "$got" -lt 10 ] || fail "all delivered before the stop; the test needs queued deliveries"
grep -q "handed back $((10 - got)) queued deliver" "$T/hub-a.log" || { grep -i "hand" "$T/hub-a.log"; fail "queued deliveries not handed back"; }
[ "$(sql "$DB" "SELECT count(*) FROM deliveries WHERE status='pending' AND lease_owner IS NOT NULL")" = 0 ] \
  || fail "pending deliveries still leased after a graceful stop"
pass "SIGTERM: exit 0, $got delivered, $((10 - got)) queued deliveries handed back"

curl -fsS -X POST "$SIM_URL_worksite/_sim/reset" >/dev/null
t0=$(date +%s)
start_hub b "$T/hub.yaml"
wait_eq "the rest delivered after restart" 20 $((10 - got)) sim_stat "$SIM_URL_worksite" distinct
[ $(( $(date +%s) - t0 )) -lt 30 ] || fail "took as long as a lease"
[ "$(sql "$DB" "SELECT count(*) FROM deliveries WHERE status='delivered'")" = 10 ] || fail "journal totals"
pass "restarted hub delivered the handed-back deliveries at once; 10 of 10 delivered"
stop_hub "$HUB_PID"
