// Turns LaunchOptions/MicroVMOptions into a QEMU command line and runs it. The serial console is
// QEMU's stdout; -nodefaults keeps every device explicit, so what a guest sees is what is here.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vm/images.hpp>
#include <vm/qemu.hpp>

namespace activate::vm {
namespace {

constexpr const char* kQemu = "qemu-system-x86_64";

std::atomic<int> g_machine_counter{0};

// QEMU option values escape a comma by doubling it.
std::string qemu_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        out.push_back(c);
        if (c == ',') out.push_back(',');
    }
    return out;
}

Result<uint16_t> free_tcp_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno_error(ErrorKind::internal, "socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        int e = errno;
        ::close(fd);
        return errno_error(ErrorKind::internal, "picking a free port", e);
    }
    ::close(fd);
    return ntohs(a.sin_port);
}

std::string read_first_line(const fs::path& p) {
    std::ifstream f(p);
    std::string line;
    std::getline(f, line);
    return line;
}

Accel probe_kvm() {
    if (::access("/dev/kvm", R_OK | W_OK) != 0) return Accel::tcg;
    std::string boot_id = read_first_line("/proc/sys/kernel/random/boot_id");
    fs::path cache = ImageCacheDir() / ("kvm-probe-" + boot_id);
    std::string cached = read_first_line(cache);
    if (cached == "kvm") return Accel::kvm;
    if (cached == "tcg") return Accel::tcg;

    Accel result = Accel::tcg;
    if (auto kernel = FindHostKernel()) {
        // A kernel without root file system panics at the end of its init: reaching that within
        // the limit proves KVM runs a real guest (a nested KVM that hangs never gets there).
        SpawnOptions o;
        o.name = "kvm-probe";
        o.argv = {kQemu,
                  "-accel",
                  "kvm",
                  "-M",
                  "q35",
                  "-m",
                  "256",
                  "-nodefaults",
                  "-no-user-config",
                  "-display",
                  "none",
                  "-serial",
                  "stdio",
                  "-no-reboot",
                  "-kernel",
                  kernel->bzimage.string(),
                  "-append",
                  "console=ttyS0 panic=-1 loglevel=1"};
        o.timeout = seconds(10);
        if (auto p = Process::Spawn(std::move(o))) {
            auto line = (*p)->wait_for_line("Kernel panic", seconds(10));
            auto st = (*p)->wait(seconds(5));
            if (line && st && !st->timed_out) result = Accel::kvm;
        }
    }
    std::error_code ec;
    fs::create_directories(cache.parent_path(), ec);
    std::ofstream(cache) << to_string(result) << "\n";
    std::fprintf(stderr, "[vm] KVM probe: using %s\n", to_string(result));
    return result;
}

void add(std::vector<std::string>& argv, std::initializer_list<std::string> more) {
    argv.insert(argv.end(), more);
}

std::string default_mac(int machine, size_t nic) {
    char mac[32];
    std::snprintf(mac, sizeof mac, "52:54:00:%02x:%02x:%02x", (::getpid() >> 4) & 0xff,
                  machine & 0xff, static_cast<int>(nic) & 0xff);
    return mac;
}

Result<std::unique_ptr<Process>> start_swtpm(const fs::path& state_dir, const fs::path& socket,
                                             milliseconds timeout) {
    std::error_code ec;
    fs::create_directories(state_dir, ec);
    if (ec)
        return Error(ErrorKind::internal, "creating " + state_dir.string() + ": " + ec.message());
    SpawnOptions o;
    o.name = "swtpm";
    o.argv = {"swtpm",
              "socket",
              "--tpm2",
              "--tpmstate",
              "dir=" + state_dir.string(),
              "--ctrl",
              "type=unixio,path=" + socket.string(),
              "--terminate"};
    o.timeout = timeout;
    ACTIVATE_ASSIGN(auto p, Process::Spawn(std::move(o)));
    for (int i = 0; i < 100 && !fs::exists(socket); ++i) {
        if (!p->running()) break;
        std::this_thread::sleep_for(milliseconds(50));
    }
    if (!fs::exists(socket))
        return Error(ErrorKind::internal, "swtpm did not create its socket\n" + p->tail());
    return p;
}

}  // namespace

const char* to_string(Accel a) {
    switch (a) {
        case Accel::automatic:
            return "automatic";
        case Accel::kvm:
            return "kvm";
        case Accel::tcg:
            return "tcg";
    }
    return "?";
}

const char* to_string(GuestExit e) {
    switch (e) {
        case GuestExit::power_off:
            return "power off";
        case GuestExit::reboot:
            return "reboot";
        case GuestExit::panic:
            return "kernel panic";
        case GuestExit::unknown:
            return "unknown";
    }
    return "?";
}

Accel ResolveAccel(Accel requested) {
    if (requested != Accel::automatic) return requested;
    if (const char* v = std::getenv("ACTIVATE_VM_ACCEL")) {
        if (std::string_view(v) == "kvm") return Accel::kvm;
        if (std::string_view(v) == "tcg") return Accel::tcg;
    }
    static std::once_flag once;
    static Accel resolved = Accel::tcg;
    std::call_once(once, [] { resolved = probe_kvm(); });
    return resolved;
}

bool SwtpmAvailable() {
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path ? path : "/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':'))
        if (!dir.empty() && ::access((fs::path(dir) / "swtpm").c_str(), X_OK) == 0) return true;
    return false;
}

Result<std::unique_ptr<Cable>> Cable::Create() {
    std::unique_ptr<Cable> c(new Cable);
    // SOCK_CLOEXEC: each guest gets only its own end (Process clears the flag for inherit_fds).
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->fds_) != 0)
        return errno_error(ErrorKind::internal, "socketpair");
    return c;
}

Cable::~Cable() {
    for (int fd : fds_)
        if (fd >= 0) ::close(fd);
}

Machine::~Machine() {
    if (process_) process_->kill();
    if (swtpm_) swtpm_->kill();
    if (!temp_dir_.empty()) {
        std::error_code ec;
        fs::remove_all(temp_dir_, ec);
    }
}

GuestExit Machine::guest_exit() const {
    auto lines = process_->lines();
    for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
        // kernel/reboot.c and kernel/panic.c print these at KERN_EMERG, so even "quiet" shows them.
        if (it->find("reboot: Power down") != std::string::npos) return GuestExit::power_off;
        if (it->find("reboot: Restarting system") != std::string::npos) return GuestExit::reboot;
        if (it->find("Kernel panic - not syncing") != std::string::npos) return GuestExit::panic;
    }
    return GuestExit::unknown;
}

Status Machine::wait_for_guest_exit(GuestExit expected, milliseconds timeout) {
    ACTIVATE_ASSIGN(ExitStatus st, wait_for_exit(timeout));
    GuestExit how = guest_exit();
    if (!st.clean() || how != expected)
        return Error(ErrorKind::internal, name() + ": expected a " + to_string(expected) +
                                              ", got QEMU " + st.describe() + " after guest " +
                                              to_string(how) + "\n" + tail());
    return {};
}

std::optional<uint16_t> Machine::host_port(uint16_t guest_port) const {
    for (auto [g, h] : forwards_)
        if (g == guest_port) return h;
    return std::nullopt;
}

Result<std::unique_ptr<Machine>> Machine::Start(std::unique_ptr<Machine> m, const MachineOptions& o,
                                                std::vector<std::string> argv, bool pci) {
    const int index = g_machine_counter++;
    const std::string name = o.name.empty() ? "vm" + std::to_string(index) : o.name;
    m->accel_ = ResolveAccel(o.accel);
    add(argv, {"-name", name, "-accel", to_string(m->accel_), "-m", std::to_string(o.memory_mib),
               "-smp", std::to_string(o.cpus), "-nodefaults", "-no-user-config", "-display", "none",
               "-serial", "stdio"});
    if (o.reboot_ends_run) add(argv, {"-no-reboot"});
    if (m->accel_ == Accel::kvm) add(argv, {"-cpu", "host"});

    const std::string blk = pci ? "virtio-blk-pci" : "virtio-blk-device";
    for (size_t i = 0; i < o.drives.size(); ++i) {
        const Drive& d = o.drives[i];
        std::string id = "drive" + std::to_string(i);
        std::string spec =
            "if=none,id=" + id + ",file=" + qemu_escape(d.path.string()) + ",format=" + d.format;
        if (d.snapshot) spec += ",snapshot=on";
        if (d.read_only) spec += ",readonly=on";
        add(argv, {"-drive", spec, "-device", blk + ",drive=" + id});
    }

    std::vector<int> inherit;
    const std::string nic_dev = pci ? "virtio-net-pci" : "virtio-net-device";
    for (size_t i = 0; i < o.nics.size(); ++i) {
        std::string id = "net" + std::to_string(i);
        std::string netdev, mac;
        if (const auto* u = std::get_if<UserNic>(&o.nics[i])) {
            netdev = "user,id=" + id + (u->restrict_outbound ? ",restrict=on" : "");
            for (const auto& f : u->host_forwards) {
                uint16_t hp = f.host_port;
                if (hp == 0) {
                    ACTIVATE_ASSIGN(hp, free_tcp_port());
                }
                m->forwards_.emplace_back(f.guest_port, hp);
                netdev += ",hostfwd=" + f.protocol + ":127.0.0.1:" + std::to_string(hp) +
                          "-:" + std::to_string(f.guest_port);
            }
            for (const auto& f : u->guest_forwards)
                netdev += ",guestfwd=tcp:" + f.guest_address + ":" + std::to_string(f.guest_port) +
                          "-" + qemu_escape(f.target);
            mac = u->mac;
        } else {
            const auto& c = std::get<CableNic>(o.nics[i]);
            netdev = "socket,id=" + id + ",fd=" + std::to_string(c.fd);
            inherit.push_back(c.fd);
            mac = c.mac;
        }
        if (mac.empty()) mac = default_mac(index, i);
        // romfile= keeps OVMF from loading iPXE for the NIC: no network boot attempts, faster.
        add(argv, {"-netdev", netdev, "-device",
                   nic_dev + ",netdev=" + id + ",mac=" + mac + (pci ? ",romfile=" : "")});
    }
    argv.insert(argv.end(), o.extra_args.begin(), o.extra_args.end());
    m->argv_ = argv;

    m->log_file_ = LogDir() / (name + ".log");
    std::error_code ec;
    fs::remove(m->log_file_, ec);
    SpawnOptions so;
    so.argv = std::move(argv);
    so.name = name;
    so.inherit_fds = std::move(inherit);
    so.timeout = o.timeout;
    so.on_line = o.on_line;
    so.log_file = m->log_file_;
    auto p = Process::Spawn(std::move(so));
    if (!p) return std::move(p).error().with_context("starting " + name);
    m->process_ = std::move(p).value();
    return m;
}

Result<std::unique_ptr<Machine>> Launch(const LaunchOptions& o) {
    if (o.ovmf_vars.empty())
        return Error(ErrorKind::usage,
                     "LaunchOptions::ovmf_vars is required (see CopyOvmfVarsTemplate)");
    for (const auto& f : {o.ovmf_code, o.ovmf_vars})
        if (!fs::exists(f)) return Error(ErrorKind::usage, "no such firmware file: " + f.string());
    std::unique_ptr<Machine> m(new Machine);
    std::vector<std::string> argv = {
        kQemu,
        "-M",
        std::string("q35,smm=") + (o.smm ? "on" : "off"),
        "-drive",
        "if=pflash,format=raw,unit=0,readonly=on,file=" + qemu_escape(o.ovmf_code.string()),
        "-drive",
        "if=pflash,format=raw,unit=1,file=" + qemu_escape(o.ovmf_vars.string())};
    if (o.tpm) {
        if (!SwtpmAvailable())
            return Error(ErrorKind::usage,
                         "LaunchOptions::tpm needs swtpm (apt-get install swtpm)");
        char templ[] = "/tmp/activate-vm.XXXXXX";
        if (!::mkdtemp(templ)) return errno_error(ErrorKind::internal, "mkdtemp");
        m->temp_dir_ = templ;
        fs::path state = o.tpm_state_dir.empty() ? m->temp_dir_ / "tpm" : o.tpm_state_dir;
        fs::path sock = m->temp_dir_ / "swtpm.sock";
        ACTIVATE_ASSIGN(m->swtpm_, start_swtpm(state, sock, o.timeout + seconds(10)));
        add(argv, {"-chardev", "socket,id=chrtpm,path=" + qemu_escape(sock.string()), "-tpmdev",
                   "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-tis,tpmdev=tpm0"});
    }
    return Machine::Start(std::move(m), o, std::move(argv), true);
}

Result<std::unique_ptr<Machine>> MicroVM(const MicroVMOptions& o) {
    if (!fs::exists(o.kernel))
        return Error(ErrorKind::usage, "no such kernel: " + o.kernel.string());
    if (!o.initrd.empty() && !fs::exists(o.initrd))
        return Error(ErrorKind::usage, "no such initrd: " + o.initrd.string());
    std::unique_ptr<Machine> m(new Machine);
    std::vector<std::string> argv = {kQemu,     "-M",     o.machine, "-kernel", o.kernel.string(),
                                     "-append", o.cmdline};
    if (!o.initrd.empty()) add(argv, {"-initrd", o.initrd.string()});
    const bool pci = o.machine.rfind("microvm", 0) != 0;
    return Machine::Start(std::move(m), o, std::move(argv), pci);
}

}  // namespace activate::vm
