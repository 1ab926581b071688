// Prints how long each phase of an end-to-end test took ("[phase] boot to marker: 9.8 s"), so a
// slow run shows where the time went.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>

namespace activate::vm {

class PhaseTimer {
  public:
    explicit PhaseTimer(std::string test) : test_(std::move(test)) {}
    ~PhaseTimer() {
        std::fprintf(stderr, "[phase] %s total: %.1f s\n", test_.c_str(), seconds_since(start_));
    }

    // Ends the current phase: prints the time since the previous mark (or the start).
    double mark(std::string_view phase) {
        double s = seconds_since(last_);
        std::fprintf(stderr, "[phase] %s: %.1f s\n", std::string(phase).c_str(), s);
        last_ = Clock::now();
        return s;
    }

  private:
    using Clock = std::chrono::steady_clock;
    static double seconds_since(Clock::time_point t) {
        return std::chrono::duration<double>(Clock::now() - t).count();
    }
    std::string test_;
    Clock::time_point start_ = Clock::now(), last_ = start_;
};

}  // namespace activate::vm
