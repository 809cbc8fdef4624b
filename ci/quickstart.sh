#!/usr/bin/env bash
# README command 1: install what is needed, build berth, start its daemon (default paths:
# /var/lib/berth, /run/berth/berth.sock), load the busybox fixture and run a container.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --bins
BERTH="$PWD/target/release/berth"
install -m 0755 "$BERTH" /usr/local/bin/berth

if ! berth version >/dev/null 2>&1; then
  mkdir -p /var/log
  echo "quickstart: starting berth daemon (log: /var/log/berth.log)" >&2
  setsid berth daemon >>/var/log/berth.log 2>&1 < /dev/null &
  for _ in $(seq 1 100); do berth version >/dev/null 2>&1 && break; sleep 0.05; done
fi
TAR="$(bash tests/fixtures/busybox-image.sh "${BERTH_FIXTURES_DIR:-/tmp/berth-fixtures}/busybox-image.tar" | tail -1)"
berth load -i "$TAR"
berth run --rm busybox echo hello
