#!/usr/bin/env bash
# Power cuts during bundle installs (issue 11, acceptance 4): ROUNDS times, boot and install
# the next version, kill qemu at a random moment of the install (0 to 12 s after it began:
# verify, import, stage, switch, gate, commit; an install takes about 6 s in the guest), boot again and check that exactly one
# application runs and `bundle status` names it (tests/vm/scenarios/bundle-power-cut.sh).
#   tests/vm/bundle-power-cut.sh [ROUNDS] [BERTH]      (default 20, target/debug/berth)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS="${1:-20}"
BERTH="${2:-target/debug/berth}"
CACHE="${BERTH_VM_CACHE:-/var/cache/berth-vm}"
mkdir -p "$CACHE/runs"
DIR="$(mktemp -d "$CACHE/runs/bundle-power-cut.XXXXXX")"
rig() { bash tests/vm/rig.sh run --dir "$DIR" --disk state:1G "$@"; }
MAX=$((ROUNDS + 2))
rig bundle-power-cut setup "$BERTH" "$MAX" >/dev/null || { echo "bundle-power-cut: setup failed"; cat "$DIR/output"; exit 1; }
landed=0
for r in $(seq "$ROUNDS"); do
  prev="$(cat "$DIR/installed")"
  echo $((prev + 1)) > "$DIR/next"
  cut="$(awk -v s="$RANDOM" 'BEGIN {srand(s); printf "%.1f", rand() * 12}')"
  rc=0; rig --cut-mark installing --cut-after "$cut" bundle-power-cut work "$BERTH" >/dev/null || rc=$?
  [ "$rc" = 137 ] || { echo "bundle-power-cut: round $r: the workload ended by itself ($rc)"; cat "$DIR/output"; exit 1; }
  if ! out="$(rig bundle-power-cut check "$BERTH")"; then
    echo "bundle-power-cut: round $r (cut at ${cut}s) FAILED:"; echo "$out"; echo "run folder: $DIR"; exit 1
  fi
  [ "$(cat "$DIR/installed")" != "$prev" ] && landed=$((landed + 1))
  echo "bundle-power-cut: round $r: cut at ${cut}s ($(tr '\n' ' ' < "$DIR/installing")); $(echo "$out" | grep '^check:')"
done
echo "bundle-power-cut: $ROUNDS cuts during installs, $landed updates landed, $((ROUNDS - landed)) went back; one application running after each"
rm -rf "$DIR"
