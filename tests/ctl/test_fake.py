#!/usr/bin/env python3
"""test_fake.py: hakmemctl against fakehakmemd.py, a stand-in that plays
the daemon's side of control.sock exactly as proto/hakmem_proto.h says,
so that the client is tested on its own: answers reassembled from many
datagrams (text cut mid-line, records across datagrams), every field of
--json, the tables, lean and its errors (-EPERM -> 4, -ENOENT -> 1), the
metrics text, and daemons that misbehave (garbage, silence, early close,
another protocol version, command mismatch): exit 1 with a message, never
a hang or a crash."""
import json
import os
import subprocess

import ctltest as t
import fakehakmemd as fk
from fakehakmemd import FakeDaemon, KEY_PID_BIT
import promcheck



def watch_on_pty(cmd, key):
    """Runs cmd on a pseudo-terminal, waits for a frame, types key; returns
    (exit status, everything written, whether the terminal settings are
    the same afterwards), or None without ptys."""
    import pty
    import select
    import termios
    import time
    try:
        master, slave = pty.openpty()
    except OSError:
        return None
    before = termios.tcgetattr(slave)
    p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                         preexec_fn=lambda: __import__("fcntl").ioctl(0, termios.TIOCSCTTY, 0))
    out = b""
    deadline = time.time() + 10
    sent = False
    while time.time() < deadline:
        r, _, _ = select.select([master], [], [], 0.1)
        if r:
            try:
                out += os.read(master, 65536)
            except OSError:
                break
        if not sent and out.count(b"hakmemd 9.9.9-fake") >= 2:
            os.write(master, key)
            sent = True
        if sent and p.poll() is not None:
            # drain what is left
            while select.select([master], [], [], 0.1)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            break
    if p.poll() is None:
        p.kill()
    rc = p.wait()
    after = termios.tcgetattr(slave)
    os.close(master)
    os.close(slave)
    return rc, out, before == after


a = t.args()
ctl = a.hakmemctl

with t.TempDir() as tmp:
    run_dir = os.path.join(tmp, "run")
    os.mkdir(run_dir)
    os.chmod(run_dir, 0o755)
    base = [ctl, "--runtime-dir", run_dir]
    d = FakeDaemon(run_dir)

    # --- status ------------------------------------------------------------
    r = t.run(base + ["status"])
    t.expect(r, 0, "status", err_empty=True)
    for s in ["hakmemd 9.9.9-fake", "up 1h02m05s", "21 clients", "bpf on",
              "psi off (no PSI trigger here: v1 memory controller)", "usage on", "some 1.25%/0.50%",
              "/sys/fs/cgroup/memory/a b/c", "startup", "42.4", "256M", "25",
              "bpf lost: 3 notifications (ring buffer full), 0 events (cgroup table full)"]:
        t.check(s in r.out, "status table shows %r" % s, r.out)

    r = t.run(base + ["--json", "status"])
    t.expect(r, 0, "status --json", err_empty=True)
    v = t.parse_json(r, "status --json")
    if v:
        t.check(v["version"] == "9.9.9-fake" and v["pid"] == os.getpid() and v["uptime_s"] == 3725
                and v["clients"] == 21, "status --json: version, pid, uptime_s, clients", str(v))
        t.check(v["sources"] == {"bpf": {"on": True, "reason": None},
                                 "psi": {"on": False, "reason": "no PSI trigger here: v1 memory controller"},
                                 "usage": {"on": True, "reason": None}}, "status --json: sources", str(v))
        t.check(v["psi_some_avg10"] == 1.25 and v["psi_some_avg60"] == 0.5
                and v["psi_full_avg10"] == 0, "status --json: psi", str(v))
        t.check(v["bpf_ringbuf_dropped"] == 3 and v["bpf_cgroup_table_full"] == 0,
                "status --json: what BPF lost", str(v))
        cg = {c["key"]: c for c in v["cgroups"]}
        t.check(set(cg) == {77, 4242}, "status --json: cgroups by key", str(v))
        c = cg.get(4242, {})
        t.check(c.get("path") == "/sys/fs/cgroup/memory/a b/c" and c.get("kind") == "cgroup"
                and c.get("level") == "none" and c.get("reason") == "startup"
                and c.get("override") is False and c.get("nclients") == 1
                and c.get("reclaim_per_s") == 42.42 and c.get("reclaim_events") == 42420
                and c.get("reclaim_ns") == 4242000 and c.get("usage_bytes") == 64 << 20
                and c.get("limit_bytes") == 256 << 20 and c.get("psi_some_avg10") == 1.25
                and c.get("updated_ns") == 123456789, "status --json: a cgroup's fields", str(c))
        t.check(cg.get(77, {}).get("limit_bytes", 0) is None, "status --json: no limit is null")
        t.check(v["other"] == {"future_field": "1 2 3"}, "status --json: unknown lines kept", str(v))

    # --- clients -----------------------------------------------------------
    r = t.run(base + ["clients"])
    t.expect(r, 0, "clients", err_empty=True)
    lines = r.out.splitlines()
    t.check(len(lines) == 22, "clients table: header and 21 rows (records over 3 datagrams)", r.out)
    for col in ["pid", "comm", "cgroup", "mode", "rss", "lazyfree", "superslabs", "lean_decommit",
                "lean_retire", "madvise_calls", "bytes_decommitted", "mode_switches"]:
        t.check(col in lines[0].split(), "clients header has %s" % col, lines[0])
    me = [l for l in lines if l.split()[0] == str(os.getpid())]
    # the fake says it is pid os.getpid() with comm python3: the RSS is ours
    # only if /proc/PID/status says Name: python3 and hakmemd's pid (also
    # ours) is called hakmemd, which it is not: '-' (another namespace)
    t.check(me and " - " in me[0], "clients: RSS '-' when /proc does not show hakmemd", r.out)
    t.check(me and "a b/c" in me[0], "clients: cgroup path from the status text", r.out)

    r = t.run(base + ["--json", "clients"])
    v = t.parse_json(r, "clients --json")
    if v:
        cl = v["clients"]
        t.check(len(cl) == 21, "clients --json: 21 records")
        c = cl[0]
        t.check(c["pid"] == os.getpid() and c["comm"] == "python3" and c["cgroup_key"] == 4242
                and c["cgroup_path"] == "/sys/fs/cgroup/memory/a b/c" and c["mode"] == "fast"
                and c["last_level"] == "low" and c["override"] == "auto" and c["lean_env"] is False
                and c["follows_daemon"] is True and c["rss_bytes"] is None
                and c["lazyfree_bytes"] is None
                and c["connected_ns"] == 1000 and c["stats_updated_ns"] == 2000,
                "clients --json: fields", str(c))
        names = [n for n in fk.COUNTERS if n not in ("mode", "level")]  # shown on their own
        t.check(list(c["counters"]) == names, "clients --json: counter names (HAKMEM_COUNTERS)",
                str(c["counters"]))
        t.check(all(c["counters"][n] == fk.COUNTERS.index(n) * 1000 + os.getpid() % 7
                    for n in names), "clients --json: counter values", str(c["counters"]))

    # --- lean ----------------------------------------------------------------
    d.requests.clear()
    r = t.run(base + ["lean", "all", "on"])
    t.expect(r, 0, "lean all on", out_has="all clients: lean on (level default)")
    t.check(d.requests[-1] == (3, 0, 1, 0, 0, 0), "lean all on: request fields", str(d.requests))
    r = t.run(base + ["lean", str(os.getpid()), "off"])
    t.expect(r, 0, "lean PID off")
    t.check(d.requests[-1] == (3, 2, 2, os.getpid(), 0, 0), "lean PID off: request fields")
    r = t.run(base + ["--json", "lean", "all", "on", "--level", "critical"])
    v = t.parse_json(r, "lean --json")
    t.check(v == {"target": "all", "key": None, "path": None, "mode": "on", "level": "critical"},
            "lean --json", str(v))
    t.check(d.requests[-1] == (3, 0, 1, 0, 3, 0), "lean --level critical: level 3 sent")
    r = t.run(base + ["--json", "clients"])
    v = t.parse_json(r, "clients --json after lean PID off")
    if v:
        t.check(v["clients"][0]["override"] == "off", "clients --json: override off on the pid")
    r = t.run(base + ["clients"])
    t.check("fast!" in r.out, "clients table marks a forced mode with !", r.out)
    r = t.run(base + ["--json", "status"])
    v = t.parse_json(r, "status --json with overrides")
    if v:
        kinds = {c["kind"]: c for c in v["cgroups"]}
        t.check(kinds.get("all", {}).get("override") is True
                and kinds.get("all", {}).get("level") == "critical"
                and kinds.get("pid", {}).get("pid") == os.getpid(),
                "status --json: overrides on all and on a pid", str(v["cgroups"]))
    r = t.run(base + ["lean", "1", "on"])
    t.expect(r, 1, "lean on an unknown pid: exit 1", err_has="hakmemd knows no pid 1")

    # a cgroup by path, in a fake tree (--cgroup-root): the key is the inode
    root = os.path.join(tmp, "cg")
    os.makedirs(os.path.join(root, "memory", "a b", "c"))
    os.makedirs(os.path.join(root, "unified", "only2"))
    open(os.path.join(root, "unified", "cgroup.controllers"), "w").close()
    ino = os.stat(os.path.join(root, "memory", "a b", "c")).st_ino
    ino2 = os.stat(os.path.join(root, "unified", "only2")).st_ino
    d.cgroups[ino] = os.path.join(root, "memory", "a b", "c")
    d.cgroups[ino2] = os.path.join(root, "unified", "only2")
    forms = [os.path.join(root, "memory", "a b", "c"), "/a b/c", "a b/c", "./a b//c/",
             "4:memory:/a b/c", "5:cpu,memory:/a b/c", "0::/a b/c",
             os.path.join(root, "unified", "a b", "c")]
    for f in forms:
        d.requests.clear()
        r = t.run(base + ["--cgroup-root", root, "lean", f, "on"])
        t.check(r.rc == 0 and d.requests and d.requests[-1][1:4] == (1, 1, ino),
                "lean %r: v1 memory cgroup key %d" % (f, ino), repr(r) + str(d.requests))
    d.requests.clear()
    r = t.run(base + ["--cgroup-root", root, "lean", "/only2", "auto"])
    t.check(r.rc == 0 and d.requests[-1][1:4] == (1, 0, ino2),
            "lean on a cgroup2-only path: the unified key", repr(r))
    for f, why in [("/nope", "no such cgroup"), ("/a b/../c", ".."), ("3:cpu:/a b/c", "other controller")]:
        r = t.run(base + ["--cgroup-root", root, "lean", f, "on"])
        t.expect(r, 1, "lean %r refused (%s)" % (f, why), err_has="hakmemctl: lean: ")
    r = t.run(base + ["--json", "--cgroup-root", root, "lean", "a b/c", "on", "--level", "medium"])
    v = t.parse_json(r, "lean cgroup --json")
    t.check(v == {"target": "cgroup", "key": ino, "path": os.path.join(root, "memory", "a b", "c"),
                  "mode": "on", "level": "medium"}, "lean cgroup --json", str(v))

    # permission: the fake refuses non-root like hakmemd does
    why = t.can_switch_user()
    if why:
        print("(skipped the unprivileged checks: %s)" % why)
    else:
        nctl = t.copy_for_nobody(ctl, tmp)
        r = t.run([nctl, "--runtime-dir", run_dir, "lean", "all", "on"], user="nobody")
        t.check(r.rc == 4 and "permission denied" in r.err and r.out == "",
                "lean as nobody: exit 4, permission denied", repr(r))
        r = t.run([nctl, "--runtime-dir", run_dir, "status"], user="nobody")
        t.expect(r, 0, "status as nobody works")

    # --- metrics ---------------------------------------------------------------
    # hakmemd decides what it sends: hakmemctl asks (the request's flag)
    # and prints what came, unfiltered
    r = t.run(base + ["metrics"])
    t.expect(r, 0, "metrics", out_has="hakmem_clients 21\n", err_empty=True)
    t.check(d.requests[-1][0] == 4 and d.requests[-1][5] == 0,
            "metrics: a METRICS request without the per-process flag", str(d.requests[-1]))
    t.check(not promcheck.problems(r.out), "metrics pass the exposition check",
            str(promcheck.problems(r.out)))
    t.check("hakmem_client_mode" not in r.out and 'hakmem_odd{cgroup="pid=\\"3\\""} 1\n' in r.out
            and r.out.endswith("hakmem_up_seconds +Inf\n"),
            "metrics: what the daemon sent, as it sent it", r.out)
    r = t.run(base + ["metrics", "--per-process"])
    t.expect(r, 0, "metrics --per-process", err_empty=True)
    t.check(d.requests[-1][0] == 4 and d.requests[-1][5] == fk.F_PER_PROCESS,
            "metrics --per-process: the request carries HAKMEM_CTL_REQ_F_PER_PROCESS",
            str(d.requests[-1]))
    t.check('hakmem_client_mode{comm="a\\",pid=\\"1",pid="7",cgroup="/a"} 1\n' in r.out
            and not promcheck.problems(r.out), "metrics --per-process: the per-process series",
            r.out)
    r = t.run(base + ["--json", "metrics"])
    v = t.parse_json(r, "metrics --json")
    if v:
        s = {x["name"]: x for x in v["samples"]}
        t.check(s["hakmem_clients"] == {"name": "hakmem_clients", "labels": {}, "value": 21},
                "metrics --json: a sample", str(v))
        t.check(s["hakmem_cgroup_level"]["labels"] == {"cgroup": '/a "b"\\c'},
                "metrics --json: escaped label values", str(v))
        t.check(s["hakmem_up_seconds"]["value"] == "+Inf", "metrics --json: +Inf as a string")
        t.check(v["type"]["hakmem_clients"] == "gauge" and v["help"]["hakmem_clients"] ==
                "Clients connected.", "metrics --json: HELP and TYPE")

    # --- watch without a terminal: one snapshot per interval ------------------
    r = t.run(base + ["watch", "--interval", "0.2", "--count", "3"])
    t.expect(r, 0, "watch --count 3 (not a tty)", err_empty=True)
    t.check(r.out.count("hakmemctl watch") == 3 and r.out.count("hakmemd 9.9.9-fake") == 3
            and "\033" not in r.out, "watch: 3 plain snapshots, no escape sequences", r.out[:500])
    r = t.run(base + ["--json", "watch", "--interval", "0.1", "--count", "2"])
    rows = r.out.splitlines()
    try:
        objs = [json.loads(x) for x in rows]
        ok = len(objs) == 2 and all(set(o) == {"time", "status", "clients"} for o in objs) \
            and objs[0]["status"]["version"] == "9.9.9-fake" and len(objs[1]["clients"]) == 21
    except ValueError:
        ok = False
    t.check(r.rc == 0 and ok, "watch --json: one JSON object per line", repr(r))

    # --- watch on a terminal: q and Ctrl-C leave, the terminal is restored ----
    for key, what in [(b"q", "q"), (b"\x03", "Ctrl-C")]:
        res = watch_on_pty(base + ["watch", "--interval", "0.2"], key)
        if res is None:
            print("(skipped the terminal checks: no pty)")
            break
        rc, out, same = res
        t.check(rc == 0, "watch on a tty: %s leaves with exit 0" % what, "rc=%r" % rc)
        t.check(b"\033[?1049h" in out and out.rstrip().endswith(b"\033[?25h\033[?1049l")
                and b"\033[H\033[2J" in out and b"hakmemd 9.9.9-fake" in out,
                "watch on a tty (%s): alternate screen, redraws, restored at the end" % what,
                repr(out[-300:]))
        t.check(same, "watch on a tty (%s): terminal settings restored" % what)
    d.close()

    # --- malformed status lines are skipped with one warning -------------------
    d = FakeDaemon(run_dir, mode="badtext")
    r = t.run(base + ["--json", "status"])
    t.check(r.rc == 0 and "2 malformed lines" in r.err and r.json()["pid"] == os.getpid(),
            "malformed status lines: a warning, the rest shown", repr(r))
    d.close()

    # --- any bytes in paths and names still make valid JSON (strict UTF-8) ----
    d = FakeDaemon(run_dir, mode="weird")
    for c in (["--json", "status"], ["--json", "clients"], ["--json", "watch", "--count", "1"],
              ["status"], ["clients"]):
        p = subprocess.run(base + c, capture_output=True, timeout=30)
        try:
            v = json.loads(p.stdout.decode("utf-8", errors="strict")) if "--json" in c else True
        except ValueError as e:
            v = None
            print(e)
        t.check(p.returncode == 0 and v is not None,
                "odd bytes from the daemon: %s exits 0%s" % (" ".join(c), ", valid JSON"
                                                             if "--json" in c else ""),
                repr(p.stdout[:300]) + repr(p.stderr[:300]))
        if "--json" not in c:
            t.check(not any(b < 0x20 and b not in (0x0a,) or b == 0x7f for b in p.stdout)
                    and b"\xc2\x9b" not in p.stdout,
                    "odd bytes from the daemon: %s prints no control characters" % " ".join(c),
                    repr(p.stdout[:600]))
        if c == ["--json", "clients"] and v:
            t.check(v["clients"][0]["comm"] == '\ufffd\ufffd"\\\u0007abcdefghij',
                    "comm: 15 bytes at most, invalid UTF-8 as U+FFFD", repr(v["clients"][0]["comm"]))
    d.close()

    # --- a hakmemd from before the per-process flag ---------------------------
    d = FakeDaemon(run_dir, mode="noflags")
    r = t.run(base + ["metrics"])
    t.expect(r, 0, "older hakmemd: metrics works", out_has="hakmem_clients 21\n")
    r = t.run(base + ["metrics", "--per-process"])
    t.expect(r, 1, "older hakmemd: metrics --per-process exits 1, saying why",
             err_has="does not know --per-process")
    d.close()

    # --- misbehaving daemons ---------------------------------------------------
    for mode, msg in [("garbage", "hakmemd sent a malformed answer"),
                      ("close", "hakmemd closed the connection without an answer"),
                      ("version", "hakmemd speaks another protocol version"),
                      ("wrongcmd", "hakmemd sent a malformed answer"),
                      ("silent", "hakmemd did not answer within 0.5 s")]:
        d = FakeDaemon(run_dir, mode=mode)
        for c in ["status", "clients", "metrics"]:
            r = t.run(base + ["--timeout", "0.5", c], timeout=10)
            t.expect(r, 1, "%s daemon: %s exits 1" % (mode, c), err_has=msg)
        d.close()

t.done()
