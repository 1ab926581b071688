// stderr logging. One write() per line so that lines from concurrent processes (the detached
// second stage) do not interleave.
#include <activate/log.hpp>

#include <unistd.h>

namespace activate {

namespace {
const char* level_name(LogLevel level) {
    switch (level) {
        case LogLevel::debug: return "debug";
        case LogLevel::info: return "info";
        case LogLevel::warning: return "warning";
        case LogLevel::error: return "error";
    }
    return "?";
}
}  // namespace

bool parse_log_level(std::string_view text, LogLevel* out) {
    for (LogLevel level : {LogLevel::debug, LogLevel::info, LogLevel::warning, LogLevel::error}) {
        if (text == level_name(level)) {
            *out = level;
            return true;
        }
    }
    return false;
}

void Logger::write(LogLevel level, std::string_view component, std::string_view message) const {
    if (level < threshold_) return;
    std::string line = "activate[";
    line += component;
    line += "] ";
    line += level_name(level);
    line += ": ";
    line += message;
    line += '\n';
    ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
    (void)ignored;
}

}  // namespace activate
