#!/usr/bin/env bash
# tools/chaos.sh: pressure chaos. Real threaded programs run under the shim
# while their pressure level changes at random every 1-20 ms, from two
# sides at once: a thread inside the process that never allocates
# (tests/chaos/chaos_driver.c, preloaded) and a real hakmemd (own runtime
# dir) told by `hakmemctl lean PID on --level ...|off|auto`. Every program
# checks its own results or is compared with a run on glibc; liveset
# (tests/trust/liveset.c, preloaded first) stops any process that is handed
# a block that is still live.
#
#   stress   tests/stress: threads, cross-thread frees, realloc chains,
#            memalign, fork
#   model    tests/chaos/model.c: the model-based property test (its own
#            levels and mode switches too), a new seed each run
#   python3  4 threads, PYTHONMALLOC=malloc (tests/chaos/py_threads.py)
#   sqlite3  tests/integration/sqlite3.sql
#   cxx      tests/chaos/cxx_threads.cc: std::thread, cross-thread deletes
#   redis    redis-server on 127.0.0.1 driven by redis-benchmark, with a set
#            of keys written before and read back after
#
# usage: tools/chaos.sh [--seconds S] [--rounds N] [--build DIR] [--only a,b,...] [--out DIR]
#   --seconds S  run rounds of every program until S seconds have passed
#                (default 600)
#   --rounds N   ... or until N rounds are done (the test suite runs one)
#   --out DIR    keep the output of failed runs there (default: a new
#                directory beside the temporary one, printed on failure)
# Prints one line per program and a summary: programs x runs, level
# changes (in process, through hakmemd), failures. Exit 0 when none
# failed, 1 otherwise, 77 when a program it needs is missing.
set -uo pipefail
cd "$(dirname "$0")/.."

SECONDS_BUDGET=600
ROUNDS=0                                # 0: no limit
BUILD=build
ONLY=cxx,redis,python3,sqlite3,model,stress
OUT=
while [[ $# -gt 0 ]]; do
  case $1 in
    --seconds) SECONDS_BUDGET=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: $0 [--seconds S] [--rounds N] [--build DIR] [--only a,b,...] [--out DIR]" >&2; exit 2 ;;
  esac
done

SHIM=$(realpath "$BUILD/shim/libhakmem.so")
DRIVER=$(realpath "$BUILD/tests/chaos/libchaosdriver.so")
LIVESET=$(realpath "$BUILD/tests/trust/libliveset.so")
HAKMEMD=$BUILD/daemon/hakmemd
HAKMEMCTL=$(realpath "$BUILD/tools/hakmemctl")
STRESS=$BUILD/tests/stress/stress
MODEL=$BUILD/tests/chaos/model
CXX=$BUILD/tests/chaos/cxx_threads
PY=/usr/bin/python3
for f in "$SHIM" "$DRIVER" "$LIVESET" "$HAKMEMD" "$HAKMEMCTL" "$STRESS" "$MODEL"; do
  [[ -e $f ]] || { echo "chaos: $f is missing (build first: ninja -C $BUILD)"; exit 77; }
done
has() { [[ ,$ONLY, == *,$1,* ]]; }
need() { command -v "$1" >/dev/null || { echo "chaos: SKIP: $1 is not installed"; exit 77; }; }
has python3 && need "$PY"
has sqlite3 && need sqlite3
has redis && { need redis-server; need redis-benchmark; need redis-cli; }
has cxx && [[ ! -x $CXX ]] && { echo "chaos: SKIP: $CXX not built (no C++ compiler?)"; exit 77; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-chaos.XXXXXX")
OUT=${OUT:-$TMP.failed}
mkdir -p "$TMP/run"
DAEMON=
REDIS=
cleanup() {
  [[ -n $REDIS ]] && kill "$REDIS" 2>/dev/null && wait "$REDIS" 2>/dev/null
  [[ -n $DAEMON ]] && kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$HAKMEMD" --runtime-dir "$TMP/run" --sources none >"$TMP/hakmemd.log" 2>&1 &
DAEMON=$!
for _ in $(seq 100); do [[ -S $TMP/run/control.sock ]] && break; sleep 0.1; done
[[ -S $TMP/run/control.sock ]] || { cat "$TMP/hakmemd.log"; echo "chaos: hakmemd did not start"; exit 1; }

# The environment of a program under chaos (seed: the run number).
chaos_env() {
  CENV=(LD_PRELOAD="$LIVESET $DRIVER $SHIM" HAKMEM_RUNTIME_DIR="$TMP/run" CHAOS_LEVELS=1
        CHAOS_LOG="$TMP/levels" CHAOS_SEED="$1")
}

# Through hakmemd: change PID's level every 1-20 ms until it exits; the
# number of changes hakmemd accepted goes to $TMP/ctl.
ctl_driver() {
  local pid=$1 n=0 levels=(low medium critical)
  while kill -0 "$pid" 2>/dev/null; do
    sleep "0.0$(printf '%02d' $((RANDOM % 20 + 1)))"
    local r=$((RANDOM % 5)) args
    case $r in
      0|1|2) args=(on --level "${levels[$r]}") ;;
      3) args=(off) ;;
      4) args=(auto) ;;
    esac
    "$HAKMEMCTL" --runtime-dir "$TMP/run" --timeout 2 lean "$pid" "${args[@]}" >/dev/null 2>&1 &&
      n=$((n + 1))
  done
  echo "$n" >>"$TMP/ctl"
}

# Baselines on glibc (their output must be the same under the shim).
if has python3; then "$PY" tests/chaos/py_threads.py 150 >"$TMP/py.want"; fi
SQL=(":memory:" ".parameter set @rows 50000" ".read tests/integration/sqlite3.sql")
if has sqlite3; then sqlite3 "${SQL[@]}" >"$TMP/sql.want"; fi
if has cxx; then "$CXX" 60000 >"$TMP/cxx.want"; fi

declare -A RUNS FAILS
fail_run() {                            # name run output-file reason
  FAILS[$1]=$((${FAILS[$1]:-0} + 1))
  mkdir -p "$OUT"
  cp "$3" "$OUT/$1.$2.out" 2>/dev/null
  echo "chaos: FAIL: $1 run $2: $4 (output in $OUT/$1.$2.out)"
}

# A run that takes longer than this has hung: it is killed (SIGKILL,
# exit 137) and counted as failed; gdb's backtrace of it is kept.
RUN_LIMIT=600

# watchdog_for PID: kill PID after RUN_LIMIT seconds, keeping its stacks; prints
# the watcher's pid.
watchdog_for() {
  ( sleep "$RUN_LIMIT"
    command -v gdb >/dev/null && gdb -p "$1" -batch -ex "thread apply all bt 12" >"$TMP/hang" 2>&1
    kill -9 "$1" ) >/dev/null 2>&1 &
  echo $!
}

# run_prog NAME RUN CMD...: CMD under chaos with both drivers; sets rc.
run_prog() {
  local name=$1 run=$2
  shift 2
  chaos_env "$run"
  rm -f "$TMP/hang"
  env "${CENV[@]}" "$@" >"$TMP/out" 2>&1 &
  local pid=$! w
  w=$(watchdog_for "$pid")
  ctl_driver "$pid" &
  local drv=$!
  wait "$pid"
  rc=$?
  kill "$w" 2>/dev/null
  wait "$drv"
  [[ -s $TMP/hang ]] && cat "$TMP/hang" >>"$TMP/out"
  RUNS[$name]=$((${RUNS[$name]:-0} + 1))
}

redis_round() {
  local run=$1 port
  port=$((20000 + (RANDOM % 20000)))
  chaos_env "$run"
  rm -f "$TMP/hang"
  env "${CENV[@]}" redis-server --port "$port" --bind 127.0.0.1 --save "" \
      --appendonly no --daemonize no --loglevel warning >"$TMP/out" 2>&1 &
  REDIS=$!
  local w
  w=$(watchdog_for "$REDIS")
  ctl_driver "$REDIS" &
  local drv=$! ok=1 i
  for i in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  for i in $(seq 3000); do printf 'SET chaos:%d v%d-%0*d\n' "$i" "$i" $((i % 300)) 0; done |
    redis-cli -p "$port" >/dev/null 2>>"$TMP/out" || ok=0
  timeout 300 redis-benchmark -p "$port" -q -n 20000 -c 16 -P 8 -d 200 -r 20000 \
      -t set,get,incr,lpush,lpop,sadd,hset,spop,zadd,lrange_100 >>"$TMP/out" 2>&1 || ok=0
  local got want
  got=$(for i in $(seq 3000); do echo "GET chaos:$i"; done | redis-cli -p "$port" 2>>"$TMP/out" | md5sum)
  want=$(for i in $(seq 3000); do printf 'v%d-%0*d\n' "$i" $((i % 300)) 0; done | md5sum)
  [[ $got == "$want" ]] || { ok=0; echo "the keys written before read back wrong" >>"$TMP/out"; }
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1
  wait "$REDIS"
  rc=$?
  kill "$w" 2>/dev/null
  [[ -s $TMP/hang ]] && cat "$TMP/hang" >>"$TMP/out"
  REDIS=
  wait "$drv"
  RUNS[redis]=$((${RUNS[redis]:-0} + 1))
  [[ $ok == 1 && $rc == 0 ]] || fail_run redis "$run" "$TMP/out" "exit $rc, checks $ok"
}

START=$(date +%s)
run=0
while (( ROUNDS == 0 || run < ROUNDS )); do
  run=$((run + 1))
  for p in ${ONLY//,/ }; do
    (( $(date +%s) - START >= SECONDS_BUDGET )) && break 2
    case $p in
      stress)
        run_prog stress "$run" "$STRESS" 3 2000 "$run"
        [[ $rc == 0 ]] && grep -q '^stress: OK' "$TMP/out" || fail_run stress "$run" "$TMP/out" "exit $rc" ;;
      model)
        run_prog model "$run" "$MODEL" "$((run + 1000))" 15000
        [[ $rc == 0 ]] || fail_run model "$run" "$TMP/out" "exit $rc (rerun: $MODEL $((run + 1000)) 15000)" ;;
      python3)
        run_prog python3 "$run" env PYTHONMALLOC=malloc "$PY" tests/chaos/py_threads.py 150
        [[ $rc == 0 ]] && cmp -s "$TMP/out" "$TMP/py.want" || fail_run python3 "$run" "$TMP/out" "exit $rc or output differs from glibc's" ;;
      sqlite3)
        run_prog sqlite3 "$run" sqlite3 "${SQL[@]}"
        [[ $rc == 0 ]] && cmp -s "$TMP/out" "$TMP/sql.want" || fail_run sqlite3 "$run" "$TMP/out" "exit $rc or output differs" ;;
      cxx)
        run_prog cxx "$run" "$CXX" 60000
        [[ $rc == 0 ]] && cmp -s "$TMP/out" "$TMP/cxx.want" || fail_run cxx "$run" "$TMP/out" "exit $rc or output differs" ;;
      redis)
        redis_round "$run" ;;
    esac
  done
done

inproc=$(stat -c %s "$TMP/levels" 2>/dev/null || echo 0)
viactl=$(awk '{ s += $1 } END { print s + 0 }' "$TMP/ctl" 2>/dev/null)
total_runs=0 total_fail=0
printf '%-8s %5s %8s\n' program runs failures
for p in ${ONLY//,/ }; do
  printf '%-8s %5d %8d\n' "$p" "${RUNS[$p]:-0}" "${FAILS[$p]:-0}"
  total_runs=$((total_runs + ${RUNS[$p]:-0}))
  total_fail=$((total_fail + ${FAILS[$p]:-0}))
done
nprog=$(wc -w <<<"${ONLY//,/ }")
echo "chaos: $nprog programs, $total_runs runs in $(( $(date +%s) - START )) s," \
     "$((inproc + viactl)) level changes ($inproc in process, $viactl through hakmemd), $total_fail failures"
[[ $total_fail == 0 ]]
