// See ab_world.hpp.
#include "ab_world.hpp"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <regex>

namespace activate::vm {
namespace {

// The guest's /core, run by minit as PID 1 (rdinit=/minit on every UKI's cmdline). @VARIANT@
// is replaced per variant. The slots are the partitions labelled METROPOLIS-SYSTEM-A and -B
// (AbDisk: ESP, A, B, data on /dev/vda); each slot image starts with "TESTOS-ROOTFS-<V>". A clean
// exit lets minit power off.
//
// Like a real initramfs (initramfs-tools' local script), the core boots only from the root its
// command line names: the last root= (the kernel's rule too), PARTLABEL= resolved through the
// kernel's GPT partition names (PARTNAME= in each partition's uevent, what udev's by-partlabel
// links are made from). A root that does not exist, is no slot, or holds another variant's image
// stops the boot before the scenario runs: TESTOS_ROOT_FAILED, then power off (not an exit,
// which minit would answer with a restart, and so a boot loop in a run that resets in place).
constexpr const char* kCore = R"SH(#!/bin/sh
. /etc/vm-lib.sh
vm_setup
V=@VARIANT@
echo "TESTOS_VARIANT=$V"
echo "TESTOS_CMDLINE=$(cat /proc/cmdline)"
mkdir -p /esp
mount -t efivarfs efivarfs /sys/firmware/efi/efivars
EV=/sys/firmware/efi/efivars
set -- $(od -An -tx1 $EV/BootCurrent-8be4df61-93ca-11d2-aa0d-00e098032b8c)
echo "TESTOS_BOOTCURRENT=Boot$(echo "$6$5" | tr a-f A-F)"
vm_wait_for /dev/vda4 30
root_failed() {
  echo "TESTOS_ROOT_FAILED $*"
  poweroff -f
  exit 1
}
root=
for w in $(cat /proc/cmdline); do
  case $w in root=*) root=${w#root=} ;; esac
done
echo "TESTOS_ROOT=$root"
[ -n "$root" ] || root_failed "no root= on the command line"
dev=
case $root in
  PARTLABEL=*)
    for u in /sys/class/block/*/uevent; do
      grep -qxF "PARTNAME=${root#PARTLABEL=}" "$u" && dev=$(sed -n 's/^DEVNAME=//p' "$u") && break
    done ;;
  *) root_failed "root=$root: the test OS resolves only root=PARTLABEL=<name>" ;;
esac
if [ -z "$dev" ] || [ ! -b "/dev/$dev" ]; then
  echo "ALERT! $root does not exist"
  root_failed "root=$root: no partition has that label; not booting"
fi
label=${root#PARTLABEL=}
case $label in
  METROPOLIS-SYSTEM-A) slot=A ;;
  METROPOLIS-SYSTEM-B) slot=B ;;
  *) root_failed "root=$root is /dev/$dev, not a slot (METROPOLIS-SYSTEM-A or -B)" ;;
esac
want="TESTOS-ROOTFS-$V"
# Bytes other than the image's own characters (a never-written slot is zeros) print as '.'.
have=$(head -c ${#want} "/dev/$dev" | tr -c 'A-Za-z0-9-' '.')
echo "TESTOS_ROOTFS=$have"
[ "$have" = "$want" ] ||
  root_failed "root=$root names slot $slot (/dev/$dev) but it holds '$have', not $V's image '$want'"
echo "TESTOS_SLOT=$slot /dev/$dev"
mount -t vfat /dev/vda1 /esp || echo "TESTOS mounting the ESP failed"
vm_wait_for /sys/class/net/eth0 30
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
EFI=/etc/activate/update-efi.yaml
KEXEC=/etc/activate/update-kexec.yaml
URL=http://10.0.2.100
export ACTIVATE_PLUGIN_PATH=/usr/lib/activate/plugins
# act ARGS: runs activate with its log on the console (through a pipe, so progress comes as
# whole lines) and prints its exit code.
act() { { /usr/bin/activate "$@" 2>&1; echo "TESTOS_RC=$?"; } | cat; }
status() {
  out=$(/usr/bin/activate status --policy "$1" --json 2>/tmp/status.err)
  cat /tmp/status.err
  echo "TESTOS_STATUS=$out"
}
if timeout 60 wget -q -O /tmp/scenario.sh $URL/scenario.sh; then
  . /tmp/scenario.sh
else
  echo "TESTOS no scenario"
fi
echo "TESTOS_END"
exit 0
)SH";

// /init is never run: rdinit= makes minit PID 1.
constexpr const char* kNotInit = R"SH(#!/bin/sh
echo "TESTOS-ERROR /init ran instead of minit"
poweroff -f
)SH";

std::string Replace(std::string s, const std::string& from, const std::string& to) {
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
        s.replace(at, from.size(), to);
    return s;
}

Status WriteFile(const fs::path& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << data;
    out.close();
    if (!out) return Error(ErrorKind::internal, "cannot write " + path.string());
    return {};
}

// A slot image: "TESTOS-ROOTFS-<V>\n" repeated up to `size` bytes.
Status WriteRootfs(const fs::path& path, const std::string& variant, size_t size) {
    std::string line = "TESTOS-ROOTFS-" + variant + "\n", data;
    data.reserve(size);
    while (data.size() < size) data += line;
    data.resize(size);
    return WriteFile(path, data);
}

}  // namespace

std::optional<BootStatus> ParseStatus(const std::string& json) {
    BootStatus s;
    std::smatch m;
    if (!std::regex_search(json, m, std::regex(R"re("running_slot":"([AB])")re"))) return {};
    s.running = m[1];
    if (!std::regex_search(json, m, std::regex(R"re("boot_order":\[([^\]]*)\])re"))) return {};
    std::string order = m[1];
    std::regex entry(R"re(Boot[0-9A-F]{4})re");
    for (auto it = std::sregex_iterator(order.begin(), order.end(), entry);
         it != std::sregex_iterator(); ++it)
        s.boot_order.push_back(it->str());
    if (std::regex_search(json, m, std::regex(R"re("boot_next":([^,]*),"boot_current")re")))
        s.boot_next = m[1];
    std::regex slot(
        R"re(\{"letter":"([AB])","role":"(\w+)",(?:"entry":null|"entry":"(Boot[0-9A-F]{4})","description":"[^"]*","active":(true|false),"device_path":"[^"]*","boot_next":(true|false),"booted":(true|false))\})re");
    for (auto it = std::sregex_iterator(json.begin(), json.end(), slot);
         it != std::sregex_iterator(); ++it) {
        const std::smatch& sm = *it;
        s.slots[sm[1]] =
            SlotStatus{sm[2], sm[3], sm[4] == "true", sm[5] == "true", sm[6] == "true"};
    }
    if (s.slots.size() != 2) return {};
    // The record's view: "slots":{"A":{"state":"good",...},"B":{...}} and "last_activation".
    const std::string str = R"re("((?:[^"\\]|\\.)*)")re";
    auto unescape = [](std::string v) {
        std::string out;
        for (size_t i = 0; i < v.size(); ++i)
            out += (v[i] == '\\' && i + 1 < v.size()) ? v[++i] : v[i];
        return out;
    };
    for (const char* letter : {"A", "B"}) {
        if (!std::regex_search(json, m,
                               std::regex(std::string("\"") + letter +
                                          R"re(":\{"state":"(\w+)"(?:,"reason":)re" + str + ")?")))
            return {};
        s.verdicts[letter] = SlotVerdict{m[1], unescape(m[2])};
    }
    const size_t at = json.find("\"last_activation\":{");
    if (at != std::string::npos) {
        const std::string last = json.substr(at, json.find("\"boot\":", at) - at);
        LastActivation l;
        auto field = [&](const char* key) {
            std::smatch f;
            return std::regex_search(last, f, std::regex(std::string("\"") + key + "\":" + str))
                       ? unescape(f[1])
                       : std::string();
        };
        l.mode = field("mode");
        l.from = field("from");
        l.to = field("to");
        l.outcome = field("outcome");
        l.reason = field("reason");
        l.returned = !field("returned_at").empty();
        std::smatch f;
        if (std::regex_search(last, f, std::regex(R"re("switch_time_ms":(\d+))re")))
            l.switch_time_ms = std::stoll(f[1]);
        s.last = l;
    }
    return s;
}

Result<BootStatus> WaitStatusLine(Machine& vm, const std::string& prefix) {
    ACTIVATE_ASSIGN(auto line, vm.wait_for_line(prefix + "STATUS=(.*)", kStep));
    std::fprintf(stderr, "[e2e] status: %s\n", line.groups[1].c_str());
    auto s = ParseStatus(line.groups[1]);
    if (!s) return Error(ErrorKind::input, "unparsable status: " + line.line);
    return *s;
}

Result<std::pair<int, std::string>> WaitRcLine(Machine& vm, const std::string& prefix,
                                               milliseconds timeout) {
    ACTIVATE_ASSIGN(auto line, vm.wait_for_line(prefix + "RC=(\\d+)", timeout));
    std::string log;
    auto lines = vm.lines();
    for (size_t i = line.index; i-- > 0;) {
        if (lines[i].find(prefix) != std::string::npos) break;
        log = lines[i] + "\n" + log;
    }
    return std::make_pair(std::stoi(line.groups[1]), log);
}

std::string Join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : " ") + s;
    return out;
}

Status AbWorld::Init(const std::string& name) {
    name_ = name;
    dir_ = LogDir() / "e2e-ab" / name_;
    std::error_code ec;
    fs::remove_all(dir_, ec);
    fs::create_directories(dir_ / "www" / "stage", ec);
    if (ec) return Error(ErrorKind::internal, "creating " + dir_.string() + ": " + ec.message());
    ACTIVATE_ASSIGN(kernel_, FindHostKernel());
    return {};
}

Result<fs::path> StrippedCopy(const fs::path& from) {
    fs::path dir = LogDir() / "e2e-ab" / "stripped";
    fs::create_directories(dir);
    fs::path to = dir / from.filename();
    fs::path tmp = dir / (from.filename().string() + ".tmp." + std::to_string(::getpid()));
    auto r =
        RunCommand({"strip", "--strip-debug", "-o", tmp.string(), from.string()}, seconds(120));
    if (!r.ok()) return r.error();
    fs::rename(tmp, to);
    return to;
}

Result<fs::path> AbWorld::Initramfs(const std::string& variant) {
    ACTIVATE_ASSIGN(fs::path activate, StrippedCopy(E2E_AB_ACTIVATE));
    ACTIVATE_ASSIGN(fs::path core, StrippedCopy(E2E_AB_CORE_LIB));
    ACTIVATE_ASSIGN(fs::path uki, StrippedCopy(E2E_AB_PLUGIN_UKI));
    ACTIVATE_ASSIGN(fs::path efi, StrippedCopy(E2E_AB_PLUGIN_EFI));
    ACTIVATE_ASSIGN(fs::path kexec, StrippedCopy(E2E_AB_PLUGIN_KEXEC));
    ACTIVATE_ASSIGN(fs::path key, E2eSigningKey());
    // The core goes in as a file: build-initramfs.sh keeps its mode.
    fs::path core_script = dir_ / ("core-" + variant + ".sh");
    ACTIVATE_TRY(WriteFile(core_script, Replace(kCore, "@VARIANT@", variant)));
    fs::permissions(core_script, fs::perms::owner_all | fs::perms::group_read |
                                     fs::perms::group_exec | fs::perms::others_read |
                                     fs::perms::others_exec);
    InitramfsSpec spec;
    spec.modules = {"virtio_pci", "virtio_blk", "virtio_net", "efivarfs",
                    "vfat",       "nls_cp437",  "nls_ascii",  "nls_utf8"};
    spec.modules.insert(spec.modules.end(), extra_modules.begin(), extra_modules.end());
    spec.init = kNotInit;
    spec.files = {
        // The shipped static minit is PID 1; the scenario runs as its core.
        {E2E_AB_MINIT, "/minit"},
        {core_script, "/core"},
        // The binaries' RUNPATH names the build tree: the core library goes there too, so
        // that the dependency copying (elf) finds it present and skips the unstripped one.
        // And where the loader looks by default, beside the other libraries: a build tree under
        // /tmp is hidden in the guest by the tmpfs guest-lib.sh mounts there.
        {core, E2E_AB_CORE_LIB},
        {core, "/usr/lib/x86_64-linux-gnu/" + fs::path(E2E_AB_CORE_LIB).filename().string()},
        {core, "/usr/lib/libactivate-core.so"},
        {activate, "/usr/bin/activate", true},
        {uki, "/usr/lib/activate/plugins/uki.so", true},
        {efi, "/usr/lib/activate/plugins/efi.so", true},
        {kexec, "/usr/lib/activate/plugins/kexec.so", true},
        {fs::path(E2E_AB_CONFIG_DIR) / "update-efi.yaml", "/etc/activate/update-efi.yaml"},
        {fs::path(E2E_AB_CONFIG_DIR) / "update-kexec.yaml", "/etc/activate/update-kexec.yaml"},
        // The shipped policies install only bundles signed by a trusted key.
        {key / "release.pub", "/etc/activate/keys/release.pub"},
    };
    return BuildInitramfs(spec);
}

Result<fs::path> AbWorld::Uki(const std::string& variant, const std::string& slot) {
    ACTIVATE_ASSIGN(fs::path initrd, Initramfs(variant));
    UkiSpec spec;
    spec.kernel = kernel_.bzimage;
    spec.initrd = initrd;
    spec.cmdline = "console=ttyS0 panic=-1 quiet rdinit=/minit root=PARTLABEL=METROPOLIS-SYSTEM-" +
                   slot + (extra_cmdline.empty() ? "" : " " + extra_cmdline);
    return BuildUki(spec);
}

// The ESP has room for a third UKI while one is replaced.
Status AbWorld::MakeDisk() {
    ACTIVATE_ASSIGN(fs::path xa, Uki("X", "A"));
    ACTIVATE_ASSIGN(fs::path xb, Uki("X", "B"));
    ACTIVATE_TRY(WriteRootfs(dir_ / "rootfs-X.img", "X", 1 << 20));
    DiskSpec spec = AbDisk(xa, xa, xb);
    spec.esp_size_mib = 128;
    spec.partitions[0].image = dir_ / "rootfs-X.img";
    ACTIVATE_ASSIGN(fs::path disk, BuildDisk(spec));
    ACTIVATE_TRY(CopyImage(disk, dir_ / "disk.img"));
    return CopyOvmfVarsTemplate(dir_ / "vars.fd");
}

Result<fs::path> E2eSigningKey() {
    fs::path dir = LogDir() / "e2e-ab" / "signing-key";
    if (fs::exists(dir / "release.secret") && fs::exists(dir / "release.pub")) return dir;
    // Made aside and renamed into place: a test running at the same time either wins the
    // rename or finds the winner's key; both then sign with the same one.
    fs::path tmp = LogDir() / "e2e-ab" / ("signing-key.tmp." + std::to_string(::getpid()));
    std::error_code ec;
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp, ec);
    if (ec) return Error(ErrorKind::internal, "creating " + tmp.string() + ": " + ec.message());
    auto r = RunCommand({E2E_AB_ACTIVATE, "bundle", "keygen", "-o", (tmp / "release").string()},
                        seconds(60));
    if (!r.ok()) return r.error();
    fs::rename(tmp, dir, ec);
    if (ec) fs::remove_all(tmp, ec);
    if (!fs::exists(dir / "release.secret") || !fs::exists(dir / "release.pub"))
        return Error(ErrorKind::internal, "no signing key in " + dir.string());
    return dir;
}

// The UKI goes first, so that the device checks it before writing the slot
// (docs/bundle-format.md). Every bundle has version 1.0: equal versions are never a downgrade.
Status AbWorld::MakeBundle(const std::string& name, const fs::path& uki, const std::string& variant,
                           size_t image_size, size_t uki_size) {
    fs::path stage = dir_ / "www" / "stage";
    fs::remove(stage / "kernel_efi.efi");
    fs::copy_file(uki, stage / "kernel_efi.efi");
    if (uki_size) fs::resize_file(stage / "kernel_efi.efi", uki_size);
    ACTIVATE_TRY(WriteRootfs(stage / "verity_rootfs.img", variant, image_size));
    return CreateSignedBundle(dir_ / "www" / (name + ".zip"),
                              {"kernel_efi.efi=" + (stage / "kernel_efi.efi").string(),
                               "verity_rootfs.img=" + (stage / "verity_rootfs.img").string()});
}

GuestForward RelayTo(const std::string& guest_address, uint16_t port) {
    return {guest_address, 80,
            std::string("cmd:/usr/bin/python3 ") + E2E_AB_RELAY + " " + std::to_string(port)};
}

Status CreateSignedBundle(const fs::path& zip, const std::vector<std::string>& members) {
    std::error_code ec;
    fs::remove(zip, ec);
    ACTIVATE_ASSIGN(fs::path key, E2eSigningKey());
    std::vector<std::string> argv = {E2E_AB_ACTIVATE,
                                     "bundle",
                                     "create",
                                     "--key",
                                     (key / "release.secret").string(),
                                     "--compatible",
                                     "metropolis-x86_64",
                                     "--version",
                                     "1.0",
                                     "-o",
                                     zip.string()};
    argv.insert(argv.end(), members.begin(), members.end());
    // Signing hashes every member: a few seconds for a few hundred MiB.
    auto r = RunCommand(argv, seconds(300));
    if (!r.ok()) return r.error();
    return {};
}

Status AbWorld::Scenario(const std::string& script) {
    return WriteFile(dir_ / "www" / "scenario.sh", script);
}

Result<std::unique_ptr<Machine>> AbWorld::Boot(const std::string& run, bool reboot_ends_run) {
    LaunchOptions o;
    o.name = "e2e-ab-" + name_ + "-" + run;
    o.ovmf_vars = dir_ / "vars.fd";
    o.drives = {Drive{dir_ / "disk.img", "raw", false}};
    UserNic nic;
    nic.guest_forwards = {
        {"10.0.2.100", 80,
         std::string("cmd:/usr/bin/python3 ") + E2E_AB_SERVE + " " + (dir_ / "www").string()}};
    nic.guest_forwards.insert(nic.guest_forwards.end(), extra_guest_forwards.begin(),
                              extra_guest_forwards.end());
    o.nics = {nic};
    o.memory_mib = 1024;
    o.timeout = seconds(1200);
    o.reboot_ends_run = reboot_ends_run;
    o.extra_args = extra_qemu_args;
    return Launch(o);
}

Result<AbWorld::Booted> AbWorld::WaitBooted(Machine& vm) {
    Booted b;
    // minit's banner comes before anything its core prints, after every boot and every kexec.
    ACTIVATE_TRY(vm.wait_for_line("^minit [0-9.]+: starting /core$", kBoot));
    ACTIVATE_ASSIGN(auto v, vm.wait_for_line("TESTOS_VARIANT=(\\w+)", kStep));
    b.variant = v.groups[1];
    b.arrived = v.arrived;
    ACTIVATE_ASSIGN(auto c, vm.wait_for_line("TESTOS_CMDLINE=(.*)", kStep));
    b.cmdline = c.groups[1];
    ACTIVATE_ASSIGN(auto bc, vm.wait_for_line("TESTOS_BOOTCURRENT=(\\w+)", kStep));
    b.boot_current = bc.groups[1];
    ACTIVATE_ASSIGN(auto root, vm.wait_for_line("^TESTOS_ROOT=(.*)$", kStep));
    b.root = root.groups[1];
    // The core's next line is either the slot it found or why it stopped.
    ACTIVATE_ASSIGN(auto slot,
                    vm.wait_for_line("^TESTOS_SLOT=([AB]) |^TESTOS_ROOT_FAILED (.*)$", kStep));
    if (!slot.groups[2].empty())
        return Error(ErrorKind::activation, "the test OS " + b.variant + " (booted through " +
                                                b.boot_current +
                                                ") did not boot: " + slot.groups[2] +
                                                "\ncmdline: " + b.cmdline + "\n" + vm.tail());
    b.slot = slot.groups[1];
    // Printed between the two, before the core compared it with the variant's image.
    const auto lines = vm.lines();
    for (size_t i = root.index + 1; i < slot.index; ++i)
        if (lines[i].rfind("TESTOS_ROOTFS=", 0) == 0) b.rootfs = lines[i].substr(14);
    std::fprintf(stderr, "[e2e-ab] booted %s from slot %s (%s) cmdline: %s\n", b.variant.c_str(),
                 b.slot.c_str(), b.boot_current.c_str(), b.cmdline.c_str());
    return b;
}

Status AbWorld::WaitPowerOff(Machine& vm) {
    ACTIVATE_TRY(vm.wait_for_line("^TESTOS_END$", kStep));
    ACTIVATE_TRY(vm.wait_for_line("^minit: core /core exited with status 0$", kStep));
    ACTIVATE_TRY(vm.wait_for_line("^minit: powering off$", kStep));
    return vm.wait_for_power_off(kStep);
}

Result<BootStatus> AbWorld::WaitStatus(Machine& vm) { return WaitStatusLine(vm, "TESTOS_"); }

Result<std::pair<int, std::string>> AbWorld::WaitRc(Machine& vm, milliseconds timeout) {
    return WaitRcLine(vm, "TESTOS_", timeout);
}

}  // namespace activate::vm
