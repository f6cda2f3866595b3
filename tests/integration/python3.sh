#!/bin/bash
# python3.sh: Debian's /usr/bin/python3 (not a pyenv shim) running churn.py
# under the shim, twice: with pymalloc (the default: only objects above
# 512 bytes, and the arenas, come from malloc) and with PYTHONMALLOC=malloc
# (every object from malloc). Checks, through run_pair: identical output,
# clean exit, and that the shim was loaded (in the interpreter and in the
# subprocess it starts). Skips when /usr/bin/python3 is missing.
source "$(dirname "$0")/common.sh"

PY=/usr/bin/python3
need_program "$PY"
# A user's PYTHON* settings must not change what runs; the hash seed is
# fixed although churn.py does not depend on it.
unset PYTHONPATH PYTHONHOME PYTHONSTARTUP PYTHONMALLOC PYTHONDEVMODE
export PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1

MIN_PROCS=2 run_pair pymalloc "$PY" -s "$IT_DIR/churn.py"
MIN_PROCS=2 run_pair malloc env PYTHONMALLOC=malloc "$PY" -s "$IT_DIR/churn.py"
if ! cmp -s "$WORK/pymalloc.base.out" "$WORK/malloc.base.out"; then
    fail "churn.py prints different results with PYTHONMALLOC=malloc even without" \
         "the shim: the script is not deterministic"
fi
finish
