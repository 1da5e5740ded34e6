#!/usr/bin/env bash
# A memory server of a split-memory VM out of reach: the memtest guest runs
# split over two servers; the link to test host 2 is cut. QEMU must raise
# DCRES_SERVER_LOST naming the server and pause the VM (not crash), show
# the server as disconnected in query-dcres (and dcres-status), and make
# no progress; when
# the link is back it must raise DCRES_SERVER_BACK, resume the VM, and the
# guest's verifier must go on with a clean pass over all its memory (no
# page was lost). Lost again, QEMU must still exit on SIGTERM.
set -euo pipefail
. "$(dirname "$0")/../lib/split.sh"

# wait_event NAME TIMEOUT: wait until the event log has event NAME.
wait_event() {
  local deadline=$((SECONDS + $2))
  until grep -q "\"event\": \"$1\"" "$TEST_TMP/events"; do
    [ $SECONDS -lt $deadline ] || fail "no $1 event within $2 s (events: $(cat "$TEST_TMP/events"))"
    kill -0 "$(guest_pid lost)" || { cat "$TEST_TMP/lost.stderr" >&2; fail "QEMU died"; }
    sleep 0.2
  done
}

status() { "$QMP" "$TEST_TMP/lost.qmp" query-status | sed -E 's/.*"status": "([a-z-]+)".*/\1/'; }

split_hosts_up 2
split_servers_up 2 1G
mapfile -t args < <(guest_memtest_args 512M "hot=10 rate=2000")
: > "$TEST_TMP/events"
split_guest_start lost 512M 128M "${args[@]}" \
  -qmp "unix:$TEST_TMP/lost-events.qmp,server=on,wait=off"
"$QMP" "$TEST_TMP/lost-events.qmp" --events "$TEST_TMP/events" &
at_exit "kill $! 2>/dev/null"
guest_wait lost '^MEMTEST filled' 300 >/dev/null
sleep 3

info=$(split_dcres lost)
note "before the cut: $info"
host_cut 2
wait_event DCRES_SERVER_LOST 60
grep -q "{\"data\": {\"address\": \"$(host_addr 2):7700\", \"id\": \"s0\", \"server\": 2}, \"event\": \"DCRES_SERVER_LOST\"" \
  "$TEST_TMP/events" || fail "DCRES_SERVER_LOST does not name server 2: $(cat "$TEST_TMP/events")"
[ "$(status)" = paused ] || fail "the VM is $(status) while a memory server is lost, not paused"
info=$(split_dcres lost)
[[ $info == *"\"address\": \"$(host_addr 2):7700\", \"connected\": false, \"pages\": "[1-9]* ]] \
  || fail "query-dcres does not show server 2 lost: $info"
note "while lost: $info"
out=$("$DCRES_STATUS" --qmp "$TEST_TMP/lost.qmp")
[[ $out == *"server 2 $(host_addr 2):7700: "[1-9]*" pages, LOST"* &&
   $out == *"server 1 $(host_addr 1):7700: "[1-9]*" pages, connected"* ]] \
  || fail "dcres-status does not show server 2 lost and server 1 connected: $out"
# Paused: no paging at all (a running guest pages from server 1 all along).
moves() { split_paging "$(split_dcres lost)"; }
before=$(moves)
sleep 3
[ "$(moves)" = "$before" ] || fail "the guest went on paging while paused ($before, then $(moves))"
kill -0 "$(guest_pid lost)" || fail "QEMU exited while a memory server was lost"

host_restore 2
wait_event DCRES_SERVER_BACK 60
for _ in $(seq 50); do [ "$(status)" = running ] && break; sleep 0.2; done
[ "$(status)" = running ] || fail "the VM did not resume when the server came back: $(status)"
info=$(split_dcres lost)
[[ $info == *"\"waiting-faults\": 0"* && $info != *"\"connected\": false"* ]] \
  || fail "after the server came back: $info"
pass=$(grep -a -c '^MEMTEST pass=' "$(guest_serial lost)" || true)
split_guest_passes lost $((pass + 1)) 300

# Lost again: QEMU told to exit must not wait for ever on the blocked vCPU.
: > "$TEST_TMP/events"
host_cut 2
wait_event DCRES_SERVER_LOST 60
kill -TERM "$(guest_pid lost)"
for _ in $(seq 100); do kill -0 "$(guest_pid lost)" 2>/dev/null || break; sleep 0.2; done
! kill -0 "$(guest_pid lost)" 2>/dev/null || fail "QEMU did not exit on SIGTERM while a memory server was lost"
host_restore 2
echo "PASS: a lost memory server pauses the VM, which resumes with its memory intact"
