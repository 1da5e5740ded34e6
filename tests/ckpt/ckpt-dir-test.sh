#!/usr/bin/env bash
# dcres-checkpoint takes its directory before it contacts QEMU: a file an
# earlier, unfinished checkpoint left there (main.loc, main.present, a
# server's part, a partial file) is refused by name and left intact; a
# directory another dcres-checkpoint holds (its lock, here taken with
# flock) is refused; an empty one gets as far as QEMU's socket. No QEMU is
# needed.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
[ -x "${DCRES_CHECKPOINT:-}" ] || fail "dcres-checkpoint not found (DCRES_CHECKPOINT=${DCRES_CHECKPOINT:-unset})"

# Runs dcres-checkpoint into $1 (no QEMU behind the socket); its status is
# returned, its messages kept in $TEST_TMP/out.
try() {
  local status=0
  "$DCRES_CHECKPOINT" --qmp "$TEST_TMP/none.qmp" --dir "$1" > "$TEST_TMP/out" 2>&1 || status=$?
  return $status
}

for f in main.loc main.present host-2.mem host-1.present host-1.mem.partial.abc12345; do
  dir=$TEST_TMP/stale-$f
  mkdir -p "$dir" && echo old > "$dir/$f"
  if try "$dir"; then fail "a directory holding $f was accepted"; fi
  grep -q "holds $f, a file of an earlier checkpoint" "$TEST_TMP/out" \
    || fail "the refusal does not name $f: $(cat "$TEST_TMP/out")"
  [ "$(cat "$dir/$f")" = old ] || fail "$f was touched"
done

dir=$TEST_TMP/busy
mkdir -p "$dir"
flock -x "$dir" sleep 5 &
sleep 0.5
if try "$dir"; then fail "a directory in use was accepted"; fi
grep -q "in use by another dcres-checkpoint" "$TEST_TMP/out" \
  || fail "the refusal does not say the directory is in use: $(cat "$TEST_TMP/out")"
wait

# Free and empty: the tool goes on to QEMU's socket (and fails there).
if try "$dir"; then fail "a checkpoint without QEMU succeeded"; fi
grep -q "none.qmp" "$TEST_TMP/out" || fail "the empty directory was refused: $(cat "$TEST_TMP/out")"
grep -q "earlier checkpoint\|in use" "$TEST_TMP/out" && fail "the empty directory was refused"
echo "PASS: dcres-checkpoint takes its directory"
