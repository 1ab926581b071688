// Guest images built from Debian packages by the scripts in test/vm/images/: an initramfs with
// busybox and kernel modules, a UKI, a GPT disk with an ESP and A/B slots, a debootstrapped
// Debian system and ext4 images of it. Each result is cached
// in the build tree under a name derived from the content of all its inputs, so reruns are free.
#pragma once

#include <activate/result.hpp>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace activate::vm {

namespace fs = std::filesystem;

// Where built images go: $ACTIVATE_VM_IMAGE_DIR, else ${CMAKE_BINARY_DIR}/vm-images.
fs::path ImageCacheDir();
// Where guest serial logs go: $ACTIVATE_VM_LOG_DIR, else ${CMAKE_BINARY_DIR}/vm-logs.
fs::path LogDir();

// An installed Debian kernel: /boot/vmlinuz-<version> with /lib/modules/<version>.
struct HostKernel {
    std::string version;
    fs::path bzimage;
};
// The newest installed kernel, or $ACTIVATE_VM_KERNEL_VERSION.
Result<HostKernel> FindHostKernel();
// The kernel's uncompressed ELF vmlinux, booted through its PVH entry by MicroVM(): this skips
// the guest's own xz decompression, which costs several seconds under TCG.
Result<fs::path> ExtractVmlinux(const HostKernel& kernel);

// A file put into the initramfs.
struct GuestFile {
    fs::path host;      // source on this machine
    std::string guest;  // absolute destination in the guest, e.g. /bin/takeover
    bool elf = false;   // also copy the shared libraries it needs (from ldd), and the loader
};

// Modules most guests want; those the Debian kernel has built in are not listed.
std::vector<std::string> DefaultGuestModules();

struct InitramfsSpec {
    // Shell script run as /init by busybox sh. It may source /etc/vm-lib.sh, which has
    // vm_setup (mount /proc, /sys, /dev; load the modules below), vm_wait_for and vm_poweroff.
    std::string init;
    std::vector<std::string> modules = DefaultGuestModules();  // resolved with their dependencies
    std::vector<GuestFile> files;
    std::string kernel_version;  // empty: FindHostKernel()
};
Result<fs::path> BuildInitramfs(const InitramfsSpec& spec);

struct UkiSpec {
    fs::path kernel;  // a bzImage (EFI stub kernel)
    fs::path initrd;  // optional
    std::string cmdline;
    std::string os_release;  // .osrel contents; empty: a small test one
    fs::path stub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
};
Result<fs::path> BuildUki(const UkiSpec& spec);

// A stock Debian system made by debootstrap (images/build-debian.sh, needs root and the mirror):
// the root file system as a tarball, and the kernel and initramfs-tools initrd from its /boot,
// which the tarball leaves out (the slots boot them from UKIs on the ESP). The default packages:
// systemd, udev, Debian's kernel, the shared libraries `activate` links, efibootmgr, curl,
// openssh-server and systemd-resolved.
std::vector<std::string> DefaultDebianPackages();
struct DebianSpec {
    std::string suite = "bookworm";
    std::string mirror;  // empty: DebianMirror()
    std::vector<std::string> packages = DefaultDebianPackages();
};
struct DebianSystem {
    fs::path tarball;     // zstd tar, numeric owners
    fs::path kernel;      // its /boot/vmlinuz-<kernel_version>
    fs::path initrd;      // its /boot/initrd.img-<kernel_version>
    fs::path os_release;  // its /usr/lib/os-release, for a UKI's .osrel
    std::string kernel_version;
};
// The first URI apt on this machine fetches the suite from (<apt_dir>/sources.list, then
// sources.list.d/*.list, then sources.list.d/*.sources), security and updates suites excluded.
Result<std::string> DebianMirror(const std::string& suite = "bookworm",
                                 const fs::path& apt_dir = "/etc/apt");
// Built once per script, suite, mirror and package list: the archive moving on does not rebuild
// it (remove the cache's debian-* files for a fresh one). Downloaded .debs are kept in the cache
// (debootstrap-debs/), so that a changed script does not download them again.
Result<DebianSystem> BuildDebian(const DebianSpec& spec = {});

// An ext4 file system image of a tarball's tree plus extra files and symlinks, made by
// `mkfs.ext4 -d` (images/build-ext4.sh, as root), no larger than its contents plus free_mib.
struct Ext4Spec {
    fs::path tarball;
    // Installed first, by `dpkg --root=<tree> -i` (maintainer scripts run chrooted in the tree).
    std::vector<fs::path> debs;
    std::vector<GuestFile> files;  // copied with their host mode, owned by root (`elf` unused)
    std::vector<std::pair<std::string, std::string>> links;  // {target, guest path}
    std::string label;
    int free_mib = 64;
};
Result<fs::path> BuildExt4(const Ext4Spec& spec);

// ESP paths the project boots from (the default removable-media path and the two slots).
inline constexpr const char* kDefaultBootPath = "EFI/BOOT/BOOTX64.EFI";
inline constexpr const char* kSlotABootPath = "EFI/metropolis/boot-a.efi";
inline constexpr const char* kSlotBBootPath = "EFI/metropolis/boot-b.efi";

struct EspFile {
    fs::path host;
    std::string esp_path;  // like EFI/BOOT/BOOTX64.EFI
};

struct Partition {
    std::string name;  // GPT partition name, e.g. METROPOLIS-SYSTEM-A
    int size_mib = 32;
    std::string type_guid = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";  // Linux filesystem data
    fs::path image;                                                  // optional raw contents
};

// The ESP is always the first partition; the others follow in order.
struct DiskSpec {
    int esp_size_mib = 64;
    std::vector<EspFile> esp_files;
    std::vector<Partition> partitions = {
        {"METROPOLIS-SYSTEM-A", 32, "0FC63DAF-8483-4772-8E79-3D69D8477DE4", {}},
        {"METROPOLIS-SYSTEM-B", 32, "0FC63DAF-8483-4772-8E79-3D69D8477DE4", {}},
        {"METROPOLIS-DATA", 8, "0FC63DAF-8483-4772-8E79-3D69D8477DE4", {}},
    };
};
// The layout of an A/B machine: the default UKI at EFI/BOOT/BOOTX64.EFI, slot UKIs at
// EFI/metropolis/boot-{a,b}.efi, and the default partitions.
DiskSpec AbDisk(const fs::path& default_uki, const fs::path& uki_a, const fs::path& uki_b);
// The image is shared by every user of the cache: boot it with Drive::snapshot, or CopyImage().
Result<fs::path> BuildDisk(const DiskSpec& spec);

// A private writable copy (sparse) of a cached image, e.g. for a test that writes a slot.
Status CopyImage(const fs::path& from, const fs::path& to);
// A fresh copy of OVMF's variable store template, for LaunchOptions::ovmf_vars.
Status CopyOvmfVarsTemplate(const fs::path& to,
                            const fs::path& templ = "/usr/share/OVMF/OVMF_VARS_4M.fd");

}  // namespace activate::vm
