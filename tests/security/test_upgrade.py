#!/usr/bin/env python3
"""test_upgrade.py: shims outlive a daemon upgrade.

A client of the previous protocol (version 1, main's layout before this
work, frozen in tests/security/proto_v1.h: hello, welcome, ring checks and
a stats page with counters in the old order) registers with today's
hakmemd: it must be welcomed in its own version, follow the ring (an
operator's level reaches it), and its counters must show under their
right names in `clients --json` and in the metrics. A control request of
version 1 gets an answer it can read that says why it is not served.
"""
import json
import os
import socket
import struct
import time

import sectest as t

V1_ORDER = ["lean_decommit", "lean_retire", "madvise_calls", "mmap_calls", "munmap_calls",
            "bytes_decommitted", "bytes_committed", "bytes_in_use", "superslabs_live",
            "superslabs_cached", "mode_switches"]

a, _, tmp, attack = t.setup(with_user=False)
run_dir = os.path.join(tmp, "run")
d = t.Daemon(a, run_dir, ["--sources", "none"])
status = os.path.join(tmp, "old.status")
old = t.spawn_as(None, [attack, "old-client", run_dir, "20", status])


def old_level():
    try:
        return int(open(status).read().split()[1])
    except (OSError, ValueError, IndexError):
        return None


deadline = time.time() + 5
while time.time() < deadline and old_level() is None:
    time.sleep(0.05)
t.check(old_level() == 0, "the v1 client was welcomed and follows the ring (level none)",
        old.stdout.peek() if hasattr(old.stdout, "peek") else "")
cl = [c for c in t.clients(a, run_dir) if c["pid"] == old.pid]
t.check(len(cl) == 1, "clients lists the v1 client", json.dumps(t.clients(a, run_dir)))
if cl:
    c = cl[0]
    want = {name: 1000 + i for i, name in enumerate(V1_ORDER)}
    got = {k: c["counters"].get(k) for k in want}
    t.check(got == want, "its v1 counters show under their names", "got %s" % got)
    t.check(c["mode"] == "lean" and c["comm"] == "old-shim", "its mode and name", json.dumps(c))
r = t.ctl(a, run_dir, "lean", str(old.pid), "on", "--level", "medium")
deadline = time.time() + 3
while time.time() < deadline and old_level() != 2:
    time.sleep(0.05)
t.check(old_level() == 2, "an operator's level reaches the v1 client", r.stderr)
r = t.ctl(a, run_dir, "lean", str(old.pid), "auto")
deadline = time.time() + 3
while time.time() < deadline and old_level() != 0:
    time.sleep(0.05)
t.check(old_level() == 0, "and its clearing", r.stderr)
met = t.ctl(a, run_dir, "metrics", "--per-process").stdout
line = [l for l in met.splitlines() if l.startswith("hakmem_client_madvise_calls_total{")
        and 'pid="%d"' % old.pid in l]
t.check(line and line[0].endswith(" 1002"), "its madvise_calls in the metrics", "\n".join(line))

# a v1 control request: magic HKCQ, version 1, size 40, STATUS
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(os.path.join(run_dir, "control.sock"))
magic = struct.unpack("<I", b"HKCQ")[0]
s.send(struct.pack("<IIIHHIIQII", magic, 1, 40, 1, 0, 0, 0, 0, 0, 0))
s.settimeout(3)
resp = s.recv(4096)
s.close()
rmagic, rver, rsize, rstatus = struct.unpack("<IIIi", resp[:16])
t.check(rmagic == struct.unpack("<I", b"HKCR")[0] and rver == 1 and rstatus == -93,
        "a v1 control request gets a v1 answer: protocol not supported",
        "version %d status %d" % (rver, rstatus))
t.stop(old)
t.log(old.stdout.read())
d.stop()
t.done()
