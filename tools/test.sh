#!/usr/bin/env bash
# tools/test.sh: set up (tools/setup.sh), then run every test suite and
# print one closing line "N passed, N failed, N skipped". Exit status 0
# only when nothing failed. Extra arguments go to `meson test`.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

tools/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
meson test -C build --print-errorlogs --num-processes 2 "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}

# meson's own summary block: Ok, Expected Fail, Fail, Unexpected Pass,
# Skipped, Timeout
count() { awk -v k="$1:" '$0 ~ "^"k {print $NF; exit}' "$out"; }
ok=$(( $(count Ok || echo 0) + $(count "Expected Fail" || echo 0) ))
bad=$(( $(count Fail || echo 0) + $(count "Unexpected Pass" || echo 0) + $(count Timeout || echo 0) ))
skip=$(count Skipped); skip=${skip:-0}
if [[ $rc -ne 0 && $bad -eq 0 ]]; then
  bad=1                               # meson failed without a summary
fi
echo "$ok passed, $bad failed, $skip skipped"
[[ $rc -eq 0 && $bad -eq 0 ]]
