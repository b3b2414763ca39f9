#!/usr/bin/env bash
# A category missing from a sink's code table is not dropped: the delivery is
# dead-lettered with the value, the table, the mapping file and line. Once
# the table is fixed, `relais reload` (or SIGHUP) makes the running hub use
# it, and `relais replay` delivers the event: no restart. A broken mapping
# file is refused by the reload with its FILE:LINE and nothing changes.
. "$(dirname "$0")/lib.sh"
DB=$(fresh_db reload)
start_sim works
SRC=$(free_port)
write_table() {   # the technical services' intervention types, by GRC category
  cat >"$T/works.yaml.tmp" <<YAML
format: json
tables:
  intervention:
    values:
      voirie: VOI-03
$1
outbound:
  - data:
      - to: /type
        from: /data/category
        transform: [{table: intervention}]
      - to: /ref
        from: /subject
YAML
  mv "$T/works.yaml.tmp" "$T/works.yaml"
}
write_table ""
cat >"$T/hub.yaml" <<YAML
hub:
  name: reload
  admin_listen: 127.0.0.1:0
  state_dir: $T/state
bus: { brokers: embedded, partitions: 3 }
journal: { conninfo: "$DB", batch_wait: 1ms }
delivery: { workers: 2, poll_interval: 100ms }
connectors:
  - { name: desk, type: http, mode: source, listen: "127.0.0.1:$SRC", event_type: test.relais.reload.request,
      subject_pointer: /id, record_id_pointer: /id }
  - { name: works, type: http, mode: sink, url: "$SIM_URL_works/events", mapping: works.yaml }
routes:
  - { name: all, match: "test.relais.**", to: [works] }
YAML
start_hub a "$T/hub.yaml"
post() { post_json "http://127.0.0.1:$SRC/events" "$1" | grep -q '^202' || fail "POST $1 refused"; }

post '{"id":"R-1","category":"voirie"}'
post '{"id":"R-2","category":"eclairage"}'
wait_eq "R-1 delivered" 20 1 sim_stat "$SIM_URL_works" distinct
wait_for "R-2 dead-lettered" 20 bash -c "'$RELAIS_BIN' dlq list --db '$DB' | grep -q works"
"$RELAIS_BIN" dlq list --db "$DB" --json >"$T/dlq.json"
python3 - "$T/dlq.json" <<'PY' || fail "dead letter does not name the value, the table, the file and line: $(cat "$T/dlq.json")"
import json, re, sys
d = json.load(open(sys.argv[1]))
assert len(d) == 1, d
detail = d[0]["last_detail"]
assert re.search(r"works\.yaml:\d+: .*'eclairage' is not in table 'intervention'", detail), detail
PY
pass "an unknown category is dead-lettered with value, table, file and line: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["last_detail"])' "$T/dlq.json")"

# a broken file: the reload is refused with its place, the old table stays
printf 'format: json\noutbound:\n  - data:\n      - to: /type\n        from: /data/category\n        transform: [{table: nowhere}]\n' >"$T/works.yaml"
if "$RELAIS_BIN" reload -c "$T/hub.yaml" 2>"$T/reload.err"; then fail "a broken mapping was reloaded"; fi
grep -q "works.yaml:6: .*no table named 'nowhere'" "$T/reload.err" || fail "reload error lacks FILE:LINE: $(cat "$T/reload.err")"
post '{"id":"R-3","category":"voirie"}'
wait_eq "R-3 delivered with the old table" 20 2 sim_stat "$SIM_URL_works" distinct
pass "a broken mapping file is refused by relais reload (works.yaml:6), the running table is kept"

# the table is fixed: reload, replay, delivered
write_table "      eclairage: ECL-01"
"$RELAIS_BIN" reload -c "$T/hub.yaml" | grep 'reloaded 1 mapping' >/dev/null || fail "relais reload"
EV=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["event_id"])' "$T/dlq.json")
"$RELAIS_BIN" replay --db "$DB" --audit-key "$T/state/audit.key" "$EV" | grep 'replayed 1' >/dev/null || fail "replay"
wait_eq "R-2 delivered after the fix" 20 3 sim_stat "$SIM_URL_works" distinct
curl -fsS "$SIM_URL_works/_sim/events" | python3 -c '
import json, sys
types = {e["event"]["ref"]: e["event"]["type"] for e in json.load(sys.stdin) if e["status"] in (200, 201)}
assert types.get("R-2") == "ECL-01", types' || fail "R-2 not rendered with the fixed table"
pass "table fixed, relais reload, relais replay: R-2 delivered as ECL-01 without a restart"

# SIGHUP reloads too
write_table "      eclairage: ECL-01
      proprete: PRO-02"
kill -HUP "$HUB_PID"
reloads() { grep -c '1 mapping(s) reloaded' "$T/hub-a.log"; }
wait_eq "second reload logged (SIGHUP)" 10 2 reloads
post '{"id":"R-4","category":"proprete"}'
wait_eq "R-4 delivered after SIGHUP" 20 4 sim_stat "$SIM_URL_works" distinct
pass "SIGHUP reloads the mapping files"
stop_hub "$HUB_PID"
