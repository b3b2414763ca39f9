#!/usr/bin/env bash
# The command line itself: version, help, connector descriptions, usage errors.
. "$(dirname "$0")/lib.sh"
"$RELAIS_BIN" --version | grep -E '^relais [0-9]+\.[0-9]+\.[0-9]+$' >/dev/null || fail "--version"
"$RELAIS_BIN" --help | grep "trace \[-c FILE\] \[--json\] ID" >/dev/null || fail "--help lacks trace"
"$RELAIS_BIN" connectors describe >"$T/d.txt"
for c in http file kafka; do grep -q "^$c - " "$T/d.txt" || fail "describe lacks $c"; done
"$RELAIS_BIN" connectors describe --json | python3 -c '
import json,sys
cs={c["name"]:c for c in json.load(sys.stdin)}
assert set(cs)>={"http","file","kafka"}, cs.keys()
opts={o["name"] for o in cs["http"]["options"]}
assert {"listen","url","hmac_secret"}<=opts, opts
assert all(c["abi_version"]==1 for c in cs.values())
' || fail "describe --json"
set +e
"$RELAIS_BIN" frobnicate >/dev/null 2>&1; [ $? -eq 2 ] || fail "unknown command must exit 2"
"$RELAIS_BIN" trace >/dev/null 2>&1; [ $? -eq 2 ] || fail "trace without ID must exit 2"
"$RELAIS_BIN" trace --db "host=/nonexistent-dir port=1 dbname=x" some-id >/dev/null 2>"$T/e"; rc=$?
set -e
[ $rc -eq 1 ] && grep -qi "journal" "$T/e" || fail "trace with an unreachable journal: rc $rc"
pass "relais --version, --help, connectors describe, usage errors"

# docs/CONFIG.md's complete example is the file the unit tests load
awk '/^## Complete example/{f=1} f&&/^```yaml/{p=1;next} p&&/^```/{exit} p' "$RELAIS_SOURCE_DIR/docs/CONFIG.md" >"$T/doc.yaml"
grep -v "^#" "$RELAIS_SOURCE_DIR/tests/data/config/valid/full.yaml" >"$T/full.yaml"
diff -u "$T/full.yaml" "$T/doc.yaml" || fail "docs/CONFIG.md example differs from tests/data/config/valid/full.yaml"
RELAIS_TEST_CONFIG_PG="host=/tmp dbname=x" RELAIS_TEST_CONFIG_HMAC=s3cret "$RELAIS_BIN" check -c "$T/doc.yaml" >"$T/c.out" 2>&1 \
  || { cat "$T/c.out"; fail "the documented example is not valid"; }
grep -q "s3cret" "$T/c.out" && fail "relais check printed a secret"
pass "docs/CONFIG.md complete example is valid and is the tested file"

# every command README.md lists exists: --help names it, and it answers
# something other than "unknown command"
awk '/^## Commands/{f=1} f&&/^```$/{n++; if(n==2) exit; next} f&&n==1&&/^relais /{print $2, $3}' "$RELAIS_SOURCE_DIR/README.md" >"$T/readme-cmds.txt"
[ "$(wc -l <"$T/readme-cmds.txt")" -ge 15 ] || { cat "$T/readme-cmds.txt"; fail "README command list not found"; }
"$RELAIS_BIN" --help >"$T/help.txt"
while read -r cmd sub; do
  case "$cmd" in --*|-*) continue;; esac
  grep -qE "^  $cmd( |$)" "$T/help.txt" || fail "README lists 'relais $cmd' but --help does not"
  if "$RELAIS_BIN" "$cmd" --no-such-option >"$T/o.txt" 2>&1; then :; fi
  grep -q "unknown command" "$T/o.txt" && fail "README lists 'relais $cmd', an unknown command"
done <"$T/readme-cmds.txt"
pass "every command in README.md's list is a real command named by --help"
