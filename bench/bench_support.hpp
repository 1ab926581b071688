// Shared by the benchmarks: each measured operation runs in a forked child, which reports its own
// wall time through a pipe, while the parent reads the child's peak RSS from wait4's rusage. So
// one measurement's allocations and page faults never show up in another's figures.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
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

// ----- files and the disk image of the install benchmarks -----

// A sparse GPT disk at `disk` (its sfdisk script kept in `dir`): ESP 16 MiB at 1 MiB, slot A
// `running_mib` (the running one), slot B image_mib + 1 MiB (the target).
bool make_slot_disk(const std::string& dir, const std::string& disk, uint64_t image_mib,
                    uint64_t running_mib = 16);

bool write_file(const std::string& path, const std::string& data);
// `size` incompressible bytes written through a 4 MiB buffer (memory stays bounded), fsynced.
bool write_random_file(const std::string& path, uint64_t size, uint64_t seed);
// Drops a file's clean pages from the page cache (after an fsync every page is clean), so each
// writer of the disk image starts from the same state.
void drop_cache(const std::string& path);
// Zeroes the first MiB at `offset` of `disk` and fsyncs, so the next writer's output is checked,
// not the previous one's.
bool clear_slot(const std::string& disk, uint64_t offset);
// True when `size` bytes at `offset` of `disk` equal the start of `image`.
bool slot_matches_image(const std::string& disk, const std::string& image, uint64_t offset,
                        uint64_t size);

// ----- baseline against candidate -----

// One side of a comparison: its name in messages and one measured run (see run_in_child).
struct Side {
    const char* name;
    std::function<std::optional<double>()> run;
};
struct Runs {
    std::vector<double> seconds;
    std::vector<uint64_t> peak_rss_bytes;
};
// Runs each side `iterations` times in its own child, alternating which goes first, after one
// warm-up run of each that is not counted: in a VM the first writes into memory the guest has
// never touched pay for the host's page faults too (seen: 2-4x the time of later runs).
// `before` runs ahead of every run, `check` after it; either returning false (after saying why)
// ends the measurement with nullopt. Every run's time is printed on stderr.
std::optional<std::pair<Runs, Runs>> measure_alternating(
    int iterations, const Side& baseline, const Side& candidate,
    const std::function<bool()>& before, const std::function<bool(const Side&)>& check);

}  // namespace activate::bench
