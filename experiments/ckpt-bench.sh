#!/usr/bin/env bash
# Checkpoint time of a split-memory VM, D-CRES against the conventional
# way, side by side in one run, with stock mapped-ram on an unsplit VM of
# the same size and a plain write of the same bytes as references.
#
# The memtest guest (-m 1G, every page written in its first pass) runs
# split 50/50: local-size=512M, the rest on memory servers in test hosts 1
# and 2, QEMU in test host 0. After its first pass it is checkpointed
# stopped ROUNDS times alternately with dcres-checkpoint (D-CRES: every host
# saves its own pages) and dcres-checkpoint --conventional (every page
# through the main host, the remote ones paged in); then live with D-CRES
# while it rewrites its hot set (10% at 2000 pages/s), for the downtime.
# An unsplit 1G memtest VM is checkpointed stopped the same way (stock
# mapped-ram), and 1 GiB is written with fsync next to the checkpoints.
# Each checkpoint reports its time (until every file is fsynced; the
# manifest's checksums come after), downtime, the bytes each host wrote and
# the bytes moved between hosts (page-ins + page-outs during it, 4 KiB
# each); the last lines are ratios against D-CRES.
# usage: ckpt-bench.sh BUILD_DIR [ROUNDS]   (needs root; ROUNDS 2)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-build}" && pwd)
rounds=${2:-2}
. "$src/tests/lib/split.sh"
. "$src/tests/lib/ckpt.sh"
use_build "$build"
MEM=1G
PARALLEL=2

# One line of results of checkpoint summary $TEST_TMP/$1.json, labelled $2.
report() {
  python3 - "$TEST_TMP/$1.json" "$2" >> "$TEST_TMP/results" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
hosts = " ".join("%s=%.0fMiB" % ("main" if h["id"] == 0 else "h%d" % h["id"],
                                  (h["bytes_written"] or 0) / 2**20) for h in j["hosts"])
moved = ((j["page_ins"] or 0) + (j["page_outs"] or 0)) * 4096 / 2**20
print("%-22s %8.2f %9d %10.0f   %s" % (sys.argv[2], j["durable_time_s"], j["downtime_ms"],
                                    moved, hosts))
PY
}

# Seconds to write 1 GiB (incompressible) to a file in DIR and fsync it.
plain_write() {
  python3 - "$1/plain" <<'PY'
import os, sys, time
buf = os.urandom(1 << 20)
t = time.monotonic()
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
for _ in range(1024):
    os.write(fd, buf)
os.fsync(fd)
os.close(fd)
print("%.2f" % (time.monotonic() - t))
os.unlink(sys.argv[1])
PY
}

printf '%-22s %8s %9s %10s   %s\n' checkpoint time_s downtime_ms moved_MiB \
  "bytes written per host" > "$TEST_TMP/results"

split_hosts_up 2
split_servers_up 2 $MEM
mapfile -t memtest < <(guest_memtest_args $MEM "hot=10 rate=2000")
split_guest_start split $MEM 512M "${memtest[@]}"
guest_wait split '^MEMTEST start' 60 >/dev/null
split_guest_passes split 1 900
for ((r = 1; r <= rounds; r++)); do
  ckpt_take split "$SPLIT_CKPT_ROOT/dcres$r" --parallel $PARALLEL
  report "dcres$r" "D-CRES stopped #$r"
  ckpt_take split "$SPLIT_CKPT_ROOT/conv$r" --parallel $PARALLEL --conventional
  report "conv$r" "conventional stopped #$r"
  rm -rf "$SPLIT_CKPT_ROOT/dcres$r" "$SPLIT_CKPT_ROOT/conv$r"
done
ckpt_take split "$SPLIT_CKPT_ROOT/live" --live --parallel $PARALLEL
report live "D-CRES live"
kill "$(guest_pid split)"

GUEST_HOST=0 guest_start unsplit "${memtest[@]}"
guest_wait unsplit '^MEMTEST start' 60 >/dev/null
split_guest_passes unsplit 1 300
ckpt_take unsplit "$SPLIT_CKPT_ROOT/stock" --parallel $PARALLEL
report stock "stock, unsplit VM"
plain=$(plain_write "$SPLIT_CKPT_ROOT")
printf '%-22s %8s\n' "plain write of 1 GiB" "$plain" >> "$TEST_TMP/results"

cat "$TEST_TMP/results"
python3 - "$TEST_TMP" "$rounds" "$plain" <<'PY'
import json, sys
tmp, rounds, plain = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
load = lambda n: json.load(open("%s/%s.json" % (tmp, n)))
mean = lambda xs: sum(xs) / len(xs)
moved = lambda j: ((j["page_ins"] or 0) + (j["page_outs"] or 0)) * 4096 / 2**20
d = [load("dcres%d" % r) for r in range(1, rounds + 1)]
c = [load("conv%d" % r) for r in range(1, rounds + 1)]
dt, ct = mean([j["durable_time_s"] for j in d]), mean([j["durable_time_s"] for j in c])
st = load("stock")["durable_time_s"]
print("mean stopped checkpoint: D-CRES %.2f s, conventional %.2f s, stock unsplit %.2f s, "
      "plain write %.2f s" % (dt, ct, st, plain))
print("moved between hosts: D-CRES %.0f MiB, conventional %.0f MiB"
      % (mean([moved(j) for j in d]), mean([moved(j) for j in c])))
print("ratios: conventional/D-CRES %.2f, stock unsplit/D-CRES %.2f, plain write/D-CRES %.2f"
      % (ct / dt, st / dt, plain / dt))
print("live D-CRES downtime: %d ms" % load("live")["downtime_ms"])
PY
