// See distro_switch_time.hpp.
#include "distro_switch_time.hpp"

#include <chrono>

namespace activate::vm {
namespace {

double seconds_between(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double>(to - from).count();
}

}  // namespace

Result<DistroSwitchTiming> MeasureDistroSwitch(DistroWorld& world, SwitchMode mode) {
    const bool kexec = mode == SwitchMode::kexec;
    ACTIVATE_ASSIGN(fs::path deb, world.Package());
    ACTIVATE_TRY(world.MakeDisk({}, deb));
    // A kexec'd UKI gets its slot from the placeholder substitution; a firmware-booted one
    // carries its own slot in its cmdline.
    ACTIVATE_ASSIGN(fs::path uki, world.Uki(kexec ? "X" : "B"));
    ACTIVATE_ASSIGN(fs::path y, world.SlotImage("Y", {}, deb));
    ACTIVATE_TRY(world.MakeBundle("Y", uki, y));
    const std::string policy = kexec ? "$KEXEC" : "$EFI";
    ACTIVATE_TRY(world.Scenario("case $V in\nX) act mark-good --policy " + policy +
                                "\n   act --policy " + policy +
                                " --bundle $URL/Y.zip ;;\nY) AFTER=poweroff ;;\nesac\n"));

    const auto start = Clock::now();
    ACTIVATE_ASSIGN(auto vm, world.Boot(std::string("switch-") + (kexec ? "kexec" : "efi"), {}, {},
                                        /*reboot_ends_run=*/false));
    ACTIVATE_ASSIGN(auto x, DistroWorld::WaitBooted(*vm));
    if (x.variant != "X") return Error(ErrorKind::internal, "first boot ran " + x.variant);
    DistroSwitchTiming t;
    t.firmware_boot_s = seconds_between(start, x.arrived);
    ACTIVATE_ASSIGN(auto begin, vm->wait_for_line("installing into slot B", kDistroBoot));
    ACTIVATE_ASSIGN(auto written, vm->wait_for_line("slot B written and enabled", kDistroBoot));
    t.install_s = seconds_between(begin.arrived, written.arrived);
    ACTIVATE_ASSIGN(auto jump, vm->wait_for_line(std::string("activating slot B by ") +
                                                     (kexec ? "kexec" : "reboot") + " now",
                                                 kStep));
    // systemd.show_status=1 (DistroWorld::Uki) prints the welcome line despite `quiet`; the
    // initrd has no systemd, so the first one is B's root.
    ACTIVATE_ASSIGN(auto welcome, vm->wait_for_line("Welcome to .*Debian", kDistroBoot));
    t.to_systemd_s = seconds_between(jump.arrived, welcome.arrived);
    ACTIVATE_ASSIGN(auto yb, DistroWorld::WaitBooted(*vm));
    if (yb.variant != "Y" || yb.root_partlabel != "METROPOLIS-SYSTEM-B")
        return Error(ErrorKind::internal,
                     "after the switch: variant " + yb.variant + " on " + yb.root_partlabel);
    t.to_unit_s = seconds_between(jump.arrived, yb.arrived);
    ACTIVATE_TRY(vm->wait_for_guest_exit(GuestExit::power_off, kDistroBoot));
    return t;
}

}  // namespace activate::vm
