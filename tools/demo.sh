#!/usr/bin/env bash
# tools/demo.sh: hakmem's main job, shown on a real memory cgroup.
#
# Sets up (packages, build), starts hakmemd, and makes a memory cgroup with
# a limit. In it, a long-lived client (build/tests/pressure/pressure_client)
# grows to 200 MB of small objects, frees 99 % of them and sits idle; then a
# second process in the same cgroup needs 150 MB. Without help the first
# one's free-but-kept memory is in the way: the second reclaims, stalls, and
# one of them may be OOM-killed. With hakmem, hakmemd sees the cgroup
# filling up and the idle client goes LEAN and gives its free memory back.
# The same scenario runs with glibc and with jemalloc; a table compares,
# per allocator: the memory the client gave back, the time it took, the
# times the cgroup hit its limit (v2 memory.events "max", v1
# memory.failcnt), the time the cgroup's tasks stalled on memory while the
# second process ran (v2: the cgroup's PSI "some" total; v1 has no
# per-cgroup PSI), OOM kills, and whether and how fast the second process
# finished. Everything it creates is removed, also on Ctrl-C.
#
# Both cgroup hierarchies: v1/hybrid (memory controller on v1) and v2
# (tools/vm.sh demo runs it in a v2 guest). On v2 a cgroup that holds
# processes cannot hand the memory controller to a child, so the demo
# first moves itself into a leaf of its own cgroup; that works where it
# runs alone (a VM's root, or `systemd-run --scope -p Delegate=yes
# tools/demo.sh`) and is explained where it does not.
#
# Needs root (cgroups, BPF). As root, or with sudo:
#   tools/demo.sh [LIMIT_MB]
# HAKMEMD_ARGS: extra hakmemd options, e.g. the usage source as it was
# before it adapted its sampling and projected growth:
#   HAKMEMD_ARGS="--set usage_min_interval_ms=250 --set usage_lead_ms=0" tools/demo.sh
# HAKMEM_DEMO_BUILD: the build directory to take hakmemd, hakmemctl, the
# shim and the client from (default build/), to compare two builds.
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT_MB=${1:-320}
GROW_MB=200
NEED_MB=150

if [[ $(id -u) -ne 0 ]]; then
  echo "demo: needs root (it creates a memory cgroup and loads BPF programs); run it as root or with sudo" >&2
  exit 1
fi
tools/setup.sh
B=${HAKMEM_DEMO_BUILD:-$PWD/build}    # another build dir, to compare builds
LIB=$B/shim/libhakmem.so
CLIENT=$B/tests/pressure/pressure_client
CTL=$B/tools/hakmemctl
JEMALLOC=$(ls /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 2>/dev/null || true)

TMP=$(mktemp -d /tmp/hakmem-demo.XXXXXX)
RUN=$TMP/run
PIDS=()
CG=
SELF_CG=
SUBTREE_ADDED=no

# This process's memory cgroup: v1 memory controller, or cgroup2.
if [[ -d /sys/fs/cgroup/memory ]] && grep -q ':memory:' /proc/self/cgroup; then
  CGV=1
  PARENT=/sys/fs/cgroup/memory$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup)
else
  CGV=2
  PARENT=/sys/fs/cgroup$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
  PARENT=${PARENT%/}
fi

cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [[ -n $CG && -d $CG ]]; then
    while read -r p; do echo "$p" > "${SELF_CG:-$PARENT}/cgroup.procs" 2>/dev/null; done < "$CG/cgroup.procs" 2>/dev/null
    rmdir "$CG" 2>/dev/null
  fi
  if [[ -n $SELF_CG ]]; then    # back where we came from, as we found it
    [[ $SUBTREE_ADDED == yes ]] && echo "-memory" > "$PARENT/cgroup.subtree_control" 2>/dev/null
    echo $$ > "$PARENT/cgroup.procs" 2>/dev/null
    rmdir "$SELF_CG" 2>/dev/null
  fi
  if [[ -n ${HAKMEM_DEMO_KEEP:-} ]]; then echo "demo: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted, cleaning up"; exit 130' INT TERM

# v2: children get memory.max only where their parent passes the memory
# controller down, and a cgroup with processes of its own may not.
if [[ $CGV == 2 ]] && ! grep -qw memory "$PARENT/cgroup.subtree_control"; then
  if [[ $PARENT != /sys/fs/cgroup ]]; then
    SELF_CG=$PARENT/hakmem-demo-$$-self
    mkdir "$SELF_CG"
    echo $$ > "$SELF_CG/cgroup.procs"
  fi
  if ! echo "+memory" > "$PARENT/cgroup.subtree_control" 2>/dev/null; then
    echo "demo: cgroup v2: $PARENT holds other processes, so it cannot give a child cgroup" >&2
    echo "      the memory controller. Run the demo in a cgroup of its own, e.g.:" >&2
    echo "      systemd-run --scope -p Delegate=yes --quiet tools/demo.sh" >&2
    exit 1
  fi
  SUBTREE_ADDED=yes
fi

limit_file() { [[ $CGV == 1 ]] && echo memory.limit_in_bytes || echo memory.max; }
limit_hits() {   # times the cgroup hit its limit
  if [[ $CGV == 1 ]]; then cat "$CG/memory.failcnt"; else awk '$1 == "max" {print $2}' "$CG/memory.events"; fi
}
oom_kills() {
  if [[ $CGV == 1 ]]; then awk '$1 == "oom_kill" {print $2}' "$CG/memory.oom_control"; else awk '$1 == "oom_kill" {print $2}' "$CG/memory.events"; fi
}
# VmRSS and LazyFree (pages given back with MADV_FREE: still counted in
# RSS and charged to the cgroup until the kernel needs them, then dropped
# without any I/O), kB
rss_lazy_kb() {
  awk '/^Rss:/ {r=$2} /^LazyFree:/ {l=$2} END {print r + 0, l + 0}' "/proc/$1/smaps_rollup" 2>/dev/null || echo "0 0"
}
in_cgroup() {    # run "$@" inside $CG, as this process (started with & it keeps $!)
  exec bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" "$@"
}

# The second process and the watch over it, timed in one place: starts the
# needy process in the cgroup, polls the client's RSS - LazyFree every
# 2 ms until it fell to the target (or 5 s after the needy one ended),
# reads the cgroup's PSI stall before and after (v2).
cat > "$TMP/second.py" <<'EOF'
import os, subprocess, sys, time
cg, cgv, client, need_mb, target_kb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

def rss_minus_lazy(pid):
    r = lz = 0
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Rss:"):
                r = int(line.split()[1])
            elif line.startswith("LazyFree:"):
                lz = int(line.split()[1])
    except OSError:
        return None
    return r - lz

def stall_us():
    try:
        for line in open(os.path.join(cg, "memory.pressure")):
            if line.startswith("some"):
                return int(line.split("total=")[1])
    except OSError:
        return None

code = ("import time\nblocks = []\n"
        f"for _ in range({need_mb} // 10):\n"
        "    blocks.append(b'\\x01' * (10 << 20))\n    time.sleep(0.005)\n"
        f"print('second process: got {need_mb} MB')\n")
s0 = stall_us() if cgv == 2 else None
t0 = time.monotonic()
p = subprocess.Popen(["/usr/bin/python3", "-c", code],
                     preexec_fn=lambda: open(os.path.join(cg, "cgroup.procs"), "w").write(str(os.getpid())))
t_rel = t_end = s1 = None
while True:
    now = time.monotonic()
    if t_rel is None:
        v = rss_minus_lazy(client)
        if v is not None and v <= target_kb:
            t_rel = now - t0
    if t_end is None and p.poll() is not None:
        t_end = now
        s1 = stall_us() if cgv == 2 else None
    if t_end is not None and (t_rel is not None or now - t_end > 5 or not os.path.exists(f"/proc/{client}")):
        break
    time.sleep(0.002)
print(f"rc {p.returncode}")
print(f"release_ms {'-' if t_rel is None else round(t_rel * 1000)}")
print(f"run_ms {round((t_end - t0) * 1000)}")
print(f"stall_ms {'n/a' if s0 is None or s1 is None else round((s1 - s0) / 1000)}")
EOF

echo "== starting hakmemd (runtime dir $RUN)"
# shellcheck disable=SC2086  # HAKMEMD_ARGS is a list of options
$B/daemon/hakmemd --runtime-dir "$RUN" ${HAKMEMD_ARGS:-} > "$TMP/hakmemd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do [[ -S $RUN/control.sock ]] && break; sleep 0.05; done
[[ -S $RUN/control.sock ]] || { echo "hakmemd did not start:"; cat "$TMP/hakmemd.log"; exit 1; }
$CTL --runtime-dir "$RUN" status | sed -n '1,12p'

declare -A R_REL R_T R_HITS R_STALL R_OOM R_DONE R_RUN

scenario() {     # name, then the environment for the client
  local name=$1; shift
  CG=$PARENT/hakmem-demo-$$-$name
  mkdir "$CG"
  echo $((LIMIT_MB << 20)) > "$CG/$(limit_file)"
  echo
  echo "== $name: a client grows to ${GROW_MB} MB, frees 99 %, sits idle (cgroup limit ${LIMIT_MB} MB, cgroup v$CGV)"
  (in_cgroup env "$@" "$CLIENT" "$GROW_MB" 1 > "$TMP/client.out") &
  local cpid=$!
  PIDS+=("$cpid")
  for _ in $(seq 1200); do grep -q '^ready' "$TMP/client.out" && break; sleep 0.05; done
  grep -q '^ready' "$TMP/client.out" || { echo "client did not start"; return 1; }
  sleep 0.5
  local rss0 lazy0 hits0 oom0
  read -r rss0 lazy0 < <(rss_lazy_kb "$cpid")
  hits0=$(limit_hits); oom0=$(oom_kills)
  echo "client pid $cpid: RSS $((rss0 / 1024)) MB (LazyFree $((lazy0 / 1024)) MB), of which ~$((GROW_MB / 100)) MB still in use"
  if [[ $name == hakmem ]]; then echo "-- hakmemctl clients, before:"; $CTL --runtime-dir "$RUN" clients; fi

  echo "-- a second process in the same cgroup needs ${NEED_MB} MB"
  # released: RSS - LazyFree fell by 80 % of what the client had freed
  # (with 1 % of its blocks alive at random the page-granular floor is ~8 %
  # of the peak, so 90 % is at the edge of what any allocator can give)
  local target=$(( rss0 - lazy0 - (rss0 - lazy0 - GROW_MB * 1024 / 100) * 8 / 10 ))
  python3 "$TMP/second.py" "$CG" "$CGV" "$cpid" "$NEED_MB" "$target" > "$TMP/second.out" 2>&1 || true
  grep -v '^\(rc\|release_ms\|run_ms\|stall_ms\) ' "$TMP/second.out" | tail -3 || true
  val() { awk -v k="$1" '$1 == k {print $2}' "$TMP/second.out"; }
  local rc rss1=0 lazy1=0
  rc=$(val rc)
  if [[ -e /proc/$cpid ]]; then
    read -r rss1 lazy1 < <(rss_lazy_kb "$cpid")
    R_REL[$name]=$(( (rss0 - lazy0 - rss1 + lazy1) / 1024 ))
    R_T[$name]=$(val release_ms)
    echo "client RSS now $((rss1 / 1024)) MB, of which $((lazy1 / 1024)) MB LazyFree: $(( (rss1 - lazy1) / 1024 )) MB not given back"
  else
    R_REL[$name]="0 (killed)"
    R_T[$name]=-
    echo "client was killed"
  fi
  R_HITS[$name]=$(( $(limit_hits) - hits0 ))
  R_OOM[$name]=$(( $(oom_kills) - oom0 ))
  R_STALL[$name]=$(val stall_ms)
  R_RUN[$name]=$(val run_ms)
  R_DONE[$name]=$([[ $rc == 0 ]] && echo yes || echo "no (exit ${rc:-?})")
  if [[ $name == hakmem ]]; then
    echo "-- hakmemd's decisions for the cgroup:"
    grep -o "level [a-z]* -> [a-z]* ([a-z_]*)" "$TMP/hakmemd.log" | grep -v "(startup)" | sed 's/^/   /' || true
    echo "-- hakmemctl status and clients, after:"
    $CTL --runtime-dir "$RUN" status | grep -E "hakmem-demo|cgroup|level" | head -6 || true
    $CTL --runtime-dir "$RUN" clients
  fi
  kill "$cpid" 2>/dev/null || true
  wait "$cpid" 2>/dev/null || true
  while read -r p; do echo "$p" > "${SELF_CG:-$PARENT}/cgroup.procs" 2>/dev/null || true; done < "$CG/cgroup.procs" 2>/dev/null
  rmdir "$CG"
  CG=
}

scenario hakmem LD_PRELOAD="$LIB" HAKMEM_RUNTIME_DIR="$RUN"
scenario glibc
if [[ -n $JEMALLOC ]]; then scenario jemalloc LD_PRELOAD="$JEMALLOC"; fi

echo
echo "== side by side (client: ${GROW_MB} MB grown, 99 % freed; second process: ${NEED_MB} MB; limit ${LIMIT_MB} MB; cgroup v$CGV, $(uname -r))"
fmt="%-10s %17s %21s %11s %11s %10s %16s %11s\n"
# shellcheck disable=SC2059  # one format string for the header and the rows
printf "$fmt" allocator "client gave (MB)" "time to release (ms)" "limit hits" "stall (ms)" "OOM kills" "second finished" "second (ms)"
for a in hakmem glibc jemalloc; do
  [[ -n ${R_REL[$a]+x} ]] || continue
  # shellcheck disable=SC2059
  printf "$fmt" "$a" "${R_REL[$a]}" "${R_T[$a]}" "${R_HITS[$a]}" "${R_STALL[$a]}" "${R_OOM[$a]}" "${R_DONE[$a]}" "${R_RUN[$a]}"
done
echo "(client gave: drop of its RSS - LazyFree; LazyFree pages (MADV_FREE) stay in RSS and"
echo " in the cgroup's usage until the kernel needs them, then go without any I/O."
echo " time to release: from the second process's start until the client's RSS - LazyFree"
echo " fell by 80 % of what it had freed; '-': not within 5 s after the second ended."
echo " limit hits: $([[ $CGV == 1 ]] && echo memory.failcnt || echo 'memory.events max'). stall: the cgroup's PSI 'some' time while the"
echo " second ran$([[ $CGV == 1 ]] && echo ' (n/a: v1 has no per-cgroup PSI)').)"
