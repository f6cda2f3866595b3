#!/usr/bin/env bash
# tools/demo.sh: hakmem's main job, for now: set up, then run a real
# program (python3 with every object allocated through malloc) on glibc
# and on the shim, and show peak RSS, run time and the shim's counters.
# The pressure demo with hakmemd and a memory cgroup replaces this once
# the daemon lands.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
LIB=$PWD/build/shim/libhakmem.so
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

cat > "$OUT/work.py" <<'PY'
import random
random.seed(1)
d = {}
for i in range(300000):
    d[str(i)] = [random.random() for _ in range(4)]
for i in range(0, 300000, 2):
    del d[str(i)]
print("kept", len(d), "entries, checksum", round(sum(v[0] for v in d.values()), 6))
PY

run() {  # name, then env assignments
  local name=$1; shift
  /usr/bin/time -f "%M %e" -o "$OUT/$name.time" \
    env "$@" PYTHONMALLOC=malloc /usr/bin/python3 "$OUT/work.py" 2> "$OUT/$name.err"
}

echo "== the program's output (must match)"
echo -n "glibc:  "; run glibc
echo -n "hakmem: "; run hakmem LD_PRELOAD="$LIB" HAKMEM_SS_OS_STATS=1
echo
printf "%-8s %12s %10s\n" allocator "peak RSS kB" "seconds"
for a in glibc hakmem; do
  read -r kb secs < "$OUT/$a.time"
  printf "%-8s %12s %10s\n" "$a" "$kb" "$secs"
done
echo
echo "== hakmem's counters at exit (HAKMEM_SS_OS_STATS=1)"
grep -E '^[a-z_]+ [0-9]+$' "$OUT/hakmem.err"
