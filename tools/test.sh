#!/usr/bin/env bash
# tools/test.sh: set up (tools/setup.sh), run every test suite on this
# host (build/, then suite tsan in the ThreadSanitizer build dir
# build-tsan/), then the cgroup v2 suites in a VM on Debian's stock kernel
# (tools/vm.sh test), and print one closing line "N passed, N failed, N
# skipped" that adds the counts of all three. Exit status 0 only when
# nothing failed. Extra arguments go to the host's `meson test` in build/;
# build-tsan/ is then left out, and the VM runs only with HAKMEM_VM=1
# (HAKMEM_VM=0 leaves it out always). A VM that cannot run here (exit 77,
# reason printed) counts as one skipped test.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=summary.sh
. tools/summary.sh

tools/setup.sh || { echo "0 passed, 1 failed, 0 skipped"; exit 1; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
passed=0 failed=0 skipped=0

# run_dir DIR [ARGS...]: meson test in DIR; adds its summary to the totals.
run_dir() {
  local dir=$1
  shift
  meson test -C "$dir" --print-errorlogs --num-processes 2 "$@" 2>&1 | tee "$out"
  meson_summary "$out" "${PIPESTATUS[0]}"
  passed=$((passed + SUMMARY_PASSED)) failed=$((failed + SUMMARY_FAILED))
  skipped=$((skipped + SUMMARY_SKIPPED))
  echo "$dir ($(uname -r)): $SUMMARY_LINE"
}

run_dir build "$@"
if [[ $# -eq 0 ]]; then
  run_dir build-tsan
fi

if [[ ${HAKMEM_VM:-$([[ $# -eq 0 ]] && echo 1 || echo 0)} == 1 ]]; then
  tools/vm.sh test 2>&1 | tee "$out"
  vrc=${PIPESTATUS[0]}
  last=$(tail -1 "$out")
  if [[ $vrc -eq 77 ]]; then
    skipped=$((skipped + 1))
  elif [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed,\ ([0-9]+)\ skipped$ ]]; then
    passed=$((passed + BASH_REMATCH[1]))
    failed=$((failed + BASH_REMATCH[2]))
    skipped=$((skipped + BASH_REMATCH[3]))
    [[ $vrc -ne 0 && ${BASH_REMATCH[2]} -eq 0 ]] && failed=$((failed + 1))
  else
    failed=$((failed + 1))            # the VM failed before it could count
  fi
fi
echo "$passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
