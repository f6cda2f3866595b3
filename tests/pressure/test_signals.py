#!/usr/bin/python3
"""test_signals.py: each of hakmemd's cgroup signals changes a real
cgroup's level, under real pressure, on the hierarchy this host runs:

  growth      (v1, v2) a process grows 104 MB next to an idle 48 MB shim
              client under a 128 MB limit:
              the level rises from usage before the cgroup first hits its
              limit, and the client gives memory back;
  ancestor    (v1, v2) the same in two unlimited children of a parent
              limited to 160 MB (a pod's containers, a slice's services):
              the idle client's level rises from the parent's usage
              before the parent first hits its limit, and status names
              the parent as the cgroup whose limit governs;
  namespace   (v1, v2) hakmemd in a cgroup namespace of its own (a
              DaemonSet's container), a shim client in another: hakmemd
              places the client in its real cgroup, whose usage raises
              the level as in growth;
  high        (v2) usage is measured against memory.high when that is
              below memory.max (Kubernetes MemoryQoS): usage alone
              (--sources usage) raises the level far below memory.max;
  events      (v2) memory.events alone (--sources events): a reader at
              memory.max -> CRITICAL, over memory.high -> MEDIUM, an OOM
              kill -> CRITICAL, each with reason memory_events and counted
              in hakmem_cgroup_memory_events_total;
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
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hkctl  # noqa: E402
from cgtest import Cgroups, big_file, events, setup, start_in, wait_for, wait_ready  # noqa: E402

MB = 1 << 20
LEVELS = ["none", "low", "medium", "critical"]
REASONS = ["none", "bpf_reclaim", "bpf_oom", "psi", "usage", "calm", "operator", "startup",
           "shutdown", "memory_events"]


class Daemon:
    """hakmemd in a private runtime dir, with a log kept for failures."""

    def __init__(self, hakmemd, tmp, args, cgroup=None, wrap=()):
        """Started with argv wrap in front (unshare -C...), in cgroup if given."""
        self.run = os.path.join(tmp, f"run-{len(os.listdir(tmp))}")
        self.log = open(self.run + ".log", "w+")
        argv = list(wrap) + [hakmemd, "--runtime-dir", self.run, "--verbose"] + args
        if cgroup:
            self.p = start_in(cgroup, argv, stdout=self.log, stderr=self.log)
        else:
            self.p = subprocess.Popen(argv, stdout=self.log, stderr=self.log)
        wait_ready(hkctl, self.run, 60)

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

    def daemon(self, *args, cgroup=None, wrap=()):
        d = Daemon(self.a.hakmemd, self.tmp, list(args), cgroup, wrap)
        self.daemons.append(d)
        return d

    def client(self, d, cg, mb, keep_pct, wrap=()):
        """An idle shim client in cg that grew to mb MB and kept keep_pct %
        (started by argv wrap, which then runs env with the shim's
        variables: wrap itself runs without the shim)."""
        shim = [f"LD_PRELOAD={self.a.lib}", f"HAKMEM_RUNTIME_DIR={d.run}"]
        argv = [self.a.client, str(mb), str(keep_pct)]
        if wrap:
            c = start_in(cg, list(wrap) + ["env"] + shim + argv, stdout=subprocess.PIPE, text=True)
        else:
            env = dict(os.environ, **dict(v.split("=", 1) for v in shim))
            c = start_in(cg, argv, env, stdout=subprocess.PIPE, text=True)
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


def grow_next_to(rig, d, client_cg, grow_cg, limited, mb, wrap=()):
    """A process grows mb MB in grow_cg while a 48 MB shim client idles in
    client_cg (started by wrap), until the client gives memory back.
    Returns (levels of client_cg as published [(t, level, reason)], the
    time of the first hit of limited's limit or None, hits, t0, the time
    growing ended)."""
    key = os.stat(client_cg).st_ino
    c = rig.client(d, client_cg, 48, 1, wrap)  # ~50 MB held, 0.5 MB in use
    before = client_of(d, c.pid)
    hits0 = rig.cgs.limit_hits(limited)
    seen = []                                # (t, level, reason) as published
    first_hit = []
    stop = threading.Event()

    def watch():
        last = None
        while not stop.is_set():
            if not first_hit and rig.cgs.limit_hits(limited) > hits0:
                first_hit.append(time.monotonic())
            v = d.level(key)
            if v != last:
                seen.append((time.monotonic(), *v))
                last = v
            time.sleep(0.001)
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    t0 = time.monotonic()
    try:
        g = rig.start(grow_cg, [sys.executable, "-c", GROW, str(mb)], stdout=subprocess.PIPE,
                      text=True)
        g.stdout.readline()
        grown = time.monotonic()
        wait_for(lambda: (client_of(d, c.pid) or {}).get("lean_decommit", 0) >
                 before["lean_decommit"], 30, "the client to give memory back")
    finally:
        stop.set()
        t.join()
        print(f"levels seen: {[x[1:] for x in seen]}")
    return seen, first_hit[0] if first_hit else None, rig.cgs.limit_hits(limited) - hits0, t0, grown


def first_rise_before_hit(what, seen, hit, t0):
    """The first rise came from usage, before the first limit hit."""
    rises = [(tt, lv, why) for tt, lv, why in seen if lv != "none"]
    assert rises, f"{what}: the level never rose: {seen}"
    t1, lv1, why1 = rises[0]
    assert why1 == "usage", f"{what}: the first rise came from {why1}, not usage"
    assert hit is None or t1 < hit, (f"{what}: the level rose only after the limit was hit "
                                     f"({(t1 - t0) * 1000:.0f} ms, hit at {(hit - t0) * 1000:.0f} ms)")
    return t1, lv1, why1


def part_growth(rig, d):
    """A process grows fast next to an idle client: the first level rise
    comes from usage, before the cgroup first hits its limit."""
    cg = rig.cgs.make("growth", 128 * MB)
    seen, hit, hits, t0, grown = grow_next_to(rig, d, cg, cg, cg, 104)
    t1, lv1, why1 = first_rise_before_hit("growth", seen, hit, t0)
    print(f"growth: 104 MB in {(grown - t0) * 1000:.0f} ms next to a 48 MB idle client "
          f"(limit 128 MB): first rise {lv1} ({why1}) at {(t1 - t0) * 1000:.0f} ms, "
          f"first limit hit {f'{(hit - t0) * 1000:.0f} ms' if hit else 'never'}, {hits} hits")


def part_ancestor(rig, d):
    """Two unlimited children of a limited parent (a pod's containers, a
    slice's services): a process grows in one while a client idles in the
    other; the idle one's level rises from the parent's usage before the
    parent first hits its limit, and status names the parent as the
    cgroup whose limit governs it."""
    parent = rig.cgs.make("ancestor", 160 * MB)
    idle = rig.cgs.make("idle", under=parent)
    busy = rig.cgs.make("busy", under=parent)
    seen, hit, hits, t0, grown = grow_next_to(rig, d, idle, busy, parent, 112)
    t1, lv1, why1 = first_rise_before_hit("ancestor", seen, hit, t0)
    key = os.stat(idle).st_ino
    text, recs = hkctl.cgroups(d.run)
    rec = next(r for r in recs if r["key"] == key)
    limit_of = [l.split(" ", 2)[2] for l in text.splitlines() if l.startswith(f"limit {key} ")]
    print(f"ancestor: 112 MB grown in a sibling in {(grown - t0) * 1000:.0f} ms next to a "
          f"48 MB idle client, parent limit 160 MB: first rise {lv1} ({why1}) at "
          f"{(t1 - t0) * 1000:.0f} ms, parent's first limit hit "
          f"{f'{(hit - t0) * 1000:.0f} ms' if hit else 'never'}, {hits} hits; "
          f"status: limit {rec['limit_bytes'] // MB} MB of {limit_of}")
    assert limit_of and parent.endswith(limit_of[0]), \
        f"status should name {parent} as the limit of {idle}: {limit_of}"
    assert rec["limit_bytes"] == 160 * MB, "status should show the parent's limit"


def ns_view(pid, of):
    """The memory line of /proc/OF/cgroup as seen from pid's cgroup namespace."""
    out = subprocess.run(["nsenter", "-t", str(pid), "-C", "cat", f"/proc/{of}/cgroup"],
                         capture_output=True, text=True, check=True).stdout
    return next(l for l in out.splitlines() if ":memory:" in l or l.startswith("0::"))


def part_namespace(rig):
    """hakmemd in a cgroup namespace of its own (a Kubernetes DaemonSet's
    container on cgroup v2) with the host's hierarchy mounted, and a shim
    client in a namespace of its own too (`unshare -C`: its
    /proc/self/cgroup says "/"): hakmemd places the client in its real
    cgroup, and the level rises from that cgroup's usage."""
    dcg = rig.cgs.make("nsdaemon")
    cg = rig.cgs.make("nsclient", 128 * MB)
    d = rig.daemon(cgroup=dcg, wrap=["unshare", "-C"])
    seen, hit, hits, t0, grown = grow_next_to(rig, d, cg, cg, cg, 104, wrap=["unshare", "-C"])
    c = next(p for p in rig.procs if p.args[:2] == ["unshare", "-C"])
    own, from_d = ns_view(c.pid, c.pid), ns_view(d.p.pid, c.pid)
    print(f"namespace: the client sees its cgroup as {own!r}, hakmemd as {from_d!r}")
    print("namespace: hakmemd says: " + "; ".join(l.split("cgroup namespace: ", 1)[1] for l in
                                                  open(d.log.name).read().splitlines()
                                                  if "cgroup namespace: " in l))
    assert own.endswith(":/"), f"the client should be at its namespace's root: {own}"
    assert "/../" in from_d, f"the client's cgroup should lie outside hakmemd's namespace: {from_d}"
    t1, lv1, why1 = first_rise_before_hit("namespace", seen, hit, t0)
    key = os.stat(cg).st_ino
    line = next((l for l in d.status_text().splitlines() if l.startswith(f"cgroup {key} ")), None)
    print(f"namespace: first rise {lv1} ({why1}) at {(t1 - t0) * 1000:.0f} ms; status: {line}")
    path = line.split(" ")[2] if line else ""
    assert path.endswith("/" + os.path.basename(cg)) and cg.endswith(path), \
        f"status should list the client's cgroup {cg} by its path in the hierarchy: {line}"


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


def memory_events_metric(d, cg, event):
    """hakmem_cgroup_memory_events_total of cgroup directory cg for event,
    from hakmemd's metrics (None: no sample)."""
    text, _ = hkctl.request(d.run, hkctl.METRICS)
    for path, ev, n in re.findall(r'^hakmem_cgroup_memory_events_total'
                                  r'\{cgroup="([^"]*)",event="([a-z_]+)"\} (\d+)$', text, re.M):
        if ev == event and cg.endswith(path):
            return int(n)
    return None


def part_events(rig, d):
    """memory.events alone: max, high, oom_kill; each also counted in
    hakmem_cgroup_memory_events_total."""
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
            n = memory_events_metric(d, cg, counter)
            print(f"events: a reader at memory.{'max' if name == 'max' else 'high'} 32 MB: "
                  f"{lv}, memory.events {counter} {events(cg)[counter]}, metric {n}")
            assert n is not None and n >= 1, f"hakmem_cgroup_memory_events_total {counter}: {n}"
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
    n = memory_events_metric(d, cg, "oom_kill")
    print(f"events: 64 MB of anonymous memory in 32 MB: killed ({o.returncode}), {lv}, "
          f"oom_kill {events(cg)['oom_kill']}, metric {n}")
    assert events(cg)["oom_kill"] >= 1
    assert n is not None and n >= 1, f"hakmem_cgroup_memory_events_total oom_kill: {n}"


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
    parts = [("growth", lambda r: part_growth(r, r.daemon())),
             ("ancestor", lambda r: part_ancestor(r, r.daemon())),
             ("namespace", part_namespace)]
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
