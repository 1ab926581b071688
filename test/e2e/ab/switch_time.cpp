// See switch_time.hpp.
#include "switch_time.hpp"

#include <chrono>

namespace activate::vm {
namespace {

double seconds_between(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double>(to - from).count();
}

}  // namespace

const char* to_string(SwitchMode mode) {
    return mode == SwitchMode::kexec ? "kexec" : "EFI reboot";
}

Result<SwitchTiming> MeasureSwitch(AbWorld& world, SwitchMode mode, int image_mib) {
    const bool kexec = mode == SwitchMode::kexec;
    // A kexec'd UKI gets its slot from the placeholder substitution; a firmware-booted one
    // carries its own slot in its cmdline.
    ACTIVATE_ASSIGN(fs::path uki, world.Uki("Y", kexec ? "X" : "B"));
    ACTIVATE_TRY(world.MakeDisk());
    SwitchTiming t;
    t.image_bytes = size_t(image_mib) << 20;
    ACTIVATE_TRY(world.MakeBundle("Y", uki, "Y", t.image_bytes));
    const std::string policy = kexec ? "$KEXEC" : "$EFI";
    ACTIVATE_TRY(
        world.Scenario("case $V in X) act --policy " + policy + " --bundle $URL/Y.zip ;; esac\n"));

    const auto start = Clock::now();
    ACTIVATE_ASSIGN(auto vm, world.Boot(std::string("switch-") + (kexec ? "kexec" : "efi"),
                                        /*reboot_ends_run=*/false));
    ACTIVATE_ASSIGN(auto x, AbWorld::WaitBooted(*vm));
    if (x.variant != "X") return Error(ErrorKind::internal, "first boot ran " + x.variant);
    t.firmware_boot_s = seconds_between(start, x.arrived);
    ACTIVATE_ASSIGN(auto begin, vm->wait_for_line("installing into slot B", kStep));
    ACTIVATE_ASSIGN(auto written, vm->wait_for_line("slot B written and enabled", kStep));
    t.install_s = seconds_between(begin.arrived, written.arrived);
    ACTIVATE_ASSIGN(auto jump, vm->wait_for_line(std::string("activating slot B by ") +
                                                     (kexec ? "kexec" : "reboot") + " now",
                                                 kStep));
    ACTIVATE_ASSIGN(auto y, AbWorld::WaitBooted(*vm));
    if (y.variant != "Y" || y.slot != "B")
        return Error(ErrorKind::internal,
                     "after the switch: variant " + y.variant + " from slot " + y.slot);
    t.switch_s = seconds_between(jump.arrived, y.arrived);
    ACTIVATE_TRY(vm->wait_for_power_off(kStep));
    return t;
}

}  // namespace activate::vm
