# shellcheck shell=bash disable=SC2034  # the SUMMARY_* variables are for the caller
# tools/summary.sh: sourced by tools/test.sh and tools/vm.sh: reads the
# output of `meson test` and sets the counts of its own summary block
# (Ok, Expected Fail, Fail, Unexpected Pass, Skipped, Timeout).
#
#   meson_summary FILE RC   sets SUMMARY_PASSED, SUMMARY_FAILED,
#                           SUMMARY_SKIPPED, SUMMARY_LINE ("N passed, N
#                           failed, N skipped") and SUMMARY_OK (yes/no).
# RC is meson's exit status: non-zero without a failure in the summary
# (meson failed before it could write one) counts as one failure.
meson_summary() {
  local file=$1 rc=$2
  _summary_count() { awk -v k="$1:" '$0 ~ "^"k {print $NF; found=1; exit} END {if (!found) print 0}' "$file"; }
  SUMMARY_PASSED=$(( $(_summary_count Ok) + $(_summary_count "Expected Fail") ))
  SUMMARY_FAILED=$(( $(_summary_count Fail) + $(_summary_count "Unexpected Pass") + $(_summary_count Timeout) ))
  SUMMARY_SKIPPED=$(_summary_count Skipped)
  if [[ $rc -ne 0 && $SUMMARY_FAILED -eq 0 ]]; then
    SUMMARY_FAILED=1
  fi
  SUMMARY_LINE="$SUMMARY_PASSED passed, $SUMMARY_FAILED failed, $SUMMARY_SKIPPED skipped"
  if [[ $rc -eq 0 && $SUMMARY_FAILED -eq 0 ]]; then SUMMARY_OK=yes; else SUMMARY_OK=no; fi
}
