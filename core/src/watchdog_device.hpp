// The LiveMachine's watchdog actions (machine.hpp), in watchdog.cpp beside the rest of the
// hang protection.
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

}  // namespace activate
