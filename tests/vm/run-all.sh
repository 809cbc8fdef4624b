#!/usr/bin/env bash
# The VM suites (`ci/test.sh --vm`): builds berth, prepares the rig and runs each scenario in a
# fresh guest with fresh disks; prints each result and fails if any failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash ci/install-deps.sh --vm
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --bin berth -q
BERTH=target/debug/berth
bash tests/vm/rig.sh prepare
failed=()
scenario() {
  local name="$1"; shift
  local t0=$SECONDS
  echo "== vm: $name"
  if bash tests/vm/rig.sh run "$@"; then
    echo "== vm: $name passed in $((SECONDS - t0)) s"
  else
    echo "== vm: $name FAILED (exit $?) after $((SECONDS - t0)) s"
    failed+=("$name")
  fi
}
scenario smoke --disk pool:1G smoke "$BERTH"
scenario dm-cycle --disk pool:4G dm-cycle "$BERTH"
scenario dm-space --disk pool:1280M dm-space "$BERTH"
scenario log-writes --timeout 1500 --disk state:192M --disk log:1G log-writes "$BERTH"
echo "== vm: power-cut (${BERTH_VM_POWER_CUTS:-20} rounds)"
bash tests/vm/power-cut.sh "${BERTH_VM_POWER_CUTS:-20}" "$BERTH" || failed+=(power-cut)
[ ${#failed[@]} -eq 0 ] || { echo "vm suites failed: ${failed[*]}"; exit 1; }
echo "vm suites: all passed"
