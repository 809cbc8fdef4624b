#!/usr/bin/env bash
# Bundle install benchmark (issue 11, acceptance 5): a signed bundle of a ~100 MB application
# image (busybox and a 100 MB layer of random data), installed on a fresh data root, against
# loading the same image from a `docker save` archive on a fresh data root: `berth load`, and
# `docker load` into dockerd 20.10 where it is installed (`ci/install-deps.sh --bench`). The
# install verifies the signature and every blob, imports, creates and starts the container and
# passes a health gate with no settle time: what a device does for an update. Median of RUNS
# (default 3). Needs root.
#
#   tests/bench/bundle.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
RUNS="${1:-3}"
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --bins -q
BERTH="$PWD/target/release/berth"
WORK="$(mktemp -d /tmp/berth-bundle-bench.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  grep -o " $WORK[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# A berth daemon on its own roots under $WORK/$1; BERTH_HOST points at it.
DAEMON=""
start_berth() {
  local d="$WORK/$1"
  mkdir -p "$d"
  echo "{\"bundle-trust-dir\": \"$WORK/trust\"}" > "$d/daemon.json"
  export BERTH_HOST="unix://$d/run/berth.sock"
  "$BERTH" -H "$BERTH_HOST" daemon --config-file "$d/daemon.json" --data-root "$d/data" --exec-root "$d/run" >"$d/log" 2>&1 &
  DAEMON=$!; PIDS+=("$DAEMON")
  for _ in $(seq 1 200); do "$BERTH" version >/dev/null 2>&1 && break; sleep 0.05; done
}
stop_berth() {
  "$BERTH" ps -aq | xargs -r "$BERTH" rm -f >/dev/null
  kill "$DAEMON"; wait "$DAEMON" 2>/dev/null || true
  grep -o " $WORK[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
}

echo "bundle-bench: building the application image and its bundle" >&2
start_berth build
"$BERTH" load -q -i "$(bash tests/fixtures/busybox-image.sh "$WORK/busybox.tar" 2>/dev/null | tail -1)" >/dev/null
"$BERTH" run --name mk busybox sh -c 'head -c 104857600 /dev/urandom > /blob' >/dev/null
"$BERTH" commit mk app:1 >/dev/null
"$BERTH" rm mk >/dev/null
"$BERTH" save app:1 -o "$WORK/app.tar"
"$BERTH" bundle keygen --out "$WORK/keys" >/dev/null
mkdir -p "$WORK/trust" && cp "$WORK/keys/bundle.pub" "$WORK/trust/bench.pub"
cat > "$WORK/app.toml" <<'TOML'
[gate]
timeout = "60s"
settle = "0s"
[containers.app]
image = "app:1"
command = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
TOML
"$BERTH" bundle create --app "$WORK/app.toml" --version 1 --key "$WORK/keys" -o "$WORK/app.bundle" 2>/dev/null >/dev/null
stop_berth
echo "bundle-bench: bundle $(( $(stat -c %s "$WORK/app.bundle") >> 20 )) MiB, save archive $(( $(stat -c %s "$WORK/app.tar") >> 20 )) MiB" >&2

: > "$WORK/t.install"; : > "$WORK/t.load"; : > "$WORK/t.verify"; : > "$WORK/t.dockerd"
for i in $(seq 1 "$RUNS"); do
  s=$(now_ns); "$BERTH" bundle verify --trust "$WORK/trust" "$WORK/app.bundle" >/dev/null; echo $(( $(now_ns) - s )) >> "$WORK/t.verify"
  start_berth "install$i"
  s=$(now_ns); "$BERTH" bundle install "$WORK/app.bundle" >/dev/null; echo $(( $(now_ns) - s )) >> "$WORK/t.install"
  stop_berth
  start_berth "load$i"
  s=$(now_ns); "$BERTH" load -q -i "$WORK/app.tar" >/dev/null; echo $(( $(now_ns) - s )) >> "$WORK/t.load"
  stop_berth
done
echo "bench: bundle verify (signature + every blob, no daemon)      $(median_s < "$WORK/t.verify") s"
echo "bench: bundle install (verify, import, create, start, gate)  $(median_s < "$WORK/t.install") s"
echo "bench: berth load of the same image (baseline)               $(median_s < "$WORK/t.load") s"

if command -v dockerd >/dev/null; then
  for i in $(seq 1 "$RUNS"); do
    D="$WORK/dockerd$i"
    mkdir -p "$D"
    dockerd --data-root "$D/data" --exec-root "$D/exec" --pidfile "$D/pid" -H "unix://$D/docker.sock" \
      --bridge=none --iptables=false --ip6tables=false >"$D/log" 2>&1 &
    DP=$!
    for _ in $(seq 1 300); do DOCKER_HOST="unix://$D/docker.sock" docker version >/dev/null 2>&1 && break; sleep 0.05; done
    s=$(now_ns); DOCKER_HOST="unix://$D/docker.sock" docker load -q -i "$WORK/app.tar" >/dev/null; echo $(( $(now_ns) - s )) >> "$WORK/t.dockerd"
    kill "$DP"; wait "$DP" 2>/dev/null || true
    grep -o " $D[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  done
  echo "bench: docker load into dockerd $(dockerd --version | awk '{print $3}' | tr -d ,) (baseline)    $(median_s < "$WORK/t.dockerd") s"
  awk -v a="$(median_s < "$WORK/t.install")" -v b="$(median_s < "$WORK/t.dockerd")" 'BEGIN {printf "bench: bundle install / docker load = %.2f\n", a / b}'
else
  echo "bench: dockerd not installed (ci/install-deps.sh --bench): no docker load baseline"
fi
awk -v a="$(median_s < "$WORK/t.install")" -v b="$(median_s < "$WORK/t.load")" 'BEGIN {printf "bench: bundle install / berth load = %.2f\n", a / b}'
