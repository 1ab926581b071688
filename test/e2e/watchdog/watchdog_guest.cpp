// Runs inside the e2e guest only: the project's watchdog code on the guest's real /dev/watchdog,
// and a kexec the way the update pipeline makes one (hang-protection command line, watchdog armed
// right before the jump). It refuses to run unless the kernel command line carries
// activate_e2e_guest=1, so that it can never kexec or arm the machine it was built on.
#include <fcntl.h>

#include <activate/kernel_cmdline.hpp>
#include <activate/log.hpp>
#include <activate/machine.hpp>
#include <activate/sysroot.hpp>
#include <activate/watchdog.hpp>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

namespace activate {
namespace {

int fail(const std::string& message) {
    std::fprintf(stderr, "watchdog_guest: %s\n", message.c_str());
    return 1;
}

bool in_e2e_guest(const Sysroot& root) {
    Result<std::string> cmdline = root.read_file("/proc/cmdline", 4096);
    if (!cmdline.ok()) return false;
    for (const std::string& v : values_of(parse_kernel_cmdline(*cmdline), "activate_e2e_guest"))
        if (v == "1") return true;
    return false;
}

int run(int argc, char** argv) {
    const Sysroot root("/");
    if (!in_e2e_guest(root))
        return fail("not an e2e guest (no activate_e2e_guest=1 on /proc/cmdline)");
    const std::string command = argc > 1 ? argv[1] : "";
    Logger logger(LogLevel::info);
    Log log(&logger, "watchdog");
    // The guest's own root "/": the live machine.
    const std::unique_ptr<Machine> machine = machine_for(root);

    if (command == "arm" && argc == 4) {
        Result<WatchdogArming> armed =
            machine->arm_watchdog(argv[2], std::chrono::seconds(std::atoi(argv[3])));
        if (!armed.ok()) return fail(armed.error().message());
        std::printf("WATCHDOG-GUEST armed %s for %lld s held_elsewhere=%d\n", argv[2],
                    static_cast<long long>(armed->timeout.count()), armed->held_elsewhere);
        return 0;
    }
    if (command == "release" && argc == 3) {
        Result<WatchdogRelease> released = machine->release_watchdog(argv[2]);
        if (!released.ok()) return fail(released.error().message());
        std::printf("WATCHDOG-GUEST released %s: %s\n", argv[2], to_string(*released));
        return 0;
    }
    // jump DEVICE TIMEOUT PANIC KERNEL INITRAMFS CMDLINE: what run_update() does for a kexec.
    if (command == "jump" && argc == 8) {
        WatchdogSettings settings{argv[2], std::chrono::seconds(std::atoi(argv[3])),
                                  std::chrono::seconds(std::atoi(argv[4]))};
        Result<std::string> cmdline = cmdline_with_hang_protection(argv[7], settings);
        if (!cmdline.ok()) return fail(cmdline.error().message());
        Result<UniqueFd> kernel = root.open(argv[5], O_RDONLY);
        Result<UniqueFd> initramfs = root.open(argv[6], O_RDONLY);
        if (!kernel.ok()) return fail(kernel.error().message());
        if (!initramfs.ok()) return fail(initramfs.error().message());
        if (int err = machine->kexec_file_load(kernel->get(), initramfs->get(), *cmdline, 0))
            return fail(errno_error(ErrorKind::activation, "kexec_file_load", err).message());
        std::printf("WATCHDOG-GUEST staged with cmdline: %s\n", cmdline->c_str());
        Status armed = arm_watchdog_before_jump(*machine, settings, Handover::staged_kernel, log);
        if (!armed.ok()) return fail(armed.error().message());
        std::printf("WATCHDOG-GUEST armed, jumping\n");
        std::fflush(stdout);
        Status jumped = machine->jump(JumpAction::kexec);
        return fail(jumped.ok() ? "the jump returned" : jumped.error().message());
    }
    return fail(
        "usage: watchdog_guest arm DEVICE SECONDS | release DEVICE | "
        "jump DEVICE TIMEOUT PANIC KERNEL INITRAMFS CMDLINE");
}

}  // namespace
}  // namespace activate

int main(int argc, char** argv) { return activate::run(argc, argv); }
