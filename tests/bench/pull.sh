#!/usr/bin/env bash
# Pull benchmark (issue 5): a ~200 MB, 4-layer image (incompressible data) from Debian's
# docker-registry on 127.0.0.1, `berth pull` against `skopeo copy docker://... oci:DIR` in the
# same run, interleaved, median of RUNS (default 3). Needs root, docker-registry, skopeo.
#
#   tests/bench/pull.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
RUNS="${1:-3}"
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --bins -q
BERTH="$PWD/target/release/berth"
WORK="$(mktemp -d /tmp/berth-pull-bench.XXXXXX)"
SOCK="$WORK/run/berth.sock"
export BERTH_HOST="unix://$SOCK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  grep -o " $WORK[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s/registry\nhttp:\n  addr: 127.0.0.1:%s\n' "$WORK" "$PORT" > "$WORK/registry.yml"
docker-registry serve "$WORK/registry.yml" >/dev/null 2>&1 & PIDS+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done

echo "pull-bench: building a 4 x 50 MB image" >&2
python3 - "$WORK/big.tar" <<'PY'
import hashlib, io, json, os, sys, tarfile
layers, diff_ids = [], []
for n in range(4):
    data = os.urandom(50 << 20)
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w") as t:
        ti = tarfile.TarInfo("data%d.bin" % n); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
    layers.append(b.getvalue()); diff_ids.append("sha256:" + hashlib.sha256(b.getvalue()).hexdigest())
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                     "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
cname = hashlib.sha256(config).hexdigest() + ".json"
manifest = json.dumps([{"Config": cname, "RepoTags": ["big:1"], "Layers": ["l%d/layer.tar" % i for i in range(4)]}]).encode()
with tarfile.open(sys.argv[1], "w") as t:
    for name, data in [("l%d/layer.tar" % i, l) for i, l in enumerate(layers)] + [(cname, config), ("manifest.json", manifest)]:
        ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
PY
skopeo copy --quiet --dest-tls-verify=false "docker-archive:$WORK/big.tar" "docker://127.0.0.1:$PORT/bench/big:1"
rm -f "$WORK/big.tar"

# BENCH_DAEMON_JSON / BENCH_DAEMON_LOG: a daemon.json and a log file, to look inside a run.
echo "${BENCH_DAEMON_JSON:-'{}'}" | tr -d "'" > "$WORK/daemon.json"
"$BERTH" -H "$BERTH_HOST" daemon --config-file "$WORK/daemon.json" --data-root "$WORK/data" --exec-root "$WORK/run" >/dev/null 2>"${BENCH_DAEMON_LOG:-/dev/null}" & PIDS+=($!)
for _ in $(seq 1 100); do "$BERTH" version >/dev/null 2>&1 && break; sleep 0.05; done

: > "$WORK/t.berth"; : > "$WORK/t.skopeo"; : > "$WORK/t.synced"
for i in $(seq 1 "$RUNS"); do
  s=$(now_ns); "$BERTH" pull -q "127.0.0.1:$PORT/bench/big:1" >/dev/null; echo $(( $(now_ns) - s )) >> "$WORK/t.berth"
  "$BERTH" rmi "127.0.0.1:$PORT/bench/big:1" >/dev/null
  s=$(now_ns); skopeo copy --quiet --src-tls-verify=false "docker://127.0.0.1:$PORT/bench/big:1" "oci:$WORK/oci$i:big" >/dev/null; echo $(( $(now_ns) - s )) >> "$WORK/t.skopeo"
  rm -rf "$WORK/oci$i"
  # The same copy made as durable as berth's pull (berth flushes the layers before it records
  # the image; skopeo never syncs): copy, then flush the filesystem.
  sync
  s=$(now_ns); skopeo copy --quiet --src-tls-verify=false "docker://127.0.0.1:$PORT/bench/big:1" "oci:$WORK/oci$i:big" >/dev/null; sync -f "$WORK/oci$i"; echo $(( $(now_ns) - s )) >> "$WORK/t.synced"
  rm -rf "$WORK/oci$i"
done
B=$(median_s < "$WORK/t.berth"); S=$(median_s < "$WORK/t.skopeo"); Y=$(median_s < "$WORK/t.synced")
echo "bench: pull of a 4-layer ~200 MB image   berth ${B} s (download, verify, unpack, flush, commit)   skopeo copy to an OCI dir ${S} s (download, verify)   ratio $(awk -v a="$B" -v b="$S" 'BEGIN{printf "%.2f", a/b}')   (target <= 1.0; median of $RUNS)"
echo "bench: the same skopeo copy flushed to disk ${Y} s   ratio $(awk -v a="$B" -v b="$Y" 'BEGIN{printf "%.2f", a/b}')"
