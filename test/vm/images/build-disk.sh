#!/usr/bin/env bash
# Builds a raw GPT disk image: an EFI System Partition (FAT, populated with mtools) followed by
# named partitions, each empty or filled from an image. Uses sfdisk, mkfs.vfat and mtools only,
# so it needs neither root nor loop devices.
#
# build-disk.sh --out FILE [--esp-size MIB] [--esp-file HOST ESP_PATH]...
#               [--part NAME SIZE_MIB [TYPE_GUID [IMAGE]]]...
# ESP_PATH is like EFI/BOOT/BOOTX64.EFI. TYPE_GUID defaults to "Linux filesystem data".
set -euo pipefail

die() { echo "build-disk: $*" >&2; exit 1; }

# UEFI 2.10 §5.3.3 "EFI System Partition"; Discoverable Partitions Specification for Linux data.
esp_type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
linux_type=0FC63DAF-8483-4772-8E79-3D69D8477DE4

out= esp_size=64
esp_files=() parts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --esp-size) esp_size=$2; shift 2 ;;
    --esp-file) esp_files+=("$2" "$3"); shift 3 ;;
    --part)
      name=$2 size=$3 type=$linux_type image=
      shift 3
      if [ $# -gt 0 ] && [[ "$1" != --* ]]; then type=$1; shift; fi
      if [ $# -gt 0 ] && [[ "$1" != --* ]]; then image=$1; shift; fi
      parts+=("$name|$size|$type|$image") ;;
    *) die "unknown argument $1" ;;
  esac
done
[ -n "$out" ] || die "--out is required"

mib=$((1024 * 1024))
total=$((1 + esp_size + 1))  # 1 MiB for the primary GPT and alignment, 1 MiB for the backup
for p in "${parts[@]}"; do
  IFS='|' read -r _ size _ _ <<< "$p"
  total=$((total + size))
done

tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
rm -f "$tmp"
truncate -s $((total * mib)) "$tmp"

{
  echo "label: gpt"
  echo "first-lba: 2048"
  echo "start=1MiB, size=${esp_size}MiB, type=$esp_type, name=\"EFI System Partition\""
  for p in "${parts[@]}"; do
    IFS='|' read -r name size type _ <<< "$p"
    echo "size=${size}MiB, type=$type, name=\"$name\""
  done
} | sfdisk --quiet --no-reread --no-tell-kernel "$tmp" >/dev/null

# Partition starts as sfdisk placed them, in 512-byte sectors.
mapfile -t starts < <(sfdisk --json "$tmp" | python3 -c '
import json, sys
for p in json.load(sys.stdin)["partitiontable"]["partitions"]:
    print(p["start"])')

esp_sectors=${starts[0]}
# mkfs.vfat picks the FAT size from the whole file, not from the block count it is given: on a
# disk of 512 MiB or more it chooses FAT32 even for an ESP with too few clusters for it, and
# fails. So the size is chosen here from the ESP's own size (FAT16 holds up to 2 GiB).
fat=16
[ "$esp_size" -lt 512 ] || fat=32
# mkfs.vfat warns that the block count is smaller than the file: that is the point of --offset.
mkfs.vfat -F "$fat" -n ESP --offset "$esp_sectors" "$tmp" $((esp_size * 1024)) 2>&1 >/dev/null |
  { grep -v 'block count mismatch' >&2 || true; }
export MTOOLS_SKIP_CHECK=1
img="$tmp@@$((esp_sectors * 512))"
declare -A made=()
set -- "${esp_files[@]}"
while [ $# -gt 0 ]; do
  src=$1 dest=${2#/}
  shift 2
  [ -f "$src" ] || die "--esp-file: no such file: $src"
  dir=
  IFS=/ read -ra comps <<< "$(dirname "$dest")"
  for c in "${comps[@]}"; do
    [ "$c" = . ] && continue
    dir="$dir/$c"
    if [ -z "${made[$dir]:-}" ]; then
      mmd -i "$img" "::$dir"
      made[$dir]=1
    fi
  done
  mcopy -i "$img" "$src" "::/$dest"
done

i=1
for p in "${parts[@]}"; do
  IFS='|' read -r name size _ image <<< "$p"
  if [ -n "$image" ]; then
    [ "$(stat -Lc %s "$image")" -le $((size * mib)) ] || die "partition $name: $image is larger than ${size} MiB"
    dd if="$image" of="$tmp" bs=1M seek=$((starts[i] * 512)) oflag=seek_bytes conv=notrunc,sparse status=none
  fi
  i=$((i + 1))
done

mv -f "$tmp" "$out"
trap - EXIT
