#!/usr/bin/env bash
# Builds every libFuzzer target with clang (ASan+UBSan+fuzzer, UB fatal) in build-asan and runs
# each for a while on a copy of its committed seed corpus; prints one line per target and fails
# if any run found a crash, a sanitizer report or a timeout. A deliberate-UB canary runs first,
# so a build in which UB would not end a run fails here instead of passing everything.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] (default 20). Failing inputs are kept in
# build-asan/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
jobs=$(nproc)

bash scripts/configure_sanitized.sh
cmake --build build-asan -j "$jobs" --target fuzzers

artifacts=build-asan/artifacts
mkdir -p "$artifacts"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# Fatal UB comes from -fno-sanitize-recover=all; these only make the report readable.
export UBSAN_OPTIONS=print_stacktrace=1

# The canary negates INT32_MIN taken from its input: the run must fail.
printf '\x00\x00\x00\x80' >"$scratch/int32-min"
if build-asan/bin/ub_canary_fuzz -runs=1 "$scratch/int32-min" >"$scratch/canary.log" 2>&1; then
  cat "$scratch/canary.log" >&2
  echo "fuzz: UB does not end a run in this build (ub_canary_fuzz exited 0); nothing is checked" >&2
  exit 1
fi
grep -q "runtime error: negation of -2147483648" "$scratch/canary.log" || {
  cat "$scratch/canary.log" >&2
  echo "fuzz: ub_canary_fuzz failed, but not on the UB it holds" >&2
  exit 1
}

# Targets run $jobs at a time (each is single-threaded): the same fuzzing time per target in
# about 1/$jobs of the wall time.
fuzz_one() {
  local corpus=$1 name bin work log result execs
  name=$(basename "$corpus")
  bin=build-asan/bin/$name
  if [ ! -x "$bin" ]; then
    printf 'fuzz: %-34s no binary\n' "$name" >"$scratch/$name.result"
    return 1
  fi
  work=$scratch/$name
  mkdir -p "$work"
  cp -r "$corpus"/. "$work"/
  log=$scratch/$name.log
  result=ok
  # A sanitizer report ends the run with a non-zero status; "runtime error" is checked as well,
  # in case a target was built without -fno-sanitize-recover.
  if ! "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$artifacts/$name-" "$work" >"$log" 2>&1; then
    result=FAILED
  elif grep -q "runtime error:" "$log"; then
    result="FAILED (UBSan report)"
  fi
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  printf 'fuzz: %-34s %10s executions in %ss: %s\n' "$name" "${execs:-?}" "$seconds" "$result" \
    >"$scratch/$name.result"
  if [ "$result" != ok ]; then
    tail -40 "$log" >>"$scratch/$name.result"
    return 1
  fi
}

corpora=$(find core plugins -type d -path '*/fuzz/corpus/*' | sort)
running=0
for corpus in $corpora; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  fuzz_one "$corpus" &
  running=$((running + 1))
done
wait || true

# Results are printed in name order once all ran; any target without an "ok" line fails the run.
status=0
for corpus in $corpora; do
  name=$(basename "$corpus")
  cat "$scratch/$name.result" >&2 || { echo "fuzz: $name gave no result" >&2; status=1; continue; }
  head -1 "$scratch/$name.result" | grep -q ': ok$' || status=1
done
exit $status
