#!/usr/bin/env bash
# A Linux guest survives the loss of a host. Every test host has a private
# disk. The Linux guest (-m 512M, 192M resident on the main host 0, the
# rest on the memory servers of hosts 1 and 2; its verifier tests a 256 MiB
# mapping) is checkpointed live with --replicas 1; then host 2 is destroyed
# (server killed, disk wiped) and dcres-restore brings the guest back onto
# hosts 0, 1 and a spare 3, host 2's part coming from host 1's copy. The
# restored kernel's verifier must go on counting passes with errors=0.
set -euo pipefail
. "$(dirname "$0")/../lib/split.sh"
. "$(dirname "$0")/../lib/ckpt.sh"
. "$(dirname "$0")/../lib/restore.sh"

MEM=512M
mapfile -t linux < <(guest_linux_args $MEM "memtest.mb=256 memtest.hot=10 memtest.rate=2000")
s() { echo "$(host_addr "$1"):7700"; }

split_hosts_up 3
export SPLIT_STORAGE=local
split_servers_up 3 $MEM
ckpt=$(host_disk 0)/linux
SPLIT_SERVERS="$(s 1);$(s 2)" SPLIT_NSERVERS=2 \
  split_guest_start split $MEM 192M "${linux[@]}"
guest_wait split '^MEMTEST start' 120 >/dev/null
split_guest_passes split 1 300

CKPT_HOST=0 ckpt_take split "$ckpt" --live --replicas 1 --psk "$SPLIT_KEY"
[ "$(ckpt_json "$TEST_TMP/linux.json" 'j["replication"]["survives_host_losses"]')" -eq 1 ] \
  || fail "the checkpoint does not survive the loss of a host: $(cat "$TEST_TMP/linux.json")"
before=$(ckpt_last_pass split)
kill "$(guest_pid split)"; sleep 1

kill -9 "$(split_server_pid 2)"
rm -rf "$(host_disk 2)/linux"
restore_guest back "$ckpt" "main,$(s 1),$(s 3)" -- "${linux[@]}" \
  || fail "restore after losing host 2 failed: $(cat "$TEST_TMP/back.log")"
grep -q "of host 2's part from $(s 1)" "$TEST_TMP/back.log" \
  || fail "host 2's part did not come from host 1's copy: $(cat "$TEST_TMP/back.log")"
ckpt_verified back "$before" 300
