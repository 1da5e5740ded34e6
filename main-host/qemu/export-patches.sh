#!/usr/bin/env bash
# Exports the commits on top of the pristine tag in a QEMU git tree back into
# the patch series.
#
# usage: export-patches.sh QEMU_SRC_TREE [PATCHDIR]
#
# QEMU_SRC_TREE is normally build/qemu/src (made by build-qemu.sh); PATCHDIR
# defaults to this directory. Old patches are replaced by `git format-patch`
# output and `series` is rewritten in commit order. The build's record of the
# applied series is updated so the next build does not reset the tree.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/qemu-tree.sh"

[ $# -ge 1 ] || die "usage: export-patches.sh QEMU_SRC_TREE [PATCHDIR]"
src=$(cd "$1" && pwd)
patchdir=$(cd "${2:-$here/patches}" && pwd)
git -C "$src" rev-parse -q --verify "$PRISTINE_TAG" >/dev/null \
  || die "$src has no $PRISTINE_TAG tag; it was not made by build-qemu.sh"
[ -z "$(git -C "$src" status --porcelain)" ] \
  || die "$src has uncommitted changes; commit them first"

series_patches "$patchdir/series" 2>/dev/null | while read -r p; do rm -f "$patchdir/$p"; done
git -C "$src" format-patch -q --no-signature --zero-commit -o "$patchdir" "$PRISTINE_TAG..HEAD"
{ echo "# dcres patch series against QEMU 10.0.x, applied in this order."
  echo "# Regenerate with main-host/qemu/export-patches.sh, never by hand."
  (cd "$patchdir" && ls [0-9][0-9][0-9][0-9]-*.patch 2>/dev/null || true)
} > "$patchdir/series"

builddir=$(dirname "$src")
if [ -f "$builddir/pristine.dsc" ]; then
  printf '%s\n%s\n' "$(series_hash "$(cat "$builddir/pristine.dsc")" "$patchdir")" \
    "$(git -C "$src" rev-parse HEAD)" > "$builddir/applied"
fi
note "exported $(series_patches "$patchdir/series" | wc -l) patches to $patchdir"
