#!/usr/bin/env python3
"""test_sockets.py: an ordinary local user against hakmemd's sockets.

1. control.sock flood: 200 idle connections held by the user. Meanwhile
   root's `hakmemctl status` and `hakmemctl lean all auto` must succeed
   every time, and the user's own hakmemctl must fail with a message that
   names the cause (too many control connections for its uid).
2. The read-only metrics socket: a member of the metrics group reads
   metrics through it during the same flood, every time; the user (not in
   the group) cannot connect to it; nobody can change anything through it.
3. Client flood to the descriptor limit: hakmemd started with a soft
   NOFILE of 1024 and a hard one of 4096 (systemd's defaults are 1024 and
   524288) must raise its soft limit; the user registers clients until
   refused; root's shims must still register, and the user's own shim
   must log its refusal once, saying why.
4. 2000 garbage hellos: the log stays short and says how many lines it
   suppressed.
Each prints an ATTACK line (daemon CPU, victim CPU, log lines, outcome).
"""
import os
import re
import time

import sectest as t

# Bounds, from measured runs of the fixed code (the ATTACK lines of a
# passing run; 2 vCPUs shared with other jobs, load 8-20), with room for load:
CTL_FLOOD_DAEMON_CPU_MAX = 1.0     # s, 200 connections held and reopened 6 s (measured 0.31-0.43)
CLIENT_FLOOD_DAEMON_CPU_MAX = 1.5  # s, 4000 registrations, 1002 kept (measured 0.16-0.32)
GARBAGE_DAEMON_CPU_MAX = 0.5       # s, 2000 garbage connections (measured 0.04-0.07)
GARBAGE_LOG_LINES_MAX = 60         # lines: the rate limit's burst and summaries (measured 22;
                                   # 2000 before the fix)
VICTIM_CPU_MAX = 0.3               # s, per victim per phase
LOG_LINES_FLOOD_MAX = 60           # lines (measured 51 for the control flood)

a, user, tmp, attack = t.setup()
ctl_bin = t.copy_for(user, a.hakmemctl, tmp)
mgroup = t.Group("m")


def ctl_as(u, run_dir, *argv, groups=None):
    return t.run_as(u, [ctl_bin, "--runtime-dir", run_dir] + list(argv), groups=groups)


# ---- 1 and 2: control.sock flood; the metrics socket -------------------------
run_dir = os.path.join(tmp, "run1")
try:
    d = t.Daemon(a, run_dir, ["--sources", "none", "--set", "metrics_group=" + mgroup.name])
except RuntimeError as e:
    t.check(False, "hakmemd takes metrics_group", e)
    d = t.Daemon(a, run_dir, ["--sources", "none"])
victims = [t.Victim(a, run_dir, tmp)]
t.wait_registered(a, run_dir, [v.pid for v in victims])
m = t.Meter(d, victims)
p = t.spawn_as(user, [attack, "ctl-flood", run_dir, "control.sock", "200", "6"])
time.sleep(0.5)                          # let the flood settle
# the attacker's own hakmemctl, now and then: refused, and told why (the
# flood's slots are dropped after 1 s idle and taken again at once, so a
# try may slip through now and then)
own_tries = [ctl_as(user, run_dir, "status") for _ in range(5)]
own_refused = [r for r in own_tries if r.returncode != 0]
own = own_refused[0] if own_refused else own_tries[0]
fails, msgs = 0, set()
mfails, mmsgs = 0, set()
for i in range(10):
    for argv in (["status"], ["lean", "all", "auto"]):
        r = ctl_as(None, run_dir, *argv)
        if r.returncode != 0:
            fails += 1
            msgs.add(r.stderr.strip())
    # the exporter: nobody in the metrics group
    r = ctl_as(t.NOBODY, run_dir, "metrics", groups=[mgroup.gid])
    if r.returncode != 0 or "hakmem_clients" not in r.stdout:
        mfails += 1
        mmsgs.add(r.stderr.strip())
p.wait(20)
out = p.stdout.read()
dc, vc, ll, secs = m.read()
kv = t.parse_kv(out)
t.report("control.sock flood (200, reopened)", dc, vc, ll,
         "root failed %d/20 %s; exporter failed %d/10; attacker's own: rc %s %r; %s refusals, "
         "%s reopened" % (fails, sorted(msgs)[:1], mfails, own.returncode, own.stderr.strip()[:110],
                          kv.get("refused_with_reason", ["?"])[0], kv.get("reopened", ["?"])[0]))
t.check(fails == 0, "root's hakmemctl status / lean all auto succeed during the flood",
        "%d failures: %s" % (fails, msgs))
t.check(mfails == 0, "the metrics group reads metrics.sock during the flood",
        "%d failures: %s" % (mfails, mmsgs))
t.check(own_refused and all(re.search(r"too many control connections for uid %d" % user.uid,
                                       r.stderr) for r in own_refused),
        "the attacker's own hakmemctl is refused, and told why (%d of 5 tries)" % len(own_refused),
        repr([(r.returncode, r.stderr) for r in own_tries]))
t.check_cpu(dc <= CTL_FLOOD_DAEMON_CPU_MAX, "hakmemd CPU %.2f s <= %.2f s" % (dc, CTL_FLOOD_DAEMON_CPU_MAX))
t.check(ll <= LOG_LINES_FLOOD_MAX, "log lines %d <= %d" % (ll, LOG_LINES_FLOOD_MAX))

# the metrics socket is read-only and closed to others
r = t.run_as(user, [attack, "ctl-flood", run_dir, "metrics.sock", "1", "0"])
t.check("connect_failed 1 EACCES" in r.stdout,
        "a user outside the metrics group cannot connect to metrics.sock", r.stdout)
r = ctl_as(None, run_dir, "--socket", "metrics.sock", "lean", "all", "on")
t.check(r.returncode == 4 and "read-only" in r.stderr,
        "lean through metrics.sock is refused, even for root (read-only socket)",
        repr((r.returncode, r.stderr)))
for v in victims:
    v.stop()
d.stop()

# ---- 3: client flood to the descriptor limit ---------------------------------
run_dir = os.path.join(tmp, "run2")
d = t.Daemon(a, run_dir, ["--sources", "none"], nofile=(1024, 4096))
soft = d.nofile_soft()
t.check(soft == 4096, "hakmemd raised its soft NOFILE from 1024 to the hard limit 4096",
        "soft limit now %d" % soft)
m = t.Meter(d, [])
# the flood holds its slots until stopped below (120 s at most): a fixed
# hold ran out before the user's own shim came under emulation
p = t.spawn_as(user, [attack, "client-flood", run_dir, "4000", "120"])
# wait until the flood is in place: hakmemd has refused the user for its
# uid limit (it holds every slot it can get; a count that merely stops
# growing for a while is not that on a slow guest)
refused = 0
for _ in range(600):
    r = t.ctl(a, run_dir, "metrics")
    hit = re.search(r'^hakmem_rendezvous_rejected_total\{reason="uid_limit"\} (\d+)$', r.stdout, re.M)
    refused = int(hit.group(1)) if hit else 0
    if refused > 0 or p.poll() is not None:
        break
    time.sleep(0.2)
t.check(refused > 0, "the flood reached the user's limit (hakmem_rendezvous_rejected_total"
        "{reason=\"uid_limit\"} %d)" % refused)
victims = [t.Victim(a, run_dir, tmp) for _ in range(3)]
reg = t.wait_registered(a, run_dir, [v.pid for v in victims], timeout=5)
own = t.Victim(a, run_dir, tmp, user=user)
time.sleep(2)
own_err = own.stop()
held = p.poll() is None                 # the flood was still in place for own
p.terminate()
p.wait(30)
out = p.stdout.read()
vstate = [v.state() for v in victims]
verr = [v.stop() for v in victims]
dc, vc, ll, secs = m.read()
kv = t.parse_kv(out)
refusal_lines = [l for l in own_err.splitlines() if "refused" in l]
t.report("client flood to the fd limit", dc, 0.0, ll,
         "attacker welcomed %s, refused %s; root's shims registered: %s; attacker's shim logged %r"
         % (kv.get("welcomed"), kv.get("refused"), reg, refusal_lines[:2]))
t.check(reg, "root's shims register while the user holds every client slot it can get",
        "\n".join(verr) + d.log_text()[-2000:])
t.check(held, "the flood held its slots until the user's own shim was done")
t.check(len(refusal_lines) == 1 and "too many clients for uid %d" % user.uid in refusal_lines[0],
        "the user's own shim logs its refusal once, naming the cause",
        own_err[-2000:] + "\n".join(l for l in d.log_text().splitlines() if str(own.pid) in l))
t.check_cpu(dc <= CLIENT_FLOOD_DAEMON_CPU_MAX,
        "hakmemd CPU %.2f s <= %.2f s" % (dc, CLIENT_FLOOD_DAEMON_CPU_MAX))
t.check(ll <= LOG_LINES_FLOOD_MAX + 1100, "log lines %d" % ll)
t.check(d.alive(), "hakmemd is alive")
d.stop()

# ---- 4: garbage hellos --------------------------------------------------------
run_dir = os.path.join(tmp, "run3")
d = t.Daemon(a, run_dir, ["--sources", "none"])
m = t.Meter(d, [])
r = t.run_as(user, [attack, "garbage", run_dir, "2000"], timeout=120)
time.sleep(1)
dc, vc, ll, secs = m.read()
d.stop()                                 # its rate limit's summaries are all out then
text = d.log_text()
ll = text.count("\n") - m.l0
supp = re.findall(r"(\d+) similar messages? suppressed", text)
t.report("2000 garbage hellos", dc, 0.0, ll, "sent %s; suppressed counts %s"
         % (t.parse_kv(r.stdout).get("sent"), supp[:3]))
t.check(ll <= GARBAGE_LOG_LINES_MAX, "log lines %d <= %d" % (ll, GARBAGE_LOG_LINES_MAX))
t.check(supp, "the log says how many lines it suppressed", text[-1500:])
t.check_cpu(dc <= GARBAGE_DAEMON_CPU_MAX, "hakmemd CPU %.2f s <= %.2f s" % (dc, GARBAGE_DAEMON_CPU_MAX))
t.done()
