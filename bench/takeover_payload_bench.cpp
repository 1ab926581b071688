// Issue 3: staging the takeover payload (EmbeddedPayloadSource::prepare: kernel and initramfs
// into sealed memfds plus the AgentInit append — everything but kexec_file_load) against copying
// the same bytes once into a memfd. Goal: time ratio <= 1.2, peak RSS <= payload + 32 MiB.
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <activate/log.hpp>
#include <activate/plugin_api.hpp>
#include <activate/sysroot.hpp>
#include <bench_support.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <payload_embedded/embedded_payload.hpp>
#include <string>

using namespace activate;
using namespace activate::bench;

namespace {

struct Options {
    size_t kernel_mib = 10;
    size_t initramfs_mib = 64;
    int iterations = 7;
};

bool parse(int argc, char** argv, Options& o) {
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&](auto& field) {
            if (i + 1 >= argc) return false;
            field = std::strtoul(argv[++i], nullptr, 10);
            return true;
        };
        bool ok = (a == "--kernel-mib")      ? next(o.kernel_mib)
                  : (a == "--initramfs-mib") ? next(o.initramfs_mib)
                  : (a == "--iterations")    ? next(o.iterations)
                                             : false;
        if (!ok) {
            std::fprintf(stderr,
                         "usage: takeover_payload_bench [--kernel-mib N] [--initramfs-mib N] "
                         "[--iterations N]\n");
            return false;
        }
    }
    return o.iterations > 0 && o.kernel_mib > 0;
}

uint64_t fd_size(int fd) {
    struct stat st {};
    return ::fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// Baseline: the same bytes written once into one memfd, with plain write(2).
std::optional<double> copy_once(const embedded::EmbeddedBlobs& blobs) {
    const double t0 = now_seconds();
    UniqueFd fd(::memfd_create("bench-baseline", MFD_CLOEXEC));
    if (!fd) {
        std::perror("memfd_create");
        return std::nullopt;
    }
    for (std::string_view blob : {blobs.kernel, blobs.initramfs}) {
        while (!blob.empty()) {
            const ssize_t n = ::write(fd.get(), blob.data(), blob.size());
            if (n <= 0) {
                std::perror("write to memfd");
                return std::nullopt;
            }
            blob.remove_prefix(static_cast<size_t>(n));
        }
    }
    const double t1 = now_seconds();
    if (fd_size(fd.get()) != blobs.kernel.size() + blobs.initramfs.size()) return std::nullopt;
    return t1 - t0;
}

// The real staging path, on a sysroot whose /proc/cmdline names a console.
std::optional<double> stage(const std::string& root, const embedded::EmbeddedBlobs& blobs,
                            const std::string& agent_init) {
    Sysroot sysroot(root);
    Logger logger(LogLevel::warning);
    PluginContext context{&sysroot, &logger};
    embedded::EmbeddedPayloadSource source(context, blobs, embedded::EmbeddedSettings{});
    PayloadRequest request;
    request.agent_init = agent_init;
    const double t0 = now_seconds();
    auto payload = source.prepare(request);
    const double t1 = now_seconds();
    if (!payload.ok()) {
        std::fprintf(stderr, "prepare failed: %s\n", payload.error().message().c_str());
        return std::nullopt;
    }
    if (fd_size(payload->kernel.get()) != blobs.kernel.size() ||
        fd_size(payload->initramfs.get()) <= blobs.initramfs.size()) {
        std::fprintf(stderr, "prepare staged unexpected sizes\n");
        return std::nullopt;
    }
    return t1 - t0;
}

// Breakdown: the AgentInit append alone (zstd frame with the newc archive) into an empty memfd.
std::optional<double> append_only(const std::string& agent_init) {
    UniqueFd fd(::memfd_create("bench-append", MFD_CLOEXEC));
    if (!fd) return std::nullopt;
    const double t0 = now_seconds();
    auto appended = embedded::append_agent_init(fd.get(), agent_init);
    const double t1 = now_seconds();
    if (!appended.ok()) {
        std::fprintf(stderr, "append_agent_init: %s\n", appended.error().message().c_str());
        return std::nullopt;
    }
    return t1 - t0;
}

}  // namespace

int main(int argc, char** argv) {
    Options opt;
    if (!parse(argc, argv, opt)) return 2;
    const size_t kernel_size = opt.kernel_mib << 20;
    const size_t initramfs_size = opt.initramfs_mib << 20;
    const size_t payload = kernel_size + initramfs_size;

    // The blobs: incompressible bytes in one anonymous mapping, made resident here, before the
    // children fork — like .rodata once the payload has been read, they count in every child's
    // RSS (baseline and candidate alike).
    void* mem =
        ::mmap(nullptr, payload, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        std::perror("mmap");
        return 1;
    }
    fill_random(mem, payload, 3);
    const char* bytes = static_cast<const char*>(mem);
    embedded::EmbeddedBlobs blobs{std::string_view(bytes, kernel_size),
                                  {},
                                  std::string_view(bytes + kernel_size, initramfs_size)};
    // A realistic AgentInit is a few KiB (keys, certificate, network config).
    std::string agent_init(8 << 10, '\0');
    fill_random(agent_init.data(), agent_init.size(), 4);

    const std::string root = make_temp_dir("takeover-payload-bench");
    if (root.empty()) {
        std::perror("mkdtemp");
        return 1;
    }
    ::mkdir((root + "/proc").c_str(), 0755);
    std::ofstream(root + "/proc/cmdline") << "BOOT_IMAGE=/vmlinuz root=/dev/vda1 console=ttyS0\n";

    // An idle child: what a forked child's RSS is before doing anything (includes the blobs).
    auto idle = run_in_child([] { return std::optional<double>(0.0); });

    std::vector<double> base_t, cand_t, append_t;
    std::vector<uint64_t> base_rss, cand_rss, append_rss;
    bool failed = !idle;
    for (int i = 0; i < opt.iterations && !failed; ++i) {
        // Alternate the order so neither side always runs on a warmer system.
        for (int k = 0; k < 2 && !failed; ++k) {
            const bool baseline = (i + k) % 2 == 0;
            auto s = baseline ? run_in_child([&] { return copy_once(blobs); })
                              : run_in_child([&] { return stage(root, blobs, agent_init); });
            if (!s) {
                failed = true;
                break;
            }
            (baseline ? base_t : cand_t).push_back(s->seconds);
            (baseline ? base_rss : cand_rss).push_back(s->peak_rss_bytes);
        }
        auto a = failed ? std::nullopt : run_in_child([&] { return append_only(agent_init); });
        if (!a) {
            failed = true;
            break;
        }
        append_t.push_back(a->seconds);
        append_rss.push_back(a->peak_rss_bytes);
    }
    remove_tree(root);
    if (failed) {
        std::fprintf(stderr, "takeover_payload_bench: a measurement failed\n");
        return 1;
    }

    const double bt = median(base_t), ct = median(cand_t);
    const double ratio = ct / bt;
    const uint64_t rss = max_of(cand_rss);
    const uint64_t rss_goal = payload + (32u << 20);
    std::printf(
        "takeover payload staging: kernel %s + initramfs %s (incompressible), "
        "AgentInit %zu bytes, %d iterations, median\n",
        mib(kernel_size).c_str(), mib(initramfs_size).c_str(), agent_init.size(), opt.iterations);
    std::printf(
        "  baseline  (one write(2) copy into a memfd): %8.2f ms  %7.0f MiB/s  peak RSS %s\n",
        bt * 1e3, payload / kMiB / bt, mib(max_of(base_rss)).c_str());
    std::printf(
        "  candidate (EmbeddedPayloadSource::prepare): %8.2f ms  %7.0f MiB/s  peak RSS %s\n",
        ct * 1e3, payload / kMiB / ct, mib(rss).c_str());
    std::printf("  of which the AgentInit append alone (own child):  %8.2f ms  peak RSS %s\n",
                median(append_t) * 1e3, mib(max_of(append_rss)).c_str());
    std::printf("  idle forked child RSS: %s (the process plus the %s of resident blobs)\n",
                mib(idle->peak_rss_bytes).c_str(), mib(payload).c_str());
    std::printf(
        "  RSS counts the blobs (resident, like .rodata after it has been read) and the "
        "process; the memfds' pages are shmem, not mapped, so not in RSS\n");
    std::printf("  time ratio candidate/baseline: %.3f (goal <= 1.2): %s\n", ratio,
                ratio <= 1.2 ? "MET" : "NOT MET");
    std::printf("  peak RSS %s vs payload + 32 MiB = %s: %s (above idle child: %s)\n",
                mib(rss).c_str(), mib(rss_goal).c_str(), rss <= rss_goal ? "MET" : "NOT MET",
                mib(static_cast<double>(rss) - static_cast<double>(idle->peak_rss_bytes)).c_str());
    return 0;
}
