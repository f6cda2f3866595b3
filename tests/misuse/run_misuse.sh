#!/usr/bin/env bash
# run_misuse.sh: the death tests of suite 'misuse'. Runs one case of
# misuse.c with the shim preloaded and passes when the process died of
# SIGABRT (exit status 134) after a message of the form
#   hakmem[PID]: FUNCTION(): WHAT ... POINTER
# where FUNCTION(): WHAT matches the case's regex (misuse --expect CASE)
# and POINTER is the one the case announced on stdout.
#   run_misuse.sh MISUSE SHIM CASE          one test: exit 0 or 1
#   run_misuse.sh --table MISUSE [LABEL=SHIM]...
#       a Markdown table of every case: glibc (no shim) and each shim
set -uo pipefail
ulimit -c 0                             # no core files from the aborts

# run_case MISUSE SHIM CASE ENV OUT ERR: the exit status of the case
# (128+N for signal N), stdout and stderr in OUT and ERR. SHIM may be
# empty (glibc).
run_case() {
    local prog=$1 shim=$2 name=$3 env=$4 out=$5 err=$6 vars=()
    [[ $env != - ]] && vars+=("$env")
    [[ -n $shim ]] && vars+=("LD_PRELOAD=$shim")
    env "${vars[@]}" "$prog" "$name" >"$out" 2>"$err"
}

# outcome RC OUT ERR: one table cell.
outcome() {
    local rc=$1 out=$2 err=$3 msg
    msg=$(grep -v '^misuse:' "$err" | head -n 1 | cut -c1-90)
    case $rc in
        0) if grep -q "new owner's block" "$out"; then echo "silent: frees the new owner's block"
           else echo "silent (exit 0)"; fi ;;
        134) echo "abort (134): \`${msg:-no message}\`" ;;
        139) echo "SIGSEGV (139)${msg:+: \`$msg\`}" ;;
        *) echo "exit $rc${msg:+: \`$msg\`}" ;;
    esac
}

if [[ ${1:-} == --table ]]; then
    prog=$2
    shift 2
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    header="| case | glibc |" rule="|---|---|"
    for s in "$@"; do header+=" ${s%%=*} |"; rule+="---|"; done
    echo "$header"
    echo "$rule"
    for name in $("$prog" --list); do
        IFS=$'\t' read -r env _ < <("$prog" --expect "$name")
        row="| $name |"
        run_case "$prog" "" "$name" "$env" "$tmp/o" "$tmp/e"
        row+=" $(outcome $? "$tmp/o" "$tmp/e") |"
        for s in "$@"; do
            run_case "$prog" "${s#*=}" "$name" "$env" "$tmp/o" "$tmp/e"
            row+=" $(outcome $? "$tmp/o" "$tmp/e") |"
        done
        echo "$row"
    done
    exit 0
fi

if [[ $# -ne 3 ]]; then
    echo "usage: $0 MISUSE SHIM CASE | --table MISUSE [LABEL=SHIM]..." >&2
    exit 1
fi
prog=$1 shim=$2 name=$3
IFS=$'\t' read -r env regex < <("$prog" --expect "$name") || {
    echo "FAIL: misuse --expect $name"
    exit 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run_case "$prog" "$shim" "$name" "$env" "$tmp/out" "$tmp/err"
rc=$?
[[ $env == - ]] && env="" || env=" ($env)"
echo "--- $name$env: exit status $rc; stdout:"
cat "$tmp/out"
echo "--- stderr:"
cat "$tmp/err"
echo "---"

ptr=$(sed -n "s/^misuse: $name: pointer \(0x[0-9a-f]*\)$/\1/p" "$tmp/out")
if [[ -z $ptr ]]; then
    echo "FAIL: the case did not announce its pointer"
    exit 1
fi
if [[ $rc -ne 134 ]]; then
    echo "FAIL: exit status $rc, want 134 (SIGABRT)"
    exit 1
fi
if ! grep -Eq "^hakmem\[[0-9]+\]: ($regex).*$ptr([^0-9a-f]|$)" "$tmp/err"; then
    echo "FAIL: no message matching \"hakmem[PID]: ($regex) ... $ptr\""
    exit 1
fi
echo "PASS: $name: SIGABRT with the expected message"
exit 0
