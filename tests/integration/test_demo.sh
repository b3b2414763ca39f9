#!/usr/bin/env bash
# The README's first command: tools/demo runs its scenario and exits 0.
# (It reuses this build instead of building a release one, and its own folder.)
. "$(dirname "$0")/lib.sh"
RELAIS_DEMO_BUILD_DIR="$RELAIS_BUILD_DIR" RELAIS_DEMO_RUN_DIR="$T/demo" \
  "$RELAIS_SOURCE_DIR/tools/demo" >"$T/demo.log" 2>&1 || { cat "$T/demo.log"; fail "tools/demo exited non-zero"; }
cat "$T/demo.log"
grep -q "work order INT-2026-000001: type VOI-03, received, external_ref request/wcs-signalement-voirie-1" "$T/demo.log" \
  || fail "demo: no work order for the pothole"
grep -q "SMS to 0612345678: Mairie de Villebrune : votre demande n° wcs-signalement-voirie-1" "$T/demo.log" || fail "demo: acknowledgement"
grep -q "it became GRC form signalement-voirie/2 and work order INT-2026-000002" "$T/demo.log" || fail "demo: Open311 request"
grep -qE "termine +L'intervention demandée a été réalisée" "$T/demo.log" || fail "demo: the GRC form was not closed"
grep -qE "closed after [0-9]+ working day\(s\), commitment 5: kept" "$T/demo.log" || fail "demo: commitment"
grep -q "== trace of the pothole: relais trace" "$T/demo.log" || fail "demo: no trace at the end"
grep -qE "delivered +grc-out" "$T/demo.log" || fail "demo trace"
grep -qE "^verified: [0-9]+ entries in [0-9]+ streams" "$T/demo.log" || fail "demo: the journal's trail does not verify"
grep -q "hub stopped cleanly (exit 0)" "$T/demo.log" || fail "demo stop"
pass "tools/demo: the pothole crosses the GRC, the work-order tool, the citizen and Open311, closed within its commitment; the trace is printed, the trail verifies; all stops cleanly"

# --keep leaves it running and says how to reach it; --stop stops it
export RELAIS_DEMO_BUILD_DIR="$RELAIS_BUILD_DIR" RELAIS_DEMO_RUN_DIR="$T/demo2"
"$RELAIS_SOURCE_DIR/tools/demo" --keep >"$T/keep.log" 2>&1 || { cat "$T/keep.log"; fail "tools/demo --keep"; }
admin=$(sed -n 's/^ *admin *\(http:[^ ]*\)\/healthz.*/\1/p' "$T/keep.log")
boot=$(sed -n 's/^ *Kafka *kcat -b \([^ ]*\) .*/\1/p' "$T/keep.log")
db=$(sed -n 's/^ *journal *psql "\(.*\)"$/\1/p' "$T/keep.log")
[ -n "$admin" ] && [ -n "$boot" ] && [ -n "$db" ] || { cat "$T/keep.log"; fail "--keep does not print admin, Kafka and psql"; }
curl -fsS "$admin/healthz" | grep '"status":"ok"' >/dev/null || fail "kept hub not healthy at $admin"
kcat -b "$boot" -t relais.events -C -e -o beginning -q 2>/dev/null | grep -q wcs-signalement-voirie-1 || fail "kcat cannot read the kept broker"
[ "$(psql -X -At "$db" -c "SELECT count(*) FROM events")" -ge 3 ] || fail "psql cannot read the kept journal"
"$RELAIS_SOURCE_DIR/tools/demo" --stop | grep -q "demo stopped" || fail "--stop"
sleep 1
if curl -fsS "$admin/healthz" >/dev/null 2>&1; then fail "hub still running after --stop"; fi
pass "tools/demo --keep prints working admin, kcat and psql addresses; --stop stops it"
