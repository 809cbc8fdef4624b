# Benchmark (prints, asserts nothing): container create+start on a dm-thin pool vs overlay2,
# in the same guest (issue 10, acceptance 5). overlay2's data-root is ext4 on its own disk.
# Usage: bench-storage.sh RUNS BERTH   (disks: --disk pool:4G --disk ext4:2G)
set -eu
RUNS="${1:-10}"
BERTH="$(realpath "${2:-target/debug/berth}")"
mkfs.ext4 -q /dev/vdb
mkdir -p /srv/ov && mount /dev/vdb /srv/ov
TAR="$(bash tests/fixtures/busybox-image.sh /tmp/busybox.tar 2>/dev/null | tail -1)"
ms() { echo $(( $(date +%s%N) / 1000000 )); }
bench() {
  local name="$1" root="$2" config="$3"
  mkdir -p "$root"
  echo "$config" > "$root/daemon.json"
  export BERTH_HOST="unix://$root/berth.sock"
  "$BERTH" -H "$BERTH_HOST" daemon --config-file "$root/daemon.json" --data-root "$root/data" --exec-root "/run/bench-$name" >"$root/log" 2>&1 &
  local pid=$! i=0
  until "$BERTH" version >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 900 ] || { tail "$root/log"; exit 1; }; sleep 0.1; done
  "$BERTH" load -q -i "$TAR" >/dev/null
  local times="" t0 t1
  for n in $(seq "$RUNS"); do
    t0=$(ms)
    "$BERTH" create --name "b$n" busybox true >/dev/null
    "$BERTH" start "b$n" >/dev/null
    t1=$(ms)
    times="$times $((t1 - t0))"
  done
  echo "bench: create+start on $name: median $(echo $times | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') ms over $RUNS (all:$times)"
  for n in $(seq "$RUNS"); do "$BERTH" rm -f "b$n" >/dev/null; done
  kill $pid; wait $pid 2>/dev/null || true
}
bench overlay2 /srv/ov/b '{"storage-driver": "overlay2"}'
bench devicemapper /tmp/dm '{"storage-driver": "devicemapper", "storage-opts": ["dm.directlvm_device=/dev/vda", "dm.basesize=1G"]}'
