# The rig gives what berth's device storage needs: a real device-mapper, LVM making a thin pool
# on a scratch disk (checked by thin_check), the i6300esb watchdog, and a berth daemon running a
# container with runc. Usage: smoke.sh BERTH   (disk: --disk pool:1G)
set -eu
BERTH="${1:-target/debug/berth}"
echo "kernel $(uname -r)"
grep -qw device-mapper /proc/devices || { echo "no device-mapper"; exit 1; }
echo "device-mapper: present"
[ -e /dev/watchdog ] && echo "watchdog: $(cat /sys/class/watchdog/watchdog0/identity)"

pvcreate -q /dev/vda
vgcreate -q smoke /dev/vda
lvcreate -q --type thin-pool -l 90%VG -n pool smoke
lvcreate -q -V 64M --thinpool smoke/pool -n thin1
mkfs.ext4 -q /dev/smoke/thin1
lvchange -q -an smoke
# A pool's metadata is checked inactive, through LVM's read-only component activation.
lvchange -q -ay -y smoke/pool_tmeta
thin_check -q /dev/mapper/smoke-pool_tmeta && echo "thin_check: clean"
lvchange -q -an smoke/pool_tmeta

# The kernel's fitness as berth sees it (issue 12): device-mapper must be found here.
"$BERTH" check-config > /tmp/check-config.txt || { cat /tmp/check-config.txt; echo "check-config failed"; exit 1; }
grep -q 'device-mapper *present' /tmp/check-config.txt || { cat /tmp/check-config.txt; echo "check-config does not see device-mapper"; exit 1; }
echo "check-config: $(tail -1 /tmp/check-config.txt)"
mkdir -p /tmp/b
echo '{}' > /tmp/b/daemon.json
"$BERTH" -H unix:///tmp/b/berth.sock daemon --config-file /tmp/b/daemon.json --data-root /tmp/b/data --exec-root /tmp/b/run >/tmp/b/log 2>&1 &
export BERTH_HOST=unix:///tmp/b/berth.sock
i=0; until "$BERTH" version >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 200 ] || { cat /tmp/b/log; exit 1; }; sleep 0.1; done
"$BERTH" load -q -i "$(bash tests/fixtures/busybox-image.sh /tmp/b/busybox.tar 2>/dev/null | tail -1)"
"$BERTH" run --rm busybox echo "hello from a container in the rig"
