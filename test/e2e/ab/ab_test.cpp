// A/B slot updates on a real kernel and real OVMF firmware (issue 6). The machine (test OS
// variants X, Y, Z, disk, variable store, signed bundles, the scenario the guests run) is
// AbWorld's; a "reboot" is a new QEMU run on the same disk and variable store.
#include <gtest/gtest.h>

#include <vm/phase.hpp>

#include "ab_expect.hpp"

namespace activate::vm {
namespace {

class AbTest : public AbFixture {};

// (test 2) X in slot A installs Y into B and sets BootNext to B's entry; Y, booted by the
// firmware from B through BootNext alone, marks itself good; a cold boot lands on Y in B, which
// installs Z into A, and the engine reboots; Z boots from A and marks itself good; a cold boot
// lands on Z in A. Every installed slot cold-boots from its own entry with its own root.
TEST_F(AbTest, EfiBootNextInstallsYThenZ) {
    PhaseTimer phase(name_);
    ASSERT_TRUE(MakeDisk().ok());
    AB_ASSERT_OK_AND_ASSIGN(auto yb, Uki("Y", "B"));
    AB_ASSERT_OK_AND_ASSIGN(auto za, Uki("Z", "A"));
    AB_ASSERT_OK(MakeBundle("Y", yb, "Y", 1 << 20));
    AB_ASSERT_OK(MakeBundle("Z", za, "Z", 2 << 20));
    // X installs with activation_mode none, so that its exit code and the BootNext it left can be
    // read before the reboot; Y's install takes the full path, the engine rebooting itself.
    AB_ASSERT_OK(Scenario(R"SH(
case $V in
X) status $EFI; act --policy $EFI --set activation_mode=none --bundle $URL/Y.zip; status $EFI
   sync; reboot -f ;;
Y) status $EFI; act mark-good --policy $EFI; status $EFI ;;
esac
)SH"));
    phase.mark("images and bundles");

    std::vector<std::string> initial;
    std::string b_entry;
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run1"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "X");
        EXPECT_EQ(b.slot, "A");
        EXPECT_EQ(b.rootfs, "TESTOS-ROOTFS-X");
        phase.mark("run 1: OVMF boots X from slot A");
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        EXPECT_EQ(s.running, "A");
        EXPECT_EQ(s.boot_next, "null");
        initial = s.boot_order;
        EXPECT_FALSE(initial.empty()) << "OVMF made no boot entries";
        AB_ASSERT_OK_AND_ASSIGN(auto rc, WaitRc(*vm));
        EXPECT_EQ(rc.first, 0) << rc.second;
        AB_ASSERT_OK_AND_ASSIGN(auto staged, WaitStatus(*vm));
        b_entry = staged.slots["B"].entry;
        ASSERT_FALSE(b_entry.empty()) << "the install made no entry for slot B";
        EXPECT_TRUE(staged.slots["B"].active);
        EXPECT_TRUE(staged.slots["B"].boot_next);
        EXPECT_EQ(staged.boot_next, "\"" + b_entry + "\"");
        ASSERT_FALSE(staged.boot_order.empty());
        EXPECT_NE(staged.boot_order.front(), b_entry)
            << "BootOrder changed before mark-good: " << Join(staged.boot_order);
        AB_ASSERT_OK(vm->wait_for_guest_exit(GuestExit::reboot, kStep));
        phase.mark("run 1: install Y into B, BootNext, reboot");
    }
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run2"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        ExpectBootedFrom(b, "Y", "B", b_entry);
        // Before mark-good: BootOrder does not start with B, and BootNext is gone (the firmware
        // consumes it), so only BootNext can have sent the firmware to B's entry.
        AB_ASSERT_OK_AND_ASSIGN(auto before, WaitStatus(*vm));
        EXPECT_EQ(before.running, "B");
        EXPECT_EQ(before.boot_next, "null") << "the firmware did not consume BootNext";
        EXPECT_TRUE(before.slots["B"].booted);
        ASSERT_FALSE(before.boot_order.empty());
        EXPECT_NE(before.boot_order.front(), b_entry) << Join(before.boot_order);
        phase.mark("run 2: OVMF boots Y from slot B by BootNext");
        AB_ASSERT_OK_AND_ASSIGN(auto rc, WaitRc(*vm));
        EXPECT_EQ(rc.first, 0) << rc.second;
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectMarkedGood(s, "B", initial);
        EXPECT_EQ(s.boot_next, "null");
        EXPECT_EQ(s.slots["B"].entry, b_entry);
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("run 2: mark-good, minit powers off");
    }
    AB_ASSERT_OK(Scenario(R"SH(
case $V in
Y) status $EFI; act --policy $EFI --bundle $URL/Z.zip ;;
Z) act mark-good --policy $EFI; status $EFI ;;
esac
)SH"));
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("cold-b"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        ExpectBootedFrom(b, "Y", "B", b_entry);
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectColdBooted(s, "B", b_entry);
        phase.mark("run 3: cold boot lands on Y in slot B");
        AB_ASSERT_OK(vm->wait_for_guest_exit(GuestExit::reboot, kStep));
        phase.mark("run 3: install Z into A, BootNext, reboot");
    }
    std::string a_entry;
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run4"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "Z");
        EXPECT_EQ(b.slot, "A");
        EXPECT_EQ(b.rootfs, "TESTOS-ROOTFS-Z") << "slot A does not hold Z's image";
        phase.mark("run 4: OVMF boots Z from slot A by BootNext");
        AB_ASSERT_OK_AND_ASSIGN(auto rc, WaitRc(*vm));
        EXPECT_EQ(rc.first, 0) << rc.second;
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectMarkedGood(s, "A", initial);
        a_entry = s.slots["A"].entry;
        EXPECT_EQ(b.boot_current, a_entry);
        // B (Y, marked good before) stays right behind A.
        ASSERT_GE(s.boot_order.size(), 2u);
        EXPECT_EQ(s.boot_order[1], b_entry) << Join(s.boot_order);
        EXPECT_EQ(s.boot_next, "null");
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("run 4: mark-good, minit powers off");
    }
    AB_ASSERT_OK(Scenario("status $EFI\n"));
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("cold-a"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        ExpectBootedFrom(b, "Z", "A", a_entry);
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectColdBooted(s, "A", a_entry);
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("run 5: cold boot lands on Z in slot A");
    }
}

// (test 3, the bricking scenario of issue 12 §1) X (slot A) installs Y into B and kexecs into
// B's UKI; Y marks itself good. A cold boot (a new QEMU run, no BootNext) must then land on Y in
// B, through B's entry, with B as its root: the UKI on the ESP must name its slot as the kexec'd
// one did. Y installs Z into A by kexec, Z marks itself good, and a cold boot lands on Z in A.
TEST_F(AbTest, KexecUpdateMarkGoodThenColdBootLandsOnNewSlot) {
    PhaseTimer phase(name_);
    ASSERT_TRUE(MakeDisk().ok());
    AB_ASSERT_OK_AND_ASSIGN(auto y, Uki("Y", "X"));
    AB_ASSERT_OK_AND_ASSIGN(auto z, Uki("Z", "X"));
    AB_ASSERT_OK(MakeBundle("Y", y, "Y", 1 << 20));
    AB_ASSERT_OK(MakeBundle("Z", z, "Z", 2 << 20));
    AB_ASSERT_OK(Scenario(R"SH(
case $V in
X) status $KEXEC; act --policy $KEXEC --bundle $URL/Y.zip ;;
Y) act mark-good --policy $KEXEC; status $KEXEC ;;
esac
)SH"));
    phase.mark("images and bundles");

    std::string b_entry;
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run1"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "X");
        EXPECT_EQ(b.slot, "A");
        phase.mark("run 1: OVMF boots X from slot A");
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        EXPECT_EQ(s.running, "A");
        AB_ASSERT_OK_AND_ASSIGN(auto by, WaitBooted(*vm));
        EXPECT_EQ(by.variant, "Y");
        EXPECT_EQ(by.slot, "B");
        EXPECT_EQ(by.root, "PARTLABEL=METROPOLIS-SYSTEM-B") << by.cmdline;
        phase.mark("run 1: install Y into B, kexec, Y's init");
        AB_ASSERT_OK_AND_ASSIGN(auto rc, WaitRc(*vm));
        EXPECT_EQ(rc.first, 0) << rc.second;
        AB_ASSERT_OK_AND_ASSIGN(auto sy, WaitStatus(*vm));
        EXPECT_EQ(sy.running, "B");
        b_entry = sy.slots["B"].entry;
        ASSERT_FALSE(b_entry.empty());
        ASSERT_FALSE(sy.boot_order.empty());
        EXPECT_EQ(sy.boot_order.front(), b_entry) << Join(sy.boot_order);
        EXPECT_EQ(sy.boot_next, "null") << "kexec activation must not set BootNext";
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("run 1: Y marks good, minit powers off");
    }
    AB_ASSERT_OK(Scenario(R"SH(
case $V in
Y) status $KEXEC; act --policy $KEXEC --bundle $URL/Z.zip ;;
Z) act mark-good --policy $KEXEC; status $KEXEC ;;
esac
)SH"));
    std::string a_entry;
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("cold-b"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        ExpectBootedFrom(b, "Y", "B", b_entry);
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectColdBooted(s, "B", b_entry);
        phase.mark("run 2: cold boot lands on Y in slot B");
        AB_ASSERT_OK_AND_ASSIGN(auto bz, WaitBooted(*vm));
        EXPECT_EQ(bz.variant, "Z");
        EXPECT_EQ(bz.slot, "A");
        EXPECT_EQ(bz.root, "PARTLABEL=METROPOLIS-SYSTEM-A") << bz.cmdline;
        phase.mark("run 2: install Z into A, kexec, Z's init");
        AB_ASSERT_OK_AND_ASSIGN(auto rcz, WaitRc(*vm));
        EXPECT_EQ(rcz.first, 0) << rcz.second;
        AB_ASSERT_OK_AND_ASSIGN(auto sz, WaitStatus(*vm));
        EXPECT_EQ(sz.running, "A");
        a_entry = sz.slots["A"].entry;
        ASSERT_FALSE(a_entry.empty());
        ASSERT_FALSE(sz.boot_order.empty());
        EXPECT_EQ(sz.boot_order.front(), a_entry) << Join(sz.boot_order);
        EXPECT_EQ(sz.boot_next, "null") << "kexec activation must not set BootNext";
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("run 2: Z marks good, minit powers off");
    }
    AB_ASSERT_OK(Scenario("status $KEXEC\n"));
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("cold-a"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        ExpectBootedFrom(b, "Z", "A", a_entry);
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectColdBooted(s, "A", a_entry);
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("run 3: cold boot lands on Z in slot A");
    }
}

// (test 6) Bad bundles fail cleanly and leave the running slot bootable: X marks itself good, a
// truncated UKI and an image larger than the slot are refused, then a reboot lands on X again
// through slot A's own entry.
TEST_F(AbTest, BadBundlesFailAndKeepRunningSlot) {
    PhaseTimer phase(name_);
    ASSERT_TRUE(MakeDisk().ok());
    AB_ASSERT_OK_AND_ASSIGN(auto yb, Uki("Y", "B"));
    AB_ASSERT_OK(MakeBundle("truncated-uki", yb, "Y", 1 << 20, 64 * 1024));
    AB_ASSERT_OK(MakeBundle("oversized-image", yb, "Y", 40 << 20));
    AB_ASSERT_OK(Scenario(R"SH(
case $V in
X) act mark-good --policy $EFI
   act --policy $EFI --bundle $URL/truncated-uki.zip
   act --policy $EFI --bundle $URL/oversized-image.zip
   status $EFI
   sync; reboot -f ;;
esac
)SH"));
    phase.mark("images and bundles");
    std::string a_entry;
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run1"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "X");
        AB_ASSERT_OK_AND_ASSIGN(auto good, WaitRc(*vm));
        EXPECT_EQ(good.first, 0) << good.second;
        phase.mark("OVMF boots X, mark-good");
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
        a_entry = s.slots["A"].entry;
        ASSERT_FALSE(a_entry.empty()) << "mark-good made no entry for slot A";
        EXPECT_TRUE(s.slots["A"].active);
        ASSERT_FALSE(s.boot_order.empty());
        EXPECT_EQ(s.boot_order.front(), a_entry) << Join(s.boot_order);
        // The bundles list the UKI first: the truncated UKI was refused before anything changed
        // (issue 12), so slot B never got an entry; the oversized image was refused from the
        // manifest.
        EXPECT_TRUE(s.slots["B"].entry.empty())
            << "slot B got boot entry " << s.slots["B"].entry << " from bundles refused up front";
        AB_ASSERT_OK(vm->wait_for_guest_exit(GuestExit::reboot, kStep));
        phase.mark("two failed installs, reboot");
    }
    AB_ASSERT_OK(Scenario("status $EFI\n"));
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run2"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        ExpectBootedFrom(b, "X", "A", a_entry);
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        EXPECT_EQ(s.running, "A");
        EXPECT_TRUE(s.slots["A"].booted);
        EXPECT_FALSE(s.slots["B"].active);
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("reboot lands on X in slot A through its entry again");
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
        // The UKI comes first in the bundle; cut the power once the image is being written.
        AB_ASSERT_OK(vm->wait_for_line("writing verity_rootfs.img", kStep));
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
        ExpectBootedFrom(b, "X", "A", a_entry);
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        EXPECT_EQ(s.running, "A");
        EXPECT_EQ(s.boot_order.front(), a_entry) << Join(s.boot_order);
        EXPECT_EQ(s.boot_next, "null");
        ASSERT_FALSE(s.slots["B"].entry.empty());
        EXPECT_FALSE(s.slots["B"].active) << "the half-written slot's entry is active";
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("next boot: old slot, half-written slot's entry inactive");
    }
}

}  // namespace
}  // namespace activate::vm
