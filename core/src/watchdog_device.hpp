// The two implementations of the watchdog actions of a Machine (machine.hpp), in watchdog.cpp:
// the live device (the LiveMachine's) and its record under a sysroot (the RecordingMachine's).
#pragma once

#include <activate/machine.hpp>
#include <chrono>
#include <string>

namespace activate {

// Opens the device, sets `timeout` (WDIOC_SETTIMEOUT), pings it (WDIOC_KEEPALIVE) and closes it
// without the magic 'V'. EBUSY (another opener): held elsewhere, nothing changed.
Result<WatchdogArming> arm_watchdog_device(const std::string& device, std::chrono::seconds timeout);
// EBUSY: handed over to the holder; otherwise the magic close.
Result<WatchdogRelease> release_watchdog_device(const std::string& device);

// The device is a plain file under the sysroot (an flock held on it stands for another opener);
// "arm <device> <seconds>" or "held-elsewhere <device>" is appended to /run/activate/watchdog.
Result<WatchdogArming> record_watchdog_arming(const Sysroot& sysroot, const std::string& device,
                                              std::chrono::seconds timeout);
// Appends "disarm <device>" or "handed-over <device>".
Result<WatchdogRelease> record_watchdog_release(const Sysroot& sysroot, const std::string& device);

}  // namespace activate
