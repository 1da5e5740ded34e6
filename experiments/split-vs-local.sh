#!/usr/bin/env bash
# Guest memory throughput of a split-memory VM against the same VM with all
# its RAM local, side by side in one run. The bare-metal memtest guest
# (-m 1G: it writes every page once, then verifies all of them pass after
# pass while rewriting a 10% hot set at 2000 pages/s) runs first fully local,
# then split (local-size=256M, memory servers in test hosts 1 and 2), QEMU
# in test host 0 both times. For each: the time to fill the memory, and over
# PASSES verification passes after the first, the pass time and the memory
# verified and rewritten per second; then the ratios split/local, and the
# split VM's paging over those passes (query-dcres). Serial lines are
# time-stamped as they arrive.
# usage: split-vs-local.sh BUILD_DIR [PASSES]   (needs root; PASSES 3)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-build}" && pwd)
passes=${2:-3}
. "$src/tests/lib/split.sh"
use_build "$build"

# Copies NAME's serial console to $TEST_TMP/NAME.ts until its QEMU exits,
# each line prefixed with the time it arrived (seconds since the epoch).
stamp_serial() {
  local name=$1
  tail -n +1 -F --pid "$(guest_pid "$name")" "$(guest_serial "$name")" 2>/dev/null |
    while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "${l%$'\r'}"; done \
      > "$TEST_TMP/$name.ts" &
}

# Prints "PAGE_INS PAGE_OUTS P50_US P99_US" of guest NAME's dcres-split
# object so far, or "- - - -" for a VM that is not split.
paging() {
  { "$QMP" "$TEST_TMP/$1.qmp" query-dcres | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(d["page-ins"], d["page-outs"], d["fault-latency-p50"], d["fault-latency-p99"])'
  } 2>/dev/null || echo "- - - -"
}

# measure NAME LABEL START_CMD...: runs START_CMD (which starts guest NAME),
# waits for pass PASSES+1, stops the guest and appends one line of results
# to $TEST_TMP/results.
measure() {
  local name=$1 label=$2; shift 2
  local t0=$EPOCHREALTIME last=$((passes + 1)) rss p1 pn
  "$@"
  stamp_serial "$name"
  guest_wait "$name" '^MEMTEST start' 60 >/dev/null
  split_guest_passes "$name" 1 600
  p1=$(paging "$name")
  split_guest_passes "$name" "$last" 1800
  pn=$(paging "$name")
  until grep -q "MEMTEST pass=$last " "$TEST_TMP/$name.ts"; do sleep 0.05; done
  rss=$(split_rss_mib "$(guest_pid "$name")")
  kill "$(guest_pid "$name")"
  wait "$(guest_pid "$name")" 2>/dev/null || true
  awk -v t0="$t0" -v last="$last" -v label="$label" -v rss="$rss" -v p1="$p1" -v pn="$pn" '
    / MEMTEST start / { start = $1 }
    / MEMTEST filled/ { filled = $1 }
    / MEMTEST pass=/ {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
      if (f["pass"] == 1) { t1 = $1; w1 = f["writes"] }
      if (f["pass"] == last) { tn = $1; wn = f["writes"]; pages = f["pages"] }
    }
    END {
      mb = 4096 / 1e6; n = last - 1; dt = tn - t1
      split(p1, a, " "); split(pn, b, " ")
      paging = a[1] == "-" || b[1] == "-" ? "-|-|-|-" : sprintf("%d|%d|%d|%d",
        (b[1] - a[1]) / n, (b[2] - a[2]) / n, b[3], b[4])
      printf "%s|%d|%.2f|%.1f|%.0f|%.2f|%.0f|%.1f|%.0f|%d|%s\n", label, pages,
        start - t0, filled - start, pages * mb / (filled - start), dt / n,
        pages * n * mb / dt, (wn - w1) * mb / dt, (pages * n + wn - w1) * mb / dt, rss, paging
    }' "$TEST_TMP/$name.ts" >> "$TEST_TMP/results"
}

echo "patched QEMU: $("$DCRES_QEMU" -version | head -n 1), accel ${DCRES_ACCEL:-tcg}, $(nproc) cores"
echo "memtest guest -m 1G, hot=10 rate=2000; $passes verification passes after the first, per configuration"
split_hosts_up 2
mapfile -t args < <(guest_memtest_args 1G "hot=10 rate=2000")
note "local: all 1 GiB in QEMU (test host 0)"
local_start() {
  GUEST_HOST=0 guest_start local "$@" -object memory-backend-ram,id=ram0,size=1G \
    -machine memory-backend=ram0
}
measure local "local" local_start "${args[@]}"
split_servers_up 2 1G
note "split: local-size=256M, memory servers $SPLIT_SERVERS"
measure split "split 256M local" split_guest_start split 1G 256M "${args[@]}"
servers=
for k in 1 2; do servers+=" $(split_rss_mib "$(split_server_pid $k)")"; done

echo
awk -F'|' -v servers="$servers" '
  BEGIN {
    printf "%-16s %7s %6s %6s %9s %7s %11s %10s %10s %9s\n", "configuration", "pages",
      "boot s", "fill s", "fill MB/s", "pass s", "verify MB/s", "rewr MB/s", "total MB/s", "QEMU MiB"
  }
  {
    printf "%-16s %7d %6.2f %6.1f %9d %7.2f %11d %10.1f %10d %9d\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
    pass[NR] = $6; fill[NR] = $5; total[NR] = $9
    if ($11 != "-")
      paging = paging sprintf("%s: per pass %d page-ins, %d page-outs; page-in latency p50 %d us, p99 %d us\n",
                              $1, $11, $12, $13, $14)
  }
  END {
    printf "%s", paging
    printf "memory servers resident after the split run (MiB):%s\n", servers
    printf "ratio split/local: pass time %.1fx, throughput (verified + rewritten) %.4f, fill rate %.3f\n",
      pass[2] / pass[1], total[2] / total[1], fill[2] / fill[1]
  }' "$TEST_TMP/results"
