# Power cuts during bundle installs (issue 11, acceptance 4). Phases, each a boot of the same
# disk, driven by tests/vm/bundle-power-cut.sh:
#   setup   makes the state disk, a signing key and trust folder, installs version 1 of a one-
#           container app (an httpd serving "vN"), builds the bundles of versions 2..MAX
#   work    installs the version in /vm-run/next; the rig cuts the power somewhere in it
#   check   the boot after the cut: the daemon starts, `bundle status` names the installed
#           version (the one before, or the new one), exactly one app container runs and it
#           is that version's, and it serves that version's text; writes the version to
#           /vm-run/installed
# Usage: bundle-power-cut.sh PHASE BERTH [MAX]
set -eu
PHASE="$1"
BERTH="$(realpath "${2:-target/debug/berth}")"
MAX="${3:-30}"
W=/var/lib/berth-bundle
mkdir -p $W
[ "$PHASE" = setup ] && mkfs.ext4 -q /dev/vda
mount /dev/vda $W
export BERTH_HOST=unix:///run/berth-bundle.sock
fail() { echo "FAIL: $*"; tail -30 /vm-run/daemon.log; exit 1; }
start() {
  echo "{\"bundle-trust-dir\": \"$W/trust\"}" > $W/daemon.json
  "$BERTH" -H $BERTH_HOST daemon --config-file $W/daemon.json --data-root $W/data --exec-root /run/berth-bundle >>/vm-run/daemon.log 2>&1 &
  PID=$!
  i=0; until "$BERTH" version >/dev/null 2>&1; do
    i=$((i+1)); kill -0 $PID 2>/dev/null && [ $i -lt 600 ] || fail "daemon did not start"; sleep 0.1
  done
}
app() {
  cat <<TOML
[gate]
timeout = "60s"
settle = "1s"
[containers.web]
image = "busybox"
command = ["sh", "-c", "mkdir -p /www; echo v$1 > /www/index.html; httpd -p 80 -h /www; trap 'exit 0' TERM; while :; do sleep 0.2; done"]
[containers.web.healthcheck]
test = ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
interval = "500ms"
TOML
}
case "$PHASE" in
setup)
  start
  "$BERTH" load -q -i "$(bash tests/fixtures/busybox-image.sh /tmp/busybox.tar 2>/dev/null | tail -1)" >/dev/null
  "$BERTH" bundle keygen --out $W/keys >/dev/null
  mkdir -p $W/trust $W/bundles && cp $W/keys/bundle.pub $W/trust/vendor.pub
  for v in $(seq 1 "$MAX"); do
    app $v > $W/bundles/app-$v.toml
    "$BERTH" bundle create --app $W/bundles/app-$v.toml --version $v --key $W/keys -o $W/bundles/v$v.bundle >/dev/null 2>&1 || fail "create v$v"
  done
  "$BERTH" bundle install $W/bundles/v1.bundle >/dev/null || fail "install v1"
  echo 1 > /vm-run/installed
  sync
  echo "setup: version 1 installed, bundles up to $MAX made"
  ;;
work)
  start
  next="$(cat /vm-run/next)"
  # The rig's power cut counts from this mark (--cut-mark installing).
  echo "installing $next" > /vm-run/installing
  "$BERTH" bundle install $W/bundles/v$next.bundle >/dev/null 2>&1 || true
  echo "installed $next" >> /vm-run/installing
  sleep 60
  ;;
check)
  start
  prev="$(cat /vm-run/installed)"
  next="$(cat /vm-run/next)"
  st="$("$BERTH" bundle status)" || fail "bundle status"
  inst="$(echo "$st" | sed -n 's/^Installed: version \([0-9]*\).*/\1/p')"
  [ "$inst" = "$prev" ] || [ "$inst" = "$next" ] || fail "installed version $inst is neither $prev nor $next"
  phase="$(echo "$st" | sed -n 's/^Last attempt: version [0-9]* \([a-z-]*\) .*/\1/p')"
  case "$phase" in installed|rolled-back|abandoned) ;; *) fail "the last attempt is left in phase $phase" ;; esac
  run="$("$BERTH" ps --filter label=berth.bundle.version | tail -n +2 | awk '{print $NF}')"
  n="$(echo "$run" | grep -c . || true)"
  [ "$n" = 1 ] || fail "$n app containers run: $run"
  ip="$("$BERTH" inspect web | sed -n 's/.*"IPAddress": "\([0-9.]*\)".*/\1/p' | head -1)"
  i=0; until got="$(busybox wget -q -O- "http://$ip/" 2>/dev/null)" && [ -n "$got" ]; do i=$((i+1)); [ $i -lt 100 ] || fail "web does not answer"; sleep 0.1; done
  [ "$got" = "v$inst" ] || fail "web serves $got, but version $inst is installed"
  echo "$inst" > /vm-run/installed
  echo "check: installed $inst (was $prev, tried $next; last attempt $phase); one app container, serving v$inst"
  kill $PID; wait $PID || true
  ;;
esac
