#!/usr/bin/env bash
# The main job from a fresh clone: install dependencies, build, show what each shipped policy
# would do (dry runs touch nothing), then the demo: takeover and an A/B update (kexec and EFI
# BootNext) in QEMU guests, with a timeline (test/demo/demo.cpp).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja >/dev/null
cmake --build build -j "$(nproc)"
for policy in config/takeover.yaml config/update-kexec.yaml config/update-efi.yaml; do
  echo "=== activate --policy $policy --dry-run"
  ./build/bin/activate --policy "$policy" --dry-run
done
echo "=== demo: takeover and A/B updates in QEMU guests (a few minutes under TCG)"
./build/bin/activate_demo
