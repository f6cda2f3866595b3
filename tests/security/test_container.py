#!/usr/bin/env python3
"""test_container.py: what a container's root may change.

With hakmemd's runtime dir bind-mounted at /run/hakmem, a container's root
without a user namespace is uid 0 to SO_PEERCRED. The rule: a peer in a
pid namespace other than hakmemd's may change only cgroups inside its own
memory cgroup (and processes in them), never every client; root in the
host's namespaces may change anything. The container here is `unshare
--mount --pid` (no user namespace) in a memory cgroup of its own, a child
of the test's (removed afterwards); a victim shim owned by root runs in
the test's cgroup, outside the container's.
"""
import os
import subprocess as sp
import time

import sectest as t

a, _, tmp, attack = t.setup(with_user=False)
t.need_namespaces()
child_path, child_dir, own_path = t.child_memcg("hksec-container")
t.at_cleanup(lambda: t.remove_memcg(child_dir))
run_dir = os.path.join(tmp, "run")
d = t.Daemon(a, run_dir, ["--sources", "none"])
victim = t.Victim(a, run_dir, tmp)
t.wait_registered(a, run_dir, [victim.pid])
inner_ctl = t.copy_for(t.NOBODY, a.hakmemctl, tmp)
res = os.path.join(tmp, "inner")
os.mkdir(res)
script = f"""
mount -t tmpfs tmpfs /run
mkdir /run/hakmem
mount --bind {run_dir} /run/hakmem
env -u HAKMEM_RUNTIME_DIR LD_PRELOAD={a.shim} sleep 60 &
for i in $(seq 100); do
  {inner_ctl} --json clients > {res}/clients.json 2>/dev/null
  grep -q '"comm": "sleep"' {res}/clients.json && break
  sleep 0.1
done
lean() {{ name=$1; shift; {inner_ctl} lean "$@" > {res}/$name.out 2>&1; echo $? > {res}/$name.rc; }}
lean all all on
lean other-cgroup {own_path} on
lean host-pid {victim.pid} on
lean own-cgroup {child_path} on
lean own-cgroup-auto {child_path} auto
mypid=$(python3 -c 'import json,sys; print([c["pid"] for c in json.load(open(sys.argv[1]))["clients"] if c["comm"]=="sleep"][0])' {res}/clients.json)
lean own-pid $mypid on
lean own-pid-auto $mypid auto
touch {res}/done
"""
m = t.Meter(d, [victim])
watch = t.Watch([victim])
p = t.track(sp.Popen(["sh", "-c", 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"', "sh",
                      child_dir, "unshare", "--mount", "--pid", "--fork", "--mount-proc",
                      "--kill-child", "sh", "-c", script], stdin=sp.DEVNULL, env=t.clean_env()))
deadline = time.time() + 30
while time.time() < deadline and not os.path.exists(os.path.join(res, "done")):
    watch.sample()
    time.sleep(0.05)
watch.sample()
dc, vc, ll, _ = m.read()
t.stop(p)


def result(name):
    try:
        return int(open(os.path.join(res, name + ".rc")).read()), open(
            os.path.join(res, name + ".out")).read().strip()
    except (OSError, ValueError):
        return None, ""


for name, allowed in (("all", False), ("other-cgroup", False), ("host-pid", False),
                      ("own-cgroup", True), ("own-cgroup-auto", True), ("own-pid", True),
                      ("own-pid-auto", True)):
    rc, out = result(name)
    t.report("container root: lean " + name, dc, vc, ll, "rc %s: %s" % (rc, out[:110]))
    if allowed:
        t.check(rc == 0, "container root may change its own %s" % name, out)
    else:
        t.check(rc == 4 and ("container" in out or "namespace" in out),
                "container root may not change %s (refused with a message)" % name, out)
t.check(watch.max_level == 0 and watch.lean == 0, "the host's victim stayed FAST at level none",
        "max level %d" % watch.max_level)
st = t.ctl(a, run_dir, "--json", "status")
t.check('"kind": "all"' not in st.stdout, "no host-wide override is left", st.stdout[-400:])
# root on the host may still do everything
r = t.ctl(a, run_dir, "lean", "all", "on")
t.check(r.returncode == 0, "root in the host's namespaces may force every client", r.stderr)
t.ctl(a, run_dir, "lean", "all", "auto")
victim.stop()
d.stop()
t.done()
