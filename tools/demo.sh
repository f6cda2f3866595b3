#!/usr/bin/env bash
# tools/demo.sh: hakmem's main job, shown on a real memory cgroup.
#
# Sets up (packages, build), starts hakmemd, and makes a memory cgroup with
# a limit. In it, a long-lived client (build/tests/pressure/pressure_client)
# grows to 200 MB of small objects, frees 99 % of them and sits idle; then a
# second process in the same cgroup needs 150 MB. Without help the first
# one's free-but-kept memory is in the way: the second reclaims, stalls, and
# one of them may be OOM-killed. With hakmem, hakmemd sees the reclaim and
# the idle client goes LEAN and gives its free memory back.
# The same scenario runs with glibc and with jemalloc; a table compares
# memory released, time to release, limit hits, OOM kills and whether the
# second process finished. Everything it creates is removed, also on Ctrl-C.
#
# Needs root (cgroups, BPF). Usage: sudo tools/demo.sh [LIMIT_MB]
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT_MB=${1:-320}
GROW_MB=200
NEED_MB=150

if [[ $(id -u) -ne 0 ]]; then
  echo "demo: needs root (it creates a memory cgroup and loads BPF programs)" >&2
  exit 1
fi
tools/setup.sh
B=$PWD/build
LIB=$B/shim/libhakmem.so
CLIENT=$B/tests/pressure/pressure_client
CTL=$B/tools/hakmemctl
JEMALLOC=$(ls /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 2>/dev/null || true)

TMP=$(mktemp -d /tmp/hakmem-demo.XXXXXX)
RUN=$TMP/run
PIDS=()
CG=

# This process's memory cgroup: v1 memory controller, or cgroup2.
if [[ -d /sys/fs/cgroup/memory ]] && grep -q ':memory:' /proc/self/cgroup; then
  CGV=1
  PARENT=/sys/fs/cgroup/memory$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup)
else
  CGV=2
  PARENT=/sys/fs/cgroup$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
fi

cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [[ -n $CG && -d $CG ]]; then
    while read -r p; do echo "$p" > "$PARENT/cgroup.procs" 2>/dev/null; done < "$CG/cgroup.procs" 2>/dev/null
    rmdir "$CG" 2>/dev/null
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted, cleaning up"; exit 130' INT TERM

limit_file() { [[ $CGV == 1 ]] && echo memory.limit_in_bytes || echo memory.max; }
limit_hits() {   # times the cgroup hit its limit
  if [[ $CGV == 1 ]]; then cat "$CG/memory.failcnt"; else awk '$1 == "max" {print $2}' "$CG/memory.events"; fi
}
oom_kills() {
  if [[ $CGV == 1 ]]; then awk '$1 == "oom_kill" {print $2}' "$CG/memory.oom_control"; else awk '$1 == "oom_kill" {print $2}' "$CG/memory.events"; fi
}
rss_kb() {       # resident anonymous memory that is not lazily freed
  awk '/^Rss:/ {r=$2} /^LazyFree:/ {l=$2} END {print r - l}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0
}
in_cgroup() {    # run "$@" inside $CG, as this process (started with & it keeps $!)
  exec bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" "$@"
}

echo "== starting hakmemd (runtime dir $RUN)"
"$B/daemon/hakmemd" --runtime-dir "$RUN" > "$TMP/hakmemd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [[ -S $RUN/control.sock ]] && break; sleep 0.05; done
[[ -S $RUN/control.sock ]] || { echo "hakmemd did not start:"; cat "$TMP/hakmemd.log"; exit 1; }
$CTL --runtime-dir "$RUN" status | sed -n '1,12p'

declare -A R_REL R_T R_HITS R_OOM R_DONE

scenario() {     # name, then the environment for the client
  local name=$1; shift
  CG=$PARENT/hakmem-demo-$$-$name
  mkdir "$CG"
  echo $((LIMIT_MB << 20)) > "$CG/$(limit_file)"
  echo
  echo "== $name: a client grows to ${GROW_MB} MB, frees 99 %, sits idle (cgroup limit ${LIMIT_MB} MB)"
  (in_cgroup env "$@" "$CLIENT" "$GROW_MB" 1 > "$TMP/client.out") &
  local cpid=$!
  PIDS+=("$cpid")
  for _ in $(seq 300); do grep -q '^ready' "$TMP/client.out" && break; sleep 0.05; done
  grep -q '^ready' "$TMP/client.out" || { echo "client did not start"; return 1; }
  sleep 0.5
  local rss0 hits0 oom0
  rss0=$(rss_kb "$cpid"); hits0=$(limit_hits); oom0=$(oom_kills)
  echo "client pid $cpid: RSS $((rss0 / 1024)) MB, of which ~$((GROW_MB / 100)) MB still in use"
  if [[ $name == hakmem ]]; then echo "-- hakmemctl clients, before:"; $CTL --runtime-dir "$RUN" clients; fi

  echo "-- a second process in the same cgroup needs ${NEED_MB} MB"
  local t0 t_rel=-
  t0=$(date +%s%N)
  (in_cgroup /usr/bin/python3 -c "
import time
blocks = []
for _ in range($NEED_MB // 10):
    blocks.append(b'\x01' * (10 << 20))
    time.sleep(0.005)
print('second process: got $NEED_MB MB')
" > "$TMP/needy.out" 2>&1) &
  local npid=$!
  PIDS+=("$npid")
  local target=$(( rss0 - (rss0 - GROW_MB * 1024 / 100) * 9 / 10 ))
  while kill -0 "$npid" 2>/dev/null; do
    if [[ $t_rel == - && -e /proc/$cpid && $(rss_kb "$cpid") -le $target ]]; then
      t_rel=$(( ($(date +%s%N) - t0) / 1000000 ))
    fi
    sleep 0.005
  done
  local rc=0
  wait "$npid" || rc=$?
  sleep 0.2
  local rss1=0
  [[ -e /proc/$cpid ]] && rss1=$(rss_kb "$cpid")
  [[ $t_rel == - && -e /proc/$cpid && $rss1 -le $target ]] && t_rel=">run"
  if [[ -e /proc/$cpid ]]; then
    R_REL[$name]=$(( (rss0 - rss1) / 1024 ))
    R_T[$name]=$t_rel
  else
    R_REL[$name]="0 (killed)"
    R_T[$name]=-
  fi
  R_HITS[$name]=$(( $(limit_hits) - hits0 ))
  R_OOM[$name]=$(( $(oom_kills) - oom0 ))
  R_DONE[$name]=$([[ $rc == 0 ]] && echo yes || echo "no (exit $rc)")
  tail -1 "$TMP/needy.out"
  if [[ -e /proc/$cpid ]]; then
    echo "client RSS now $((rss1 / 1024)) MB"
  else
    echo "client was killed"
  fi
  if [[ $name == hakmem ]]; then
    echo "-- hakmemctl status and clients, after:"
    $CTL --runtime-dir "$RUN" status | grep -E "hakmem-demo|cgroup|level" | head -6 || true
    $CTL --runtime-dir "$RUN" clients
  fi
  kill "$cpid" 2>/dev/null || true
  wait "$cpid" 2>/dev/null || true
  while read -r p; do echo "$p" > "$PARENT/cgroup.procs" 2>/dev/null || true; done < "$CG/cgroup.procs" 2>/dev/null
  rmdir "$CG"
  CG=
}

scenario hakmem LD_PRELOAD="$LIB" HAKMEM_RUNTIME_DIR="$RUN"
scenario glibc
if [[ -n $JEMALLOC ]]; then scenario jemalloc LD_PRELOAD="$JEMALLOC"; fi

echo
echo "== side by side (client: ${GROW_MB} MB grown, 99 % freed; second process: ${NEED_MB} MB; limit ${LIMIT_MB} MB)"
printf "%-10s %18s %20s %12s %10s %16s\n" allocator "client gave (MB)" "time to release (ms)" "limit hits" "OOM kills" "second finished"
for a in hakmem glibc jemalloc; do
  [[ -n ${R_REL[$a]+x} ]] || continue
  printf "%-10s %18s %20s %12s %10s %16s\n" "$a" "${R_REL[$a]}" "${R_T[$a]}" "${R_HITS[$a]}" "${R_OOM[$a]}" "${R_DONE[$a]}"
done
echo "(time to release: from the second process's start until the client's RSS,"
echo " lazily freed pages excluded, dropped by 90 % of what it had freed; '-': never)"
