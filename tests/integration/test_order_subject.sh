#!/usr/bin/env bash
# Ordering per subject (a sink's `order: subject`) and poison records.
#  1. An event whose first attempt fails is retried; at an ordered sink the
#     later events of the same subject wait for it (arrival order = posting
#     order), at a plain sink they overtake it. Another subject is not held.
#  2. A poison event (the sink's mapping always refuses it) is dead-lettered at
#     once with the reason. At the plain sink it holds nothing back; at the
#     ordered sink it holds back the later events of ITS subject only, until
#     an operator replays or discards it (`relais discard`).
. "$(dirname "$0")/lib.sh"
DB=$(fresh_db order)
start_sim ordered
start_sim plain
SRC=$(free_port)
# the package needs a label: events without one cannot be rendered (poison)
cat >"$T/label.yaml" <<'YAML'
format: json
outbound:
  - data:
      - to: /rid
        from: /data/rid
        required: true
      - to: /label
        from: /data/label
        required: true
YAML
cat >"$T/hub.yaml" <<YAML
hub:
  name: order
  admin_listen: 127.0.0.1:0
  state_dir: $T/state
bus: { brokers: embedded, partitions: 3 }
journal: { conninfo: "$DB", batch_wait: 1ms }
delivery: { workers: 4, max_attempts: 5, backoff_initial: 2s, backoff_max: 2s, poll_interval: 100ms }
connectors:
  - { name: desk, type: http, mode: source, listen: "127.0.0.1:$SRC", event_type: test.relais.order.record,
      subject_pointer: /subject, record_id_pointer: /rid }
  - { name: ordered, type: http, mode: sink, url: "$SIM_URL_ordered/events", order: subject, max_in_flight: 4,
      mapping: $T/label.yaml }
  - { name: plain, type: http, mode: sink, url: "$SIM_URL_plain/events", max_in_flight: 4, mapping: $T/label.yaml }
routes:
  - { name: all, match: "test.relais.**", to: [ordered, plain] }
YAML
"$RELAIS_BIN" check -c "$T/hub.yaml" >/dev/null || fail "config with order: subject does not check"
start_hub a "$T/hub.yaml"

post() { post_json "http://127.0.0.1:$SRC/events" "$1" | grep -q '^202' || fail "POST $1 refused"; }
# received order of the records at a simulator, failed attempts excluded
arrivals() {
  curl -fsS "$1/_sim/events" | python3 -c '
import json, sys
print(" ".join(e["event"]["rid"] for e in json.load(sys.stdin)
               if e["status"] in (200, 201) and not e["duplicate"]))'
}

# 1. the first attempt of A1 fails at both sinks
curl -fsS -X POST "$SIM_URL_ordered/_sim/fail" -d '{"status":500,"count":1}' >/dev/null
curl -fsS -X POST "$SIM_URL_plain/_sim/fail" -d '{"status":500,"count":1}' >/dev/null
post '{"rid":"A1","subject":"request/A","label":"un"}'
both_failed() { echo "$(sim_stat "$SIM_URL_ordered" failed) $(sim_stat "$SIM_URL_plain" failed)"; }
wait_eq "A1 failed once at both" 20 "1 1" both_failed
post '{"rid":"A2","subject":"request/A","label":"deux"}'
post '{"rid":"A3","subject":"request/A","label":"trois"}'
post '{"rid":"B1","subject":"request/B","label":"autre"}'
# B1 is not held behind A1's retry: it arrives first (A1, A2, A3 may follow
# before this looks, on a loaded machine)
b1_first() { [ "$(arrivals "$SIM_URL_ordered" | cut -d' ' -f1)" = B1 ]; }
wait_for "B1 first at the ordered sink while A1 waits for its retry" 10 b1_first
wait_eq "all four at the plain sink" 20 4 sim_stat "$SIM_URL_plain" distinct
wait_eq "all four at the ordered sink" 20 4 sim_stat "$SIM_URL_ordered" distinct
ord=$(arrivals "$SIM_URL_ordered"); pl=$(arrivals "$SIM_URL_plain")
echo "ordered sink received: $ord"
echo "plain sink received:   $pl"
[ "$(echo "$ord" | tr ' ' '\n' | grep '^A' | xargs)" = "A1 A2 A3" ] || fail "ordered sink: subject A out of order: $ord"
[ "${ord%% *}" = B1 ] || fail "ordered sink: subject B was held behind A1's retry: $ord"
[ "$(echo "$pl" | tr ' ' '\n' | grep '^A' | xargs)" != "A1 A2 A3" ] || fail "plain sink kept the order: the test shows nothing"
pass "order: subject keeps A1 A2 A3 through A1's retry, B1 not held; the plain sink let A2 and A3 overtake"

# 2. a poison event: no label, so the sinks' mapping refuses it
post '{"rid":"P1","subject":"request/P"}'
post '{"rid":"P2","subject":"request/P","label":"après le poison"}'
post '{"rid":"C1","subject":"request/C","label":"autre sujet"}'
wait_eq "P1 dead at both sinks" 20 2 sql "$DB" "SELECT count(*) FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.record_id = 'P1' AND d.status = 'dead'"
sql "$DB" "SELECT last_detail FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.record_id = 'P1' AND destination = 'ordered'" \
  | grep -q 'label.yaml:[0-9]*: .*/label' || fail "dead letter without the mapping's file, line and field"
[ "$(sql "$DB" "SELECT attempts FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.record_id = 'P1' AND destination = 'ordered'")" = 1 ] \
  || fail "a mapping refusal was retried"
wait_eq "plain: P2 and C1 delivered behind the poison" 20 6 sim_stat "$SIM_URL_plain" distinct
wait_eq "ordered: C1 (another subject) delivered" 20 5 sim_stat "$SIM_URL_ordered" distinct
sleep 1
arrivals "$SIM_URL_ordered" | grep -qw P2 && fail "ordered: P2 overtook the dead P1 of its subject"
[ "$(sql "$DB" "SELECT d.status FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.record_id = 'P2' AND destination = 'ordered'")" = pending ] \
  || fail "P2 should be pending behind P1"
"$RELAIS_BIN" dlq list --db "$DB" | grep ordered >/dev/null || fail "the poison is not in the dead-letter list"
pass "poison P1 dead-lettered at once with file:line/field; plain sink not held; ordered sink holds only P2 (same subject), C1 went"

# the operator discards the poison at the ordered sink: P2 goes
DID=$(sql "$DB" "SELECT d.id FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.record_id = 'P1' AND destination = 'ordered'")
"$RELAIS_BIN" discard --db "$DB" --audit-key "$T/state/audit.key" "$DID" --reason "no label: fixed by hand in the package" | grep 'discarded 1' >/dev/null || fail "discard"
wait_eq "P2 delivered after the discard" 20 6 sim_stat "$SIM_URL_ordered" distinct
"$RELAIS_BIN" trace --db "$DB" P1 | grep -E 'discarded +ordered' >/dev/null || fail "trace lacks the discarded step"
"$RELAIS_BIN" dlq list --db "$DB" --json | python3 -c '
import json, sys
l = json.load(sys.stdin)
assert [d["destination"] for d in l] == ["plain"], l' || fail "dlq after discard should list only the plain sink's P1"
if "$RELAIS_BIN" discard --db "$DB" --audit-key "$T/state/audit.key" "$DID" 2>/dev/null; then fail "discarding twice should fail"; fi
pass "relais discard sets the poison aside (traced); the event held behind it is delivered"
stop_hub "$HUB_PID"
