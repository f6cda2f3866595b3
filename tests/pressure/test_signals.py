#!/usr/bin/python3
"""test_signals.py: each of hakmemd's cgroup signals changes a real
cgroup's level, under real pressure, on the hierarchy this host runs:

  growth      (v1, v2) a process grows 104 MB next to an idle 48 MB shim
              client under a 128 MB limit:
              the level rises from usage before the cgroup first hits its
              limit, and the client gives memory back;
  high        (v2) usage is measured against memory.high when that is
              below memory.max (Kubernetes MemoryQoS): usage alone
              (--sources usage) raises the level far below memory.max;
  events      (v2) memory.events alone (--sources events): a reader at
              memory.max -> CRITICAL, over memory.high -> MEDIUM, an OOM
              kill -> CRITICAL, each with reason memory_events;
  psi         (v2) the PSI averages alone (--sources psi, a fired trigger
              meaning nothing): a task throttled at memory.high stalls,
              avg10 climbs and the level follows with reason psi; then the
              trigger (default level low) with the shortest window the
              kernel grants, which status names.
A part that needs v2 says SKIP on v1 (these hosts' memory controller is
on v1; tools/vm.sh test runs them in a v2 guest). Needs root: exits 77
without. Everything it creates is removed, also on failure.

Usage: test_signals.py HAKMEMD LIBHAKMEM PRESSURE_CLIENT
"""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hkctl  # noqa: E402
from cgtest import Cgroups, big_file, events, setup, start_in, wait_for  # noqa: E402

MB = 1 << 20
LEVELS = ["none", "low", "medium", "critical"]
REASONS = ["none", "bpf_reclaim", "bpf_oom", "psi", "usage", "calm", "operator", "startup",
           "shutdown", "memory_events"]


class Daemon:
    """hakmemd in a private runtime dir, with a log kept for failures."""

    def __init__(self, hakmemd, tmp, args):
        self.run = os.path.join(tmp, f"run-{len(os.listdir(tmp))}")
        self.log = open(self.run + ".log", "w+")
        self.p = subprocess.Popen([hakmemd, "--runtime-dir", self.run, "--verbose"] + args,
                                  stdout=self.log, stderr=self.log)
        wait_for(lambda: os.path.exists(f"{self.run}/control.sock"), 30, "hakmemd's sockets")

    def level(self, key):
        """(level, reason) hakmemd publishes for cgroup key, or None."""
        _, recs = hkctl.cgroups(self.run)
        for r in recs:
            if r["key"] == key:
                return LEVELS[r["level"]], REASONS[r["reason"]] if r["reason"] < len(REASONS) else "?"
        return None

    def status_text(self):
        return hkctl.cgroups(self.run)[0]

    def stop(self, show_log=False):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        if show_log:
            self.log.seek(0)
            print("--- hakmemd log ---\n" + self.log.read()[-4000:])
        self.log.close()


class Rig:
    """A test's daemon, cgroups and processes, all torn down by close()."""

    def __init__(self, args, version, parent, tmp):
        self.a, self.version, self.tmp = args, version, tmp
        self.cgs = Cgroups(version, parent)
        self.procs, self.daemons = [], []

    def daemon(self, *args):
        d = Daemon(self.a.hakmemd, self.tmp, list(args))
        self.daemons.append(d)
        return d

    def client(self, d, cg, mb, keep_pct):
        """An idle shim client in cg that grew to mb MB and kept keep_pct %."""
        env = dict(os.environ, LD_PRELOAD=self.a.lib, HAKMEM_RUNTIME_DIR=d.run)
        c = start_in(cg, [self.a.client, str(mb), str(keep_pct)], env, stdout=subprocess.PIPE,
                     text=True)
        self.procs.append(c)
        line = c.stdout.readline()
        assert line.startswith("ready"), f"client said {line!r}"
        wait_for(lambda: any(x["pid"] == c.pid for x in hkctl.clients(d.run)), 30,
                 f"client {c.pid} to register")
        return c

    def start(self, cg, argv, **kw):
        p = start_in(cg, argv, **kw)
        self.procs.append(p)
        return p

    def close(self, failed):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.kill()
            p.wait()
        for d in self.daemons:
            d.stop(show_log=failed)
        self.cgs.close()


def client_of(d, pid):
    return next((c for c in hkctl.clients(d.run) if c["pid"] == pid), None)


def wait_level(d, key, at_least, reasons, timeout, what):
    """Waits until cgroup key is at least at_least with a reason in reasons."""
    def ok():
        v = d.level(key)
        return v if v and LEVELS.index(v[0]) >= LEVELS.index(at_least) and v[1] in reasons else None
    try:
        return wait_for(ok, timeout, what, step=0.05)
    except AssertionError:
        raise AssertionError(f"{what}: the cgroup is at {d.level(key)}, wanted {at_least} "
                             f"from {reasons}")


GROW = """
import sys, time
blocks = []
for _ in range(int(sys.argv[1]) // 8):
    blocks.append(b'\\x01' * (8 << 20))
print('grown', flush=True)
time.sleep(60)
"""


def part_growth(rig, d):
    """A process grows fast next to an idle client: the first level rise
    comes from usage, before the cgroup first hits its limit."""
    limit = 128 * MB
    cg = rig.cgs.make("growth", limit)
    key = os.stat(cg).st_ino
    c = rig.client(d, cg, 48, 1)             # ~50 MB held, 0.5 MB in use
    before = client_of(d, c.pid)
    hits0 = rig.cgs.limit_hits(cg)
    seen = []                                # (t, level, reason) as published
    first_hit = []
    stop = threading.Event()

    def watch():
        last = None
        while not stop.is_set():
            if not first_hit and rig.cgs.limit_hits(cg) > hits0:
                first_hit.append(time.monotonic())
            v = d.level(key)
            if v != last:
                seen.append((time.monotonic(), *v))
                last = v
            time.sleep(0.001)
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    t0 = time.monotonic()
    g = rig.start(cg, [sys.executable, "-c", GROW, "104"], stdout=subprocess.PIPE, text=True)
    g.stdout.readline()
    grown = time.monotonic()
    wait_for(lambda: (client_of(d, c.pid) or {}).get("lean_decommit", 0) > before["lean_decommit"],
             30, "the client to give memory back")
    stop.set()
    t.join()
    rises = [(tt, lv, why) for tt, lv, why in seen if lv != "none"]
    assert rises, f"the level never rose: {seen}"
    t1, lv1, why1 = rises[0]
    hit = f"{(first_hit[0] - t0) * 1000:.0f} ms" if first_hit else "never"
    print(f"growth: 104 MB in {(grown - t0) * 1000:.0f} ms next to a 48 MB idle client "
          f"(limit 128 MB): first rise {lv1} ({why1}) at {(t1 - t0) * 1000:.0f} ms, "
          f"first limit hit {hit}, {rig.cgs.limit_hits(cg) - hits0} hits; levels {[x[1:] for x in seen]}")
    assert why1 == "usage", f"the first rise came from {why1}, not usage"
    assert not first_hit or t1 < first_hit[0], "the level rose only after the limit was hit"


def part_high(rig, d):
    """Usage against memory.high, far below memory.max."""
    cg = rig.cgs.make("high", limit=1024 * MB, high=100 * MB)
    key = os.stat(cg).st_ino
    rig.client(d, cg, 90, 100)               # 90 MB, all kept: 90 % of high
    lv = wait_level(d, key, "low", {"usage"}, 30, "usage against memory.high")
    _, recs = hkctl.cgroups(d.run)
    rec = next(r for r in recs if r["key"] == key)
    print(f"high: 90 MB held under memory.high 100 MB (memory.max 1 GB): {lv}, "
          f"limit shown {rec['limit_bytes'] // MB} MB")
    assert rec["limit_bytes"] == 100 * MB, "status should show memory.high as the limit"


def part_events(rig, d):
    """memory.events alone: max, high, oom_kill."""
    data = big_file(os.path.join("/var/tmp", f"hakmem-signals-{os.getpid()}.dat"), 64)
    try:
        for name, kw, want, counter in (("max", {"limit": 32 * MB}, "critical", "max"),
                                        ("over-high", {"high": 32 * MB}, "medium", "high")):
            cg = rig.cgs.make("ev-" + name, **kw)
            key = os.stat(cg).st_ino
            c = rig.client(d, cg, 8, 50)
            r = rig.start(cg, ["/bin/sh", "-c", f"while :; do cat {data} > /dev/null; done"])
            lv = wait_level(d, key, want, {"memory_events"}, 60, f"memory.events {counter}")
            wait_for(lambda: (client_of(d, c.pid) or {}).get("last_level", 0) >= LEVELS.index(want),
                     30, f"the client to apply {want}")
            print(f"events: a reader at memory.{'max' if name == 'max' else 'high'} 32 MB: "
                  f"{lv}, memory.events {counter} {events(cg)[counter]}")
            r.kill()
            r.wait()
    finally:
        os.unlink(data)
    cg = rig.cgs.make("ev-oom", limit=32 * MB)
    key = os.stat(cg).st_ino
    rig.client(d, cg, 4, 50)
    o = rig.start(cg, [sys.executable, "-c", GROW, "64"], stdout=subprocess.DEVNULL)
    o.wait(timeout=120)
    lv = wait_level(d, key, "critical", {"memory_events"}, 30, "memory.events oom_kill")
    print(f"events: 64 MB of anonymous memory in 32 MB: killed ({o.returncode}), {lv}, "
          f"oom_kill {events(cg)['oom_kill']}")
    assert events(cg)["oom_kill"] >= 1


THROTTLED = """
import time
blocks = [b'\\x01' * (4 << 20) for _ in range(12)]   # 48 MB over a 24 MB memory.high
print('throttled', flush=True)
time.sleep(120)
"""


def part_psi(rig, d_avg, d_trig):
    """PSI: the averages alone, then the trigger."""
    cg = rig.cgs.make("psi", high=24 * MB)
    key = os.stat(cg).st_ino
    c = rig.client(d_avg, cg, 4, 50)
    rig.client(d_trig, cg, 4, 50)
    rig.start(cg, [sys.executable, "-c", THROTTLED], stdout=subprocess.DEVNULL)
    lv = wait_level(d_avg, key, "low", {"psi"}, 90, "PSI avg10 to raise the level")
    pressure = open(os.path.join(cg, "memory.pressure")).readline().strip()
    print(f"psi: a task throttled at memory.high 24 MB: averages alone give {lv} ({pressure})")
    wait_for(lambda: (client_of(d_avg, c.pid) or {}).get("last_level", 0) >= 1, 30,
             "the client to follow the PSI level")
    lv = wait_level(d_trig, key, "low", {"psi"}, 60, "the PSI trigger to raise the level")
    line = next(l for l in d_trig.status_text().splitlines() if l.startswith("signal psi "))
    print(f"psi: the trigger gives {lv}; status: {line}")
    assert "trigger" in line, line


def main():
    class A:
        pass
    a = A()
    (a.hakmemd, a.lib, a.client), version, parent = setup()
    tmp = tempfile.mkdtemp(prefix="hakmem-signals-")
    parts = [("growth", lambda r: part_growth(r, r.daemon()))]
    if version == 2:
        parts += [("high", lambda r: part_high(r, r.daemon("--sources", "usage"))),
                  ("events", lambda r: part_events(r, r.daemon("--sources", "events"))),
                  ("psi", lambda r: part_psi(r, r.daemon("--sources", "psi", "--set",
                                                         "psi_trigger_level=none"),
                                             r.daemon("--sources", "psi")))]
    else:
        print("SKIP high, events, psi: the memory controller is on cgroup v1 here "
              "(no memory.high, memory.events or per-cgroup PSI); tools/vm.sh test runs them")
    try:
        for name, run in parts:
            rig = Rig(a, version, parent, tmp)
            failed = True
            try:
                run(rig)
                failed = False
            finally:
                rig.close(failed)
    finally:
        subprocess.run(["rm", "-rf", tmp])
    print("PASS")


if __name__ == "__main__":
    main()
