# Free space and deferred deletion on a dm-thin pool (issue 10, acceptance 4):
#  - a pool filled past dm.min_free_space refuses a new container with a clear message, and
#    takes new ones again once space is freed;
#  - with dm.use_deferred_removal/deletion, removing a container whose device another process
#    holds open succeeds, `info` counts the deferred deletion, and the thin device is deleted
#    once it is released.
# Usage: dm-space.sh BERTH   (disk: --disk pool:1280M)
set -eu
BERTH="$(realpath "${1:-target/debug/berth}")"
W=/tmp/b
mkdir -p $W
cat > $W/daemon.json <<JSON
{"storage-driver": "devicemapper", "storage-opts": ["dm.directlvm_device=/dev/vda", "dm.basesize=1G",
 "dm.min_free_space=40%", "dm.use_deferred_removal=true", "dm.use_deferred_deletion=true"]}
JSON
export BERTH_HOST=unix://$W/berth.sock
"$BERTH" -H $BERTH_HOST daemon --config-file $W/daemon.json --data-root $W/data --exec-root $W/run >>$W/log 2>&1 &
i=0; until "$BERTH" version >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 600 ] || { tail $W/log; exit 1; }; sleep 0.1; done
fail() { echo "FAIL: $*"; tail -20 $W/log; exit 1; }
"$BERTH" load -q -i "$(bash tests/fixtures/busybox-image.sh $W/busybox.tar 2>/dev/null | tail -1)" >/dev/null
avail() { "$BERTH" info | awk -F': ' '/Data Space (Total|Available)/ {printf "%s %s; ", $1, $2}'; }
echo "pool: $(avail)"

# Fill the pool to ~70% (below the 40% free asked for) with one container's writes (non-zero data: thin pools store zeros too,
# but random data keeps any future zero detection honest).
"$BERTH" run --name filler busybox sh -c 'dd if=/dev/urandom of=/big bs=1M count=780 2>/dev/null; sync' || fail "filler"
echo "after filling: $(avail)"
if out="$("$BERTH" create busybox true 2>&1)"; then fail "a container was created below min free space: $out"; fi
echo "refused: $out"
echo "$out" | grep -q 'dm.min_free_space' || fail "the refusal does not name dm.min_free_space"
"$BERTH" rm filler >/dev/null
# Freed blocks return to the pool when the device is deleted.
"$BERTH" create --name again busybox true >/dev/null || fail "still refused after space was freed"
echo "after removing the filler: created again ($(avail))"

# Deferred deletion: hold the container's device open from outside while it is removed.
"$BERTH" run -d --name busy busybox sleep 1000 >/dev/null
id="$(docker -H $BERTH_HOST inspect -f '{{.Id}}' busy)"
node="$W/data/devicemapper/dev/berth_ctr_$id"
[ -b "$node" ] || fail "no block node $node"
sleep 100000 < "$node" &
holder=$!
"$BERTH" rm -f busy >/dev/null || fail "rm of a container with a busy device"
count() { "$BERTH" info | awk -F': ' '/Deferred Deleted Device Count/ {print $2}'; }
[ "$(count)" = 1 ] || fail "deferred deleted count is $(count), not 1"
echo "busy device: removal deferred (count $(count))"
kill $holder; wait $holder 2>/dev/null || true
# The next operation retries deferred deletions.
"$BERTH" rm again >/dev/null
[ "$(count)" = 0 ] || fail "the released device was not deleted (count $(count))"
echo "released: deleted (count 0)"
dmsetup ls | grep -q "berth_ctr_$id" && fail "the dm device is still there"
echo "dm-space: ok"
