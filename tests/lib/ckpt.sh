# Checkpoints of test guests. Source after split.sh; needs DCRES_CHECKPOINT
# and DCRES_MERGE (the tools).
#   ckpt_take NAME DIR ARGS...     checkpoint guest NAME into DIR with
#                                  dcres-checkpoint --json ARGS (run in test
#                                  host $CKPT_HOST when that is set); its
#                                  summary goes to $TEST_TMP/<basename DIR>.json
#   ckpt_json FILE EXPR            a value of a JSON file: EXPR is Python on
#                                  the parsed object j, e.g. 'j["downtime_ms"]'
#   ckpt_merge DIR OUT             merge checkpoint DIR into OUT (dcres-merge
#                                  --json); its summary goes to OUT.json
#   ckpt_restore_stock NAME FILE QEMU_ARGS...
#                                  start guest NAME in a QEMU without any
#                                  dcres object, restore it from the
#                                  mapped-ram file FILE and resume it
#   ckpt_last_pass NAME            the number of the guest's last verifier
#                                  pass so far (0 if none)
#   ckpt_verified NAME BEFORE TIMEOUT
#                                  a restored guest's verifier must pass
#                                  twice, clean, counting on from pass
#                                  BEFORE (each pass within TIMEOUT s)
#   ckpt_make_qcow2 PATH SIZE      create an empty qcow2 image (through a
#                                  QEMU without a machine: no qemu-img here)
#   ckpt_snapshots NAME            the internal snapshots of guest NAME's
#                                  disks, one name per line
#   ckpt_start_bg NAME DIR ARGS... start dcres-checkpoint of guest NAME into
#                                  DIR in the background (pid in $ckpt_bg);
#                                  returns once memory server 2 began saving
#   ckpt_start_faulted NAME DIR ARGS...
#                                  the same, returning once the fault set on
#                                  memory server 2 (split_server_fault) fired
#   ckpt_expect_failure DIR WHY BOUND
#                                  that checkpoint must end within BOUND s,
#                                  exit 1 naming memory server 2 (WHY server)
#                                  or the interrupt (WHY interrupt), leave no
#                                  manifest, and QEMU's migration must have
#                                  ended (failed or cancelled; or completed
#                                  with the checkpoint failed, when the
#                                  server was lost while committing)
#   ckpt_wait_running NAME         guest NAME's VM must run again within 30 s

ckpt_take() {
  local name=$1 dir=$2; shift 2
  [ -x "${DCRES_CHECKPOINT:-}" ] || fail "dcres-checkpoint not found (DCRES_CHECKPOINT=${DCRES_CHECKPOINT:-unset})"
  local -a run=("$DCRES_CHECKPOINT")
  [ -z "${CKPT_HOST:-}" ] || run=(host_exec "$CKPT_HOST" "$DCRES_CHECKPOINT")
  "${run[@]}" --qmp "$TEST_TMP/$name.qmp" --dir "$dir" --json "$@" \
    > "$TEST_TMP/$(basename "$dir").json" 2> "$TEST_TMP/$(basename "$dir").log" \
    || fail "checkpoint of $name into $dir failed: $(cat "$TEST_TMP/$(basename "$dir").log")"
  note "checkpoint $dir: $(cat "$TEST_TMP/$(basename "$dir").json")"
}

ckpt_json() { python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

ckpt_merge() {
  [ -x "${DCRES_MERGE:-}" ] || fail "dcres-merge not found (DCRES_MERGE=${DCRES_MERGE:-unset})"
  "$DCRES_MERGE" --json "$1" "$2" > "$2.json" 2> "$2.log" \
    || fail "dcres-merge of $1 failed: $(cat "$2.log")"
  note "merged $1: $(cat "$2.json")"
}

ckpt_restore_stock() {
  local name=$1 file=$2 s; shift 2
  guest_start "$name" "$@" -incoming defer
  for _ in $(seq 100); do [ -S "$TEST_TMP/$name.qmp" ] && break; sleep 0.1; done
  "$QMP" "$TEST_TMP/$name.qmp" migrate-set-capabilities \
    '{"capabilities": [{"capability": "mapped-ram", "state": true}]}' >/dev/null
  "$QMP" "$TEST_TMP/$name.qmp" migrate-incoming "{\"uri\": \"file:$file\"}" >/dev/null
  for _ in $(seq 600); do
    s=$("$QMP" "$TEST_TMP/$name.qmp" query-migrate)
    grep -q '"status": "completed"' <<< "$s" && break
    grep -q '"status": "failed"' <<< "$s" && fail "restore of $file failed: $s $(cat "$TEST_TMP/$name.stderr")"
    sleep 0.1
  done
  grep -q '"status": "completed"' <<< "$s" || fail "restore of $file did not complete: $s"
  "$QMP" "$TEST_TMP/$name.qmp" cont >/dev/null
}

ckpt_verified() {
  local name=$1 before=$2 timeout=$3 line n
  line=$(guest_wait "$name" '^MEMTEST (pass=|error)' "$timeout")
  n=$(sed -E 's/.*pass=([0-9]+).*/\1/' <<< "$line")
  [[ $line =~ errors=0 ]] || fail "restored guest $name found errors: $line"
  [ "$n" -gt "$before" ] || fail "restored guest $name restarted its count: $line (checkpoint after pass $before)"
  split_guest_passes "$name" $((n + 1)) "$timeout"
  note "restored $name: passes $n and $((n + 1)) clean"
}

ckpt_last_pass() {
  { grep -a -o -E '^MEMTEST pass=[0-9]+' "$(guest_serial "$1")" || echo "pass=0"; } \
    | tail -n 1 | sed 's/.*pass=//'
}

# Runs QMP command $2 with arguments $3 on the helper QEMU at socket $1 and
# waits for the job it starts ($4) to conclude.
_ckpt_job() {
  local sock=$1 s
  "$QMP" "$sock" "$2" "$3" >/dev/null
  for _ in $(seq 100); do
    s=$("$QMP" "$sock" query-jobs)
    grep -q '"status": "concluded"' <<< "$s" && break
    sleep 0.1
  done
  grep -q '"error"' <<< "$s" && fail "$2 failed: $s"
  "$QMP" "$sock" job-dismiss "{\"id\": \"$4\"}" >/dev/null
}

ckpt_make_qcow2() {
  local path=$1 size=$2 sock=$TEST_TMP/mkimg.qmp pid
  "$DCRES_QEMU" -machine none -nodefaults -display none \
    -qmp "unix:$sock,server=on,wait=off" 2> "$TEST_TMP/mkimg.stderr" &
  pid=$!
  for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
  _ckpt_job "$sock" blockdev-create \
    "{\"job-id\": \"f\", \"options\": {\"driver\": \"file\", \"filename\": \"$path\", \"size\": 0}}" f
  "$QMP" "$sock" blockdev-add "{\"driver\": \"file\", \"node-name\": \"f\", \"filename\": \"$path\"}" >/dev/null
  _ckpt_job "$sock" blockdev-create \
    "{\"job-id\": \"q\", \"options\": {\"driver\": \"qcow2\", \"file\": \"f\", \"size\": $size}}" q
  "$QMP" "$sock" quit >/dev/null || true
  wait $pid || true
  [ -s "$path" ] || fail "could not create the qcow2 image $path: $(cat "$TEST_TMP/mkimg.stderr")"
}

ckpt_snapshots() {
  "$QMP" "$TEST_TMP/$1.qmp" query-block | python3 -c '
import json, sys
for dev in json.load(sys.stdin):
    for snap in dev.get("inserted", {}).get("image", {}).get("snapshots", []):
        print(snap["name"])'
}

# Starts dcres-checkpoint of guest NAME into DIR with ARGS in the
# background.
_ckpt_launch() {
  local name=$1 dir=$2 base; shift 2
  base=$(basename "$dir")
  "$DCRES_CHECKPOINT" --qmp "$TEST_TMP/$name.qmp" --dir "$dir" "$@" \
    > "$TEST_TMP/$base.out" 2> "$TEST_TMP/$base.log" &
  ckpt_bg=$!
  ckpt_bg_guest=$name
}

ckpt_start_faulted() {
  _ckpt_launch "$@"
  split_server_wait_fault 2
}

ckpt_start_bg() {
  local dir=$2 base
  base=$(basename "$dir")
  _ckpt_launch "$@"
  for _ in $(seq 400); do
    compgen -G "$dir/host-2.mem.partial.*" >/dev/null && return 0
    sleep 0.02
  done
  fail "memory server 2 never began the checkpoint into $dir: $(cat "$TEST_TMP/$base.log")"
}

ckpt_expect_failure() {
  local dir=$1 why=$2 bound=$3 base t0=$SECONDS rc=0
  base=$(basename "$dir")
  while kill -0 "$ckpt_bg" 2>/dev/null && [ $((SECONDS - t0)) -lt "$bound" ]; do sleep 0.2; done
  if kill -0 "$ckpt_bg" 2>/dev/null; then
    kill -9 "$ckpt_bg"
    fail "$base: dcres-checkpoint still ran $bound s later: $(cat "$TEST_TMP/$base.log")"
  fi
  wait "$ckpt_bg" || rc=$?
  [ "$rc" -eq 1 ] || fail "$base: dcres-checkpoint exited $rc: $(cat "$TEST_TMP/$base.log")"
  if [ "$why" = server ]; then
    grep -q "memory server 2 ($(host_addr 2):7700)" "$TEST_TMP/$base.log" \
      || fail "$base: the failure does not name memory server 2 ($(host_addr 2)): $(cat "$TEST_TMP/$base.log")"
  else
    grep -q "interrupted" "$TEST_TMP/$base.log" \
      || fail "$base: no word of the interrupt: $(cat "$TEST_TMP/$base.log")"
  fi
  note "$base: ended after $((SECONDS - t0)) s: $(grep -v '^\[' "$TEST_TMP/$base.log" | grep -i -m1 'server 2\|interrupt')"
  [ ! -e "$dir/manifest" ] || fail "$base: the failed checkpoint has a manifest"
  local qmp=$TEST_TMP/$ckpt_bg_guest.qmp
  "$QMP" "$qmp" query-migrate | grep -Eq '"status": "(failed|cancelled)"' && return 0
  "$QMP" "$qmp" query-migrate | grep -q '"status": "completed"' \
    || fail "$base: QEMU's migration did not end: $("$QMP" "$qmp" query-migrate)"
  for _ in $(seq 100); do
    "$QMP" "$qmp" query-dcres | grep -q '"checkpoint-state": "failed"' && return 0
    sleep 0.2
  done
  fail "$base: the migration completed and the checkpoint did not fail: $("$QMP" "$qmp" query-dcres)"
}

ckpt_wait_running() {
  for _ in $(seq 150); do
    "$QMP" "$TEST_TMP/$1.qmp" query-status | grep -q '"status": "running"' && return 0
    sleep 0.2
  done
  fail "the VM of $1 did not run again: $("$QMP" "$TEST_TMP/$1.qmp" query-status)"
}
