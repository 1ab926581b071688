#!/bin/sh
# ctest sdk.exec_plugin (label package): the SDK as a plugin author meets it. Installs this build
# tree into a staging prefix, builds examples/exec-plugin from its own directory against that
# prefix only, and runs the *installed* activate with $ACTIVATE_PLUGIN_PATH pointing at the
# plugin, on a sysroot, with a stand-in boot-control program that logs its argv.
# Usage: exec_plugin_test.sh BUILD_DIR SOURCE_DIR WORK_DIR FAKE_PLUGIN_DIR NM
set -eu
build=$1 src=$2 work=$3 fake=$4 nm=$5
fail() {
  echo "sdk.exec_plugin: $*" >&2
  exit 1
}
started=$(date +%s)
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix

# 1. The SDK: installed from the existing build tree (nothing is rebuilt).
# The engine (component Unspecified: executable, library, plugins) and the SDK (dev).
{ cmake --install "$build" --prefix "$prefix" --component Unspecified &&
  cmake --install "$build" --prefix "$prefix" --component dev; } >"$work/install.log" 2>&1 ||
  fail "cmake --install failed: $(cat "$work/install.log")"
libdir=$(find "$prefix/lib" -name 'libactivate-core.so.*' -printf '%h\n' | head -1)
[ -n "$libdir" ] || fail "no versioned libactivate-core.so.N installed"
soname=$(objdump -p "$libdir"/libactivate-core.so.* | awk '/SONAME/ {print $2}')
[ "$(readlink "$libdir/libactivate-core.so")" = "$soname" ] ||
  fail "libactivate-core.so does not link to the SONAME file $soname"
[ -f "$prefix/include/activate/plugin_api.hpp" ] || fail "headers not installed"
PKG_CONFIG_PATH=$libdir/pkgconfig pkg-config --exists activate || fail "no activate.pc"

# 2. The plugin, from its own directory, against the prefix only.
cmake -S "$src/examples/exec-plugin" -B "$work/exec-build" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$work/configure.log" 2>&1 ||
  fail "configuring examples/exec-plugin failed: $(cat "$work/configure.log")"
# Nothing from the source or build tree of activate: only the staging prefix.
if grep -E -- "-I($src|$build)" "$work/exec-build/build.ninja" >/dev/null; then
  fail "the plugin build uses activate's source or build tree: $(grep -E -o -- "-I($src|$build)[^ ]*" "$work/exec-build/build.ninja" | head -3)"
fi
cmake --build "$work/exec-build" >"$work/build.log" 2>&1 ||
  fail "building examples/exec-plugin failed: $(cat "$work/build.log")"
plugin=$work/exec-build/exec.so
[ -f "$plugin" ] || fail "no exec.so built"
cmake -DNM="$nm" -DPLUGIN="$plugin" -P "$src/scripts/check_plugin_exports.cmake" >/dev/null ||
  fail "exec.so exports more than its entry point"

# 3. The installed activate on a sysroot: the exec plugin as activation and boot control, the
# payload (A/B slots) from the test plugin `fake` of this build tree.
root=$work/root
mkdir -p "$root/usr/lib/activate"
cp "$src/examples/exec-plugin/test/boot-control" "$root/usr/lib/activate/boot-control"
cat >"$work/policy.yaml" <<'POLICY'
activation_mode: reboot
payload: {plugin: fake_slots}
activation: {plugin: exec, settings: {program: /usr/lib/activate/boot-control}}
boot_control: {plugin: exec, settings: {program: /usr/lib/activate/boot-control}}
POLICY
export ACTIVATE_PLUGIN_PATH="$work/exec-build:$fake"
activate=$prefix/bin/activate
"$activate" --policy "$work/policy.yaml" --sysroot "$root" --dry-run >"$work/plan" 2>&1 ||
  fail "dry run failed: $(cat "$work/plan")"
grep -q "activation: exec 0.1.0 ($plugin)" "$work/plan" || fail "plan lacks exec.so: $(cat "$work/plan")"

"$activate" --policy "$work/policy.yaml" --sysroot "$root" --bundle /b.zip >"$work/run.out" \
  2>"$work/run.err" || fail "the update failed (exit $?): $(cat "$work/run.err")"
printf '%s\n' "set-state B bad" "set-state B good" "set-next B" >"$work/want"
diff "$work/want" "$root/verbs.log" >&2 || fail "update: verbs differ from the expected (above)"
[ "$(cat "$root/run/activate/reboot")" = reboot ] || fail "no reboot recorded after set-next"

# The next boot runs B; it is marked good: the program makes it the primary.
echo B >"$root/fake-running-slot"
: >"$root/verbs.log"
"$activate" mark-good --policy "$work/policy.yaml" --sysroot "$root" 2>"$work/good.err" ||
  fail "mark-good failed: $(cat "$work/good.err")"
printf '%s\n' "set-state B good" "set-primary B" >"$work/want"
diff "$work/want" "$root/verbs.log" >&2 || fail "mark-good: verbs differ (above)"
"$activate" status --policy "$work/policy.yaml" --sysroot "$root" --json >"$work/status" \
  2>"$work/status.err" || fail "status failed: $(cat "$work/status.err")"
grep -q '"primary": *"B"' "$work/status" || fail "status lacks the primary slot: $(cat "$work/status")"

# A failing program: activate exits 6 (activation failed) naming the program, the verb, its exit
# status and the end of its stderr, and nothing is rebooted.
rm -f "$root/run/activate/reboot" "$root/verbs.log"
touch "$root/fail-set-next"
set +e
"$activate" --policy "$work/policy.yaml" --sysroot "$root" --bundle /b.zip >/dev/null 2>"$work/fail.err"
code=$?
set -e
[ "$code" = 6 ] || fail "a failing set-next: exit $code, expected 6: $(cat "$work/fail.err")"
grep -q "exec: /usr/lib/activate/boot-control set-next A failed with exit status 3; stderr: reading the boot environment" "$work/fail.err" ||
  fail "the error does not name program, verb, status and stderr: $(cat "$work/fail.err")"
grep -q "grubenv: Read-only file system" "$work/fail.err" || fail "stderr tail missing: $(cat "$work/fail.err")"
[ ! -e "$root/run/activate/reboot" ] || fail "rebooted after a failed set-next"
echo "sdk.exec_plugin: ok in $(($(date +%s) - started)) s"
