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

#include "cli_fixture.hpp"
#include "seccomp_filter.hpp"

namespace activate::uki {
namespace {

using namespace testing;

using Outcome = CliOutcome;

class SysrootConfinement : public CliMachine {
  protected:
    // Slot B's own UKI, as the EFI policy boots it.
    SysrootConfinement() { uki_cmdline_ = "root=PARTLABEL=METROPOLIS-SYSTEM-B ro"; }

    void SetUp() override {
        CliMachine::SetUp();
        if (HasFatalFailure()) return;
        Outcome created = create_bundle(work() / "b.zip", "1.0");
        ASSERT_EQ(created.code, 0) << created.err;
    }

    // Where an absolute host path lies inside the sysroot.
    fs::path inside(const fs::path& host) const { return root() / host.relative_path(); }

    Outcome update(const std::string& bundle, std::optional<long> denied_syscall = {}) {
        return run_activate(shipped_policy("efi", root()) + " --bundle " + bundle, denied_syscall);
    }

    TempDir host_;
};

// SR/esp -> <a host directory>: the install may only ever write <SR>/<that directory>.
TEST_F(SysrootConfinement, EspLinkedToAHostDirectoryGetsNothing) {
    fs::remove(root() / "esp");
    fs::create_directory_symlink(host_.path(), root() / "esp");
    fs::copy_file(work() / "b.zip", root() / "b.zip");

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
    const fs::path host_bundle = work() / "b.zip";
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

    fs::copy_file(work() / "b.zip", root() / "b.zip");
    Outcome r = update("/b.zip", SYS_sync);
    EXPECT_FALSE(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGSYS)
        << "activate called sync(2) under --sysroot";
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(read_file(root() / "run/activate/reboot"), "reboot\n");
}

}  // namespace
}  // namespace activate::uki
