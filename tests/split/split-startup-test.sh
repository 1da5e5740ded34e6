#!/usr/bin/env bash
# The dcres-split object at QEMU start-up. Without the object QEMU is stock:
# the memtest guest runs, no userfaultfd is opened, query-dcres and
# dcres-status say the VM is not split. With it, a wrong pre-shared key or
# an unreachable memory server makes QEMU exit at start-up with a message
# naming the server, before the guest runs.
set -euo pipefail
. "$(dirname "$0")/../lib/split.sh"

split_hosts_up 2
split_servers_up 1 64M

# Without the object: a stock VM.
mapfile -t args < <(guest_memtest_args 256M "hot=10 rate=2000")
GUEST_HOST=0 guest_start stock "${args[@]}"
guest_wait stock '^MEMTEST pass=1 .*errors=0' 120 >/dev/null
if ls -l "/proc/$(guest_pid stock)/fd" | grep -q userfaultfd; then
  fail "QEMU without a dcres-split object opened a userfaultfd"
fi
if out=$("$QMP" "$TEST_TMP/stock.qmp" query-dcres 2>&1); then
  fail "query-dcres answered on a VM that is not split: $out"
fi
[[ $out == *"not split"* ]] || fail "query-dcres on a stock VM: unexpected answer: $out"
if st=$("$DCRES_STATUS" --qmp "$TEST_TMP/stock.qmp" 2>&1); then
  fail "dcres-status succeeded on a VM that is not split: $st"
fi
[[ $st == *"not split"* ]] || fail "dcres-status on a stock VM: unexpected answer: $st"
st=$("$QMP" "$TEST_TMP/stock.qmp" query-status)
[[ $st == *'"status": "running"'* ]] || fail "the stock VM is not running: $st"
note "stock VM: no userfaultfd, query-dcres: $out"

# start_fails NAME WHAT PATTERN: the split guest NAME must exit non-zero at
# start-up, its stderr matching PATTERN (which names the server).
start_fails() {
  local name=$1 what=$2 pattern=$3 status=0
  mapfile -t args < <(guest_memtest_args 256M)
  split_guest_start "$name" 256M 64M "${args[@]}"
  wait "$(guest_pid "$name")" || status=$?
  [ "$status" -ne 0 ] || fail "QEMU started with $what"
  grep -q -E "$pattern" "$TEST_TMP/$name.stderr" \
    || { cat "$TEST_TMP/$name.stderr" >&2; fail "QEMU with $what: no message matching /$pattern/"; }
  [ ! -s "$(guest_serial "$name")" ] || fail "the guest ran although QEMU could not start with $what"
  note "$what: $(grep -m1 -E "$pattern" "$TEST_TMP/$name.stderr")"
}

good_key=$SPLIT_KEY
SPLIT_KEY=$TEST_TMP/wrong-psk
head -c 24 /dev/urandom | base64 > "$SPLIT_KEY"
chmod 600 "$SPLIT_KEY"
start_fails wrongkey "a wrong key" "$(host_addr 1):7700.*(wrong pre-shared key|authentication)"
SPLIT_KEY=$good_key

# Host 2 exists but runs no memory server.
SPLIT_SERVERS+=";$(host_addr 2):7700"
start_fails unreachable "an unreachable server" "$(host_addr 2):7700.*(cannot connect|not usable)"
grep -q "cannot start remote paging" "$TEST_TMP/unreachable.stderr" \
  || fail "QEMU's own error does not say remote paging could not start"
echo "PASS: dcres-split start-up"
