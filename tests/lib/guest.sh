# Starting and watching test guests under the patched QEMU. Source after
# common.sh.
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

guest_start() {
  local name=$1; shift
  [ -x "${DCRES_QEMU:-}" ] || fail "patched QEMU not found (DCRES_QEMU=${DCRES_QEMU:-unset}); build it first"
  local -a fw
  mapfile -t fw < <(_guest_firmware_args)
  : > "$(guest_serial "$name")"
  local -a run=("$DCRES_QEMU")
  # GUEST_HOST=K runs QEMU inside test host K (tests/lib/hosts.sh).
  [ -z "${GUEST_HOST:-}" ] || run=(ip netns exec "$(_hosts_ns "$GUEST_HOST")" "$DCRES_QEMU")
  "${run[@]}" "${fw[@]}" -machine pc -accel "${DCRES_ACCEL:-tcg}" \
    -display none -monitor none -nic none -no-reboot \
    -serial "file:$(guest_serial "$name")" \
    -qmp "unix:$TEST_TMP/$name.qmp,server=on,wait=off" \
    "$@" 2> "$TEST_TMP/$name.stderr" &
  local pid=$!
  eval "_guest_pid_$name=$pid"
  at_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
}

guest_pid() { eval "echo \${_guest_pid_$1:-}"; }

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
