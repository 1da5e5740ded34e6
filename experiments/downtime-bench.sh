#!/usr/bin/env bash
# Downtime of a live checkpoint at three guest write rates, D-CRES on a
# split-memory VM against stock mapped-ram on the same guest unsplit, side
# by side in one run.
#
# For each rate (pages rewritten per second in the guest's hot set, 10% of
# its memory): the memtest guest (-m 1G, every page written by its first
# pass) runs split 50/50 (local-size=512M, the rest on the memory servers of
# test hosts 1 and 2) and gets a live D-CRES checkpoint (dcres-checkpoint
# --live --parallel 2); then the same guest unsplit gets a live stock
# mapped-ram checkpoint the same way. Reported per checkpoint: QEMU's
# downtime (VM stopped until the migration completed), the pause the guest
# saw (QEMU's STOP to RESUME events: includes the tool noticing completion
# and the disk snapshot) and the time until every file was durable; the
# last lines give D-CRES / stock downtime per rate.
# usage: downtime-bench.sh BUILD_DIR [RATES]   (needs root; RATES "0 2000 20000")
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-build}" && pwd)
rates=${2:-"0 2000 20000"}
. "$src/tests/lib/split.sh"
. "$src/tests/lib/ckpt.sh"
use_build "$build"
MEM=1G

# One result line of checkpoint summary $TEST_TMP/$1.json, labelled $2.
report() {
  python3 - "$TEST_TMP/$1.json" "$2" >> "$TEST_TMP/results" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print("%-26s %11d %9s %10.2f" % (sys.argv[2], j["downtime_ms"],
                                  j["paused_ms"] if j["paused_ms"] is not None else "-",
                                  j["durable_time_s"]))
PY
}

# Once guest $1 has done its first pass: a live checkpoint into
# $SPLIT_CKPT_ROOT/$2, reported as $3; then the guest is stopped.
measure() {
  guest_wait "$1" '^MEMTEST start' 60 >/dev/null
  # Its first pass wrote every page (at rate 0 it rewrites none after).
  line=$(guest_wait "$1" '^MEMTEST (pass=1 |error)' 900)
  [[ $line =~ errors=0 ]] || fail "guest $1: $line"
  ckpt_take "$1" "$SPLIT_CKPT_ROOT/$2" --live --parallel 2
  report "$2" "$3"
  kill "$(guest_pid "$1")"
  rm -rf "${SPLIT_CKPT_ROOT:?}/$2"
}

printf '%-26s %11s %9s %10s\n' checkpoint downtime_ms paused_ms durable_s > "$TEST_TMP/results"
split_hosts_up 2
split_servers_up 2 $MEM
for rate in $rates; do
  mapfile -t memtest < <(guest_memtest_args $MEM "hot=10 rate=$rate")
  split_guest_start split $MEM 512M "${memtest[@]}"
  measure split "dcres-$rate" "D-CRES live, $rate pages/s"
  GUEST_HOST=0 guest_start unsplit "${memtest[@]}"
  measure unsplit "stock-$rate" "stock live, $rate pages/s"
done

cat "$TEST_TMP/results"
python3 - "$TEST_TMP" $rates <<'PY'
import json, sys
tmp, rates = sys.argv[1], sys.argv[2:]
load = lambda n: json.load(open("%s/%s.json" % (tmp, n)))
for rate in rates:
    d, s = load("dcres-%s" % rate)["downtime_ms"], load("stock-%s" % rate)["downtime_ms"]
    print("%6s pages/s: D-CRES downtime %d ms, stock %d ms, ratio %.2f"
          % (rate, d, s, d / s if s else float("nan")))
PY
