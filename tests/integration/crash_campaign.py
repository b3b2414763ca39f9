#!/usr/bin/env python3
"""crash_campaign.py - kill -9 the hub at random moments (--mode kill), or
inject broker and PostgreSQL faults into it (--mode faults), under a steady
load, and check that nothing acknowledged is lost and nothing is applied twice.

Driven by tests/integration/test_crash_campaign.sh (which provides the
database); reproducible by hand, see docs/RELIABILITY.md.

- Two relais-sim-http sinks (they deduplicate on the Idempotency-Key, the
  event id), a webhook source and a drop-folder source; every record goes to
  both sinks. A dropper thread writes a JSON-lines file of 20 records every
  0.5 s (tmp + rename); every record written must arrive.
- A sender thread posts batches of records at a steady rate, like a vendor
  package: a record counts as acknowledged when the hub answered 202 with
  "accepted" or "duplicate" for it; anything else (connection refused while
  the hub is down, 503) is sent again later, with the same id.
- The main thread kills the hub with SIGKILL at random moments (uniform
  between --min-gap and --max-gap seconds after it became healthy, so kills
  land while records are being received, journaled, produced, routed and
  delivered), restarts it, and measures the recovery time: kill -> /healthz
  answers 200 (records accepted again) and kill -> the restarted hub's first
  delivery (its relais_delivered_total leaves 0: it has re-driven the journal
  and joined its consumer group). Just after each kill it reads from the journal how much work
  was in flight: events not yet routed, deliveries not yet done.
- At the end it waits for the sinks to hold every acknowledged record, stops
  the hub with SIGTERM (exit 0 expected) and counts, per sink:
    lost            acknowledged records the sink never received
    double-applied  records the sink received under two different event ids
                    (the sink's dedupe on event id could not catch those)
    redeliveries    raw deliveries minus distinct events (caught by dedupe)
In faults mode the hub keeps running; in turn: every embedded broker down
(POST /fault/bus, hub.fault_injection), Produce request errors, partition
leaders moved (3 embedded brokers), PostgreSQL refusing the hub. Every 503
answer must carry Retry-After; recovery = end of the fault -> /healthz 200
and a new delivery made.
Exit 0 when lost = 0 and double-applied = 0 for every sink.
"""
import argparse
import importlib.machinery
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request


def free_port():
    """A port outside the kernel's ephemeral range (tools/free-port says why)."""
    return _free_port_tool.free_ports(1)[0]


def _load_free_port_tool():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "free-port")
    loader = importlib.machinery.SourceFileLoader("free_port_tool", path)
    spec = importlib.util.spec_from_loader("free_port_tool", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


_free_port_tool = _load_free_port_tool()


def http(method, url, body=None, timeout=5.0, headers=None, want_headers=False):
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            out = (r.status, r.read(), dict(r.headers))
    except urllib.error.HTTPError as e:
        out = (e.code, e.read(), dict(e.headers))
    return out if want_headers else out[:2]


def psql(db, query):
    out = subprocess.run(["psql", "-X", "-q", "-At", db, "-c", query], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


class Hub:
    def __init__(self, binary, config, state, log):
        self.binary, self.config, self.state, self.log = binary, config, state, log
        self.proc = None
        self.admin = None

    def start(self, timeout=60.0):
        for f in ("admin.txt", "bootstrap.txt"):
            try:
                os.unlink(os.path.join(self.state, f))
            except FileNotFoundError:
                pass
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([self.binary, "run", "-c", self.config], stdout=logf, stderr=logf)
        logf.close()
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError("hub exited with %d at start" % self.proc.returncode)
            p = os.path.join(self.state, "admin.txt")
            if os.path.exists(p) and os.path.getsize(p) > 0:
                self.admin = open(p).read().strip()
                try:
                    st, _ = http("GET", self.admin + "/healthz", timeout=1.0)
                    if st == 200:
                        return time.monotonic() - t0
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("hub not healthy after %.0fs" % timeout)

    def delivered(self):
        """relais_delivered_total of this process, all sinks."""
        try:
            st, body = http("GET", self.admin + "/metrics", timeout=1.0)
        except OSError:
            return 0
        n = 0
        for line in body.decode().splitlines():
            if line.startswith("relais_delivered_total{"):
                n += int(float(line.rsplit(" ", 1)[1]))
        return n

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout=60.0):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


class Sender(threading.Thread):
    """Posts batches of records; keeps unacknowledged ones for a later try."""

    def __init__(self, url, batch, period):
        super().__init__(daemon=True)
        self.url, self.batch, self.period = url, batch, period
        self.next_id = 0
        self.pending = []        # ids sent but not acknowledged yet
        self.acked = set()
        self.attempts = 0
        self.refused = 0         # answers other than 202 (503, connection refused)
        self.unavailable = 0     # 503 answers
        self.retry_after = 0     # ... that carried Retry-After
        self.producing = True    # make new records
        self.stop = False
        self.lock = threading.Lock()

    def run(self):
        while not self.stop:
            with self.lock:
                ids = self.pending[: self.batch]
                if len(ids) < self.batch and self.producing:
                    fresh = ["C-%07d" % i for i in range(self.next_id, self.next_id + self.batch - len(ids))]
                    self.next_id += len(fresh)
                    self.pending.extend(fresh)
                    ids = self.pending[: self.batch]
            if not ids:
                time.sleep(self.period)
                continue
            body = json.dumps([{"id": i, "n": int(i[2:])} for i in ids])
            self.attempts += 1
            try:
                st, resp, hdrs = http("POST", self.url, body, timeout=10.0,
                                      headers={"Content-Type": "application/json"}, want_headers=True)
            except OSError:
                st, resp, hdrs = 0, b"", {}
            if st == 503:
                self.unavailable += 1
                if "Retry-After" in hdrs:
                    self.retry_after += 1
            if st == 202:
                results = json.loads(resp)["results"]
                ok = [i for i, r in zip(ids, results) if r["status"] in ("accepted", "duplicate")]
                bad = [r for r in results if r["status"] not in ("accepted", "duplicate", "unavailable")]
                if bad:
                    print("FAIL: records refused: %s" % bad[:3], file=sys.stderr)
                    os._exit(1)
                with self.lock:
                    self.acked.update(ok)
                    okset = set(ok)
                    self.pending = [i for i in self.pending if i not in okset]
            else:
                self.refused += 1
                time.sleep(0.1)
            time.sleep(self.period)


class Dropper(threading.Thread):
    """Drops JSON-lines files into the file source's folder (tmp + rename, as
    a package would); every record written must reach the sinks."""

    def __init__(self, folder, per_file, period):
        super().__init__(daemon=True)
        self.folder, self.per_file, self.period = folder, per_file, period
        self.written = set()
        self.files = 0
        self.stop = False

    def run(self):
        n = 0
        while not self.stop:
            ids = ["F-%07d" % i for i in range(n, n + self.per_file)]
            n += self.per_file
            tmp = os.path.join(self.folder, ".f%06d.tmp" % self.files)
            with open(tmp, "w") as f:
                for i in ids:
                    f.write(json.dumps({"id": i, "n": int(i[2:])}) + "\n")
            os.rename(tmp, os.path.join(self.folder, "f%06d.jsonl" % self.files))
            self.files += 1
            self.written.update(ids)
            time.sleep(self.period)


def sink_report(url):
    st, body = http("GET", url + "/_sim/stats")
    stats = json.loads(body)
    st, body = http("GET", url + "/_sim/events", timeout=60.0)
    entries = json.loads(body)
    by_record = {}
    for e in entries:
        ev = e.get("event") or {}
        rid, eid = ev.get("recordid"), ev.get("id")
        if rid and eid:
            by_record.setdefault(rid, set()).add(eid)
    return stats, by_record, len(entries)


def run_faults(a, hub, sender, faults):
    """Inject a.kills faults into the running hub, in turn: every embedded
    broker down, Produce request errors, partition leaders moved, PostgreSQL
    refusing the hub (connections forbidden and sessions killed, as a
    restart does). Each lasts between fault-min and fault-max seconds; the
    hub must come back by itself."""
    import re
    dbname = re.search(r"dbname=(\S+)", a.db).group(1)
    admin_db = re.sub(r"dbname=\S+", "dbname=postgres", a.db)
    kinds = ["bus_down", "produce_errors", "leader_change", "postgres_down"]
    for k in range(a.kills):
        time.sleep(random.uniform(a.min_gap, a.max_gap))
        kind = kinds[k % len(kinds)]
        dur = random.uniform(a.fault_min, a.fault_max)
        u0 = sender.unavailable
        t0 = time.monotonic()
        if kind == "bus_down":
            http("POST", hub.admin + "/fault/bus?action=down")
            time.sleep(dur)
            http("POST", hub.admin + "/fault/bus?action=up")
        elif kind == "produce_errors":
            http("POST", hub.admin + "/fault/bus?action=errors&count=200")
            time.sleep(dur)
        elif kind == "leader_change":
            http("POST", hub.admin + "/fault/bus?action=leader")
            time.sleep(dur)
        else:
            psql(admin_db, 'ALTER DATABASE "%s" ALLOW_CONNECTIONS false' % dbname)
            psql(admin_db, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '%s'"
                 % dbname)
            time.sleep(dur)
            psql(admin_db, 'ALTER DATABASE "%s" ALLOW_CONNECTIONS true' % dbname)
        t_end = time.monotonic()
        d0 = hub.delivered()
        recovered = None
        while time.monotonic() - t_end < 90:
            try:
                healthy = http("GET", hub.admin + "/healthz", timeout=1.0)[0] == 200
            except OSError:
                healthy = False
            if healthy and hub.delivered() > d0:
                recovered = time.monotonic() - t_end
                break
            time.sleep(0.05)
        if recovered is None:
            raise RuntimeError("hub did not recover within 90s of fault %d (%s)" % (k + 1, kind))
        faults.append({"n": k + 1, "kind": kind, "duration_s": round(t_end - t0, 2),
                       "answers_503": sender.unavailable - u0, "recovery_s": round(recovered, 3)})
        print("fault %2d: %-14s for %.1fs: %3d webhook posts answered 503; healthy and delivering %.2fs after"
              % (k + 1, kind, t_end - t0, sender.unavailable - u0, recovered), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sim", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--min-gap", type=float, default=0.3)
    ap.add_argument("--max-gap", type=float, default=4.0)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--period", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--report", default=None)
    ap.add_argument("--mode", choices=("kill", "faults"), default="kill",
                    help="kill: SIGKILL the hub; faults: inject broker and PostgreSQL faults into a running hub")
    ap.add_argument("--fault-min", type=float, default=1.0, help="shortest outage (faults mode)")
    ap.add_argument("--fault-max", type=float, default=4.0, help="longest outage (faults mode)")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else int(time.time())
    random.seed(seed)

    sims, procs = {}, []
    for name in ("worksite", "archive"):
        port = free_port()
        p = subprocess.Popen([a.sim, "--listen", "127.0.0.1:%d" % port, "--keep", "2000000", "--quiet"],
                             stdout=open(os.path.join(a.dir, "sim-%s.log" % name), "wb"), stderr=subprocess.STDOUT)
        procs.append(p)
        sims[name] = "http://127.0.0.1:%d" % port
    for url in sims.values():
        for _ in range(100):
            try:
                if http("GET", url + "/_sim/stats")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)

    src = free_port()
    inbox = os.path.join(a.dir, "inbox")
    os.makedirs(inbox, exist_ok=True)
    state = os.path.join(a.dir, "state")
    cfg = os.path.join(a.dir, "crash.yaml")
    with open(cfg, "w") as f:
        f.write("""hub:
  name: crash
  admin_listen: 127.0.0.1:0
  state_dir: %s
  log_level: warn
  fault_injection: %s
bus:
  brokers: embedded
  embedded_brokers: %d
  partitions: 3
journal:
  conninfo: "%s"
  batch_wait: 1ms
delivery:
  workers: 4
  max_attempts: 1000
  backoff_initial: 100ms
  backoff_max: 500ms
  poll_interval: 100ms
  lease: 2s
connectors:
  - name: desk
    type: http
    mode: source
    listen: 127.0.0.1:%d
    event_type: test.relais.crash.record
    subject_pointer: /id
    record_id_pointer: /id
  - name: inbox
    type: file
    mode: source
    dir: %s
    event_type: test.relais.crash.record
    subject_field: /id
    record_id_field: /id
  - name: worksite
    type: http
    mode: sink
    url: %s/events
    timeout: 2s
  - name: archive
    type: http
    mode: sink
    url: %s/events
    timeout: 2s
routes:
  - name: all
    match: "test.relais.**"
    to: [worksite, archive]
""" % (state, "true" if a.mode == "faults" else "false", 3 if a.mode == "faults" else 1, a.db, src,
       inbox, sims["worksite"], sims["archive"]))

    hub = Hub(a.bin, cfg, state, os.path.join(a.dir, "hub.log"))
    rc = 1
    try:
        hub.start()
        sender = Sender("http://127.0.0.1:%d/events" % src, a.batch, a.period)
        sender.start()
        dropper = Dropper(inbox, 20, 0.5)
        dropper.start()
        kills = []
        faults = []
        t_start = time.monotonic()
        if a.mode == "faults":
            run_faults(a, hub, sender, faults)
        for k in range(a.kills if a.mode == "kill" else 0):
            time.sleep(random.uniform(a.min_gap, a.max_gap))
            acked_before = len(sender.acked)
            hub.kill9()
            t_kill = time.monotonic()
            unrouted = psql(a.db, "SELECT count(*) FROM unrouted")
            open_d = psql(a.db, "SELECT count(*) FROM deliveries WHERE status NOT IN ('delivered','dead')")
            claimed = psql(a.db, "SELECT count(*) FROM deliveries WHERE status NOT IN ('delivered','dead') "
                                 "AND lease_until > now()")
            hub.start()
            healthy_s = time.monotonic() - t_kill
            # recovered: the restarted hub itself has delivered again (its own
            # counter; the sinks may still finish requests of the killed one)
            resumed_s = None
            while time.monotonic() - t_kill < 60:
                if hub.delivered() > 0:
                    resumed_s = time.monotonic() - t_kill
                    break
                time.sleep(0.05)
            if resumed_s is None:
                print("FAIL: deliveries did not resume within 60s of kill %d" % (k + 1), file=sys.stderr)
                return 1
            kills.append({"n": k + 1, "acked_before": acked_before,
                          "unrouted_at_kill": int(unrouted or 0), "open_deliveries_at_kill": int(open_d or 0),
                          "leased_at_kill": int(claimed or 0), "healthy_s": round(healthy_s, 3),
                          "recovery_s": round(resumed_s, 3)})
            print("kill %2d: %6d acknowledged, in flight: %5s not routed, %5s deliveries open (%s leased); "
                  "accepting again after %.2fs, delivering after %.2fs"
                  % (k + 1, acked_before, unrouted, open_d, claimed, healthy_s, resumed_s), flush=True)
        # stop making records, let the sender get every pending one acknowledged
        sender.producing = False
        dropper.stop = True
        dropper.join()
        t0 = time.monotonic()
        while True:
            with sender.lock:
                left = len(sender.pending)
            if left == 0 or time.monotonic() - t0 > 120:
                break
            time.sleep(0.2)
        sender.stop = True
        sender.join()
        if left:
            print("FAIL: %d records never acknowledged" % left, file=sys.stderr)
            return 1
        # every dropped file taken (archived) by the file source
        t0 = time.monotonic()
        while any(n.endswith(".jsonl") for n in os.listdir(inbox)) and time.monotonic() - t0 < 120:
            time.sleep(0.2)
        left_files = [n for n in os.listdir(inbox) if n.endswith(".jsonl")]
        if left_files:
            print("FAIL: %d dropped files never taken" % len(left_files), file=sys.stderr)
            return 1
        acked = set(sender.acked) | dropper.written
        # wait for both sinks to hold every acknowledged record
        t0 = time.monotonic()
        while time.monotonic() - t0 < 180:
            done = all(json.loads(http("GET", u + "/_sim/stats")[1])["distinct"] >= len(acked) for u in sims.values())
            if done:
                break
            time.sleep(0.5)
        drain_s = time.monotonic() - t0
        stop_rc = hub.stop()
        report = {"seed": seed, "mode": a.mode, "kills": len(kills), "faults": faults,
                  "records_acknowledged": len(acked), "webhook_records": len(sender.acked),
                  "file_records": len(dropper.written), "files": dropper.files,
                  "sender_posts": sender.attempts, "sender_refused": sender.refused,
                  "answers_503": sender.unavailable, "answers_503_with_retry_after": sender.retry_after,
                  "duration_s": round(time.monotonic() - t_start, 1), "drain_s": round(drain_s, 1),
                  "sigterm_exit": stop_rc, "kill_log": kills, "sinks": {}}
        ok = stop_rc == 0
        for name, url in sims.items():
            stats, by_record, nentries = sink_report(url)
            lost = sorted(acked - set(by_record))
            double = sorted(r for r, ids in by_record.items() if len(ids) > 1)
            unknown = sorted(set(by_record) - acked)
            report["sinks"][name] = {"distinct": stats["distinct"], "raw": stats["raw"],
                                     "redeliveries": stats["raw"] - stats["distinct"],
                                     "lost": len(lost), "double_applied": len(double),
                                     "not_acknowledged_but_delivered": len(unknown),
                                     "lost_sample": lost[:5], "double_sample": double[:5]}
            print("%s: %d acknowledged, %d distinct delivered, %d raw (%d redeliveries caught by dedupe), "
                  "lost %d, double-applied %d, delivered without acknowledgement %d"
                  % (name, len(acked), stats["distinct"], stats["raw"], stats["raw"] - stats["distinct"],
                     len(lost), len(double), len(unknown)))
            ok = ok and not lost and not double
        rec = sorted(k["recovery_s"] for k in kills)
        hea = sorted(k["healthy_s"] for k in kills)
        report["recovery_s_median"] = rec[len(rec) // 2] if rec else None
        report["recovery_s_max"] = rec[-1] if rec else None
        report["accepting_s_median"] = hea[len(hea) // 2] if hea else None
        stage = {"unrouted": sum(1 for k in kills if k["unrouted_at_kill"] > 0),
                 "deliveries_open": sum(1 for k in kills if k["open_deliveries_at_kill"] > 0),
                 "leased": sum(1 for k in kills if k["leased_at_kill"] > 0)}
        report["kills_with_work_in_flight"] = stage
        if a.mode == "kill":
          print("%d kills in %.0fs (seed %d): %d caught events not yet routed, %d deliveries not yet done, "
                "%d deliveries being made; accepting again after %.2fs (median), delivering again after "
                "%.2fs (median, max %.2fs); drained in %.1fs; SIGTERM exit %d"
                % (len(kills), report["duration_s"], seed, stage["unrouted"], stage["deliveries_open"],
                   stage["leased"], report["accepting_s_median"] or 0, report["recovery_s_median"] or 0,
                   report["recovery_s_max"] or 0, report["drain_s"], stop_rc))
        else:
            print("%d faults in %.0fs (seed %d); drained in %.1fs; SIGTERM exit %d"
                  % (len(faults), report["duration_s"], seed, report["drain_s"], stop_rc))
        if a.mode == "faults":
            by = {}
            for f in faults:
                by.setdefault(f["kind"], []).append(f)
            for kind, fs in sorted(by.items()):
                rec = sorted(f["recovery_s"] for f in fs)
                print("%-14s x%2d: outage %.1f-%.1fs, 503 answers during %d, delivering again %.2fs after "
                      "the end (median, max %.2fs)"
                      % (kind, len(fs), min(f["duration_s"] for f in fs), max(f["duration_s"] for f in fs),
                         sum(f["answers_503"] for f in fs), rec[len(rec) // 2], rec[-1]))
            print("webhook: %d posts, %d answered 503 (%d with Retry-After); %d records by webhook, %d in %d files"
                  % (sender.attempts, sender.unavailable, sender.retry_after, len(sender.acked),
                     len(dropper.written), dropper.files))
            if sender.unavailable != sender.retry_after:
                print("FAIL: a 503 without Retry-After", file=sys.stderr)
                ok = False
        # the tamper-evident trail survives the kills and faults: no false alarm
        v = subprocess.run([a.bin, "audit", "verify", "-c", cfg], capture_output=True, text=True)
        report["audit_verify"] = v.stdout.strip().splitlines()[-1:] if v.stdout else v.stderr.strip()
        print("audit verify: exit %d: %s" % (v.returncode, (v.stdout or v.stderr).strip()), flush=True)
        if v.returncode != 0:
            print("FAIL: relais audit verify does not pass after the campaign", file=sys.stderr)
            ok = False
        if a.report:
            with open(a.report, "w") as f:
                json.dump(report, f, indent=1)
        rc = 0 if ok else 1
    finally:
        if hub.proc and hub.proc.poll() is None:
            hub.proc.kill()
        for p in procs:
            p.terminate()
            p.wait()
    return rc


if __name__ == "__main__":
    sys.exit(main())
