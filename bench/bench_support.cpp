// Child-process measurement and small helpers for the benchmarks (see bench_support.hpp).
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <bench_support.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>

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

}  // namespace activate::bench
