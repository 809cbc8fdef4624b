#!/usr/bin/env bash
# berth's benchmarks (not tests: they print figures, they assert nothing). Needs root.
#
#   tests/bench/run.sh [RUNS]      (default 20 runs per measurement)
#
# Prints, each against a baseline measured in the same run:
#   - `berth run --rm busybox true` vs a bare `runc run` of the same root filesystem (medians)
#   - the daemon's idle RSS, one monitor's RSS, time from exec to the API answering
#   - the size of the release binary
# dockerd is not installed as a baseline here; the figures the brief quotes for it (212 ms to
# API, 110 MiB, 12.9 MiB per shim) are printed for reference.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
RUNS="${1:-20}"
export PATH="$HOME/.cargo/bin:$PATH"
# The product is a static musl binary: measure that when the target is installed
# (ci/cross-build work installs it), the host build otherwise.
TARGET="${BENCH_TARGET:-}"
if [ -z "$TARGET" ] && rustup target list --installed 2>/dev/null | grep -qx "$(uname -m)-unknown-linux-musl"; then
  TARGET="$(uname -m)-unknown-linux-musl"
fi
if [ -n "$TARGET" ]; then
  # ring (rustls' crypto) compiles C and assembly: the host gcc builds its freestanding C for
  # the x86_64 musl target.
  export CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-gcc}"
  cargo build --release --bins -q --target "$TARGET"
  BERTH="$PWD/target/$TARGET/release/berth"
else
  cargo build --release --bins -q
  BERTH="$PWD/target/release/berth"
fi
WORK="$(mktemp -d /tmp/berth-bench.XXXXXX)"
SOCK="$WORK/run/berth.sock"
export BERTH_HOST="unix://$SOCK"
DAEMON_PID=""
cleanup() {
  [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null || true
  for c in $(ls "$WORK/runc-root" 2>/dev/null); do runc --root "$WORK/runc-root" delete -f "$c" >/dev/null 2>&1 || true; done
  grep -o " $WORK[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

TAR="$(bash tests/fixtures/busybox-image.sh "$WORK/busybox.tar" 2>/dev/null | tail -1)"
echo '{}' > "$WORK/daemon.json"

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# Private (dirty + clean) and proportional set: what one more process really costs, as
# opposed to RSS, which also counts the binary's pages shared by the daemon and all monitors.
private_kib() { awk '/^Private_(Clean|Dirty):/ {s+=$2} END {print s}' "/proc/$1/smaps_rollup"; }
pss_kib() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
mib() { awk -v k="$1" 'BEGIN{printf "%.2f", k/1024}'; }

# Median time, over N restarts of the daemon on $WORK, from exec to the first answered
# /_ping (the daemon must not be running).
api_up() {
  python3 - "$BERTH" "$SOCK" "$WORK" "$1" <<'PY'
import socket, statistics, subprocess, sys, time
berth, sock, work, runs = sys.argv[1:]
times = []
for _ in range(int(runs)):
    t0 = time.monotonic()
    p = subprocess.Popen([berth, "-H", "unix://" + sock, "daemon", "--config-file", work + "/daemon.json",
                          "--data-root", work + "/data", "--exec-root", work + "/run"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            s = socket.socket(socket.AF_UNIX); s.connect(sock)
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if s.recv(12).startswith(b"HTTP/1.1 200"):
                break
        except OSError:
            time.sleep(0.0005)
    times.append((time.monotonic() - t0) * 1000)
    p.terminate(); p.wait()
print("%.1f" % statistics.median(times))
PY
}

start_daemon() {
  "$BERTH" -H "unix://$SOCK" daemon --config-file "$WORK/daemon.json" --data-root "$WORK/data" --exec-root "$WORK/run" >>"$WORK/daemon.log" 2>&1 &
  DAEMON_PID=$!
}
start_daemon
for _ in $(seq 1 200); do "$BERTH" version >/dev/null 2>&1 && break; sleep 0.02; done
"$BERTH" load -i "$TAR" >/dev/null

# --- baseline: the same root filesystem under a bare `runc run`
BUNDLE="$WORK/bundle"; mkdir -p "$BUNDLE/rootfs"
python3 - "$TAR" "$BUNDLE/rootfs" <<'PY'
import io, json, sys, tarfile
outer = tarfile.open(sys.argv[1])
layer = json.load(outer.extractfile("manifest.json"))[0]["Layers"][0]
tarfile.open(fileobj=io.BytesIO(outer.extractfile(layer).read())).extractall(sys.argv[2])
PY
(cd "$BUNDLE" && runc spec && python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["terminal"] = False
c["process"]["args"] = ["true"]
json.dump(c, open("config.json", "w"))
PY
)
for i in $(seq 1 3); do runc --root "$WORK/runc-root" run --bundle "$BUNDLE" "warm$i" >/dev/null; done
for i in $(seq 1 3); do "$BERTH" run --rm busybox true; done

# Interleaved, so drift of the machine (the baseline alone moves 15-23 ms here) hits both alike.
: > "$WORK/t.runc"; : > "$WORK/t.berth"
for i in $(seq 1 "$RUNS"); do
  s=$(now_ns); runc --root "$WORK/runc-root" run --bundle "$BUNDLE" "b$i" >/dev/null; echo $(( $(now_ns) - s )) >> "$WORK/t.runc"
  s=$(now_ns); "$BERTH" run --rm busybox true; echo $(( $(now_ns) - s )) >> "$WORK/t.berth"
done
RUNC=$(median_ms < "$WORK/t.runc")
BERTH_MS=$(median_ms < "$WORK/t.berth")

# --- API up: from exec to the first answered /_ping, on a root with an image and 10
# containers (median of 5 restarts).
for i in $(seq 1 10); do "$BERTH" create busybox true >/dev/null; done
kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true; DAEMON_PID=""
API_MS=$(api_up 5)
start_daemon
for _ in $(seq 1 200); do "$BERTH" version >/dev/null 2>&1 && break; sleep 0.02; done

sleep 1
IDLE_RSS=$(rss_kib "$DAEMON_PID"); IDLE_PRIV=$(private_kib "$DAEMON_PID")
"$BERTH" run -d --name rss busybox sleep 1000 >/dev/null
MON_PID=$(pgrep -f "berth monitor $WORK/run/containers" | head -1)
MON_RSS=$(rss_kib "$MON_PID"); MON_PRIV=$(private_kib "$MON_PID"); MON_PSS=$(pss_kib "$MON_PID")
# A monitor lives as long as its container: its steady state is after its first quiet spell
# (10 s), when it gives back the code it faulted in at start (util/resident.rs).
sleep 11
MON_RSS_IDLE=$(rss_kib "$MON_PID"); MON_PRIV_IDLE=$(private_kib "$MON_PID"); MON_PSS_IDLE=$(pss_kib "$MON_PID")
"$BERTH" rm -f rss >/dev/null
SIZE=$(stat -c %s "$BERTH")

# --- the state store (issue 4): commit latency, open + load, start-up with 1000 containers
cargo build --release -q -p berth-tests --bin bench-store
STORE_OUT=$("$PWD/target/release/bench-store" "$WORK/store-bench" 1000)
python3 - "$SOCK" <<'PY'
import socket, sys
sock = sys.argv[1]
for _ in range(1000):
    body = b'{"Image":"busybox","Cmd":["true"]}'
    s = socket.socket(socket.AF_UNIX); s.connect(sock)
    s.sendall(b"POST /containers/create HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    assert s.recv(12).startswith(b"HTTP/1.1 201")
    s.close()
PY
RSS_1000=$(rss_kib "$DAEMON_PID")
kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true; DAEMON_PID=""
UP_1000=$(api_up 3)
start_daemon
for _ in $(seq 1 200); do "$BERTH" version >/dev/null 2>&1 && break; sleep 0.02; done
sleep 0.5
RSS_1000_IDLE=$(rss_kib "$DAEMON_PID")

echo "bench: runs per measurement: $RUNS"
echo "bench: run --rm true   berth ${BERTH_MS} ms   bare runc run ${RUNC} ms   ratio $(awk -v a="$BERTH_MS" -v b="$RUNC" 'BEGIN{printf "%.2f", a/b}')   (target <= 1.25, issue 3: <= 1.3)"
echo "bench: daemon idle     RSS $(mib "$IDLE_RSS") MiB, private $(mib "$IDLE_PRIV") MiB   (target <= 8 MiB; dockerd here: 110 MiB)"
echo "bench: one monitor     RSS $(mib "$MON_RSS") MiB, PSS $(mib "$MON_PSS") MiB, private $(mib "$MON_PRIV") MiB at start; RSS $(mib "$MON_RSS_IDLE") MiB, PSS $(mib "$MON_PSS_IDLE") MiB, private $(mib "$MON_PRIV_IDLE") MiB once idle   (target <= 1 MiB; containerd-shim here: 12.9 MiB RSS)"
echo "bench: API up after    ${API_MS} ms, median of 5 restarts with 10 containers   (target <= 50 ms; dockerd here: 212 ms)"
echo "$STORE_OUT"
echo "bench: daemon start-up (open + recovery + reconcile) with 1000 containers: API up after ${UP_1000} ms, median of 3"
echo "bench: daemon RSS with 1000 container records: $(mib "$RSS_1000_IDLE") MiB after a restart, $(mib "$RSS_1000") MiB after creating them (idle with 10: $(mib "$IDLE_RSS") MiB)"
echo "bench: release binary  $(awk -v s="$SIZE" 'BEGIN{printf "%.2f", s/1048576}') MiB ($(file -b "$BERTH" | cut -d, -f1-2 | tr -s ' '); ${TARGET:-host})"
