#!/usr/bin/env bash
# Incremental against full live checkpoints of one split-memory VM, side
# by side in one run.
#
# The memtest guest (-m MEM, hot set 10%, rewriting 2,000 pages/s) runs
# split with a quarter of its memory local and the rest on the memory
# servers of test hosts 1 and 2. After its first pass it gets a full live
# checkpoint, then after each pause in PAUSES (seconds) an incremental one
# on the previous and, right after it, a full one for comparison.
#
# Two workloads (REST): 0, the verifier sweeping all of memory all the
# time, so every page keeps moving between the hosts (the worst case: a
# page that moved is saved again on its new host); or REST > 0, the guest
# only rewriting its hot set for REST seconds after each pass, so pages
# change but hardly move (checkpoints start WARM s after the first pass,
# default 30, once the hot set is resident; a 4G guest needs longer).
#
# Reported per checkpoint: total time, QEMU's downtime, and the bytes each
# host wrote. For each increment it also gives what the guest dirtied
# since the parent, from the end of the parent's run to the end of the
# increment's: at most its rewrites (rate times time), and an estimate of
# the distinct pages among them (rewrites fall uniformly on the hot set:
# H * (1 - exp(-W / H))). Last come the ratios incremental / full of the
# bytes written, and bytes written per byte dirtied.
# usage: [WARM=S] incremental-bench.sh BUILD_DIR [MEM] [PAUSES] [REST]
#        (needs root; MEM 1G, PAUSES "0 10", REST 0)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-build}" && pwd)
MEM=${2:-1G}
pauses=${3:-"0 10"}
REST=${4:-0}
WARM=${WARM:-30} # s from the first pass to the first checkpoint with REST > 0
. "$src/tests/lib/split.sh"
. "$src/tests/lib/ckpt.sh"
use_build "$build"
chain=

RATE=2000 # pages/s the guest rewrites

split_hosts_up 2
split_servers_up 2 $MEM
chain=$SPLIT_CKPT_ROOT/chain
mkdir -p "$chain"
mapfile -t memtest < <(guest_memtest_args $MEM "hot=10 rate=$RATE rest=$REST")
local_size=$(( $(numfmt --from=iec "$MEM") / 4 ))
split_guest_start split $MEM "$local_size" "${memtest[@]}"
guest_wait split '^MEMTEST start' 60 >/dev/null
line=$(guest_wait split '^MEMTEST (pass=1 |error)' 1800)
[[ $line =~ errors=0 ]] || fail "guest: $line"
[ "$REST" -eq 0 ] || sleep $WARM
hot_pages=$(grep -a -o -E 'hot_pages=[0-9]+' "$(guest_serial split)" | head -n 1 | cut -d= -f2)

ckpt_take split "$chain/full0" --live
t0=$(date +%s.%N)
prev=full0
n=0
for pause in $pauses; do
  n=$((n + 1))
  sleep "$pause"
  ckpt_take split "$chain/inc$n" --live --parent "$chain/$prev"
  python3 -c "print(int($RATE * ($(date +%s.%N) - $t0)))" > "$TEST_TMP/inc$n.writes"
  ckpt_take split "$chain/full$n" --live
  t0=$(date +%s.%N)
  prev=full$n
  # The next increment builds on the last checkpoint: full$n.
done
kill "$(guest_pid split)"

python3 - "$TEST_TMP" "$MEM" "$REST" "$hot_pages" $pauses <<'PY'
import json, math, sys
tmp, mem, rest, hot, pauses = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]
workload = "sweep" if rest == "0" else "rest=%s" % rest
load = lambda n: json.load(open("%s/%s.json" % (tmp, n)))
written = lambda j: sum(h["bytes_written"] or 0 for h in j["hosts"])
print("%-10s %7s %9s %12s %12s %12s" % ("checkpoint", "time_s", "downtime", "main_MiB",
                                          "host1_MiB", "host2_MiB"))
for name in ["full0"] + [x for i in range(1, len(pauses) + 1) for x in ("inc%d" % i, "full%d" % i)]:
    j = load(name)
    print("%-10s %7.2f %7d ms %12.1f %12.1f %12.1f" % ((name, j["total_time_s"], j["downtime_ms"]) +
          tuple(h["bytes_written"] / 2**20 for h in j["hosts"])))
for i, pause in enumerate(pauses, 1):
    inc, full = load("inc%d" % i), load("full%d" % i)
    writes = int(open("%s/inc%d.writes" % (tmp, i)).read())
    distinct = hot * (1 - math.exp(-writes / hot)) if hot else writes
    print("%s %s, %s s after its parent: incremental / full bytes written %.3f; "
          "written / dirtied %.2f to %.2f (the guest rewrote %.1f MiB, about %.1f MiB "
          "of distinct pages)"
          % (mem, workload, pause, written(inc) / written(full),
             written(inc) / (writes * 4096) if writes else float("nan"),
             written(inc) / (distinct * 4096) if distinct else float("nan"),
             writes * 4096 / 2**20, distinct * 4096 / 2**20))
PY
