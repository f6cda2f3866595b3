"""hkctl.py: a minimal client of hakmemd's control socket for the tests
(layouts from proto/hakmem_proto.h; hakmemctl is the real tool). Only
what the pressure tests read: STATUS and CLIENTS records, and LEAN."""
import socket
import struct

MAGIC_REQ = 0x5143_4B48   # 'H','K','C','Q' little-endian
MAGIC_RESP = 0x5243_4B48  # 'H','K','C','R'
VERSION = 2  # HAKMEM_PROTO_VERSION
STATUS, CLIENTS, LEAN, METRICS = 1, 2, 3, 4
F_MORE = 1
PAYLOAD_TEXT, PAYLOAD_CGROUPS, PAYLOAD_CLIENTS = 1, 2, 3
TARGET_ALL, TARGET_CGROUP, TARGET_PID = 0, 1, 2
MODE_AUTO, MODE_ON, MODE_OFF = 0, 1, 2

REQ = struct.Struct("<IIIHHIIQII")        # 40 bytes
RESP = struct.Struct("<IIIiHHHHII")       # 32 bytes
CGROUP = struct.Struct("<QQBBHIQQQQII")   # 64 bytes
CLIENT = struct.Struct("<QQQIIBBBBI16s32Q")  # 312 bytes
STATS = ["mmap_calls", "munmap_calls", "madvise_calls", "superslabs_live", "superslabs_cached",
         "large_live", "large_cached", "bytes_in_use", "bytes_committed", "bytes_decommitted",
         "lean_decommit", "lean_retire", "mode_switches", "mode", "level"]  # HAKMEM_COUNTERS
assert REQ.size == 40 and RESP.size == 32 and CGROUP.size == 64 and CLIENT.size == 312


class CtlError(Exception):
    def __init__(self, status):
        super().__init__(f"hakmemd answered status {status}")
        self.status = status


def request(runtime_dir, command, target=0, mode=0, key=0, level=0, timeout=2.0):
    """Send one request; return (text, [records bytes]) or raise CtlError."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(timeout)
    try:
        s.connect(f"{runtime_dir}/control.sock")
        s.send(REQ.pack(MAGIC_REQ, VERSION, REQ.size, command, 0, target, mode, key, level, 0))
        text, recs = b"", b""
        while True:
            dgram = s.recv(4096)
            if len(dgram) < RESP.size:
                raise CtlError(-71)
            magic, ver, size, status, cmd, flags, ptype, rsize, plen, _ = RESP.unpack_from(dgram)
            if magic != MAGIC_RESP or size != len(dgram) or plen != size - RESP.size:
                raise CtlError(-71)
            if status != 0:
                raise CtlError(status)
            payload = dgram[RESP.size:]
            if ptype == PAYLOAD_TEXT:
                text += payload
            elif ptype in (PAYLOAD_CGROUPS, PAYLOAD_CLIENTS):
                recs += payload
            if not flags & F_MORE:
                return text.decode(), recs
    finally:
        s.close()


def clients(runtime_dir):
    _, recs = request(runtime_dir, CLIENTS)
    out = []
    for off in range(0, len(recs), CLIENT.size):
        f = CLIENT.unpack_from(recs, off)
        c = {"cgroup_key": f[0], "connected_ns": f[1], "stats_updated_ns": f[2], "pid": f[3],
             "uid": f[4], "mode": f[5], "last_level": f[6], "ctl_mode": f[7], "flags": f[8],
             "comm": f[10].split(b"\0")[0].decode(errors="replace")}
        c.update(zip(STATS, f[11:11 + len(STATS)]))
        out.append(c)
    return out


def cgroups(runtime_dir):
    text, recs = request(runtime_dir, STATUS)
    out = []
    for off in range(0, len(recs), CGROUP.size):
        f = CGROUP.unpack_from(recs, off)
        out.append({"key": f[0], "updated_ns": f[1], "level": f[2], "flags": f[3], "reason": f[4],
                    "nclients": f[5], "reclaim_events": f[6], "reclaim_ns": f[7],
                    "usage_bytes": f[8], "limit_bytes": f[9]})
    return text, out


def lean(runtime_dir, target, mode, key=0, level=0):
    request(runtime_dir, LEAN, target=target, mode=mode, key=key, level=level)
