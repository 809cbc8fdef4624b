#!/usr/bin/env bash
# Benchmark (prints figures, asserts nothing; needs root): remote management over mutual TLS.
#
#   tests/bench/remote.sh [RUNS]    (default 30)
#
# In a network namespace of its own, with the daemon listening on its unix socket and on
# tcp://127.0.0.1:2376 with tlsverify:
#   - `docker ps` round trip over the unix socket and over mTLS (median and p99);
#   - the p99 of `docker ps` over mTLS while hostile clients hold 1000 idle connections, send
#     one byte a second, or send garbage instead of a handshake, and the daemon's RSS after;
#   - the baseline: dockerd (Debian's docker.io, installed by `ci/install-deps.sh --bench`) with
#     tlsverify and the same certificates, in the same namespace, `docker ps` over mTLS;
#   - the cost of one full mTLS handshake (a new connection, ECDSA P-256 certificates both ways)
#     with the daemon built for x86_64 and with the static aarch64 build run under
#     qemu-aarch64-static (`ci/install-deps.sh --arm64`), which emulates every instruction: an
#     upper bound, not a board's figure.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS="${1:-30}"
bash ci/install-deps.sh --bench --arm64 >/dev/null
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

# Median and p99 (ms) of RUNS full mTLS handshakes with the daemon on 127.0.0.1:$1.
handshakes() {
  "${IN[@]}" python3 - "$1" "$RUNS" "$WORK/tls/admin" <<'PY'
import socket, ssl, statistics, sys, time
port, runs, certs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=f"{certs}/ca.pem")
ctx.load_cert_chain(f"{certs}/cert.pem", f"{certs}/key.pem")
ctx.check_hostname = False
t = []
for _ in range(runs):
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with ctx.wrap_socket(raw) as s:
            s.getpeercert()
    t.append((time.perf_counter() - t0) * 1e3)
t.sort()
print(f"median {statistics.median(t):.1f} ms, p99 {t[min(len(t) - 1, int(len(t) * 0.99))]:.1f} ms")
PY
}
echo "bench: mTLS handshake, berth x86_64 (native)          $(handshakes 2376)"

kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true; DAEMON_PID=""
AARCH64="$PWD/target/aarch64-unknown-linux-musl/release/berth"
CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
  cargo build --release -q --bin berth --target aarch64-unknown-linux-musl
DAEMON=("${IN[@]}" qemu-aarch64-static "$AARCH64" -H "$BERTH_HOST" -H tcp://127.0.0.1:2376 daemon --config-file "$WORK/daemon.json" --data-root "$WORK/data" --exec-root "$WORK/run" \
  --tlsverify --tlscacert "$WORK/tls/ca/ca.pem" --tlscert "$WORK/tls/ca/cert.pem" --tlskey "$WORK/tls/ca/key.pem")
start_daemon
for _ in $(seq 600); do "$BERTH" version >/dev/null 2>&1 && break; sleep 0.05; done
echo "bench: mTLS handshake, berth aarch64 under qemu-user  $(handshakes 2376)"
echo "bench: docker ps over mTLS, berth aarch64 under qemu-user  $(timings "${TLS[@]}")"
kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true; DAEMON_PID=""

# The baseline: dockerd with the same certificates on the same namespace's loopback. The docker
# CLI negotiates down to dockerd's API version; `ps` asks the same question of both.
DOCKERD_PID=""
stop_dockerd() {
  [ -n "$DOCKERD_PID" ] && kill "$DOCKERD_PID" 2>/dev/null && wait "$DOCKERD_PID" 2>/dev/null || true
  grep -o " $WORK/dockerd[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
}
trap 'stop_dockerd; cleanup' EXIT
"${IN[@]}" dockerd --data-root "$WORK/dockerd/data" --exec-root "$WORK/dockerd/exec" --pidfile "$WORK/dockerd/pid" \
  -H unix://"$WORK/dockerd/docker.sock" -H tcp://127.0.0.1:2377 --bridge=none --iptables=false --ip6tables=false \
  --tlsverify --tlscacert "$WORK/tls/ca/ca.pem" --tlscert "$WORK/tls/ca/cert.pem" --tlskey "$WORK/tls/ca/key.pem" \
  >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
DOCKERD_TLS=("${TLS[@]:0:${#TLS[@]}-1}" tcp://127.0.0.1:2377)
for _ in $(seq 600); do "${DOCKERD_TLS[@]}" version >/dev/null 2>&1 && break; sleep 0.05; done
if "${DOCKERD_TLS[@]}" version >/dev/null 2>&1; then
  echo "bench: docker ps over mutual TLS, dockerd $(dockerd --version | awk '{print $3}' | tr -d ,) (baseline)   $(timings "${DOCKERD_TLS[@]}")"
  echo "bench: mTLS handshake, dockerd (baseline)             $(handshakes 2377)"
  echo "bench: dockerd RSS $(awk '/VmRSS/ {printf "%.2f MiB", $2/1024}' "/proc/$DOCKERD_PID/status")"
else
  echo "bench: dockerd did not start (see below); no baseline in this run"
  tail -3 "$WORK/dockerd.log"
fi
