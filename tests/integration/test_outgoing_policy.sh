#!/usr/bin/env bash
# The hardened edges (issue 7), with the real hub, PostgreSQL, relais-sim-http,
# a redirecting server and `openssl s_server` (docs/SECURITY.md, "Outgoing
# calls and webhooks"):
#  a. a sink URL with file:// or gopher:// is refused when the configuration
#     is loaded (relais check and relais run), naming the instance;
#  b. a redirect is not followed: the delivery is refused with the 307, the
#     server it points to sees nothing;
#  c. a host outside outgoing.allow is refused at load, naming the instance,
#     the option and the line;
#  d. a host name that is on the list ("localhost") but whose address
#     (127.0.0.1) is outside the listed ranges: the delivery is dead-lettered
#     at once with the reason, and the simulator listening there counts zero
#     requests and zero connections;
#  e. TLS (s_server, self-signed certificate): refused by default; accepted
#     with tls_ca_file; accepted with tls_verify: false, which logs a warning
#     naming the instance; a TLS 1.1-only server and a TLS 1.2 server offering
#     only a suite outside ANSSI's list are refused (both servers work for
#     openssl s_client / plain curl: the policy refuses them);
#  f. the signed webhook: the same signed request twice is refused the
#     second time (409), a new nonce passes, a stale timestamp and the former
#     v1 scheme are refused (401).
# Every destination listens on 127.0.0.2; outgoing.allow is 127.0.0.2/32 and
# the name localhost, so that localhost (127.0.0.1, ::1) is a listed name
# with an address outside the ranges.
. "$(dirname "$0")/lib.sh"
command -v openssl >/dev/null || fail "openssl is not installed (apt-get install openssl)"
command -v python3 >/dev/null || fail "python3 is not installed"

SECRET=outpol-secret
export OUTPOL_SECRET=$SECRET

# ---- a/c: refused when the configuration is loaded --------------------------
base_config() {   # base_config FILE: hub, bus, journal; the caller appends
  cat >"$1" <<YAML
hub:
  name: outpol
  admin_listen: 127.0.0.1:0
  state_dir: $T/state-$(basename "$1" .yaml)
bus:
  brokers: embedded
  partitions: 2
journal:
  conninfo: "host=/nonexistent dbname=unused"
YAML
}
for scheme in "file:///etc/passwd" "gopher://127.0.0.2:70/1"; do
  base_config "$T/bad.yaml"
  cat >>"$T/bad.yaml" <<YAML
connectors:
  - name: leak
    type: http
    mode: sink
    url: $scheme
YAML
  rc=0; "$RELAIS_BIN" check -c "$T/bad.yaml" >"$T/check.txt" 2>&1 || rc=$?
  [ $rc = 1 ] || fail "relais check accepted url $scheme (exit $rc)"
  grep -q "bad.yaml:14: connector 'leak': option 'url': '$scheme' is not an http, https, smtp or smtps URL" "$T/check.txt" \
    || fail "no clear error for $scheme: $(cat "$T/check.txt")"
  rc=0; timeout 20 "$RELAIS_BIN" run -c "$T/bad.yaml" >"$T/run.txt" 2>&1 || rc=$?
  [ $rc = 1 ] || fail "relais run started with url $scheme (exit $rc)"
  grep -q "connector 'leak'" "$T/run.txt" || fail "relais run does not name the instance: $(cat "$T/run.txt")"
done
pass "a. file:// and gopher:// sink URLs refused at load (check and run), naming the instance"

base_config "$T/allow.yaml"
cat >>"$T/allow.yaml" <<YAML
outgoing:
  allow:
    - publik.mairie.example
    - 10.0.0.0/8
connectors:
  - name: publik
    type: http
    mode: sink
    url: https://publik.mairie.example/api/events
  - name: worksite
    type: http
    mode: sink
    url: https://works.example/api/events
YAML
rc=0; "$RELAIS_BIN" check -c "$T/allow.yaml" >"$T/check.txt" 2>&1 || rc=$?
[ $rc = 1 ] || fail "relais check accepted a host outside outgoing.allow (exit $rc)"
grep -q "allow.yaml:22: connector 'worksite': option 'url': host 'works.example' is not in outgoing.allow (line 11)" "$T/check.txt" \
  || fail "no clear error for the host outside the list: $(cat "$T/check.txt")"
[ "$(grep -c "connector '" "$T/check.txt")" = 1 ] || fail "the listed host was refused too: $(cat "$T/check.txt")"
pass "c. a host outside outgoing.allow refused at load, naming the instance, the option and the line"

# ---- servers ------------------------------------------------------------------------
DB=$(fresh_db outpol)
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 2 -subj "/CN=relais-test" \
  -addext "subjectAltName=IP:127.0.0.2,DNS:localhost" >"$T/openssl.log" 2>&1 || fail "openssl req: $(cat "$T/openssl.log")"
printf 'HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 12\r\nConnection: close\r\n\r\n{"id":"T-1"}' >"$T/resp"

sim() {   # sim NAME ADDR -> URL in SIM_<NAME>
  local port
  "$SIM_HTTP" --listen "$2:0" >"$T/sim-$1.log" 2>&1 &
  PIDS+=($!)
  port=$(bound_port "simulator $1" "$T/sim-$1.log" 'listening on [^ ]+ \(port ([0-9]+)\)')
  wait_for "simulator $1" 10 curl -fsS "http://$2:$port/_sim/stats" -o /dev/null
  eval "SIM_$1=http://$2:$port"
}
sim dest 127.0.0.2      # the allowed destination
sim local 127.0.0.1     # what "localhost" reaches: must see nothing

# a server that redirects everything to the allowed simulator
python3 - 0 "$SIM_dest/in/redirected" "$T/redirect.hits" >"$T/redirect.log" 2>&1 <<'PY' &
import http.server, sys
port, target, hits = int(sys.argv[1]), sys.argv[2], sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        open(hits, "a").write(self.path + "\n")
        self.send_response(307); self.send_header("Location", target); self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a): pass
srv = http.server.HTTPServer(("127.0.0.2", port), H)
print("PORT", srv.server_address[1], flush=True)
srv.serve_forever()
PY
PIDS+=($!)
RED=$(bound_port "redirecting server" "$T/redirect.log" 'PORT ([0-9]+)')
wait_for "redirecting server" 10 bash -c "exec 3<>/dev/tcp/127.0.0.2/$RED"

# TLS servers on 127.0.0.2, one connection each, with the self-signed
# certificate. openssl s_server shows the handshake side: it prints
# "CIPHER is" and what it receives once a handshake succeeded (its stdin, a
# FIFO kept open by a sleeper, never sends anything: s_server is not an HTTP
# server, the sink times out on it). A small Python HTTPS server with the
# same certificate answers 201, for the deliveries that must go through.
tls_server() {   # tls_server NAME [s_server options...] -> port in TLS_<NAME>
  local name=$1 port; shift
  mkfifo "$T/in-$name"
  sleep 120 >"$T/in-$name" &
  PIDS+=($!)
  openssl s_server -accept "127.0.0.2:0" -cert "$T/cert.pem" -key "$T/key.pem" -naccept 1 "$@" \
    <"$T/in-$name" >"$T/tls-$name.log" 2>&1 &
  PIDS+=($!)
  port=$(bound_port "s_server $name" "$T/tls-$name.log" 'ACCEPT 127\.0\.0\.2:([0-9]+)')
  eval "TLS_$name=$port"
}
https_server() {   # https_server NAME -> port in HTTPS_<NAME>; answers 201 {"id":"T-1"}
  local name=$1 port
  python3 - 0 "$T/cert.pem" "$T/key.pem" >"$T/https-$name.log" 2>&1 <<'PY' &
import http.server, ssl, sys
port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"id":"T-1"}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        print("POST", self.path, self.request.version(), self.request.cipher()[0], flush=True)
    def log_message(self, *a): pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv = http.server.HTTPServer(("127.0.0.2", port), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("READY", srv.server_address[1], flush=True)
srv.serve_forever()
PY
  PIDS+=($!)
  port=$(bound_port "https server $name" "$T/https-$name.log" 'READY ([0-9]+)')
  eval "HTTPS_$name=$port"
}
tls_server default
tls_server ca
https_server ca
https_server insecure
tls_server v11 -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'
tls_server weak -tls1_2 -cipher AES256-SHA256
# controls: the same servers do work for clients without the policy
tls_server v11ctl -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'
echo | openssl s_client -connect "127.0.0.2:$TLS_v11ctl" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' -CAfile "$T/cert.pem" \
  >"$T/v11ctl.txt" 2>&1 || true
grep -q "Protocol *: TLSv1.1" "$T/v11ctl.txt" || fail "control: the TLS 1.1 server does not speak TLS 1.1: $(cat "$T/v11ctl.txt")"
tls_server weakctl -tls1_2 -cipher AES256-SHA256
echo | openssl s_client -connect "127.0.0.2:$TLS_weakctl" -CAfile "$T/cert.pem" >"$T/weakctl.txt" 2>&1 || true
grep -q "Cipher is AES256-SHA256" "$T/weakctl.txt" || fail "control: the AES256-SHA256 server does not answer a plain client: $(cat "$T/weakctl.txt")"
pass "servers up: simulators, redirecting server, s_server x6, HTTPS x2 (the TLS 1.1 and AES256-SHA256 servers work for plain clients)"

# ---- the hub ----------------------------------------------------------------------------
SRC=$(free_port)
sink() {   # sink NAME URL [extra YAML lines...]
  printf '  - name: %s\n    type: http\n    mode: sink\n    url: %s\n    timeout: 2s\n    connect_timeout: 1s\n' "$1" "$2"
  shift 2
  for l in "$@"; do printf '    %s\n' "$l"; done
}
{
  cat <<YAML
hub:
  name: outpol
  admin_listen: 127.0.0.1:0
  state_dir: $T/state
bus:
  brokers: embedded
  partitions: 2
journal:
  conninfo: "$DB"
  batch_wait: 1ms
delivery:
  workers: 4
  max_attempts: 3
  backoff_initial: 100ms
  backoff_max: 200ms
  poll_interval: 100ms
outgoing:
  allow:
    - 127.0.0.2/32
    - localhost
connectors:
  - name: desk
    type: http
    mode: source
    listen: 127.0.0.1:$SRC
    type_pointer: /type
    record_id_pointer: /id
    hmac_secret: env:OUTPOL_SECRET
    hmac_tolerance: 60s
YAML
  sink works "$SIM_dest/in/works"
  sink redirected "http://127.0.0.2:$RED/events"
  sink rebound "http://localhost:${SIM_local##*:}/in/rebound"
  sink tls_default "https://127.0.0.2:$TLS_default/events"
  sink tls_ca "https://127.0.0.2:$TLS_ca/events" "tls_ca_file: $T/cert.pem"
  sink tls_ca_http "https://127.0.0.2:$HTTPS_ca/events" "tls_ca_file: $T/cert.pem"
  sink tls_insecure "https://127.0.0.2:$HTTPS_insecure/events" "tls_verify: false"
  sink tls_v11 "https://127.0.0.2:$TLS_v11/events" "tls_ca_file: $T/cert.pem"
  sink tls_weak "https://127.0.0.2:$TLS_weak/events" "tls_ca_file: $T/cert.pem"
  cat <<YAML
routes:
  - { name: ok, match: test.relais.outpol.ok, to: [works] }
  - { name: redirect, match: test.relais.outpol.redirect, to: [redirected] }
  - { name: rebound, match: test.relais.outpol.rebound, to: [rebound] }
  - { name: tls, match: test.relais.outpol.tls, to: [tls_default, tls_ca, tls_ca_http, tls_insecure, tls_v11, tls_weak] }
YAML
} >"$T/hub.yaml"
"$RELAIS_BIN" check -c "$T/hub.yaml" >/dev/null || fail "the hub's configuration does not check: $("$RELAIS_BIN" check -c "$T/hub.yaml" 2>&1)"
start_hub a "$T/hub.yaml"
grep -q "WARN .*\[tls_insecure\] tls_verify is false" "$T/hub-a.log" || fail "no warning at start for tls_verify: false"
[ "$(grep -c "tls_verify is false" "$T/hub-a.log")" = 1 ] || fail "the tls_verify warning is about another instance too"
pass "e. tls_verify: false logs a warning at start naming the instance (and only it)"

# signed POST: signed BODY [NONCE] [T] [SCHEME]
signed() {
  local body=$1 nonce=${2:-$(openssl rand -hex 16)} t=${3:-$(date +%s)} scheme=${4:-v2} sig
  if [ "$scheme" = v2 ]; then
    sig=$(printf '%s' "$t.$nonce.$body" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
  else
    sig=$(printf '%s' "$t.$body" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
  fi
  post_json "http://127.0.0.1:$SRC/events" "$body" -H "X-Relais-Signature: t=$t,$scheme=$sig" -H "X-Relais-Nonce: $nonce"
}
step_detail() {   # step_detail DESTINATION ATTEMPT
  sql "$DB" "SELECT s.detail FROM steps s WHERE s.step = 'attempt' AND s.destination = '$1' AND s.attempt = $2 LIMIT 1"
}
wait_attempt() {   # wait_attempt DESTINATION: until its first attempt is journaled
  for _ in $(seq 200); do [ -n "$(step_detail "$1" 1)" ] && return 0; sleep 0.1; done
  fail "no attempt of $1 after 20s"
}

# ---- f: the webhook's replay window ---------------------------------------------
N1=$(openssl rand -hex 16); T1=$(date +%s)
B1='{"id":"OK-1","type":"test.relais.outpol.ok","n":1}'
out=$(signed "$B1" "$N1" "$T1"); [ "${out%% *}" = 202 ] || fail "signed request refused: $out"
out=$(signed "$B1" "$N1" "$T1"); [ "${out%% *}" = 409 ] || fail "the same signed request was not refused the second time: $out"
echo "$out" | grep -q "nonce already used" || fail "409 without the reason: $out"
out=$(signed '{"id":"OK-2","type":"test.relais.outpol.ok","n":2}'); [ "${out%% *}" = 202 ] || fail "a new nonce was refused: $out"
out=$(signed '{"id":"OK-3","type":"test.relais.outpol.ok"}' "" $(( $(date +%s) - 600 )))
[ "${out%% *}" = 401 ] || fail "a stale timestamp was accepted: $out"
echo "$out" | grep -q "tolerance" || fail "401 without the reason: $out"
out=$(signed '{"id":"OK-4","type":"test.relais.outpol.ok"}' "" "" v1)
[ "${out%% *}" = 401 ] || fail "a v1 signature (without nonce) was accepted: $out"
echo "$out" | grep -q "v1 signatures (without nonce) are no longer accepted" || fail "401 without the reason: $out"
wait_eq "works delivered" 20 2 sim_stat "$SIM_dest" distinct
[ "$(sql "$DB" "SELECT count(*) FROM events WHERE type = 'test.relais.outpol.ok'")" = 2 ] || fail "refused requests were journaled"
pass "f. webhook: replayed signed request 409, new nonce 202, stale and v1 401; the works sink (allowed) got both"

# ---- b: redirect -----------------------------------------------------------------------
out=$(signed '{"id":"RD-1","type":"test.relais.outpol.redirect"}'); [ "${out%% *}" = 202 ] || fail "$out"
wait_eq "redirected dead-lettered" 20 dead sql "$DB" "SELECT status FROM deliveries WHERE destination = 'redirected'"
step_detail redirected 1 | grep -q "HTTP 307 redirect not followed" || fail "no 307 in the attempt: $(step_detail redirected 1)"
[ "$(sql "$DB" "SELECT attempts FROM deliveries WHERE destination = 'redirected'")" = 1 ] || fail "a redirect was retried"
[ "$(wc -l <"$T/redirect.hits")" = 1 ] || fail "the redirecting server saw $(wc -l <"$T/redirect.hits") requests"
curl -fsS "$SIM_dest/_sim/stats" | python3 -c '
import json,sys; p=json.load(sys.stdin)["paths"]; assert "/in/redirected" not in p, p' || fail "the redirect was followed"
pass "b. redirect not followed: dead-lettered with 'HTTP 307 redirect not followed', its target saw nothing"

# ---- d: a listed name resolving outside the ranges ---------------------------------
c0=$(sim_stat "$SIM_local" connections)   # the simulator counts our own stats queries (two more below)
out=$(signed '{"id":"RB-1","type":"test.relais.outpol.rebound"}'); [ "${out%% *}" = 202 ] || fail "$out"
wait_eq "rebound dead-lettered" 20 dead sql "$DB" "SELECT status FROM deliveries WHERE destination = 'rebound'"
detail=$(sql "$DB" "SELECT last_detail FROM deliveries WHERE destination = 'rebound'")
echo "$detail" | grep -qE "refused by outgoing.allow: localhost resolves to (127\.0\.0\.1|::1), outside the address ranges" \
  || fail "no clear refusal in the delivery: $detail"
[ "$(sql "$DB" "SELECT attempts FROM deliveries WHERE destination = 'rebound'")" = 1 ] || fail "a refused destination was retried"
[ "$(sim_stat "$SIM_local" requests)" = 0 ] || fail "the simulator behind localhost got a request"
c1=$(sim_stat "$SIM_local" connections)
[ "$c1" = $((c0 + 2)) ] || fail "the hub connected to the simulator behind localhost ($c0 -> $c1 connections, 2 are ours)"
pass "d. localhost (listed) resolving to an address outside the ranges: refused, nothing sent ($detail)"

# ---- e: TLS ------------------------------------------------------------------------------
out=$(signed '{"id":"TLS-1","type":"test.relais.outpol.tls"}'); [ "${out%% *}" = 202 ] || fail "$out"
wait_eq "tls_ca_http delivered" 20 delivered sql "$DB" "SELECT status FROM deliveries WHERE destination = 'tls_ca_http'"
wait_eq "tls_insecure delivered" 20 delivered sql "$DB" "SELECT status FROM deliveries WHERE destination = 'tls_insecure'"
grep -q "^POST /events TLSv1.3 TLS_AES_256_GCM_SHA384" "$T/https-ca.log" || fail "tls_ca_http: $(cat "$T/https-ca.log")"
for d in tls_default tls_ca tls_v11 tls_weak; do
  wait_attempt "$d"
  [ "$(sql "$DB" "SELECT status FROM deliveries WHERE destination = '$d'")" != delivered ] || fail "$d was delivered"
done
# the same s_server: no handshake without tls_ca_file, a handshake and the request with it
step_detail tls_default 1 | grep -q "SSL certificate problem: self-signed certificate" || fail "tls_default: $(step_detail tls_default 1)"
wait_for "s_server default done" 10 grep -q "server accepts that finished" "$T/tls-default.log"
grep -q " 0 server accepts that finished" "$T/tls-default.log" || fail "tls_default: the handshake finished"
grep -q "^CIPHER is TLS_AES_256_GCM_SHA384" "$T/tls-ca.log" || fail "tls_ca: no handshake: $(cat "$T/tls-ca.log")"
grep -q "^POST /events HTTP/1.1" "$T/tls-ca.log" || fail "tls_ca: the request did not go through: $(cat "$T/tls-ca.log")"
step_detail tls_ca 1 | grep -qiE "SSL|certificate|handshake" && fail "tls_ca: a TLS error: $(step_detail tls_ca 1)"
# TLS 1.1 only, and a TLS 1.2 suite outside ANSSI's list: no handshake
step_detail tls_v11 1 | grep -q "SSL connect error.*protocol version" || fail "tls_v11: $(step_detail tls_v11 1)"
step_detail tls_weak 1 | grep -q "SSL connect error.*handshake failure" || fail "tls_weak: $(step_detail tls_weak 1)"
grep -q "no shared cipher" "$T/tls-weak.log" || fail "the AES256-SHA256 server saw no cipher refusal: $(cat "$T/tls-weak.log")"
pass "e. TLS: self-signed refused by default; with tls_ca_file the handshake succeeds (s_server) and the delivery goes through (HTTPS server); tls_verify: false delivers; TLS 1.1 and a non-ANSSI suite refused"

stop_hub "$HUB_PID"
pass "hub stopped cleanly"
