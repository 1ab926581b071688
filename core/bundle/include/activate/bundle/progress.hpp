// Progress of a long copy (bundle download and install) on stderr: bytes, rate and ETA, redrawn
// in place on a terminal, then one summary line. Never writes to stdout (reserved for protocol
// output).
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace activate::bundle {

enum class ProgressMode {
    automatic,  // only when the descriptor is a terminal
    always,     // also to files and pipes (one line per report)
    never,
};

struct ProgressOptions {
    ProgressMode mode = ProgressMode::automatic;
    int fd = STDERR_FILENO;
    // Minimum time between reports: default 500 ms on a terminal, 5 s otherwise (logs).
    std::optional<std::chrono::milliseconds> interval = std::nullopt;
};

class Progress {
  public:
    // `total` (bytes) enables the percentage and ETA.
    Progress(std::string label, std::optional<uint64_t> total, ProgressOptions options = {});
    ~Progress();
    Progress(const Progress&) = delete;
    Progress& operator=(const Progress&) = delete;

    void set_total(std::optional<uint64_t> total) { total_ = total; }
    // Adds `bytes` done; reports when the interval has passed.
    void advance(uint64_t bytes);
    // Sets the absolute number of bytes done; reports when the interval has passed.
    void update(uint64_t done);
    // Prints the summary line ("<label>: 1.2 GiB in 34 s, 36.1 MiB/s") once.
    void finish();
    // Appended to the summary line (e.g. ", 1.2 MiB fetched, 98 MiB reused").
    void set_summary_note(std::string note) { summary_note_ = std::move(note); }

    bool enabled() const { return enabled_; }
    uint64_t done() const { return done_; }

  private:
    void report(bool final);

    std::string label_;
    std::optional<uint64_t> total_;
    int fd_;
    bool enabled_;
    bool terminal_;
    std::chrono::milliseconds interval_;
    std::chrono::steady_clock::time_point start_;
    std::chrono::steady_clock::time_point last_report_;
    uint64_t done_ = 0;
    bool line_open_ = false;  // a '\r' line is on screen and needs a newline
    bool finished_ = false;
    std::string summary_note_;
};

}  // namespace activate::bundle
