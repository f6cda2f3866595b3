#!/usr/bin/env python3
"""test_names.py: names that clients choose are untrusted.

An ordinary user registers processes whose names are invalid UTF-8, carry
quotes, backslashes and newlines, or are those of system services
("sshd", "systemd"), and one process registers twice. Then root's
`hakmemctl metrics` must be valid UTF-8 and valid Prometheus text
(tests/ctl/promcheck.py, and `promtool check metrics` where installed),
with exactly one series per process and the user's uid on them; the
clients table must show a uid column (and JSON a uid field) that tells
the user's "sshd" from root's.
"""
import json
import os
import re
import shutil
import subprocess as sp
import time

import sectest as t

a, user, tmp, attack = t.setup()
run_dir = os.path.join(tmp, "run")
d = t.Daemon(a, run_dir, ["--sources", "none"])
victims = [t.Victim(a, run_dir, tmp)]
t.wait_registered(a, run_dir, [v.pid for v in victims])

NAMES = {
    "invalid utf-8": b"\xff\xfe\xc3(bad\x80",
    "quote, backslash, newline": b'a"b\\c\nd',
    "control characters": b"x\x1b[2J\x07y",
    "sshd": b"sshd",
    "systemd": b"systemd",
}
m = t.Meter(d, victims)
procs = {}
for what, name in NAMES.items():
    count = "2" if what == "sshd" else "1"     # one process registering twice
    procs[what] = t.spawn_as(user, [attack, "name", run_dir, name.hex(), count, "30"])
deadline = time.time() + 10
while time.time() < deadline and len(t.clients(a, run_dir)) < 1 + len(NAMES):
    time.sleep(0.1)
time.sleep(0.5)

raw = sp.run([a.hakmemctl, "--runtime-dir", run_dir, "metrics", "--per-process"], capture_output=True,
             env=t.clean_env()).stdout
path = os.path.join(tmp, "metrics.prom")
with open(path, "wb") as f:
    f.write(raw)
try:
    text = raw.decode("utf-8")
    utf8 = True
except UnicodeDecodeError as e:
    text = raw.decode("utf-8", "replace")
    utf8 = False
    t.log("metrics are not UTF-8: %s" % e)
pc = sp.run(["python3", os.path.join(t.HERE, "..", "ctl", "promcheck.py"), path],
            capture_output=True, text=True, errors="replace")
promtool = shutil.which("promtool")
pt = sp.run([promtool, "check", "metrics"], input=raw, capture_output=True) if promtool else None

sshd_pid = procs["sshd"].pid
# samples of one family, per pid label
mode_lines = [l for l in text.splitlines() if l.startswith("hakmem_client_mode{")]
per_pid = {}
for l in mode_lines:
    pid = re.search(r'pid="(\d+)"', l).group(1)
    per_pid[pid] = per_pid.get(pid, 0) + 1
table = sp.run([a.hakmemctl, "--runtime-dir", run_dir, "clients"], capture_output=True, text=True,
               errors="replace", env=t.clean_env()).stdout
js = t.clients(a, run_dir)
dc, vc, ll, secs = m.read()
t.report("names: invalid UTF-8, services, twice", dc, vc, ll,
         "metrics UTF-8 %s, promcheck rc %d, promtool rc %s, series per pid %s"
         % (utf8, pc.returncode, pt.returncode if pt else "-", sorted(per_pid.values())))
t.check(utf8, "the metrics are valid UTF-8")
t.check(pc.returncode == 0, "promcheck.py accepts the metrics", pc.stdout + pc.stderr)
if pt:
    t.check(pt.returncode == 0, "promtool check metrics accepts them",
            (pt.stdout + pt.stderr).decode(errors="replace"))
else:
    t.log("note: promtool is not installed; promcheck.py only")
t.check(per_pid and max(per_pid.values()) == 1, "one hakmem_client_mode series per process",
        "\n".join(mode_lines))
t.check(all(('uid="%d"' % user.uid) in l for l in mode_lines if 'pid="%d"' % sshd_pid in l)
        and any('pid="%d"' % sshd_pid in l for l in mode_lines),
        "the user's sshd series carries its uid label", "\n".join(mode_lines))
hdr = table.splitlines()[0].split() if table else []
t.check("uid" in hdr, "the clients table has a uid column", table)
row = [l for l in table.splitlines() if l.split() and l.split()[0] == str(sshd_pid)]
t.check(row and str(user.uid) in row[0].split(), "the sshd row shows the user's uid", table)
mine = [c for c in js if c["pid"] == sshd_pid]
t.check(len(mine) == 2 and all(c["uid"] == user.uid and c["comm"] == "sshd" for c in mine),
        "clients --json: both registrations of the user's sshd, with the user's uid",
        json.dumps(mine))
ctrl = [c["comm"] for c in js if re.search(r"[\x00-\x1f\x7f]", c["comm"])]
t.check(not ctrl, "no name carries control characters any more", json.dumps(ctrl))
for p in procs.values():
    t.stop(p)
for v in victims:
    v.stop()
d.stop()
t.done()
