#!/usr/bin/env bash
# Configures build-asan: the one sanitized tree, clang with ASan+UBSan (UB fatal) and libFuzzer's
# coverage instrumentation everywhere. scripts/test.sh builds all of it and runs the unit tests
# there; scripts/fuzz.sh builds its `fuzzers` target and runs them. One tree instead of a GCC
# sanitizer tree plus a clang fuzz tree: the libraries are compiled once for both passes.
# -O1 (as in libFuzzer's documented examples) with line tables only, which is what sanitizer
# reports and stack traces use: about half the compile time of -O2 -g under the sanitizers.
set -euo pipefail
cd "$(dirname "$0")/.."
flags="-O1 -gline-tables-only -DNDEBUG"
CC=clang CXX=clang++ cmake -S . -B build-asan -G Ninja -DACTIVATE_SANITIZE=ON -DACTIVATE_FUZZ=ON \
  -DACTIVATE_VM_TESTS=OFF -DACTIVATE_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$flags" -DCMAKE_C_FLAGS_RELWITHDEBINFO="$flags" "$@" >/dev/null
