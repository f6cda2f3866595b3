#!/usr/bin/env python3
"""lean.py -- the LEAN-mode validation: A/B churn table, phase
table and the GO table of docs/ARCHITECTURE.md, in markdown.

Owns: the allocator set of the LEAN validation (hakmem FAST, LEAN+FREE,
LEAN+DONTNEED; glibc, jemalloc and mimalloc set to purge at once), the
churn and phase configurations, the OS-call counts (hakmem's own counters
and strace), and the PASS/MISS verdicts. Running a program under an
allocator, scrubbing the environment and parsing the result lines are
compare.py's (imported, not copied), as are the interleaved run order, the
skeleton of a summary cell and the writing of the report. Standard library only.
"""

import argparse
import math
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

ROOT = compare.ROOT
LIBDIR = compare.LIBDIR

# mimalloc 2.1 names its purge delay purge_delay; 2.0.x (Debian 12 ships
# 2.0.9) reads decommit_delay and segment_decommit_delay instead and ignores
# unknown names. All three are set, so "purge at once" holds for either.
MIMALLOC_EAGER = {"MIMALLOC_PURGE_DELAY": "0", "MIMALLOC_DECOMMIT_DELAY": "0",
                  "MIMALLOC_SEGMENT_DECOMMIT_DELAY": "0"}
JEMALLOC_EAGER = {"MALLOC_CONF": "dirty_decay_ms:0,muzzy_decay_ms:0"}
HAKMEM_STATS = {"HAKMEM_SS_OS_STATS": "1"}

# (id, label, library: "hakmem" / a path / None for glibc, env)
ALLOCS = [
    ("fast", "hakmem FAST", "hakmem", dict(HAKMEM_STATS)),
    ("lean-free", "hakmem LEAN+FREE", "hakmem",
     {**HAKMEM_STATS, "HAKMEM_SS_MEM_LEAN": "1", "HAKMEM_SS_MEM_LEAN_DECOMMIT": "FREE"}),
    ("lean-dontneed", "hakmem LEAN+DONTNEED", "hakmem",
     {**HAKMEM_STATS, "HAKMEM_SS_MEM_LEAN": "1", "HAKMEM_SS_MEM_LEAN_DECOMMIT": "DONTNEED"}),
    ("glibc", "glibc", None, {}),
    ("jemalloc", "jemalloc", LIBDIR / "libjemalloc.so.2", dict(JEMALLOC_EAGER)),
    ("mimalloc", "mimalloc", LIBDIR / "libmimalloc.so.2", dict(MIMALLOC_EAGER)),
]
LEANS = ("lean-free", "lean-dontneed")

# (name, bench_churn arguments, --quick arguments). 40M ops take about 1 s
# per run at WS=400/4000; the heavy case (200 MB live, sizes up to 4 KiB,
# every op a cache miss) runs 2M ops: glibc needs about 3 s for them.
CHURN = [
    ("churn WS=400", ["--ws", "400"], ["--ops", "500k"]),
    ("churn WS=4000", ["--ws", "4000"], ["--ops", "500k"]),
    ("heavy WS=100k 16..4096", ["--ws", "100000", "--max", "4096", "--ops", "2M"], ["--ops", "200k"]),
]
# (name, bench_phase arguments, --quick arguments)
PHASE = [
    ("phase keep 0%", ["--keep-pct", "0"], ["--live", "50M", "--settle", "1"]),
    ("phase keep 1%", ["--keep-pct", "1"], ["--live", "50M", "--settle", "1"]),
]
SYSCALLS = compare.STRACE_CALLS
PHASE_RE = re.compile(r"^start_rss_kb=\S+ ")
MB2 = 2048  # "within 2 MB of the start", kB

# The LEAN targets of docs/ARCHITECTURE.md, "Numbers that define done".
T_LEAN_RSS_KB = 10 * 1024
T_LEAN_RSS_RATIO = 0.30
T_LEAN_OPS_RATIO = 0.90
T_OS_PER_OP = 1e-6
T_KEEP1_PCT = 15.0


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="LEAN-mode validation: churn A/B, phase workload and GO table "
        "for hakmem FAST/LEAN against glibc, jemalloc and mimalloc (markdown on stdout).")
    p.add_argument("--lib", default=str(ROOT / "build" / "shim" / "libhakmem.so"),
                   help="hakmem library (default: %(default)s); a copy is preloaded, "
                   "so a rebuild during the run cannot mix two versions")
    p.add_argument("--bench-dir", default=str(ROOT / "build" / "tools" / "bench"),
                   help="where bench_churn and bench_phase are (default: %(default)s)")
    p.add_argument("--runs", type=int, help="timed churn runs per allocator and config "
                   "(default 10; 2 with --quick)")
    p.add_argument("--phase-runs", type=int, help="phase runs per allocator and config "
                   "(default 3; 1 with --quick); the table shows medians")
    p.add_argument("--quick", action="store_true",
                   help="few ops, 50 MB phase, 1 s settle: a smoke check, not a measurement")
    p.add_argument("--only", metavar="REGEX", help="only the configs whose name matches (re.search)")
    p.add_argument("--alloc", metavar="LIST", help="comma-separated subset of: "
                   + ",".join(a[0] for a in ALLOCS))
    p.add_argument("--no-strace", action="store_true", help="skip the strace runs")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds before a run counts as failed")
    p.add_argument("--json", metavar="FILE", help="every run, the summaries and the GO "
                   "verdicts as JSON to FILE ('-': stdout, the tables then go to stderr)")
    args = p.parse_args(argv)
    if args.runs is None:
        args.runs = 2 if args.quick else 10
    if args.phase_runs is None:
        args.phase_runs = 1 if args.quick else 3
    if args.runs < 1 or args.phase_runs < 0:
        p.error("--runs must be at least 1 and --phase-runs at least 0")
    compare.check_only(p, args.only)
    return args


note = compare.note


loadavg = compare.loadavg
snapshot_lib = compare.snapshot_lib


def pick_allocs(args, hakmem_lib, table=None, prog="lean.py"):
    """[(id, label, library or None, env)] of table (default ALLOCS, same
    shape; library "hakmem" is hakmem_lib) that --alloc names and that can
    run."""
    out = []
    want = None
    table = ALLOCS if table is None else table
    if args.alloc:
        want = {a.strip() for a in args.alloc.split(",") if a.strip()}
        unknown = want - {a[0] for a in table}
        if unknown:
            sys.exit(f"{prog}: --alloc: unknown {', '.join(sorted(unknown))}")
    for aid, label, lib, env in table:
        if want and aid not in want:
            continue
        if lib == "hakmem":
            lib = hakmem_lib
        if lib is not None and not Path(lib).is_file():
            note(f"note: skipping {label}: {lib} is missing")
            continue
        out.append((aid, label, lib, env))
    return out


# ---- running ---------------------------------------------------------------

def churn_run(bench_dir, cfg, alloc, env0, args):
    name, cargs, qargs = cfg
    aid, label, lib, env = alloc
    rec = compare.run_one(bench_dir, (name, "bench_churn", cargs, qargs), (aid, lib, env), env0, args)
    if rec["ok"] and aid in ("fast",) + LEANS and "os_stats" not in rec:
        rec.update(ok=False, error="hakmem printed no HAKMEM_SS_OS_STATS counters (not preloaded?)")
    return rec


def phase_run(bench_dir, cfg, alloc, env0, args):
    name, cargs, qargs = cfg
    aid, label, lib, env = alloc
    cmd = [str(bench_dir / "bench_phase")] + cargs + (qargs if args.quick else [])
    rec, cp = compare.run_cmd(cmd, (aid, lib, env), env0, args.timeout, {"config": name})
    if "ok" in rec:
        return rec
    return compare.parse_result(rec, cp, PHASE_RE,
                                lambda f: {k: (float(v) if "." in v else int(v)) for k, v in f.items()})


def strace_run(bench_dir, cfg, alloc, env0, args, tmpdir, ops_override=None):
    """One untimed run of cfg under strace -f -c; {syscall: calls} and the
    ops of the run, or an error string."""
    name, cargs, qargs = cfg
    aid, label, lib, env = alloc
    cmd = [str(bench_dir / "bench_churn")] + cargs + (qargs if args.quick else [])
    if ops_override:
        cmd += ["--ops", ops_override]
    out = Path(tmpdir) / "strace.txt"
    scmd, salloc = compare.straced(cmd, (aid, lib, env), out)
    rec, cp = compare.run_cmd(scmd, salloc, env0, args.timeout * 2, {"config": name})
    if "ok" in rec:
        return None, None, rec["error"]
    lines = [l for l in cp.stdout.splitlines() if compare.RESULT_RE.match(l)]
    counts = compare.strace_counts(out)
    if not lines or counts is None:
        return None, None, "no result line or no strace summary"
    ops = int(compare.parse_kv(lines[-1])["ops"])
    return counts, ops, None


# ---- statistics ------------------------------------------------------------

def mean_cv(xs):
    if not xs:
        return None, None
    m = statistics.fmean(xs)
    if len(xs) < 2 or m == 0:
        return m, None
    return m, statistics.stdev(xs) / m


def os_calls(stats):
    return sum(stats.get(k, 0) for k in compare.OS_CALLS)


def summarize_churn(runs, cnames, aids, base_stats):
    def fill(cell, ok):
        c, a = ok[0]["config"], ok[0]["allocator"]  # the cell's, as every run in ok
        m, cv = mean_cv([r["ops_per_sec"] for r in ok])
        cell.update(ops_mean=m, ops_cv=cv,
                    peak_rss_kb=statistics.median(r["peak_rss_kb"] for r in ok),
                    peak_rss_kb_max=max(r["peak_rss_kb"] for r in ok),
                    ops=ok[0]["ops"])
        st = [os_calls(r["os_stats"]) / r["ops"] for r in ok if "os_stats" in r]
        if st:
            cell["os_per_op_stats"] = statistics.median(st)
            base = base_stats.get(c, {}).get(a)
            if base:
                n = statistics.median(os_calls(r["os_stats"]) for r in ok if "os_stats" in r)
                cell["os_base_calls"] = os_calls(base)
                cell["os_steady_per_op_stats"] = max(0, n - os_calls(base)) / max(1, ok[0]["ops"] - 1)
            last = [r for r in ok if "os_stats" in r][-1]["os_stats"]
            cell["lean_decommit"] = last.get("lean_decommit")
            cell["lean_retire"] = last.get("lean_retire")
    return compare.summarize_cells(runs, cnames, aids, fill)


def median_t90(vals):
    """Median with -1 ("never") ranked above every time; -1 if that is the median."""
    key = sorted(vals, key=lambda v: math.inf if v < 0 else v)
    return key[(len(key) - 1) // 2]  # lower median: an actual run's value


def summarize_phase(runs, cnames, aids):
    keys = ("start_rss_kb", "peak_rss_kb", "grown_rss_kb", "end_rss_kb", "end_lazyfree_kb",
            "end_rss_minus_lazyfree_kb", "returned_pct", "kept_bytes", "free_ms")

    def fill(cell, ok):
        for k in keys:
            cell[k] = statistics.median(r[k] for r in ok)
        cell["t90_ms"] = median_t90([r["t90_ms"] for r in ok])
        # per-run verdict inputs, so that the median does not hide a bad run
        cell["end_minus_start_kb_max"] = max(r["end_rss_kb"] - r["start_rss_kb"] for r in ok)
        cell["end_rml_minus_start_kb_max"] = max(
            r["end_rss_minus_lazyfree_kb"] - r["start_rss_kb"] for r in ok)
        cell["end_pct_peak_max"] = max(100.0 * r["end_rss_kb"] / r["peak_rss_kb"] for r in ok)
        cell["end_rml_pct_peak_max"] = max(
            100.0 * r["end_rss_minus_lazyfree_kb"] / r["peak_rss_kb"] for r in ok)
        cell["end_pct_peak"] = 100.0 * cell["end_rss_kb"] / cell["peak_rss_kb"]
        cell["end_rml_pct_peak"] = 100.0 * cell["end_rss_minus_lazyfree_kb"] / cell["peak_rss_kb"]
    return compare.summarize_cells(runs, cnames, aids, fill)


# ---- formatting ------------------------------------------------------------

def mib(kb, nd=1):
    return "-" if kb is None else f"{kb / 1024:.{nd}f}"


def sci(x):
    if x is None:
        return "-"
    if x == 0:
        return "0"
    return f"{x:.1e}"


def pct(x, nd=1):
    return "-" if x is None else f"{x * 100:.{nd}f}%"


md_table = compare.md_table


def cell_table(head, med, cnames, allocs, key, row):
    """A config x allocator table: one line per cell that ran, "FAIL" for a
    cell without key (no run succeeded), else row(config, id, cell)."""
    rows = []
    for c in cnames:
        for aid, label, _, _ in allocs:
            cell = med[c].get(aid)
            if not cell:
                continue
            if key not in cell:
                rows.append([c, label, "FAIL"] + ["-"] * (len(head) - 3))
            else:
                rows.append([c, label] + row(c, aid, cell))
    return md_table(head, rows, ["---", "---"] + ["---:"] * (len(head) - 2))


def churn_table(med, strace, cnames, allocs):
    head = ["config", "allocator", "peak RSS MiB", "Mops/s mean", "CV",
            "OS calls/op, hakmem counters: run / steady Δ",
            "OS calls/op, strace: run / steady Δ", "lean_decommit", "lean_retire"]

    def row(c, aid, cell):
        st = strace.get(c, {}).get(aid, {})
        mark = " (!)" if cell["failed"] else ""
        return [mib(cell["peak_rss_kb"], 2),
                f"{cell['ops_mean'] / 1e6:.2f}{mark}", pct(cell["ops_cv"]),
                (f"{sci(cell['os_per_op_stats'])} / {sci(cell.get('os_steady_per_op_stats'))}"
                 if "os_per_op_stats" in cell else "-"),
                (f"{sci(st['per_op'])} / {sci(st['steady_per_op'])}"
                 if "per_op" in st else st.get("error", "-")),
                cell.get("lean_decommit", "-") if cell.get("lean_decommit") is not None else "-",
                cell.get("lean_retire", "-") if cell.get("lean_retire") is not None else "-"]
    return cell_table(head, med, cnames, allocs, "ops_mean", row)


def phase_table(med, cnames, allocs):
    head = ["config", "allocator", "start MiB", "peak MiB", "end RSS MiB", "LazyFree MiB",
            "end RSS−LazyFree MiB", "end RSS % peak", "end RSS−LazyFree % peak",
            "within 2 MB of start (RSS / RSS−LazyFree)", "returned %", "t90 ms"]

    def row(c, aid, cell):
        d_rss = cell["end_rss_kb"] - cell["start_rss_kb"]
        d_rml = cell["end_rss_minus_lazyfree_kb"] - cell["start_rss_kb"]
        yn = lambda d: "yes" if d <= MB2 else "no"  # noqa: E731
        t90 = cell["t90_ms"]
        return [mib(cell["start_rss_kb"]), mib(cell["peak_rss_kb"]),
                mib(cell["end_rss_kb"]), mib(cell["end_lazyfree_kb"]),
                mib(cell["end_rss_minus_lazyfree_kb"]),
                f"{cell['end_pct_peak']:.1f}%", f"{cell['end_rml_pct_peak']:.1f}%",
                f"{yn(d_rss)} / {yn(d_rml)}", f"{cell['returned_pct']:.1f}",
                "never" if t90 < 0 else str(int(t90))]
    return cell_table(head, med, cnames, allocs, "end_rss_kb", row)


def go_rows(cm, st, pm, floor_kb):
    """[(criterion, measured, target, verdict)] for what was measured."""
    rows = []
    verdict = lambda ok: "PASS" if ok else "MISS"  # noqa: E731
    label = {a[0]: a[1] for a in ALLOCS}
    w400 = cm.get("churn WS=400", {})
    fast400 = w400.get("fast", {})
    for v in LEANS:
        cell = w400.get(v, {})
        if "peak_rss_kb" not in cell:
            continue
        # the worst run decides, not the median
        rows.append((f"{label[v]} peak RSS, churn WS=400", f"{mib(cell['peak_rss_kb_max'], 2)} MiB (max of runs)",
                     "< 10 MB", verdict(cell["peak_rss_kb_max"] < T_LEAN_RSS_KB)))
        if "peak_rss_kb" in fast400:
            r = cell["peak_rss_kb"] / fast400["peak_rss_kb"]
            net = ""
            if floor_kb and fast400["peak_rss_kb"] > floor_kb:
                rn = (cell["peak_rss_kb"] - floor_kb) / (fast400["peak_rss_kb"] - floor_kb)
                net = f"; net of the {mib(floor_kb, 2)} MiB process floor: {rn * 100:.0f}%"
            rows.append((f"{label[v]} peak RSS / FAST's, churn WS=400",
                         f"{r * 100:.0f}% ({mib(cell['peak_rss_kb'], 2)} / {mib(fast400['peak_rss_kb'], 2)} MiB{net})",
                         "≤ 30%", verdict(r <= T_LEAN_RSS_RATIO)))
    for c, cells in cm.items():
        fast = cells.get("fast", {})
        for v in LEANS:
            cell = cells.get(v, {})
            if "ops_mean" in cell and "ops_mean" in fast:
                r = cell["ops_mean"] / fast["ops_mean"]
                rows.append((f"{label[v]} throughput / FAST's, {c}",
                             f"{r * 100:.0f}% ({cell['ops_mean'] / 1e6:.2f} / {fast['ops_mean'] / 1e6:.2f} Mops/s)",
                             "≥ 90%", verdict(r >= T_LEAN_OPS_RATIO)))
    for c, cells in cm.items():
        for v in ("fast",) + LEANS:
            cell = cells.get(v, {})
            if "os_steady_per_op_stats" not in cell:
                continue
            # steady state: start-up, fill and teardown (the --ops 1 run) subtracted
            s = st.get(c, {}).get(v, {})
            vals = [cell["os_steady_per_op_stats"]] + ([s["steady_per_op"]] if "steady_per_op" in s else [])
            meas = f"{sci(cell['os_steady_per_op_stats'])} counters Δ" + (
                f", {sci(s['steady_per_op'])} strace Δ" if "steady_per_op" in s else "")
            rows.append((f"{label[v]} OS calls per op (steady state), {c}", meas, "< 1e-6",
                         verdict(max(vals) < T_OS_PER_OP)))
    # (config, what, target, limit, {variant: (criterion, figure, measured text)}):
    # the worst run decides; LEAN+FREE is judged by RSS−LazyFree.
    phase_go = [
        ("phase keep 0%", "all freed", "≤ 2 MB", MB2, {
            "lean-dontneed": ("end RSS − start RSS", "end_minus_start_kb_max",
                              lambda cell, d: f"{d / 1024:+.2f} MiB (worst run)"),
            "lean-free": ("end RSS−LazyFree − start RSS", "end_rml_minus_start_kb_max",
                          lambda cell, d: f"{d / 1024:+.2f} MiB (worst run; RSS itself "
                          f"{(cell['end_rss_kb'] - cell['start_rss_kb']) / 1024:+.1f} MiB)")}),
        ("phase keep 1%", "1% kept", "≤ 15%", T_KEEP1_PCT, {
            "lean-dontneed": ("end RSS / peak", "end_pct_peak_max",
                              lambda cell, x: f"{x:.1f}% (worst run)"),
            "lean-free": ("end RSS−LazyFree / peak", "end_rml_pct_peak_max",
                          lambda cell, x: f"{x:.1f}% (worst run; RSS itself {cell['end_pct_peak']:.1f}%)")}),
    ]
    for cname, what, target, limit, variants in phase_go:
        for v in ("lean-dontneed", "lean-free"):
            cell = pm.get(cname, {}).get(v, {})
            if "end_rss_kb" not in cell:
                continue
            crit, key, measured = variants[v]
            x = cell[key]
            rows.append((f"phase, {what}: {label[v]} {crit}", measured(cell, x), target,
                         verdict(x <= limit)))
    return rows


# ---- main ------------------------------------------------------------------

def process_floor(bench_dir, env0, args):
    """VmHWM (kB) of bench_churn doing next to nothing under glibc: binary,
    libc and stack, the part of a peak RSS no allocator can remove."""
    rec = compare.run_one(bench_dir, ("floor", "bench_churn", ["--ws", "1", "--ops", "1"], []),
                          ("glibc", None, {}), env0, args)
    return rec.get("peak_rss_kb") if rec.get("ok") else None


def main(argv):
    args = parse_args(argv)
    bench_dir = Path(args.bench_dir)
    for prog in ("bench_churn", "bench_phase"):
        if not os.access(bench_dir / prog, os.X_OK):
            sys.exit(f"lean.py: {bench_dir / prog} not found; build first: ninja -C build")
    if not args.no_strace and not shutil.which("strace"):
        note("note: strace not found: no strace columns")
        args.no_strace = True
    churn = [c for c in CHURN if not args.only or re.search(args.only, c[0])]
    phase = [c for c in PHASE if not args.only or re.search(args.only, c[0])]
    if args.phase_runs == 0:
        phase = []
    if not churn and not phase:
        sys.exit("lean.py: --only matches no config; configs: "
                 + ", ".join(c[0] for c in CHURN + PHASE))
    tmpdir = tempfile.mkdtemp(prefix="hakmem-lean-")
    try:
        return run(args, bench_dir, churn, phase, tmpdir)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def run(args, bench_dir, churn, phase, tmpdir):
    lib_copy, lib_sha = (None, None)
    if Path(args.lib).is_file():
        lib_copy, lib_sha = snapshot_lib(args.lib, tmpdir)
    allocs = pick_allocs(args, lib_copy or Path(args.lib))
    if not allocs:
        sys.exit("lean.py: no allocator left to run")
    aids = [a[0] for a in allocs]
    env0 = compare.base_env()
    load0 = loadavg()
    busy = compare.load_note()
    if busy:
        note("note: " + busy)
    ntimed = len(churn) * args.runs * len(allocs)
    nphase = len(phase) * args.phase_runs * len(allocs)
    nstrace = 0 if args.no_strace else 2 * len(churn) * len(allocs)
    nbase = len(churn) * sum(1 for a in allocs if "HAKMEM_SS_OS_STATS" in a[3])
    note(f"{ntimed} churn runs, {nphase} phase runs, {nbase} baseline runs, {nstrace} strace runs"
         + (" (quick)" if args.quick else ""))
    floor_kb = process_floor(bench_dir, env0, args)

    started = time.monotonic()
    churn_runs, phase_runs = [], []
    strace = {}
    base_stats = {}
    interrupted = False
    done = 0
    total = ntimed + nphase + nbase + nstrace
    try:
        # Timed churn runs, then phase runs: interleaved (as compare.py).
        timed = [(churn, args.runs, churn_run, churn_runs,
                  lambda r: f"{r['ops_per_sec'] / 1e6:.2f} Mops/s {r['peak_rss_kb'] / 1024:.1f} MiB"),
                 (phase, args.phase_runs, phase_run, phase_runs,
                  lambda r: f"start {r['start_rss_kb'] / 1024:.1f} peak {r['peak_rss_kb'] / 1024:.1f} "
                  f"end {r['end_rss_kb'] / 1024:.1f} (LazyFree {r['end_lazyfree_kb'] / 1024:.1f}) MiB "
                  f"t90 {r['t90_ms']} ms")]
        for cfgs, nruns, run_fn, out, show in timed:
            for cfg, i, alloc in compare.interleaved(cfgs, nruns, allocs):
                rec = run_fn(bench_dir, cfg, alloc, env0, args)
                rec["run"] = i + 1
                out.append(rec)
                done += 1
                res = show(rec) if rec["ok"] else "FAILED: " + rec["error"]
                note(f"[{done}/{total}] {cfg[0]} / {alloc[1]} run {i + 1}: {res}")
        # Untimed runs. hakmem: one plain run with --ops 1, whose counters
        # (start-up, fill, teardown) are subtracted from the timed runs'.
        # Everyone, unless --no-strace: one run under strace -f -c and one
        # more with --ops 1, for the same subtraction.
        for cfg in churn:
            base_stats[cfg[0]] = {}
            for alloc in allocs:
                if "HAKMEM_SS_OS_STATS" not in alloc[3]:
                    continue
                cmd = [str(bench_dir / "bench_churn")] + cfg[1] + (cfg[2] if args.quick else []) + ["--ops", "1"]
                rec, cp = compare.run_cmd(cmd, (alloc[0], alloc[2], alloc[3]), env0, args.timeout,
                                          {"config": cfg[0]})
                done += 1
                stats = compare.parse_os_stats(cp.stderr) if cp is not None and "ok" not in rec else {}
                if stats:
                    base_stats[cfg[0]][alloc[0]] = stats
                note(f"[{done}/{total}] baseline --ops 1 {cfg[0]} / {alloc[1]}: "
                     + (f"{os_calls(stats)} OS calls" if stats else "FAILED: " + rec.get("error", "no counters")))
        if not args.no_strace:
            for cfg in churn:
                strace[cfg[0]] = {}
                for alloc in allocs:
                    full, ops, err = strace_run(bench_dir, cfg, alloc, env0, args, tmpdir)
                    base, _, err2 = strace_run(bench_dir, cfg, alloc, env0, args, tmpdir, "1")
                    done += 2
                    cell = {}
                    if err or err2:
                        cell["error"] = "FAIL: " + (err or err2)
                    else:
                        n_full, n_base = sum(full.values()), sum(base.values())
                        cell.update(calls=full, base_calls=base, ops=ops, per_op=n_full / ops,
                                    steady_per_op=max(0, n_full - n_base) / max(1, ops - 1))
                    strace[cfg[0]][alloc[0]] = cell
                    note(f"[{done}/{total}] strace {cfg[0]} / {alloc[1]}: "
                         + (cell.get("error") or f"{n_full} calls ({n_base} with --ops 1) for {ops} ops"))
    except KeyboardInterrupt:
        interrupted = True
        note("interrupted: tables of the runs done so far")
    elapsed = time.monotonic() - started
    load1 = loadavg()

    cnames = [c[0] for c in churn]
    pnames = [c[0] for c in phase]
    cm = summarize_churn(churn_runs, cnames, aids, base_stats)
    pm = summarize_phase(phase_runs, pnames, aids)
    go = go_rows(cm, strace, pm, floor_kb)

    lines = [
        "## LEAN validation" + (" (--quick: a smoke check, not a measurement)" if args.quick else ""),
        "",
        f"hakmem: `{args.lib}` (sha256 {lib_sha or '?'}); churn: {args.runs} interleaved run(s) "
        f"per cell, phase: {args.phase_runs}; total time {elapsed:.0f} s.",
        f"Load average (1/5/15 min) at start: {load0}; at end: {load1} ({os.cpu_count()} CPUs).",
        f"Process floor (VmHWM of bench_churn --ws 1 --ops 1 under glibc): {mib(floor_kb, 2)} MiB.",
        "Peers: glibc default; jemalloc `MALLOC_CONF=dirty_decay_ms:0,muzzy_decay_ms:0`; "
        "mimalloc `MIMALLOC_PURGE_DELAY=0` (+ `DECOMMIT_DELAY=0`, `SEGMENT_DECOMMIT_DELAY=0`, "
        "the 2.0.x names). hakmem LEAN: `HAKMEM_SS_MEM_LEAN=1`, default `HAKMEM_SS_LEAN_DELAY_MS`.",
    ]
    if busy:
        lines.append(f"Note: {busy}.")
    if churn:
        lines += ["", "### A/B: churn", "",
                  "peak RSS: median VmHWM of the runs; Mops/s: mean of the runs (free+malloc pairs); "
                  "CV: stdev/mean of the runs. OS calls/op, hakmem counters: mmap+munmap+madvise "
                  "from HAKMEM_SS_OS_STATS=1 / ops, whole process, median of the runs; steady Δ: the "
                  "same minus the calls of one run with --ops 1 (start-up, fill, teardown). strace: "
                  "mmap+munmap+madvise+mremap+brk of the whole process (ld.so included) in one "
                  "extra untimed run under strace -f -c / ops; steady Δ likewise. "
                  "lean_*: counters of the last run.", ""]
        lines += churn_table(cm, strace, cnames, allocs)
    if phase:
        lines += ["", "### Phase: grow to ~200 MB of 16..1024 B blocks, free in random order, churn lightly", "",
                  "Medians of the runs. start: RSS before the grow (program, bookkeeping and a 1000-slot "
                  "working set included); peak: VmHWM; end: last sample of the settle period; returned: "
                  "share of the freed memory (grown − start − kept) given back, by RSS−LazyFree; t90: ms "
                  "from the end of the frees until RSS−LazyFree has given back 90% of the freed memory "
                  "(never: not within the settle period).", ""]
        lines += phase_table(pm, pnames, allocs)
    lines += ["", "### GO (docs/ARCHITECTURE.md, numbers that define done)", ""]
    lines += md_table(["criterion", "measured", "target", "verdict"], [list(r) for r in go],
                      ["---", "---:", "---", "---"])
    lines += ["", "Soak (RSS drift 0%, throughput CV < 2%): `tools/bench/soak.py`."]
    fails = [f"- {r['config']} / {r['allocator']} run {r['run']}: {r['error']}"
             for r in churn_runs + phase_runs if not r["ok"]]
    if fails:
        lines += ["", "Failed runs:"] + fails
    compare.write_report(
        lines, args.json,
        {"meta": {"lib": args.lib, "lib_sha256_12": lib_sha, "runs": args.runs,
                  "phase_runs": args.phase_runs, "quick": args.quick,
                  "allocators": {a[0]: {"label": a[1], "lib": str(a[2]) if a[2] else None,
                                        "env": a[3]} for a in allocs},
                  "loadavg_start": load0, "loadavg_end": load1,
                  "elapsed_s": round(elapsed, 1), "interrupted": interrupted},
         "process_floor_kb": floor_kb, "baseline_os_stats": base_stats,
         "churn_runs": churn_runs, "phase_runs": phase_runs, "strace": strace,
         "churn": cm, "phase": pm,
         "go": [dict(zip(("criterion", "measured", "target", "verdict"), r)) for r in go]})
    if interrupted:
        return 130
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
