#!/usr/bin/env bash
# Builds an ext4 image of a root file system tarball plus extra files and symlinks, with
# `mkfs.ext4 -d` (no mount, no loop device). Owners and modes come from the tarball, so it runs
# as root; added files keep their host mode and belong to root. The image is as small as its
# contents allow plus --free-mib, because it travels through the guest as a slot image. Debian
# packages (--deb) are installed into the tree with `dpkg --root` before the files are added.
#
# build-ext4.sh --out FILE --tarball TAR.zst [--label LABEL] [--free-mib N] [--deb FILE]...
#               [--file HOST GUEST]... [--link TARGET GUEST]...
set -euo pipefail

die() { echo "build-ext4: $*" >&2; exit 1; }

out= tarball= label= free_mib=64
files=() links=() debs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --tarball) tarball=$2; shift 2 ;;
    --label) label=$2; shift 2 ;;
    --free-mib) free_mib=$2; shift 2 ;;
    --deb) debs+=("$2"); shift 2 ;;
    --file) files+=("$2" "$3"); shift 3 ;;
    --link) links+=("$2" "$3"); shift 3 ;;
    *) die "unknown argument $1" ;;
  esac
done
[ -n "$out" ] || die "--out is required"
[ -f "$tarball" ] || die "--tarball: no such file: $tarball"
[ "$(id -u)" = 0 ] || die "must run as root to keep the tree's owners"

# Tests running in parallel build it once: the second waits and finds the first one's.
exec 9>"$out.lock"
flock 9
[ ! -f "$out" ] || exit 0

stage="$out.tree.$$"
trap 'rm -rf --one-file-system "$stage" "$out.tmp.$$"' EXIT
mkdir -p "$stage"
tar --zstd --numeric-owner --xattrs -xpf "$tarball" -C "$stage"

# As `dpkg -i` on the machine would: the tree's own database checks the dependencies, and dpkg
# runs the maintainer scripts chrooted into the tree (they see no running systemd there, so
# deb-systemd-helper enables units by their links alone), then the triggers (ldconfig).
if [ ${#debs[@]} -gt 0 ]; then
  for deb in "${debs[@]}"; do [ -f "$deb" ] || die "--deb: no such file: $deb"; done
  dpkg --root="$stage" --log=/dev/null -i "${debs[@]}" >&2 || die "dpkg -i failed in the tree"
fi

set -- "${files[@]}"
while [ $# -gt 0 ]; do
  src=$1 dest=$2
  shift 2
  [ -f "$src" ] || die "--file: no such file: $src"
  case "$dest" in /*) ;; *) die "--file: guest path must be absolute: $dest" ;; esac
  mkdir -p "$stage$(dirname "$dest")"
  rm -f "$stage$dest"
  cp --preserve=mode "$src" "$stage$dest"
  chown 0:0 "$stage$dest"
done
set -- "${links[@]}"
while [ $# -gt 0 ]; do
  target=$1 dest=$2
  shift 2
  case "$dest" in /*) ;; *) die "--link: guest path must be absolute: $dest" ;; esac
  mkdir -p "$stage$(dirname "$dest")"
  ln -sfn "$target" "$stage$dest"
done

# Size: the blocks the tree needs, plus a tenth for ext4's metadata, plus the free space asked
# for. One inode per 4 KiB block would waste space; the tree's count plus a margin is enough.
used_mib=$(du -s --block-size=1M "$stage" | cut -f1)
size_mib=$((used_mib + used_mib / 10 + free_mib))
inodes=$(( $(find "$stage" | wc -l) + 4096 ))
args=(-q -F -t ext4 -b 4096 -N "$inodes" -d "$stage")
[ -z "$label" ] || args+=(-L "$label")
truncate -s "${size_mib}M" "$out.tmp.$$"
mkfs.ext4 "${args[@]}" "$out.tmp.$$" || die "mkfs.ext4 failed"
mv -f "$out.tmp.$$" "$out"
