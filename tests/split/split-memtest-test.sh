#!/usr/bin/env bash
# A split-memory VM: the memtest guest (-m 1G) runs in test host 0 with
# local-size=256M while the rest of its RAM lives on two memory servers in
# test hosts 1 and 2. The guest's verifier must report clean passes while
# rewriting its hot set; QEMU's resident memory must stay near the local
# size and both servers must hold pages (so the split is real).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/guest.sh"
. "$(dirname "$0")/../lib/hosts.sh"
. "$(dirname "$0")/../lib/split.sh"

[ "$(id -u)" -eq 0 ] || skip "userfaultfd and network namespaces need root"
hosts_up 3
[ "$HOSTS_MODE" = netns ] || skip "network namespaces unavailable (need root and iproute2)"
split_servers_up 2 1G
mapfile -t args < <(guest_memtest_args 1G "hot=10 rate=2000")
split_guest_start split 1G 256M "${args[@]}"
guest_wait split '^MEMTEST start' 60 >/dev/null
line=$(guest_wait split '^MEMTEST pass=2 ' 400)
note "$line"
if grep -a -E 'MEMTEST (error|pass=[0-9]+ pages=[0-9]+ errors=[1-9])' "$(guest_serial split)"; then
  fail "the split guest found errors in its memory"
fi
[[ $line =~ writes=([1-9][0-9]*) ]] || fail "the guest rewrote no pages: $line"

qemu_rss=$(split_rss_mib "$(guest_pid split)")
note "QEMU resident: ${qemu_rss} MiB for a 1 GiB guest with local-size=256M"
[ "$qemu_rss" -lt 700 ] || fail "QEMU holds ${qemu_rss} MiB: guest RAM is not being paged out"
for k in 1 2; do
  pid=$(ip netns pids "dcres$$-h$k" | head -n 1)
  srss=$(split_rss_mib "$pid")
  note "memory server $k resident: ${srss} MiB"
  [ "$srss" -gt 100 ] || fail "memory server $k holds only ${srss} MiB: no pages were paged out to it"
done
echo "PASS: split-memory memtest guest"
