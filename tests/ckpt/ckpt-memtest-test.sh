#!/usr/bin/env bash
# D-CRES checkpoints of a split-memory VM: the memtest guest (-m 512M,
# local-size=128M, the rest on two memory servers in test hosts 1 and 2)
# is checkpointed stopped, then live while it rewrites memory. Each
# checkpoint must hold every page once: dcres-merge checks that no page is
# in two files and that every page the location table places is where it
# says, and the merged file is restored by a QEMU without any dcres object,
# whose verifier must then find its memory intact (errors=0) and continue
# counting passes. The stopped checkpoint must cause no page-in; the
# conventional one (every page through the main host) pages the remote ones
# in and makes a file stock QEMU restores as it is. The VM's
# qcow2 disk must get an internal snapshot for each checkpoint, named in
# its manifest.
set -euo pipefail
. "$(dirname "$0")/../lib/split.sh"
. "$(dirname "$0")/../lib/ckpt.sh"

MEM=512M
mapfile -t memtest < <(guest_memtest_args $MEM "hot=10 rate=2000")
disk=$TEST_TMP/disk.qcow2
# The restored VMs have the same devices (the disk through a throw-away
# overlay), and no dcres object.
stock_args=("${memtest[@]}" -object "memory-backend-ram,id=ram0,size=$MEM"
            -machine memory-backend=ram0
            -drive "file=$disk,format=qcow2,if=ide,id=disk0,snapshot=on")

# Restores merged checkpoint FILE (taken after pass $2) in a stock QEMU
# named $3: its verifier must pass right away, with the pass count going on.
restore_and_verify() {
  ckpt_restore_stock "$3" "$1" "${stock_args[@]}"
  ckpt_verified "$3" "$2" 120
  kill "$(guest_pid "$3")"
}

# Pages the guest's verifier wrote: every one must be in the checkpoint.
written_pages() { grep -a -o -E 'pages=[0-9]+' "$(guest_serial split)" | head -n 1 | cut -d= -f2; }

split_hosts_up 2
split_servers_up 2 $MEM
ckpt_make_qcow2 "$disk" $((64 << 20))
split_guest_start split $MEM 128M "${memtest[@]}" \
  -drive "file=$disk,format=qcow2,if=ide,id=disk0"
guest_wait split '^MEMTEST start' 60 >/dev/null
split_guest_passes split 1 400

# 1. Stopped: the VM stops, every host saves its own pages, no page moves.
before=$(ckpt_last_pass split)
ckpt_take split "$SPLIT_CKPT_ROOT/stopped"
j=$TEST_TMP/stopped.json
[ "$(ckpt_json "$j" 'j["disk_snapshot"]')" = dcres-stopped ] \
  && ckpt_snapshots split | grep -qx dcres-stopped \
  || fail "no disk snapshot dcres-stopped: $(ckpt_snapshots split)"
[ "$(ckpt_json "$j" 'j["page_ins"]')" -eq 0 ] || fail "the stopped checkpoint paged in $(ckpt_json "$j" 'j["page_ins"]') pages"
for k in 1 2; do
  [ "$(ckpt_json "$j" "j['hosts'][$k]['pages']")" -gt 10000 ] \
    || fail "memory server $k saved too few pages: $(cat "$j")"
done
[ "$(ckpt_json "$j" "j['hosts'][0]['pages']")" -le 32832 ] \
  || fail "the main host saved more than its resident pages: $(cat "$j")"
ckpt_merge "$SPLIT_CKPT_ROOT/stopped" "$TEST_TMP/stopped.mem"
total=$(ckpt_json "$TEST_TMP/stopped.mem.json" 'j["total"]')
[ "$total" -ge "$(written_pages)" ] || fail "checkpoint holds $total pages, the guest wrote $(written_pages)"
split_guest_passes split $((before + 2)) 400   # the VM resumed, memory intact

# 2. Live, with the guest rewriting its hot set meanwhile.
before=$(ckpt_last_pass split)
ckpt_take split "$SPLIT_CKPT_ROOT/live" --live --parallel 2
j=$TEST_TMP/live.json
ckpt_snapshots split | grep -qx dcres-live || fail "no disk snapshot dcres-live: $(ckpt_snapshots split)"
for k in 1 2; do
  [ "$(ckpt_json "$j" "j['hosts'][$k]['bytes_written']")" -gt 0 ] \
    || fail "memory server $k wrote nothing during the live checkpoint: $(cat "$j")"
done
# The guest's own paging moved pages while the checkpoint ran: the restore
# below checks that every one of them was saved exactly once.
moved_in=$(ckpt_json "$j" 'j["page_ins"]')
moved_out=$(ckpt_json "$j" 'j["page_outs"]')
[ "$moved_in" -gt 0 ] && [ "$moved_out" -gt 0 ] \
  || fail "no page moved during the live checkpoint ($moved_in in, $moved_out out)"
note "pages moved during the live checkpoint: $moved_in in, $moved_out out"
ckpt_merge "$SPLIT_CKPT_ROOT/live" "$TEST_TMP/live.mem"
total=$(ckpt_json "$TEST_TMP/live.mem.json" 'j["total"]')
[ "$total" -ge "$(written_pages)" ] || fail "checkpoint holds $total pages, the guest wrote $(written_pages)"
live_before=$before

# 3. Conventional, for comparisons: the remote pages come through the main
# host, and main.mem alone is the checkpoint.
before=$(ckpt_last_pass split)
ckpt_take split "$SPLIT_CKPT_ROOT/conv" --conventional --parallel 2
j=$TEST_TMP/conv.json
[ "$(ckpt_json "$j" 'j["mode"]')" = conventional ] && [ "$(ckpt_json "$j" 'j["page_ins"]')" -gt 10000 ] \
  || fail "the conventional checkpoint did not page the remote pages in: $(cat "$j")"
[ ! -e "$SPLIT_CKPT_ROOT/conv/main.loc" ] && [ ! -e "$SPLIT_CKPT_ROOT/conv/host-1.mem" ] \
  || fail "the conventional checkpoint has D-CRES files: $(ls "$SPLIT_CKPT_ROOT/conv")"
kill "$(guest_pid split)"

# 4. The merged checkpoints, and the conventional one as it is, restore in
# QEMU without dcres.
restore_and_verify "$TEST_TMP/stopped.mem" 1 rstopped
restore_and_verify "$TEST_TMP/live.mem" "$live_before" rlive
restore_and_verify "$SPLIT_CKPT_ROOT/conv/main.mem" "$before" rconv
echo "PASS: D-CRES checkpoints, stopped and live, merged and restored; conventional restored"
