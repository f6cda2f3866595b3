#!/usr/bin/env python3
"""test_daemon.py: hakmemctl against a real hakmemd (build/daemon/hakmemd
--runtime-dir TMP/run, default sources) with a real shim client (sleep
under LD_PRELOAD): every command, --json parsed back and checked against
what the test knows (pids, the client's memory cgroup key = the inode of
its directory), lean on/off/auto on a pid, a cgroup and all, visible in
status and in the client's mode; the permission rule (nobody may read but
not force a mode: exit 4); metrics checked by promcheck.py and by promtool
when installed; watch; and exit 3 once hakmemd has stopped.
Needs root (exit 77 otherwise)."""
import json
import os
import shutil
import subprocess

import ctltest as t
import promcheck

a = t.args()
t.need_daemon(a)
REASONS = {"none", "bpf_reclaim", "bpf_oom", "psi", "usage", "calm", "operator", "startup",
           "shutdown", "memory_events"}
# HAKMEM_COUNTERS (hakmem.h) in order, without mode and level (shown on their own)
COUNTERS = ["mmap_calls", "munmap_calls", "madvise_calls", "superslabs_live", "superslabs_cached",
            "large_live", "large_cached", "bytes_in_use", "bytes_committed", "bytes_decommitted",
            "lean_decommit", "lean_retire", "mode_switches", "guard_allocs", "lean_decommit_eager",
            "tcache_stolen", "bytes_lazy", "depot_spills"]

with t.TempDir() as tmp:
    run_dir = os.path.join(tmp, "run")
    d = t.Daemon(a.hakmemd, run_dir)
    cl = t.Clients()
    ctl = [a.hakmemctl, "--runtime-dir", run_dir]
    try:
        client = cl.spawn(a.shim, run_dir)
        cg_path, cg_dir = t.memcg_of(client.pid)
        cg_key = os.stat(cg_dir).st_ino

        def me(v):
            return [c for c in v["clients"] if c["pid"] == client.pid]

        r, v = t.poll_json(ctl + ["--json", "clients"], lambda v: me(v))
        t.check(v and me(v), "the shim client registered", repr(r))

        # --- status ----------------------------------------------------------
        r = t.run(ctl + ["status"])
        t.expect(r, 0, "status", out_has="hakmemd ", err_empty=True)
        t.check(cg_path in r.out, "status table names the client's cgroup", r.out)
        t.check(("bpf lost: 0 notifications (ring buffer full), 0 events (cgroup table full)"
                 in r.out) == ("sources: bpf on" in r.out),
                "status table: what the BPF program lost, with the bpf source", r.out)
        r = t.run(ctl + ["--json", "status"])
        t.expect(r, 0, "status --json", err_empty=True)
        v = t.parse_json(r, "status --json")
        if v:
            t.check(isinstance(v["version"], str) and v["version"], "status: version", str(v))
            t.check(v["pid"] == d.p.pid, "status: pid is hakmemd's", str(v))
            t.check(isinstance(v["uptime_s"], int) and 0 <= v["uptime_s"] < 600, "status: uptime_s")
            t.check(v["clients"] == 1, "status: clients 1", str(v))
            t.check(set(v["sources"]) == {"bpf", "psi", "vmpressure", "usage", "events"}
                    and all(isinstance(s["on"], bool) for s in v["sources"].values())
                    and all(s["on"] or s["reason"] for s in v["sources"].values()),
                    "status: sources bpf, psi, vmpressure, usage, events, each on or off "
                    "with a reason", str(v["sources"]))
            # per cgroup, PSI on v2 and memory.pressure_level on v1: one of them
            v1 = os.path.exists(os.path.join(cg_dir, "memory.pressure_level"))
            src, sig = v["sources"], v["signals"]
            t.check(src["vmpressure"]["on"] == v1 and src["psi"]["on"] == (not v1)
                    and sig["vmpressure"] == ("memory.pressure_level" if v1 else
                                              "none (no memory.pressure_level: the memory "
                                              "controller is on cgroup v2)")
                    and (not v1 or sig["psi"] == "none (v1: no per-cgroup PSI)"),
                    "status: psi on cgroup v2, vmpressure on v1 (v1: %s)" % v1,
                    str(src) + str(sig))
            t.check(set(v["signals"]) == {"reclaim", "scanned", "oom", "psi", "vmpressure",
                                          "usage", "memory_events"}
                    and all(isinstance(x, str) and x for x in v["signals"].values()),
                    "status: where each signal comes from", str(v["signals"]))
            t.check(all(isinstance(v[n], (int, float)) for n in
                        ["psi_some_avg10", "psi_some_avg60", "psi_full_avg10", "psi_full_avg60"]),
                    "status: host PSI numbers", str(v))
            bpf_on = v["sources"]["bpf"]["on"]
            t.check(all(isinstance(v[n], int) if bpf_on else v[n] is None
                        for n in ["bpf_ringbuf_dropped", "bpf_cgroup_table_full"]),
                    "status: what the BPF program lost (numbers with the bpf source, else null)",
                    str(v))
            mine = [c for c in v["cgroups"] if c["key"] == cg_key]
            t.check(len(mine) == 1, "status: the client's cgroup, keyed by its inode %d" % cg_key,
                    str(v["cgroups"]))
            if mine:
                c = mine[0]
                t.check(c["kind"] == "cgroup" and c["path"] == cg_path and c["nclients"] == 1
                        and c["level"] in ("none", "low", "medium", "critical")
                        and c["reason"] in REASONS and c["override"] is False
                        and isinstance(c["reclaim_per_s"], (int, float))
                        and isinstance(c["usage_bytes"], int) and isinstance(c["updated_ns"], int),
                        "status: the cgroup's fields", str(c))
            t.check(v["other"] == {}, "status: no line hakmemctl does not know", str(v["other"]))

        # --- clients ---------------------------------------------------------
        r = t.run(ctl + ["clients"])
        t.expect(r, 0, "clients", err_empty=True)
        row = [l for l in r.out.splitlines() if l.split() and l.split()[0] == str(client.pid)]
        t.check(row and "sleep" in row[0] and cg_path[-20:] in row[0], "clients table row", r.out)
        r = t.run(ctl + ["--json", "clients"])
        v = t.parse_json(r, "clients --json")
        if v:
            c = me(v)[0] if me(v) else {}
            t.check(len(v["clients"]) == 1 and c.get("comm") == "sleep" and c.get("uid") == 0
                    and c.get("cgroup_key") == cg_key and c.get("cgroup_path") == cg_path
                    and c.get("override") == "auto" and c.get("stats") is True
                    and c.get("mode") in ("fast", "lean") and c.get("follows_daemon") is True,
                    "clients --json: the client's fields", str(v))
            t.check(isinstance(c.get("rss_bytes"), int) and c["rss_bytes"] > 0,
                    "clients --json: RSS from /proc (same pid namespace)", str(c))
            t.check(isinstance(c.get("lazyfree_bytes"), int)
                    and 0 <= c["lazyfree_bytes"] <= c["rss_bytes"],
                    "clients --json: LazyFree from /proc, within the RSS", str(c))
            t.check(list(c.get("counters", {})) == COUNTERS, "clients --json: every counter",
                    str(c.get("counters")))

        def client_is(mode, override):
            return lambda v: me(v) and me(v)[0]["mode"] == mode and me(v)[0]["override"] == override

        def cgroup_rec(v, key):
            m = [c for c in v["cgroups"] if c["key"] == key]
            return m[0] if m else None

        # --- lean on a pid ---------------------------------------------------
        r = t.run(ctl + ["lean", str(client.pid), "on"])
        t.expect(r, 0, "lean PID on", out_has="pid %d: lean on" % client.pid, err_empty=True)
        r, v = t.poll_json(ctl + ["--json", "clients"], client_is("lean", "on"))
        t.check(v and client_is("lean", "on")(v), "lean PID on: the client goes lean", repr(r))
        r = t.run(ctl + ["--json", "status"])
        v = r.json()
        pk = (1 << 63) | client.pid
        rec = cgroup_rec(v, pk)
        t.check(rec and rec["kind"] == "pid" and rec["pid"] == client.pid and rec["override"]
                and rec["level"] == "medium" and rec["reason"] == "operator",
                "lean PID on: status shows the pid override at medium (the default)",
                str(v["cgroups"]))
        r = t.run(ctl + ["lean", str(client.pid), "auto"])
        t.expect(r, 0, "lean PID auto")

        def cgroup_mode():
            """The mode the client's cgroup calls for now: FAST unless its
            own pressure (e.g. a VM's root cgroup under the PSI that tests
            before this one left) says otherwise."""
            rec = cgroup_rec(t.run(ctl + ["--json", "status"]).json(), cg_key)
            return "fast" if not rec or rec["level"] == "none" else "lean"
        r, v = t.poll_json(ctl + ["--json", "clients"],
                           lambda v: client_is(cgroup_mode(), "auto")(v))
        t.check(v and client_is(cgroup_mode(), "auto")(v),
                "lean PID auto: the client follows its cgroup again (%s)" % cgroup_mode(), repr(r))
        v = t.run(ctl + ["--json", "status"]).json()
        t.check(cgroup_rec(v, pk) is None, "lean PID auto: the override is gone", str(v["cgroups"]))

        # --- lean on the cgroup, named as /proc/PID/cgroup shows it ------------
        with open("/proc/%d/cgroup" % client.pid) as f:
            mem_line = [l.strip() for l in f if ":memory:" in l or l.startswith("0::")][0]
        r = t.run(ctl + ["lean", mem_line, "on", "--level", "medium"])
        t.expect(r, 0, "lean CGROUP on --level medium (%s)" % mem_line,
                 out_has="(key %d): lean on (level medium)" % cg_key)
        v = t.run(ctl + ["--json", "status"]).json()
        rec = cgroup_rec(v, cg_key)
        t.check(rec and rec["override"] and rec["level"] == "medium" and rec["reason"] == "operator",
                "lean CGROUP on: status shows medium, forced, by the operator", str(rec))
        r, v = t.poll_json(ctl + ["--json", "clients"],
                           lambda v: me(v) and me(v)[0]["mode"] == "lean"
                           and me(v)[0]["last_level"] == "medium")
        t.check(v and me(v) and me(v)[0]["last_level"] == "medium",
                "lean CGROUP on: the client applied medium", repr(r))
        r = t.run(ctl + ["lean", cg_dir, "off"])
        t.expect(r, 0, "lean CGROUP off (as a directory)")
        v = t.run(ctl + ["--json", "status"]).json()
        rec = cgroup_rec(v, cg_key)
        t.check(rec and rec["override"] and rec["level"] == "none",
                "lean CGROUP off: forced to none", str(rec))
        r, v = t.poll_json(ctl + ["--json", "clients"], client_is("fast", "auto"))
        t.check(v and client_is("fast", "auto")(v), "lean CGROUP off: the client is fast", repr(r))
        r = t.run(ctl + ["lean", cg_path, "auto"])
        t.expect(r, 0, "lean CGROUP auto (as a hierarchy path)")
        v = t.run(ctl + ["--json", "status"]).json()
        rec = cgroup_rec(v, cg_key)
        t.check(rec and not rec["override"], "lean CGROUP auto: no override", str(rec))

        # --- lean all --------------------------------------------------------
        r = t.run(ctl + ["lean", "all", "on", "--level", "critical"])
        t.expect(r, 0, "lean all on --level critical")
        v = t.run(ctl + ["--json", "status"]).json()
        rec = cgroup_rec(v, 0)
        t.check(rec and rec["kind"] == "all" and rec["override"] and rec["level"] == "critical",
                "lean all on: status shows (all) critical", str(v["cgroups"]))
        r, v = t.poll_json(ctl + ["--json", "clients"],
                           lambda v: me(v) and me(v)[0]["last_level"] == "critical")
        t.check(v and me(v) and me(v)[0]["mode"] == "lean", "lean all on: the client is lean", repr(r))
        r = t.run(ctl + ["lean", "all", "auto"])
        t.expect(r, 0, "lean all auto")
        v = t.run(ctl + ["--json", "status"]).json()
        t.check(cgroup_rec(v, 0) is None, "lean all auto: no (all) override", str(v["cgroups"]))

        # --- lean errors -----------------------------------------------------
        r = t.run(ctl + ["lean", str(os.getpid()), "on"])
        t.expect(r, 1, "lean on a pid that is no client: exit 1",
                 err_has="hakmemd knows no pid %d" % os.getpid())
        if cg_path != "/":
            r = t.run(ctl + ["lean", "/", "on"])
            t.expect(r, 1, "lean on an untracked cgroup (the root): exit 1",
                     err_has="hakmemd knows no cgroup")
        else:   # the client is in the root (a VM's init runs there): a new child is untracked
            child = os.path.join(cg_dir, "hakmem-ctl-test-%d" % os.getpid())
            os.mkdir(child)
            try:
                r = t.run(ctl + ["lean", child, "on"])
            finally:
                os.rmdir(child)
            t.expect(r, 1, "lean on an untracked cgroup (a new child): exit 1",
                     err_has="hakmemd knows no cgroup")

        # --- permissions -----------------------------------------------------
        why = t.can_switch_user()
        if why:
            print("(skipped the unprivileged checks: %s)" % why)
        else:
            nctl = [t.copy_for_nobody(a.hakmemctl, tmp), "--runtime-dir", run_dir]
            for target in ["all", str(client.pid), cg_path]:
                r = t.run(nctl + ["lean", target, "on"], user="nobody")
                t.check(r.rc == 4 and "permission denied" in r.err and r.out == "",
                        "nobody: lean %s on: exit 4, permission denied" % target, repr(r))
            v = t.run(ctl + ["--json", "clients"]).json()
            t.check(me(v) and me(v)[0]["override"] == "auto", "nobody's lean changed nothing")
            r = t.run(nctl + ["--json", "status"], user="nobody")
            t.expect(r, 0, "nobody: status works")
            r = t.run(nctl + ["--json", "clients"], user="nobody")
            t.expect(r, 0, "nobody: clients works")
            r = t.run(nctl + ["metrics"], user="nobody")
            t.expect(r, 0, "nobody: metrics works")

        # --- metrics ---------------------------------------------------------
        r = t.run(ctl + ["metrics"])
        t.expect(r, 0, "metrics", err_empty=True)
        p = promcheck.problems(r.out)
        t.check(not p, "metrics: exposition format and promtool's lint rules (promcheck.py)",
                "\n".join(p))
        t.check("hakmem_clients 1\n" in r.out, "metrics: hakmem_clients 1", r.out[:2000])
        t.check('pid="' not in r.out, "metrics: no per-process series by default")
        rp = t.run(ctl + ["metrics", "--per-process"])
        t.expect(rp, 0, "metrics --per-process", err_empty=True)
        t.check('pid="%d"' % client.pid in rp.out, "metrics --per-process: series with the pid")
        t.check(not promcheck.problems(rp.out), "metrics --per-process: promcheck.py",
                "\n".join(promcheck.problems(rp.out)))
        promtool = shutil.which("promtool")
        if promtool:
            for text, what in [(r.out, "metrics"), (rp.out, "metrics --per-process")]:
                pp = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                                    capture_output=True)
                t.check(pp.returncode == 0, what + ": promtool check metrics", pp.stdout + pp.stderr)
        else:
            print("(promtool not installed: promcheck.py only)")
        r = t.run(ctl + ["--json", "metrics"])
        v = t.parse_json(r, "metrics --json")
        if v:
            s = [x for x in v["samples"] if x["name"] == "hakmem_clients"]
            t.check(s and s[0]["value"] == 1 and s[0]["labels"] == {}, "metrics --json: hakmem_clients")
            t.check(all(x["name"].startswith("hakmem_") for x in v["samples"]),
                    "metrics --json: every sample is hakmem_*")

        # --- watch (not a terminal) -------------------------------------------
        r = t.run(ctl + ["watch", "--interval", "0.2", "--count", "2"])
        t.check(r.rc == 0 and r.out.count("hakmemctl watch") == 2 and str(client.pid) in r.out,
                "watch --count 2: two snapshots", repr(r))
        r = t.run(ctl + ["--json", "watch", "--interval", "0.2", "--count", "2"])
        rows = [x for x in r.out.splitlines() if x]
        try:
            objs = [json.loads(x) for x in rows]
        except ValueError:
            objs = []
        t.check(r.rc == 0 and len(objs) == 2 and all(o["status"]["pid"] == d.p.pid
                                                    and len(o["clients"]) == 1 for o in objs),
                "watch --json: two JSON lines", repr(r))
    finally:
        cl.end()
        rc = d.stop()

    t.check(rc == 0, "hakmemd stopped cleanly on SIGTERM", "exit %r\n%s" % (rc, d.log_text()[-3000:]))
    r = t.run(ctl + ["status"])
    t.check(r.rc == 3 and r.err.startswith("hakmemctl: hakmemd is not running: cannot connect to %s/"
                                           "control.sock (" % run_dir),
            "after hakmemd stopped: exit 3, not running", repr(r))
    log = d.log_text()
    t.check("operator (uid 0): lean on for pid %d" % client.pid in log,
            "hakmemd logged the operator's override", log[-2000:])

t.done()
