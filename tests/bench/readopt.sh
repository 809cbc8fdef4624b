#!/usr/bin/env bash
# Benchmark (prints figures, asserts nothing; needs root): live restore.
#
#   tests/bench/readopt.sh [CONTAINERS] [RUNS]     (default 100 containers, 5 runs)
#
# In a network namespace of its own: CONTAINERS running containers, then RUNS times a
# SIGKILL of the daemon and the time from exec of a new daemon to an API listing of all of
# them running again (target <= 300 ms for 100), and the memory of one monitor (target
# <= 1 MiB; RSS counts the binary's pages shared with the daemon, Private is what one more
# monitor costs). No dockerd/containerd-shim is installable here to measure beside it.
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-100}"; RUNS="${2:-5}"
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --bins -q
BERTH="$PWD/target/release/berth"
WORK="$(mktemp -d /tmp/berth-bench-readopt.XXXXXX)"
NS="berth-bench-$$"
ip netns add "$NS"
IN=(nsenter "--net=/run/netns/$NS")
"${IN[@]}" ip link set lo up
export BERTH_HOST="unix://$WORK/run/berth.sock"
DAEMON_PID=""
start_daemon() {
  "${IN[@]}" "$BERTH" -H "$BERTH_HOST" daemon --config-file "$WORK/daemon.json" --data-root "$WORK/data" --exec-root "$WORK/run" >>"$WORK/log" 2>&1 &
  DAEMON_PID=$!
}
cleanup() {
  for c in $("$BERTH" ps -aq 2>/dev/null); do "$BERTH" rm -f "$c" >/dev/null 2>&1 || true; done
  [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null || true
  grep -o " $WORK[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
TAR="$(bash tests/fixtures/busybox-image.sh "$WORK/busybox.tar" 2>/dev/null | tail -1)"
echo '{}' > "$WORK/daemon.json"
start_daemon
for _ in $(seq 200); do "$BERTH" version >/dev/null 2>&1 && break; sleep 0.05; done
"$BERTH" load -q -i "$TAR" >/dev/null
for i in $(seq "$N"); do "$BERTH" run -d busybox sleep 3600 >/dev/null; done
echo "$N containers running"

times=()
for r in $(seq "$RUNS"); do
  kill -9 "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true
  times+=("$(python3 - "$BERTH" "$WORK" "$NS" "$N" <<'PY'
import json, socket, subprocess, sys, time
berth, work, ns, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sock = f"{work}/run/berth.sock"
t0 = time.monotonic()
p = subprocess.Popen(["nsenter", f"--net=/run/netns/{ns}", berth, "-H", f"unix://{sock}", "daemon", "--config-file", f"{work}/daemon.json",
                      "--data-root", f"{work}/data", "--exec-root", f"{work}/run"], stdout=subprocess.DEVNULL, stderr=open(f"{work}/log", "a"))
while True:
    try:
        s = socket.socket(socket.AF_UNIX); s.connect(sock)
        s.sendall(b"GET /containers/json HTTP/1.0\r\n\r\n")
        data = b""
        while (chunk := s.recv(65536)): data += chunk
        body = data.split(b"\r\n\r\n", 1)[1]
        if sum(1 for c in json.loads(body) if c["State"] == "running") == n:
            break
    except (OSError, ValueError, IndexError):
        pass
    time.sleep(0.002)
print(f"{(time.monotonic() - t0) * 1000:.1f} {p.pid}")
PY
)")
  DAEMON_PID="${times[-1]#* }"
  times[-1]="${times[-1]% *}"
done
printf '%s\n' "${times[@]}" | sort -n | awk -v n="$N" '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "daemon start to a listing of %d re-adopted running containers: %.1f ms median of %d (target 300 ms)\n", n, m, NR}'

mon=$(pgrep -f "berth monitor $WORK" | head -1)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$mon/status")
priv=$(awk '/^Private_(Clean|Dirty):/ {s+=$2} END {print s}' "/proc/$mon/smaps_rollup")
echo "one monitor: RSS ${rss} KiB, private ${priv} KiB (target 1024 KiB; containerd-shim: not installable here, the brief quotes 12.9 MiB)"
