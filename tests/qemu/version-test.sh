#!/usr/bin/env bash
# The patched QEMU is QEMU 10.0.x and its -version names the dcres patch set.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
[ -x "${DCRES_QEMU:-}" ] || fail "patched QEMU not found (DCRES_QEMU=${DCRES_QEMU:-unset})"
out=$("$DCRES_QEMU" -version)
echo "$out"
grep -qE '^QEMU emulator version 10\.0\.[0-9]+' <<< "$out" || fail "not QEMU 10.0.x"
grep -qE '^dcres [0-9]+\.[0-9]+\.[0-9]+' <<< "$out" || fail "-version does not show the dcres patch"
echo "PASS: qemu-version"
