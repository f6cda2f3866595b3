#!/usr/bin/env python3
"""programs.py -- real programs under hakmem and its peers: git (log
--numstat, blame), sqlite3 with 1M rows (in memory and on disk), python3
(PYTHONMALLOC=malloc) and node churning buffers, timed, with their peak
RSS; and redis-server driven by redis-benchmark on 127.0.0.1, with its RSS
after DEBUG POPULATE 1000000 and then for 20 s after FLUSHALL.

Owns: the workloads and the redis procedure. Each workload needs only
Debian packages (git, sqlite3, python3, nodejs, redis-server/-tools) and,
for git, a clone given with --git-repo (git's own history is a good one);
a workload whose tool or repository is missing is skipped with a note.
Running, interleaving, the environment and the report are compare.py's;
the time/RSS table and geomeans are mbench.py's. Standard library only.
"""

import argparse
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (same directory)
import mbench  # noqa: E402

ROOT = compare.ROOT

# 1M rows of random text (16..400 bytes), an index on it, a grouped scan
# and a sort: the inserts, the index build and the sorter allocate.
SQLITE_SQL = """\
PRAGMA journal_mode=OFF;
PRAGMA synchronous=OFF;
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT);
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000)
INSERT INTO t(k, v) SELECT abs(random()) % 100000, hex(randomblob(8 + abs(random()) % 193)) FROM c;
COMMIT;
CREATE INDEX tv ON t(v);
SELECT k % 100, count(*), sum(length(v)) FROM t GROUP BY k % 100 ORDER BY 2 DESC LIMIT 3;
SELECT count(*) FROM (SELECT v FROM t ORDER BY k, v);
"""

# A dict/list churn: every object through malloc (PYTHONMALLOC=malloc).
PYTHON_SRC = """\
import random
random.seed(1)
live = {}
for i in range(3_000_000):
    k = random.randrange(200_000)
    if k in live and random.random() < 0.5:
        del live[k]
    else:
        live[k] = [str(i), (i, k), {"a": i}] + [0] * random.randrange(8)
print(len(live))
"""

# Buffer.alloc of varying sizes (1 KiB..1 MiB, log-spread), each written
# at both ends; node frees them when its GC collects them.
NODE_SRC = """\
let s = 0, x = 1;
for (let i = 0; i < 20000; i++) {
  x = (x * 1103515245 + 12345) % 2147483648;
  const n = Math.floor(1024 * Math.pow(1024, (x % 1000) / 1000));
  const b = Buffer.alloc(n);
  b[0] = i & 255; b[n - 1] = 1;
  s += b[0];
}
console.log(s);
"""


def sh_redirect(cmd, stdin=None):
    """cmd with stdout to /dev/null (and stdin from a file), through sh's
    exec: no extra process stays, and no output is captured."""
    redir = ' > /dev/null' + (' < "$HK_STDIN"' if stdin else '')
    return ["sh", "-c", 'exec "$0" "$@"' + redir] + list(cmd)


def workloads(args, tmp):
    """[(name, argv, extra env, stdin file or None)] that can run here."""
    out = []
    repo = Path(args.git_repo) if args.git_repo else None
    if not shutil.which("git"):
        compare.note("note: no git: skipping the git workloads")
    elif not repo or not (repo / ".git").exists():
        compare.note("note: no --git-repo (a clone with a work tree): skipping the git workloads")
    else:
        out.append((f"git log --numstat -n {args.git_commits}",
                    ["git", "-C", str(repo), "--no-pager", "log", "--numstat", "-n",
                     str(args.git_commits)], {}, None))
        out.append((f"git blame {args.blame_file}",
                    ["git", "-C", str(repo), "--no-pager", "blame", "--", args.blame_file], {}, None))
    if shutil.which("sqlite3"):
        sql = Path(tmp) / "load.sql"
        sql.write_text(SQLITE_SQL)
        out.append(("sqlite3 1M rows, memory", ["sqlite3", ":memory:"], {}, str(sql)))
        out.append(("sqlite3 1M rows, disk", ["sh", "-c", 'rm -f "$HK_DB"; exec sqlite3 "$HK_DB"'],
                    {"HK_DB": str(Path(tmp) / "t.db")}, str(sql)))
    else:
        compare.note("note: no sqlite3: skipping it")
    py = "/usr/bin/python3" if Path("/usr/bin/python3").is_file() else shutil.which("python3")
    out.append(("python3 dict/list churn", [py, "-c", PYTHON_SRC], {"PYTHONMALLOC": "malloc"}, None))
    if shutil.which("node"):
        out.append(("node Buffer.alloc 1K-1M", ["node", "-e", NODE_SRC], {}, None))
    else:
        compare.note("note: no node: skipping it")
    return out


def run_timed(work, alloc, env0, timeout):
    name, argv, env, stdin = work
    e = {**env0, **env}
    if stdin:
        e["HK_STDIN"] = stdin
    return compare.run_timed(sh_redirect(argv, stdin), alloc, e, timeout, {"config": name})[0]


# ---- redis ------------------------------------------------------------------

REDIS_TESTS = "set,get,incr,lpush,lpop,sadd,hset"
REDIS_IDLE_S = (0, 1, 2, 4, 8, 12, 20)  # samples after FLUSHALL


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_mem_kb(pid):
    """(VmRSS, VmHWM, LazyFree) of pid in kB."""
    st = Path(f"/proc/{pid}/status").read_text()
    sm = Path(f"/proc/{pid}/smaps_rollup").read_text()
    kb = lambda text, key: int(re.search(rf"^{key}:\s+(\d+)", text, re.M).group(1))  # noqa: E731
    return kb(st, "VmRSS"), kb(st, "VmHWM"), kb(sm, "LazyFree")


def redis_run(alloc, env0, args):
    """One redis-server under alloc: ops/s per redis-benchmark test, RSS
    after DEBUG POPULATE 1000000, RSS - LazyFree over 20 s after FLUSHALL."""
    rec = {"config": "redis", "allocator": alloc[0]}
    port = str(free_port())
    cli = ["redis-cli", "-h", "127.0.0.1", "-p", port]
    srv = subprocess.Popen(["redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no", "--enable-debug-command", "yes",
                            "--logfile", ""],
                           env=compare.alloc_env(alloc, env0), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            r = subprocess.run(cli + ["ping"], env=env0, capture_output=True, text=True)
            if r.stdout.strip() == "PONG":
                break
            if srv.poll() is not None:
                raise RuntimeError(f"redis-server exited {srv.returncode}: {srv.stderr.read()[-300:]}")
            time.sleep(0.05)
        else:
            raise RuntimeError("redis-server did not answer PING within 5 s")
        b = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", port, "-q", "-r", "1000000",
                            "-n", str(args.redis_requests), "-P", "16", "-t", REDIS_TESTS],
                           env=env0, capture_output=True, text=True, timeout=args.timeout)
        ops = {m.group(1): float(m.group(2)) for m in
               re.finditer(r"^([A-Z_]+)[^:\n]*: ([0-9.]+) requests per second", b.stdout.replace("\r", "\n"), re.M)}
        if not ops:
            raise RuntimeError("no redis-benchmark figures: " + b.stdout[-200:] + b.stderr[-200:])
        rec["ops"] = ops
        rec["ops_geomean"] = compare.geomean(ops.values())
        subprocess.run(cli + ["flushall"], env=env0, capture_output=True, check=True)
        subprocess.run(cli + ["debug", "populate", "1000000"], env=env0, capture_output=True, check=True)
        rss, hwm, lazy = proc_mem_kb(srv.pid)
        rec["populated_kb"] = rss - lazy
        subprocess.run(cli + ["flushall"], env=env0, capture_output=True, check=True)
        t0 = time.monotonic()
        rec["idle_kb"] = {}
        for s in REDIS_IDLE_S:
            time.sleep(max(0.0, t0 + s - time.monotonic()))
            rss, hwm, lazy = proc_mem_kb(srv.pid)
            rec["idle_kb"][s] = rss - lazy
        rec["peak_kb"] = hwm
        rec["ok"] = True
    except (RuntimeError, subprocess.SubprocessError, OSError, AttributeError) as e:
        rec.update(ok=False, error=str(e))
    finally:
        subprocess.run(cli + ["shutdown", "nosave"], env=env0, capture_output=True)
        try:
            srv.wait(timeout=10)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
    if rec["ok"] and srv.returncode not in (0, None):
        rec.update(ok=False, error=f"redis-server exit {srv.returncode}")
    return rec


def redis_table(runs, anames):
    def fill(cell, ok):
        cell["ops_geomean"] = statistics.median(r["ops_geomean"] for r in ok)
        cell["populated_kb"] = statistics.median(r["populated_kb"] for r in ok)
        cell["peak_kb"] = statistics.median(r["peak_kb"] for r in ok)
        cell["idle_kb"] = {s: statistics.median(r["idle_kb"][s] for r in ok) for s in REDIS_IDLE_S}
    med = compare.summarize_cells(runs, ["redis"], anames, fill)["redis"]
    head = ["allocator", "ops/s (geomean)", "/ mimalloc", "peak MB", "populated MB"]
    head += [f"FLUSHALL +{s} s MB" for s in REDIS_IDLE_S]
    rows = []
    mi = (med.get("mimalloc") or {}).get("ops_geomean")
    label = lambda a: "glibc (= redis' own jemalloc)" if a == "glibc" else a  # noqa: E731
    for a in anames:
        c = med.get(a)
        if not c or "ops_geomean" not in c:
            rows.append([label(a), "FAIL"] + ["-"] * (len(head) - 2))
            continue
        rows.append([label(a), f"{c['ops_geomean'] / 1e3:.0f}k", f"{c['ops_geomean'] / mi:.2f}" if mi else "-",
                     f"{c['peak_kb'] / 1024:.1f}", f"{c['populated_kb'] / 1024:.1f}"]
                    + [f"{c['idle_kb'][s] / 1024:.1f}" for s in REDIS_IDLE_S])
    return med, compare.md_table(head, rows)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Real programs under hakmem, glibc, jemalloc, mimalloc and tcmalloc: time, "
        "peak RSS, ratios; redis ops/s and RSS after FLUSHALL (markdown).")
    compare.add_run_options(p, 3, 600.0, what="workloads")
    p.add_argument("--git-repo", help="a git clone with a work tree (git's own history is a good one)")
    p.add_argument("--git-commits", type=int, default=3000, help="log -n (default 3000)")
    p.add_argument("--blame-file", default="diff.c", help="file to blame (default diff.c)")
    p.add_argument("--redis-requests", type=int, default=200000, help="redis-benchmark -n (default 200000)")
    args = p.parse_args(argv)
    compare.check_run_options(p, args)
    return args


def main(argv):
    args = parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="hakmem-programs-")
    runs, rruns = [], []
    do_redis = False
    try:
        lib, sha = compare.snapshot_lib(args.lib, tmp)
        args.lib = str(lib)
        allocs = compare.allocators(args)
        anames = [a[0] for a in allocs]
        env0 = compare.base_env()
        works = [w for w in workloads(args, tmp) if not args.only or re.search(args.only, w[0])]
        do_redis = bool(not args.only or re.search(args.only, "redis"))
        if do_redis and not (shutil.which("redis-server") and shutil.which("redis-benchmark")):
            compare.note("note: no redis-server/redis-benchmark (apt-get install redis-server "
                         "redis-tools): skipping redis")
            do_redis = False
        load0 = compare.loadavg()
        compare.note(f"{(len(works) + do_redis) * args.runs * len(allocs)} runs; load average {load0}")
        t0 = time.monotonic()
        runs, _ = compare.run_interleaved(
            works, args.runs, allocs, lambda w, alloc: run_timed(w, alloc, env0, args.timeout),
            lambda r: f"{r['time_s']:.2f} s {r['maxrss_kb'] / 1024:.1f} MiB")
        if do_redis:
            rruns, _ = compare.run_interleaved(
                [("redis",)], args.runs, allocs, lambda _, alloc: redis_run(alloc, env0, args),
                lambda r: (f"{r['ops_geomean'] / 1e3:.0f}k ops/s, populated {r['populated_kb'] / 1024:.0f} MB, "
                           f"+20 s {r['idle_kb'][20] / 1024:.1f} MB"))
        load1 = compare.loadavg()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    names = [w[0] for w in works]
    lines = [f"Medians of {args.runs} interleaved runs; hakmem sha256 {sha}; load average at start "
             f"{load0}, at end {load1}; {time.monotonic() - t0:.0f} s.", ""]
    med = mbench.summarize(runs, names, anames)
    if names:
        lines += ["Time (wall s) and peak RSS (time(1) %M):", ""] + mbench.tables(med, names, anames)
    rmed = None
    if do_redis:
        rmed, rl = redis_table(rruns, anames)
        lines += ["", f"redis-server: `redis-benchmark -q -r 1000000 -n {args.redis_requests} -P 16 "
                  f"-t {REDIS_TESTS}` on 127.0.0.1 (ops/s: geomean of the tests), then DEBUG POPULATE "
                  "1000000, FLUSHALL and RSS - LazyFree while idle. The `glibc` row is redis' own "
                  "jemalloc: Debian's redis-server links it, so without a preload it is what runs.", ""]
        lines += rl
    fails = [f"- {r['config']} / {r['allocator']} run {r['run']}: {r['error']}"
             for r in runs + rruns if not r["ok"]]
    if fails:
        lines += ["", "Failed runs:"] + fails
    compare.write_report(lines, args.json, {"meta": {"runs": args.runs, "lib_sha256_12": sha,
                                                     "loadavg_start": load0, "loadavg_end": load1},
                                            "runs": runs, "redis_runs": rruns, "medians": med,
                                            "redis": rmed})
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
