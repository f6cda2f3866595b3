#!/usr/bin/env python3
"""spike.py -- the spike-then-idle RSS curve: grow 200 MB of small blocks,
free them all (or all but 1 % at random), then idle with light churn, and
follow RSS - LazyFree over 16 s, for hakmem FAST, LEAN+FREE, LEAN+DONTNEED
and the peers at their defaults (what a user gets).

Owns: the allocator set and bench_phase arguments of this curve, the table
of RSS - LazyFree at +1, +2, +4, +8 and +16 s (medians of the runs), and
the PNG plot (python3-matplotlib, optional: without it the table is
printed and the plot skipped with a note). Running, interleaving and the
report are compare.py's; the result line is parsed as lean.py does.
"""

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (same directory)
import lean  # noqa: E402

ROOT = compare.ROOT
STATS = {"HAKMEM_SS_OS_STATS": "1"}
# (id, library: "hakmem" / a path / None for glibc, env)
ALLOCS = [
    ("hakmem FAST", "hakmem", dict(STATS)),
    ("hakmem LEAN+FREE", "hakmem", {**STATS, "HAKMEM_SS_MEM_LEAN": "1",
                                    "HAKMEM_SS_MEM_LEAN_DECOMMIT": "FREE"}),
    ("hakmem LEAN+DONTNEED", "hakmem", {**STATS, "HAKMEM_SS_MEM_LEAN": "1",
                                        "HAKMEM_SS_MEM_LEAN_DECOMMIT": "DONTNEED"}),
] + [(name, path, {}) for name, path in compare.PEERS]

# Light churn: 64 free+malloc pairs every ms in a 1000-slot working set;
# a sample every 250 ms (smaps_rollup walks the page tables: ~1 ms per
# few hundred MB).
PHASE = ["--settle", "16", "--sample-ms", "250", "--churn-ms", "1", "--churn-ops", "64", "--trace"]
QUICK = ["--live", "50M", "--settle", "2"]
CONFIGS = [
    ("all freed", ["--keep-pct", "0"]),
    ("1% kept", ["--keep-pct", "1"]),
]
POINTS_S = (1, 2, 4, 8, 16)
TRACE_RE = re.compile(r"^(\d+) (-?\d+) (-?\d+) (-?\d+)$")


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Spike-then-idle RSS curve (200 MB of small blocks freed, light churn), "
        "hakmem FAST/LEAN and the peers: markdown table and a PNG plot.")
    p.add_argument("--lib", default=str(ROOT / "build" / "shim" / "libhakmem.so"),
                   help="hakmem library (default: %(default)s); a copy is preloaded")
    p.add_argument("--bench-dir", default=str(ROOT / "build" / "tools" / "bench"),
                   help="where bench_phase is (default: %(default)s)")
    p.add_argument("--runs", type=int, default=3, help="runs per cell (default 3)")
    p.add_argument("--quick", action="store_true", help="50 MB, 2 s: a smoke check")
    p.add_argument("--only", metavar="REGEX", help="only the configs whose name matches")
    p.add_argument("--alloc", metavar="LIST", help="comma-separated subset of: "
                   + ", ".join(a[0] for a in ALLOCS))
    p.add_argument("--plot", metavar="PNG", help="write the curves (medians) to this PNG file")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per run (default 300)")
    p.add_argument("--json", metavar="FILE", help="every run with its trace, as JSON ('-': stdout)")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    compare.check_only(p, args.only)
    return args


def pick_allocs(args, lib):
    """[(name, library or None, env)] of ALLOCS that --alloc names and that can run."""
    table = [(name, name, path, env) for name, path, env in ALLOCS]
    return [(a[0], a[2], a[3]) for a in lean.pick_allocs(args, lib, table, "spike.py")]


def run_one(bench_dir, cfg, alloc, env0, args):
    name, cargs = cfg
    cmd = [str(bench_dir / "bench_phase")] + cargs + PHASE + (QUICK if args.quick else [])
    rec, cp = compare.run_cmd(cmd, alloc, env0, args.timeout, {"config": name})
    if "ok" in rec:
        return rec
    rec = compare.parse_result(rec, cp, lean.PHASE_RE,
                               lambda f: {k: (float(v) if "." in v else int(v)) for k, v in f.items()})
    # the trace: t_ms, RSS - LazyFree in kB
    rec["trace"] = [(int(m.group(1)), int(m.group(2)) - max(0, int(m.group(3))))
                    for m in map(TRACE_RE.match, cp.stderr.splitlines()) if m]
    return rec


def at(trace, t_ms):
    """RSS - LazyFree (kB) of the first sample at or after t_ms; the last
    one if it is within a sample period (250 ms) of t_ms; else None."""
    for t, v in trace:
        if t >= t_ms:
            return v
    return trace[-1][1] if trace and trace[-1][0] >= t_ms - 250 else None


def summarize(runs, cnames, anames):
    def fill(cell, ok):
        cell["peak_kb"] = statistics.median(r["peak_rss_kb"] for r in ok)
        cell["start_kb"] = statistics.median(r["start_rss_kb"] for r in ok)
        cell["freed_kb"] = statistics.median(r["trace"][0][1] for r in ok if r["trace"])
        pts = {s: [at(r["trace"], s * 1000) for r in ok] for s in POINTS_S}
        cell["points_kb"] = {s: statistics.median(v) if None not in v else None
                             for s, v in pts.items()}
        cell["t90_ms"] = lean.median_t90([r["t90_ms"] for r in ok])
        cell["returned_pct"] = statistics.median(r["returned_pct"] for r in ok)
        # the median curve, on the grid of the first run, as far as every
        # run has samples (a run the machine held up can end late)
        end = min(r["trace"][-1][0] for r in ok if r["trace"])
        grid = [t for t, _ in ok[0]["trace"] if t <= end]
        cell["curve"] = [(t, statistics.median(at(r["trace"], t) for r in ok)) for t in grid]
        st = [r["os_stats"] for r in ok if "os_stats" in r]
        if st:
            cell["madvise_calls"] = statistics.median(s.get("madvise_calls", 0) for s in st)
    return compare.summarize_cells(runs, cnames, anames, fill)


def table(med, cnames, anames):
    head = ["config", "allocator", "start MB", "peak MB", "after free MB"]
    head += [f"+{s} s MB" for s in POINTS_S] + ["t90", "returned", "madvise calls"]
    rows = []
    mb = lambda kb: f"{kb / 1024:.1f}"  # noqa: E731
    for c in cnames:
        for a in anames:
            cell = med[c].get(a)
            if not cell:
                continue
            if "peak_kb" not in cell:
                rows.append([c, a, "FAIL"] + ["-"] * (len(head) - 3))
                continue
            t90 = cell["t90_ms"]
            rows.append([c, a, mb(cell["start_kb"]), mb(cell["peak_kb"]), mb(cell["freed_kb"])]
                        + [mb(v) if v is not None else "-" for v in cell["points_kb"].values()]
                        + ["never" if t90 < 0 else f"{t90} ms", f"{cell['returned_pct']:.0f}%",
                           str(int(cell["madvise_calls"])) if "madvise_calls" in cell else "-"])
    return compare.md_table(head, rows, ["---", "---"] + ["---:"] * (len(head) - 2))


SYSTEM_PYTHON = "/usr/bin/python3"  # where Debian's python3-matplotlib is


def plot(med, cnames, anames, path):
    """Draws the median curves into path; True when done. Without
    matplotlib in this interpreter (a pyenv python, say), the system
    python draws them (--plot-from)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        if Path(SYSTEM_PYTHON).is_file() and Path(sys.executable).resolve() != Path(SYSTEM_PYTHON).resolve():
            import json
            import subprocess
            with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
                json.dump({"med": med, "cnames": cnames, "anames": anames}, f)
                f.flush()
                cp = subprocess.run([SYSTEM_PYTHON, __file__, "--plot-from", f.name, "--plot", path])
            return cp.returncode == 0
        compare.note("note: no matplotlib (apt-get install python3-matplotlib): no plot")
        return False
    fig, axes = plt.subplots(1, len(cnames), figsize=(6.5 * len(cnames), 4.5), squeeze=False)
    for ax, c in zip(axes[0], cnames):
        for a in anames:
            cell = med[c].get(a)
            if not cell or "curve" not in cell:
                continue
            xs = [t / 1000 for t, _ in cell["curve"]]
            ys = [v / 1024 for _, v in cell["curve"]]
            ax.plot(xs, ys, label=a, linestyle="-" if a.startswith("hakmem") else "--")
        ax.set_title(f"spike of 16..1024 B blocks, {c}; 64 malloc/free per ms")
        ax.set_xlabel("seconds after the last free")
        ax.set_ylabel("RSS - LazyFree, MB")
        ax.set_ylim(bottom=0, top=ax.get_ylim()[1] * 1.05)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return True


def main(argv):
    if argv[:1] == ["--plot-from"] and len(argv) == 4 and argv[2] == "--plot":
        import json
        d = json.loads(Path(argv[1]).read_text())
        return 0 if plot(d["med"], d["cnames"], d["anames"], argv[3]) else 1
    args = parse_args(argv)
    bench_dir = Path(args.bench_dir)
    if not os.access(bench_dir / "bench_phase", os.X_OK):
        sys.exit(f"spike.py: {bench_dir / 'bench_phase'} not found; build first: ninja -C build")
    configs = [c for c in CONFIGS if not args.only or re.search(args.only, c[0])]
    if not configs:
        sys.exit("spike.py: --only matches no config")
    tmpdir = tempfile.mkdtemp(prefix="hakmem-spike-")
    try:
        lib, sha = compare.snapshot_lib(args.lib, tmpdir)
        allocs = pick_allocs(args, lib)
        env0 = compare.base_env()
        anames, cnames = [a[0] for a in allocs], [c[0] for c in configs]
        load0 = compare.loadavg()
        compare.note(f"{len(configs) * args.runs * len(allocs)} runs of ~{'5' if args.quick else '22'} s; load average {load0}")
        t0 = time.monotonic()
        runs, _ = compare.run_interleaved(
            configs, args.runs, allocs, lambda cfg, alloc: run_one(bench_dir, cfg, alloc, env0, args),
            lambda r: (f"+1 s {(at(r['trace'], 1000) or 0) / 1024:.1f} MB, end "
                       f"{r['end_rss_minus_lazyfree_kb'] / 1024:.1f} MB, t90 {r['t90_ms']}"
                       if r.get("trace") else "no trace"))
        load1 = compare.loadavg()
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    med = summarize(runs, cnames, anames)
    lines = [f"Medians of {args.runs} interleaved runs of `bench_phase {' '.join(PHASE)}`"
             + (" (--quick)" if args.quick else "") + f"; hakmem sha256 {sha}; load average at "
             f"start {load0}, at end {load1}; {time.monotonic() - t0:.0f} s.",
             "MB: RSS - LazyFree (MADV_FREE pages are the kernel's to take); t90: first sample "
             "with 90 % of the freed memory given back.", ""]
    lines += table(med, cnames, anames)
    if args.plot and plot(med, cnames, anames, args.plot):
        lines += ["", f"Plot: `{args.plot}`."]
    fails = [f"- {r['config']} / {r['allocator']} run {r['run']}: {r['error']}"
             for r in runs if not r["ok"]]
    if fails:
        lines += ["", "Failed runs:"] + fails
    compare.write_report(lines, args.json, {"meta": {"runs": args.runs, "lib_sha256_12": sha,
                                                     "loadavg_start": load0, "loadavg_end": load1},
                                            "runs": runs, "medians": med})
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
