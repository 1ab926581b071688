// Hang protection by a hardware watchdog (issue 13 §3): armed right before a jump, so that a new
// kernel that hangs before its userspace takes the watchdog over ends in a reset and the firmware's
// BootOrder brings back the good slot. What survives kexec and a firmware reset, measured in QEMU
// with Debian's 6.1 kernel, is in docs/boot-assessment-watchdog.md; the device interface is the
// kernel's Documentation/watchdog/watchdog-api.rst (<linux/watchdog.h>).
#pragma once

#include <activate/log.hpp>
#include <activate/plugin_api.hpp>
#include <activate/result.hpp>
#include <activate/settings.hpp>
#include <activate/sysroot.hpp>
#include <chrono>
#include <string>
#include <string_view>

namespace activate {

// `assessment.watchdog: {device, timeout}` and `assessment.panic_reboot` of the policy.
struct WatchdogSettings {
    std::string device;                    // empty: no watchdog is armed
    std::chrono::seconds timeout{0};       // what the device is armed with before a jump
    std::chrono::seconds panic_reboot{0};  // 0: leave panic= to the new kernel's command line

    bool armed() const { return !device.empty(); }
};

// Reads `watchdog` (a mapping: device, default /dev/watchdog; timeout, required, whole seconds)
// and `panic_reboot` (whole seconds) from the policy's `assessment` section. Marks only these keys
// as known: the caller calls finish() on the section once every reader of it has run.
Result<WatchdogSettings> parse_watchdog_settings(const Settings& assessment);

// Many watchdog drivers (43 in Linux 6.1's drivers/watchdog, i6300esb and iTCO_wdt among them)
// ask the core to stop the timer from a reboot notifier, and kernel_kexec() runs the reboot
// notifiers: an armed watchdog is stopped on the way into the new kernel unless the running kernel
// was booted with watchdog.stop_on_reboot=0. Returns why the protection would not survive a kexec
// (read from /sys/module/watchdog/parameters/stop_on_reboot), or an empty string when it does.
std::string why_kexec_stops_watchdog(const Sysroot& sysroot);

// Right before the jump (update_pipeline.cpp): arms the policy's watchdog, if any, and logs what
// protects the jump; for a staged kernel (kexec) it warns when the running kernel would stop the
// watchdog on the way.
// Failing to arm is an error: the policy asked for a jump with hang protection.
Status arm_watchdog_before_jump(const Machine& machine, const WatchdogSettings& settings,
                                Handover handover, const Log& log);

// After the jump itself failed (the machine is still on the running slot): releases what
// arm_watchdog_before_jump() armed, so that the good system is not reset a few seconds later.
// A failure to do so is logged, not returned: the jump's own error is the one to report.
void disarm_watchdog_after_failed_jump(const Machine& machine, const WatchdogSettings& settings,
                                       const Log& log);

// At the end of a good assessment (`activate assess`, assessment.cpp): the new slot proved
// itself, so the watchdog armed before the jump into it must not reset it. Releases the policy's
// watchdog, if any (Machine::release_watchdog(): handed over to its holder, or disarmed by the
// magic close), and logs which. A failure is logged as a warning, not returned: the slot is good
// and recorded so; a watchdog still counting resets into BootOrder's first entry, now this slot.
void release_watchdog_after_assessment(const Machine& machine, const WatchdogSettings& settings,
                                       const Log& log);

// The command line for a kernel started by kexec, with what hang protection needs added unless
// the line already sets it (the UKI's own choice wins; everything else is kept):
//   watchdog.open_timeout=<timeout>  a driver that finds its timer running (iTCO_wdt) has it
//                                    pinged by the watchdog core until userspace opens the device;
//                                    without a limit a new slot whose userspace never comes up is
//                                    protected only until that driver loads;
//   watchdog.stop_on_reboot=0        so that the new slot's own next kexec keeps the watchdog too;
//   panic=<panic_reboot>             a panic reboots after that many seconds instead of halting
//                                    (Debian's CONFIG_PANIC_TIMEOUT is 0: halt forever).
// New parameters go before a bare "--" (the words after it are init's). Fails only for a line the
// kernel's parser could not carry back (see format_kernel_cmdline).
Result<std::string> cmdline_with_hang_protection(std::string_view cmdline,
                                                 const WatchdogSettings& settings);

}  // namespace activate
