#!/usr/bin/env bash
# Checks the init integration: `systemd-analyze verify` on the units (with ExecStart pointed
# at the berth binary given, since verify wants it to exist) and `sh -n` on the init script.
#   board-support/verify.sh path/to/berth
set -euo pipefail
BERTH="$(realpath "${1:?usage: verify.sh path/to/berth}")"
cd "$(dirname "$0")"
sh -n init.d/berth
if ! command -v systemd-analyze >/dev/null; then
  echo "board-support/verify: systemd-analyze not installed, units not verified" >&2
  exit 0
fi
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
for u in systemd/*; do
  sed "s|/usr/bin/berth|$BERTH|g" "$u" > "$TMP/$(basename "$u")"
done
out="$(cd "$TMP" && systemd-analyze verify --man=no ./*.service ./*.socket 2>&1 || true)"
# Units this host does not have (network-online.target and the like) are not ours to check.
problems="$(echo "$out" | grep -v -e '^$' -e 'network-online.target' || true)"
if [ -n "$problems" ]; then
  echo "$problems" >&2
  exit 1
fi
echo "board-support: units and init script verified"
