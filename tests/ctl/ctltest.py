"""ctltest.py: what the tests of tests/ctl share: the command line they
get from meson (paths of hakmemctl, hakmemd, the shim, the build tree),
running hakmemctl and checking its exit status, stdout and stderr,
skipping with exit 77 and a reason, and a short temporary directory
(socket paths must fit sun_path, and the shim's HAKMEM_RUNTIME_DIR 95
bytes) that nobody else can write but everybody can enter.

Each check prints one "ok"/"FAIL" line; a test exits 1 if any failed.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77
failures = 0
checks = 0

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_RUNNING, EXIT_DENIED = 0, 1, 2, 3, 4


def args():
    p = argparse.ArgumentParser()
    p.add_argument("--hakmemctl", required=True)
    p.add_argument("--hakmemd", default="")
    p.add_argument("--shim", default="")
    p.add_argument("--build-root", default="")
    p.add_argument("--unit", default="")
    p.add_argument("--exporter-unit", default="")
    p.add_argument("--dropin", default="")
    p.add_argument("--attack", default="", help="tests/security's sec_attack")
    return p.parse_args()


def skip(reason):
    print("SKIP: " + reason)
    sys.exit(SKIP)


def check(cond, what, detail=""):
    global failures, checks
    checks += 1
    if cond:
        print("ok   " + what)
    else:
        failures += 1
        print("FAIL " + what + (": " + detail if detail else ""))
    return cond


def done():
    print("%d checks, %d failed" % (checks, failures))
    sys.exit(1 if failures else 0)


class Result:
    def __init__(self, p):
        self.rc, self.out, self.err = p.returncode, p.stdout, p.stderr

    def __repr__(self):
        return "rc=%d stdout=%r stderr=%r" % (self.rc, self.out[-2000:], self.err[-2000:])

    def json(self):
        return json.loads(self.out)


def run(cmd, env=None, user=None, timeout=30, stdin=subprocess.DEVNULL):
    """cmd as a list; user: run as nobody (uid/gid 65534, no groups)."""
    if user:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + cmd
    e = dict(os.environ)
    e.pop("HAKMEM_RUNTIME_DIR", None)
    e.pop("LD_PRELOAD", None)
    if env:
        e.update(env)
    p = subprocess.run(cmd, env=e, stdin=stdin, capture_output=True, text=True,
                       errors="replace", timeout=timeout)
    return Result(p)


def expect(res, rc, what, out_has=None, err_has=None, err_empty=False):
    ok = res.rc == rc
    if out_has is not None:
        ok = ok and out_has in res.out
    if err_has is not None:
        ok = ok and err_has in res.err
    if err_empty:
        ok = ok and res.err == ""
    return check(ok, what, repr(res))


def parse_json(res, what):
    try:
        v = res.json()
    except ValueError as e:
        check(False, what + ": valid JSON", "%s; %r" % (e, res))
        return None
    check(True, what + ": valid JSON")
    return v


class TempDir:
    """A short directory, mode 0755 (so that an unprivileged user can reach
    sockets in it), removed at exit."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="hkctl.", dir="/tmp")
        os.chmod(self.path, 0o755)

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


def copy_for_nobody(path, tmp):
    """A copy of an executable that uid 65534 can run whatever the mode of
    the build tree."""
    dst = os.path.join(tmp, os.path.basename(path))
    shutil.copy2(path, dst)
    os.chmod(dst, 0o755)
    return dst


def need_namespaces():
    """Skips (77) unless unshare can make mount and pid namespaces here."""
    for tool in ("unshare", "mount"):
        if not shutil.which(tool):
            skip("%s (util-linux) not installed" % tool)
    probe = subprocess.run(["unshare", "--mount", "--pid", "--fork", "--mount-proc", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        skip("cannot create mount and pid namespaces here: " + probe.stderr.strip())


def can_switch_user():
    if os.geteuid() != 0:
        return "not root: cannot run a command as nobody"
    if not shutil.which("setpriv"):
        return "setpriv (util-linux) not installed"
    return None


# --- a real hakmemd and real shim clients ---------------------------------

import signal  # noqa: E402
import subprocess as sp  # noqa: E402
import time  # noqa: E402


def need_daemon(a):
    if not a.hakmemd or not os.access(a.hakmemd, os.X_OK):
        skip("hakmemd is not built (it needs libbpf, clang, bpftool and libseccomp)")
    if os.geteuid() != 0:
        skip("needs root: hakmemd reads every client's cgroup, and the checks switch users")
    if not a.shim or not os.path.exists(a.shim):
        skip("the shim (libhakmem.so) is not built")


class Daemon:
    """hakmemd --runtime-dir DIR in the background, its log in DIR/../hakmemd.log."""

    def __init__(self, hakmemd, run_dir, extra=()):
        self.run_dir = run_dir
        self.log_path = os.path.join(os.path.dirname(run_dir), "hakmemd.log")
        self.log = open(self.log_path, "w")
        self.p = sp.Popen([hakmemd, "--runtime-dir", run_dir] + list(extra), stdin=sp.DEVNULL,
                          stdout=self.log, stderr=sp.STDOUT)
        self.sock = os.path.join(run_dir, "control.sock")
        deadline = time.time() + 15
        while time.time() < deadline and self.p.poll() is None:
            if os.path.exists(self.sock):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("hakmemd did not come up:\n" + self.log_text())

    def log_text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        stop_process(self.p, signal.SIGTERM, 10)
        self.log.close()
        return self.p.returncode


def stop_process(p, sig=signal.SIGTERM, timeout=10):
    """Sends sig to p (a Popen) if it still runs, waits up to timeout
    seconds, then kills it. Its exit status."""
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except sp.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


class Clients:
    """Shim processes (sleep under LD_PRELOAD) started by the test, ended by
    pid at the end."""

    def __init__(self):
        self.procs = []

    def spawn(self, shim, run_dir, seconds=120, env=None):
        e = dict(os.environ, LD_PRELOAD=shim, HAKMEM_RUNTIME_DIR=run_dir)
        e.update(env or {})
        p = sp.Popen(["sleep", str(seconds)], env=e, stdin=sp.DEVNULL)
        self.procs.append(p)
        return p

    def end(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            p.wait()
        self.procs = []


def poll_json(cmd, pred, timeout=10, interval=0.1):
    """Runs cmd (hakmemctl ... --json) until pred(json) holds; the last
    (result, json)."""
    deadline = time.time() + timeout
    r, v = None, None
    while True:
        r = run(cmd)
        try:
            v = r.json() if r.rc == 0 else None
        except ValueError:
            v = None
        if v is not None and pred(v):
            return r, v
        if time.time() > deadline:
            return r, v
        time.sleep(interval)


def child_memcg(tag):
    """A memory cgroup of our own below ours, named TAG-PID: (its path in the
    hierarchy, its directory, our own path). Skips (77) when it cannot be
    made; remove it with remove_memcg."""
    own_path, own_dir = memcg_of(os.getpid())
    child_dir = os.path.join(own_dir, "%s-%d" % (tag, os.getpid()))
    try:
        os.mkdir(child_dir)
    except OSError as e:
        skip("cannot create a child memory cgroup under %s: %s" % (own_dir, e))
    return own_path.rstrip("/") + "/" + os.path.basename(child_dir), child_dir, own_path


def remove_memcg(child_dir):
    """Removes a cgroup of ours once its processes are gone (up to 5 s)."""
    for _ in range(50):
        try:
            os.rmdir(child_dir)
            return
        except OSError:
            time.sleep(0.1)
    print("warning: could not remove %s" % child_dir)


def memcg_of(pid):
    """(path inside the hierarchy, directory) of pid's memory cgroup: the v1
    memory line first, else the v2 line."""
    v1 = v2 = None
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            hid, ctrls, path = line.rstrip("\n").split(":", 2)
            if "memory" in ctrls.split(","):
                v1 = path
            elif hid == "0" and ctrls == "":
                v2 = path
    if v1 is not None:
        return v1, "/sys/fs/cgroup/memory" + (v1 if v1 != "/" else "")
    base = "/sys/fs/cgroup" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") \
        else "/sys/fs/cgroup/unified"
    return v2, base + (v2 if v2 != "/" else "")
