#!/bin/sh
# ctest sdk.doc_example (label package): docs/plugins.md opens with a complete plugin; this takes
# its first ```cpp block (as noop.cpp) and its first ```cmake block (as CMakeLists.txt), builds
# them against this build tree installed into a staging prefix, and loads the plugin with the
# installed activate, so the page cannot drift from the SDK. Also compiles it by the page's
# pkg-config command line.
# Usage: doc_example_test.sh BUILD_DIR SOURCE_DIR WORK_DIR FAKE_PLUGIN_DIR
set -eu
build=$1 src=$2 work=$3 fake=$4
fail() {
  echo "sdk.doc_example: $*" >&2
  exit 1
}
started=$(date +%s)
rm -rf "$work"
mkdir -p "$work/noop"
doc=$src/docs/plugins.md
# The lines between the first opening fence of that language and the next closing fence.
block() { awk -v lang="$1" '!found && $0 == "```" lang {found = 1; inside = 1; next}
  inside && $0 == "```" {exit} inside {print}' "$doc"; }
block cpp >"$work/noop/noop.cpp"
block cmake >"$work/noop/CMakeLists.txt"
[ -s "$work/noop/noop.cpp" ] && [ -s "$work/noop/CMakeLists.txt" ] ||
  fail "docs/plugins.md lacks a cpp or a cmake block"
grep -q 'activate_add_plugin(noop SOURCES noop.cpp)' "$work/noop/CMakeLists.txt" ||
  fail "the cmake block does not build noop.cpp as noop"

prefix=$work/prefix
# The engine (component Unspecified: executable, library, plugins) and the SDK (dev).
{ cmake --install "$build" --prefix "$prefix" --component Unspecified &&
  cmake --install "$build" --prefix "$prefix" --component dev; } >"$work/install.log" 2>&1 ||
  fail "cmake --install failed: $(cat "$work/install.log")"
cmake -S "$work/noop" -B "$work/noop/build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
  >"$work/configure.log" 2>&1 || fail "configuring the example failed: $(cat "$work/configure.log")"
cmake --build "$work/noop/build" >"$work/build.log" 2>&1 ||
  fail "building the example failed: $(cat "$work/build.log")"
[ -f "$work/noop/build/noop.so" ] || fail "no noop.so built"

# The page's command line without CMake (pkg-config), run as written there.
pc_dir=$(dirname "$(find "$prefix" -name activate.pc | head -1)")
cmdline=$(awk '/^c\+\+ -std=c\+\+20/ {line = $0; while (line ~ /\\$/) {sub(/\\$/, "", line);
  getline nxt; line = line nxt} print line; exit}' "$doc")
[ -n "$cmdline" ] || fail "docs/plugins.md lacks the pkg-config command line"
mkdir -p "$work/pc"
(cd "$work/pc" && cp "$work/noop/noop.cpp" . && PKG_CONFIG_PATH=$pc_dir sh -c "$cmdline") \
  >"$work/pc.log" 2>&1 || fail "the pkg-config build failed: $(cat "$work/pc.log")"

# Loaded by the installed activate: an A/B update (slots from the test plugin `fake`) whose
# activation is noop.
root=$work/root
mkdir -p "$root"
cat >"$work/policy.yaml" <<'POLICY'
activation_mode: none
payload: {plugin: fake_slots}
activation: {plugin: noop}
boot_control: {plugin: fake}
POLICY
for dir in "$work/noop/build" "$work/pc"; do
  rm -rf "$root" && mkdir -p "$root"
  ACTIVATE_PLUGIN_PATH="$dir:$fake" "$prefix/bin/activate" --policy "$work/policy.yaml" \
    --sysroot "$root" --bundle /b.zip >/dev/null 2>"$work/run.err" ||
    fail "activate with $dir/noop.so failed: $(cat "$work/run.err")"
  grep -q "activate\[noop\] info: slot B is ready" "$work/run.err" ||
    fail "noop did not run: $(cat "$work/run.err")"
done
echo "sdk.doc_example: ok in $(($(date +%s) - started)) s"
