# Power cuts on a dm-thin pool (issue 10, acceptance 2). Three phases, each a boot of the same
# disks (the rig's --dir), driven by tests/vm/power-cut.sh:
#   setup   makes the direct-lvm pool through berth and loads busybox; stops cleanly
#   setup   makes the direct-lvm pool through berth, loads busybox, commits an image of it with
#           a layer of 16 MiB of random data and pushes it to a registry in the guest (storage on the
#           state disk); stops cleanly
#   work    a loop of create / start / rm, and beside it a loop of pull / rmi of that image:
#           each acknowledged create or pull is appended to /vm-run/acked (the run folder, on
#           the host, written through), each rm or rmi before it is asked; the rig cuts the
#           power somewhere in it
#   check   the boot after the cut: thin_check on the pool nobody activated yet; then berth
#           starts (activating the pool itself), every acknowledged container whose removal
#           was not asked for exists and starts, every listed container starts (nothing
#           half-made is listed); the pulled image, when listed (and it must be if its pull was
#           acknowledged and no rmi asked), runs with its data intact, and a new pull works;
#           then all are removed and thin_check runs again.
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
# Unmounts the state disk; says who holds it when it cannot.
release() {
  # What the stopped daemon left mounted on it (image layers read by a commit) goes first.
  grep -o " $W/data/devicemapper/mnt/[^ ]*" /proc/self/mountinfo | xargs -r -n1 umount
  i=0
  until umount $W 2>/dev/null; do
    i=$((i+1))
    if [ $i -ge 50 ]; then
      for p in /proc/[0-9]*; do
        ls -l $p/fd $p/cwd 2>/dev/null | grep -q " $W" && echo "holding $W: $(tr '\0' ' ' < $p/cmdline)"
      done
      fail "the state disk stays busy"
    fi
    sleep 0.1
  done
}
REG=127.0.0.1:5000
IMG=$REG/big:1
registry() {
  mkdir -p $W/registry
  printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n' $W/registry/data $REG > $W/registry/config.yml
  docker-registry serve $W/registry/config.yml >$W/registry/log 2>&1 &
  REGPID=$!
  i=0; until curl -sf http://$REG/v2/ >/dev/null; do i=$((i+1)); [ $i -lt 100 ] || fail "registry did not start"; sleep 0.1; done
}
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
  registry
  "$BERTH" run --name big busybox sh -c 'head -c 16777216 /dev/urandom > /data; md5sum /data > /data.md5' >/dev/null
  "$BERTH" commit big $IMG >/dev/null
  "$BERTH" push $IMG >/dev/null || fail "push"
  "$BERTH" rm big >/dev/null
  "$BERTH" rmi $IMG >/dev/null
  kill $PID $REGPID; wait $PID || true; wait $REGPID || true
  release
  echo "setup: done"
  ;;
work)
  start
  round="$(cat /vm-run/round)"
  registry
  # The rig's power cut counts from here (--cut-mark working): the daemon is up.
  : > /vm-run/working
  (
    j=0
    while :; do
      j=$((j+1))
      "$BERTH" pull -q $IMG >/dev/null && echo "pulled $IMG $j" >> /vm-run/acked
      echo "unpulling $IMG $j" >> /vm-run/acked; "$BERTH" rmi $IMG >/dev/null
    done
  ) &
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
  # The image: acknowledged pulled and not asked away, it must be there; listed, it must be whole.
  last="$(awk '$1 == "pulled" || $1 == "unpulling" {l = $1} END {print l}' /vm-run/acked)"
  if "$BERTH" image inspect $IMG >/dev/null 2>&1; then
    "$BERTH" run --rm $IMG md5sum -c /data.md5 >/dev/null || fail "the listed image $IMG is not whole"
    image="listed, whole"
  else
    [ "$last" != pulled ] || fail "the acknowledged pull of $IMG is lost"
    image="not listed"
  fi
  registry
  "$BERTH" pull -q $IMG >/dev/null || fail "pull after the cut"
  "$BERTH" run --rm $IMG md5sum -c /data.md5 >/dev/null || fail "the image pulled after the cut is not whole"
  "$BERTH" rmi $IMG >/dev/null
  echo "check: $(echo "$want" | grep -c . || true) acknowledged creates, $(echo "$gone" | grep -c . || true) removals asked; $started listed, all started; pulls: $(grep -c '^pulled' /vm-run/acked || true) acknowledged, image $image, pull after the cut works"
  for n in $listed; do "$BERTH" rm -f "$n" >/dev/null; done
  kill $PID $REGPID; wait $PID || true; wait $REGPID || true
  grep -o " $W/data/devicemapper/mnt/[^ ]*" /proc/self/mountinfo | xargs -r -n1 umount
  for d in $(dmsetup ls | awk '$1 ~ /^berth_/ {print $1}'); do dmsetup remove "$d"; done
  vgchange -q -an berth >/dev/null
  pool_check "after recovery"
  release
  : > /vm-run/acked
  ;;
esac
