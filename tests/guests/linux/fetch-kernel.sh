#!/usr/bin/env bash
# Provides the Linux test guest's kernel: the vmlinuz of Debian's
# linux-image-cloud-amd64 (the package is downloaded into CACHEDIR once and
# unpacked, never installed on the host).
# usage: fetch-kernel.sh CACHEDIR OUT_VMLINUZ
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: fetch-kernel.sh CACHEDIR OUT" >&2; exit 2; }
cache=$1/kernel
mkdir -p "$cache"
deb=$(ls "$cache"/linux-image-*-cloud-amd64_*.deb 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$deb" ]; then
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null \
        | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
  [ -n "$pkg" ] || { echo "fetch-kernel.sh: cannot resolve linux-image-cloud-amd64 (run apt-get update)" >&2; exit 1; }
  (cd "$cache" && apt-get download -q "$pkg" >/dev/null) \
    || { echo "fetch-kernel.sh: apt-get download $pkg failed" >&2; exit 1; }
  deb=$(ls "$cache"/linux-image-*-cloud-amd64_*.deb | sort -V | tail -n 1)
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*'
mv "$tmp"/boot/vmlinuz-* "$2"
touch "$2" # newer than this script, or the build would unpack it every time
