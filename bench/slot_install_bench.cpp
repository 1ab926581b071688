// Issue 4, two benchmarks on a temp sysroot (GPT disk image file made by sfdisk, /proc/cmdline
// naming slot A, an ESP directory):
//  1. the uki plugin's install() of a bundle (stored zip: small UKI + a large system image) into
//     slot B vs `dd bs=4M conv=fsync` of the same image to the same offset. Goal: >= 0.9x dd's
//     throughput, peak RSS <= 64 MiB.
//  2. the uki plugin's load_kernel() (UKI .linux/.initrd into sealed memfds) vs one read/write copy
//     of the same byte count into a memfd. Goal: time ratio <= 1.2.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <activate/bundle/writer.hpp>
#include <activate/log.hpp>
#include <activate/plugin_api.hpp>
#include <activate/settings.hpp>
#include <activate/sysroot.hpp>
#include <bench_support.hpp>
#include <cstdio>
#include <cstdlib>
#include <payload_uki/uki_slot_store.hpp>
#include <string>
#include <vector>

using namespace activate;
using namespace activate::bench;

namespace {

struct Options {
    size_t size_mib = 1024;
    int iterations = 3;
    size_t linux_mib = 16;
    size_t initrd_mib = 64;
    int uki_iterations = 7;
    std::string dir;  // parent of the temp sysroot (default: $TMPDIR or /tmp)
    bool install = true;
    bool extract = true;
};

bool parse(int argc, char** argv, Options& o) {
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto num = [&](auto& field) {
            if (i + 1 >= argc) return false;
            field = std::strtoul(argv[++i], nullptr, 10);
            return true;
        };
        bool ok = true;
        if (a == "--size-mib")
            ok = num(o.size_mib);
        else if (a == "--iterations")
            ok = num(o.iterations);
        else if (a == "--uki-linux-mib")
            ok = num(o.linux_mib);
        else if (a == "--uki-initrd-mib")
            ok = num(o.initrd_mib);
        else if (a == "--uki-iterations")
            ok = num(o.uki_iterations);
        else if (a == "--dir" && i + 1 < argc)
            o.dir = argv[++i];
        else if (a == "--install-only")
            o.extract = false;
        else if (a == "--extract-only")
            o.install = false;
        else
            ok = false;
        if (!ok) {
            std::fprintf(stderr,
                         "usage: slot_install_bench [--size-mib N (1024)] [--iterations N (3)] "
                         "[--uki-linux-mib N (16)] [--uki-initrd-mib N (64)] [--uki-iterations N "
                         "(7)] [--dir DIR] [--install-only|--extract-only]\n"
                         "needs about 3x --size-mib of free space in DIR (image, bundle, disk)\n");
            return false;
        }
    }
    return o.iterations > 0 && o.uki_iterations > 0 && o.size_mib > 0;
}

uint64_t file_size(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

struct Fixture {
    std::string root;
    std::string disk() const { return root + "/disk.img"; }
    std::string image() const { return root + "/image.img"; }
    std::string bundle() const { return root + "/bundle.zip"; }
};

Result<std::unique_ptr<SlotStore>> make_source(const Sysroot& sysroot, const Logger& logger) {
    PluginContext context{&sysroot, &logger};
    // The bundle is unsigned: signature checks are bundle_verify_bench's subject.
    Settings settings(YAML::Load("{disk: /disk.img, allow_unsigned: true}"), "bench-policy.yaml",
                      "payload.settings");
    return uki::create_uki_slot_store(context, settings);
}

bool make_uki(const std::string& out,
              const std::vector<std::pair<std::string, std::string>>& secs) {
    std::vector<std::string> argv = {"sh", BENCH_MAKE_UKI, out, BENCH_UKI_STUB};
    for (const auto& [name, file] : secs) argv.push_back(name + "=" + file);
    return run_command(argv, false);
}

bool make_bundle(const Fixture& f, const std::string& uki) {
    UniqueFd out(::open(f.bundle().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!out) return false;
    bundle::BundleWriter writer(bundle::fd_sink(std::move(out), f.bundle()));
    for (const auto& [name, path] : {std::pair<std::string, std::string>{"kernel_efi.efi", uki},
                                     {"verity_rootfs.img", f.image()}}) {
        UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!in) return false;
        auto added = writer.add_file(name, in.get());
        if (!added.ok()) {
            std::fprintf(stderr, "bundle: %s\n", added.error().message().c_str());
            return false;
        }
    }
    auto finished = writer.finish();
    if (!finished.ok()) std::fprintf(stderr, "bundle: %s\n", finished.error().message().c_str());
    return finished.ok();
}

// The measured install: the real plugin, through its SlotStore interface.
std::optional<double> install(const Fixture& f) {
    Sysroot sysroot(f.root);
    Logger logger(LogLevel::warning);
    auto source = make_source(sysroot, logger);
    if (!source.ok()) {
        std::fprintf(stderr, "uki source: %s\n", source.error().message().c_str());
        return std::nullopt;
    }
    auto slots = (*source)->slots();
    if (!slots.ok()) {
        std::fprintf(stderr, "slots: %s\n", slots.error().message().c_str());
        return std::nullopt;
    }
    InstallRequest request;
    request.bundle = "/bundle.zip";
    const double t0 = now_seconds();
    auto installed = (*source)->install(slots->target, request);
    const double t1 = now_seconds();
    if (!installed.ok()) {
        std::fprintf(stderr, "install: %s\n", installed.error().message().c_str());
        return std::nullopt;
    }
    return t1 - t0;
}

// The measured dd, exec'd from the child (its rusage then covers dd as well).
std::optional<double> dd(const Fixture& f, uint64_t offset) {
    const double t0 = now_seconds();
    const bool ok = run_command(
        {"dd", "if=" + f.image(), "of=" + f.disk(), "bs=4M", "seek=" + std::to_string(offset),
         "oflag=seek_bytes", "conv=fsync,notrunc", "status=none"},
        false);
    const double t1 = now_seconds();
    if (!ok) return std::nullopt;
    return t1 - t0;
}

// The image as written into slot B, compared with the source (4 MiB at a time).
int bench_install(const Fixture& f, const Options& opt, uint64_t offset) {
    const uint64_t size = static_cast<uint64_t>(opt.size_mib) << 20;
    const Side by_dd{"dd", [&] { return dd(f, offset); }};
    const Side by_install{"install", [&] { return install(f); }};
    auto runs = measure_alternating(
        opt.iterations, by_dd, by_install,
        [&] {
            if (!clear_slot(f.disk(), offset)) return false;
            drop_cache(f.disk());
            return true;
        },
        [&](const Side& side) {
            if (slot_matches_image(f.disk(), f.image(), offset, size)) return true;
            std::fprintf(stderr, "%s left slot B different from the image\n", side.name);
            return false;
        });
    if (!runs) return 1;
    const auto& [dd_runs, inst_runs] = *runs;
    const double it = median(inst_runs.seconds), dt = median(dd_runs.seconds);
    const double inst_mbs = size / kMiB / it, dd_mbs = size / kMiB / dt;
    const double ratio = inst_mbs / dd_mbs;
    const uint64_t rss = max_of(inst_runs.peak_rss_bytes);
    std::printf(
        "slot install: %s image (stored zip member) into slot B of a GPT disk image, "
        "%d iterations each, alternating, median\n",
        mib(size).c_str(), opt.iterations);
    std::printf("  baseline  dd bs=4M conv=fsync:       %8.2f s  %7.1f MiB/s  peak RSS %s\n", dt,
                dd_mbs, mib(max_of(dd_runs.peak_rss_bytes)).c_str());
    std::printf("  candidate uki install (whole bundle): %8.2f s  %7.1f MiB/s  peak RSS %s\n", it,
                inst_mbs, mib(rss).c_str());
    std::printf("  throughput ratio install/dd: %.3f (goal >= 0.9): %s\n", ratio,
                ratio >= 0.9 ? "MET" : "NOT MET");
    std::printf("  install peak RSS %s (goal <= 64 MiB): %s\n", mib(rss).c_str(),
                rss <= (64u << 20) ? "MET" : "NOT MET");
    return 0;
}

// Baseline of the extraction: one read(2)/write(2) copy of `size` bytes of the UKI into a memfd.
std::optional<double> plain_copy(const std::string& path, uint64_t size) {
    const double t0 = now_seconds();
    UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    UniqueFd out(::memfd_create("bench-baseline", MFD_CLOEXEC));
    if (!in || !out) return std::nullopt;
    std::vector<char> buf(4 << 20);
    for (uint64_t done = 0; done < size;) {
        const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - done));
        const ssize_t n = ::read(in.get(), buf.data(), want);
        if (n <= 0 || ::write(out.get(), buf.data(), static_cast<size_t>(n)) != n)
            return std::nullopt;
        done += static_cast<uint64_t>(n);
    }
    return now_seconds() - t0;
}

std::optional<double> extract(const Fixture& f, uint64_t expect_kernel, uint64_t expect_initrd) {
    Sysroot sysroot(f.root);
    Logger logger(LogLevel::warning);
    auto source = make_source(sysroot, logger);
    if (!source.ok()) return std::nullopt;
    auto slots = (*source)->slots();
    if (!slots.ok()) return std::nullopt;
    const double t0 = now_seconds();
    auto payload = (*source)->load_kernel(slots->running);  // slot A: its UKI is the large one
    const double t1 = now_seconds();
    if (!payload.ok()) {
        std::fprintf(stderr, "load_kernel: %s\n", payload.error().message().c_str());
        return std::nullopt;
    }
    struct stat k {
    }, r{};
    if (::fstat(payload->kernel.get(), &k) != 0 || ::fstat(payload->initramfs.get(), &r) != 0 ||
        static_cast<uint64_t>(k.st_size) != expect_kernel ||
        static_cast<uint64_t>(r.st_size) != expect_initrd) {
        std::fprintf(stderr, "prepare: unexpected memfd sizes\n");
        return std::nullopt;
    }
    return t1 - t0;
}

int bench_extract(const Fixture& f, const Options& opt) {
    const uint64_t linux_size = static_cast<uint64_t>(opt.linux_mib) << 20;
    const uint64_t initrd_size = static_cast<uint64_t>(opt.initrd_mib) << 20;
    const std::string linux_file = f.root + "/linux.bin", initrd_file = f.root + "/initrd.bin";
    const std::string cmdline_file = f.root + "/cmdline.txt";
    const std::string uki = f.root + "/esp/EFI/metropolis/boot-a.efi";
    if (!write_random_file(linux_file, linux_size, 11) ||
        !write_random_file(initrd_file, initrd_size, 12) ||
        !write_file(cmdline_file, "root=PARTLABEL=METROPOLIS-SYSTEM-X ro quiet\n") ||
        !make_uki(uki,
                  {{".cmdline", cmdline_file}, {".linux", linux_file}, {".initrd", initrd_file}})) {
        std::fprintf(stderr, "could not build the %s UKI\n",
                     mib(static_cast<double>(linux_size + initrd_size)).c_str());
        return 1;
    }
    ::unlink(linux_file.c_str());
    ::unlink(initrd_file.c_str());
    const uint64_t bytes = linux_size + initrd_size;
    std::vector<double> cand_t, base_t;
    std::vector<uint64_t> cand_rss;
    for (int i = 0; i < opt.uki_iterations; ++i) {
        for (int k = 0; k < 2; ++k) {
            const bool baseline = (i + k) % 2 == 0;
            auto s = baseline ? run_in_child([&] { return plain_copy(uki, bytes); })
                              : run_in_child([&] { return extract(f, linux_size, initrd_size); });
            if (!s) return 1;
            (baseline ? base_t : cand_t).push_back(s->seconds);
            if (!baseline) cand_rss.push_back(s->peak_rss_bytes);
        }
    }
    const double bt = median(base_t), ct = median(cand_t);
    const double ratio = ct / bt;
    std::printf(
        "UKI section extraction: .linux %s + .initrd %s (UKI in the page cache), "
        "%d iterations each, alternating, median\n",
        mib(linux_size).c_str(), mib(initrd_size).c_str(), opt.uki_iterations);
    std::printf("  baseline  one read/write copy into a memfd: %8.2f ms  %7.0f MiB/s\n", bt * 1e3,
                bytes / kMiB / bt);
    std::printf(
        "  candidate uki load_kernel() (sealed memfds):%8.2f ms  %7.0f MiB/s  peak RSS %s\n",
        ct * 1e3, bytes / kMiB / ct, mib(max_of(cand_rss)).c_str());
    std::printf("  time ratio prepare/copy: %.3f (goal <= 1.2): %s\n", ratio,
                ratio <= 1.2 ? "MET" : "NOT MET");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options opt;
    if (!parse(argc, argv, opt)) return 2;
    if (!opt.dir.empty()) ::setenv("TMPDIR", opt.dir.c_str(), 1);
    Fixture f{make_temp_dir("slot-install-bench")};
    if (f.root.empty()) {
        std::perror("mkdtemp");
        return 1;
    }
    int rc = 0;
    auto fail = [&](const char* what) {
        std::fprintf(stderr, "slot_install_bench: %s\n", what);
        rc = 1;
    };
    const uint64_t size = static_cast<uint64_t>(opt.size_mib) << 20;
    ::mkdir((f.root + "/proc").c_str(), 0755);
    ::mkdir((f.root + "/esp").c_str(), 0755);
    ::mkdir((f.root + "/esp/EFI").c_str(), 0755);
    ::mkdir((f.root + "/esp/EFI/metropolis").c_str(), 0755);
    if (!write_file(f.root + "/proc/cmdline",
                    "BOOT_IMAGE=/vmlinuz root=PARTLABEL=METROPOLIS-SYSTEM-A ro quiet\n")) {
        fail("cannot write the sysroot");
    } else if (!make_slot_disk(f.root, f.disk(), opt.install ? opt.size_mib : 1)) {
        fail("sfdisk could not make the disk image");
    } else {
        // Slot B's byte offset, from the plugin's own view of the GPT.
        Sysroot sysroot(f.root);
        Logger logger(LogLevel::warning);
        auto source = make_source(sysroot, logger);
        auto slots = source.ok() ? (*source)->slots() : Result<SlotPair>(source.error());
        if (!slots.ok()) {
            std::fprintf(stderr, "slots: %s\n", slots.error().message().c_str());
            fail("the plugin does not see the slots");
        } else if (opt.install) {
            const uint64_t offset = slots->target.system.first_lba * 512;
            const std::string small_linux = f.root + "/small-linux.bin";
            const std::string cmdline_file = f.root + "/small-cmdline.txt";
            const std::string small_uki = f.root + "/small.efi";
            if (!write_random_file(f.image(), size, 7) ||
                !write_random_file(small_linux, 256 << 10, 8) ||
                !write_file(cmdline_file, "root=PARTLABEL=METROPOLIS-SYSTEM-X\n") ||
                !make_uki(small_uki, {{".cmdline", cmdline_file}, {".linux", small_linux}}) ||
                !make_bundle(f, small_uki)) {
                fail("could not build the image and bundle");
            } else {
                std::printf("temp sysroot %s: image %s, bundle %s, disk %s (sparse)\n",
                            f.root.c_str(), mib(file_size(f.image())).c_str(),
                            mib(file_size(f.bundle())).c_str(), mib(file_size(f.disk())).c_str());
                if (bench_install(f, opt, offset) != 0) fail("slot install measurement failed");
            }
            ::unlink(f.bundle().c_str());
            ::unlink(f.image().c_str());
        }
        if (rc == 0 && opt.extract && bench_extract(f, opt) != 0)
            fail("UKI extraction measurement failed");
    }
    remove_tree(f.root);
    return rc;
}
