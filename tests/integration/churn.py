"""churn.py: the workload of python3.sh. Heavy dict/str/list/bytes churn in
several threads, a cyclic object graph for the collector, a subprocess, and
fork() while other threads run code that allocates without the GIL (zlib).
Everything printed is a checksum or a count that depends only on the fixed
seeds, never on addresses, timing or hash randomization, so the output
must be identical whatever malloc the interpreter runs on.
"""

import collections
import gc
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import threading
import zlib

ROUNDS = 2
THREADS = 4
FORKS = 6


def digest(obj):
    """A stable checksum of a JSON-able object."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789_"


def word(rng, lo=1, hi=24):
    return "".join(rng.choices(ALPHABET, k=rng.randint(lo, hi)))


def dict_churn(rng):
    """Insert, update and delete many str keys; values of mixed types."""
    d = {}
    for i in range(20000):
        k = word(rng)
        r = rng.random()
        if r < 0.5:
            d[k] = [word(rng) for _ in range(rng.randint(0, 6))]
        elif r < 0.7:
            d[k] = {"i": i, "s": k * rng.randint(1, 20)}
        elif r < 0.85:
            d[k] = (i, k.upper(), float(i) / 7)
        elif d:
            # delete a pseudo-random existing key (the dict is ordered)
            victim = next(iter(d)) if rng.random() < 0.5 else k
            d.pop(victim, None)
    items = sorted((k, v) for k, v in d.items() if isinstance(v, list))
    return len(d), digest(items[:2000])


def string_churn(rng):
    parts = [word(rng, 1, 60) for _ in range(20000)]
    text = " ".join(parts)
    text = text.replace("a", "AA").replace("e", "")
    words = text.split()
    counts = collections.Counter(w[:2] for w in words)
    big = ""
    for w in words[:8000]:
        big += w + ","          # grows one string in place (realloc)
    pattern = re.compile(r"([0-9]+)([a-z]+)")
    found = pattern.findall(big)
    enc = big.encode("utf-8")
    back = enc.decode("utf-8")
    fmt = ["%s-%05d-%x" % (w, i, len(w)) for i, w in enumerate(words[:5000])]
    return (len(text), len(big), len(found), back == big,
            digest(sorted(counts.items())[:300]), digest(fmt[-50:]))


def list_churn(rng):
    lists = [[rng.randint(0, 1 << 30) for _ in range(rng.randint(0, 400))]
             for _ in range(800)]
    total = 0
    for _ in range(6):
        for i in range(len(lists)):
            lst = lists[i]
            r = rng.random()
            if r < 0.3:
                lst.extend(rng.randint(0, 999) for _ in range(rng.randint(0, 300)))
            elif r < 0.5:
                del lst[: len(lst) // 2]
            elif r < 0.7:
                lst.sort()
            else:
                lists[i] = [x ^ 0x5A5A for x in lst[::-1]]
            total += len(lists[i])
    flat = sorted(x for lst in lists for x in lst[:10])
    ba = bytearray()
    for i in range(20000):
        ba += bytes((i + j) & 0xFF for j in range(i % 37))
    return total, digest(flat[:3000]), zlib.crc32(ba)


def graph_churn(rng):
    """Cycles only the collector can free."""
    class Node:
        __slots__ = ("kids", "val", "__weakref__")

        def __init__(self, val):
            self.kids = []
            self.val = val

    acc = 0
    for _ in range(5):
        nodes = [Node(i) for i in range(6000)]
        for n in nodes:
            n.kids = [nodes[rng.randrange(len(nodes))] for _ in range(3)]
        acc += sum(n.kids[0].val for n in nodes)
        del nodes
        gc.collect()
    return acc


def worker(idx, out):
    rng = random.Random(1000 + idx)
    res = []
    for r in range(ROUNDS):
        res.append(("dict", r) + dict_churn(rng))
        res.append(("str", r) + string_churn(rng))
        res.append(("list", r) + list_churn(rng))
        if r % 3 == 0:
            res.append(("graph", r, graph_churn(rng)))
    out[idx] = res


def zlib_background(stop, out, idx):
    """Compression releases the GIL and allocates inside zlib (malloc)."""
    rng = random.Random(77 + idx)
    data = rng.randbytes(1 << 14) * 8
    n = 0
    crc = 0
    while not stop.is_set() or n < 4:
        c = zlib.compress(data, 6)
        crc = zlib.crc32(zlib.decompress(c))
        n += 1
    out[idx] = crc


def fork_while_threads_run():
    stop = threading.Event()
    crcs = {}
    bg = [threading.Thread(target=zlib_background, args=(stop, crcs, i)) for i in range(2)]
    for t in bg:
        t.start()
    ok = 0
    for i in range(FORKS):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                d = {str(k): [k] * (k % 17) for k in range(5000)}
                s = sum(len(v) for v in d.values())
                blob = zlib.compress(json.dumps(d).encode())
                want = sum(k % 17 for k in range(5000))
                code = 0 if s == want and zlib.decompress(blob) else 3
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            ok += 1
        else:
            print("fork child %d: status %d" % (i, status))
    stop.set()
    for t in bg:
        t.join()
    return ok, sorted(crcs.values())


def main():
    print("churn.py: threads", THREADS, "rounds", ROUNDS)
    out = {}
    threads = [threading.Thread(target=worker, args=(i, out)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for idx in range(THREADS):
        for row in out[idx]:
            print(idx, *row)

    child = subprocess.run(
        [sys.executable, "-c",
         "import json,hashlib;d={str(i):list(range(i%50)) for i in range(50000)};"
         "print(hashlib.sha256(json.dumps(d,sort_keys=True).encode()).hexdigest()[:16])"],
        stdout=subprocess.PIPE, check=True)
    print("subprocess", child.stdout.decode().strip())

    ok, crcs = fork_while_threads_run()
    print("fork children ok", ok, "of", FORKS, "; zlib crcs", *crcs)


if __name__ == "__main__":
    main()
