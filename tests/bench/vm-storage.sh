#!/usr/bin/env bash
# Benchmark (prints figures, asserts nothing; needs root): container create+start on a dm-thin
# pool against overlay2, both in the same guest of the VM rig (tests/vm), TCG-emulated, so the
# ratio is what to read, not the milliseconds.
#   tests/bench/vm-storage.sh [RUNS]    (default 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
bash ci/install-deps.sh --vm >/dev/null
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --bin berth -q
bash tests/vm/rig.sh run --disk pool:4G --disk ext4:2G bench-storage "${1:-10}" target/release/berth
