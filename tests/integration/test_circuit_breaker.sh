#!/usr/bin/env bash
# A package that is down does not use up the deliveries' attempts nor the
# workers: after delivery.circuit_failures failed attempts in a row its
# circuit opens, its deliveries go back to the journal and wait; one probe
# after delivery.circuit_open; when the package answers again the circuit
# closes and everything is delivered. The other sink is not slowed.
. "$(dirname "$0")/lib.sh"
DB=$(fresh_db circuit)
start_sim down
start_sim fine
SRC=$(free_port)
cat >"$T/hub.yaml" <<YAML
hub:
  name: circuit
  admin_listen: 127.0.0.1:0
  state_dir: $T/state
bus: { brokers: embedded, partitions: 3 }
journal: { conninfo: "$DB", batch_wait: 1ms }
delivery: { workers: 4, max_attempts: 4, backoff_initial: 100ms, backoff_max: 300ms, poll_interval: 100ms,
            circuit_failures: 3, circuit_open: 2s }
connectors:
  - { name: desk, type: http, mode: source, listen: "127.0.0.1:$SRC", event_type: test.relais.cb.record,
      subject_pointer: /id, record_id_pointer: /id }
  - { name: down, type: http, mode: sink, url: "$SIM_URL_down/events", timeout: 2s }
  - { name: fine, type: http, mode: sink, url: "$SIM_URL_fine/events" }
routes:
  - { name: all, match: "test.relais.**", to: [down, fine] }
YAML
curl -fsS -X POST "$SIM_URL_down/_sim/fail" -d '{"status":503}' >/dev/null      # down until reset
start_hub a "$T/hub.yaml"
metric() { curl -fsS "$ADMIN/metrics" | sed -n "s/^$1{connector=\"$2\"} //p"; }
batch=$(python3 -c "import json; print(json.dumps([{'id':'CB-%d'%i} for i in range(60)]))")
post_json "http://127.0.0.1:$SRC/events" "$batch" | grep -q '^202' || fail "batch refused"
wait_eq "fine sink" 30 60 sim_stat "$SIM_URL_fine" distinct
wait_eq "circuit open" 20 1 metric relais_circuit_open down
sleep 5     # more than two circuit_open periods: probes only
att=$(metric relais_delivery_attempts_total down); dead=$(metric relais_dead_lettered_total down)
opened=$(metric relais_circuit_opened_total down)
echo "while down: $att attempts, $dead dead-lettered, circuit opened $opened time(s)"
# without the breaker: 60 deliveries x 4 attempts = 240 attempts and 60 dead letters by now
[ "$att" -lt 20 ] || fail "the breaker did not stop the attempts ($att)"
[ "$dead" -lt 5 ] || fail "deliveries dead-lettered while the package was down ($dead)"
[ "$opened" -ge 2 ] || fail "no probe re-opened the circuit ($opened)"
pass "package down: circuit open after 3 failures, $att attempts and $dead dead letters for 60 deliveries in 7 s; the other sink got all 60"

curl -fsS -X POST "$SIM_URL_down/_sim/reset" >/dev/null                          # the package is back
wait_eq "circuit closed" 20 0 metric relais_circuit_open down
want=$((60 - dead))
wait_eq "delivered after recovery" 30 $want sim_stat "$SIM_URL_down" distinct
if [ "$dead" -gt 0 ]; then
  for ev in $(sql "$DB" "SELECT event_id FROM deliveries WHERE status='dead'"); do
    "$RELAIS_BIN" replay --db "$DB" --audit-key "$T/state/audit.key" "$ev" >/dev/null || fail "replay $ev"
  done
  wait_eq "dead letters replayed" 30 60 sim_stat "$SIM_URL_down" distinct
fi
[ "$(sql "$DB" "SELECT count(*) FROM deliveries WHERE status='delivered'")" = 120 ] || fail "journal: not every delivery delivered"
pass "package back: circuit closed, all 60 delivered to it (journal: 120 deliveries delivered)"
stop_hub "$HUB_PID"
