// Hang protection on a real kernel (issue 13 §3): a MicroVM guest with QEMU's i6300esb (reset
// action) arms the watchdog through the project's code, kexecs into a kernel whose init blocks
// forever, and the test sees the machine reset within the timeout. Before that, the same guest
// arms and releases the watchdog and lives on: the release really disarms it.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vm/images.hpp>
#include <vm/phase.hpp>
#include <vm/qemu.hpp>

#include "expect.hpp"

namespace activate::vm {
namespace {

constexpr int kTimeout = 40;  // s; covers the kexec and the hanging kernel's boot under TCG
constexpr int kPanic = 10;

// The kernel the guest jumps into: it reports its command line and then never does anything
// that could ping or stop a watchdog (no driver for it is even in its image).
constexpr const char* kHangingInit = R"SH(#!/bin/sh
mount -t proc proc /proc
echo "WATCHDOG-HANG up: $(cat /proc/cmdline)"
while :; do sleep 1000; done
)SH";

// The running system. watchdog.stop_on_reboot=0 on its command line keeps the kernel from
// stopping the watchdog at kexec (docs/boot-assessment-watchdog.md).
constexpr const char* kInit = R"SH(#!/bin/sh
. /etc/vm-lib.sh
vm_setup
vm_wait_for /dev/watchdog 30 || echo "WATCHDOG-E2E no /dev/watchdog"
/usr/bin/watchdog_guest arm /dev/watchdog 2
/usr/bin/watchdog_guest release /dev/watchdog
sleep 6
echo "WATCHDOG-E2E alive 6 s after the release"
/usr/bin/watchdog_guest jump /dev/watchdog TIMEOUT PANIC /boot/vmlinuz /boot/hang.img console=ttyS0
echo "WATCHDOG-E2E the jump failed"
)SH";

std::string with(std::string text, const std::string& key, int value) {
    return text.replace(text.find(key), key.size(), std::to_string(value));
}

TEST(WatchdogE2E, WatchdogArmedBeforeKexecResetsAHangingKernel) {
    PhaseTimer phase("WatchdogE2E.WatchdogArmedBeforeKexecResetsAHangingKernel");
    VM_ASSERT_OK_AND_ASSIGN(HostKernel kernel, FindHostKernel());
    InitramfsSpec hang;
    hang.modules = {};
    hang.init = kHangingInit;
    VM_ASSERT_OK_AND_ASSIGN(auto hang_initrd, BuildInitramfs(hang));
    InitramfsSpec spec;
    spec.modules = {"i6300esb"};
    spec.init = with(with(kInit, "TIMEOUT", kTimeout), "PANIC", kPanic);
    spec.files = {{WATCHDOG_GUEST_BINARY, "/usr/bin/watchdog_guest", true},
                  {kernel.bzimage, "/boot/vmlinuz"},
                  {hang_initrd, "/boot/hang.img"}};
    VM_ASSERT_OK_AND_ASSIGN(auto initrd, BuildInitramfs(spec));
    VM_ASSERT_OK_AND_ASSIGN(auto vmlinux, ExtractVmlinux(kernel));
    phase.mark("images (cached after the first run)");

    MicroVMOptions o;
    o.name = "e2e-watchdog-kexec";
    o.kernel = vmlinux;
    o.initrd = initrd;
    o.cmdline = "console=ttyS0 panic=-1 watchdog.stop_on_reboot=0 activate_e2e_guest=1";
    o.memory_mib = 768;
    // QEMU 7.2: the reset action ends the run under -no-reboot, like a guest reboot.
    o.extra_args = {"-device", "i6300esb", "-action", "watchdog=reset"};
    o.timeout = seconds(600);
    VM_ASSERT_OK_AND_ASSIGN(auto vm, MicroVM(o));

    VM_ASSERT_OK(vm->wait_for_line("^WATCHDOG-GUEST armed /dev/watchdog for 2 s held_elsewhere=0$",
                                   seconds(300)));
    VM_ASSERT_OK(
        vm->wait_for_line("^WATCHDOG-GUEST released /dev/watchdog: disarmed$", seconds(30)));
    // Armed for 2 s: without a real disarm QEMU would have reset the guest by now.
    VM_ASSERT_OK(vm->wait_for_line("^WATCHDOG-E2E alive 6 s after the release$", seconds(60)));
    phase.mark(std::string("boot, arm and release (") + to_string(vm->accel()) + ")");

    VM_ASSERT_OK_AND_ASSIGN(
        auto staged, vm->wait_for_line("^WATCHDOG-GUEST staged with cmdline: (.*)$", seconds(60)));
    const std::string expected_cmdline =
        "console=ttyS0 watchdog.open_timeout=" + std::to_string(kTimeout) +
        " watchdog.stop_on_reboot=0 panic=" + std::to_string(kPanic);
    EXPECT_EQ(staged.groups[1], expected_cmdline);
    VM_ASSERT_OK_AND_ASSIGN(auto armed,
                            vm->wait_for_line("^WATCHDOG-GUEST armed, jumping$", seconds(60)));
    // The new kernel booted with the hang-protection parameters, and then hangs.
    VM_ASSERT_OK_AND_ASSIGN(auto up,
                            vm->wait_for_line("^WATCHDOG-HANG up: (.*)$", seconds(kTimeout)));
    EXPECT_EQ(up.groups[1], expected_cmdline);
    phase.mark("kexec into the hanging kernel");

    VM_ASSERT_OK_AND_ASSIGN(ExitStatus exit, vm->wait_for_exit(seconds(kTimeout + 60)));
    const double after_arming =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - armed.arrived).count();
    phase.mark("watchdog reset");
    std::fprintf(stderr,
                 "[measure] armed %d s before the kexec; QEMU reset the guest %.1f s after\n",
                 kTimeout, after_arming);
    EXPECT_TRUE(exit.clean()) << exit.describe();
    // The hanging kernel never restarts by itself: the end of the run is the watchdog's reset.
    EXPECT_EQ(vm->guest_exit(), GuestExit::unknown) << vm->tail();
    // The console line reaches the test a little after the guest armed the watchdog.
    EXPECT_GE(after_arming, kTimeout - 2);
    EXPECT_LE(after_arming, kTimeout + 20);
}

}  // namespace
}  // namespace activate::vm
