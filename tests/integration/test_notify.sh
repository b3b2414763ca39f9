#!/usr/bin/env bash
# The notify sink with the real hub, PostgreSQL, the embedded broker and the
# two simulators (relais-sim-smtp, relais-sim-sms): GRC request events posted
# as CloudEvents to the generic webhook are told to the citizen.
#  1. grc.request.created -> an acknowledgement email with the request number;
#     the contact is kept in the package state (journal table package_state).
#  2. grc.request.updated with a public comment -> an email with the comment;
#     an internal comment -> delivered, nothing sent, the reason in the journal.
#  3. grc.request.closed -> the answer; nothing about the commitment; the
#     contact is erased from the state.
#  4. The SMS gateway is down: the citizen sink retries (trace, /metrics,
#     the deliveries row say why) while the other sink got the event at once;
#     when the gateway is back the SMS goes out, once.
#  5. No personal data (address, number) in the hub's log or the journal's
#     delivery details.
. "$(dirname "$0")/lib.sh"
SIM_SMTP=$RELAIS_BUILD_DIR/relais-sim-smtp
SIM_SMS=$RELAIS_BUILD_DIR/relais-sim-sms
for x in "$SIM_SMTP" "$SIM_SMS"; do [ -x "$x" ] || fail "$x is not built"; done

# connectors/notify/README.md: its configuration checks, its commands run
grep -q "^notify - " <<<"$("$RELAIS_BIN" connectors describe)" || fail "relais connectors describe does not list notify"
grep -q "usage: relais-sim-smtp" <<<"$("$SIM_SMTP" --help)" || fail "relais-sim-smtp --help"
grep -q "usage: relais-sim-sms" <<<"$("$SIM_SMS" --help)" || fail "relais-sim-sms --help"
python3 - "$RELAIS_SOURCE_DIR/connectors/notify/README.md" >"$T/readme.yaml" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
block = re.search(r"## Configuration\n\n```yaml\n(.*?)```", text, re.S).group(1)
print("bus:\n  brokers: embedded\njournal:\n  conninfo: \"dbname=unused\"\n" + block)
PY
NOTIFY_SMS_KEY=k "$RELAIS_BIN" check -c "$T/readme.yaml" >/dev/null || fail "the README's configuration does not check"
grep -q -- '--listen 127.0.0.1:0 --control 127.0.0.1:0 --port-file smtp.port --control-port-file smtp.cport' \
  "$RELAIS_SOURCE_DIR/connectors/notify/README.md" || fail "README: the relais-sim-smtp command changed; run it here"
grep -q -- '--listen 127.0.0.1:0 --port-file sms.port --key k-notify' \
  "$RELAIS_SOURCE_DIR/connectors/notify/README.md" || fail "README: the relais-sim-sms command changed; run it here"
pass "README: configuration checks, simulators' help, connectors describe"

DB=$(fresh_db notify)
# the README's commands, run in $T
(cd "$T" && exec "$SIM_SMTP" --listen 127.0.0.1:0 --control 127.0.0.1:0 --port-file smtp.port --control-port-file smtp.cport) \
  >"$T/sim-smtp.log" 2>&1 &
PIDS+=($!)
(cd "$T" && exec "$SIM_SMS" --listen 127.0.0.1:0 --port-file sms.port --key k-notify) >"$T/sim-sms.log" 2>&1 &
PIDS+=($!)
wait_for "relais-sim-smtp" 10 test -s "$T/smtp.cport"
wait_for "relais-sim-sms" 10 test -s "$T/sms.port"
SMTP_PORT=$(cat "$T/smtp.port"); SMTP_CTL=http://127.0.0.1:$(cat "$T/smtp.cport")
SMS=http://127.0.0.1:$(cat "$T/sms.port")
start_sim works
SRC=$(free_port)
export NOTIFY_SMS_KEY=k-notify

cat >"$T/hub.yaml" <<YAML
hub:
  name: notify
  tenant: ville
  admin_listen: 127.0.0.1:0
  state_dir: $T/state
bus: { brokers: embedded, partitions: 3 }
journal: { conninfo: "$DB", batch_wait: 1ms }
delivery: { workers: 4, max_attempts: 50, backoff_initial: 100ms, backoff_max: 300ms, poll_interval: 100ms,
            circuit_failures: 3, circuit_open: 1s }
connectors:
  - { name: desk, type: http, mode: source, listen: "127.0.0.1:$SRC" }
  - name: citizen
    type: notify
    mode: sink
    package: notify
    order: subject
    smtp_url: smtp://127.0.0.1:$SMTP_PORT
    mail_from: ne-pas-repondre@villebrune.example
    mail_from_name: Mairie de Villebrune
    sms_url: $SMS/api/sms
    sms_key: env:NOTIFY_SMS_KEY
    sms_sender: VILLEBRUNE
    town: Villebrune-sur-Vilaine
    timeout: 2s
  - { name: works, type: http, mode: sink, url: "$SIM_URL_works/events" }
routes:
  - { name: citizen, match: "fr.relais.grc.request.**", to: [citizen] }
  - { name: works, match: "fr.relais.grc.request.created.*", to: [works] }
YAML
"$RELAIS_BIN" check -c "$T/hub.yaml" || fail "the configuration does not check"
start_hub a "$T/hub.yaml"

# post_event ID TYPE SUBJECT DATA: one structured CloudEvent to the webhook
post_event() {
  local body
  body=$(python3 -c 'import json,sys; print(json.dumps({"specversion":"1.0","id":sys.argv[1],"source":"/grc","type":"fr.relais.grc.request."+sys.argv[2]+".v1","subject":sys.argv[3],"data":json.loads(sys.argv[4])}))' "$@")
  code=$(curl -sS -o "$T/resp" -w '%{http_code}' -H 'Content-Type: application/cloudevents+json' \
         --data-binary "$body" "http://127.0.0.1:$SRC/events")
  [ "$code" = 202 ] || fail "event $1 answered $code $(cat "$T/resp")"
}
smtp_count() { curl -fsS "$SMTP_CTL/_sim/messages" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
# smtp_msg N FIELD: a field of the N-th message received (0-based)
smtp_msg() { curl -fsS "$SMTP_CTL/_sim/messages" | python3 -c 'import json,sys; print(json.load(sys.stdin)[int(sys.argv[1])][sys.argv[2]])' "$1" "$2"; }
delivery() { sql "$DB" "SELECT d.$3 FROM deliveries d JOIN events e ON e.id=d.event_id WHERE e.record_id='$1' AND d.destination='$2'"; }
metric() { curl -fsS "$ADMIN/metrics" | sed -n "s/^$1{connector=\"$2\"} //p"; }

# 1. acknowledgement
post_event EV-1 created request/wcs-voirie-41 '{"channel":"web","category":"Nids de poule","status":"new",
  "opened_at":"2026-03-05T10:14:00+01:00","description":"Un trou devant le 12 bis",
  "location":{"address":{"number":12,"repetition":"bis","street":"rue des Tanneurs","postcode":"35999","city":"Villebrune-sur-Vilaine"}},
  "requester":{"identity":{"family_name":"KERMARREC","given_names":["Camille"]},
               "contact":{"email":"camille.kermarrec@example.fr","preferred_channel":"email","consent":{"email":true}}}}'
wait_eq "acknowledgement email" 30 1 smtp_count
[ "$(smtp_msg 0 subject)" = "Votre demande n° wcs-voirie-41 a bien été enregistrée" ] || fail "subject: $(smtp_msg 0 subject)"
[ "$(smtp_msg 0 to)" = "['camille.kermarrec@example.fr']" ] || fail "recipient: $(smtp_msg 0 to)"
grep -q "Son numéro est wcs-voirie-41" <<<"$(smtp_msg 0 body)" || fail "no number in the body: $(smtp_msg 0 body)"
grep -q "Lieu : 12 bis rue des Tanneurs, 35999 Villebrune-sur-Vilaine" <<<"$(smtp_msg 0 body)" || fail "no place in the body"
# an independent reading of the message (Python's email package): RFC 5322 + MIME
smtp_msg 0 raw | python3 -c '
import sys, email, email.policy
m = email.message_from_string(sys.stdin.read(), policy=email.policy.default)
assert str(m["Subject"]) == "Votre demande n° wcs-voirie-41 a bien été enregistrée", m["Subject"]
assert m["Message-ID"].startswith("<relais.") and m["Message-ID"].endswith("@villebrune.example>"), m["Message-ID"]
assert m.get_content_type() == "text/plain" and m.get_content_charset() == "utf-8"
assert m["Content-Transfer-Encoding"] == "quoted-printable"
assert m["MIME-Version"] == "1.0" and m["Date"] is not None
assert str(m["From"]) == "Mairie de Villebrune <ne-pas-repondre@villebrune.example>", m["From"]
assert "Votre demande « Nids de poule » a bien été reçue" in m.get_content()
' || fail "the message does not read back with Python's email package"
# the Message-ID is made from the hub's event id
evid=$(sql "$DB" "SELECT id FROM events WHERE record_id='EV-1'")
grep -q "relais.$evid@" <<<"$(smtp_msg 0 message_id)" || fail "Message-ID not derived from event $evid"
wait_eq "ack delivered" 10 delivered delivery EV-1 citizen status
[ "$(delivery EV-1 citizen last_detail)" = "email to c***@e***.fr: SMTP 250 accepted" ] || fail "detail: $(delivery EV-1 citizen last_detail)"
[ "$(sql "$DB" "SELECT value->>'email' FROM package_state WHERE package='notify' AND key='contact/request/wcs-voirie-41'")" = camille.kermarrec@example.fr ] \
  || fail "the contact is not kept in the package state"
pass "created -> acknowledgement email with the number (RFC 5322 checked by Python's email package), contact kept"

# 2. comments
post_event EV-2 updated request/wcs-voirie-41 '{"status":"in_progress","previous_status":"new","updated_at":"2026-03-05T14:03:05+01:00",
  "comment":"Intervention programmée demain matin par la régie voirie.","comment_visibility":"public"}'
post_event EV-3 updated request/wcs-voirie-41 '{"status":"in_progress","updated_at":"2026-03-05T15:00:00+01:00",
  "comment":"Prévoir la plaque vibrante","comment_visibility":"internal"}'
wait_eq "public comment email" 30 2 smtp_count
wait_eq "internal comment delivered" 30 delivered delivery EV-3 citizen status
[ "$(delivery EV-3 citizen last_detail)" = "internal comment: nothing sent to the citizen" ] || fail "internal: $(delivery EV-3 citizen last_detail)"
[ "$(smtp_count)" = 2 ] || fail "an internal comment was sent"
[ "$(smtp_msg 1 subject)" = "Votre demande n° wcs-voirie-41 est en cours de traitement" ] || fail "subject: $(smtp_msg 1 subject)"
grep -q "Intervention programmée demain matin par la régie voirie." <<<"$(smtp_msg 1 body)" || fail "comment missing"
grep -q "plaque" <<<"$(smtp_msg 1 body)" && fail "internal text leaked"
pass "public comment -> email; internal comment -> nothing sent (journal says why)"

# 3. closing
post_event EV-4 closed request/wcs-voirie-41 '{"closed_at":"2026-03-20T11:32:20+01:00","outcome":"resolved",
  "answer":"Le nid de poule signalé rue des Tanneurs a été rebouché ce matin.","opened_at":"2026-03-05T10:14:00+01:00",
  "delay_days":11,"delay_basis":"working_days","commitment_days":10,"commitment_met":false}'
wait_eq "closing email" 30 3 smtp_count
[ "$(smtp_msg 2 subject)" = "Votre demande n° wcs-voirie-41 est clôturée" ] || fail "subject: $(smtp_msg 2 subject)"
grep -q "a été rebouché ce matin" <<<"$(smtp_msg 2 body)" || fail "answer missing"
grep -Eqi "engagement|délai|commitment| 10 | 11 " <<<"$(smtp_msg 2 body)" && fail "the commitment was told: $(smtp_msg 2 body)"
wait_eq "contact erased" 10 "" sql "$DB" "SELECT coalesce(value->>'email','') FROM package_state WHERE key='contact/request/wcs-voirie-41'"
pass "closed -> the answer, nothing about the commitment; contact erased"

# 4. the SMS gateway is down: that destination only is behind
curl -fsS -X POST "$SMS/_sim/fail" -d '{"status":503}' >/dev/null
post_event EV-5 created request/o311-7 '{"channel":"web","category":"Éclairage public","status":"new",
  "opened_at":"2026-03-06T09:00:00+01:00","tracking_code":"VB9X4","requester":{"identity":{"family_name":"LE GALL"},
  "contact":{"mobile":"+33612345678","preferred_channel":"sms","consent":{"sms":true}}}}'
wait_eq "works got it at once" 20 2 sim_stat "$SIM_URL_works" distinct
retried_thrice() { [ "$(delivery EV-5 citizen attempts)" -ge 3 ]; }
wait_for "citizen retried" 30 retried_thrice
[ "$(delivery EV-5 citizen status)" = pending ] || fail "citizen delivery not pending: $(delivery EV-5 citizen status)"
[ "$(delivery EV-5 citizen last_detail)" = "sms to +33*******78: HTTP 503 transient, will retry: injected failure" ] \
  || fail "detail: $(delivery EV-5 citizen last_detail)"
[ "$(delivery EV-5 works status)" = delivered ] || fail "the other sink is held"
[ "$(metric relais_retried_total citizen)" -ge 2 ] || fail "/metrics: no retries for citizen"
[ "$(metric relais_retried_total works)" = 0 ] || fail "/metrics: retries for works"
[ "$(metric relais_last_answer_status citizen)" = 503 ] || fail "/metrics: last status $(metric relais_last_answer_status citizen)"
"$RELAIS_BIN" trace --db "$DB" EV-5 >"$T/trace.txt" || fail "relais trace"
grep -q "attempt  *citizen attempt 2 -> 503  sms to +33\*\*\*\*\*\*\*78: HTTP 503 transient" "$T/trace.txt" \
  && grep -q "retry_scheduled  *citizen attempt 2  next attempt in" "$T/trace.txt" || { cat "$T/trace.txt"; fail "trace does not show the SMS retries"; }
grep -q "delivered.*works" "$T/trace.txt" || { cat "$T/trace.txt"; fail "trace does not show works delivered"; }
pass "gateway down: citizen retries (journal, trace, /metrics say 503 from the SMS gateway), works delivered at once"

curl -fsS -X POST "$SMS/_sim/reset" >/dev/null
wait_eq "SMS delivered once the gateway is back" 30 delivered delivery EV-5 citizen status
[ "$(sim_stat "$SMS" sent)" = 1 ] || fail "SMS sent $(sim_stat "$SMS" sent) times"
curl -fsS "$SMS/_sim/messages" | python3 -c '
import json,sys
m = json.load(sys.stdin)[0]
assert m["to"] == "+33612345678" and m["sender"] == "VILLEBRUNE", m
assert "VB9X4" in m["text"] and "Éclairage public" in m["text"], m["text"]
' || fail "SMS content"
[ "$(sql "$DB" "SELECT count(*) FROM deliveries WHERE status='delivered'")" = 7 ] || fail "journal: not 7 deliveries delivered (5 citizen, 2 works)"
pass "gateway back: the SMS went out once, with the tracking code"

# 5. no personal data in the hub's log nor in the journal's details
grep -Eq "kermarrec|12345678" "$T/hub-a.log" && fail "personal data in the hub log"
[ "$(sql "$DB" "SELECT count(*) FROM steps WHERE detail ~ '(kermarrec|12345678)'")" = 0 ] || fail "personal data in the journal steps"
pass "no address or number in logs or journal details"
stop_hub "$HUB_PID"
