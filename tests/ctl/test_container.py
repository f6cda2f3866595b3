#!/usr/bin/env python3
"""test_container.py: the container set-up of the README: a shim process
in its own mount and pid namespaces (unshare), with hakmemd's runtime dir
bind-mounted at /run/hakmem and LD_PRELOAD set, in a memory cgroup of its
own (a child of the test's, removed afterwards). It must register: the
host's `hakmemctl clients --json` shows it under its host pid with the key
of that cgroup (the inode of its directory), and hakmemctl inside the
container reaches hakmemd through the bind mount (pids there are
hakmemd's, so no RSS is shown), but may not force every client (a
container's root changes only its own cgroups: tests/security). Needs root, unshare and a memory
controller (exit 77 otherwise)."""
import json
import os
import subprocess
import time

import ctltest as t

a = t.args()
t.need_daemon(a)
t.need_namespaces()

cg_path, child_dir, own_path = t.child_memcg("hakmemctl-test")

with t.TempDir() as tmp:
    run_dir = os.path.join(tmp, "run")
    d = t.Daemon(a.hakmemd, run_dir)
    proc = None
    try:
        cg_key = os.stat(child_dir).st_ino
        inner_ctl = t.copy_for_nobody(a.hakmemctl, tmp)
        # inside: /run is a tmpfs of the container's own, /run/hakmem the
        # host's runtime dir; the client knows nothing but the default path
        script = f"""
set -e
mount -t tmpfs tmpfs /run
mkdir /run/hakmem
mount --bind {run_dir} /run/hakmem
env -u HAKMEM_RUNTIME_DIR LD_PRELOAD={a.shim} sleep 120 &
echo $! > {tmp}/inner_pid
readlink /proc/self/ns/pid > {tmp}/inner_ns
for i in $(seq 100); do
  {inner_ctl} --json clients > {tmp}/inner_clients.json 2> {tmp}/inner_err || true
  grep -q '"comm": "sleep"' {tmp}/inner_clients.json && break
  sleep 0.1
done
{inner_ctl} --json status > {tmp}/inner_status.json 2>> {tmp}/inner_err || true
{inner_ctl} lean all on > {tmp}/inner_lean 2>&1 || true
touch {tmp}/ready
wait
"""
        # the cgroup is joined before unshare, so everything inside is in it
        proc = subprocess.Popen(
            ["sh", "-c", 'd=$1; shift; echo $$ > "$d/cgroup.procs" && exec "$@"', "sh", child_dir,
             "unshare", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child",
             "sh", "-c", script], stdin=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline and not os.path.exists(os.path.join(tmp, "ready")):
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        if not t.check(os.path.exists(os.path.join(tmp, "ready")), "the container came up",
                       "exit %r; %s" % (proc.poll(), open(os.path.join(tmp, "inner_err")).read()
                                        if os.path.exists(os.path.join(tmp, "inner_err")) else "")):
            raise SystemExit(1)
        inner_pid = int(open(os.path.join(tmp, "inner_pid")).read())

        ctl = [a.hakmemctl, "--runtime-dir", run_dir]
        r, v = t.poll_json(ctl + ["--json", "clients"],
                           lambda v: any(c["comm"] == "sleep" for c in v["clients"]))
        mine = [c for c in (v or {"clients": []})["clients"] if c["comm"] == "sleep"]
        t.check(len(mine) == 1, "the container's shim process registered", repr(r))
        if mine:
            c = mine[0]
            host_pid = c["pid"]
            with open("/proc/%d/status" % host_pid) as f:
                nspid = [l.split()[1:] for l in f if l.startswith("NSpid:")][0]
            t.check(nspid == [str(host_pid), str(inner_pid)],
                    "its pid is the host's (%d), %d inside the container" % (host_pid, inner_pid),
                    str(nspid))
            t.check(os.readlink("/proc/%d/ns/pid" % host_pid) != os.readlink("/proc/self/ns/pid")
                    and os.readlink("/proc/%d/ns/mnt" % host_pid) != os.readlink("/proc/self/ns/mnt"),
                    "it runs in its own pid and mount namespaces")
            t.check(c["cgroup_key"] == cg_key,
                    "registered under the container's memory cgroup (key %d = inode of %s)"
                    % (cg_key, child_dir), str(c))
            t.check(c["cgroup_path"] == cg_path, "status names that cgroup %s" % cg_path, str(c))
            t.check(isinstance(c["rss_bytes"], int), "the host's hakmemctl shows its RSS", str(c))

        # hakmemctl inside the container, through the bind mount
        try:
            iv = json.load(open(os.path.join(tmp, "inner_clients.json")))
            ist = json.load(open(os.path.join(tmp, "inner_status.json")))
        except (OSError, ValueError) as e:
            iv, ist = None, None
            t.check(False, "hakmemctl inside the container answered", str(e))
        if iv and ist:
            ic = [c for c in iv["clients"] if c["comm"] == "sleep"]
            t.check(ist["pid"] == d.p.pid and ist["clients"] == 1,
                    "inside: status through /run/hakmem (hakmemd's pid as the host sees it)", str(ist))
            t.check(ic and ic[0]["cgroup_key"] == cg_key and ic[0]["rss_bytes"] is None,
                    "inside: clients lists it, no RSS (pids are hakmemd's namespace's)", str(iv))
        lean_out = open(os.path.join(tmp, "inner_lean")).read()
        t.check("permission denied" in lean_out and "container" in lean_out,
                "inside: root in the container (uid 0 to SO_PEERCRED, another pid namespace) "
                "may not force every client (tests/security covers its own cgroups)", lean_out)
    finally:
        if proc and proc.poll() is None:
            proc.kill()  # unshare --kill-child takes the container with it
        if proc:
            proc.wait()
        d.stop()
        t.remove_memcg(child_dir)

t.done()
