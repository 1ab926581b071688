// The CLI tests' machine (cli_fixture.hpp).
#include "cli_fixture.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "seccomp_filter.hpp"

namespace activate::uki::testing {

CliOutcome run_shell(const std::string& command, std::optional<long> denied_syscall) {
    TempDir io;
    const std::string cmd = command + " >" +
                            quote((io.path() / "out").string()) + " 2>" +
                            quote((io.path() / "err").string());
    CliOutcome r;
    if (denied_syscall)
        r.status =
            test::wait_status_with_syscall_denied(*denied_syscall, SECCOMP_RET_KILL_PROCESS, [&] {
                ::execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
                return 127;
            });
    else
        r.status = std::system(cmd.c_str());
    r.code = WIFEXITED(r.status) ? WEXITSTATUS(r.status) : -1;
    r.out = read_file(io.path() / "out");
    r.err = read_file(io.path() / "err");
    return r;
}

CliOutcome run_activate(const std::string& args, std::optional<long> denied_syscall) {
    return run_shell(std::string(ACTIVATE_BINARY) + " " + args, denied_syscall);
}

std::string shipped_policy(const std::string& which, const fs::path& root) {
    return "--policy " SOURCE_DIR "/config/update-" + which +
           ".yaml --plugin-dir " PLUGIN_DIR " --sysroot " + quote(root.string()) +
           " --set payload.settings.disk=/disk.img";
}

void CliMachine::SetUp() {
    fs::create_directories(root() / "proc");
    fs::create_directories(root() / "esp");
    fs::create_directories(root() / "sys/firmware/efi/efivars");
    fs::create_directories(root() / "etc/activate/keys");
    write_file(root() / "proc/cmdline", "root=PARTLABEL=METROPOLIS-SYSTEM-A ro\n");
    ASSERT_TRUE(make_slot_disk(root() / "disk.img"));
    ASSERT_TRUE(make_uki(work() / "kernel_efi.efi", {{".cmdline", uki_cmdline_},
                                                     {".linux", random_bytes(50000, 61)},
                                                     {".initrd", random_bytes(7000, 62)}}));
    write_file(work() / "verity_rootfs.img", random_bytes(image_size_, 63));
    CliOutcome key = run_activate("bundle keygen -o " + quote((work() / "release").string()));
    ASSERT_EQ(key.code, 0) << key.err;
    fs::copy_file(work() / "release.pub", root() / "etc/activate/keys/release.pub");
}

CliOutcome CliMachine::create_bundle(const fs::path& out, const std::string& version,
                                     const std::string& compatible) const {
    return run_activate("bundle create --key " + quote((work() / "release.secret").string()) +
                        " --compatible " + compatible + " --version " + version + " -o " +
                        quote(out.string()) + " " + quote((work() / "kernel_efi.efi").string()) +
                        " " + quote((work() / "verity_rootfs.img").string()));
}

}  // namespace activate::uki::testing
