#!/usr/bin/env python3
"""test_many.py: hakmemd with many clients (200 shim processes): answers
that take dozens of datagrams, more than a socket buffer holds at once
(about 26 datagrams of 4 KiB here), must still arrive whole: clients lists
every process, metrics carries a series per client and passes the
exposition check, also when the reader starts reading late (checked on the
raw protocol, since hakmemctl itself reads at once). Needs root (exit 77
otherwise)."""
import os
import socket
import sys
import time

import ctltest as t
import fakehakmemd as fk
import promcheck

N = int(sys.argv[sys.argv.index("--n") + 1]) if "--n" in sys.argv else 200
if "--n" in sys.argv:
    i = sys.argv.index("--n")
    del sys.argv[i:i + 2]



def slow_read(path, command, delay):
    """One request on control.sock, then a pause before reading. (whether the
    last datagram came, datagrams, payload bytes)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    s.send(fk.REQ.pack(fk.REQ_MAGIC, fk.VERSION, fk.REQ.size, command, 0, 0, 0, 0, 0, 0))
    time.sleep(delay)
    s.settimeout(5)
    n = size = 0
    try:
        while True:
            d = s.recv(fk.MSG_MAX + 1)
            if not d:
                return False, n, size
            h = fk.RESP.unpack_from(d)
            n += 1
            size += h[8]
            if not h[5] & fk.F_MORE:
                return True, n, size
    except OSError:
        return False, n, size
    finally:
        s.close()


a = t.args()
t.need_daemon(a)

with t.TempDir() as tmp:
    run_dir = os.path.join(tmp, "run")
    d = t.Daemon(a.hakmemd, run_dir)
    cl = t.Clients()
    ctl = [a.hakmemctl, "--runtime-dir", run_dir]
    try:
        procs = [cl.spawn(a.shim, run_dir) for _ in range(N)]
        pids = {p.pid for p in procs}
        r, v = t.poll_json(ctl + ["--json", "status"], lambda v: v["clients"] == N, timeout=30,
                           interval=0.5)
        t.check(v and v["clients"] == N, "%d clients registered" % N, repr(r)[:500])

        r = t.run(ctl + ["--json", "clients"])
        t.expect(r, 0, "clients --json with %d clients (%d bytes of records)" % (N, N * 312),
                 err_empty=True)
        v = t.parse_json(r, "clients --json")
        t.check(v and {c["pid"] for c in v["clients"]} == pids, "clients: every pid, once each")

        r = t.run(ctl + ["metrics", "--per-process"])
        t.expect(r, 0, "metrics --per-process with %d clients" % N, err_empty=True)
        if r.rc == 0:
            print("(metrics: %d bytes)" % len(r.out))
            p = promcheck.problems(r.out)
            t.check(not p, "metrics: exposition check", "\n".join(p[:20]))
            seen = {int(x.split('pid="')[1].split('"')[0]) for x in r.out.splitlines()
                    if x.startswith("hakmem_client_mode{")}
            t.check(seen == pids, "metrics: hakmem_client_mode for every client",
                    "%d of %d" % (len(seen & pids), N))
        # a reader that is slow to start reading (a loaded machine, a pipe):
        # the answer must still come whole, ending with a datagram without
        # HAKMEM_CTL_F_MORE, whatever the socket buffer holds at once
        for cmd, name in [(fk.CLIENTS, "CLIENTS"), (fk.METRICS, "METRICS"), (fk.STATUS, "STATUS")]:
            whole, n, size = slow_read(os.path.join(run_dir, "control.sock"), cmd, 0.5)
            t.check(whole, "%s read 0.5 s late: the whole answer (%d datagrams, %d bytes so far)"
                    % (name, n, size))
        r = t.run(ctl + ["watch", "--count", "1"])
        t.expect(r, 0, "watch --count 1 with %d clients" % N)
    finally:
        cl.end()
        d.stop()

t.done()
