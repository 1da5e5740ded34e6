#!/usr/bin/env bash
# Builds the Linux test guest's initramfs: busybox (Debian's busybox-static),
# /init and the static verifier.
# usage: build-initramfs.sh INIT_SCRIPT VERIFIER OUT.cpio.gz
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: build-initramfs.sh INIT VERIFIER OUT" >&2; exit 2; }
busybox=/bin/busybox  # static: Debian's busybox-static, from scripts/install-deps.sh
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,proc,sys,dev}
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
install -m 0755 "$1" "$root/init"
install -m 0755 "$2" "$root/sbin/memtest"
(cd "$root" && find . -print0 | sort -z | cpio --null -o -H newc --quiet --reproducible) \
  | gzip -n -9 > "$3.tmp"
mv "$3.tmp" "$3"
