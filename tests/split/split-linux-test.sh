#!/usr/bin/env bash
# A split-memory VM running Linux: the Linux guest (-m 1G) runs in test host
# 0 with local-size=256M while the rest of its RAM lives on two memory
# servers in test hosts 1 and 2. Its verifier tests a 448 MiB mapping, so
# the kernel and the mapping together outgrow the local share and every
# verification pass pages most of it in and out. The verifier must report
# three clean passes while rewriting its hot set; QEMU's resident memory
# must stay near the local size and both servers must hold pages.
set -euo pipefail
. "$(dirname "$0")/../lib/split.sh"

split_hosts_up 2
split_servers_up 2 1G
mapfile -t args < <(guest_linux_args 1G "memtest.mb=448 memtest.hot=10 memtest.rate=2000")
split_guest_start split 1G 256M "${args[@]}"
guest_wait split '^MEMTEST start' 120 >/dev/null
split_guest_passes split 3 420
# Unsplit, QEMU would hold the ~600 MiB the guest touched plus ~100 MiB of
# its own; split, about 256 + 100 MiB.
split_check_rss split 480 100
echo "PASS: split-memory Linux guest"
