#!/usr/bin/env bash
# bench/burst.sh - back-pressure: a burst of ten times the sustained rate is
# absorbed without unbounded memory and without losing anything.
#
# One hub (embedded broker, throw-away PostgreSQL), a webhook source, two
# relais-sim-http sinks; one sink is slow during the burst (every request
# answered after SLOW_MS, max_in_flight 4), so deliveries pile up behind it.
#   sustained  RATE records/s for 10 s (relais-loadgen --rate)
#   burst      10 x RATE records/s offered for 5 s (relais-loadgen --rate, 8 connections);
#              the webhook accepts as fast as the journal commits and answers
#              503 + Retry-After when it cannot (loadgen then waits and resends)
#   drain      the slow sink recovers; every record must reach both sinks
# Measured: the hub's VmRSS sampled every 100 ms (peak, and VmHWM at the
# end), idle RSS before the load, records offered and accepted, accept rate
# during the burst, drain time, lost (records acknowledged but missing at a
# sink, by distinct event count).
# Usage: bench/burst.sh [RUNS=3] [RATE=1000]; writes bench/results/burst-<date>.json
# and prints a table of medians for docs/RELIABILITY.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-3}
RATE=${2:-1000}
SLOW_MS=${SLOW_MS:-50}
QUEUE_MAX=${QUEUE_MAX:-20000}     # delivery.queue_max: deliveries held in memory
. "$root/tools/lib/deps.sh"
relais_install_deps
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release -DRELAIS_TESTS=OFF >/dev/null
cmake --build "$root/build" -j2 >/dev/null
B="$root/build"
W=$(mktemp -d /tmp/relais-burst.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$root/tools/pg" stop "$W/pg" >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT
free_port() { "$root/tools/free-port"; }
distinct() { curl -fsS "$1/_sim/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['distinct'])"; }
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

eval "$("$root/tools/pg" start "$W/pg")"
PG="host=$RELAIS_TEST_PGHOST port=$RELAIS_TEST_PGPORT user=postgres"
results="$W/results.jsonl"
mkdir -p "$root/bench/results"

for run in $(seq 1 "$RUNS"); do
  db="burst_$run"
  psql -q "$PG dbname=postgres" -c "CREATE DATABASE $db" >/dev/null
  S1=$(free_port); S2=$(free_port); SRC=$(free_port)
  "$B/relais-sim-http" --listen "127.0.0.1:$S1" --quiet >"$W/s1.log" 2>&1 & pids+=($!)
  "$B/relais-sim-http" --listen "127.0.0.1:$S2" --quiet >"$W/s2.log" 2>&1 & pids+=($!)
  sleep 0.5
  cat >"$W/hub.yaml" <<YAML
hub: { name: burst, admin_listen: "127.0.0.1:0", state_dir: $W/state, log_level: warn }
bus: { brokers: embedded, partitions: 6 }
journal: { conninfo: "$PG dbname=$db" }
delivery: { workers: 16, max_attempts: 1000, backoff_initial: 200ms, backoff_max: 2s, queue_max: $QUEUE_MAX }
connectors:
  - { name: web, type: http, mode: source, listen: "127.0.0.1:$SRC", path: /events,
      event_type: test.relais.burst.record, subject_pointer: /id, record_id_pointer: /id }
  - { name: fast, type: http, mode: sink, url: "http://127.0.0.1:$S1/events", max_in_flight: 8 }
  - { name: slow, type: http, mode: sink, url: "http://127.0.0.1:$S2/events", max_in_flight: 4, timeout: 30s }
routes:
  - { name: all, match: "test.relais.**", to: [fast, slow] }
YAML
  rm -rf "$W/state"
  "$B/relais" run -c "$W/hub.yaml" >"$W/hub.log" 2>&1 & HUB=$!; pids+=($HUB)
  for _ in $(seq 1 100); do [ -s "$W/state/admin.txt" ] && break; sleep 0.1; done
  sleep 4
  idle=$(rss $HUB)
  # RSS sampler
  ( peak=0; while kill -0 $HUB 2>/dev/null; do r=$(rss $HUB); [ -n "$r" ] && [ "$r" -gt "$peak" ] && peak=$r && echo "$peak" >"$W/peak"; sleep 0.1; done ) &
  SAMPLER=$!; pids+=($SAMPLER)
  curl -fsS -X POST "http://127.0.0.1:$S2/_sim/fail" -d "{\"delay_ms\":$SLOW_MS}" >/dev/null

  "$B/bench/relais-loadgen" "http://127.0.0.1:$SRC/events" $((RATE * 10)) --batch 50 --conns 2 --rate "$RATE" --prefix SUS >"$W/sus.json"
  t0=$(date +%s.%N)
  "$B/bench/relais-loadgen" "http://127.0.0.1:$SRC/events" $((RATE * 50)) --batch 50 --conns 8 --rate $((RATE * 10)) --prefix BUR >"$W/bur.json"
  t1=$(date +%s.%N)
  total=$((RATE * 60))
  queued_peak=$(curl -fsS "$(cat "$W/state/admin.txt")/metrics" | awk '/^relais_deliveries_queued\{connector="slow"\}/{print $2}')
  curl -fsS -X POST "http://127.0.0.1:$S2/_sim/fail" -d '{"delay_ms":0}' >/dev/null   # the slow package recovers
  deadline=$(( $(date +%s) + 600 ))
  until [ "$(distinct "http://127.0.0.1:$S1")" -ge "$total" ] && [ "$(distinct "http://127.0.0.1:$S2")" -ge "$total" ]; do
    sleep 0.2
    [ "$(date +%s)" -lt "$deadline" ] || { echo "burst: not drained after 600 s" >&2; exit 1; }
  done
  t2=$(date +%s.%N)
  hwm=$(awk '/VmHWM/{print $2}' /proc/$HUB/status)
  peak=$(cat "$W/peak" 2>/dev/null || echo 0)
  kill -TERM $HUB; wait $HUB || true
  kill $SAMPLER 2>/dev/null || true
  lost_fast=$(( total - $(distinct "http://127.0.0.1:$S1") ))
  delivered_slow=$(distinct "http://127.0.0.1:$S2")
  journaled=$(psql -X -At "$PG dbname=$db" -c "SELECT count(*) FROM events")
  python3 - "$W/sus.json" "$W/bur.json" "$idle" "$peak" "$hwm" "$t0" "$t1" "$t2" "$total" "$lost_fast" \
            "$delivered_slow" "$journaled" "$RATE" "${queued_peak:-0}" >>"$results" <<'PY'
import json, sys
sus, bur = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
idle, peak, hwm = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
t0, t1, t2 = map(float, sys.argv[6:9])
total, lost_fast, slow_ok, journaled, rate, qpeak = map(int, sys.argv[9:15])
print(json.dumps({"rate": rate, "burst_offered_rate": rate * 10, "records": total, "journaled": journaled,
                  "burst_seconds": round(t1 - t0, 2), "burst_accept_rate": round(bur["ok"] / (t1 - t0)),
                  "burst_failed": bur.get("failed", 0), "drain_seconds": round(t2 - t1, 1),
                  "idle_rss_kb": idle, "peak_rss_kb": max(peak, 0), "hwm_kb": hwm, "slow_queued_at_burst_end": qpeak,
                  "lost_fast": lost_fast, "lost_slow": total - slow_ok}))
PY
  tail -1 "$results"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
done
stamp=$(date -u +%Y%m%dT%H%M%SZ)
cp "$results" "$root/bench/results/burst-$stamp.json"
python3 - "$results" <<'PY'
import json, sys, statistics as st
rs = [json.loads(l) for l in open(sys.argv[1])]
med = lambda k: st.median(r[k] for r in rs)
print("| burst (median of %d runs) | value |" % len(rs))
print("|---|---|")
print("| sustained rate / burst offered | %d / %d records/s |" % (rs[0]["rate"], rs[0]["burst_offered_rate"]))
print("| records (sustained + burst) | %d |" % rs[0]["records"])
print("| burst accepted at | %d records/s (%.1f s) |" % (med("burst_accept_rate"), med("burst_seconds")))
print("| deliveries queued in memory for the slow sink at the end of the burst | %d |" % med("slow_queued_at_burst_end"))
print("| hub RSS idle / peak (VmHWM) | %.1f MB / %.1f MB |" % (med("idle_rss_kb") / 1024, med("hwm_kb") / 1024))
print("| drain after the slow sink recovered | %.1f s |" % med("drain_seconds"))
print("| lost (fast sink / slow sink) | %d / %d |" % (max(r["lost_fast"] for r in rs), max(r["lost_slow"] for r in rs)))
PY
echo "raw: bench/results/burst-$stamp.json"
