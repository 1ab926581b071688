// The reference agent: the core of the agent initramfs. It proves a takeover end to end: it
// loads the modules the initramfs carries, reads the /init.pb the takeover appended, applies its
// network, prints one line describing both on the console, announces itself to the BMaaS endpoint
// and then answers on a TCP port with its identity (README.md, "The reference agent").
//
// Three modes, chosen by the process ids and the arguments:
//  - PID 1 (the kernel started us as init): mount /proc, /sys, /dev, do the above; when it
//    could not announce itself, sync and reboot(LINUX_REBOOT_CMD_POWER_OFF). Run as PID 1 in a new
//    PID namespace (unshare --pid --fork), reboot() only ends that namespace (reboot(2), "PID
//    namespaces").
//  - the core of an init (parent PID 1, no arguments; the reference initramfs has minit as /init
//    and the agent as its core): mount what is not mounted yet, read /init.pb, print on the
//    console, announce and serve; when it could not announce itself exit 0 (started) or 1; minit
//    then powers off, or restarts after its delay.
//  - any other case (tests on a development machine): `agent --init-pb FILE ...` (usage below)
//    prints the same line to stdout, applies and announces only when asked to.
// reboot() is only called from run_as_init(), which main() enters only when getpid() == 1.
#include <fcntl.h>
#include <linux/reboot.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "announce.hpp"
#include "kernel_modules.hpp"
#include "network_apply.hpp"
#include "report.hpp"
#include "takeover.pb.h"

namespace {

using activate::agent::error_line;
using activate::agent::report_line;

// Reads a whole file; on failure returns false with a reason.
bool read_file(const char* path, std::string* content, std::string* reason) {
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *reason = std::string("cannot read ") + path + ": " + std::strerror(errno);
        return false;
    }
    content->clear();
    char buf[65536];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            *reason = std::string("cannot read ") + path + ": " + std::strerror(errno);
            ::close(fd);
            return false;
        }
        if (n == 0) break;
        content->append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return true;
}

void write_line(int fd, std::string line) {
    line += '\n';
    std::string_view rest = line;
    while (!rest.empty()) {
        const ssize_t n = ::write(fd, rest.data(), rest.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        rest.remove_prefix(static_cast<size_t>(n));
    }
}

// What to do beyond reporting the AgentInit.
struct AgentRun {
    bool apply = false;
    activate::agent::NetworkApplyOptions network;
    const char* module_list = nullptr;
    bool announce = false;
    uint16_t port = 22;
    activate::agent::AnnounceTiming timing;
};

// The AgentInit read by describe(), for announce_and_serve().
struct Described {
    std::string init_pb;
    activate::wire::AgentInit init;
};

std::string describe(const char* init_pb_path, const char* cmdline_path, const AgentRun& run,
                     Described* described, bool* started) {
    std::string cmdline, reason;
    *started = false;
    activate::agent::AppliedNetwork applied;
    if (!read_file(init_pb_path, &described->init_pb, &reason)) return error_line(reason);
    if (!read_file(cmdline_path, &cmdline, &reason)) return error_line(reason);
    const std::string& init_pb = described->init_pb;
    const bool decoded =
        described->init.ParseFromArray(init_pb.data(), static_cast<int>(init_pb.size()));
    // Nothing is loaded or applied for a message that does not decode; report_line() says why.
    if (!run.apply || !decoded) return report_line(init_pb, cmdline, started);
    if (run.module_list)
        applied.not_applied = activate::agent::load_kernel_modules(run.module_list);
    for (std::string& s :
         activate::agent::apply_network(described->init.network_config(), run.network))
        applied.not_applied.push_back(std::move(s));
    activate::agent::RtnlSocket rtnl;
    if (std::string e = rtnl.links(&applied.links); !e.empty())
        applied.not_applied.push_back("listing the links afterwards: " + e);
    if (std::string e = rtnl.addresses(&applied.addresses); !e.empty())
        applied.not_applied.push_back("listing the addresses afterwards: " + e);
    return report_line(init_pb, cmdline, started, &applied);
}

// Listens, announces and serves (never returns) once announced; returns when the endpoint
// cannot be used or did not accept the announcement, after saying so on `out`.
void announce_and_serve(int out, const AgentRun& run, const Described& described) {
    namespace agent = activate::agent;
    const std::string& endpoint_text = described.init.takeover_init().bmaas_endpoint();
    agent::AnnounceEndpoint endpoint;
    std::string reason;
    if (!agent::parse_announce_endpoint(endpoint_text, &endpoint, &reason)) {
        write_line(out, "AGENT-NOT-ANNOUNCED " + reason);
        return;
    }
    agent::AgentIdentity identity;
    identity.machine_id = described.init.takeover_init().machine_id();
    identity.public_key_hex = agent::agent_public_key_hex(described.init_pb, &reason);
    if (identity.public_key_hex.empty()) {
        write_line(out, "AGENT-NOT-ANNOUNCED " + reason);
        return;
    }
    // Listen first: the endpoint may connect back as soon as it hears of us.
    const int listener = agent::listen_for_operators(run.port, &identity.port, &reason);
    if (listener < 0) {
        write_line(out, "AGENT-NOT-ANNOUNCED cannot listen: " + reason);
        return;
    }
    write_line(out, "AGENT-LISTENING " + std::to_string(identity.port));
    if (!agent::announce(endpoint, identity, run.timing, &reason)) {
        write_line(out, "AGENT-NOT-ANNOUNCED " + endpoint_text + ": " + reason);
        ::close(listener);
        return;
    }
    write_line(out, "AGENT-ANNOUNCED " + endpoint_text);
    agent::serve_identity(listener, identity);
}

// `activate.agent_port=N` on the kernel command line, else 22.
uint16_t port_from_cmdline() {
    std::string cmdline, reason;
    if (!read_file("/proc/cmdline", &cmdline, &reason)) return 22;
    const std::string key = "activate.agent_port=";
    size_t at = cmdline.find(key);
    if (at == std::string::npos || (at > 0 && cmdline[at - 1] != ' ')) return 22;
    const long port = std::strtol(cmdline.c_str() + at + key.size(), nullptr, 10);
    return port > 0 && port < 65536 ? static_cast<uint16_t>(port) : 22;
}

// ----- PID 1 -----

// `only_missing`: skip a file system whose marker path exists (a core never mounts over what
// its init or the host already has).
void mount_kernel_filesystems(bool only_missing) {
    struct Mount {
        const char* source;
        const char* target;
        const char* type;
        const char* marker;
    };
    for (const Mount& m : {Mount{"proc", "/proc", "proc", "/proc/self"},
                           Mount{"sysfs", "/sys", "sysfs", "/sys/kernel"},
                           Mount{"devtmpfs", "/dev", "devtmpfs", "/dev/null"}}) {
        if (only_missing && ::access(m.marker, F_OK) == 0) continue;
        ::mkdir(m.target, 0755);
        // EBUSY: already mounted (e.g. by unshare --mount-proc); the file system is there.
        if (::mount(m.source, m.target, m.type, MS_NOSUID | MS_NOEXEC, nullptr) != 0 &&
            errno != EBUSY) {
            write_line(2, std::string("agent: mounting ") + m.target + ": " + std::strerror(errno));
        }
    }
}

// The kernel hands init /dev/console as fds 0-2 when the initramfs has the node; otherwise
// devtmpfs has it by now.
int console() {
    if (::fcntl(1, F_GETFD) >= 0) return 1;
    const int fd = ::open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
    return fd >= 0 ? fd : 1;
}

// Mounts what is needed, loads the modules, reads /init.pb, applies its network and prints the
// one line on the console (its fd is returned in `out`), then announces itself and serves when
// it can (never returning); true when it reported STARTED.
bool report_on_console(bool only_missing_mounts, int* out) {
    mount_kernel_filesystems(only_missing_mounts);
    *out = console();
    AgentRun run;
    run.apply = true;
    run.module_list = "/lib/modules/agent-modules";
    // Drivers probe as their module loads, but give a slow device a moment to show up.
    run.network.device_wait_ms = 3000;
    run.announce = true;
    run.port = port_from_cmdline();
    Described described;
    bool started = false;
    write_line(*out, describe("/init.pb", "/proc/cmdline", run, &described, &started));
    if (started && run.announce) announce_and_serve(*out, run, described);
    return started;
}

[[noreturn]] void run_as_init() {
    int out = -1;
    report_on_console(false, &out);
    ::sync();
    ::reboot(LINUX_REBOOT_CMD_POWER_OFF);
    // init must never exit (the kernel panics); say why and wait.
    write_line(out, error_line(std::string("power off failed: ") + std::strerror(errno)));
    for (;;) ::pause();
}

// ----- the core of an init (minit): report and exit, the init powers off -----

int run_as_core() {
    int out = -1;
    return report_on_console(true, &out) ? 0 : 1;
}

// ----- anything else: the test mode -----

int run_as_test(int argc, char** argv) {
    const char* init_pb = nullptr;
    const char* cmdline = "/proc/cmdline";
    AgentRun run;
    bool usage = false;
    auto number = [&](const char* text, long max, long* out) {
        char* end = nullptr;
        *out = std::strtol(text, &end, 10);
        if (*end != '\0' || *out < 0 || *out > max) usage = true;
    };
    for (int i = 1; i < argc && !usage; ++i) {
        const std::string_view arg = argv[i];
        long n = 0;
        if (arg == "--init-pb" && i + 1 < argc) {
            init_pb = argv[++i];
        } else if (arg == "--cmdline-file" && i + 1 < argc) {
            cmdline = argv[++i];
        } else if (arg == "--apply") {
            run.apply = true;
        } else if (arg == "--resolv-conf" && i + 1 < argc) {
            run.network.resolv_conf = argv[++i];
        } else if (arg == "--announce") {
            run.announce = true;
        } else if (arg == "--port" && i + 1 < argc) {
            number(argv[++i], 65535, &n);
            run.port = static_cast<uint16_t>(n);
        } else if (arg == "--announce-attempts" && i + 1 < argc) {
            number(argv[++i], 100, &n);
            run.timing.attempts = static_cast<int>(n);
            run.timing.first_backoff_ms = 200;
        } else {
            usage = true;
        }
    }
    if (usage || init_pb == nullptr) {
        write_line(2,
                   "usage: agent --init-pb FILE [--cmdline-file FILE] [--apply [--resolv-conf "
                   "FILE]]\n             [--announce [--port N] [--announce-attempts N]]\n"
                   "(as PID 1 or minit's core it reads /init.pb, applies its network, reports, "
                   "announces and serves)");
        return 2;
    }
    bool started = false;
    Described described;
    write_line(1, describe(init_pb, cmdline, run, &described, &started));
    if (started && run.announce) {
        announce_and_serve(1, run, described);
        return 3;  // not announced (the line above says why)
    }
    return started ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (::getpid() == 1) run_as_init();
    if (::getppid() == 1 && argc == 1) return run_as_core();
    return run_as_test(argc, argv);
}
