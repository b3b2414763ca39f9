#!/usr/bin/env bash
# tools/lib/deps.sh - install what Relais needs from Debian's packages, only
# when missing. Sourced by tools/test, tools/demo and tools/bench.
# Works as root or as a user with sudo.

RELAIS_DEB_PACKAGES=(
  build-essential cmake pkg-config clang libclang-rt-dev
  librdkafka-dev libjansson-dev libpq-dev libcurl4-openssl-dev libmicrohttpd-dev
  libyaml-dev libxml2-dev libxml2-utils libssl-dev libcmocka-dev libpcre2-dev
  xsltproc json-schema-test-suite
  postgresql postgresql-client kcat curl openssl valgrind python3 python3-jsonschema
)

relais_sudo() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

relais_install_deps() {
  local missing=()
  for p in "${RELAIS_DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "relais: installing ${missing[*]}" >&2
    relais_sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    relais_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}

# The PostgreSQL server binaries (initdb, pg_ctl, postgres) of the newest installed version.
relais_pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] || { echo "relais: no PostgreSQL server found under /usr/lib/postgresql" >&2; return 1; }
  echo "$d"
}
