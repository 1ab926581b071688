#!/usr/bin/env bash
# Builds a guest initramfs (newc cpio, zstd) from Debian packages only: busybox-static with its
# applet links, kernel modules of an installed Debian kernel with their dependencies, an /init
# script and extra files. Called by the vm_harness (images.cpp), which caches the result.
#
# build-initramfs.sh --out FILE --init FILE [--kver KVER] [--module NAME]...
#                    [--file HOST GUEST]...  copy a file as it is
#                    [--elf HOST GUEST]...   copy an ELF and the shared libraries it needs (ldd)
#                    [--compress zstd|gzip|none]
set -euo pipefail

die() { echo "build-initramfs: $*" >&2; exit 1; }

out= init= kver= compress=zstd
modules=() files=() elves=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --init) init=$2; shift 2 ;;
    --kver) kver=$2; shift 2 ;;
    --module) modules+=("$2"); shift 2 ;;
    --file) files+=("$2" "$3"); shift 3 ;;
    --elf) elves+=("$2" "$3"); shift 3 ;;
    --compress) compress=$2; shift 2 ;;
    *) die "unknown argument $1" ;;
  esac
done
[ -n "$out" ] || die "--out is required"
[ -f "$init" ] || die "--init: no such file: $init"
if [ -z "$kver" ]; then
  kver=$(ls /lib/modules | sort -V | tail -n1)
fi
moddir=/lib/modules/$kver
[ -f "$moddir/modules.dep" ] || die "kernel $kver has no $moddir/modules.dep (is linux-image installed?)"
busybox=$(command -v busybox) || die "busybox not found (install busybox-static)"
# ldd fails on a static binary; the guest has no libc for a dynamic one.
! ldd "$busybox" >/dev/null 2>&1 || die "$busybox is not statically linked (install busybox-static)"

stage=$(mktemp -d "${TMPDIR:-/tmp}/initramfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT

mkdir -p "$stage"/{bin,dev,proc,sys,tmp,run,etc,root,mnt,lib/modules,usr,var/run}
ln -s bin "$stage/sbin"
ln -s ../bin "$stage/usr/bin"
ln -s ../bin "$stage/usr/sbin"
cp "$busybox" "$stage/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$stage/bin/$applet"
done
# The kernel opens /dev/console for init before any devtmpfs is mounted.
mknod -m 600 "$stage/dev/console" c 5 1
mknod -m 666 "$stage/dev/null" c 1 3

# Modules: each requested one with its dependencies, in load order. Built-in ones need nothing.
: > "$stage/etc/vm-modules"
for m in "${modules[@]}"; do
  deps=$(modprobe -S "$kver" --show-depends "$m" 2>&1) || die "module $m: $deps"
  while read -r kind path _; do
    case "$kind" in
      insmod)
        rel=${path#/lib/modules/$kver/}
        mkdir -p "$stage/lib/modules/$kver/$(dirname "$rel")"
        cp "$path" "$stage/lib/modules/$kver/$rel" ;;
      builtin) ;;
      *) die "module $m: unexpected modprobe output: $kind $path" ;;
    esac
  done <<< "$deps"
  echo "$m" >> "$stage/etc/vm-modules"
done
mkdir -p "$stage/lib/modules/$kver"
cp "$moddir"/modules.order "$moddir"/modules.builtin "$moddir"/modules.builtin.modinfo \
  "$stage/lib/modules/$kver/" 2>/dev/null || true
depmod -b "$stage" "$kver"

install -m 0755 "$init" "$stage/init"
here=$(dirname "$(readlink -f "$0")")
install -m 0644 "$here/guest-lib.sh" "$stage/etc/vm-lib.sh"

put() {  # put HOST GUEST: copies keeping the mode, creating parent directories
  [ -e "$1" ] || die "no such file: $1"
  mkdir -p "$stage/$(dirname "$2")"
  cp -L --preserve=mode "$1" "$stage/$2"
}
set -- "${files[@]}"
while [ $# -gt 0 ]; do put "$1" "$2"; shift 2; done
set -- "${elves[@]}"
while [ $# -gt 0 ]; do
  put "$1" "$2"
  # ldd prints "libx.so => /path (addr)" and "/lib64/ld-linux-x86-64.so.2 (addr)".
  for lib in $(ldd "$1" 2>/dev/null | grep -o '/[^ ]*' || true); do
    [ -e "$stage/$lib" ] || put "$lib" "$lib"
  done
  shift 2
done

case "$compress" in
  zstd) comp=(zstd -q -T0 -3) ;;
  gzip) comp=(gzip -6) ;;
  none) comp=(cat) ;;
  *) die "unknown --compress $compress" ;;
esac
tmp="$out.tmp.$$"
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
  cpio --quiet -o -H newc --owner 0:0 --reproducible | "${comp[@]}") > "$tmp"
mv -f "$tmp" "$out"
