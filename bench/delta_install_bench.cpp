// Issue 16 §4 (Proof): a delta install of a 1 GiB image (--size-mib for a quicker run) of which
// 1 % of the chunks changed (--changed-percent), with the running slot A holding the old image,
// from a bundle served by nginx on 127.0.0.1 (test/support's NginxServer, with byte ranges).
// Prints the bytes nginx sent as a share of the image (goal <= 3 %) and the time of the delta
// install against a full install of the same bundle from the same server into a disk whose slot
// A holds nothing of it; both targets start empty. Medians of interleaved runs.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <activate/bundle/manifest.hpp>
#include <activate/bundle/signed_writer.hpp>
#include <activate/fd.hpp>
#include <activate/log.hpp>
#include <activate/plugin_api.hpp>
#include <activate/settings.hpp>
#include <activate/sysroot.hpp>
#include <activate_test/nginx.hpp>
#include <bench_support.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <payload_uki/uki_slot_store.hpp>
#include <string>
#include <vector>

using namespace activate;
using namespace activate::bench;

namespace {

struct Fixture {
    std::string root;
    uint64_t size_mib = 0;
    // delta.img: slot A holds the old image; full.img: slot A is empty (sparse).
    std::string disk(bool delta) const { return root + (delta ? "/delta.img" : "/full.img"); }
    std::string image() const { return root + "/new.img"; }
    std::string uki() const { return root + "/uki.efi"; }
    std::string bundle() const { return root + "/www/update.zip"; }
    // make_slot_disk's layout: ESP at 1 MiB (16 MiB), slot A (size_mib + 1 MiB), then slot B.
    uint64_t slot_a() const { return 17ull << 20; }
    uint64_t slot_b() const { return slot_a() + ((size_mib + 1) << 20); }
};

std::optional<double> install(const Fixture& f, bool delta, const std::string& url) {
    Sysroot sysroot(f.root);
    Logger logger(LogLevel::error);
    PluginContext context{&sysroot, &logger};
    const std::string policy = std::string("{disk: ") + (delta ? "/delta.img" : "/full.img") +
                               ", compatible: bench-board, trusted_keys: /keys}";
    Settings settings(YAML::Load(policy), "bench-policy.yaml", "payload.settings");
    auto source = uki::create_uki_slot_store(context, settings);
    if (!source.ok()) return std::nullopt;
    auto slots = (*source)->slots();
    if (!slots.ok()) return std::nullopt;
    InstallRequest request;
    request.bundle = url;
    const double t0 = now_seconds();
    auto installed = (*source)->install(slots->target, request);
    const double t1 = now_seconds();
    if (!installed.ok()) {
        std::fprintf(stderr, "install %s: %s\n", url.c_str(), installed.error().message().c_str());
        return std::nullopt;
    }
    return t1 - t0;
}

// The new image: the old one (seed 7) with one byte flipped in `changed` chunks spread evenly.
bool write_new_image(const Fixture& f, uint64_t size, uint64_t chunks, uint64_t changed) {
    if (!write_random_file(f.image(), size, 7)) return false;
    UniqueFd fd(::open(f.image().c_str(), O_RDWR | O_CLOEXEC));
    if (!fd) return false;
    const uint32_t chunk = bundle::kDefaultChunkSize;
    for (uint64_t k = 0; k < changed; ++k) {
        const uint64_t at = (k * chunks / changed + chunks / changed / 2) * chunk + 12345;
        uint8_t byte = 0;
        if (::pread(fd.get(), &byte, 1, off_t(at)) != 1) return false;
        byte ^= 0x5a;
        if (!pwrite_all(fd.get(), &byte, 1, at)) return false;
    }
    return ::fsync(fd.get()) == 0;
}

// Slot A of the delta disk: the old image (the same seed, unchanged).
bool write_old_image_into_slot_a(const Fixture& f, uint64_t size) {
    UniqueFd fd(::open(f.disk(true).c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) return false;
    std::vector<char> buf(4 << 20);
    for (uint64_t done = 0; done < size;) {
        const size_t n = size_t(std::min<uint64_t>(buf.size(), size - done));
        fill_random(buf.data(), n, 7 + done);  // as write_random_file(…, 7) fills its buffers
        if (!pwrite_all(fd.get(), buf.data(), n, f.slot_a() + done)) return false;
        done += n;
    }
    return ::fsync(fd.get()) == 0;
}

bool make_bundle(const Fixture& f) {
    auto key = bundle::generate_secret_key();
    if (!key.ok()) return false;
    ::mkdir((f.root + "/keys").c_str(), 0755);
    if (!write_file(f.root + "/keys/bench.pub", bundle::format_public_key(key->public_key())))
        return false;
    UniqueFd out(::open(f.bundle().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    auto made = bundle::write_signed_bundle(
        bundle::fd_sink(std::move(out), "update.zip"), *key, "bench-board",
        *bundle::BundleVersion::parse("1.0"),
        {{"kernel_efi.efi", f.uki()}, {"verity_rootfs.img", f.image()}});
    if (!made.ok()) std::fprintf(stderr, "signed bundle: %s\n", made.error().message().c_str());
    return made.ok();
}

// Slot B emptied (a hole: reads as zeros, holds no chunk of the image) and the disks' pages
// dropped from the page cache, so that both installs read the local slots from the disk.
bool empty_targets(const Fixture& f) {
    for (bool delta : {true, false}) {
        UniqueFd fd(::open(f.disk(delta).c_str(), O_RDWR | O_CLOEXEC));
        if (!fd ||
            ::fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(f.slot_b()),
                        off_t((f.size_mib + 1) << 20)) != 0 ||
            ::fsync(fd.get()) != 0)
            return false;
        drop_cache(f.disk(delta));
    }
    return true;
}

// The access log's lines, waiting until nginx has logged every request of the finished run
// (it logs a request the client dropped once it notices).
std::vector<test_support::NginxRequest> settled_log(const test_support::NginxServer& nginx,
                                                    size_t at_least) {
    auto log = nginx.requests(at_least);
    for (int still = 0; still < 3;) {
        ::usleep(100 * 1000);
        auto again = nginx.requests();
        still = again.size() == log.size() ? still + 1 : 0;
        log = std::move(again);
    }
    return log;
}

}  // namespace

int main(int argc, char** argv) {
    uint64_t size_mib = 1024;
    double changed_percent = 1;
    int iterations = 3;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--size-mib" && i + 1 < argc)
            size_mib = std::strtoull(argv[++i], nullptr, 10);
        else if (a == "--changed-percent" && i + 1 < argc)
            changed_percent = std::strtod(argv[++i], nullptr);
        else if (a == "--iterations" && i + 1 < argc)
            iterations = std::atoi(argv[++i]);
        else {
            std::fprintf(stderr,
                         "usage: delta_install_bench [--size-mib N (1024)] [--changed-percent P "
                         "(1)] [--iterations N (3)]\nneeds about 4x --size-mib of free space in "
                         "$TMPDIR, and nginx\n");
            return 2;
        }
    }
    const uint64_t chunk = bundle::kDefaultChunkSize;
    if (size_mib < 64 || size_mib % (chunk >> 20) != 0 || iterations < 1 || changed_percent <= 0 ||
        changed_percent > 100) {
        std::fprintf(stderr,
                     "delta_install_bench: --size-mib must be >= 64 and a multiple of %u, "
                     "--changed-percent in (0, 100]\n",
                     unsigned(chunk >> 20));
        return 2;
    }
    if (!test_support::nginx_binary()) {
        std::fprintf(stderr, "delta_install_bench: nginx is not installed (scripts/setup.sh)\n");
        return 1;
    }
    Fixture f{make_temp_dir("delta-install-bench"), size_mib};
    if (f.root.empty()) return 1;
    const uint64_t size = size_mib << 20, chunks = size / chunk;
    const uint64_t changed =
        std::max<uint64_t>(1, uint64_t(double(chunks) * changed_percent / 100 + 0.5));
    for (const char* d : {"/proc", "/esp", "/esp/EFI", "/esp/EFI/metropolis", "/www"})
        ::mkdir((f.root + d).c_str(), 0755);
    const std::string small_linux = f.root + "/linux.bin", cmdline = f.root + "/cmdline.txt";
    if (!write_file(f.root + "/proc/cmdline", "root=PARTLABEL=METROPOLIS-SYSTEM-A ro\n") ||
        !make_slot_disk(f.root, f.disk(true), size_mib, size_mib + 1) ||
        !make_slot_disk(f.root, f.disk(false), size_mib, size_mib + 1) ||
        !write_old_image_into_slot_a(f, size) || !write_new_image(f, size, chunks, changed) ||
        !write_random_file(small_linux, 256 << 10, 8) ||
        !write_file(cmdline, "root=PARTLABEL=METROPOLIS-SYSTEM-X\n") ||
        !run_command({"sh", BENCH_MAKE_UKI, f.uki(), BENCH_UKI_STUB, ".cmdline=" + cmdline,
                      ".linux=" + small_linux},
                     false) ||
        !make_bundle(f)) {
        std::fprintf(stderr, "delta_install_bench: could not build the sysroot and bundle\n");
        remove_tree(f.root);
        return 1;
    }
    int rc = 1;
    {
        test_support::NginxServer nginx(f.root + "/www");
        if (!nginx.running()) {
            std::fprintf(stderr, "delta_install_bench: nginx: %s\n", nginx.error().c_str());
            remove_tree(f.root);
            return 1;
        }
        const std::string url = nginx.url("/update.zip");
        std::fprintf(stderr,
                     "%s image, %llu chunks of 4 MiB, %llu changed; slot A of the delta disk holds "
                     "the old image\n",
                     mib(double(size)).c_str(), (unsigned long long)chunks,
                     (unsigned long long)changed);
        size_t logged = 0;
        std::vector<double> delta_sent, full_sent;
        const Side full{"full", [&] { return install(f, false, url); }};
        const Side delta{"delta", [&] { return install(f, true, url); }};
        auto runs = measure_alternating(
            iterations, full, delta,
            [&] {
                logged = settled_log(nginx, logged).size();
                return empty_targets(f);
            },
            [&](const Side& side) {
                const bool is_delta = &side == &delta;
                const auto log = settled_log(nginx, logged + 1);
                uint64_t sent = 0;
                for (size_t i = logged; i < log.size(); ++i) sent += log[i].body_bytes_sent;
                (is_delta ? delta_sent : full_sent).push_back(double(sent));
                std::fprintf(stderr, "  %s: nginx sent %s in %zu responses\n", side.name,
                             mib(double(sent)).c_str(), log.size() - logged);
                if (!slot_matches_image(f.disk(is_delta), f.image(), f.slot_b(), size)) {
                    std::fprintf(stderr, "delta_install_bench: slot B differs from the image\n");
                    return false;
                }
                return true;
            });
        if (runs) {
            const double share = median(delta_sent) / double(size) * 100;
            const double t_delta = median(runs->second.seconds);
            const double t_full = median(runs->first.seconds);
            std::printf(
                "delta install, %.2g %% of %llu chunks changed: fetched %.2f %% of the %s "
                "image (%s; full install %s) (goal <= 3 %%: %s)\n",
                changed_percent, (unsigned long long)chunks, share, mib(double(size)).c_str(),
                mib(median(delta_sent)).c_str(), mib(median(full_sent)).c_str(),
                share <= 3 ? "MET" : "NOT MET");
            std::printf(
                "delta install %.2f s vs full install %.2f s: ratio %.2f (medians of %d, "
                "interleaved)\n",
                t_delta, t_full, t_delta / t_full, iterations);
            rc = 0;
        }
    }
    remove_tree(f.root);
    return rc;
}
