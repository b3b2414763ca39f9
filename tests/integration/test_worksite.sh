#!/usr/bin/env bash
# The worksite connector with the real hub, PostgreSQL, the embedded broker,
# relais-sim-worksite (the technical services' work-order tool) and
# relais-sim-http (standing for the GRC, receiving work-order events):
#   desk (http source, grc-form mapping) -> grc.request.created
#     -> works-out (worksite sink): one intervention per request, even when
#        the same record is posted twice; cross-reference request -> INT-...
#   works-in (worksite source) polls the tool: the agent's changes become
#     workorder.updated / .completed events with origin_request (-> grc-sim,
#     in order per work order);
#     changes written with Relais's own account are echoes, not events;
#   the tool down for a while: retried, then delivered;
#   an unknown category: dead-lettered at once, the reason naming the
#     mapping file, line, field and code table.
# Also runs the commands of connectors/worksite/README.md.
. "$(dirname "$0")/lib.sh"
SIM_WS=$RELAIS_BUILD_DIR/relais-sim-worksite
WS="$RELAIS_SOURCE_DIR/connectors/worksite"
M="$RELAIS_SOURCE_DIR/connectors/mappings"
[ -x "$SIM_WS" ] || fail "$SIM_WS is missing"

# README: the mapping tests and the simulator's help
"$RELAIS_BIN" test "$WS/mappings" >"$T/maptest.txt" || { cat "$T/maptest.txt"; fail "relais test connectors/worksite/mappings"; }
grep -q ", 0 failed" "$T/maptest.txt" || fail "mapping tests summary"
pass "relais test connectors/worksite/mappings: $(tail -1 "$T/maptest.txt")"
"$SIM_WS" --help | grep -q "usage: relais-sim-worksite" || fail "relais-sim-worksite --help"
"$RELAIS_BIN" connectors describe >"$T/describe.txt"
grep -q "^worksite - " "$T/describe.txt" || fail "relais connectors describe does not list worksite"

# README: the configuration example checks (with a token file that exists)
echo "tok-relais" >"$T/ws.token"
{
  printf 'bus: { brokers: embedded }\njournal: { conninfo: "host=/nonexistent dbname=x" }\n'
  sed -n '/^## Configuration/,/^```$/p' "$WS/README.md" | sed -n '/^```yaml$/,/^```$/p' | sed '1d;$d' \
    | sed "s|file:/etc/relais/worksite.token|file:$T/ws.token|; s|mapping: connectors/worksite/|mapping: $WS/|"
} >"$T/readme.yaml"
grep -q "type: worksite" "$T/readme.yaml" || fail "no configuration example found in the README"
"$RELAIS_BIN" check -c "$T/readme.yaml" || { cat "$T/readme.yaml"; fail "the README's configuration example does not check"; }
pass "the README's configuration example checks"

# the work-order tool: Relais's token and an agent's
"$SIM_WS" --listen "127.0.0.1:0" --port-file "$T/ws.port" --token "tok-relais=relais" \
  --token "tok-agent=agent.voirie" --agent agent.voirie >"$T/sim-worksite.log" 2>&1 &
PIDS+=($!)
wait_for "relais-sim-worksite" 10 test -s "$T/ws.port"
WSURL="http://127.0.0.1:$(cat "$T/ws.port")"
grep -q "listening on http://127.0.0.1:$(cat "$T/ws.port")" "$T/sim-worksite.log" || fail "the simulator does not say where it listens"
start_sim grc
wsstat() { curl -fsS "$WSURL/_sim/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
wsadvance() { curl -fsS -X POST "$WSURL/_sim/advance" -d "$1" >/dev/null; }
metric() { curl -fsS "$ADMIN/metrics" | sed -n "s/^$1{connector=\"$2\"} //p"; }

DB=$(fresh_db worksite)
SRC=$(free_port)
cat >"$T/hub.yaml" <<YAML
hub:
  name: ws
  tenant: ville
  admin_listen: 127.0.0.1:0
  state_dir: $T/state
bus: { brokers: embedded, partitions: 3 }
journal: { conninfo: "$DB", batch_wait: 1ms }
delivery: { workers: 4, max_attempts: 30, backoff_initial: 200ms, backoff_max: 500ms, poll_interval: 100ms,
            circuit_open: 500ms }
connectors:
  - { name: desk, type: http, mode: source, listen: "127.0.0.1:$SRC", mapping: $M/grc-form/request.yaml }
  - name: works-out
    type: worksite
    mode: sink
    package: worksite
    mapping: $WS/mappings/intervention.yaml
    url: $WSURL
    token: file:$T/ws.token
    timeout: 2s
  - name: works-in
    type: worksite
    mode: source
    package: worksite
    mapping: $WS/mappings/workorder.yaml
    url: $WSURL
    token: file:$T/ws.token
    self_account: relais
    poll_interval: 200ms
  - { name: grc-sim, type: http, mode: sink, url: "$SIM_URL_grc/events", order: subject }
routes:
  - { name: to-works, match: "fr.relais.grc.request.created.*", to: [works-out] }
  - { name: to-grc, match: "fr.relais.technical.workorder.**", to: [grc-sim] }
YAML
"$RELAIS_BIN" check -c "$T/hub.yaml" || fail "the configuration does not check"
start_hub a "$T/hub.yaml"

# workorder events received by grc-sim: "verb status origin subject" per line
grc_events() {
  curl -fsS "$SIM_URL_grc/_sim/events" | python3 -c '
import json, sys
for e in json.load(sys.stdin):
    ev = e["event"]; d = ev["data"]
    print(ev["type"].split(".")[-2], d["status"], d.get("origin_request", {}).get("subject", "-"), ev["subject"])'
}

# 1. a request creates one intervention, even when posted twice
REC='{"id":"GRC-1","category":"voirie","description":"Nid de poule devant le 12","submitted_at":"2026-11-25T10:00:00+01:00","lat":48.11,"lon":-1.68,"street":"12 rue des Tanneurs","postcode":"35999","city":"Villebrune"}'
out=$(post_json "http://127.0.0.1:$SRC/events" "$REC")
[ "${out%% *}" = 202 ] || fail "GRC-1 answered $out"
wait_eq "interventions" 20 1 wsstat interventions
out=$(post_json "http://127.0.0.1:$SRC/events" "$REC")
[ "${out%% *}" = 202 ] || fail "GRC-1 again answered $out"
sleep 1
[ "$(wsstat interventions)" = 1 ] || fail "the same record created a second intervention"
INT=$(curl -fsS "$WSURL/_sim/interventions" | python3 -c '
import json, sys
i = json.load(sys.stdin)[0]["intervention"]
assert i["type_code"] == "VOI-03" and i["external_ref"] == "request/GRC-1" and i["created_by"] == "relais", i
assert i["location"]["city"] == "Villebrune" and i["location"]["lat"] == 48.11, i
print(i["id"])') || fail "the intervention is not the mapped request"
pass "request GRC-1 -> one intervention $INT (VOI-03), also when the record is posted twice"

wait_eq "cross-reference" 20 "$INT" sql "$DB" "SELECT local_id FROM xref WHERE tenant='ville' AND entity='request' AND canonical_id='request/GRC-1' AND package='worksite'"
pass "cross-reference recorded: request/GRC-1 is $INT at package worksite"

# 2. the creation was written by Relais: seen by works-in as an echo, no event
wait_eq "echo of the creation" 20 1 metric relais_echoes_total works-in
[ "$(sim_stat "$SIM_URL_grc" raw)" = 0 ] || fail "the creation came back as an event"
pass "the intervention's creation (author relais) is an echo, not an event"

# 3. the agent moves it: workorder.updated with the request it comes from
wsadvance "{\"id\":\"$INT\",\"comment\":\"Pris en compte\"}"
wait_eq "workorder.updated at grc-sim" 20 1 sim_stat "$SIM_URL_grc" distinct
[ "$(grc_events)" = "updated new request/GRC-1 workorder/$INT" ] || fail "unexpected events: $(grc_events)"
curl -fsS "$SIM_URL_grc/_sim/events" | python3 -c '
import json, sys
ev = json.load(sys.stdin)[0]["event"]
assert ev["type"] == "fr.relais.technical.workorder.updated.v1", ev
assert ev["data"]["comment"] == "Pris en compte" and ev["data"]["previous_status"] == "new", ev
assert ev["recordid"].endswith("/2"), ev' || fail "workorder.updated content"
pass "the agent's change -> fr.relais.technical.workorder.updated.v1 with origin_request request/GRC-1"

# 4. a change made with Relais's own account is not an event
code=$(curl -sS -o "$T/resp" -w '%{http_code}' -X POST -H 'Authorization: Bearer tok-relais' \
  -d '{"status":"planned","planned_start":"2026-11-30T07:30:00Z"}' "$WSURL/api/v1/interventions/$INT/status")
[ "$code" = 200 ] || fail "planning as relais answered $code $(cat "$T/resp")"
wait_eq "echo of the planning" 20 2 metric relais_echoes_total works-in
sleep 0.5
[ "$(sim_stat "$SIM_URL_grc" distinct)" = 1 ] || fail "Relais's own change came back: $(grc_events)"
pass "a change written with Relais's account (planned) is an echo (relais_echoes_total 2), not an event"

# 5. the agent finishes: updated (in_progress), then completed (done)
wsadvance "{\"id\":\"$INT\"}"
wsadvance "{\"id\":\"$INT\",\"comment\":\"Trou rebouché\"}"
wait_eq "three workorder events" 20 3 sim_stat "$SIM_URL_grc" distinct
grc_events | tail -2 >"$T/last2"
printf 'updated in_progress request/GRC-1 workorder/%s\ncompleted done request/GRC-1 workorder/%s\n' "$INT" "$INT" | diff - "$T/last2" \
  || fail "in_progress then done expected"
[ "$(sql "$DB" "SELECT type FROM events WHERE record_id='$INT/5'")" = fr.relais.technical.workorder.completed.v1 ] \
  || fail "done is not a workorder.completed event"
sleep 0.6
[ "$(sim_stat "$SIM_URL_grc" distinct)" = 3 ] || fail "a repeated poll made a second event"
pass "in_progress -> workorder.updated, done -> workorder.completed; repeated polls add nothing"

# 6. the tool down for a while: the request waits, is retried, then delivered
curl -fsS -X POST "$WSURL/_sim/down" -d '{"seconds":3}' >/dev/null
sleep 0.3
out=$(post_json "http://127.0.0.1:$SRC/events" '{"id":"GRC-2","category":"eclairage","submitted_at":"2026-11-25T11:00:00+01:00","lat":48.12,"lon":-1.67}')
[ "${out%% *}" = 202 ] || fail "GRC-2 answered $out"
retries() { sql "$DB" "SELECT count(*) FROM steps s JOIN events e ON e.id=s.event_id WHERE e.record_id='GRC-2' AND s.step='retry_scheduled'"; }
for _ in $(seq 100); do [ "$(retries)" -ge 1 ] && break; sleep 0.1; done
[ "$(retries)" -ge 1 ] || fail "GRC-2 was not retried while the tool was down"
wait_eq "GRC-2 delivered" 30 delivered sql "$DB" "SELECT d.status FROM deliveries d JOIN events e ON e.id=d.event_id WHERE e.record_id='GRC-2' AND d.destination='works-out'"
[ "$(wsstat interventions)" = 2 ] || fail "GRC-2 did not create exactly one intervention"
attempts=$(sql "$DB" "SELECT d.attempts FROM deliveries d JOIN events e ON e.id=d.event_id WHERE e.record_id='GRC-2'")
[ "$attempts" -ge 2 ] || fail "GRC-2 delivered without a retry ($attempts attempts)"
sql "$DB" "SELECT s.detail FROM steps s JOIN events e ON e.id=s.event_id WHERE e.record_id='GRC-2' AND s.step='attempt' ORDER BY s.id LIMIT 1" \
  | grep -qi "connect" || fail "the failed attempt does not say the connection failed"
pass "tool down 3 s: GRC-2 retried ($attempts attempts), then one intervention"

# 7. a category without a mapping: dead letter with the reason, at once
out=$(post_json "http://127.0.0.1:$SRC/events" '{"id":"GRC-3","category":"tags","submitted_at":"2026-11-25T12:00:00+01:00","lat":48.1,"lon":-1.6}')
[ "${out%% *}" = 202 ] || fail "GRC-3 answered $out"
wait_eq "GRC-3 dead-lettered" 20 dead sql "$DB" "SELECT d.status FROM deliveries d JOIN events e ON e.id=d.event_id WHERE e.record_id='GRC-3' AND d.destination='works-out'"
LINE=$(grep -n -- "- to: /type_code" "$WS/mappings/intervention.yaml" | cut -d: -f1)
"$RELAIS_BIN" dlq list -c "$T/hub.yaml" --json >"$T/dlq.json" || fail "relais dlq list"
python3 - "$T/dlq.json" "$LINE" <<'PY' || fail "the dead letter does not give the reason: $(cat "$T/dlq.json")"
import json, sys
dl = [d for d in json.load(open(sys.argv[1])) if d["destination"] == "works-out"]
assert len(dl) == 1, dl
want = "intervention.yaml:%s: data /type_code: value 'Autre demande' is not in table 'intervention_type'" % sys.argv[2]
assert want in dl[0]["last_detail"], (want, dl[0]["last_detail"])
assert dl[0]["attempts"] == 1, dl[0]
PY
[ "$(wsstat interventions)" = 2 ] || fail "the refused request reached the tool"
pass "category 'Autre demande' (no entry in intervention_type): dead letter at once, reason intervention.yaml:$LINE /type_code"

stop_hub "$HUB_PID"
pass "hub stopped cleanly"
