// Issue 17 §4: the smallest RAM a takeover needs. Boots the busybox takeover source guest
// (test/e2e/takeover/takeover_source.hpp: Debian kernel, the `takeover` binary in its initramfs)
// with decreasing QEMU `-m`, bisecting between a size that completes and one that fails, and
// records per size whether `takeover` answered success, whether the agent came up after the kexec
// (its AGENT-STARTED line), and otherwise the first error line. Prints the smallest size that
// completes beside the payload's sizes.
#include <activate/byte_order.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "takeover_source.hpp"

using namespace activate::vm;

namespace {

struct Outcome {
    int memory_mib = 0;
    bool takeover_success = false;
    bool agent_started = false;
    std::string error;  // the first error line when it did not complete
    double seconds = 0;
    bool completed() const { return takeover_success && agent_started; }
};

// The first console line that says why a run failed: the kernel's panic and OOM messages
// (kernel/panic.c, mm/oom_kill.c), the initramfs unpacker's, the second stage's kernel-log line,
// a failed step of the source's /init, takeover's own error messages on stderr.
std::string FirstErrorLine(const std::vector<std::string>& lines, size_t from) {
    static const std::regex error(
        "Kernel panic|Out of memory|invoked oom-killer|activate: second stage:|SOURCE-ERROR|"
        "Initramfs unpacking failed|takeover.*([Ee]rror|failed)");
    for (size_t i = from; i < lines.size(); ++i)
        if (std::regex_search(lines[i], error)) return lines[i];
    return "";
}

Outcome RunAt(const fs::path& work, int memory_mib) {
    Outcome out;
    out.memory_mib = memory_mib;
    const auto start = Clock::now();
    auto finish = [&](std::string error) {
        out.error = std::move(error);
        out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
        return out;
    };
    const activate::wire::TakeoverInit init = MakeTakeoverInit();
    auto vm = BootTakeoverSource(work, init, "bench-min-ram-" + std::to_string(memory_mib), {},
                                 memory_mib);
    if (!vm.ok()) return finish("cannot boot the source: " + vm.error().message());
    Machine& m = **vm;

    // Until takeover answered, or the source's kernel gave up on the way (a panic or the OOM
    // killer while unpacking the initramfs or running takeover).
    auto exited =
        m.wait_for_line("TAKEOVER-EXIT (\\d+)|Kernel panic.*|Out of memory.*", seconds(400));
    if (!exited.ok() || exited->groups[1].empty()) {
        std::string why = FirstErrorLine(m.lines(), 0);
        if (why.empty()) why = exited.ok() ? exited->line : exited.error().message();
        return finish(why);
    }
    auto end = m.wait_for_line("TAKEOVER-RESPONSE-END (\\d+)", seconds(60));
    if (!end.ok()) return finish("no response printed: " + end.error().message());
    std::string hex;
    const std::vector<std::string> lines = m.lines();
    const std::string prefix = "TAKEOVER-RESPONSE-HEX ";
    for (size_t i = exited->index; i < end->index && i < lines.size(); ++i)
        if (lines[i].rfind(prefix, 0) == 0) hex += lines[i].substr(prefix.size());
    activate::wire::TakeoverResponse response;
    if (!response.ParseFromString(Unhex(hex)))
        return finish("takeover exited " + exited->groups[1] + " with an undecodable response");
    if (!response.has_success()) {
        const int code = std::stoi(exited->groups[1]);
        // A shell reports a process killed by signal N as exit 128 + N; the source then prints
        // the kernel's OOM lines.
        const std::string how = code > 128 ? "killed by signal " + std::to_string(code - 128)
                                           : "exited " + exited->groups[1];
        const std::string message =
            response.has_error() ? response.error().message() : FirstErrorLine(lines, 0);
        return finish("takeover " + how + ": " + message);
    }
    out.takeover_success = true;

    // After the jump: the agent's report, or why the second stage or the agent's kernel failed.
    auto agent = m.wait_for_line(
        "AGENT-(STARTED|ERROR).*|activate: second stage:.*|Kernel panic.*|Out of memory.*",
        seconds(300));
    if (agent.ok() && agent->groups[1] == "STARTED") {
        out.agent_started = true;
        return finish("");
    }
    std::string why = FirstErrorLine(m.lines(), end->index + 1);
    if (why.empty()) why = agent.ok() ? agent->line : agent.error().message();
    return finish(why);
}

std::optional<uint64_t> FileSize(const char* path) {
    std::error_code ec;
    const uint64_t size = fs::file_size(path, ec);
    if (ec) return std::nullopt;
    return size;
}

// init_size of an x86 bzImage's boot header (Documentation/arch/x86/boot.rst, offset 0x260,
// protocol 2.10+): what the kernel segment takes in memory, more than the file.
std::optional<uint32_t> InitSize(const char* kernel) {
    std::ifstream in(kernel, std::ios::binary);
    unsigned char h[0x264] = {};
    if (!in.read(reinterpret_cast<char*>(h), sizeof h) || std::memcmp(h + 0x202, "HdrS", 4) != 0)
        return std::nullopt;
    if (activate::load_le16(h + 0x206) < 0x20a) return std::nullopt;
    return activate::load_le32(h + 0x260);
}

std::string Bytes(std::optional<uint64_t> size) {
    if (!size) return "unknown";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%llu bytes (%.1f MiB)", static_cast<unsigned long long>(*size),
                  static_cast<double>(*size) / (1024.0 * 1024.0));
    return buf;
}

void Print(const Outcome& o) {
    std::printf("%5d MiB  takeover %-7s agent %-7s %6.0f s  %s%s\n", o.memory_mib,
                o.takeover_success ? "success" : "FAILED", o.agent_started ? "up" : "DOWN",
                o.seconds, o.completed() ? "completes" : "fails: ", o.error.c_str());
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
    int high = 256, low = 128, step = 16;  // step: the bisection's resolution
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string arg = argv[i];
        if (arg == "--high")
            high = std::atoi(argv[i + 1]);
        else if (arg == "--low")
            low = std::atoi(argv[i + 1]);
        else if (arg == "--step")
            step = std::atoi(argv[i + 1]);
        else {
            std::fprintf(stderr, "usage: %s [--high MIB] [--low MIB] [--step MIB]\n", argv[0]);
            return 2;
        }
    }
    if (argc % 2 == 0 || step < 1 || low < 16 || high <= low || high % step != 0 ||
        low % step != 0) {
        std::fprintf(stderr,
                     "takeover_min_ram_bench: --high and --low are multiples of --step MiB with "
                     "high > low >= 16 (got high %d, low %d, step %d)\n",
                     high, low, step);
        return 2;
    }
    const fs::path work = BENCH_WORK_DIR;
    std::printf(
        "takeover minimum RAM: busybox source guest (test/e2e/takeover), one boot per size\n");
    std::fflush(stdout);

    // The bisection's ends are measured too: high must complete and low must fail, or the
    // answer lies outside [low, high].
    std::vector<Outcome> runs;
    runs.push_back(RunAt(work, high));
    Print(runs.back());
    if (!runs.back().completed()) {
        std::printf("summary: %d MiB does not complete; rerun with a larger --high\n", high);
        return 1;
    }
    runs.push_back(RunAt(work, low));
    Print(runs.back());
    int good = high, bad = low;
    if (runs.back().completed()) {
        good = low;
        bad = 0;
    }
    while (bad != 0 && good - bad > step) {
        const int mid = (good + bad) / 2 / step * step;
        runs.push_back(RunAt(work, mid));
        Print(runs.back());
        (runs.back().completed() ? good : bad) = mid;
    }

    const auto kernel_init = InitSize(BENCH_EMBEDDED_KERNEL);
    std::printf(
        "payload: embedded kernel %s, init_size %s; agent initramfs %s; takeover binary %s\n",
        Bytes(FileSize(BENCH_EMBEDDED_KERNEL)).c_str(),
        kernel_init ? Bytes(*kernel_init).c_str() : "unknown",
        Bytes(FileSize(BENCH_AGENT_INITRAMFS)).c_str(),
        Bytes(FileSize(BENCH_TAKEOVER_BINARY)).c_str());
    if (bad == 0)
        std::printf(
            "summary: smallest that completes: %d MiB or less (%d MiB completes; lower "
            "--low to find the limit)\n",
            good, low);
    else
        std::printf("summary: smallest that completes: %d MiB (%d MiB fails)\n", good, bad);
    return 0;
}
