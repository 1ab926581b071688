#!/usr/bin/env bash
# Builds a stock Debian system with debootstrap (minbase) from a Debian mirror: systemd as init,
# udev, Debian's kernel with its real initramfs-tools initrd, and the packages asked for. Writes
# the root file system as a tarball (docs, man pages, locales, apt lists and /boot left out) and
# the kernel and initrd beside it, from which the caller builds UKIs. Needs root (debootstrap).
#
# build-debian.sh --out PREFIX --mirror URL [--suite bookworm] [--include PKG,PKG...]
#                 [--cache-dir DIR]
# Writes PREFIX.vmlinuz, PREFIX.initrd.img, PREFIX.os-release, PREFIX.kver and, last,
# PREFIX.tar.zst (so that the tarball existing means the build is complete). --cache-dir keeps
# the downloaded .debs.
set -euo pipefail

die() { echo "build-debian: $*" >&2; exit 1; }

out= mirror= suite=bookworm include= cache=
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --mirror) mirror=$2; shift 2 ;;
    --suite) suite=$2; shift 2 ;;
    --include) include=$2; shift 2 ;;
    --cache-dir) cache=$2; shift 2 ;;
    *) die "unknown argument $1" ;;
  esac
done
[ -n "$out" ] || die "--out is required"
[ -n "$mirror" ] || die "--mirror is required"
[ "$(id -u)" = 0 ] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"

# Tests running in parallel build it once: the second waits and finds the first one's.
exec 9>"$out.lock"
flock 9
[ ! -f "$out.tar.zst" ] || exit 0

root="$out.root.$$"
# debootstrap mounts /proc and /sys (and may bind /dev) inside the tree and unmounts them when
# it ends; if any is left, removing the tree must not descend into the host's.
cleanup() {
  findmnt -rn -o TARGET | grep -F "$root/" | sort -r | xargs -r -n1 umount -l || true
  rm -rf --one-file-system "$root" "$root.bin"
  rm -f "$out.tar.zst.tmp.$$"
}
trap cleanup EXIT

args=(--variant=minbase --components=main)
[ -z "$include" ] || args+=("--include=$include")
if [ -n "$cache" ]; then
  mkdir -p "$cache"
  args+=("--cache-dir=$(realpath "$cache")")
fi
# debootstrap ends with a machine-wide `sync`; this machine's other work need not wait for it
# (the tree is read back into a tarball at once), so a no-op `sync` comes first in its PATH.
mkdir -p "$root.bin"
printf '#!/bin/sh\nexit 0\n' > "$root.bin/sync"
chmod 755 "$root.bin/sync"
echo "build-debian: debootstrap $suite from $mirror (a few minutes)" >&2
# Its progress goes to the log only: on failure the end of the log is printed.
log="$out.debootstrap.log"
rc=0
PATH="$root.bin:$PATH" debootstrap --keep-debootstrap-dir "${args[@]}" "$suite" "$root" \
  "$mirror" >"$log" 2>&1 || rc=$?
if [ "$rc" != 0 ]; then
  tail -n 30 "$log" >&2
  [ ! -f "$root/debootstrap/debootstrap.log" ] || tail -n 30 "$root/debootstrap/debootstrap.log" >&2
  die "debootstrap failed with exit code $rc (full log: $log)"
fi
rm -rf "$root/debootstrap"

kvers=()
for f in "$root"/boot/vmlinuz-*; do [ -f "$f" ] && kvers+=("${f##*/vmlinuz-}"); done
[ ${#kvers[@]} -eq 1 ] || die "expected one kernel in the tree's /boot, found ${#kvers[@]} (is linux-image-amd64 included?)"
kver=${kvers[0]}
[ -s "$root/boot/initrd.img-$kver" ] || die "no initrd for $kver: update-initramfs did not run"

# The system: hostname, the serial console, DHCP on the first Ethernet by systemd-networkd
# (part of the systemd package), an empty machine-id so that each boot makes its own.
echo debian-e2e > "$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 debian-e2e\n' > "$root/etc/hosts"
: > "$root/etc/machine-id"
mkdir -p "$root/etc/systemd/network" "$root/etc/systemd/system/multi-user.target.wants" \
  "$root/etc/systemd/system/sockets.target.wants" "$root/etc/systemd/system/network-online.target.wants"
cat > "$root/etc/systemd/network/20-wired.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
EOF
ln -sf /lib/systemd/system/systemd-networkd.service \
  "$root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
ln -sf /lib/systemd/system/systemd-networkd.socket \
  "$root/etc/systemd/system/sockets.target.wants/systemd-networkd.socket"
ln -sf /lib/systemd/system/systemd-networkd-wait-online.service \
  "$root/etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service"
# The journal stays in memory: the slots' file systems change only by what a test does.
mkdir -p "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' > "$root/etc/systemd/journald.conf.d/volatile.conf"

# Kernel and initrd go beside the tarball; the slots boot them from UKIs on the ESP.
cp "$root/boot/vmlinuz-$kver" "$out.vmlinuz.tmp.$$"
cp "$root/boot/initrd.img-$kver" "$out.initrd.img.tmp.$$"
mv -f "$out.vmlinuz.tmp.$$" "$out.vmlinuz"
mv -f "$out.initrd.img.tmp.$$" "$out.initrd.img"
cp "$root/usr/lib/os-release" "$out.os-release"
echo "$kver" > "$out.kver"

# Smaller slot images (they travel through the guest at a few MiB/s under emulation): no docs,
# man pages, locales, apt lists or package caches, no /boot, no udev hardware database (names
# for vendor ids; systemd-hwdb-update is skipped when it has no sources), and of the kernel's
# drivers, file systems and protocols only the modules a QEMU guest with virtio devices, an ext4
# root and a FAT ESP loads after the initramfs, with their dependencies. The initrd was made
# before, from the whole set, as on any Debian machine.
rm -rf "$root"/boot/* "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
  "$root"/usr/share/lintian "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
  "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/debconf/*-old "$root"/var/log/*.log \
  "$root"/usr/lib/udev/hwdb.bin "$root"/usr/lib/udev/hwdb.d
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
keep="$root.keep"
for m in virtio_pci virtio_blk virtio_net virtio_rng virtio_console ext4 crc32c_generic \
         crc32c_intel vfat nls_cp437 nls_ascii nls_utf8 efivarfs; do
  modprobe -d "$root" -S "$kver" --show-depends "$m" || die "module $m: not in $kver"
done | awk '$1 == "insmod" { print $2 }' | sort -u > "$keep"
mods="$root/lib/modules/$kver/kernel"
find "$mods/drivers" "$mods/fs" "$mods/net" "$mods/sound" -name '*.ko*' | sort |
  comm -23 - "$keep" | xargs -r rm -f
find "$mods" -type d -empty -delete
rm -f "$keep"
depmod -b "$root" "$kver"

tar --numeric-owner --xattrs -C "$root" -cf - . | zstd -q -T0 -6 -o "$out.tar.zst.tmp.$$"
mv -f "$out.tar.zst.tmp.$$" "$out.tar.zst"
echo "build-debian: $kver, $(du -sm --apparent-size "$root" | cut -f1) MiB tree, tarball $(du -m "$out.tar.zst" | cut -f1) MiB" >&2
