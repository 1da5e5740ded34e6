#!/usr/bin/env bash
# Builds dcres's patched QEMU.
#
# usage: build-qemu.sh PATCHDIR BUILDDIR CACHEDIR DCRES_VERSION [PKGCONFIG_DIR]
#
# PKGCONFIG_DIR holds dcres.pc, through which QEMU's meson finds the dcres
# libraries it links (libdcres-pager and its needs); QEMU relinks when that
# library is newer than the binary.
#
# PATCHDIR holds `series` and the numbered patches; BUILDDIR receives the git
# tree (src/) and the meson build (build/); CACHEDIR keeps Debian's pristine
# source package across clean builds. Pristine source comes from
# `apt-get source qemu/trixie` and must be QEMU 10.0.x. Re-running with an
# unchanged series does nothing but a no-op ninja; a changed series resets the
# tree to the pristine tag and re-applies it, so only files the patches touch
# are recompiled (and ccache, when installed, softens that).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/qemu-tree.sh"

[ $# -eq 4 ] || [ $# -eq 5 ] || die "usage: build-qemu.sh PATCHDIR BUILDDIR CACHEDIR DCRES_VERSION [PKGCONFIG_DIR]"
if [ $# -eq 5 ]; then
  export PKG_CONFIG_PATH=$5${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
fi
patchdir=$(cd "$1" && pwd)
builddir=$2
cachedir=$3/qemu
dcres_version=$4
mkdir -p "$builddir" "$cachedir"
builddir=$(cd "$builddir" && pwd)
src=$builddir/src
bld=$builddir/build

CONFIGURE_FLAGS=(
  --target-list=x86_64-softmmu --disable-docs --disable-werror
  --without-default-features --enable-tcg --enable-kvm --enable-slirp
  --disable-download --disable-rust --disable-install-blobs
  --python=/usr/bin/python3
  "--extra-cflags=-DDCRES_VERSION=\"$dcres_version\""
)
# QEMU's configure names the compiler for meson, so meson does not add ccache
# by itself: put it in front when it is there.
# Paths under BUILDDIR are hashed relative to it, so checkouts in different
# directories (a fresh CI clone) share cache hits.
if command -v ccache >/dev/null; then
  CONFIGURE_FLAGS+=("--cc=ccache ${CC:-cc}")
  export CCACHE_BASEDIR=$builddir CCACHE_NOHASHDIR=1
fi

# 1. Pristine source package, cached.
dsc=$(ls "$cachedir"/qemu_*.dsc 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$dsc" ]; then
  note "fetching QEMU source with apt-get source qemu/trixie into $cachedir"
  (cd "$cachedir" && apt-get source --download-only qemu/trixie) \
    || die "apt-get source qemu/trixie failed (is the trixie deb-src entry present? run scripts/install-deps.sh)"
  dsc=$(ls "$cachedir"/qemu_*.dsc | sort -V | tail -n 1)
fi
debver=$(sed -n 's/^Version: //p' "$dsc")
upver=${debver#*:}; upver=${upver%%+*}; upver=${upver%%-*}
case $upver in
  10.0.*) ;;
  *) die "$dsc is QEMU $upver; dcres's patch series targets QEMU 10.0.x" ;;
esac

# 2. Git tree at the pristine tag.
if [ ! -d "$src/.git" ] || [ "$(cat "$builddir/pristine.dsc" 2>/dev/null)" != "$(basename "$dsc")" ]; then
  note "extracting $(basename "$dsc") into $src"
  rm -rf "$src" "$bld" "$builddir/applied"
  dpkg-source --no-check -x "$dsc" "$src" >/dev/null
  rm -rf "$src/.pc"
  git -C "$src" init -q
  printf '/debian/\n' > "$src/.git/info/exclude"
  git -C "$src" add -A
  git -C "$src" -c user.name="$GIT_COMMITTER_NAME" -c user.email="$GIT_COMMITTER_EMAIL" \
    commit -q -m "QEMU $debver as extracted by dpkg-source (pristine)"
  git -C "$src" tag "$PRISTINE_TAG"
  basename "$dsc" > "$builddir/pristine.dsc"
fi

# 3. The patch series.
want=$(series_hash "$(basename "$dsc")" "$patchdir")
if [ "$(sed -n 1p "$builddir/applied" 2>/dev/null)" != "$want" ]; then
  applied_head=$(sed -n 2p "$builddir/applied" 2>/dev/null || true)
  head=$(git -C "$src" rev-parse HEAD)
  if [ -n "$(git -C "$src" status --porcelain)" ] ||
     { [ -n "$applied_head" ] && [ "$head" != "$applied_head" ]; } ||
     { [ -z "$applied_head" ] && [ "$head" != "$(git -C "$src" rev-parse "$PRISTINE_TAG")" ]; }; then
    die "$src has commits or changes that are not in $patchdir; run main-host/qemu/export-patches.sh $src $patchdir first (or delete $src)"
  fi
  note "applying $(series_patches "$patchdir/series" | wc -l) patches from $patchdir/series"
  git -C "$src" reset -q --hard "$PRISTINE_TAG"
  while read -r p; do
    [ -f "$patchdir/$p" ] || die "series names $p, which is not in $patchdir"
    git -C "$src" am -q --keep-cr "$patchdir/$p" >/dev/null 2>&1 || {
      git -C "$src" am --abort >/dev/null 2>&1 || true
      die "patch $p does not apply to QEMU $debver"
    }
  done < <(series_patches "$patchdir/series")
  printf '%s\n%s\n' "$want" "$(git -C "$src" rev-parse HEAD)" > "$builddir/applied"
fi

# 4. Configure (again only when the flags change) and build.
# Meson keeps PKG_CONFIG_PATH and what pkg-config said (dcres.pc's include
# directories) from the first configure: a change reconfigures.
flags_sum=$(printf '%s\n' "${CONFIGURE_FLAGS[@]}" "${PKG_CONFIG_PATH:-}" \
              "$(pkg-config --cflags dcres 2>/dev/null || true)" | sha256sum | cut -d' ' -f1)
if [ ! -f "$bld/build.ninja" ] || [ "$(cat "$builddir/configured" 2>/dev/null)" != "$flags_sum" ]; then
  note "configuring QEMU in $bld"
  rm -rf "$bld"; mkdir -p "$bld"
  (cd "$bld" && "$src/configure" "${CONFIGURE_FLAGS[@]}" >configure.log 2>&1) \
    || { tail -n 30 "$bld/configure.log" >&2; die "QEMU configure failed (log: $bld/configure.log)"; }
  echo "$flags_sum" > "$builddir/configured"
fi
# Meson does not track a library named only in dcres.pc's Libs: relink by hand.
dcres_lib=$(pkg-config --variable=libfile dcres 2>/dev/null || true)
if [ -n "$dcres_lib" ] && [ "$dcres_lib" -nt "$bld/qemu-system-x86_64" ]; then
  rm -f "$bld/qemu-system-x86_64"
fi
ninja -C "$bld" qemu-system-x86_64 || die "QEMU build failed"
