#!/usr/bin/env python3
"""test_cli.py: hakmemctl without any daemon: --help everywhere (exit 0,
on stdout), usage errors (exit 2, on stderr), and hakmemd absent (exit 3
with "hakmemd is not running: cannot connect to DIR/control.sock (...)"),
whether the socket is missing, stale (a socket file nobody listens on)
or the runtime directory is given by HAKMEM_RUNTIME_DIR."""
import os
import re
import shutil
import socket

import ctltest as t

a = t.args()
ctl = a.hakmemctl
COMMANDS = ["status", "clients", "watch", "lean", "metrics"]

# --- help ----------------------------------------------------------------
for argv in (["--help"], ["-h"], ["help"]):
    r = t.run([ctl] + argv)
    t.expect(r, 0, "hakmemctl %s" % " ".join(argv), out_has="Exit status:", err_empty=True)
    for word in COMMANDS + ["--runtime-dir", "--json", "0  success", "3  hakmemd is not running",
                            "4  permission denied", "2  usage error"]:
        t.check(word in r.out, "main help mentions %r" % word)
for c in COMMANDS:
    for argv in ([c, "--help"], ["--help", c], ["help", c], [c, "-h"]):
        r = t.run([ctl] + argv)
        t.expect(r, 0, "hakmemctl %s" % " ".join(argv), out_has="Usage: hakmemctl", err_empty=True)
        t.check(c in r.out.splitlines()[0], "%s: the usage line names %s" % (" ".join(argv), c))
r = t.run([ctl, "--version"])
t.expect(r, 0, "--version", out_has="hakmemctl ")

# --- usage errors ----------------------------------------------------------
bad = [
    [], ["bogus"], ["--bogus", "status"], ["status", "extra"], ["lean"], ["lean", "all"],
    ["lean", "all", "maybe"], ["lean", "all", "on", "x"], ["lean", "0", "on"],
    ["lean", "99999999999", "on"], ["lean", "all", "off", "--level", "low"],
    ["lean", "all", "on", "--level", "none"], ["lean", "all", "on", "--level"],
    ["status", "--interval", "1"], ["watch", "--interval", "0"], ["watch", "--interval", "x"],
    ["watch", "--count", "0"], ["watch", "--count", "-1"], ["metrics", "--level", "low"],
    ["--timeout", "0", "status"], ["--timeout", "nan", "status"], ["help", "bogus"],
    ["--runtime-dir", "/" + "x" * 200, "status"],
]
for argv in bad:
    r = t.run([ctl] + argv)
    t.expect(r, 2, "usage error: hakmemctl %s" % " ".join(argv), err_has="hakmemctl: ")
    t.check(r.out == "", "usage error prints nothing on stdout: %s" % " ".join(argv), repr(r))

# --- daemon absent ---------------------------------------------------------
with t.TempDir() as tmp:
    sock = os.path.join(tmp, "control.sock")
    for c in [["status"], ["clients"], ["metrics"], ["watch", "--count", "2"],
              ["lean", "all", "on"], ["--json", "status"]]:
        r = t.run([ctl, "--runtime-dir", tmp] + c)
        want = "hakmemctl: hakmemd is not running: cannot connect to %s (No such file or directory)\n" % sock
        t.check(r.rc == 3 and r.err == want and r.out == "",
                "absent daemon: hakmemctl %s exits 3 with the message" % " ".join(c), repr(r))

    # HAKMEM_RUNTIME_DIR, and --runtime-dir over it
    r = t.run([ctl, "status"], env={"HAKMEM_RUNTIME_DIR": tmp})
    t.expect(r, 3, "HAKMEM_RUNTIME_DIR is used", err_has=sock)
    r = t.run([ctl, "--runtime-dir", tmp + "/", "status"], env={"HAKMEM_RUNTIME_DIR": "/nonexistent"})
    t.expect(r, 3, "--runtime-dir wins over HAKMEM_RUNTIME_DIR (trailing / dropped)",
             err_has="connect to %s (" % sock)

    # a stale socket: the file is there, nobody listens
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(sock)
    s.close()
    r = t.run([ctl, "--runtime-dir", tmp, "status"])
    t.expect(r, 3, "stale socket: exit 3", err_has="hakmemd is not running: cannot connect to %s "
             "(Connection refused)" % sock)

# the default directory, when neither is set (and no daemon on this host)
if not os.path.exists("/run/hakmem/control.sock"):
    r = t.run([ctl, "status"])
    t.check(r.rc == 3 and r.err == "hakmemctl: hakmemd is not running: cannot connect to "
            "/run/hakmem/control.sock (No such file or directory)\n",
            "default runtime dir /run/hakmem: exit 3 and the message", repr(r))

# --- the man page: renders without warnings, documents the exit codes ------
page = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "hakmemctl.1")
if shutil.which("groff"):
    r = t.run(["groff", "-ww", "-man", "-Tutf8", page])
    t.check(r.rc == 0 and r.err == "", "hakmemctl.1 renders without warnings", r.err)
    text = re.sub(r".\x08", "", r.out)
    for word in COMMANDS + ["--runtime-dir", "--json", "--interval", "--level", "HAKMEM_RUNTIME_DIR"]:
        t.check(word in text, "hakmemctl.1 documents %s" % word)
    exits = re.search(r"EXIT STATUS(.*?)ENVIRONMENT", text, re.S)
    t.check(exits and all(re.search(r"^\s+%d\s" % n, exits.group(1), re.M) for n in range(5)),
            "hakmemctl.1 lists exit statuses 0 to 4")
else:
    print("(groff not installed: man page not checked)")

t.done()
