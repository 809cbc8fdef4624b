#!/usr/bin/env bash
# Benchmark (prints figures, asserts nothing; needs root): a 10-step `docker build` (FROM, ENV,
# WORKDIR, 3 COPY, 3 RUN, CMD) with the real docker CLI, which uses the classic builder API:
#   - berth, every step run (`--no-cache`), and the same build again, all cache hits;
#   - the baseline in the same run: dockerd (Debian's docker.io, `ci/install-deps.sh --bench`),
#     its classic builder, the same context, the same busybox image, both with `--network none`.
#
#   tests/bench/build.sh [RUNS]    (default 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS="${1:-10}"
bash ci/install-deps.sh --bench >/dev/null
# shellcheck source=tests/bench/lib.sh
source tests/bench/lib.sh
# shellcheck source=tests/bench/netns-daemon.sh
source tests/bench/netns-daemon.sh

CTX="$WORK/ctx"
mkdir -p "$CTX/src"
for i in $(seq 20); do head -c 4096 /dev/urandom | base64 > "$CTX/src/f$i.txt"; done
echo "config" > "$CTX/app.conf"
cat > "$CTX/Dockerfile" <<'DOCKERFILE'
FROM busybox
ENV APP=/app MODE=bench
WORKDIR /app
COPY app.conf /etc/app.conf
RUN mkdir -p /app/data && echo built > /app/data/stamp
COPY src/ /app/src/
RUN cat /app/src/*.txt | wc -c > /app/data/size
RUN for i in 1 2 3; do echo "$i" >> /app/data/list; done
COPY Dockerfile /app/Dockerfile.copy
CMD ["cat", "/app/data/size"]
DOCKERFILE

# Nanoseconds of one `docker build` with the client in "$1..", extra flags after "--".
one_build() {
  local s; s=$(now_ns)
  "$@" >/dev/null 2>&1
  echo $(( $(now_ns) - s ))
}
measure() {
  local name="$1"; shift
  : > "$WORK/t.cold.$name"; : > "$WORK/t.cached.$name"
  one_build "$@" build -q --network none -t bench-build "$CTX" >/dev/null   # the first, with the base image's reads
  for _ in $(seq "$RUNS"); do
    one_build "$@" build -q --no-cache --network none -t bench-build "$CTX" >> "$WORK/t.cold.$name"
    one_build "$@" build -q --network none -t bench-build "$CTX" >> "$WORK/t.cached.$name"
  done
}

BERTH_CLI=(env DOCKER_HOST="$BERTH_HOST" docker)
measure berth "${BERTH_CLI[@]}"
test "$("${BERTH_CLI[@]}" run --rm --network none bench-build)" -gt 0
echo "bench: 10-step build, every step run, berth     $(median_ms < "$WORK/t.cold.berth") ms"
echo "bench: 10-step build, all cache hits, berth     $(median_ms < "$WORK/t.cached.berth") ms"

DOCKERD_PID=""
stop_dockerd() {
  [ -n "$DOCKERD_PID" ] && kill "$DOCKERD_PID" 2>/dev/null && wait "$DOCKERD_PID" 2>/dev/null || true
  grep -o " $WORK/dockerd[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
}
trap 'stop_dockerd; cleanup' EXIT
if ! command -v dockerd >/dev/null; then
  echo "bench: dockerd not installed (ci/install-deps.sh --bench): no baseline"
  exit 0
fi
"${IN[@]}" dockerd --data-root "$WORK/dockerd/data" --exec-root "$WORK/dockerd/exec" --pidfile "$WORK/dockerd/pid" \
  -H unix://"$WORK/dockerd/docker.sock" --bridge=none --iptables=false --ip6tables=false >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
DOCKERD_CLI=(env DOCKER_HOST="unix://$WORK/dockerd/docker.sock" DOCKER_BUILDKIT=0 docker)
for _ in $(seq 600); do "${DOCKERD_CLI[@]}" version >/dev/null 2>&1 && break; sleep 0.05; done
if ! "${DOCKERD_CLI[@]}" version >/dev/null 2>&1; then
  echo "bench: dockerd did not start; no baseline in this run"; tail -3 "$WORK/dockerd.log"; exit 0
fi
"${DOCKERD_CLI[@]}" load -q -i "$WORK/busybox.tar" >/dev/null
measure dockerd "${DOCKERD_CLI[@]}"
V="$(dockerd --version | awk '{print $3}' | tr -d ,)"
echo "bench: 10-step build, every step run, dockerd $V classic builder (baseline)   $(median_ms < "$WORK/t.cold.dockerd") ms"
echo "bench: 10-step build, all cache hits, dockerd $V classic builder (baseline)   $(median_ms < "$WORK/t.cached.dockerd") ms"
awk -v a="$(median_ms < "$WORK/t.cold.berth")" -v b="$(median_ms < "$WORK/t.cold.dockerd")" 'BEGIN {printf "bench: every step run: berth / dockerd = %.2f\n", a / b}'
awk -v a="$(median_ms < "$WORK/t.cached.berth")" -v b="$(median_ms < "$WORK/t.cached.dockerd")" 'BEGIN {printf "bench: all cache hits: berth / dockerd = %.2f\n", a / b}'
