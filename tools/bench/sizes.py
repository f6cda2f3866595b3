#!/usr/bin/env python3
"""sizes.py -- speed across block sizes: the medium churn (32 KiB to 4 MiB,
every page touched) and the log-sized churn up to 64 KiB, under hakmem and
its peers, with the OS calls and page faults each one costs.

Owns: those configurations of bench_churn and the tables of ops/s, ratios
to mimalloc and glibc, peak RSS, minor faults per op and OS calls per op
(hakmem's own counters, and strace for everyone in one extra untimed run).
Running, interleaving, the environment and the report are compare.py's.
Standard library only.
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

ROOT = compare.ROOT

# (name, program, arguments, --quick arguments), as compare.CONFIGS. The op
# counts keep a glibc run near 1-2 s on the 2-vCPU machines; an allocator
# that maps every medium block takes 10x longer.
MEDIUM = ["--min", "32768", "--max", "4194304", "--log-sizes", "--ws", "32", "--touch-pages"]
LOG64 = ["--min", "16", "--max", "65536", "--log-sizes", "--ws", "4000"]
CONFIGS = [
    ("medium 32K-4M log WS=32", "bench_churn", MEDIUM + ["--ops", "4000"], ["--ops", "200"]),
    ("medium 33K-1M WS=32", "bench_churn",
     ["--min", "33792", "--max", "1048576", "--ws", "32", "--touch-pages", "--ops", "6000"],
     ["--ops", "200"]),
    ("log 16-64K WS=4000 1T", "bench_churn", LOG64 + ["--ops", "1M"], ["--ops", "20k"]),
    ("log 16-64K WS=4000 2T", "bench_churn", LOG64 + ["--threads", "2", "--ops", "1M"],
     ["--ops", "20k"]),
]
HAKMEM_STATS = {"HAKMEM_SS_OS_STATS": "1"}


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Medium (32 KiB-4 MiB) and log-sized (to 64 KiB) churn under hakmem and its "
        "peers: ops/s, ratios, peak RSS, minor faults and OS calls per op (markdown).")
    compare.add_run_options(p, 3, 600.0)
    p.add_argument("--bench-dir", default=str(ROOT / "build" / "tools" / "bench"),
                   help="where bench_churn is (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="few ops: a smoke check")
    p.add_argument("--no-strace", action="store_true", help="skip the strace runs")
    args = p.parse_args(argv)
    compare.check_run_options(p, args)
    return args


def strace_run(bench_dir, cfg, alloc, env0, args, tmpdir):
    """{syscall: calls per op} of one untimed run under strace, or an error."""
    name, prog, cargs, qargs = cfg
    cmd = [str(bench_dir / prog)] + cargs + (qargs if args.quick else [])
    out = Path(tmpdir) / "strace.txt"
    scmd, salloc = compare.straced(cmd, alloc, out)
    rec, cp = compare.run_cmd(scmd, salloc, env0, args.timeout * 2, {"config": name})
    if "ok" in rec:
        return rec["error"]
    lines = [l for l in cp.stdout.splitlines() if compare.RESULT_RE.match(l)]
    counts = compare.strace_counts(out)
    if not lines or counts is None:
        return "no result line or no strace summary"
    ops = int(compare.parse_kv(lines[-1])["ops"])
    return {k: v / ops for k, v in counts.items()}


def summarize(runs, cnames, anames):
    def fill(cell, ok):
        ops = [r["ops_per_sec"] for r in ok]
        m = statistics.median(ops)
        n = ok[0]["ops"]
        cell.update(ops_per_sec=m, spread=(max(ops) - min(ops)) / m if m > 0 else 0.0,
                    peak_rss_kb=statistics.median(r["peak_rss_kb"] for r in ok),
                    minflt_per_op=statistics.median(r["minflt"] for r in ok) / n)
        st = [r["os_stats"] for r in ok if "os_stats" in r]
        if st:
            cell["hk_os_per_op"] = statistics.median(
                sum(s.get(k, 0) for k in compare.OS_CALLS) for s in st) / n
    return compare.summarize_cells(runs, cnames, anames, fill)


def fmt_ops(ops):
    return f"{ops / 1e6:.2f}M" if ops >= 1e6 else f"{ops / 1e3:.1f}k"


def tables(med, strace, cnames, anames):
    get = lambda c, a, k: (med[c].get(a) or {}).get(k)  # noqa: E731
    head = ["config"] + [f"{a} ops/s" for a in anames]
    pairs = [(n, d) for n, d in (("hakmem", "mimalloc"), ("hakmem", "glibc"),
                                 ("hakmem-lean", "hakmem")) if n in anames and d in anames]
    head += [f"{n}/{d}" for n, d in pairs]
    peers = [a for a in anames if not a.startswith("hakmem")]
    if "hakmem" in anames and peers:
        head.append("hakmem/fastest peer")
    rows = []
    for c in cnames:
        row = [c]
        for a in anames:
            v = get(c, a, "ops_per_sec")
            cell = med[c].get(a)
            row.append(fmt_ops(v) + (" (!)" if cell and cell["failed"] else "") if v
                       else ("FAIL" if cell else "-"))
        for n, d in pairs:
            x, y = get(c, n, "ops_per_sec"), get(c, d, "ops_per_sec")
            row.append(f"{x / y:.2f}" if x and y else "-")
        if "hakmem" in anames and peers:
            best = max((get(c, a, "ops_per_sec") or 0) for a in peers)
            h = get(c, "hakmem", "ops_per_sec")
            row.append(f"{h / best:.2f}" if h and best else "-")
        rows.append(row)
    lines = compare.md_table(head, rows)
    lines += ["", "Memory and OS calls (medians; OS calls per op from one extra run under "
              "`strace -f -c`, and hakmem's own counters):", ""]
    head = ["config", "allocator", "peak RSS MiB", "minor faults/op", "mmap+munmap/op",
            "madvise/op", "brk/op", "hakmem counters OS calls/op"]
    rows = []
    for c in cnames:
        for a in anames:
            cell = med[c].get(a)
            if not cell:
                continue
            s = strace.get(c, {}).get(a)
            if isinstance(s, dict):
                sc = [f"{s.get('mmap', 0) + s.get('munmap', 0) + s.get('mremap', 0):.3g}",
                      f"{s.get('madvise', 0):.3g}", f"{s.get('brk', 0):.3g}"]
            else:
                sc = [s or "-", "-", "-"]
            hk = cell.get("hk_os_per_op")
            rows.append([c, a, f"{cell['peak_rss_kb'] / 1024:.1f}" if "peak_rss_kb" in cell else "FAIL",
                         f"{cell['minflt_per_op']:.2f}" if "minflt_per_op" in cell else "-"]
                        + sc + [f"{hk:.3g}" if hk is not None else "-"])
    lines += compare.md_table(head, rows, ["---", "---"] + ["---:"] * (len(head) - 2))
    return lines


def main(argv):
    args = parse_args(argv)
    bench_dir = Path(args.bench_dir)
    if not os.access(bench_dir / "bench_churn", os.X_OK):
        sys.exit(f"sizes.py: {bench_dir / 'bench_churn'} not found; build first: ninja -C build")
    if not args.no_strace and not shutil.which("strace"):
        compare.note("note: strace not found: no strace runs")
        args.no_strace = True
    configs = [c for c in CONFIGS if not args.only or re.search(args.only, c[0])]
    if not configs:
        sys.exit("sizes.py: --only matches no config: " + ", ".join(c[0] for c in CONFIGS))
    tmpdir = tempfile.mkdtemp(prefix="hakmem-sizes-")
    try:
        lib, sha = compare.snapshot_lib(args.lib, tmpdir)
        args.lib = str(lib)
        args.extra_env = args.extra_env + [f"{k}={v}" for k, v in HAKMEM_STATS.items()]
        allocs = compare.allocators(args)
        env0 = compare.base_env()
        anames, cnames = [a[0] for a in allocs], [c[0] for c in configs]
        load0 = compare.loadavg()
        compare.note(f"{len(configs) * args.runs * len(allocs)} timed runs; load average {load0}")
        strace = {}
        t0 = time.monotonic()
        runs, _ = compare.run_interleaved(
            configs, args.runs, allocs, lambda cfg, alloc: compare.run_one(bench_dir, cfg, alloc, env0, args),
            lambda r: f"{fmt_ops(r['ops_per_sec'])} ops/s {r['peak_rss_kb'] / 1024:.1f} MiB")
        if not args.no_strace:
            for cfg in configs:
                for alloc in allocs:
                    strace.setdefault(cfg[0], {})[alloc[0]] = strace_run(
                        bench_dir, cfg, alloc, env0, args, tmpdir)
                    compare.note(f"strace {cfg[0]} / {alloc[0]}: {strace[cfg[0]][alloc[0]]}")
        load1 = compare.loadavg()
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    med = summarize(runs, cnames, anames)
    lines = [f"Medians of {args.runs} interleaved runs of bench_churn"
             + (" (--quick: a smoke check)" if args.quick else "") + ". hakmem sha256 " + sha
             + f"; load average at start {load0}, at end {load1}; "
             f"{time.monotonic() - t0:.0f} s.", ""]
    lines += tables(med, strace, cnames, anames)
    notes = compare.footnotes(med, cnames, anames, args.quick)
    if notes:
        lines += [""] + notes
    compare.write_report(lines, args.json, {"meta": {"runs": args.runs, "lib_sha256_12": sha,
                                                     "loadavg_start": load0, "loadavg_end": load1},
                                            "configs": {c[0]: c[2] for c in configs},
                                            "runs": runs, "strace": strace, "medians": med})
    return 1 if any(not r["ok"] for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
