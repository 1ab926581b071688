// The two machines: the recording one writes exactly what the live one would load and do, the
// live one is only ever made for the root "/", the engine under --sysroot never makes a machine
// call, and the one answer to "would a reboot be hijacked".
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/kexec.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <activate/machine.hpp>
#include <activate/sysroot.hpp>
#include <chrono>
#include <cstring>
#include <thread>

#include "seccomp_filter.hpp"
#include "test_support.hpp"

namespace activate {
namespace {

using test::memfd_with;

TEST(Machines, OnlyTheRootGetsTheLiveMachine) {
    test::TempDir dir;
    const Sysroot under(dir.path()), live("/");
    const std::unique_ptr<Machine> recording = machine_for(under);
    EXPECT_FALSE(recording->is_live());
    EXPECT_NE(dynamic_cast<const RecordingMachine*>(recording.get()), nullptr);
    EXPECT_EQ(&recording->sysroot(), &under);
    // Only made and asked, never used.
    EXPECT_TRUE(machine_for(live)->is_live());
}

// The same calls on both machines, with kexec_file_load(2) answered by a seccomp filter (it never
// reaches the kernel): the live machine makes the system call for a load and an unload, the
// recording one never does and writes the bytes the call was given instead.
TEST(Machines, TheLiveMachineCallsTheKernelTheRecordingOneOnlyWrites) {
    test::TempDir dir;
    const int status = test::wait_status_with_syscall_denied(
        SYS_kexec_file_load, SECCOMP_RET_ERRNO | EHWPOISON, [&] {
            const Sysroot live_root("/"), recorded_root(dir.path());
            const std::unique_ptr<Machine> live = machine_for(live_root);
            const std::unique_ptr<Machine> recording = machine_for(recorded_root);
            UniqueFd k = memfd_with("KERNEL"), i = memfd_with("INITRAMFS");
            if (live->kexec_file_load(k.get(), i.get(), "console=ttyS0", 0) != EHWPOISON) return 1;
            if (live->kexec_unload() != EHWPOISON) return 2;
            if (recording->kexec_file_load(k.get(), i.get(), "console=ttyS0", 0) != 0) return 3;
            return 0;
        });
    ASSERT_TRUE(WIFEXITED(status)) << status;
    ASSERT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(test::read_file(dir / "run/activate/kexec/kernel"), "KERNEL");
    EXPECT_EQ(test::read_file(dir / "run/activate/kexec/initramfs"), "INITRAMFS");
    EXPECT_EQ(test::read_file(dir / "run/activate/kexec/cmdline"), "console=ttyS0");
}

// The activate binary under --sysroot, run as an operator would, with every call that loads a
// kernel or reboots killing it: it stages and jumps (recorded), and none of them is made.
TEST(Machines, UnderASysrootTheCliNeverCallsTheMachine) {
    test::TempDir dir, root;
    const std::string policy = (dir / "p.yaml").string();
    test::write_file(policy,
                     "activation_mode: kexec\ndelay: 0\npayload: {plugin: fake}\n"
                     "activation: {plugin: fake}\n");
    const int status = test::wait_status_with_syscalls_denied(
        {SYS_kexec_file_load, SYS_kexec_load, SYS_reboot}, SECCOMP_RET_KILL_PROCESS, [&] {
            test::RunResult r = test::run({ACTIVATE_BINARY, "--policy", policy, "--plugin-dir",
                                           FAKE_PLUGIN_DIR, "--sysroot", root.path().string()});
            test::write_file(dir / "stderr", r.err);
            return r.exit_code;
        });
    ASSERT_TRUE(WIFEXITED(status)) << status;
    EXPECT_EQ(WEXITSTATUS(status), 0) << test::read_file(dir / "stderr");
    EXPECT_EQ(test::read_file(root / "run/activate/kexec/kernel"), "FAKE-KERNEL");
    EXPECT_EQ(test::read_file(root / "run/activate/reboot"), "kexec\n");
}

// A machine whose answers a test sets, to see what the hijack decision does with each.
class ScriptedMachine final : public Machine {
  public:
    explicit ScriptedMachine(const Sysroot& sysroot) : Machine(sysroot) {}
    Result<bool> loaded = false;
    int unload_result = 0;
    mutable int unloads = 0;

    bool is_live() const override { return false; }
    int kexec_file_load(int, int, const std::string&, unsigned long) const override {
        return ENOSYS;
    }
    int kexec_unload() const override {
        ++unloads;
        return unload_result;
    }
    Result<bool> kexec_loaded() const override { return loaded; }
    Status jump(JumpAction) const override { return Error(ErrorKind::internal, "no jump here"); }
    void sync_file_systems() const override {}
    Status unmount(const std::string&) const override {
        return Error(ErrorKind::internal, "no unmount here");
    }
    Result<WatchdogArming> arm_watchdog(const std::string&, std::chrono::seconds) const override {
        return Error(ErrorKind::internal, "no watchdog here");
    }
    Result<WatchdogRelease> release_watchdog(const std::string&) const override {
        return Error(ErrorKind::internal, "no watchdog here");
    }
};

TEST(RebootHijack, OnlyAStagedImageHijacksAReboot) {
    test::TempDir dir;
    const Sysroot root(dir.path());
    RecordingMachine machine(root);
    EXPECT_FALSE(*machine.reboot_would_be_hijacked());
    Result<bool> prevented = machine.prevent_reboot_hijack();
    ASSERT_TRUE(prevented.ok()) << prevented.error().message();
    EXPECT_FALSE(*prevented);

    UniqueFd k = memfd_with("KERNEL"), i = memfd_with("INITRAMFS");
    ASSERT_EQ(machine.kexec_file_load(k.get(), i.get(), "x", 0), 0);
    EXPECT_TRUE(*machine.reboot_would_be_hijacked());
    prevented = machine.prevent_reboot_hijack();
    ASSERT_TRUE(prevented.ok()) << prevented.error().message();
    EXPECT_TRUE(*prevented);
    EXPECT_FALSE(*machine.reboot_would_be_hijacked());
    EXPECT_FALSE(std::filesystem::exists(dir / "run/activate/kexec/kernel"));
    EXPECT_FALSE(std::filesystem::exists(dir / "run/activate/kexec/initramfs"));
}

TEST(RebootHijack, PreventionUnloadsWhatIsStagedOrUnknownAndNothingElse) {
    test::TempDir dir;
    const Sysroot root(dir.path());
    ScriptedMachine nothing(root);
    EXPECT_FALSE(*nothing.prevent_reboot_hijack());
    EXPECT_EQ(nothing.unloads, 0);

    ScriptedMachine staged(root);
    staged.loaded = true;
    EXPECT_TRUE(*staged.prevent_reboot_hijack());
    EXPECT_EQ(staged.unloads, 1);

    // Cannot tell: unload anyway; a kernel without kexec (ENOSYS) has nothing staged.
    ScriptedMachine unknown(root);
    unknown.loaded = Error(ErrorKind::activation, "reading /sys/kernel/kexec_loaded: EIO");
    unknown.unload_result = ENOSYS;
    Result<bool> prevented = unknown.prevent_reboot_hijack();
    ASSERT_TRUE(prevented.ok()) << prevented.error().message();
    EXPECT_FALSE(*prevented);
    EXPECT_EQ(unknown.unloads, 1);

    ScriptedMachine busy(root);
    busy.loaded = true;
    busy.unload_result = EBUSY;
    prevented = busy.prevent_reboot_hijack();
    ASSERT_FALSE(prevented.ok());
    EXPECT_EQ(prevented.error().kind(), ErrorKind::activation);
    EXPECT_EQ(prevented.error().message(),
              std::string("unloading the staged kexec image: ") + std::strerror(EBUSY));
}

TEST(RecordingMachine, KexecStagingRecordsExactBytes) {
    test::TempDir dir;
    Sysroot root(dir.path());
    RecordingMachine machine(root);
    std::string kernel(100000, 'K'), initramfs = std::string("\0\1\2zstd", 7);
    kernel[5] = '\0';
    UniqueFd k = memfd_with(kernel), i = memfd_with(initramfs);
    ASSERT_EQ(machine.kexec_file_load(k.get(), i.get(), "console=ttyS0 quiet", 0), 0);
    EXPECT_EQ(test::read_file(dir / "run/activate/kexec/kernel"), kernel);
    EXPECT_EQ(test::read_file(dir / "run/activate/kexec/initramfs"), initramfs);
    EXPECT_EQ(test::read_file(dir / "run/activate/kexec/cmdline"), "console=ttyS0 quiet");
    EXPECT_TRUE(*machine.kexec_loaded());

    // The kernel refuses a missing initramfs unless told there is none; so does the record,
    // leaving the previous one whole.
    EXPECT_EQ(machine.kexec_file_load(k.get(), -1, "x", 0), EBADF);
    EXPECT_EQ(test::read_file(dir / "run/activate/kexec/cmdline"), "console=ttyS0 quiet");
    ASSERT_EQ(machine.kexec_file_load(k.get(), -1, "x", KEXEC_FILE_NO_INITRAMFS), 0);
    EXPECT_FALSE(std::filesystem::exists(dir / "run/activate/kexec/initramfs"));
    ASSERT_EQ(machine.kexec_unload(), 0);
    EXPECT_FALSE(*machine.kexec_loaded());
}

TEST(Machines, LiveKernelWithoutKexecHasNothingLoaded) {
    // Only reads: a kernel built without kexec (as this test machine's may be) has no
    // /sys/kernel/kexec_loaded, which means nothing can be loaded, not an error.
    if (::access("/sys/kernel/kexec_loaded", F_OK) == 0)
        GTEST_SKIP() << "this kernel has kexec; the case needs one without";
    const Sysroot live("/");
    auto loaded = machine_for(live)->kexec_loaded();
    ASSERT_TRUE(loaded.ok()) << loaded.error().message();
    EXPECT_FALSE(*loaded);
}

TEST(RecordingMachine, JumpIsRecordedNotPerformed) {
    test::TempDir dir;
    Sysroot root(dir.path());
    RecordingMachine machine(root);
    ASSERT_TRUE(machine.jump(JumpAction::reboot).ok());
    ASSERT_TRUE(machine.jump(JumpAction::kexec).ok());
    EXPECT_EQ(test::read_file(dir / "run/activate/reboot"), "reboot\nkexec\n");
}

TEST(RecordingMachine, DetachedJumpHappensAfterTheDelay) {
    test::TempDir dir;
    Sysroot root(dir.path());
    RecordingMachine machine(root);
    auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(machine.jump_detached(JumpAction::kexec, std::chrono::milliseconds(300)).ok());
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

TEST(RecordingMachine, SecondStageHasItsOwnSessionAndOnlyTheLocksAndStdio) {
    test::TempDir dir;
    Sysroot root(dir.path());
    RecordingMachine machine(root);
    auto lock = root.lock("/run/activate/test.lock");
    ASSERT_TRUE(lock.ok()) << lock.error().message();
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);  // not close-on-exec: a careless fork would keep the write end
    const auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(machine.jump_detached(JumpAction::reboot, std::chrono::milliseconds(2000)).ok());
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

TEST(RecordingMachine, FailedStagingKeepsThePreviousRecordWhole) {
    test::TempDir dir;
    Sysroot root(dir.path());
    RecordingMachine machine(root);
    UniqueFd k = memfd_with("OLD-KERNEL"), i = memfd_with("OLD-INITRAMFS");
    ASSERT_EQ(machine.kexec_file_load(k.get(), i.get(), "old", 0), 0);
    // A kernel "file" that cannot be read (a directory): the initramfs and cmdline were already
    // written when the kernel fails.
    UniqueFd unreadable(::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    UniqueFd i2 = memfd_with("NEW-INITRAMFS");
    EXPECT_NE(machine.kexec_file_load(unreadable.get(), i2.get(), "new", 0), 0);
    EXPECT_EQ(test::read_file(dir / "run/activate/kexec/kernel"), "OLD-KERNEL");
    EXPECT_EQ(test::read_file(dir / "run/activate/kexec/initramfs"), "OLD-INITRAMFS");
    EXPECT_EQ(test::read_file(dir / "run/activate/kexec/cmdline"), "old");
    for (const auto& e : std::filesystem::directory_iterator(dir / "run/activate/kexec"))
        EXPECT_EQ(e.path().filename().string().rfind(".", 0), std::string::npos) << e.path();
}

// The second stage keeps the activation lock until it has jumped: a second activation started
// after the first process let go, but before the jump, is still refused.
TEST(RecordingMachine, DetachedSecondStageHoldsTheLockUntilTheJump) {
    test::TempDir dir;
    Sysroot root(dir.path());
    RecordingMachine machine(root);
    {
        Result<FileLock> lock = root.lock("/run/activate/lock");
        ASSERT_TRUE(lock.ok());
        ASSERT_TRUE(machine.jump_detached(JumpAction::kexec, std::chrono::milliseconds(500)).ok());
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

TEST(RecordingMachine, LocksReleasedBeforeTheJumpAreNotKept) {
    test::TempDir dir;
    Sysroot root(dir.path());
    RecordingMachine machine(root);
    { ASSERT_TRUE(root.lock("/run/activate/lock").ok()); }
    ASSERT_TRUE(machine.jump_detached(JumpAction::kexec, std::chrono::milliseconds(500)).ok());
    EXPECT_TRUE(root.lock("/run/activate/lock").ok());
}

// When the jump itself fails, the detached second stage has no stdio left; it says why in the
// kernel log (here the sysroot's dev/kmsg, a plain file).
TEST(RecordingMachine, SecondStageReportsAFailedJumpToKmsg) {
    test::TempDir dir;
    Sysroot root(dir.path());
    RecordingMachine machine(root);
    std::filesystem::create_directories(dir / "dev");
    std::filesystem::create_directories(dir / "run");
    test::write_file(dir / "dev/kmsg", "");
    test::write_file(dir / "run/activate", "a file where the record directory should be");
    ASSERT_TRUE(machine.jump_detached(JumpAction::reboot, std::chrono::milliseconds(0)).ok());
    std::string kmsg;
    for (int i = 0; i < 250 && kmsg.empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        kmsg = test::read_file(dir / "dev/kmsg");
    }
    EXPECT_NE(kmsg.find("activate: second stage: "), std::string::npos) << kmsg;
}

}  // namespace
}  // namespace activate
