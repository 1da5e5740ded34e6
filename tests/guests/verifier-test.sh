#!/usr/bin/env bash
# End-to-end test of a memory-verifier guest under the patched QEMU.
#
# usage: verifier-test.sh memtest|linux passes|corrupt
#   passes   the guest fills its memory, keeps rewriting its hot set and
#            reports several verification passes, all with errors=0
#   corrupt  guest RAM is a shared memory-backend-file; after a clean pass a
#            byte of one cold page is flipped from the host, and the guest
#            must report errors>0 naming that page (the verifier can fail)
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/guest.sh"

kind=${1:?usage: verifier-test.sh memtest|linux passes|corrupt}
mode=${2:?usage: verifier-test.sh memtest|linux passes|corrupt}

case $kind in
  memtest) mem=256M; boot_timeout=30; mapfile -t args < <(guest_memtest_args $mem "hot=20 rate=2000") ;;
  linux) mem=384M; boot_timeout=240
         mapfile -t args < <(guest_linux_args $mem "memtest.mb=128 memtest.hot=20 memtest.rate=2000") ;;
  *) fail "unknown guest kind $kind" ;;
esac

case $mode in
passes)
  guest_start g "${args[@]}"
  guest_wait g '^MEMTEST start' "$boot_timeout"
  line=$(guest_wait g '^MEMTEST pass=3 ' 120)
  note "$line"
  log=$(guest_serial g)
  if grep -a -E 'MEMTEST (error|pass=[0-9]+ pages=[0-9]+ errors=[1-9])' "$log"; then
    fail "$kind guest reported errors"
  fi
  [[ $line =~ pages=([0-9]+)\ errors=0\ writes=([0-9]+) ]] || fail "malformed pass line: $line"
  [ "${BASH_REMATCH[1]}" -gt 1000 ] || fail "$kind guest tested only ${BASH_REMATCH[1]} pages"
  [ "${BASH_REMATCH[2]}" -gt 0 ] || fail "$kind guest rewrote no pages"
  ;;
corrupt)
  ram=$(mktemp /dev/shm/dcres-ram.XXXXXX)
  at_exit "rm -f '$ram'"
  guest_start g "${args[@]}" \
    -object "memory-backend-file,id=ram0,size=$mem,mem-path=$ram,share=on" \
    -machine memory-backend=ram0
  guest_wait g '^MEMTEST pass=1 .* errors=0' "$((boot_timeout + 60))" >/dev/null
  poked=$("$DCRES_MEMTEST_POKE" "$ram") || fail "memtest-poke found no memtest page in $ram"
  note "corrupted $poked"
  page=${poked#page=}; page=${page%% *}
  line=$(guest_wait g 'MEMTEST pass=[0-9]+ pages=[0-9]+ errors=[1-9]' 120)
  note "$line"
  guest_wait g "MEMTEST error .* page=$page .*kind=(body-mismatch|checksum-mismatch)" 5 >/dev/null
  ;;
*) fail "unknown mode $mode" ;;
esac
echo "PASS: $kind guest $mode"
