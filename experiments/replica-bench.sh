#!/usr/bin/env bash
# What surviving a host costs, side by side in one run: the memtest guest
# (-m 1G, every page written in its first pass) split 50/50 (local-size
# 512M, QEMU in test host 0, the rest on memory servers in test hosts 1
# and 2), every host with a private disk. It is checkpointed stopped ROUNDS
# times alternately without and with --replicas 1: time until durable,
# time until replicated, bytes each host wrote and sent/received for the
# copies. Then restored eagerly onto the same hosts, and, after host 2 is
# destroyed (server killed, disk wiped), onto hosts 1 and a spare 3 (host
# 2's part coming from host 1's copy). The last lines are ratios.
# usage: replica-bench.sh BUILD_DIR [ROUNDS]   (needs root; ROUNDS 2)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-build}" && pwd)
rounds=${2:-2}
. "$src/tests/lib/split.sh"
. "$src/tests/lib/ckpt.sh"
. "$src/tests/lib/restore.sh"
use_build "$build"
MEM=1G
s() { echo "$(host_addr "$1"):7700"; }

# One line of results of checkpoint summary $TEST_TMP/$1.json, labelled $2.
report_ckpt() {
  python3 - "$TEST_TMP/$1.json" "$2" >> "$TEST_TMP/results" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
rep = j.get("replication")
mib = lambda b: (b or 0) / 2**20
hosts = " ".join("%s=%.0f/%.0f/%.0f" % ("main" if h["id"] == 0 else "h%d" % h["id"],
                                       mib(h["bytes_written"]), mib(h.get("replica_bytes_sent")),
                                       mib(h.get("replica_bytes_received")))
                 for h in j["hosts"])
print("%-26s %8.2f %12s %9d   %s" % (sys.argv[2], j["durable_time_s"],
      "%.2f" % rep["replicated_time_s"] if rep else "-", j["downtime_ms"], hosts))
PY
}

# One line of results of restore summary $TEST_TMP/$1.json, labelled $2.
report_restore() {
  python3 - "$TEST_TMP/$1.json" "$2" >> "$TEST_TMP/results" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print("%-26s %8.2f %12s %9s   moved %d pages, servers loaded in %d ms" % (sys.argv[2],
      j["time_to_run_ms"] / 1000, "-", "-", j["pages_moved"], j["servers_load_ms"]))
PY
}

printf '%-26s %8s %12s %9s   %s\n' run durable_s replicated_s downtime \
  "per host: MiB written/sent/received" > "$TEST_TMP/results"

split_hosts_up 4
export SPLIT_STORAGE=local
split_servers_up 3 $MEM
mapfile -t memtest < <(guest_memtest_args $MEM "hot=10 rate=2000")
SPLIT_SERVERS="$(s 1);$(s 2)" SPLIT_NSERVERS=2 \
  split_guest_start split $MEM 512M "${memtest[@]}"
guest_wait split '^MEMTEST start' 60 >/dev/null
split_guest_passes split 1 900
export CKPT_HOST=0
for ((r = 1; r <= rounds; r++)); do
  ckpt_take split "$SPLIT_CKPT_ROOT/plain$r" --parallel 2
  report_ckpt "plain$r" "no replica #$r"
  ckpt_take split "$SPLIT_CKPT_ROOT/rep$r" --parallel 2 --replicas 1 --psk "$SPLIT_KEY"
  report_ckpt "rep$r" "--replicas 1 #$r"
done
kill "$(guest_pid split)"; sleep 1

ckpt=$SPLIT_CKPT_ROOT/rep$rounds
restore_guest same "$ckpt" "main,$(s 1),$(s 2)" -- "${memtest[@]}" \
  || fail "restore onto the same hosts failed: $(cat "$TEST_TMP/same.log")"
report_restore same "restore, same hosts"
guest_wait same '^MEMTEST pass=' 300 >/dev/null
kill "$(guest_pid same)"; sleep 1
kill -9 "$(split_server_pid 2)"
rm -rf "$(host_disk 2)"/*
restore_guest lost "$ckpt" "main,$(s 1),$(s 3)" -- "${memtest[@]}" \
  || fail "restore after losing host 2 failed: $(cat "$TEST_TMP/lost.log")"
report_restore lost "restore, host 2 lost"
guest_wait lost '^MEMTEST pass=' 300 >/dev/null
kill "$(guest_pid lost)"

cat "$TEST_TMP/results"
python3 - "$TEST_TMP" "$rounds" <<'PY'
import json, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
load = lambda n: json.load(open("%s/%s.json" % (tmp, n)))
mean = lambda xs: sum(xs) / len(xs)
p = [load("plain%d" % r) for r in range(1, rounds + 1)]
q = [load("rep%d" % r) for r in range(1, rounds + 1)]
pd, qd = mean([j["durable_time_s"] for j in p]), mean([j["durable_time_s"] for j in q])
qr = mean([j["replication"]["replicated_time_s"] for j in q])
same, lost = load("same")["time_to_run_ms"], load("lost")["time_to_run_ms"]
print("mean stopped checkpoint: durable %.2f s without replicas, %.2f s with; replicated "
      "after %.2f s" % (pd, qd, qr))
print("ratios: durable with/without replicas %.2f, replicated/durable-without %.2f, "
      "restore after a host loss / same-set restore %.2f" % (qd / pd, qr / pd, lost / same))
PY
