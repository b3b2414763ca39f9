#!/usr/bin/env bash
# Database roles (issue 7; migration 6, schemas/sql/roles.sql): LOGIN roles
# made for this run, members of relais_hub, relais_auditor, relais_operator
# and relais_retention (dropped at the end: the cluster is shared).
#  - a hub connected as the relais_hub member carries a real flow (webhook ->
#    sinks, a retry, a dead letter, a rejection): the grants are enough; as
#    that member, UPDATE/DELETE on steps and events, DELETE on rejections are
#    refused;
#  - the auditor member runs `relais trace`, `relais person`, `relais audit
#    verify`, and cannot read events.body nor change deliveries;
#  - the operator member replays and discards dead deliveries;
#  - the retention member purges payloads, and cannot delete;
#  - a database owner without CREATEROLE migrates all the same; roles.sql run
#    by a user who may not create missing roles warns and grants nothing,
#    then a superuser's run creates them (with role names of this run).
. "$(dirname "$0")/lib.sh"

PSQL_SU=(psql -X -q -v ON_ERROR_STOP=1 -h "$RELAIS_TEST_PGHOST" -p "$PGPORT_" -U postgres)
DB=$(fresh_db roles)
DBNAME=${DB##*dbname=}; DBNAME=${DBNAME%% *}
"$RELAIS_BIN" db migrate --db "$DB" >"$T/mig.txt" || fail "relais db migrate as the owner: $(cat "$T/mig.txt")"
grep -qE "^schema at version [0-9]+: [0-9]+ migration\(s\) applied$" "$T/mig.txt" || fail "relais db migrate: $(cat "$T/mig.txt")"
for g in relais_hub relais_auditor relais_operator relais_retention; do
  [ "$(sql "$DB" "SELECT count(*) FROM pg_roles WHERE rolname = '$g' AND NOT rolcanlogin")" = 1 ] || fail "group role $g missing"
done
[ "$(sql "$DB" "SELECT pg_has_role('relais_operator', 'relais_auditor', 'MEMBER')")" = t ] || fail "an operator is not an auditor"

SUF="$$_$RANDOM"
RH="it_rh_$SUF" RA="it_ra_$SUF" RO="it_ro_$SUF" RR="it_rr_$SUF" OWN="it_own_$SUF" OWNDB="it_owndb_$SUF"
drop_all() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  PIDS=()
  "${PSQL_SU[@]}" -d postgres -c "DROP DATABASE IF EXISTS $OWNDB WITH (FORCE)" >/dev/null 2>&1 || true
  for r in "$RH" "$RA" "$RO" "$RR" "$OWN" "relais_hub_t$SUF" "relais_auditor_t$SUF" "relais_operator_t$SUF" "relais_retention_t$SUF"; do
    "${PSQL_SU[@]}" -d postgres -c "DROP ROLE IF EXISTS $r" >/dev/null 2>&1 || echo "could not drop role $r" >&2
  done
}
trap 'rc=$?; drop_all; (exit $rc); it_cleanup' EXIT
"${PSQL_SU[@]}" -d postgres -c "CREATE ROLE $RH LOGIN IN ROLE relais_hub" -c "CREATE ROLE $RA LOGIN IN ROLE relais_auditor" \
  -c "CREATE ROLE $RO LOGIN IN ROLE relais_operator" -c "CREATE ROLE $RR LOGIN IN ROLE relais_retention" >/dev/null
DB_RH=${DB/user=postgres/user=$RH}; DB_RA=${DB/user=postgres/user=$RA}
DB_RO=${DB/user=postgres/user=$RO}; DB_RR=${DB/user=postgres/user=$RR}

# ---- who migrates: not relais_hub (it may create nothing), the schema owner
DB2=$(fresh_db roles_mig)
rc=0; "$RELAIS_BIN" db migrate --db "${DB2/user=postgres/user=$RH}" >"$T/mig-rh.txt" 2>&1 || rc=$?
[ $rc = 1 ] && grep -qE "^relais db migrate: migrations: .*permission denied" "$T/mig-rh.txt" \
  || fail "relais db migrate as $RH on a new database: rc $rc: $(cat "$T/mig-rh.txt")"
[ "$(sql "$DB2" "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")" = 0 ] || fail "$RH's failed migration left tables"
"$RELAIS_BIN" db migrate --db "$DB2" >"$T/mig2.txt" || fail "relais db migrate as the owner: $(cat "$T/mig2.txt")"
"$RELAIS_BIN" db migrate --db "${DB2/user=postgres/user=$RH}" >"$T/mig3.txt" 2>&1 \
  || fail "relais db migrate as $RH on a migrated database: $(cat "$T/mig3.txt")"
grep -qE "^schema at version [0-9]+: up to date, nothing applied$" "$T/mig3.txt" || fail "relais db migrate again: $(cat "$T/mig3.txt")"
pass "relais db migrate: refused as $RH on a new database (permission denied, nothing left behind), applied as the owner, then up to date for $RH"

# refused QUERY as CONNINFO: "permission denied"
denied() {
  local out
  if out=$(psql -X -q -v ON_ERROR_STOP=1 "$1" -c "$2" 2>&1); then fail "allowed as ${1##*user=}: $2"; fi
  grep -q "permission denied" <<<"$out" || fail "as ${1##*user=}: $2: expected permission denied, got: $out"
}

# ---- the hub as the relais_hub member: webhook -> sinks, a retry, a dead letter, a rejection
start_sim good
start_sim bad
SRC=$(free_port)
MAX_ATTEMPTS=2 write_config "$T/hub.yaml" "$DB_RH" "$SRC" "good=$SIM_URL_good" "bad=$SIM_URL_bad"
STATE="$T/state-hub"; KEY="$STATE/audit.key"; CPS="$STATE/audit.checkpoints"
curl -fsS -X POST "$SIM_URL_good/_sim/fail" -d '{"status":503,"count":1}' >/dev/null
curl -fsS -X POST "$SIM_URL_bad/_sim/fail" -d '{"status":503,"count":-1}' >/dev/null
start_hub a "$T/hub.yaml"
for i in 1 2; do
  out=$(post_json "http://127.0.0.1:$SRC/events" "{\"id\":\"A-$i\",\"category\":\"voirie\",\"description\":\"nid de poule $i\"}")
  [ "${out%% *}" = 202 ] || fail "POST A-$i answered $out"
done
out=$(post_json "http://127.0.0.1:$SRC/events" '{"id": "A-bad", ') || true
[ "${out%% *}" = 400 ] || fail "a truncated body should be refused (got $out)"
wait_eq "2 events at good" 30 2 sim_stat "$SIM_URL_good" distinct
wait_eq "2 dead letters at bad" 30 2 sql "$DB" "SELECT count(*) FROM deliveries WHERE destination = 'bad' AND status = 'dead'"
[ "$(sql "$DB" "SELECT count(*) >= 1 FROM steps WHERE step = 'retry_scheduled' AND destination = 'good'")" = t ] || fail "no retry at good"
[ "$(sql "$DB" "SELECT count(*) FROM rejections")" = 1 ] || fail "the refused body is not journaled"
[ "$(sql "$DB" "SELECT count(*) FROM steps WHERE mac IS NULL")" = 0 ] || fail "unsigned steps"
[ "$(sql "$DB" "SELECT string_agg(DISTINCT usename::text, ',') FROM pg_stat_activity WHERE datname = '$DBNAME' AND application_name LIKE 'relais%'")" = "$RH" ] \
  || fail "the hub is not connected as $RH only"
pass "a hub connected as $RH (relais_hub) journals, retries, dead-letters and rejects"

denied "$DB_RH" "DELETE FROM steps WHERE step = 'delivered'"
denied "$DB_RH" "UPDATE steps SET detail = 'forged' WHERE step = 'delivered'"
denied "$DB_RH" "DELETE FROM events WHERE record_id = 'A-1'"
denied "$DB_RH" "UPDATE events SET body = NULL WHERE record_id = 'A-1'"
denied "$DB_RH" "DELETE FROM rejections"
denied "$DB_RH" "UPDATE rejections SET reason = 'forged'"
denied "$DB_RH" "TRUNCATE steps"
pass "as $RH: UPDATE/DELETE on steps and events, DELETE/UPDATE on rejections, TRUNCATE: permission denied"

# ---- the auditor member: trace, person, verify; no payload, no change
"$RELAIS_BIN" trace --db "$DB_RA" A-1 >"$T/ra-trace.txt" 2>&1 || { cat "$T/ra-trace.txt"; fail "trace as the auditor"; }
for s in received routed retry_scheduled delivered dead_lettered; do
  grep -qE "^  [0-9T:.Z-]+  $s " "$T/ra-trace.txt" || { cat "$T/ra-trace.txt"; fail "the auditor's trace lacks step $s"; }
done
grep -q "^  data not shown: this database role may not read payloads" "$T/ra-trace.txt" || { cat "$T/ra-trace.txt"; fail "payload not withheld"; }
grep -q "nid de poule" "$T/ra-trace.txt" && fail "the auditor's trace shows the payload"
"$RELAIS_BIN" trace --db "$DB_RA" --show-personal A-1 >"$T/ra-trace2.txt" 2>&1 || { cat "$T/ra-trace2.txt"; fail "trace --show-personal as the auditor"; }
grep -q "nid de poule" "$T/ra-trace2.txt" && fail "--show-personal gave the auditor the payload"
"$RELAIS_BIN" person --db "$DB_RA" "nid de poule 2" >"$T/ra-person.txt" 2>&1 || { cat "$T/ra-person.txt"; fail "person as the auditor"; }
grep -q "^Events about nid de poule 2: 1$" "$T/ra-person.txt" || { cat "$T/ra-person.txt"; fail "person as the auditor finds the event by a value of its data"; }
grep -qE "^  good +1 event" "$T/ra-person.txt" || { cat "$T/ra-person.txt"; fail "person as the auditor lists the package"; }
"$RELAIS_BIN" dlq list --db "$DB_RA" | grep "^2 dead-lettered deliveries" >/dev/null || fail "dlq list as the auditor"
"$RELAIS_BIN" audit verify --db "$DB_RA" --audit-key "$KEY" --checkpoints "$CPS" >"$T/ra-verify.txt" 2>&1 \
  || { cat "$T/ra-verify.txt"; fail "audit verify as the auditor"; }
# the auditor exports proofs and hashes, never bodies, and the extract verifies offline
"$RELAIS_BIN" audit export --db "$DB_RA" --audit-key "$KEY" --checkpoints "$CPS" --correlation "$(sql "$DB" "SELECT correlation_id FROM events WHERE record_id = 'A-1'")" -o "$T/ra-x.jsonl" 2>"$T/ra-x.err" \
  || { cat "$T/ra-x.err"; fail "audit export as the auditor"; }
grep -q '"bodies":false' "$T/ra-x.jsonl" || fail "the auditor's extract should say it holds no bodies"
grep -q "nid de poule" "$T/ra-x.jsonl" && fail "the auditor's extract holds a payload"
"$RELAIS_BIN" audit verify --file "$T/ra-x.jsonl" --audit-key "$KEY" | grep '^verified: [1-9]' >/dev/null || fail "the auditor's extract does not verify"
grep -q '^verified: ' "$T/ra-verify.txt" || fail "no verified line"
[ "$(psql -X -q -At "$DB_RA" -c "SELECT count(*) FROM audit_events WHERE body_sha256_now = body_sha256")" = 2 ] \
  || fail "the auditor reads audit_events (hashes, no body)"
denied "$DB_RA" "SELECT body FROM events"
denied "$DB_RA" "SELECT * FROM events"
denied "$DB_RA" "SELECT raw FROM rejections"
denied "$DB_RA" "UPDATE deliveries SET attempts = 0"
denied "$DB_RA" "INSERT INTO steps (at, step) VALUES (now(), 'forged')"
DEAD1=$(sql "$DB" "SELECT d.id FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.record_id = 'A-1' AND d.destination = 'bad'")
DEAD2=$(sql "$DB" "SELECT d.id FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.record_id = 'A-2' AND d.destination = 'bad'")
if "$RELAIS_BIN" replay --db "$DB_RA" --audit-key "$KEY" --checkpoints "$CPS" "$DEAD2" >"$T/ra-replay.txt" 2>&1; then fail "the auditor replayed"; fi
grep -q "permission denied" "$T/ra-replay.txt" || { cat "$T/ra-replay.txt"; fail "the auditor's replay: expected permission denied"; }
pass "as $RA (relais_auditor): trace, person, dlq list and audit verify work without payloads; body, raw, changes refused"

# ---- the operator member: replay and discard, nothing more
"$RELAIS_BIN" replay --db "$DB_RO" --audit-key "$KEY" --checkpoints "$CPS" "$DEAD2" >"$T/ro-replay.txt" 2>&1 \
  || { cat "$T/ro-replay.txt"; fail "replay as the operator"; }
grep -q "^replayed 1 delivery" "$T/ro-replay.txt" || { cat "$T/ro-replay.txt"; fail "replay as the operator"; }
"$RELAIS_BIN" discard --db "$DB_RO" --audit-key "$KEY" --checkpoints "$CPS" "$DEAD1" --reason "test: never to bad" >"$T/ro-discard.txt" 2>&1 \
  || { cat "$T/ro-discard.txt"; fail "discard as the operator"; }
[ "$(sql "$DB" "SELECT count(*) FROM steps WHERE step IN ('replayed', 'discarded') AND stream LIKE 'cli/%' AND mac IS NOT NULL")" = 2 ] \
  || fail "the operator's steps are not signed"
"$RELAIS_BIN" trace --db "$DB_RO" A-2 | grep -E "^  [0-9T:.Z-]+  replayed " >/dev/null || fail "trace as the operator"
denied "$DB_RO" "SELECT body FROM events"
denied "$DB_RO" "DELETE FROM deliveries"
denied "$DB_RO" "DELETE FROM steps"
[ "$(sql "$DB" "SELECT status FROM deliveries WHERE id = $DEAD1")" = discarded ] || fail "not discarded"
pass "as $RO (relais_operator): replay and discard (signed steps); payloads and deletes refused"

# ---- the retention member: purges, deletes nothing
printf 'retention:\n  payloads: 1s\n' >>"$T/hub.yaml"
sleep 1.1
"$RELAIS_BIN" retention run -c "$T/hub.yaml" --db "$DB_RR" --audit-key "$KEY" --checkpoints "$CPS" >"$T/rr-run.txt" 2>&1 || { cat "$T/rr-run.txt"; fail "retention run as $RR"; }
# A-1: its dead delivery was discarded; A-2: replayed, pending or dead again, kept
[ "$(sql "$DB" "SELECT string_agg(record_id || ':' || (body IS NULL) || ':' || (purged_at IS NOT NULL), ' ' ORDER BY record_id) FROM events")" \
  = "A-1:true:true A-2:false:false" ] || { cat "$T/rr-run.txt"; fail "retention as $RR: A-1 purged, A-2 kept"; }
[ "$(sql "$DB" "SELECT count(*) FROM rejections WHERE raw IS NULL AND purged_at IS NOT NULL")" = 1 ] || fail "the rejection's raw is not purged"
[ "$(sql "$DB" "SELECT count(*) FROM steps WHERE step = 'purged' AND mac IS NOT NULL")" = 1 ] || fail "no signed purged step"
denied "$DB_RR" "DELETE FROM events WHERE record_id = 'A-2'"
denied "$DB_RR" "DELETE FROM rejections"
denied "$DB_RR" "DELETE FROM steps"
denied "$DB_RR" "SELECT body FROM events"
denied "$DB_RR" "UPDATE events SET record_id = 'forged'"
denied "$DB_RR" "UPDATE steps SET detail = 'forged'"
"$RELAIS_BIN" audit verify --db "$DB_RA" --audit-key "$KEY" --checkpoints "$CPS" >"$T/ra-verify2.txt" 2>&1 \
  || { cat "$T/ra-verify2.txt"; fail "audit verify as the auditor after the purge"; }
grep -q "1 event bodies purged by retention" "$T/ra-verify2.txt" || { cat "$T/ra-verify2.txt"; fail "verify after the purge"; }
stop_hub "$HUB_PID"
pass "as $RR (relais_retention): payloads purged, one signed step; DELETE, body reads and other updates refused; verify passes"

# ---- a database owner without CREATEROLE: the migration succeeds and grants to the existing roles
"${PSQL_SU[@]}" -d postgres -c "CREATE ROLE $OWN LOGIN" -c "CREATE DATABASE $OWNDB OWNER $OWN" >/dev/null
OWNCI="host=$RELAIS_TEST_PGHOST port=$PGPORT_ dbname=$OWNDB user=$OWN"
"$RELAIS_BIN" dlq list --db "$OWNCI" >"$T/own.txt" 2>&1 || { cat "$T/own.txt"; fail "migration by an owner without CREATEROLE"; }
[ "$(sql "$OWNCI" "SELECT max(version) FROM relais_schema_version")" = 6 ] || fail "not at version 6"
[ "$(sql "$OWNCI" "SELECT has_table_privilege('relais_hub', 'events', 'INSERT') AND NOT has_table_privilege('relais_hub', 'events', 'DELETE')
                    AND has_column_privilege('relais_auditor', 'events', 'subject', 'SELECT')
                    AND NOT has_column_privilege('relais_auditor', 'events', 'body', 'SELECT')")" = t ] \
  || fail "the owner's migration did not grant to the existing roles"
# the same SQL, for roles that do not exist (this run's names), by a user who may not create them
sed -E "s/relais_(hub|auditor|operator|retention)\\b/relais_\\1_t$SUF/g" "$RELAIS_SOURCE_DIR/schemas/sql/roles.sql" >"$T/roles-t.sql"
psql -X -q -v ON_ERROR_STOP=1 "$OWNCI" -f "$T/roles-t.sql" >"$T/roles-own.txt" 2>&1 || { cat "$T/roles-own.txt"; fail "roles.sql must not fail without CREATEROLE"; }
grep -q "WARNING:  relais: the database roles relais_hub_t$SUF, relais_auditor_t$SUF, relais_operator_t$SUF, relais_retention_t$SUF do not exist and $OWN may not create roles" "$T/roles-own.txt" \
  || { cat "$T/roles-own.txt"; fail "no warning naming the missing roles"; }
grep -q 'A DBA must run schemas/sql/roles.sql in database' "$T/roles-own.txt" || fail "the warning does not say what to do"
[ "$(sql "$OWNCI" "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'relais_%_t$SUF'")" = 0 ] || fail "roles created without CREATEROLE"
# a DBA (superuser) runs it: roles made, grants given; running it again changes nothing
for run in 1 2; do
  "${PSQL_SU[@]}" -d "$OWNDB" -f "$T/roles-t.sql" >"$T/roles-su$run.txt" 2>&1 || { cat "$T/roles-su$run.txt"; fail "roles.sql as a superuser (run $run)"; }
  grep -q WARNING "$T/roles-su$run.txt" && { cat "$T/roles-su$run.txt"; fail "warning for a superuser"; }
done
[ "$(sql "$OWNCI" "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'relais_%_t$SUF' AND NOT rolcanlogin")" = 4 ] || fail "the DBA's run did not make the roles"
[ "$(sql "$OWNCI" "SELECT has_table_privilege('relais_hub_t$SUF', 'steps', 'INSERT') AND NOT has_table_privilege('relais_hub_t$SUF', 'steps', 'UPDATE')
                    AND pg_has_role('relais_operator_t$SUF', 'relais_auditor_t$SUF', 'MEMBER')
                    AND has_column_privilege('relais_retention_t$SUF', 'events', 'body', 'UPDATE')")" = t ] || fail "the DBA's run did not grant"
"${PSQL_SU[@]}" -d postgres -c "DROP DATABASE $OWNDB" >/dev/null
pass "an owner without CREATEROLE migrates (grants to existing roles); missing roles: a warning, then the DBA's run of roles.sql"
