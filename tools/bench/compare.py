#!/usr/bin/env python3
"""compare.py -- runs the hakmem benchmarks under hakmem and its peers.

Owns: the list of benchmark configurations, the interleaved run order, the
environment each allocator gets, and the markdown table of medians. Every
allocator runs through LD_PRELOAD of an unmodified benchmark binary (glibc
runs without a preload); nothing here builds or links anything. Standard
library only. The other runners (lean.py, soak.py, sizes.py, spike.py,
programs.py, mbench.py) import it for run_cmd (one run under one
allocator), parse_result, parse_kv, parse_os_stats, interleaved,
summarize_cells, write_report, base_env, load_note, loadavg,
snapshot_lib, the /usr/bin/time wrapper (timed, parse_timed), the strace
wrapper (straced, strace_counts), geomean and md_table.
"""

import argparse
import hashlib
import json
import math
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBDIR = Path("/lib/x86_64-linux-gnu")

# Peers in table order. glibc has no library: it is what runs without a
# preload.
PEERS = [
    ("glibc", None),
    ("jemalloc", LIBDIR / "libjemalloc.so.2"),
    ("mimalloc", LIBDIR / "libmimalloc.so.2"),
    ("tcmalloc", LIBDIR / "libtcmalloc_minimal.so.4"),
]
BASELINE = "mimalloc"  # the ratio columns compare hakmem with this one

# (name, program, arguments, --quick arguments). Defaults of the programs
# keep one run near 1 s under glibc, so a full compare.py with 5 runs of 5
# allocators stays within a few minutes.
CONFIGS = [
    ("churn WS=400 1T", "bench_churn", ["--ws", "400", "--threads", "1"], ["--ops", "500k"]),
    ("churn WS=400 2T", "bench_churn", ["--ws", "400", "--threads", "2"], ["--ops", "500k"]),
    ("churn WS=4000 1T", "bench_churn", ["--ws", "4000", "--threads", "1"], ["--ops", "500k"]),
    ("churn WS=4000 2T", "bench_churn", ["--ws", "4000", "--threads", "2"], ["--ops", "500k"]),
    ("larson 1 pair", "bench_larson", ["--pairs", "1"], ["--ops", "200k"]),
    ("larson 2 pairs", "bench_larson", ["--pairs", "2"], ["--ops", "200k"]),
]

# Inherited settings that would make a run "special": removed for everyone,
# so peers run with their defaults and hakmem gets only --extra-env/--lean.
SCRUB_EXACT = {"LD_PRELOAD", "GLIBC_TUNABLES", "MALLOC_CONF", "JE_MALLOC_CONF"}
SCRUB_PREFIX = ("HAKMEM_", "MALLOC_", "MIMALLOC_", "TCMALLOC_")

NOISY = 0.10  # (max - min) / median of ops/s above which a cell is flagged
RESULT_RE = re.compile(r"^ops_per_sec=\S+ ")


def add_run_options(p, runs, timeout, what="configs"):
    """The options of every runner that picks its allocators with
    allocators(): --lib, --runs, --only, --alloc, --extra-env, --lean,
    --timeout, --json. Check them with check_run_options()."""
    p.add_argument("--lib", default=str(ROOT / "build" / "shim" / "libhakmem.so"),
                   help="hakmem shared library to preload (default: %(default)s)")
    p.add_argument("--runs", type=int, default=runs,
                   help=f"runs per allocator and {what[:-1]} (default {runs})")
    p.add_argument("--only", metavar="REGEX", help=f"run only the {what} whose name matches (re.search)")
    p.add_argument("--alloc", metavar="LIST",
                   help="comma-separated allocators to run (default: all; names as in the table)")
    p.add_argument("--extra-env", metavar="KEY=VAL", action="append", default=[],
                   help="environment for the hakmem runs only, e.g. HAKMEM_SS_MEM_LEAN=1 (repeatable)")
    p.add_argument("--lean", action="store_true",
                   help="add a hakmem-lean column (hakmem with HAKMEM_SS_MEM_LEAN=1) and lean/hakmem ratios")
    p.add_argument("--timeout", type=float, default=timeout,
                   help=f"seconds before one run counts as failed (default {timeout:g})")
    p.add_argument("--json", metavar="FILE",
                   help="write every run and the medians as JSON to FILE ('-': stdout, and the table to stderr)")


def check_run_options(p, args):
    """parser.error() on a bad --runs, --only or --extra-env."""
    if args.runs < 1:
        p.error("--runs must be at least 1")
    check_only(p, args.only)
    for kv in args.extra_env:
        if "=" not in kv or kv.startswith("="):
            p.error(f"--extra-env wants KEY=VAL, got {kv!r}")
    if args.json and args.json != "-":
        args.json = os.path.abspath(args.json)  # a run may chdir (mbench.py)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Run the hakmem benchmarks under hakmem, glibc, jemalloc, "
        "mimalloc and tcmalloc, interleaved, and print a markdown table of medians.")
    add_run_options(p, 5, 300.0)
    p.add_argument("--bench-dir", default=str(ROOT / "build" / "tools" / "bench"),
                   help="where bench_churn and bench_larson are (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="few ops per run: a smoke check, not a measurement")
    args = p.parse_args(argv)
    check_run_options(p, args)
    return args


def check_only(parser, only):
    """Rejects an --only that is not a regular expression (parser.error)."""
    if only:
        try:
            re.compile(only)
        except re.error as e:
            parser.error(f"--only: {e}")


def note(msg):
    print(msg, file=sys.stderr, flush=True)


def load_note():
    """A warning when the machine is already busy, or None."""
    try:
        load1 = float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    ncpu = os.cpu_count() or 1
    if load1 < 0.25 * ncpu:
        return None
    return (f"machine busy at start (load {load1:.2f} on {ncpu} CPUs): "
            f"expect noise, compare only within this table")


def loadavg():
    """The three load averages as text ("1.02 0.87 0.55"), or "?"."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def snapshot_lib(lib, tmpdir):
    """Copies the hakmem library into tmpdir, so that a rebuild during a
    long run cannot mix two versions; returns (copy, sha256[:12])."""
    src = Path(lib).resolve()
    data = src.read_bytes()
    dst = Path(tmpdir) / src.name
    dst.write_bytes(data)
    return dst, hashlib.sha256(data).hexdigest()[:12]


# GNU time (package "time") prints this line last on stderr: the figures of
# the measured process alone (RUSAGE of that child), whatever else ran.
TIME_BIN = "/usr/bin/time"
TIME_TAG = "HKTIME"
TIME_FMT = TIME_TAG + " wall=%e maxrss_kb=%M minflt=%R majflt=%F user=%U sys=%S"


def timed(cmd):
    """cmd run under /usr/bin/time: its wall time, peak RSS and faults
    come back in parse_timed(stderr). The preload reaches time(1) too,
    which allocates next to nothing and is not measured."""
    return [TIME_BIN, "-f", TIME_FMT, "--"] + list(cmd)


def parse_timed(text):
    """{wall_s, maxrss_kb, minflt, majflt, user_s, sys_s} of the last
    TIME_TAG line in text, or {} when there is none."""
    lines = [l for l in text.splitlines() if l.startswith(TIME_TAG + " ")]
    if not lines:
        return {}
    f = parse_kv(lines[-1])
    return {"wall_s": float(f["wall"]), "maxrss_kb": int(f["maxrss_kb"]),
            "minflt": int(f["minflt"]), "majflt": int(f["majflt"]),
            "user_s": float(f["user"]), "sys_s": float(f["sys"])}


STRACE_CALLS = ("mmap", "munmap", "madvise", "process_madvise", "mremap", "brk")


def straced(cmd, alloc, out_path, calls=STRACE_CALLS):
    """(command, allocator) that runs cmd under strace -f -c counting calls
    into out_path: strace itself runs with the scrubbed environment (no
    preload); -E gives the allocator's environment to the traced program
    only. Pass the result to run_cmd, then strace_counts(out_path)."""
    aname, lib, aenv = alloc
    full = dict(aenv)
    if lib is not None:
        full["LD_PRELOAD"] = str(lib)
    scmd = ["strace", "-f", "-c", "-o", str(out_path), "-e", "trace=" + ",".join(calls)]
    for k, v in full.items():
        scmd += ["-E", f"{k}={v}"]
    return scmd + list(cmd), (aname, None, {})


def strace_counts(path, calls=STRACE_CALLS):
    """{syscall: calls} from an strace -c summary file, or None."""
    counts = {}
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        t = line.split()
        if len(t) >= 5 and t[-1] in calls and t[3].isdigit():
            counts[t[-1]] = int(t[3])
    return counts


def geomean(xs):
    """Geometric mean of the positive numbers in xs, or None."""
    xs = [x for x in xs if x and x > 0]
    if not xs:
        return None
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def md_table(head, rows, align=None):
    """Markdown lines of a table; align: one "---" / "---:" per column
    (default: first column left, the others right)."""
    align = align or ["---"] + ["---:"] * (len(head) - 1)
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def base_env():
    env = {}
    scrubbed = []
    for k, v in os.environ.items():
        if k in SCRUB_EXACT or k.startswith(SCRUB_PREFIX):
            scrubbed.append(k)
        else:
            env[k] = v
    if scrubbed:
        note("note: not passing on " + ", ".join(sorted(scrubbed)))
    return env


def allocators(args):
    """[(name, library or None, extra env)] of the allocators that can run."""
    extra = dict(kv.split("=", 1) for kv in args.extra_env)
    lib = Path(args.lib)
    cands = [("hakmem", lib, extra)]
    if args.lean:
        cands.append(("hakmem-lean", lib, {**extra, "HAKMEM_SS_MEM_LEAN": "1"}))
    cands += [(name, path, {}) for name, path in PEERS]
    if args.alloc:
        want = {a.strip() for a in args.alloc.split(",") if a.strip()}
        unknown = want - {c[0] for c in cands}
        if unknown:
            sys.exit(f"compare.py: --alloc: unknown {', '.join(sorted(unknown))}")
        cands = [c for c in cands if c[0] in want]
    out = []
    for name, path, env in cands:
        if path is not None and not path.is_file():
            note(f"note: skipping {name}: {path} is missing")
            continue
        out.append((name, path, env))
    return out


# The counters HAKMEM_SS_OS_STATS=1 prints on stderr at exit, one
# "name value" line each; other stderr lines are ignored.
OS_STATS_RE = re.compile(r"^([a-z][a-z0-9_]*) (\d+)$")
OS_CALLS = ("mmap_calls", "munmap_calls", "madvise_calls")


def parse_os_stats(text):
    """{counter: value} from the HAKMEM_SS_OS_STATS=1 lines in text ({}
    when there are none). Needs mmap_calls among them, so that a stray
    "word 123" line of some other program is not taken for stats."""
    stats = {}
    for line in text.splitlines():
        m = OS_STATS_RE.match(line.strip())
        if m:
            stats[m.group(1)] = int(m.group(2))
    return stats if "mmap_calls" in stats else {}


def parse_kv(line):
    """{key: value} of a "key=value key=value" result line (values as text)."""
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


def alloc_env(alloc, env0):
    """The environment of a run under alloc = (name, library or None, extra
    env): env0 plus the allocator's variables and its LD_PRELOAD."""
    aname, lib, aenv = alloc
    env = dict(env0)
    env.update(aenv)
    if lib is not None:
        env["LD_PRELOAD"] = str(lib)
    return env


def run_cmd(cmd, alloc, env0, timeout, rec=None):
    """Runs cmd once under alloc = (name, library or None, extra env).
    Returns (rec, cp): rec is a copy of rec extended with allocator, cmd,
    env, wall_s, cpu_s, rc; on failure (timeout, ignored preload, non-zero
    exit) rec has ok=False and error, and cp is None after a timeout.
    Without a failure rec has no "ok" yet: the caller parses cp.stdout."""
    aname, lib, aenv = alloc
    env = alloc_env(alloc, env0)
    rec = dict(rec or {})
    rec.update({"allocator": aname, "cmd": cmd,
                "env": {**aenv, **({"LD_PRELOAD": str(lib)} if lib else {})}})
    t0 = time.monotonic()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        cp = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        rec.update(ok=False, error=f"timed out after {timeout:g} s")
        return rec, None
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    rec["wall_s"] = round(time.monotonic() - t0, 3)
    # CPU time of the whole process (setup included): next to wall_s it
    # tells a run slowed by other load from one that did more work.
    rec["cpu_s"] = round(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime, 3)
    rec["rc"] = cp.returncode
    # A library ld.so cannot load is ignored with a warning and the run
    # silently measures glibc: treat that as a failure.
    if "cannot be preloaded" in cp.stderr:
        rec.update(ok=False, error=cp.stderr.strip().splitlines()[0])
        return rec, cp
    if cp.returncode != 0:
        why = f"signal {-cp.returncode}" if cp.returncode < 0 else f"exit {cp.returncode}"
        tail = [l for l in cp.stderr.strip().splitlines() if not OS_STATS_RE.match(l)][-1:] or [""]
        rec.update(ok=False, error=f"{why}: {tail[0]}".rstrip(": "))
        return rec, cp
    return rec, cp


def run_timed(cmd, alloc, env0, timeout, rec):
    """Runs cmd once under alloc through /usr/bin/time (timed()). Returns
    (rec, cp): on success rec has ok=True, time_s (wall) and the figures of
    parse_timed(); else ok=False and error (cp None after a timeout)."""
    rec, cp = run_cmd(timed(cmd), alloc, env0, timeout, rec)
    if "ok" in rec:
        return rec, cp
    t = parse_timed(cp.stderr)
    if not t:
        rec.update(ok=False, error="no time(1) line")
    else:
        rec.update(ok=True, time_s=t["wall_s"], **t)
    return rec, cp


def parse_result(rec, cp, line_re, convert):
    """Completes rec from the last line of cp.stdout that matches line_re:
    ok=True and convert(parse_kv(line)) ({key: value}) plus os_stats when
    HAKMEM_SS_OS_STATS lines are on stderr; ok=False and error when there
    is no such line or convert raises KeyError / ValueError. Returns rec."""
    lines = [l for l in cp.stdout.splitlines() if line_re.match(l)]
    if not lines:
        rec.update(ok=False, error="no result line on stdout")
        return rec
    try:
        res = convert(parse_kv(lines[-1]))
    except (KeyError, ValueError) as e:
        rec.update(ok=False, error=f"bad result line {lines[-1]!r}: {e}")
        return rec
    rec.update(ok=True, **res)
    stats = parse_os_stats(cp.stderr)
    if stats:
        rec["os_stats"] = stats
    return rec


def result_fields(f):
    """The figures of one bench_churn / bench_larson result line."""
    return {"ops_per_sec": float(f["ops_per_sec"]), "peak_rss_kb": int(f["peak_rss_kb"]),
            "ops": int(f["ops"]), "threads": int(f["threads"]), "ws": int(f["ws"]),
            "minflt": int(f.get("minflt", -1))}


def run_one(bench_dir, cfg, alloc, env0, args):
    name, prog, cargs, qargs = cfg
    cmd = [str(bench_dir / prog)] + cargs + (qargs if args.quick else [])
    rec, cp = run_cmd(cmd, alloc, env0, args.timeout, {"config": name})
    if "ok" in rec:
        return rec
    return parse_result(rec, cp, RESULT_RE, result_fields)


def interleaved(configs, nruns, allocs):
    """(config, run index, allocator) in run order: per config, run by run,
    every allocator once, the starting one rotating so that none is always
    the one that runs right after a switch."""
    for cfg in configs:
        for i in range(nruns):
            k = i % len(allocs)
            for alloc in allocs[k:] + allocs[:k]:
                yield cfg, i, alloc


def run_interleaved(configs, nruns, allocs, one, show):
    """Runs rec = one(config, allocator) for every run in interleaved()
    order, adds "run" (1-based) to each rec and prints a progress line
    with show(rec) (the figures) or the error. Ctrl-C stops early.
    Returns (records, interrupted)."""
    total = len(configs) * nruns * len(allocs)
    runs = []
    try:
        for cfg, i, alloc in interleaved(configs, nruns, allocs):
            rec = one(cfg, alloc)
            rec["run"] = i + 1
            runs.append(rec)
            res = show(rec) if rec["ok"] else "FAILED: " + rec["error"]
            note(f"[{len(runs)}/{total}] {cfg[0]} / {alloc[0]} run {i + 1}: {res}")
    except KeyboardInterrupt:
        note("interrupted: the tables hold the runs done so far")
        return runs, True
    return runs, False


def summarize_cells(runs, configs, allocs, fill):
    """{config: {allocator: cell}} over the runs done so far. A cell counts
    its runs and failed runs (with the first error); fill(cell, ok_runs)
    adds the figures of the runs that succeeded, when there are some."""
    out = {}
    for cname in configs:
        out[cname] = {}
        for aname in allocs:
            rs = [r for r in runs if r["config"] == cname and r["allocator"] == aname]
            if not rs:
                continue
            ok = [r for r in rs if r["ok"]]
            cell = {"runs": len(rs), "failed": len(rs) - len(ok)}
            if cell["failed"]:
                cell["error"] = next(r["error"] for r in rs if not r["ok"])
            if ok:
                fill(cell, ok)
            out[cname][aname] = cell
    return out


def write_report(lines, json_path, doc):
    """Prints the markdown lines, on stderr when the JSON goes to stdout,
    then writes doc as JSON to json_path ('-': stdout; None: nowhere)."""
    print("\n".join(lines), file=sys.stderr if json_path == "-" else sys.stdout, flush=True)
    if not json_path:
        return
    text = json.dumps(doc, indent=2, default=str)
    if json_path == "-":
        print(text)
    else:
        Path(json_path).write_text(text + "\n")


def summarize(runs, configs, allocs):
    """{config: {allocator: {...medians...}}} over the runs done so far."""
    def fill(cell, ok):
        ops = [r["ops_per_sec"] for r in ok]
        m = statistics.median(ops)
        cell.update(ops_per_sec=m,
                    peak_rss_kb=statistics.median(r["peak_rss_kb"] for r in ok),
                    spread=(max(ops) - min(ops)) / m if m > 0 else 0.0)
    return summarize_cells(runs, configs, allocs, fill)


def fmt_ops(cell):
    if not cell or "ops_per_sec" not in cell:
        return "FAIL" if cell else "-"
    s = f"{cell['ops_per_sec'] / 1e6:.2f}"
    return s + " (!)" if cell["failed"] else s


def fmt_rss(cell):
    if not cell or "peak_rss_kb" not in cell:
        return "FAIL" if cell else "-"
    return f"{cell['peak_rss_kb'] / 1024:.1f}"


def ratio(a, b, key):
    if not a or not b or a.get("failed") or b.get("failed") or key not in a or key not in b or not b[key]:
        return "n/a"
    return f"{a[key] / b[key]:.2f}"


def table(med, configs, allocs):
    pairs = []  # (label, numerator, denominator) of the ratio columns
    if "hakmem" in allocs and BASELINE in allocs:
        pairs.append(("hakmem/mimalloc", "hakmem", BASELINE))
    if "hakmem-lean" in allocs and "hakmem" in allocs:
        pairs.append(("lean/hakmem", "hakmem-lean", "hakmem"))
    head = ["config"]
    for a in allocs:
        head += [f"{a} Mops/s", f"{a} RSS MiB"]
    for label, _, _ in pairs:
        head += [f"{label} ops", f"{label} RSS"]
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for cname in configs:
        row = [cname]
        for a in allocs:
            cell = med[cname].get(a)
            row += [fmt_ops(cell), fmt_rss(cell)]
        for _, num, den in pairs:
            row += [ratio(med[cname].get(num), med[cname].get(den), "ops_per_sec"),
                    ratio(med[cname].get(num), med[cname].get(den), "peak_rss_kb")]
        out.append("| " + " | ".join(row) + " |")
    return out


def footnotes(med, configs, allocs, quick):
    """Failed runs always; noisy cells only for real runs (--quick runs
    last milliseconds and are all noisy)."""
    out = []
    for cname in configs:
        for a in allocs:
            cell = med[cname].get(a)
            if not cell:
                continue
            if cell["failed"]:
                out.append(f"- {cname} / {a}: {cell['failed']} of {cell['runs']} runs failed: {cell['error']}")
            elif not quick and cell.get("spread", 0.0) > NOISY:
                out.append(f"- {cname} / {a}: noisy, spread (max-min)/median = {cell['spread']:.0%}")
    return out


def main(argv):
    args = parse_args(argv)
    bench_dir = Path(args.bench_dir)
    for prog in {c[1] for c in CONFIGS}:
        if not os.access(bench_dir / prog, os.X_OK):
            sys.exit(f"compare.py: {bench_dir / prog} not found; build first: "
                     f"meson setup build && ninja -C build")
    configs = [c for c in CONFIGS if not args.only or re.search(args.only, c[0])]
    if not configs:
        sys.exit(f"compare.py: --only {args.only!r} matches no config; configs: "
                 + ", ".join(c[0] for c in CONFIGS))
    allocs = allocators(args)
    if not allocs:
        sys.exit("compare.py: no allocator left to run")
    if args.extra_env and not any(a[0].startswith("hakmem") for a in allocs):
        note("note: --extra-env given but hakmem is not run")
    env0 = base_env()
    busy = load_note()
    if busy:
        note("note: " + busy)
    anames = [a[0] for a in allocs]
    cnames = [c[0] for c in configs]

    total = len(configs) * args.runs * len(allocs)
    note(f"{total} runs: {len(configs)} configs x {args.runs} runs x {len(allocs)} allocators"
         + (" (quick)" if args.quick else ""))
    started = time.monotonic()
    runs, interrupted = run_interleaved(
        configs, args.runs, allocs, lambda cfg, alloc: run_one(bench_dir, cfg, alloc, env0, args),
        lambda r: f"{r['ops_per_sec'] / 1e6:.2f} Mops/s {r['peak_rss_kb'] / 1024:.1f} MiB")
    elapsed = time.monotonic() - started

    med = summarize(runs, cnames, anames)
    envs = " ".join(shlex.quote(kv) for kv in args.extra_env)
    lines = [
        f"Medians of {args.runs} interleaved run(s)"
        + (" (--quick: a smoke check, not a measurement)" if args.quick else "") + ".",
        "Mops/s: million ops per second (churn: free+malloc pairs, larson: allocations);",
        "RSS MiB: peak RSS (VmHWM); ratios: of the medians.",
        f"hakmem: `{args.lib}`" + (f" with `{envs}`" if envs else "") + f"; total time {elapsed:.0f} s.",
    ]
    if busy:
        lines.append(f"Note: {busy}.")
    lines.append("")
    lines += table(med, cnames, anames)
    notes = footnotes(med, cnames, anames, args.quick)
    if notes:
        lines += [""] + notes
    # With --json - stdout carries only the JSON; the table goes to stderr.
    write_report(lines, args.json,
                 {"meta": {"lib": args.lib, "runs": args.runs, "quick": args.quick,
                           "extra_env": args.extra_env, "allocators": anames,
                           "configs": cnames, "elapsed_s": round(elapsed, 1),
                           "load_note": busy,
                           "interrupted": interrupted},
                  "runs": runs, "medians": med})
    if interrupted:
        return 130
    return 1 if any(not r["ok"] for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
