#!/bin/bash
# gcc.sh: gcc compiling prog.c with and without the shim (the driver's
# children cc1, as, collect2 and ld inherit LD_PRELOAD), then running the
# binary it produced, under the same setting. Checks, through run_pair:
# identical program output, clean exits, the shim loaded in every process
# of the pipeline; then that the binary and an -O3 -g assembly listing are
# byte-for-byte the ones gcc produces without the shim (a corrupted heap in
# cc1 would show as different code). Skips when gcc is missing.
source "$(dirname "$0")/common.sh"

GCC=/usr/bin/gcc
need_program "$GCC"

cat >"$WORK/build.sh" <<'SCRIPT'
set -euo pipefail
gcc -O2 -Wall -Wextra -o prog "$1"
gcc -O3 -g -funroll-loops -S -o prog.s "$1"
./prog
SCRIPT

unset GCC_EXEC_PREFIX COMPILER_PATH LIBRARY_PATH CPATH C_INCLUDE_PATH
export PATH=/usr/bin:/bin LC_ALL=C
# bash, 2 x (gcc, cc1), as, collect2, ld, prog: 9 processes.
MIN_PROCS=9 run_pair build /bin/bash "$WORK/build.sh" "$IT_DIR/prog.c"

for f in prog prog.s; do
    [[ -f $WORK/build.base/$f ]] || continue
    if ! cmp -s "$WORK/build.base/$f" "$WORK/build.shim/$f"; then
        fail "gcc produced a different $f under the shim" \
             "($(cmp "$WORK/build.base/$f" "$WORK/build.shim/$f" 2>&1 | head -n 1))"
        if [[ $f == prog.s ]]; then
            diff -u "$WORK/build.base/$f" "$WORK/build.shim/$f" | head -n 40 || true
        fi
    fi
done
finish
