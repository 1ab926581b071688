#!/usr/bin/env bash
# Installs every build, test and VM-test dependency from Debian packages, after `apt-get update`.
# Idempotent; on a fresh Debian 12 machine run it as root. When everything is present it
# changes nothing and needs no root. Nothing is downloaded from anywhere but Debian's archive.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  # libraries
  libboost-program-options-dev libboost-dev libprotobuf-dev protobuf-compiler
  libzstd-dev zstd libyaml-cpp-dev libgtest-dev libgmock-dev libsodium-dev nlohmann-json3-dev
  libcurl4-openssl-dev zlib1g-dev libdeflate-dev libssl-dev
  # minit is linked statically against musl
  musl-tools
  # test tools and VM harness
  cpio zip unzip python3 iproute2 util-linux fdisk dosfstools mtools
  binutils qemu-system-x86 qemu-utils ovmf busybox-static systemd-boot-efi
  linux-image-amd64 kmod efibootmgr swtpm
  # the bundle download tests' HTTP server (test/support/nginx.cpp runs its own instance on
  # 127.0.0.1 from a generated config; the package's service is not used)
  nginx-light
  # the stock Debian guest (test/e2e/distro): debootstrap from the mirror apt uses, ext4 images
  debootstrap e2fsprogs
  # the Debian packages (packaging/): dpkg-shlibdeps (dpkg-dev) and lintian, 7 MB installed
  dpkg-dev lintian
  # contrib/ansible and its e2e test (ansible-playbook against three Debian guests)
  ansible-core
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup.sh: all ${#packages[@]} packages present" >&2
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: ${missing[*]} must be installed; run this as root (it calls apt-get)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# The package lists first, so that what is installed is current.
if ! apt-get update -q >&2; then
  echo "setup.sh: apt-get update failed and ${missing[*]} must be installed" >&2
  exit 1
fi
echo "setup.sh: installing ${missing[*]}" >&2
apt-get install -y -q --no-install-recommends "${missing[@]}"

# nginx-light's package starts and enables the distribution's nginx on port 80. The tests run
# their own instance; a web server on every interface is not what a build dependency should leave
# behind, so when this script installed it, the package's service is stopped and disabled.
if [[ " ${missing[*]} " == *" nginx-light "* ]] && [ -d /run/systemd/system ]; then
  systemctl disable --now nginx.service >&2 || echo "setup.sh: could not stop the nginx service" >&2
fi
