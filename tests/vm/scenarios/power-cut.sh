# Power cuts on a dm-thin pool (issue 10, acceptance 2). Three phases, each a boot of the same
# disks (the rig's --dir), driven by tests/vm/power-cut.sh:
#   setup   makes the direct-lvm pool through berth and loads busybox; stops cleanly
#   work    a loop of create / start / rm: each acknowledged create is appended to
#           /vm-run/acked (the run folder, on the host, written through), each rm before it
#           is asked; the rig cuts the power somewhere in it
#   check   the boot after the cut: thin_check on the pool nobody activated yet; then berth
#           starts (activating the pool itself), every acknowledged container whose removal
#           was not asked for exists and starts, every listed container starts (nothing
#           half-made is listed); then all are removed and thin_check runs again.
# Usage: power-cut.sh PHASE BERTH
set -eu
PHASE="$1"
BERTH="$(realpath "${2:-target/debug/berth}")"
# The daemon's state lives on the pool's disk too: a second LV of berth's VG is not possible
# before the pool exists, so the state goes on /dev/vdb (ext4), cut with the same power.
W=/var/lib/berth-test
mkdir -p $W
[ "$PHASE" = setup ] && mkfs.ext4 -q /dev/vdb
mount /dev/vdb $W
cat > $W/daemon.json <<JSON
{"storage-driver": "devicemapper", "storage-opts": ["dm.directlvm_device=/dev/vda", "dm.basesize=1G", "dm.min_free_space=5%"]}
JSON
export BERTH_HOST=unix:///run/berth-test.sock
start() {
  "$BERTH" -H $BERTH_HOST daemon --config-file $W/daemon.json --data-root $W/data --exec-root /run/berth-test >>/vm-run/daemon.log 2>&1 &
  PID=$!
  i=0; until "$BERTH" version >/dev/null 2>&1; do
    i=$((i+1)); kill -0 $PID 2>/dev/null && [ $i -lt 600 ] || { echo "daemon did not start"; tail -20 /vm-run/daemon.log; exit 1; }; sleep 0.1
  done
}
fail() { echo "FAIL: $*"; tail -30 /vm-run/daemon.log; exit 1; }
pool_check() {
  lvchange -q -ay -y berth/thinpool_tmeta
  thin_check -q /dev/mapper/berth-thinpool_tmeta || { lvchange -q -an berth/thinpool_tmeta; fail "thin_check $1"; }
  lvchange -q -an berth/thinpool_tmeta
  echo "thin_check $1: clean"
}

case "$PHASE" in
setup)
  : > /vm-run/acked
  start
  "$BERTH" load -q -i "$(bash tests/fixtures/busybox-image.sh /tmp/busybox.tar 2>/dev/null | tail -1)" >/dev/null
  kill $PID; wait $PID || true
  umount $W
  echo "setup: done"
  ;;
work)
  start
  round="$(cat /vm-run/round)"
  i=0
  while :; do
    i=$((i+1)); n="r${round}c$i"
    "$BERTH" create --name "$n" busybox sh -c 'echo ran' >/dev/null && echo "created $n" >> /vm-run/acked
    "$BERTH" start "$n" >/dev/null
    # A removal asked for may land before its answer does: from here on, either is right.
    if [ $((i % 2)) = 0 ]; then echo "removing $n" >> /vm-run/acked; "$BERTH" rm -f "$n" >/dev/null; fi
  done
  ;;
check)
  # Nothing activated the VG at this boot: the pool can be checked before berth takes it.
  vgchange -q -an berth >/dev/null 2>&1 || true
  pool_check "after the cut"
  start
  listed="$(docker -H $BERTH_HOST ps -a --format '{{.Names}}' | sort)"
  want="$(awk '$1 == "created" {print $2}' /vm-run/acked | sort)"
  gone="$(awk '$1 == "removing" {print $2}' /vm-run/acked | sort)"
  lost=0
  for n in $want; do
    echo "$gone" | grep -qx "$n" && continue
    echo "$listed" | grep -qx "$n" || { echo "LOST: $n was acknowledged and is not listed"; lost=$((lost+1)); }
  done
  [ $lost = 0 ] || fail "$lost acknowledged containers lost"
  started=0
  for n in $listed; do
    "$BERTH" start "$n" >/dev/null || fail "listed container $n does not start"
    "$BERTH" wait "$n" >/dev/null
    [ "$("$BERTH" logs "$n" | tail -1)" = ran ] || fail "$n ran without its output"
    started=$((started+1))
  done
  echo "check: $(echo "$want" | grep -c . || true) acknowledged creates, $(echo "$gone" | grep -c . || true) removals asked; $started listed, all started"
  for n in $listed; do "$BERTH" rm -f "$n" >/dev/null; done
  kill $PID; wait $PID || true
  grep -o " $W/data/devicemapper/mnt/[^ ]*" /proc/self/mountinfo | xargs -r -n1 umount
  for d in $(dmsetup ls | awk '$1 ~ /^berth_/ {print $1}'); do dmsetup remove "$d"; done
  vgchange -q -an berth >/dev/null
  pool_check "after recovery"
  umount $W
  : > /vm-run/acked
  ;;
esac
