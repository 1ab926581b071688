// A/B updates on a stock Debian 12 guest (issue 15 §3): OVMF boots UKIs of Debian's kernel and
// its real initramfs-tools initrd, which mounts the root that `root=PARTLABEL=...` names; the
// first boot installs this build's .deb with `dpkg -i`, and systemd runs the packaged
// activate-assess.service at boot, which assesses a slot the last update jumped into and marks it
// good, and activate.socket, which starts `activate serve` on a request. The machine is
// DistroWorld's; a "cold boot" is a new QEMU run on the same disk and variable store.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <vm/phase.hpp>

#include "distro_world.hpp"

namespace activate::vm {
namespace {

// A slot update carries a whole Debian root (175 MiB) at a few MiB/s under TCG, then the
// guest boots again.
constexpr auto kUpdate = seconds(1800);

class DistroTest : public ::testing::Test, public DistroWorld {
  protected:
    void SetUp() override {
        // debootstrap and mkfs.ext4 -d keep the tree's owners only as root.
        if (::geteuid() != 0) GTEST_SKIP() << "needs root (debootstrap, mkfs.ext4 -d)";
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        E2E_ASSERT_OK(Init(std::string(info->test_suite_name()) + "." + info->name()));
    }
};

// The boot ran `variant` from `slot`: the kernel was told that slot's partition, the initramfs
// mounted it as /, systemd ran the assess unit successfully (when the package was installed at
// boot), and found no ordering cycle.
void ExpectBootedSlot(const DistroWorld::Booted& b, const std::string& variant,
                      const std::string& slot, bool packaged = true) {
    const std::string label = "METROPOLIS-SYSTEM-" + slot;
    EXPECT_EQ(b.variant, variant);
    EXPECT_NE(b.cmdline.find("root=PARTLABEL=" + label + " "), std::string::npos) << b.cmdline;
    EXPECT_EQ(b.root_partlabel, label) << "findmnt / says " << b.root_device;
    EXPECT_EQ(b.root_device, slot == "A" ? "/dev/vda2" : "/dev/vda3");
    if (packaged) {
        EXPECT_EQ(b.assess_state, "active success") << b.assess_log;
    }
    EXPECT_EQ(b.ordering_cycles, 0) << "systemd dropped a job to break an ordering cycle";
}

// The boot an update jumped into: assess ran the shipped policy's check, found the slot good and
// moved its entry to the front of BootOrder (the efi plugin logs only a change).
void ExpectAssessedGood(const DistroWorld::Booted& b, const std::string& slot) {
    EXPECT_NE(b.assess_log.find("slot " + slot + " assessed good (1 check passed; switch time "),
              std::string::npos)
        << b.assess_log;
    EXPECT_NE(b.assess_log.find("slot " + slot + " (Boot"), std::string::npos) << b.assess_log;
    EXPECT_NE(b.assess_log.find("is now first in BootOrder"), std::string::npos) << b.assess_log;
}

// A boot with nothing on trial: assess changed nothing.
void ExpectNothingOnTrial(const DistroWorld::Booted& b) {
    EXPECT_NE(b.assess_log.find("no activation on trial"), std::string::npos) << b.assess_log;
    EXPECT_EQ(b.assess_log.find("BootOrder"), std::string::npos) << b.assess_log;
}

// `status --json` after a good assessment: the last activation ended good, with the switch time
// assess measured from the jump.
void ExpectLastActivationGood(const BootStatus& s, const char* how) {
    ASSERT_TRUE(s.last.has_value()) << "status --json shows no last activation";
    EXPECT_EQ(s.last->outcome, "good");
    ASSERT_TRUE(s.last->switch_time_ms.has_value()) << "status --json shows no switch time";
    EXPECT_GT(*s.last->switch_time_ms, 0);
    std::fprintf(stderr, "[e2e-distro] switch time by %s: %lld ms\n", how, *s.last->switch_time_ms);
}

// The machine's first boot, before any update: the running slot is marked good by hand (what
// README "On Debian" tells a user to do once), which gives it the first entry in BootOrder.
void ExpectMarkedGoodByHand(Machine& vm, const std::string& slot) {
    E2E_ASSERT_OK_AND_ASSIGN(auto rc, DistroWorld::WaitRc(vm, kStep));
    EXPECT_EQ(rc.first, 0) << rc.second;
    EXPECT_NE(rc.second.find("slot " + slot + " (Boot"), std::string::npos) << rc.second;
}

// `slot` runs, has an active entry, and that entry is first in BootOrder.
void ExpectRunningFirst(const BootStatus& s, const std::string& slot) {
    EXPECT_EQ(s.running, slot);
    const SlotStatus& r = s.slots.at(slot);
    ASSERT_FALSE(r.entry.empty()) << "slot " << slot << " has no boot entry";
    EXPECT_TRUE(r.active);
    ASSERT_FALSE(s.boot_order.empty());
    EXPECT_EQ(s.boot_order.front(), r.entry) << "BootOrder " << Join(s.boot_order);
}

// The package as installed: dpkg's state, both units enabled by its postinst, and the files in
// Debian's layout (packaging/README.md), the keys directory root's alone to write.
void ExpectPackageInstalled(const DistroWorld::Installed& p) {
    EXPECT_EQ(p.status.rfind("install ok installed ", 0), 0u) << p.status;
    EXPECT_EQ(p.enabled, "enabled enabled") << "activate-assess.service, activate.socket";
    const std::string lib = "/usr/lib/x86_64-linux-gnu/activate/plugins/";
    for (const std::string& want : std::vector<std::string>{
             "755 root:root /usr/bin/activate", "644 root:root " + lib + "uki.so",
             "644 root:root " + lib + "efi.so", "644 root:root " + lib + "kexec.so",
             "644 root:root /usr/lib/systemd/system/activate-assess.service",
             "644 root:root /usr/lib/systemd/system/activate.socket",
             "644 root:root /usr/lib/systemd/system/activate.service",
             "644 root:root /etc/activate/update-efi.yaml",
             "644 root:root /etc/activate/update-kexec.yaml", "755 root:root /etc/activate/keys"}) {
        EXPECT_NE(std::find(p.files.begin(), p.files.end(), want), p.files.end())
            << "no file line \"" << want << "\" in:\n"
            << Join(p.files);
    }
}

// activate.socket listens at the path `activate request` uses, root-only as the unit says
// (systemd/activate.socket.in), and the server has not been started by anything yet.
void ExpectSocketListening(const DistroWorld::SocketFacts& f) {
    EXPECT_EQ(f.state, "active");
    EXPECT_EQ(f.socket_mode, "600 root:root");
    EXPECT_EQ(f.dir_mode, "700 root:root");
    // __SO_ACCEPTCON in /proc/net/unix: a listening socket; one line, no connection yet.
    EXPECT_EQ(f.flags, "00010000");
    EXPECT_EQ(f.service, "inactive") << "activate.service ran before any request";
}

// The whole path that bricked machines (issue 12 §1), then the way back by firmware, on the
// packaged engine: OVMF boots X from slot A, which has no engine; it installs the .deb with
// `dpkg -i` as README "On Debian" says (and once more, as an upgrade would), and starts the
// socket. A kexec update installs Y (the package installed into its tree by dpkg) into B and
// jumps into B's systemd, where assess marks B good and status shows the switch time; a cold boot
// lands on B and Debian's initramfs mounts B's root; an EFI update installs Z into A and reboots;
// the firmware follows BootNext to A although BootOrder starts with B; assess marks A good. There
// the socket systemd started at boot is root-only: nobody cannot connect, and root's request of a
// truncated bundle (an interrupted download) is served by the socket-activated server and
// refused, with B's entry inactive and BootOrder unchanged. A last cold boot lands on A, the slot
// BootOrder names: the refused bundle left nothing that moves the machine.
TEST_F(DistroTest, PackagedEngineKexecThenEfiUpdateColdBootEachSlotRefusesTruncatedBundle) {
    PhaseTimer phase(name_);
    E2E_ASSERT_OK_AND_ASSIGN(auto deb, Package());
    E2E_ASSERT_OK(MakeDisk());
    E2E_ASSERT_OK_AND_ASSIGN(auto placeholder_uki, Uki("X"));
    E2E_ASSERT_OK_AND_ASSIGN(auto a_uki, Uki("A"));
    E2E_ASSERT_OK_AND_ASSIGN(auto b_uki, Uki("B"));
    E2E_ASSERT_OK_AND_ASSIGN(auto y, SlotImage("Y", {}, deb));
    E2E_ASSERT_OK_AND_ASSIGN(auto z, SlotImage("Z", {}, deb));
    E2E_ASSERT_OK(MakeBundle("Y-kexec", placeholder_uki, y));
    E2E_ASSERT_OK(MakeBundle("Z-efi", a_uki, z));
    // Past the UKI member, 16 MiB into the image: the engine has started writing slot B.
    E2E_ASSERT_OK(
        MakeBundle("truncated", b_uki, y, static_cast<size_t>(fs::file_size(b_uki)) + (16 << 20)));
    // After a failed `act` the guest powers off, so that the wait ends at once.
    E2E_ASSERT_OK(Scenario(R"SH(
case $V in
X) install_package
   reinstall_package
   systemctl start activate.socket; socket_facts
   act mark-good --policy $KEXEC; status $KEXEC
   act --policy $KEXEC --bundle $URL/Y-kexec.zip; AFTER=poweroff ;;
Y) status $KEXEC; AFTER=poweroff ;;
esac
)SH"));
    phase.mark("package, images and bundles");

    std::string b_entry;
    {
        E2E_ASSERT_OK_AND_ASSIGN(auto vm, Boot("kexec"));
        E2E_ASSERT_OK_AND_ASSIGN(auto x, WaitBooted(*vm));
        ExpectBootedSlot(x, "X", "A", /*packaged=*/false);
        E2E_ASSERT_OK_AND_ASSIGN(auto installed, WaitInstalled(*vm));
        EXPECT_EQ(installed.before, "none") << "slot A's image must not have the engine";
        EXPECT_EQ(installed.dpkg_rc, 0) << installed.dpkg_log;
        EXPECT_NE(installed.dpkg_log.find("Setting up activate ("), std::string::npos)
            << installed.dpkg_log;
        ExpectPackageInstalled(installed);
        // The same version again: dpkg runs prerm upgrade and postinst configure <old version>;
        // the units stay enabled.
        E2E_ASSERT_OK_AND_ASSIGN(auto again, WaitInstalled(*vm));
        EXPECT_EQ(again.before, "/usr/bin/activate");
        EXPECT_EQ(again.dpkg_rc, 0) << again.dpkg_log;
        EXPECT_NE(again.dpkg_log.find("Unpacking activate ("), std::string::npos) << again.dpkg_log;
        ExpectPackageInstalled(again);
        E2E_ASSERT_OK_AND_ASSIGN(auto sock, WaitSocketFacts(*vm));
        ExpectSocketListening(sock);
        phase.mark("OVMF boots X from slot A, dpkg -i, again, socket started");
        ExpectMarkedGoodByHand(*vm, "A");
        E2E_ASSERT_OK_AND_ASSIGN(auto sa, WaitStatus(*vm));
        ExpectRunningFirst(sa, "A");
        phase.mark("marked good by hand");
        E2E_ASSERT_OK_AND_ASSIGN(auto yb, WaitBooted(*vm));
        ExpectBootedSlot(yb, "Y", "B");
        ExpectAssessedGood(yb, "B");
        phase.mark("install Y into B, kexec into B's systemd, assess marks B good");
        E2E_ASSERT_OK_AND_ASSIGN(auto sb, WaitStatus(*vm));
        ExpectRunningFirst(sb, "B");
        ExpectLastActivationGood(sb, "kexec");
        EXPECT_EQ(sb.boot_next, "null") << "kexec activation must not set BootNext";
        b_entry = sb.slots["B"].entry;
        E2E_ASSERT_OK(WaitEnd(*vm, GuestExit::power_off));
        phase.mark("status, power off");
    }
    ASSERT_FALSE(b_entry.empty());
    E2E_ASSERT_OK(Scenario(R"SH(
case $V in
Y) package_facts
   status $EFI; act --policy $EFI --bundle $URL/Z-efi.zip; AFTER=poweroff ;;
esac
)SH"));
    std::vector<std::string> order_before_efi;
    {
        // The machine a kexec update left must come up by itself: the firmware boots B's entry,
        // whose UKI on the ESP has to name B's root (not the bundle's placeholder).
        E2E_ASSERT_OK_AND_ASSIGN(auto vm, Boot("cold-b"));
        E2E_ASSERT_OK_AND_ASSIGN(auto yb, WaitBooted(*vm));
        ExpectBootedSlot(yb, "Y", "B");
        ExpectNothingOnTrial(yb);
        EXPECT_EQ(yb.boot_current, b_entry) << "the cold boot did not use B's entry";
        // Y's tree had the package installed by `dpkg --root` when its image was made.
        E2E_ASSERT_OK_AND_ASSIGN(auto installed, WaitPackageFacts(*vm));
        ExpectPackageInstalled(installed);
        phase.mark("cold boot lands on Y in slot B, with B's root");
        E2E_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectRunningFirst(s, "B");
        order_before_efi = s.boot_order;
        E2E_ASSERT_OK(vm->wait_for_guest_exit(GuestExit::reboot, kUpdate));
        phase.mark("install Z into A, BootNext, the engine reboots");
    }
    E2E_ASSERT_OK(Scenario(R"SH(
status $EFI; socket_facts
request_as_nobody --bundle $URL/truncated.zip --mode none
request --bundle $URL/truncated.zip --mode none
serve_log; status $EFI; AFTER=poweroff
)SH"));
    std::string a_entry;
    {
        E2E_ASSERT_OK_AND_ASSIGN(auto vm, Boot("bootnext-a"));
        E2E_ASSERT_OK_AND_ASSIGN(auto za, WaitBooted(*vm));
        ExpectBootedSlot(za, "Z", "A");
        ExpectAssessedGood(za, "A");
        E2E_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectLastActivationGood(s, "firmware reboot");
        a_entry = s.slots["A"].entry;
        // BootOrder still started with B when the firmware chose A: only BootNext sent it there.
        ASSERT_FALSE(order_before_efi.empty());
        EXPECT_EQ(order_before_efi.front(), b_entry) << Join(order_before_efi);
        EXPECT_EQ(za.boot_current, a_entry) << "the firmware did not follow BootNext to A";
        EXPECT_EQ(s.boot_next, "null") << "the firmware did not consume BootNext";
        ExpectRunningFirst(s, "A");
        phase.mark("BootNext boots Z from slot A, assess marks A good");

        // Started at boot by sockets.target: the package's postinst enabled it in Z's tree.
        E2E_ASSERT_OK_AND_ASSIGN(auto sock, WaitSocketFacts(*vm));
        ExpectSocketListening(sock);
        // Not root: the client cannot even open the socket's directory (0700), so it never
        // connects; neither systemd nor the server sees it.
        E2E_ASSERT_OK_AND_ASSIGN(auto nobody, DistroWorld::WaitRc(*vm, kStep));
        std::fprintf(stderr, "[e2e-distro] request as nobody: exit %d\n%s", nobody.first,
                     nobody.second.c_str());
        EXPECT_EQ(nobody.first, 6) << nobody.second;  // activation failed
        EXPECT_NE(nobody.second.find("connecting to /run/activate/activate.sock: "),
                  std::string::npos)
            << nobody.second;
        EXPECT_NE(nobody.second.find("/run/activate: Permission denied"), std::string::npos)
            << nobody.second;
        // Root: the connection starts activate.service, which takes the socket from systemd and
        // runs the update, which refuses the interrupted download.
        E2E_ASSERT_OK_AND_ASSIGN(auto root, DistroWorld::WaitRc(*vm, kUpdate));
        std::fprintf(stderr, "[e2e-distro] request as root: exit %d\n%s", root.first,
                     root.second.c_str());
        EXPECT_EQ(root.first, 6) << root.second;  // the server's `failed`
        EXPECT_NE(root.second.find("update failed: "), std::string::npos) << root.second;
        EXPECT_NE(root.second.find("incomplete"), std::string::npos) << root.second;
        E2E_ASSERT_OK_AND_ASSIGN(auto serve, WaitServeLog(*vm));
        EXPECT_EQ(serve.first, "active") << "the request did not start activate.service";
        EXPECT_NE(serve.second.find("serving on /run/activate/activate.sock (from systemd)"),
                  std::string::npos)
            << serve.second;
        EXPECT_NE(serve.second.find("update requested: http://10.0.2.100/truncated.zip (none)"),
                  std::string::npos)
            << serve.second;
        EXPECT_NE(serve.second.find("incomplete"), std::string::npos) << serve.second;
        EXPECT_EQ(serve.second.find("refused a connection"), std::string::npos)
            << "nobody's connection reached the server";
        E2E_ASSERT_OK_AND_ASSIGN(auto after, WaitStatus(*vm));
        ExpectRunningFirst(after, "A");
        EXPECT_EQ(after.boot_next, "null");
        EXPECT_FALSE(after.slots["B"].active) << "the half-written slot's entry is active";
        E2E_ASSERT_OK(WaitEnd(*vm, GuestExit::power_off));
        phase.mark("socket: nobody refused, root's truncated bundle refused by the server");
    }
    E2E_ASSERT_OK(Scenario("status $EFI; AFTER=poweroff\n"));
    {
        E2E_ASSERT_OK_AND_ASSIGN(auto vm, Boot("cold-a"));
        E2E_ASSERT_OK_AND_ASSIGN(auto za, WaitBooted(*vm));
        ExpectBootedSlot(za, "Z", "A");
        ExpectNothingOnTrial(za);
        EXPECT_EQ(za.boot_current, a_entry) << "the cold boot did not follow BootOrder";
        E2E_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectRunningFirst(s, "A");
        EXPECT_EQ(s.boot_next, "null");
        EXPECT_FALSE(s.slots["B"].active);
        E2E_ASSERT_OK(WaitEnd(*vm, GuestExit::power_off));
        phase.mark("cold boot lands on Z in slot A, first in BootOrder");
    }
}

}  // namespace
}  // namespace activate::vm
