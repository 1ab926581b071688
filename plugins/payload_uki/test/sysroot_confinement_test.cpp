// `--sysroot` confines a whole update: the real `activate` binary, the shipped
// config/update-efi.yaml and the uki and efi plugins on a sysroot whose paths are symlinks to
// host paths. Nothing outside the sysroot is written or read (symlinks resolve inside it, as
// after chroot), and the firmware reboot makes no machine-wide sync(2).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <cstdlib>
#include <optional>

#include "seccomp_filter.hpp"
#include "test_support.hpp"

namespace activate::payload_uki {
namespace {

using namespace testing;

struct Outcome {
    int status = -1;  // as waitpid() reports it
    int code = -1;    // the exit code, -1 if it did not exit
    std::string err;
};

class SysrootConfinement : public ::testing::Test {
  protected:
    void SetUp() override {
        fs::create_directories(root() / "proc");
        fs::create_directories(root() / "esp");
        fs::create_directories(root() / "sys/firmware/efi/efivars");
        fs::create_directories(root() / "etc/activate/keys");
        write_file(root() / "proc/cmdline", "root=PARTLABEL=METROPOLIS-SYSTEM-A ro\n");
        ASSERT_TRUE(make_slot_disk(root() / "disk.img"));
        // Slot B's own UKI, as the EFI policy boots it.
        ASSERT_TRUE(make_uki(work_.path() / "kernel_efi.efi",
                             {{".cmdline", "root=PARTLABEL=METROPOLIS-SYSTEM-B ro"},
                              {".linux", random_bytes(50000, 61)},
                              {".initrd", random_bytes(7000, 62)}}));
        write_file(work_.path() / "verity_rootfs.img", random_bytes(1 << 20, 63));
        ASSERT_EQ(activate("bundle keygen -o " + quote((work_.path() / "release").string())).code,
                  0);
        fs::copy_file(work_.path() / "release.pub", root() / "etc/activate/keys/release.pub");
        Outcome created =
            activate("bundle create --key " + quote((work_.path() / "release.secret").string()) +
                     " --compatible metropolis-x86_64 --version 1.0 -o " +
                     quote((work_.path() / "b.zip").string()) + " " +
                     quote((work_.path() / "verity_rootfs.img").string()) + " " +
                     quote((work_.path() / "kernel_efi.efi").string()));
        ASSERT_EQ(created.code, 0) << created.err;
    }

    fs::path root() const { return root_.path(); }
    // Where an absolute host path lies inside the sysroot.
    fs::path inside(const fs::path& host) const { return root() / host.relative_path(); }

    // Runs `activate <args>` through /bin/sh; when `denied_syscall` is set, under a seccomp
    // filter that kills the process the moment it makes that system call.
    Outcome activate(const std::string& args, std::optional<long> denied_syscall = {}) {
        const std::string cmd = std::string(ACTIVATE_BINARY) + " " + args + " >/dev/null 2>" +
                                quote((io_.path() / "err").string());
        Outcome r;
        if (denied_syscall)
            r.status = test::wait_status_with_syscall_denied(
                *denied_syscall, SECCOMP_RET_KILL_PROCESS, [&] {
                    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
                    return 127;
                });
        else
            r.status = std::system(cmd.c_str());
        r.code = WIFEXITED(r.status) ? WEXITSTATUS(r.status) : -1;
        r.err = read_file(io_.path() / "err");
        return r;
    }

    Outcome update(const std::string& bundle, std::optional<long> denied_syscall = {}) {
        return activate("--policy " SOURCE_DIR "/config/update-efi.yaml --plugin-dir " PLUGIN_DIR
                        " --sysroot " +
                            quote(root().string()) + " --set payload.settings.disk=/disk.img" +
                            " --bundle " + bundle,
                        denied_syscall);
    }

    TempDir root_, work_, io_, host_;
};

// SR/esp -> <a host directory>: the install may only ever write <SR>/<that directory>.
TEST_F(SysrootConfinement, EspLinkedToAHostDirectoryGetsNothing) {
    fs::remove(root() / "esp");
    fs::create_directory_symlink(host_.path(), root() / "esp");
    fs::copy_file(work_.path() / "b.zip", root() / "b.zip");

    // Not inside the sysroot: the ESP is missing there, and the update says so.
    Outcome refused = update("/b.zip");
    EXPECT_EQ(refused.code, 6) << refused.err;
    EXPECT_NE(refused.err.find("the ESP mount point /esp is not a directory"), std::string::npos)
        << refused.err;
    EXPECT_TRUE(fs::is_empty(host_.path()));

    // Inside the sysroot: that is where the UKI and the version record go.
    fs::create_directories(inside(host_.path()));
    Outcome r = update("/b.zip");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(fs::is_empty(host_.path()));
    EXPECT_TRUE(fs::exists(inside(host_.path()) / "EFI/metropolis/boot-b.efi"));
    EXPECT_TRUE(fs::exists(inside(host_.path()) / "EFI/activate/versions.json"));
    EXPECT_EQ(read_file(root() / "run/activate/reboot"), "reboot\n");
}

// SR/link.zip -> <a host file>: the bundle is looked for inside the sysroot, never on the host.
TEST_F(SysrootConfinement, BundleLinkedToAHostFileIsNotRead) {
    const fs::path host_bundle = work_.path() / "b.zip";
    fs::create_symlink(host_bundle, root() / "link.zip");
    fs::create_symlink("/etc/passwd", root() / "passwd.zip");
    for (const char* link : {"/link.zip", "/passwd.zip"}) {
        Outcome r = update(link);
        EXPECT_EQ(r.code, 6) << link << ": " << r.err;
        EXPECT_NE(
            r.err.find("opening " + (root() / (link + 1)).string() + ": No such file or directory"),
            std::string::npos)
            << r.err;
    }
    EXPECT_TRUE(fs::is_empty(root() / "sys/firmware/efi/efivars"));
    EXPECT_FALSE(fs::exists(root() / "esp/EFI"));

    // The same link finds the bundle once it is at that path inside the sysroot.
    fs::create_directories(inside(host_bundle).parent_path());
    fs::copy_file(host_bundle, inside(host_bundle));
    Outcome r = update("/link.zip");
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(fs::exists(root() / "esp/EFI/metropolis/boot-b.efi"));
}

// The firmware reboot flushes file systems with sync(2) on the live system only. Under a
// sysroot, a seccomp filter kills activate at its first sync(2): it must get to the recorded
// reboot alive.
TEST_F(SysrootConfinement, FirmwareRebootMakesNoSync) {
    // The filter works: a process that makes the denied call dies of SIGSYS (a harmless call
    // stands in for sync(2) here).
    const int control = test::wait_status_with_syscall_denied(
        SYS_getppid, SECCOMP_RET_KILL_PROCESS, [] { return ::syscall(SYS_getppid) > 0 ? 0 : 1; });
    ASSERT_TRUE(WIFSIGNALED(control) && WTERMSIG(control) == SIGSYS) << control;

    fs::copy_file(work_.path() / "b.zip", root() / "b.zip");
    Outcome r = update("/b.zip", SYS_sync);
    EXPECT_FALSE(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGSYS)
        << "activate called sync(2) under --sysroot";
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(read_file(root() / "run/activate/reboot"), "reboot\n");
}

}  // namespace
}  // namespace activate::payload_uki
