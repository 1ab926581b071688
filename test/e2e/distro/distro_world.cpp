// See distro_world.hpp.
#include "distro_world.hpp"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace activate::vm {
namespace {

// The guest's view into each boot, run by e2e-scenario.service once the network is up and
// activate-assess.service has given its verdict. Its output reaches the serial console through the
// journal (journal+console), whose per-message writes to /dev/console survive the serial getty's
// hangup.
constexpr const char* kScenarioRunner = R"SH(#!/bin/sh
# activate e2e: prints DISTRO_* lines about this boot, then runs the scenario the test serves.
V=$(cat /etc/e2e-variant)
EFI=/etc/activate/update-efi.yaml
KEXEC=/etc/activate/update-kexec.yaml
URL=http://10.0.2.100
root=$(findmnt -n -o SOURCE /)
echo "DISTRO_BOOTED variant=$V"
echo "DISTRO_CMDLINE=$(cat /proc/cmdline)"
echo "DISTRO_ROOT=$root $(udevadm info -q property -n "$root" | grep '^ID_PART_ENTRY_NAME=')"
echo "DISTRO_BOOTCURRENT=Boot$(efibootmgr | sed -n 's/^BootCurrent: //p')"
journalctl -b -o cat -u activate-assess.service | sed 's/^/DISTRO_ASSESS_LOG /'
echo "DISTRO_ASSESS=$(systemctl show --value -p ActiveState activate-assess.service)" \
  "$(systemctl show --value -p Result activate-assess.service)"
# systemd breaks an ordering cycle by dropping a job and says so in the journal.
echo "DISTRO_ORDERING_CYCLES=$(journalctl -b -o cat | grep -c 'ordering cycle')"
# act ARGS: activate with its log on the console, then its exit code.
act() { /usr/bin/activate "$@" 2>&1; echo "DISTRO_RC=$?"; }
status() {
  out=$(/usr/bin/activate status --policy "$1" --json 2>/run/e2e-status.err)
  cat /run/e2e-status.err
  echo "DISTRO_STATUS=$out"
}
# The scenario sets AFTER=poweroff or AFTER=reboot to leave once DISTRO_END is out.
AFTER=
if curl -fsS --retry 10 --retry-connrefused --retry-delay 1 -o /run/e2e-scenario.sh \
     "$URL/scenario.sh"; then
  . /run/e2e-scenario.sh
else
  echo "DISTRO_NO_SCENARIO"
fi
echo "DISTRO_END"
case "$AFTER" in
  poweroff|reboot) systemctl "$AFTER" ;;
esac
)SH";

// After the assessment, which runs after multi-user.target: so no implicit After= from the target
// that pulls it in (DefaultDependencies=no, with the service defaults written out), or the
// boot has an ordering cycle (systemd/README.md).
constexpr const char* kScenarioUnit = R"(# activate e2e: the test's view into each boot.
[Unit]
Description=activate e2e scenario
DefaultDependencies=no
Requires=sysinit.target
Wants=network-online.target
After=sysinit.target basic.target network-online.target activate-assess.service
Conflicts=shutdown.target
Before=shutdown.target

[Service]
Type=exec
ExecStart=/usr/local/sbin/e2e-scenario
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
)";

// The ESP by its FAT label (build-disk.sh names it ESP); the shipped policies expect it at /esp.
constexpr const char* kFstab = "LABEL=ESP /esp vfat umask=0077 0 0\n";

constexpr int kSlotMib = 512;
constexpr int kEspMib = 256;  // three UKIs of ~40 MB, and a fourth while one is replaced

Status WriteFile(const fs::path& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << data;
    out.close();
    if (!out) return Error(ErrorKind::internal, "cannot write " + path.string());
    return {};
}

Result<std::string> ReadFile(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Error(ErrorKind::internal, "cannot read " + path.string());
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace

Status DistroWorld::Init(const std::string& name) {
    name_ = name;
    dir_ = LogDir() / "e2e-distro" / name_;
    std::error_code ec;
    fs::remove_all(dir_, ec);
    fs::create_directories(dir_ / "www", ec);
    if (ec) return Error(ErrorKind::internal, "creating " + dir_.string() + ": " + ec.message());
    ACTIVATE_ASSIGN(debian_, BuildDebian());
    return {};
}

Result<fs::path> DistroWorld::SharedFile(const std::string& name, const std::string& content,
                                         bool executable) {
    fs::path dir = LogDir() / "e2e-distro" / "guest-files";
    std::error_code ec;
    fs::create_directories(dir, ec);
    fs::path to = dir / name;
    // The image keeps the mode (systemd warns about executable unit files).
    const auto mode = executable
                          ? fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                fs::perms::others_read | fs::perms::others_exec
                          : fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                fs::perms::others_read;
    auto current = ReadFile(to);
    if (current.ok() && *current == content && fs::status(to).permissions() == mode) return to;
    // Tests running at the same time write the same content: a rename is never seen half-done.
    fs::path tmp = dir / (name + ".tmp." + std::to_string(::getpid()));
    ACTIVATE_TRY(WriteFile(tmp, content));
    fs::permissions(tmp, mode);
    fs::rename(tmp, to, ec);
    if (ec) return Error(ErrorKind::internal, "renaming " + tmp.string() + ": " + ec.message());
    return to;
}

Result<fs::path> DistroWorld::InstalledUnit() {
    fs::path destdir = dir_ / "install";
    auto r = RunCommand({"env", "DESTDIR=" + destdir.string(), "cmake", "--install",
                         E2E_DISTRO_BUILD_DIR, "--component", "systemd", "--prefix", "/usr"},
                        seconds(120));
    if (!r.ok()) return r.error();
    ACTIVATE_ASSIGN(std::string unit,
                    ReadFile(destdir / "usr/lib/systemd/system/activate-assess.service"));
    return SharedFile("activate-assess.service", unit);
}

Result<fs::path> DistroWorld::SlotImage(const std::string& variant,
                                        const std::vector<GuestFile>& extra) {
    ACTIVATE_ASSIGN(fs::path activate, StrippedCopy(E2E_DISTRO_ACTIVATE));
    ACTIVATE_ASSIGN(fs::path core, StrippedCopy(E2E_DISTRO_CORE_LIB));
    ACTIVATE_ASSIGN(fs::path uki, StrippedCopy(E2E_DISTRO_PLUGIN_UKI));
    ACTIVATE_ASSIGN(fs::path efi, StrippedCopy(E2E_DISTRO_PLUGIN_EFI));
    ACTIVATE_ASSIGN(fs::path kexec, StrippedCopy(E2E_DISTRO_PLUGIN_KEXEC));
    ACTIVATE_ASSIGN(fs::path key, E2eSigningKey());
    ACTIVATE_ASSIGN(fs::path unit, InstalledUnit());
    ACTIVATE_ASSIGN(fs::path runner, SharedFile("e2e-scenario", kScenarioRunner, true));
    ACTIVATE_ASSIGN(fs::path runner_unit, SharedFile("e2e-scenario.service", kScenarioUnit));
    ACTIVATE_ASSIGN(fs::path fstab, SharedFile("fstab", kFstab));
    ACTIVATE_ASSIGN(fs::path variant_file, SharedFile("variant-" + variant, variant + "\n"));
    const fs::path config = E2E_DISTRO_CONFIG_DIR;
    Ext4Spec spec;
    spec.tarball = debian_.tarball;
    // The layout `cmake --install --prefix /usr` makes (and the .deb has): the executable finds
    // the plugins in ../<libdir>/activate/plugins, the libdir compiled in.
    const std::string lib = std::string("/usr/") + E2E_DISTRO_LIBDIR;
    spec.files = {
        {activate, "/usr/bin/activate"},
        {core, lib + "/libactivate-core.so"},
        {uki, lib + "/activate/plugins/uki.so"},
        {efi, lib + "/activate/plugins/efi.so"},
        {kexec, lib + "/activate/plugins/kexec.so"},
        {config / "update-efi.yaml", "/etc/activate/update-efi.yaml"},
        {config / "update-kexec.yaml", "/etc/activate/update-kexec.yaml"},
        // The shipped policies install only bundles signed by a trusted key.
        {key / "release.pub", "/etc/activate/keys/release.pub"},
        {unit, "/usr/lib/systemd/system/activate-assess.service"},
        {runner, "/usr/local/sbin/e2e-scenario"},
        {runner_unit, "/etc/systemd/system/e2e-scenario.service"},
        {fstab, "/etc/fstab"},
        {variant_file, "/etc/e2e-variant"},
    };
    spec.links = {
        // The policy the unit assesses with (README "Usage"): both shipped ones keep the same
        // boot entries and have the same assessment, so either does.
        {"update-kexec.yaml", "/etc/activate/update.yaml"},
        // `systemctl enable` of both units (assess: WantedBy= and RequiredBy=).
        {"/usr/lib/systemd/system/activate-assess.service",
         "/etc/systemd/system/multi-user.target.wants/activate-assess.service"},
        {"/usr/lib/systemd/system/activate-assess.service",
         "/etc/systemd/system/boot-complete.target.requires/activate-assess.service"},
        {"/etc/systemd/system/e2e-scenario.service",
         "/etc/systemd/system/multi-user.target.wants/e2e-scenario.service"},
    };
    spec.files.insert(spec.files.end(), extra.begin(), extra.end());
    spec.free_mib = 24;
    return BuildExt4(spec);
}

Result<fs::path> DistroWorld::Uki(const std::string& slot) {
    UkiSpec spec;
    spec.kernel = debian_.kernel;
    spec.initrd = debian_.initrd;
    // rw: no fstab line for / (it depends on the slot). panic=-1 makes the initramfs reboot
    // instead of waiting in its shell when it cannot mount the root, so that a test sees it at
    // once. systemd.show_status keeps systemd's unit lines on the console despite quiet.
    spec.cmdline = "root=PARTLABEL=METROPOLIS-SYSTEM-" + slot +
                   " rw console=ttyS0 quiet systemd.show_status=1 panic=-1";
    ACTIVATE_ASSIGN(std::string osrel, ReadFile(debian_.os_release));
    spec.os_release = osrel;
    return BuildUki(spec);
}

Status DistroWorld::MakeDisk(const std::vector<GuestFile>& extra) {
    ACTIVATE_ASSIGN(fs::path a, Uki("A"));
    ACTIVATE_ASSIGN(fs::path b, Uki("B"));
    ACTIVATE_ASSIGN(fs::path x, SlotImage("X", extra));
    DiskSpec spec = AbDisk(a, a, b);
    spec.esp_size_mib = kEspMib;
    spec.partitions[0].size_mib = kSlotMib;
    spec.partitions[1].size_mib = kSlotMib;
    spec.partitions[0].image = x;
    ACTIVATE_ASSIGN(fs::path disk, BuildDisk(spec));
    ACTIVATE_TRY(CopyImage(disk, dir_ / "disk.img"));
    return CopyOvmfVarsTemplate(dir_ / "vars.fd");
}

Status DistroWorld::MakeBundle(const std::string& name, const fs::path& uki, const fs::path& image,
                               size_t cut_at) {
    fs::path zip = dir_ / "www" / (name + ".zip");
    ACTIVATE_TRY(CreateSignedBundle(
        zip, {"kernel_efi.efi=" + uki.string(), "verity_rootfs.img=" + image.string()}));
    if (cut_at) {
        std::error_code ec;
        fs::resize_file(zip, cut_at, ec);
        if (ec) return Error(ErrorKind::internal, "truncating " + zip.string());
    }
    return {};
}

Status DistroWorld::Scenario(const std::string& script) {
    return WriteFile(dir_ / "www" / "scenario.sh", script);
}

Result<std::unique_ptr<Machine>> DistroWorld::Boot(const std::string& run,
                                                   const std::vector<HostForward>& host_forwards,
                                                   const std::string& mac) {
    LaunchOptions o;
    o.name = "e2e-distro-" + name_ + "-" + run;
    o.ovmf_vars = dir_ / "vars.fd";
    o.drives = {Drive{dir_ / "disk.img", "raw", false}};
    UserNic nic;
    nic.guest_forwards = {
        {"10.0.2.100", 80,
         std::string("cmd:/usr/bin/python3 ") + E2E_DISTRO_SERVE + " " + (dir_ / "www").string()}};
    nic.host_forwards = host_forwards;
    nic.mac = mac;
    o.nics = {nic};
    // Debian's initrd unpacks to some 100 MiB, and a kexec loads another kernel and initrd.
    o.memory_mib = 1536;
    o.timeout = seconds(3600);
    return Launch(o);
}

Result<DistroWorld::Booted> DistroWorld::WaitBooted(Machine& vm) {
    Booted b;
    // Either the test unit's first line or the initramfs giving up on the root.
    ACTIVATE_ASSIGN(auto first,
                    vm.wait_for_line("DISTRO_BOOTED variant=(\\w+)|(ALERT!.*)", kDistroBoot));
    if (!first.groups[2].empty())
        return Error(ErrorKind::activation,
                     "the initramfs could not mount the root file system: " + first.groups[2]);
    b.variant = first.groups[1];
    b.arrived = first.arrived;
    ACTIVATE_ASSIGN(auto c, vm.wait_for_line("DISTRO_CMDLINE=(.*)", kStep));
    b.cmdline = c.groups[1];
    ACTIVATE_ASSIGN(auto r,
                    vm.wait_for_line("DISTRO_ROOT=(\\S+) (?:ID_PART_ENTRY_NAME=(\\S*))?", kStep));
    b.root_device = r.groups[1];
    b.root_partlabel = r.groups[2];
    ACTIVATE_ASSIGN(auto bc, vm.wait_for_line("DISTRO_BOOTCURRENT=(\\w+)", kStep));
    b.boot_current = bc.groups[1];
    ACTIVATE_ASSIGN(auto as, vm.wait_for_line("DISTRO_ASSESS=(.*)", kStep));
    b.assess_state = as.groups[1];
    auto lines = vm.lines();
    const std::string tag = "DISTRO_ASSESS_LOG ";
    for (size_t i = bc.index + 1; i < as.index; ++i) {
        auto at = lines[i].find(tag);
        if (at != std::string::npos) b.assess_log += lines[i].substr(at + tag.size()) + "\n";
    }
    ACTIVATE_ASSIGN(auto cycles, vm.wait_for_line("DISTRO_ORDERING_CYCLES=(\\d+)", kStep));
    b.ordering_cycles = std::stoi(cycles.groups[1]);
    std::fprintf(stderr, "[e2e-distro] booted %s, root %s (%s), %s, assess %s\n%s",
                 b.variant.c_str(), b.root_device.c_str(), b.root_partlabel.c_str(),
                 b.boot_current.c_str(), b.assess_state.c_str(), b.assess_log.c_str());
    return b;
}

Result<BootStatus> DistroWorld::WaitStatus(Machine& vm) { return WaitStatusLine(vm, "DISTRO_"); }

Result<std::pair<int, std::string>> DistroWorld::WaitRc(Machine& vm, milliseconds timeout) {
    return WaitRcLine(vm, "DISTRO_", timeout);
}

Status DistroWorld::WaitEnd(Machine& vm, GuestExit how) {
    ACTIVATE_TRY(vm.wait_for_line("DISTRO_END", kStep));
    // systemd stops every unit first.
    return vm.wait_for_guest_exit(how, kDistroBoot);
}

}  // namespace activate::vm
