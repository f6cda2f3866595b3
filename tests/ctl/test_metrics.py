#!/usr/bin/env python3
"""test_metrics.py: what hakmemd's metrics say, against a real hakmemd with
real and scripted shim clients:

- hakmem_build_info, hakmem_daemon_start_time_seconds, the host's memory
  stall (hakmem_host_psi_memory_stall_seconds_total against
  /proc/pressure/memory read around the scrape), the BPF program's losses
  (the same numbers `hakmemctl status` shows);
- per-cgroup sums of the shim counters that never go down: a scripted
  client (fakeshim.py, whose stats page the test writes) whose first page
  carries a parent's counts, whose counters go back to zero, that leaves
  and registers again under the same pid; a real shim (python3 under
  LD_PRELOAD in a memory cgroup of its own, with a limit) that decommits
  at MEDIUM and exits: its cgroup's sums stay, and so do its series after
  the cgroup is no longer tracked;
- hakmem_cgroup_clients by mode, hakmem_cgroup_limit_bytes,
  hakmem_cgroup_level_changes_total;
- hakmem_release_seconds: a scripted client that shows the level 300 ms
  after it was raised lands between 0.25 s and 2.5 s; a real shim's
  release lands in a finite bucket;
- refusals by reason: hakmemd.sock (garbage, another protocol version, no
  hello in time, too many clients for a uid, too many clients) and
  control.sock (a user over its share of connections, connections that
  never send their request);
- per-process series only when asked for;
- every name deploy's alert rules and dashboard use has a sample (those
  of a source that is off excepted, and the exporter's own).
Every scrape passes promcheck.py (and promtool where installed).
Needs root (exit 77 otherwise)."""
import errno
import os
import shutil
import socket
import subprocess
import sys
import time

import ctltest as t
import promcheck
from fakeshim import HELLO, FakeShim, magic4

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "deploy"))
import metricnames  # noqa: E402

a = t.args()
t.need_daemon(a)
why = t.can_switch_user()
if why:
    t.skip(why)



def scrape(ctl, *extra):
    """{(name, ((label, value), ...)): value} of `hakmemctl metrics`, and the text."""
    r = t.run(ctl + ["metrics"] + list(extra))
    if r.rc != 0:
        t.check(False, "hakmemctl metrics", repr(r))
        return {}, ""
    out = {}
    for line in r.out.splitlines():
        m = promcheck.SAMPLE.match(line)
        if m:
            labels = tuple(sorted((k, v[1:-1]) for k, v in promcheck.LABEL_PAIR.findall(m.group(2) or "")))
            out[(m.group(1), labels)] = float(m.group(3))
    return out, r.out


def val(s, name, **labels):
    return s.get((name, tuple(sorted(labels.items()))))


def lint(text, what):
    p = promcheck.problems(text)
    t.check(not p, what + ": promcheck.py", "\n".join(p[:20]))
    promtool = shutil.which("promtool")
    if promtool:
        pp = subprocess.run([promtool, "check", "metrics"], input=text, text=True, capture_output=True)
        t.check(pp.returncode == 0, what + ": promtool check metrics", pp.stdout + pp.stderr)


def poll(ctl, pred, timeout=10):
    """Scrapes until pred(samples) holds; the last samples."""
    deadline = time.time() + timeout
    while True:
        s, _ = scrape(ctl)
        if pred(s) or time.time() > deadline:
            return s
        time.sleep(0.1)


def psi_total_s(kind):
    with open("/proc/pressure/memory") as f:
        for line in f:
            if line.startswith(kind + " "):
                return int(line.split("total=")[1]) / 1e6
    return None


def as_nobody(code, run_dir):
    """python3 -c code as nobody (argv[1]: the runtime dir)."""
    return subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                             sys.executable, "-c", code, run_dir],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)


own_path, _ = t.memcg_of(os.getpid())
cg_path, child_dir, _ = t.child_memcg("hk-fleet2-metrics")
try:
    LIMIT = 1 << 30
    limit_file = "memory.limit_in_bytes" if os.path.exists(os.path.join(child_dir, "memory.limit_in_bytes")) \
        else "memory.max"
    with open(os.path.join(child_dir, limit_file), "w") as f:
        f.write(str(LIMIT))

    # a real shim: 60 MB in small blocks, all freed, then idle
    SHIM_PROG = ("import time\n"
                 "x = [bytes(100 + i % 900) for i in range(110000)]\n"
                 "del x\nprint('ready', flush=True)\ntime.sleep(120)\n")

    with t.TempDir() as tmp:
        run_dir = os.path.join(tmp, "run")
        d = t.Daemon(a.hakmemd, run_dir)
        ctl = [a.hakmemctl, "--runtime-dir", run_dir]
        fake = FakeShim(run_dir)
        real = None
        try:
            # --- the daemon's own ---------------------------------------------------
            some0 = psi_total_s("some")
            s, text = scrape(ctl)
            some1 = psi_total_s("some")
            lint(text, "metrics")
            st = t.run(ctl + ["--json", "status"]).json()
            t.check(val(s, "hakmem_build_info", version=st["version"], proto="2") == 1,
                    "hakmem_build_info{version=%s,proto=2} 1" % st["version"])
            start = val(s, "hakmem_daemon_start_time_seconds")
            t.check(start is not None and abs(start - (time.time() - st["uptime_s"])) < 3,
                    "hakmem_daemon_start_time_seconds: now - uptime (%r)" % start)
            t.check("hakmem_daemon_uptime_seconds" not in text, "no uptime gauge any more")
            got = val(s, "hakmem_host_psi_memory_stall_seconds_total", kind="some")
            t.check(got is not None and some0 - 1e-6 <= got <= some1 + 1e-6,
                    "host memory stall: /proc/pressure/memory's total= in seconds (%.6f <= %r <= %.6f)"
                    % (some0, got, some1))
            if st["sources"]["bpf"]["on"]:
                t.check(val(s, "hakmem_bpf_ringbuf_dropped_total") is not None
                        and val(s, "hakmem_bpf_ringbuf_dropped_total") >= st["bpf_ringbuf_dropped"]
                        and val(s, "hakmem_bpf_cgroup_table_full_total") >= st["bpf_cgroup_table_full"],
                        "the BPF program's losses, as status shows them (%r, %r)"
                        % (st["bpf_ringbuf_dropped"], st["bpf_cgroup_table_full"]))
            else:
                print("(the bpf source is off here: %s)" % st["sources"]["bpf"]["reason"])
                t.check(st["bpf_ringbuf_dropped"] is None, "bpf off: status has no losses to show")

            # --- a scripted client: sums that never go down ---------------------------
            t.check(fake.connect() == 0, "the scripted client registers")

            def own(s, name, **kw):
                return val(s, name, cgroup=own_path, **kw)
            DEC = "hakmem_cgroup_bytes_decommitted_total"
            # its first page carries what its parent did before a fork: not its own
            fake.write(bytes_decommitted=1 << 30, lean_decommit=5, mode_switches=2)
            s = poll(ctl, lambda s: own(s, DEC) is not None)
            t.check(own(s, DEC) == 0 and own(s, "hakmem_cgroup_lean_decommit_total") == 0,
                    "a client's first page is a baseline: %r" % own(s, DEC))
            fake.write(bytes_decommitted=(1 << 30) + 4096, lean_decommit=6)
            s, _ = scrape(ctl)
            t.check(own(s, DEC) == 4096 and own(s, "hakmem_cgroup_lean_decommit_total") == 1,
                    "what grew is added: %r" % own(s, DEC))
            fake.write(bytes_decommitted=100, lean_decommit=0, mode_switches=0)
            s, _ = scrape(ctl)
            t.check(own(s, DEC) == 4096 and own(s, "hakmem_cgroup_lean_decommit_total") == 1,
                    "counters that go down are a new baseline, not a negative step: %r" % own(s, DEC))
            fake.write(bytes_decommitted=150)
            s, _ = scrape(ctl)
            t.check(own(s, DEC) == 4146, "and grow from there: %r" % own(s, DEC))
            t.check(own(s, "hakmem_cgroup_clients", mode="fast") == 1
                    and own(s, "hakmem_cgroup_clients", mode="lean") == 0, "hakmem_cgroup_clients by mode")
            # it leaves: its cgroup is no longer tracked, its record lingers
            fake.close()
            s = poll(ctl, lambda s: own(s, "hakmem_cgroup_level") is None)
            t.check(own(s, "hakmem_cgroup_level") is None and own(s, DEC) == 4146,
                    "the client gone: its cgroup untracked, its sums still served (%r)" % own(s, DEC))
            # the same pid registers again (a restarted process): a new client
            t.check(fake.connect() == 0, "the same pid registers again")
            fake.write(bytes_decommitted=10)
            scrape(ctl)                     # its first sight: the baseline
            fake.write(bytes_decommitted=30)
            s = poll(ctl, lambda s: own(s, DEC) == 4166, timeout=3)
            t.check(own(s, DEC) == 4166, "the new client's growth adds to the same series: %r" % own(s, DEC))

            # --- release time, from the scripted client's page ---------------------------
            changes0 = own(s, "hakmem_cgroup_level_changes_total")
            r = t.run(ctl + ["lean", own_path, "on", "--level", "medium"])
            t.expect(r, 0, "lean OWN-CGROUP on --level medium")
            time.sleep(0.3)
            fake.write(mode=1, level=2)     # released, by its page's word, now
            s = poll(ctl, lambda s: val(s, "hakmem_release_seconds_count", level="medium") == 1)
            b = {le: val(s, "hakmem_release_seconds_bucket", level="medium", le=le)
                 for le in ("0.25", "2.5", "+Inf")}
            total = val(s, "hakmem_release_seconds_sum", level="medium")
            t.check(b == {"0.25": 0, "2.5": 1, "+Inf": 1} and 0.3 <= total <= 2.5,
                    "a release shown 300 ms after the raise: one observation in (0.25 s, 2.5 s], "
                    "%r s" % total, str(b))
            t.check(own(s, "hakmem_cgroup_level_changes_total") == changes0 + 1
                    and own(s, "hakmem_cgroup_clients", mode="lean") == 1,
                    "level changes %r -> %r, the client counted lean"
                    % (changes0, own(s, "hakmem_cgroup_level_changes_total")))
            t.expect(t.run(ctl + ["lean", own_path, "auto"]), 0, "lean OWN-CGROUP auto")
            s, _ = scrape(ctl)
            t.check(own(s, "hakmem_cgroup_level_changes_total") == changes0 + 2,
                    "back down: one more level change")

            # --- a real shim in a cgroup of its own -------------------------------------
            real = subprocess.Popen(
                ["sh", "-c", 'echo $$ > "$1/cgroup.procs" && exec env LD_PRELOAD="$2" '
                 'HAKMEM_RUNTIME_DIR="$3" PYTHONMALLOC=malloc python3 -c "$4"', "sh", child_dir,
                 a.shim, run_dir, SHIM_PROG], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
            ready = real.stdout.readline().strip()
            r, v = t.poll_json(ctl + ["--json", "clients"],
                               lambda v: any(c["pid"] == real.pid for c in v["clients"]))
            t.check(ready == "ready" and v and any(c["pid"] == real.pid for c in v["clients"]),
                    "a real shim (python3, 60 MB freed) registered in %s" % cg_path, repr(r))

            def child(s, name, **kw):
                return val(s, name, cgroup=cg_path, **kw)
            # its page is rewritten every second, and at every level change
            s = poll(ctl, lambda s: (child(s, "hakmem_cgroup_bytes_committed") or 0) >= 16 << 20)
            committed = child(s, "hakmem_cgroup_bytes_committed") or 0
            t.check(child(s, "hakmem_cgroup_limit_bytes") == LIMIT,
                    "hakmem_cgroup_limit_bytes: the limit set (%r)"
                    % child(s, "hakmem_cgroup_limit_bytes"))
            t.check(committed >= 16 << 20 and (child(s, "hakmem_cgroup_bytes_in_use") or 0) > 0,
                    "bytes committed (%.1f MB) and in use, summed over the cgroup's clients"
                    % (committed / 2 ** 20))
            r = t.run(ctl + ["lean", cg_path, "on", "--level", "medium"])
            t.expect(r, 0, "lean CGROUP on --level medium")
            s = poll(ctl, lambda s: val(s, "hakmem_release_seconds_count", level="medium") == 2
                     and (child(s, DEC) or 0) > 0
                     and child(s, "hakmem_cgroup_clients", mode="lean") == 1)
            fin = val(s, "hakmem_release_seconds_bucket", level="medium", le="10")
            t.check(val(s, "hakmem_release_seconds_count", level="medium") == 2 and fin == 2,
                    "the real shim's release observed, within 10 s (sum now %r s)"
                    % val(s, "hakmem_release_seconds_sum", level="medium"))
            # at MEDIUM the shim decommits free pages and unmaps empty
            # superslabs (retires them): both counted, and what stays
            # committed falls
            dec = child(s, DEC)
            after = child(s, "hakmem_cgroup_bytes_committed") or 0
            t.check(dec and (child(s, "hakmem_cgroup_lean_decommit_total") or 0) > 0
                    and (child(s, "hakmem_cgroup_lean_retire_total") or 0) > 0
                    and (child(s, "hakmem_cgroup_mode_switches_total") or 0) >= 1
                    and after < committed / 2,
                    "the cgroup's sums at MEDIUM: %.1f MB decommitted, %d decommits, %d "
                    "superslabs retired; committed %.1f MB -> %.1f MB"
                    % ((dec or 0) / 2 ** 20, child(s, "hakmem_cgroup_lean_decommit_total") or 0,
                       child(s, "hakmem_cgroup_lean_retire_total") or 0, committed / 2 ** 20,
                       after / 2 ** 20))
            # every name deploy/'s alert rules and dashboard query has a
            # sample now (a cgroup with a limit, a release observed), but
            # the exporter's own and those of a source that is off here
            needs = {"hakmem_bpf_ringbuf_dropped_total": "bpf",
                     "hakmem_bpf_cgroup_table_full_total": "bpf",
                     "hakmem_cgroup_memory_events_total": "events"}
            sampled = {k[0] for k in s}
            want = {n for n in metricnames.in_deploy(ROOT) - metricnames.exporter(ROOT)
                    if val(s, "hakmem_source_up", source=needs.get(n, "")) != 0}
            missing = sorted(n for n in want
                             if not any(x == n or x.startswith(n + "_") for x in sampled))
            off = sorted(set(needs) - want)
            t.check(not missing, "each of the %d names deploy/'s rules and dashboard use has a "
                    "sample%s" % (len(want), " (source off here: %s)" % ", ".join(off) if off else ""),
                    "no sample: %s" % missing)
            # the override goes, then the shim: nothing holds the cgroup
            t.expect(t.run(ctl + ["lean", cg_path, "auto"]), 0, "lean CGROUP auto")
            real.terminate()
            real.wait(10)
            real = None
            s = poll(ctl, lambda s: child(s, "hakmem_cgroup_level") is None)
            t.check(child(s, "hakmem_cgroup_level") is None and child(s, DEC) is not None
                    and child(s, DEC) >= dec,
                    "the shim gone: the cgroup untracked, its sums kept (%r >= %r)"
                    % (child(s, DEC), dec))

            # --- per-process series on request only ------------------------------------
            s, text = scrape(ctl)
            t.check('pid="' not in text, "no per-process series by default")
            s, text = scrape(ctl, "--per-process")
            t.check(val(s, "hakmem_client_mode", pid=str(os.getpid()), uid="0", comm="fakeshim",
                        cgroup=own_path) == 1, "--per-process: the scripted client's series")
            lint(text, "metrics --per-process")
        finally:
            if real:
                real.kill()
                real.wait()
            fake.close()
            d.stop()

        # --- refusals, by reason -------------------------------------------------------
        run2 = os.path.join(tmp, "run2")
        os.mkdir(os.path.join(tmp, "d2"))
        d = t.Daemon(a.hakmemd, os.path.join(tmp, "d2", "run"), ["--set", "max_clients_per_uid=1"])
        run2 = d.run_dir
        ctl = [a.hakmemctl, "--runtime-dir", run2]
        fakes, procs = [], []
        try:
            t0 = time.time()
            # nobody connects and says nothing (dropped after 5 s) ...
            procs.append(as_nobody("import socket, sys, time\n"
                                   "s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
                                   "s.connect(sys.argv[1] + '/hakmemd.sock')\nprint('in', flush=True)\n"
                                   "time.sleep(8)\n", run2))
            # ... and holds five control connections, one more than a uid may
            procs.append(as_nobody("import socket, sys, time\nl = []\n"
                                   "for i in range(5):\n"
                                   "    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
                                   "    s.connect(sys.argv[1] + '/control.sock')\n    l.append(s)\n"
                                   "print('in', flush=True)\ntime.sleep(3)\n", run2))
            for p in procs:
                p.stdout.readline()
            for data in (b"\x00" * 64, HELLO.pack(magic4("HKHI"), 99, HELLO.size, 0, 1, 0, 0, 0,
                                                  b"x", 0, 0)):
                c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                c.connect(os.path.join(run2, "hakmemd.sock"))
                c.send(data)
                c.settimeout(5)
                try:
                    c.recv(4096)
                except OSError:
                    pass
                c.close()
            fakes = [FakeShim(run2), FakeShim(run2)]
            st1, st2 = fakes[0].connect(), fakes[1].connect()
            t.check(st1 == 0 and st2 == -errno.EUSERS, "max_clients_per_uid=1: the second of root's refused "
                    "(%d, %d)" % (st1, st2))
            # the silent ones are dropped 5 s after they came (at a tick of
            # hakmemd's: later on a slow guest): wait for that, then check all
            time.sleep(max(0, t0 + 6.5 - time.time()))
            poll(ctl, lambda s: val(s, "hakmem_rendezvous_rejected_total", reason="timeout")
                 and val(s, "hakmem_control_refused_total", socket="control", reason="timeout") == 4,
                 timeout=20)
            s, text = scrape(ctl)
            lint(text, "metrics after refusals")
            rej = {r: val(s, "hakmem_rendezvous_rejected_total", reason=r)
                   for r in ("malformed", "version", "uid_limit", "timeout", "total_limit")}
            t.check(rej == {"malformed": 1, "version": 1, "uid_limit": 1, "timeout": 1, "total_limit": 0},
                    "hakmem_rendezvous_rejected_total by reason", str(rej))
            ref = {r: val(s, "hakmem_control_refused_total", socket="control", reason=r)
                   for r in ("uid_limit", "timeout")}
            t.check(ref["uid_limit"] == 1 and ref["timeout"] == 4,
                    "hakmem_control_refused_total{socket=control}: 1 over the uid's share, "
                    "4 that sent no request", str(ref))
        finally:
            for f in fakes:
                f.close()
            for p in procs:
                p.kill()
                p.wait()
            d.stop()

        os.mkdir(os.path.join(tmp, "d3"))
        d = t.Daemon(a.hakmemd, os.path.join(tmp, "d3", "run"), ["--set", "max_clients=1"])
        fakes = [FakeShim(d.run_dir), FakeShim(d.run_dir)]
        try:
            st1, st2 = fakes[0].connect(), fakes[1].connect()
            s, _ = scrape([a.hakmemctl, "--runtime-dir", d.run_dir])
            t.check(st1 == 0 and st2 == -errno.ENOSPC
                    and val(s, "hakmem_rendezvous_rejected_total", reason="total_limit") == 1,
                    "max_clients=1: the second client refused, counted as total_limit")
        finally:
            for f in fakes:
                f.close()
            d.stop()
finally:
    t.remove_memcg(child_dir)
t.done()
