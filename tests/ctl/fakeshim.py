"""fakeshim.py: a shim client whose stats page the test writes, for
checking what hakmemd makes of a client's word: it registers on
hakmemd.sock as the real shim does (a hello with a sealed stats memfd,
layouts of proto/hakmem_proto.h packed with struct) from the calling
process, and then writes whatever counters, mode, level and time the test
gives it. It does not read the ring: the test says when it "applied" a
level. close() ends the registration; connect() again is a process that
restarted under the same pid.

Owns: nothing of the product. Must not: be used outside the tests.
"""
import fcntl
import mmap
import os
import socket
import struct
import time

from fakehakmemd import COUNTERS, magic4

VERSION = 2
HELLO = struct.Struct("<IIIIIIII16sQQ")      # struct hakmem_hello, 64 bytes
WELCOME = struct.Struct("<IIIiQQQQQII")      # struct hakmem_welcome, 64 bytes
PAGE_HEAD = struct.Struct("<IIIIQQIIII")     # struct hakmem_stats_page up to counter[], 48 bytes
PAGE_SIZE = PAGE_HEAD.size + 32 * 8          # 304
assert (HELLO.size, WELCOME.size, PAGE_HEAD.size) == (64, 64, 48)
HELLO_F_STATS = 1
LEAN = 1


def monotonic_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


class FakeShim:
    def __init__(self, run_dir, comm="fakeshim"):
        self.path = os.path.join(run_dir, "hakmemd.sock")
        self.comm = comm
        self.sock = None
        self.fd = self.mem = None
        self.seq = 0
        self.counters = {n: 0 for n in COUNTERS}

    def connect(self):
        """A new stats page (all zero, never written) and a hello; the
        welcome's status (0, or the negative errno of a refusal)."""
        self.close()
        self.fd = os.memfd_create("hakmem-stats", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.ftruncate(self.fd, 4096)
        fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS,
                    fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
        self.mem = mmap.mmap(self.fd, 4096)
        self.seq = 0
        self.mem[:PAGE_HEAD.size] = PAGE_HEAD.pack(magic4("HKST"), VERSION, PAGE_SIZE, os.getpid(),
                                                   0, 0, 0, 0, len(COUNTERS), 0)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.connect(self.path)
        hello = HELLO.pack(magic4("HKHI"), VERSION, HELLO.size, HELLO_F_STATS, os.getpid(),
                           PAGE_SIZE, 0, 0, self.comm.encode()[:15], 0, 0)
        try:
            socket.send_fds(self.sock, [hello], [self.fd])
        except (BrokenPipeError, ConnectionResetError):
            pass                        # refused at once: the reason waits to be read
        self.sock.settimeout(10)
        data, fds, _, _ = socket.recv_fds(self.sock, 4096, 1)
        for f in fds:
            os.close(f)
        return WELCOME.unpack(data)[3]

    def write(self, mode=0, level=0, updated_ns=None, **counters):
        """The page as the shim's seqlock writer leaves it."""
        self.counters.update(counters)
        self.seq += 1
        struct.pack_into("<Q", self.mem, 16, 2 * self.seq - 1)
        struct.pack_into("<QIIII", self.mem, 24, updated_ns or monotonic_ns(), mode, level,
                         len(COUNTERS), 0)
        struct.pack_into("<%dQ" % len(COUNTERS), self.mem, PAGE_HEAD.size,
                         *[self.counters[n] for n in COUNTERS])
        struct.pack_into("<Q", self.mem, 16, 2 * self.seq)

    def close(self):
        if self.sock:
            self.sock.close()
        if self.mem:
            self.mem.close()
        if self.fd is not None:
            os.close(self.fd)
        self.sock = self.mem = self.fd = None
        self.counters = {n: 0 for n in COUNTERS}
