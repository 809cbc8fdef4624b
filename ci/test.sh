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
#
# Flags combine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"

vm=0
for arg in "$@"; do
  case "$arg" in
    --torture) export BERTH_TORTURE_KILLS="${BERTH_TORTURE_KILLS:-200}" ;;
    --vm) vm=1 ;;
    *) echo "ci/test.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

echo "== fmt" && cargo fmt --all -- --check
echo "== clippy" && cargo clippy --workspace --all-targets -- -D warnings
echo "== build" && cargo build --bins
# A static berth for the tests of --init (the init is berth itself, mounted into containers).
MUSL="$(uname -m)-unknown-linux-musl"
echo "== build ($MUSL)" && env "CC_${MUSL//-/_}=gcc" cargo build --bin berth --target "$MUSL"
echo "== board-support" && bash board-support/verify.sh target/debug/berth
echo "== yocto layer" && bash ci/yocto-check.sh target/debug/berth
echo "== tests" && cargo test --workspace
[ $vm = 0 ] || { echo "== vm suites" && bash tests/vm/run-all.sh; }
