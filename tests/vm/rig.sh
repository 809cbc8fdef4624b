#!/usr/bin/env bash
# The virtual-machine rig: a real Debian kernel (with device-mapper, which this machine's kernel
# lacks) booted under qemu with TCG, running one scenario and handing back its output and exit
# status. Needs root (qemu's 9p export of / must read every file).
#
#   tests/vm/rig.sh prepare                    fetch and unpack the kernel, build the initramfs
#   tests/vm/rig.sh run [options] SCENARIO [ARG...]
#       --disk NAME:SIZE     a scratch virtio disk (raw file NAME.img in the run folder, made
#                            sparse at SIZE the first time, kept for later boots); repeatable, in
#                            order /dev/vda, /dev/vdb, ...
#       --dir DIR            the run folder, kept (default: a new one under $BERTH_VM_CACHE/runs,
#                            removed after a pass)
#       --cut-after SECS     the power cut: SIGKILL qemu SECS seconds after the scenario started
#                            (no guest flush, no shutdown); exit status 137
#       --timeout SECS       give up after SECS (default 600); exit status 124
#
# SCENARIO is tests/vm/scenarios/SCENARIO.sh; it runs as root in the guest, in the checkout
# (the same path as on the host), with the guest's disks, the i6300esb watchdog, device-mapper,
# LVM and the host's programs. Its output is printed; the rig exits with its exit status.
#
# The guest's root is the host's / over virtio-9p, read-only, under a tmpfs overlay: every host
# program (runc, lvm, thin_check, the berth just built) is there, and nothing the guest does
# reaches the host except through the run folder (shared read-write at /vm-run) and the disks.
#
# Cache: $BERTH_VM_CACHE (default /var/cache/berth-vm): the kernel package, its unpacked tree,
# the PVH-bootable vmlinux and the initramfs; runs/ for run folders.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CHECKOUT="$(cd "$HERE/../.." && pwd)"
CACHE="${BERTH_VM_CACHE:-/var/cache/berth-vm}"
ARCH=amd64
K="$CACHE/$ARCH"
# Modules the boot path loads itself (with their dependencies, from modules.dep); anything else
# the kernel loads on demand from the full tree, mounted at /lib/modules in the guest.
BOOT_MODULES=(virtio_pci virtio_blk virtio_net 9p 9pnet_virtio overlay ext4 dm-mod dm-thin-pool
  dm-log-writes dm-snapshot i6300esb softdog veth bridge br_netfilter nf_tables nft_chain_nat
  nft_masq nft_nat loop)

log() { echo "vm-rig: $*" >&2; }

prepare() {
  mkdir -p "$K"
  local pkg
  # The kernel package the metapackage points at today, fetched, never installed.
  pkg="$(apt-cache depends "linux-image-$ARCH" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
  [ -n "$pkg" ] || { log "no linux-image-$ARCH package known to apt"; exit 1; }
  if [ ! -f "$K/$pkg.stamp" ]; then
    log "fetching $pkg"
    rm -rf "$K/root" "$K"/*.deb
    (cd "$K" && apt-get download "$pkg" 2>/dev/null)
    dpkg -x "$K"/"$pkg"_*.deb "$K/root"
    touch "$K/$pkg.stamp"
  fi
  local ver
  ver="$(ls "$K/root/lib/modules")"
  [ -f "$K/root/lib/modules/$ver/modules.dep" ] || depmod -b "$K/root" "$ver"
  if [ ! -f "$K/vmlinux" ] || [ "$K/vmlinux" -ot "$K/$pkg.stamp" ]; then
    # The bzImage's xz payload is the ELF vmlinux, which qemu boots directly (PVH): ~4 s less
    # under TCG than running the decompressor.
    python3 - "$K/root/boot/vmlinuz-$ver" "$K/vmlinux.tmp" <<'PY'
import lzma, sys
data = open(sys.argv[1], "rb").read()
off = data.find(b"\xfd7zXZ\x00")
if off < 0:
    sys.exit("vm-rig: no xz payload in " + sys.argv[1])
out = lzma.LZMADecompressor().decompress(data[off:])
if out[:4] != b"\x7fELF":
    sys.exit("vm-rig: the payload is not an ELF kernel")
open(sys.argv[2], "wb").write(out)
PY
    mv "$K/vmlinux.tmp" "$K/vmlinux"
  fi
  if [ ! -f "$K/initramfs.cpio" ] || [ "$HERE/init" -nt "$K/initramfs.cpio" ] || [ "$0" -nt "$K/initramfs.cpio" ]; then
    local ir="$K/initramfs"
    rm -rf "$ir" && mkdir -p "$ir/bin" "$ir/modules"
    cp /bin/busybox "$ir/bin/busybox"
    cp "$HERE/init" "$ir/init" && chmod 755 "$ir/init"
    : > "$ir/modules/order"
    local m path
    for m in "${BOOT_MODULES[@]}"; do
      modprobe -d "$K/root" -S "$ver" --show-depends "$m" | awk '$1 == "insmod" {print $2}' | while read -r path; do
        local name; name="$(basename "$path")"
        grep -qx "$name" "$ir/modules/order" && continue
        cp "$path" "$ir/modules/$name"
        echo "$name" >> "$ir/modules/order"
      done
    done
    echo "$ver" > "$ir/kernel-version"
    (cd "$ir" && find . | cpio -o -H newc --quiet) > "$K/initramfs.cpio.tmp"
    mv "$K/initramfs.cpio.tmp" "$K/initramfs.cpio"
  fi
  log "ready: $ARCH kernel $ver in $K"
}

run() {
  local dir="" cut="" timeout=600 disks=() own_dir=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --disk) disks+=("$2"); shift 2 ;;
      --dir) dir="$2"; shift 2 ;;
      --cut-after) cut="$2"; shift 2 ;;
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
  rm -f "$dir/status" "$dir/output" "$dir/started"
  {
    printf 'cd %q\n' "$CHECKOUT"
    printf 'exec sh %q' "$HERE/scenarios/$scenario.sh"
    printf ' %q' "$@"
    printf '\n'
  } > "$dir/command"

  local args=(-M pc -cpu max -smp 2 -m 2048 -nographic -no-reboot -nodefaults -serial "file:$dir/console"
    -kernel "$K/vmlinux" -initrd "$K/initramfs.cpio"
    -append "console=ttyS0 quiet loglevel=3 apparmor=0 panic=-1 init=/init berth.checkout=$CHECKOUT"
    -fsdev "local,id=hostroot,path=/,readonly=on,security_model=none,multidevs=remap"
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

  printf "%q " qemu-system-x86_64 "${args[@]}" > "$dir/qemu.args"
  qemu-system-x86_64 "${args[@]}" </dev/null >"$dir/qemu.log" 2>&1 &
  local qemu=$! start started="" rc="" now
  ms() { echo $(( $(date +%s%N) / 1000000 )); }
  start=$(ms)
  # --cut-after takes fractions of a second: the cut must land anywhere in the workload.
  local cut_ms="" ; [ -n "$cut" ] && cut_ms="$(awk -v s="$cut" 'BEGIN {printf "%d", s * 1000}')"
  while kill -0 "$qemu" 2>/dev/null; do
    now=$(ms)
    if [ -z "$started" ] && [ -f "$dir/started" ]; then started=$now; fi
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
