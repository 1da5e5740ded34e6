#!/usr/bin/env bash
# Installs the Debian packages dcres needs to build and test.
# Idempotent: when every package and apt source is already present it only
# checks and returns. Apt sources follow ../shared/DESIGN.md section 7:
# deb-src (only) for trixie, to fetch QEMU 10.0's source; bookworm-backports
# for meson >= 1.5, python3-pycotap and QEMU's firmware (qemu-system-data).
set -euo pipefail

# Packages from bookworm itself.
BASE_PKGS=(
  build-essential cmake pkg-config ccache git
  libaio-dev libprotobuf-c-dev protobuf-c-compiler libqcow-dev libgomp1 libssl-dev
  libibverbs-dev libjson-c-dev
  ninja-build libglib2.0-dev libpixman-1-dev python3-venv flex bison
  libslirp-dev dpkg-dev
  seabios busybox-static cpio iproute2 iputils-ping
)
# Packages taken from bookworm-backports.
BACKPORT_PKGS=(meson python3-pycotap qemu-system-data)

TRIXIE_SRC=/etc/apt/sources.list.d/dcres-trixie-src.sources
BACKPORTS=/etc/apt/sources.list.d/dcres-bookworm-backports.sources

log() { echo "install-deps: $*" >&2; }

missing_pkgs() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' \
      || echo "$p"
  done
}

# True when meson on PATH is at least 1.5 (QEMU 10's configure needs it).
meson_new_enough() {
  local v
  v=$(meson --version 2>/dev/null) || return 1
  dpkg --compare-versions "$v" ge 1.5
}

need_base=$(missing_pkgs "${BASE_PKGS[@]}")
need_bp=$(missing_pkgs "${BACKPORT_PKGS[@]}")
if [ -z "$need_base" ] && [ -z "$need_bp" ] && meson_new_enough \
   && [ -f "$TRIXIE_SRC" ] && [ -f "$BACKPORTS" ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  log "missing packages: $need_base $need_bp; run as root (or install them) and retry"
  exit 1
fi

if [ ! -f "$TRIXIE_SRC" ]; then
  log "adding deb-src for trixie (QEMU 10.0 source only) in $TRIXIE_SRC"
  cat > "$TRIXIE_SRC" <<'SRC'
# Added by dcres scripts/install-deps.sh: source packages only, for QEMU 10.0.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
if [ ! -f "$BACKPORTS" ]; then
  log "adding bookworm-backports in $BACKPORTS"
  cat > "$BACKPORTS" <<'SRC'
# Added by dcres scripts/install-deps.sh: meson >= 1.5, python3-pycotap, qemu-system-data.
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
[ -z "$need_base" ] || apt-get install -y -q --no-install-recommends $need_base
apt-get install -y -q --no-install-recommends -t bookworm-backports "${BACKPORT_PKGS[@]}"
meson_new_enough || { log "meson >= 1.5 still missing after install"; exit 1; }
log "dependencies installed"
