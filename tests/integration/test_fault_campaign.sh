#!/usr/bin/env bash
# Broker and PostgreSQL faults under load: the running hub (3 embedded
# brokers, hub.fault_injection on) sees FAULT_COUNT (default 12) faults in
# turn: every broker down, Produce request errors, partition leaders moved,
# PostgreSQL refusing it. It must answer 503 with Retry-After while it cannot
# journal or publish, pause its drop folder, come back by itself, and lose
# nothing. Driver: crash_campaign.py --mode faults; figures in docs/RELIABILITY.md.
. "$(dirname "$0")/lib.sh"
DB=$(fresh_db faults)
python3 "$RELAIS_SOURCE_DIR/tests/integration/crash_campaign.py" --mode faults --bin "$RELAIS_BIN" \
  --sim "$SIM_HTTP" --db "$DB" --dir "$T" --kills "${FAULT_COUNT:-12}" --report "${FAULT_REPORT:-$T/report.json}" \
  || fail "fault campaign: records lost, applied twice, or a 503 without Retry-After (see above)"
pass "fault campaign: ${FAULT_COUNT:-12} faults, nothing lost, nothing applied twice"
