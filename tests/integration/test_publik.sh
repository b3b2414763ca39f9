#!/usr/bin/env bash
# The publik connector with the real hub, PostgreSQL, the embedded broker,
# relais-sim-publik (the w.c.s. simulator) and relais-sim-http (an archive
# sink that receives every request event):
#  - the shipped mapping's own tests (relais test connectors/publik/mappings);
#  - a form a citizen fills is one fr.relais.grc.request.created.v1, although
#    both the webhook w.c.s. calls and the polling see it; the form's
#    cross-reference is recorded;
#  - an agent's status change is one fr.relais.grc.request.updated.v1, and is
#    not written back into the form it came from;
#  - a grc.request.updated delivered to grc-out moves the form (status,
#    message for the citizen, author = Relais's API access) and w.c.s.'s
#    call back is an echo, not a new event (relais_echoes_total);
#  - a request born elsewhere (Open311) becomes a form, cross-referenced, and
#    is not read back as a new request;
#  - a category without a code is rejected with the table's name;
#  - bad, stale and unsigned webhook calls: 403 with w.c.s.'s texts and
#    nothing journaled;
#  - every {err, data} envelope seen (Relais's answers, the simulator's) is
#    valid against the fixtures' envelope.schema.json.
. "$(dirname "$0")/lib.sh"
SIM_PUBLIK=$RELAIS_BUILD_DIR/relais-sim-publik
M=$RELAIS_SOURCE_DIR/connectors/publik/mappings
SCHEMA=$RELAIS_SOURCE_DIR/connectors/publik/fixtures/envelope.schema.json
[ -x "$SIM_PUBLIK" ] || fail "$SIM_PUBLIK not built"

"$RELAIS_BIN" test "$M" >"$T/maptest.txt" || { cat "$T/maptest.txt"; fail "relais test connectors/publik/mappings"; }
grep -q ", 0 failed" "$T/maptest.txt" || fail "mapping tests summary"
pass "relais test connectors/publik/mappings: $(tail -1 "$T/maptest.txt")"

export PUBLIK_KEY=k-relais-4c1d PUBLIK_WHKEY=k-webhook-9e2f
WH=$(free_port)
"$SIM_PUBLIK" --listen "127.0.0.1:0" --state "$T/wcs-state.json" --key "relais=$PUBLIK_KEY" \
  --webhook "http://127.0.0.1:$WH/publik/webhook" --webhook-key "wcs.example.org=$PUBLIK_WHKEY" >"$T/sim-publik.log" 2>&1 &
SIMPID=$!
PIDS+=($SIMPID)
WPORT=$(bound_port relais-sim-publik "$T/sim-publik.log" 'listening on http://[^ ]*:([0-9]+)')
WCS=http://127.0.0.1:$WPORT
wait_for "relais-sim-publik" 10 curl -fsS "$WCS/_sim/stats" -o /dev/null
start_sim archive
SRC=$(free_port)

# sign URLs the way the w.c.s. signer does (Python, independent of the C code)
cat >"$T/wcs.py" <<'PY'
import base64, datetime, hashlib, hmac, json, random, sys, urllib.parse
def sign(url, key, orig, delta=0, nonce=None, algo='sha256'):
    p = urllib.parse.urlparse(url)
    q = (p.query + '&' if p.query else '') + 'orig=' + urllib.parse.quote(orig)
    ts = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=delta)
    q += '&' + urllib.parse.urlencode((('algo', algo), ('timestamp', ts.strftime('%Y-%m-%dT%H:%M:%SZ')),
                                       ('nonce', nonce or hex(random.getrandbits(128))[2:])))
    sig = base64.b64encode(hmac.new(key.encode(), q.encode(), getattr(hashlib, algo)).digest())
    return urllib.parse.urlunparse(p[:4] + (q + '&signature=' + urllib.parse.quote(sig),) + p[5:])
def envelope_ok(doc):
    import jsonschema
    schema = json.load(open(sys.argv[2]))
    jsonschema.Draft7Validator(schema).validate(doc)
if __name__ == '__main__':
    if sys.argv[1] == 'sign':
        print(sign(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]) if len(sys.argv) > 5 else 0))
    elif sys.argv[1] == 'envelope':     # envelope SCHEMA < json (one document, or a list of them with --each)
        docs = json.load(sys.stdin)
        for d in (docs if len(sys.argv) > 3 and sys.argv[3] == '--each' else [docs]):
            envelope_ok(d)
PY
envelope_ok() { python3 "$T/wcs.py" envelope "$SCHEMA" "$@"; }
signed() { python3 "$T/wcs.py" sign "$@"; }

# the option table the README documents is the one the connector has
"$RELAIS_BIN" connectors describe >"$T/describe.txt"
python3 - "$RELAIS_SOURCE_DIR/connectors/publik/README.md" "$T/describe.txt" <<'PY' || fail "README option table and 'relais connectors describe' differ"
import re, sys
readme = open(sys.argv[1]).read().split("## Configuration", 1)[1].split("### On the w.c.s. side", 1)[0]
documented = re.findall(r"^\| `([a-z_]+)` \|", readme, re.M)
desc = open(sys.argv[2]).read().split("\npublik - ", 1)[1]
block = re.split(r"\n[a-z0-9_-]+ - ", desc, 1)[0]
actual = re.findall(r"^    ([a-z_]+) ", block, re.M)
assert documented == actual, (documented, actual)
PY
pass "README's option table is the connector's ($(grep -c '' "$T/describe.txt") lines of relais connectors describe)"

DB=$(fresh_db publik)
cat >"$T/hub.yaml" <<YAML
hub:
  name: publik
  tenant: ville
  admin_listen: 127.0.0.1:0
  state_dir: $T/state
bus: { brokers: embedded, partitions: 3 }
journal: { conninfo: "$DB", batch_wait: 1ms }
delivery: { workers: 4, max_attempts: 3, backoff_initial: 100ms, backoff_max: 300ms, poll_interval: 100ms }
connectors:
  - name: grc-in
    type: publik
    mode: source
    package: publik
    mapping: $M/request.yaml
    url: $WCS
    orig: relais
    key: env:PUBLIK_KEY
    formdefs: [signalement-voirie, demande-proprete]
    poll_interval: 1s
    listen: 127.0.0.1:$WH
    webhook_orig: wcs.example.org
    webhook_key: env:PUBLIK_WHKEY
  - name: grc-out
    type: publik
    mode: sink
    package: publik
    mapping: $M/request.yaml
    url: $WCS
    orig: relais
    key: env:PUBLIK_KEY
    formdefs: [signalement-voirie]
    hook: relais-update
    timeout: 3s
  - { name: desk, type: http, mode: source, listen: "127.0.0.1:$SRC" }
  - { name: archive, type: http, mode: sink, url: "$SIM_URL_archive/events", timeout: 2s }
routes:
  - { name: archive, match: "fr.relais.grc.request.**", to: [archive] }
  - { name: answers, match: ["fr.relais.grc.request.updated.*", "fr.relais.grc.request.closed.*"], to: [grc-out] }
  - name: new-requests
    match: "fr.relais.grc.request.created.*"
    where: [ { field: source, not_equals: /relais/ville/grc-in } ]
    to: [grc-out]
YAML
"$RELAIS_BIN" check -c "$T/hub.yaml" || fail "relais check refuses the publik configuration"
start_hub a "$T/hub.yaml"
ev_count() { sql "$DB" "SELECT count(*) FROM events WHERE source='grc-in' ${1:+AND $1}"; }
metric() { curl -fsS "$ADMIN/metrics" | sed -n "s/^$1{connector=\"$2\"} //p"; }
# post_event JSON: a structured CloudEvent to the desk source -> "CODE BODY"
post_event() {
  curl -sS -o "$T/resp" -w '%{http_code}' -H 'Content-Type: application/cloudevents+json' --data-binary "$1" \
    "http://127.0.0.1:$SRC/events"
  echo -n " "; cat "$T/resp"
}
sim_publik() { curl -fsS "$WCS/_sim/stats" | python3 -c "import json,sys; print(json.load(sys.stdin).get('$1', 0))"; }
# above WHAT N CMD...: CMD prints a number greater than N (re-evaluated by wait_for)
above() { local n; n=$("${@:2}"); [ "${n:-0}" -gt "$1" ]; }

# ---- 1. a citizen reports a pothole: one created event, seen by webhook and polling
cat >"$T/pothole.json" <<'JSON'
{"fields": {"categorie": "nid-de-poule", "description": "Trou profond devant le 12 rue de la Mairie",
            "localisation": {"lat": 48.7309, "lon": 2.2713}, "nom": "KERMARREC", "prenom": "Camille",
            "email": "camille@example.org", "telephone": "06 12 34 56 78",
            "photo": {"filename": "trou.jpg", "content_type": "image/jpeg", "content": "/9j/4AAQSkZJRg=="}},
 "user": {"name": "Camille Kermarrec", "email": "camille@example.org"}}
JSON
curl -fsS -X POST "$WCS/_sim/forms/signalement-voirie" --data-binary @"$T/pothole.json" -o "$T/form1.json"
F1=$(python3 -c 'import json; print(json.load(open("'"$T/form1.json"'"))["id"])')
wait_eq "created event" 20 1 ev_count "type='fr.relais.grc.request.created.v1'"
LISTS=$(sim_publik lists)
wait_for "a poll after the webhook" 10 above "$((LISTS + 1))" sim_publik lists
wait_eq "webhook answered" 10 1 sim_publik webhook_ok
sleep 1.2
[ "$(ev_count)" = 1 ] || fail "the form became $(ev_count) events"
DUPS=$(metric relais_duplicates_total grc-in)
[ "${DUPS:-0}" -ge 1 ] || fail "polling and webhook did not both submit the form (duplicates: ${DUPS:-none})"
[ "$(sql "$DB" "SELECT subject || ' ' || record_id FROM events WHERE source='grc-in'")" = \
  "request/wcs-signalement-voirie-$F1 signalement-voirie/$F1/created" ] || fail "subject or record id"
sql "$DB" "SELECT body->'data' FROM events WHERE source='grc-in'" | python3 -c '
import json,sys
d=json.load(sys.stdin)
assert d["category"]=="Nids de poule" and d["category_code"]=="VOIRIE-NDP", d
assert d["status"]=="new" and d["location"]["point"]=={"lat":48.7309,"lon":2.2713}, d
assert d["requester"]["contact"]=={"email":"camille@example.org","mobile":"0612345678"}, d
assert d["attachments"][0]["filename"]=="trou.jpg" and "content" not in d["attachments"][0], d
' || fail "canonical data of the form"
[ "$(sql "$DB" "SELECT local_id FROM xref WHERE package='publik' AND canonical_id='request/wcs-signalement-voirie-$F1'")" = \
  "signalement-voirie/$F1" ] || fail "cross-reference of the form"
wait_eq "archive got it" 20 1 sim_stat "$SIM_URL_archive" distinct
curl -fsS "$WCS/_sim/webhooks" | python3 -c 'import json,sys; print(json.dumps([c["answer"] for c in json.load(sys.stdin)]))' \
  | envelope_ok --each || fail "Relais's webhook answers are not valid envelopes"
pass "a citizen's form is one grc.request.created (webhook and polling both saw it: $DUPS duplicate(s)), cross-referenced"

# ---- 2. an agent's status change: one updated event, not written back into the form
curl -fsS -X POST "$WCS/_sim/forms/signalement-voirie/$F1/status" \
  -d '{"status": "planifiee", "comment": "Intervention prévue jeudi matin", "agent": "Agent Voirie"}' -o /dev/null
wait_eq "updated event" 20 1 ev_count "type='fr.relais.grc.request.updated.v1'"
[ "$(sql "$DB" "SELECT record_id FROM events WHERE source='grc-in' AND type LIKE '%updated%'")" = "signalement-voirie/$F1/1" ] \
  || fail "record id of the status change"
[ "$(sql "$DB" "SELECT (body->'data'->>'status') || '|' || (body->'data'->>'comment') FROM events WHERE source='grc-in' AND type LIKE '%updated%'")" = \
  "waiting|Intervention prévue jeudi matin" ] || fail "updated data"
wait_eq "grc-out delivered it" 20 delivered sql "$DB" \
  "SELECT d.status FROM deliveries d JOIN events e ON e.id=d.event_id WHERE e.record_id='signalement-voirie/$F1/1' AND d.destination='grc-out'"
sql "$DB" "SELECT last_detail FROM deliveries d JOIN events e ON e.id=d.event_id WHERE e.record_id='signalement-voirie/$F1/1' AND d.destination='grc-out'" \
  | grep -q "came from this form" || fail "the status change was written back into its own form"
[ "$(sim_publik hooks)" = 0 ] || fail "a hook was fired for a change read from the form"
sleep 1.2
[ "$(ev_count "type='fr.relais.grc.request.updated.v1'")" = 1 ] || fail "the status change became several events"
pass "an agent's status change is one grc.request.updated (waiting), not written back into its form"

# ---- 3. an update from elsewhere moves the form; w.c.s.'s call back is an echo
ECHOES0=$(metric relais_echoes_total grc-in)
WOK0=$(sim_publik webhook_ok)
out=$(post_event '{"specversion":"1.0","id":"wo-77-progress","source":"/worksite","type":"fr.relais.grc.request.updated.v1","subject":"request/wcs-signalement-voirie-'"$F1"'","data":{"status":"in_progress","updated_at":"2026-03-06T08:30:12+01:00","comment":"Notre équipe intervient ce matin.","comment_visibility":"public"}}')
[ "${out%% *}" = 202 ] || fail "desk refused the update: $out"
wait_eq "form moved" 20 en-cours bash -c "curl -fsS '$WCS/_sim/forms/signalement-voirie/$F1/history' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"status\"])'"
curl -fsS "$WCS/_sim/forms/signalement-voirie/$F1/history" | python3 -c '
import json,sys
h=json.load(sys.stdin); e=h["evolution"][-1]
assert e["comment"]=="Notre équipe intervient ce matin." and e["who"]["name"]=="relais", e
assert h["workflow_data"]["relais-update"]["status"]=="in_progress", h
' || fail "the form did not get the status and the citizen's message from Relais"
wait_for "the webhook call back" 10 above "$WOK0" sim_publik webhook_ok
wait_for "the echo counted" 10 above "${ECHOES0:-0}" metric relais_echoes_total grc-in
sleep 1.2     # and a poll
[ "$(ev_count "type='fr.relais.grc.request.updated.v1'")" = 1 ] || fail "Relais's own change came back as an event"
[ "$(ev_count "record_id='signalement-voirie/$F1/2'")" = 0 ] || fail "the echo was journaled"
pass "grc.request.updated to grc-out moves the form (en-cours, message, who=relais); the call back is an echo (relais_echoes_total $(metric relais_echoes_total grc-in))"

# ---- 4. a request born in Open311 becomes a form, and is not read back as new
out=$(post_event '{"specversion":"1.0","id":"o311-5","source":"/open311","type":"fr.relais.grc.request.created.v1","subject":"request/o311-5","data":{"channel":"web","category":"Éclairage public","description":"Lampadaire éteint devant l école","status":"new","opened_at":"2026-03-05T21:00:00+01:00","location":{"point":{"lat":48.73,"lon":2.27}}}}')
[ "${out%% *}" = 202 ] || fail "desk refused the request: $out"
wait_for "form of request/o311-5" 20 above 0 sql "$DB" "SELECT count(*) FROM xref WHERE package='publik' AND canonical_id='request/o311-5'"
L5=$(sql "$DB" "SELECT local_id FROM xref WHERE package='publik' AND canonical_id='request/o311-5'")
curl -fsS "$WCS/_sim/forms/$L5" | python3 -c '
import json,sys
f=json.load(sys.stdin)
assert f["fields"]["categorie_raw"]=="eclairage", f["fields"]
assert f["evolution"][0]["who"]["name"]=="relais", f["evolution"]
' || fail "the form made for request/o311-5"
sleep 2.2
[ "$(ev_count "type='fr.relais.grc.request.created.v1'")" = 1 ] || fail "the form Relais created came back as a new request"
pass "request/o311-5 became form $L5 (cross-referenced); read back, it is an echo"

# ---- 5. a category without code: rejected with the table's name
curl -fsS -X POST "$WCS/_sim/forms/signalement-voirie" -d '{"fields": {"categorie": "tags", "description": "Tag sur le mur"}}' -o "$T/form3.json"
F3=$(python3 -c 'import json; print(json.load(open("'"$T/form3.json"'"))["id"])')
# refused when the webhook brings it and when polling reads it, then no more
wait_for "rejections" 20 above 1 sql "$DB" "SELECT count(*) FROM rejections WHERE source='grc-in' AND record_id='signalement-voirie/$F3/created'"
sleep 1.2
[ "$(sql "$DB" "SELECT count(*) FROM rejections WHERE record_id='signalement-voirie/$F3/created'")" = 2 ] \
  || fail "the refused form was submitted again and again"
sql "$DB" "SELECT reason FROM rejections WHERE record_id='signalement-voirie/$F3/created' LIMIT 1" \
  | grep -q "request.yaml:[0-9]*: data /category: value 'tags' is not in table 'category'" || fail "rejection reason"
[ "$(ev_count "record_id='signalement-voirie/$F3/created'")" = 0 ] || fail "the form without code became an event"
pass "a category without code is rejected, naming the mapping, line and table"

# ---- 6. webhook calls with bad signatures: 403, nothing journaled
curl -fsS "$WCS/_sim/forms/signalement-voirie/$F1" -o "$T/export.json"
EVENTS0=$(sql "$DB" "SELECT count(*) FROM events")
REJ0=$(sql "$DB" "SELECT count(*) FROM rejections")
try_webhook() {   # URL -> "CODE BODY"
  curl -sS -o "$T/wh.json" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$T/export.json" "$1"
  echo -n " "; cat "$T/wh.json"
}
out=$(try_webhook "$(signed "http://127.0.0.1:$WH/publik/webhook" wrong-key wcs.example.org)")
[ "${out%% *}" = 403 ] || fail "bad signature answered $out"
echo "${out#* }" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["err"]==1 and d["err_desc"]=="Invalid signature.", d' || fail "403 body: $out"
echo "${out#* }" | envelope_ok || fail "403 body is not a valid envelope"
out=$(try_webhook "$(signed "http://127.0.0.1:$WH/publik/webhook" "$PUBLIK_WHKEY" wcs.example.org -90)")
[ "${out%% *}" = 403 ] || fail "stale signature answered $out"
echo "$out" | grep -q '"err_desc":"timestamp is more than 30 seconds in the past: 0:01:3' || fail "stale: $out"
out=$(try_webhook "$(signed "http://127.0.0.1:$WH/publik/webhook" "$PUBLIK_WHKEY" wcs.example.org 90)")
echo "$out" | grep -q '^403 .*seconds in the future' || fail "future: $out"
out=$(try_webhook "http://127.0.0.1:$WH/publik/webhook?orig=wcs.example.org")
echo "$out" | grep -q '^403 .*"err_desc":"Unsigned API call."' || fail "unsigned: $out"
out=$(try_webhook "$(signed "http://127.0.0.1:$WH/publik/webhook" "$PUBLIK_KEY" relais)")
echo "$out" | grep -q '^403 .*"err_desc":"Invalid orig."' || fail "API access key on the webhook: $out"
GOOD=$(signed "http://127.0.0.1:$WH/publik/webhook" "$PUBLIK_WHKEY" wcs.example.org)
out=$(try_webhook "$GOOD")
[ "${out%% *}" = 200 ] || fail "good signature answered $out"
echo "${out#* }" | envelope_ok || fail "200 body is not a valid envelope"
out=$(try_webhook "$GOOD")
echo "$out" | grep -q '^403 .*"err_desc":"Nonce already used."' || fail "replay: $out"
[ "$(sql "$DB" "SELECT count(*) FROM events")" = "$EVENTS0" ] || fail "a webhook call made an event"
[ "$(sql "$DB" "SELECT count(*) FROM rejections")" = "$REJ0" ] || fail "a refused webhook call was journaled"
grep -q "webhook refused (403): Invalid signature." "$T/hub-a.log" || fail "refusal not logged"
pass "webhook: bad signature, stale or future timestamp, unsigned, wrong orig, replayed nonce -> 403; nothing journaled"

# ---- 7. the simulator's own envelopes and refusals
curl -fsS "$WCS/api/formdefs/" | envelope_ok || fail "formdefs envelope"
curl -fsS "$(signed "$WCS/api/forms/signalement-voirie/list?response_type=dict&limit=1&full=on" "$PUBLIK_KEY" relais)" \
  | tee "$T/list.json" | envelope_ok || fail "list envelope"
python3 -c 'import json; d=json.load(open("'"$T/list.json"'")); assert d["count"]>=2 and len(d["data"])==1 and "next" in d, d' \
  || fail "list paging"
code=$(curl -sS -o "$T/e.json" -w '%{http_code}' "$WCS/api/forms/signalement-voirie/list")
[ "$code" = 401 ] && envelope_ok <"$T/e.json" || fail "unsigned list: $code $(cat "$T/e.json")"
code=$(curl -sS -o "$T/e.json" -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{}' \
  "$(signed "$WCS/api/forms/signalement-voirie/$F1/hooks/relais-update/" "$PUBLIK_KEY" relais -40)")
[ "$code" = 403 ] && grep -q 'seconds in the past' "$T/e.json" && envelope_ok <"$T/e.json" || fail "stale hook call: $code"
code=$(curl -sS -o "$T/e.json" -w '%{http_code}' "$(signed "$WCS/api/forms/signalement-voirie/999/" "$PUBLIK_KEY" relais)")
[ "$code" = 404 ] && envelope_ok <"$T/e.json" || fail "unknown form: $code"
pass "the simulator's replies and refusals are valid envelopes (formdefs, list dict with next, 401, 403, 404)"

# metrics per connector
curl -fsS "$ADMIN/metrics" >"$T/metrics.txt"
grep -q 'relais_events_in_total{connector="grc-in"} [1-9]' "$T/metrics.txt" || fail "metrics lack grc-in"
grep -q 'relais_delivered_total{connector="grc-out"} [1-9]' "$T/metrics.txt" || fail "metrics lack grc-out"
stop_hub "$HUB_PID"
pass "graceful stop"

# the simulator keeps its forms in --state FILE across a restart
kill -TERM "$SIMPID"; wait "$SIMPID"
"$SIM_PUBLIK" --listen "127.0.0.1:$WPORT" --state "$T/wcs-state.json" --key "relais=$PUBLIK_KEY" >"$T/sim-publik-2.log" 2>&1 &
PIDS+=($!)
wait_for "relais-sim-publik again" 10 curl -fsS "$WCS/_sim/stats" -o /dev/null
[ "$(curl -fsS "$WCS/_sim/forms/signalement-voirie/$F1/history" | python3 -c 'import json,sys; h=json.load(sys.stdin); print(h["status"], len(h["evolution"]))')" = "en-cours 3" ] \
  || fail "the simulator lost its forms across a restart"
curl -fsS -X POST "$WCS/_sim/forms/signalement-voirie" -d '{"fields": {"categorie": "eclairage"}}' | grep -q '"id":"4"' \
  || fail "form numbers restarted"
pass "relais-sim-publik --state keeps the forms and their numbers across a restart"
