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

// mkfs.vfat judges the FAT size by the whole file: a 256 MiB ESP on a 1.3 GB disk (the stock
// Debian tests' layout) was refused as a FAT32 with too few clusters.
TEST(Images, EspOnALargeDiskIsFormatted) {
    for (const char* tool : {"/usr/sbin/sfdisk", "/usr/sbin/mkfs.vfat", "/usr/bin/mdir"})
        if (::access(tool, X_OK) != 0) GTEST_SKIP() << tool << " not installed";
    fs::path dir = fs::temp_directory_path() / ("vm-harness-test-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    ::setenv("ACTIVATE_VM_IMAGE_DIR", dir.c_str(), 1);
    fs::path payload = dir / "payload.efi";
    { std::ofstream(payload) << "not really a PE image"; }
    DiskSpec spec = AbDisk(payload, payload, payload);
    spec.esp_size_mib = 256;
    spec.partitions[0].size_mib = spec.partitions[1].size_mib = 512;
    VM_ASSERT_OK_AND_ASSIGN(auto disk, BuildDisk(spec));
    ::setenv("MTOOLS_SKIP_CHECK", "1", 1);
    VM_ASSERT_OK_AND_ASSIGN(
        auto listing,
        RunCommand({"mdir", "-i", disk.string() + "@@1048576", "::/EFI/metropolis"}, seconds(30)));
    EXPECT_NE(listing.find("boot-a   efi"), std::string::npos) << listing;  // 8.3 name
    ::unsetenv("ACTIVATE_VM_IMAGE_DIR");
    fs::remove_all(dir);
}

TEST(Images, DebianMirrorReadsBothSourceFormats) {
    fs::path apt = fs::temp_directory_path() / ("vm-harness-apt-" + std::to_string(::getpid()));
    fs::create_directories(apt / "sources.list.d");
    // deb822 (sources.list(5)): the security stanza comes first and does not count.
    std::ofstream(apt / "sources.list.d" / "debian.sources")
        << "Types: deb\nURIs: http://security.example/debian-security\n"
           "Suites: bookworm-security\nComponents: main\n\n"
           "Types: deb-src deb\n# a comment\nURIs: http://mirror.example/debian\n"
           "Suites: bookworm bookworm-updates\nComponents: main\n";
    VM_ASSERT_OK_AND_ASSIGN(auto from_sources, DebianMirror("bookworm", apt));
    EXPECT_EQ(from_sources, "http://mirror.example/debian");
    // The one-line format is read first; options in brackets are skipped.
    std::ofstream(apt / "sources.list")
        << "# deb http://commented.example/debian bookworm main\n"
           "deb-src http://src.example/debian bookworm main\n"
           "deb [arch=amd64 signed-by=/k.gpg] http://list.example/debian bookworm main\n";
    VM_ASSERT_OK_AND_ASSIGN(auto from_list, DebianMirror("bookworm", apt));
    EXPECT_EQ(from_list, "http://list.example/debian");
    auto none = DebianMirror("trixie", apt);
    ASSERT_FALSE(none.ok());
    EXPECT_NE(none.error().message().find("no apt source for suite trixie"), std::string::npos)
        << none.error().message();
    fs::remove_all(apt);
}

// mkfs.ext4 -d keeps the tarball's owners and modes; added files belong to root with their host
// mode; links are made as given.
TEST(Images, Ext4KeepsOwnersModesAndAddsFiles) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (owners in the tarball)";
    for (const char* tool : {"/usr/sbin/mkfs.ext4", "/usr/sbin/debugfs", "/usr/bin/zstd"})
        if (::access(tool, X_OK) != 0) GTEST_SKIP() << tool << " not installed";
    fs::path dir = fs::temp_directory_path() / ("vm-harness-ext4-" + std::to_string(::getpid()));
    fs::create_directories(dir / "tree" / "etc");
    ::setenv("ACTIVATE_VM_IMAGE_DIR", (dir / "cache").c_str(), 1);
    std::ofstream(dir / "tree" / "etc" / "secret") << "shadow\n";
    VM_ASSERT_OK(
        RunCommand({"chown", "1234:42", (dir / "tree" / "etc" / "secret").string()}, seconds(10)));
    fs::permissions(dir / "tree" / "etc" / "secret",
                    fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
    VM_ASSERT_OK(RunCommand({"tar", "--zstd", "-cf", (dir / "tree.tar.zst").string(), "-C",
                             (dir / "tree").string(), "."},
                            seconds(30)));
    fs::path tool = dir / "tool";
    std::ofstream(tool) << "#!/bin/sh\n";
    fs::permissions(tool, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
    Ext4Spec spec;
    spec.tarball = dir / "tree.tar.zst";
    spec.files = {{tool, "/usr/local/sbin/tool"}};
    spec.links = {{"secret", "/etc/link"}};
    spec.label = "TESTROOT";
    spec.free_mib = 4;
    VM_ASSERT_OK_AND_ASSIGN(auto image, BuildExt4(spec));
    auto stat = [&](const std::string& path) {
        auto r = RunCommand({"debugfs", "-R", "stat " + path, image.string()}, seconds(30));
        return r.ok() ? *r : r.error().message();
    };
    std::string secret = stat("/etc/secret");
    EXPECT_NE(secret.find("Mode:  0640"), std::string::npos) << secret;
    EXPECT_NE(secret.find("User:  1234   Group:    42"), std::string::npos) << secret;
    std::string added = stat("/usr/local/sbin/tool");
    EXPECT_NE(added.find("Mode:  0755"), std::string::npos) << added;
    EXPECT_NE(added.find("User:     0   Group:     0"), std::string::npos) << added;
    std::string link = stat("/etc/link");
    EXPECT_NE(link.find("Type: symlink"), std::string::npos) << link;
    EXPECT_NE(link.find("\"secret\""), std::string::npos) << link;
    VM_ASSERT_OK_AND_ASSIGN(auto label, RunCommand({"e2label", image.string()}, seconds(10)));
    EXPECT_EQ(label, "TESTROOT\n");
    ::unsetenv("ACTIVATE_VM_IMAGE_DIR");
    fs::remove_all(dir);
}

// Debian packages are installed into the tree by dpkg --root, against the tree's own database:
// the package's file is in the image and the tree's status lists it; a package whose dependency
// the tree lacks fails the build instead of making an image.
TEST(Images, Ext4InstallsDebianPackagesIntoTheTree) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (dpkg --root, owners in the tarball)";
    for (const char* tool : {"/usr/sbin/mkfs.ext4", "/usr/sbin/debugfs", "/usr/bin/zstd",
                             "/usr/bin/dpkg", "/usr/bin/dpkg-deb"})
        if (::access(tool, X_OK) != 0) GTEST_SKIP() << tool << " not installed";
    fs::path dir = fs::temp_directory_path() / ("vm-harness-deb-" + std::to_string(::getpid()));
    ::setenv("ACTIVATE_VM_IMAGE_DIR", (dir / "cache").c_str(), 1);
    // The smallest tree dpkg accepts as a root: an empty database.
    fs::create_directories(dir / "tree" / "var/lib/dpkg/info");
    fs::create_directories(dir / "tree" / "var/lib/dpkg/updates");
    std::ofstream(dir / "tree" / "var/lib/dpkg/status");
    VM_ASSERT_OK(RunCommand({"tar", "--zstd", "-cf", (dir / "tree.tar.zst").string(), "-C",
                             (dir / "tree").string(), "."},
                            seconds(30)));
    auto make_deb = [&](const std::string& name, const std::string& extra_control) {
        fs::path pkg = dir / name;
        fs::create_directories(pkg / "DEBIAN");
        fs::create_directories(pkg / "usr/share" / name);
        std::ofstream(pkg / "DEBIAN/control")
            << "Package: " << name << "\nVersion: 1.0\nArchitecture: all\n"
            << "Maintainer: test <test@example.org>\nDescription: test package\n"
            << extra_control;
        std::ofstream(pkg / "usr/share" / name / "hello") << "hello\n";
        fs::path deb = dir / (name + ".deb");
        auto r = RunCommand(
            {"dpkg-deb", "--root-owner-group", "--build", pkg.string(), deb.string()}, seconds(60));
        EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
        return deb;
    };
    Ext4Spec spec;
    spec.tarball = dir / "tree.tar.zst";
    spec.debs = {make_deb("e2e-hello", "")};
    spec.free_mib = 4;
    VM_ASSERT_OK_AND_ASSIGN(auto image, BuildExt4(spec));
    auto cat = [&](const std::string& path) {
        auto r = RunCommand({"debugfs", "-R", "cat " + path, image.string()}, seconds(30));
        return r.ok() ? *r : r.error().message();
    };
    EXPECT_EQ(cat("/usr/share/e2e-hello/hello"), "hello\n");
    std::string status = cat("/var/lib/dpkg/status");
    EXPECT_NE(status.find("Package: e2e-hello\nStatus: install ok installed\n"), std::string::npos)
        << status;

    spec.debs = {make_deb("e2e-needy", "Depends: e2e-absent\n")};
    auto refused = BuildExt4(spec);
    ASSERT_FALSE(refused.ok()) << "a package with an unmet dependency was installed";
    EXPECT_NE(refused.error().message().find("dpkg -i failed in the tree"), std::string::npos)
        << refused.error().message();
    ::unsetenv("ACTIVATE_VM_IMAGE_DIR");
    fs::remove_all(dir);
}

}  // namespace
}  // namespace activate::vm
