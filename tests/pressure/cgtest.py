"""cgtest.py: what the pressure tests share: this process's memory cgroup
on either hierarchy, child cgroups made and removed, processes started in
them, waiting, and the files that differ between v1 and v2.

v1 (hybrid hosts): the memory controller's hierarchy at
/sys/fs/cgroup/memory; limit memory.limit_in_bytes, usage
memory.usage_in_bytes, limit hits memory.failcnt.
v2: the cgroup at /sys/fs/cgroup; limit memory.max (and memory.high),
usage memory.current, limit hits memory.events "max". A v2 cgroup passes
the memory controller to its children only through its
cgroup.subtree_control, which a cgroup holding processes of its own
(other than the root) may not change: then the tests skip, saying so.
"""
import os
import subprocess
import sys
import time


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(77)


def own_memcg():
    """(version, directory) of this process's memory cgroup, able to have
    children with a memory limit; (None, reason) when there is none."""
    v1 = "/sys/fs/cgroup/memory"
    lines = [l.rstrip("\n").split(":", 2) for l in open("/proc/self/cgroup")]
    for hid, ctrls, path in lines:
        if "memory" in ctrls.split(",") and os.path.isdir(v1):
            return 1, v1 + path
    for hid, ctrls, path in lines:
        if hid != "0":
            continue
        base = ("/sys/fs/cgroup" + path).rstrip("/")
        try:
            if "memory" not in open("/sys/fs/cgroup/cgroup.controllers").read().split():
                return None, "cgroup2 has no memory controller"
            if "memory" not in open(base + "/cgroup.subtree_control").read().split():
                with open(base + "/cgroup.subtree_control", "w") as fh:
                    fh.write("+memory")
        except OSError as e:
            return None, (f"cgroup v2: {base} cannot pass the memory controller to children "
                          f"({e.strerror}: it holds other processes); run in a cgroup of its "
                          "own, e.g. systemd-run --scope -p Delegate=yes")
        return 2, base
    return None, "no memory controller (v1 /sys/fs/cgroup/memory or v2) for this process"


def setup():
    """(hakmemd, libhakmem, pressure_client) from argv, version, parent:
    what every pressure test starts with; skips (77) without root or a
    memory cgroup that may have children."""
    paths = tuple(os.path.abspath(a) for a in sys.argv[1:4])
    if os.geteuid() != 0:
        skip("needs root (memory cgroups and hakmemd's sources)")
    version, parent = own_memcg()
    if not version:
        skip(parent)
    return paths, version, parent


class Cgroups:
    """Child cgroups made for a test, removed on close (also on failure)."""

    def __init__(self, version, parent):
        self.version, self.parent, self.dirs = version, parent, []

    def make(self, name, limit=None, high=None, under=None):
        """A child cgroup of the test's own (or of under, one made here
        before: on v2 it passes the memory controller down to it)."""
        if under is None:
            d = os.path.join(self.parent, f"hakmem-test-{os.getpid()}-{name}")
        else:
            if self.version == 2:
                self.write(under, "cgroup.subtree_control", "+memory")
            d = os.path.join(under, name)
        os.mkdir(d)
        self.dirs.append(d)
        if limit is not None:
            self.write(d, "memory.limit_in_bytes" if self.version == 1 else "memory.max", limit)
        if high is not None:
            assert self.version == 2, "memory.high is v2's"
            self.write(d, "memory.high", high)
        return d

    @staticmethod
    def write(d, name, value):
        with open(os.path.join(d, name), "w") as fh:
            fh.write(str(value))

    def usage(self, d):
        f = "memory.usage_in_bytes" if self.version == 1 else "memory.current"
        return int(open(os.path.join(d, f)).read())

    def limit_hits(self, d):
        """v1 memory.failcnt; v2 memory.events "max"."""
        if self.version == 1:
            return int(open(os.path.join(d, "memory.failcnt")).read())
        return events(d)["max"]

    def close(self):
        for d in reversed(self.dirs):
            procs = os.path.join(d, "cgroup.procs")
            for _ in range(100):
                try:
                    pids = open(procs).read().split()
                except OSError:
                    break
                for pid in pids:
                    try:
                        os.kill(int(pid), 9)
                    except OSError:
                        pass
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    time.sleep(0.05)


def events(d):
    """v2 memory.events as a dict."""
    return {k: int(v) for k, v in (l.split() for l in open(os.path.join(d, "memory.events")))}


def start_in(cgdir, argv, env=None, **kw):
    """Start argv inside cgroup cgdir (moved in before exec)."""
    def enter():
        with open(os.path.join(cgdir, "cgroup.procs"), "w") as fh:
            fh.write(str(os.getpid()))
    return subprocess.Popen(argv, env=env if env is not None else dict(os.environ),
                            preexec_fn=enter, **kw)


def wait_ready(hkctl, run, timeout):
    """Waits until the hakmemd of runtime dir run answers STATUS: control.sock
    exists before its sources are set up (loading BPF takes seconds under
    emulation), and a request sent then waits for all of that."""
    def answered():
        if not os.path.exists(f"{run}/control.sock"):
            return False
        try:
            hkctl.request(run, hkctl.STATUS, timeout=1.0)
            return True
        except OSError:
            return False
    wait_for(answered, timeout, "hakmemd to answer STATUS", step=0.05)


def wait_for(cond, timeout, what, step=0.01):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


def big_file(path, mb):
    """A file of mb MiB on the disk, out of the page cache: whoever reads it
    next is charged for its pages."""
    with open(path, "wb") as fh:
        chunk = os.urandom(1 << 20)
        for _ in range(mb):
            fh.write(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    return path
