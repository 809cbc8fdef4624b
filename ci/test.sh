#!/usr/bin/env bash
# README command 2: the test run CI does (.ci/run calls this). Needs root: the integration
# suites run real containers with runc and mount overlayfs.
#
#   ci/test.sh            lint, unit tests, integration suites (docker CLI, API errors, restart, archives,
#                         daemon config, crash torture with 6 random kills and every failpoint)
#   ci/test.sh --torture  the same, with the long crash torture (200 random kills)
#   ci/test.sh --vm       the same, then the VM suites (tests/vm: a real kernel with
#                         device-mapper under qemu, amd64 and arm64; devicemapper storage, the
#                         static aarch64 berth in an arm64 guest, power cuts, bundle installs
#                         cut by power loss)
#   ci/test.sh --arm64    the same, then the unit tests built for aarch64-unknown-linux-musl and
#                         run under qemu-aarch64-static (about 7 minutes more on 2 cores)
#
# Flags combine.
set -euo pipefail
cd "$(dirname "$0")/.."
vm=0 arm64=0
for arg in "$@"; do
  case "$arg" in
    --torture) export BERTH_TORTURE_KILLS="${BERTH_TORTURE_KILLS:-200}" ;;
    --vm) vm=1 ;;
    --arm64) arm64=1 ;;
    *) echo "ci/test.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
if [ $arm64 = 1 ]; then bash ci/install-deps.sh --arm64; else bash ci/install-deps.sh; fi
export PATH="$HOME/.cargo/bin:$PATH"

echo "== fmt" && cargo fmt --all -- --check
echo "== clippy" && cargo clippy --workspace --all-targets -- -D warnings
echo "== build" && cargo build --bins
# A static berth for the tests of --init (the init is berth itself, mounted into containers).
MUSL="$(uname -m)-unknown-linux-musl"
echo "== build ($MUSL)" && env "CC_${MUSL//-/_}=gcc" cargo build --bin berth --target "$MUSL"
echo "== board-support" && bash board-support/verify.sh target/debug/berth
echo "== yocto layer" && bash ci/yocto-check.sh target/debug/berth
echo "== tests" && cargo test --workspace
if [ $arm64 = 1 ]; then
  # The unit tests need no root and no runc: they run as the board's binary would, under
  # emulation. The integration suites need both and run in the arm64 VM (--vm).
  echo "== unit tests (aarch64-unknown-linux-musl under qemu-aarch64-static)"
  env CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=qemu-aarch64-static \
    cargo test --target aarch64-unknown-linux-musl -p berth-images -p berth --lib
fi
[ $vm = 0 ] || { echo "== vm suites" && bash tests/vm/run-all.sh; }
