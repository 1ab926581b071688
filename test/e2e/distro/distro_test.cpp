// A/B updates on a stock Debian 12 guest (issue 15 §3): OVMF boots UKIs of Debian's kernel and
// its real initramfs-tools initrd, which mounts the root that `root=PARTLABEL=...` names, and
// systemd marks the slot good through activate-mark-good.service. The machine is DistroWorld's;
// a "cold boot" is a new QEMU run on the same disk and variable store.
#include <gtest/gtest.h>
#include <unistd.h>

#include <vm/phase.hpp>

#include "distro_world.hpp"

namespace activate::vm {
namespace {

#define DISTRO_ASSERT_OK(expr)                                      \
    do {                                                            \
        const auto& distro_r_ = (expr);                             \
        ASSERT_TRUE(distro_r_.ok()) << distro_r_.error().message(); \
    } while (0)
#define DISTRO_CONCAT_INNER(a, b) a##b
#define DISTRO_CONCAT(a, b) DISTRO_CONCAT_INNER(a, b)
#define DISTRO_ASSERT_OK_AND_ASSIGN(decl, expr) \
    DISTRO_ASSERT_OK_AND_ASSIGN_IMPL(DISTRO_CONCAT(distro_r_, __LINE__), decl, expr)
#define DISTRO_ASSERT_OK_AND_ASSIGN_IMPL(tmp, decl, expr) \
    auto tmp = (expr);                                    \
    ASSERT_TRUE(tmp.ok()) << tmp.error().message();       \
    decl = std::move(tmp).value()

// A slot update carries a whole Debian root (175 MiB) at a few MiB/s under TCG, then the
// guest boots again.
constexpr auto kUpdate = seconds(1800);

class DistroTest : public ::testing::Test, public DistroWorld {
  protected:
    void SetUp() override {
        // debootstrap and mkfs.ext4 -d keep the tree's owners only as root.
        if (::geteuid() != 0) GTEST_SKIP() << "needs root (debootstrap, mkfs.ext4 -d)";
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        DISTRO_ASSERT_OK(Init(std::string(info->test_suite_name()) + "." + info->name()));
    }
};

// The boot ran `variant` from `slot`: the kernel was told that slot's partition, the initramfs
// mounted it as /, and the unit ran mark-good successfully at boot.
void ExpectBootedSlot(const DistroWorld::Booted& b, const std::string& variant,
                      const std::string& slot) {
    const std::string label = "METROPOLIS-SYSTEM-" + slot;
    EXPECT_EQ(b.variant, variant);
    EXPECT_NE(b.cmdline.find("root=PARTLABEL=" + label + " "), std::string::npos) << b.cmdline;
    EXPECT_EQ(b.root_partlabel, label) << "findmnt / says " << b.root_device;
    EXPECT_EQ(b.root_device, slot == "A" ? "/dev/vda2" : "/dev/vda3");
    EXPECT_EQ(b.mark_good_state, "active success") << b.mark_good_log;
}

// On a slot's first boot the unit's mark-good moved it to the front of BootOrder (it logs only
// a change).
void ExpectUnitMovedFirst(const DistroWorld::Booted& b, const std::string& slot) {
    EXPECT_NE(b.mark_good_log.find("slot " + slot + " (Boot"), std::string::npos)
        << b.mark_good_log;
    EXPECT_NE(b.mark_good_log.find("is now first in BootOrder"), std::string::npos)
        << b.mark_good_log;
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
// X from slot A; a kexec update installs Y into B and jumps into B's systemd, which marks B good;
// a cold boot lands on B and Debian's initramfs mounts B's root; an EFI update installs Z into A
// and reboots; the firmware follows BootNext to A although BootOrder starts with B; the unit
// marks A good; a last cold boot lands on the slot BootOrder names.
TEST_F(DistroTest, KexecUpdateThenEfiUpdateColdBootEachSlotWithItsOwnRoot) {
    PhaseTimer phase(name_);
    DISTRO_ASSERT_OK(MakeDisk());
    DISTRO_ASSERT_OK_AND_ASSIGN(auto placeholder_uki, Uki("X"));
    DISTRO_ASSERT_OK_AND_ASSIGN(auto a_uki, Uki("A"));
    DISTRO_ASSERT_OK_AND_ASSIGN(auto y, SlotImage("Y"));
    DISTRO_ASSERT_OK_AND_ASSIGN(auto z, SlotImage("Z"));
    DISTRO_ASSERT_OK(MakeBundle("Y-kexec", placeholder_uki, y));
    DISTRO_ASSERT_OK(MakeBundle("Z-efi", a_uki, z));
    // After a failed `act` the guest powers off, so that the wait ends at once.
    DISTRO_ASSERT_OK(Scenario(R"SH(
case $V in
X) status $KEXEC; act --policy $KEXEC --bundle $URL/Y-kexec.zip; AFTER=poweroff ;;
Y) status $KEXEC; AFTER=poweroff ;;
esac
)SH"));
    phase.mark("images and bundles");

    std::string b_entry;
    {
        DISTRO_ASSERT_OK_AND_ASSIGN(auto vm, Boot("kexec"));
        DISTRO_ASSERT_OK_AND_ASSIGN(auto x, WaitBooted(*vm));
        ExpectBootedSlot(x, "X", "A");
        ExpectUnitMovedFirst(x, "A");
        DISTRO_ASSERT_OK_AND_ASSIGN(auto sa, WaitStatus(*vm));
        ExpectRunningFirst(sa, "A");
        phase.mark("OVMF boots X from slot A, the unit marks A good");
        DISTRO_ASSERT_OK_AND_ASSIGN(auto yb, WaitBooted(*vm));
        ExpectBootedSlot(yb, "Y", "B");
        ExpectUnitMovedFirst(yb, "B");
        phase.mark("install Y into B, kexec into B's systemd");
        DISTRO_ASSERT_OK_AND_ASSIGN(auto sb, WaitStatus(*vm));
        ExpectRunningFirst(sb, "B");
        EXPECT_EQ(sb.boot_next, "null") << "kexec activation must not set BootNext";
        b_entry = sb.slots["B"].entry;
        DISTRO_ASSERT_OK(WaitEnd(*vm, GuestExit::power_off));
        phase.mark("the unit marks B good, power off");
    }
    ASSERT_FALSE(b_entry.empty());
    DISTRO_ASSERT_OK(Scenario(R"SH(
case $V in
Y) status $EFI; act --policy $EFI --bundle $URL/Z-efi.zip; AFTER=poweroff ;;
esac
)SH"));
    std::vector<std::string> order_before_efi;
    {
        // The machine a kexec update left must come up by itself: the firmware boots B's entry,
        // whose UKI on the ESP has to name B's root (not the bundle's placeholder).
        DISTRO_ASSERT_OK_AND_ASSIGN(auto vm, Boot("cold-b"));
        DISTRO_ASSERT_OK_AND_ASSIGN(auto yb, WaitBooted(*vm));
        ExpectBootedSlot(yb, "Y", "B");
        EXPECT_EQ(yb.boot_current, b_entry) << "the cold boot did not use B's entry";
        phase.mark("cold boot lands on Y in slot B, with B's root");
        DISTRO_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectRunningFirst(s, "B");
        order_before_efi = s.boot_order;
        DISTRO_ASSERT_OK(vm->wait_for_guest_exit(GuestExit::reboot, kUpdate));
        phase.mark("install Z into A, BootNext, the engine reboots");
    }
    DISTRO_ASSERT_OK(Scenario("status $EFI; AFTER=poweroff\n"));
    std::string a_entry;
    {
        DISTRO_ASSERT_OK_AND_ASSIGN(auto vm, Boot("bootnext-a"));
        DISTRO_ASSERT_OK_AND_ASSIGN(auto za, WaitBooted(*vm));
        ExpectBootedSlot(za, "Z", "A");
        ExpectUnitMovedFirst(za, "A");
        DISTRO_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        a_entry = s.slots["A"].entry;
        // BootOrder still started with B when the firmware chose A: only BootNext sent it there.
        ASSERT_FALSE(order_before_efi.empty());
        EXPECT_EQ(order_before_efi.front(), b_entry) << Join(order_before_efi);
        EXPECT_EQ(za.boot_current, a_entry) << "the firmware did not follow BootNext to A";
        EXPECT_EQ(s.boot_next, "null") << "the firmware did not consume BootNext";
        ExpectRunningFirst(s, "A");
        DISTRO_ASSERT_OK(WaitEnd(*vm, GuestExit::power_off));
        phase.mark("BootNext boots Z from slot A, the unit marks A good");
    }
    {
        DISTRO_ASSERT_OK_AND_ASSIGN(auto vm, Boot("cold-a"));
        DISTRO_ASSERT_OK_AND_ASSIGN(auto za, WaitBooted(*vm));
        ExpectBootedSlot(za, "Z", "A");
        EXPECT_EQ(za.boot_current, a_entry) << "the cold boot did not follow BootOrder";
        DISTRO_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectRunningFirst(s, "A");
        DISTRO_ASSERT_OK(WaitEnd(*vm, GuestExit::power_off));
        phase.mark("cold boot lands on Z in slot A, first in BootOrder");
    }
}

// An interrupted download: the signed bundle cut inside its slot image. The engine refuses it,
// nothing boots the half-written slot, and a reboot comes back to slot A through A's entry.
TEST_F(DistroTest, TruncatedBundleIsRefusedAndRebootStaysOnSlotA) {
    PhaseTimer phase(name_);
    DISTRO_ASSERT_OK(MakeDisk());
    DISTRO_ASSERT_OK_AND_ASSIGN(auto b_uki, Uki("B"));
    DISTRO_ASSERT_OK_AND_ASSIGN(auto y, SlotImage("Y"));
    // Past the UKI member, 16 MiB into the image: the engine has started writing slot B.
    DISTRO_ASSERT_OK(
        MakeBundle("truncated", b_uki, y, static_cast<size_t>(fs::file_size(b_uki)) + (16 << 20)));
    DISTRO_ASSERT_OK(Scenario(R"SH(
case $V in
X) act --policy $EFI --bundle $URL/truncated.zip; status $EFI; AFTER=reboot ;;
esac
)SH"));
    phase.mark("images and bundle");
    std::string a_entry;
    {
        DISTRO_ASSERT_OK_AND_ASSIGN(auto vm, Boot("refuse"));
        DISTRO_ASSERT_OK_AND_ASSIGN(auto x, WaitBooted(*vm));
        ExpectBootedSlot(x, "X", "A");
        ExpectUnitMovedFirst(x, "A");
        phase.mark("OVMF boots X from slot A, the unit marks A good");
        DISTRO_ASSERT_OK_AND_ASSIGN(auto rc, WaitRc(*vm, kUpdate));
        std::fprintf(stderr, "[e2e-distro] truncated bundle: exit %d\n%s", rc.first,
                     rc.second.c_str());
        EXPECT_EQ(rc.first, 5) << rc.second;  // invalid input
        EXPECT_NE(rc.second.find("incomplete"), std::string::npos) << rc.second;
        DISTRO_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectRunningFirst(s, "A");
        a_entry = s.slots["A"].entry;
        EXPECT_EQ(s.boot_next, "null");
        EXPECT_FALSE(s.slots["B"].active) << "the half-written slot's entry is active";
        DISTRO_ASSERT_OK(WaitEnd(*vm, GuestExit::reboot));
        phase.mark("truncated bundle refused, reboot");
    }
    DISTRO_ASSERT_OK(Scenario("status $EFI; AFTER=poweroff\n"));
    {
        DISTRO_ASSERT_OK_AND_ASSIGN(auto vm, Boot("reboot"));
        DISTRO_ASSERT_OK_AND_ASSIGN(auto x, WaitBooted(*vm));
        ExpectBootedSlot(x, "X", "A");
        EXPECT_EQ(x.boot_current, a_entry) << "the reboot did not use A's entry";
        DISTRO_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectRunningFirst(s, "A");
        EXPECT_FALSE(s.slots["B"].active);
        DISTRO_ASSERT_OK(WaitEnd(*vm, GuestExit::power_off));
        phase.mark("the reboot lands on X in slot A");
    }
}

}  // namespace
}  // namespace activate::vm
