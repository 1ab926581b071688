// C++ side of the image builders: computes a content key over every input (the script itself,
// the files it reads, the arguments), and runs the script only when no image has that key yet.
// The scripts write to a temporary name and rename, so parallel tests never see half an image.
#include <sodium.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <vm/images.hpp>
#include <vm/process.hpp>

#ifndef ACTIVATE_VM_IMAGE_DIR
#define ACTIVATE_VM_IMAGE_DIR "vm-images"
#endif
#ifndef ACTIVATE_VM_LOG_DIR
#define ACTIVATE_VM_LOG_DIR "vm-logs"
#endif
#ifndef ACTIVATE_VM_SCRIPT_DIR
#define ACTIVATE_VM_SCRIPT_DIR "test/vm/images"
#endif

namespace activate::vm {
namespace {

const milliseconds kBuildTimeout = seconds(300);

fs::path env_or(const char* var, const char* fallback) {
    const char* v = std::getenv(var);
    return (v && *v) ? fs::path(v) : fs::path(fallback);
}

fs::path script(const char* name) { return fs::path(ACTIVATE_VM_SCRIPT_DIR) / name; }

// BLAKE2b over length-prefixed fields, so ("ab","c") and ("a","bc") differ.
class ContentKey {
  public:
    explicit ContentKey(std::string_view kind) {
        if (sodium_init() < 0) std::abort();
        crypto_generichash_init(&state_, nullptr, 0, 16);
        add(kind);
    }
    ContentKey& add(std::string_view s) {
        uint64_t n = s.size();
        crypto_generichash_update(&state_, reinterpret_cast<const unsigned char*>(&n), sizeof n);
        crypto_generichash_update(&state_, reinterpret_cast<const unsigned char*>(s.data()),
                                  s.size());
        return *this;
    }
    Status add_file(const fs::path& p) {
        std::ifstream in(p, std::ios::binary);
        if (!in) return errno_error(ErrorKind::internal, "reading " + p.string());
        add(p.string());
        std::vector<char> buf(1 << 20);
        while (in) {
            in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
            crypto_generichash_update(&state_, reinterpret_cast<const unsigned char*>(buf.data()),
                                      static_cast<unsigned long long>(in.gcount()));
        }
        if (in.bad()) return errno_error(ErrorKind::internal, "reading " + p.string());
        return {};
    }
    std::string hex() {
        unsigned char out[16];
        crypto_generichash_final(&state_, out, sizeof out);
        char text[33];
        sodium_bin2hex(text, sizeof text, out, sizeof out);
        return text;
    }

  private:
    crypto_generichash_state state_;
};

Result<fs::path> cache_path(const std::string& name) {
    fs::path dir = ImageCacheDir();
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return Error(ErrorKind::internal, "creating " + dir.string() + ": " + ec.message());
    return dir / name;
}

// Runs a builder unless `out` exists already.
Result<fs::path> build(const fs::path& out, std::vector<std::string> argv,
                       milliseconds timeout = kBuildTimeout) {
    if (fs::exists(out)) return out;
    auto r = RunCommand(argv, timeout);
    if (!r) return std::move(r).error().with_context("building " + out.filename().string());
    if (!fs::exists(out))
        return Error(ErrorKind::internal, argv[0] + " did not create " + out.string());
    return out;
}

Status write_file(const fs::path& p, std::string_view text) {
    fs::path tmp = p;
    tmp += ".tmp." + std::to_string(::getpid());
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    f.close();
    if (!f) return errno_error(ErrorKind::internal, "writing " + tmp.string());
    std::error_code ec;
    fs::rename(tmp, p, ec);
    if (ec) return Error(ErrorKind::internal, "renaming " + tmp.string() + ": " + ec.message());
    return {};
}

}  // namespace

fs::path ImageCacheDir() { return env_or("ACTIVATE_VM_IMAGE_DIR", ACTIVATE_VM_IMAGE_DIR); }
fs::path LogDir() { return env_or("ACTIVATE_VM_LOG_DIR", ACTIVATE_VM_LOG_DIR); }

Result<HostKernel> FindHostKernel() {
    std::string want;
    if (const char* v = std::getenv("ACTIVATE_VM_KERNEL_VERSION")) want = v;
    HostKernel best;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/boot", ec)) {
        std::string name = e.path().filename().string();
        if (name.rfind("vmlinuz-", 0) != 0) continue;
        std::string version = name.substr(8);
        if (!want.empty() && version != want) continue;
        if (!fs::exists("/lib/modules/" + version + "/modules.dep")) continue;
        if (best.version.empty() || strverscmp(version.c_str(), best.version.c_str()) > 0)
            best = {version, e.path()};
    }
    if (best.version.empty())
        return Error(ErrorKind::internal,
                     "no kernel in /boot with modules in /lib/modules" +
                         (want.empty() ? std::string() : " of version " + want) +
                         " (install linux-image-amd64)");
    return best;
}

Result<fs::path> ExtractVmlinux(const HostKernel& kernel) {
    ContentKey key("vmlinux");
    ACTIVATE_TRY(key.add_file(script("extract-vmlinux.py")));
    ACTIVATE_TRY(key.add_file(kernel.bzimage));
    ACTIVATE_ASSIGN(fs::path out, cache_path("vmlinux-" + kernel.version + "-" + key.hex()));
    return build(out,
                 {script("extract-vmlinux.py").string(), kernel.bzimage.string(), out.string()});
}

std::vector<std::string> DefaultGuestModules() {
    return {"virtio_pci", "virtio_blk", "virtio_net", "efivarfs", "vfat",
            "nls_cp437",  "nls_ascii",  "nls_utf8",   "bonding",  "8021q"};
}

Result<fs::path> BuildInitramfs(const InitramfsSpec& spec) {
    std::string kver = spec.kernel_version;
    HostKernel kernel;
    if (kver.empty()) {
        ACTIVATE_ASSIGN(kernel, FindHostKernel());
        kver = kernel.version;
    } else {
        kernel = {kver, "/boot/vmlinuz-" + kver};
    }
    ContentKey key("initramfs");
    ACTIVATE_TRY(key.add_file(script("build-initramfs.sh")));
    ACTIVATE_TRY(key.add_file(script("guest-lib.sh")));
    // The modules ship with the kernel image: a new kernel package changes the image too.
    key.add(kver);
    ACTIVATE_TRY(key.add_file(kernel.bzimage));
    ACTIVATE_TRY(key.add_file("/bin/busybox"));
    key.add(spec.init);
    for (const auto& m : spec.modules) key.add("module").add(m);
    for (const auto& f : spec.files) {
        key.add(f.elf ? "elf" : "file").add(f.guest);
        ACTIVATE_TRY(key.add_file(f.host));
    }
    std::string hex = key.hex();

    ACTIVATE_ASSIGN(fs::path init, cache_path("init-" + hex + ".sh"));
    ACTIVATE_TRY(write_file(init, spec.init));
    ACTIVATE_ASSIGN(fs::path out, cache_path("initramfs-" + hex + ".cpio.zst"));
    std::vector<std::string> argv = {script("build-initramfs.sh").string(),
                                     "--out",
                                     out.string(),
                                     "--init",
                                     init.string(),
                                     "--kver",
                                     kver};
    for (const auto& m : spec.modules) argv.insert(argv.end(), {"--module", m});
    for (const auto& f : spec.files)
        argv.insert(argv.end(), {f.elf ? "--elf" : "--file", f.host.string(), f.guest});
    return build(out, std::move(argv));
}

Result<fs::path> BuildUki(const UkiSpec& spec) {
    ContentKey key("uki");
    ACTIVATE_TRY(key.add_file(script("build-uki.sh")));
    ACTIVATE_TRY(key.add_file(spec.stub));
    ACTIVATE_TRY(key.add_file(spec.kernel));
    if (!spec.initrd.empty()) ACTIVATE_TRY(key.add_file(spec.initrd));
    key.add(spec.cmdline).add(spec.os_release);
    std::string hex = key.hex();

    ACTIVATE_ASSIGN(fs::path out, cache_path("uki-" + hex + ".efi"));
    std::vector<std::string> argv = {script("build-uki.sh").string(),
                                     "--out",
                                     out.string(),
                                     "--kernel",
                                     spec.kernel.string(),
                                     "--cmdline",
                                     spec.cmdline,
                                     "--stub",
                                     spec.stub.string()};
    if (!spec.initrd.empty()) argv.insert(argv.end(), {"--initrd", spec.initrd.string()});
    if (!spec.os_release.empty()) {
        ACTIVATE_ASSIGN(fs::path osrel, cache_path("os-release-" + hex));
        ACTIVATE_TRY(write_file(osrel, spec.os_release));
        argv.insert(argv.end(), {"--os-release", osrel.string()});
    }
    return build(out, std::move(argv));
}

DiskSpec AbDisk(const fs::path& default_uki, const fs::path& uki_a, const fs::path& uki_b) {
    DiskSpec d;
    d.esp_files = {
        {default_uki, kDefaultBootPath}, {uki_a, kSlotABootPath}, {uki_b, kSlotBBootPath}};
    return d;
}

Result<fs::path> BuildDisk(const DiskSpec& spec) {
    ContentKey key("disk");
    ACTIVATE_TRY(key.add_file(script("build-disk.sh")));
    std::vector<std::string> args = {"--esp-size", std::to_string(spec.esp_size_mib)};
    for (const auto& f : spec.esp_files) {
        ACTIVATE_TRY(key.add_file(f.host));
        args.insert(args.end(), {"--esp-file", f.host.string(), f.esp_path});
    }
    for (const auto& p : spec.partitions) {
        if (!p.image.empty()) ACTIVATE_TRY(key.add_file(p.image));
        args.insert(args.end(), {"--part", p.name, std::to_string(p.size_mib), p.type_guid});
        if (!p.image.empty()) args.push_back(p.image.string());
    }
    for (const auto& a : args) key.add(a);
    ACTIVATE_ASSIGN(fs::path out, cache_path("disk-" + key.hex() + ".img"));
    std::vector<std::string> argv = {script("build-disk.sh").string(), "--out", out.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return build(out, std::move(argv));
}

std::vector<std::string> DefaultDebianPackages() {
    return {
        // init, devices, modules and the real initrd (initramfs-tools compresses with zstd)
        "systemd-sysv", "udev", "kmod", "linux-image-amd64", "initramfs-tools", "zstd", "e2fsprogs",
        // what `ldd activate` and its plugins list beyond the base system
        "libprotobuf32", "libyaml-cpp0.7", "libboost-program-options1.74.0", "libsodium23",
        "libcurl4", "libzstd1", "libdeflate0", "zlib1g",
        // looking at boot entries, fetching the scenario
        "efibootmgr", "curl",
        // the takeover test copies `takeover` in and runs it over SSH, as an operator would;
        // systemd-resolved keeps the nameserver networkd got by DHCP where takeover finds it
        // (/run/systemd/resolve/resolv.conf; without it /etc/resolv.conf is the build host's)
        // (debootstrap resolves no virtual packages: dbus provides resolved's dbus-system-bus)
        "openssh-server", "systemd-resolved", "dbus",
        // Ansible's modules run on the target in Python (contrib/ansible, the Ansible e2e test);
        // python3-minimal is only a subset of the standard library, too little for most of them
        "python3"};
}

namespace {

// The suites a sources line or stanza names hold `suite` itself (not suite-security or
// suite-updates); returns its first URI then.
std::optional<std::string> uri_for_suite(const std::vector<std::string>& types,
                                         const std::vector<std::string>& uris,
                                         const std::vector<std::string>& suites,
                                         const std::string& suite) {
    if (std::find(types.begin(), types.end(), "deb") == types.end() || uris.empty())
        return std::nullopt;
    if (std::find(suites.begin(), suites.end(), suite) == suites.end()) return std::nullopt;
    return uris.front();
}

std::vector<std::string> words(const std::string& s) {
    std::istringstream in(s);
    std::vector<std::string> out;
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

// One-line format, sources.list(5): deb [options] uri suite [component...]
std::optional<std::string> mirror_from_list(const fs::path& file, const std::string& suite) {
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) {
        line = line.substr(0, line.find('#'));
        std::vector<std::string> w = words(line);
        if (w.size() < 3) continue;
        size_t at = 1;
        if (w[1].front() == '[')
            while (at < w.size() && w[at - 1].back() != ']') ++at;
        if (at + 1 >= w.size()) continue;
        if (auto uri = uri_for_suite({w[0]}, {w[at]}, {w[at + 1]}, suite)) return uri;
    }
    return std::nullopt;
}

// deb822 format, sources.list(5): stanzas of "Field: value" separated by blank lines.
std::optional<std::string> mirror_from_sources(const fs::path& file, const std::string& suite) {
    std::ifstream in(file);
    std::vector<std::string> types, uris, suites;
    auto end_stanza = [&]() {
        auto uri = uri_for_suite(types, uris, suites, suite);
        types.clear(), uris.clear(), suites.clear();
        return uri;
    };
    for (std::string line; std::getline(in, line);) {
        if (line.find_first_not_of(" \t") == std::string::npos) {
            if (auto uri = end_stanza()) return uri;
            continue;
        }
        if (line[0] == '#') continue;
        size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string field = line.substr(0, colon), value = line.substr(colon + 1);
        if (field == "Types") types = words(value);
        if (field == "URIs") uris = words(value);
        if (field == "Suites") suites = words(value);
    }
    return end_stanza();
}

}  // namespace

Result<std::string> DebianMirror(const std::string& suite, const fs::path& apt_dir) {
    std::vector<fs::path> lists = {apt_dir / "sources.list"}, sources;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(apt_dir / "sources.list.d", ec)) {
        if (e.path().extension() == ".list") lists.push_back(e.path());
        if (e.path().extension() == ".sources") sources.push_back(e.path());
    }
    std::sort(lists.begin() + 1, lists.end());
    std::sort(sources.begin(), sources.end());
    for (const auto& f : lists)
        if (auto uri = mirror_from_list(f, suite)) return *uri;
    for (const auto& f : sources)
        if (auto uri = mirror_from_sources(f, suite)) return *uri;
    return Error(ErrorKind::internal, "no apt source for suite " + suite + " in " +
                                          (apt_dir / "sources.list").string() + " or " +
                                          (apt_dir / "sources.list.d").string());
}

Result<DebianSystem> BuildDebian(const DebianSpec& spec) {
    std::string mirror = spec.mirror;
    if (mirror.empty()) {
        ACTIVATE_ASSIGN(mirror, DebianMirror(spec.suite));
    }
    std::string include;
    for (const auto& p : spec.packages) include += (include.empty() ? "" : ",") + p;
    ContentKey key("debian");
    ACTIVATE_TRY(key.add_file(script("build-debian.sh")));
    key.add(spec.suite).add(mirror).add(include);
    ACTIVATE_ASSIGN(fs::path prefix, cache_path("debian-" + spec.suite + "-" + key.hex()));
    ACTIVATE_ASSIGN(fs::path debs, cache_path("debootstrap-debs"));
    fs::path tarball = prefix.string() + ".tar.zst";
    // Downloading and unpacking some 200 packages and making the initrd: minutes under load.
    ACTIVATE_TRY(
        build(tarball,
              {script("build-debian.sh").string(), "--out", prefix.string(), "--mirror", mirror,
               "--suite", spec.suite, "--include", include, "--cache-dir", debs.string()},
              seconds(1800)));
    DebianSystem d;
    d.tarball = tarball;
    d.kernel = prefix.string() + ".vmlinuz";
    d.initrd = prefix.string() + ".initrd.img";
    d.os_release = prefix.string() + ".os-release";
    std::ifstream kver(prefix.string() + ".kver");
    if (!std::getline(kver, d.kernel_version) || !fs::exists(d.kernel) || !fs::exists(d.initrd) ||
        !fs::exists(d.os_release))
        return Error(ErrorKind::internal,
                     "incomplete Debian build at " + prefix.string() + ".*: remove those files");
    return d;
}

Result<fs::path> BuildExt4(const Ext4Spec& spec) {
    ContentKey key("ext4");
    ACTIVATE_TRY(key.add_file(script("build-ext4.sh")));
    ACTIVATE_TRY(key.add_file(spec.tarball));
    std::vector<std::string> args = {"--tarball", spec.tarball.string(), "--free-mib",
                                     std::to_string(spec.free_mib)};
    if (!spec.label.empty()) args.insert(args.end(), {"--label", spec.label});
    for (const auto& deb : spec.debs) {
        ACTIVATE_TRY(key.add_file(deb));
        args.insert(args.end(), {"--deb", deb.string()});
    }
    for (const auto& f : spec.files) {
        ACTIVATE_TRY(key.add_file(f.host));
        // The script keeps the host mode (an executable stays one).
        std::error_code ec;
        key.add(std::to_string(static_cast<unsigned>(fs::status(f.host, ec).permissions())));
        args.insert(args.end(), {"--file", f.host.string(), f.guest});
    }
    for (const auto& [target, guest] : spec.links)
        args.insert(args.end(), {"--link", target, guest});
    for (const auto& a : args) key.add(a);
    ACTIVATE_ASSIGN(fs::path out, cache_path("ext4-" + key.hex() + ".img"));
    std::vector<std::string> argv = {script("build-ext4.sh").string(), "--out", out.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return build(out, std::move(argv));
}

Status CopyImage(const fs::path& from, const fs::path& to) {
    auto r = RunCommand({"cp", "--sparse=always", "--", from.string(), to.string()}, seconds(120));
    if (!r) return std::move(r).error();
    return {};
}

Status CopyOvmfVarsTemplate(const fs::path& to, const fs::path& templ) {
    std::error_code ec;
    fs::copy_file(templ, to, fs::copy_options::overwrite_existing, ec);
    if (ec)
        return Error(ErrorKind::internal,
                     "copying " + templ.string() + " to " + to.string() + ": " + ec.message());
    fs::permissions(to, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::add, ec);
    return {};
}

}  // namespace activate::vm
