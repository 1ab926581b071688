#!/bin/sh
# Issue 3: the size of the self-contained takeover binary without its payload. Strips a copy,
# subtracts the embedded blobs (their bounds are the payload_embedded_builtin_blobs_* symbols of
# the unstripped binary) and keeps the rest under a budget, so a new dependency shows up here.
# Usage: takeover_size.sh TAKEOVER [BUDGET_BYTES]
set -eu
bin=$1
budget=${2:-8388608}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
strip -o "$tmp" "$bin"
stripped=$(stat -c %s "$tmp")
blob() {  # blob NAME: its size in bytes
    start=$(nm "$bin" | awk -v s="payload_embedded_builtin_blobs_$1_start" '$3 == s { print $1 }')
    end=$(nm "$bin" | awk -v s="payload_embedded_builtin_blobs_$1_end" '$3 == s { print $1 }')
    [ -n "$start" ] && [ -n "$end" ] || { echo "no $1 blob symbols in $bin" >&2; exit 1; }
    echo $((0x$end - 0x$start))
}
kernel=$(blob kernel)
microcode=$(blob microcode)
initramfs=$(blob initramfs)
rest=$((stripped - kernel - microcode - initramfs))
echo "takeover: $stripped bytes stripped = kernel $kernel + microcode $microcode +" \
     "agent initramfs $initramfs + $rest bytes without payload ($((rest / 1024)) KiB)"
if [ "$rest" -gt "$budget" ]; then
    echo "takeover without payload is $rest bytes, over the budget of $budget" >&2
    exit 1
fi
