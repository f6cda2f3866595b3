#!/usr/bin/env bash
# run_fuzz.sh: runs a libFuzzer target for a while on a corpus kept in the
# build directory (it grows from run to run) and fails on any crash,
# sanitizer report, timeout or leak; the reproducer is left in the
# artifact directory (the log names it). The runner of every fuzz test:
# e2e-fuzz-ring (proto/fuzz_ring.c, tests/e2e/meson.build) and suite fuzz
# (tests/fuzz/meson.build).
#   run_fuzz.sh FUZZER CORPUS_DIR ARTIFACT_DIR SECONDS [ARG...]
#       ARGs go to libFuzzer after the defaults and CORPUS_DIR (a later
#       -max_len wins; a directory is a seed corpus, read only: new inputs
#       go to the first directory, CORPUS_DIR)
#   run_fuzz.sh --skip REASON        (exit 77: meson's skip)
set -uo pipefail
if [[ ${1:-} == --skip ]]; then
  echo "SKIP: ${2:-no reason given}"
  exit 77
fi
fuzzer=$1 corpus=$2 artifacts=$3 secs=$4
shift 4
mkdir -p "$corpus" "$artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
start=$(date +%s.%N)
# -error_exitcode/-timeout_exitcode: libFuzzer's default 77 would read as
# a skip to meson. -max_len covers a ring region of a few pages.
"$fuzzer" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
  -error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$corpus" "$@" 2>&1 | grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)'
rc=${PIPESTATUS[0]}
end=$(date +%s.%N)
n=$(find "$corpus" -type f | wc -l)
awk -v f="$(basename "$fuzzer")" -v rc="$rc" -v s="$start" -v e="$end" -v c="$corpus" -v n="$n" \
  'BEGIN { printf "%s: exit %d after %.1f s; corpus %s: %d inputs\n", f, rc, e - s, c, n }'
if [[ $rc -ne 0 ]]; then
  echo "FAIL: the fuzzer found a problem; reproducer(s) in $artifacts:"
  ls -l "$artifacts"
  exit 1
fi
exit 0
