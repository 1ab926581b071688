// Progress lines for long copies: rate-limited, redrawn in place on a terminal, one line per
// report elsewhere, and a summary at the end.
#include <activate/bundle/progress.hpp>
#include <activate/fd.hpp>
#include <cstdio>
#include <string>

namespace activate::bundle {

namespace {

std::string human_bytes(double v) {
    static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        ++u;
    }
    char s[32];
    std::snprintf(s, sizeof s, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
    return s;
}

std::string human_duration(double seconds) {
    if (seconds < 0) seconds = 0;
    const uint64_t s = uint64_t(seconds + 0.5);
    char out[32];
    if (s >= 3600) {
        std::snprintf(out, sizeof out, "%lluh%02llum", (unsigned long long)(s / 3600),
                      (unsigned long long)(s % 3600 / 60));
    } else if (s >= 60) {
        std::snprintf(out, sizeof out, "%llum%02llus", (unsigned long long)(s / 60),
                      (unsigned long long)(s % 60));
    } else {
        std::snprintf(out, sizeof out, "%llus", (unsigned long long)s);
    }
    return out;
}

// Progress output is best effort: a failed write is dropped.
void write_text(int fd, const std::string& text) { (void)write_all(fd, text); }

}  // namespace

Progress::Progress(std::string label, std::optional<uint64_t> total, ProgressOptions options)
    : label_(std::move(label)), total_(total), fd_(options.fd) {
    terminal_ = ::isatty(fd_) == 1;
    enabled_ = options.mode == ProgressMode::always ||
               (options.mode == ProgressMode::automatic && terminal_);
    interval_ = options.interval.value_or(terminal_ ? std::chrono::milliseconds(500)
                                                    : std::chrono::milliseconds(5000));
    start_ = last_report_ = std::chrono::steady_clock::now();
}

Progress::~Progress() {
    if (line_open_) write_text(fd_, "\n");
}

void Progress::advance(uint64_t bytes) { update(done_ + bytes); }

void Progress::update(uint64_t done) {
    done_ = done;
    if (!enabled_ || finished_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_report_ < interval_) return;
    last_report_ = now;
    report(false);
}

void Progress::finish() {
    if (finished_) return;
    finished_ = true;
    if (enabled_) report(true);
}

void Progress::report(bool final) {
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = elapsed > 0 ? double(done_) / elapsed : 0;
    std::string line = label_ + ": ";
    if (final) {
        line += human_bytes(double(done_)) + " in " + human_duration(elapsed) + " (" +
                human_bytes(rate) + "/s)" + summary_note_;
    } else {
        line += human_bytes(double(done_));
        if (total_ && *total_ > 0) {
            char pct[16];
            std::snprintf(pct, sizeof pct, " (%.0f%%)", 100.0 * double(done_) / double(*total_));
            line += " of " + human_bytes(double(*total_)) + pct;
        }
        line += ", " + human_bytes(rate) + "/s";
        if (total_ && rate > 0 && *total_ > done_) {
            line += ", ETA " + human_duration(double(*total_ - done_) / rate);
        }
    }
    if (terminal_) {
        // Redraw in place; "\x1b[K" clears what a longer previous line left behind.
        write_text(fd_, "\r" + line + "\x1b[K" + (final ? "\n" : ""));
        line_open_ = !final;
    } else {
        write_text(fd_, line + "\n");
    }
}

}  // namespace activate::bundle
