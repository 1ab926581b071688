// Issue 16 §3: how much of the image an install killed half way fetches and writes on the next
// run. On a temp sysroot (GPT disk image file, /proc/cmdline naming slot A, an ESP, a trusted key)
// the uki plugin installs a signed bundle into slot B from a FIFO that the parent feeds with the
// bundle up to the middle of the image; once the progress record on the ESP stops moving the
// installing child is SIGKILLed. The next run installs from the bundle file, which resumes: the
// source seeks over the recorded chunks, so the bytes it fetches are the file's size minus the
// bytes seeked over (the CLI test
// SignedUpdateCli.InstallKilledMidwayContinuesFromItsLastSyncedChunk counts them on an HTTP
// server). Its time is compared with a full install of the same bundle. Goal: the next run fetches
// and writes <= 55 % of the image.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <activate/bundle/reader.hpp>
#include <activate/bundle/signed_writer.hpp>
#include <activate/log.hpp>
#include <activate/plugin_api.hpp>
#include <activate/settings.hpp>
#include <activate/sysroot.hpp>
#include <bench_support.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <payload_uki/uki_slot_store.hpp>
#include <sstream>
#include <string>
#include <thread>

using namespace activate;
using namespace activate::bench;

namespace {

const char* kPolicy = "{disk: /disk.img, compatible: bench-board, trusted_keys: /keys}";

struct Fixture {
    std::string root;
    std::string disk() const { return root + "/disk.img"; }
    std::string image() const { return root + "/image.img"; }
    std::string uki() const { return root + "/uki.efi"; }
    std::string bundle() const { return root + "/signed.zip"; }
    std::string record() const { return root + "/esp/EFI/activate/install-progress.json"; }
};

bool make_bundle(const Fixture& f) {
    auto key = bundle::generate_secret_key();
    if (!key.ok()) return false;
    ::mkdir((f.root + "/keys").c_str(), 0755);
    if (!write_file(f.root + "/keys/bench.pub", bundle::format_public_key(key->public_key())))
        return false;
    UniqueFd out(::open(f.bundle().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    auto made = bundle::write_signed_bundle(
        bundle::fd_sink(std::move(out), "signed.zip"), *key, "bench-board",
        *bundle::BundleVersion::parse("1.0"),
        {{"kernel_efi.efi", f.uki()}, {"verity_rootfs.img", f.image()}});
    if (!made.ok()) std::fprintf(stderr, "signed bundle: %s\n", made.error().message().c_str());
    return made.ok();
}

// Where the image member's data starts in the bundle.
std::optional<uint64_t> image_data_offset(const Fixture& f) {
    Sysroot sysroot(f.root);
    auto src = bundle::open_source(sysroot, "/signed.zip");
    if (!src.ok()) return std::nullopt;
    auto reader = bundle::BundleReader::open(std::move(*src));
    while (reader.ok()) {
        auto m = reader->next();
        if (!m.ok() || !*m) return std::nullopt;
        if ((*m)->name == "verity_rootfs.img") return reader->source_offset();
        if (!reader->skip().ok()) return std::nullopt;
    }
    return std::nullopt;
}

std::optional<double> install(const Fixture& f, const std::string& bundle) {
    Sysroot sysroot(f.root);
    Logger logger(LogLevel::error);
    PluginContext context{&sysroot, &logger};
    Settings settings(YAML::Load(kPolicy), "bench-policy.yaml", "payload.settings");
    auto source = uki::create_uki_slot_store(context, settings);
    if (!source.ok()) return std::nullopt;
    auto slots = (*source)->slots();
    if (!slots.ok()) return std::nullopt;
    InstallRequest request;
    request.bundle = bundle;
    const double t0 = now_seconds();
    auto installed = (*source)->install(slots->target, request);
    const double t1 = now_seconds();
    if (!installed.ok()) {
        std::fprintf(stderr, "install %s: %s\n", bundle.c_str(),
                     installed.error().message().c_str());
        return std::nullopt;
    }
    return t1 - t0;
}

std::optional<uint64_t> synced_bytes(const Fixture& f) {
    std::ifstream in(f.record());
    if (!in) return std::nullopt;
    std::stringstream text;
    text << in.rdbuf();
    const auto doc = nlohmann::json::parse(text.str(), nullptr, false);
    if (doc.is_discarded() || !doc.contains("chunks_synced")) return std::nullopt;
    return doc["chunks_synced"].get<uint64_t>() * doc["chunk_size"].get<uint64_t>();
}

// Run 1: the bundle up to `cut` bytes through a FIFO, then silence; SIGKILL once the record has
// not moved for a second. Returns the bytes the record holds.
std::optional<uint64_t> killed_run(const Fixture& f, uint64_t cut) {
    const std::string fifo = f.root + "/fifo.zip";
    ::unlink(fifo.c_str());
    if (::mkfifo(fifo.c_str(), 0644) != 0) return std::nullopt;
    const pid_t pid = ::fork();
    if (pid < 0) return std::nullopt;
    if (pid == 0) {
        (void)install(f, "/fifo.zip");
        ::_exit(1);
    }
    UniqueFd out(::open(fifo.c_str(), O_WRONLY | O_CLOEXEC));
    UniqueFd in(::open(f.bundle().c_str(), O_RDONLY | O_CLOEXEC));
    std::vector<char> buf(1 << 20);
    for (uint64_t sent = 0; sent < cut;) {
        const ssize_t n = ::read(in.get(), buf.data(), std::min<uint64_t>(buf.size(), cut - sent));
        if (n <= 0 || ::write(out.get(), buf.data(), size_t(n)) != n) break;
        sent += uint64_t(n);
    }
    std::optional<uint64_t> synced;
    for (int i = 0, still = 0; i < 6000 && still < 10; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        const auto now = synced_bytes(f);
        still = now && now == synced ? still + 1 : 0;
        synced = now;
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return synced;
}

}  // namespace

int main(int argc, char** argv) {
    uint64_t size_mib = 1024;
    int iterations = 3;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--size-mib" && i + 1 < argc)
            size_mib = std::strtoull(argv[++i], nullptr, 10);
        else if (a == "--iterations" && i + 1 < argc)
            iterations = std::atoi(argv[++i]);
        else {
            std::fprintf(stderr,
                         "usage: install_resume_bench [--size-mib N (1024)] [--iterations N (3)]\n"
                         "needs about 3x --size-mib of free space in $TMPDIR\n");
            return 2;
        }
    }
    if (size_mib < 64 || iterations < 1) return 2;
    Fixture f{make_temp_dir("install-resume-bench")};
    if (f.root.empty()) return 1;
    const uint64_t size = size_mib << 20;
    for (const char* d : {"/proc", "/esp", "/esp/EFI", "/esp/EFI/metropolis"})
        ::mkdir((f.root + d).c_str(), 0755);
    const std::string small_linux = f.root + "/linux.bin", cmdline = f.root + "/cmdline.txt";
    int rc = 1;
    std::optional<uint64_t> data_offset;
    if (!write_file(f.root + "/proc/cmdline", "root=PARTLABEL=METROPOLIS-SYSTEM-A ro\n") ||
        !make_slot_disk(f.root, f.disk(), size_mib) || !write_random_file(f.image(), size, 7) ||
        !write_random_file(small_linux, 256 << 10, 8) ||
        !write_file(cmdline, "root=PARTLABEL=METROPOLIS-SYSTEM-X\n") ||
        !run_command({"sh", BENCH_MAKE_UKI, f.uki(), BENCH_UKI_STUB, ".cmdline=" + cmdline,
                      ".linux=" + small_linux},
                     false) ||
        !make_bundle(f) || !(data_offset = image_data_offset(f))) {
        std::fprintf(stderr, "install_resume_bench: could not build the sysroot and bundle\n");
        remove_tree(f.root);
        return 1;
    }
    struct stat st {};
    ::stat(f.bundle().c_str(), &st);
    const uint64_t bundle_size = uint64_t(st.st_size);
    std::vector<double> fetched, written, resumed, full;
    for (int i = 0; i < iterations; ++i) {
        // Alternating which goes first; each leaves slot B complete and no record behind.
        for (int side = 0; side < 2; ++side) {
            const bool resume_side = (side == 0) == (i % 2 == 0);
            if (!resume_side) {
                auto t = run_in_child([&] { return install(f, "/signed.zip"); });
                if (!t) goto out;
                full.push_back(t->seconds);
                continue;
            }
            auto kept = killed_run(f, *data_offset + size / 2);
            if (!kept) {
                std::fprintf(stderr, "install_resume_bench: the killed run left no record\n");
                goto out;
            }
            auto t = run_in_child([&] { return install(f, "/signed.zip"); });
            if (!t) goto out;
            resumed.push_back(t->seconds);
            fetched.push_back(double(bundle_size - *kept - *data_offset) / double(size));
            written.push_back(double(size - *kept) / double(size));
            std::fprintf(stderr, "resumed after %s of %s: %.2f s\n", mib(double(*kept)).c_str(),
                         mib(double(size)).c_str(), t->seconds);
        }
    }
    if (!slot_matches_image(f.disk(), f.image(), (1 + 16 + 16) << 20, size)) {
        std::fprintf(stderr, "install_resume_bench: slot B differs from the image\n");
        goto out;
    }
    {
        const double fx = median(fetched) * 100, wx = median(written) * 100;
        std::printf(
            "install killed at 50 %%: next run fetched %.1f %% and wrote %.1f %% of the "
            "%s image (goal <= 55 %%: %s)\n",
            fx, wx, mib(double(size)).c_str(), fx <= 55 && wx <= 55 ? "MET" : "NOT MET");
        std::printf("resumed run %.2f s vs full install %.2f s: ratio %.2f (medians of %d)\n",
                    median(resumed), median(full), median(resumed) / median(full), iterations);
        rc = 0;
    }
out:
    remove_tree(f.root);
    return rc;
}
