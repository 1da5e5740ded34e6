#!/usr/bin/env bash
# A memory server lost at each step of a live D-CRES checkpoint's protocol,
# deterministically (the server's --fault-file stops or kills it just
# before it handles that request): begin (migration setup), final (the
# stop window: the VM is stopped) and commit (the VM runs again; the
# files are being made durable), while the memtest guest rewrites pages
# that move between the hosts. At each step:
# - the server stopped: dcres-checkpoint exits 1 within BOUND s naming it,
#   no manifest is left, and once the server runs again so does the VM,
#   its verifier still clean;
# - the server stopped and the tool interrupted (SIGINT): it exits 1
#   within INT_BOUND s;
# - the server killed (a new VM and server each time): it exits 1 within
#   BOUND s naming it, and QEMU still answers.
set -euo pipefail
. "$(dirname "$0")/../lib/split.sh"
. "$(dirname "$0")/../lib/ckpt.sh"

MEM=256M
BOUND=20     # s from a server's loss to the tool's exit
INT_BOUND=10 # s from SIGINT to the tool's exit
STEPS=(MSG_CKPT_BEGIN MSG_CKPT_FINAL MSG_CKPT_COMMIT)
mapfile -t memtest < <(guest_memtest_args $MEM "hot=10 rate=2000")

split_hosts_up 2
split_servers_up 2 1G

# Starts guest NAME and waits for its verifier's first clean pass.
vm_up() {
  split_guest_start "$1" $MEM 64M "${memtest[@]}"
  guest_wait "$1" '^MEMTEST start' 60 >/dev/null
  split_guest_passes "$1" 1 300
}

# Lets the stopped server 2 run again; the VM must run and pass again.
server_resumes() {
  kill -CONT "$(split_server_pid 2)"
  ckpt_wait_running "$1"
  split_guest_passes "$1" $(( $(ckpt_last_pass "$1") + 1 )) 300
}

vm_up vm0
ckpt_take vm0 "$SPLIT_CKPT_ROOT/good" --live
for msg in "${STEPS[@]}"; do
  step=${msg#MSG_CKPT_}; step=${step,,}
  split_server_fault 2 stop "$msg"
  ckpt_start_faulted vm0 "$SPLIT_CKPT_ROOT/stopped-$step" --live
  note "memory server 2 stopped before $msg"
  ckpt_expect_failure "$SPLIT_CKPT_ROOT/stopped-$step" server $BOUND
  server_resumes vm0

  split_server_fault 2 stop "$msg"
  ckpt_start_faulted vm0 "$SPLIT_CKPT_ROOT/interrupted-$step" --live
  kill -INT "$ckpt_bg"
  ckpt_expect_failure "$SPLIT_CKPT_ROOT/interrupted-$step" interrupt $INT_BOUND
  server_resumes vm0
done
# Nothing of the failed ones touched the checkpoint before them.
ckpt_take vm0 "$SPLIT_CKPT_ROOT/after" --live

n=0
for msg in "${STEPS[@]}"; do
  step=${msg#MSG_CKPT_}; step=${step,,}
  vm=vm$n
  [ $n -eq 0 ] || vm_up "$vm"
  split_server_fault 2 kill "$msg"
  ckpt_start_faulted "$vm" "$SPLIT_CKPT_ROOT/killed-$step" --live
  note "memory server 2 killed before $msg"
  ckpt_expect_failure "$SPLIT_CKPT_ROOT/killed-$step" server $BOUND
  "$QMP" "$TEST_TMP/$vm.qmp" query-status >/dev/null || fail "QEMU of $vm no longer answers"
  "$QMP" "$TEST_TMP/$vm.qmp" quit >/dev/null || true
  split_server_start 2 1G
  split_server_wait 2
  n=$((n + 1))
done
[ -f "$SPLIT_CKPT_ROOT/good/manifest" ] && [ -f "$SPLIT_CKPT_ROOT/after/manifest" ] \
  || fail "a checkpoint taken before the faults lost its manifest"
echo "PASS: a memory server lost at begin, final or commit ends the checkpoint within $BOUND s, naming it"
