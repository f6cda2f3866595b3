#!/usr/bin/env bash
# tools/setup.sh: install what hakmem needs on Debian (only the packages
# that are missing; needs root for that), then configure and build into
# build/, and the ThreadSanitizer build (suite tsan) into build-tsan/.
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  # build
  gcc pkg-config meson ninja-build check
  # the daemon: BPF programs (clang, bpftool skeletons, libbpf), sandbox
  clang llvm libbpf-dev bpftool libseccomp-dev
  # the libFuzzer runtime for the fuzz tests (ring/messages, env, maps)
  libclang-rt-14-dev
  # the ThreadSanitizer runtime (build-tsan)
  libtsan2
  # tests: real programs run on the shim, and the memory checkers
  python3 perl sqlite3 git valgrind time strace systemd  # systemd: systemd-analyze for tests/ctl
  # tests/ctl: promtool (check metrics) from Debian's prometheus package,
  # 19 MB, ~35 s to fetch and install; its server is not started here (no
  # systemd as pid 1 on CI; on a systemd host the package enables it)
  prometheus
  # tests/deploy: YAML and JSON Schema for the manifests, and shellcheck
  python3-yaml python3-jsonschema shellcheck
  # tools/bench/density.py: its plot, and redis as one of its workloads;
  # tools/chaos.sh: a C++ threads program, redis under redis-benchmark
  python3-matplotlib g++ redis-server redis-tools
  # benchmarks: the peers hakmem is compared with
  libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4
  # tools/vm.sh: the cgroup v2 guest (qemu TCG, a busybox initramfs packed
  # with cpio, a scratch ext4 disk, the kernel's xz payload unpacked)
  qemu-system-x86 busybox-static cpio e2fsprogs xz-utils
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
if [[ ! -f build-tsan/build.ninja ]]; then
  meson setup build-tsan --buildtype=release -Dsanitize_tsan=true >/dev/null
fi
ninja -C build-tsan >/dev/null
echo "setup: built build/shim/libhakmem.so and build-tsan/"
