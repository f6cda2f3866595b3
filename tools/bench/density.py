#!/usr/bin/python3
"""density.py: how many bursty "containers" fit on one host with nobody
OOM-killed, per allocator.

N containers are child memory cgroups under one parent whose limit
(--limit) is below the sum of their peaks; the parent sits under this
script's own memory cgroup, named hakmem-density-PID, and is removed at
the end whatever happens. Each container runs jobs back to back until the
rung's time is up, the containers' first jobs staggered over one job
length. A job grows to about --peak, frees 90 % of it (every tenth object
stays, so the free memory is scattered), idles --idle seconds, grows
again and frees again, then exits. The kinds of job, one per container in
turn:
  pydict   python3 (PYTHONMALLOC=malloc) fills a dict with strings, deletes
           nine keys in ten
  sqlite3  the sqlite3 shell fills an in-memory database (auto_vacuum=FULL)
           with blobs, deletes nine rows in ten
  redis    redis-server on 127.0.0.1 filled by redis-benchmark (SET, 1 KB
           values), nine keys in ten deleted by a Lua script
  phase    tools/bench's bench_phase: grow, free all but --keep-pct, settle
           (twice: the idle is the first run's settle)
Every process of a job runs on the allocator under test: hakmem (with a
hakmemd of its own, --runtime-dir in a temporary directory), glibc, jemalloc
and mimalloc, through LD_PRELOAD (glibc: libc.so.6 preloaded, so that
redis-server, linked with jemalloc, runs on glibc too); hakmem-lean is
hakmem started LEAN (HAKMEM_SS_MEM_LEAN=1), for comparison.

For each allocator and each N of the ladder (--ladder 4,6,8,10): OOM kills
(the parent's oom_kill counter), jobs finished, p99 job time, peak and mean
of the containers' anonymous memory (the parent's memory.stat rss, sampled
every 0.25 s), and the largest N with zero OOM kills. Prints the table and
draws anonymous memory over time, one panel per N, one line per allocator,
to --plot (PNG, python3-matplotlib).

Needs root and a memory cgroup controller (v1 or v2). Run from the build
tree: sudo tools/bench/density.py [--alloc hakmem,glibc] (Debian's python3, for
python3-matplotlib)
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (PEERS, ROOT, base_env, load_note)

KINDS = ["pydict", "sqlite3", "redis", "phase"]
MiB = 1 << 20


# --- cgroups ----------------------------------------------------------------------

class Memcg:
    """A memory cgroup directory, v1 or v2, with the few files used here."""

    def __init__(self, path, v2):
        self.path, self.v2 = Path(path), v2

    def child(self, name):
        p = self.path / name
        p.mkdir()
        return Memcg(p, self.v2)

    def set_limit(self, nbytes):
        (self.path / ("memory.max" if self.v2 else "memory.limit_in_bytes")).write_text(str(nbytes))

    def oom_kills(self):
        """OOM kills of processes in this cgroup and below (v1 counts a kill
        only in the victim's own cgroup: the children are added up)."""
        f = "memory.events" if self.v2 else "memory.oom_control"
        n = 0
        for line in (self.path / f).read_text().splitlines():
            k, v = line.split()
            if k == "oom_kill":
                n = int(v)
        if not self.v2:
            n += sum(Memcg(p, False).oom_kills() for p in self.path.iterdir() if p.is_dir())
        return n

    def anon(self):
        """Anonymous memory of the cgroup and its children, bytes."""
        key = "anon" if self.v2 else "total_rss"
        for line in (self.path / "memory.stat").read_text().splitlines():
            k, v = line.split()
            if k == key:
                return int(v)
        return 0

    def procs(self):
        try:
            return [int(x) for x in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def remove(self):
        """Kills whatever runs inside, waits for it to go, removes the
        directory (children first)."""
        for sub in sorted((p for p in self.path.iterdir() if p.is_dir()), reverse=True):
            Memcg(sub, self.v2).remove()
        for _ in range(200):
            pids = self.procs()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        for _ in range(100):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.05)
        print("density: could not remove %s" % self.path, file=sys.stderr)


def own_memcg():
    """This process's memory cgroup: (Memcg, v2)."""
    v1 = v2 = None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hid, ctrls, path = line.split(":", 2)
        if "memory" in ctrls.split(","):
            v1 = path
        elif hid == "0" and ctrls == "":
            v2 = path
    if v1 is not None and Path("/sys/fs/cgroup/memory").is_dir():
        return Memcg("/sys/fs/cgroup/memory" + (v1 if v1 != "/" else ""), False)
    if v2 is not None and Path("/sys/fs/cgroup/cgroup.controllers").exists():
        m = Memcg("/sys/fs/cgroup" + (v2 if v2 != "/" else ""), True)
        if "memory" in (m.path / "cgroup.subtree_control").read_text().split():
            return m
        sys.exit("density: cgroup2 without the memory controller enabled for children of %s"
                 % m.path)
    sys.exit("density: no memory cgroup controller")


# --- one job (run as `density.py --job KIND ...` inside the container's cgroup) ---

PYDICT = r"""
import sys, time
n, idle = int(sys.argv[1]), float(sys.argv[2])
for rnd in range(2):
    d = {i: ("x%d" % i) * 12 for i in range(n)}
    for i in range(n):
        if i % 10:
            del d[i]
    if rnd == 0:
        time.sleep(idle)
"""


def run(a, cmd, **kw):
    """cmd in the container's cgroup (the job runner itself stays out of
    it, so that only the workload is charged); its exit status."""
    timeout = kw.pop("timeout", None)
    p = subprocess.Popen(cmd, preexec_fn=a.enter, **kw)
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise


def job_pydict(a, env):
    n = a.peak * MiB // 250  # ~250 bytes per entry (key, string, slot)
    return run(a, [a.python, "-c", PYDICT, str(n), str(a.idle)],
               env=dict(env, PYTHONMALLOC="malloc"))


def job_sqlite3(a, env):
    rows = a.peak * MiB // 2100  # 1000-byte blobs: measured 2.1 KB per row at the peak
    fill = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT %d) "
            "INSERT INTO t(b) SELECT randomblob(1000) FROM c;\n" % rows)
    p = subprocess.Popen(["sqlite3", ":memory:"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         env=env, text=True, preexec_fn=a.enter)
    try:
        p.stdin.write("PRAGMA auto_vacuum = FULL;\nCREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB);\n")
        for rnd in range(2):
            p.stdin.write(fill + "DELETE FROM t WHERE id % 10 != 0;\n")
            p.stdin.write("SELECT count(*) FROM t;\n")
            p.stdin.flush()
            if rnd == 0:
                time.sleep(a.idle)
        p.stdin.write(".quit\n")
        p.stdin.close()
    except BrokenPipeError:
        pass
    return p.wait()


REDIS_DEL = ("local n = 0 for i, k in ipairs(redis.call('keys', 'key:*')) do "
             "if i % 10 ~= 0 then redis.call('del', k) n = n + 1 end end return n")


def job_redis(a, env):
    port = a.port
    srv = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no", "--protected-mode", "yes",
                            "--dir", a.tmp], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, preexec_fn=a.enter)
    cli = ["redis-cli", "-h", "127.0.0.1", "-p", str(port)]
    try:
        for _ in range(100):
            if subprocess.run(cli + ["ping"], capture_output=True, env=env).stdout.strip() == b"PONG":
                break
            if srv.poll() is not None:
                return srv.poll()
            time.sleep(0.05)
        keys = a.peak * MiB // 1200
        for rnd in range(2):
            rc = run(a, ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-q",
                         "-t", "set", "-d", "1000", "-n", str(keys), "-r", str(keys * 4),
                         "-c", "8", "-P", "16"], env=env, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, timeout=120)
            rc = rc or run(a, cli + ["eval", REDIS_DEL, "0"], env=env, stdout=subprocess.DEVNULL,
                           timeout=60)
            if rc or srv.poll() is not None:
                return srv.poll() or rc
            if rnd == 0:
                time.sleep(a.idle)
        subprocess.run(cli + ["shutdown", "nosave"], env=env, capture_output=True, timeout=10)
        return srv.wait(10)
    except subprocess.TimeoutExpired:
        return 1
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()


def job_phase(a, env):
    phase = str(Path(a.build) / "tools" / "bench" / "bench_phase")
    for rnd in range(2):
        rc = run(a, [phase, "--live", "%dM" % a.peak, "--min", "16", "--max", "4096",
                     "--keep-pct", "10", "--settle", str(a.idle if rnd == 0 else 0.5),
                     "--sample-ms", "100"], env=env, stdout=subprocess.DEVNULL)
        if rc:
            return rc
    return 0


def run_job(a):
    """The job process: the workload, in the cgroup; its exit status."""
    procs = os.path.join(a.cgroup, "cgroup.procs")

    def enter():
        with open(procs, "w") as f:
            f.write(str(os.getpid()))

    a.enter = enter
    env = dict(os.environ)
    preload = env.pop("DENSITY_PRELOAD", "")
    if preload:
        env["LD_PRELOAD"] = preload
    rc = {"pydict": job_pydict, "sqlite3": job_sqlite3, "redis": job_redis,
          "phase": job_phase}[a.job](a, env)
    if rc:
        print("density: a %s job failed (%s)" % (a.job, "killed by signal %d" % -rc if rc < 0
                                                 else "exit status %d" % rc), file=sys.stderr)
    sys.exit(0 if rc == 0 else 1)


# --- the driver ---------------------------------------------------------------------

class Rung:
    """One allocator at one N: containers running jobs until the time is up."""

    def __init__(self, a, parent, alloc_env, n, port_base):
        self.a, self.parent, self.env, self.n = a, parent, alloc_env, n
        self.port_base = port_base
        self.jobs = []          # (kind, seconds, ok)
        self.samples = []       # (t, anon bytes)
        self.lock = threading.Lock()
        self.procs = set()
        self.oom_kills = 0

    def container(self, i, cg, start, end, job_len):
        time.sleep(max(0.0, start - time.time()))
        kind = KINDS[i % len(KINDS)]
        tmp = tempfile.mkdtemp(prefix="density.%d." % i)
        try:
            while time.time() < end:
                t0 = time.time()
                cmd = [sys.executable, __file__, "--job", kind, "--cgroup", str(cg.path),
                       "--peak", str(self.a.peak), "--idle", str(self.a.idle),
                       "--port", str(self.port_base + i), "--tmp", tmp, "--build", self.a.build,
                       "--python", self.a.python]
                p = subprocess.Popen(cmd, env=self.env, start_new_session=True,
                                     stdin=subprocess.DEVNULL)
                with self.lock:
                    self.procs.add(p)
                try:
                    rc = p.wait(timeout=max(end + job_len, t0 + 4 * job_len) - time.time())
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    rc = p.wait()
                    rc = None  # cut off at the end of the rung: not counted
                with self.lock:
                    self.procs.discard(p)
                    if rc is not None:
                        self.jobs.append((kind, time.time() - t0, rc == 0))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def run(self):
        a = self.a
        rung = self.parent.child("n%d" % self.n)
        try:
            rung.set_limit(a.limit * MiB)
            kills0 = 0
            cgs = [rung.child("c%d" % i) for i in range(self.n)]
            t0 = time.time()
            end = t0 + a.seconds
            job_len = a.idle + 6  # measured alone: two growths of 100 MiB take 2-6 s
            threads = [threading.Thread(target=self.container,
                                        args=(i, cgs[i], t0 + i * job_len / self.n, end, job_len))
                       for i in range(self.n)]
            for th in threads:
                th.start()
            while any(th.is_alive() for th in threads):
                self.samples.append((time.time() - t0, rung.anon()))
                time.sleep(0.25)
            for th in threads:
                th.join()
        finally:
            self.oom_kills = rung.oom_kills() - kills0
            with self.lock:
                for p in self.procs:
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            rung.remove()

    def row(self):
        done = sorted(s for _, s, ok in self.jobs if ok)
        anon = [b for _, b in self.samples] or [0]
        p99 = done[min(len(done) - 1, int(round(0.99 * (len(done) - 1))))] if done else float("nan")
        return {"n": self.n, "oom_kills": self.oom_kills, "jobs": len(done),
                "failed": sum(1 for _, _, ok in self.jobs if not ok), "p99_s": p99,
                "peak_mib": max(anon) / MiB, "mean_mib": statistics.mean(anon) / MiB}


def start_hakmemd(a, run_dir):
    hakmemd = Path(a.build) / "daemon" / "hakmemd"
    if not os.access(hakmemd, os.X_OK):
        sys.exit("density: %s is not built" % hakmemd)
    log = open(Path(run_dir).parent / "hakmemd.log", "w")
    p = subprocess.Popen([str(hakmemd), "--runtime-dir", run_dir], stdin=subprocess.DEVNULL,
                         stdout=log, stderr=subprocess.STDOUT)
    for _ in range(300):
        if (Path(run_dir) / "control.sock").exists():
            return p
        if p.poll() is not None:
            break
        time.sleep(0.05)
    p.kill()
    sys.exit("density: hakmemd did not start (see %s)" % log.name)


def plot(results, ladder, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("density: no plot: %s has no matplotlib (Debian's /usr/bin/python3 with "
              "python3-matplotlib has)" % sys.executable, file=sys.stderr)
        return False
    fig, axes = plt.subplots(len(ladder), 1, figsize=(10, 2.6 * len(ladder)), sharex=True,
                             squeeze=False)
    for ax, n in zip(axes[:, 0], ladder):
        for alloc, rungs in results.items():
            r = rungs.get(n)
            if r:
                ax.plot([t for t, _ in r.samples], [b / MiB for _, b in r.samples],
                        label="%s (%d OOM)" % (alloc, r.oom_kills), linewidth=1)
        ax.set_ylabel("anon MiB")
        ax.set_title("N = %d containers" % n, fontsize=10)
        ax.legend(fontsize=8, loc="upper right")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--alloc", default="hakmem,glibc,jemalloc,mimalloc")
    ap.add_argument("--ladder", default="4,6,8,10")
    ap.add_argument("--seconds", type=float, default=45,
                    help="per rung: no job starts after that (default 45)")
    ap.add_argument("--peak", type=int, default=100, help="MiB each job grows to (default 100)")
    ap.add_argument("--idle", type=float, default=10,
                    help="seconds between the two growths of a job (default 10)")
    ap.add_argument("--limit", type=int, default=640, help="MiB, the parent's limit (default 640)")
    ap.add_argument("--build", default=str(compare.ROOT / "build"))
    ap.add_argument("--plot", default="density.png")
    ap.add_argument("--python", default=shutil.which("python3", path="/usr/bin") or sys.executable)
    # the job side (internal)
    ap.add_argument("--job", choices=KINDS, help=argparse.SUPPRESS)
    ap.add_argument("--cgroup", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.job:
        return run_job(a)

    if os.geteuid() != 0:
        sys.exit("density: needs root (memory cgroups)")
    for tool in ("sqlite3", "redis-server", "redis-benchmark", "redis-cli"):
        if not shutil.which(tool):
            sys.exit("density: %s is not installed (apt-get install sqlite3 redis-server)" % tool)
    ladder = [int(x) for x in a.ladder.split(",")]
    lib = Path(a.build) / "shim" / "libhakmem.so"
    libs = {"hakmem": lib, "hakmem-lean": lib, "glibc": compare.LIBDIR / "libc.so.6"}
    libs.update({name: path for name, path in compare.PEERS if path})
    allocs = [x for x in a.alloc.split(",") if x]
    for x in allocs:
        if x not in libs or not Path(libs[x]).is_file():
            sys.exit("density: no library for %s (%s)" % (x, libs.get(x)))
    note = compare.load_note()
    if note:
        print("density: " + note, file=sys.stderr)

    own = own_memcg()
    parent = own.child("hakmem-density-%d" % os.getpid())
    tmp = tempfile.mkdtemp(prefix="density.")
    os.chmod(tmp, 0o755)
    daemon = None
    results = {}
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def stop(sig, frame):
        raise KeyboardInterrupt

    for s in old:
        signal.signal(s, stop)
    try:
        base = compare.base_env()
        envs = {}
        for alloc in allocs:
            envs[alloc] = dict(base, DENSITY_PRELOAD=str(libs[alloc]))
            if alloc.startswith("hakmem"):
                run_dir = os.path.join(tmp, "run")
                if not daemon:
                    daemon = start_hakmemd(a, run_dir)
                envs[alloc]["HAKMEM_RUNTIME_DIR"] = run_dir
            if alloc == "hakmem-lean":
                envs[alloc]["HAKMEM_SS_MEM_LEAN"] = "1"
            results[alloc] = {}
        # rung by rung, every allocator in turn: a change of load on the
        # machine hits them alike
        for j, n in enumerate(ladder):
            for k, alloc in enumerate(allocs):
                r = Rung(a, parent, envs[alloc], n, 21000 + 100 * k + 10 * j)
                r.run()
                results[alloc][n] = r
                row = r.row()
                print("density: %-8s N=%-2d oom_kills=%d jobs=%d failed=%d p99=%.1fs "
                      "peak=%.0fMiB mean=%.0fMiB load=%s" % (
                          alloc, n, row["oom_kills"], row["jobs"], row["failed"], row["p99_s"],
                          row["peak_mib"], row["mean_mib"],
                          open("/proc/loadavg").read().split()[0]), file=sys.stderr, flush=True)
        if daemon:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(10)
            daemon = None
            shutil.copy(os.path.join(tmp, "hakmemd.log"), a.plot + ".hakmemd.log")
    except KeyboardInterrupt:
        print("density: interrupted", file=sys.stderr)
    finally:
        if daemon and daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        parent.remove()
        shutil.rmtree(tmp, ignore_errors=True)
        for s, h in old.items():
            signal.signal(s, h)

    print("\nN containers of %d MiB peaks each under a %d MiB limit, %g s per rung, "
          "idle %g s per job; load %s" % (a.peak, a.limit, a.seconds, a.idle,
                                          open("/proc/loadavg").read().split()[:3]))
    print("| allocator | N | OOM kills | jobs done | failed | p99 job s | peak anon MiB | "
          "mean anon MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for alloc, rungs in results.items():
        for n, r in sorted(rungs.items()):
            x = r.row()
            print("| %s | %d | %d | %d | %d | %.1f | %.0f | %.0f |" % (
                alloc, n, x["oom_kills"], x["jobs"], x["failed"], x["p99_s"], x["peak_mib"],
                x["mean_mib"]))
    print("\n| allocator | largest N with 0 OOM kills |")
    print("|---|---|")
    for alloc, rungs in results.items():
        ok = [n for n, r in rungs.items() if r.oom_kills == 0]
        print("| %s | %s |" % (alloc, max(ok) if ok else "none"))
    if results and plot(results, ladder, a.plot):
        print("\nplot: %s" % os.path.abspath(a.plot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
