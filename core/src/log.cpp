// stderr logging. One write() per line so that lines from concurrent processes (the detached
// second stage) do not interleave. When stderr is systemd's journal, lines carry their priority
// the journal's way instead of the program name and level it records itself.
#include <activate/log.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

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
// syslog(3) priorities, which journald reads from a "<N>" line prefix on a stream it was given
// (sd-daemon(3); SyslogLevelPrefix= defaults to yes).
char syslog_priority(LogLevel level) {
    switch (level) {
        case LogLevel::debug: return '7';
        case LogLevel::info: return '6';
        case LogLevel::warning: return '4';
        case LogLevel::error: return '3';
    }
    return '6';
}

// systemd.exec(5), $JOURNAL_STREAM: "<device>:<inode>" of the stream systemd connected stdout or
// stderr to. It is inherited by children whose stderr may go elsewhere, so stderr must be that
// very file.
bool stderr_is_journal() {
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (!stream) return false;
    struct stat st {};
    if (::fstat(STDERR_FILENO, &st) != 0) return false;
    return std::string(stream) == std::to_string(static_cast<unsigned long long>(st.st_dev)) +
                                      ":" +
                                      std::to_string(static_cast<unsigned long long>(st.st_ino));
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
    // Decided once: stderr does not change under a running process.
    static const bool journal = stderr_is_journal();
    std::string line;
    if (journal) {
        // The journal records "activate[<pid>]" and the priority already:
        // `activate[812]: serve: listening on ...`, warnings highlighted, `journalctl -p` works.
        line = {'<', syslog_priority(level), '>'};
        line += component;
        line += ": ";
    } else {
        line = "activate[";
        line += component;
        line += "] ";
        line += level_name(level);
        line += ": ";
    }
    line += message;
    line += '\n';
    ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
    (void)ignored;
}

}  // namespace activate
