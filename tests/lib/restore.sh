# D-CRES restores of test guests with dcres-restore. Source after split.sh
# and ckpt.sh; needs DCRES_RESTORE (the tool).
#   restore_guest NAME DIR HOSTS [TOOL_ARGS...] -- QEMU_ARGS...
#                                  restore checkpoint DIR onto HOSTS
#                                  (dcres-restore --hosts, run in test host
#                                  $RESTORE_HOST, default 0, with the split
#                                  servers' key, and as root SPLIT_CKPT_ROOT
#                                  or $RESTORE_ROOT)
#                                  as guest NAME, QMP on NAME.qmp (an
#                                  increment flattened into NAME.flat); its JSON
#                                  summary goes to $TEST_TMP/NAME.json,
#                                  its messages to NAME.log; returns the
#                                  tool's status
#   restore_share FILE FIRST COUNT percentage of guest pages FIRST..
#                                  FIRST+COUNT-1 that a location table
#                                  (main.loc) or restore plan FILE puts on
#                                  the main host

restore_guest() {
  local name=$1 dir=$2 hosts=$3 pid; shift 3
  local -a tool=() base
  while [ $# -gt 0 ] && [ "$1" != -- ]; do tool+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  [ -x "${DCRES_RESTORE:-}" ] || fail "dcres-restore not found (DCRES_RESTORE=${DCRES_RESTORE:-unset})"
  mapfile -t base < <(guest_base_args "$name")
  host_exec "${RESTORE_HOST:-0}" "$DCRES_RESTORE" --ckpt "$dir" --hosts "$hosts" \
    --psk "$SPLIT_KEY" --ckpt-root "${RESTORE_ROOT:-$SPLIT_CKPT_ROOT}" --qemu "$DCRES_QEMU" --qmp "$TEST_TMP/$name.qmp" \
    --run-dir "$TEST_TMP/$name.run" --flat-dir "$TEST_TMP/$name.flat" --json "${tool[@]}" -- "${base[@]}" "$@" \
    > "$TEST_TMP/$name.json" 2> "$TEST_TMP/$name.log" || return $?
  pid=$(ckpt_json "$TEST_TMP/$name.json" 'j["qemu_pid"]')
  guest_track "$name" "$pid"
  note "restored $name onto $hosts ${tool[*]}: $(cat "$TEST_TMP/$name.json")"
}

restore_share() {
  python3 - "$@" <<'EOF'
import struct, sys
path, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
b = open(path, "rb").read()
if b[:8] == b"DCRESLOC":   # main.loc: header, geometry, host bytes
    off = 24 + 256 + 24
elif b[:8] == b"DCRESPLN": # plan: header, directory, geometry, target bytes
    off = 32 + struct.unpack(">I", b[28:32])[0] + 256 + 24
else:
    sys.exit(f"{path}: neither a location table nor a restore plan")
hosts = b[off + first:off + first + count]
print(100 * sum(1 for h in hosts if h == 0) // max(len(hosts), 1))
EOF
}
