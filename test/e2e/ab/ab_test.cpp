// A/B slot updates on a real kernel and real OVMF firmware (issue 6). Three test OS variants
// X, Y, Z are UKIs whose busybox init prints TESTOS_* lines and then runs the scenario the test
// serves at http://10.0.2.100/scenario.sh, calling the project's `activate` with the shipped
// policies. Bundles are zips served from the same directory; the disk and the EFI variable store
// are private files kept across runs, so a "reboot" is a new QEMU run on the same state.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <vm/images.hpp>
#include <vm/phase.hpp>
#include <vm/qemu.hpp>

namespace activate::vm {
namespace {

#define AB_ASSERT_OK(expr)                                  \
    do {                                                    \
        const auto& ab_r_ = (expr);                         \
        ASSERT_TRUE(ab_r_.ok()) << ab_r_.error().message(); \
    } while (0)
#define AB_CONCAT_INNER(a, b) a##b
#define AB_CONCAT(a, b) AB_CONCAT_INNER(a, b)
#define AB_ASSERT_OK_AND_ASSIGN(decl, expr) \
    AB_ASSERT_OK_AND_ASSIGN_IMPL(AB_CONCAT(ab_r_, __LINE__), decl, expr)
#define AB_ASSERT_OK_AND_ASSIGN_IMPL(tmp, decl, expr) \
    auto tmp = (expr);                                \
    ASSERT_TRUE(tmp.ok()) << tmp.error().message();   \
    decl = std::move(tmp).value()

// Generous: under TCG on a loaded machine one OVMF boot to the init takes 10 s to minutes.
constexpr auto kBoot = seconds(600);
constexpr auto kStep = seconds(300);

// The guest's /init. @VARIANT@ is replaced per variant. Slots are partitions 2 (A) and 3 (B)
// of /dev/vda (AbDisk: ESP, A, B, data); each slot image starts with "TESTOS-ROOTFS-<V>".
constexpr const char* kInit = R"SH(#!/bin/sh
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
mount -t vfat /dev/vda1 /esp || echo "TESTOS mounting the ESP failed"
case "$(cat /proc/cmdline)" in
  *METROPOLIS-SYSTEM-A*) echo "TESTOS_ROOTFS=$(head -c 15 /dev/vda2)" ;;
  *METROPOLIS-SYSTEM-B*) echo "TESTOS_ROOTFS=$(head -c 15 /dev/vda3)" ;;
esac
vm_wait_for /sys/class/net/eth0 30
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
EFI=/etc/activate/update-efi.yaml
KEXEC=/etc/activate/update-kexec.yaml
URL=http://10.0.2.100
export ACTIVATE_PLUGIN_DIR=/usr/lib/activate/plugins
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
vm_poweroff
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

// What `activate status --json` said about one slot.
struct SlotStatus {
    std::string role;   // running | target
    std::string entry;  // Boot#### or empty
    bool active = false, boot_next = false, booted = false;
};
struct BootStatus {
    std::string running;
    std::vector<std::string> boot_order;
    std::string boot_next;                    // "null" or "\"Boot0003\""-like raw value
    std::map<std::string, SlotStatus> slots;  // by letter
};

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
    return s;
}

std::string Join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : " ") + s;
    return out;
}

// Everything one test needs: images (cached by the harness), a private disk, variable store and
// web root, and the QEMU options pointing at them.
class AbTest : public ::testing::Test {
  protected:
    void SetUp() override {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        name_ = std::string(info->test_suite_name()) + "." + info->name();
        dir_ = LogDir() / "e2e-ab" / name_;
        fs::remove_all(dir_);
        fs::create_directories(dir_ / "www" / "stage");
        auto k = FindHostKernel();
        ASSERT_TRUE(k.ok()) << k.error().message();
        kernel_ = *k;
    }

    // The initramfs of one variant, with activate, its core library, the three plugins and the
    // shipped policies at the installed layout (/usr/bin, /usr/lib, /usr/lib/activate/plugins).
    // The build's binaries carry debug info (tens of MiB); the guest gets stripped copies, made
    // once in a directory shared by the tests so that the image cache sees the same inputs.
    Result<fs::path> Stripped(const fs::path& from) {
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

    Result<fs::path> Initramfs(const std::string& variant) {
        ACTIVATE_ASSIGN(fs::path activate, Stripped(E2E_AB_ACTIVATE));
        ACTIVATE_ASSIGN(fs::path core, Stripped(E2E_AB_CORE_LIB));
        ACTIVATE_ASSIGN(fs::path uki, Stripped(E2E_AB_PLUGIN_UKI));
        ACTIVATE_ASSIGN(fs::path efi, Stripped(E2E_AB_PLUGIN_EFI));
        ACTIVATE_ASSIGN(fs::path kexec, Stripped(E2E_AB_PLUGIN_KEXEC));
        ACTIVATE_ASSIGN(fs::path key, SigningKey());
        InitramfsSpec spec;
        spec.modules = {"virtio_pci", "virtio_blk", "virtio_net", "efivarfs",
                        "vfat",       "nls_cp437",  "nls_ascii",  "nls_utf8"};
        spec.init = Replace(kInit, "@VARIANT@", variant);
        spec.files = {
            // The binaries' RUNPATH names the build tree: the core library goes there too, so
            // that the dependency copying (elf) finds it present and skips the unstripped one.
            {core, E2E_AB_CORE_LIB},
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

    // A UKI of `variant` whose cmdline names `slot` ("A", "B", or "X": the kexec placeholder).
    Result<fs::path> Uki(const std::string& variant, const std::string& slot) {
        ACTIVATE_ASSIGN(fs::path initrd, Initramfs(variant));
        UkiSpec spec;
        spec.kernel = kernel_.bzimage;
        spec.initrd = initrd;
        spec.cmdline = "console=ttyS0 panic=-1 quiet root=PARTLABEL=METROPOLIS-SYSTEM-" + slot;
        return BuildUki(spec);
    }

    // The starting disk: X in slot A (UKIs at the default path and boot-a.efi, image in A),
    // X with slot B's cmdline at boot-b.efi. The ESP has room for a third UKI while one is
    // replaced.
    Status MakeDisk() {
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

    // The bundle signing key: the RFC 8032 section 7.1 TEST 1 key pair in the key file format
    // of docs/bundle-format.md. Fixed, so that the guest images stay cacheable across tests.
    Result<fs::path> SigningKey() {
        fs::path dir = LogDir() / "e2e-ab" / "key";
        fs::create_directories(dir);
        for (auto [name, text] : std::vector<std::pair<std::string, std::string>>{
                 {"release.secret",
                  "activate-ed25519-secret 9d61b19deffd5a60ba844af492ec2cc444"
                  "49c5697b326919703bac031cae7f60\n"},
                 {"release.pub",
                  "activate-ed25519-public d75a980182b10ab7d54bfed3c964073a0ee1"
                  "72f3daa62325af021a68f707511a\n"}}) {
            // Same bytes from every test: write and rename, so parallel tests never see half.
            fs::path tmp = dir / (name + ".tmp." + std::to_string(::getpid()));
            ACTIVATE_TRY(WriteFile(tmp, text));
            fs::rename(tmp, dir / name);
        }
        return dir;
    }

    // www/<name>.zip, signed for the shipped policies' compatible string, holding `uki` as
    // kernel_efi.efi and a slot image of `image_size` bytes (image first, as a build system
    // would stream it). Every bundle has version 1.0: equal versions are never a downgrade.
    Status MakeBundle(const std::string& name, const fs::path& uki, const std::string& variant,
                      size_t image_size, size_t uki_size = 0) {
        fs::path stage = dir_ / "www" / "stage";
        fs::remove(stage / "kernel_efi.efi");
        fs::copy_file(uki, stage / "kernel_efi.efi");
        if (uki_size) fs::resize_file(stage / "kernel_efi.efi", uki_size);
        ACTIVATE_TRY(WriteRootfs(stage / "verity_rootfs.img", variant, image_size));
        fs::path zip = dir_ / "www" / (name + ".zip");
        fs::remove(zip);
        ACTIVATE_ASSIGN(fs::path key, SigningKey());
        auto r = RunCommand(
            {E2E_AB_ACTIVATE, "bundle", "create", "--key", (key / "release.secret").string(),
             "--compatible", "metropolis-x86_64", "--version", "1.0", "-o", zip.string(),
             "verity_rootfs.img=" + (stage / "verity_rootfs.img").string(),
             "kernel_efi.efi=" + (stage / "kernel_efi.efi").string()},
            seconds(120));
        if (!r.ok()) return r.error();
        return {};
    }

    Status Scenario(const std::string& script) {
        return WriteFile(dir_ / "www" / "scenario.sh", script);
    }

    Result<std::unique_ptr<Machine>> Boot(const std::string& run) {
        LaunchOptions o;
        o.name = "e2e-ab-" + name_ + "-" + run;
        o.ovmf_vars = dir_ / "vars.fd";
        o.drives = {Drive{dir_ / "disk.img", "raw", false}};
        UserNic nic;
        nic.guest_forwards = {
            {"10.0.2.100", 80,
             std::string("cmd:/usr/bin/python3 ") + E2E_AB_SERVE + " " + (dir_ / "www").string()}};
        o.nics = {nic};
        o.memory_mib = 1024;
        o.timeout = seconds(1200);
        return Launch(o);
    }

    // Waits for the TESTOS lines every boot prints; returns {variant, cmdline, BootCurrent}.
    struct Booted {
        std::string variant, cmdline, boot_current, rootfs;
    };
    static Result<Booted> WaitBooted(Machine& vm) {
        Booted b;
        ACTIVATE_ASSIGN(auto v, vm.wait_for_line("TESTOS_VARIANT=(\\w+)", kBoot));
        b.variant = v.groups[1];
        ACTIVATE_ASSIGN(auto c, vm.wait_for_line("TESTOS_CMDLINE=(.*)", kStep));
        b.cmdline = c.groups[1];
        ACTIVATE_ASSIGN(auto bc, vm.wait_for_line("TESTOS_BOOTCURRENT=(\\w+)", kStep));
        b.boot_current = bc.groups[1];
        ACTIVATE_ASSIGN(auto r, vm.wait_for_line("TESTOS_ROOTFS=(.*)", kStep));
        b.rootfs = r.groups[1];
        std::fprintf(stderr, "[e2e-ab] booted %s (%s) cmdline: %s\n", b.variant.c_str(),
                     b.boot_current.c_str(), b.cmdline.c_str());
        return b;
    }

    static Result<BootStatus> WaitStatus(Machine& vm) {
        ACTIVATE_ASSIGN(auto line, vm.wait_for_line("TESTOS_STATUS=(.*)", kStep));
        std::fprintf(stderr, "[e2e-ab] status: %s\n", line.groups[1].c_str());
        auto s = ParseStatus(line.groups[1]);
        if (!s) return Error(ErrorKind::input, "unparsable status: " + line.line);
        return *s;
    }

    // The exit code of the next `act` and the console lines activate printed before it.
    static Result<std::pair<int, std::string>> WaitRc(Machine& vm, milliseconds timeout = kStep) {
        ACTIVATE_ASSIGN(auto line, vm.wait_for_line("TESTOS_RC=(\\d+)", timeout));
        std::string log;
        auto lines = vm.lines();
        for (size_t i = line.index; i-- > 0;) {
            if (lines[i].rfind("TESTOS_", 0) == 0) break;
            log = lines[i] + "\n" + log;
        }
        return std::make_pair(std::stoi(line.groups[1]), log);
    }

    std::string name_;
    fs::path dir_;
    HostKernel kernel_;
};

// Checks that `s` has `slot` running, booted through its own entry, first in BootOrder, and that
// every entry of `initial` (OVMF's own, from the first boot) is still in BootOrder.
void ExpectMarkedGood(const BootStatus& s, const std::string& slot,
                      const std::vector<std::string>& initial) {
    EXPECT_EQ(s.running, slot);
    const SlotStatus& r = s.slots.at(slot);
    EXPECT_EQ(r.role, "running");
    ASSERT_FALSE(r.entry.empty()) << "slot " << slot << " has no boot entry";
    EXPECT_TRUE(r.active);
    EXPECT_TRUE(r.booted) << "slot " << slot << " was not booted through its entry " << r.entry;
    ASSERT_FALSE(s.boot_order.empty());
    EXPECT_EQ(s.boot_order.front(), r.entry) << "BootOrder " << Join(s.boot_order);
    // OVMF re-sorts its own entries at boot, so only their presence is checked.
    for (const auto& e : initial) {
        EXPECT_NE(std::find(s.boot_order.begin(), s.boot_order.end(), e), s.boot_order.end())
            << "firmware entry " << e << " lost from BootOrder " << Join(s.boot_order);
    }
}

// (test 2) X in slot A installs Y into B and reboots into it with BootNext; Y marks itself good
// and installs Z into A; Z boots from A and marks itself good.
TEST_F(AbTest, EfiBootNextInstallsYThenZ) {
    PhaseTimer phase(name_);
    ASSERT_TRUE(MakeDisk().ok());
    AB_ASSERT_OK_AND_ASSIGN(auto yb, Uki("Y", "B"));
    AB_ASSERT_OK_AND_ASSIGN(auto za, Uki("Z", "A"));
    AB_ASSERT_OK(MakeBundle("Y", yb, "Y", 1 << 20));
    AB_ASSERT_OK(MakeBundle("Z", za, "Z", 2 << 20));
    AB_ASSERT_OK(Scenario(R"SH(
case $V in
X) status $EFI; act --policy $EFI --bundle $URL/Y.zip ;;
Y) act mark-good --policy $EFI; status $EFI; act --policy $EFI --bundle $URL/Z.zip ;;
Z) act mark-good --policy $EFI; status $EFI ;;
esac
)SH"));
    phase.mark("images and bundles");

    std::vector<std::string> initial;
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run1"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "X");
        EXPECT_EQ(b.rootfs, "TESTOS-ROOTFS-X");
        phase.mark("run 1: OVMF boots X from slot A");
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        EXPECT_EQ(s.running, "A");
        initial = s.boot_order;
        EXPECT_FALSE(initial.empty()) << "OVMF made no boot entries";
        AB_ASSERT_OK(vm->wait_for_guest_exit(GuestExit::reboot, kStep));
        phase.mark("run 1: install Y into B, BootNext, reboot");
    }
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run2"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "Y");
        EXPECT_EQ(b.rootfs, "TESTOS-ROOTFS-Y") << "slot B does not hold Y's image";
        EXPECT_NE(b.cmdline.find("METROPOLIS-SYSTEM-B"), std::string::npos);
        phase.mark("run 2: OVMF boots Y from slot B by BootNext");
        AB_ASSERT_OK_AND_ASSIGN(auto rc, WaitRc(*vm));
        EXPECT_EQ(rc.first, 0) << rc.second;
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectMarkedGood(s, "B", initial);
        EXPECT_EQ(s.boot_next, "null");
        EXPECT_EQ(b.boot_current, s.slots["B"].entry);
        phase.mark("run 2: mark-good");
        AB_ASSERT_OK(vm->wait_for_guest_exit(GuestExit::reboot, kStep));
        phase.mark("run 2: install Z into A, BootNext, reboot");
    }
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run3"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "Z");
        EXPECT_EQ(b.rootfs, "TESTOS-ROOTFS-Z") << "slot A does not hold Z's image";
        EXPECT_NE(b.cmdline.find("METROPOLIS-SYSTEM-A"), std::string::npos);
        phase.mark("run 3: OVMF boots Z from slot A by BootNext");
        AB_ASSERT_OK_AND_ASSIGN(auto rc, WaitRc(*vm));
        EXPECT_EQ(rc.first, 0) << rc.second;
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectMarkedGood(s, "A", initial);
        EXPECT_EQ(b.boot_current, s.slots["A"].entry);
        // B (Y, marked good before) stays right behind A.
        ASSERT_GE(s.boot_order.size(), 2u);
        EXPECT_EQ(s.boot_order[1], s.slots["B"].entry) << Join(s.boot_order);
        AB_ASSERT_OK(vm->wait_for_power_off(kStep));
        phase.mark("run 3: mark-good and power off");
    }
}

// (test 3) In one QEMU run X (slot A) installs Y into B and kexecs into B's UKI; Y marks itself
// good and installs Z into A, kexec again; Z marks itself good. A cold boot then lands on A.
TEST_F(AbTest, KexecChainsXYZThenColdBootsLastMarkedGood) {
    PhaseTimer phase(name_);
    ASSERT_TRUE(MakeDisk().ok());
    AB_ASSERT_OK_AND_ASSIGN(auto y, Uki("Y", "X"));
    AB_ASSERT_OK_AND_ASSIGN(auto z, Uki("Z", "X"));
    AB_ASSERT_OK(MakeBundle("Y", y, "Y", 1 << 20));
    AB_ASSERT_OK(MakeBundle("Z", z, "Z", 2 << 20));
    AB_ASSERT_OK(Scenario(R"SH(
case $V in
X) status $KEXEC; act --policy $KEXEC --bundle $URL/Y.zip ;;
Y) act mark-good --policy $KEXEC; status $KEXEC; act --policy $KEXEC --bundle $URL/Z.zip ;;
Z) act mark-good --policy $KEXEC; status $KEXEC ;;
esac
)SH"));
    phase.mark("images and bundles");

    std::string good_entry;
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run1"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "X");
        phase.mark("OVMF boots X from slot A");
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        EXPECT_EQ(s.running, "A");
        AB_ASSERT_OK_AND_ASSIGN(auto by, WaitBooted(*vm));
        EXPECT_EQ(by.variant, "Y");
        EXPECT_EQ(by.rootfs, "TESTOS-ROOTFS-Y");
        EXPECT_NE(by.cmdline.find("root=PARTLABEL=METROPOLIS-SYSTEM-B"), std::string::npos)
            << "placeholder not replaced: " << by.cmdline;
        phase.mark("install Y into B, kexec, Y's init");
        AB_ASSERT_OK_AND_ASSIGN(auto rc, WaitRc(*vm));
        EXPECT_EQ(rc.first, 0) << rc.second;
        AB_ASSERT_OK_AND_ASSIGN(auto sy, WaitStatus(*vm));
        EXPECT_EQ(sy.running, "B");
        ASSERT_FALSE(sy.slots["B"].entry.empty());
        EXPECT_EQ(sy.boot_order.front(), sy.slots["B"].entry) << Join(sy.boot_order);
        AB_ASSERT_OK_AND_ASSIGN(auto bz, WaitBooted(*vm));
        EXPECT_EQ(bz.variant, "Z");
        EXPECT_EQ(bz.rootfs, "TESTOS-ROOTFS-Z");
        EXPECT_NE(bz.cmdline.find("root=PARTLABEL=METROPOLIS-SYSTEM-A"), std::string::npos);
        phase.mark("Y: mark-good, install Z into A, kexec, Z's init");
        AB_ASSERT_OK_AND_ASSIGN(auto rcz, WaitRc(*vm));
        EXPECT_EQ(rcz.first, 0) << rcz.second;
        AB_ASSERT_OK_AND_ASSIGN(auto sz, WaitStatus(*vm));
        EXPECT_EQ(sz.running, "A");
        good_entry = sz.slots["A"].entry;
        ASSERT_FALSE(good_entry.empty());
        EXPECT_EQ(sz.boot_order.front(), good_entry) << Join(sz.boot_order);
        EXPECT_EQ(sz.boot_next, "null") << "kexec activation must not set BootNext";
        AB_ASSERT_OK(vm->wait_for_power_off(kStep));
        phase.mark("Z: mark-good, power off");
    }
    // The slot UKIs carry the placeholder cmdline, so the cold-booted system cannot name its
    // slot; BootCurrent and the image it runs say where the firmware went.
    AB_ASSERT_OK(Scenario(""));
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("cold"));
        AB_ASSERT_OK_AND_ASSIGN(auto v, vm->wait_for_line("TESTOS_VARIANT=(\\w+)", kBoot));
        EXPECT_EQ(v.groups[1], "Z");
        AB_ASSERT_OK_AND_ASSIGN(auto bc, vm->wait_for_line("TESTOS_BOOTCURRENT=(\\w+)", kStep));
        EXPECT_EQ(bc.groups[1], good_entry) << "the cold boot did not use slot A's entry";
        AB_ASSERT_OK(vm->wait_for_power_off(kStep));
        phase.mark("cold boot lands on Z in slot A");
    }
}

// (test 6) Bad bundles fail cleanly and leave the running slot bootable: a truncated UKI and an
// image larger than the slot, then a reboot into the same system.
TEST_F(AbTest, BadBundlesFailAndKeepRunningSlot) {
    PhaseTimer phase(name_);
    ASSERT_TRUE(MakeDisk().ok());
    AB_ASSERT_OK_AND_ASSIGN(auto yb, Uki("Y", "B"));
    AB_ASSERT_OK(MakeBundle("truncated-uki", yb, "Y", 1 << 20, 64 * 1024));
    AB_ASSERT_OK(MakeBundle("oversized-image", yb, "Y", 40 << 20));
    AB_ASSERT_OK(Scenario(R"SH(
case $V in
X) act --policy $EFI --bundle $URL/truncated-uki.zip
   act --policy $EFI --bundle $URL/oversized-image.zip
   status $EFI
   sync; reboot -f ;;
esac
)SH"));
    phase.mark("images and bundles");
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run1"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "X");
        phase.mark("OVMF boots X");
        AB_ASSERT_OK_AND_ASSIGN(auto t, WaitRc(*vm));
        std::fprintf(stderr, "[e2e-ab] truncated UKI: exit %d\n%s", t.first, t.second.c_str());
        EXPECT_EQ(t.first, 5) << t.second;  // invalid input
        EXPECT_NE(t.second.find("kernel_efi.efi"), std::string::npos) << t.second;
        AB_ASSERT_OK_AND_ASSIGN(auto o, WaitRc(*vm));
        std::fprintf(stderr, "[e2e-ab] oversized image: exit %d\n%s", o.first, o.second.c_str());
        EXPECT_EQ(o.first, 5) << o.second;
        EXPECT_NE(o.second.find("verity_rootfs.img"), std::string::npos) << o.second;
        EXPECT_NE(o.second.find(std::to_string(40 << 20)), std::string::npos) << o.second;
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        EXPECT_EQ(s.running, "A");
        EXPECT_EQ(s.boot_next, "null");
        // The target's entry exists but stays disabled: nothing boots the unfinished slot.
        EXPECT_FALSE(s.slots["B"].active);
        AB_ASSERT_OK(vm->wait_for_guest_exit(GuestExit::reboot, kStep));
        phase.mark("two failed installs, reboot");
    }
    AB_ASSERT_OK(Scenario(""));
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run2"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "X");
        EXPECT_EQ(b.rootfs, "TESTOS-ROOTFS-X");
        EXPECT_NE(b.cmdline.find("METROPOLIS-SYSTEM-A"), std::string::npos);
        AB_ASSERT_OK(vm->wait_for_power_off(kStep));
        phase.mark("reboot lands on X in slot A again");
    }
}

// (test 4) Power cut while the slot is written: QEMU is killed after the first progress line of
// a slowly served 24 MiB image. The next boot runs the old slot; the half-written slot's entry
// is inactive and BootNext is unset.
TEST_F(AbTest, PowerCutDuringSlotWriteBootsOldSlot) {
    PhaseTimer phase(name_);
    ASSERT_TRUE(MakeDisk().ok());
    AB_ASSERT_OK_AND_ASSIGN(auto yb, Uki("Y", "B"));
    AB_ASSERT_OK(MakeBundle("big", yb, "Y", 24 << 20));
    AB_ASSERT_OK(Scenario(R"SH(
case $V in
X) act mark-good --policy $EFI; status $EFI
   act --progress --policy $EFI --bundle $URL/slow/big.zip ;;
esac
)SH"));
    phase.mark("images and bundles");
    std::string a_entry;
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run1"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "X");
        AB_ASSERT_OK_AND_ASSIGN(auto rc, WaitRc(*vm));
        EXPECT_EQ(rc.first, 0) << rc.second;
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        a_entry = s.slots["A"].entry;
        ASSERT_FALSE(a_entry.empty());
        phase.mark("OVMF boots X, mark-good");
        AB_ASSERT_OK_AND_ASSIGN(auto p,
                                vm->wait_for_line("installing slot B: [0-9.]+ MiB,", kStep));
        std::fprintf(stderr, "[e2e-ab] cutting the power at: %s\n", p.line.c_str());
        vm->kill();
        phase.mark("slot write under way, power cut");
    }
    AB_ASSERT_OK(Scenario("status $EFI\n"));
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run2"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "X");
        EXPECT_EQ(b.rootfs, "TESTOS-ROOTFS-X");
        EXPECT_EQ(b.boot_current, a_entry);
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        EXPECT_EQ(s.running, "A");
        EXPECT_EQ(s.boot_order.front(), a_entry) << Join(s.boot_order);
        EXPECT_EQ(s.boot_next, "null");
        ASSERT_FALSE(s.slots["B"].entry.empty());
        EXPECT_FALSE(s.slots["B"].active) << "the half-written slot's entry is active";
        AB_ASSERT_OK(vm->wait_for_power_off(kStep));
        phase.mark("next boot: old slot, half-written slot's entry inactive");
    }
}

}  // namespace
}  // namespace activate::vm
