// The policy keys of hang protection (assessment.watchdog, assessment.panic_reboot; see
// watchdog.hpp and docs/policy.md). Apart from the rest of watchdog.cpp so that the policy parser
// (and its fuzz target) needs nothing but Settings.
#include <activate/watchdog.hpp>

namespace activate {

namespace {
// WDIOC_SETTIMEOUT takes an int of seconds, and the largest hardware timeouts are minutes
// (i6300esb: 2046 s, iTCO v2: 614 s); an hour is far past anything a driver accepts.
constexpr int64_t kMaxTimeoutSeconds = 3600;

Result<std::chrono::seconds> whole_seconds(const Settings& settings, const std::string& key,
                                           std::chrono::milliseconds value) {
    if (value.count() % 1000 != 0 || value.count() < 1000 ||
        value.count() > kMaxTimeoutSeconds * 1000)
        return settings.error_at(key, "expected a whole number of seconds from 1s to " +
                                          std::to_string(kMaxTimeoutSeconds) + "s, got " +
                                          std::to_string(value.count()) + " ms");
    return std::chrono::duration_cast<std::chrono::seconds>(value);
}

}  // namespace

Result<WatchdogSettings> parse_watchdog_settings(const Settings& assessment) {
    WatchdogSettings out;
    if (assessment.has("watchdog")) {
        ACTIVATE_ASSIGN(Settings watchdog, assessment.section("watchdog"));
        ACTIVATE_ASSIGN(out.device, watchdog.string_or("device", "/dev/watchdog"));
        if (out.device.empty() || out.device.front() != '/')
            return watchdog.error_at("device", "must be an absolute path, e.g. /dev/watchdog");
        // No default: the timeout must outlast the new slot's boot up to the point where its
        // userspace takes the watchdog over, which only the policy's author knows.
        if (!watchdog.has("timeout"))
            return watchdog.error_at("timeout", "required setting is missing (e.g. 60s)");
        ACTIVATE_ASSIGN(auto timeout, watchdog.duration_or("timeout", {}));
        ACTIVATE_ASSIGN(out.timeout, whole_seconds(watchdog, "timeout", timeout));
        ACTIVATE_TRY(watchdog.finish());
    }
    if (assessment.has("panic_reboot")) {
        ACTIVATE_ASSIGN(auto panic, assessment.duration_or("panic_reboot", {}));
        ACTIVATE_ASSIGN(out.panic_reboot, whole_seconds(assessment, "panic_reboot", panic));
    }
    return out;
}

}  // namespace activate
