#!/usr/bin/env bash
# tests/integration/lib.sh - helpers for the integration tier: real relais
# processes, relais-sim-http simulators, curl, psql, kcat, against the
# throw-away PostgreSQL of tools/test (RELAIS_TEST_PGHOST / RELAIS_TEST_PGPORT).
# Every test FAILS (never skips) when something it needs is missing.
set -euo pipefail

: "${RELAIS_BUILD_DIR:?run through ctest (tools/test)}"
: "${RELAIS_SOURCE_DIR:?run through ctest (tools/test)}"
RELAIS_BIN=${RELAIS_BIN:-$RELAIS_BUILD_DIR/relais}
SIM_HTTP=$RELAIS_BUILD_DIR/relais-sim-http
[ -n "${RELAIS_TEST_PGHOST:-}" ] || { echo "FAIL: RELAIS_TEST_PGHOST not set: run tools/test" >&2; exit 1; }
PGPORT_=${RELAIS_TEST_PGPORT:-5432}

T=$(mktemp -d /tmp/relais-it.XXXXXX)
PIDS=()
it_cleanup() {
  local rc=$?
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  if [ $rc -ne 0 ]; then
    echo "---- logs of the failed test ($T) ----" >&2
    for f in "$T"/*.log; do [ -f "$f" ] && { echo "== $f" >&2; tail -n 40 "$f" >&2; }; done
  fi
  rm -rf "$T"
  exit $rc
}
trap it_cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok - $*"; }

# free_port: a port free now, outside the kernel's ephemeral range (see
# tools/free-port for why). Servers that can bind port 0 and say which port
# they got do that instead (bound_port); free_port is for ports written into a
# hub's config.
free_port() { "$RELAIS_SOURCE_DIR/tools/free-port"; }

# bound_port WHAT LOG REGEX -> waits (10 s) until LOG has a line matching the
# extended REGEX, whose first group is the port, and prints it.
bound_port() {
  local what=$1 log=$2 re=$3 port="" d=$'\001' deadline=$(( $(date +%s) + 10 ))
  until port=$(sed -En "s${d}.*${re}.*${d}\1${d}p" "$log" 2>/dev/null | head -n 1) && [ -n "$port" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after 10s waiting for $what to listen: $(tail -n 5 "$log" 2>/dev/null)"
    sleep 0.1
  done
  echo "$port"
}

# fresh_db NAME -> prints a libpq conninfo of a new empty database
fresh_db() {
  local db="it_$1_$$_$RANDOM"
  psql -q -h "$RELAIS_TEST_PGHOST" -p "$PGPORT_" -U postgres -d postgres -c "CREATE DATABASE $db" >/dev/null
  echo "host=$RELAIS_TEST_PGHOST port=$PGPORT_ dbname=$db user=postgres"
}

# sql CONNINFO QUERY -> unaligned tuples-only output
sql() { psql -X -q -At "$1" -c "$2"; }

# start_sim NAME -> starts relais-sim-http on a free port; sets SIM_URL_<NAME>
start_sim() {
  local name=$1 port
  "$SIM_HTTP" --listen "127.0.0.1:0" >"$T/sim-$name.log" 2>&1 &
  PIDS+=($!)
  port=$(bound_port "simulator $name" "$T/sim-$name.log" 'listening on [^ ]+ \(port ([0-9]+)\)')
  wait_for "simulator $name" 10 curl -fsS "http://127.0.0.1:$port/_sim/stats" -o /dev/null
  eval "SIM_URL_${name//-/_}=http://127.0.0.1:$port"
}

# start_hub NAME CONFIG -> runs relais in the background; sets HUB_PID, ADMIN (URL)
start_hub() {
  local name=$1 cfg=$2 state
  state=$(sed -n 's/^ *state_dir: *//p' "$cfg" | head -n 1)
  rm -f "$state/admin.txt" "$state/bootstrap.txt"
  "$RELAIS_BIN" run -c "$cfg" >"$T/hub-$name.log" 2>&1 &
  HUB_PID=$!
  PIDS+=($HUB_PID)
  wait_for "hub $name admin" 30 test -s "$state/admin.txt"
  ADMIN=$(cat "$state/admin.txt")
  BOOTSTRAP=$(cat "$state/bootstrap.txt")
  wait_for "hub $name healthy" 30 curl -fsS "$ADMIN/healthz" -o /dev/null
}

# stop_hub PID: SIGTERM and wait; fails when the exit code is not 0
stop_hub() {
  local pid=$1 rc=0
  kill -TERM "$pid"
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || fail "hub $pid exited with $rc after SIGTERM"
}

# wait_for WHAT SECONDS CMD... : retry CMD every 0.1 s until it succeeds
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after ${secs}s waiting for $what"
    sleep 0.1
  done
}

# wait_eq WHAT SECONDS EXPECTED CMD... : until CMD prints EXPECTED
wait_eq() {
  local what=$1 secs=$2 expected=$3; shift 3
  local deadline=$(( $(date +%s) + secs )) got=""
  while :; do
    got=$("$@" 2>/dev/null || true)
    [ "$got" = "$expected" ] && return 0
    [ "$(date +%s)" -lt "$deadline" ] || fail "$what: expected '$expected', got '$got' after ${secs}s"
    sleep 0.2
  done
}

sim_stat() { curl -fsS "$1/_sim/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }

# post_json URL BODY [extra curl args] -> prints "HTTPCODE BODY"
post_json() {
  local url=$1 body=$2; shift 2
  curl -sS -o "$T/resp" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$body" "$@" "$url"
  echo -n " "; cat "$T/resp"
}

# write_config FILE: standard hub config with one webhook source and the sinks
# named in $SINKS ("name=url ..."), route of every grc request to all of them.
write_config() {
  local file=$1 db=$2 src_port=$3; shift 3
  local state="$T/state-$(basename "$file" .yaml)"
  {
    cat <<YAML
hub:
  name: itest
  admin_listen: 127.0.0.1:0
  state_dir: $state
  log_level: ${HUB_LOG_LEVEL:-info}
bus:
  brokers: ${BROKERS:-embedded}
  partitions: 3
journal:
  conninfo: "$db"
  batch_wait: 1ms
delivery:
  workers: 4
  max_attempts: ${MAX_ATTEMPTS:-3}
  backoff_initial: 100ms
  backoff_max: 300ms
  poll_interval: 100ms
  lease: ${LEASE:-60s}
connectors:
  - name: desk
    type: http
    mode: source
    listen: 127.0.0.1:$src_port
    path: /events
    event_type: test.relais.grc.request.created
    subject_pointer: /id
    record_id_pointer: ${RID_POINTER:-/id}
YAML
    local dests=""
    for s in "$@"; do
      local n=${s%%=*} u=${s#*=}
      if [ "${u#dir:}" != "$u" ]; then
        printf '  - name: %s\n    type: file\n    mode: sink\n    dir: %s\n' "$n" "${u#dir:}"
      else
        printf '  - name: %s\n    type: http\n    mode: sink\n    url: %s/events\n    id_pointer: /id\n    timeout: 2s\n' "$n" "$u"
      fi
      dests="$dests${dests:+, }$n"
    done
    printf 'routes:\n  - name: requests\n    match: "test.relais.grc.request.*"\n    to: [%s]\n' "$dests"
  } >"$file"
}
