#!/usr/bin/env bash
# tools/test.sh: set up (tools/setup.sh), then run every test suite: those
# of build/, then suite tsan in the ThreadSanitizer build dir build-tsan/,
# and print one closing line "N passed, N failed, N skipped" over both.
# Exit status 0 only when nothing failed. Extra arguments go to `meson
# test` in build/, and then build-tsan/ is left out (a chosen subset).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

tools/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT

ok=0 bad=0 skip=0
# run_dir DIR [ARGS...]: meson test in DIR; adds its summary to the totals.
run_dir() {
  local dir=$1
  shift
  meson test -C "$dir" --print-errorlogs --num-processes 2 "$@" 2>&1 | tee "$out"
  local rc=${PIPESTATUS[0]}
  # meson's own summary block: Ok, Expected Fail, Fail, Unexpected Pass,
  # Skipped, Timeout
  count() { awk -v k="$1:" '$0 ~ "^"k {print $NF; exit}' "$out"; }
  local o b s
  o=$(( $(count Ok || echo 0) + $(count "Expected Fail" || echo 0) ))
  b=$(( $(count Fail || echo 0) + $(count "Unexpected Pass" || echo 0) + $(count Timeout || echo 0) ))
  s=$(count Skipped); s=${s:-0}
  if [[ $rc -ne 0 && $b -eq 0 ]]; then
    b=1                               # meson failed without a summary
  fi
  ok=$((ok + o)) bad=$((bad + b)) skip=$((skip + s))
}

run_dir build "$@"
if [[ $# -eq 0 ]]; then
  run_dir build-tsan
fi
echo "$ok passed, $bad failed, $skip skipped"
[[ $bad -eq 0 ]]
