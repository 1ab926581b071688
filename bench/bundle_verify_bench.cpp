// Issue 7: what verifying a signed bundle costs during install. On a temp sysroot (GPT disk image
// file made by sfdisk, /proc/cmdline naming slot A, an ESP directory, a trusted key) the uki
// plugin's install() runs twice over the same members:
//   candidate: a signed bundle under the enforcing policy (signature, compatible, version, and
//              the SHA-256 of every chunk, on every core, before it is written into slot B);
//   baseline:  the same members without manifest under allow_unsigned (no hashing).
// Goal: candidate throughput >= 0.9 x baseline (issue 16: 0.95 on a device-bound slot). Also
// prints the rate one and two concurrent SHA-256 streams reach on this machine, the bound that
// decides the ratio once the disk is fast. Then (root) the same pair on a device-bound slot: the
// disk image on a loop device whose writes are limited to 200 MiB/s, 600 MiB/s and 1 GiB/s (issue
// 16 goal: >= 0.95), by a cgroup's io.max (cgroup v2 with the io controller) or, where a hybrid
// hierarchy keeps that controller in v1, by a limit for the loop device on the v1 blkio root
// (blkio.throttle.write_bps_device; on the root it applies to buffered writeback too). Without
// either, the slot is a file slot instead: the disk image exported as a file through FUSE by
// qemu-storage-daemon, whose throttle filter limits the writes. Skipped with a message when none
// works. `--sparse` makes the image a sparse file (zeros: the peak RSS check at 4 GiB).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <activate/bundle/sha256.hpp>
#include <activate/bundle/signed_writer.hpp>
#include <activate/bundle/writer.hpp>
#include <activate/log.hpp>
#include <activate/plugin_api.hpp>
#include <activate/settings.hpp>
#include <activate/sysroot.hpp>
#include <algorithm>
#include <bench_support.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <payload_uki/uki_slot_store.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace activate;
using namespace activate::bench;

namespace {

struct Options {
    size_t size_mib = 512;
    int iterations = 3;
    std::string dir;
    bool sparse = false;
    bool throttle = true;
};

bool parse(int argc, char** argv, Options& o) {
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--size-mib" && i + 1 < argc)
            o.size_mib = std::strtoul(argv[++i], nullptr, 10);
        else if (a == "--iterations" && i + 1 < argc)
            o.iterations = std::atoi(argv[++i]);
        else if (a == "--dir" && i + 1 < argc)
            o.dir = argv[++i];
        else if (a == "--sparse")
            o.sparse = true;
        else if (a == "--no-throttle")
            o.throttle = false;
        else {
            std::fprintf(stderr,
                         "usage: bundle_verify_bench [--size-mib N (512)] [--iterations N (3)] "
                         "[--dir DIR] [--sparse] [--no-throttle]\nneeds about 4x --size-mib of "
                         "free space in DIR (image, "
                         "two bundles, disk)\n");
            return false;
        }
    }
    return o.size_mib > 0 && o.iterations > 0;
}

struct Fixture {
    std::string root;
    std::string disk() const { return root + "/disk.img"; }
    std::string image() const { return root + "/image.img"; }
    std::string uki() const { return root + "/uki.efi"; }
};

// The two policies: enforcing (candidate) and unsigned (baseline), for the disk at `disk` (a
// system path in the sysroot).
std::string signed_policy(const std::string& disk = "/disk.img") {
    return "{disk: " + disk + ", compatible: bench-board, trusted_keys: /keys}";
}
std::string unsigned_policy(const std::string& disk = "/disk.img") {
    return "{disk: " + disk + ", allow_unsigned: true}";
}

bool make_bundles(const Fixture& f) {
    auto key = bundle::generate_secret_key();
    if (!key.ok()) return false;
    ::mkdir((f.root + "/keys").c_str(), 0755);
    if (!write_file(f.root + "/keys/bench.pub", bundle::format_public_key(key->public_key())))
        return false;
    // The UKI first, as devices expect (docs/bundle-format.md).
    const std::vector<bundle::BundleInput> files = {{"kernel_efi.efi", f.uki()},
                                                    {"verity_rootfs.img", f.image()}};
    {
        UniqueFd out(::open((f.root + "/signed.zip").c_str(),
                            O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        auto made =
            bundle::write_signed_bundle(bundle::fd_sink(std::move(out), "signed.zip"), *key,
                                        "bench-board", *bundle::BundleVersion::parse("1.0"), files);
        if (!made.ok()) {
            std::fprintf(stderr, "signed bundle: %s\n", made.error().message().c_str());
            return false;
        }
    }
    UniqueFd out(
        ::open((f.root + "/plain.zip").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    bundle::BundleWriter writer(bundle::fd_sink(std::move(out), "plain.zip"));
    for (const auto& in : files) {
        UniqueFd fd(::open(in.path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!fd || !writer.add_file(in.name, fd.get()).ok()) return false;
    }
    return writer.finish().ok();
}

std::optional<double> install(const Fixture& f, const std::string& policy,
                              const std::string& bundle) {
    Sysroot sysroot(f.root);
    Logger logger(LogLevel::error);  // the baseline's allow_unsigned warning is expected
    PluginContext context{&sysroot, &logger};
    Settings settings(YAML::Load(policy), "bench-policy.yaml", "payload.settings");
    auto source = uki::create_uki_slot_store(context, settings);
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

// SHA-256 of the image from the page cache in 4 MiB chunks (pread) by `streams` threads at once,
// each taking every streams-th chunk: the rate the hash alone allows with that many cores.
std::optional<double> hash_only(const Fixture& f, uint64_t size, unsigned streams) {
    UniqueFd in(::open(f.image().c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) return std::nullopt;
    constexpr size_t kChunk = 4 << 20;
    std::vector<int> ok(streams, 1);
    const double t0 = now_seconds();
    std::vector<std::thread> threads;
    for (unsigned s = 0; s < streams; ++s)
        threads.emplace_back([&, s] {
            std::vector<uint8_t> buf(kChunk);
            for (uint64_t at = uint64_t(s) * kChunk; at < size; at += uint64_t(streams) * kChunk) {
                const ssize_t n = ::pread(in.get(), buf.data(), buf.size(), off_t(at));
                if (n <= 0) {
                    ok[s] = 0;
                    return;
                }
                bundle::Sha256 hash;
                hash.update(std::span(buf.data(), static_cast<size_t>(n)));
                if (!hash.finish().ok()) ok[s] = 0;
            }
        });
    for (std::thread& t : threads) t.join();
    const double t1 = now_seconds();
    for (int o : ok)
        if (!o) return std::nullopt;
    return t1 - t0;
}

int measure(const Fixture& f, const Options& opt, uint64_t offset) {
    const uint64_t size = static_cast<uint64_t>(opt.size_mib) << 20;
    const Side plain{"unsigned", [&] { return install(f, unsigned_policy(), "/plain.zip"); }};
    const Side verified{"verified", [&] { return install(f, signed_policy(), "/signed.zip"); }};
    auto runs = measure_alternating(
        opt.iterations, plain, verified,
        [&] {
            if (!clear_slot(f.disk(), offset)) return false;
            drop_cache(f.disk());
            return true;
        },
        [&](const Side& side) {
            if (slot_matches_image(f.disk(), f.image(), offset, size)) return true;
            std::fprintf(stderr, "the %s install left slot B different from the image\n",
                         side.name);
            return false;
        });
    if (!runs) return 1;
    const auto& [plain_runs, verified_runs] = *runs;
    std::vector<double> hash_t, hash2_t;
    for (int i = 0; i < opt.iterations; ++i) {
        auto h = run_in_child([&] { return hash_only(f, size, 1); });
        auto h2 = run_in_child([&] { return hash_only(f, size, 2); });
        if (!h || !h2) return 1;
        hash_t.push_back(h->seconds);
        hash2_t.push_back(h2->seconds);
    }
    const double vt = median(verified_runs.seconds), pt = median(plain_runs.seconds),
                 ht = median(hash_t), h2t = median(hash2_t);
    const double v_mbs = size / kMiB / vt, p_mbs = size / kMiB / pt;
    const double ratio = v_mbs / p_mbs;
    std::printf(
        "bundle install with and without verification: %s image into slot B of a GPT "
        "disk image, %d iterations each, alternating, median\n",
        mib(size).c_str(), opt.iterations);
    std::printf(
        "  SHA-256 implementation: %s, on its own (image in the page cache, 4 MiB chunks): "
        "1 stream %.0f MiB/s, 2 streams %.0f MiB/s (%u cores)\n",
        bundle::Sha256::implementation(), size / kMiB / ht, size / kMiB / h2t,
        std::thread::hardware_concurrency());
    std::printf("  baseline  unsigned bundle, no hashing:   %8.2f s  %7.1f MiB/s  peak RSS %s\n",
                pt, p_mbs, mib(max_of(plain_runs.peak_rss_bytes)).c_str());
    std::printf("  candidate signed bundle, verified:       %8.2f s  %7.1f MiB/s  peak RSS %s\n",
                vt, v_mbs, mib(max_of(verified_runs.peak_rss_bytes)).c_str());
    std::printf("  throughput ratio verified/unverified: %.3f (goal >= 0.9): %s\n", ratio,
                ratio >= 0.9 ? "MET" : "NOT MET");
    // What hashing alone would cap the verified install at if it were the only cost.
    std::printf(
        "  unsigned rate / hash rate: 1 stream %.3f, 2 streams %.3f (below 1: hashing "
        "can keep up with the unsigned install)\n",
        p_mbs / (size / kMiB / ht), p_mbs / (size / kMiB / h2t));
    // The ratio hashing allows if it overlapped everything else: hash rate / unsigned rate,
    // at most 1.
    std::printf(
        "  unthrottled ratio %.3f beside the bound SHA-256 allows: 1 stream %.3f, "
        "2 streams %.3f\n",
        ratio, std::min(1.0, (size / kMiB / ht) / p_mbs),
        std::min(1.0, (size / kMiB / h2t) / p_mbs));
    return 0;
}

// ----- device-bound slot: a loop device throttled by a cgroup v2 io.max -----

// The mount point of a cgroup hierarchy (/proc/self/mountinfo) of file system type `fstype`
// whose super options include `option` (any, when empty), or "".
std::string cgroup_mount(const std::string& fstype, const std::string& option = "") {
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream words(line);
        std::vector<std::string> w;
        for (std::string x; words >> x;) w.push_back(x);
        for (size_t i = 6; i + 1 < w.size(); ++i) {
            if (w[i] != "-" || w[i + 1] != fstype || w.size() <= 4) continue;
            if (option.empty()) return w[4];
            // "-", fstype, source, super options ("rw,relatime,blkio").
            if (i + 3 < w.size() &&
                ("," + w[i + 3] + ",").find("," + option + ",") != std::string::npos)
                return w[4];
        }
    }
    return "";
}

std::string read_line(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return line;
}

bool write_value(const std::string& path, const std::string& value) {
    std::ofstream out(path);
    out << value;
    out.flush();
    if (!out) std::fprintf(stderr, "writing \"%s\" to %s failed\n", value.c_str(), path.c_str());
    return bool(out);
}

bool has_word(const std::string& list, const std::string& word) {
    std::istringstream words(list);
    for (std::string w; words >> w;)
        if (w == word) return true;
    return false;
}

// Everything the throttled runs set up, undone in reverse by the destructor: the io controller
// enabled for the children of the cgroup v2 root (only if it was not), a cgroup of our own, or
// (cgroup v1) the limit on the blkio root; the loop device over the disk image and its node in
// the sysroot.
struct ThrottledSlot {
    std::string cgroup;        // our cgroup's directory
    std::string root_subtree;  // the parent's cgroup.subtree_control, when we added +io to it
    std::string v1_limits;     // the v1 blkio root's blkio.throttle.write_bps_device
    std::string device;        // "major:minor" of the loop device
    std::string loop;          // /dev/loopN
    std::string node;          // the sysroot's block device node for it
    ~ThrottledSlot() {
        if (!v1_limits.empty()) write_value(v1_limits, device + " 0");  // 0 removes the rule
        if (!cgroup.empty()) ::rmdir(cgroup.c_str());
        if (!root_subtree.empty()) write_value(root_subtree, "-io");
        if (!node.empty()) ::unlink(node.c_str());
        if (!loop.empty()) run_command({"losetup", "-d", loop});
    }
};

// Attaches the disk image to a loop device and makes its node in the sysroot; returns why not,
// or "".
std::string attach_loop(const Fixture& f, ThrottledSlot& slot) {
    // losetup prints the device it attached.
    FILE* p = ::popen(("losetup --find --show " + f.disk()).c_str(), "r");
    char buf[256] = {};
    if (p && std::fgets(buf, sizeof buf, p)) slot.loop = buf;
    if (p) ::pclose(p);
    while (!slot.loop.empty() && (slot.loop.back() == '\n')) slot.loop.pop_back();
    struct stat st {};
    if (slot.loop.empty() || ::stat(slot.loop.c_str(), &st) != 0 || !S_ISBLK(st.st_mode))
        return "losetup --find --show " + f.disk() + " gave no loop device";
    const dev_t loop_dev = st.st_rdev;
    slot.device = std::to_string(major(loop_dev)) + ":" + std::to_string(minor(loop_dev));
    ::mkdir((f.root + "/dev").c_str(), 0755);
    slot.node = f.root + "/dev/slot-disk";
    if (::mknod(slot.node.c_str(), S_IFBLK | 0600, loop_dev) != 0) {
        slot.node.clear();
        return "cannot make a block device node in the sysroot (" + f.root + " mounted nodev?)";
    }
    return "";
}

// The cgroup v1 route, where the io controller is bound to a v1 blkio hierarchy (a hybrid
// hierarchy): a limit set on the blkio ROOT for one device applies to every write to that
// device, whoever submits it. That includes the flusher threads' buffered writeback, which a
// limit on a child group of v1 would miss (v1 does not attribute writeback to cgroups). Only
// the bench writes to its own loop device, so the machine's disk is never limited.
std::string set_up_v1_throttled_slot(const Fixture& f, ThrottledSlot& slot,
                                     const std::string& why_not_v2) {
    const std::string mount = cgroup_mount("cgroup", "blkio");
    const std::string limits = mount + "/blkio.throttle.write_bps_device";
    if (mount.empty() || ::access(limits.c_str(), W_OK) != 0)
        return why_not_v2 + "; and no cgroup v1 blkio hierarchy with " +
               "blkio.throttle.write_bps_device is mounted";
    const std::string why = attach_loop(f, slot);
    if (!why.empty()) return why;
    slot.v1_limits = limits;
    return "";
}

// Returns why the throttled runs cannot happen here, or "" once `slot` is set up.
std::string set_up_throttled_slot(const Fixture& f, ThrottledSlot& slot) {
    if (::geteuid() != 0) return "not root (a loop device and a cgroup are needed)";
    const std::string mount = cgroup_mount("cgroup2");
    if (mount.empty())
        return set_up_v1_throttled_slot(f, slot, "no cgroup v2 hierarchy is mounted");
    const std::string controllers = read_line(mount + "/cgroup.controllers");
    if (!has_word(controllers, "io")) {
        return set_up_v1_throttled_slot(f, slot,
                                        "the cgroup v2 hierarchy at " + mount +
                                            " offers no io controller (cgroup.controllers: \"" +
                                            controllers + "\")");
    }
    if (!has_word(read_line(mount + "/cgroup.subtree_control"), "io")) {
        if (!write_value(mount + "/cgroup.subtree_control", "+io"))
            return "cannot enable +io in " + mount + "/cgroup.subtree_control";
        slot.root_subtree = mount + "/cgroup.subtree_control";
    }
    slot.cgroup = mount + "/activate-bench-" + std::to_string(::getpid());
    if (::mkdir(slot.cgroup.c_str(), 0755) != 0) {
        slot.cgroup.clear();
        return "cannot create a cgroup under " + mount;
    }
    return attach_loop(f, slot);
}

// ----- device-bound file slot: qemu-storage-daemon's throttle filter, exported through FUSE -----

// The disk image exported as the regular file <root>/throttled-disk.img by qemu-storage-daemon,
// every write going through a throttle group of `limit` bytes/s (QEMU's block layer: the same
// filter a guest disk's bps-write uses). Stopped (and unmounted by the daemon) by the destructor.
struct ThrottledExport {
    pid_t pid = -1;
    std::string file;
    ~ThrottledExport() {
        if (pid <= 0) return;
        ::kill(pid, SIGTERM);
        ::waitpid(pid, nullptr, 0);
    }
};

// Returns why the export cannot be made, or "" once it serves `e.file`.
std::string start_throttled_export(const Fixture& f, uint64_t limit, ThrottledExport& e) {
    e.file = f.root + "/throttled-disk.img";
    if (!write_file(e.file, "")) return "cannot create the mount point " + e.file;
    struct stat before {};
    if (::stat(e.file.c_str(), &before) != 0) return "cannot stat " + e.file;
    const std::vector<std::string> argv = {
        "qemu-storage-daemon",
        "--object",
        "throttle-group,id=tg0,limits.bps-write=" + std::to_string(limit),
        "--blockdev",
        "driver=file,node-name=disk,filename=" + f.disk(),
        "--blockdev",
        "driver=throttle,node-name=slow,throttle-group=tg0,file=disk",
        "--export",
        "type=fuse,id=slot,node-name=slow,mountpoint=" + e.file + ",writable=on"};
    e.pid = ::fork();
    if (e.pid < 0) return "fork failed";
    if (e.pid == 0) {
        std::vector<char*> args;
        for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        const int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null_fd >= 0) ::dup2(null_fd, 1);
        ::execvp(args[0], args.data());
        ::_exit(127);
    }
    // Mounted once the file lives on another device (the FUSE mount).
    for (int i = 0; i < 100; ++i) {
        struct stat now {};
        if (::stat(e.file.c_str(), &now) == 0 && now.st_dev != before.st_dev) return "";
        int status = 0;
        if (::waitpid(e.pid, &status, WNOHANG) == e.pid) {
            e.pid = -1;
            return "qemu-storage-daemon exited (status " + std::to_string(status) +
                   "; Debian: qemu-system-common, and /dev/fuse is needed)";
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return "qemu-storage-daemon did not mount " + e.file + " within 5 s";
}

// The verified/unsigned pair on `disk` (a system path in the sysroot, `host` the same file on
// this machine), interleaved; prints one line for `label`.
bool measure_pair(const Fixture& f, const Options& opt, uint64_t offset, const std::string& disk,
                  const std::string& host, const std::string& label,
                  const std::function<bool()>& enter = {}) {
    const uint64_t size = static_cast<uint64_t>(opt.size_mib) << 20;
    auto side = [&](const std::string& policy, const char* bundle) {
        return [&, policy, bundle]() -> std::optional<double> {
            if (enter && !enter()) return std::nullopt;
            return install(f, policy, bundle);
        };
    };
    const Side plain{"unsigned", side(unsigned_policy(disk), "/plain.zip")};
    const Side verified{"verified", side(signed_policy(disk), "/signed.zip")};
    auto runs = measure_alternating(
        opt.iterations, plain, verified,
        [&] {
            if (!clear_slot(host, offset)) return false;
            drop_cache(host);
            return true;
        },
        [&](const Side& s) {
            if (slot_matches_image(host, f.image(), offset, size)) return true;
            std::fprintf(stderr, "the %s install left slot B different from the image\n", s.name);
            return false;
        });
    if (!runs) return false;
    const double pt = median(runs->first.seconds), vt = median(runs->second.seconds);
    const double ratio = pt / vt;
    std::printf(
        "  %s: unsigned %6.2f s (%6.1f MiB/s), verified %6.2f s (%6.1f MiB/s), ratio %.3f "
        "(goal >= 0.95): %s\n",
        label.c_str(), pt, size / kMiB / pt, vt, size / kMiB / vt, ratio,
        ratio >= 0.95 ? "MET" : "NOT MET");
    return true;
}

int measure_throttled_file_slot(const Fixture& f, const Options& opt, uint64_t offset,
                                const std::string& why_not_cgroup) {
    std::printf(
        "device-bound slot: no cgroup io.max here (%s); a file slot instead: the disk image "
        "exported through FUSE by qemu-storage-daemon with a throttle filter on its writes\n",
        why_not_cgroup.c_str());
    {
        // What the FUSE export itself allows: above it, a limit no longer binds.
        ThrottledExport e;
        const std::string why = start_throttled_export(f, uint64_t{1} << 40, e);
        if (!why.empty()) {
            std::printf("device-bound file slot: skipped: %s\n", why.c_str());
            return 0;
        }
        if (!measure_pair(f, opt, offset, "/throttled-disk.img", e.file,
                          "FUSE export, no limit    "))
            return 1;
    }
    for (uint64_t limit_mib : {200, 600, 1024}) {
        ThrottledExport e;
        const std::string why = start_throttled_export(f, limit_mib << 20, e);
        if (!why.empty()) {
            std::printf("device-bound file slot: skipped: %s\n", why.c_str());
            return 0;
        }
        char label[64];
        std::snprintf(label, sizeof label, "write limit %4llu MiB/s  ",
                      static_cast<unsigned long long>(limit_mib));
        if (!measure_pair(f, opt, offset, "/throttled-disk.img", e.file, label)) return 1;
    }
    return 0;
}

int measure_throttled(const Fixture& f, const Options& opt, uint64_t offset) {
    ThrottledSlot slot;
    const std::string why = set_up_throttled_slot(f, slot);
    if (!why.empty()) return measure_throttled_file_slot(f, opt, offset, why);
    const std::string& device = slot.device;
    const bool v1 = !slot.v1_limits.empty();
    const std::string limits = v1 ? slot.v1_limits : slot.cgroup + "/io.max";
    std::printf("device-bound slot: %s (%s) over the disk image, writes limited by %s\n",
                slot.loop.c_str(), device.c_str(), limits.c_str());
    // cgroup v2: each measured child moves itself into the throttled cgroup first, so that only
    // its writes to the loop device are limited, never the machine's own disk. (v1: the limit on
    // the root binds the loop device's writes whoever makes them.)
    std::function<bool()> enter;
    if (!v1) enter = [&] { return write_value(slot.cgroup + "/cgroup.procs", "0"); };
    for (uint64_t limit_mib : {200, 600, 1024}) {
        const std::string bps = std::to_string(limit_mib << 20);
        if (!write_value(limits, device + (v1 ? " " : " wbps=") + bps)) return 1;
        char label[64];
        std::snprintf(label, sizeof label, "%s %4llu MiB/s", v1 ? "blkio write_bps" : "io.max wbps",
                      static_cast<unsigned long long>(limit_mib));
        if (!measure_pair(f, opt, offset, "/dev/slot-disk", slot.loop, label, enter)) return 1;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options opt;
    if (!parse(argc, argv, opt)) return 2;
    if (!opt.dir.empty()) ::setenv("TMPDIR", opt.dir.c_str(), 1);
    Fixture f{make_temp_dir("bundle-verify-bench")};
    if (f.root.empty()) {
        std::perror("mkdtemp");
        return 1;
    }
    int rc = 1;
    const uint64_t size = static_cast<uint64_t>(opt.size_mib) << 20;
    for (const char* d : {"/proc", "/esp", "/esp/EFI", "/esp/EFI/metropolis"})
        ::mkdir((f.root + d).c_str(), 0755);
    const std::string small_linux = f.root + "/linux.bin", cmdline = f.root + "/cmdline.txt";
    if (!write_file(f.root + "/proc/cmdline", "root=PARTLABEL=METROPOLIS-SYSTEM-A ro\n") ||
        !make_slot_disk(f.root, f.disk(), opt.size_mib)) {
        std::fprintf(stderr, "bundle_verify_bench: could not make the sysroot or disk image\n");
    } else if (!(opt.sparse ? run_command({"truncate", "-s", std::to_string(size), f.image()})
                            : write_random_file(f.image(), size, 7)) ||
               !write_random_file(small_linux, 256 << 10, 8) ||
               !write_file(cmdline, "root=PARTLABEL=METROPOLIS-SYSTEM-X\n") ||
               !run_command({"sh", BENCH_MAKE_UKI, f.uki(), BENCH_UKI_STUB, ".cmdline=" + cmdline,
                             ".linux=" + small_linux},
                            false) ||
               !make_bundles(f)) {
        std::fprintf(stderr, "bundle_verify_bench: could not build the image and bundles\n");
    } else {
        Sysroot sysroot(f.root);
        Logger logger(LogLevel::error);
        PluginContext context{&sysroot, &logger};
        Settings settings(YAML::Load(signed_policy()), "bench-policy.yaml", "payload.settings");
        auto source = uki::create_uki_slot_store(context, settings);
        auto slots = source.ok() ? (*source)->slots() : Result<SlotPair>(source.error());
        if (!slots.ok()) {
            std::fprintf(stderr, "slots: %s\n", slots.error().message().c_str());
        } else {
            const uint64_t offset =
                slots->target.system.first_lba * slots->target.system.sector_size;
            std::printf("temp sysroot %s\n", f.root.c_str());
            rc = measure(f, opt, offset);
            if (rc == 0 && opt.throttle) rc = measure_throttled(f, opt, offset);
        }
    }
    remove_tree(f.root);
    return rc;
}
