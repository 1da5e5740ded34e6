#!/usr/bin/env bash
# Restore time of a split-memory VM, side by side in one run: D-CRES
# (dcres-restore: the memory servers load their own pages in parallel, the
# main host its share) against the conventional way (the conventional
# checkpoint, every page in main.mem, restored by stock QEMU into one host
# big enough); onto the same host set against a remapped one; and the time
# until the guest runs again with --lazy against loading everything first,
# for a 1 GiB and a 4 GiB guest.
#
# The memtest guest runs split 50/50 (1 GiB: local-size=512M; 4 GiB:
# local-size=2G), the rest on memory servers in test hosts 1 and 2, QEMU
# in test host 0; after its first pass (every page written) it is
# checkpointed stopped with dcres-checkpoint, and (1 GiB only) with
# --conventional. Then, ROUNDS times each: D-CRES onto the same hosts;
# D-CRES remapped onto the main host and the server in test host 3, which
# held nothing; D-CRES lazy onto the same hosts (--wait-loaded: also when
# every page is in); the conventional file into a QEMU without dcres. Time
# to run = from starting the tool (or QEMU) until `cont` returned; for
# D-CRES it includes verifying every checksum (shown apart). Every
# restored 1 GiB guest must report a verification pass before it is
# stopped; a 4 GiB one (a pass takes minutes under TCG) must be running.
# usage: restore-bench.sh BUILD_DIR [ROUNDS] [BIG]  (needs root; ROUNDS 2,
# BIG 4G; BIG=0 skips the big guest)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-build}" && pwd)
rounds=${2:-2}
big=${3:-4G}
. "$src/tests/lib/split.sh"
. "$src/tests/lib/ckpt.sh"
. "$src/tests/lib/restore.sh"
use_build "$build"
s() { echo "$(host_addr "$1"):7700"; }
now_ms() { date +%s%3N; }

# Appends one result line: label, then the restore summary $TEST_TMP/$2.json.
report() {
  python3 - "$TEST_TMP/$2.json" "$1" >> "$TEST_TMP/results" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
ms = lambda k: "%8.2f" % (j[k] / 1000) if j.get(k) is not None else "%8s" % "-"
print("%-30s %s %s %s %s %8d" % (sys.argv[2], ms("time_to_run_ms"), ms("verify_ms"),
      ms("servers_load_ms"), ms("loaded_ms"), j.get("pages_moved") or 0))
PY
}

# Kills restored guest $1 once its verifier reports a pass, or with $2
# "running" once QEMU says it runs.
settle() {
  if [ "${2:-}" = running ]; then
    "$QMP" "$TEST_TMP/$1.qmp" query-status | grep -q '"status": "running"' \
      || fail "restored guest $1 does not run: $("$QMP" "$TEST_TMP/$1.qmp" query-status)"
  else
    guest_wait "$1" '^MEMTEST pass=' 900 >/dev/null
  fi
  kill "$(guest_pid "$1")"
  sleep 1
}

# Checkpoints a split memtest guest of $1 RAM ($2 local) into $3 (and,
# with $4 set, conventionally into $4), then stops it.
prepare() {
  local -a mt
  mapfile -t mt < <(guest_memtest_args "$1" "hot=10 rate=2000")
  SPLIT_SERVERS="$(s 1);$(s 2)" SPLIT_NSERVERS=2 split_guest_start "prep$1" "$1" "$2" "${mt[@]}"
  guest_wait "prep$1" '^MEMTEST start' 120 >/dev/null
  split_guest_passes "prep$1" 1 3600
  ckpt_take "prep$1" "$3" --parallel 2
  [ -z "${4:-}" ] || ckpt_take "prep$1" "$4" --parallel 2 --conventional
  kill "$(guest_pid "prep$1")"
  sleep 1
}

printf '%-30s %8s %8s %8s %8s %8s\n' restore run_s verify_s servers_s loaded_s moved \
  > "$TEST_TMP/results"
split_hosts_up 3
if [ "$big" = 0 ]; then split_servers_up 3 2G; else split_servers_up 3 "$big"; fi
mapfile -t small < <(guest_memtest_args 1G "hot=10 rate=2000")
prepare 1G 512M "$SPLIT_CKPT_ROOT/d1" "$SPLIT_CKPT_ROOT/c1"
stock=(-object memory-backend-ram,id=ram0,size=1G -machine memory-backend=ram0)
for ((r = 1; r <= rounds; r++)); do
  restore_guest "same$r" "$SPLIT_CKPT_ROOT/d1" "main,$(s 1),$(s 2)" -- "${small[@]}"
  report "1G D-CRES same hosts #$r" "same$r"; settle "same$r"
  restore_guest "remap$r" "$SPLIT_CKPT_ROOT/d1" "main,$(s 3)" --capacity main=512M \
    -- "${small[@]}"
  report "1G D-CRES remapped #$r" "remap$r"; settle "remap$r"
  restore_guest "lazy$r" "$SPLIT_CKPT_ROOT/d1" "main,$(s 1),$(s 2)" --lazy --wait-loaded \
    -- "${small[@]}"
  report "1G D-CRES lazy #$r" "lazy$r"; settle "lazy$r"
  t0=$(now_ms)
  GUEST_HOST=0 ckpt_restore_stock "conv$r" "$SPLIT_CKPT_ROOT/c1/main.mem" "${small[@]}" "${stock[@]}"
  echo "{\"time_to_run_ms\": $(($(now_ms) - t0))}" > "$TEST_TMP/conv$r.json"
  report "1G conventional, one host #$r" "conv$r"; settle "conv$r"
done
rm -rf "$SPLIT_CKPT_ROOT/c1"

if [ "$big" != 0 ]; then
  mapfile -t large < <(guest_memtest_args "$big" "hot=10 rate=2000")
  prepare "$big" "$(( ${big%G} * 512 ))M" "$SPLIT_CKPT_ROOT/d4"
  for ((r = 1; r <= rounds; r++)); do
    restore_guest "bige$r" "$SPLIT_CKPT_ROOT/d4" "main,$(s 1),$(s 2)" -- "${large[@]}"
    report "$big D-CRES eager #$r" "bige$r"; settle "bige$r" running
    restore_guest "bigl$r" "$SPLIT_CKPT_ROOT/d4" "main,$(s 1),$(s 2)" --lazy --wait-loaded \
      -- "${large[@]}"
    report "$big D-CRES lazy #$r" "bigl$r"; settle "bigl$r" running
  done
fi

cat "$TEST_TMP/results"
python3 - "$TEST_TMP" "$rounds" "$big" <<'PY'
import json, sys
tmp, rounds, big = sys.argv[1], int(sys.argv[2]), sys.argv[3]
run = lambda n: json.load(open("%s/%s.json" % (tmp, n)))["time_to_run_ms"] / 1000
mean = lambda p: sum(run("%s%d" % (p, r)) for r in range(1, rounds + 1)) / rounds
same, remap, lazy, conv = mean("same"), mean("remap"), mean("lazy"), mean("conv")
print("1G mean time to run: D-CRES same hosts %.2f s, remapped %.2f s, lazy %.2f s; "
      "conventional %.2f s" % (same, remap, lazy, conv))
print("ratios: conventional/D-CRES %.2f, remapped/same hosts %.2f, eager/lazy %.2f"
      % (conv / same, remap / same, same / lazy))
if big != "0":
    e, l = mean("bige"), mean("bigl")
    print("%s mean time to run: eager %.2f s, lazy %.2f s (eager/lazy %.2f)" % (big, e, l, e / l))
PY
