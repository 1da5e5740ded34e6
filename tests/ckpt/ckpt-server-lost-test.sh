#!/usr/bin/env bash
# A memory server lost in the middle of a live D-CRES checkpoint (stopped
# with SIGSTOP right after begin, then killed), and a Ctrl-C on the tool:
# each time the checkpoint must end within a bound, with an error naming
# that server (or the interrupt), leave no manifest behind, and QEMU must
# go on answering (the VM running again once the stopped server answers);
# the previous checkpoint must be untouched (its checksums still match)
# and still merge and restore, in a QEMU without dcres, to a guest whose
# verifier finds its memory intact.
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

BOUND=45 # seconds within which a checkpoint must end once a server is lost

# 1. Server 2 stops answering (SIGSTOP) as soon as the servers have begun:
# no race against completion; the checkpoint fails within the bound.
ckpt_start_bg split "$SPLIT_CKPT_ROOT/stopped" --live
kill -STOP "$(split_server_pid 2)"
note "stopped memory server 2 at begin"
ckpt_expect_failure "$SPLIT_CKPT_ROOT/stopped" server $BOUND
kill -CONT "$(split_server_pid 2)"
ckpt_wait_running split
split_guest_passes split $(( $(ckpt_last_pass split) + 1 )) 400

# 2. Ctrl-C on the tool in the middle of a checkpoint: it returns within
# the bound, the migration is cancelled and the VM runs on.
ckpt_start_bg split "$SPLIT_CKPT_ROOT/interrupted" --live
kill -INT "$ckpt_bg"
ckpt_expect_failure "$SPLIT_CKPT_ROOT/interrupted" interrupt $BOUND
ckpt_wait_running split

# 3. Server 2 killed mid-checkpoint.
ckpt_start_bg split "$SPLIT_CKPT_ROOT/killed" --live
kill -9 "$(split_server_pid 2)"
note "killed memory server 2 mid-checkpoint"
ckpt_expect_failure "$SPLIT_CKPT_ROOT/killed" server $BOUND
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
