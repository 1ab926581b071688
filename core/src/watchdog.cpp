// Hang protection by a hardware watchdog: arming and release of the live device (the
// LiveMachine's; the RecordingMachine's record is in machine.cpp), and the kexec command line. See
// watchdog.hpp; measurements in docs/boot-assessment-watchdog.md. The policy keys are read in
// watchdog_settings.cpp.
#include <fcntl.h>
#include <linux/watchdog.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <activate/kernel_cmdline.hpp>
#include <activate/watchdog.hpp>

#include "watchdog_device.hpp"

namespace activate {

namespace {
constexpr const char* kStopOnReboot = "/sys/module/watchdog/parameters/stop_on_reboot";

// Writes the magic character, then closes: the watchdog core stops the timer at release
// (Documentation/watchdog/watchdog-api.rst "Magic Close").
Status magic_close(UniqueFd fd, const std::string& device) {
    if (::write(fd.get(), "V", 1) != 1)
        return errno_error(ErrorKind::activation, "watchdog " + device + ": writing the magic 'V'");
    if (::close(fd.release()) != 0)
        return errno_error(ErrorKind::activation, "watchdog " + device + ": closing");
    return {};
}

// The live device, opened for writing; EBUSY (open elsewhere) is an answer, not an error.
Result<UniqueFd> open_device(const std::string& device, bool* busy) {
    *busy = false;
    UniqueFd fd(::open(device.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) {
        if (errno == EBUSY) {
            *busy = true;
            return fd;
        }
        const int err = errno;
        return errno_error(ErrorKind::activation, "watchdog " + device, err)
            .with_context(err == ENOENT ? "no watchdog device (is its driver loaded?)"
                                        : "opening the watchdog");
    }
    return fd;
}

}  // namespace

const char* to_string(WatchdogRelease release) {
    return release == WatchdogRelease::disarmed ? "disarmed" : "handed over";
}

Result<WatchdogArming> arm_watchdog_device(const std::string& device,
                                           std::chrono::seconds timeout) {
    bool busy = false;
    ACTIVATE_ASSIGN(UniqueFd fd, open_device(device, &busy));
    if (busy) return WatchdogArming{true, std::chrono::seconds(0)};
    // Opening started the timer with the driver's current timeout; set ours. The kernel answers
    // with the value it set (WDIOC_SETTIMEOUT falls through to WDIOC_GETTIMEOUT).
    int seconds = static_cast<int>(timeout.count());
    if (::ioctl(fd.get(), WDIOC_SETTIMEOUT, &seconds) != 0) {
        Error e =
            errno_error(ErrorKind::activation, "watchdog " + device + ": setting a timeout of " +
                                                   std::to_string(timeout.count()) + " s");
        // Leave no watchdog running with a timeout nobody chose.
        (void)magic_close(std::move(fd), device);
        return e;
    }
    int ignored = 0;
    if (::ioctl(fd.get(), WDIOC_KEEPALIVE, &ignored) != 0) {
        Error e = errno_error(ErrorKind::activation, "watchdog " + device + ": keepalive");
        (void)magic_close(std::move(fd), device);
        return e;
    }
    // Closed without the magic 'V': the timer keeps counting.
    if (::close(fd.release()) != 0)
        return errno_error(ErrorKind::activation, "watchdog " + device + ": closing");
    return WatchdogArming{false, std::chrono::seconds(seconds)};
}

Result<WatchdogRelease> release_watchdog_device(const std::string& device) {
    bool busy = false;
    ACTIVATE_ASSIGN(UniqueFd fd, open_device(device, &busy));
    if (busy) return WatchdogRelease::handed_over;
    ACTIVATE_TRY(magic_close(std::move(fd), device));
    return WatchdogRelease::disarmed;
}

std::string why_kexec_stops_watchdog(const Sysroot& sysroot) {
    Result<std::string> value = sysroot.read_file(kStopOnReboot, 64);
    if (!value.ok())
        return "cannot tell whether the kernel stops the watchdog at kexec (" +
               value.error().message() + ")";
    std::string v = *value;
    while (!v.empty() && (v.back() == '\n' || v.back() == ' ')) v.pop_back();
    if (v == "0") return "";
    // -1 leaves it to the driver, and most drivers ask to be stopped (watchdog_stop_on_reboot()).
    return "the running kernel has watchdog.stop_on_reboot=" + v +
           ", so it stops the watchdog at kexec and the new kernel is not protected; boot this "
           "system with watchdog.stop_on_reboot=0 on its command line";
}

Status arm_watchdog_before_jump(const Machine& machine, const WatchdogSettings& settings,
                                Handover handover, const Log& log) {
    if (!settings.armed()) return {};
    if (handover == Handover::staged_kernel) {
        if (std::string why = why_kexec_stops_watchdog(machine.sysroot()); !why.empty())
            log.warning(why);
    }
    ACTIVATE_ASSIGN(WatchdogArming armed, machine.arm_watchdog(settings.device, settings.timeout));
    if (armed.held_elsewhere)
        log.warning("watchdog " + settings.device +
                    " is held by another process (e.g. systemd's RuntimeWatchdogSec=): it stays "
                    "armed with that process's timeout, not " +
                    std::to_string(settings.timeout.count()) + " s");
    else
        log.info("watchdog " + settings.device + " armed: the machine resets in " +
                 std::to_string(armed.timeout.count()) +
                 " s unless the new system takes the watchdog over");
    return {};
}

void disarm_watchdog_after_failed_jump(const Machine& machine, const WatchdogSettings& settings,
                                       const Log& log) {
    if (!settings.armed()) return;
    Result<WatchdogRelease> released = machine.release_watchdog(settings.device);
    if (!released.ok())
        log.error(
            "the jump failed and the watchdog armed for it could not be stopped, so the "
            "machine resets within " +
            std::to_string(settings.timeout.count()) + " s: " + released.error().message());
    else
        log.info("the jump failed; watchdog " + settings.device + " " + to_string(*released));
}

void release_watchdog_after_assessment(const Machine& machine, const WatchdogSettings& settings,
                                       const Log& log) {
    if (!settings.armed()) return;
    Result<WatchdogRelease> released = machine.release_watchdog(settings.device);
    if (!released.ok()) {
        log.warning("the slot is good, but the watchdog " + settings.device +
                    " armed before the jump could not be released (" + released.error().message() +
                    "); if it is still running, it resets the machine into this slot");
        return;
    }
    if (*released == WatchdogRelease::handed_over)
        log.info("watchdog " + settings.device +
                 " handed over: another process holds it (e.g. systemd's RuntimeWatchdogSec=) "
                 "and keeps pinging it");
    else
        log.info("watchdog " + settings.device + " disarmed (magic close)");
}

Result<std::string> cmdline_with_hang_protection(std::string_view cmdline,
                                                 const WatchdogSettings& settings) {
    KernelCmdline parsed = parse_kernel_cmdline(cmdline);
    std::vector<KernelParam> added;
    auto add_unless_set = [&](const std::string& name, std::string value) {
        for (const KernelParam& p : parsed.params)
            if (p.name == name) return;
        added.push_back(KernelParam{name, std::move(value)});
    };
    if (settings.armed()) {
        add_unless_set("watchdog.open_timeout", std::to_string(settings.timeout.count()));
        add_unless_set("watchdog.stop_on_reboot", "0");
    }
    if (settings.panic_reboot.count() > 0)
        add_unless_set("panic", std::to_string(settings.panic_reboot.count()));
    if (added.empty()) return std::string(cmdline);
    parsed.params.insert(parsed.params.end(), added.begin(), added.end());
    return format_kernel_cmdline(parsed);
}

}  // namespace activate
