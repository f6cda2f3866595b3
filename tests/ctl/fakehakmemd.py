"""fakehakmemd.py: a stand-in for hakmemd's control socket, for testing
hakmemctl on its own: the layouts of proto/hakmem_proto.h packed with
struct, answers split over many datagrams (text cut in the middle of a
line, records across datagrams), the LEAN permission rule (root only),
and broken daemons (garbage, silence, early close, another version).

Owns: nothing of the product; it only plays the daemon's part of the
protocol as proto/hakmem_proto.h describes it. Must not: be used outside
the tests.
"""
import errno
import os
import socket
import struct
import threading


def magic4(s):
    return struct.unpack("<I", s.encode())[0]


REQ_MAGIC = magic4("HKCQ")
RESP_MAGIC = magic4("HKCR")
VERSION = 2
MSG_MAX = 4096
REQ = struct.Struct("<IIIHHIIQII")            # struct hakmem_ctl_req, 40 bytes
RESP = struct.Struct("<IIIiHHHHII")           # struct hakmem_ctl_resp, 32 bytes
CGROUP = struct.Struct("<QQBBHIQQQQII")       # struct hakmem_ctl_cgroup, 64 bytes
CLIENT = struct.Struct("<QQQIIBBBBI16s32Q")   # struct hakmem_ctl_client, 312 bytes
assert (REQ.size, RESP.size, CGROUP.size, CLIENT.size) == (40, 32, 64, 312)

STATUS, CLIENTS, LEAN, METRICS = 1, 2, 3, 4
P_NONE, P_TEXT, P_CGROUPS, P_CLIENTS = 0, 1, 2, 3
F_MORE = 1
F_PER_PROCESS = 1                              # HAKMEM_CTL_REQ_F_PER_PROCESS (request flags)
KEY_PID_BIT = 1 << 63
LEVELS = ["none", "low", "medium", "critical"]
REASON_OVERRIDE, REASON_STARTUP = 6, 7
# HAKMEM_COUNTERS (shim/include/hakmem.h), in order: the record's counter[] index
COUNTERS = ["mmap_calls", "munmap_calls", "madvise_calls", "superslabs_live", "superslabs_cached",
            "large_live", "large_cached", "bytes_in_use", "bytes_committed", "bytes_decommitted",
            "lean_decommit", "lean_retire", "mode_switches", "mode", "level", "guard_allocs",
            "lean_decommit_eager", "tcache_stolen", "bytes_lazy", "depot_spills"]
N_STATS = len(COUNTERS)


def resp(command, status=0, ptype=P_NONE, payload=b"", more=False, record_size=None):
    if record_size is None:
        record_size = {P_CGROUPS: CGROUP.size, P_CLIENTS: CLIENT.size}.get(ptype, 0)
    return RESP.pack(RESP_MAGIC, VERSION, RESP.size + len(payload), status, command,
                     F_MORE if more else 0, ptype, record_size, len(payload), 0) + payload


class FakeDaemon:
    """Serves RUNTIME_DIR/control.sock in a thread. mode: normal, garbage,
    silent, close, version, bigtext, badtext, noflags (refuses requests with
    flags, as hakmemd did before the per-process flag)."""

    def __init__(self, runtime_dir, mode="normal", cgroups=None, clients=None):
        self.dir = runtime_dir
        self.mode = mode
        self.path = os.path.join(runtime_dir, "control.sock")
        # cgroups: {key: path}; clients: [(pid, comm, cgroup_key)]
        self.cgroups = cgroups or {4242: "/sys/fs/cgroup/memory/a b/c", 77: "/sys/fs/cgroup/memory/x"}
        self.clients = clients or [(os.getpid(), "python3", 4242)] + \
            [(100000 + i, "worker%d" % i, 77) for i in range(20)]
        self.overrides = {}  # key -> (mode, level)
        self.requests = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)
        self.sock.listen(16)
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def close(self):
        self.stop = True
        try:
            socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).connect(self.path)
        except OSError:
            pass
        self.thread.join(5)
        self.sock.close()
        os.unlink(self.path)

    def serve(self):
        while not self.stop:
            conn, _ = self.sock.accept()
            if self.stop:
                conn.close()
                break
            try:
                self.handle(conn)
            except OSError:
                pass
            finally:
                conn.close()

    # -- answers ------------------------------------------------------------

    def status_text(self):
        lines = ["version 9.9.9-fake", "pid %d" % os.getpid(), "uptime_s 3725",
                 "clients %d" % len(self.clients), "source bpf on",
                 "source psi off no PSI trigger here: v1 memory controller",
                 "source usage on", "bpf_ringbuf_dropped 3", "bpf_cgroup_table_full 0",
                 "psi_some_avg10 1.25", "psi_some_avg60 0.50",
                 "psi_full_avg10 0.00", "psi_full_avg60 0.00", "future_field 1 2 3"]
        for key, path in sorted(self.cgroups.items()):
            lines.append("cgroup %d %s %.2f" % (key, path, key / 100.0))
        if self.mode == "badtext":
            lines += ["pid notanumber", "cgroup 12"]
        text = ("\n".join(lines) + "\n").encode()
        if self.mode == "weird":
            # bytes another process may put in a path or a name
            text += (b"cgroup 4242 /a\xff\xfe\x01\"q\"\\\t\xe2\x82 b\x1b[2J\xc2\x9b 1.5\n"
                     b"x\x00y 1\nversion \xc3\x28\x1b]0;title\x07\n")
        return text

    def cgroup_records(self):
        recs = []
        for key in sorted(self.cgroups):
            mode, level = self.overrides.get(key, (0, 0))
            recs.append(CGROUP.pack(key, 123456789, level if mode == 1 else 0,
                                    1 if mode else 0,
                                    REASON_OVERRIDE if mode else REASON_STARTUP,
                                    sum(1 for c in self.clients if c[2] == key),
                                    key * 10, key * 1000, 64 << 20, 256 << 20 if key == 4242 else 0,
                                    125, 0))
        for key, (mode, level) in sorted(self.overrides.items()):
            if key in self.cgroups:
                continue
            recs.append(CGROUP.pack(key, 1, level if mode == 1 else 0, 1, REASON_OVERRIDE,
                                    0, 0, 0, 0, 0, 0, 0))
        return recs

    def client_records(self):
        recs = []
        for pid, comm, key in self.clients:
            counters = [i * 1000 + pid % 7 for i in range(N_STATS)] + [0] * (32 - N_STATS)
            mode, _ = self.overrides.get(KEY_PID_BIT | pid, (0, 0))
            name = comm.encode()[:15]
            if self.mode == "weird":
                name = b"\xff\x80\"\\\x07abcdefghijklm"  # 16 bytes, no NUL
            recs.append(CLIENT.pack(key, 1000, 2000, pid, 0, 1 if mode == 1 else 0, 1, mode,
                                    2, (1 << N_STATS) - 1, name, *counters))
        return recs

    def send_chunks(self, conn, command, ptype, data, chunk):
        pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] or [b""]
        for i, p in enumerate(pieces):
            conn.send(resp(command, 0, ptype, p, more=True))

    def handle(self, conn):
        data = conn.recv(MSG_MAX + 1)
        if len(data) != REQ.size:
            return
        magic, version, size, command, flags, target, mode, key, level, _ = REQ.unpack(data)
        self.requests.append((command, target, mode, key, level, flags))
        if self.mode == "silent":
            conn.recv(1)  # until the client gives up
            return
        if self.mode == "close":
            return
        if self.mode == "garbage":
            conn.send(b"\x00" * 40)
            return
        if self.mode == "version":
            r = bytearray(resp(command))
            struct.pack_into("<I", r, 4, VERSION + 1)
            conn.send(bytes(r))
            return
        if self.mode == "noflags" and flags:
            conn.send(resp(command, -errno.EINVAL))
            return
        if self.mode == "wrongcmd":
            conn.send(resp(METRICS if command != METRICS else STATUS))
            return
        if command == STATUS:
            # text cut every 50 bytes (in the middle of lines), records two
            # per datagram, then an empty last datagram
            self.send_chunks(conn, command, P_TEXT, self.status_text(), 50)
            recs = self.cgroup_records()
            for i in range(0, len(recs), 2):
                conn.send(resp(command, 0, P_CGROUPS, b"".join(recs[i:i + 2]), more=True))
            conn.send(resp(command))
        elif command == CLIENTS:
            recs = self.client_records()
            per = (MSG_MAX - RESP.size) // CLIENT.size
            for i in range(0, len(recs), per):
                last = i + per >= len(recs)
                conn.send(resp(command, 0, P_CLIENTS, b"".join(recs[i:i + per]), more=not last))
            if not recs:
                conn.send(resp(command))
        elif command == METRICS:
            # as hakmemd: the per-process family only when the request asks
            per_process = ("# HELP hakmem_client_mode Mode per process.\n"
                           "# TYPE hakmem_client_mode gauge\n"
                           'hakmem_client_mode{comm="a\\",pid=\\"1",pid="7",cgroup="/a"} 1\n')
            text = ("# HELP hakmem_clients Clients connected.\n# TYPE hakmem_clients gauge\n"
                    "hakmem_clients %d\n"
                    "# HELP hakmem_cgroup_level Pressure level (0 none .. 3 critical).\n"
                    "# TYPE hakmem_cgroup_level gauge\n"
                    'hakmem_cgroup_level{cgroup="/a \\"b\\"\\\\c"} 2\n'
                    "# HELP hakmem_odd A cgroup label that says pid.\n"
                    "# TYPE hakmem_odd gauge\n"
                    'hakmem_odd{cgroup="pid=\\"3\\""} 1\n'
                    "# HELP hakmem_up_seconds Seconds since start.\n"
                    "# TYPE hakmem_up_seconds gauge\nhakmem_up_seconds +Inf\n" % len(self.clients))
            if flags & F_PER_PROCESS:
                text += per_process
            if self.mode == "bigtext":
                text = "# " + "x" * 20000 + "\n" + text
            self.send_chunks(conn, command, P_TEXT, text.encode(), 1000)
            conn.send(resp(command))
        elif command == LEAN:
            uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                      12))[1]
            if uid != 0:
                conn.send(resp(command, -errno.EPERM))
                return
            if target == 2 and not any(c[0] == key for c in self.clients):
                conn.send(resp(command, -errno.ENOENT))
                return
            if target == 1 and key not in self.cgroups:
                conn.send(resp(command, -errno.ENOENT))
                return
            k = 0 if target == 0 else (KEY_PID_BIT | key if target == 2 else key)
            if mode == 0:
                self.overrides.pop(k, None)
            else:
                self.overrides[k] = (mode, level or 1)
            conn.send(resp(command))
