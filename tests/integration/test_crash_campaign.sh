#!/usr/bin/env bash
# Nothing acknowledged is lost, nothing is applied twice: under a steady load
# of webhook records delivered to two sinks, the hub (embedded broker) is
# killed with SIGKILL at CRASH_KILLS (default 30) random moments and restarted
# each time. The driver, its counts and the report: crash_campaign.py;
# figures in docs/RELIABILITY.md.
. "$(dirname "$0")/lib.sh"
DB=$(fresh_db crash)
python3 "$RELAIS_SOURCE_DIR/tests/integration/crash_campaign.py" --bin "$RELAIS_BIN" --sim "$SIM_HTTP" \
  --db "$DB" --dir "$T" --kills "${CRASH_KILLS:-30}" --report "${CRASH_REPORT:-$T/report.json}" \
  || fail "crash campaign failed (see the driver's message above)"
pass "crash campaign: ${CRASH_KILLS:-30} kill -9, nothing lost, nothing applied twice"
