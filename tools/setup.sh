#!/usr/bin/env bash
# tools/setup.sh: install what hakmem needs on Debian (only the packages
# that are missing; needs root for that), then configure and build into
# build/. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  # build
  gcc pkg-config meson ninja-build check
  # the daemon: BPF programs (clang, bpftool skeletons, libbpf), sandbox
  clang llvm libbpf-dev bpftool libseccomp-dev
  # the libFuzzer runtime for the ring/message fuzz test
  libclang-rt-14-dev
  # tests: real programs run on the shim, and the memory checkers
  python3 perl sqlite3 git valgrind time strace systemd  # systemd: systemd-analyze for tests/ctl
  g++ redis-server redis-tools  # tools/chaos.sh: a C++ threads program, redis under redis-benchmark
  # benchmarks: the peers hakmem is compared with
  libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -f build/build.ninja ]]; then
  meson setup build --buildtype=release >/dev/null
fi
ninja -C build >/dev/null
echo "setup: built build/shim/libhakmem.so"
