#!/usr/bin/env bash
# The first real flow (issue 6), on the demo's own configuration and
# simulators (tools/demo --keep): the pothole's life cycle across the GRC
# (Publik w.c.s.), the work-order tool, the citizen and Open311, then what
# users complained about in other tools:
#   - a retried submission is one request and one work order;
#   - one destination down (SMS gateway): the others deliver, the trace and
#     /metrics name the one behind and why, retries for it only;
#   - a category without a code: dead-lettered with the reason (value, table,
#     file, line), replayed after the table is fixed, without a restart;
#   - no echo of what Relais wrote into the GRC;
#   - two tenants (town and CCAS): one's records never reach the other's packages;
#   - service levels: relais sla and /metrics.
. "$(dirname "$0")/lib.sh"
export RELAIS_DEMO_BUILD_DIR="$RELAIS_BUILD_DIR" RELAIS_DEMO_RUN_DIR="$T/demo"
"$RELAIS_SOURCE_DIR/tools/demo" --keep >"$T/demo.log" 2>&1 || { cat "$T/demo.log"; fail "tools/demo --keep"; }
stop_demo() { "$RELAIS_SOURCE_DIR/tools/demo" --stop >/dev/null 2>&1 || true; }
trap 'rc=$?; stop_demo; (exit $rc); it_cleanup' EXIT
R="$T/demo"
CFG="$R/relais.yaml"
DB=$(sed -n 's/^ *journal *psql "\(.*\)"$/\1/p' "$T/demo.log")
ADMIN=$(cat "$R/state/admin.txt")
port_of() { sed -n "s/^ *$1 *http:\/\/127.0.0.1:\([0-9]*\).*/\1/p" "$T/demo.log" | head -1; }
W="http://127.0.0.1:$(port_of 'GRC (w.c.s.)')"
K="http://127.0.0.1:$(port_of 'work orders')"
O311="http://127.0.0.1:$(port_of 'Open311')"
SMS="http://127.0.0.1:$(port_of 'SMS')"
CCAS="http://127.0.0.1:$(port_of 'CCAS desk')"
for v in DB W K O311 SMS CCAS; do [ -n "${!v#http://127.0.0.1:}" ] || { cat "$T/demo.log"; fail "demo --keep does not print $v"; }; done
q() { sql "$DB" "$1"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
works_count() { curl -fsS "$K/_sim/interventions" | json 'len(d)'; }
sms_count() { curl -fsS "$1/_sim/messages" | json 'len(d)'; }

# docs/FLOW.md shows the demo's routes: they are the ones it runs
awk '/^## Routes of the demo/{f=1} f&&/^```yaml/{p=1;next} p&&/^```/{exit} p' "$RELAIS_SOURCE_DIR/docs/FLOW.md" >"$T/flow-routes.yaml"
sed -n '/^routes:/,$p' "$CFG" >"$T/demo-routes.yaml"
diff -u "$T/demo-routes.yaml" "$T/flow-routes.yaml" || fail "docs/FLOW.md's routes differ from tools/demo's"

# ---- the life cycle, as the demo played it
REQ=request/wcs-signalement-voirie-1
grep -q "work order INT-2026-000001: type VOI-03" "$T/demo.log" || fail "no work order of type VOI-03"
grep -q "cross-reference publik: signalement-voirie/1" "$T/demo.log" || fail "no GRC cross-reference"
grep -q "cross-reference worksite: INT-2026-000001" "$T/demo.log" || fail "no work-order cross-reference"
grep -q "SMS to 0612345678: Mairie de Villebrune : votre demande n° wcs-signalement-voirie-1 (Nids de poule) est enregistrée" "$T/demo.log" \
  || fail "no acknowledgement with the request number"
curl -fsS "$W/_sim/forms/signalement-voirie/1/history" >"$T/form1.json"
python3 - "$T/form1.json" <<'PY' || fail "the GRC form did not follow the work order: $(cat "$T/form1.json")"
import json, sys
h = json.load(open(sys.argv[1]))
assert h["status"] == "termine", h["status"]
comments = [e.get("comment", "") for e in h["evolution"]]
assert "Une intervention est planifiée le 27/11/2026." in comments, comments
assert any(c.startswith("L'intervention demandée a été réalisée le") for c in comments), comments
PY
grep -qE "Open311 wcs-signalement-voirie-1: closed, L'intervention demandée a été réalisée" "$T/demo.log" || fail "Open311 status did not follow"
grep -qE "closed after [0-9]+ working day\(s\), commitment 5: kept" "$T/demo.log" || fail "no delay against the commitment"
[ "$(q "SELECT count(*) FROM events WHERE type = 'fr.relais.grc.request.closed.v1' AND subject = '$REQ'")" = 1 ] || fail "not closed once"
pass "pothole: GRC form -> work order VOI-03 -> acknowledgement -> statuses back to the GRC, the citizen and Open311 -> closed within its 5-day commitment"

# the trace on the GRC form id: the whole story, in order, across the packages
"$RELAIS_BIN" trace -c "$CFG" signalement-voirie/1 >"$T/trace.txt"
python3 - "$T/trace.txt" <<'PY' || fail "trace of signalement-voirie/1 incomplete"
import re, sys
t = open(sys.argv[1]).read()
events = re.findall(r"^event \S+  (\S+)\n  source (\S+)", t, re.M)
types = [e[0] for e in events]
sources = {e[1] for e in events}
assert types[0] == "fr.relais.grc.request.created.v1", types
assert "fr.relais.technical.workorder.completed.v1" in types and types[-1] == "fr.relais.grc.request.closed.v1", types
assert {"grc-in", "works-in", "requests"} <= sources, sources
for dest in ("works-out", "grc-out", "citizen", "open311-status"):
    assert re.search(r"delivered +%s" % dest, t), dest
times = re.findall(r"^  (\d{4}-\d\d-\d\dT[\d:.]+Z)  received", t, re.M)
assert times == sorted(times), times
print("trace: %d events from %s" % (len(events), ", ".join(sorted(sources))))
PY
pass "relais trace signalement-voirie/1: the story in order, from the GRC, the work-order tool and the tracker, delivered to all four packages"

# ---- no echo: what Relais wrote into the GRC did not come back as events
[ "$(q "SELECT count(*) FROM events WHERE source = 'grc-in' AND type = 'fr.relais.grc.request.updated.v1'")" = 0 ] \
  || fail "Relais's own writes into the GRC came back as events"
echoes=$(curl -fsS "$ADMIN/metrics" | awk '/^relais_echoes_total\{connector="grc-in"\}/{print $2}')
[ "${echoes:-0}" -ge 4 ] || fail "echoes not counted ($echoes)"
pass "no echo: $echoes changes Relais wrote into the GRC seen again and skipped (relais_echoes_total)"

# ---- a client that retries: one request, one work order
post311() {
  curl -sS -o "$T/o311.json" -w '%{http_code}' "$O311/open311/v2/requests.json" --data-urlencode "api_key=demo-app-key" \
    --data-urlencode "jurisdiction_id=ville.example" --data-urlencode "service_code=$1" \
    --data-urlencode "lat=48.7301" --data-urlencode "long=2.2701" --data-urlencode "first_name=Alex" \
    --data-urlencode "last_name=DURAND" --data-urlencode "description=$2" \
    ${3:+--data-urlencode "attribute[DANGER]=$3"}
}
before=$(works_count)
case "$(post311 VOI-03 'Trou rue des Écoles' non)" in 200|201) ;; *) false ;; esac || fail "Open311 POST: $(cat "$T/o311.json")"
SR=$(json 'd[0]["service_request_id"]' <"$T/o311.json")
for i in 1 2; do          # the app times out and sends it again, twice
  case "$(post311 VOI-03 'Trou rue des Écoles' non)" in 200|201) ;; *) false ;; esac || fail "Open311 POST again: $(cat "$T/o311.json")"
  [ "$(json 'd[0]["service_request_id"]' <"$T/o311.json")" = "$SR" ] || fail "a retried POST got another request id"
done
wait_eq "one work order for the retried request" 20 $((before + 1)) works_count
sleep 2
[ "$(works_count)" = $((before + 1)) ] || fail "the retried submission created more than one work order"
[ "$(q "SELECT count(*) FROM events WHERE subject = 'request/o311-$SR' AND type = 'fr.relais.grc.request.created.v1'")" = 1 ] || fail "two requests"
pass "a submission sent three times (client retries) is one request ($SR) and one work order"

# ---- one destination down: the SMS gateway
curl -fsS -X POST "$SMS/_sim/fail" -d '{"status":503}' >/dev/null
sms_before=$(sms_count "$SMS")
before=$(works_count)
curl -fsS -X POST "$W/_sim/forms/signalement-voirie" -o "$T/form2.json" -d '{"fields": {"categorie": "eclairage",
  "description": "Lampadaire qui clignote", "localisation": {"lat": 48.73, "lon": 2.27}, "nom": "PETIT", "prenom": "Lou",
  "telephone": "06 98 76 54 32"}}'
F2=$(json 'd["id"]' <"$T/form2.json")
wait_eq "work order created although the SMS gateway is down" 20 $((before + 1)) works_count
wait_for "citizen retrying" 20 bash -c "'$RELAIS_BIN' trace -c '$CFG' signalement-voirie/$F2 | grep -qE 'retry_scheduled +citizen'"
"$RELAIS_BIN" trace -c "$CFG" "signalement-voirie/$F2" >"$T/trace2.txt"
grep -qE 'attempt +citizen attempt 1 -> 503' "$T/trace2.txt" || { cat "$T/trace2.txt"; fail "trace does not say why citizen is behind"; }
grep -qE 'delivered +works-out' "$T/trace2.txt" || fail "works-out not delivered"
[ "$(grep -cE 'retry_scheduled +works-out' "$T/trace2.txt")" = 0 ] || fail "works-out retried although it answered"
curl -fsS "$ADMIN/metrics" >"$T/m.txt"
grep -qE '^relais_retried_total\{connector="citizen"\} [1-9]' "$T/m.txt" || fail "metrics: citizen retries"
grep -qE '^relais_last_answer_status\{connector="citizen"\} 503' "$T/m.txt" || fail "metrics: citizen last status"
grep -qE '^relais_retried_total\{connector="works-out"\} 0' "$T/m.txt" || fail "metrics: works-out retried"
curl -fsS -X POST "$SMS/_sim/reset" >/dev/null
wait_for "acknowledgement sent once the gateway is back" 30 bash -c \
  "curl -fsS '$SMS/_sim/messages' | grep -q 'wcs-signalement-voirie-$F2'"
pass "SMS gateway down: the work order was created, the citizen's delivery retried alone (503 in the trace, relais_retried_total/relais_last_answer_status), sent when the gateway came back"

# ---- a category without a code: dead letter with the reason, fixed, reloaded, replayed
before=$(works_count)
case "$(post311 AUTRE 'Banc cassé au square')" in 200|201) ;; *) false ;; esac || fail "Open311 POST AUTRE: $(cat "$T/o311.json")"
SR3=$(json 'd[0]["service_request_id"]' <"$T/o311.json")
wait_for "dead letter for works-out" 20 bash -c "'$RELAIS_BIN' dlq list -c '$CFG' | grep -q works-out"
"$RELAIS_BIN" dlq list -c "$CFG" --json >"$T/dlq.json"
python3 - "$T/dlq.json" <<'PY' || fail "dead letter without value, table, file and line: $(cat "$T/dlq.json")"
import json, re, sys
d = [x for x in json.load(open(sys.argv[1])) if x["destination"] == "works-out"]
assert len(d) == 1, d
assert re.search(r"worksite-intervention\.yaml:\d+: data /type_code: value 'Autre demande' is not in table 'intervention_type'",
                 d[0]["last_detail"]), d[0]["last_detail"]
print(d[0]["last_detail"])
PY
[ "$(works_count)" = "$before" ] || fail "a work order was created for an unknown category"
sed -i 's/^      Espaces verts: ESV-01$/      Espaces verts: ESV-01\n      Autre demande: MOB-01/' "$R/mappings/worksite-intervention.yaml"
"$RELAIS_BIN" reload -c "$CFG" | grep 'reloaded' >/dev/null || fail "relais reload"
EV=$(python3 -c 'import json,sys; print([x for x in json.load(open(sys.argv[1])) if x["destination"] == "works-out"][0]["id"])' "$T/dlq.json")
"$RELAIS_BIN" replay -c "$CFG" "$EV" | grep 'replayed 1' >/dev/null || fail "replay"
wait_eq "work order after the fix" 20 $((before + 1)) works_count
curl -fsS "$K/_sim/interventions" | json '[i["intervention"]["type_code"] for i in d][-1]' | grep -qx MOB-01 || fail "not created as MOB-01"
pass "category 'Autre demande': dead-lettered naming value, table, file and line; table fixed, relais reload, relais replay: work order MOB-01, no restart"

# ---- two tenants: the CCAS's records never reach the town's packages
ville_sms=$(sms_count "$SMS"); works=$(works_count)
body='{"id":"CCAS-2026-0007","category":"proprete","description":"Logement insalubre signalé","submitted_at":"2026-11-26T09:30:00+01:00","channel":"desk","lat":48.73,"lon":2.27}'
code=$(curl -sS -o "$T/ccas.txt" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$body" "$CCAS/events")
[ "$code" = 401 ] || fail "the CCAS desk accepted an unsigned request ($code)"
t=$(date +%s)
nonce=$(openssl rand -hex 16)
sig=$(printf '%s' "$t.$nonce.$body" | openssl dgst -sha256 -hmac demo-ccas-secret -r | cut -d' ' -f1)
code=$(curl -sS -o "$T/ccas.txt" -w '%{http_code}' -H 'Content-Type: application/json' -H "X-Relais-Signature: t=$t,v2=$sig" \
  -H "X-Relais-Nonce: $nonce" --data-binary "$body" "$CCAS/events")
[ "$code" = 202 ] || fail "CCAS desk: $code $(cat "$T/ccas.txt")"
wait_eq "CCAS event routed" 20 1 q "SELECT count(*) FROM events e JOIN steps s ON s.event_id = e.id WHERE e.record_id = 'CCAS-2026-0007' AND s.step = 'routed'"
sleep 2
[ "$(q "SELECT tenant FROM events WHERE record_id = 'CCAS-2026-0007'")" = ccas ] || fail "CCAS event tenant"
[ "$(q "SELECT string_agg(destination, ',') FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.record_id = 'CCAS-2026-0007'")" = ccas-citizen ] \
  || fail "CCAS event routed to: $(q "SELECT string_agg(destination, ',') FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.record_id = 'CCAS-2026-0007'")"
[ "$(works_count)" = "$works" ] || fail "the CCAS's request reached the town's work-order tool"
[ "$(sms_count "$SMS")" = "$ville_sms" ] || fail "the town's SMS account was used for the CCAS"
pass "two tenants: the CCAS desk needs its own signature; its request went to the CCAS's notifier only, never to the town's packages"

# ---- a subject access request: everything about the citizen of the pothole
"$RELAIS_BIN" person -c "$CFG" camille.kermarrec@example.org >"$T/person.txt"
cat "$T/person.txt"
grep -q "^Events about camille.kermarrec@example.org: 1$" "$T/person.txt" || fail "relais person: events"
grep -qE "fr.relais.grc.request.created.v1 +grc-in +request/wcs-signalement-voirie-1" "$T/person.txt" || fail "relais person: the request"
for p in works-out citizen open311-status requests; do
  grep -qE "^  $p +1 event" "$T/person.txt" || fail "relais person: package $p"
done
"$RELAIS_BIN" person -c "$CFG" --json nobody@example.org | json 'len(d["events"])' | grep -qx 0 || fail "relais person: unknown"
pass "relais person: the citizen's email finds the request and the four packages that received it"

# ---- service levels
"$RELAIS_BIN" sla -c "$CFG" >"$T/sla.txt"
cat "$T/sla.txt"
grep -qE '^  ville +Nids de poule +[0-9]+ +0 +1 +1 100%' "$T/sla.txt" || fail "relais sla: potholes line"
curl -fsS "$ADMIN/metrics" | grep 'relais_sla_kept{tenant="ville",category="Nids de poule"} 1' >/dev/null || fail "metrics: relais_sla_kept"
pass "relais sla and /metrics: the pothole closed within its commitment, open requests per category"
stop_demo
