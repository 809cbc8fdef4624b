#!/usr/bin/env bash
# The virtual-machine rig: a real Debian kernel (with device-mapper, which this machine's kernel
# lacks) booted under qemu with TCG, running one scenario and handing back its output and exit
# status. Needs root (qemu's 9p export of / must read every file).
#
#   tests/vm/rig.sh [--arch amd64|arm64] prepare
#       fetch and unpack the kernel (and for arm64 the guest's root), build the initramfs
#   tests/vm/rig.sh [--arch amd64|arm64] run [options] SCENARIO [ARG...]
#       --disk NAME:SIZE     a scratch virtio disk (raw file NAME.img in the run folder, made
#                            sparse at SIZE the first time, kept for later boots); repeatable, in
#                            order /dev/vda, /dev/vdb, ...
#       --dir DIR            the run folder, kept (default: a new one under $BERTH_VM_CACHE/runs,
#                            removed after a pass)
#       --cut-after SECS     the power cut: SIGKILL qemu SECS seconds after the scenario started
#                            (no guest flush, no shutdown); exit status 137
#       --cut-mark NAME      count --cut-after from when the scenario makes file NAME in the
#                            run folder (/vm-run/NAME), not from its start
#       --timeout SECS       give up after SECS (default 600); exit status 124
#   BERTH_VM_ACCEL          qemu's -accel (default tcg; tcg,thread=single runs all vCPUs on one
#                           host thread: amd64 guests showed rare soft lockups in runc with
#                           multi-threaded TCG)
#
# SCENARIO is tests/vm/scenarios/SCENARIO.sh; it runs as root in the guest, in the checkout
# (the same path as on the host), with the guest's disks, the i6300esb watchdog, device-mapper,
# LVM and runc. Its output is printed; the rig exits with its exit status.
#
# amd64 (default; also BERTH_VM_ARCH): qemu-system-x86_64, the guest's root is the host's / over
# virtio-9p, read-only, under a tmpfs overlay: every host program (runc, lvm, thin_check, the berth
# just built) is there. arm64: qemu-system-aarch64 -M virt -cpu cortex-a72; the host's programs
# are x86, so the root is a small tree unpacked from Debian's arm64 packages (ARM64_ROOT below:
# static busybox, bash, runc, lvm2, thin-provisioning-tools, e2fsprogs, nftables and the libraries
# they link), under the same tmpfs overlay, and the checkout is shared read-only at its own path
# (run the static aarch64 berth from ci/build-static.sh). Nothing the guest does reaches the host
# except through the run folder (shared read-write at /vm-run) and the disks.
#
# Cache: $BERTH_VM_CACHE (default /var/cache/berth-vm), one folder per architecture: a private apt
# state (the host's dpkg architectures and lists stay untouched), the kernel package and its
# unpacked tree, the bootable kernel, the arm64 root and the initramfs; runs/ for run folders.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CHECKOUT="$(cd "$HERE/../.." && pwd)"
CACHE="${BERTH_VM_CACHE:-/var/cache/berth-vm}"
ARCH="${BERTH_VM_ARCH:-amd64}"
if [ "${1:-}" = --arch ]; then ARCH="${2:?--arch needs amd64 or arm64}"; shift 2; fi
case "$ARCH" in amd64|arm64) ;; *) echo "vm-rig: unknown architecture $ARCH (amd64, arm64)" >&2; exit 2 ;; esac
K="$CACHE/$ARCH"
# Modules the boot path loads itself (with their dependencies, from modules.dep); anything else
# the kernel loads on demand from the full tree, mounted at /lib/modules in the guest. A module
# a kernel builds in (or lacks, as arm64 may the i6300esb driver) is skipped.
BOOT_MODULES=(virtio_pci virtio_blk virtio_net 9p 9pnet_virtio overlay ext4 dm-mod dm-thin-pool
  dm-log-writes dm-snapshot i6300esb softdog veth bridge br_netfilter nf_tables nft_chain_nat
  nft_masq nft_nat loop)
# The arm64 guest's root: what the scenarios run, and the libraries those link (prepare checks
# every NEEDED entry of the programs in ARM64_CHECKED is in the tree).
ARM64_ROOT=(busybox-static bash runc libseccomp2 lvm2 dmsetup dmeventd libdevmapper1.02.1
  libdevmapper-event1.02.1 liblvm2cmd2.03 thin-provisioning-tools e2fsprogs libext2fs2 libss2
  libcom-err2 libblkid1 libuuid1 nftables libnftables1 libnftnl11 libmnl0 libxtables12 libjansson4
  libedit2 libbsd0 libmd0 libc6 libgcc-s1 libstdc++6 libaio1 libreadline8 libtinfo6 libselinux1
  libpcre2-8-0 libsystemd0 libudev1 libcap2 libgcrypt20 libgpg-error0 liblz4-1 liblzma5 libzstd1
  libexpat1 libbz2-1.0 zlib1g libacl1 libgmp10 kmod libkmod2 libssl3)
ARM64_CHECKED=(bin/bash usr/sbin/runc sbin/lvm sbin/dmsetup usr/sbin/thin_check sbin/mkfs.ext4
  usr/sbin/nft bin/kmod)
log() { echo "vm-rig: $*" >&2; }

# apt through a private state for the guest's architecture: lists and downloads in the cache.
apt_arch() {
  local cmd="$1"; shift
  mkdir -p "$K/apt/lists/partial" "$K/apt/cache/archives/partial"
  "$cmd" -q -o "APT::Architecture=$ARCH" -o "APT::Architectures::=$ARCH" -o "Dir::State::Lists=$K/apt/lists" \
    -o "Dir::Cache=$K/apt/cache" -o Dir::State::status=/dev/null "$@"
}

# Fetch (once) and unpack package $1 into $2.
unpack() {
  local deb
  deb="$(ls "$K/debs/$1"_*.deb 2>/dev/null | head -1 || true)"
  if [ -z "$deb" ]; then
    mkdir -p "$K/debs"
    (cd "$K/debs" && apt_arch apt-get download "$1:$ARCH" >/dev/null 2>&1) || { log "cannot download $1:$ARCH"; exit 1; }
    deb="$(ls "$K/debs/$1"_*.deb | head -1)"
  fi
  dpkg -x "$deb" "$2"
}

# The arm64 guest's root, and a check that each program in ARM64_CHECKED finds its libraries.
arm64_root() {
  local stamp; stamp="$(printf '%s\n' "${ARM64_ROOT[@]}" | sha256sum | cut -c1-16)"
  [ -f "$K/rootfs.$stamp" ] && return
  log "unpacking the arm64 root (${#ARM64_ROOT[@]} packages)"
  rm -rf "$K/rootfs" "$K"/rootfs.*
  local p
  for p in "${ARM64_ROOT[@]}"; do unpack "$p" "$K/rootfs"; done
  local r="$K/rootfs"
  mkdir -p "$r"/{proc,sys,dev,tmp,run,root,etc,var/tmp,var/lib,usr/local/busybox}
  ln -sf busybox "$r/bin/sh"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$r/etc/group"
  # ld.so without a cache searches only its built-in directories; Debian's include multiarch.
  local missing="" f lib todo=("${ARM64_CHECKED[@]}") seen=" "
  while [ ${#todo[@]} -gt 0 ]; do
    f="${todo[0]}"; todo=("${todo[@]:1}")
    [ -e "$r/$f" ] || { missing+=" $f"; continue; }
    for lib in $(readelf -d "$r/$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
      case "$seen" in *" $lib "*) continue ;; esac
      seen+="$lib "
      local found=""
      for d in lib/aarch64-linux-gnu usr/lib/aarch64-linux-gnu lib usr/lib; do
        [ -e "$r/$d/$lib" ] && { found="$d/$lib"; break; }
      done
      if [ -n "$found" ]; then todo+=("$found"); else missing+=" $lib(of $f)"; fi
    done
  done
  [ -z "$missing" ] || { log "the arm64 root lacks:$missing (add the packages to ARM64_ROOT)"; exit 1; }
  touch "$K/rootfs.$stamp"
}

prepare() {
  mkdir -p "$K"
  [ -d "$K/apt/lists" ] && ls "$K/apt/lists" | grep -q Packages || apt_arch apt-get update >/dev/null
  local pkg
  # The kernel package the metapackage points at today, fetched, never installed.
  pkg="$(apt_arch apt-cache depends "linux-image-$ARCH:$ARCH" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {sub(/:.*/, "", $2); print $2; exit}')"
  [ -n "$pkg" ] || { log "no linux-image-$ARCH package known to apt"; exit 1; }
  if [ ! -f "$K/$pkg.stamp" ]; then
    log "fetching $pkg"
    rm -rf "$K/root" "$K"/*.stamp
    unpack "$pkg" "$K/root"
    touch "$K/$pkg.stamp"
  fi
  local ver
  ver="$(ls "$K/root/lib/modules")"
  [ -f "$K/root/lib/modules/$ver/modules.dep" ] || depmod -b "$K/root" "$ver"
  if [ "$ARCH" = arm64 ]; then
    # qemu boots arm64's gzip-compressed Image as it is.
    ln -sf "root/boot/vmlinuz-$ver" "$K/kernel"
    arm64_root
  elif [ ! -f "$K/kernel" ] || [ "$K/kernel" -ot "$K/$pkg.stamp" ]; then
    # The bzImage's xz payload is the ELF vmlinux, which qemu boots directly (PVH): ~4 s less
    # under TCG than running the decompressor.
    python3 - "$K/root/boot/vmlinuz-$ver" "$K/kernel.tmp" <<'PY2'
import lzma, sys
data = open(sys.argv[1], "rb").read()
off = data.find(b"\xfd7zXZ\x00")
if off < 0:
    sys.exit("vm-rig: no xz payload in " + sys.argv[1])
out = lzma.LZMADecompressor().decompress(data[off:])
if out[:4] != b"\x7fELF":
    sys.exit("vm-rig: the payload is not an ELF kernel")
open(sys.argv[2], "wb").write(out)
PY2
    mv "$K/kernel.tmp" "$K/kernel"
  fi
  if [ ! -f "$K/initramfs.cpio" ] || [ "$HERE/init" -nt "$K/initramfs.cpio" ] || [ "$0" -nt "$K/initramfs.cpio" ]; then
    local ir="$K/initramfs"
    rm -rf "$ir" && mkdir -p "$ir/bin" "$ir/modules"
    if [ "$ARCH" = arm64 ]; then cp "$K/rootfs/bin/busybox" "$ir/bin/busybox"; else cp /bin/busybox "$ir/bin/busybox"; fi
    cp "$HERE/init" "$ir/init" && chmod 755 "$ir/init"
    : > "$ir/modules/order"
    local m path deps
    for m in "${BOOT_MODULES[@]}"; do
      deps="$(modprobe -d "$K/root" -S "$ver" --show-depends "$m" 2>/dev/null)" || { log "no module $m in $ver: skipped"; continue; }
      for path in $(echo "$deps" | awk '$1 == "insmod" {print $2}'); do
        local name; name="$(basename "$path")"
        grep -qx "$name" "$ir/modules/order" && continue
        cp "$path" "$ir/modules/$name"
        echo "$name" >> "$ir/modules/order"
      done
    done
    echo "$ver" > "$ir/kernel-version"
    # The kernel's config, where `berth check-config` looks for it (/boot/config-<release>).
    cp "$K/root/boot/config-$ver" "$ir/kernel-config"
    (cd "$ir" && find . | cpio -o -H newc --quiet) > "$K/initramfs.cpio.tmp"
    mv "$K/initramfs.cpio.tmp" "$K/initramfs.cpio"
  fi
  log "ready: $ARCH kernel $ver in $K"
}

run() {
  local dir="" cut="" mark=started timeout=600 disks=() own_dir=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --disk) disks+=("$2"); shift 2 ;;
      --dir) dir="$2"; shift 2 ;;
      --cut-after) cut="$2"; shift 2 ;;
      --cut-mark) mark="$2"; shift 2 ;;
      --timeout) timeout="$2"; shift 2 ;;
      --*) log "unknown option $1"; exit 2 ;;
      *) break ;;
    esac
  done
  local scenario="${1:?usage: rig.sh run [options] SCENARIO [ARG...]}"; shift
  [ -f "$HERE/scenarios/$scenario.sh" ] || { log "no scenario $scenario in $HERE/scenarios"; exit 2; }
  prepare >/dev/null 2>&1 || prepare
  [ -n "$dir" ] || { mkdir -p "$CACHE/runs"; dir="$(mktemp -d "$CACHE/runs/$scenario.XXXXXX")"; own_dir=1; }
  mkdir -p "$dir"
  rm -f "$dir/status" "$dir/output" "$dir/started" "$dir/$mark"
  {
    printf 'cd %q\n' "$CHECKOUT"
    printf 'exec sh %q' "$HERE/scenarios/$scenario.sh"
    printf ' %q' "$@"
    printf '\n'
  } > "$dir/command"

  local qemu_bin args root_dir=/ extra=""
  if [ "$ARCH" = arm64 ]; then
    qemu_bin=qemu-system-aarch64 root_dir="$K/rootfs" extra="berth.checkout_share=1"
    args=(-M virt -cpu cortex-a72 -append "console=ttyAMA0 quiet loglevel=3 apparmor=0 panic=-1 init=/init berth.checkout=$CHECKOUT $extra"
      -fsdev "local,id=checkout,path=$CHECKOUT,readonly=on,security_model=none"
      -device "virtio-9p-pci,fsdev=checkout,mount_tag=checkout")
  else
    qemu_bin=qemu-system-x86_64
    args=(-M pc -cpu max -append "console=ttyS0 quiet loglevel=3 apparmor=0 panic=-1 init=/init berth.checkout=$CHECKOUT")
  fi
  # BERTH_VM_ACCEL: qemu's -accel, e.g. tcg,thread=single (one host thread for all vCPUs).
  args+=(-accel "${BERTH_VM_ACCEL:-tcg}" -smp 2 -m 2048 -nographic -no-reboot -nodefaults -serial "file:$dir/console"
    -kernel "$K/kernel" -initrd "$K/initramfs.cpio"
    -fsdev "local,id=hostroot,path=$root_dir,readonly=on,security_model=none,multidevs=remap"
    -device "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot"
    -fsdev "local,id=run,path=$dir,security_model=none"
    -device "virtio-9p-pci,fsdev=run,mount_tag=run"
    -fsdev "local,id=modules,path=$K/root/lib/modules,readonly=on,security_model=none"
    -device "virtio-9p-pci,fsdev=modules,mount_tag=modules"
    -device i6300esb)
  local d name size
  for d in "${disks[@]}"; do
    name="${d%%:*}" size="${d#*:}"
    [ -f "$dir/$name.img" ] || truncate -s "$size" "$dir/$name.img"
    # writeback: what qemu passed on lives in the host's page cache and survives the kill of
    # qemu, as a disk's contents survive a power cut; the guest's own cache does not.
    args+=(-drive "file=$dir/$name.img,if=virtio,format=raw,cache=writeback")
  done

  printf "%q " "$qemu_bin" "${args[@]}" > "$dir/qemu.args"
  "$qemu_bin" "${args[@]}" </dev/null >"$dir/qemu.log" 2>&1 &
  local qemu=$! start started="" rc="" now
  ms() { echo $(( $(date +%s%N) / 1000000 )); }
  start=$(ms)
  # --cut-after takes fractions of a second: the cut must land anywhere in the workload.
  local cut_ms="" ; [ -n "$cut" ] && cut_ms="$(awk -v s="$cut" 'BEGIN {printf "%d", s * 1000}')"
  while kill -0 "$qemu" 2>/dev/null; do
    now=$(ms)
    if [ -z "$started" ] && [ -f "$dir/$mark" ]; then started=$now; fi
    if [ -n "$cut_ms" ] && [ -n "$started" ] && [ $((now - started)) -ge "$cut_ms" ]; then
      kill -KILL "$qemu"; rc=137; break
    fi
    if [ $((now - start)) -ge $((timeout * 1000)) ]; then
      kill -KILL "$qemu"; rc=124; log "timed out after ${timeout}s"; break
    fi
    sleep 0.05
  done
  wait "$qemu" 2>/dev/null || true
  [ -f "$dir/output" ] && cat "$dir/output"
  if [ -z "$rc" ]; then
    if [ -f "$dir/status" ]; then
      rc="$(cat "$dir/status")"
    else
      log "the guest stopped without an exit status; its console:"
      tail -20 "$dir/console" >&2 || true
      tail -5 "$dir/qemu.log" >&2 || true
      rc=125
    fi
  fi
  # A run folder the rig made is removed when the scenario passed, kept for a look otherwise.
  if [ "$own_dir" = 1 ] && [ "$rc" = 0 ]; then
    rm -rf "$dir"
  elif [ "$rc" != 0 ] && ! { [ -n "$cut" ] && [ "$rc" = 137 ]; }; then
    log "run folder: $dir"
  fi
  return "$rc"
}

case "${1:-}" in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
