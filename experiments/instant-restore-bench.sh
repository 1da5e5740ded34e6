#!/usr/bin/env bash
# Instant restore, side by side in one run for each guest size: the time
# until a split VM runs again, and until every page on every host is in,
# with dcres-restore --lazy (the memory servers serve from the
# checkpoint's files at once and load in the background, as the main host
# does), with dcres-restore loading everything first (eager), and the
# conventional way (a conventional checkpoint, every page in main.mem,
# loaded by stock QEMU into one host big enough). Also the guest's
# verifier throughput while the lazy restore loads in the background, as
# a fraction of its throughput afterwards.
#
# For each SIZE the memtest guest (tick=200: it prints the pages it has
# verified every 200 ms) runs split, a quarter of its RAM on the main host
# (QEMU in test host 0) and the rest on memory servers in test hosts 1
# and 2; once it has written every page it is checkpointed stopped with
# dcres-checkpoint and with --conventional. Time to run = from starting
# the tool (or QEMU) until `cont` returned; all loaded = until no host has
# a page to load (--wait-loaded; eager: the time to run). Each restored
# guest must be running; the lazy one must report no verifier error.
# usage: instant-restore-bench.sh BUILD_DIR ["SIZES"]  (needs root;
# SIZES default "1G 4G 8G")
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-build}" && pwd)
sizes=${2:-1G 4G 8G}
. "$src/tests/lib/split.sh"
. "$src/tests/lib/ckpt.sh"
. "$src/tests/lib/restore.sh"
use_build "$build"
s() { echo "$(host_addr "$1"):7700"; }
now_ms() { date +%s%3N; }
mib() { echo $(( ${1%G} * 1024 )); }

# Fails unless restored guest $1 runs and its verifier reported no error.
check_running() {
  "$QMP" "$TEST_TMP/$1.qmp" query-status | grep -q '"status": "running"' \
    || fail "restored guest $1 does not run: $("$QMP" "$TEST_TMP/$1.qmp" query-status)"
  ! grep -a -q '^MEMTEST error' "$(guest_serial "$1")" \
    || fail "restored guest $1 found errors: $(grep -a -m 3 '^MEMTEST error' "$(guest_serial "$1")")"
}

# The verifier's pages per second between tick lines $2 and $3 (1-based)
# of guest $1's serial log, or "-" without enough ticks.
throughput() {
  python3 - "$(guest_serial "$1")" "$2" "$3" <<'PY'
import re, sys
v = [int(m.group(1)) for m in re.finditer(rb"MEMTEST tick verified=(\d+)",
                                           open(sys.argv[1], "rb").read())]
a, b = int(sys.argv[2]) - 1, int(sys.argv[3]) - 1
print("%d" % ((v[b] - v[a]) / ((b - a) * 0.2)) if 0 <= a < b < len(v) else "-")
PY
}
ticks() { grep -a -c '^MEMTEST tick' "$(guest_serial "$1")" || true; }

printf '%-6s %-12s %9s %11s %9s\n' size restore run_s all_in_s moved > "$TEST_TMP/results"
printf '%-6s %12s %12s %9s\n' size during_pps after_pps fraction > "$TEST_TMP/tput"
result() { printf '%-6s %-12s %9.3f %11.3f %9s\n' "$@" >> "$TEST_TMP/results"; }

split_hosts_up 2
biggest=0
for size in $sizes; do [ "$(mib "$size")" -gt "$biggest" ] && biggest=$(mib "$size"); done
split_servers_up 2 "$((biggest / 2))M"
for size in $sizes; do
  m=$(mib "$size")
  mapfile -t mt < <(guest_memtest_args "$size" "hot=10 rate=2000 tick=200")
  stock=(-object "memory-backend-ram,id=ram0,size=$size" -machine memory-backend=ram0)
  SPLIT_SERVERS="$(s 1);$(s 2)" SPLIT_NSERVERS=2 \
    split_guest_start "prep$size" "$size" "$((m / 4))M" "${mt[@]}"
  guest_wait "prep$size" '^MEMTEST filled' 3600 >/dev/null
  sleep 5
  d=$SPLIT_CKPT_ROOT/d$size c=$SPLIT_CKPT_ROOT/c$size
  ckpt_take "prep$size" "$d" --parallel 2
  ckpt_take "prep$size" "$c" --parallel 2 --conventional
  kill "$(guest_pid "prep$size")"; sleep 1

  restore_guest "eager$size" "$d" "main,$(s 1),$(s 2)" -- "${mt[@]}" \
    || fail "eager restore: $(cat "$TEST_TMP/eager$size.log")"
  run=$(ckpt_json "$TEST_TMP/eager$size.json" 'j["time_to_run_ms"] / 1000')
  result "$size" eager "$run" "$run" "$(ckpt_json "$TEST_TMP/eager$size.json" 'j["pages_moved"]')"
  check_running "eager$size"; kill "$(guest_pid "eager$size")"; sleep 1

  restore_guest "lazy$size" "$d" "main,$(s 1),$(s 2)" --lazy --wait-loaded -- "${mt[@]}" \
    || fail "lazy restore: $(cat "$TEST_TMP/lazy$size.log")"
  during=$(ticks "lazy$size")
  j=$TEST_TMP/lazy$size.json
  result "$size" lazy "$(ckpt_json "$j" 'j["time_to_run_ms"] / 1000')" \
    "$(ckpt_json "$j" 'j["loaded_ms"] / 1000')" "$(ckpt_json "$j" 'j["pages_moved"]')"
  note "lazy $size: pending at resume per host $(ckpt_json "$j" '[h["pending_at_resume"] for h in j["hosts"]]')"
  sleep "$(( $(ckpt_json "$j" 'j["loaded_ms"] // 1000') + 3 ))"
  after=$(ticks "lazy$size")
  tput_during=$(throughput "lazy$size" 1 "$during") tput_after=$(throughput "lazy$size" "$((during + 1))" "$after")
  python3 -c 'import sys; d, a = sys.argv[2], sys.argv[3]
print("%-6s %12s %12s %9s" % (sys.argv[1], d, a, "%.2f" % (int(d) / int(a)) if "-" not in (d, a) else "-"))' \
    "$size" "$tput_during" "$tput_after" >> "$TEST_TMP/tput"
  check_running "lazy$size"; kill "$(guest_pid "lazy$size")"; sleep 1

  t0=$(now_ms)
  GUEST_HOST=0 ckpt_restore_stock "conv$size" "$c/main.mem" "${mt[@]}" "${stock[@]}"
  t=$(( $(now_ms) - t0 ))
  result "$size" conventional "$(python3 -c "print($t / 1000)")" "$(python3 -c "print($t / 1000)")" 0
  check_running "conv$size"; kill "$(guest_pid "conv$size")"; sleep 1
  rm -rf "$d" "$c"
done

cat "$TEST_TMP/results"
echo
echo "verifier pages/s while the lazy restore loads vs after:"
cat "$TEST_TMP/tput"
python3 - "$TEST_TMP/results" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
t = {(r[0], r[1]): (float(r[2]), float(r[3])) for r in rows}
for size in dict.fromkeys(r[0] for r in rows):
    e, l, c = t[(size, "eager")], t[(size, "lazy")], t[(size, "conventional")]
    print("%s: time to run lazy %.3f s; eager/lazy %.1f, conventional/lazy %.1f; "
          "all in: lazy %.2f s, eager %.2f s, conventional %.2f s"
          % (size, l[0], e[0] / l[0], c[0] / l[0], l[1], e[1], c[1]))
PY
