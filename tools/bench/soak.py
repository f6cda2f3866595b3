#!/usr/bin/env python3
"""soak.py -- long-running churn under hakmem: RSS drift, throughput CV and
OS calls per op over minutes or hours (docs/ARCHITECTURE.md: 30 min and more, drift
0%, CV < 2%).

Owns: the soak modes (hakmem LEAN, optionally LEAN+DONTNEED and FAST), the
reading of bench_soak's interval lines while it runs, and the soak table.
Environment scrubbing and the HAKMEM_SS_OS_STATS parser are compare.py's.
Standard library only.

    tools/bench/soak.py 30m                # LEAN (MADV_FREE), 30 minutes
    tools/bench/soak.py 30s                # smoke run
    tools/bench/soak.py 2h --fast          # LEAN, then FAST, 2 h each
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402
import lean  # noqa: E402

ROOT = compare.ROOT
MODES = {
    "lean": ("hakmem LEAN+FREE", {"HAKMEM_SS_MEM_LEAN": "1", "HAKMEM_SS_MEM_LEAN_DECOMMIT": "FREE"}),
    "lean-dontneed": ("hakmem LEAN+DONTNEED",
                      {"HAKMEM_SS_MEM_LEAN": "1", "HAKMEM_SS_MEM_LEAN_DECOMMIT": "DONTNEED"}),
    "fast": ("hakmem FAST", {}),
}
T_DRIFT_PCT = 0.5  # |drift| below this rounds to the 0% target
T_CV = 0.02
T_OS_PER_OP = 1e-6


def parse_duration(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"bad duration {text!r} (e.g. 30s, 2m, 1.5h, 90)")
    secs = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if secs < 2:
        raise argparse.ArgumentTypeError("duration must be at least 2 s")
    return int(round(secs))


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Soak: one long bench_soak process per mode under hakmem; "
        "prints peak RSS, RSS drift, throughput CV, OS calls per op and the lean counters.")
    p.add_argument("duration", type=parse_duration, help="per mode: 30s, 2m, 30m, 1h, or seconds")
    p.add_argument("--modes", default="lean",
                   help="comma-separated, run in this order: " + ", ".join(MODES) + " (default: lean)")
    p.add_argument("--fast", action="store_true", help="also run FAST (after the others)")
    p.add_argument("--report-every", type=int, metavar="S",
                   help="seconds per interval (default: duration/12, between 1 and 10)")
    p.add_argument("--ws", default="4000", help="slots per thread (default 4000)")
    p.add_argument("--threads", default="1", help="threads (default 1)")
    p.add_argument("--min", default="16", help="smallest block (default 16)")
    p.add_argument("--max", default="1024", help="largest block (default 1024)")
    p.add_argument("--lib", default=str(ROOT / "build" / "shim" / "libhakmem.so"),
                   help="hakmem library (default: %(default)s); a copy is preloaded")
    p.add_argument("--bench-dir", default=str(ROOT / "build" / "tools" / "bench"))
    p.add_argument("--json", metavar="FILE", help="intervals and summaries as JSON ('-': stdout)")
    args = p.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if args.fast and "fast" not in modes:
        modes.append("fast")
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        p.error(f"--modes: unknown {', '.join(bad) or '(none)'}; known: {', '.join(MODES)}")
    args.mode_list = modes
    if args.report_every is None:
        args.report_every = max(1, min(10, args.duration // 12))
    if args.report_every < 1 or args.report_every > args.duration:
        p.error("--report-every must be between 1 and the duration")
    return args


note = compare.note


def load1():
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def run_mode(mode, args, lib, env0, tmpdir):
    label, menv = MODES[mode]
    env = dict(env0)
    env.update(menv)
    env["HAKMEM_SS_OS_STATS"] = "1"
    env["LD_PRELOAD"] = str(lib)
    cmd = [str(Path(args.bench_dir) / "bench_soak"), "--duration", str(args.duration),
           "--report-every", str(args.report_every), "--ws", args.ws, "--threads", args.threads,
           "--min", args.min, "--max", args.max]
    errpath = Path(tmpdir) / f"{mode}.stderr"
    res = {"mode": mode, "label": label, "cmd": cmd, "env": {**menv, "HAKMEM_SS_OS_STATS": "1"},
           "intervals": [], "ok": False}
    note(f"{label}: {args.duration} s, interval {args.report_every} s: {' '.join(cmd)}")
    with open(errpath, "w+") as errf:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=errf, text=True)
        # A hung run is killed 5 min after it should have ended.
        watchdog = threading.Timer(args.duration + 300, proc.kill)
        watchdog.start()
        try:
            for line in proc.stdout:
                f = compare.parse_kv(line)
                if line.startswith("interval "):
                    iv = {k: float(v) for k, v in f.items()}
                    iv["load1"] = load1()
                    res["intervals"].append(iv)
                    note(f"  t={iv['t_s']:7.1f} s  {iv['ops_per_sec'] / 1e6:7.2f} Mops/s  "
                         f"RSS {iv['rss_kb'] / 1024:7.2f} MiB  LazyFree {iv['lazyfree_kb'] / 1024:6.2f} MiB"
                         + (f"  os_calls {int(iv['os_calls'])}" if "os_calls" in iv else "")
                         + f"  load {iv['load1']}")
                elif line.startswith("soak "):
                    res["summary"] = {k: float(v) for k, v in f.items()}
            rc = proc.wait()
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        errf.seek(0)
        err = errf.read()
    res["rc"] = rc
    res["os_stats"] = compare.parse_os_stats(err)
    if "cannot be preloaded" in err:
        res["error"] = err.strip().splitlines()[0]
    elif rc != 0:
        tail = [l for l in err.strip().splitlines() if not compare.OS_STATS_RE.match(l)][-1:] or [""]
        res["error"] = (f"signal {-rc}" if rc < 0 else f"exit {rc}") + (f": {tail[0]}" if tail[0] else "")
    elif "summary" not in res or not res["intervals"]:
        res["error"] = "no summary line"
    elif not res["os_stats"]:
        res["error"] = "no HAKMEM_SS_OS_STATS counters on stderr (hakmem not preloaded?)"
    else:
        res["ok"] = True
    return res


def analyse(res, duration):
    """Adds the figures of the soak table to res."""
    iv = res["intervals"]
    ref_s = 60.0 if duration >= 120 else duration / 2.0
    ref = next((i for i, x in enumerate(iv) if x["t_s"] >= ref_s - 1e-6), len(iv) - 1)
    a, z = iv[ref], iv[-1]
    rml = lambda x: x["rss_kb"] - max(0.0, x["lazyfree_kb"])  # noqa: E731
    after = iv[ref + 1:] or iv[-1:]
    ops_after = [x["ops_per_sec"] for x in after]
    ops_all = [x["ops_per_sec"] for x in iv[1:]] or [iv[0]["ops_per_sec"]]
    m_after, cv_after = lean.mean_cv(ops_after)
    m_all, cv_all = lean.mean_cv(ops_all)
    s = res["summary"]
    st = res["os_stats"]
    out = {
        "ref_s": a["t_s"], "end_s": z["t_s"],
        "peak_rss_kb": s["peak_rss_kb"],
        "rss_ref_kb": a["rss_kb"], "rss_end_kb": z["rss_kb"],
        "rss_min_after_kb": min(x["rss_kb"] for x in iv[ref:]),
        "rss_max_after_kb": max(x["rss_kb"] for x in iv[ref:]),
        "drift_pct": 100.0 * (z["rss_kb"] - a["rss_kb"]) / a["rss_kb"],
        "drift_rml_pct": 100.0 * (rml(z) - rml(a)) / rml(a) if rml(a) > 0 else None,
        "lazyfree_end_kb": z["lazyfree_kb"],
        "ops_mean_after": m_after, "cv_after": cv_after,
        "ops_mean_all": m_all, "cv_all": cv_all,
        "ops": s["ops"],
        "os_calls": lean.os_calls(st),
        "os_per_op": lean.os_calls(st) / s["ops"] if s["ops"] else None,
        "lean_decommit": st.get("lean_decommit"), "lean_retire": st.get("lean_retire"),
        "load_mean": statistics.fmean(x["load1"] for x in iv if x["load1"] is not None)
        if any(x["load1"] is not None for x in iv) else None,
        "load_max": max((x["load1"] for x in iv if x["load1"] is not None), default=None),
    }
    if "os_calls" in a and "os_calls" in z:
        n = sum(x["ops"] for x in iv[ref + 1:])
        out["os_steady_per_op"] = (z["os_calls"] - a["os_calls"]) / n if n else None
        out["lean_decommit_after"] = int(z["lean_decommit"] - a["lean_decommit"])
        out["lean_retire_after"] = int(z["lean_retire"] - a["lean_retire"])
    res["figures"] = out


def tables(results, args, lib_sha, load0, loadz, elapsed):
    ref_txt = "minute 1" if args.duration >= 120 else "half-time (run shorter than 2 min)"
    lines = [
        f"## Soak: {args.duration} s per mode, churn WS={args.ws} x {args.threads} thread(s), "
        f"sizes {args.min}..{args.max} B, interval {args.report_every} s",
        "",
        f"hakmem: `{args.lib}` (sha256 {lib_sha}); total time {elapsed:.0f} s.",
        f"Load average (1/5/15 min) at start: {load0}; at end: {loadz} ({os.cpu_count()} CPUs).",
        f"Drift: RSS at the end against RSS at {ref_txt} (the first interval at or after it); "
        "CV: stdev/mean of the interval throughputs after that point (all: every interval "
        "but the first); OS calls/op: mmap+munmap+madvise from HAKMEM_SS_OS_STATS at exit / ops "
        "(whole process), steady: from the counters read in-process, after the reference point.",
        "",
    ]
    head = ["mode", "peak RSS MiB", f"RSS at ref → end MiB", "RSS drift", "RSS−LazyFree drift",
            "LazyFree end MiB", "Mops/s mean", "CV after ref", "CV all", "OS calls/op (whole / steady)",
            "lean_decommit (after ref)", "lean_retire (after ref)", "load mean / max"]
    rows = []
    for r in results:
        if not r["ok"]:
            rows.append([r["label"], "FAIL: " + r.get("error", "?")] + ["-"] * (len(head) - 2))
            continue
        f = r["figures"]
        rows.append([
            r["label"], lean.mib(f["peak_rss_kb"], 2),
            f"{lean.mib(f['rss_ref_kb'], 2)} → {lean.mib(f['rss_end_kb'], 2)}",
            f"{f['drift_pct']:+.2f}%",
            "-" if f["drift_rml_pct"] is None else f"{f['drift_rml_pct']:+.2f}%",
            lean.mib(f["lazyfree_end_kb"], 2),
            f"{f['ops_mean_after'] / 1e6:.2f}", lean.pct(f["cv_after"], 2), lean.pct(f["cv_all"], 2),
            f"{lean.sci(f['os_per_op'])} / {lean.sci(f.get('os_steady_per_op'))}",
            f"{f['lean_decommit']} ({f.get('lean_decommit_after', '-')})",
            f"{f['lean_retire']} ({f.get('lean_retire_after', '-')})",
            "-" if f["load_mean"] is None else f"{f['load_mean']:.2f} / {f['load_max']:.2f}",
        ])
    lines += lean.md_table(head, rows, ["---"] + ["---:"] * (len(head) - 1))
    go = []
    verdict = lambda ok: "PASS" if ok else "MISS"  # noqa: E731
    for r in results:
        if not r["ok"]:
            continue
        f = r["figures"]
        go.append((f"{r['label']} RSS drift, {ref_txt} → end",
                   f"{f['drift_pct']:+.2f}% ({(f['rss_end_kb'] - f['rss_ref_kb']):+.0f} kB)",
                   "0% (drift within ±0.5%)", verdict(abs(f["drift_pct"]) < T_DRIFT_PCT)))
        if f["cv_after"] is not None:
            go.append((f"{r['label']} throughput CV across intervals", lean.pct(f["cv_after"], 2),
                       "< 2%", verdict(f["cv_after"] < T_CV)))
        steady = f.get("os_steady_per_op")
        val = steady if steady is not None else f["os_per_op"]
        go.append((f"{r['label']} OS calls per op" + (" (steady)" if steady is not None else " (whole run)"),
                   lean.sci(val), "< 1e-6", verdict(val is not None and val < T_OS_PER_OP)))
    lines += ["", "### GO (soak)", ""]
    lines += lean.md_table(["criterion", "measured", "target", "verdict"], [list(g) for g in go],
                           ["---", "---:", "---", "---"])
    if args.duration < 1800:
        lines += ["", f"Note: {args.duration} s is shorter than the 30 min docs/ARCHITECTURE.md asks for: "
                  "a smoke run, not the soak verdict."]
    return lines, go


def main(argv):
    args = parse_args(argv)
    prog = Path(args.bench_dir) / "bench_soak"
    if not os.access(prog, os.X_OK):
        sys.exit(f"soak.py: {prog} not found; build first: ninja -C build")
    if not Path(args.lib).is_file():
        sys.exit(f"soak.py: {args.lib} not found")
    env0 = compare.base_env()
    load0 = lean.loadavg()
    started = time.monotonic()
    results = []
    with tempfile.TemporaryDirectory(prefix="hakmem-soak-") as tmpdir:
        lib, lib_sha = lean.snapshot_lib(args.lib, tmpdir)
        try:
            for mode in args.mode_list:
                res = run_mode(mode, args, lib, env0, tmpdir)
                if res["ok"]:
                    analyse(res, args.duration)
                else:
                    note(f"{res['label']}: FAILED: {res.get('error')}")
                results.append(res)
        except KeyboardInterrupt:
            note("interrupted")
            return 130
    elapsed = time.monotonic() - started
    lines, go = tables(results, args, lib_sha, load0, lean.loadavg(), elapsed)
    compare.write_report(
        lines, args.json,
        {"meta": {"lib": args.lib, "lib_sha256_12": lib_sha, "duration_s": args.duration,
                  "report_every_s": args.report_every, "ws": args.ws, "threads": args.threads,
                  "min": args.min, "max": args.max, "loadavg_start": load0,
                  "elapsed_s": round(elapsed, 1)},
         "results": results,
         "go": [dict(zip(("criterion", "measured", "target", "verdict"), g)) for g in go]})
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
