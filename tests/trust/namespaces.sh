#!/usr/bin/env bash
# namespaces.sh SHIM TRUST HAKMEMD HAKMEMCTL: programs that change user
# namespaces keep working under the shim, whose helper threads (the
# listener, the purger) would otherwise make the process multithreaded,
# which the kernel refuses for CLONE_NEWUSER: `unshare -U true`,
# `unshare -Urm true`, unshare(CLONE_NEWUSER) and setns() into a user
# namespace, with a real hakmemd running (the listener is up from the
# constructor) and with HAKMEM_SS_MEM_LEAN=1 (the purger is up from the
# first malloc). After the change the helpers come back: the listener
# registers with hakmemd again (a new connection), the purger gives memory
# back while the process is idle.
set -uo pipefail
shim=$1 prog=$2 hakmemd=$3 hakmemctl=$4
failed=0
tmp=$(mktemp -d)
daemon=
cleanup() {
  [[ -n $daemon ]] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "namespaces: FAIL: $*"; failed=1; }

if ! unshare -U true 2>/dev/null; then
  echo "namespaces: SKIP: unshare -U true fails here even without the shim"
  exit 77
fi
unshare -Urm true 2>/dev/null || { echo "namespaces: SKIP: unshare -Urm true fails without the shim"; exit 77; }

mkdir -p "$tmp/run"
"$hakmemd" --runtime-dir "$tmp/run" --sources none >"$tmp/hakmemd.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do [[ -S $tmp/run/control.sock ]] && break; sleep 0.1; done
[[ -S $tmp/run/control.sock ]] || { cat "$tmp/hakmemd.log"; fail "hakmemd did not start"; exit 1; }

# connected_ns of PID in hakmemd's client list, or nothing
connected() {
  "$hakmemctl" --runtime-dir "$tmp/run" clients --json 2>/dev/null |
    python3 -c 'import json,sys
for c in json.load(sys.stdin)["clients"]:
    if c["pid"] == int(sys.argv[1]): print(c["connected_ns"])' "$1"
}

# check LABEL ENV... -- CMD...: CMD exits 0 under the shim
check() {
  local label=$1
  shift
  local env=()
  while [[ $1 != -- ]]; do env+=("$1"); shift; done
  shift
  if out=$(env LD_PRELOAD="$shim" "${env[@]}" "$@" 2>&1); then
    echo "namespaces: $label: OK"
  else
    fail "$label: exit status $?: $out"
  fi
}

D=(HAKMEM_RUNTIME_DIR="$tmp/run")
L=(HAKMEM_RUNTIME_DIR="$tmp/none" HAKMEM_SS_MEM_LEAN=1)
for cfg in daemon lean; do
  if [[ $cfg == daemon ]]; then envs=("${D[@]}"); else envs=("${L[@]}"); fi
  check "$cfg: unshare -U true" "${envs[@]}" -- unshare -U true
  check "$cfg: unshare -Urm true" "${envs[@]}" -- unshare -Urm true
  check "$cfg: unshare -Urm (a program in there allocates)" "${envs[@]}" -- \
    unshare -Urm sh -c 'echo ok | sort | tr a-z A-Z >/dev/null'
  check "$cfg: unshare(CLONE_NEWUSER)" "${envs[@]}" -- "$prog" unshare-user
  check "$cfg: setns(CLONE_NEWUSER)" "${envs[@]}" -- "$prog" setns-user
done

# the helpers come back after the change
for call in unshare-user setns-user; do
  for lean in "" lean; do
    d="$tmp/$call$lean"
    mkdir -p "$d"
    env LD_PRELOAD="$shim" "${D[@]}" ${lean:+HAKMEM_SS_MEM_LEAN=1} "$prog" "$call" "$d" $lean \
      >"$d/out" 2>&1 &
    pid=$!
    before=
    for _ in $(seq 100); do
      before=$(connected $pid)
      [[ -n $before ]] || ! kill -0 $pid 2>/dev/null && break
      sleep 0.1
    done
    [[ -n $before ]] || fail "$call: pid $pid never registered with hakmemd"
    touch "$d/go"
    after=
    for _ in $(seq 150); do
      after=$(connected $pid)
      [[ -n $after && $after != "$before" ]] || ! kill -0 $pid 2>/dev/null && break
      sleep 0.1
    done
    touch "$d/stop"
    if ! wait $pid; then
      fail "$call${lean:+ (lean)}: $(cat "$d/out")"
    elif [[ -z $after || $after == "$before" ]]; then
      fail "$call${lean:+ (lean)}: the listener did not register again after the change (connected_ns $before -> ${after:-gone})"
    else
      echo "namespaces: $call${lean:+ (lean)}: OK, listener registered again"
    fi
  done
done
exit $failed
