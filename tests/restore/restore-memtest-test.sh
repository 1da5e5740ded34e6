#!/usr/bin/env bash
# D-CRES restores onto other host sets. The memtest guest (-m 256M, 64M
# resident on the main host, the rest on memory servers in test hosts 1
# and 2; it hammers a hot set of 2% of its pages, 60% into memory) is
# checkpointed live, stopped, and dcres-restore brings it back onto
# (a) the same hosts (one server named by another spelling of its
# address: known by its id), (b) the main host and one new sub-host, with half the
# main host's room, (c) the main host and three sub-hosts, one of them an
# old one, (d) the main host alone (an ordinary VM); (a)-(d) eagerly and
# then lazily. Every restored guest's verifier must find its memory intact
# (errors=0) and go on counting passes. The hot set, on the main host at
# the checkpoint, must still be there after the restore (b) that halves
# the main host; a lazy restore must resume before all its pages are in
# and load them later: the memory servers too (a lazy restore resumes with
# pages still to load on the servers, which every host then loads). A
# lazy restore of a checkpoint whose server file was damaged after it was
# taken starts (only small files are checked first) but never gives the
# damaged page to the guest: the VM pauses with DCRES_PAGE_ERROR naming
# the file and page, and the verifier reports no error. dcres-inspect
# must pass the checkpoint and name a corrupted page. Refusals: a restore
# while the VM still runs; a corrupted server file (named, with the page)
# and a missing file (named), each with no QEMU started; an infeasible
# plan, with every server's pages of the VM left as they were.
set -euo pipefail
. "$(dirname "$0")/../lib/split.sh"
. "$(dirname "$0")/../lib/ckpt.sh"
. "$(dirname "$0")/../lib/restore.sh"

MEM=256M
mapfile -t memtest < <(guest_memtest_args $MEM "hot=2 hotat=60 rate=max")
main=main
s() { echo "$(host_addr "$1"):7700"; }

split_hosts_up 4
split_servers_up 4 $MEM
ckpt=$SPLIT_CKPT_ROOT/ckpt
# The original VM uses servers 1 and 2 only.
SPLIT_SERVERS="$(s 1);$(s 2)" SPLIT_NSERVERS=2 \
  split_guest_start split $MEM 64M "${memtest[@]}"
start=$(guest_wait split '^MEMTEST start' 60)
hot_page=$(sed -E 's/.*hot_page=([0-9]+).*/\1/' <<< "$start")
hot_pages=$(sed -E 's/.*hot_pages=([0-9]+).*/\1/' <<< "$start")
# Two passes: after one, on a busy machine, the hot set had sometimes not
# settled on the main host yet.
split_guest_passes split 2 400

ckpt_take split "$ckpt" --live
before=$(ckpt_last_pass split)
"$DCRES_INSPECT" --json "$ckpt" > "$TEST_TMP/inspect.json" \
  || fail "dcres-inspect finds fault with the checkpoint: $(cat "$TEST_TMP/inspect.json")"
for k in 0 1 2; do
  [ "$(ckpt_json "$TEST_TMP/inspect.json" "j['hosts'][$k]['pages_placed']")" -gt 1000 ] \
    || fail "dcres-inspect: host $k holds too few pages: $(cat "$TEST_TMP/inspect.json")"
done
share=$(restore_share "$ckpt/main.loc" "$hot_page" "$hot_pages")
note "hot set: pages $hot_page.. ($hot_pages), $share% on the main host at the checkpoint"
[ "$share" -ge 80 ] || fail "only $share% of the hot set was on the main host at the checkpoint"

# Refused while the VM runs: its servers will not give its pages away.
if restore_guest early "$ckpt" "$main,$(s 1),$(s 2)" -- "${memtest[@]}"; then
  fail "dcres-restore went ahead while the checkpointed VM still runs"
fi
grep -q "running main host" "$TEST_TMP/early.log" \
  || fail "refusal does not say the VM runs: $(cat "$TEST_TMP/early.log")"
kill "$(guest_pid split)"; sleep 1

# servers_pending NAME: pages restored guest NAME's memory servers have
# still to load, as query-dcres reports them (one number per server).
servers_pending() {
  python3 -c 'import json, sys; print(" ".join(str(s.get("restore-pending", -1)) for s in json.load(sys.stdin)["servers"]))' \
    <<< "$(split_dcres "$1")"
}
# servers_loaded NAME: waits up to 60 s until no server of NAME has pages
# to load.
servers_loaded() {
  local deadline=$((SECONDS + 60)) p
  until p=$(servers_pending "$1"); [[ $p =~ ^[0\ ]+$ ]]; do
    [ $SECONDS -lt $deadline ] || fail "$1: the memory servers still have pages to load: $p"
    sleep 1
  done
}
# resumed_pending NAME K: pages host K had still to load when NAME resumed.
resumed_pending() { ckpt_json "$TEST_TMP/$1.json" "j['hosts'][$2]['pending_at_resume']"; }

restore_all() {
  local mode=$1 args=()
  [ "$mode" = lazy ] && args=(--lazy)
  # (a) lazily with --wait-loaded: the tool waits for every host. Eagerly,
  # server 1 is named by another spelling of its address: the restore
  # knows it by the id it reports, and moves nothing.
  local s1=$(s 1)
  [ "$mode" = eager ] && s1="$(host_addr 1):07700"
  restore_guest "${mode}_a" "$ckpt" "$main,$s1,$(s 2)" "${args[@]}" \
    ${args:+--wait-loaded} -- "${memtest[@]}" \
    || fail "restore (a) failed: $(cat "$TEST_TMP/${mode}_a.log")"
  [ "$(ckpt_json "$TEST_TMP/${mode}_a.json" 'j["pages_moved"]')" -eq 0 ] \
    || fail "restore onto the same hosts moved pages: $(cat "$TEST_TMP/${mode}_a.json")"
  if [ "$mode" = lazy ]; then
    [ "$(ckpt_json "$TEST_TMP/${mode}_a.json" 'j["pending_at_resume"]')" -gt 1000 ] \
      || fail "the lazy restore loaded everything before resuming: $(cat "$TEST_TMP/${mode}_a.json")"
    for k in 1 2; do
      [ "$(resumed_pending "${mode}_a" $k)" -gt 1000 ] \
        || fail "memory server $k had loaded everything before the VM resumed: $(cat "$TEST_TMP/${mode}_a.json")"
    done
    [ "$(ckpt_json "$TEST_TMP/${mode}_a.json" '[h["load_ms"] for h in j["hosts"]].count(None)')" -eq 0 ] \
      || fail "--wait-loaded returned before every host had loaded: $(cat "$TEST_TMP/${mode}_a.json")"
    # query-dcres learns it within a second or so.
    servers_loaded "${mode}_a"
  fi
  ckpt_verified "${mode}_a" "$before" 300
  if [ "$mode" = lazy ]; then
    grep -q '"restore-pending": 0' <<< "$(split_dcres "${mode}_a")" \
      || fail "the lazy restore's pages are not all loaded after two passes: $(split_dcres "${mode}_a")"
  fi
  kill "$(guest_pid "${mode}_a")"

  restore_guest "${mode}_b" "$ckpt" "$main,$(s 3)" --capacity "$main=32M" "${args[@]}" \
    -- "${memtest[@]}" || fail "restore (b) failed: $(cat "$TEST_TMP/${mode}_b.log")"
  share=$(restore_share "$TEST_TMP/${mode}_b.run/plan" "$hot_page" "$hot_pages")
  note "restore (b): $share% of the hot set on the main host"
  # Half of the main host's pages stay: by heat, the hot set; by chance,
  # half of it; by page number, none of it (it lies 60% into memory).
  [ "$share" -ge 80 ] || fail "restore (b) put only $share% of the hot set on the main host"
  ckpt_verified "${mode}_b" "$before" 300
  kill "$(guest_pid "${mode}_b")"

  restore_guest "${mode}_c" "$ckpt" "$main,$(s 2),$(s 3),$(s 4)" "${args[@]}" \
    -- "${memtest[@]}" || fail "restore (c) failed: $(cat "$TEST_TMP/${mode}_c.log")"
  if [ "$mode" = lazy ]; then
    for k in 1 2 3; do
      [ "$(resumed_pending "${mode}_c" $k)" -gt 0 ] \
        || fail "(c): memory server $k had loaded everything before the VM resumed: $(cat "$TEST_TMP/${mode}_c.json")"
    done
  fi
  ckpt_verified "${mode}_c" "$before" 300
  [ "$mode" = lazy ] && servers_loaded "${mode}_c"
  kill "$(guest_pid "${mode}_c")"

  restore_guest "${mode}_d" "$ckpt" "$main" "${args[@]}" -- "${memtest[@]}" \
    || fail "restore (d) failed: $(cat "$TEST_TMP/${mode}_d.log")"
  ckpt_verified "${mode}_d" "$before" 300
  kill "$(guest_pid "${mode}_d")"
}
restore_all eager
restore_all lazy

# Refusals with nothing started: a corrupted page, a missing file.
# Flips (and, run again, restores) a bit in the first page with data of
# host-1.mem from page FROM (default 0) on; prints the page.
flip() {
  python3 - "$ckpt/host-1.mem" "${1:-0}" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
off = os.lseek(fd, (1 << 20) + int(sys.argv[2]) * 4096, os.SEEK_DATA)
os.pwrite(fd, bytes([os.pread(fd, 1, off + 100)[0] ^ 0x40]), off + 100)
print((off - (1 << 20)) // 4096)
EOF
}
bad_page=$(flip)
if "$DCRES_INSPECT" "$ckpt" > "$TEST_TMP/inspect-bad.txt" 2>&1; then
  fail "dcres-inspect passed a corrupted host-1.mem"
fi
grep -q "host-1.mem: page $bad_page " "$TEST_TMP/inspect-bad.txt" \
  || fail "dcres-inspect does not name host-1.mem page $bad_page: $(cat "$TEST_TMP/inspect-bad.txt")"
if restore_guest bad "$ckpt" "$main,$(s 1),$(s 2)" -- "${memtest[@]}"; then
  fail "dcres-restore accepted a corrupted host-1.mem"
fi
grep -q "host-1.mem: page $bad_page " "$TEST_TMP/bad.log" \
  || fail "the error does not name host-1.mem and page $bad_page: $(cat "$TEST_TMP/bad.log")"
[ ! -e "$TEST_TMP/bad.run/qemu.log" ] || fail "a QEMU was started for a corrupted checkpoint"
flip > /dev/null
# Lazily, the damaged page (one the verifier reads: past the first MiBs) is found when it loads: never given to the
# guest, the VM paused with an event naming it. The event socket makes
# QEMU wait for its listener, so no event is missed.
bad_page=$(flip 32768)
: > "$TEST_TMP/events"
( until [ -S "$TEST_TMP/bad_lazy-events.qmp" ]; do sleep 0.05; done
  exec "$QMP" "$TEST_TMP/bad_lazy-events.qmp" --events "$TEST_TMP/events" ) &
at_exit "kill $! 2>/dev/null"
restore_guest bad_lazy "$ckpt" "$main,$(s 1),$(s 2)" --lazy -- "${memtest[@]}" \
  -qmp "unix:$TEST_TMP/bad_lazy-events.qmp,server=on,wait=on" \
  || fail "the lazy restore did not start: $(cat "$TEST_TMP/bad_lazy.log")"
deadline=$((SECONDS + 300))
until grep -q '"event": "DCRES_PAGE_ERROR"' "$TEST_TMP/events"; do
  [ $SECONDS -lt $deadline ] || fail "no DCRES_PAGE_ERROR within 300 s: $(cat "$TEST_TMP/events"); $(split_dcres bad_lazy)"
  kill -0 "$(guest_pid bad_lazy)" || fail "QEMU died: $(tail "$TEST_TMP/bad_lazy.run/qemu.log")"
  sleep 0.5
done
event=$(grep '"event": "DCRES_PAGE_ERROR"' "$TEST_TMP/events" | head -n 1)
[[ $event == *"\"page\": $bad_page}"* && $event == *"host-1.mem: page $bad_page is corrupted"* ]] \
  || fail "DCRES_PAGE_ERROR does not name host-1.mem and page $bad_page: $(cat "$TEST_TMP/events")"
[[ $("$QMP" "$TEST_TMP/bad_lazy.qmp" query-status) == *'"status": "paused"'* ]] \
  || fail "the VM is not paused after DCRES_PAGE_ERROR: $("$QMP" "$TEST_TMP/bad_lazy.qmp" query-status)"
! grep -a -q '^MEMTEST error' "$(guest_serial bad_lazy)" \
  || fail "the guest saw the damaged page: $(grep -a '^MEMTEST error' "$(guest_serial bad_lazy)" | head -n 3)"
note "lazy restore of a damaged host-1.mem: $(grep DCRES_PAGE_ERROR "$TEST_TMP/events" | head -n 1)"
kill "$(guest_pid bad_lazy)"; sleep 1
flip 32768 > /dev/null
mv "$ckpt/host-2.present" "$TEST_TMP/"
if restore_guest missing "$ckpt" "$main,$(s 1),$(s 2)" -- "${memtest[@]}"; then
  fail "dcres-restore accepted a checkpoint without host-2.present"
fi
grep -q "host-2.present" "$TEST_TMP/missing.log" \
  || fail "the error does not name host-2.present: $(cat "$TEST_TMP/missing.log")"
[ ! -e "$TEST_TMP/missing.run/qemu.log" ] || fail "a QEMU was started for an incomplete checkpoint"
note "refused: $(tail -n 1 "$TEST_TMP/bad.log"); $(tail -n 1 "$TEST_TMP/missing.log")"

# An infeasible plan is refused before anything is released: the servers
# hold the VM's pages as before (each restore's log shows them).
infeasible() {
  if restore_guest "infeasible$1" "$ckpt" "$main,$(s 2),$(s 3)" \
      --capacity "$main=4M,$(s 2)=4M,$(s 3)=4M" --log-level debug -- "${memtest[@]}"; then
    fail "dcres-restore went ahead with a plan that cannot fit"
  fi
  grep -q "nothing released or started" "$TEST_TMP/infeasible$1.log" \
    || fail "the refusal does not say nothing was released: $(cat "$TEST_TMP/infeasible$1.log")"
  grep -o "pages free (with VM [^ ]*'s [0-9]* old ones)" "$TEST_TMP/infeasible$1.log"
}
mv "$TEST_TMP/host-2.present" "$ckpt/"
held1=$(infeasible 1)
held2=$(infeasible 2)
[ -n "$held1" ] && [ "$held1" = "$held2" ] \
  || fail "an infeasible restore changed what the servers hold: '$held1' then '$held2'"
[[ $held1 =~ \ [1-9][0-9]*\ old ]] \
  || fail "the servers held none of the VM's pages before the infeasible restores: $held1"
note "infeasible plans refused, the servers' pages untouched: $(tail -n 2 "$TEST_TMP/infeasible1.log" | head -n 1)"
