#!/usr/bin/env bash
# Checkpoints that survive the loss of a host. Every test host has a
# private disk: inside a host the other hosts' disks are hidden, as on
# separate machines. The memtest guest (-m 256M, 64M resident on the main
# host 0, the rest on the memory servers of hosts 1 and 2) is checkpointed
# live with --replicas 1 by dcres-checkpoint running in host 0, which
# cannot see a server's files: the manifest comes from the servers' own
# sums. Each part must then be on two hosts, never twice on one. A second
# checkpoint whose copy cannot be made stays valid and says so (exit 3);
# an increment on it is replicated too.
# dcres-inspect and dcres-merge in host 0 read the servers' parts through
# the servers; the merged file restores in QEMU without dcres. Restores,
# each verified by the guest itself (errors=0, passes counting on):
#  (a) onto hosts 0, 1 and a spare 3 with a flipped byte in host 1's copy
#      of host 2's part: the damaged copy is named and host 2's own used;
#  (b) host 2 destroyed (server killed, its disk wiped): onto 0, 1 and 3,
#      lazily (host 3 serves host 2's pages from host 1's copy before it
#      has loaded them, and every host loads its pages); and the
#      increment too, its chain read through host 1's copies;
#  (c) the old main host's directory gone too: restored by host 4, which
#      fetches the main host's files from a copy and runs QEMU itself;
#  (d) both copies of host 2's part gone: refused naming the part and the
#      servers asked, no QEMU started.
set -euo pipefail
. "$(dirname "$0")/../lib/split.sh"
. "$(dirname "$0")/../lib/ckpt.sh"
. "$(dirname "$0")/../lib/restore.sh"

MEM=256M
mapfile -t memtest < <(guest_memtest_args $MEM "hot=2 hotat=60 rate=max")
s() { echo "$(host_addr "$1"):7700"; }

split_hosts_up 4
SPLIT_STORAGE=local split_servers_up 3 $MEM
export SPLIT_STORAGE=local
disk() { host_disk "$1"; }
ckpt=$(disk 0)/ckpt
SPLIT_SERVERS="$(s 1);$(s 2)" SPLIT_NSERVERS=2 \
  split_guest_start split $MEM 64M "${memtest[@]}"
split_guest_passes split 1 400

# The main host cannot see the servers' disks (the point of the test).
[ -z "$(host_exec 0 ls -A "$(disk 1)")" ] || fail "host 0 sees host 1's disk"
touch "$(disk 2)/visible"
host_exec 0 test ! -e "$(disk 2)/visible" || fail "host 0 sees host 2's disk"
rm "$(disk 2)/visible"

CKPT_HOST=0 ckpt_take split "$ckpt" --live --replicas 1 --psk "$SPLIT_KEY"
json=$TEST_TMP/ckpt.json
before=$(ckpt_last_pass split)
[ "$(ckpt_json "$json" 'j["replication"]["survives_host_losses"]')" -eq 1 ] \
  || fail "the checkpoint does not survive the loss of a host: $(cat "$json")"
[ "$(ckpt_json "$json" 'sum(c["ok"] for c in j["replication"]["copies"])')" -eq 3 ] \
  || fail "not every part was copied: $(cat "$json")"
for k in 0 1 2; do
  [ "$(ckpt_json "$json" "j['hosts'][$k]['replica_bytes_sent']")" -gt 1000000 ] \
    || fail "host $k sent too little of its part: $(cat "$json")"
done
# Every part on its own host and one other, never twice on one host.
rel=ckpt
for f in main.mem main.loc main.present manifest; do
  [ -f "$(disk 0)/$rel/$f" ] && [ -f "$(disk 1)/$rel/$f" ] && [ ! -e "$(disk 2)/$rel/$f" ] \
    || fail "$f is not on hosts 0 and 1 only"
done
for f in host-1.mem host-1.present host-2.mem host-2.present; do
  [ -f "$(disk 1)/$rel/$f" ] && [ -f "$(disk 2)/$rel/$f" ] && [ ! -e "$(disk 0)/$rel/$f" ] \
    || fail "$f is not on hosts 1 and 2 only"
  cmp -s "$(disk 1)/$rel/$f" "$(disk 2)/$rel/$f" || fail "the copies of $f differ"
done
ls "$(disk 1)/$rel" "$(disk 2)/$rel" | grep -q partial && fail "partial files left behind"
grep -q "$(s 1)" "$ckpt/manifest" || fail "the manifest names no replica on host 1"

# A copy that cannot be made (other content under its name on host 2):
# the checkpoint is complete and valid, the summary names the missing copy,
# the exit status is 3.
mkdir -p "$(disk 2)/second" && echo other > "$(disk 2)/second/host-1.mem"
status=0
host_exec 0 "$DCRES_CHECKPOINT" --qmp "$TEST_TMP/split.qmp" --dir "$(disk 0)/second" --live \
  --replicas 1 --psk "$SPLIT_KEY" --json > "$TEST_TMP/second.json" 2> "$TEST_TMP/second.log" \
  || status=$?
[ "$status" -eq 3 ] || fail "a missing replica: exit $status: $(cat "$TEST_TMP/second.log")"
[ "$(ckpt_json "$TEST_TMP/second.json" 'j["replication"]["survives_host_losses"]')" -eq 0 ] \
  || fail "the summary claims the checkpoint survives a loss: $(cat "$TEST_TMP/second.json")"
grep -q "replica of $(s 1)'s part on memory server 2 ($(s 2)) is missing:.*not replaced" \
  "$TEST_TMP/second.log" || fail "the missing replica is not named: $(cat "$TEST_TMP/second.log")"
[ "$(cat "$(disk 2)/second/host-1.mem")" = other ] || fail "the file in the way was replaced"
[ -f "$(disk 0)/second/manifest" ] || fail "the checkpoint without its replica lost its manifest"

# An increment on it, replicated like any checkpoint (its own files).
before_inc=$(ckpt_last_pass split)
CKPT_HOST=0 ckpt_take split "$(disk 0)/inc" --live --replicas 1 --psk "$SPLIT_KEY" \
  --parent "$(disk 0)/second"
[ "$(ckpt_json "$TEST_TMP/inc.json" 'j["replication"]["survives_host_losses"]')" -eq 1 ] \
  || fail "the increment does not survive the loss of a host: $(cat "$TEST_TMP/inc.json")"
[ -f "$(disk 1)/inc/host-2.mem" ] && [ -f "$(disk 2)/inc/host-1.mem" ] \
  || fail "the increment's parts were not copied to the other server"
kill "$(guest_pid split)"; sleep 1

# dcres-inspect and dcres-merge on the main host read the servers' parts
# through the servers; the merged file restores in a QEMU without dcres.
host_exec 0 "$DCRES_INSPECT" --psk "$SPLIT_KEY" --ckpt-root "$(disk 0)" "$ckpt" \
  > "$TEST_TMP/inspect.txt" 2>&1 || fail "dcres-inspect failed: $(cat "$TEST_TMP/inspect.txt")"
grep -q "host 2's part: not in $ckpt, read through memory server" "$TEST_TMP/inspect.txt" \
  || fail "dcres-inspect does not say where host 2's part is: $(cat "$TEST_TMP/inspect.txt")"
host_exec 0 "$DCRES_MERGE" --psk "$SPLIT_KEY" --ckpt-root "$(disk 0)" "$ckpt" \
  "$(disk 0)/merged.mem" > "$TEST_TMP/merge.txt" 2>&1 \
  || fail "dcres-merge failed: $(cat "$TEST_TMP/merge.txt")"
# The same for the increment: its chain, every layer's servers' parts
# read through the servers.
host_exec 0 "$DCRES_INSPECT" --json --psk "$SPLIT_KEY" --ckpt-root "$(disk 0)" "$(disk 0)/inc" \
  > "$TEST_TMP/inc.inspect.json" 2> "$TEST_TMP/inc.inspect.log" \
  || fail "dcres-inspect of the increment failed: $(cat "$TEST_TMP/inc.inspect.log")"
[ "$(ckpt_json "$TEST_TMP/inc.inspect.json" 'len(j["chain"])')" -eq 2 ] \
  || fail "dcres-inspect does not show the increment's chain: $(cat "$TEST_TMP/inc.inspect.json")"
host_exec 0 "$DCRES_MERGE" --check --psk "$SPLIT_KEY" --ckpt-root "$(disk 0)" "$(disk 0)/inc" \
  > "$TEST_TMP/inc.merge.txt" 2>&1 || fail "dcres-merge --check of the increment failed: $(cat "$TEST_TMP/inc.merge.txt")"
ckpt_restore_stock stock "$(disk 0)/merged.mem" "${memtest[@]}" \
  -object "memory-backend-ram,id=ram0,size=$MEM" -machine memory-backend=ram0
ckpt_verified stock "$before" 300
kill "$(guest_pid stock)"; sleep 1

# (a) A flipped byte in host 1's copy of host 2's part: named, not used.
flip() {
  python3 - "$1" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
off = os.lseek(fd, 1 << 20, os.SEEK_DATA)
os.pwrite(fd, bytes([os.pread(fd, 1, off + 100)[0] ^ 0x40]), off + 100)
EOF
}
flip "$(disk 1)/$rel/host-2.mem"
restore_guest a "$ckpt" "main,$(s 1),$(s 3)" -- "${memtest[@]}" \
  || fail "restore (a) failed: $(cat "$TEST_TMP/a.log")"
grep -q "memory server $(s 1): its copy of $rel/host-2.mem does not match.*page [0-9]* is corrupted" \
  "$TEST_TMP/a.log" || fail "restore (a) does not name the damaged copy: $(cat "$TEST_TMP/a.log")"
ckpt_verified a "$before" 300
kill "$(guest_pid a)"; sleep 1
flip "$(disk 1)/$rel/host-2.mem"

# (b) Host 2 destroyed: its server killed, its disk wiped. Lazily: host
# 3 serves host 2's pages at once, reading them from host 1's copy until
# it has loaded them.
kill -9 "$(split_server_pid 2)"
rm -rf "$(disk 2)/$rel"
restore_guest b "$ckpt" "main,$(s 1),$(s 3)" --lazy --wait-loaded -- "${memtest[@]}" \
  || fail "restore (b) after losing host 2 failed: $(cat "$TEST_TMP/b.log")"
[ "$(ckpt_json "$TEST_TMP/b.json" 'j["hosts"][2]["pending_at_resume"]')" -gt 0 ] \
  && [ "$(ckpt_json "$TEST_TMP/b.json" '[h["load_ms"] for h in j["hosts"]].count(None)')" -eq 0 ] \
  || fail "restore (b): host 3 had nothing to load at resume, or a host never loaded: $(cat "$TEST_TMP/b.json")"
ckpt_verified b "$before" 300
note "restore (b): $(grep -c "part from" "$TEST_TMP/b.log" || true) loads from another server's copy"
kill "$(guest_pid b)"; sleep 1

# (b2) The increment, host 2 still gone: both layers' parts of host 2
# come from host 1's copies, and the chain is restored onto 0, 1 and 3.
restore_guest b2 "$(disk 0)/inc" "main,$(s 1),$(s 3)" -- "${memtest[@]}" \
  || fail "restore (b2) of the increment after losing host 2 failed: $(cat "$TEST_TMP/b2.log")"
[ "$(ckpt_json "$TEST_TMP/b2.json" 'j["chain"]')" -eq 2 ] \
  && grep -q "inc: host 2's part read through memory server $(s 1)" "$TEST_TMP/b2.log" \
  && grep -q "second: host 2's part read through memory server $(s 1)" "$TEST_TMP/b2.log" \
  || fail "restore (b2) did not read the chain through host 1: $(cat "$TEST_TMP/b2.log")"
ckpt_verified b2 "$before_inc" 300
kill "$(guest_pid b2)"; sleep 1

# (c) The main host's directory gone as well: host 4 restores, with the
# main host's files fetched from host 1's copy.
rm -rf "$ckpt"
RESTORE_HOST=4 RESTORE_ROOT=$(disk 4) \
  restore_guest c "$(disk 4)/$rel" "main,$(s 1),$(s 3)" -- "${memtest[@]}" \
  || fail "restore (c) on host 4 failed: $(cat "$TEST_TMP/c.log")"
grep -q "came from memory server $(s 1)" "$TEST_TMP/c.log" \
  || fail "restore (c) does not say where the main host's files came from: $(cat "$TEST_TMP/c.log")"
ckpt_verified c "$before" 300
kill "$(guest_pid c)"; sleep 1

# (d) Both copies of host 2's part gone: refused, nothing started.
rm "$(disk 1)/$rel/host-2.mem"
if RESTORE_HOST=4 RESTORE_ROOT=$(disk 4) \
  restore_guest d "$(disk 4)/$rel" "main,$(s 1),$(s 3)" -- "${memtest[@]}"; then
  fail "restore (d) went ahead without host 2's part"
fi
grep -q "the part of host 2 (host-2.mem, host-2.present, saved on $(s 2)) exists nowhere" \
  "$TEST_TMP/d.log" || fail "restore (d) does not name the missing part: $(cat "$TEST_TMP/d.log")"
[ ! -e "$TEST_TMP/d.run/qemu.log" ] || fail "a QEMU was started without host 2's part"
note "refused: $(grep "exists nowhere" "$TEST_TMP/d.log")"
