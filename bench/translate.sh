#!/usr/bin/env bash
# bench/translate.sh - records per second per core of the translation engine
# (bench/translate.c), next to ceilings measured in the same run on the same
# documents:
#   translate_a     cityweb demandeEtatCivil (XML) -> canonical
#                   fr.relais.civil.certificate.requested.v1 event -> demandeEtatCivil
#                   (bench/translate/cityweb.yaml), safe parse and serialisation included
#   translate_b     Publik w.c.s. form (JSON) -> canonical fr.relais.grc.request.created.v1
#                   event -> Open311 service request (JSON) (bench/translate/wcs.yaml)
#   xml_parse       bare libxml2 xmlReadMemory + xmlFreeDoc of demande.xml
#   xml_parse_dump  bare libxml2 parse + xmlDocDumpMemory
#   json_load_dump  bare jansson json_loadb + json_dumps of the w.c.s. form
#   xslt_a          libxslt in process: parse + xsltApplyStylesheet(cityweb.xsl) + save
#   xsltproc        the xsltproc program over ONE document of N demandeEtatCivil
#                   records under a wrapper (so that start-up does not count):
#                   N / (user+sys CPU seconds of the process); its own --timing
#                   figures give the in-process cost (parse, apply, save)
#   xsltproc_1      xsltproc started once per one-record document (start-up included)
# Usage: bench/translate.sh [RUNS=5] [N=20000]
# Env: BENCH_SECONDS (CPU seconds per in-process path and run, default 1).
# Writes bench/results/translate-<date>.json (one JSON line per run) and prints
# a markdown table of the medians for docs/PERFORMANCE.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-5}
N=${2:-20000}
SECS=${BENCH_SECONDS:-1}
. "$root/tools/lib/deps.sh"
relais_install_deps
# libxslt is for this benchmark only (never linked into relais_core)
if ! pkg-config --exists libxslt; then
  relais_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libxslt1-dev >&2
fi
B="$root/build-bench"
cmake -S "$root" -B "$B" -DCMAKE_BUILD_TYPE=Release -DRELAIS_TESTS=OFF >/dev/null
cmake --build "$B" -j2 --target relais-bench-translate >/dev/null
BIN="$B/bench/relais-bench-translate"
D="$root/bench/translate"
W=$(mktemp -d /tmp/relais-bench-translate.XXXXXX)
trap 'rm -rf "$W"' EXIT

# The same mapping both ways: the engine's document and xsltproc's must be
# the same bytes (the program also checks the canonical data against schemas/).
"$BIN" --emit "$W" --only xml_parse --seconds 0.01 2>/dev/null
xsltproc "$D/cityweb.xsl" "$D/demande.xml" >"$W/a.xsltproc.xml"
if ! cmp -s "$W/a.out.xml" "$W/a.xsltproc.xml" || ! cmp -s "$W/a.out.xml" "$W/a.xslt.xml"; then
  echo "translate.sh: the mapping and cityweb.xsl do not give the same document:" >&2
  diff "$W/a.out.xml" "$W/a.xsltproc.xml" >&2 || true
  exit 1
fi
echo "translate_a and xsltproc give the same document ($(wc -c <"$W/a.out.xml") bytes)" >&2

# N records in one document for xsltproc, each with its own identifiant
python3 - "$D/demande.xml" "$N" "$W/batch.xml" <<'PY'
import sys
src, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = open(src, encoding="utf-8").read()
body = s[s.index("<demandeEtatCivil"):].strip() + "\n"
with open(out, "w", encoding="utf-8") as f:
    f.write('<?xml version="1.0" encoding="UTF-8"?>\n<demandes>\n')
    for i in range(n):
        f.write(body.replace("RELAIS-2024-000042", "RELAIS-2024-%06d" % i))
    f.write("</demandes>\n")
PY

results="$W/results.jsonl"
for run in $(seq 1 "$RUNS"); do
  echo "run $run/$RUNS" >&2
  "$BIN" --run "$run" --seconds "$SECS" >"$W/run.json"
  # xsltproc over the N-record document: CPU time of the child, wall time, and
  # its own --timing lines (parse, apply, save) from stderr
  python3 - "$D/cityweb.xsl" "$W/batch.xml" "$N" "$W/run.json" >>"$results" <<'PY'
import json, re, resource, subprocess, sys, time
xsl, batch, n, runf = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
r0 = resource.getrusage(resource.RUSAGE_CHILDREN); w0 = time.monotonic()
p = subprocess.run(["xsltproc", "--timing", xsl, batch], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
w1 = time.monotonic(); r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
got = p.stdout.count(b"<demandeEtatCivil ")
if got != n:
    sys.exit("translate.sh: xsltproc gave %d records for %d" % (got, n))
t = {}
for line in p.stderr.decode().splitlines():
    m = re.match(r"(Parsing document|Applying stylesheet|Saving result) .*took (\d+) ms", line)
    if m: t[{"Parsing document": "parse_ms", "Applying stylesheet": "apply_ms", "Saving result": "save_ms"}[m.group(1)]] = int(m.group(2))
# one record per process, start-up included
k = 100
one = batch.replace("batch.xml", "one.xml")
with open(batch, encoding="utf-8") as f:
    head = f.read(4096)
doc = head[head.index("<demandeEtatCivil"):head.index("</demandeEtatCivil>") + len("</demandeEtatCivil>")]
open(one, "w", encoding="utf-8").write('<?xml version="1.0" encoding="UTF-8"?>\n' + doc + "\n")
q0 = resource.getrusage(resource.RUSAGE_CHILDREN); v0 = time.monotonic()
for _ in range(k):
    subprocess.run(["xsltproc", xsl, one], stdout=subprocess.DEVNULL, check=True)
v1 = time.monotonic(); q1 = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu1 = (q1.ru_utime - q0.ru_utime) + (q1.ru_stime - q0.ru_stime)
row = json.load(open(runf))
row["xsltproc"] = {"records": n, "cpu_s": cpu, "wall_s": w1 - w0, "rate": n / cpu, "wall_rate": n / (w1 - w0),
                   "timing": t, "inprocess_rate": n / ((t["apply_ms"] + t["save_ms"]) / 1000.0),
                   "inprocess_with_parse_rate": n / ((t["parse_ms"] + t["apply_ms"] + t["save_ms"]) / 1000.0)}
row["xsltproc_1"] = {"records": k, "cpu_s": cpu1, "wall_s": v1 - v0, "rate": k / cpu1}
print(json.dumps(row))
PY
done

mkdir -p "$root/bench/results"
out="$root/bench/results/translate-$(date -u +%Y%m%dT%H%M%SZ).json"
cp "$results" "$out"
python3 - "$results" "$SECS" "$N" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
secs, n = sys.argv[2], sys.argv[3]
med = lambda f: st.median(f(r) for r in rows)
rate = lambda p: med(lambda r: r["rates"][p]["rate"])
xp = med(lambda r: r["xsltproc"]["rate"])
print(f"\n| path (median of {len(rows)} runs; in-process paths {secs} CPU s each) | records/s per core |")
print("|---|---|")
names = {
 "xml_parse": "bare libxml2 parse (xmlReadMemory + xmlFreeDoc), demande.xml",
 "xml_parse_dump": "bare libxml2 parse + serialise (xmlDocDumpMemory)",
 "xml_safe_parse": "relais_xml_parse (safe parse) + xmlFreeDoc",
 "translate_a": "**translate (a)**: XML -> canonical event -> XML",
 "xslt_a": "libxslt in process: parse + apply cityweb.xsl + save",
 "json_load_dump": "bare jansson json_loadb + json_dumps, wcs_form.json",
 "json_safe_parse": "relais_json_parse (safe parse) + json_decref",
 "translate_b": "**translate (b)**: JSON -> canonical event -> JSON",
}
for p, label in names.items():
    if p in rows[0]["rates"]:
        print(f"| {label} | {rate(p):,.0f} |")
print(f"| xsltproc, one process over {n} records (N / CPU s of the process) | {xp:,.0f} |")
print(f"| xsltproc --timing, apply + save only (its own in-process figure) | {med(lambda r: r['xsltproc']['inprocess_rate']):,.0f} |")
print(f"| xsltproc, one process per record (start-up included) | {med(lambda r: r['xsltproc_1']['rate']):,.0f} |")
print("\n| ratio (medians) | value | target |")
print("|---|---|---|")
print(f"| translate (a) / bare libxml2 parse | {rate('translate_a')/rate('xml_parse'):.2f} | >= 0.5 |")
print(f"| translate (a) / bare libxml2 parse + serialise | {rate('translate_a')/rate('xml_parse_dump'):.2f} | |")
print(f"| translate (b) / bare jansson load + dump | {rate('translate_b')/rate('json_load_dump'):.2f} | >= 0.5 |")
print(f"| translate (a) / xsltproc (N records, one process) | {rate('translate_a')/xp:.2f} | |")
if "xslt_a" in rows[0]["rates"]:
    print(f"| translate (a) / libxslt in process | {rate('translate_a')/rate('xslt_a'):.2f} | |")
for k, label in (("stages_a_us", "translate (a)"), ("stages_b_us", "translate (b)")):
    keys = list(rows[0][k].keys())
    print(f"\n{label} stages, us of CPU per record (median): " +
          ", ".join(f"{s} {med(lambda r: r[k][s]):.1f}" for s in keys))
tm = {k: med(lambda r: r["xsltproc"]["timing"][k]) for k in ("parse_ms", "apply_ms", "save_ms")}
print(f"xsltproc --timing over {n} records (median ms): parse {tm['parse_ms']:.0f}, apply {tm['apply_ms']:.0f}, save {tm['save_ms']:.0f}")
print("per run (rec/s): " + "; ".join(p + " " + ", ".join(f"{r['rates'][p]['rate']:,.0f}" for r in rows)
                                      for p in ("xml_parse", "translate_a", "json_load_dump", "translate_b")) +
      "; xsltproc " + ", ".join(f"{r['xsltproc']['rate']:,.0f}" for r in rows))
print(f"wall/CPU: the in-process paths got {med(lambda r: r['rates']['translate_a']['cpu_s']/r['rates']['translate_a']['wall_s']):.2f} of a core (translate_a, median)")
PY
echo "raw results: $out"
