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
# shellcheck source=tests/bench/netns-daemon.sh
source tests/bench/netns-daemon.sh
for i in $(seq "$N"); do "$BERTH" run -d busybox sleep 3600 >/dev/null; done
echo "$N containers running"

times=()
for r in $(seq "$RUNS"); do
  kill -9 "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true
  times+=("$(python3 - "$WORK" "$N" "${DAEMON[@]}" <<'PY'
import json, socket, subprocess, sys, time
work, n, daemon = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
sock = f"{work}/run/berth.sock"
t0 = time.monotonic()
p = subprocess.Popen(daemon, stdout=subprocess.DEVNULL, stderr=open(f"{work}/log", "a"))
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
