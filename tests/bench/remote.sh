#!/usr/bin/env bash
# Benchmark (prints figures, asserts nothing; needs root): remote management over mutual TLS.
#
#   tests/bench/remote.sh [RUNS]    (default 30)
#
# In a network namespace of its own, with the daemon listening on its unix socket and on
# tcp://127.0.0.1:2376 with tlsverify:
#   - `docker ps` round trip over the unix socket and over mTLS (median and p99);
#   - the p99 of `docker ps` over mTLS while hostile clients hold 1000 idle connections, send
#     one byte a second, or send garbage instead of a handshake, and the daemon's RSS after.
# dockerd with TLS is not installed here as a baseline.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS="${1:-30}"
# shellcheck source=tests/bench/netns-daemon.sh
source tests/bench/netns-daemon.sh

kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true
"$BERTH" tls init --dir "$WORK/tls/ca" --hostname localhost --ip 127.0.0.1 >/dev/null
"$BERTH" tls client --ca-dir "$WORK/tls/ca" --out "$WORK/tls/admin" --name bench --role admin >/dev/null
# -H before the subcommand: the daemon's flags follow it.
DAEMON=("${IN[@]}" "$BERTH" -H "$BERTH_HOST" -H tcp://127.0.0.1:2376 daemon --config-file "$WORK/daemon.json" --data-root "$WORK/data" --exec-root "$WORK/run" \
  --tlsverify --tlscacert "$WORK/tls/ca/ca.pem" --tlscert "$WORK/tls/ca/cert.pem" --tlskey "$WORK/tls/ca/key.pem")
start_daemon
for _ in $(seq 200); do "$BERTH" version >/dev/null 2>&1 && break; sleep 0.05; done

UNIX=("${IN[@]}" docker -H "$BERTH_HOST")
TLS=("${IN[@]}" docker --tlsverify --tlscacert "$WORK/tls/admin/ca.pem" --tlscert "$WORK/tls/admin/cert.pem" --tlskey "$WORK/tls/admin/key.pem" -H tcp://127.0.0.1:2376)
# Median and p99 (ms) of RUNS round trips of `ps` with the client in "$@".
timings() {
  for _ in $(seq "$RUNS"); do
    local t0; t0=$(date +%s%N)
    "$@" ps -q >/dev/null
    echo $(( $(date +%s%N) - t0 ))
  done | sort -n | awk '{a[NR]=$1} END {printf "median %.1f ms, p99 %.1f ms", a[int((NR+1)/2)]/1e6, a[int(NR*0.99+0.999)]/1e6}'
}
rss() { awk '/VmRSS/ {printf "%.2f MiB", $2/1024}' "/proc/$(pgrep -f "berth -H $BERTH_HOST" | head -1)/status"; }

echo "bench: docker ps over the unix socket   $(timings "${UNIX[@]}")"
echo "bench: docker ps over mutual TLS        $(timings "${TLS[@]}")"
hostile() {
  local what="$1" script="$2"
  "${IN[@]}" python3 -c "$script" & local pid=$!
  sleep 1
  echo "bench: docker ps over mTLS during $what   $(timings "${TLS[@]}"), daemon RSS after $(rss)"
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
}
hostile "1000 idle connections" 'import resource, socket, time
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
c = [socket.create_connection(("127.0.0.1", 2376)) for _ in range(1000)]
time.sleep(600)'
hostile "a one-byte-a-second client" 'import socket, time
while True:
    try:
        s = socket.create_connection(("127.0.0.1", 2376))
        while True:
            s.send(b"\x16"); time.sleep(1)
    except OSError:
        pass'
hostile "garbage instead of handshakes" 'import socket
while True:
    try:
        s = socket.create_connection(("127.0.0.1", 2376)); s.sendall(b"GET / HTTP/1.1\r\n\r\n" * 20); s.recv(100); s.close()
    except OSError:
        pass'
echo "bench: handshake cost on aarch64 under qemu-user: not measured here yet (the arm64 rig, issue 12)"
