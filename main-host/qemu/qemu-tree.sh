# Shared helpers for the QEMU patch-series scripts (sourced, not run).
# The working tree is a git repository whose tag $PRISTINE_TAG is Debian's
# QEMU source exactly as `dpkg-source -x` leaves it; the dcres patches are
# commits on top of it.

PRISTINE_TAG=dcres-pristine
# Committer identity for commits the build makes itself (pristine import, git am).
export GIT_COMMITTER_NAME=${GIT_COMMITTER_NAME:-dcres build}
export GIT_COMMITTER_EMAIL=${GIT_COMMITTER_EMAIL:-dcres-build@localhost}

die() { echo "$(basename "$0"): error: $*" >&2; exit 1; }
note() { echo "$(basename "$0"): $*" >&2; }

# Prints the patch files of SERIES (one name per line, '#' comments allowed).
series_patches() {
  local series=$1
  sed -e 's/#.*//' -e 's/[[:space:]]*$//' "$series" | grep -v '^$' || true
}

# Prints a hash identifying pristine source DSC_NAME plus the series in PATCHDIR.
series_hash() {
  local dsc_name=$1 patchdir=$2
  { echo "$dsc_name"; cat "$patchdir/series"
    series_patches "$patchdir/series" | while read -r p; do cat "$patchdir/$p"; done
  } | sha256sum | cut -d' ' -f1
}
