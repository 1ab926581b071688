// Logging to stderr only (stdout is reserved for protocol output), one line per message:
// "activate[<component>] <level>: <message>"; "<N><component>: <message>" (N the syslog priority)
// when stderr is the journal ($JOURNAL_STREAM), which records the program and level itself.
#pragma once

#include <string>
#include <string_view>

namespace activate {

enum class LogLevel { debug = 0, info = 1, warning = 2, error = 3 };

// Parses "debug", "info", "warning", "error"; false on anything else.
bool parse_log_level(std::string_view text, LogLevel* out);

class Logger {
public:
    explicit Logger(LogLevel threshold = LogLevel::info) : threshold_(threshold) {}
    void set_threshold(LogLevel level) { threshold_ = level; }
    LogLevel threshold() const { return threshold_; }
    void write(LogLevel level, std::string_view component, std::string_view message) const;

private:
    LogLevel threshold_;
};

// A Logger bound to one component name (a plugin or a core module).
class Log {
public:
    Log(const Logger* sink, std::string component) : sink_(sink), component_(std::move(component)) {}
    void debug(std::string_view m) const { sink_->write(LogLevel::debug, component_, m); }
    void info(std::string_view m) const { sink_->write(LogLevel::info, component_, m); }
    void warning(std::string_view m) const { sink_->write(LogLevel::warning, component_, m); }
    void error(std::string_view m) const { sink_->write(LogLevel::error, component_, m); }
    const std::string& component() const { return component_; }

private:
    const Logger* sink_;
    std::string component_;
};

}  // namespace activate
