// Shared by the benchmarks: each measured operation runs in a forked child, which reports its own
// wall time through a pipe, while the parent reads the child's peak RSS from wait4's rusage. So
// one measurement's allocations and page faults never show up in another's figures.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace activate::bench {

struct Sample {
    double seconds = 0;
    uint64_t peak_rss_bytes = 0;  // ru_maxrss of the child (its whole life, fork to exit)
};

// Runs `op` in a forked child. `op` returns the seconds it measured, or nullopt after printing
// why it failed (the child then exits 1 and this returns nullopt).
std::optional<Sample> run_in_child(const std::function<std::optional<double>()>& op);

// Monotonic seconds.
double now_seconds();

double median(std::vector<double> values);
uint64_t max_of(const std::vector<uint64_t>& values);

inline constexpr double kMiB = 1024.0 * 1024.0;
std::string mib(double bytes);  // "12.3 MiB"

// Fills `out` with incompressible bytes (xorshift, fast, deterministic per seed).
void fill_random(void* out, size_t size, uint64_t seed);

// A fresh temporary directory (removed with remove_tree).
std::string make_temp_dir(const char* tag);
void remove_tree(const std::string& dir);

// Runs argv (no shell) and waits; true when it exited 0. stdout/stderr go to /dev/null unless
// `quiet` is false.
bool run_command(const std::vector<std::string>& argv, bool quiet = true);

}  // namespace activate::bench
