#!/usr/bin/env bash
# Builds every libFuzzer target with clang (ASan+UBSan+fuzzer) and runs each for a while on its
# committed seed corpus. Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DACTIVATE_FUZZ=ON \
  -DACTIVATE_VM_TESTS=OFF >/dev/null
cmake --build build-fuzz --target fuzzers
status=0
for corpus in $(find core plugins -type d -path '*/fuzz/corpus/*' | sort); do
  name=$(basename "$corpus")
  bin=build-fuzz/bin/$name
  [ -x "$bin" ] || { echo "fuzz: no binary for $name" >&2; status=1; continue; }
  work=$(mktemp -d)
  cp -r "$corpus"/. "$work"/
  echo "== $name (${seconds}s)" >&2
  if ! "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 "$work" 2>"$work.log"; then
    tail -40 "$work.log" >&2
    status=1
  else
    grep -E "^Done|stat::number_of_executed_units" "$work.log" | tail -1 >&2 || true
  fi
  rm -rf "$work" "$work.log"
done
exit $status
