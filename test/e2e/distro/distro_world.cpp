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
# package_facts: the package's state, the units its postinst enabled, the files it put in place.
package_facts() {
  echo "DISTRO_PACKAGE=$(dpkg-query -W -f='${Status} ${Version}' activate 2>&1)"
  echo "DISTRO_ENABLED=$(systemctl is-enabled activate-assess.service activate.socket 2>&1 |
    paste -sd' ')"
  for f in $(dpkg -L activate 2>/dev/null |
             grep -E '^/usr/bin/activate$|/plugins/|/systemd/system/|^/etc/activate'); do
    echo "DISTRO_FILE $(stat -c '%a %U:%G %n' "$f")"
  done
  echo "DISTRO_PACKAGE_END"
}
# dpkg_install: dpkg -i of the served package, its output and exit code.
dpkg_install() {
  echo "DISTRO_BEFORE_INSTALL=$(command -v activate || echo none)"
  [ -f /run/activate.deb ] || curl -fsS -o /run/activate.deb "$URL/activate.deb"
  out=$(dpkg -i /run/activate.deb 2>&1); rc=$?
  printf '%s\n' "$out" | sed 's/^/DISTRO_DPKG_LOG /'
  echo "DISTRO_DPKG_RC=$rc"
}
# install_package: what README "On Debian" has a user do on a machine: install the package
# (fetched from the test's server), trust the release key, choose the policy.
install_package() {
  dpkg_install
  curl -fsS -o /etc/activate/keys/release.pub "$URL/release.pub"
  ln -sfn update-kexec.yaml /etc/activate/update.yaml
  package_facts
}
# reinstall_package: the same package again, dpkg's upgrade path (prerm upgrade, postinst
# configure <installed version>).
reinstall_package() {
  dpkg_install
  package_facts
}
# socket_facts: activate.socket listening, its path's and directory's modes, the server not yet
# started (socket activation starts it on the first connection).
socket_facts() {
  s=/run/activate/activate.sock
  echo "DISTRO_SOCKET=$(systemctl is-active activate.socket)" \
    "$(stat -c '%a %U:%G' $s) dir $(stat -c '%a %U:%G' ${s%/*})" \
    "flags $(awk -v p=$s '$8 == p { print $4 }' /proc/net/unix | paste -sd,)"
  echo "DISTRO_SERVICE=$(systemctl is-active activate.service)"
}
# serve_log: the server's state and journal.
serve_log() {
  echo "DISTRO_SERVICE=$(systemctl is-active activate.service)"
  journalctl -b -o cat -u activate.service | sed 's/^/DISTRO_SERVE_LOG /'
  echo "DISTRO_SERVE_LOG_END"
}
# request ARGS: the client of the socket-activated server, as root and as nobody.
request() { /usr/bin/activate request "$@" 2>&1; echo "DISTRO_RC=$?"; }
request_as_nobody() {
  setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/activate request "$@" 2>&1
  echo "DISTRO_RC=$?"
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

// The text after `tag` on each console line in [from, to), one per line.
std::string TaggedLines(const Machine& vm, size_t from, size_t to, const std::string& tag) {
    auto lines = vm.lines();
    std::string out;
    for (size_t i = from; i < to && i < lines.size(); ++i) {
        auto at = lines[i].find(tag);
        if (at != std::string::npos) out += lines[i].substr(at + tag.size()) + "\n";
    }
    return out;
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

Result<fs::path> DistroWorld::Package() {
    // CPack into this test's directory: tests running at once do not share its staging tree.
    // SOURCE_DATE_EPOCH fixes the time stamps in the archive, so that the same build makes the
    // same bytes and the slot images that hold the package stay cached.
    const fs::path out = dir_ / "packages";
    auto r =
        RunCommand({"env", "SOURCE_DATE_EPOCH=1700000000", "cpack", "--config",
                    std::string(E2E_DISTRO_BUILD_DIR) + "/CPackConfig.cmake", "-B", out.string()},
                   seconds(600));
    if (!r.ok()) return r.error().with_context("making the Debian package");
    fs::path deb;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(out, ec)) {
        const std::string name = e.path().filename().string();
        if (name.rfind("activate_", 0) == 0 && e.path().extension() == ".deb") deb = e.path();
    }
    if (deb.empty())
        return Error(ErrorKind::internal, "cpack made no activate_*.deb in " + out.string());
    // Shared under one name, so that slot images made from the same package stay cached.
    ACTIVATE_ASSIGN(std::string bytes, ReadFile(deb));
    ACTIVATE_ASSIGN(fs::path shared, SharedFile("activate.deb", bytes));
    ACTIVATE_TRY(WriteFile(dir_ / "www" / "activate.deb", bytes));
    ACTIVATE_ASSIGN(fs::path key, E2eSigningKey());
    ACTIVATE_ASSIGN(std::string pub, ReadFile(key / "release.pub"));
    ACTIVATE_TRY(WriteFile(dir_ / "www" / "release.pub", pub));
    return shared;
}

Result<fs::path> DistroWorld::SlotImage(const std::string& variant,
                                        const std::vector<GuestFile>& extra,
                                        const fs::path& package) {
    ACTIVATE_ASSIGN(fs::path runner, SharedFile("e2e-scenario", kScenarioRunner, true));
    ACTIVATE_ASSIGN(fs::path runner_unit, SharedFile("e2e-scenario.service", kScenarioUnit));
    ACTIVATE_ASSIGN(fs::path fstab, SharedFile("fstab", kFstab));
    ACTIVATE_ASSIGN(fs::path variant_file, SharedFile("variant-" + variant, variant + "\n"));
    Ext4Spec spec;
    spec.tarball = debian_.tarball;
    spec.files = {
        {runner, "/usr/local/sbin/e2e-scenario"},
        {runner_unit, "/etc/systemd/system/e2e-scenario.service"},
        {fstab, "/etc/fstab"},
        {variant_file, "/etc/e2e-variant"},
    };
    spec.links = {
        {"/etc/systemd/system/e2e-scenario.service",
         "/etc/systemd/system/multi-user.target.wants/e2e-scenario.service"},
    };
    if (!package.empty()) {
        // The package's maintainer scripts enable activate-assess.service and activate.socket;
        // what is the site's is added beside it, as on X by install_package.
        spec.debs = {package};
        ACTIVATE_ASSIGN(fs::path key, E2eSigningKey());
        // The shipped policies install only bundles signed by a trusted key.
        spec.files.push_back({key / "release.pub", "/etc/activate/keys/release.pub"});
        // The policy the unit assesses with (README "Usage"): both shipped ones keep the same
        // boot entries and have the same assessment, so either does.
        spec.links.push_back({"update-kexec.yaml", "/etc/activate/update.yaml"});
    }
    spec.files.insert(spec.files.end(), extra.begin(), extra.end());
    // Room for the files a test adds in the guest. A slot image without the package gets room
    // for it (14 MB installed) twice over: `dpkg -i` of an installed package unpacks each file
    // beside the old one (.dpkg-new) before it renames. Such an image is never sent in a bundle.
    spec.free_mib = package.empty() ? 64 : 24;
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

Status DistroWorld::MakeDisk(const std::vector<GuestFile>& extra, const fs::path& package) {
    ACTIVATE_ASSIGN(fs::path a, Uki("A"));
    ACTIVATE_ASSIGN(fs::path b, Uki("B"));
    ACTIVATE_ASSIGN(fs::path x, SlotImage("X", extra, package));
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

Result<std::unique_ptr<Machine>> DistroWorld::Boot(
    const std::string& run, const std::vector<HostForward>& host_forwards, const std::string& mac,
    bool reboot_ends_run, const std::vector<GuestForward>& guest_forwards) {
    LaunchOptions o;
    o.name = "e2e-distro-" + name_ + "-" + run;
    o.ovmf_vars = dir_ / "vars.fd";
    o.drives = {Drive{dir_ / "disk.img", "raw", false}};
    UserNic nic;
    nic.guest_forwards = {
        {"10.0.2.100", 80,
         std::string("cmd:/usr/bin/python3 ") + E2E_DISTRO_SERVE + " " + (dir_ / "www").string()}};
    nic.guest_forwards.insert(nic.guest_forwards.end(), guest_forwards.begin(),
                              guest_forwards.end());
    nic.host_forwards = host_forwards;
    nic.mac = mac;
    o.nics = {nic};
    // Debian's initrd unpacks to some 100 MiB, and a kexec loads another kernel and initrd.
    o.memory_mib = 1536;
    o.timeout = seconds(3600);
    o.reboot_ends_run = reboot_ends_run;
    return Launch(o);
}

Result<fs::path> DistroWorld::SshKey() {
    const fs::path dir = LogDir() / "e2e-distro" / "guest-files";
    const fs::path key = dir / "ssh-key";
    if (fs::exists(key) && fs::exists(key.string() + ".pub")) return key;
    const fs::path tmp = dir / ("ssh-key.tmp." + std::to_string(::getpid()));
    std::error_code ec;
    fs::create_directories(dir, ec);
    fs::remove(tmp, ec);
    fs::remove(tmp.string() + ".pub", ec);
    auto r = RunCommand(
        {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "activate-e2e", "-f", tmp.string()},
        seconds(60));
    if (!r.ok()) return r.error();
    fs::rename(tmp.string() + ".pub", key.string() + ".pub", ec);
    if (!ec) fs::rename(tmp, key, ec);
    if (ec) return Error(ErrorKind::internal, "renaming " + tmp.string() + ": " + ec.message());
    return key;
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
    b.assess_log = TaggedLines(vm, bc.index + 1, as.index, "DISTRO_ASSESS_LOG ");
    ACTIVATE_ASSIGN(auto cycles, vm.wait_for_line("DISTRO_ORDERING_CYCLES=(\\d+)", kStep));
    b.ordering_cycles = std::stoi(cycles.groups[1]);
    std::fprintf(stderr, "[e2e-distro] booted %s, root %s (%s), %s, assess %s\n%s",
                 b.variant.c_str(), b.root_device.c_str(), b.root_partlabel.c_str(),
                 b.boot_current.c_str(), b.assess_state.c_str(), b.assess_log.c_str());
    return b;
}

Result<BootStatus> DistroWorld::WaitStatus(Machine& vm) { return WaitStatusLine(vm, "DISTRO_"); }

Result<DistroWorld::Installed> DistroWorld::WaitInstalled(Machine& vm) {
    ACTIVATE_ASSIGN(auto before, vm.wait_for_line("DISTRO_BEFORE_INSTALL=(.*)", kStep));
    // dpkg -i unpacks some MiB and runs the maintainer scripts and ldconfig under TCG.
    ACTIVATE_ASSIGN(auto rc, vm.wait_for_line("DISTRO_DPKG_RC=(\\d+)", kStep));
    ACTIVATE_ASSIGN(Installed facts, WaitPackageFacts(vm));
    facts.before = before.groups[1];
    facts.dpkg_rc = std::stoi(rc.groups[1]);
    facts.dpkg_log = TaggedLines(vm, before.index + 1, rc.index, "DISTRO_DPKG_LOG ");
    std::fprintf(stderr, "[e2e-distro] dpkg -i exited %d\n%s", facts.dpkg_rc,
                 facts.dpkg_log.c_str());
    return facts;
}

Result<DistroWorld::Installed> DistroWorld::WaitPackageFacts(Machine& vm) {
    Installed facts;
    ACTIVATE_ASSIGN(auto st, vm.wait_for_line("DISTRO_PACKAGE=(.*)", kStep));
    facts.status = st.groups[1];
    ACTIVATE_ASSIGN(auto en, vm.wait_for_line("DISTRO_ENABLED=(.*)", kStep));
    facts.enabled = en.groups[1];
    ACTIVATE_ASSIGN(auto end, vm.wait_for_line("DISTRO_PACKAGE_END", kStep));
    std::istringstream files(TaggedLines(vm, en.index + 1, end.index, "DISTRO_FILE "));
    for (std::string line; std::getline(files, line);) facts.files.push_back(line);
    std::fprintf(stderr, "[e2e-distro] package: %s; enabled: %s; %zu files\n", facts.status.c_str(),
                 facts.enabled.c_str(), facts.files.size());
    return facts;
}

Result<DistroWorld::SocketFacts> DistroWorld::WaitSocketFacts(Machine& vm) {
    SocketFacts f;
    // "<state> <mode> <owner> dir <mode> <owner> flags <flags,...>"; stat's and awk's output is
    // empty when the socket does not exist.
    ACTIVATE_ASSIGN(auto m,
                    vm.wait_for_line("DISTRO_SOCKET=(\\S+) ?(.*) dir ?(.*) flags ?(.*)", kStep));
    f.state = m.groups[1];
    f.socket_mode = m.groups[2];
    f.dir_mode = m.groups[3];
    f.flags = m.groups[4];
    ACTIVATE_ASSIGN(auto svc, vm.wait_for_line("DISTRO_SERVICE=(\\S+)", kStep));
    f.service = svc.groups[1];
    std::fprintf(stderr, "[e2e-distro] %s\n[e2e-distro] %s\n", m.line.c_str(), svc.line.c_str());
    return f;
}

Result<std::pair<std::string, std::string>> DistroWorld::WaitServeLog(Machine& vm) {
    ACTIVATE_ASSIGN(auto svc, vm.wait_for_line("DISTRO_SERVICE=(\\S+)", kStep));
    ACTIVATE_ASSIGN(auto end, vm.wait_for_line("DISTRO_SERVE_LOG_END", kStep));
    std::string log = TaggedLines(vm, svc.index + 1, end.index, "DISTRO_SERVE_LOG ");
    std::fprintf(stderr, "[e2e-distro] activate.service %s, journal:\n%s", svc.groups[1].c_str(),
                 log.c_str());
    return std::make_pair(svc.groups[1], log);
}

Result<std::pair<int, std::string>> DistroWorld::WaitRc(Machine& vm, milliseconds timeout) {
    return WaitRcLine(vm, "DISTRO_", timeout);
}

Status DistroWorld::WaitEnd(Machine& vm, GuestExit how) {
    ACTIVATE_TRY(vm.wait_for_line("DISTRO_END", kStep));
    // systemd stops every unit first.
    return vm.wait_for_guest_exit(how, kDistroBoot);
}

}  // namespace activate::vm
