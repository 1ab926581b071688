#!/usr/bin/env bash
# The Debian packages of this build tree, checked the way a Debian user meets them (ctest
# `package.deb`, packaging/README.md): CPack builds them; their file lists, conffiles and units
# are what README says; lintian reports no error; and dpkg installs, upgrades (keeping an edited
# conffile), removes and purges them in a throwaway root, never on this machine's own.
# Usage: check_deb.sh BUILD_DIR WORK_DIR
set -euo pipefail
build=$1
work=$2
triplet=x86_64-linux-gnu

fail() {
  echo "check_deb: $*" >&2
  exit 1
}

# dpkg chroots into its --root to run maintainer scripts.
[ "$(id -u)" = 0 ] || { echo "check_deb: needs root (dpkg --root chroots)"; exit 77; }
rm -rf "$work"
mkdir -p "$work"
# CPack into a scratch directory: the packages of `cmake --build build --target deb` are left
# alone.
cpack --config "$build/CPackConfig.cmake" -B "$work/out" >"$work/cpack.log" 2>&1 ||
  fail "cpack failed: $(cat "$work/cpack.log")"
version=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$build/CPackConfig.cmake")
deb=$work/out/activate_${version}_amd64.deb
takeover_deb=$work/out/activate-takeover_${version}_amd64.deb
for f in "$deb" "$takeover_deb"; do
  [ -f "$f" ] || fail "not built: $f (made: $(ls "$work/out"))"
done

# A plain `cmake --install --prefix` writes nothing outside its prefix: the /etc files are the
# package's alone (packaging/CMakeLists.txt).
DESTDIR="$work/plain" cmake --install "$build" --prefix /opt/activate >/dev/null ||
  fail "cmake --install --prefix /opt/activate failed"
outside=$(cd "$work/plain" && find . -mindepth 1 -not -path ./opt -not -path './opt/*' | head -5)
[ -z "$outside" ] || fail "cmake --install --prefix /opt/activate writes outside it: $outside"

# The file lists.
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$work/files"
dpkg-deb -c "$takeover_deb" | awk '{print $6}' | sed 's|^\./|/|' >"$work/takeover-files"
for want in /usr/bin/activate \
  /usr/lib/$triplet/libactivate-core.so.$version \
  /usr/lib/$triplet/activate/plugins/uki.so \
  /usr/lib/$triplet/activate/plugins/efi.so \
  /usr/lib/$triplet/activate/plugins/kexec.so \
  /usr/lib/systemd/system/activate-assess.service \
  /usr/lib/systemd/system/activate.socket \
  /usr/lib/systemd/system/activate.service \
  /etc/activate/update-efi.yaml /etc/activate/update-kexec.yaml /etc/activate/takeover.yaml \
  /etc/activate/keys/ \
  /usr/share/man/man8/activate.8.gz /usr/share/man/man5/activate-policy.5.gz \
  /usr/share/doc/activate/copyright /usr/share/doc/activate/changelog.gz \
  /usr/share/doc/activate/README.md /usr/share/doc/activate/policy.md; do
  grep -qxF "$want" "$work/files" || fail "activate_${version}_amd64.deb lacks $want"
done
grep -qxF /usr/bin/takeover "$work/takeover-files" || fail "the takeover package lacks /usr/bin/takeover"
grep -qxF /usr/bin/takeover "$work/files" && fail "takeover is in the activate package too"
# Nothing from the build tree's own prefix, nothing the engine no longer ships, nothing of the
# SDK (the `dev` component: headers, CMake package, pkg-config, the libactivate-core.so link).
grep -E '^/usr/local/|activate-mark-good|^/usr/include/|/cmake/|/pkgconfig/|libactivate-core\.so$' \
  "$work/files" && fail "unexpected files (above)"

# conffiles and the units as installed.
mkdir -p "$work/control" "$work/tree"
dpkg-deb -e "$deb" "$work/control"
dpkg-deb -x "$deb" "$work/tree"
diff <(sort "$work/control/conffiles") \
  <(printf '%s\n' /etc/activate/takeover.yaml /etc/activate/update-efi.yaml \
    /etc/activate/update-kexec.yaml) || fail "conffiles differ (above)"
grep -qx 'ExecStart=/usr/bin/activate assess --policy /etc/activate/update.yaml' \
  "$work/tree/usr/lib/systemd/system/activate-assess.service" ||
  fail "activate-assess.service does not run /usr/bin/activate"
[ "$(stat -c %a "$work/tree/etc/activate/keys")" = 755 ] || fail "/etc/activate/keys is not 0755"
# The executable finds its plugins relative to itself (README "Plugins are looked up"): the
# packaged layout must be the one compiled in.
"$work/tree/usr/bin/activate" --policy "$work/tree/etc/activate/update-kexec.yaml" --dry-run \
  >"$work/plan" 2>&1 || fail "activate from the package cannot load its plugins: $(cat "$work/plan")"
grep -q "/usr/lib/$triplet/activate/plugins/uki.so" "$work/plan" ||
  fail "the plan names no plugin under /usr/lib/$triplet: $(cat "$work/plan")"
zcat "$work/tree/usr/share/man/man8/activate.8.gz" | grep -q '^\.SH "EXIT STATUS"' ||
  fail "activate(8) has no EXIT STATUS section"

# lintian: no error (warnings are printed; explained ones are in the lintian-overrides files).
if lintian --fail-on error "$deb" "$takeover_deb" \
  >"$work/lintian.log" 2>&1; then
  cat "$work/lintian.log"
else
  cat "$work/lintian.log" >&2
  fail "lintian reports errors (above)"
fi

# dpkg in a throwaway root: busybox as /bin/sh for the maintainer scripts, which dpkg runs
# chrooted there; an empty dpkg database, so the library dependencies are forced. The real
# root is never dpkg's root.
root=$work/root
mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/var/lib/dpkg/info" \
  "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers" "$root/tmp"
: >"$root/var/lib/dpkg/status"
: >"$root/var/lib/dpkg/available"
cp /bin/busybox "$root/bin/busybox"
for tool in sh rm cat; do ln -s busybox "$root/bin/$tool"; done
# dpkg wants these on its PATH inside the root; nothing here needs them to do anything.
for tool in ldconfig start-stop-daemon; do
  printf '#!/bin/sh\nexit 0\n' >"$root/sbin/$tool"
  chmod 755 "$root/sbin/$tool"
done
dpkg_root() { dpkg --root="$root" --force-depends "$@"; }
dpkg_root -i "$deb" "$takeover_deb" >"$work/dpkg.log" 2>&1 || fail "dpkg -i: $(cat "$work/dpkg.log")"
[ -x "$root/usr/bin/activate" ] && [ -x "$root/usr/bin/takeover" ] || fail "not installed"
[ "$(dpkg-query --root="$root" -W -f='${Status}' activate)" = "install ok installed" ] ||
  fail "activate is not 'install ok installed'"

# An upgrade keeps a site's edit of a conffile (the package's copy did not change).
echo "# edited by this site" >>"$root/etc/activate/update-kexec.yaml"
mkdir -p "$work/v2"
dpkg-deb -R "$deb" "$work/v2/tree"
sed -i "s/^Version: .*/Version: ${version}+1/" "$work/v2/tree/DEBIAN/control"
dpkg-deb --root-owner-group -b "$work/v2/tree" "$work/v2/activate.deb" >/dev/null
dpkg_root -i "$work/v2/activate.deb" >>"$work/dpkg.log" 2>&1 || fail "upgrade: $(cat "$work/dpkg.log")"
[ "$(dpkg-query --root="$root" -W -f='${Version}' activate)" = "${version}+1" ] || fail "not upgraded"
grep -q "edited by this site" "$root/etc/activate/update-kexec.yaml" ||
  fail "the upgrade replaced an edited conffile"

# Remove keeps the conffiles, purge takes them.
dpkg_root -r activate >>"$work/dpkg.log" 2>&1 || fail "dpkg -r: $(cat "$work/dpkg.log")"
[ ! -e "$root/usr/bin/activate" ] || fail "dpkg -r left /usr/bin/activate"
[ ! -e "$root/usr/lib/$triplet/activate" ] || fail "dpkg -r left the plugins"
[ -f "$root/etc/activate/update-kexec.yaml" ] || fail "dpkg -r removed a conffile"
dpkg_root -P activate activate-takeover >>"$work/dpkg.log" 2>&1 || fail "dpkg -P: $(cat "$work/dpkg.log")"
[ ! -e "$root/etc/activate" ] || fail "dpkg -P left /etc/activate: $(ls -R "$root/etc/activate")"
[ ! -e "$root/usr/bin/takeover" ] || fail "dpkg -P left /usr/bin/takeover"
echo "check_deb: $(basename "$deb") and $(basename "$takeover_deb"): files, conffiles, lintian," \
  "install, upgrade, remove, purge: ok"
rm -rf "$work"
