#!/usr/bin/env bash
# levels.sh SHIM TRUST: each pressure level does what hakmem.h says, seen by
# strace in a process that grew, freed 98 % of its small blocks and then
# applies levels (trust levels L...; a kill(pid, 0) marks each level):
#   LOW       LEAN from now on; nothing given back at once (no madvise, no
#             munmap while it is applied)
#   MEDIUM    free memory decommitted now, with the configured strategy
#             (MADV_FREE by default, MADV_DONTNEED when asked)
#   CRITICAL  MADV_DONTNEED now, also on the pages MEDIUM gave back lazily:
#             none is left lazy (the shim's bytes_lazy counter is 0)
# The purge delay is long so that no background round runs meanwhile.
set -uo pipefail
shim=$1 prog=$2
command -v strace >/dev/null || { echo "levels: SKIP: strace is not installed"; exit 77; }
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() { echo "levels: FAIL: $*"; failed=1; }

# trace LEVELS [ENV...]: sets phase arrays FREE, DONT, UNMAP, FREEB, DONTB
# (calls and bytes per level, index 1 = the first level) and LAZY (the
# shim's bytes_lazy after each level)
trace() {
  local levels=$1
  shift
  env LD_PRELOAD="$shim" HAKMEM_SS_LEAN_DELAY_MS=60000 "$@" \
    strace -f -qq -o "$tmp/st" -e trace=madvise,process_madvise,munmap,kill "$prog" levels $levels >"$tmp/out" 2>&1 ||
    { fail "trust levels $levels: $(tail -n3 "$tmp/out")"; return; }
  eval "$(awk '
    /kill\(/ { ph++ }
    /madvise\(.*MADV_FREE\)/     { split($0, a, ","); f[ph]++; fb[ph] += a[2] }
    /madvise\(.*MADV_DONTNEED\)/ { split($0, a, ","); d[ph]++; db[ph] += a[2] }
    # many ranges in one call (os.c): the bytes are what it returns
    /process_madvise\(.*MADV_FREE,/     { n = split($0, r, "= "); f[ph]++; fb[ph] += r[n] }
    /process_madvise\(.*MADV_DONTNEED,/ { n = split($0, r, "= "); d[ph]++; db[ph] += r[n] }
    /munmap\(/ { u[ph]++ }
    END { for (i = 1; i < ph; i++)
            printf "FREE[%d]=%d DONT[%d]=%d UNMAP[%d]=%d FREEB[%d]=%d DONTB[%d]=%d\n",
                   i, f[i], i, d[i], i, u[i], i, fb[i], i, db[i] }' "$tmp/st")"
  mapfile -t LAZY < <(sed -n 's/.*bytes_lazy \([0-9]*\)$/\1/p' "$tmp/out")
  LAZY=("" "${LAZY[@]}")
  local i=1
  for l in $levels; do
    echo "levels $levels${*:+ ($*)}: level $l: MADV_FREE ${FREE[$i]} calls ${FREEB[$i]} bytes," \
         "MADV_DONTNEED ${DONT[$i]} calls ${DONTB[$i]} bytes, munmap ${UNMAP[$i]}, bytes_lazy ${LAZY[$i]}"
    i=$((i + 1))
  done
}

declare -a FREE DONT UNMAP FREEB DONTB LAZY

trace "1"
[[ ${FREE[1]} -eq 0 && ${DONT[1]} -eq 0 && ${UNMAP[1]} -eq 0 ]] ||
  fail "LOW gave memory back at once"

trace "2"
[[ ${FREE[1]} -gt 0 && ${DONT[1]} -eq 0 && ${LAZY[1]} -gt 0 ]] ||
  fail "MEDIUM (FREE) did not decommit with MADV_FREE only"

trace "2" HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED
[[ ${DONT[1]} -gt 0 && ${FREE[1]} -eq 0 ]] || fail "MEDIUM (DONTNEED) did not decommit with MADV_DONTNEED only"

trace "3"
[[ ${DONT[1]} -gt 0 && ${FREE[1]} -eq 0 && ${LAZY[1]} -eq 0 ]] ||
  fail "CRITICAL did not decommit with MADV_DONTNEED"

trace "1 3"
[[ ${FREE[1]} -eq 0 && ${DONT[1]} -eq 0 ]] || fail "LOW (before CRITICAL) gave memory back at once"
[[ ${DONT[2]} -gt 0 ]] || fail "CRITICAL after LOW issued no MADV_DONTNEED"

trace "2 3"
[[ ${FREE[1]} -gt 0 && ${LAZY[1]} -gt 0 ]] || fail "MEDIUM issued no MADV_FREE"
[[ ${DONT[2]} -gt 0 && ${LAZY[2]} -eq 0 ]] ||
  fail "CRITICAL after MEDIUM left ${LAZY[2]} bytes given back lazily (MADV_DONTNEED ${DONTB[2]} bytes)"
# what MEDIUM gave back lazily and CRITICAL did not make certain was
# needed again in between (pthread_create's TLS for the purge thread)

trace "2 2"
[[ ${FREE[2]} -eq 0 && ${DONT[2]} -eq 0 ]] || fail "a second MEDIUM decommitted again what was decommitted"

exit $failed
