#!/usr/bin/env bash
# The main job from a fresh clone: install dependencies, build, then show what each shipped
# policy would do (dry runs touch nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja >/dev/null
cmake --build build -j "$(nproc)"
for policy in config/takeover.yaml config/update-kexec.yaml config/update-efi.yaml; do
  echo "=== activate --policy $policy --dry-run"
  ./build/bin/activate --policy "$policy" --dry-run
done
echo "=== takeover --dry-run (built-in policy and plugins)"
./build/bin/takeover --dry-run
