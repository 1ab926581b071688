// A/B updates on a stock Debian 12 guest (issue 15 §3): OVMF boots UKIs of Debian's kernel and
// its real initramfs-tools initrd, which mounts the root that `root=PARTLABEL=...` names, and
// systemd runs activate-assess.service at boot, which assesses a slot the last update jumped
// into and marks it good. The machine is DistroWorld's; a "cold boot" is a new QEMU run on the
// same disk and variable store.
#include <gtest/gtest.h>
#include <unistd.h>

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
// mounted it as /, systemd ran the assess unit successfully, and found no ordering cycle.
void ExpectBootedSlot(const DistroWorld::Booted& b, const std::string& variant,
                      const std::string& slot) {
    const std::string label = "METROPOLIS-SYSTEM-" + slot;
    EXPECT_EQ(b.variant, variant);
    EXPECT_NE(b.cmdline.find("root=PARTLABEL=" + label + " "), std::string::npos) << b.cmdline;
    EXPECT_EQ(b.root_partlabel, label) << "findmnt / says " << b.root_device;
    EXPECT_EQ(b.root_device, slot == "A" ? "/dev/vda2" : "/dev/vda3");
    EXPECT_EQ(b.assess_state, "active success") << b.assess_log;
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

// The whole path that bricked machines (issue 12 §1), then the way back by firmware: OVMF boots
// X from slot A; a kexec update installs Y into B and jumps into B's systemd, where assess marks
// B good and status shows the switch time; a cold boot lands on B and Debian's initramfs mounts
// B's root; an EFI update installs Z into A and reboots; the firmware follows BootNext to A
// although BootOrder starts with B; assess marks A good; a last cold boot lands on the slot
// BootOrder names.
TEST_F(DistroTest, KexecUpdateThenEfiUpdateColdBootEachSlotWithItsOwnRoot) {
    PhaseTimer phase(name_);
    E2E_ASSERT_OK(MakeDisk());
    E2E_ASSERT_OK_AND_ASSIGN(auto placeholder_uki, Uki("X"));
    E2E_ASSERT_OK_AND_ASSIGN(auto a_uki, Uki("A"));
    E2E_ASSERT_OK_AND_ASSIGN(auto y, SlotImage("Y"));
    E2E_ASSERT_OK_AND_ASSIGN(auto z, SlotImage("Z"));
    E2E_ASSERT_OK(MakeBundle("Y-kexec", placeholder_uki, y));
    E2E_ASSERT_OK(MakeBundle("Z-efi", a_uki, z));
    // After a failed `act` the guest powers off, so that the wait ends at once.
    E2E_ASSERT_OK(Scenario(R"SH(
case $V in
X) act mark-good --policy $KEXEC; status $KEXEC
   act --policy $KEXEC --bundle $URL/Y-kexec.zip; AFTER=poweroff ;;
Y) status $KEXEC; AFTER=poweroff ;;
esac
)SH"));
    phase.mark("images and bundles");

    std::string b_entry;
    {
        E2E_ASSERT_OK_AND_ASSIGN(auto vm, Boot("kexec"));
        E2E_ASSERT_OK_AND_ASSIGN(auto x, WaitBooted(*vm));
        ExpectBootedSlot(x, "X", "A");
        ExpectNothingOnTrial(x);
        ExpectMarkedGoodByHand(*vm, "A");
        E2E_ASSERT_OK_AND_ASSIGN(auto sa, WaitStatus(*vm));
        ExpectRunningFirst(sa, "A");
        phase.mark("OVMF boots X from slot A, marked good by hand");
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
Y) status $EFI; act --policy $EFI --bundle $URL/Z-efi.zip; AFTER=poweroff ;;
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
        phase.mark("cold boot lands on Y in slot B, with B's root");
        E2E_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectRunningFirst(s, "B");
        order_before_efi = s.boot_order;
        E2E_ASSERT_OK(vm->wait_for_guest_exit(GuestExit::reboot, kUpdate));
        phase.mark("install Z into A, BootNext, the engine reboots");
    }
    E2E_ASSERT_OK(Scenario("status $EFI; AFTER=poweroff\n"));
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
        E2E_ASSERT_OK(WaitEnd(*vm, GuestExit::power_off));
        phase.mark("BootNext boots Z from slot A, assess marks A good");
    }
    {
        E2E_ASSERT_OK_AND_ASSIGN(auto vm, Boot("cold-a"));
        E2E_ASSERT_OK_AND_ASSIGN(auto za, WaitBooted(*vm));
        ExpectBootedSlot(za, "Z", "A");
        EXPECT_EQ(za.boot_current, a_entry) << "the cold boot did not follow BootOrder";
        E2E_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectRunningFirst(s, "A");
        E2E_ASSERT_OK(WaitEnd(*vm, GuestExit::power_off));
        phase.mark("cold boot lands on Z in slot A, first in BootOrder");
    }
}

// An interrupted download: the signed bundle cut inside its slot image. The engine refuses it,
// nothing boots the half-written slot, and a reboot comes back to slot A through A's entry.
TEST_F(DistroTest, TruncatedBundleIsRefusedAndRebootStaysOnSlotA) {
    PhaseTimer phase(name_);
    E2E_ASSERT_OK(MakeDisk());
    E2E_ASSERT_OK_AND_ASSIGN(auto b_uki, Uki("B"));
    E2E_ASSERT_OK_AND_ASSIGN(auto y, SlotImage("Y"));
    // Past the UKI member, 16 MiB into the image: the engine has started writing slot B.
    E2E_ASSERT_OK(
        MakeBundle("truncated", b_uki, y, static_cast<size_t>(fs::file_size(b_uki)) + (16 << 20)));
    E2E_ASSERT_OK(Scenario(R"SH(
case $V in
X) act mark-good --policy $EFI
   act --policy $EFI --bundle $URL/truncated.zip; status $EFI; AFTER=reboot ;;
esac
)SH"));
    phase.mark("images and bundle");
    std::string a_entry;
    {
        E2E_ASSERT_OK_AND_ASSIGN(auto vm, Boot("refuse"));
        E2E_ASSERT_OK_AND_ASSIGN(auto x, WaitBooted(*vm));
        ExpectBootedSlot(x, "X", "A");
        ExpectNothingOnTrial(x);
        ExpectMarkedGoodByHand(*vm, "A");
        phase.mark("OVMF boots X from slot A, marked good by hand");
        E2E_ASSERT_OK_AND_ASSIGN(auto rc, WaitRc(*vm, kUpdate));
        std::fprintf(stderr, "[e2e-distro] truncated bundle: exit %d\n%s", rc.first,
                     rc.second.c_str());
        EXPECT_EQ(rc.first, 5) << rc.second;  // invalid input
        EXPECT_NE(rc.second.find("incomplete"), std::string::npos) << rc.second;
        E2E_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectRunningFirst(s, "A");
        a_entry = s.slots["A"].entry;
        EXPECT_EQ(s.boot_next, "null");
        EXPECT_FALSE(s.slots["B"].active) << "the half-written slot's entry is active";
        E2E_ASSERT_OK(WaitEnd(*vm, GuestExit::reboot));
        phase.mark("truncated bundle refused, reboot");
    }
    E2E_ASSERT_OK(Scenario("status $EFI; AFTER=poweroff\n"));
    {
        E2E_ASSERT_OK_AND_ASSIGN(auto vm, Boot("reboot"));
        E2E_ASSERT_OK_AND_ASSIGN(auto x, WaitBooted(*vm));
        ExpectBootedSlot(x, "X", "A");
        EXPECT_EQ(x.boot_current, a_entry) << "the reboot did not use A's entry";
        E2E_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectRunningFirst(s, "A");
        EXPECT_FALSE(s.slots["B"].active);
        E2E_ASSERT_OK(WaitEnd(*vm, GuestExit::power_off));
        phase.mark("the reboot lands on X in slot A");
    }
}

}  // namespace
}  // namespace activate::vm
