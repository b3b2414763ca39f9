#!/usr/bin/env bash
# Personal data in traces (issue 7): `relais trace` and `relais person` show
# an event's data with its personal fields masked (the schemas' x-personal
# marks, hub/personal.h) unless --show-personal is given; each such read is
# journaled first as a signed step personal_data_read on the event (who, as
# which database role, what was asked), and without the audit key nothing is
# shown. The hub's logs never hold a payload: a distinctive name, e-mail
# address and phone number posted in events (one valid, one refused by the
# schema) are found in no file the hub wrote, at log level debug.
. "$(dirname "$0")/lib.sh"

DB=$(fresh_db personal)
start_sim crm
SRC=$(free_port)
STATE="$T/state"
cat >"$T/hub.yaml" <<YAML
hub:
  name: pii
  admin_listen: 127.0.0.1:0
  state_dir: $STATE
  log_level: debug
bus:
  brokers: embedded
  partitions: 2
journal:
  conninfo: "$DB"
  batch_wait: 1ms
delivery:
  workers: 2
  backoff_initial: 100ms
  poll_interval: 100ms
connectors:
  - name: desk
    type: http
    mode: source
    listen: 127.0.0.1:$SRC
    path: /events
    event_type: fr.relais.person.person.created.v1
    record_id_pointer: /address/ban_id
  - name: crm
    type: http
    mode: sink
    url: $SIM_URL_crm/events
    timeout: 2s
routes:
  - name: people
    match: "fr.relais.person.**"
    to: [crm]
YAML
start_hub a "$T/hub.yaml"
NAME="ZORGLUBESCO$$"
EMAIL="zorglub.$$.unique@example.org"
PHONE="+3369$(printf '%07d' $(( ($$ * 7919 + RANDOM) % 10000000 )))"
out=$(post_json "http://127.0.0.1:$SRC/events" "{\"identity\":{\"family_name\":\"$NAME\",\"given_names\":[\"Camille\"]},
  \"contact\":{\"email\":\"$EMAIL\",\"mobile\":\"$PHONE\"},\"address\":{\"street\":\"rue des Tanneurs\",\"city\":\"Villebrune\",\"ban_id\":\"P-1\"},
  \"address_since\":\"2023-07-01\"}")
[ "${out%% *}" = 202 ] || fail "POST P-1 answered $out"
# refused by the schema (the mobile is not a phone number, an unknown member), with the same values
out=$(post_json "http://127.0.0.1:$SRC/events" "{\"identity\":{\"family_name\":\"$NAME\"},
  \"contact\":{\"email\":\"$EMAIL\",\"mobile\":\"$NAME $PHONE\"},\"address\":{\"city\":\"Villebrune\",\"ban_id\":\"P-2\"},\"nickname\":\"$NAME\"}")
wait_eq "P-1 delivered" 30 1 sim_stat "$SIM_URL_crm" distinct
wait_eq "P-2 rejected" 30 1 sql "$DB" "SELECT count(*) FROM rejections WHERE record_id = 'P-2' OR raw::text LIKE '%P-2%'"
curl -fsS "$SIM_URL_crm/_sim/events" | grep "$NAME" >/dev/null || fail "the sink did not receive the name (the test would prove nothing)"
mkdir "$T/cli"

# default (--redact): the data with its personal fields masked
"$RELAIS_BIN" trace -c "$T/hub.yaml" P-1 >"$T/cli/trace.txt" || { cat "$T/cli/trace.txt"; fail "trace P-1"; }
sed -n 's/^  data //p' "$T/cli/trace.txt" | python3 -c 'import json, sys
d = json.load(sys.stdin)
assert d == {"identity": "***", "contact": "***", "address": "***", "address_since": "2023-07-01"}, d' \
  || { cat "$T/cli/trace.txt"; fail "trace P-1 should show the data with identity, contact and address masked"; }
grep -q '^personal fields are masked' "$T/cli/trace.txt" || fail "trace does not say fields are masked"
for v in "$NAME" "$EMAIL" "$PHONE" "rue des Tanneurs"; do
  if grep -qF "$v" "$T/cli/trace.txt"; then cat "$T/cli/trace.txt"; fail "trace shows '$v' without --show-personal"; fi
done
"$RELAIS_BIN" trace -c "$T/hub.yaml" --json --redact P-1 >"$T/cli/trace.json" || fail "trace --json"
python3 - "$T/cli/trace.json" <<'PY' || fail "trace --json: data masked and data_redacted"
import json, sys
e = json.load(open(sys.argv[1]))["events"][0]
assert e["data_redacted"] is True and e["data"]["identity"] == "***" and e["data"]["address_since"] == "2023-07-01", e
PY
"$RELAIS_BIN" person -c "$T/hub.yaml" "$EMAIL" >"$T/cli/person.txt" || { cat "$T/cli/person.txt"; fail "person"; }
grep -q "^Events about $EMAIL: 1$" "$T/cli/person.txt" || { cat "$T/cli/person.txt"; fail "person finds the event by e-mail"; }
grep -q '^    data {.*"identity":"\*\*\*"' "$T/cli/person.txt" || { cat "$T/cli/person.txt"; fail "person: masked data"; }
grep -qF "$NAME" "$T/cli/person.txt" && fail "person shows the name without --show-personal"
[ "$(sql "$DB" "SELECT count(*) FROM steps WHERE step = 'personal_data_read'")" = 0 ] || fail "a masked read was journaled as a read of personal data"
pass "trace and person mask identity, contact and address by default; nothing journaled"

# a package that echoes the record in its error answer: the attempt's detail
# holds the personal values; the trace masks them there too
curl -fsS -X POST "$SIM_URL_crm/_sim/fail" -d '{"status":503,"count":1,"echo":true}' >/dev/null
out=$(post_json "http://127.0.0.1:$SRC/events" "{\"identity\":{\"family_name\":\"$NAME\",\"given_names\":[\"Camille\"]},
  \"contact\":{\"email\":\"$EMAIL\"},\"address\":{\"street\":\"rue des Tanneurs\",\"city\":\"Villebrune\",\"ban_id\":\"P-3\"}}")
[ "${out%% *}" = 202 ] || fail "POST P-3 answered $out"
wait_eq "P-3 delivered after the echoed 503" 30 2 sim_stat "$SIM_URL_crm" distinct
echoed() { sql "$DB" "SELECT count(*) FROM steps s JOIN events e ON e.id = s.event_id
                     WHERE e.record_id = 'P-3' AND s.step = 'attempt' AND s.detail LIKE '%$NAME%' AND s.detail LIKE '%$EMAIL%'"; }
# the test would prove nothing if the echoed record were not in the detail
wait_eq "the echoed record in the attempt's detail" 20 1 echoed
wait_eq "P-3's delivered step" 20 1 sql "$DB" "SELECT count(*) FROM steps s JOIN events e ON e.id = s.event_id
                                              WHERE e.record_id = 'P-3' AND s.step = 'delivered'"
"$RELAIS_BIN" trace -c "$T/hub.yaml" P-3 >"$T/cli/echo.txt" || { cat "$T/cli/echo.txt"; fail "trace P-3"; }
grep -qE "attempt +crm .*HTTP 503.*\*\*\*" "$T/cli/echo.txt" || { cat "$T/cli/echo.txt"; fail "trace P-3: the attempt's detail is not shown masked"; }
grep -qE "^[0-9]+ personal value\(s\) masked in steps' details too" "$T/cli/echo.txt" \
  || { cat "$T/cli/echo.txt"; fail "trace P-3 does not say values were masked in the details"; }
for v in "$NAME" "$EMAIL" "rue des Tanneurs"; do
  if grep -qF "$v" "$T/cli/echo.txt"; then cat "$T/cli/echo.txt"; fail "trace P-3 shows '$v' in a step's detail"; fi
done
grep -qF '{"error":"injected failure","status":503,"record":{"identity":{"family_name":"***"' "$T/cli/echo.txt" \
  || { cat "$T/cli/echo.txt"; fail "trace P-3 masked more than the personal values"; }
"$RELAIS_BIN" trace -c "$T/hub.yaml" --json P-3 >"$T/cli/echo.json" || fail "trace --json P-3"
python3 - "$T/cli/echo.json" <<'PY' || fail "trace --json P-3: details_redacted"
import json, sys
e = json.load(open(sys.argv[1]))["events"][0]
assert e["details_redacted"] >= 3, e
PY
"$RELAIS_BIN" trace -c "$T/hub.yaml" --show-personal P-3 >"$T/cli/echo-shown.txt" || fail "trace --show-personal P-3"
grep -qE "attempt +crm .*$NAME" "$T/cli/echo-shown.txt" || { cat "$T/cli/echo-shown.txt"; fail "--show-personal does not show the detail as written"; }
pass "a package echoing the record in its error: the attempt's detail shows the personal values masked (the rest of the text kept), and as written with --show-personal"

# --show-personal: shown, and journaled first on the event, signed
EV=$(sql "$DB" "SELECT id FROM events WHERE record_id = 'P-1'")
"$RELAIS_BIN" trace -c "$T/hub.yaml" --show-personal P-1 >"$T/cli/shown.txt" || { cat "$T/cli/shown.txt"; fail "trace --show-personal"; }
grep -qF "\"family_name\":\"$NAME\"" "$T/cli/shown.txt" || { cat "$T/cli/shown.txt"; fail "--show-personal does not show the name"; }
grep -qF "$EMAIL" "$T/cli/shown.txt" || fail "--show-personal does not show the e-mail"
[ "$(sql "$DB" "SELECT count(*) FROM steps WHERE step = 'personal_data_read' AND event_id = '$EV' AND mac IS NOT NULL
     AND stream LIKE 'cli/%' AND detail LIKE '%@% as postgres: relais trace --show-personal P-1'")" = 1 ] \
  || { sql "$DB" "SELECT event_id, detail FROM steps WHERE step = 'personal_data_read'"; fail "the read is not journaled (who, role, what) on the event"; }
"$RELAIS_BIN" trace -c "$T/hub.yaml" P-1 | grep -qE "^  [0-9T:.Z-]+  personal_data_read .*relais trace --show-personal P-1" \
  || fail "the event's trace does not show who read its personal data"
"$RELAIS_BIN" person -c "$T/hub.yaml" --show-personal "$EMAIL" >"$T/cli/person-shown.txt" || fail "person --show-personal"
grep -qF "$NAME" "$T/cli/person-shown.txt" || fail "person --show-personal does not show the name"
[ "$(sql "$DB" "SELECT count(*) FROM steps WHERE step = 'personal_data_read' AND event_id = '$EV' AND detail LIKE '%relais person --show-personal $EMAIL'")" = 1 ] \
  || fail "person --show-personal is not journaled"
pass "--show-personal shows the data; each read journaled first as a signed personal_data_read step on the event"

# without the audit key the read cannot be journaled: nothing is shown
reads() { sql "$DB" "SELECT count(*) FROM steps WHERE step = 'personal_data_read'"; }
before=$(reads)
if RELAIS_AUDIT_KEY_FILE= "$RELAIS_BIN" trace --db "$DB" --show-personal P-1 >"$T/cli/nokey.txt" 2>"$T/cli/nokey.err"; then
  cat "$T/cli/nokey.txt"; fail "--show-personal without the audit key succeeded"
fi
grep -q "could not be journaled, nothing shown" "$T/cli/nokey.err" || { cat "$T/cli/nokey.err"; fail "the refusal does not say why"; }
grep -qF "$NAME" "$T/cli/nokey.txt" && fail "personal data printed although the read could not be journaled"
[ "$(reads)" = "$before" ] || fail "steps written without the key ($before reads before, $(reads) after)"
"$RELAIS_BIN" audit verify -c "$T/hub.yaml" >"$T/cli/verify.txt" || { cat "$T/cli/verify.txt"; fail "audit verify after the reads"; }
pass "without the audit key: refused, nothing shown; the trail verifies"

# the hub's logs (debug level) and state files hold none of the values
stop_hub "$HUB_PID"
[ -s "$T/hub-a.log" ] || fail "no hub log"
grep -q "DEBUG" "$T/hub-a.log" || fail "the hub did not log at debug level (the check would prove little)"
for v in "$NAME" "$EMAIL" "$PHONE" "rue des Tanneurs"; do
  if grep -rlF "$v" "$T"/hub-*.log "$STATE"; then fail "'$v' (a payload value) is in the hub's logs or state files above"; fi
done
pass "no payload value in the hub's logs ($(wc -l <"$T/hub-a.log") lines at debug) nor in $STATE"
