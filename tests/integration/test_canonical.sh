#!/usr/bin/env bash
# Canonical events end to end: a GRC form record (JSON) and a Cityweb
# certificate request (XML) are mapped by their instances' mappings, checked
# against the canonical schemas, and delivered mapped again: Open311 JSON to
# the technical services and Cityweb XML (valid against the published XSD) to
# the civil registry. Mapping and schema refusals are answered 422 with the
# file, line, field or JSON path, and journaled as rejected.
. "$(dirname "$0")/lib.sh"
M="$RELAIS_SOURCE_DIR/connectors/mappings"
XSD="$RELAIS_SOURCE_DIR/tests/data/fixtures/cityweb/etatcivil.xsd"

# the shipped mappings' own tests
"$RELAIS_BIN" test "$RELAIS_SOURCE_DIR/connectors/mappings" >"$T/maptest.txt" || { cat "$T/maptest.txt"; fail "relais test connectors/mappings"; }
grep -q ", 0 failed" "$T/maptest.txt" || fail "mapping tests summary"
pass "relais test connectors/mappings: $(tail -1 "$T/maptest.txt")"

DB=$(fresh_db canonical)
mkdir -p "$T/ecdrop"
start_sim worksite
start_sim registry
SRC=$(free_port); EC=$(free_port)
# a sink whose vendor needs a postcode: requests without one cannot be rendered
cat >"$T/strict.yaml" <<'YAML'
format: json
outbound:
  - data:
      - to: /cp
        from: /data/location/address/postcode
        required: true
YAML
cat >"$T/hub.yaml" <<YAML
hub:
  name: canon
  admin_listen: 127.0.0.1:0
  state_dir: $T/state
bus: { brokers: embedded, partitions: 3 }
journal: { conninfo: "$DB", batch_wait: 1ms }
delivery: { workers: 4, max_attempts: 3, backoff_initial: 100ms, backoff_max: 300ms, poll_interval: 100ms }
connectors:
  - { name: desk, type: http, mode: source, listen: "127.0.0.1:$SRC", mapping: $M/grc-form/request.yaml }
  - { name: portal, type: http, mode: source, listen: "127.0.0.1:$EC", mapping: $M/cityweb/demande.yaml }
  - { name: ecdrop, type: file, mode: source, dir: "$T/ecdrop", format: xml, mapping: $M/cityweb/demande.yaml }
  - { name: worksite, type: http, mode: sink, url: "$SIM_URL_worksite/events", mapping: $M/open311/request.yaml }
  - { name: registry, type: http, mode: sink, url: "$SIM_URL_registry/events", mapping: $M/cityweb/demande.yaml }
  - { name: strict, type: http, mode: sink, url: "$SIM_URL_registry/strict", mapping: $T/strict.yaml }
routes:
  - { name: requests, match: "fr.relais.grc.request.**", to: [worksite, strict] }
  - { name: certificates, match: "fr.relais.civil.certificate.requested.*", to: [registry] }
YAML
"$RELAIS_BIN" check -c "$T/hub.yaml" || fail "config with mappings does not check"
start_hub a "$T/hub.yaml"

out=$(post_json "http://127.0.0.1:$SRC/events" '{"id":"GRC-7","category":"voirie","description":"Nid de poule","submitted_at":"2026-11-25T10:00:00+01:00","lat":48.73,"lon":2.27}')
[ "${out%% *}" = 202 ] || fail "valid GRC record answered $out"
wait_eq "worksite distinct" 20 1 sim_stat "$SIM_URL_worksite" distinct
curl -fsS "$SIM_URL_worksite/_sim/events" | python3 -c '
import json,sys
e=json.load(sys.stdin)[0]["event"]
assert e=={"service_code":"VOI-03","description":"Nid de poule","lat":48.73,"long":2.27,"attribute":{"relais_subject":"request/GRC-7"}}, e
' || fail "worksite did not receive the Open311 request"
pass "GRC form record -> fr.relais.grc.request.created.v1 -> Open311 service request VOI-03"
# the same event cannot be rendered for 'strict': dead-lettered at once, with the reason; worksite unaffected
wait_eq "strict dead-lettered" 20 dead sql "$DB" "SELECT d.status FROM deliveries d JOIN events e ON e.id=d.event_id WHERE e.record_id='GRC-7' AND d.destination='strict'"
sql "$DB" "SELECT last_detail FROM deliveries WHERE destination='strict'" | grep -q 'strict.yaml:[0-9]*: data /cp: required value is missing' \
  || fail "dead letter without the mapping reason: $(sql "$DB" "SELECT last_detail FROM deliveries WHERE destination='strict'")"
[ "$(sql "$DB" "SELECT attempts FROM deliveries WHERE destination='strict'")" = 1 ] || fail "a mapping refusal was retried"
[ "$(sim_stat "$SIM_URL_registry" raw)" = 0 ] || fail "the refused event reached the sink"
pass "an event a sink's mapping refuses is dead-lettered at once with file:line and field; the other sink got it"

# a rule of the mapping fails: 422 naming the mapping file, line and field
out=$(post_json "http://127.0.0.1:$SRC/events" '{"id":"GRC-8","category":"voirie"}')
[ "${out%% *}" = 422 ] || fail "record without time answered $out"
echo "$out" | grep -q 'request.yaml:[0-9]*: data /opened_at: required value is missing' || fail "mapping error not named: $out"
# the canonical schema refuses what the mapping made: 422 with the JSON path
out=$(post_json "http://127.0.0.1:$SRC/events" '{"id":"GRC-9","category":"voirie","submitted_at":"2026-11-25T10:00:00+01:00","postcode":"913","city":"Massy"}')
[ "${out%% *}" = 422 ] || fail "invalid canonical data answered $out"
echo "$out" | grep -q '\$.data.location.address.postcode' || fail "schema fault path missing: $out"
wait_eq "refusals journaled" 10 2 sql "$DB" "SELECT count(*) FROM rejections WHERE record_id IN ('GRC-8','GRC-9')"
[ "$(sql "$DB" "SELECT count(*) FROM rejections WHERE record_id='GRC-9' AND location='schema' AND reason LIKE '%\$.data.location.address.postcode%'")" = 1 ] || fail "schema refusal journaled without its path"
[ "$(sql "$DB" "SELECT location FROM rejections WHERE record_id='GRC-8'")" = mapping ] || fail "mapping refusal not journaled under its record id"
pass "mapping and schema refusals answered 422 with file:line/field and JSON path, journaled as rejected under their record ids"

# XML in (safe parser + XPath mapping), XML out (valid against the Cityweb XSD)
code=$(curl -sS -o "$T/resp" -w '%{http_code}' -H 'Content-Type: application/xml' \
  --data-binary @"$M/cityweb/demande_naissance.xml" "http://127.0.0.1:$EC/events")
[ "$code" = 202 ] || fail "cityweb XML answered $code $(cat "$T/resp")"
wait_eq "registry distinct" 20 1 sim_stat "$SIM_URL_registry" distinct
curl -fsS "$SIM_URL_registry/_sim/events" | python3 -c 'import json,sys; sys.stdout.write(json.load(sys.stdin)[0]["raw"])' >"$T/out.xml"
xmllint --noout --nonet --schema "$XSD" "$T/out.xml" || fail "the registry's XML is not valid against etatcivil.xsd"
grep -q '<natureDocument>CPI</natureDocument>' "$T/out.xml" || fail "document kind not mapped back"
pass "Cityweb XML -> fr.relais.civil.certificate.requested.v1 -> Cityweb XML valid against etatcivil.xsd"

# the same format dropped as files (format: xml): one document per file
sed 's/RELAIS-2024-000042/RELAIS-2024-000043/' "$M/cityweb/demande_naissance.xml" >"$T/ecdrop/.d43.tmp"
mv "$T/ecdrop/.d43.tmp" "$T/ecdrop/d43.xml"
printf '<demandeEtatCivil><identifiant>BAD</identifiant>' >"$T/ecdrop/.bad.tmp"; mv "$T/ecdrop/.bad.tmp" "$T/ecdrop/bad.xml"
wait_eq "registry distinct" 20 2 sim_stat "$SIM_URL_registry" distinct
wait_eq "dropped files archived" 20 2 bash -c "ls '$T/ecdrop/archive' | wc -l"
wait_eq "malformed XML file journaled as rejected" 10 1 sql "$DB" "SELECT count(*) FROM rejections WHERE record_id='bad.xml' AND reason LIKE 'bad.xml:1:%'"
pass "XML drop folder: a document per file mapped and delivered; a malformed one rejected with its line"

# a DOCTYPE (XXE attempt) is refused before any mapping; the file never leaks
code=$(curl -sS -o "$T/resp" -w '%{http_code}' -H 'Content-Type: application/xml' --data-binary \
  '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><demandeEtatCivil><identifiant>&x;</identifiant></demandeEtatCivil>' \
  "http://127.0.0.1:$EC/events")
[ "$code" = 422 ] || fail "XXE answered $code"
grep -q DOCTYPE "$T/resp" || fail "XXE refusal does not say why: $(cat "$T/resp")"
! grep -q 'root:' "$T/resp" || fail "XXE leaked a file"
pass "XML with a DOCTYPE refused (422), nothing read"

# relais check names a broken mapping's own file and line
sed 's/transform: \[trim, {table: document}\]/transform: [trim, {table: documents}]/' "$M/cityweb/demande.yaml" >"$T/bad.yaml"
sed "s|$M/cityweb/demande.yaml }|$T/bad.yaml }|" "$T/hub.yaml" >"$T/hub-bad.yaml"
if "$RELAIS_BIN" check -c "$T/hub-bad.yaml" >"$T/check.txt" 2>&1; then fail "check accepted a broken mapping"; fi
grep -q "bad.yaml:[0-9]*: no table named 'documents'" "$T/check.txt" || { cat "$T/check.txt"; fail "check does not name the mapping's line"; }
pass "relais check reports the mapping file's line"
