// The reference agent: /init of the agent initramfs. It proves a takeover end to end: it reads
// the /init.pb the takeover appended, prints one line describing it on the console and powers
// the machine off. A real agent would configure the network and talk to the BMaaS endpoint.
//
// Three modes, chosen by the process ids and the arguments:
//  - PID 1 (the kernel started us as init): mount /proc, /sys, /dev, read /init.pb, print, then
//    sync and reboot(LINUX_REBOOT_CMD_POWER_OFF). Run as PID 1 in a new PID namespace
//    (unshare --pid --fork), reboot() only ends that namespace (reboot(2), "PID namespaces").
//  - the core of an init (parent PID 1, no arguments; the reference initramfs has minit as /init
//    and the agent as its core): mount what is not mounted yet, read /init.pb, print on the
//    console and exit 0 (started) or 1; minit then powers off, or restarts after its delay.
//  - any other case (tests on a development machine): `agent --init-pb FILE [--cmdline-file FILE]`
//    prints the same line to stdout and exits.
// reboot() is only called from run_as_init(), which main() enters only when getpid() == 1.
#include <fcntl.h>
#include <linux/reboot.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

#include "report.hpp"

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

std::string describe(const char* init_pb_path, const char* cmdline_path, bool* started) {
    std::string init_pb, cmdline, reason;
    *started = false;
    if (!read_file(init_pb_path, &init_pb, &reason)) return error_line(reason);
    if (!read_file(cmdline_path, &cmdline, &reason)) return error_line(reason);
    return report_line(init_pb, cmdline, started);
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

// Mounts what is needed, reads /init.pb and prints the one line on the console (its fd is
// returned in `out`); true when it reported STARTED.
bool report_on_console(bool only_missing_mounts, int* out) {
    mount_kernel_filesystems(only_missing_mounts);
    *out = console();
    bool started = false;
    write_line(*out, describe("/init.pb", "/proc/cmdline", &started));
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
    bool usage = false;
    for (int i = 1; i < argc && !usage; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--init-pb" && i + 1 < argc)
            init_pb = argv[++i];
        else if (arg == "--cmdline-file" && i + 1 < argc)
            cmdline = argv[++i];
        else
            usage = true;
    }
    if (usage || init_pb == nullptr) {
        write_line(2,
                   "usage: agent --init-pb FILE [--cmdline-file FILE]\n"
                   "(as PID 1 it reads /init.pb, prints one line and powers off)");
        return 2;
    }
    bool started = false;
    write_line(1, describe(init_pb, cmdline, &started));
    return started ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (::getpid() == 1) run_as_init();
    if (::getppid() == 1 && argc == 1) return run_as_core();
    return run_as_test(argc, argv);
}
