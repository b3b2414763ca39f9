#!/usr/bin/env bash
# Open311 GeoReport v2 both ways, with the real hub, PostgreSQL,
# relais-sim-http (a sink that shows the events) and relais-sim-open311:
#  - an unchanged Open311 client (python3 urllib, no Relais code) posts the
#    spec's example exactly as examples/post_request.http, then reads
#    requests/<id>.json and .xml; every JSON answer is checked against the
#    GeoReport JSON Schemas (python3 jsonschema, Draft 4), every XML answer
#    parsed (xmllint --noout);
#  - the same POST again: the same id and no second event; a bad api_key:
#    403 with the spec's error body, JSON and XML;
#  - a grc.request.updated delivered to open311-status changes GET's status
#    notes; a request born in the GRC is listed too;
#  - role client: every new request is posted to relais-sim-open311 (the
#    technical services), whose status change is polled back and closes the
#    request that GET shows;
#  - the connector's mapping tests (relais test connectors/open311/mappings).
. "$(dirname "$0")/lib.sh"
SIM_O311=$RELAIS_BUILD_DIR/relais-sim-open311
M="$RELAIS_SOURCE_DIR/connectors/open311/mappings"
python3 -c 'import jsonschema' 2>/dev/null || fail "python3 jsonschema is needed: apt-get install python3-jsonschema"
command -v xmllint >/dev/null || fail "xmllint is needed: apt-get install libxml2-utils"
FX="$RELAIS_SOURCE_DIR/tests/data/fixtures/open311"
for f in examples/requests.json schema/requests.json schema/request.json schema/services.json schema/service.json \
         schema/service-definition.json examples/post_request.http examples/error_403.json examples/error_403.xml; do
  [ -f "$FX/$f" ] || fail "fixture tests/data/fixtures/open311/$f is missing"
done

"$RELAIS_BIN" test "$M" >"$T/maptest.txt" || { cat "$T/maptest.txt"; fail "relais test connectors/open311/mappings"; }
pass "relais test connectors/open311/mappings: $(tail -1 "$T/maptest.txt")"

# the independent client: python3 standard library + jsonschema for checking
cat >"$T/client.py" <<'PY'
import json, sys, urllib.request, urllib.error, xml.etree.ElementTree as ET
from jsonschema import Draft4Validator

FX = sys.argv[1]
NAMES = ("request.json", "requests.json", "service.json", "services.json", "service-definition.json")
def schema(name):
    docs = {}
    for n in NAMES:
        with open(f"{FX}/schema/{n}") as f:
            docs[n] = json.load(f)
    try:        # jsonschema >= 4.18 (pip): the referencing library
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT4
        reg = Registry()
        for n, d in docs.items():
            reg = reg.with_resource(n, Resource.from_contents(d, default_specification=DRAFT4))
        return Draft4Validator(docs[name], registry=reg)
    except ImportError:   # Debian 12's python3-jsonschema 4.10: RefResolver with a store
        from jsonschema import RefResolver
        return Draft4Validator(docs[name], resolver=RefResolver("", docs[name], store=dict(docs)))

def fetch(url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()

cmd, args = sys.argv[2], sys.argv[3:]
if cmd == "post-example":            # HOST HTTPFILE OUTXML: the spec's request, byte for byte
    host, httpfile, out = args
    raw = open(httpfile, newline="").read()
    head, body = raw.split("\n\n", 1)
    lines = head.splitlines()
    method, path = lines[0].split()[:2]
    headers = dict(l.split(": ", 1) for l in lines[1:] if not l.lower().startswith("host:"))
    st, ct, ans = fetch(host + path, body.rstrip("\n").encode(), headers)
    assert method == "POST" and st == 200, (st, ans)
    assert ct == "text/xml; charset=utf-8", ct
    open(out, "wb").write(ans)
    root = ET.fromstring(ans)
    assert root.tag == "service_requests" and root[0].tag == "request", ans
    print(root[0].find("service_request_id").text)
elif cmd == "get-json":              # URL SCHEMA [FIELD of the first element]
    st, ct, ans = fetch(args[0])
    assert st == 200, (st, ans)
    assert ct == "application/json; charset=utf-8", ct
    doc = json.loads(ans)
    errs = sorted(schema(args[1]).iter_errors(doc), key=str)
    assert not errs, f"{args[0]} not valid against {args[1]}: {errs[0].message}"
    if len(args) > 2:
        v = doc[0].get(args[2]) if isinstance(doc, list) else doc.get(args[2])
        print("" if v is None else v)
elif cmd == "get-xml":               # URL OUTFILE
    st, ct, ans = fetch(args[0])
    assert st == 200, (st, ans)
    assert ct == "text/xml; charset=utf-8", ct
    open(args[1], "wb").write(ans)
elif cmd == "post-form":             # URL FORM -> "STATUS BODY"
    st, ct, ans = fetch(args[0], args[1].encode(), {"Content-Type": "application/x-www-form-urlencoded"})
    print(st, ans.decode())
elif cmd == "error-equals":          # URL FORM EXAMPLE.json: the spec's errors body
    st, ct, ans = fetch(args[0], args[1].encode(), {"Content-Type": "application/x-www-form-urlencoded"})
    assert st == 403 and ct == "application/json; charset=utf-8", (st, ct)
    assert json.loads(ans) == json.load(open(args[2])), ans
elif cmd == "invalid-file":          # FILE SCHEMA: the checker must refuse it
    errs = list(schema(args[1]).iter_errors(json.load(open(args[0]))))
    assert errs, f"{args[0]} found valid against {args[1]}"
elif cmd == "ids":                   # URL: the service_request_id values listed
    st, ct, ans = fetch(args[0])
    doc = json.loads(ans)
    errs = list(schema("requests.json").iter_errors(doc))
    assert st == 200 and not errs, (st, errs[:1])
    print(" ".join(r["service_request_id"] for r in doc))
PY
client() { python3 "$T/client.py" "$FX" "$@"; }

# the checker bites: the spec's own example with numeric ids is not valid (fixtures' README)
client invalid-file "$FX/examples/requests.json" requests.json || fail "the JSON Schema checker accepts what it must refuse"

DB=$(fresh_db open311)
start_sim events
"$SIM_O311" --listen "127.0.0.1:0" --api-key cle-ville --jurisdiction ville.example >"$T/sim-open311.log" 2>&1 &
PIDS+=($!)
SIMPORT=$(bound_port relais-sim-open311 "$T/sim-open311.log" 'listening on http://[^ ]*:([0-9]+)')
wait_for "relais-sim-open311" 10 curl -fsS "http://127.0.0.1:$SIMPORT/_sim/stats" -o /dev/null
SIMO="http://127.0.0.1:$SIMPORT"

# the town's server mapping, with the spec's example service 001 added to the list
python3 - "$M/server.yaml" "$T/server.yaml" <<'PY'
import sys
s = open(sys.argv[1]).read()
s = s.replace("      VOI-03: Nids de poule\n", '      "001": Cans left out 24x7\n      VOI-03: Nids de poule\n', 1)
open(sys.argv[2], "w").write(s)
PY
SRV=$(free_port); AGENT=$(free_port); DESK=$(free_port)
export O311_KEYS="xyz,cle-du-portail" O311_CLIENT_KEY="cle-ville"
cat >"$T/hub.yaml" <<YAML
hub:
  name: o311
  tenant: ville
  admin_listen: 127.0.0.1:0
  state_dir: $T/state
bus: { brokers: embedded, partitions: 3 }
journal: { conninfo: "$DB", batch_wait: 1ms }
delivery: { workers: 4, max_attempts: 20, backoff_initial: 100ms, backoff_max: 300ms, poll_interval: 100ms }
connectors:
  - { name: open311, type: open311, mode: source, package: open311, role: server, listen: "127.0.0.1:$SRV",
      path_prefix: /dev/v2, api_keys: "env:O311_KEYS", jurisdiction_id: city.gov, mapping: $T/server.yaml }
  - { name: open311-status, type: open311, mode: sink, package: open311, role: server, mapping: $T/server.yaml }
  - { name: agent, type: http, mode: source, listen: "127.0.0.1:$AGENT" }
  - { name: desk, type: http, mode: source, listen: "127.0.0.1:$DESK", mapping: $RELAIS_SOURCE_DIR/connectors/mappings/grc-form/request.yaml }
  - { name: events, type: http, mode: sink, url: "$SIM_URL_events/events", timeout: 2s }
  - { name: works-out, type: open311, mode: sink, package: works, role: client, endpoint: "$SIMO",
      api_key: "env:O311_CLIENT_KEY", jurisdiction_id: ville.example, mapping: $M/client.yaml }
  - { name: works-in, type: open311, mode: source, package: works, role: client, endpoint: "$SIMO",
      jurisdiction_id: ville.example, poll_interval: 300ms, mapping: $M/client.yaml }
routes:
  - { name: town-view, match: "fr.relais.grc.request.**", to: [open311-status, events] }
  - { name: technical, match: "fr.relais.grc.request.created.v1", to: [works-out] }
YAML
"$RELAIS_BIN" check -c "$T/hub.yaml" >/dev/null || fail "config does not check"
start_hub a "$T/hub.yaml"
BASE="http://127.0.0.1:$SRV/dev/v2"
wait_for "hub accepting" 30 bash -c "curl -fsS '$ADMIN/healthz' | grep -q ok"

# discovery, services, service definitions: JSON valid, XML parsed
curl -fsS "$BASE/discovery.json" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["endpoints"][0]["specification"]=="http://wiki.open311.org/GeoReport_v2", d'
client get-xml "$BASE/discovery.xml" "$T/discovery.xml"
client get-json "$BASE/services.json" services.json >/dev/null
client get-xml "$BASE/services.xml" "$T/services.xml"
client get-json "$BASE/services/VOI-03.json" service-definition.json >/dev/null
client get-xml "$BASE/services/VOI-03.xml" "$T/definition.xml"
xmllint --noout "$T/discovery.xml" "$T/services.xml" "$T/definition.xml" || fail "an XML answer does not parse"
[ "$(xmllint --xpath 'count(/services/service)' "$T/services.xml")" = 6 ] || fail "services.xml does not list 6 services"
pass "discovery, services and service definitions: JSON valid against the schemas, XML well formed"

# an existing Open311 client, unchanged: the spec's example request
ID=$(client post-example "http://127.0.0.1:$SRV" "$FX/examples/post_request.http" "$T/post.xml") || fail "the spec's example POST failed"
xmllint --noout "$T/post.xml" || fail "POST answer is not XML"
[ -n "$ID" ] || fail "no service_request_id"
[ "$(client get-json "$BASE/requests/$ID.json" requests.json service_code)" = 001 ] || fail "GET requests/$ID.json"
[ "$(client get-json "$BASE/requests/$ID.json" requests.json address)" = "1234 5th street" ] || fail "address not kept"
client get-xml "$BASE/requests/$ID.xml" "$T/request.xml"
xmllint --noout "$T/request.xml" || fail "requests/$ID.xml does not parse"
[ "$(xmllint --xpath 'string(/service_requests/request/service_request_id)' "$T/request.xml")" = "$ID" ] || fail "XML request id"
wait_eq "one event at the events sink" 20 1 sim_stat "$SIM_URL_events" distinct
[ "$(sql "$DB" "SELECT count(*) FROM events WHERE source='open311' AND subject='request/o311-$ID' AND type='fr.relais.grc.request.created.v1'")" = 1 ] \
  || fail "no created event for request/o311-$ID"
[ "$(sql "$DB" "SELECT body->'data'->>'category' FROM events WHERE subject='request/o311-$ID'")" = "Cans left out 24x7" ] || fail "category not mapped"
pass "the spec's example POST from an unchanged client: service request $ID, one event; requests/$ID.json valid, .xml parsed"

# the same POST again (a client retry, a double click): same id, no second event
ID2=$(client post-example "http://127.0.0.1:$SRV" "$FX/examples/post_request.http" "$T/post2.xml")
[ "$ID2" = "$ID" ] || fail "the second POST got $ID2, not $ID"
sleep 1
[ "$(sim_stat "$SIM_URL_events" raw)" = 1 ] || fail "the events sink got a second event"
[ "$(sql "$DB" "SELECT count(*) FROM events WHERE source='open311'")" = 1 ] || fail "a second event was journaled"
[ "$(client ids "$BASE/requests.json")" = "$ID" ] || fail "GET requests.json does not list exactly $ID"
pass "the same POST again: same id $ID, no second event; GET requests.json lists it once"

# bad api_key: 403 with the spec's error body
client error-equals "$BASE/requests.json" "api_key=wrong&service_code=001&lat=1&long=2" "$FX/examples/error_403.json" \
  || fail "403 JSON body is not the spec's"
code=$(curl -sS -o "$T/403.xml" -w '%{http_code}' --data 'api_key=wrong&service_code=001&lat=1&long=2' "$BASE/requests.xml")
[ "$code" = 403 ] || fail "bad api_key answered $code"
xmllint --noout "$T/403.xml" || fail "403 XML does not parse"
[ "$(xmllint --xpath 'string(/errors/error/description)' "$T/403.xml")" = \
  "$(xmllint --xpath 'normalize-space(/errors/error/description)' "$FX/examples/error_403.xml")" ] || fail "403 XML description"
[ "$(xmllint --xpath 'string(/errors/error/code)' "$T/403.xml")" = 403 ] || fail "403 XML code"
pass "bad api_key: 403 with the spec's errors body (JSON identical, XML same code and description)"

# the GRC's agent comments publicly: delivered to open311-status, GET shows it
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
out=$(curl -sS -o /dev/null -w '%{http_code}' -H 'Content-Type: application/cloudevents+json' --data-binary \
  "{\"specversion\":\"1.0\",\"id\":\"agent-1\",\"source\":\"/grc\",\"type\":\"fr.relais.grc.request.updated.v1\",\"subject\":\"request/o311-$ID\",\"data\":{\"status\":\"in_progress\",\"updated_at\":\"$NOW\",\"comment\":\"Équipe envoyée\",\"comment_visibility\":\"public\",\"service\":{\"label\":\"Voirie\"}}}" \
  "http://127.0.0.1:$AGENT/events")
[ "$out" = 202 ] || fail "agent event answered $out"
wait_eq "status_notes" 20 "Équipe envoyée" client get-json "$BASE/requests/$ID.json" requests.json status_notes
[ "$(client get-json "$BASE/requests/$ID.json" requests.json agency_responsible)" = Voirie ] || fail "agency_responsible"
[ "$(client get-json "$BASE/requests/$ID.json" requests.json status)" = open ] || fail "status"
pass "grc.request.updated with a public comment -> open311-status -> GET shows status_notes and agency"

# role client: the request went to the technical services (relais-sim-open311)
wait_eq "posted to the technical services" 20 1 bash -c "curl -fsS '$SIMO/_sim/requests' | python3 -c '
import json,sys; print(sum(1 for r in json.load(sys.stdin) if r[\"posted\"].get(\"attribute\",{}).get(\"relais_subject\")==\"request/o311-$ID\"))'"
WID=$(curl -fsS "$SIMO/_sim/requests" | python3 -c "
import json,sys
r=[r for r in json.load(sys.stdin) if r['posted'].get('attribute',{}).get('relais_subject')=='request/o311-$ID'][0]
assert r['posted']['service_code']=='AUTRE' and r['posted']['jurisdiction_id']=='ville.example', r
assert r['idempotency_key'], r
print(r['service_request_id'])")
wait_eq "cross-reference at works" 20 "$WID" sql "$DB" "SELECT local_id FROM xref WHERE package='works' AND canonical_id='request/o311-$ID'"
# the technical services close it: polled back, the Open311 request follows
curl -fsS -H 'Content-Type: application/json' -d '{"status":"closed","status_notes":"Trou rebouché"}' "$SIMO/_sim/requests/$WID" >/dev/null
wait_eq "closed at the Open311 server" 20 closed client get-json "$BASE/requests/$ID.json" requests.json status
[ "$(client get-json "$BASE/requests/$ID.json" requests.json status_notes)" = "Trou rebouché" ] || fail "closing notes"
[ "$(sql "$DB" "SELECT count(*) FROM events WHERE source='works-in' AND type='fr.relais.grc.request.closed.v1' AND subject='request/o311-$ID'")" = 1 ] \
  || fail "no closed event from the poll"
sleep 1
[ "$(sql "$DB" "SELECT count(*) FROM events WHERE source='works-in'")" = 1 ] || fail "repeated polls made more events"
pass "role client: posted to relais-sim-open311 as $WID (xref), its closing polled back once; GET shows closed"

# a request born in the GRC: listed by the Open311 server, posted to the technical services
out=$(post_json "http://127.0.0.1:$DESK/events" '{"id":"GRC-7","category":"voirie","description":"Nid de poule rue Blanche","submitted_at":"2026-11-25T10:00:00+01:00","lat":48.73,"lon":2.27}')
[ "${out%% *}" = 202 ] || fail "desk answered $out"
wait_eq "GRC-7 listed" 20 "GRC-7" client get-json "$BASE/requests/GRC-7.json" requests.json service_request_id
[ "$(client get-json "$BASE/requests/GRC-7.json" requests.json service_code)" = VOI-03 ] || fail "GRC-7 service_code"
client ids "$BASE/requests.json?status=open" | grep -qw GRC-7 || fail "GRC-7 not in the open requests"
client ids "$BASE/requests.json?status=closed" | grep -qw "$ID" || fail "$ID not in the closed requests"
wait_eq "GRC-7 posted" 20 VOI-03 bash -c "curl -fsS '$SIMO/_sim/requests' | python3 -c '
import json,sys; print([r[\"posted\"][\"service_code\"] for r in json.load(sys.stdin) if r[\"posted\"].get(\"attribute\",{}).get(\"relais_subject\")==\"request/GRC-7\"][0])'"
[ "$(sql "$DB" "SELECT last_detail FROM deliveries WHERE destination='open311-status' AND event_id=(SELECT id FROM events WHERE subject='request/o311-$ID' AND source='open311')")" != "" ] || fail "no detail"
sql "$DB" "SELECT last_detail FROM deliveries WHERE destination='open311-status' AND event_id=(SELECT id FROM events WHERE subject='request/o311-$ID' AND source='open311')" | grep -q echo \
  || fail "the server's own creation was not recognised as an echo"
[ "$(client ids "$BASE/requests.json" | wc -w)" = 2 ] || fail "GET requests.json does not list the 2 requests of the town"
pass "a GRC-born request is listed (service_code VOI-03) and posted to the technical services; the server's own creation is an echo"

stop_hub "$HUB_PID"
