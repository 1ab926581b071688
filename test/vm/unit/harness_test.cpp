// Fast tests of the harness itself (no guest boots): process control, time limits, console line
// cleaning, QEMU failures carrying stderr, and the image builders' caching.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>
#include <vm/images.hpp>
#include <vm/process.hpp>
#include <vm/qemu.hpp>

#include "../smoke/expect.hpp"

namespace activate::vm {
namespace {

TEST(CleanLine, StripsEscapesAndCarriageReturns) {
    EXPECT_EQ(CleanLine("\x1b[2J\x1b[01;01HBdsDxe: loading\r"), "BdsDxe: loading");
    EXPECT_EQ(CleanLine("\x1b[=3hplain\ttext"), "plain\ttext");
    EXPECT_EQ(CleanLine("\x1b"
                        "cafter reset"),
              "after reset");
}

TEST(Process, CapturesLinesAndExitCode) {
    SpawnOptions o;
    o.argv = {"sh", "-c", "echo one; printf 'two\\r\\nthree'; echo err >&2; exit 3"};
    VM_ASSERT_OK_AND_ASSIGN(auto p, Process::Spawn(std::move(o)));
    VM_ASSERT_OK_AND_ASSIGN(auto m, p->wait_for_line("^t(w)o$", seconds(10)));
    EXPECT_EQ(m.groups[1], "w");
    VM_ASSERT_OK_AND_ASSIGN(auto st, p->wait(seconds(10)));
    EXPECT_EQ(st.code, 3);
    EXPECT_FALSE(st.clean());
    EXPECT_EQ(p->lines(), (std::vector<std::string>{"one", "two", "three"}));
    EXPECT_EQ(p->stderr_text(), "err\n");
}

// Timelines (the demo, the switch-time benchmark) take the time a line arrived, not the time a
// later wait_for_line() happened to look at it.
TEST(Process, LinesCarryTheirArrivalTime) {
    SpawnOptions o;
    o.argv = {"sh", "-c", "echo first; sleep 0.5; echo second"};
    VM_ASSERT_OK_AND_ASSIGN(auto p, Process::Spawn(std::move(o)));
    VM_ASSERT_OK(p->wait(seconds(10)));
    const auto after = Clock::now();
    VM_ASSERT_OK_AND_ASSIGN(auto first, p->wait_for_line("first", seconds(1)));
    VM_ASSERT_OK_AND_ASSIGN(auto second, p->wait_for_line("second", seconds(1)));
    EXPECT_GE(second.arrived - first.arrived, milliseconds(400));
    EXPECT_LE(second.arrived, after);
}

TEST(Process, WaitForLineFailsWhenTheProcessExits) {
    SpawnOptions o;
    o.argv = {"sh", "-c", "echo nothing-here"};
    VM_ASSERT_OK_AND_ASSIGN(auto p, Process::Spawn(std::move(o)));
    auto r = p->wait_for_line("never", seconds(10));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("exited with code 0"), std::string::npos)
        << r.error().message();
    EXPECT_NE(r.error().message().find("nothing-here"), std::string::npos) << r.error().message();
}

TEST(Process, TimeLimitKillsTheWholeGroup) {
    SpawnOptions o;
    // The grandchild would keep the pipe open forever if only the direct child were killed.
    o.argv = {"sh", "-c", "sleep 100 & echo started; wait"};
    o.timeout = milliseconds(500);
    VM_ASSERT_OK_AND_ASSIGN(auto p, Process::Spawn(std::move(o)));
    VM_ASSERT_OK(p->wait_for_line("started", seconds(10)));
    VM_ASSERT_OK_AND_ASSIGN(auto st, p->wait(seconds(10)));
    EXPECT_TRUE(st.timed_out);
    EXPECT_EQ(st.signal, SIGKILL);
    // The orphaned sleep may linger as a zombie until init reaps it; only live members count.
    auto live_members = [pgid = p->pid()] {
        int n = 0;
        for (const auto& e : fs::directory_iterator("/proc")) {
            std::ifstream f(e.path() / "stat");
            std::string stat;
            if (!e.is_directory() || !std::getline(f, stat)) continue;
            auto close = stat.rfind(')');
            if (close == std::string::npos) continue;
            std::istringstream rest(stat.substr(close + 2));
            char state;
            int ppid, pgrp;
            if (rest >> state >> ppid >> pgrp && pgrp == pgid && state != 'Z') ++n;
        }
        return n;
    };
    for (int i = 0; i < 40 && live_members() > 0; ++i)
        std::this_thread::sleep_for(milliseconds(50));
    EXPECT_EQ(live_members(), 0) << "process group still alive";
}

TEST(Process, WaitForLineTimesOut) {
    SpawnOptions o;
    o.argv = {"sleep", "30"};
    VM_ASSERT_OK_AND_ASSIGN(auto p, Process::Spawn(std::move(o)));
    auto r = p->wait_for_line("x", milliseconds(200));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("within 0.2 s"), std::string::npos) << r.error().message();
    p->kill();
    EXPECT_FALSE(p->running());
}

TEST(Process, ExecFailureIsAnError) {
    SpawnOptions o;
    o.argv = {"/nonexistent/program"};
    auto r = Process::Spawn(std::move(o));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("No such file"), std::string::npos) << r.error().message();
}

TEST(Machine, QemuFailureCarriesItsStderr) {
    if (::access("/usr/bin/qemu-system-x86_64", X_OK) != 0) GTEST_SKIP() << "qemu not installed";
    LaunchOptions o;
    o.name = "harness-bad-option";
    o.accel = Accel::tcg;
    if (!fs::exists("/usr/share/OVMF/OVMF_VARS_4M.fd")) GTEST_SKIP() << "ovmf not installed";
    o.ovmf_vars = fs::temp_directory_path() / ("vm-harness-vars-" + std::to_string(::getpid()));
    VM_ASSERT_OK(CopyOvmfVarsTemplate(o.ovmf_vars));
    o.extra_args = {"-no-such-option"};
    VM_ASSERT_OK_AND_ASSIGN(auto vm, Launch(o));
    auto r = vm->wait_for_line("never", seconds(30));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("no-such-option"), std::string::npos) << r.error().message();
    auto off = vm->wait_for_power_off(seconds(5));
    ASSERT_FALSE(off.ok());
    fs::remove(o.ovmf_vars);
}

TEST(Machine, RebootEndsTheRunUnlessAsked) {
    if (::access("/usr/bin/qemu-system-x86_64", X_OK) != 0) GTEST_SKIP() << "qemu not installed";
    auto has_no_reboot = [](const Machine& m) {
        const auto& argv = m.command();
        return std::find(argv.begin(), argv.end(), "-no-reboot") != argv.end();
    };
    if (!fs::exists("/usr/share/OVMF/OVMF_VARS_4M.fd")) GTEST_SKIP() << "ovmf not installed";
    for (bool ends : {true, false}) {
        LaunchOptions o;
        o.name = std::string("harness-reboot-") + (ends ? "ends" : "resets");
        o.accel = Accel::tcg;
        o.ovmf_vars = fs::temp_directory_path() / (o.name + "-" + std::to_string(::getpid()));
        VM_ASSERT_OK(CopyOvmfVarsTemplate(o.ovmf_vars));
        o.extra_args = {"-no-such-option"};  // QEMU fails at once: only its command line matters
        o.reboot_ends_run = ends;
        VM_ASSERT_OK_AND_ASSIGN(auto vm, Launch(o));
        EXPECT_EQ(has_no_reboot(*vm), ends);
        vm->kill();
        fs::remove(o.ovmf_vars);
    }
}

TEST(Launch, RejectsMissingVars) {
    LaunchOptions o;
    auto r = Launch(o);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().kind(), ErrorKind::usage);
}

TEST(Images, DiskIsCachedByContent) {
    for (const char* tool : {"/usr/sbin/sfdisk", "/usr/sbin/mkfs.vfat", "/usr/bin/mcopy"})
        if (::access(tool, X_OK) != 0) GTEST_SKIP() << tool << " not installed";
    fs::path dir = fs::temp_directory_path() / ("vm-harness-test-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    ::setenv("ACTIVATE_VM_IMAGE_DIR", dir.c_str(), 1);
    fs::path payload = dir / "payload.efi";
    { std::ofstream(payload) << "not really a PE image"; }
    DiskSpec spec = AbDisk(payload, payload, payload);
    VM_ASSERT_OK_AND_ASSIGN(auto first, BuildDisk(spec));
    auto mtime = fs::last_write_time(first);
    VM_ASSERT_OK_AND_ASSIGN(auto again, BuildDisk(spec));
    EXPECT_EQ(first, again);
    EXPECT_EQ(fs::last_write_time(again), mtime);
    { std::ofstream(payload) << "changed"; }
    VM_ASSERT_OK_AND_ASSIGN(auto changed, BuildDisk(spec));
    EXPECT_NE(changed, first);
    VM_ASSERT_OK_AND_ASSIGN(auto table,
                            RunCommand({"sfdisk", "--dump", changed.string()}, seconds(30)));
    EXPECT_NE(table.find("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"), std::string::npos) << table;
    EXPECT_NE(table.find("name=\"METROPOLIS-SYSTEM-A\""), std::string::npos) << table;
    EXPECT_NE(table.find("name=\"METROPOLIS-SYSTEM-B\""), std::string::npos) << table;
    fs::path copy = dir / "copy.img";
    VM_ASSERT_OK(CopyImage(changed, copy));
    EXPECT_EQ(fs::file_size(copy), fs::file_size(changed));
    ::unsetenv("ACTIVATE_VM_IMAGE_DIR");
    fs::remove_all(dir);
}

}  // namespace
}  // namespace activate::vm
