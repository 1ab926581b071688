#!/bin/sh
# Test fixture: builds a UKI the way ukify's objcopy recipe does, from a systemd PE stub plus
# section files, each placed at the next SectionAlignment boundary after the stub's last section.
# usage: make_uki.sh OUT STUB .name=FILE...   (sections are added in the order given)
set -eu
out=$1
stub=$2
shift 2

align=$((0x$(objdump -p "$stub" | awk '$1 == "SectionAlignment" { print $2 }')))
[ "$align" -gt 0 ] || { echo "make_uki.sh: no SectionAlignment in $stub" >&2; exit 1; }

# End (VMA + size) of the stub's last section, from `objdump -h` rows "Idx Name Size VMA ...".
next=0
for row in $(objdump -h "$stub" | awk '$1 ~ /^[0-9]+$/ { print $3 ":" $4 }'); do
    end=$((0x${row##*:} + 0x${row%%:*}))
    [ "$end" -gt "$next" ] && next=$end
done

set --  "$@"
args=""
for spec in "$@"; do
    name=${spec%%=*}
    file=${spec#*=}
    vma=$(( (next + align - 1) / align * align ))
    args="$args --add-section $name=$file --change-section-vma $name=$(printf '0x%x' "$vma")"
    size=$(stat -c %s "$file")
    next=$((vma + size))
done

# shellcheck disable=SC2086 # word splitting of $args is intended (paths are test-controlled)
objcopy $args "$stub" "$out"
