#!/usr/bin/env bash
# A memory server killed in the middle of a live D-CRES checkpoint: the
# checkpoint must fail with an error naming that server, leave no manifest
# behind, and QEMU must go on answering; the previous checkpoint must be
# untouched (its checksums still match) and still merge and restore, in a
# QEMU without dcres, to a guest whose verifier finds its memory intact.
set -euo pipefail
. "$(dirname "$0")/../lib/split.sh"
. "$(dirname "$0")/../lib/ckpt.sh"

MEM=1G
mapfile -t memtest < <(guest_memtest_args $MEM "hot=10 rate=2000")

split_hosts_up 2
split_servers_up 2 $MEM
split_guest_start split $MEM 256M "${memtest[@]}"
guest_wait split '^MEMTEST start' 60 >/dev/null
split_guest_passes split 1 400

before=$(ckpt_last_pass split)
ckpt_take split "$SPLIT_CKPT_ROOT/good" --live
sums=$(cd "$SPLIT_CKPT_ROOT/good" && sha256sum ./*)

# The second checkpoint: server 2 dies once the servers have begun saving.
"$DCRES_CHECKPOINT" --qmp "$TEST_TMP/split.qmp" --dir "$SPLIT_CKPT_ROOT/bad" --live \
  > "$TEST_TMP/bad.out" 2> "$TEST_TMP/bad.log" &
tool=$!
for _ in $(seq 200); do
  compgen -G "$SPLIT_CKPT_ROOT/bad/host-2.mem.partial.*" >/dev/null && break
  sleep 0.05
done
compgen -G "$SPLIT_CKPT_ROOT/bad/host-2.mem.partial.*" >/dev/null || fail "memory server 2 never began the checkpoint: $(cat "$TEST_TMP/bad.log")"
kill -9 "$(split_server_pid 2)"
note "killed memory server 2 mid-checkpoint"
rc=0
wait $tool || rc=$?
[ "$rc" -eq 1 ] || fail "dcres-checkpoint exited $rc after a memory server died: $(cat "$TEST_TMP/bad.log")"
grep -q "$(host_addr 2):7700" "$TEST_TMP/bad.log" \
  || fail "the failure does not name memory server 2 ($(host_addr 2)): $(cat "$TEST_TMP/bad.log")"
note "checkpoint failed: $(grep -i -m1 'fail\|error\|lost' "$TEST_TMP/bad.log")"
[ ! -e "$SPLIT_CKPT_ROOT/bad/manifest" ] || fail "the failed checkpoint has a manifest"
"$QMP" "$TEST_TMP/split.qmp" query-migrate | grep -q '"status": "failed"' \
  || fail "QEMU's migration did not fail: $("$QMP" "$TEST_TMP/split.qmp" query-migrate)"
note "QEMU still answers: $("$QMP" "$TEST_TMP/split.qmp" query-status)"

# The previous checkpoint is intact and restores.
[ "$(cd "$SPLIT_CKPT_ROOT/good" && sha256sum ./*)" = "$sums" ] \
  || fail "the previous checkpoint's files changed"
ckpt_merge "$SPLIT_CKPT_ROOT/good" "$TEST_TMP/good.mem"
ckpt_restore_stock restored "$TEST_TMP/good.mem" "${memtest[@]}" \
  -object "memory-backend-ram,id=ram0,size=$MEM" -machine memory-backend=ram0
line=$(guest_wait restored '^MEMTEST (pass=|error)' 120)
[[ $line =~ errors=0 ]] || fail "the restored guest found errors: $line"
n=$(sed -E 's/.*pass=([0-9]+).*/\1/' <<< "$line")
[ "$n" -gt "$before" ] || fail "the restored guest restarted its count: $line"
split_guest_passes restored $((n + 1)) 120
echo "PASS: a memory server lost mid-checkpoint fails it cleanly; the previous one restores"
