# dm-log-writes (issue 10, acceptance 3): every write of a berth workload to the volume holding
# its state (the store and its intent journal, the image and container files) is recorded with
# the flush and FUA marks; the log is then replayed to every mark, and at each one berth's
# offline check and start-up recovery run on the image: the store opens, every record decodes,
# references hold, and after recovery nothing is wrong.
# Usage: log-writes.sh BERTH   (disks: --disk state:192M --disk log:1G)
set -eu
BERTH="$(realpath "${1:-target/debug/berth}")"
HERE="$(pwd)/tests/vm"
size=$(blockdev --getsize64 /dev/vda)
dmsetup create lw --table "0 $(blockdev --getsz /dev/vda) log-writes /dev/vda /dev/vdb"
# No udev in the guest: the node is made here.
dmsetup mknodes lw
mkfs.ext4 -q /dev/mapper/lw
dmsetup message lw 0 mark mkfs
W=/srv/state
mkdir -p $W && mount /dev/mapper/lw $W
echo '{"storage-driver": "overlay2"}' > /tmp/daemon.json
export BERTH_HOST=unix:///run/lw.sock
"$BERTH" -H $BERTH_HOST daemon --config-file /tmp/daemon.json --data-root $W/data --exec-root /run/lw >/tmp/lw.log 2>&1 &
pid=$!
i=0; until "$BERTH" version >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 600 ] || { tail /tmp/lw.log; exit 1; }; sleep 0.1; done
"$BERTH" load -q -i "$(bash tests/fixtures/busybox-image.sh /tmp/busybox.tar 2>/dev/null | tail -1)" >/dev/null
for n in 1 2 3; do "$BERTH" create --name c$n busybox true >/dev/null; done
"$BERTH" start c1 >/dev/null && "$BERTH" wait c1 >/dev/null
"$BERTH" rm c2 >/dev/null
"$BERTH" tag busybox mine:1 && "$BERTH" rmi mine:1 >/dev/null
kill $pid; wait $pid 2>/dev/null || true
grep -o " $W/[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount
umount $W
dmsetup remove lw

cat > /tmp/check-mark.sh <<CHECK
#!/bin/sh
# check-mark.sh IMAGE N: berth's check and recovery on a copy of the replayed image.
set -e
cp --sparse=always "\$1" /tmp/mark.img
mkdir -p /tmp/mark
mount -o loop /tmp/mark.img /tmp/mark
out=\$("$BERTH" system check --repair --config-file /tmp/daemon.json --data-root /tmp/mark/data --exec-root /run/mark 2>&1) || {
  echo "mark \$2: berth system check --repair found problems:"; echo "\$out"; umount /tmp/mark; exit 1; }
grep -o " /tmp/mark/[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount
umount /tmp/mark
rm -f /tmp/mark.img
CHECK
python3 "$HERE/replay-log.py" /dev/vdb /tmp/replay.img "$size" --after-mark mkfs --check "sh /tmp/check-mark.sh"
