#!/usr/bin/env bash
# bench/e2e.sh - end-to-end throughput, added latency and idle memory of the
# hub, next to ceilings measured in the same run on the same broker and the
# same database:
#   e2e       webhook in (batches of 100) -> journal -> bus -> router ->
#             two HTTP sinks (relais-sim-http), every step journaled
#   kcat      kcat producing the same number of events to the same broker
#   COPY      PostgreSQL COPY of the same events into the same database
#   latency   1,000 events/s one per POST; added latency = journaled
#             "delivered" minus journaled "received", p50/p99 over all deliveries
#   idle RSS  VmRSS of `relais run` after start, before any load
# Usage: bench/e2e.sh [RUNS=3] [EVENTS=50000]; writes bench/results/e2e-<date>.json
# and prints a markdown table (median of the runs) for docs/PERFORMANCE.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-3}
N=${2:-50000}
SINK_BATCH=${SINK_BATCH:-1}     # events per HTTP request to each sink (batch_max)
. "$root/tools/lib/deps.sh"
relais_install_deps
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release -DRELAIS_TESTS=OFF >/dev/null
cmake --build "$root/build" -j2 >/dev/null
B="$root/build"
W=$(mktemp -d /tmp/relais-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$root/tools/pg" stop "$W/pg" >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT
free_port() { "$root/tools/free-port"; }
stat() { curl -fsS "$1/_sim/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['distinct'])"; }
now() { date +%s.%N; }
# CPU ticks (utime+stime) of processes and of the hub's threads, by name
ticks() { local s; s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }; set -- $s; echo $(( ${12} + ${13} )); }
pg_ticks() { local t=0 p; for p in $(pgrep -u postgres postgres); do t=$((t + $(ticks "$p"))); done; echo $t; }
thread_ticks() {  # thread_ticks PID -> "name ticks" lines summed by thread name
  for t in /proc/$1/task/*; do local s; s=$(sed 's/.*) //' "$t/stat" 2>/dev/null) || continue
    set -- $s; echo "$(cat "$t/comm" 2>/dev/null) $(( ${12} + ${13} ))"; done | awk '{c[$1]+=$2} END{for(k in c) print k, c[k]}'
}

eval "$("$root/tools/pg" start "$W/pg")"
PG="host=$RELAIS_TEST_PGHOST port=$RELAIS_TEST_PGPORT user=postgres"
results="$W/results.jsonl"

for run in $(seq 1 "$RUNS"); do
  db="bench_$run"
  psql -q "$PG dbname=postgres" -c "CREATE DATABASE $db" >/dev/null
  S1=$(free_port); S2=$(free_port); SRC=$(free_port)
  "$B/relais-sim-http" --listen "127.0.0.1:$S1" --quiet >"$W/s1.log" 2>&1 & S1PID=$!; pids+=($!)
  "$B/relais-sim-http" --listen "127.0.0.1:$S2" --quiet >"$W/s2.log" 2>&1 & S2PID=$!; pids+=($!)
  sleep 0.5
  cat >"$W/hub.yaml" <<YAML
hub: { name: bench, admin_listen: "127.0.0.1:0", state_dir: $W/state, log_level: warn }
bus: { brokers: embedded, partitions: 6 ${BUS_EXTRA:-} }
journal: { conninfo: "$PG dbname=$db" }
delivery: { workers: 16, max_attempts: 5 }
connectors:
  - { name: web, type: http, mode: source, listen: "127.0.0.1:$SRC", path: /events,
      event_type: test.relais.grc.request.created, subject_pointer: /id, record_id_pointer: /id }
  - { name: s1, type: http, mode: sink, url: "http://127.0.0.1:$S1/events", max_in_flight: 8, batch_max: $SINK_BATCH }
  - { name: s2, type: http, mode: sink, url: "http://127.0.0.1:$S2/events", max_in_flight: 8, batch_max: $SINK_BATCH }
routes:
  - { name: all, match: "test.relais.**", to: [s1, s2] }
YAML
  rm -rf "$W/state"
  "$B/relais" run -c "$W/hub.yaml" >"$W/hub.log" 2>&1 & HUB=$!; pids+=($HUB)
  for _ in $(seq 1 100); do [ -s "$W/state/admin.txt" ] && break; sleep 0.1; done
  ADMIN=$(cat "$W/state/admin.txt"); BOOT=$(cat "$W/state/bootstrap.txt")
  sleep 3
  rss_kb=$(awk '/VmRSS/{print $2}' /proc/$HUB/status)

  # --- latency at 1,000 events/s
  "$B/bench/relais-loadgen" "http://127.0.0.1:$SRC/events" 10000 --batch 1 --conns 4 --rate 1000 --prefix LAT >/dev/null
  until [ "$(stat "http://127.0.0.1:$S1")" -ge 10000 ] && [ "$(stat "http://127.0.0.1:$S2")" -ge 10000 ]; do sleep 0.05; done
  sleep 1
  lat=$(psql -X -At "$PG dbname=$db" -c "
    WITH r AS (SELECT s.event_id, s.at FROM steps s JOIN events e ON e.id=s.event_id
               WHERE s.step='received' AND e.record_id LIKE 'LAT-%'),
         d AS (SELECT s.event_id, s.at FROM steps s WHERE s.step='delivered')
    SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d.at-r.at)))::numeric*1000,2)
           || ' ' ||
           round((percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM d.at-r.at)))::numeric*1000,2)
    FROM r JOIN d USING (event_id)")
  # where the latency goes: median time between consecutive journaled steps
  stages=$(psql -X -At "$PG dbname=$db" -c "
    WITH e AS (SELECT id FROM events WHERE record_id LIKE 'LAT-%'),
    s AS (SELECT st.event_id, st.step, min(st.at) AS at FROM steps st JOIN e ON e.id=st.event_id
          WHERE st.step IN ('received','published','routed','attempt','delivered') GROUP BY 1,2),
    p AS (SELECT event_id, max(at) FILTER (WHERE step='received') r, max(at) FILTER (WHERE step='published') pu,
                 max(at) FILTER (WHERE step='routed') ro, max(at) FILTER (WHERE step='attempt') a,
                 max(at) FILTER (WHERE step='delivered') d FROM s GROUP BY 1)
    SELECT json_build_object(
      'received_to_published_ms', round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM pu-r)))::numeric*1000,2),
      'published_to_routed_ms', round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM ro-pu)))::numeric*1000,2),
      'routed_to_attempt_ms', round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a-ro)))::numeric*1000,2),
      'attempt_to_delivered_ms', round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d-a)))::numeric*1000,2))
    FROM p")
  echo "latency stages (median): $stages"
  # --- end to end
  h0=$(ticks $HUB); p0=$(pg_ticks); s10=$(ticks $S1PID); s20=$(ticks $S2PID); thread_ticks $HUB >"$W/thr0"
  t0=$(now)
  "$B/bench/relais-loadgen" "http://127.0.0.1:$SRC/events" "$N" --batch 100 --conns 4 --prefix T >"$W/lg.json"
  until [ "$(stat "http://127.0.0.1:$S1")" -ge $((N+10000)) ] && [ "$(stat "http://127.0.0.1:$S2")" -ge $((N+10000)) ]; do sleep 0.05; done
  t1=$(now)
  e2e=$(python3 -c "print($N/($t1-$t0))")
  thread_ticks $HUB >"$W/thr1"
  hz=$(getconf CLK_TCK)
  cpu=$(python3 - "$W/thr0" "$W/thr1" "$hz" "$N" "$(( $(ticks $HUB) - h0 ))" "$(( $(pg_ticks) - p0 ))" "$(( $(ticks $S1PID) + $(ticks $S2PID) - s10 - s20 ))" "$(python3 -c "print($t1-$t0)")" <<'PY'
import json,sys
a=dict(l.split() for l in open(sys.argv[1])); b=dict(l.split() for l in open(sys.argv[2]))
hz=float(sys.argv[3]); n=int(sys.argv[4]); wall=float(sys.argv[8])
us=lambda t: round(float(t)/hz/n*1e6,1)
thr={k: us(int(b[k])-int(a.get(k,0))) for k in b if int(b[k])-int(a.get(k,0))>0}
print(json.dumps({"cpu_us_per_event":{"hub":us(sys.argv[5]),"postgres":us(sys.argv[6]),"sinks":us(sys.argv[7]),
      "hub_threads":dict(sorted(thr.items(), key=lambda x:-x[1]))},
      "cores_busy":round((int(sys.argv[5])+int(sys.argv[6])+int(sys.argv[7]))/hz/wall,2)}))
PY
)
  echo "cpu: $cpu"
  echo "$cpu" >"$W/cpu.json"

  kill -TERM "$HUB"; wait "$HUB" || true

  # --- ceilings on the same broker and database
  head -c 0 /dev/null
  python3 - "$N" >"$W/events.jsonl" <<'PY'
import json,sys
n=int(sys.argv[1]); pad="x"*220
for i in range(n):
    print(json.dumps({"specversion":"1.0","id":"0192f0c0-0000-7000-8000-%012d"%i,"source":"/relais/default/web",
      "type":"test.relais.grc.request.created","subject":"K-%d"%i,"time":"2026-11-25T19:06:30.123456Z",
      "datacontenttype":"application/json","correlationid":"c","tenant":"default",
      "traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","recordid":"K-%d"%i,
      "data":{"id":"K-%d"%i,"category":"voirie","description":pad}},separators=(",",":")))
PY
  "$B/relais" broker --partitions 6 --bootstrap-file "$W/boot" >"$W/broker.log" 2>&1 & BR=$!; pids+=($BR)
  for _ in $(seq 1 50); do [ -s "$W/boot" ] && break; sleep 0.1; done
  k0=$(now); kcat -P -b "$(cat "$W/boot")" -t bench.kcat -X acks=all -X enable.idempotence=true -l "$W/events.jsonl"; k1=$(now)
  kill "$BR"; wait "$BR" 2>/dev/null || true; rm -f "$W/boot"
  kcat_rate=$(python3 -c "print($N/($k1-$k0))")
  psql -q "$PG dbname=$db" -c "CREATE TABLE bench_copy(body jsonb)" >/dev/null
  sed 's/\\/\\\\/g' "$W/events.jsonl" >"$W/events.copy"
  c0=$(now); psql -q "$PG dbname=$db" -c "\\copy bench_copy FROM '$W/events.copy'" >/dev/null; c1=$(now)
  copy_rate=$(python3 -c "print($N/($c1-$c0))")
  echo "{\"run\":$run,\"events\":$N,\"e2e\":$e2e,\"kcat\":$kcat_rate,\"copy\":$copy_rate,\"p50_ms\":${lat%% *},\"p99_ms\":${lat##* },\"idle_rss_kb\":$rss_kb,\"stages\":$stages,\"cpu\":$(cat "$W/cpu.json")}" | tee -a "$results"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=()
done

mkdir -p "$root/bench/results"
out="$root/bench/results/e2e-$(date -u +%Y%m%dT%H%M%SZ).json"
cp "$results" "$out"
python3 - "$results" "$SINK_BATCH" <<'PY'
import json,sys,statistics as st
rows=[json.loads(l) for l in open(sys.argv[1])]
m=lambda k: st.median(r[k] for r in rows)
print(f"\n| figure (median of {len(rows)} runs, {rows[0]['events']} events, sink batch_max {sys.argv[2]}) | value | ceiling in the same run | ratio |")
print("|---|---|---|---|")
print(f"| end to end, events/s (webhook -> journal -> bus -> 2 HTTP sinks) | {m('e2e'):.0f} | kcat produce {m('kcat'):.0f}/s | {m('e2e')/m('kcat'):.2f} |")
print(f"| | | PostgreSQL COPY {m('copy'):.0f} rows/s | {m('e2e')/m('copy'):.2f} |")
print(f"| added latency at 1,000 events/s, p50 / p99 | {m('p50_ms'):.1f} ms / {m('p99_ms'):.1f} ms | target p99 < 50 ms | |")
print(f"| idle RSS of `relais run` | {m('idle_rss_kb')/1024:.1f} MB | target < 30 MB | |")
cpu=lambda k: st.median(r["cpu"]["cpu_us_per_event"][k] for r in rows)
print(f"\nCPU per event during the end-to-end run (median): hub {cpu('hub')} us, PostgreSQL {cpu('postgres')} us, "
      f"the two sink simulators {cpu('sinks')} us; cores busy {st.median(r['cpu']['cores_busy'] for r in rows)} of 2")
thr={}
for r in rows:
    for k,v in r["cpu"]["cpu_us_per_event"]["hub_threads"].items(): thr.setdefault(k,[]).append(v)
print("hub threads (us per event, median): " + ", ".join(f"{k} {st.median(v)}" for k,v in sorted(thr.items(), key=lambda x:-st.median(x[1]))[:8]))
stg={}
for r in rows:
    for k,v in r["stages"].items(): stg.setdefault(k,[]).append(v)
print("latency stages at 1,000 events/s (median of medians, ms): " + ", ".join(f"{k} {st.median(v)}" for k,v in stg.items()))
PY
echo "raw results: $out"
