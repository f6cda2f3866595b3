#!/usr/bin/env bash
# tools/test.sh: set up (tools/setup.sh), then run every test suite and
# print one closing line "N passed, N failed, N skipped". Exit status 0
# only when nothing failed.
set -uo pipefail
cd "$(dirname "$0")/.."

tools/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

meson test -C build --print-errorlogs --num-processes 2 "$@"
rc=$?

summary=$(python3 - build/meson-logs/testlog.json <<'PY'
import json, sys
ok = bad = skip = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result", "")
    if r in ("OK", "EXPECTEDFAIL"):
        ok += 1
    elif r == "SKIP":
        skip += 1
    else:
        bad += 1
print(f"{ok} passed, {bad} failed, {skip} skipped")
PY
) || summary="0 passed, 1 failed"
echo "$summary"
[[ $rc -eq 0 && $summary == *" 0 failed"* ]]
