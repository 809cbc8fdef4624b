# Sourced by the benchmarks that run containers with networking (publish.sh, readopt.sh):
# builds the release binary, makes a network namespace of the benchmark's own (so nothing
# touches the machine's network), starts a daemon in it on a scratch root with the busybox
# image loaded, and removes all of it on exit.
#
# Sets BERTH, WORK, NS, IN (the nsenter prefix), BERTH_HOST, DAEMON (the daemon's argv) and
# DAEMON_PID; start_daemon starts DAEMON in the background.
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --bins -q
BERTH="$PWD/target/release/berth"
WORK="$(mktemp -d /tmp/berth-bench.XXXXXX)"
NS="berth-bench-$$"
ip netns add "$NS"
IN=(nsenter "--net=/run/netns/$NS")
"${IN[@]}" ip link set lo up
export BERTH_HOST="unix://$WORK/run/berth.sock"
DAEMON_PID=""
cleanup() {
  for c in $("$BERTH" ps -aq 2>/dev/null); do "$BERTH" rm -f "$c" >/dev/null 2>&1 || true; done
  [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null || true
  grep -o " $WORK[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
echo '{}' > "$WORK/daemon.json"
DAEMON=("${IN[@]}" "$BERTH" -H "$BERTH_HOST" daemon --config-file "$WORK/daemon.json" --data-root "$WORK/data" --exec-root "$WORK/run")
start_daemon() {
  "${DAEMON[@]}" >>"$WORK/log" 2>&1 &
  DAEMON_PID=$!
}
start_daemon
for _ in $(seq 200); do "$BERTH" version >/dev/null 2>&1 && break; sleep 0.05; done
"$BERTH" load -q -i "$(bash tests/fixtures/busybox-image.sh "$WORK/busybox.tar" 2>/dev/null | tail -1)" >/dev/null
