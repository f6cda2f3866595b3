#!/usr/bin/env bash
# tools/vm.sh: a cgroup v2 test bed: Debian 12's stock kernel under qemu
# (TCG: no KVM needed) with the host's file system as its root.
#
#   tools/vm.sh test        run the guest suites ($GUEST_SUITES) on the
#                           host's build tree; prints "N passed, N failed,
#                           N skipped"; exit 0 only when nothing failed
#                           (77: the VM cannot run here, reason printed)
#   tools/vm.sh demo [ARGS] tools/demo.sh inside the guest (HAKMEMD_ARGS and
#                           HAKMEM_DEMO_BUILD are passed on)
#   tools/vm.sh shell       an interactive root shell in the guest
#                           (Ctrl-D or `exit` powers it off; Ctrl-A X kills qemu)
#   tools/vm.sh run CMD...  any command, in the repository, inside the guest
#
# The kernel is Debian's linux-image-amd64 (6.1 on Debian 12), fetched
# with `apt-get download` and unpacked with `dpkg-deb -x` into a cache
# directory ($HAKMEM_VM_CACHE, default /var/cache/hakmem-vm, or
# ~/.cache/hakmem-vm when that is not writable); it is never installed on
# the host. The guest boots with cgroup v1 off (cgroup_no_v1=all
# systemd.unified_cgroup_hierarchy=1), cgroup2 at /sys/fs/cgroup with the
# memory controller enabled for children of the root, bpffs and tracefs.
#
# Its root: the host's / shared read-only over 9p, under an overlay whose
# upper layer is a scratch ext4 disk made for each run (so tests may
# write anywhere: meson logs, /etc for test users, /var/tmp; page cache
# written there is reclaimable, as on a real disk); /run and /tmp are
# tmpfs. Nothing the guest writes reaches the host, except through the
# exchange directory (the command, its exit status, the meson log).
# Initramfs: busybox-static plus the few modules the shares need, their
# order read from each module's depends= (the package has no modules.dep).
#
# Tunables (environment): HAKMEM_VM_SMP (vCPUs, default 2),
# HAKMEM_VM_MEM (MiB, default 2048), HAKMEM_VM_CACHE, HAKMEM_VM_TIMEOUT
# (s, default 900: qemu is killed after that).
#
# Needs: qemu-system-x86, busybox-static, cpio, e2fsprogs (tools/setup.sh
# installs them) and apt-get (Debian). The guest runs as root.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)

# The suites the guest runs. A suite that the build does not define (yet)
# is left out with a note, not an error.
GUEST_SUITES="bpf pressure e2e ctl security"
# Tests of those suites left to the host: they do the same on every kernel
# and hierarchy (no daemon, or none of its sources: a scripted socket, unit
# files, libFuzzer for a fixed time, many clients, heartbeat timeouts), and
# under emulation they would take most of the guest's time budget
# (measured: 454 of 742 s) for nothing that cgroup v2 or another kernel
# changes; the last four also check time bounds set for real hardware
# (a thousand clients served within seconds, a shim back to FAST within
# 1.5 s of its daemon's end), which emulation ten times slower misses
# now and then (seen: e2e-restart, e2e-sigterm, e2e-many-clients).
GUEST_HOST_ONLY="ctl-cli ctl-fake ctl-systemd e2e-fuzz-ring e2e-slow-clients
  ctl-many e2e-many-clients e2e-restart e2e-sigterm"

SMP=${HAKMEM_VM_SMP:-1}
MEM=${HAKMEM_VM_MEM:-2048}
TIMEOUT=${HAKMEM_VM_TIMEOUT:-900}
CPU=${HAKMEM_VM_CPU:-max}
TIMEOUT_MULT=${HAKMEM_VM_TIMEOUT_MULT:-5}
TBSIZE=${HAKMEM_VM_TBSIZE:-256}
# Modules the initramfs loads (with what they depend on): the PCI
# transport, 9p over virtio (the host root), virtio-blk + ext4 (the scratch
# disk; crc32c for its checksums), overlay (the writable root).
WANT_MODULES="virtio_pci 9pnet_virtio 9p virtio_blk crc32c_generic ext4 overlay"

say() { echo "vm: $*" >&2; }
skip() { echo "vm: SKIP: $*" >&2; exit 77; }
die() { echo "vm: $*" >&2; exit 1; }

# ---------------------------------------------------------------------
# Guest side.

# The initramfs's /init (busybox sh, static, in RAM: every exec from the
# shared root costs 9p round trips under emulation, so all the set-up is
# done here): modules, the root overlay, the mounts the tests need, the
# memory controller for the root's children; then the host's bash runs
# guest_run as PID 1 in the new root.
initramfs_init() {
  cat <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /lower /disk /newroot
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
fail() { echo "vm initramfs: $*"; echo o > /proc/sysrq-trigger; sleep 10; }
up() { cut -d' ' -f1 $P/proc/uptime; }
P=
for m in $(cat /modules/order); do insmod /modules/$m.ko || fail "insmod $m"; done
echo "vm initramfs: modules loaded at $(up) s"
ip link set lo up
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /lower ||
  fail "cannot mount the host's root (9p)"
mount -t ext4 /dev/vda /disk || fail "cannot mount the scratch disk"
mkdir -p /disk/upper /disk/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/disk/upper,workdir=/disk/work /newroot ||
  fail "cannot mount the overlay root"
repo=$(sed -n 's/.*hakmem.repo=\([^ ]*\).*/\1/p' /proc/cmdline)
for d in proc sys dev; do mount --move /$d /newroot/$d; done
R=/newroot P=/newroot
mnt() { mkdir -p "$R$2" && mount -t "$1" -o "$3" "$1" "$R$2" || fail "mount $1 on $2"; }
mnt tmpfs /run mode=0755,nosuid,nodev
mnt tmpfs /tmp mode=1777,nosuid,nodev
mnt tmpfs /dev/shm mode=1777,nosuid,nodev
mnt devpts /dev/pts gid=5,mode=620,ptmxmode=666
mnt cgroup2 /sys/fs/cgroup nsdelegate,memory_recursiveprot
mnt bpf /sys/fs/bpf mode=0700
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
# what udev would make: bash's <(...) needs /dev/fd
ln -s /proc/self/fd $R/dev/fd
for i in 0 1 2; do ln -s /proc/self/fd/$i $R/dev/$(echo stdin stdout stderr | cut -d' ' -f$((i + 1))); done
mkdir -p $R/run/lock $R/run/xchg
mount -t 9p -o trans=virtio,version=9p2000.L xchg $R/run/xchg || fail "cannot mount the exchange dir"
# the memory controller for the root's children (the tests' cgroups)
echo "+memory +pids" > $R/sys/fs/cgroup/cgroup.subtree_control || fail "no memory controller"
hostname hakmem-vm
up > $R/run/xchg/ready
echo "vm initramfs: root ready at $(up) s"
exec switch_root /newroot /bin/bash "$repo/tools/vm.sh" --guest-run
EOF
}

# PID 1 in the guest: the command, its exit status, power off.
guest_run() {
  set +e
  export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  export HOME=/root LANG=C.UTF-8 TERM=${TERM:-linux}
  local rc=0
  cd "$REPO"
  if [[ $(cat /run/xchg/mode) == shell ]]; then
    echo "vm: $(uname -sr), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
    echo "vm: root is the host's / (read-only) under an overlay; exit or Ctrl-D powers off"
    setsid -c bash -l </dev/ttyS0 >/dev/ttyS0 2>&1 || rc=$?
  else
    bash /run/xchg/cmd || rc=$?
  fi
  cut -d' ' -f1 /proc/uptime > /run/xchg/end
  echo "$rc" > /run/xchg/rc
  sync
  echo o > /proc/sysrq-trigger
  # PID 1 must not exit (a panic) while the power goes: wait here, with no
  # program to load from a root that is going away
  while :; do :; done
}

if [[ ${1:-} == --guest-run ]]; then
  guest_run
  exit 0
fi

# ---------------------------------------------------------------------
# Host side.

cache_dir() {
  if [[ -n ${HAKMEM_VM_CACHE:-} ]]; then
    echo "$HAKMEM_VM_CACHE"
  elif mkdir -p /var/cache/hakmem-vm 2>/dev/null && [[ -w /var/cache/hakmem-vm ]]; then
    echo /var/cache/hakmem-vm
  else
    echo "${XDG_CACHE_HOME:-$HOME/.cache}/hakmem-vm"
  fi
}

# The kernel package linux-image-amd64 points at, e.g.
# linux-image-6.1.0-57-amd64.
kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ {print $2; exit}'
}

# Fetches and unpacks the kernel into $CACHE/<package>/ (once).
fetch_kernel() {
  local pkg=$1 dir=$CACHE/$1
  [[ -f $dir/.done ]] && return 0
  say "fetching $pkg (apt-get download; not installed on this host)"
  rm -rf "$dir" "$CACHE/dl"
  mkdir -p "$CACHE/dl"
  # apt drops privileges to _apt for downloads: let it write there
  if id _apt >/dev/null 2>&1; then chown _apt "$CACHE/dl" 2>/dev/null || true; fi
  if ! (cd "$CACHE/dl" && apt-get download -q "$pkg" >/dev/null); then
    if [[ $(id -u) -eq 0 ]]; then
      { apt-get update -qq >/dev/null && (cd "$CACHE/dl" && apt-get download -q "$pkg" >/dev/null); } ||
        die "cannot download $pkg"
    else
      die "cannot download $pkg (apt-get update as root may help)"
    fi
  fi
  dpkg-deb -x "$CACHE"/dl/"$pkg"_*.deb "$dir.tmp"
  rm -rf "$CACHE/dl"
  mv "$dir.tmp" "$dir"
  touch "$dir/.done"
}

# $1/vmlinux: the kernel's ELF image, unpacked from the bzImage on the
# host (when the kernel has CONFIG_PVH, qemu boots it directly: no
# decompression under emulation, which takes tens of seconds on a busy
# host). Debian compresses with xz.
make_vmlinux() {
  local kdir=$1 z off
  [[ -f $kdir/vmlinux ]] && return 0
  grep -qx CONFIG_PVH=y "$kdir"/boot/config-* 2>/dev/null || return 0
  command -v xz >/dev/null || return 0
  z=$(find "$kdir/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | head -1)
  off=$(grep -abo $'\xfd7zXZ\x00' "$z" | head -1 | cut -d: -f1)
  [[ -n $off ]] || return 0
  # the payload ends before the bzImage's trailer: xz stops at its end
  tail -c +$((off + 1)) "$z" | xz -dcq > "$kdir/vmlinux.tmp" 2>/dev/null || true
  if [[ $(head -c 4 "$kdir/vmlinux.tmp" | od -An -c | tr -d ' ') == 177ELF ]]; then
    mv "$kdir/vmlinux.tmp" "$kdir/vmlinux"
  else
    rm -f "$kdir/vmlinux.tmp"
  fi
}

# Module name -> .ko file, under the unpacked tree ('-' and '_' are the same).
module_file() {
  local pat=${1//[-_]/[-_]}
  grep -m1 -E "/$pat\.ko\$" "$MODLIST"
}

# Appends module $1 to ORDER after the modules it depends on.
add_module() {
  local name=${1//-/_} f dep
  [[ " ${ORDER[*]} " == *" $name "* ]] && return 0
  f=$(module_file "$name") || die "module $name not found in the kernel package"
  for dep in $(tr '\0' '\n' < "$f" | sed -n 's/^depends=//p' | tr ',' ' '); do
    add_module "$dep"
  done
  ORDER+=("$name")
  MODFILES+=("$f")
}

# Builds $CACHE/<package>/initrd-<hash> (once per kernel and init script).
make_initramfs() {
  local kdir=$1 hash out root
  hash=$( (initramfs_init; echo "$WANT_MODULES") | sha256sum | cut -c1-12)
  out=$kdir/initrd-$hash
  INITRD=$out
  [[ -f $out ]] && return 0
  { [[ -x /bin/busybox ]] && /bin/busybox --list | grep -qx switch_root; } ||
    skip "no static busybox (/bin/busybox from busybox-static): run tools/setup.sh"
  command -v cpio >/dev/null || skip "no cpio: run tools/setup.sh"
  root=$(mktemp -d "$CACHE/initramfs.XXXXXX")
  mkdir -p "$root/bin" "$root/modules"
  cp /bin/busybox "$root/bin/busybox"
  initramfs_init > "$root/init"
  chmod 755 "$root/init"
  MODLIST=$(mktemp)
  find "$kdir"/lib/modules/*/kernel -name '*.ko' > "$MODLIST"
  ORDER=() MODFILES=()
  local m i
  for m in $WANT_MODULES; do add_module "$m"; done
  rm -f "$MODLIST"
  for i in "${!ORDER[@]}"; do cp "${MODFILES[$i]}" "$root/modules/${ORDER[$i]}.ko"; done
  printf '%s\n' "${ORDER[@]}" > "$root/modules/order"
  (cd "$root" && find . | cpio -o -H newc --quiet) > "$out.tmp"
  find "$kdir" -maxdepth 1 -name 'initrd-*' ! -name "initrd-$hash*" -delete
  mv "$out.tmp" "$out"
  rm -rf "$root"
}

# Boots the guest with $XCHG/mode and $XCHG/cmd; leaves rc, ready, end there.
boot() {
  local kdir=$1 interactive=$2 disk=$XCHG/disk.img
  local kernel
  kernel=$(find "$kdir/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | head -1)
  [[ -f $kdir/vmlinux ]] && kernel=$kdir/vmlinux
  # the scratch disk: sparse, formatted here (mke2fs on a plain file)
  truncate -s 4G "$disk"
  mkfs.ext4 -q -F -O ^has_journal -i 65536 -E lazy_itable_init=0 "$disk"
  local append="console=ttyS0 panic=-1 cgroup_no_v1=all"
  [[ -n ${HAKMEM_VM_DEBUG:-} ]] && append+=" loglevel=7" || append+=" quiet loglevel=3"
  append+=" systemd.unified_cgroup_hierarchy=1 hakmem.repo=$REPO"
  local args=(-machine q35 -accel "tcg,thread=multi,tb-size=$TBSIZE" -cpu "$CPU" -smp "$SMP"
    -m "$MEM" -no-reboot
    -kernel "$kernel" -initrd "$INITRD" -append "$append"
    -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
    -virtfs "local,path=$XCHG,mount_tag=xchg,security_model=none"
    -drive "file=$disk,if=virtio,format=raw,cache=unsafe,discard=unmap"
    -nic none)
  T0=$(date +%s.%N)
  if [[ $interactive == yes ]]; then
    qemu-system-x86_64 "${args[@]}" -nographic
  else
    timeout -k 10 "$TIMEOUT" qemu-system-x86_64 "${args[@]}" -display none -serial stdio \
      -monitor none </dev/null || true
  fi
  T1=$(date +%s.%N)
  rm -f "$disk"
}

main() {
  local mode=${1:-}
  case $mode in
    test|demo|shell|run) shift ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
  esac
  [[ $mode == run && $# -eq 0 ]] && die "run: which command?"
  command -v qemu-system-x86_64 >/dev/null || skip "no qemu-system-x86_64: run tools/setup.sh"
  command -v apt-get >/dev/null || skip "no apt-get: the guest kernel comes from Debian's archive"
  command -v mkfs.ext4 >/dev/null || skip "no mkfs.ext4 (e2fsprogs)"
  if [[ $mode == test ]]; then
    [[ -f $REPO/build/build.ninja ]] || die "no build/: run tools/setup.sh first"
    ninja -C "$REPO/build" >/dev/null || die "the build failed: ninja -C build"
  fi

  CACHE=$(cache_dir)
  mkdir -p "$CACHE"
  local pkg
  pkg=$(kernel_package)
  if [[ -z $pkg ]]; then
    pkg=$(cd "$CACHE" && find . -maxdepth 2 -path './linux-image-*/.done' 2>/dev/null | sort | tail -1 | cut -d/ -f2)
    [[ -n $pkg ]] || skip "apt does not know linux-image-amd64 (not Debian, or no apt lists)"
  fi
  # one preparation at a time per cache (concurrent runs share it)
  exec 9>"$CACHE/.lock"
  flock 9
  fetch_kernel "$pkg"
  make_vmlinux "$CACHE/$pkg"
  make_initramfs "$CACHE/$pkg"
  flock -u 9

  XCHG=$(mktemp -d "$CACHE/run.XXXXXX")
  trap 'rm -rf "$XCHG"' EXIT
  echo "$mode" > "$XCHG/mode"
  local suites=()
  case $mode in
    test)
      # "project:suite+suite / name" per test: the tests of GUEST_SUITES
      local list s t
      list=$(cd "$REPO" && meson test -C build --no-rebuild --list 2>/dev/null |
        sed -n 's/^[^:]*:\([^ ]*\) \/ \(.*\)$/\1 \2/p')
      for s in $GUEST_SUITES; do
        grep -q "^\([^ ]*+\)\?$s\(+[^ ]*\)\? " <<< "$list" || say "suite $s: not in this build, left out"
      done
      while read -r s t; do
        [[ " ${GUEST_HOST_ONLY//$'\n'/ } " == *" $t "* ]] && continue
        for g in $GUEST_SUITES; do
          if [[ "+$s+" == *"+$g+"* ]]; then suites+=("$t"); break; fi
        done
      done <<< "$list"
      ((${#suites[@]})) || die "none of the suites $GUEST_SUITES has a test to run"
      say "left to the host: ${GUEST_HOST_ONLY//$'\n'/ }"
      # emulation is ~10-20x slower than the host: the tests' own timeouts
      # (set for the host) are multiplied by TIMEOUT_MULT, and CPU bounds
      # measured on the host are only reported (HAKMEM_TEST_EMULATED)
      cat > "$XCHG/cmd" <<EOF
export PYTHONUNBUFFERED=1 HAKMEM_TEST_EMULATED=1
meson test -C build --no-rebuild --print-errorlogs --num-processes $SMP \\
  --timeout-multiplier $TIMEOUT_MULT ${suites[*]} 2>&1 | tee /run/xchg/meson.out
rc=\${PIPESTATUS[0]}
cp build/meson-logs/testlog.txt /run/xchg/testlog.txt 2>/dev/null
exit \$rc
EOF
      ;;
    demo|run)
      # the demo's knobs reach the guest; the rest of the environment does not
      local v
      for v in HAKMEMD_ARGS HAKMEM_DEMO_BUILD HAKMEM_DEMO_KEEP; do
        [[ -n ${!v:-} ]] && printf 'export %s=%q\n' "$v" "${!v}"
      done > "$XCHG/cmd"
      [[ $mode == demo ]] && set -- tools/demo.sh "$@"
      printf '%q ' "$@" >> "$XCHG/cmd"
      ;;
  esac

  say "booting $pkg (qemu TCG, $SMP vCPUs, $MEM MiB) for '$mode'"
  boot "$CACHE/$pkg" "$([[ $mode == shell ]] && echo yes || echo no)"
  [[ -f $XCHG/rc ]] || die "the guest did not finish (no exit status; killed after ${TIMEOUT}s?)"
  local rc
  rc=$(cat "$XCHG/rc")
  say "$(awk -v t0="$T0" -v t1="$T1" -v mt="$(stat -c %.Y "$XCHG/ready")" \
    -v up="$(cat "$XCHG/ready")" -v end="$(cat "$XCHG/end")" -v mode="$mode" 'BEGIN {
      printf "boot %.1f s wall (guest uptime %.1f s at init), %s %.1f s, total %.1f s wall",
        mt - t0, up, mode, end - up, t1 - t0 }')"
  if [[ $mode == test ]]; then
    mkdir -p "$REPO/build/meson-logs"
    cp "$XCHG/testlog.txt" "$REPO/build/meson-logs/vm-testlog.txt" 2>/dev/null || true
    # shellcheck source=summary.sh
    . "$REPO/tools/summary.sh"
    meson_summary "$XCHG/meson.out" "$rc"
    say "guest ($pkg, suites $GUEST_SUITES): ${suites[*]}"
    echo "$SUMMARY_LINE"
    [[ $SUMMARY_OK == yes ]]
    return
  fi
  return "$rc"
}

main "$@"
