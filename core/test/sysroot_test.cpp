#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/kexec.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <activate/sysroot.hpp>
#include <chrono>
#include <thread>

#include "seccomp_filter.hpp"
#include "test_support.hpp"

namespace activate {
namespace {

UniqueFd memfd_with(const std::string& bytes) {
    UniqueFd fd(::memfd_create("t", MFD_CLOEXEC));
    EXPECT_EQ(::write(fd.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    return fd;
}

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
};

TEST_F(SysrootSymlinks, WritesThroughALinkOutOfTheRootAreRefusedWhenItsTargetIsMissingInside) {
    // <root>/<outside> does not exist: each write fails instead of following the link out.
    EXPECT_FALSE(sysroot_.make_dirs("/esp/EFI/metropolis").ok());
    EXPECT_FALSE(sysroot_.write_file_atomic("/esp/versions.json", "{}").ok());
    EXPECT_FALSE(sysroot_.open("/esp/boot-b.efi", O_WRONLY | O_CREAT, 0644).ok());
    EXPECT_FALSE(sysroot_.lock("/run/activate/lock").ok());
    EXPECT_FALSE(sysroot_.jump(JumpAction::reboot).ok());
    UniqueFd kernel = memfd_with("KERNEL");
    EXPECT_NE(sysroot_.kexec_file_load(kernel.get(), -1, "x", KEXEC_FILE_NO_INITRAMFS), 0);
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
    ASSERT_TRUE(sysroot_.jump(JumpAction::reboot).ok());
    UniqueFd kernel = memfd_with("KERNEL");
    ASSERT_EQ(sysroot_.kexec_file_load(kernel.get(), -1, "x", KEXEC_FILE_NO_INITRAMFS), 0);
    EXPECT_TRUE(*sysroot_.kexec_loaded());

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

TEST(Sysroot, KexecStagingRecordsExactBytes) {
    test::TempDir dir;
    Sysroot root(dir.path());
    std::string kernel(100000, 'K'), initramfs = std::string("\0\1\2zstd", 7);
    kernel[5] = '\0';
    UniqueFd k = memfd_with(kernel), i = memfd_with(initramfs);
    ASSERT_EQ(root.kexec_file_load(k.get(), i.get(), "console=ttyS0 quiet", 0), 0);
    EXPECT_EQ(test::read_file(dir / "run/activate/kexec/kernel"), kernel);
    EXPECT_EQ(test::read_file(dir / "run/activate/kexec/initramfs"), initramfs);
    EXPECT_EQ(test::read_file(dir / "run/activate/kexec/cmdline"), "console=ttyS0 quiet");
    EXPECT_TRUE(*root.kexec_loaded());

    // The kernel refuses a missing initramfs unless told there is none; so does the record,
    // leaving the previous one whole.
    EXPECT_EQ(root.kexec_file_load(k.get(), -1, "x", 0), EBADF);
    EXPECT_EQ(test::read_file(dir / "run/activate/kexec/cmdline"), "console=ttyS0 quiet");
    ASSERT_EQ(root.kexec_file_load(k.get(), -1, "x", KEXEC_FILE_NO_INITRAMFS), 0);
    EXPECT_FALSE(std::filesystem::exists(dir / "run/activate/kexec/initramfs"));
    ASSERT_EQ(root.kexec_unload(), 0);
    EXPECT_FALSE(*root.kexec_loaded());
}

TEST(Sysroot, LiveKernelWithoutKexecHasNothingLoaded) {
    // Only reads: a kernel built without kexec (as this test machine's may be) has no
    // /sys/kernel/kexec_loaded, which means nothing can be loaded, not an error.
    if (::access("/sys/kernel/kexec_loaded", F_OK) == 0)
        GTEST_SKIP() << "this kernel has kexec; the case needs one without";
    auto loaded = Sysroot("/").kexec_loaded();
    ASSERT_TRUE(loaded.ok()) << loaded.error().message();
    EXPECT_FALSE(*loaded);
}

TEST(Sysroot, JumpIsRecordedNotPerformed) {
    test::TempDir dir;
    Sysroot root(dir.path());
    ASSERT_TRUE(root.jump(JumpAction::reboot).ok());
    ASSERT_TRUE(root.jump(JumpAction::kexec).ok());
    EXPECT_EQ(test::read_file(dir / "run/activate/reboot"), "reboot\nkexec\n");
}

TEST(Sysroot, DetachedJumpHappensAfterTheDelay) {
    test::TempDir dir;
    Sysroot root(dir.path());
    auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(root.jump_detached(JumpAction::kexec, std::chrono::milliseconds(300)).ok());
    // The caller returns at once; the record appears only after the delay.
    EXPECT_FALSE(std::filesystem::exists(dir / "run/activate/reboot"));
    while (!std::filesystem::exists(dir / "run/activate/reboot") &&
           std::chrono::steady_clock::now() - start < std::chrono::seconds(10))
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(test::read_file(dir / "run/activate/reboot"), "kexec\n");
}

// Processes other than this one that hold `file` open, with their session ids and the
// targets of all their descriptors.
struct Holder {
    pid_t pid, session;
    std::vector<std::string> fds;
};
std::vector<Holder> other_holders_of(const std::filesystem::path& file) {
    namespace fs = std::filesystem;
    std::vector<Holder> found;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/proc", ec)) {
        const std::string name = e.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        const pid_t pid = std::stoi(name);
        if (pid == ::getpid()) continue;
        Holder h{pid, ::getsid(pid), {}};
        bool holds = false;
        std::error_code fd_ec;
        for (const auto& fd : fs::directory_iterator(e.path() / "fd", fd_ec)) {
            std::error_code link_ec;
            const std::string target = fs::read_symlink(fd.path(), link_ec).string();
            h.fds.push_back(fd.path().filename().string() + " -> " + target);
            holds |= target == file.string();
        }
        if (holds) found.push_back(std::move(h));
    }
    return found;
}

TEST(Sysroot, SecondStageHasItsOwnSessionAndOnlyTheLocksAndStdio) {
    test::TempDir dir;
    Sysroot root(dir.path());
    auto lock = root.lock("/run/activate/test.lock");
    ASSERT_TRUE(lock.ok()) << lock.error().message();
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);  // not close-on-exec: a careless fork would keep the write end
    const auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(root.jump_detached(JumpAction::reboot, std::chrono::milliseconds(2000)).ok());
    ::close(fds[1]);
    // End of file as soon as the second stage dropped what it inherited, long before its jump.
    char byte;
    EXPECT_EQ(::read(fds[0], &byte, 1), 0);
    ::close(fds[0]);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1500));

    const auto holders = other_holders_of(dir / "run/activate/test.lock");
    ASSERT_EQ(holders.size(), 1u) << "the second stage keeps the lock until it jumps";
    const Holder& stage = holders[0];
    EXPECT_NE(stage.session, ::getsid(0));
    EXPECT_NE(stage.session, stage.pid) << "not a session leader: it can never get a terminal";
    std::string listing;
    for (const auto& f : stage.fds) listing += f + "\n";
    EXPECT_EQ(stage.fds.size(), 4u) << listing;  // /dev/null as 0, 1, 2, and the lock
    for (const auto& f : stage.fds) {
        if (f.rfind("0 ", 0) == 0 || f.rfind("1 ", 0) == 0 || f.rfind("2 ", 0) == 0) {
            EXPECT_NE(f.find("/dev/null"), std::string::npos) << f;
        }
    }

    EXPECT_FALSE(std::filesystem::exists(dir / "run/activate/reboot"));
    while (!std::filesystem::exists(dir / "run/activate/reboot") &&
           std::chrono::steady_clock::now() - start < std::chrono::seconds(10))
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(test::read_file(dir / "run/activate/reboot"), "reboot\n");
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

TEST(Sysroot, FailedStagingKeepsThePreviousRecordWhole) {
    test::TempDir dir;
    Sysroot root(dir.path());
    UniqueFd k = memfd_with("OLD-KERNEL"), i = memfd_with("OLD-INITRAMFS");
    ASSERT_EQ(root.kexec_file_load(k.get(), i.get(), "old", 0), 0);
    // A kernel "file" that cannot be read (a directory): the initramfs and cmdline were already
    // written when the kernel fails.
    UniqueFd unreadable(::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    UniqueFd i2 = memfd_with("NEW-INITRAMFS");
    EXPECT_NE(root.kexec_file_load(unreadable.get(), i2.get(), "new", 0), 0);
    EXPECT_EQ(test::read_file(dir / "run/activate/kexec/kernel"), "OLD-KERNEL");
    EXPECT_EQ(test::read_file(dir / "run/activate/kexec/initramfs"), "OLD-INITRAMFS");
    EXPECT_EQ(test::read_file(dir / "run/activate/kexec/cmdline"), "old");
    for (const auto& e : std::filesystem::directory_iterator(dir / "run/activate/kexec"))
        EXPECT_EQ(e.path().filename().string().rfind(".", 0), std::string::npos) << e.path();
}

// The second stage keeps the activation lock until it has jumped: a second activation started
// after the first process let go, but before the jump, is still refused.
TEST(Sysroot, DetachedSecondStageHoldsTheLockUntilTheJump) {
    test::TempDir dir;
    Sysroot root(dir.path());
    {
        Result<FileLock> lock = root.lock("/run/activate/lock");
        ASSERT_TRUE(lock.ok());
        ASSERT_TRUE(root.jump_detached(JumpAction::kexec, std::chrono::milliseconds(500)).ok());
    }
    Result<FileLock> during = root.lock("/run/activate/lock");
    ASSERT_FALSE(during.ok()) << "the lock was free before the jump";
    EXPECT_EQ(during.error().kind(), ErrorKind::busy);

    const auto start = std::chrono::steady_clock::now();
    while (!std::filesystem::exists(dir / "run/activate/reboot") &&
           std::chrono::steady_clock::now() - start < std::chrono::seconds(10))
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    bool free_after = false;
    for (int i = 0; i < 100 && !free_after; ++i) {
        free_after = root.lock("/run/activate/lock").ok();
        if (!free_after) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_TRUE(free_after) << "the second stage kept the lock after its jump";
}

TEST(Sysroot, LocksReleasedBeforeTheJumpAreNotKept) {
    test::TempDir dir;
    Sysroot root(dir.path());
    { ASSERT_TRUE(root.lock("/run/activate/lock").ok()); }
    ASSERT_TRUE(root.jump_detached(JumpAction::kexec, std::chrono::milliseconds(500)).ok());
    EXPECT_TRUE(root.lock("/run/activate/lock").ok());
}

// When the jump itself fails, the detached second stage has no stdio left; it says why in the
// kernel log (here the sysroot's dev/kmsg, a plain file).
TEST(Sysroot, SecondStageReportsAFailedJumpToKmsg) {
    test::TempDir dir;
    Sysroot root(dir.path());
    std::filesystem::create_directories(dir / "dev");
    std::filesystem::create_directories(dir / "run");
    test::write_file(dir / "dev/kmsg", "");
    test::write_file(dir / "run/activate", "a file where the record directory should be");
    ASSERT_TRUE(root.jump_detached(JumpAction::reboot, std::chrono::milliseconds(0)).ok());
    std::string kmsg;
    for (int i = 0; i < 250 && kmsg.empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        kmsg = test::read_file(dir / "dev/kmsg");
    }
    EXPECT_NE(kmsg.find("activate: second stage: "), std::string::npos) << kmsg;
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
