#!/usr/bin/env bash
# Hostile inputs on every source (corpus: tests/data/hostile/): truncated
# JSON, wrong types, a 100 MB body, deep nesting, invalid UTF-8, duplicate
# keys, XML with external entities, entity-expansion bombs and external DTDs,
# CSV with unbalanced quotes; the same JSON bodies as Kafka messages on a
# topic read by a kafka source. Each is refused with a clear error and
# journaled as rejected; the hub keeps running; good records sent before,
# among and after them are all delivered.
. "$(dirname "$0")/lib.sh"
H="$RELAIS_SOURCE_DIR/tests/data/hostile"
M="$RELAIS_SOURCE_DIR/connectors/mappings"
DB=$(fresh_db hostile)
start_sim worksite
J=$(free_port); X=$(free_port)
mkdir -p "$T/jsonl" "$T/csv" "$T/xml"
cat >"$T/hub.yaml" <<YAML
hub:
  name: hostile
  admin_listen: 127.0.0.1:0
  state_dir: $T/state
bus: { brokers: embedded, partitions: 3 }
journal: { conninfo: "$DB", batch_wait: 1ms }
delivery: { workers: 4, poll_interval: 100ms }
connectors:
  - { name: web, type: http, mode: source, listen: "127.0.0.1:$J", event_type: test.relais.hostile.record,
      subject_pointer: /id, record_id_pointer: /id, max_body: 1MB }
  - { name: portal, type: http, mode: source, listen: "127.0.0.1:$X", mapping: $M/cityweb/demande.yaml }
  - { name: lines, type: file, mode: source, dir: "$T/jsonl", event_type: test.relais.hostile.record,
      record_id_field: /id, subject_field: /id }
  - { name: sheet, type: file, mode: source, dir: "$T/csv", pattern: "*.csv", event_type: test.relais.hostile.record,
      record_id_field: id, subject_field: id }
  - { name: drop, type: file, mode: source, dir: "$T/xml", format: xml, mapping: $M/cityweb/demande.yaml }
  - { name: stream, type: kafka, mode: source, topic: hostile-in, event_type: test.relais.hostile.record,
      record_id_field: /id, subject_field: /id }
  - { name: worksite, type: http, mode: sink, url: "$SIM_URL_worksite/events" }
routes:
  - { name: all, match: "**", to: [worksite] }
YAML
start_hub a "$T/hub.yaml"
good() { post_json "http://127.0.0.1:$J/events" "{\"id\":\"$1\",\"category\":\"voirie\"}" | grep -q '^202' || fail "good record $1 refused"; }
rejections() { sql "$DB" "SELECT count(*) FROM rejections"; }

good G-1
n=0
# webhook, JSON: status and the words of the reason
while IFS='|' read -r file want_status want_text; do
  code=$(curl -sS -o "$T/resp" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$H/$file" \
    "http://127.0.0.1:$J/events")
  [ "$code" = "$want_status" ] || fail "$file answered $code (expected $want_status): $(cat "$T/resp")"
  grep -q "$want_text" "$T/resp" || fail "$file: answer lacks '$want_text': $(cat "$T/resp")"
  n=$((n+1)); echo "  $file -> $code $(head -c 150 "$T/resp")"
done <<'LIST'
http-truncated.json|400|line
http-wrong-type.json|400|must be a JSON object or array
http-deep.json|400|nesting deeper than 64
http-bad-utf8.json|400|UTF-8
http-duplicate-keys.json|400|duplicate object key 'category'
http-nul.json|400|NUL character
http-leading-zero.json|400|line
LIST
good G-2
# a 100 MB body: refused without being read (413), the hub is not slowed
python3 -c "import sys; sys.stdout.buffer.write(b'[' + b'{\"id\":\"B\",\"pad\":\"' + b'x'*(100*1024*1024) + b'\"}]')" >"$T/big.json"
code=$(curl -sS -o "$T/resp" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$T/big.json" \
  "http://127.0.0.1:$J/events" || true)
[ "$code" = 413 ] || fail "100 MB body answered '$code'"
rm -f "$T/big.json"
n=$((n+1)); echo "  100 MB body -> 413 $(head -c 120 "$T/resp")"
pass "webhook JSON: $n hostile bodies refused (400/413) with the reason"

# webhook, XML through the Cityweb mapping
m=0
while IFS='|' read -r file want_status want_text; do
  code=$(curl -sS -o "$T/resp" -w '%{http_code}' -H 'Content-Type: application/xml' --data-binary @"$H/$file" \
    "http://127.0.0.1:$X/events")
  [ "$code" = "$want_status" ] || fail "$file answered $code (expected $want_status): $(cat "$T/resp")"
  grep -q "$want_text" "$T/resp" || fail "$file: answer lacks '$want_text': $(cat "$T/resp")"
  ! grep -q 'root:' "$T/resp" || fail "$file: a local file leaked into the answer"
  m=$((m+1)); echo "  $file -> $code $(head -c 150 "$T/resp")"
done <<'LIST'
xml-xxe-file.xml|422|DOCTYPE refused
xml-billion-laughs.xml|422|DOCTYPE refused
xml-external-dtd.xml|422|DOCTYPE refused
xml-deep.xml|422|nesting deeper than 64
xml-not-well-formed.xml|422|record:2:
xml-not-a-demande.xml|422|required value is missing
LIST
pass "webhook XML: $m hostile documents refused (422) with the reason; no file read"

# drop folders: bad lines and files rejected, good lines delivered
cp "$H/file-mixed.jsonl" "$T/jsonl/.m.tmp"; mv "$T/jsonl/.m.tmp" "$T/jsonl/mixed.jsonl"
cp "$H/file-unbalanced.csv" "$T/csv/.u.tmp"; mv "$T/csv/.u.tmp" "$T/csv/unbalanced.csv"
cp "$H/file-bomb.xml" "$T/xml/.b.tmp"; mv "$T/xml/.b.tmp" "$T/xml/bomb.xml"
wait_for "jsonl file taken" 20 test -e "$T/jsonl/archive/mixed.jsonl"
wait_for "xml file taken" 20 bash -c "ls '$T/xml/archive' '$T/xml/rejected' 2>/dev/null | grep -q bomb.xml"
wait_for "csv file taken" 20 bash -c "ls '$T/csv/archive' '$T/csv/rejected' 2>/dev/null | grep -q unbalanced.csv"
sql "$DB" "SELECT location || ' | ' || reason FROM rejections WHERE source IN ('lines','sheet','drop') ORDER BY id" | sed 's/^/  /'
[ "$(sql "$DB" "SELECT count(*) FROM rejections WHERE source='lines'")" -ge 3 ] || fail "bad JSON lines not journaled"
sql "$DB" "SELECT location FROM rejections WHERE source='lines'" | grep -q '^mixed.jsonl:2$' || fail "JSON line rejection lacks file:line"
[ "$(sql "$DB" "SELECT count(*) FROM rejections WHERE source='drop' AND record_id='bomb.xml' AND reason LIKE 'bomb.xml:2:%DOCTYPE%'")" = 1 ] || fail "XML bomb file not journaled as rejected under its name"
[ "$(sql "$DB" "SELECT count(*) FROM rejections WHERE source='sheet'")" -ge 1 ] || fail "unbalanced CSV not journaled"
pass "drop folders: bad JSON lines (file:line), the unbalanced CSV and the XML bomb journaled as rejected"

# Kafka source: the same hostile JSON bodies as messages (one file, one
# message), between two good ones, on the hub's own (embedded) broker
BOOT=$(cat "$T/state/bootstrap.txt")
k=0
printf '{"id":"K-1","category":"voirie"}' | kcat -P -b "$BOOT" -t hostile-in -k K-1 || fail "kcat produce"
for f in http-truncated.json http-wrong-type.json http-deep.json http-bad-utf8.json http-duplicate-keys.json \
         http-nul.json http-leading-zero.json; do
  kcat -P -b "$BOOT" -t hostile-in -k "$f" "$H/$f" || fail "kcat produce $f"
  k=$((k+1))
done
printf '{"id":"K-2","category":"voirie"}' | kcat -P -b "$BOOT" -t hostile-in -k K-2 || fail "kcat produce"
wait_eq "Kafka messages rejected" 30 "$k" sql "$DB" "SELECT count(*) FROM rejections WHERE source='stream'"
sql "$DB" "SELECT location || ' | ' || reason FROM rejections WHERE source='stream' ORDER BY id" | sed 's/^/  /'
[ "$(sql "$DB" "SELECT count(*) FROM rejections WHERE source='stream' AND location ~ '^hostile-in/[0-9]+/[0-9]+\$'")" = "$k" ] \
  || fail "Kafka rejections do not name topic/partition/offset"
for want in "nesting deeper than 64" "UTF-8" "duplicate object key" "NUL character" "premature end of input"; do
  [ "$(sql "$DB" "SELECT count(*) FROM rejections WHERE source='stream' AND reason LIKE '%$want%'")" -ge 1 ] \
    || fail "no Kafka rejection says '$want'"
done
pass "kafka source: $k hostile messages journaled as rejected with topic/partition/offset and the reason"

good G-3
# everything good arrived: G-1..3, FJ-1, FJ-6, K-1, K-2, and the CSV lines before the broken quote
wait_eq "good records" 30 1 bash -c "curl -fsS '$SIM_URL_worksite/_sim/events' | python3 -c '
import json,sys
ids={e[\"event\"].get(\"recordid\") for e in json.load(sys.stdin) if e.get(\"event\")}
need={\"G-1\",\"G-2\",\"G-3\",\"FJ-1\",\"FJ-6\",\"K-1\",\"K-2\"}
print(1 if need <= ids else 0)'"
curl -fsS "$(cat "$T/state/admin.txt")/healthz" | grep '"ok"' >/dev/null || fail "hub not healthy at the end"
pass "the hub kept running: good records before, among and after the hostile ones delivered ($(rejections) rejections journaled)"
stop_hub "$HUB_PID"
