#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/kexec.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <activate/machine.hpp>
#include <activate/sysroot.hpp>

#include "seccomp_filter.hpp"
#include "test_support.hpp"

namespace activate {
namespace {

using test::memfd_with;

TEST(Sysroot, MapsSystemPathsUnderTheRoot) {
    test::TempDir dir;
    Sysroot root(dir.path());
    EXPECT_FALSE(root.is_live());
    EXPECT_EQ(root.path("/proc/cmdline"), dir.path() / "proc/cmdline");
    EXPECT_TRUE(Sysroot("/").is_live());
    EXPECT_EQ(Sysroot("/").path("/proc/cmdline"), "/proc/cmdline");
}

TEST(Sysroot, PathsThatWouldLeaveTheRootAreRefused) {
    test::TempDir outer;
    std::filesystem::create_directories(outer / "root");
    test::write_file(outer / "secret", "outside");
    Sysroot root(outer / "root");
    const std::filesystem::path r = root.root();
    // Normalised lexically, and never outside the root.
    EXPECT_EQ(root.path("/run//activate/./x/../lock"), r / "run/activate/lock");
    EXPECT_EQ(root.path("/../secret"), r / "secret");
    EXPECT_EQ(root.path("/a/../../secret"), r / "secret");
    EXPECT_EQ(Sysroot("/").path("/proc/../etc/./hostname"), "/etc/hostname");

    ASSERT_TRUE(root.resolve("/a/b/../c").ok());
    EXPECT_EQ(*root.resolve("/a/b/../c"), r / "a/c");
    for (const char* escaping : {"/../secret", "/a/../../secret", "/..", "../secret"}) {
        Result<std::filesystem::path> p = root.resolve(escaping);
        ASSERT_FALSE(p.ok()) << escaping;
        EXPECT_EQ(p.error().message(), "path " + std::string(escaping) + " leaves the sysroot " +
                                           r.string() + " (a \"..\" goes above \"/\")");
    }
    // Every accessor refuses: nothing outside is read, written or created.
    Result<std::string> read = root.read_file("/../secret");
    ASSERT_FALSE(read.ok());
    EXPECT_NE(read.error().message().find("leaves the sysroot"), std::string::npos);
    EXPECT_FALSE(root.write_file_atomic("/../secret", "overwritten").ok());
    EXPECT_EQ(test::read_file(outer / "secret"), "outside");
    EXPECT_FALSE(root.make_dirs("/../made").ok());
    EXPECT_FALSE(std::filesystem::exists(outer / "made"));
    EXPECT_FALSE(root.lock("/../lock").ok());
    EXPECT_FALSE(std::filesystem::exists(outer / "lock"));
    EXPECT_FALSE(root.read_link("/../secret").ok());
}

// A sysroot whose paths are symlinks out of it: SR/esp -> <a host directory>, as an attacker or
// a careless image would lay it out. An absolute link means the same path inside the sysroot,
// as after chroot(SR).
class SysrootSymlinks : public ::testing::Test {
  protected:
    void SetUp() override {
        std::filesystem::create_directory_symlink(outside_.path(), root_ / "esp");
        std::filesystem::create_directory_symlink(outside_.path(), root_ / "run");
    }
    // Where the link's target lies inside the sysroot.
    std::filesystem::path inside(const std::string& rel = "") const {
        return root_.path() / outside_.path().relative_path() / rel;
    }
    bool outside_is_empty() const { return std::filesystem::is_empty(outside_.path()); }

    test::TempDir root_, outside_;
    Sysroot sysroot_{root_.path()};
    RecordingMachine machine_{sysroot_};
};

TEST_F(SysrootSymlinks, WritesThroughALinkOutOfTheRootAreRefusedWhenItsTargetIsMissingInside) {
    // <root>/<outside> does not exist: each write fails instead of following the link out.
    EXPECT_FALSE(sysroot_.make_dirs("/esp/EFI/metropolis").ok());
    EXPECT_FALSE(sysroot_.write_file_atomic("/esp/versions.json", "{}").ok());
    EXPECT_FALSE(sysroot_.open("/esp/boot-b.efi", O_WRONLY | O_CREAT, 0644).ok());
    EXPECT_FALSE(sysroot_.lock("/run/activate/lock").ok());
    EXPECT_FALSE(machine_.jump(JumpAction::reboot).ok());
    UniqueFd kernel = memfd_with("KERNEL");
    EXPECT_NE(machine_.kexec_file_load(kernel.get(), -1, "x", KEXEC_FILE_NO_INITRAMFS), 0);
    EXPECT_TRUE(outside_is_empty());
}

TEST_F(SysrootSymlinks, WritesThroughALinkOutOfTheRootLandInsideIt) {
    std::filesystem::create_directories(inside());
    ASSERT_TRUE(sysroot_.make_dirs("/esp/EFI/metropolis").ok());
    ASSERT_TRUE(sysroot_.write_file_atomic("/esp/versions.json", "{}").ok());
    auto fd = sysroot_.open("/esp/EFI/metropolis/.boot-b.efi.tmp", O_WRONLY | O_CREAT, 0644);
    ASSERT_TRUE(fd.ok()) << fd.error().message();
    fd = UniqueFd();
    ASSERT_TRUE(
        sysroot_.rename("/esp/EFI/metropolis/.boot-b.efi.tmp", "/esp/EFI/metropolis/boot-b.efi")
            .ok());
    auto listed = sysroot_.list_directory("/esp/EFI/metropolis");
    ASSERT_TRUE(listed.ok()) << listed.error().message();
    EXPECT_EQ(*listed, std::vector<std::string>{"boot-b.efi"});
    auto st = sysroot_.stat("/esp/EFI/metropolis/boot-b.efi");
    ASSERT_TRUE(st.ok() && *st);
    EXPECT_TRUE(S_ISREG((*st)->st_mode));
    EXPECT_TRUE(sysroot_.statfs("/esp").ok());
    ASSERT_TRUE(sysroot_.lock("/run/activate/lock").ok());
    ASSERT_TRUE(machine_.jump(JumpAction::reboot).ok());
    UniqueFd kernel = memfd_with("KERNEL");
    ASSERT_EQ(machine_.kexec_file_load(kernel.get(), -1, "x", KEXEC_FILE_NO_INITRAMFS), 0);
    EXPECT_TRUE(*machine_.kexec_loaded());

    EXPECT_TRUE(outside_is_empty());
    EXPECT_EQ(test::read_file(inside("versions.json")), "{}");
    EXPECT_TRUE(std::filesystem::exists(inside("EFI/metropolis/boot-b.efi")));
    EXPECT_EQ(test::read_file(inside("activate/reboot")), "reboot\n");
    EXPECT_EQ(test::read_file(inside("activate/kexec/kernel")), "KERNEL");
    EXPECT_TRUE(*sysroot_.remove("/esp/versions.json"));
    EXPECT_FALSE(std::filesystem::exists(inside("versions.json")));
}

TEST_F(SysrootSymlinks, ReadsThroughALinkToAHostFileDoNotReachIt) {
    test::write_file(outside_ / "secret", "host");
    std::filesystem::create_symlink(outside_ / "secret", root_ / "link.zip");
    std::filesystem::create_symlink("/etc/passwd", root_ / "passwd");
    for (const char* link : {"/link.zip", "/passwd", "/esp/secret"}) {
        Result<std::string> read = sysroot_.read_file(link);
        EXPECT_FALSE(read.ok()) << link << " read " << *read;
        EXPECT_FALSE(sysroot_.exists(link)) << link;
        EXPECT_FALSE(sysroot_.open(link, O_RDONLY).ok()) << link;
    }
    EXPECT_FALSE(sysroot_.list_directory("/esp").ok());
    // Removing through the link removes nothing outside.
    EXPECT_FALSE(*sysroot_.remove("/esp/secret"));
    EXPECT_EQ(test::read_file(outside_ / "secret"), "host");
    // The link itself is still what read_link() reports, as stored.
    EXPECT_EQ(*sysroot_.read_link("/link.zip"), (outside_ / "secret").string());
    // With the target present inside the sysroot, that is what is read.
    test::write_file(inside("secret"), "inside");
    EXPECT_EQ(*sysroot_.read_file("/link.zip"), "inside");
    EXPECT_EQ(*sysroot_.read_file("/esp/secret"), "inside");
    EXPECT_EQ(*sysroot_.list_directory("/esp"), std::vector<std::string>{"secret"});
}

TEST_F(SysrootSymlinks, RelativeLinksStopAtTheRoot) {
    // <root>/a/up -> ../../../../<outside>/secret climbs above the root: as in a chroot, ".."
    // at the root stays there, so it means <root>/<outside>/secret.
    test::write_file(outside_ / "secret", "host");
    std::filesystem::create_directories(root_ / "a");
    std::string up;
    for (auto it = root_.path().begin(); it != root_.path().end(); ++it) up += "../";
    std::filesystem::create_symlink(up + "../" + (outside_ / "secret").relative_path().string(),
                                    root_ / "a/up");
    // Without the link resolving on the host, <root>/<outside> does not exist.
    EXPECT_FALSE(sysroot_.read_file("/a/up").ok());
    EXPECT_FALSE(sysroot_.open("/a/up", O_WRONLY | O_TRUNC).ok());
    test::write_file(inside("secret"), "inside");
    EXPECT_EQ(*sysroot_.read_file("/a/up"), "inside");
    ASSERT_TRUE(sysroot_.open("/a/up", O_WRONLY | O_TRUNC).ok());
    EXPECT_EQ(test::read_file(outside_ / "secret"), "host");
}

TEST(Sysroot, TheLiveRootStillReadsPlainPaths) {
    Sysroot live("/");
    auto self = live.read_file("/proc/self/status", 1 << 20);
    ASSERT_TRUE(self.ok()) << self.error().message();
    EXPECT_NE(self->find("Pid:"), std::string::npos);
    EXPECT_TRUE(live.exists("/proc/self"));
    auto st = live.stat("/proc");
    ASSERT_TRUE(st.ok() && *st);
    EXPECT_TRUE(S_ISDIR((*st)->st_mode));
    auto names = live.list_directory("/proc/self/fd");
    ASSERT_TRUE(names.ok()) << names.error().message();
    EXPECT_FALSE(names->empty());
}

// The directories made for locks and records are private whatever the umask.
TEST(Sysroot, LockAndRecordDirectoriesArePrivate) {
    test::TempDir dir;
    Sysroot root(dir.path());
    const mode_t old = ::umask(0);
    auto lock = root.lock("/run/activate/lock");
    ::umask(old);
    ASSERT_TRUE(lock.ok()) << lock.error().message();
    struct stat st {};
    ASSERT_EQ(::stat((dir / "run/activate").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u);
    ASSERT_EQ(::stat((dir / "run/activate/lock").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
}

// A kernel without openat2(2) (before 5.6) gets an error saying so; here a seccomp filter plays
// that kernel.
TEST(Sysroot, AKernelWithoutOpenat2IsAClearError) {
    test::TempDir dir;
    test::write_file(dir / "f", "x");
    test::TempDir out;
    const int status =
        test::wait_status_with_syscall_denied(SYS_openat2, SECCOMP_RET_ERRNO | ENOSYS, [&] {
            Result<std::string> read = Sysroot(dir.path()).read_file("/f");
            test::write_file(out / "message", read.ok() ? "read" : read.error().message());
            return 0;
        });
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    EXPECT_EQ(test::read_file(out / "message"),
              "opening " + (dir / "f").string() +
                  ": this kernel has no openat2(2) (Linux 5.6 or later), which --sysroot " +
                  dir.path().string() + " needs to keep every path inside the sysroot");
}

TEST(Sysroot, AtomicWriteReplacesContentAndLeavesNoTemporaries) {
    test::TempDir dir;
    Sysroot root(dir.path());
    ASSERT_TRUE(root.make_dirs("/esp/state").ok());
    ASSERT_TRUE(root.write_file_atomic("/esp/state/v", "one").ok());
    ASSERT_TRUE(root.write_file_atomic("/esp/state/v", "two", 0600).ok());
    EXPECT_EQ(*root.read_file("/esp/state/v"), "two");
    int entries = 0;
    for (auto& e : std::filesystem::directory_iterator(dir / "esp/state")) entries += !!e.exists();
    EXPECT_EQ(entries, 1);
    EXPECT_FALSE(root.write_file_atomic("/missing-dir/v", "x").ok());
}

TEST(Sysroot, ReadFileLimitAndMissingFile) {
    test::TempDir dir;
    Sysroot root(dir.path());
    test::write_file(dir / "big", std::string(100, 'x'));
    EXPECT_FALSE(root.read_file("/big", 10).ok());
    Result<std::string> missing = root.read_file("/nope");
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.error().message().find((dir / "nope").string()), std::string::npos);
}

TEST(Sysroot, SecondLockIsBusy) {
    test::TempDir dir;
    Sysroot root(dir.path());
    Result<FileLock> first = root.lock("/run/activate/lock");
    ASSERT_TRUE(first.ok());
    Result<FileLock> second = root.lock("/run/activate/lock");
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.error().kind(), ErrorKind::busy);
    EXPECT_NE(second.error().message().find("another activation is in progress"), std::string::npos);
}

}  // namespace
}  // namespace activate
