#!/usr/bin/env bash
# Builds a Unified Kernel Image (UAPI.5 "Unified Kernel Image") from systemd-boot-efi's stub, a
# kernel, an initrd and a command line, with objcopy the way ukify lays it out: each added PE
# section starts after the previous one's end, rounded up to the stub's SectionAlignment.
#
# build-uki.sh --out FILE --kernel BZIMAGE [--initrd FILE] [--cmdline TEXT] [--os-release FILE]
#              [--stub FILE]
set -euo pipefail

die() { echo "build-uki: $*" >&2; exit 1; }

out= kernel= initrd= cmdline= osrel= stub=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --kernel) kernel=$2; shift 2 ;;
    --initrd) initrd=$2; shift 2 ;;
    --cmdline) cmdline=$2; shift 2 ;;
    --os-release) osrel=$2; shift 2 ;;
    --stub) stub=$2; shift 2 ;;
    *) die "unknown argument $1" ;;
  esac
done
[ -n "$out" ] || die "--out is required"
[ -f "$kernel" ] || die "--kernel: no such file: $kernel"
[ -f "$stub" ] || die "no stub $stub (install systemd-boot-efi)"

work=$(mktemp -d "${TMPDIR:-/tmp}/uki.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ -z "$osrel" ]; then
  osrel=$work/os-release
  printf 'ID=activate-test\nNAME="activate test guest"\nVERSION_ID=1\n' > "$osrel"
fi
printf '%s' "$cmdline" > "$work/cmdline"

# objdump -p prints the PE optional header; -h the section table (VMA includes ImageBase).
hex() { printf '%d' "0x$1"; }
align=$(hex "$(objdump -p "$stub" | awk '$1 == "SectionAlignment" { print $2 }')")
end=0
while read -r idx _name size vma _rest; do
  case "$idx" in [0-9]*) ;; *) continue ;; esac
  e=$(( 0x$vma + 0x$size ))
  [ "$e" -le "$end" ] || end=$e
done < <(objdump -h "$stub")
[ "$align" -gt 0 ] && [ "$end" -gt 0 ] || die "cannot read the section layout of $stub"

# objdump -h prints VMAs with ImageBase included, as objcopy --change-section-vma expects them.
args=()
next=$end
add() {  # add NAME FILE
  local vma=$(( (next + align - 1) / align * align ))
  args+=(--add-section "$1=$2" --change-section-vma "$1=$(printf '0x%x' "$vma")")
  next=$(( vma + $(stat -Lc %s "$2") ))
}
add .osrel "$osrel"
add .cmdline "$work/cmdline"
add .linux "$kernel"
[ -z "$initrd" ] || add .initrd "$initrd"

objcopy "${args[@]}" "$stub" "$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"
