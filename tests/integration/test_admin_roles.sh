#!/usr/bin/env bash
# Roles of the admin HTTP API (docs/SECURITY.md "Roles and tokens"): three
# tokens made with `relais token new`, every route called with no token, a
# wrong token and each role; /healthz public; reads of personal data
# journaled as personal_data_read steps naming the token; the hub without
# tokens (loopback only, with a warning); the hub refusing to start on a
# non-loopback address without tokens, on a tokens file others can read and
# on a malformed line.
. "$(dirname "$0")/lib.sh"

# ---- three tokens -----------------------------------------------------------
: >"$T/tokens"
chmod 600 "$T/tokens"
newtok() {   # NAME ROLE -> prints the token; its line goes to the tokens file
  local tok
  tok=$("$RELAIS_BIN" token new --name "$1" --role "$2" 2>"$T/line") || fail "relais token new $1 $2"
  [ "$(wc -l <"$T/line")" = 1 ] || fail "token new wrote more than the line on stderr: $(cat "$T/line")"
  grep -qE "^$1 $2 sha256:[0-9a-f]{64}$" "$T/line" || fail "token new line: $(cat "$T/line")"
  grep -q -- "$tok" "$T/line" && fail "the raw token is in the file line"
  [ "$(printf %s "$tok" | sha256sum | cut -d' ' -f1)" = "$(sed 's/.*sha256://' "$T/line")" ] \
    || fail "the line's hash is not the SHA-256 of the token"
  cat "$T/line" >>"$T/tokens"
  echo "$tok"
}
AUD=$(newtok carole-audit auditor)
OPE=$(newtok olivier-ops operator)
ADM=$(newtok anne-admin admin)
[ "$AUD" != "$OPE" ] && [ "$OPE" != "$ADM" ] || fail "two tokens alike"
echo "$AUD" | grep -qE '^relais_[A-Za-z0-9_-]{43}$' || fail "token shape: $AUD"
set +e
"$RELAIS_BIN" token new --name x --role boss >/dev/null 2>"$T/e"; rc=$?
set -e
[ $rc = 2 ] && grep -q "auditor, operator or admin" "$T/e" || fail "token new with an unknown role: rc $rc"
sed -i '1i # admin API tokens of the integration test\n' "$T/tokens"   # a comment and a blank line
pass "relais token new: the token on stdout, its line (name, role, SHA-256 only) on stderr"

# ---- a hub with the tokens, a sink that refuses everything ------------------
DB=$(fresh_db roles)
start_sim works
curl -fsS -X POST "$SIM_URL_works/_sim/fail" -d '{"status":503,"count":-1}' >/dev/null
SRC=$(free_port)
MAX_ATTEMPTS=1 write_config "$T/hub.yaml" "$DB" "$SRC" "works=$SIM_URL_works"
sed -i "/^hub:/a\\  admin_tokens: $T/tokens\\n  fault_injection: true" "$T/hub.yaml"
"$RELAIS_BIN" check -c "$T/hub.yaml" >/dev/null || fail "the configuration with admin_tokens is not valid"
start_hub roles "$T/hub.yaml"
grep -q "3 token(s)" "$T/hub-roles.log" || fail "the hub does not say it loaded 3 tokens"
for i in 1 2 3 4; do
  out=$(post_json "http://127.0.0.1:$SRC/events" "{\"id\":\"R-$i\",\"email\":\"habitant$i@example.org\"}")
  [ "${out%% *}" = 202 ] || fail "POST R-$i answered $out"
done
wait_eq "four dead deliveries" 30 4 sql "$DB" "SELECT count(*) FROM deliveries WHERE status = 'dead'"
ev() { sql "$DB" "SELECT id FROM events WHERE record_id = '$1'"; }
EV1=$(ev R-1); EV2=$(ev R-2); EV3=$(ev R-3); EV4=$(ev R-4)

# call METHOD PATH TOKEN [BODY] -> HTTP status; headers in $T/hdr, body in $T/body
call() {
  local m=$1 p=$2 tok=$3 body=${4-}
  local args=(-sS -o "$T/body" -D "$T/hdr" -w '%{http_code}' -X "$m")
  [ -n "$tok" ] && args+=(-H "Authorization: Bearer $tok")
  [ "$m" = POST ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
  curl "${args[@]}" "$ADMIN$p"
}
# expect STATUS METHOD PATH TOKEN [BODY]
expect() {
  local want=$1 got; shift
  got=$(call "$@")
  [ "$got" = "$want" ] || fail "$1 $2 with token '${3:0:12}': $got, expected $want: $(cat "$T/body")"
  if [ "$want" -ge 400 ]; then
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert set(d)=={"error"} and d["error"], d' "$T/body" \
      || fail "$1 $2: $want without a JSON {\"error\": ...}: $(cat "$T/body")"
  fi
}
# anonymous METHOD PATH [BODY]: no token and a wrong token both get 401
anonymous() {
  expect 401 "$1" "$2" "" "${3-}"
  tr -d '\r' <"$T/hdr" | grep -qx 'WWW-Authenticate: Bearer realm="relais"' || fail "$1 $2: 401 without WWW-Authenticate"
  expect 401 "$1" "$2" "relais_not-a-known-token-not-a-known-token-xxxxxxx" "${3-}"
  tr -d '\r' <"$T/hdr" | grep -q '^WWW-Authenticate: Bearer realm="relais"' || fail "$1 $2: 401 without WWW-Authenticate"
  expect 401 "$1" "$2" "${ADM:0:20}" "${3-}"     # a prefix of a real token is no token
}

# ---- every route ------------------------------------------------------------
expect 200 GET /healthz ""
grep -q '"status":"ok"' "$T/body" || fail "/healthz: $(cat "$T/body")"
pass "/healthz answers without a token (probes)"

anonymous GET /metrics
for t in "$AUD" "$OPE" "$ADM"; do expect 200 GET /metrics "$t"; done
grep -q '^relais_events_in_total{connector="desk"} 4' "$T/body" || fail "/metrics: $(head -c 300 "$T/body")"
pass "GET /metrics: 401 without a token or with a wrong one; auditor, operator, admin 200"

anonymous GET /trace/R-1
expect 200 GET /trace/R-1 "$AUD"
python3 -c 'import json,sys; t=json.load(open(sys.argv[1])); assert t["events"][0]["recordid"]=="R-1" and t["events"][0]["steps"], t' \
  "$T/body" || fail "GET /trace/R-1: $(cat "$T/body")"
expect 200 GET /trace/R-2 "$OPE"
expect 200 GET "/trace/$EV3" "$ADM"
grep -q "\"recordid\":\"R-3\"" "$T/body" || fail "trace by event id: $(cat "$T/body")"
pass "GET /trace/{id}: 401 anonymous; auditor, operator, admin get relais_journal_trace's JSON"

anonymous GET /dlq
for t in "$AUD" "$OPE" "$ADM"; do expect 200 GET /dlq "$t"; done
python3 -c 'import json,sys; l=json.load(open(sys.argv[1])); assert len(l)==4 and {d["destination"] for d in l}=={"works"}, l' \
  "$T/body" || fail "GET /dlq: $(cat "$T/body")"
expect 200 GET "/dlq?limit=2" "$AUD"
python3 -c 'import json,sys; assert len(json.load(open(sys.argv[1])))==2' "$T/body" || fail "GET /dlq?limit=2"
expect 400 GET "/dlq?limit=x" "$AUD"
pass "GET /dlq: 401 anonymous; auditor, operator, admin get the dead-lettered deliveries"

anonymous GET /person/habitant1@example.org
expect 200 GET /person/habitant1@example.org "$AUD"
python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); assert [e["subject"] for e in p["events"]]==["R-1"], p' \
  "$T/body" || fail "GET /person: $(cat "$T/body")"
expect 200 GET /person/habitant1%40example.org "$OPE"     # {id} is percent-decoded
python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); assert p["query"]=="habitant1@example.org" and len(p["events"])==1, p' \
  "$T/body" || fail "GET /person/habitant1%40example.org: $(cat "$T/body")"
expect 200 GET /person/nobody@example.org "$OPE"
expect 200 GET /person/R-2 "$ADM"
pass "GET /person/{id}: 401 anonymous; auditor, operator, admin get relais_journal_person's JSON"

curl -fsS -X POST "$SIM_URL_works/_sim/reset" >/dev/null   # replayed deliveries now go through
anonymous POST "/replay/$EV1"
expect 403 POST "/replay/$EV1" "$AUD"
grep -q "needs operator" "$T/body" || fail "403 does not say the role needed: $(cat "$T/body")"
[ "$(sql "$DB" "SELECT status FROM deliveries WHERE event_id = '$EV1'")" = dead ] || fail "an auditor's replay changed something"
expect 200 POST "/replay/$EV1" "$OPE"
grep -q '"replayed":1' "$T/body" || fail "replay: $(cat "$T/body")"
expect 200 POST "/replay/$EV2" "$ADM"
expect 404 POST "/replay/$EV2" "$ADM"        # no longer dead
expect 400 POST "/replay/not-an-id" "$OPE"
[ "$(sql "$DB" "SELECT count(*) FROM steps WHERE step = 'replayed'")" = 2 ] || fail "replayed steps"
pass "POST /replay/{id}: 401 anonymous, auditor 403 (nothing changed), operator and admin 200"

anonymous POST "/discard/$EV3" '{"reason":"x"}'
expect 403 POST "/discard/$EV3" "$AUD" '{"reason":"duplicate request"}'
expect 400 POST "/discard/$EV3" "$OPE" '{}'
expect 400 POST "/discard/$EV3" "$OPE" 'not json'
expect 200 POST "/discard/$EV3" "$OPE" '{"reason":"duplicate request"}'
grep -q '"discarded":1' "$T/body" || fail "discard: $(cat "$T/body")"
expect 200 POST "/discard/$EV4" "$ADM" '{"reason":"sent by hand"}'
[ "$(sql "$DB" "SELECT count(*) FROM steps WHERE step = 'discarded' AND detail LIKE '%duplicate request%'")" = 1 ] \
  || fail "the discard's reason is not journaled"
big=$(python3 -c 'print("{\"reason\":\"" + "x"*20000 + "\"}")')
expect 413 POST "/discard/$EV4" "$ADM" "$big"
pass "POST /discard/{id} {reason}: 401 anonymous, auditor 403, operator and admin 200; no reason 400; body too large 413"

anonymous GET /connectors
for t in "$AUD" "$OPE" "$ADM"; do expect 200 GET /connectors "$t"; done
python3 -c 'import json,sys; l=json.load(open(sys.argv[1])); assert [(c["name"], c["mode"], c["paused"]) for c in l]==[("desk","source",False),("works","sink",False)], l' \
  "$T/body" || fail "GET /connectors: $(cat "$T/body")"
pass "GET /connectors: 401 anonymous; auditor, operator, admin get every instance"

paused() { expect 200 GET /connectors "$AUD"; python3 -c 'import json,sys; print([c["paused"] for c in json.load(open(sys.argv[1])) if c["name"]=="works"][0])' "$T/body"; }
anonymous POST /connectors/works/pause
expect 403 POST /connectors/works/pause "$AUD"
grep -q "needs operator" "$T/body" || fail "403 does not say the role needed: $(cat "$T/body")"
[ "$(paused)" = False ] || fail "an auditor's pause changed something"
expect 200 POST /connectors/works/pause "$OPE"
grep -q '"status":"paused"' "$T/body" || fail "pause: $(cat "$T/body")"
expect 200 POST /connectors/works/pause "$ADM"
grep -q '"status":"already paused"' "$T/body" || fail "pause twice: $(cat "$T/body")"
[ "$(paused)" = True ] || fail "works not paused"
expect 404 POST /connectors/nosuch/pause "$OPE"
pass "POST /connectors/{name}/pause: 401 anonymous, auditor 403 (nothing changed), operator and admin 200; unknown name 404"

anonymous POST /connectors/works/resume
expect 403 POST /connectors/works/resume "$AUD"
[ "$(paused)" = True ] || fail "an auditor's resume changed something"
expect 200 POST /connectors/works/resume "$ADM"
grep -q '"status":"resumed"' "$T/body" || fail "resume: $(cat "$T/body")"
expect 200 POST /connectors/works/resume "$OPE"
grep -q '"status":"already running"' "$T/body" || fail "resume twice: $(cat "$T/body")"
[ "$(paused)" = False ] || fail "works still paused"
[ "$(sql "$DB" "SELECT step || ' ' || destination || ' ' || detail FROM steps WHERE event_id IS NULL AND step IN ('paused', 'resumed') ORDER BY id")" \
  = "$(printf 'paused works olivier-ops (operator)\nresumed works anne-admin (admin)')" ] || fail "pause and resume not journaled with the token's name"
pass "POST /connectors/{name}/resume: 401 anonymous, auditor 403, operator and admin 200; both journaled naming the token"

anonymous POST /reload
expect 403 POST /reload "$AUD"
expect 403 POST /reload "$OPE"
expect 200 POST /reload "$ADM"
grep -q '"reloaded":0' "$T/body" || fail "reload: $(cat "$T/body")"
pass "POST /reload: 401 anonymous, auditor and operator 403, admin 200"

# relais reload: the same route with the caller's token (--token-file or
# RELAIS_ADMIN_TOKEN), the same roles
set +e
"$RELAIS_BIN" reload -c "$T/hub.yaml" >"$T/cli.out" 2>"$T/cli.err"; rc1=$?
printf '%s\n' "$OPE" >"$T/ope.token"
"$RELAIS_BIN" reload -c "$T/hub.yaml" --token-file "$T/ope.token" >"$T/cli2.out" 2>"$T/cli2.err"; rc2=$?
"$RELAIS_BIN" reload -c "$T/hub.yaml" --token-file "$T/no-such.token" >/dev/null 2>"$T/cli3.err"; rc3=$?
set -e
[ $rc1 = 1 ] && grep -q "relais reload: the hub wants a token (401): put one in RELAIS_ADMIN_TOKEN or give --token-file FILE" "$T/cli.err" \
  || fail "relais reload without a token: rc $rc1: $(cat "$T/cli.out" "$T/cli.err")"
[ $rc2 = 1 ] && grep -q "relais reload: the hub refused the token (403): .*admin" "$T/cli2.err" \
  || fail "relais reload with the operator's token: rc $rc2: $(cat "$T/cli2.out" "$T/cli2.err")"
[ $rc3 = 1 ] && grep -q "relais reload: --token-file: cannot read $T/no-such.token" "$T/cli3.err" \
  || fail "relais reload with a missing token file: rc $rc3: $(cat "$T/cli3.err")"
RELAIS_ADMIN_TOKEN=$ADM "$RELAIS_BIN" reload -c "$T/hub.yaml" >"$T/cli.out" 2>"$T/cli.err" \
  || fail "relais reload with the admin's token: $(cat "$T/cli.out" "$T/cli.err")"
[ "$(cat "$T/cli.out")" = "reloaded 0 mapping(s) and 3 admin token(s)" ] || fail "relais reload: $(cat "$T/cli.out")"
grep -q "anne-admin (admin) reloaded" "$T/hub-roles.log" || fail "the CLI's reload is not logged with the token's name"
pass "relais reload: no token 401 (says how to give one), operator 403, unreadable --token-file named, admin (RELAIS_ADMIN_TOKEN) reloads, logged with the token's name"

anonymous POST "/fault/bus?action=up"
expect 403 POST "/fault/bus?action=up" "$AUD"
expect 403 POST "/fault/bus?action=up" "$OPE"
expect 200 POST "/fault/bus?action=up" "$ADM"
expect 404 POST "/fault/other" "$ADM"
pass "POST /fault/*: 401 anonymous, auditor and operator 403, admin 200"

expect 401 GET /nowhere ""
expect 404 GET /nowhere "$AUD"
expect 405 GET /reload "$ADM"
expect 405 DELETE /dlq "$ADM"
expect 405 POST /connectors "$ADM"
expect 405 GET /connectors/works/pause "$ADM"
pass "unknown paths: 401 without a token (nothing told), 404 with one; wrong method 405"

# ---- reads of personal data are journaled -----------------------------------
reads() { sql "$DB" "SELECT coalesce(event_id::text, '-') || ' ' || detail FROM steps WHERE step = 'personal_data_read' AND detail LIKE '$1' ORDER BY id"; }
wait_eq "trace read journaled" 10 "$EV1 carole-audit (auditor) GET /trace/R-1" reads '%/trace/R-1'
wait_eq "trace by event id journaled" 10 "$EV3 anne-admin (admin) GET /trace/$EV3" reads "%/trace/$EV3"
wait_eq "person read journaled" 10 "$EV1 carole-audit (auditor) GET /person/habitant1@example.org" reads 'carole-audit%/person/habitant1@%'
wait_eq "percent-encoded person read journaled" 10 "$EV1 olivier-ops (operator) GET /person/habitant1@example.org" \
  reads 'olivier-ops%/person/habitant1@%'
wait_eq "empty person read journaled" 10 "- olivier-ops (operator) GET /person/nobody@example.org" reads '%/person/nobody@%'
[ "$(sql "$DB" "SELECT count(*) FROM steps WHERE step = 'personal_data_read' AND detail LIKE '%/dlq%'")" = 0 ] \
  || fail "GET /dlq journaled as a read of personal data"
# the auditor's own trace of R-1 now shows who read it
expect 200 GET /trace/R-1 "$ADM"
grep -q '"step":"personal_data_read"' "$T/body" || fail "the trace of R-1 does not show the earlier read"
pass "GET /trace and GET /person journaled as personal_data_read: token name, role, path; per event shown"
# the 401/403 logs never carry a token or a person's id
grep -q "$AUD\|$OPE\|$ADM" "$T/hub-roles.log" && fail "a token is in the hub's log"
grep -q "habitant1@example.org" "$T/hub-roles.log" && fail "a person's email is in the hub's log"
grep -q "olivier-ops (operator) replayed 1 delivery" "$T/hub-roles.log" || fail "the replay is not logged with its token's name"
pass "tokens and personal ids stay out of the log; actions are logged with the token's name"

# ---- revoking a token without a restart: edit the file, reload --------------
cp "$T/tokens" "$T/tokens.before"
grep -v "^olivier-ops " "$T/tokens.before" >"$T/tokens"
expect 200 GET /dlq "$OPE"       # still valid until the reload
expect 200 POST /reload "$ADM"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(d != {"reloaded": 0, "tokens": 2})' "$T/body" \
  || fail "POST /reload after removing a token: $(cat "$T/body")"
expect 401 GET /dlq "$OPE"
expect 200 GET /dlq "$AUD"
grep -q "2 admin token(s) reloaded from $T/tokens" "$T/hub-roles.log" || fail "the tokens reload is not logged"
# a broken tokens file: the reload is refused, naming FILE:LINE, and the tokens in use stay
printf 'intrus boss sha256:%064d\n' 0 >>"$T/tokens"
expect 422 POST /reload "$ADM"
grep -q "tokens:[0-9]*: .*role" "$T/body" || fail "the refused reload does not name the tokens file's line: $(cat "$T/body")"
expect 200 GET /dlq "$AUD"
expect 401 GET /dlq "$OPE"
# the same through SIGHUP once the file is right again (the operator back)
cp "$T/tokens.before" "$T/tokens"
kill -HUP "$HUB_PID"
wait_for "the operator's token back after SIGHUP" 10 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $OPE' '$ADMIN/dlq')\" = 200 ]"
grep -q "3 admin token(s) reloaded" "$T/hub-roles.log" || fail "the SIGHUP reload of the tokens is not logged"
stop_hub "$HUB_PID"
pass "token revoked by editing the file and reloading (POST /reload: 401 from then on); a broken file refused (422, FILE:LINE), tokens kept; SIGHUP reloads them too"

# ---- no tokens file: loopback only, unauthenticated, with a warning ---------
write_config "$T/open.yaml" "$DB" "$(free_port)" "works=$SIM_URL_works"
start_hub open "$T/open.yaml"
expect 200 GET /dlq ""
expect 200 POST /reload ""
expect 200 GET /person/R-1 ""
wait_eq "unauthenticated read journaled" 10 "$EV1 unauthenticated (admin) GET /person/R-1" reads '%/person/R-1'
grep -q "admin API on 127.0.0.1:0 is unauthenticated (no hub.admin_tokens)" "$T/hub-open.log" \
  || fail "no warning that the admin API is unauthenticated"
stop_hub "$HUB_PID"
pass "without hub.admin_tokens on loopback: calls go through (as before) and a warning is logged at start"

# ---- refusals to start --------------------------------------------------------
refused() {   # CONFIG TEXT: `relais run` exits 1 at once with TEXT on stderr
  local rc=0
  timeout 20 "$RELAIS_BIN" run -c "$1" >"$T/refused.out" 2>&1 || rc=$?
  [ $rc = 1 ] || fail "relais run -c $1: exit $rc, expected 1: $(cat "$T/refused.out")"
  grep -qF -- "$2" "$T/refused.out" || fail "relais run -c $1 does not say '$2': $(cat "$T/refused.out")"
  rc=0
  "$RELAIS_BIN" check -c "$1" >/dev/null 2>&1 || rc=$?
  [ $rc = 1 ] || fail "relais check -c $1: exit $rc"
}
write_config "$T/wide.yaml" "$DB" "$(free_port)" "works=$SIM_URL_works"
sed -i 's/admin_listen: 127.0.0.1:0/admin_listen: 0.0.0.0:0/' "$T/wide.yaml"
refused "$T/wide.yaml" "'hub.admin_listen' 0.0.0.0:0 is not a loopback address (127.x.x.x): set 'hub.admin_tokens'"
grep -q "wide.yaml:" "$T/refused.out" || fail "the refusal does not name the configuration file"
pass "admin_listen 0.0.0.0:0 without hub.admin_tokens: refused (exit 1), naming hub.admin_tokens"

cp "$T/tokens" "$T/tokens-640"
chmod 640 "$T/tokens-640"
sed "/^hub:/a\\  admin_tokens: $T/tokens-640" "$T/wide.yaml" >"$T/group.yaml"
refused "$T/group.yaml" "$T/tokens-640: readable by others (mode 640)"
pass "a tokens file the group can read is refused, naming the file"

printf '# tokens\n%s\nbruno auditor sha256:1234\n' "$(sed -n 3p "$T/tokens")" >"$T/tokens-bad"
chmod 600 "$T/tokens-bad"
sed "/^hub:/a\\  admin_tokens: $T/tokens-bad" "$T/wide.yaml" >"$T/bad.yaml"
refused "$T/bad.yaml" "$T/tokens-bad:3: field 'hash'"
printf 'bruno superuser sha256:%064d\n' 0 >"$T/tokens-bad"
refused "$T/bad.yaml" "$T/tokens-bad:1: field 'role': unknown role 'superuser'"
pass "a malformed line is refused naming FILE:LINE and the field"
