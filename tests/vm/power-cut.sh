#!/usr/bin/env bash
# Power cuts during a create/start/rm loop and a pull/rmi loop on a dm-thin pool, ROUNDS times on the same disks
# (issue 10, acceptance 2): each round boots the workload, kills qemu at a random moment
# (0 to 25 s after the daemon is up and the loops begin), boots again and checks (tests/vm/scenarios/power-cut.sh).
#   tests/vm/power-cut.sh [ROUNDS] [BERTH]      (default 20, target/debug/berth)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS="${1:-20}"
BERTH="${2:-target/debug/berth}"
CACHE="${BERTH_VM_CACHE:-/var/cache/berth-vm}"
mkdir -p "$CACHE/runs"
DIR="$(mktemp -d "$CACHE/runs/power-cut.XXXXXX")"
DISKS=(--disk pool:4G --disk state:1G)
rig() { bash tests/vm/rig.sh run --dir "$DIR" "${DISKS[@]}" "$@"; }
rig power-cut setup "$BERTH" >/dev/null || { echo "power-cut: setup failed"; cat "$DIR/output"; exit 1; }
acked=0 pulls=0
for r in $(seq "$ROUNDS"); do
  echo "$r" > "$DIR/round"
  cut="$(awk -v s="$RANDOM" 'BEGIN {srand(s); printf "%.1f", rand() * 25}')"
  rc=0; rig --cut-mark working --cut-after "$cut" power-cut work "$BERTH" >/dev/null || rc=$?
  [ "$rc" = 137 ] || { echo "power-cut: round $r: the workload ended by itself ($rc)"; cat "$DIR/output"; exit 1; }
  n="$(grep -c '^created' "$DIR/acked" || true)"
  acked=$((acked + n))
  pulls=$((pulls + $(grep -c '^pulled' "$DIR/acked" || true)))
  if ! out="$(rig power-cut check "$BERTH")"; then
    echo "power-cut: round $r (cut at ${cut}s, $n creates acknowledged) FAILED:"; echo "$out"; echo "run folder: $DIR"; exit 1
  fi
  echo "power-cut: round $r: cut at ${cut}s; $(echo "$out" | grep '^check:')"
done
echo "power-cut: $ROUNDS cuts, $acked acknowledged creates and $pulls acknowledged pulls, none lost; thin_check clean after each"
rm -rf "$DIR"
