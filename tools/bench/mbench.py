#!/usr/bin/env python3
"""mbench.py -- runs the programs of mimalloc-bench (daanx/mimalloc-bench)
under hakmem and its peers, with the arguments its bench.sh gives them,
and prints time and peak RSS per program, geomeans and ratios.

Owns: the list of mimalloc-bench programs with their arguments and the way
bench.sh turns each one's output into a time, and the geomean table. It
takes a directory of programs built elsewhere (tools/bench/README.md says
how); it never downloads or builds anything. Running, interleaving, the
environment and the report are compare.py's. Standard library only.
"""

import argparse
import os
import re
import statistics
import tempfile
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (same directory)

ROOT = compare.ROOT


def rtime_match(pattern, fn):
    """An rtime parser: fn(first group of pattern in stdout) as seconds."""
    rx = re.compile(pattern, re.M)

    def parse(out):
        m = rx.search(out)
        if not m:
            raise ValueError(f"no {pattern!r} in the output")
        return fn(m.group(1))
    return parse


# bench.sh reports a "relative time" for the programs that run for a fixed
# time and print a rate; the others are timed by the wall clock.
LARSON_RT = rtime_match(r"relative time: ([0-9.]+)", float)
XMALLOC_RT = rtime_match(r"rtime: ([0-9.]+)", float)
RPTEST_RT = rtime_match(r"\.\.\.(\d+) memory ops", lambda s: 2000000 / int(s))
GTHREAD_RT = rtime_match(r"^([0-9.]+)", lambda s: 1e9 / float(s))

# (name as in bench.sh's results, argv ({p}: procs, {d}: data dir), stdin
# file or None, rtime parser or None), in bench.sh's order.
PROGRAMS = [
    ("cfrac", ["cfrac", "17545186520507317056371138836327483792789528"], None, None),
    ("espresso", ["espresso", "{d}/largest.espresso"], None, None),
    ("barnes", ["barnes"], "{d}/input", None),
    ("larsonN", ["larson", "5", "8", "1000", "5000", "100", "4141", "{p}"], None, LARSON_RT),
    ("larsonN-sized", ["larson-sized", "5", "8", "1000", "5000", "100", "4141", "{p}"], None, LARSON_RT),
    ("mstressN", ["mstress", "{p}", "50", "25"], None, None),
    ("rptestN", ["rptest", "{p}", "0", "1", "2", "500", "1000", "100", "8", "16000"], None, RPTEST_RT),
    ("glibc-simple", ["glibc-simple"], None, None),
    ("glibc-thread", ["glibc-thread", "{p}"], None, GTHREAD_RT),
    ("alloc-test1", ["alloc-test", "1"], None, None),
    ("alloc-testN", ["alloc-test", "{p}"], None, None),
    ("xmalloc-testN", ["xmalloc-test", "-w", "{p}", "-t", "5", "-s", "64"], None, XMALLOC_RT),
    ("cache-scratch1", ["cache-scratch", "1", "1000", "1", "2000000", "{p}"], None, None),
    ("cache-scratchN", ["cache-scratch", "{p}", "1000", "1", "2000000", "{p}"], None, None),
    ("cache-thrash1", ["cache-thrash", "1", "1000", "1", "2000000", "{p}"], None, None),
    ("cache-thrashN", ["cache-thrash", "{p}", "1000", "1", "2000000", "{p}"], None, None),
    ("malloc-large", ["malloc-large"], None, None),
    ("mleak10", ["mleak", "5"], None, None),
    ("mleak100", ["mleak", "50"], None, None),
]


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Run the mimalloc-bench programs under hakmem, glibc, jemalloc, mimalloc "
        "and tcmalloc, interleaved; markdown table of median time and peak RSS, geomeans.")
    p.add_argument("--bin-dir", required=True,
                   help="directory with the built programs (cfrac, espresso, ..., glibc-thread)")
    p.add_argument("--data-dir", help="where largest.espresso and barnes' input are "
                   "(default: --bin-dir)")
    compare.add_run_options(p, 3, 300.0, what="programs")
    p.add_argument("--procs", type=int, default=2, help="bench.sh's procs (default 2)")
    args = p.parse_args(argv)
    compare.check_run_options(p, args)
    if args.procs < 1:
        p.error("--procs must be at least 1")
    return args


def run_one(bin_dir, data_dir, procs, prog, alloc, env0, timeout):
    name, argv, stdin, rtime = prog
    fill = {"p": str(procs), "d": str(data_dir)}
    cmd = [str(bin_dir / argv[0])] + [a.format(**fill) for a in argv[1:]]
    if stdin:
        # time(1) passes its stdin on; a shell is not needed for one file.
        cmd = ["sh", "-c", 'exec "$0" "$@" < "$HK_STDIN"'] + cmd
        env0 = {**env0, "HK_STDIN": stdin.format(**fill)}
    rec, cp = compare.run_timed(cmd, alloc, env0, timeout, {"config": name})
    if not rec["ok"]:
        return rec
    if rtime:
        try:
            rec["time_s"] = rtime(cp.stdout + cp.stderr)
        except ValueError as e:
            rec.update(ok=False, error=str(e))
    return rec


def summarize(runs, names, anames):
    def fill(cell, ok):
        ts = [r["time_s"] for r in ok]
        m = statistics.median(ts)
        cell.update(time_s=m, maxrss_kb=statistics.median(r["maxrss_kb"] for r in ok),
                    spread=(max(ts) - min(ts)) / m if m > 0 else 0.0)
    return compare.summarize_cells(runs, names, anames, fill)


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"


def tables(med, names, anames):
    """The per-program table and the geomean table (markdown lines)."""
    peers = [a for a in anames if not a.startswith("hakmem")]
    head = ["program"]
    for a in anames:
        head += [f"{a} s", f"{a} MiB"]
    has = "hakmem" in anames
    bases = [b for b in ("mimalloc", "glibc") if has and b in anames]
    for b in bases:
        head += [f"hakmem/{b} time", f"hakmem/{b} RSS"]
    if has and peers:
        head += ["hakmem/best peer time"]
    rows = []
    for n in names:
        cells = med[n]
        row = [n]
        for a in anames:
            c = cells.get(a)
            if not c or "time_s" not in c:
                row += ["FAIL" if c else "-", "-"]
                continue
            flag = " (!)" if c["failed"] else ""
            row += [f"{c['time_s']:.3f}{flag}", f"{c['maxrss_kb'] / 1024:.1f}"]

        def get(a, k):
            c = cells.get(a)
            return c.get(k) if c else None
        for b in bases:
            row += [ratio(get("hakmem", "time_s"), get(b, "time_s")),
                    ratio(get("hakmem", "maxrss_kb"), get(b, "maxrss_kb"))]
        if has and peers:
            best = [get(a, "time_s") for a in peers if get(a, "time_s")]
            row += [ratio(get("hakmem", "time_s"), min(best) if best else None)]
        rows.append(row)
    lines = compare.md_table(head, rows)

    # Geomeans over the programs every allocator finished, as ratios.
    both = [n for n in names if all(med[n].get(a, {}).get("time_s") for a in anames)]
    grow = []
    for a in anames:
        r = [a]
        for base in ("mimalloc", "glibc"):
            for k in ("time_s", "maxrss_kb"):
                if base in anames:
                    g = compare.geomean(med[n][a][k] / med[n][base][k] for n in both)
                    r.append(f"{g:.2f}" if g else "-")
                else:
                    r.append("-")
        grow.append(r)
    lines += ["", f"Geomeans over the {len(both)} programs every allocator finished:", ""]
    lines += compare.md_table(["allocator", "time / mimalloc", "RSS / mimalloc",
                               "time / glibc", "RSS / glibc"], grow)
    return lines


def main(argv):
    args = parse_args(argv)
    bin_dir = Path(args.bin_dir).resolve()
    data_dir = Path(args.data_dir).resolve() if args.data_dir else bin_dir
    progs = [p for p in PROGRAMS if not args.only or re.search(args.only, p[0])]
    missing = [p[0] for p in progs if not (bin_dir / p[1][0]).is_file()]
    if missing:
        compare.note("note: not built, skipped: " + ", ".join(missing))
        progs = [p for p in progs if p[0] not in missing]
    if not progs:
        sys.exit("mbench.py: no program to run")
    with tempfile.TemporaryDirectory(prefix="hakmem-mbench-") as tmp:
        lib, sha = compare.snapshot_lib(args.lib, tmp) if Path(args.lib).is_file() else (args.lib, "-")
        args.lib = str(Path(lib).resolve())
        # Some programs (rptest) write files into the current directory.
        os.chdir(tmp)
        allocs = compare.allocators(args)
        env0 = compare.base_env()
        load0 = compare.loadavg()
        anames = [a[0] for a in allocs]
        names = [p[0] for p in progs]
        compare.note(f"{len(progs) * args.runs * len(allocs)} runs; load average {load0}")
        t0 = time.monotonic()
        runs, interrupted = compare.run_interleaved(
            progs, args.runs, allocs,
            lambda prog, alloc: run_one(bin_dir, data_dir, args.procs, prog, alloc, env0, args.timeout),
            lambda r: f"{r['time_s']:.3f} s {r['maxrss_kb'] / 1024:.1f} MiB")
        load1 = compare.loadavg()
    elapsed = time.monotonic() - t0
    med = summarize(runs, names, anames)
    lines = [f"mimalloc-bench programs from `{bin_dir}`, procs={args.procs}; medians of "
             f"{args.runs} interleaved runs; time: bench.sh's relative time for larson, "
             f"xmalloc-test, rptest and glibc-thread, else wall seconds; RSS: peak (time(1) %M).",
             f"hakmem: `{args.lib}` (sha256 {sha}); load average at start {load0}, at end {load1}; "
             f"{elapsed:.0f} s.", ""]
    lines += tables(med, names, anames)
    notes = compare.footnotes({n: {a: {**c, "spread": c.get("spread", 0)} for a, c in med[n].items()}
                               for n in names}, names, anames, False)
    if notes:
        lines += [""] + notes
    compare.write_report(lines, args.json, {"meta": {"bin_dir": str(bin_dir), "runs": args.runs,
                                                     "procs": args.procs, "lib_sha256_12": sha,
                                                     "loadavg_start": load0, "loadavg_end": load1,
                                                     "interrupted": interrupted},
                                            "runs": runs, "medians": med})
    if interrupted:
        return 130
    return 1 if any(not r["ok"] for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
