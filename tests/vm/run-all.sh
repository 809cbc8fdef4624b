#!/usr/bin/env bash
# The VM suites (`ci/test.sh --vm`): builds berth (and the static aarch64 berth), prepares the
# amd64 and arm64 rigs and runs each scenario in a fresh guest with fresh disks; prints each
# result and fails if any failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash ci/install-deps.sh --vm --arm64
# One host thread per guest: two amd64 guests of this session's runs hung in runc with soft
# lockups under multi-threaded TCG; single-threaded, none did, at the same speed here.
export BERTH_VM_ACCEL="${BERTH_VM_ACCEL:-tcg,thread=single}"
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --bin berth -q
BERTH=target/debug/berth
CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
  cargo build -q --release --bin berth --target aarch64-unknown-linux-musl
BERTH_ARM64=target/aarch64-unknown-linux-musl/release/berth
# The guests see the checkout: the arm64 busybox image goes where they find it.
mkdir -p target/vm-fixtures
BUSYBOX_IMAGE_TAGS="busybox:arm64 busybox:latest" bash tests/fixtures/busybox-arm64-image.sh \
  target/vm-fixtures/busybox-arm64.tar "${BERTH_VM_CACHE:-/var/cache/berth-vm}/arm64/fixture" >/dev/null
BUSYBOX_ARM64=target/vm-fixtures/busybox-arm64.tar
bash tests/vm/rig.sh prepare
bash tests/vm/rig.sh --arch arm64 prepare
failed=()
scenario() {
  local name="$1"; shift
  local t0=$SECONDS
  echo "== vm: $name"
  local arch=amd64
  [ "$1" = --arch ] && { arch="$2"; shift 2; }
  if bash tests/vm/rig.sh --arch "$arch" run "$@"; then
    echo "== vm: $name passed in $((SECONDS - t0)) s"
  else
    echo "== vm: $name FAILED (exit $?) after $((SECONDS - t0)) s"
    failed+=("$name")
  fi
}
scenario smoke --disk pool:1G smoke "$BERTH"
scenario dm-cycle --disk pool:4G dm-cycle "$BERTH"
# The qemu-virt profile's thin pool is the second disk (/dev/vdb), as on a board whose first
# disk holds the root file system.
scenario arm64-smoke --arch arm64 --disk root:16M --disk pool:1G arm64-smoke "$BERTH_ARM64" "$BUSYBOX_ARM64" "$PWD/board-support/profiles/qemu-virt.toml"
scenario arm64-dm-cycle --arch arm64 --timeout 1200 --disk pool:4G dm-cycle "$BERTH_ARM64" "$BUSYBOX_ARM64"
scenario dm-space --disk pool:1280M dm-space "$BERTH"
scenario log-writes --timeout 1500 --disk state:192M --disk log:1G log-writes "$BERTH"
echo "== vm: power-cut (${BERTH_VM_POWER_CUTS:-20} rounds)"
bash tests/vm/power-cut.sh "${BERTH_VM_POWER_CUTS:-20}" "$BERTH" || failed+=(power-cut)
echo "== vm: bundle-power-cut (${BERTH_VM_POWER_CUTS:-20} rounds)"
bash tests/vm/bundle-power-cut.sh "${BERTH_VM_POWER_CUTS:-20}" "$BERTH" || failed+=(bundle-power-cut)
[ ${#failed[@]} -eq 0 ] || { echo "vm suites failed: ${failed[*]}"; exit 1; }
echo "vm suites: all passed"
