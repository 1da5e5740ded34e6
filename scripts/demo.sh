#!/usr/bin/env bash
# The dcres demo: the most complete lifecycle that works so far.
#  1. the memtest guest (1 GiB) under the patched QEMU, all RAM local;
#  2. the same guest as a split-memory VM: QEMU in test host 0 keeps 256 MiB
#     of its RAM, the rest lives on memory servers in test hosts 1 and 2
#     (network namespaces, each with a private disk the others cannot see),
#     paged in and out on demand; the verifier must keep passing, and
#     dcres-status (QEMU's query-dcres) shows the paging;
#  3. a live D-CRES checkpoint of the split VM while it runs: every host
#     saves its own pages in parallel to its own disk, and then copies its
#     part to one other host (--replicas 1), so that the checkpoint survives
#     the loss of any one host; dcres-inspect shows it and verifies every
#     checksum, reading the servers' parts through the servers;
#  4. the fault it exists for: the VM stopped and test host 2 destroyed
#     (its server killed, its disk wiped); dcres-restore brings the VM back
#     onto the survivors plus a spare, the main host with less room (128
#     MiB), host 1 and the memory server in test host 3, which took no part
#     before, lazily (the VM runs before its main-host pages are in); host
#     2's pages come from host 1's copy; the restored guest's verifier goes
#     on from where it was, errors=0.
# usage: demo.sh BUILD_DIR   (parts 2 to 4 need root)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-build}" && pwd)
. "$src/tests/lib/split.sh"
use_build "$build"
. "$src/tests/lib/ckpt.sh"

# Shows NAME's serial console (what it did not show yet) until it reports
# pass PASS, then checks it.
watch_passes() {
  local name=$1 pass=$2 timeout=$3 var=shown_$1
  tail -n +$((${!var:-0} + 1)) -f "$(guest_serial "$name")" --pid "$(guest_pid "$name")" &
  local tailpid=$!
  guest_wait "$name" "^MEMTEST pass=$pass " "$timeout" >/dev/null
  sleep 0.2
  kill $tailpid 2>/dev/null || true
  wait $tailpid 2>/dev/null || true
  printf -v "$var" %s "$(wc -l < "$(guest_serial "$name")")"
  if grep -a -qE 'MEMTEST (error|pass=[0-9]+ pages=[0-9]+ errors=[1-9])' "$(guest_serial "$name")"; then
    echo "== demo FAILED: the guest found errors in its memory"
    exit 1
  fi
}

echo "== patched QEMU"
"$DCRES_QEMU" -version
echo
echo "== 1. memtest guest, -m 1G, all RAM local (TCG)"
mapfile -t args < <(guest_memtest_args 1G "hot=10 rate=5000")
start=$SECONDS
guest_start local "${args[@]}"
watch_passes local 3 300
kill "$(guest_pid local)"
echo "== OK: 3 verification passes over all guest RAM, errors=0 ($((SECONDS - start)) s)"
echo

if [ "$(id -u)" -ne 0 ]; then
  echo "== 2. to 4. skipped: the split-memory VM needs root (userfaultfd, network namespaces)"
  exit 0
fi
echo "== 2. split-memory VM: -m 1G, local-size=256M, two memory servers in other test hosts"
hosts_up 4
export SPLIT_STORAGE=local
split_servers_up 3 1G
s3="$(host_addr 3):7700"
SPLIT_SERVERS=${SPLIT_SERVERS%;*}   # the VM uses servers 1 and 2; 3 waits
SPLIT_NSERVERS=2
echo "   memory servers: $SPLIT_SERVERS (and $s3, unused until part 4)"
mapfile -t args < <(guest_memtest_args 1G "hot=10 rate=2000")
start=$SECONDS
split_guest_start split 1G 256M "${args[@]}"
watch_passes split 1 600
echo "== dcres-status"
"$DCRES_STATUS" --qmp "$TEST_TMP/split.qmp"
watch_passes split 2 600
echo "== dcres-status"
"$DCRES_STATUS" --qmp "$TEST_TMP/split.qmp"
echo "== OK: the split guest verified all its RAM twice, errors=0 ($((SECONDS - start)) s)"
echo "   QEMU resident (host 0): $(split_rss_mib "$(guest_pid split)") MiB of a 1024 MiB guest"
for k in 1 2; do
  echo "   memory server $k ($(host_addr $k)) resident: $(split_rss_mib "$(split_server_pid $k)") MiB"
done
echo
ckpt=$SPLIT_CKPT_ROOT/demo
echo "== 3. live D-CRES checkpoint of the running split VM, one replica of every part"
pass=$(ckpt_last_pass split)
host_exec 0 "$DCRES_CHECKPOINT" --qmp "$TEST_TMP/split.qmp" --dir "$ckpt" --live --parallel 2 \
  --replicas 1 --psk "$SPLIT_KEY"
for k in 0 1 2; do
  echo "   host $k's disk ($(host_disk $k)/demo):"
  ls -ls "$(host_disk $k)/demo" | sed 's/^/     /'
done
echo "== dcres-inspect on the main host: the servers' parts read through the servers"
host_exec 0 "$DCRES_INSPECT" --psk "$SPLIT_KEY" --ckpt-root "$SPLIT_CKPT_ROOT" "$ckpt"
echo
s1="$(host_addr 1):7700"
echo "== 4. stop the VM; destroy test host 2 (server killed, disk wiped); restore onto"
echo "   the main host (128 MiB) + $s1 + the spare $s3, lazily"
kill "$(guest_pid split)"
kill -9 "$(split_server_pid 2)"
rm -rf "$(host_disk 2)/demo"
mapfile -t base < <(guest_base_args restored)
host_exec 0 "$DCRES_RESTORE" --ckpt "$ckpt" --hosts "main,$s1,$s3" \
  --capacity main=128M --lazy --psk "$SPLIT_KEY" --ckpt-root "$SPLIT_CKPT_ROOT" \
  --qemu "$DCRES_QEMU" --qmp "$TEST_TMP/restored.qmp" --run-dir "$TEST_TMP/restore" \
  -- "${base[@]}" "${args[@]}" | tee "$TEST_TMP/restore.txt"
guest_track restored "$(sed -n 's/.*QEMU pid \([0-9]*\).*/\1/p' "$TEST_TMP/restore.txt" | head -n 1)"
echo "== dcres-status, right after the restore"
"$DCRES_STATUS" --qmp "$TEST_TMP/restored.qmp"
watch_passes restored $((pass + 2)) 600
echo "== dcres-status"
"$DCRES_STATUS" --qmp "$TEST_TMP/restored.qmp"
echo "== OK: host 2 was lost and the VM is back on the survivors and a spare; the guest"
echo "   went on from pass $pass and verified all its RAM, errors=0"
