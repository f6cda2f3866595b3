#!/usr/bin/env python3
"""test_systemd.py: the generated systemd files pass systemd's own checks:
`systemd-analyze verify` on hakmemd.service and on a service carrying the
example drop-in (no output at all: a warning fails too), `systemd-sysusers
--root` on the sysusers.d entry (the group hakmem is created), and the
unit's exposure score from `systemd-analyze security --offline`.

systemd-analyze verify works on unit files without a running systemd (as
in a container): it loads them into an offline manager. It checks that
ExecStart= is an executable file, so the copy verified here has its
ExecStart= path (PREFIX/sbin/hakmemd, not installed by a build) replaced
by the built hakmemd, or /bin/true when there is none; nothing else is
changed. Documentation= man pages are not looked up (--man=no): man pages
of a build are not installed. MemoryPressureWatch= in the drop-in is
systemd 254's; older systemd warns about it, which is expected there.
Skips (exit 77) when systemd-analyze is not installed."""
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import ctltest as t

a = t.args()
sa = shutil.which("systemd-analyze")
if not sa:
    t.skip("systemd-analyze not installed (Debian package systemd; tools/setup.sh installs it)")
ver = subprocess.run([sa, "--version"], capture_output=True, text=True).stdout
m = re.search(r"systemd (\d+)", ver)
sd_version = int(m.group(1)) if m else 0
print("systemd %d" % sd_version)

unit_text = open(a.unit).read()
dropin_text = open(a.dropin).read()
src_dir = os.path.dirname(os.path.abspath(__file__))
sysusers = os.path.join(src_dir, "..", "..", "systemd", "hakmem.sysusers")


def verify(path):
    p = subprocess.run([sa, "verify", "--man=no", path], capture_output=True, text=True)
    return p.returncode, (p.stdout + p.stderr).strip()


with t.TempDir() as tmp:
    def check_unit(name, text, runs, exe, keys):
        """text as NAME in tmp with ExecStart='s program replaced by exe:
        ExecStart= runs PREFIX/runs, systemd-analyze verify is silent, every
        key is in it, the exposure level at most 2.5. Returns the copy."""
        m = re.search(r"^ExecStart=(\S+)", text, re.M)
        t.check(m and m.group(1).endswith(runs), "%s: ExecStart= runs PREFIX%s" % (name, runs),
                m.group(0) if m else "none")
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            f.write(re.sub(r"^ExecStart=\S+", "ExecStart=" + exe, text, flags=re.M))
        rc, out = verify(path)
        t.check(rc == 0 and out == "", "systemd-analyze verify %s: clean" % name, out)
        for key in keys:
            t.check(re.search("^" + re.escape(key) + "$", text, re.M) is not None,
                    "%s has %s" % (name, key))
        p = subprocess.run([sa, "security", "--offline=yes", path], capture_output=True, text=True)
        m = re.search(r"Overall exposure level for %s: ([0-9.]+)" % re.escape(name), p.stdout)
        if m:
            print("(systemd-analyze security %s: exposure %s)" % (name, m.group(1)))
            t.check(float(m.group(1)) <= 2.5, "%s: exposure level at most 2.5 (\"OK\" starts "
                    "below 4)" % name, m.group(0))
        return path

    # --- hakmemd.service ----------------------------------------------------
    exe = os.path.abspath(a.hakmemd) if a.hakmemd and os.access(a.hakmemd, os.X_OK) else "/bin/true"
    unit = check_unit("hakmemd.service", unit_text, "/sbin/hakmemd", exe, [
        "Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
        "RuntimeDirectory=hakmem", "NoNewPrivileges=yes", "ProtectSystem=strict",
        "ProtectHome=yes", "PrivateTmp=yes", "RestrictAddressFamilies=AF_UNIX",
        "CapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_CHOWN", "LimitNOFILE=65536",
        "SystemCallArchitectures=native"])

    # the same check catches a broken unit (so a clean result means something)
    bad = os.path.join(tmp, "broken.service")
    with open(bad, "w") as f:
        f.write(open(unit).read().replace("ProtectHome=yes", "ProtectHome=yes\nNoSuchKey=1"))
    rc, out = verify(bad)
    t.check("NoSuchKey" in out, "verify reports an unknown key (the check works)", out)

    # --- hakmem-exporter.service ---------------------------------------------------
    ex_text = open(a.exporter_unit).read()
    t.check(re.search(r"^ExecStart=\S+ .* metrics --listen ", ex_text, re.M) is not None,
            "hakmem-exporter.service: ExecStart= is hakmemctl metrics --listen")
    ctl_exe = os.path.abspath(a.hakmemctl)
    check_unit("hakmem-exporter.service", ex_text, "/bin/hakmemctl", ctl_exe, [
        "DynamicUser=yes", "CapabilityBoundingSet=", "NoNewPrivileges=yes",
        "ProtectSystem=strict", "PrivateUsers=yes", "ProtectProc=invisible",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=~@privileged @resources", "SystemCallArchitectures=native"])
    # the command line of ExecStart=, with the unit's Environment= defaults
    # expanded as systemd does (${X} one word, $X split), runs as written
    env = dict(re.findall(r"^Environment=([A-Z_]+)=(.*)$", ex_text, re.M))
    env["HAKMEM_EXPORTER_LISTEN"] = "127.0.0.1:0"  # not the real port on a test machine
    words = []
    for w in re.search(r"^ExecStart=(.*)$", ex_text, re.M).group(1).split():
        if w.startswith("${"):
            words.append(env[w[2:-1]])
        elif w.startswith("$"):
            words += env[w[1:]].split()
        else:
            words.append(w)
    words[0] = ctl_exe
    words[words.index("--runtime-dir") + 1] = os.path.join(tmp, "norun")
    log = os.path.join(tmp, "exporter.log")
    with open(log, "w") as lf:
        xp = subprocess.Popen(words, stdin=subprocess.DEVNULL, stdout=lf, stderr=lf)
        deadline = time.time() + 10
        while time.time() < deadline and "serving http://" not in open(log).read():
            time.sleep(0.05)
        xrc = t.stop_process(xp, signal.SIGTERM, 5)
    t.check(xrc == 0 and "serving http://127.0.0.1:" in open(log).read(),
            "ExecStart= with the default arguments serves and stops on SIGTERM", open(log).read())

    # --- the example drop-in on a service ---------------------------------------
    t.check(re.search(r"^Environment=LD_PRELOAD=/\S+/libhakmem\.so\.0$", dropin_text, re.M)
            is not None, "drop-in: LD_PRELOAD=LIBDIR/libhakmem.so.0")
    svc = os.path.join(tmp, "example.service")
    with open(svc, "w") as f:
        f.write("[Unit]\nDescription=example\n[Service]\nExecStart=/bin/true\n")
    os.mkdir(svc + ".d")
    shutil.copy(a.dropin, os.path.join(svc + ".d", "hakmem-shim.conf"))
    rc, out = verify(svc)
    lines = [l for l in out.splitlines() if l]
    expected = [l for l in lines if "MemoryPressureWatch" in l and sd_version < 254]
    t.check(rc == 0 and lines == expected,
            "systemd-analyze verify example.service + hakmem-shim.conf: clean"
            + (" (but for MemoryPressureWatch=, unknown to systemd %d)" % sd_version
               if expected else ""), out)
    t.check(sd_version >= 254 or expected,
            "the drop-in was read (systemd %d names MemoryPressureWatch=)" % sd_version, out)

    # --- Type=notify: hakmemd speaks sd_notify as the unit expects ------------
    if a.hakmemd and os.access(a.hakmemd, os.X_OK) and os.geteuid() == 0:
        notify_path = os.path.join(tmp, "notify")
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(notify_path)
        ns.settimeout(15)
        run_dir = os.path.join(tmp, "run")
        hd = subprocess.Popen([a.hakmemd, "--runtime-dir", run_dir], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=dict(os.environ, NOTIFY_SOCKET=notify_path))
        msgs = []
        try:
            while not any("READY=1" in m for m in msgs):
                msgs.append(ns.recv(4096).decode())
            ready = True
        except socket.timeout:
            ready = False
        t.check(ready and os.path.exists(os.path.join(run_dir, "control.sock")),
                "Type=notify: READY=1 once control.sock is there", str(msgs))
        r = t.run([a.hakmemctl, "--runtime-dir", run_dir, "--json", "status"])
        t.expect(r, 0, "Type=notify: hakmemctl status answers after READY=1")
        full_sources = r.json()["sources"] if r.rc == 0 else None
        hd.send_signal(signal.SIGHUP)  # ExecReload=
        got = []
        try:
            while not any("READY=1" in m for m in got):
                got.append(ns.recv(4096).decode())
        except socket.timeout:
            pass
        t.check("RELOADING=1" in got and hd.poll() is None,
                "ExecReload (SIGHUP): RELOADING=1, READY=1, still running", str(got))
        hd.send_signal(signal.SIGTERM)
        try:
            rc = hd.wait(10)
        except subprocess.TimeoutExpired:
            hd.kill()
            rc = hd.wait()
        try:
            ns.settimeout(1)
            last = ns.recv(4096).decode()
        except socket.timeout:
            last = ""
        t.check(rc == 0 and "STOPPING=1" in last, "stop (SIGTERM): STOPPING=1, exit 0",
                "exit %r, %r" % (rc, last))
        ns.close()

        # CapabilityBoundingSet= is enough: with only those capabilities
        # (and no_new_privs), hakmemd starts the same sources as with all
        caps = re.search(r"^CapabilityBoundingSet=(.*)$", unit_text, re.M).group(1).split()
        bset = "-all," + ",".join("+" + c[4:].lower() for c in caps)
        if shutil.which("setpriv") and full_sources:
            run2 = os.path.join(tmp, "run2")
            hd = subprocess.Popen(["setpriv", "--bounding-set=" + bset, "--no-new-privs", "--",
                                   a.hakmemd, "--runtime-dir", run2], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            r, v = t.poll_json([a.hakmemctl, "--runtime-dir", run2, "--json", "status"],
                               lambda v: True, timeout=15)
            hd.send_signal(signal.SIGTERM)
            try:
                hd.wait(10)
            except subprocess.TimeoutExpired:
                hd.kill()
                hd.wait()
            t.check(v is not None and v["sources"] == full_sources,
                    "with only %s hakmemd starts the same sources (%s)"
                    % (" ".join(caps), ", ".join(k for k, x in full_sources.items() if x["on"])),
                    "%r vs %r" % (v and v["sources"], full_sources))
    else:
        print("(hakmemd's sd_notify not checked: needs root and a built hakmemd)")

    # --- sysusers.d -----------------------------------------------------------
    su = shutil.which("systemd-sysusers")
    if su:
        root = os.path.join(tmp, "root")
        os.makedirs(os.path.join(root, "etc"))
        p = subprocess.run([su, "--root=" + root, sysusers], capture_output=True, text=True)
        group = open(os.path.join(root, "etc", "group")).read() \
            if os.path.exists(os.path.join(root, "etc", "group")) else ""
        t.check(p.returncode == 0 and re.search(r"^hakmem:x:\d+:", group, re.M) is not None
                and re.search(r"^hakmem-metrics:x:\d+:", group, re.M) is not None,
                "systemd-sysusers creates the groups hakmem and hakmem-metrics",
                p.stdout + p.stderr + group)
    else:
        print("(systemd-sysusers not installed)")

t.done()
