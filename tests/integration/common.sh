# common.sh: sourced by every tests/integration/*.sh. Owns the argument
# check, the temporary directory (removed on exit), and run_pair, which runs
# one command twice, without the shim and with it, and checks:
#   - both exit with the same status, and the baseline with 0;
#   - stdout is identical byte for byte (a diff is shown otherwise);
#   - stderr is identical once the shim's counter lines are removed (a
#     warning printed by the shim is a failure);
#   - the shim printed "mmap_calls N" with N > 0 (HAKMEM_SS_OS_STATS=1), in
#     at least MIN_PROCS processes: the proof that it was really loaded.
# It must not decide anything about one program; the scripts do that.
# Other HAKMEM_* variables pass through to the shim run, so the suite can
# run in LEAN mode: HAKMEM_SS_MEM_LEAN=1 meson test --suite integration.
# Exit status of a script: 0 pass, 1 fail, 77 skip (reason printed).
# shellcheck shell=bash disable=SC2034  # IT_DIR, SHIM: used by the scripts

set -euo pipefail

IT_NAME=$(basename "$0" .sh)
IT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IT_FAILED=0

if [[ $# -lt 1 || -z $1 ]]; then
    echo "usage: $0 /path/to/libhakmem.so" >&2
    exit 1
fi
if [[ ! -f $1 ]]; then
    echo "$IT_NAME: FAIL: shim library $1 does not exist"
    exit 1
fi
SHIM=$(realpath "$1")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-it-$IT_NAME.XXXXXX")
trap 'cd / && rm -rf "$WORK"' EXIT
trap 'exit 130' INT             # so that EXIT runs when meson times out
trap 'exit 143' TERM

skip() {
    echo "$IT_NAME: SKIP: $*"
    exit 77
}

fail() {
    echo "$IT_NAME: FAIL: $*"
    IT_FAILED=1
}

# need_program PATH...: skip unless every PATH is an executable file.
need_program() {
    local p
    for p in "$@"; do
        [[ -x $p ]] || skip "$p is not installed"
    done
}

# A counter line as the shim prints it at exit: "name value".
STATS_RE='^[a-z][a-z0-9_]* [0-9]+$'

# run_pair LABEL CMD [ARGS...]
# Runs CMD twice in a fresh, empty directory that has the same path both
# times ($WORK/run, so that paths written into outputs agree): first with
# no LD_PRELOAD, then with LD_PRELOAD=$SHIM and HAKMEM_SS_OS_STATS=1. The
# directories are kept as $WORK/LABEL.base and $WORK/LABEL.shim for later
# comparisons, with the streams in LABEL.{base,shim}.{out,err}.
# MIN_PROCS (default 1): how many processes must have printed mmap_calls.
run_pair() {
    local label=$1
    shift
    local mode rc t0 t1
    local -A status secs
    for mode in base shim; do
        rm -rf "$WORK/run"
        mkdir "$WORK/run"
        t0=$EPOCHREALTIME
        rc=0
        if [[ $mode == base ]]; then
            (cd "$WORK/run" && env -u LD_PRELOAD -u HAKMEM_SS_OS_STATS "$@") \
                >"$WORK/$label.$mode.out" 2>"$WORK/$label.$mode.err" || rc=$?
        else
            (cd "$WORK/run" && env LD_PRELOAD="$SHIM" HAKMEM_SS_OS_STATS=1 "$@") \
                >"$WORK/$label.$mode.out" 2>"$WORK/$label.$mode.err" || rc=$?
        fi
        t1=$EPOCHREALTIME
        status[$mode]=$rc
        secs[$mode]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
        mv "$WORK/run" "$WORK/$label.$mode"
    done
    echo "$IT_NAME: $label: without shim ${secs[base]} s (exit ${status[base]})," \
         "with shim ${secs[shim]} s (exit ${status[shim]})"

    local ok=1
    if [[ ${status[base]} -ne 0 ]]; then
        fail "$label: the baseline run (no shim) exited ${status[base]}: the test" \
             "or this machine is broken, not the shim. Its stderr:"
        tail -n 20 "$WORK/$label.base.err"
        ok=0
    fi
    if [[ ${status[shim]} -ne ${status[base]} ]]; then
        fail "$label: exit status ${status[shim]} with the shim, ${status[base]} without." \
             "stderr with the shim (last 30 lines):"
        tail -n 30 "$WORK/$label.shim.err"
        ok=0
    fi
    if ! cmp -s "$WORK/$label.base.out" "$WORK/$label.shim.out"; then
        fail "$label: stdout differs ($(wc -c <"$WORK/$label.base.out") bytes without the" \
             "shim, $(wc -c <"$WORK/$label.shim.out") with it); diff -u base shim:"
        diff -u "$WORK/$label.base.out" "$WORK/$label.shim.out" | head -n 60 || true
        ok=0
    fi
    grep -Ev "$STATS_RE" "$WORK/$label.shim.err" >"$WORK/$label.shim.err.rest" || true
    if ! cmp -s "$WORK/$label.base.err" "$WORK/$label.shim.err.rest"; then
        fail "$label: stderr differs (counter lines removed); diff -u base shim:"
        diff -u "$WORK/$label.base.err" "$WORK/$label.shim.err.rest" | head -n 40 || true
        ok=0
    fi
    check_loaded "$label" "${MIN_PROCS:-1}" || ok=0
    if [[ $ok -eq 1 ]]; then
        echo "$IT_NAME: $label: ok ($(wc -l <"$WORK/$label.base.out") lines of output match)"
    fi
}

# check_loaded LABEL MIN: the shim-loaded proof. With a stand-in library
# (anything but libhakmem) this is the check that fails, and only this one.
check_loaded() {
    local label=$1 min=$2 nproc nlive
    nproc=$(grep -Ec '^mmap_calls [0-9]+$' "$WORK/$label.shim.err" || true)
    nlive=$(grep -Ec '^mmap_calls [1-9][0-9]*$' "$WORK/$label.shim.err" || true)
    if [[ $nlive -lt 1 || $nproc -lt $min ]]; then
        fail "$label: SHIM NOT PROVEN LOADED: expected 'mmap_calls N' (N > 0) on" \
             "stderr from at least $min process(es), found $nproc line(s), $nlive with N > 0"
        return 1
    fi
    echo "$IT_NAME: $label: shim loaded in $nproc process(es)"
}

# finish: the script's verdict.
finish() {
    if [[ $IT_FAILED -ne 0 ]]; then
        echo "$IT_NAME: FAIL"
        exit 1
    fi
    echo "$IT_NAME: PASS"
    exit 0
}
