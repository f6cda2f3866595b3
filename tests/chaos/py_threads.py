"""py_threads.py: four Python threads building and tearing down objects
(dicts, lists, strings, bytes, JSON round trips, sorting), for the chaos
runs with PYTHONMALLOC=malloc (so every object comes from the malloc in
use). Each thread's result depends on its index only; the program prints
them and their digest, the same under any malloc and scheduling."""
import hashlib
import json
import sys
import threading

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 300


def work(idx, out):
    h = hashlib.sha256()
    keep = []
    for r in range(ROUNDS):
        d = {f"k{idx}-{r}-{i}": [i * r, str(i) * (i % 17), bytes(range(i % 97)).hex()] for i in range(200)}
        s = json.dumps(d, sort_keys=True)
        back = json.loads(s)
        assert back.keys() == d.keys()
        words = sorted(s.split(","), key=lambda w: (len(w), w))
        h.update("".join(words[:50]).encode())
        keep.append(bytearray(s[: 1000 + r % 5000], "ascii"))
        if len(keep) > 40:
            keep.pop(r % len(keep))
        h.update(bytes(sum(len(k) for k in keep).to_bytes(8, "little")))
    out[idx] = h.hexdigest()


def main():
    out = [None] * 4
    threads = [threading.Thread(target=work, args=(i, out)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, r in enumerate(out):
        print(f"thread {i}: {r}")
    print("digest", hashlib.sha256("".join(out).encode()).hexdigest())


main()
