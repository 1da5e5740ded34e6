#!/usr/bin/env bash
# A memory server lost during a live D-CRES checkpoint of a Linux guest
# that keeps faulting on that server's pages (-m 512M, 192M resident on the
# main host, its verifier rewriting a 256 MiB mapping): a Ctrl-C on the
# tool, the server stopped (SIGSTOP) right after begin, at final and at
# commit, a Ctrl-C with it stopped at final, then the server killed. Each
# time the tool must end within a bound, exit 1 naming the server (or the
# interrupt), and leave no manifest; after the first two the VM runs again
# and its verifier still finds its memory intact.
set -euo pipefail
. "$(dirname "$0")/../lib/split.sh"
. "$(dirname "$0")/../lib/ckpt.sh"

MEM=512M
BOUND=45
mapfile -t linux < <(guest_linux_args $MEM "memtest.mb=256 memtest.hot=10 memtest.rate=2000")

split_hosts_up 2
split_servers_up 2 $MEM
split_guest_start split $MEM 192M "${linux[@]}"
guest_wait split '^MEMTEST start' 120 >/dev/null
split_guest_passes split 1 300

ckpt_start_bg split "$SPLIT_CKPT_ROOT/interrupted" --live
kill -INT "$ckpt_bg"
ckpt_expect_failure "$SPLIT_CKPT_ROOT/interrupted" interrupt $BOUND
ckpt_wait_running split

ckpt_start_bg split "$SPLIT_CKPT_ROOT/stopped" --live
kill -STOP "$(split_server_pid 2)"
ckpt_expect_failure "$SPLIT_CKPT_ROOT/stopped" server $BOUND
kill -CONT "$(split_server_pid 2)"
ckpt_wait_running split
split_guest_passes split $(( $(ckpt_last_pass split) + 1 )) 300

# The server stopped at the protocol's later steps (--fault-file): final,
# in the stop window, and commit, with the VM running again; a Ctrl-C at
# final.
for msg in MSG_CKPT_FINAL MSG_CKPT_COMMIT; do
  step=${msg#MSG_CKPT_}; step=${step,,}
  split_server_fault 2 stop "$msg"
  ckpt_start_faulted split "$SPLIT_CKPT_ROOT/stopped-$step" --live
  ckpt_expect_failure "$SPLIT_CKPT_ROOT/stopped-$step" server $BOUND
  kill -CONT "$(split_server_pid 2)"
  ckpt_wait_running split
done
split_server_fault 2 stop MSG_CKPT_FINAL
ckpt_start_faulted split "$SPLIT_CKPT_ROOT/interrupted-final" --live
kill -INT "$ckpt_bg"
ckpt_expect_failure "$SPLIT_CKPT_ROOT/interrupted-final" interrupt $BOUND
kill -CONT "$(split_server_pid 2)"
ckpt_wait_running split
split_guest_passes split $(( $(ckpt_last_pass split) + 1 )) 300

ckpt_start_bg split "$SPLIT_CKPT_ROOT/killed" --live
kill -9 "$(split_server_pid 2)"
ckpt_expect_failure "$SPLIT_CKPT_ROOT/killed" server $BOUND
"$QMP" "$TEST_TMP/split.qmp" query-status >/dev/null || fail "QEMU no longer answers"
echo "PASS: a Linux guest's checkpoint ends within $BOUND s whenever a server is lost or the tool is interrupted"
