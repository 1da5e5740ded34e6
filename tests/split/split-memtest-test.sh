#!/usr/bin/env bash
# A split-memory VM: the memtest guest (-m 1G) runs in test host 0 with
# local-size=256M while the rest of its RAM lives on two memory servers in
# test hosts 1 and 2. The guest's verifier must report clean passes while
# rewriting its hot set; QEMU's resident memory must stay near the local
# size and both servers must hold pages (so the split is real); query-dcres
# must show pages on both servers and page-ins and page-outs growing.
set -euo pipefail
. "$(dirname "$0")/../lib/split.sh"

# query-dcres's page-ins and page-outs, checking both servers hold pages.
dcres_moves() {
  local info
  info=$(split_dcres split)
  [ "$(grep -o -E '"connected": true, "pages": [1-9]' <<< "$info" | wc -l)" -eq 2 ] \
    || fail "query-dcres does not show pages on both servers: $info"
  note "query-dcres: $info"
  split_paging "$info"
}

split_hosts_up 2
split_servers_up 2 1G
mapfile -t args < <(guest_memtest_args 1G "hot=10 rate=2000")
split_guest_start split 1G 256M "${args[@]}"
guest_wait split '^MEMTEST start' 60 >/dev/null
split_guest_passes split 1 400
read -r ins outs < <(dcres_moves)
split_guest_passes split 2 400
read -r ins2 outs2 < <(dcres_moves)
[ "$ins2" -gt "$ins" ] && [ "$outs2" -gt "$outs" ] \
  || fail "paging stopped: page-ins $ins then $ins2, page-outs $outs then $outs2"
split_check_rss split 700 100
echo "PASS: split-memory memtest guest"
