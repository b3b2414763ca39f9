#!/usr/bin/env bash
# An operator pauses and resumes connector instances through the admin API
# (docs/RELIABILITY.md "Pausing a connector"): a paused sink gets no attempt
# (its deliveries stay pending, attempts 0, a step "paused" each) while the
# other sink gets everything; resumed, it gets every record once. A paused
# webhook answers 503 with Retry-After, a paused drop folder leaves its
# files and a paused Publik poller stops polling w.c.s.; resumed, they take
# records again. Each pause and resume is journaled as a step naming the
# token (a pause the journal refuses answers 503 and does not happen), shown
# by GET /connectors and by the gauge relais_connector_paused; a pause ends
# with the hub process (its held deliveries are handed back at SIGTERM).
# The journal still verifies.
. "$(dirname "$0")/lib.sh"

: >"$T/tokens"
chmod 600 "$T/tokens"
newtok() { "$RELAIS_BIN" token new --name "$1" --role "$2" 2>>"$T/tokens" || fail "relais token new $1 $2"; }
AUD=$(newtok carole-audit auditor)
OPE=$(newtok olivier-ops operator)
ADM=$(newtok anne-admin admin)

DB=$(fresh_db pause)
start_sim a
start_sim b
SRC=$(free_port)
mkdir -p "$T/drop"
export PUBLIK_KEY=k-relais-pause
"$RELAIS_BUILD_DIR/relais-sim-publik" --listen "127.0.0.1:0" --key "relais=$PUBLIK_KEY" >"$T/sim-publik.log" 2>&1 &
PIDS+=($!)
WPORT=$(bound_port relais-sim-publik "$T/sim-publik.log" 'listening on http://[^ ]*:([0-9]+)')
WCS=http://127.0.0.1:$WPORT
wait_for "relais-sim-publik" 10 curl -fsS "$WCS/_sim/stats" -o /dev/null
cat >"$T/hub.yaml" <<YAML
hub:
  name: pause
  admin_listen: 127.0.0.1:0
  admin_tokens: $T/tokens
  state_dir: $T/state
bus: { brokers: embedded, partitions: 3 }
journal: { conninfo: "$DB", batch_wait: 1ms }
delivery: { workers: 4, max_attempts: 3, backoff_initial: 100ms, backoff_max: 300ms, poll_interval: 100ms }
connectors:
  - { name: desk, type: http, mode: source, listen: "127.0.0.1:$SRC", event_type: test.relais.pause.record,
      subject_pointer: /id, record_id_pointer: /id }
  - { name: drop, type: file, mode: source, dir: "$T/drop", event_type: test.relais.pause.record,
      record_id_field: /id, subject_field: /id }
  - { name: grc, type: publik, mode: source, mapping: "$RELAIS_SOURCE_DIR/connectors/publik/mappings/request.yaml",
      url: "$WCS", orig: relais, key: "env:PUBLIK_KEY", formdefs: [signalement-voirie], poll_interval: 200ms }
  - { name: a, type: http, mode: sink, url: "$SIM_URL_a/events", timeout: 2s }
  - { name: b, type: http, mode: sink, url: "$SIM_URL_b/events", timeout: 2s }
routes:
  - { name: all, match: "test.relais.pause.**", to: [a, b] }
YAML
start_hub a "$T/hub.yaml"

# call METHOD PATH TOKEN -> HTTP status; body in $T/body
call() {
  local args=(-sS -o "$T/body" -w '%{http_code}' -X "$1")
  [ -n "$3" ] && args+=(-H "Authorization: Bearer $3")
  curl "${args[@]}" "$ADMIN$2"
}
expect() {   # STATUS METHOD PATH TOKEN
  local got
  got=$(call "$2" "$3" "$4")
  [ "$got" = "$1" ] || fail "$2 $3: $got, expected $1: $(cat "$T/body")"
}
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$T/body" "$1"; }
# conn NAME KEY: a member of the instance NAME in GET /connectors (as the auditor)
conn() {
  expect 200 GET /connectors "$AUD"
  python3 -c 'import json,sys
c=[c for c in json.load(open(sys.argv[1])) if c["name"]==sys.argv[2]][0]
v=c.get(sys.argv[3]); print(json.dumps(v) if not isinstance(v, str) else v)' "$T/body" "$1" "$2"
}
metric() { curl -fsS -H "Authorization: Bearer $AUD" "$ADMIN/metrics" | sed -n "s/^$1{connector=\"$2\"} //p"; }
post() { post_json "http://127.0.0.1:$SRC/events" "$1" -D "$T/hdr"; }
pending_b() { sql "$DB" "SELECT count(*) || ' ' || coalesce(max(attempts), 0) FROM deliveries WHERE destination = 'b' AND status = 'pending'"; }
actions() { sql "$DB" "SELECT destination || ' ' || step || ' ' || detail FROM steps WHERE event_id IS NULL AND step IN ('paused', 'resumed') ORDER BY id"; }

out=$(post '{"id":"W-0"}'); [ "${out%% *}" = 202 ] || fail "warm-up: $out"
wait_eq "warm-up at a" 20 1 sim_stat "$SIM_URL_a" distinct
wait_eq "warm-up at b" 20 1 sim_stat "$SIM_URL_b" distinct
[ "$(conn b paused)" = false ] && [ "$(conn b circuit)" = closed ] && [ "$(conn desk mode)" = source ] \
  && [ "$(conn desk type)" = http ] || fail "GET /connectors before any pause: $(cat "$T/body")"
[ "$(metric relais_connector_paused b)" = 0 ] || fail "gauge before the pause"

# ---- pausing a sink -----------------------------------------------------------
expect 403 POST /connectors/b/pause "$AUD"
[ "$(conn b paused)" = false ] || fail "an auditor paused b"
expect 404 POST /connectors/nosuch/pause "$OPE"
expect 404 POST /connectors/b/stop "$OPE"
expect 200 POST /connectors/b/pause "$OPE"
[ "$(field status)" = paused ] && [ "$(field paused)" = True ] || fail "pause b: $(cat "$T/body")"
expect 200 POST /connectors/b/pause "$OPE"
[ "$(field status)" = "already paused" ] || fail "pause b twice: $(cat "$T/body")"
[ "$(conn b paused)" = true ] && [ "$(conn b paused_by)" = "olivier-ops (operator)" ] && [ "$(conn a paused)" = false ] \
  || fail "GET /connectors after the pause: $(cat "$T/body")"
[ "$(metric relais_connector_paused b)" = 1 ] && [ "$(metric relais_connector_paused a)" = 0 ] || fail "gauge while paused"
[ "$(actions)" = "b paused olivier-ops (operator)" ] || fail "pause steps: $(actions)"
grep -q "paused: no new delivery attempts until resumed by olivier-ops (operator)" "$T/hub-a.log" \
  || fail "the pause is not logged with the token's name"
pass "POST /connectors/b/pause: auditor 403, unknown name 404, operator 200 (twice: already paused); journaled, logged, gauge 1"

batch=$(python3 -c "import json; print(json.dumps([{'id':'P-%d'%i} for i in range(1, 11)]))")
out=$(post "$batch"); [ "${out%% *}" = 202 ] || fail "batch: $out"
wait_eq "the other sink gets all" 20 11 sim_stat "$SIM_URL_a" distinct
wait_eq "b's deliveries pending, no attempt" 20 "10 0" pending_b
sleep 1     # ten scheduler rounds: nothing may reach b
[ "$(sim_stat "$SIM_URL_b" requests)" = 1 ] || fail "b got requests while paused: $(curl -fsS "$SIM_URL_b/_sim/stats")"
[ "$(pending_b)" = "10 0" ] || fail "b's deliveries while paused: $(pending_b)"
[ "$(conn b held)" = 10 ] || fail "GET /connectors held: $(cat "$T/body")"
[ "$(metric relais_delivery_attempts_total b)" = 1 ] || fail "attempts to b while paused"
"$RELAIS_BIN" trace --db "$DB" P-3 >"$T/trace.txt" || fail "relais trace P-3"
grep -qE "paused +b .*held: the destination was paused by olivier-ops \(operator\)" "$T/trace.txt" \
  || { cat "$T/trace.txt"; fail "the trace of P-3 does not show the step paused at b"; }
grep -qE "delivered +a" "$T/trace.txt" || { cat "$T/trace.txt"; fail "the trace of P-3 lacks delivered a"; }
pass "b paused: a got the 10 records, b none; b's 10 deliveries pending with 0 attempts; relais trace shows 'paused b'"

expect 403 POST /connectors/b/resume "$AUD"
expect 200 POST /connectors/b/resume "$ADM"
[ "$(field status)" = resumed ] && [ "$(field paused)" = False ] || fail "resume b: $(cat "$T/body")"
wait_eq "b gets them after the resume" 10 11 sim_stat "$SIM_URL_b" distinct
expect 200 POST /connectors/b/resume "$OPE"
[ "$(field status)" = "already running" ] || fail "resume b twice: $(cat "$T/body")"
sleep 0.5
[ "$(sim_stat "$SIM_URL_b" raw)" = 11 ] && [ "$(sim_stat "$SIM_URL_b" duplicates)" = 0 ] \
  || fail "b got some twice: $(curl -fsS "$SIM_URL_b/_sim/stats")"
[ "$(sql "$DB" "SELECT count(*) FROM deliveries WHERE status = 'delivered' AND attempts <= 1")" = 22 ] \
  || fail "deliveries: $(sql "$DB" "SELECT destination, status, attempts, count(*) FROM deliveries GROUP BY 1, 2, 3")"
[ "$(metric relais_connector_paused b)" = 0 ] || fail "gauge after the resume"
"$RELAIS_BIN" trace --db "$DB" P-3 >"$T/trace.txt"
grep -qE "resumed +b .*handed back: the destination was resumed by anne-admin \(admin\)" "$T/trace.txt" \
  && grep -qE "delivered +b" "$T/trace.txt" || { cat "$T/trace.txt"; fail "the trace of P-3 after the resume"; }
printf -v want 'b paused olivier-ops (operator)\nb resumed anne-admin (admin)'
[ "$(actions)" = "$want" ] || fail "pause and resume steps: $(actions)"
pass "b resumed: all 11 arrived once (none lost, none twice), each delivered at its first attempt; 'resumed' journaled naming the token"

# ---- a pause the journal cannot record does not happen ------------------------
sql "$DB" "CREATE FUNCTION refuse_pause() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN
             IF NEW.step = 'paused' AND NEW.destination = 'a' THEN RAISE EXCEPTION 'pauses of a refused by the test'; END IF;
             RETURN NEW; END \$\$;
           CREATE TRIGGER refuse_pause BEFORE INSERT ON steps FOR EACH ROW EXECUTE FUNCTION refuse_pause()" >/dev/null
expect 503 POST /connectors/a/pause "$OPE"
grep -q "cannot record the pause" "$T/body" || fail "503 body: $(cat "$T/body")"
[ "$(conn a paused)" = false ] && [ "$(metric relais_connector_paused a)" = 0 ] || fail "a paused although not journaled"
sql "$DB" "DROP TRIGGER refuse_pause ON steps; DROP FUNCTION refuse_pause()" >/dev/null
pass "a pause the journal refuses answers 503 and changes nothing"

# ---- relais connectors: the same routes from the CLI, with the caller's token ----
cli() {   # cli ARGS... -> exit code; stdout in $T/cli.out, stderr in $T/cli.err
  local rc=0
  "$RELAIS_BIN" connectors "$@" -c "$T/hub.yaml" >"$T/cli.out" 2>"$T/cli.err" || rc=$?
  return $rc
}
printf '%s\n' "$OPE" >"$T/ope.token"
chmod 600 "$T/ope.token"
rc=0; cli pause desk || rc=$?
[ $rc = 1 ] && grep -q "the hub wants a token (401): put one in RELAIS_ADMIN_TOKEN or give --token-file FILE" "$T/cli.err" \
  || fail "relais connectors pause without a token: rc $rc: $(cat "$T/cli.out" "$T/cli.err")"
rc=0; RELAIS_ADMIN_TOKEN=$AUD cli pause desk || rc=$?
[ $rc = 1 ] && grep -q "the hub refused the token (403)" "$T/cli.err" \
  || fail "relais connectors pause as the auditor: rc $rc: $(cat "$T/cli.out" "$T/cli.err")"
rc=0; cli pause nosuch --token-file "$T/ope.token" || rc=$?
[ $rc = 1 ] && grep -q "nosuch" "$T/cli.err" && grep -q "(404)" "$T/cli.err" \
  || fail "relais connectors pause of an unknown instance: rc $rc: $(cat "$T/cli.out" "$T/cli.err")"
[ "$(conn desk paused)" = false ] || fail "desk paused by a refused CLI call"
RELAIS_ADMIN_TOKEN=$AUD cli list || fail "relais connectors list as the auditor: $(cat "$T/cli.err")"
head -n 1 "$T/cli.out" | grep -qE "^NAME +TYPE +MODE +PAUSED +CIRCUIT +QUEUED +HELD +PAUSED BY" \
  && grep -qE "^desk +http +source +no +- " "$T/cli.out" && grep -qE "^b +http +sink +no +closed +[0-9]+ +0 *$" "$T/cli.out" \
  || fail "relais connectors list: $(cat "$T/cli.out")"
pass "relais connectors pause/list: no token 401 (says how to give one), auditor 403, unknown name 404; list as the auditor"

# ---- pausing the sources (the webhook and the drop folder from the CLI) ----------
cli pause desk --token-file "$T/ope.token" || fail "relais connectors pause desk: $(cat "$T/cli.err")"
[ "$(cat "$T/cli.out")" = "desk: paused" ] || fail "relais connectors pause desk: $(cat "$T/cli.out")"
out=$(post '{"id":"S-1"}')
[ "${out%% *}" = 503 ] || fail "POST to the paused webhook: $out"
tr -d '\r' <"$T/hdr" | grep -qi '^Retry-After: [0-9]' || fail "503 without Retry-After: $(cat "$T/hdr")"
[ "$(metric relais_connector_paused desk)" = 1 ] && [ "$(conn desk paused)" = true ] || fail "desk not shown paused"
RELAIS_ADMIN_TOKEN=$OPE cli pause drop || fail "relais connectors pause drop: $(cat "$T/cli.err")"
RELAIS_ADMIN_TOKEN=$AUD cli list --json || fail "relais connectors list --json: $(cat "$T/cli.err")"
python3 -c 'import json,sys; c={c["name"]: c for c in json.load(open(sys.argv[1]))}; sys.exit(not (c["drop"]["paused"] and c["desk"]["paused"] and c["drop"]["paused_by"] == "olivier-ops (operator)"))' "$T/cli.out" \
  || fail "relais connectors list --json after the pauses: $(cat "$T/cli.out")"
echo '{"id":"F-1"}' >"$T/drop/.f1.tmp" && mv "$T/drop/.f1.tmp" "$T/drop/f1.jsonl"
sleep 1.5   # several rounds of the source loop
[ -f "$T/drop/f1.jsonl" ] || fail "the paused drop folder took its file"
[ "$(sql "$DB" "SELECT count(*) FROM events WHERE record_id IN ('S-1', 'F-1')")" = 0 ] || fail "a paused source took a record"
polls() { curl -fsS "$WCS/_sim/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("lists", 0))'; }
[ "$(polls)" -gt 0 ] || fail "the Publik poller never polled"
expect 200 POST /connectors/grc/pause "$OPE"
sleep 0.5   # a poll under way finishes
before=$(polls)
sleep 1.5   # seven poll intervals
[ "$(polls)" = "$before" ] || fail "the paused Publik poller polled ($before, then $(polls) list calls)"
pass "paused sources: the webhook answers 503 with Retry-After, the drop folder leaves its file, the poller stops"

cli resume desk --token-file "$T/ope.token" || fail "relais connectors resume desk: $(cat "$T/cli.err")"
[ "$(cat "$T/cli.out")" = "desk: resumed" ] || fail "relais connectors resume desk: $(cat "$T/cli.out")"
out=$(post '{"id":"S-1"}'); [ "${out%% *}" = 202 ] || fail "POST after the resume: $out"
RELAIS_ADMIN_TOKEN=$OPE cli resume drop || fail "relais connectors resume drop: $(cat "$T/cli.err")"
wait_for "the drop folder takes its file" 10 test ! -e "$T/drop/f1.jsonl"
expect 200 POST /connectors/grc/resume "$OPE"
above() { [ "$(polls)" -gt "$1" ]; }
wait_for "the Publik poller polls again" 10 above "$before"
wait_eq "a gets S-1 and F-1" 20 13 sim_stat "$SIM_URL_a" distinct
wait_eq "b gets S-1 and F-1" 20 13 sim_stat "$SIM_URL_b" distinct
[ "$(sql "$DB" "SELECT count(*) FROM steps WHERE event_id IS NULL AND destination IN ('desk', 'drop', 'grc') AND detail = 'olivier-ops (operator)'")" = 6 ] \
  || fail "source pause steps: $(actions)"
pass "sources resumed: the webhook answers 202, the drop folder takes its file, the poller polls; 6 steps naming the token"

# ---- a pause ends with the process ------------------------------------------
expect 200 POST /connectors/b/pause "$OPE"
out=$(post '{"id":"R-1"}'); [ "${out%% *}" = 202 ] || fail "R-1: $out"
wait_eq "a gets R-1" 20 14 sim_stat "$SIM_URL_a" distinct
wait_eq "R-1 held for b" 20 "1 0" pending_b
stop_hub "$HUB_PID"
grep -q "handed back 1 queued delivery" "$T/hub-a.log" || fail "the held delivery was not handed back at the stop"
[ "$(sql "$DB" "SELECT count(*) FROM deliveries WHERE destination = 'b' AND status = 'pending' AND lease_owner IS NULL")" = 1 ] \
  || fail "the held delivery still leased after the stop"
start_hub b "$T/hub.yaml"
wait_eq "b gets R-1 after a restart (the pause is gone)" 20 14 sim_stat "$SIM_URL_b" distinct
[ "$(conn b paused)" = false ] || fail "the pause survived the restart"
stop_hub "$HUB_PID"
pass "a pause is lost at restart: held deliveries handed back at SIGTERM and delivered by the next process"

"$RELAIS_BIN" audit verify -c "$T/hub.yaml" >"$T/verify.txt" 2>&1 || { cat "$T/verify.txt"; fail "the journal does not verify"; }
pass "the journal with the pause steps verifies: $(tail -n 1 "$T/verify.txt")"
