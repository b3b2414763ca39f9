#!/usr/bin/env bash
# The `lifecycle` connector (request tracker): from the work orders'
# progress it derives the GRC's request updates and closing, measures the
# time taken in working days (French public holidays) against the
# commitment of the request's category, and `relais sla` and /metrics list
# the open requests past their commitment and the share kept per category.
# A redelivered work-order event derives nothing twice.
. "$(dirname "$0")/lib.sh"
DB=$(fresh_db lifecycle)
start_sim grc
SRC=$(free_port)
cat >"$T/hub.yaml" <<YAML
hub:
  name: lifecycle
  tenant: ville
  admin_listen: 127.0.0.1:0
  state_dir: $T/state
bus: { brokers: embedded, partitions: 3 }
journal: { conninfo: "$DB", batch_wait: 1ms }
delivery: { workers: 4, poll_interval: 100ms }
connectors:
  - { name: desk, type: http, mode: source, listen: "127.0.0.1:$SRC" }
  - name: requests
    type: lifecycle
    mode: sink
    order: subject
    calendar: fr
    commitment_default: 10
    commitment.VOIRIE-NDP: 5
    commitment.ECLAIRAGE: 3
  - { name: grc, type: http, mode: sink, url: "$SIM_URL_grc/events" }
routes:
  - name: follow
    match: [fr.relais.grc.request.created.v1, fr.relais.grc.request.closed.v1, fr.relais.technical.workorder.**]
    to: [requests]
  - name: back-to-grc
    match: [fr.relais.grc.request.updated.v1, fr.relais.grc.request.closed.v1]
    where: [{ field: source, equals: /relais/ville/requests }]
    to: [grc]
YAML
"$RELAIS_BIN" check -c "$T/hub.yaml" >/dev/null || fail "config does not check"
start_hub a "$T/hub.yaml"

ce() {   # ce ID TYPE SUBJECT DATA: one structured CloudEvent
  local code
  code=$(curl -sS -o "$T/resp" -w '%{http_code}' -H 'Content-Type: application/cloudevents+json' \
    --data-binary "{\"specversion\":\"1.0\",\"id\":\"$1\",\"source\":\"test\",\"type\":\"$2\",\"subject\":\"$3\",\"data\":$4}" \
    "http://127.0.0.1:$SRC/events")
  [ "$code" = 202 ] || fail "POST $1 refused ($code): $(cat "$T/resp")"
}
created() {   # created ID SUBJECT CATEGORY CODE OPENED_AT
  ce "$1" fr.relais.grc.request.created.v1 "$2" \
    "{\"channel\":\"web\",\"category\":\"$3\",\"category_code\":\"$4\",\"status\":\"new\",\"opened_at\":\"$5\"}"
}
# T-1: a pothole, Monday 16 November 2026, commitment 5 working days
created C-1 request/T-1 "Nids de poule" VOIRIE-NDP 2026-11-16T09:00:00+01:00
# T-2: lighting, Monday 2 November, commitment 3 (deadline Thursday 5)
created C-2 request/T-2 "Éclairage public" ECLAIRAGE 2026-11-02T09:00:00+01:00
# T-3: lighting, 2 November, never done: overdue
created C-3 request/T-3 "Éclairage public" ECLAIRAGE 2026-11-02T10:00:00+01:00
# T-4: a pothole of yesterday: open, within its commitment
created C-4 request/T-4 "Nids de poule" VOIRIE-NDP 2026-11-25T10:00:00+01:00
sla_count() { sql "$DB" "SELECT count(*) FROM package_state WHERE package='requests' AND key LIKE 'sla/%'"; }
wait_eq "four requests followed" 20 4 sla_count
[ "$(sql "$DB" "SELECT value->>'deadline' FROM package_state WHERE key='sla/request/T-2'")" = 2026-11-05 ] \
  || fail "T-2 deadline: $(sql "$DB" "SELECT value FROM package_state WHERE key='sla/request/T-2'")"
pass "requests followed with their commitment and deadline in working days (T-2: 3 days -> 2026-11-05)"

ce W-1 fr.relais.technical.workorder.updated.v1 workorder/INT-1 \
  '{"status":"planned","updated_at":"2026-11-17T08:00:00+01:00","planned_start":"2026-11-19T08:00:00+01:00","origin_request":{"subject":"request/T-1"}}'
ce W-2 fr.relais.technical.workorder.completed.v1 workorder/INT-1 \
  '{"status":"done","done_at":"2026-11-20T15:00:00+01:00","report":"Nid de poule rebouché à l'"'"'enrobé à froid.","origin_request":{"subject":"request/T-1"}}'
# T-2 done on Thursday 12 November (Wednesday 11 is a holiday): 7 working days
ce W-3 fr.relais.technical.workorder.completed.v1 workorder/INT-2 \
  '{"status":"done","done_at":"2026-11-12T11:00:00+01:00","origin_request":{"subject":"request/T-2"}}'
# a work order of nobody's request: nothing derived
ce W-4 fr.relais.technical.workorder.updated.v1 workorder/INT-9 '{"status":"in_progress","updated_at":"2026-11-20T08:00:00+01:00"}'
wait_eq "three derived events at the GRC" 30 3 sim_stat "$SIM_URL_grc" distinct
curl -fsS "$SIM_URL_grc/_sim/events" >"$T/grc.json"
python3 - "$T/grc.json" <<'PY' || fail "derived events wrong: $(cat "$T/grc.json")"
import json, sys
evs = {(e["event"]["type"], e["event"]["subject"]): e["event"] for e in json.load(open(sys.argv[1])) if e["status"] in (200, 201)}
u = evs[("fr.relais.grc.request.updated.v1", "request/T-1")]
assert u["data"]["status"] == "in_progress", u
assert u["data"]["comment"] == "Une intervention est planifiée le 19/11/2026.", u
assert u["data"]["comment_visibility"] == "public"
assert u["data"]["workorder"] == {"subject": "workorder/INT-1", "local": {"package": "desk", "id": "INT-1"}}, u
c1 = evs[("fr.relais.grc.request.closed.v1", "request/T-1")]["data"]
assert c1["outcome"] == "resolved" and c1["delay_days"] == 4 and c1["commitment_days"] == 5 and c1["commitment_met"] is True, c1
assert c1["answer"].startswith("L'intervention demandée a été réalisée le 20/11/2026. Nid de poule"), c1
c2 = evs[("fr.relais.grc.request.closed.v1", "request/T-2")]["data"]
assert c2["delay_days"] == 7 and c2["commitment_days"] == 3 and c2["commitment_met"] is False, c2
# the correlation of the request follows its derived events
created = evs[("fr.relais.grc.request.closed.v1", "request/T-1")]
assert created["correlationid"], created
print("derived:", u["data"]["comment"], "|", c1["delay_days"], "days, kept |", c2["delay_days"], "days, missed")
PY
[ "$(sql "$DB" "SELECT correlation_id FROM events WHERE type='fr.relais.grc.request.closed.v1' AND subject='request/T-1'")" = \
  "$(sql "$DB" "SELECT correlation_id FROM events WHERE record_id='C-1'")" ] || fail "derived closing not correlated with the request"
"$RELAIS_BIN" trace --db "$DB" W-4 | grep 'nothing to derive' >/dev/null || fail "unlinked work order: no reason in the trace"
pass "planned -> request in progress with a French message; done -> closed: T-1 4 working days (kept), T-2 7 (missed, 11 November not counted)"

# a redelivery derives nothing twice: replaying W-2's delivery to requests
EV=$(sql "$DB" "SELECT id FROM events WHERE record_id='W-2'")
sql "$DB" "UPDATE deliveries SET status='dead' WHERE event_id='$EV' AND destination='requests'" >/dev/null
"$RELAIS_BIN" replay --db "$DB" --audit-key "$T/state/audit.key" "$EV" | grep 'replayed 1' >/dev/null || fail "replay W-2"
wait_for "W-2 delivered again" 20 bash -c "'$RELAIS_BIN' trace --db '$DB' W-2 | grep -q 'already derived'"
[ "$(sql "$DB" "SELECT count(*) FROM events WHERE type='fr.relais.grc.request.closed.v1' AND subject='request/T-1'")" = 1 ] \
  || fail "the closing was derived twice"
pass "a work-order event delivered twice derives one closing (record id <event id>/derived, inbox dedupe)"

# relais sla on a fixed day
wait_eq "closings recorded" 20 2 sql "$DB" "SELECT count(*) FROM package_state WHERE value->>'status'='closed'"
"$RELAIS_BIN" sla --db "$DB" --today 2026-11-26 >"$T/sla.txt"
cat "$T/sla.txt"
grep -q 'Open requests past their commitment on 2026-11-26: 1' "$T/sla.txt" || fail "sla: overdue count"
grep -qE 'request/T-3 +Éclairage public +2026-11-02 +2026-11-05 +14$' "$T/sla.txt" || fail "sla: T-3 overdue line"
grep -qE 'ville +Nids de poule +1 +0 +1 +1 100%' "$T/sla.txt" || fail "sla: potholes line"
grep -qE 'ville +Éclairage public +1 +1 +1 +0 0%' "$T/sla.txt" || fail "sla: lighting line"
"$RELAIS_BIN" sla --db "$DB" --today 2026-11-26 --from 2026-11-15 --to 2026-11-30 --json | python3 -c '
import json, sys
r = json.load(sys.stdin)
cats = {c["category"]: c for c in r["categories"]}
assert cats["Éclairage public"]["closed"] == 0, cats     # T-2 closed on the 12th: out of the period
assert cats["Nids de poule"]["share_kept"] == 1.0, cats' || fail "sla --from/--to"
pass "relais sla: T-3 overdue by 14 working days; potholes 1/1 kept, lighting 0/1; the period filters closings"

curl -fsS "$ADMIN/metrics" >"$T/m.txt"
grep -q 'relais_sla_kept{tenant="ville",category="Nids de poule"} 1' "$T/m.txt" || fail "metrics: relais_sla_kept"
grep -q 'relais_sla_open{tenant="ville",category="Éclairage public"} 1' "$T/m.txt" || fail "metrics: relais_sla_open"
grep -q '# TYPE relais_sla_overdue gauge' "$T/m.txt" || fail "metrics: relais_sla_overdue"
pass "/metrics: relais_sla_open, _overdue, _closed, _kept, _share_kept per tenant and category"
stop_hub "$HUB_PID"
