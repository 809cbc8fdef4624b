#!/usr/bin/env bash
# The product's form: one static, stripped berth per architecture (release profile: lto,
# codegen-units 1, opt-level s). Builds aarch64 and x86_64 musl, checks that `file` calls each
# statically linked, prints the sizes, fails when the aarch64 binary is over its budget, and runs
# the aarch64 one under qemu-aarch64-static.
#
#   ci/build-static.sh      (BERTH_SIZE_BUDGET_MIB, default 12; the goal is under 10)
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/install-deps.sh --arm64
export PATH="$HOME/.cargo/bin:$PATH"
BUDGET_MIB="${BERTH_SIZE_BUDGET_MIB:-12}"

# ring (rustls' crypto) compiles C and assembly for the target: the cross gcc for aarch64, the
# host gcc for x86_64 (its C is freestanding, so glibc's compiler serves musl). rust-lld links
# both, with the musl C runtime the Rust targets ship.
export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
export CC_x86_64_unknown_linux_musl=gcc

status=0
for target in aarch64-unknown-linux-musl x86_64-unknown-linux-musl; do
  cargo build --release --bin berth --target "$target"
  bin="target/$target/release/berth"
  kind="$(file -L "$bin")"
  bytes="$(stat -c %s "$bin")"
  mib="$(awk -v b="$bytes" 'BEGIN {printf "%.2f", b/1048576}')"
  echo "build-static: $target: $mib MiB ($bytes bytes): ${kind#*: }"
  case "$kind" in
    *"statically linked"* | *"static-pie linked"*) ;;
    *) echo "build-static: $bin is not statically linked" >&2; status=1 ;;
  esac
  if [ "$target" = aarch64-unknown-linux-musl ]; then
    if awk -v m="$mib" -v b="$BUDGET_MIB" 'BEGIN {exit !(m > b)}'; then
      echo "build-static: $bin is $mib MiB, over the budget of $BUDGET_MIB MiB" >&2
      status=1
    fi
    # No daemon to ask: the client half of `version` prints, then the command fails to connect.
    out="$(BERTH_HOST=unix:///nonexistent qemu-aarch64-static "$bin" version 2>&1 || true)"
    echo "$out" | sed 's/^/build-static: qemu-aarch64: /'
    echo "$out" | grep -q 'OS/Arch: *linux/arm64' || { echo "build-static: the aarch64 binary did not run under qemu" >&2; status=1; }
  fi
done
exit $status
