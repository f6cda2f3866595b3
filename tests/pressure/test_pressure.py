#!/usr/bin/python3
"""test_pressure.py: hakmemd and the shim end to end, under real pressure.

Starts hakmemd (all sources), makes two child memory cgroups under this
process's own one (docs/ARCHITECTURE.md, "Platform notes": v1 memory controller here, v2 where that is
what exists), puts an idle shim client in each (pressure_client: grew to
40 MB of small blocks, freed 90 %, now asleep), then makes real pressure in
the first one only: a reader pulls a file twice the cgroup's limit through
the page cache. Checks:
  - the client under pressure goes LEAN and gives memory back
    (lean_decommit or lean_retire rises), and prints the time from the
    start of the pressure to the decommit, measured by polling the
    daemon's view of the client's stats page every 2 ms;
  - the client in the sibling cgroup stays FAST with nothing decommitted.
Needs root (cgroups, BPF): skips with the reason otherwise (exit 77).
Everything it creates is removed, also on failure.

Usage: test_pressure.py HAKMEMD LIBHAKMEM PRESSURE_CLIENT
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
from cgtest import Cgroups, big_file, setup, skip, start_in, wait_for, wait_ready  # noqa: E402

LIMIT = 96 << 20


def client_of(run, pid):
    for c in hkctl.clients(run):
        if c["pid"] == pid:
            return c
    return None


def main():
    (hakmemd, lib, client), version, parent = setup()

    tmp = tempfile.mkdtemp(prefix="hakmem-pressure-")
    run = os.path.join(tmp, "run")
    cgs = Cgroups(version, parent)
    procs = []
    log = open(os.path.join(tmp, "hakmemd.log"), "w+")
    ok = False
    try:
        daemon = subprocess.Popen([hakmemd, "--runtime-dir", run, "--verbose"],
                                  stderr=log, stdout=log)
        procs.append(daemon)
        wait_ready(hkctl, run, 60)
        text, _ = hkctl.cgroups(run)
        if "source bpf on" not in text:
            skip("hakmemd runs without its bpf source here:\n" + text)

        a = cgs.make("pressed", LIMIT)
        b = cgs.make("calm", LIMIT)
        # FAST's own decay (10 s) also counts in lean_decommit: off, so that
        # what either client gives back here is the daemon's doing only.
        env = dict(os.environ, LD_PRELOAD=lib, HAKMEM_RUNTIME_DIR=run, HAKMEM_SS_OS_STATS="1",
                   HAKMEM_SS_DECAY_MS="0")
        ca = start_in(a, [client, "40", "10"], env, stdout=subprocess.PIPE, text=True)
        cb = start_in(b, [client, "40", "10"], env, stdout=subprocess.PIPE, text=True)
        procs += [ca, cb]
        for c in (ca, cb):
            line = c.stdout.readline()
            assert line.startswith("ready"), f"client said {line!r}"
        for c in (ca, cb):
            wait_for(lambda: client_of(run, c.pid), 10, f"client {c.pid} to register")
        before_a, before_b = client_of(run, ca.pid), client_of(run, cb.pid)
        assert before_a["mode"] == 0 and before_b["mode"] == 0, "clients should start FAST"
        rss0 = rss_kb(ca.pid)

        # a file twice the limit, written from outside the cgroups
        data = big_file(os.path.join("/var/tmp", f"hakmem-pressure-{os.getpid()}.dat"),
                        2 * LIMIT >> 20)
        try:
            usage_file = os.path.join(a, "memory.usage_in_bytes" if version == 1
                                      else "memory.current")
            onset = []

            def watch_usage():   # onset: the cgroup reaches its limit
                end = time.monotonic() + 20
                while not onset and time.monotonic() < end:
                    if int(open(usage_file).read()) >= LIMIT - (1 << 20):
                        onset.append(time.monotonic())
                    time.sleep(0.0005)
            watcher = threading.Thread(target=watch_usage, daemon=True)
            watcher.start()
            t0 = time.monotonic()
            hog = start_in(a, ["/bin/sh", "-c", f"while :; do cat {data} > /dev/null; done"],
                           dict(os.environ))
            procs.append(hog)

            def gave_back():
                c = client_of(run, ca.pid)
                if c and c["mode"] == 1 and (c["lean_decommit"] > before_a["lean_decommit"] or
                                             c["lean_retire"] > before_a["lean_retire"]):
                    return c
                return None
            end = time.monotonic() + 20
            after_a = None
            while time.monotonic() < end and not after_a:
                after_a = gave_back()
                if not after_a:
                    time.sleep(0.002)
            t1 = time.monotonic()
            assert after_a, "the pressed client never went LEAN and gave memory back"
            watcher.join()
            at_limit = f"{(t1 - onset[0]) * 1000:.1f} ms" if onset else "? (limit not seen)"
            print(f"pressure onset (cgroup at its limit) -> client LEAN and decommitted: "
                  f"{at_limit}; from the reader's start: {(t1 - t0) * 1000:.1f} ms "
                  f"(level {after_a['last_level']}, lean_decommit {after_a['lean_decommit']}, "
                  f"lean_retire {after_a['lean_retire']}, "
                  f"bytes_decommitted {after_a['bytes_decommitted']})")
            _, recs = hkctl.cgroups(run)
            decided = [r["updated_ns"] / 1e9 for r in recs if r["key"] == after_a["cgroup_key"]]
            if decided and onset:
                print(f"  of which: onset -> daemon's decision {(decided[0] - onset[0]) * 1000:.1f} ms, "
                      f"decision -> client decommitted {(t1 - decided[0]) * 1000:.1f} ms")
            time.sleep(0.5)
        finally:
            os.unlink(data)
        print(f"pressed client RSS: {rss0} kB before, {rss_kb(ca.pid)} kB after "
              f"(LazyFree {lazyfree_kb(ca.pid)} kB)")
        after_b = client_of(run, cb.pid)
        assert after_b["mode"] == 0, "the sibling cgroup's client switched mode"
        assert after_b["lean_decommit"] == before_b["lean_decommit"], \
            "the sibling cgroup's client decommitted"
        assert after_b["mode_switches"] == 0, "the sibling cgroup's client switched mode"
        ok = True
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        cgs.close()
        if not ok or os.environ.get("HAKMEM_TEST_VERBOSE"):
            log.seek(0)
            print("--- hakmemd log ---\n" + log.read()[-4000:])
        subprocess.run(["rm", "-rf", tmp])
    systemd_protocol(lib, client, version, parent)
    fork_reregisters(hakmemd, lib)
    print("PASS")


def fork_reregisters(hakmemd, lib):
    """A forked child of a registered shim process starts its own listener
    (the parent's thread does not survive fork) and registers too."""
    tmp = tempfile.mkdtemp(prefix="hakmem-fork-")
    run = os.path.join(tmp, "run")
    procs = []
    try:
        daemon = subprocess.Popen([hakmemd, "--runtime-dir", run, "--sources", "none"],
                                  stderr=subprocess.DEVNULL)
        procs.append(daemon)
        wait_ready(hkctl, run, 60)
        code = ("import os, sys, time\n"
                "pid = os.fork()\n"
                "junk = [str(i) * 20 for i in range(200000)]\n"
                "os.write(1, b'%d\\n' % os.getpid())\n"
                "time.sleep(30)\n")
        env = dict(os.environ, LD_PRELOAD=lib, HAKMEM_RUNTIME_DIR=run, PYTHONMALLOC="malloc")
        p = subprocess.Popen(["/usr/bin/python3", "-c", code], env=env, stdout=subprocess.PIPE,
                             text=True, start_new_session=True)
        procs.append(p)
        pids = {int(p.stdout.readline()), int(p.stdout.readline())}
        wait_for(lambda: pids <= {c["pid"] for c in hkctl.clients(run)}, 10,
                 f"both sides of the fork ({sorted(pids)}) to register")
        print(f"fork: parent and child both registered ({sorted(pids)})")
    finally:
        for q in procs:
            try:
                os.killpg(q.pid, signal.SIGTERM) if q is not daemon else q.terminate()
            except (ProcessLookupError, PermissionError):
                pass
            q.wait()
        subprocess.run(["rm", "-rf", tmp])


def systemd_protocol(lib, client, version, parent):
    """Without a daemon, a shim follows systemd's memory-pressure protocol:
    $MEMORY_PRESSURE_WATCH names a PSI file, $MEMORY_PRESSURE_WRITE the
    trigger (base64). Here: the host-wide file (v1 memcgs have none), a
    10 ms-in-2 s trigger, and the same page-cache pressure; the client must
    report a mode switch at exit."""
    import base64
    watch = "/proc/pressure/memory"
    if version == 2:
        watch = None
    if not os.path.exists("/proc/pressure/memory"):
        print("systemd protocol: SKIP (no PSI)")
        return
    cgs = Cgroups(version, parent)
    procs = []
    data = os.path.join("/var/tmp", f"hakmem-mp-{os.getpid()}.dat")
    try:
        a = cgs.make("mp", LIMIT)
        if version == 2:
            watch = os.path.join(a, "memory.pressure")
        trig = base64.b64encode(b"some 10000 2000000").decode()
        env = dict(os.environ, LD_PRELOAD=lib, HAKMEM_DAEMON="0", HAKMEM_SS_OS_STATS="1",
                   MEMORY_PRESSURE_WATCH=watch, MEMORY_PRESSURE_WRITE=trig)
        ca = subprocess.Popen([client, "40", "10"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: open(os.path.join(a, "cgroup.procs"), "w").write(str(os.getpid())))
        procs.append(ca)
        assert ca.stdout.readline().startswith("ready")
        big_file(data, 2 * LIMIT >> 20)
        hog = start_in(a, ["/bin/sh", "-c", f"while :; do cat {data} > /dev/null; done"],
                       dict(os.environ))
        procs.append(hog)
        time.sleep(4)                   # two trigger windows
        hog.send_signal(signal.SIGTERM)
        hog.wait()
        ca.send_signal(signal.SIGTERM)
        _, err = ca.communicate(timeout=10)
        stats = dict(line.split() for line in err.splitlines() if len(line.split()) == 2)
        assert int(stats.get("mode_switches", 0)) >= 1, \
            f"the client did not follow MEMORY_PRESSURE_WATCH={watch}:\n{err}"
        print(f"systemd protocol: client went LEAN (mode_switches {stats['mode_switches']}, "
              f"lean_decommit {stats.get('lean_decommit')}, level {stats.get('level')})")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if os.path.exists(data):
            os.unlink(data)
        cgs.close()


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def lazyfree_kb(pid):
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("LazyFree:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


if __name__ == "__main__":
    main()
