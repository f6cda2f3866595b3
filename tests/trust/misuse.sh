#!/usr/bin/env bash
# misuse.sh SHIM TRUST: misuse of small blocks that glibc aborts on (and one
# it misses) must abort under the shim too: SIGABRT (exit status 134) and a
# message in glibc's form naming the function and the pointer. Prints the
# table case | glibc | hakmem.
set -uo pipefail
shim=$1 prog=$2
failed=0

# case: the hakmem message expected (an extended regex)
declare -A want=(
  [dfree]='hakmem\[[0-9]+\]: free\(\): double free detected in tcache 0x[0-9a-f]+'
  [dfree-later]='hakmem\[[0-9]+\]: free\(\): double free detected in tcache 0x[0-9a-f]+'
  [dfree-flushed]='hakmem\[[0-9]+\]: free\(\): double free detected( in tcache)? 0x[0-9a-f]+'
  [dfree-thread]='hakmem\[[0-9]+\]: free\(\): double free detected( in tcache)? 0x[0-9a-f]+'
  [interior]='hakmem\[[0-9]+\]: free\(\): invalid pointer 0x[0-9a-f]+'
)
order=(dfree dfree-later dfree-flushed dfree-thread interior)

# run ENV...: "status | first line of stderr"
run() {
  local err rc
  err=$(env "$@" "$prog" "$case" 2>&1 >/dev/null)
  rc=$?
  printf '%s | %s' "$rc" "$(head -n1 <<<"$err")"
}

printf '%-14s | %-55s | %s\n' case glibc hakmem
for case in "${order[@]}"; do
  g=$(run)
  h=$(run LD_PRELOAD="$shim")
  printf '%-14s | %-55s | %s\n' "$case" "$g" "$h"
  rc=${h%% |*}
  msg=${h#* | }
  if [[ $rc != 134 ]]; then
    echo "misuse: FAIL: $case: exit status $rc under the shim, want 134 (SIGABRT)"
    failed=1
  elif ! grep -Eq "^${want[$case]}\$" <<<"$msg"; then
    echo "misuse: FAIL: $case: message '$msg' does not match '${want[$case]}'"
    failed=1
  fi
done
exit $failed
