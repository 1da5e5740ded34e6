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

[ -x "${DCRES_MEMSERVER:-}" ] || fail "dcres-memserver not found (DCRES_MEMSERVER=${DCRES_MEMSERVER:-unset})"
"$DCRES_QEMU" -object help | grep -q dcres-split || fail "this QEMU has no dcres-split object"
[ -e /dev/userfaultfd ] || [ "$(id -u)" -eq 0 ] || skip "userfaultfd needs root"
hosts_up 3
[ "$HOSTS_MODE" = netns ] || skip "network namespaces unavailable (need root and iproute2)"

key=$TEST_TMP/psk
head -c 24 /dev/urandom | base64 > "$key"
chmod 600 "$key"
for k in 1 2; do
  host_exec $k "$DCRES_MEMSERVER" --listen "$(host_addr $k):7700" --capacity 1G \
    --dir "$TEST_TMP/store$k" --psk-file "$key" --no-populate \
    2> "$TEST_TMP/memserver$k.log" &
done
for k in 1 2; do
  for _ in $(seq 100); do grep -q listening "$TEST_TMP/memserver$k.log" && break; sleep 0.1; done
  grep -q listening "$TEST_TMP/memserver$k.log" || fail "memory server $k did not start: $(cat "$TEST_TMP/memserver$k.log")"
done

mapfile -t args < <(guest_memtest_args 1G "hot=10 rate=2000")
GUEST_HOST=0 guest_start split "${args[@]}" -uuid 6c1e0d5e-8a3b-4f7e-9b1a-2d3c4e5f6a7b \
  -object memory-backend-ram,id=ram0,size=1G -machine memory-backend=ram0 \
  -object "dcres-split,id=s0,memdev=ram0,local-size=256M,servers=$(host_addr 1):7700;$(host_addr 2):7700,psk-file=$key"
guest_wait split '^MEMTEST start' 60 >/dev/null
line=$(guest_wait split '^MEMTEST pass=2 ' 400)
note "$line"
if grep -a -E 'MEMTEST (error|pass=[0-9]+ pages=[0-9]+ errors=[1-9])' "$(guest_serial split)"; then
  fail "the split guest found errors in its memory"
fi
[[ $line =~ writes=([1-9][0-9]*) ]] || fail "the guest rewrote no pages: $line"

rss_mib() { awk '/^VmRSS/ { print int($2 / 1024) }' "/proc/$1/status"; }
qemu_rss=$(rss_mib "$(guest_pid split)")
note "QEMU resident: ${qemu_rss} MiB for a 1 GiB guest with local-size=256M"
[ "$qemu_rss" -lt 700 ] || fail "QEMU holds ${qemu_rss} MiB: guest RAM is not being paged out"
for k in 1 2; do
  pid=$(ip netns pids "dcres$$-h$k" | head -n 1)
  srss=$(rss_mib "$pid")
  note "memory server $k resident: ${srss} MiB"
  [ "$srss" -gt 100 ] || fail "memory server $k holds only ${srss} MiB: no pages were paged out to it"
done
echo "PASS: split-memory memtest guest"
