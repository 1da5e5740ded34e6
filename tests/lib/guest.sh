# Starting and watching test guests under the patched QEMU. Source after
# common.sh.
#   guest_base_args NAME            the arguments guest_start gives every
#                                   guest (without -qmp), one per line
#   guest_track NAME PID            guest NAME is QEMU process PID
#   guest_start NAME QEMU_ARGS...   start QEMU in the background (NAME:
#                                   letters, digits and _), serial console
#                                   to $TEST_TMP/NAME.serial, QMP on
#                                   $TEST_TMP/NAME.qmp; stopped at exit; in
#                                   test host $GUEST_HOST if that is set
#   guest_memtest_args MEM [APPEND] QEMU args booting the bare-metal memtest
#   guest_linux_args MEM [APPEND]   QEMU args booting the Linux guest
#   guest_wait NAME REGEX TIMEOUT   wait for a serial line matching REGEX;
#                                   prints it; fails if QEMU exits or time
#                                   runs out
#   guest_serial NAME               path of NAME's serial log

guest_serial() { echo "$TEST_TMP/$1.serial"; }

_guest_firmware_args() {
  local d
  IFS=: read -ra _dirs <<< "${DCRES_FIRMWARE_DIRS:-/usr/share/qemu:/usr/share/seabios}"
  for d in "${_dirs[@]}"; do printf -- '-L\n%s\n' "$d"; done
}

# The QEMU arguments every test guest NAME gets (firmware, machine,
# console to its serial log), one per line; empties the serial log.
guest_base_args() {
  [ -x "${DCRES_QEMU:-}" ] || fail "patched QEMU not found (DCRES_QEMU=${DCRES_QEMU:-unset}); build it first"
  : > "$(guest_serial "$1")"
  _guest_firmware_args
  printf -- '%s\n' -machine pc -accel "${DCRES_ACCEL:-tcg}" \
    -display none -monitor none -nic none -no-reboot \
    -serial "file:$(guest_serial "$1")"
}

guest_start() {
  local name=$1; shift
  local -a base
  mapfile -t base < <(guest_base_args "$name")
  [ ${#base[@]} -gt 0 ] || exit 1
  local -a run=("$DCRES_QEMU")
  # GUEST_HOST=K runs QEMU inside test host K (tests/lib/hosts.sh).
  if [ -n "${GUEST_HOST:-}" ]; then
    _hosts_cmd "$GUEST_HOST"
    run=("${HOSTS_CMD[@]}" "$DCRES_QEMU")
  fi
  "${run[@]}" "${base[@]}" -qmp "unix:$TEST_TMP/$name.qmp,server=on,wait=off" \
    "$@" 2> "$TEST_TMP/$name.stderr" &
  guest_track "$name" $!
}

guest_pid() { eval "echo \${_guest_pid_$1:-}"; }

# Guest NAME is QEMU process PID (started some other way): watched by
# guest_wait, stopped at exit.
guest_track() {
  eval "_guest_pid_$1=$2"
  at_exit "kill $2 2>/dev/null; wait $2 2>/dev/null"
}

guest_memtest_args() {
  [ -f "${DCRES_MEMTEST_ELF:-}" ] || fail "memtest guest not found (DCRES_MEMTEST_ELF=${DCRES_MEMTEST_ELF:-unset})"
  printf -- '%s\n' -m "$1" -kernel "$DCRES_MEMTEST_ELF" -append "${2:-}"
}

guest_linux_args() {
  [ -f "${DCRES_LINUX_KERNEL:-}" ] || fail "Linux guest kernel not found (DCRES_LINUX_KERNEL=${DCRES_LINUX_KERNEL:-unset})"
  [ -f "${DCRES_LINUX_INITRD:-}" ] || fail "Linux guest initramfs not found (DCRES_LINUX_INITRD=${DCRES_LINUX_INITRD:-unset})"
  printf -- '%s\n' -m "$1" -kernel "$DCRES_LINUX_KERNEL" -initrd "$DCRES_LINUX_INITRD" \
    -append "console=ttyS0 quiet panic=-1 ${2:-}"
}

guest_wait() {
  local name=$1 regex=$2 timeout=$3 line
  local log pid deadline=$((SECONDS + timeout))
  log=$(guest_serial "$name")
  pid=$(guest_pid "$name")
  while :; do
    line=$(grep -a -m1 -E "$regex" "$log" 2>/dev/null) && { echo "$line"; return 0; }
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 5 "$log" >&2; cat "$TEST_TMP/$name.stderr" >&2
      fail "guest $name: QEMU exited before printing /$regex/"
    fi
    [ $SECONDS -lt $deadline ] || { tail -n 5 "$log" >&2; fail "guest $name: no /$regex/ within ${timeout}s"; }
    sleep 0.2
  done
}
