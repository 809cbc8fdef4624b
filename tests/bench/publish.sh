#!/usr/bin/env bash
# Benchmark (prints figures, asserts nothing; needs root): published ports.
#
#   tests/bench/publish.sh [RUNS]    (default 10)
#
# In a network namespace of its own (so nothing touches the machine's network):
#   - time from `berth run -d -p 127.0.0.1:PORT:80 busybox httpd` to the first answered
#     request from the host side, median over RUNS, against the same container answering on
#     its own address (no DNAT): the cost of publishing;
#   - processes added per published port (Docker's userland proxy adds one `docker-proxy`
#     per port; berth's target is 0), counted with 1 and with 8 published ports.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
RUNS="${1:-10}"
# shellcheck source=tests/bench/netns-daemon.sh
source tests/bench/netns-daemon.sh

# Time from `run -d` to an answer at URL (or the container's own address when URL is "own").
first_answer() {
  local url="$1"; shift
  local t0 id
  t0=$(now_ns)
  id=$("$BERTH" run -d "$@" busybox httpd -f -p 80 -h /etc)
  if [ "$url" = own ]; then url="http://$("$BERTH" inspect -f '{{.NetworkSettings.IPAddress}}' "$id")/hostname"; fi
  until "${IN[@]}" curl -sf -m 1 "$url" >/dev/null; do :; done
  echo $(( $(now_ns) - t0 ))
  "$BERTH" rm -f "$id" >/dev/null
}

published=(); direct=()
for i in $(seq "$RUNS"); do
  published+=("$(first_answer http://127.0.0.1:18400/hostname -p 127.0.0.1:18400:80)")
  direct+=("$(first_answer own)")
done
p=$(printf '%s\n' "${published[@]}" | median_ms); d=$(printf '%s\n' "${direct[@]}" | median_ms)
echo "run -d -p to first answer (127.0.0.1:port, DNAT): ${p} ms median of $RUNS"
echo "run -d to first answer (container address, baseline): ${d} ms median of $RUNS"
awk -v p="$p" -v d="$d" 'BEGIN{printf "ratio published/baseline: %.2f\n", p/d}'

# The engine's own processes besides the daemon: its children, and anything naming its
# roots (a proxy would do both). Counted by name, not by a machine-wide process count,
# which other programs starting and ending make meaningless.
engine_procs() {
  for p in /proc/[0-9]*; do
    pid="${p#/proc/}"
    [ "$pid" = "$DAEMON_PID" ] && continue
    cmd="$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null)" || continue
    ppid="$(awk '/^PPid:/ {print $2}' "$p/status" 2>/dev/null)" || continue
    case "$cmd" in "$BERTH monitor "*) continue ;; esac
    if [ "$ppid" = "$DAEMON_PID" ] || [[ "$cmd" == *"$WORK"* ]]; then echo "$pid $cmd"; fi
  done
}
ports_args() { for k in $(seq "$1"); do printf -- '-p 127.0.0.1:%d:%d ' $((18500 + k)) $((8000 + k)); done; }
for n in 1 8; do
  # shellcheck disable=SC2046
  id=$("$BERTH" run -d $(ports_args "$n") busybox sleep 60)
  sleep 0.3
  extra=$(engine_procs | grep -vc "^$$ " || true)
  echo "engine processes beyond the daemon and the monitor with $n published port(s): $extra (docker-proxy: $n)"
  "$BERTH" rm -f "$id" >/dev/null
done
