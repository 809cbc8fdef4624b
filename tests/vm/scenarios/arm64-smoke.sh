# The arm64 guest runs the static aarch64 berth on a real arm64 kernel (issue 12), as a board
# would: `berth supervise` with the qemu-virt board profile (the i6300esb watchdog, a thin pool
# made on /dev/vdb). The daemon comes up, loads the arm64 busybox image, runs a container
# through Debian's arm64 runc on the default bridge, reads its logs, stops it.
# Plain sh: the arm64 root's shell is busybox.
# Usage (rig --arch arm64 --disk root:.. --disk pool:..): arm64-smoke.sh BERTH BUSYBOX_ARM64_TAR PROFILE
set -eu
BERTH="$1"
TAR="$2"
PROFILE="$3"
echo "kernel $(uname -r) on $(uname -m)"
[ "$(uname -m)" = aarch64 ] || { echo "FAIL: not an arm64 guest"; exit 1; }
[ -e /dev/watchdog ] && echo "watchdog: $(cat /sys/class/watchdog/watchdog0/identity)"
# The kernel's fitness as berth sees it (issue 12): device-mapper must be found here.
"$BERTH" check-config > /tmp/check-config.txt || { cat /tmp/check-config.txt; echo "check-config failed"; exit 1; }
grep -q 'device-mapper *present' /tmp/check-config.txt || { cat /tmp/check-config.txt; echo "check-config does not see device-mapper"; exit 1; }
echo "check-config: $(tail -1 /tmp/check-config.txt)"
# With the profile, its watchdog driver, device and thin pool disk are required too.
"$BERTH" check-config --board-profile "$PROFILE" > /tmp/check-board.txt || { cat /tmp/check-board.txt; echo "check-config with the board profile failed"; exit 1; }
grep -q 'CONFIG_I6300ESB_WDT *ok' /tmp/check-board.txt || { cat /tmp/check-board.txt; echo "the profile's watchdog driver is not checked"; exit 1; }
echo "check-config --board-profile: $(grep -c ' ok$' /tmp/check-board.txt) ok lines, exit 0"
W=/tmp/b
mkdir -p $W
echo '{}' > $W/daemon.json
export BERTH_HOST=unix://$W/berth.sock
fail() { echo "FAIL: $*"; tail -20 $W/log; exit 1; }
"$BERTH" -H $BERTH_HOST supervise --board-profile "$PROFILE" --state-dir $W/supervisor -- \
  --config-file $W/daemon.json --exec-root $W/run >$W/log 2>&1 &
PID=$!
i=0; until "$BERTH" version >/dev/null 2>&1; do
  i=$((i+1)); kill -0 $PID 2>/dev/null && [ $i -lt 600 ] || fail "the daemon did not come up"; sleep 0.1
done
echo "daemon up after $i polls: $("$BERTH" version | grep -m1 -i 'arch')"
# What the profile set: the daemon's storage and root, the supervisor's watchdog.
"$BERTH" info > $W/info
grep -q 'Storage Driver: devicemapper' $W/info || { cat $W/info; fail "the profile's storage driver is not used"; }
grep -q 'Root Dir: /var/lib/berth$' $W/info || { cat $W/info; fail "the profile's data-root is not used"; }
wd=/sys/class/watchdog/watchdog0
[ "$(cat $wd/timeout)" = 30 ] && [ "$(cat $wd/state)" = active ] || fail "the profile's watchdog is not armed with its 30 s ($(cat $wd/state), $(cat $wd/timeout) s)"
echo "profile: devicemapper on /dev/vdb, data-root /var/lib/berth, $(cat $wd/identity) armed with $(cat $wd/timeout) s"
"$BERTH" load -q -i "$TAR" >/dev/null || fail "load"
"$BERTH" image inspect busybox:arm64 | grep -q '"Architecture": "arm64"' || fail "the image is not arm64"
out="$("$BERTH" run --rm busybox:arm64 uname -m)"
[ "$out" = aarch64 ] || fail "run printed '$out'"
echo "run: $out"
"$BERTH" run -d --name svc busybox:arm64 sh -c 'echo "served on $(uname -m)"; trap "echo bye; exit 0" TERM; while :; do sleep 1; done' >/dev/null || fail "run -d"
i=0; until "$BERTH" logs svc 2>/dev/null | grep -q served; do i=$((i+1)); [ $i -lt 100 ] || fail "no logs"; sleep 0.1; done
echo "logs: $("$BERTH" logs svc | head -1)"
cpid="$("$BERTH" inspect svc | sed -n 's/.*"Pid": \([0-9]*\).*/\1/p' | head -1)"
grep -q "/berth/" /proc/$cpid/cgroup || fail "not under the profile's cgroup parent: $(cat /proc/$cpid/cgroup)"
ip="$("$BERTH" inspect svc | sed -n 's/.*"IPAddress": "\([0-9.]*\)".*/\1/p' | head -1)"
[ -n "$ip" ] && ping -c1 -W2 "$ip" >/dev/null && echo "bridge: $ip answers"
"$BERTH" stop svc >/dev/null || fail "stop"
"$BERTH" logs svc | grep -q '^bye$' || fail "the container did not get SIGTERM"
[ "$("$BERTH" inspect svc | sed -n 's/.*"ExitCode": \([0-9]*\).*/\1/p' | head -1)" = 0 ] || fail "exit code after stop"
"$BERTH" rm svc >/dev/null
kill $PID; wait $PID 2>/dev/null || true
[ "$(cat $wd/state)" = inactive ] || fail "the supervisor's clean stop left the watchdog armed"
echo "arm64-smoke: ok"
