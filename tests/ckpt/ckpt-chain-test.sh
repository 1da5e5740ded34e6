#!/usr/bin/env bash
# Incremental live checkpoints of a split-memory VM: the memtest guest
# (-m 512M, local-size=128M, the rest on two memory servers in test hosts 1
# and 2), rewriting its hot set while pages move, gets a full live
# checkpoint c0 and then a chain of five increments c1 (--parent c0) to c5
# (--incremental). Each increment must name its parent and hold less
# than 3/4 of c0's pages (c1, taken right after c0, fewer on every host).
# Refused, each with a clear error and the chain left intact: an
# increment on a checkpoint that is not the VM's last (QEMU and the
# servers say so); a merge, a restore and an inspection of c3 with c2
# missing (dcres-inspect shows c3's chain once c2 is back); a merge of c3
# with another checkpoint in c2's place, or with c2's main.loc changed.
# The periodic service (--every 2s --keep 3) runs until SIGTERM and leaves
# exactly 3 checkpoints, each restorable, the oldest flattened into a full
# one. An increment that fills the disk fails naming the file and leaves
# its parent whole, and the next one on that parent works. Then, the guest
# gone, its verifier must find its memory intact
# (errors=0) and go on from the checkpoint's pass after each restore:
# dcres-restore of c1 and c3 onto the same hosts, of c5 lazily onto this
# host and server 2 only, and c3 flattened (dcres-merge --flatten) in a
# QEMU without dcres.
set -euo pipefail
. "$(dirname "$0")/../lib/split.sh"
. "$(dirname "$0")/../lib/ckpt.sh"
. "$(dirname "$0")/../lib/restore.sh"

MEM=512M
mapfile -t memtest < <(guest_memtest_args $MEM "hot=10 rate=2000")
stock_args=("${memtest[@]}" -object "memory-backend-ram,id=ram0,size=$MEM"
            -machine memory-backend=ram0)

# Pages host $2 stored in checkpoint summary $1.
host_pages() { ckpt_json "$TEST_TMP/$1.json" "j['hosts'][$2]['pages']"; }

split_hosts_up 2
# A small disk (tmpfs) below the servers' directory, mounted before they
# start so that every host sees it: a full checkpoint fits, not one more.
small=$TEST_TMP/ckpt/small
mkdir -p "$small"
mount -t tmpfs -o size=640m,mode=0700 dcres-small "$small" || fail "cannot mount a tmpfs on $small"
at_exit 'umount -l "$small"'
split_servers_up 2 $MEM
chain=$SPLIT_CKPT_ROOT/chain
mkdir -p "$chain"
split_guest_start split $MEM 128M "${memtest[@]}"
guest_wait split '^MEMTEST start' 60 >/dev/null
split_guest_passes split 1 400

ckpt_take split "$chain/c0" --live
declare -A before after  # the guest's last pass before and after each checkpoint
# One after the other: the verifier reads every page in each pass, so
# over a pass every page moves between hosts, and a page that moved is
# saved again (its new host's copy is the one to restore).
for c in c1 c2 c3 c4 c5; do
  before[$c]=$(ckpt_last_pass split)
  if [ $c = c1 ]; then
    ckpt_take split "$chain/c1" --live --parent "$chain/c0"
  else
    ckpt_take split "$chain/$c" --live --incremental
  fi
  after[$c]=$(ckpt_last_pass split)
  want=$([ $c = c1 ] && echo c0 || echo "c$(( ${c#c} - 1 ))")
  [ "$(ckpt_json "$TEST_TMP/$c.json" 'j["parent"]')" = "$chain/$want" ] \
    || fail "$c does not build on $want: $(cat "$TEST_TMP/$c.json")"
  # c1, taken right after c0, is smaller on every host. Later ones may
  # save nearly every resident page of the main host again (the verifier
  # pages them all in within a pass), but not the whole VM.
  if [ $c = c1 ]; then
    for k in 0 1 2; do
      [ "$(host_pages $c $k)" -lt "$(host_pages c0 $k)" ] \
        || fail "$c: host $k stored $(host_pages $c $k) pages, the full c0 $(host_pages c0 $k)"
    done
  fi
  total() { echo $(( $(host_pages "$1" 0) + $(host_pages "$1" 1) + $(host_pages "$1" 2) )); }
  [ "$(total $c)" -lt $(( $(total c0) * 3 / 4 )) ] \
    || fail "$c stored $(total $c) pages, the full c0 $(total c0): hardly an increment"
  note "$c: pages main $(host_pages $c 0), host 1 $(host_pages $c 1), host 2 $(host_pages $c 2) (c0: $(host_pages c0 0), $(host_pages c0 1), $(host_pages c0 2))"
done

# An increment on c1, no longer the VM's last checkpoint, is refused.
rc=0
"$DCRES_CHECKPOINT" --qmp "$TEST_TMP/split.qmp" --dir "$chain/bad" --live --parent "$chain/c1" \
  > "$TEST_TMP/bad.out" 2> "$TEST_TMP/bad.log" || rc=$?
[ $rc -eq 1 ] && grep -q "not this VM's last checkpoint" "$TEST_TMP/bad.log" \
  || fail "an increment on c1 after c3: exit $rc: $(cat "$TEST_TMP/bad.log")"
[ ! -e "$chain/bad/manifest" ] || fail "the refused increment left a manifest"
split_guest_passes split $(($(ckpt_last_pass split) + 1)) 400

# The periodic service, --keep 3 over 6 checkpoints, stopped by SIGTERM:
# exactly 3 checkpoints left, the oldest flattened into a full one.
periodic=$SPLIT_CKPT_ROOT/periodic
periodic_start=$(ckpt_last_pass split)
"$DCRES_CHECKPOINT" --qmp "$TEST_TMP/split.qmp" --chain "$periodic" --every 2s --keep 3 --live \
  > /dev/null 2> "$TEST_TMP/periodic.log" &
service=$!
for _ in $(seq 600); do
  [ "$(grep -c 'checkpoint .*: \(full\|incremental\),' "$TEST_TMP/periodic.log")" -ge 6 ] && break
  kill -0 $service 2>/dev/null || fail "the periodic service ended: $(cat "$TEST_TMP/periodic.log")"
  sleep 0.5
done
periodic_before=$(ckpt_last_pass split)
kill -TERM $service
rc=0
timeout 60 tail --pid=$service -f /dev/null || fail "the periodic service did not stop on SIGTERM"
wait $service || rc=$?
[ $rc -eq 0 ] || fail "the periodic service exited $rc: $(cat "$TEST_TMP/periodic.log")"
note "periodic: $(grep -c 'checkpoint .*: \(full\|incremental\),' "$TEST_TMP/periodic.log") checkpoints; $(grep -m3 'checkpoint .*: ' "$TEST_TMP/periodic.log" | sed 's/^.*checkpoint //' | tr '\n' ';')"
grep -q "checkpoint $periodic/000001: full," "$TEST_TMP/periodic.log" &&
  grep -q "checkpoint $periodic/000002: incremental," "$TEST_TMP/periodic.log" \
  || fail "the periodic service did not start full, then go incremental: $(cat "$TEST_TMP/periodic.log")"
mapfile -t kept < <(cd "$periodic" && ls -d [0-9]*[0-9] 2>/dev/null)
[ "${#kept[@]}" -eq 3 ] || fail "the periodic service left ${#kept[@]} checkpoints: ${kept[*]}: $(cat "$TEST_TMP/periodic.log")"
for c in "${kept[@]}"; do
  "$DCRES_MERGE" --check "$periodic/$c" > /dev/null 2> "$TEST_TMP/check-$c.log" \
    || fail "kept checkpoint $c is not restorable: $(cat "$TEST_TMP/check-$c.log")"
done
ckpt_merge "$periodic/${kept[0]}" "$TEST_TMP/oldest.mem"
[ "$(ckpt_json "$TEST_TMP/oldest.mem.json" 'j["chain"]')" -eq 1 ] \
  || fail "the oldest kept checkpoint was not flattened: $(cat "$TEST_TMP/oldest.mem.json")"
rm -f "$TEST_TMP/oldest.mem"

# The disk fills up in the middle of an increment: a clear error naming
# the file, nothing published, the parent still whole, and the VM going
# on; the next increment on the same parent (elsewhere) works.
ckpt_take split "$small/f0" --live
split_guest_passes split $(($(ckpt_last_pass split) + 1)) 400  # enough pages change
rc=0
"$DCRES_CHECKPOINT" --qmp "$TEST_TMP/split.qmp" --dir "$small/f1" --live --parent "$small/f0" \
  > /dev/null 2> "$TEST_TMP/full.log" || rc=$?
note "increment on a full disk: exit $rc: $(cat "$TEST_TMP/full.log")"
[ $rc -eq 1 ] && grep -q "No space left on device" "$TEST_TMP/full.log" \
  && grep -q "$small/f1" "$TEST_TMP/full.log" \
  || fail "an increment on a full disk: exit $rc: $(cat "$TEST_TMP/full.log")"
[ ! -e "$small/f1/manifest" ] || fail "the increment that did not fit left a manifest"
"$DCRES_MERGE" --check "$small/f0" > /dev/null 2> "$TEST_TMP/f0.log" \
  || fail "the parent of the increment that did not fit is damaged: $(cat "$TEST_TMP/f0.log")"
split_guest_passes split $(($(ckpt_last_pass split) + 1)) 400
ckpt_take split "$chain/f1" --live --parent "$small/f0"
"$DCRES_MERGE" --check "$chain/f1" > /dev/null 2> "$TEST_TMP/f1.log" \
  || fail "the increment after the full disk does not check out: $(cat "$TEST_TMP/f1.log")"
kill "$(guest_pid split)"

# A chain with a gap is refused, naming the missing checkpoint: by
# dcres-merge (nothing written) and dcres-restore (no QEMU started).
mv "$chain/c2" "$chain/c2.away"
rc=0
"$DCRES_MERGE" "$chain/c3" "$TEST_TMP/gap.mem" 2> "$TEST_TMP/gap.log" || rc=$?
[ $rc -eq 1 ] && grep -q "parent ../c2 is missing" "$TEST_TMP/gap.log" && [ ! -e "$TEST_TMP/gap.mem" ] \
  || fail "a merge of c3 without c2: exit $rc: $(cat "$TEST_TMP/gap.log")"
rc=0
restore_guest rgap "$chain/c3" main -- "${memtest[@]}" || rc=$?
[ $rc -eq 1 ] && grep -q "parent ../c2 is missing" "$TEST_TMP/rgap.log" \
  && [ ! -e "$TEST_TMP/rgap.flat" ] && [ ! -e "$TEST_TMP/rgap.qmp" ] \
  || fail "a restore of c3 without c2: exit $rc: $(cat "$TEST_TMP/rgap.log")"
rc=0
"$DCRES_INSPECT" --no-verify "$chain/c3" > /dev/null 2> "$TEST_TMP/igap.log" || rc=$?
[ $rc -eq 1 ] && grep -q "parent ../c2 is missing" "$TEST_TMP/igap.log" \
  || fail "dcres-inspect of c3 without c2: exit $rc: $(cat "$TEST_TMP/igap.log")"
# Another checkpoint in c2's place (as another VM's would be): refused,
# naming both.
mv "$periodic/${kept[0]}" "$chain/c2"
rc=0
"$DCRES_MERGE" "$chain/c3" "$TEST_TMP/other.mem" 2> "$TEST_TMP/other.log" || rc=$?
[ $rc -eq 1 ] && grep -q "c2: not the parent .*c3 was made on" "$TEST_TMP/other.log" \
  && [ ! -e "$TEST_TMP/other.mem" ] \
  || fail "a merge of c3 on another checkpoint: exit $rc: $(cat "$TEST_TMP/other.log")"
mv "$chain/c2" "$periodic/${kept[0]}"
mv "$chain/c2.away" "$chain/c2"
# c2's files changed since c3 was made on it: refused, naming the file.
cp "$chain/c2/main.loc" "$TEST_TMP/c2.loc"
printf '\xff' | dd of="$chain/c2/main.loc" bs=1 seek=400 conv=notrunc status=none
rc=0
"$DCRES_MERGE" "$chain/c3" "$TEST_TMP/changed.mem" 2> "$TEST_TMP/changed.log" || rc=$?
[ $rc -eq 1 ] && grep -q "c2/main.loc" "$TEST_TMP/changed.log" && [ ! -e "$TEST_TMP/changed.mem" ] \
  || fail "a merge of c3 on a changed c2: exit $rc: $(cat "$TEST_TMP/changed.log")"
note "refused: $(grep -m1 "main.loc" "$TEST_TMP/changed.log")"
cp "$TEST_TMP/c2.loc" "$chain/c2/main.loc"
# With c2 back, dcres-inspect shows and checks c3's whole chain.
"$DCRES_INSPECT" --json "$chain/c3" > "$TEST_TMP/c3.inspect.json" 2> "$TEST_TMP/inspect.log" \
  || fail "dcres-inspect of c3: $(cat "$TEST_TMP/inspect.log")"
[ "$(ckpt_json "$TEST_TMP/c3.inspect.json" 'len(j["chain"])')" -eq 4 ] \
  && [ "$(ckpt_json "$TEST_TMP/c3.inspect.json" 'j["parent"]')" = ../c2 ] \
  || fail "dcres-inspect of c3 does not show its chain: $(cat "$TEST_TMP/c3.inspect.json")"

# The guest's first pass after restoring checkpoint $2 as $1 goes on from
# that checkpoint: after the pass before it began, at most one after the
# last one before it ended.
restored_from() {
  ckpt_verified "$1" "${before[$2]}" 120
  local first
  first=$(grep -a -m1 -o -E '^MEMTEST pass=[0-9]+' "$(guest_serial "$1")" | cut -d= -f2)
  [ "$first" -le $(( ${after[$2]} + 1 )) ] \
    || fail "$1 went on from pass $first: not from $2 (taken during passes ${before[$2]}..${after[$2]})"
  kill "$(guest_pid "$1")"
}

# dcres-restore of increments: c1 and c3 onto the hosts they were taken
# on, eagerly; c5 lazily onto this host and memory server 2 only.
same_hosts="main,$(host_addr 1):7700,$(host_addr 2):7700"
for c in c1 c3; do
  restore_guest "r$c" "$chain/$c" "$same_hosts" -- "${memtest[@]}" \
    || fail "dcres-restore of $c failed: $(cat "$TEST_TMP/r$c.log"); QEMU: $(tail -n 20 "$TEST_TMP/r$c.run/qemu.log")"
  [ "$(ckpt_json "$TEST_TMP/r$c.json" 'j["chain"]')" -eq $(( ${c#c} + 1 )) ] \
    || fail "dcres-restore of $c did not read its chain: $(cat "$TEST_TMP/r$c.json")"
  [ "$(ckpt_json "$TEST_TMP/r$c.json" 'j["flat_dir"]')" = "$TEST_TMP/r$c.flat" ] \
    && [ -f "$TEST_TMP/r$c.flat/main.mem" ] \
    || fail "dcres-restore of $c did not flatten its chain into r$c.flat: $(cat "$TEST_TMP/r$c.json")"
  restored_from "r$c" $c
done
# A flat directory that exists (a VM may still read it) is not reused.
rc=0
"$DCRES_RESTORE" --ckpt "$chain/c1" --hosts main --run-dir "$TEST_TMP/again.run" \
  --flat-dir "$TEST_TMP/rc1.flat" -- "${memtest[@]}" > /dev/null 2> "$TEST_TMP/again.log" || rc=$?
[ $rc -eq 1 ] && grep -q "$TEST_TMP/rc1.flat.*File exists" "$TEST_TMP/again.log" \
  && [ -f "$TEST_TMP/rc1.flat/main.mem" ] \
  || fail "a restore into an existing flat directory: exit $rc: $(cat "$TEST_TMP/again.log")"
restore_guest rc5 "$chain/c5" "main,$(host_addr 2):7700" --lazy --capacity main=128M \
  -- "${memtest[@]}" || fail "dcres-restore of c5 failed: $(cat "$TEST_TMP/rc5.log"); QEMU: $(tail -n 20 "$TEST_TMP/rc5.run/qemu.log")"
[ "$(ckpt_json "$TEST_TMP/rc5.json" 'j["hosts"][1]["pages"]')" -gt 0 ] \
  || fail "the lazy restore of c5 put nothing on memory server 2: $(cat "$TEST_TMP/rc5.json")"
restored_from rc5 c5

# c3 flattened is one full checkpoint, which QEMU without dcres restores.
"$DCRES_MERGE" --flatten "$chain/c3" "$chain/c3.flat" > /dev/null 2> "$TEST_TMP/flat.log" \
  || fail "dcres-merge --flatten c3 failed: $(cat "$TEST_TMP/flat.log")"
ckpt_restore_stock rflat "$chain/c3.flat/main.mem" "${stock_args[@]}"
restored_from rflat c3
echo "PASS: a chain of live incremental checkpoints, restored, flattened and merged; bad parents refused"
