#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs dependencies, builds, runs every test
# (unit, minit, end-to-end QEMU guests), then rebuilds with clang, ASan+UBSan and libFuzzer's
# instrumentation (one tree), runs the unit tests there and fuzzes every libFuzzer target for a
# short while (any crash or UB fails).
# Usage: scripts/test.sh [--quick]  (--quick skips the sanitizer and fuzzing passes).
# ACTIVATE_FUZZ_SECONDS sets the fuzzing time per target (default 15).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1

bash scripts/setup.sh
jobs=$(nproc)

start=$SECONDS
phase() { echo "== [$(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s] $*" >&2; }

# Compile flags: debug info as line tables only (-g1), which is what stack traces and sanitizer
# reports use, and -O1 in the sanitized tree (scripts/configure_sanitized.sh). Measured per unit
# here (g++ 12; activation_record.cpp, cli.cpp, gpt_test.cpp): ASan+UBSan at -O1 -g1 took 0.24-0.5
# of the time at -O2 -g, and -O2 -g1 0.6-0.8 of -O2 -g; the trees' builds are most of CI's time.
ci_flags="-O2 -g1 -DNDEBUG"

phase "build (RelWithDebInfo, $ci_flags)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$ci_flags" -DCMAKE_C_FLAGS_RELWITHDEBINFO="$ci_flags" >/dev/null
# The e2e-distro tests' Debian image (debootstrap: downloads and dpkg, minutes) is built while
# the rest compiles; the tests wait on its lock if it is not done when they start.
prepare_pid=
if [ -f build/CMakeCache.txt ] && grep -q '^ACTIVATE_VM_TESTS:BOOL=ON' build/CMakeCache.txt; then
  cmake --build build --target vm_prepare_debian >/dev/null
  build/test/vm/vm_prepare_debian 2>build/prepare-debian.log &
  prepare_pid=$!
fi
cmake --build build -j "$jobs"
if [ -n "$prepare_pid" ]; then
  phase "waiting for the Debian image (build/prepare-debian.log)"
  wait "$prepare_pid" || echo "prepare_debian failed: $(tail -n 3 build/prepare-debian.log)" >&2
fi

# The sanitized tree compiles at nice 19 while the tests run: the guests' CPU-bound phases keep
# the cores (a nice-19 task gets about 1.5 % of a contended core beside a nice-0 one), and the
# compiler takes the time the tests leave idle (boots waiting on timers, health-check delays,
# the watchdog's timeout, network timeouts). With the scheduler's autogroups (Debian's default)
# nice only ranks tasks of one session, so the build gets a session of its own whose group is
# niced too (sched(7), "The autogroup feature").
asan_pid=
if [ "$quick" = 0 ]; then
  bash scripts/configure_sanitized.sh
  setsid -w sh -c 'echo 19 >/proc/self/autogroup 2>/dev/null; exec nice -n 19 "$@"' build-asan \
    cmake --build build-asan -j "$jobs" >build/asan-build.log 2>&1 &
  asan_pid=$!
fi

phase "tests: unit, minit, e2e, e2e-distro (build-asan compiling at nice 19 beside them)"
tests_status=0
ctest --test-dir build -j "$jobs" --output-on-failure --timeout 900 || tests_status=$?

if [ "$quick" = 0 ]; then
  phase "build (clang, ASan+UBSan and fuzzing instrumentation: scripts/configure_sanitized.sh)"
  if ! wait "$asan_pid"; then
    tail -n 40 build/asan-build.log >&2
    echo "the sanitized build failed (build/asan-build.log)" >&2
    exit 1
  fi
  [ "$tests_status" = 0 ] || { echo "tests failed (above)" >&2; exit "$tests_status"; }
  cmake --build build-asan -j "$jobs"
  phase "tests under ASan+UBSan: unit"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan -j "$jobs" -L unit --output-on-failure --timeout 900
  phase "fuzz: every target for ${ACTIVATE_FUZZ_SECONDS:-15} s (clang, ASan+UBSan, UB fatal)"
  bash scripts/fuzz.sh "${ACTIVATE_FUZZ_SECONDS:-15}"
fi
[ "$tests_status" = 0 ] || exit "$tests_status"
phase "done"
