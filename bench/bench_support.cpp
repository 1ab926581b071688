// Child-process measurement and small helpers for the benchmarks (see bench_support.hpp).
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <activate/fd.hpp>
#include <algorithm>
#include <bench_support.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>

namespace activate::bench {

double now_seconds() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

std::optional<Sample> run_in_child(const std::function<std::optional<double>()>& op) {
    int fds[2];
    if (::pipe(fds) != 0) {
        std::perror("bench: pipe");
        return std::nullopt;
    }
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t pid = ::fork();
    if (pid < 0) {
        std::perror("bench: fork");
        return std::nullopt;
    }
    if (pid == 0) {
        ::close(fds[0]);
        std::optional<double> seconds = op();
        if (!seconds) ::_exit(1);
        const double value = *seconds;
        if (::write(fds[1], &value, sizeof value) != static_cast<ssize_t>(sizeof value)) ::_exit(1);
        std::fflush(stdout);
        std::fflush(stderr);
        ::_exit(0);
    }
    ::close(fds[1]);
    double seconds = -1;
    ssize_t got;
    do got = ::read(fds[0], &seconds, sizeof seconds);
    while (got < 0 && errno == EINTR);
    ::close(fds[0]);
    int status = 0;
    rusage usage{};
    pid_t waited;
    do waited = ::wait4(pid, &status, 0, &usage);
    while (waited < 0 && errno == EINTR);
    if (waited != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        got != static_cast<ssize_t>(sizeof seconds)) {
        std::fprintf(stderr, "bench: measured child failed (status 0x%x)\n", status);
        return std::nullopt;
    }
    // ru_maxrss is in KiB on Linux (getrusage(2)).
    return Sample{seconds, static_cast<uint64_t>(usage.ru_maxrss) * 1024};
}

double median(std::vector<double> values) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    const size_t n = values.size();
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

uint64_t max_of(const std::vector<uint64_t>& values) {
    return values.empty() ? 0 : *std::max_element(values.begin(), values.end());
}

std::string mib(double bytes) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / kMiB);
    return buf;
}

void fill_random(void* out, size_t size, uint64_t seed) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    auto* p = static_cast<unsigned char*>(out);
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::memcpy(p + i, &x, 8);
    }
    for (; i < size; ++i) p[i] = static_cast<unsigned char>(x >> (8 * (i % 8)));
}

std::string make_temp_dir(const char* tag) {
    std::string templ = (std::filesystem::temp_directory_path() / tag).string() + ".XXXXXX";
    if (!::mkdtemp(templ.data())) return {};
    return templ;
}

void remove_tree(const std::string& dir) {
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
}

bool run_command(const std::vector<std::string>& argv, bool quiet) {
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t pid = ::fork();
    if (pid < 0) return false;
    if (pid == 0) {
        if (quiet) {
            const int null = ::open("/dev/null", O_RDWR);
            if (null >= 0) {
                ::dup2(null, 1);
                ::dup2(null, 2);
            }
        }
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execvp(args[0], args.data());
        ::_exit(127);
    }
    int status = 0;
    pid_t waited;
    do waited = ::waitpid(pid, &status, 0);
    while (waited < 0 && errno == EINTR);
    return waited == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool write_file(const std::string& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << data;
    return static_cast<bool>(out.flush());
}

bool write_random_file(const std::string& path, uint64_t size, uint64_t seed) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) return false;
    std::vector<char> buf(4 << 20);
    for (uint64_t done = 0; done < size;) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - done));
        fill_random(buf.data(), n, seed + done);
        if (::write(fd.get(), buf.data(), n) != static_cast<ssize_t>(n)) return false;
        done += n;
    }
    return ::fsync(fd.get()) == 0;
}

void drop_cache(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd) ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED);
}

bool clear_slot(const std::string& disk_path, uint64_t offset) {
    UniqueFd disk(::open(disk_path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!disk) return false;
    std::vector<char> zero(1 << 20, 0);
    return ::pwrite(disk.get(), zero.data(), zero.size(), static_cast<off_t>(offset)) ==
               static_cast<ssize_t>(zero.size()) &&
           ::fsync(disk.get()) == 0;
}

bool slot_matches_image(const std::string& disk_path, const std::string& image_path,
                        uint64_t offset, uint64_t size) {
    UniqueFd disk(::open(disk_path.c_str(), O_RDONLY | O_CLOEXEC));
    UniqueFd image(::open(image_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!disk || !image) return false;
    std::vector<char> a(4 << 20), b(4 << 20);
    for (uint64_t done = 0; done < size;) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(a.size(), size - done));
        if (::pread(disk.get(), a.data(), n, static_cast<off_t>(offset + done)) !=
                static_cast<ssize_t>(n) ||
            ::pread(image.get(), b.data(), n, static_cast<off_t>(done)) !=
                static_cast<ssize_t>(n) ||
            std::memcmp(a.data(), b.data(), n) != 0)
            return false;
        done += n;
    }
    return true;
}

std::optional<std::pair<Runs, Runs>> measure_alternating(
    int iterations, const Side& baseline, const Side& candidate,
    const std::function<bool()>& before, const std::function<bool(const Side&)>& check) {
    std::pair<Runs, Runs> runs;
    // Iteration -1 is the warm-up.
    for (int i = -1; i < iterations; ++i) {
        for (int k = 0; k < 2; ++k) {
            const bool is_baseline = (i + k + 2) % 2 == 0;  // alternate which one goes first
            const Side& side = is_baseline ? baseline : candidate;
            if (!before()) return std::nullopt;
            auto s = run_in_child(side.run);
            if (!s || !check(side)) return std::nullopt;
            std::fprintf(stderr, "  run %d: %-8s %.3f s%s\n", i + 1, side.name, s->seconds,
                         i < 0 ? " (warm-up, not counted)" : "");
            if (i < 0) continue;
            Runs& into = is_baseline ? runs.first : runs.second;
            into.seconds.push_back(s->seconds);
            into.peak_rss_bytes.push_back(s->peak_rss_bytes);
        }
    }
    return runs;
}

bool make_slot_disk(const std::string& dir, const std::string& disk, uint64_t image_mib,
                    uint64_t running_mib) {
    const std::string script =
        "label: gpt\n"
        "size=16MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"ESP\"\n"
        "size=" +
        std::to_string(running_mib) +
        "MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=\"METROPOLIS-SYSTEM-A\"\n"
        "size=" +
        std::to_string(image_mib + 1) +
        "MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=\"METROPOLIS-SYSTEM-B\"\n";
    const std::string script_path = dir + "/disk.sfdisk";
    return write_file(script_path, script) &&
           run_command(
               {"truncate", "-s", std::to_string(running_mib + image_mib + 24) + "M", disk}) &&
           run_command({"sh", "-c", "sfdisk -q \"$0\" < \"$1\"", disk, script_path});
}

}  // namespace activate::bench
