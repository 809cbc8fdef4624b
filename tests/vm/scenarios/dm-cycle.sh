# berth on a real dm-thin pool (issue 10, acceptance 1): a direct-lvm pool that berth makes
# itself on /dev/vda, then load, run, commit, rm, rmi, 50 containers created and removed;
# afterwards the pool's metadata passes thin_check and no thin device is left that no record
# owns. Usage: dm-cycle.sh BERTH [IMAGE_TAR]   (disk: --disk pool:4G). IMAGE_TAR holds busybox
# for the guest's architecture (arm64: tests/fixtures/busybox-arm64-image.sh); without it the
# amd64 fixture is built from the host's /bin/busybox.
set -eu
BERTH="$(realpath "${1:-target/debug/berth}")"
TAR="${2:-}"
W=/tmp/b
mkdir -p $W
cat > $W/daemon.json <<JSON
{"storage-driver": "devicemapper", "storage-opts": ["dm.directlvm_device=/dev/vda", "dm.basesize=1G", "dm.min_free_space=5%"]}
JSON
export BERTH_HOST=unix://$W/berth.sock
start() {
  "$BERTH" -H $BERTH_HOST daemon --config-file $W/daemon.json --data-root $W/data --exec-root $W/run >>$W/log 2>&1 &
  PID=$!
  i=0; until "$BERTH" version >/dev/null 2>&1; do
    i=$((i+1)); kill -0 $PID 2>/dev/null && [ $i -lt 600 ] || { echo "daemon did not start:"; tail -20 $W/log; exit 1; }; sleep 0.1
  done
}
stop() { kill $PID; wait $PID 2>/dev/null || true; }
fail() { echo "FAIL: $*"; tail -20 $W/log; exit 1; }
# A command that fails under set -e leaves the daemon's last words too.
trap 'rc=$?; [ $rc = 0 ] || { echo "dm-cycle: failed ($rc); daemon log:"; tail -20 $W/log; }' EXIT

start
"$BERTH" info | grep -E 'Storage Driver|Pool Name|Base Device Size|Backing Filesystem|Data Space Total|Thin Pool Minimum' || fail "info"
[ -n "$TAR" ] || TAR="$(bash tests/fixtures/busybox-image.sh $W/busybox.tar 2>/dev/null | tail -1)"
"$BERTH" load -q -i "$TAR" >/dev/null
"$BERTH" image inspect busybox | grep '"Architecture"' | head -1
out="$("$BERTH" run --rm busybox sh -c 'echo hi > /f; cat /f; df -T / | tail -1')"
echo "$out"
echo "$out" | grep -q '^hi$' || fail "run"
"$BERTH" run --name c1 busybox sh -c 'echo committed > /marker'
"$BERTH" commit c1 snap:1 >/dev/null
[ "$("$BERTH" run --rm snap:1 cat /marker)" = committed ] || fail "commit"
"$BERTH" rm c1 >/dev/null
"$BERTH" rmi snap:1 >/dev/null
for i in $(seq 50); do "$BERTH" create --name n$i busybox true >/dev/null; done
echo "50 containers created: $("$BERTH" ps -aq | wc -l) listed"
"$BERTH" start n1 >/dev/null && "$BERTH" wait n1 >/dev/null
for i in $(seq 50); do "$BERTH" rm n$i >/dev/null; done
echo "removed; left: $("$BERTH" ps -aq | wc -l)"
stop

# Restart: the pool is found and nothing is reconciled away.
start
[ "$("$BERTH" run --rm busybox echo again)" = again ] || fail "run after restart"
stop

# What the daemon left mounted (image layers read by commit) and active goes, as at shutdown.
grep -o " $W/data/devicemapper/mnt/[^ ]*" /proc/self/mountinfo | xargs -r -n1 umount
for d in $(dmsetup ls | awk '$1 ~ /^berth_/ {print $1}'); do dmsetup remove "$d"; done
# Every thin device in the pool has a record (base, the image's layer): compare thin_ls's
# device ids with berth's after the pool is made inactive.
lvchange -q -an berth
lvchange -q -ay -y berth/thinpool_tmeta
thin_check -q /dev/mapper/berth-thinpool_tmeta && echo "thin_check: clean"
devs="$(thin_ls --no-headers -o DEV /dev/mapper/berth-thinpool_tmeta | sort -n | tr '\n' ' ')"
lvchange -q -an berth/thinpool_tmeta
echo "thin devices in the pool: $devs"
[ "$(echo $devs | wc -w)" = 2 ] || fail "expected 2 thin devices (base, busybox layer), found: $devs"
grep -q 'removed thin device' $W/log && fail "reconcile removed devices it should not have"
echo "dm-cycle: ok"
