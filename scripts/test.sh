#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs dependencies, builds, runs every test
# (unit, minit, end-to-end QEMU guests), then rebuilds with ASan+UBSan and runs the unit tests
# again, then fuzzes every libFuzzer target for a short while (clang; any crash or UB fails).
# Usage: scripts/test.sh [--quick]  (--quick skips the sanitizer and fuzzing passes).
# ACTIVATE_FUZZ_SECONDS sets the fuzzing time per target (default 15).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1

bash scripts/setup.sh
jobs=$(nproc)

echo "== build (RelWithDebInfo)" >&2
cmake -S . -B build -G Ninja >/dev/null
cmake --build build -j "$jobs"

echo "== tests: unit, minit, e2e, e2e-distro" >&2
ctest --test-dir build -j "$jobs" --output-on-failure --timeout 900

if [ "$quick" = 0 ]; then
  echo "== build (ASan+UBSan)" >&2
  cmake -S . -B build-asan -G Ninja -DACTIVATE_SANITIZE=ON -DACTIVATE_VM_TESTS=OFF >/dev/null
  cmake --build build-asan -j "$jobs"
  echo "== tests under ASan+UBSan: unit" >&2
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan -j "$jobs" -L unit --output-on-failure --timeout 900
  echo "== fuzz: every target for ${ACTIVATE_FUZZ_SECONDS:-15} s (clang, ASan+UBSan, UB fatal)" >&2
  bash scripts/fuzz.sh "${ACTIVATE_FUZZ_SECONDS:-15}"
fi
