#!/usr/bin/env bash
# Measures the test guests under the patched QEMU (TCG): time from QEMU start
# to the verifier's first line (boot), to the end of its first fill, and the
# length of one verification pass. Serial output is polled every 50 ms.
# usage: guest-boot-time.sh BUILD_DIR [RUNS]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-build}" && pwd)
runs=${2:-3}
. "$src/tests/lib/common.sh"
. "$src/tests/lib/guest.sh"
use_build "$build"

now() { date +%s.%N; }
# Prints seconds from $1 until NAME's serial log matches REGEX.
time_to() {
  local t0=$1 name=$2 regex=$3 log
  log=$(guest_serial "$name")
  until grep -a -q -E "$regex" "$log"; do
    kill -0 "$(guest_pid "$name")" 2>/dev/null || fail "guest $name exited"
    sleep 0.05
  done
  awk -v a="$(now)" -v b="$t0" 'BEGIN { print a - b }' 
}

# measure ID LABEL QEMU_ARGS...: boots the guest RUNS times, one line each.
measure() {
  local id=$1 label=$2; shift 2
  local i g t0 boot fill p1 p3
  for ((i = 1; i <= runs; i++)); do
    g=$id$i
    t0=$(now)
    guest_start "$g" "$@"
    boot=$(time_to "$t0" "$g" '^MEMTEST start')
    fill=$(time_to "$t0" "$g" '^MEMTEST filled')
    p1=$(time_to "$t0" "$g" '^MEMTEST pass=1 ')
    p3=$(time_to "$t0" "$g" '^MEMTEST pass=3 ')
    kill "$(guest_pid "$g")"
    printf '%-28s run %d  boot %6.2f s  filled %6.2f s  pass %6.2f s\n' \
      "$label" "$i" "$boot" "$fill" "$(awk -v a="$p3" -v b="$p1" 'BEGIN { print (a - b) / 2 }')"
  done
}

echo "patched QEMU: $("$DCRES_QEMU" -version | head -n 1), accel ${DCRES_ACCEL:-tcg}, $(nproc) cores"
mapfile -t a < <(guest_memtest_args 1G "hot=10 rate=5000")
measure memtest "memtest -m 1G" "${a[@]}"
mapfile -t a < <(guest_linux_args 1G "memtest.mb=768 memtest.hot=10 memtest.rate=5000")
measure linux "linux -m 1G (768 MiB tested)" "${a[@]}"
