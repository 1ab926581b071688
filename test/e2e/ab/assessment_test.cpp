// Boot assessment end to end (issue 13, "Proof"): OVMF guests of the A/B test OS run `activate
// assess` first thing at every boot, as the shipped unit does on a systemd machine, with the
// shipped policies plus an `assessment` section. For kexec and for EFI activation: a healthy new
// slot is assessed good with no human step and a cold boot lands on it; a slot whose health check
// fails sends the machine back to the old slot by itself, the old slot's assess ends the trial
// naming the check, and a cold boot stays there; an install tried in the slot on trial is refused
// and leaves the good slot's bytes as they were.
#include <gtest/gtest.h>

#include <vm/phase.hpp>

#include "ab_expect.hpp"

namespace activate::vm {
namespace {

class AssessmentE2E : public AbFixture {};

// Sourced first by every scenario below. `P` is the variant's policy: the shipped one ($KEXEC or
// $EFI, chosen by the test) with its assessment section replaced by one whose one check passes,
// except in the variant named @FAILING@, where it exits 1. `hash_a` prints a digest of slot A's partition and
// of its UKI on the ESP (slot A is the good slot in every test). `assess` is the boot-time step.
constexpr const char* kPrelude = R"SH(
P=/tmp/assess.yaml
# The shipped policy without its own assessment section (its check asks systemd, which the test
# OS does not run), then this test's.
awk '/^assessment:/ { skip = 1; next } skip && /^[^ #]/ { skip = 0 } !skip' @POLICY@ > $P
if [ "$V" = @FAILING@ ]; then
  check='[/bin/sh, -c, "echo the service does not answer; exit 1"]'
else
  check='[/bin/true]'
fi
printf '\nassessment:\n  deadline: 10m\n  checks:\n    - {name: service-answers, command: %s, timeout: 60s}\n' "$check" >> $P
slot_dev() {
  for u in /sys/class/block/*/uevent; do
    grep -qxF "PARTNAME=METROPOLIS-SYSTEM-$1" "$u" && sed -n 's/^DEVNAME=//p' "$u" && return
  done
}
hash_a() {
  echo "TESTOS_HASH_A=$(cat /dev/$(slot_dev A) /esp/EFI/metropolis/boot-a.efi | sha256sum | cut -d' ' -f1)"
}
assess() { act assess --policy $P; }
)SH";

std::string Replace(std::string s, const std::string& from, const std::string& to) {
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
        s.replace(at, from.size(), to);
    return s;
}

// The scenario for every variant: the prelude for `policy` ("$KEXEC" or "$EFI") with the check
// failing in `failing` ("Y", or "none"), then `script`.
std::string WithPrelude(const std::string& policy, const std::string& failing,
                        const std::string& script) {
    return Replace(Replace(kPrelude, "@POLICY@", policy), "@FAILING@", failing) + script;
}

// `assess` found nothing on trial.
void ExpectNothingToAssess(const std::pair<int, std::string>& rc) {
    EXPECT_EQ(rc.first, 0) << rc.second;
    EXPECT_NE(rc.second.find("no activation on trial"), std::string::npos) << rc.second;
}

// Slot B (Y, activated from A by `mode`) assessed good: the record and the boot order.
void ExpectAssessedGood(const BootStatus& s, const std::string& mode) {
    EXPECT_EQ(s.running, "B");
    EXPECT_EQ(s.verdicts.at("B").state, "good");
    ASSERT_TRUE(s.last.has_value()) << "no last_activation";
    EXPECT_EQ(s.last->mode, mode);
    EXPECT_EQ(s.last->from, "A");
    EXPECT_EQ(s.last->to, "B");
    EXPECT_EQ(s.last->outcome, "good");
    ASSERT_TRUE(s.last->switch_time_ms.has_value()) << "no switch time recorded";
    // From the jump in A to assess starting in B: at least a kernel boot, and well under the
    // 10-minute deadline.
    EXPECT_GT(*s.last->switch_time_ms, 500);
    EXPECT_LT(*s.last->switch_time_ms, 600000);
    ASSERT_FALSE(s.boot_order.empty());
    EXPECT_EQ(s.boot_order.front(), s.slots.at("B").entry) << Join(s.boot_order);
    EXPECT_EQ(s.boot_next, "null");
}

// Back on A after B failed its check: A's assess ended the trial, naming the check.
void ExpectFellBack(const BootStatus& s, const std::string& mode) {
    EXPECT_EQ(s.running, "A");
    EXPECT_EQ(s.verdicts.at("A").state, "good");
    EXPECT_EQ(s.verdicts.at("B").state, "failed");
    EXPECT_EQ(s.verdicts.at("B").reason, "check \"service-answers\" exited with status 1");
    ASSERT_TRUE(s.last.has_value()) << "no last_activation";
    EXPECT_EQ(s.last->mode, mode);
    EXPECT_EQ(s.last->to, "B");
    EXPECT_EQ(s.last->outcome, "failed");
    EXPECT_EQ(s.last->reason, "check \"service-answers\" exited with status 1");
    EXPECT_TRUE(s.last->returned) << "the trial does not record the return to A";
    ASSERT_FALSE(s.boot_order.empty());
    EXPECT_EQ(s.boot_order.front(), s.slots.at("A").entry) << Join(s.boot_order);
    EXPECT_EQ(s.boot_next, "null");
}

// In Y, on trial in B, before assess: an install (which would go to A) is refused with exit 8
// and a message saying why; slot A's partition and UKI hash the same before and after.
void ExpectInstallRefused(Machine& vm) {
    AB_ASSERT_OK_AND_ASSIGN(auto before, vm.wait_for_line("^TESTOS_HASH_A=(\\w+)$", kStep));
    AB_ASSERT_OK_AND_ASSIGN(auto rc, AbWorld::WaitRc(vm));
    std::fprintf(stderr, "[e2e-ab] install on trial: exit %d\n%s", rc.first, rc.second.c_str());
    EXPECT_EQ(rc.first, 8) << rc.second;  // rejected
    EXPECT_NE(rc.second.find("slot B is on trial since"), std::string::npos) << rc.second;
    EXPECT_NE(rc.second.find("would overwrite the only known-good slot"), std::string::npos)
        << rc.second;
    EXPECT_NE(rc.second.find("nothing was written"), std::string::npos) << rc.second;
    AB_ASSERT_OK_AND_ASSIGN(auto after, vm.wait_for_line("^TESTOS_HASH_A=(\\w+)$", kStep));
    EXPECT_EQ(before.groups[1], after.groups[1]) << "slot A changed under a refused install";
}

// X (slot A) installs Y into B and kexecs it; Y's boot-time assess passes its check and marks B
// good (first in BootOrder) with the switch time; a cold boot lands on Y in B.
TEST_F(AssessmentE2E, KexecHealthySlotIsAssessedGood) {
    PhaseTimer phase(name_);
    ASSERT_TRUE(MakeDisk().ok());
    AB_ASSERT_OK_AND_ASSIGN(auto y, Uki("Y", "X"));
    AB_ASSERT_OK(MakeBundle("Y", y, "Y", 1 << 20));
    AB_ASSERT_OK(Scenario(WithPrelude("$KEXEC", "none", R"SH(
assess
case $V in
X) act --policy $P --bundle $URL/Y.zip ;;
Y) status $P ;;
esac
)SH")));
    phase.mark("images and bundles");
    std::string b_entry;
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run1"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "X");
        EXPECT_EQ(b.slot, "A");
        AB_ASSERT_OK_AND_ASSIGN(auto none, WaitRc(*vm));
        ExpectNothingToAssess(none);
        phase.mark("run 1: OVMF boots X from slot A, nothing to assess");
        AB_ASSERT_OK_AND_ASSIGN(auto by, WaitBooted(*vm));
        EXPECT_EQ(by.variant, "Y");
        EXPECT_EQ(by.slot, "B");
        phase.mark("run 1: install Y into B, kexec, Y's init");
        AB_ASSERT_OK_AND_ASSIGN(auto rc, WaitRc(*vm));
        EXPECT_EQ(rc.first, 0) << rc.second;
        EXPECT_NE(rc.second.find("slot B assessed good (1 check passed; switch time"),
                  std::string::npos)
            << rc.second;
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectAssessedGood(s, "kexec");
        b_entry = s.slots["B"].entry;
        ASSERT_FALSE(b_entry.empty());
        std::fprintf(stderr, "[measure] kexec switch time %lld ms\n",
                     s.last ? s.last->switch_time_ms.value_or(-1) : -1);
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("run 1: Y assessed good, minit powers off");
    }
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("cold-b"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        ExpectBootedFrom(b, "Y", "B", b_entry);
        AB_ASSERT_OK_AND_ASSIGN(auto none, WaitRc(*vm));
        ExpectNothingToAssess(none);
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectColdBooted(s, "B", b_entry);
        EXPECT_EQ(s.verdicts["B"].state, "good");
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("run 2: cold boot lands on Y in slot B");
    }
}

// X installs Y into B and kexecs it; in Y (on trial) an install is refused and slot A is
// untouched; Y's check exits 1, so assess points BootNext at A and reboots through the firmware;
// X's assess in A ends the trial ("service-answers" named) and makes A first; a cold boot stays
// on A.
TEST_F(AssessmentE2E, KexecFailingCheckFallsBackToA) {
    PhaseTimer phase(name_);
    ASSERT_TRUE(MakeDisk().ok());
    AB_ASSERT_OK_AND_ASSIGN(auto y, Uki("Y", "X"));
    AB_ASSERT_OK(MakeBundle("Y", y, "Y", 1 << 20));
    AB_ASSERT_OK(Scenario(WithPrelude("$KEXEC", "Y", R"SH(
case $V in
X) assess; act --policy $P --bundle $URL/Y.zip ;;
Y) hash_a; act --policy $P --bundle $URL/Y.zip; hash_a; assess ;;
esac
)SH")));
    phase.mark("images and bundles");
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run1"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "X");
        EXPECT_EQ(b.slot, "A");
        AB_ASSERT_OK_AND_ASSIGN(auto none, WaitRc(*vm));
        ExpectNothingToAssess(none);
        AB_ASSERT_OK_AND_ASSIGN(auto by, WaitBooted(*vm));
        EXPECT_EQ(by.variant, "Y");
        EXPECT_EQ(by.slot, "B");
        phase.mark("run 1: X installs Y into B, kexec, Y's init");
        ExpectInstallRefused(*vm);
        if (HasFatalFailure()) return;
        phase.mark("run 1: install refused on trial, slot A unchanged");
        AB_ASSERT_OK(vm->wait_for_line(
            "slot B failed its assessment \\(check \"service-answers\" exited with status 1\\); "
            "rebooting into slot A",
            kStep));
        AB_ASSERT_OK(vm->wait_for_guest_exit(GuestExit::reboot, kStep));
        phase.mark("run 1: Y's check fails, assess reboots through the firmware");
    }
    AB_ASSERT_OK(Scenario(WithPrelude("$KEXEC", "Y", "assess; status $P\n")));
    std::string a_entry;
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run2"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "X");
        EXPECT_EQ(b.slot, "A");
        EXPECT_EQ(b.rootfs, "TESTOS-ROOTFS-X");
        AB_ASSERT_OK_AND_ASSIGN(auto rc, WaitRc(*vm));
        EXPECT_EQ(rc.first, 0) << rc.second;
        EXPECT_NE(rc.second.find("back on slot A after slot B failed its assessment"),
                  std::string::npos)
            << rc.second;
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectFellBack(s, "kexec");
        a_entry = s.slots["A"].entry;
        ASSERT_FALSE(a_entry.empty());
        // BootNext, set by Y's assess, brought the firmware to A's entry.
        EXPECT_EQ(b.boot_current, a_entry);
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("run 2: back on X in A, assess ends the trial");
    }
    AB_ASSERT_OK(Scenario(WithPrelude("$KEXEC", "Y", "assess; status $P\n")));
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("cold-a"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        ExpectBootedFrom(b, "X", "A", a_entry);
        AB_ASSERT_OK_AND_ASSIGN(auto none, WaitRc(*vm));
        ExpectNothingToAssess(none);
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectColdBooted(s, "A", a_entry);
        EXPECT_EQ(s.verdicts["B"].state, "failed");
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("run 3: cold boot stays on X in slot A");
    }
}

// X installs Y into B by BootNext and a firmware reboot; Y, booted from B's entry, is assessed
// good at boot, B becomes first in BootOrder; a cold boot lands on Y in B.
TEST_F(AssessmentE2E, EfiHealthySlotIsAssessedGood) {
    PhaseTimer phase(name_);
    ASSERT_TRUE(MakeDisk().ok());
    AB_ASSERT_OK_AND_ASSIGN(auto yb, Uki("Y", "B"));
    AB_ASSERT_OK(MakeBundle("Y", yb, "Y", 1 << 20));
    AB_ASSERT_OK(Scenario(WithPrelude("$EFI", "none", R"SH(
assess
case $V in
X) act --policy $P --bundle $URL/Y.zip ;;
Y) status $P ;;
esac
)SH")));
    phase.mark("images and bundles");
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run1"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "X");
        EXPECT_EQ(b.slot, "A");
        AB_ASSERT_OK_AND_ASSIGN(auto none, WaitRc(*vm));
        ExpectNothingToAssess(none);
        AB_ASSERT_OK(vm->wait_for_guest_exit(GuestExit::reboot, kStep));
        phase.mark("run 1: X installs Y into B, BootNext, reboot");
    }
    std::string b_entry;
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run2"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "Y");
        EXPECT_EQ(b.slot, "B");
        AB_ASSERT_OK_AND_ASSIGN(auto rc, WaitRc(*vm));
        EXPECT_EQ(rc.first, 0) << rc.second;
        EXPECT_NE(rc.second.find("slot B assessed good (1 check passed; switch time"),
                  std::string::npos)
            << rc.second;
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectAssessedGood(s, "reboot");
        b_entry = s.slots["B"].entry;
        EXPECT_EQ(b.boot_current, b_entry) << "BootNext did not bring the firmware to B's entry";
        std::fprintf(stderr, "[measure] EFI reboot switch time %lld ms\n",
                     s.last ? s.last->switch_time_ms.value_or(-1) : -1);
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("run 2: Y booted by BootNext, assessed good");
    }
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("cold-b"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        ExpectBootedFrom(b, "Y", "B", b_entry);
        AB_ASSERT_OK_AND_ASSIGN(auto none, WaitRc(*vm));
        ExpectNothingToAssess(none);
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectColdBooted(s, "B", b_entry);
        EXPECT_EQ(s.verdicts["B"].state, "good");
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("run 3: cold boot lands on Y in slot B");
    }
}

// X installs Y into B by BootNext and a firmware reboot; in Y an install is refused and slot A is
// untouched; Y's check exits 1, assess sends the machine back to A; X's assess ends the trial;
// a cold boot stays on A.
TEST_F(AssessmentE2E, EfiFailingCheckFallsBackToA) {
    PhaseTimer phase(name_);
    ASSERT_TRUE(MakeDisk().ok());
    AB_ASSERT_OK_AND_ASSIGN(auto yb, Uki("Y", "B"));
    AB_ASSERT_OK(MakeBundle("Y", yb, "Y", 1 << 20));
    AB_ASSERT_OK(Scenario(WithPrelude("$EFI", "Y", R"SH(
case $V in
X) assess; act --policy $P --bundle $URL/Y.zip ;;
Y) hash_a; act --policy $P --bundle $URL/Y.zip; hash_a; assess ;;
esac
)SH")));
    phase.mark("images and bundles");
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run1"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "X");
        AB_ASSERT_OK_AND_ASSIGN(auto none, WaitRc(*vm));
        ExpectNothingToAssess(none);
        AB_ASSERT_OK(vm->wait_for_guest_exit(GuestExit::reboot, kStep));
        phase.mark("run 1: X installs Y into B, BootNext, reboot");
    }
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run2"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "Y");
        EXPECT_EQ(b.slot, "B");
        ExpectInstallRefused(*vm);
        if (HasFatalFailure()) return;
        phase.mark("run 2: Y on trial in B, install refused, slot A unchanged");
        AB_ASSERT_OK(vm->wait_for_line(
            "slot B failed its assessment \\(check \"service-answers\" exited with status 1\\); "
            "rebooting into slot A",
            kStep));
        AB_ASSERT_OK(vm->wait_for_guest_exit(GuestExit::reboot, kStep));
        phase.mark("run 2: Y's check fails, assess reboots through the firmware");
    }
    AB_ASSERT_OK(Scenario(WithPrelude("$EFI", "Y", "assess; status $P\n")));
    std::string a_entry;
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run3"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "X");
        EXPECT_EQ(b.slot, "A");
        AB_ASSERT_OK_AND_ASSIGN(auto rc, WaitRc(*vm));
        EXPECT_EQ(rc.first, 0) << rc.second;
        EXPECT_NE(rc.second.find("back on slot A after slot B failed its assessment"),
                  std::string::npos)
            << rc.second;
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectFellBack(s, "reboot");
        a_entry = s.slots["A"].entry;
        EXPECT_EQ(b.boot_current, a_entry);
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("run 3: back on X in A, assess ends the trial");
    }
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("cold-a"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        ExpectBootedFrom(b, "X", "A", a_entry);
        AB_ASSERT_OK_AND_ASSIGN(auto none, WaitRc(*vm));
        ExpectNothingToAssess(none);
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectColdBooted(s, "A", a_entry);
        EXPECT_EQ(s.verdicts["B"].state, "failed");
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("run 4: cold boot stays on X in slot A");
    }
}

// Hang protection through the whole engine: X (booted with watchdog.stop_on_reboot=0, i6300esb
// loaded) installs a Y whose init blocks forever (rdinit=/bin/sleep) and kexecs it with the
// policy's watchdog armed for 40 s. Nothing in Y pings the watchdog, QEMU resets the machine, the
// firmware boots A (BootOrder; a kexec trial never touches it), and X's boot-time assess records
// that B failed because the machine came back on A; a watchdog-reset boot, not a human.
TEST_F(AssessmentE2E, KexecHangingSlotIsResetByTheWatchdogAndRecordedFailed) {
    PhaseTimer phase(name_);
    extra_cmdline = "watchdog.stop_on_reboot=0";
    extra_modules = {"i6300esb"};
    // QEMU 7.2: the watchdog's reset ends the run under -no-reboot, like a guest reboot.
    extra_qemu_args = {"-device", "i6300esb", "-action", "watchdog=reset"};
    ASSERT_TRUE(MakeDisk().ok());
    AB_ASSERT_OK_AND_ASSIGN(fs::path initrd, Initramfs("Y"));
    UkiSpec hang;
    hang.kernel = kernel_.bzimage;
    hang.initrd = initrd;
    // The words after "--" are init's arguments: sleep for 68 years as PID 1.
    hang.cmdline =
        "console=ttyS0 panic=-1 quiet rdinit=/bin/sleep root=PARTLABEL=METROPOLIS-SYSTEM-X -- "
        "2147483647";
    AB_ASSERT_OK_AND_ASSIGN(fs::path y, BuildUki(hang));
    AB_ASSERT_OK(MakeBundle("Y", y, "Y", 1 << 20));
    const std::string with_watchdog =
        "printf '  watchdog: {device: /dev/watchdog, timeout: 40s}\\n' >> $P\n";
    AB_ASSERT_OK(Scenario(WithPrelude("$KEXEC", "none", with_watchdog + R"SH(
assess
case $V in
X) act --policy $P --bundle $URL/Y.zip ;;
esac
)SH")));
    phase.mark("images and bundles");
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run1"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "X");
        AB_ASSERT_OK_AND_ASSIGN(auto none, WaitRc(*vm));
        ExpectNothingToAssess(none);
        AB_ASSERT_OK_AND_ASSIGN(
            auto armed, vm->wait_for_line("watchdog /dev/watchdog armed: the machine resets in "
                                          "40 s unless the new system takes the watchdog over",
                                          kStep));
        AB_ASSERT_OK(
            vm->wait_for_line("kexec_core: Starting new kernel|activating slot B by "
                              "kexec now",
                              kStep));
        phase.mark("run 1: X installs the hanging Y, arms the watchdog, kexec");
        AB_ASSERT_OK_AND_ASSIGN(ExitStatus exit, vm->wait_for_exit(seconds(200)));
        const double after_arming =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - armed.arrived).count();
        std::fprintf(stderr,
                     "[measure] watchdog armed for 40 s; QEMU reset the guest %.1f s after\n",
                     after_arming);
        EXPECT_TRUE(exit.clean()) << exit.describe();
        // Y never printed minit's banner: its init only sleeps, and the end of the run is the
        // watchdog's reset, not a reboot by the guest.
        EXPECT_EQ(vm->guest_exit(), GuestExit::unknown) << vm->tail();
        EXPECT_GE(after_arming, 38);
        phase.mark("run 1: Y hangs, the watchdog resets the machine");
    }
    AB_ASSERT_OK(Scenario(WithPrelude("$KEXEC", "none", with_watchdog + "assess; status $P\n")));
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run2"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "X");
        EXPECT_EQ(b.slot, "A");
        AB_ASSERT_OK_AND_ASSIGN(auto rc, WaitRc(*vm));
        EXPECT_EQ(rc.first, 0) << rc.second;
        EXPECT_NE(rc.second.find("slot B failed: came back on A (activated by kexec at "),
                  std::string::npos)
            << rc.second;
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        EXPECT_EQ(s.running, "A");
        EXPECT_EQ(s.verdicts["A"].state, "good");
        EXPECT_EQ(s.verdicts["B"].state, "failed");
        EXPECT_EQ(s.verdicts["B"].reason.rfind("slot B failed: came back on A (", 0), 0u)
            << s.verdicts["B"].reason;
        ASSERT_TRUE(s.last.has_value());
        EXPECT_EQ(s.last->mode, "kexec");
        EXPECT_EQ(s.last->outcome, "failed");
        EXPECT_TRUE(s.last->returned);
        ASSERT_FALSE(s.boot_order.empty());
        EXPECT_EQ(s.boot_order.front(), s.slots["A"].entry) << Join(s.boot_order);
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("run 2: back on X in A, assess records that B failed");
    }
}

}  // namespace
}  // namespace activate::vm
