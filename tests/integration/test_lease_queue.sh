#!/usr/bin/env bash
# Deliveries that wait in a hub's memory longer than their lease (a slow
# package, max_in_flight 1) are not claimed a second time by the same hub:
# each is attempted once, so the package sees every event exactly once
# (raw deliveries = distinct events), with no reliance on its dedupe.
. "$(dirname "$0")/lib.sh"
DB=$(fresh_db lease)
start_sim slow
SRC=$(free_port)
cat >"$T/hub.yaml" <<YAML
hub:
  name: lease
  admin_listen: 127.0.0.1:0
  state_dir: $T/state
bus: { brokers: embedded, partitions: 3 }
journal: { conninfo: "$DB", batch_wait: 1ms }
delivery: { workers: 4, poll_interval: 100ms, lease: 1s }
connectors:
  - { name: desk, type: http, mode: source, listen: "127.0.0.1:$SRC", event_type: test.relais.lease.record,
      subject_pointer: /id, record_id_pointer: /id }
  - { name: slow, type: http, mode: sink, url: "$SIM_URL_slow/events", max_in_flight: 1, timeout: 5s }
routes:
  - { name: all, match: "test.relais.**", to: [slow] }
YAML
curl -fsS -X POST "$SIM_URL_slow/_sim/fail" -d '{"delay_ms":250}' >/dev/null
start_hub a "$T/hub.yaml"
batch=$(python3 -c "import json; print(json.dumps([{'id':'L-%d'%i} for i in range(20)]))")
post_json "http://127.0.0.1:$SRC/events" "$batch" | grep -q '^202' || fail "batch refused"
wait_eq "delivered" 40 20 sim_stat "$SIM_URL_slow" distinct
sleep 1
raw=$(sim_stat "$SIM_URL_slow" raw)
[ "$raw" = 20 ] || fail "$raw raw deliveries for 20 events: deliveries queued past their lease were claimed again"
pass "20 deliveries queued up to 5 s with a 1 s lease: each attempted once (raw = distinct = 20)"
stop_hub "$HUB_PID"
