// minit as PID 1 of a real kernel (issue 6, test 5): the production static binary is the guest's
// rdinit, its core /core makes 50 orphans, checks they were adopted by PID 1 and reaped (no zombie
// in /proc), and exits. Status 0 must power the guest off; a failure must restart it after the
// production delay (30 s). The PID-namespace tests in init/tests cover the rest without a kernel.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vm/images.hpp>
#include <vm/phase.hpp>
#include <vm/qemu.hpp>

#include "expect.hpp"

namespace activate::vm {
namespace {

namespace fs = std::filesystem;

// /core: run by minit with its environment, where the kernel put CORE_EXIT from the cmdline.
constexpr const char* kCore = R"SH(#!/bin/sh
. /etc/vm-lib.sh
vm_setup
echo "CORE running as pid $$ under parent $PPID"
# Each subshell starts a sleep in the background and exits at once: the sleeps become orphans.
i=0
while [ $i -lt 50 ]; do ( sleep 600 & ); i=$((i + 1)); done
# pids STATE: processes whose parent is PID 1 (except this core), or with STATE all zombies.
pids() {
  for s in /proc/[0-9]*/stat; do
    read -r pid _ state ppid _ 2>/dev/null < "$s" || continue
    if [ -n "$1" ]; then [ "$state" = "$1" ] && echo "$pid"
    else [ "$ppid" = 1 ] && [ "$pid" != $$ ] && echo "$pid"; fi
  done
}
adopted=$(pids | wc -l)
# Killed orphans must be reaped by minit, not left as zombies.
kill $(pids)
i=0
while [ -n "$(pids)$(pids Z)" ] && [ $i -lt 300 ]; do usleep 100000; i=$((i + 1)); done
left=$(pids | wc -l)
echo "CORE orphans adopted=$adopted left=$left zombies=$(pids Z | wc -l)"
echo "CORE exiting with ${CORE_EXIT:-0}"
exit "${CORE_EXIT:-0}"
)SH";

// /init is never run: rdinit= makes minit PID 1.
constexpr const char* kNotInit = R"SH(#!/bin/sh
echo "E2E-ERROR /init ran instead of minit"
poweroff -f
)SH";

class MinitE2E : public ::testing::Test {
  protected:
    // Boots minit as PID 1 with `extra_cmdline`, waits for the core's report and minit's status.
    void Boot(const std::string& name, const std::string& extra_cmdline, int expect_status) {
        // One file per test: the two tests may run at once.
        const fs::path core = fs::path(E2E_WORK_DIR) / name / "core";
        std::error_code ec;
        fs::create_directories(core.parent_path(), ec);
        {
            std::ofstream out(core, std::ios::trunc);
            out << kCore;
        }
        fs::permissions(core, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
        VM_ASSERT_OK_AND_ASSIGN(HostKernel kernel, FindHostKernel());
        InitramfsSpec spec;
        spec.modules = {};
        spec.init = kNotInit;
        spec.files = {{MINIT_GUEST_BINARY, "/minit"}, {core, "/core"}};
        VM_ASSERT_OK_AND_ASSIGN(auto initrd, BuildInitramfs(spec));
        VM_ASSERT_OK_AND_ASSIGN(auto vmlinux, ExtractVmlinux(kernel));
        phase_->mark("images (cached after the first run)");

        MicroVMOptions o;
        o.name = name;
        o.kernel = vmlinux;
        o.initrd = initrd;
        o.cmdline = "console=ttyS0 panic=-1 rdinit=/minit " + extra_cmdline;
        o.timeout = seconds(400);
        VM_ASSERT_OK_AND_ASSIGN(vm_, MicroVM(o));
        VM_ASSERT_OK(vm_->wait_for_line("^minit [0-9.]+: starting /core$", seconds(240)));
        VM_ASSERT_OK_AND_ASSIGN(
            auto running,
            vm_->wait_for_line("CORE running as pid (\\d+) under parent (\\d+)", seconds(60)));
        EXPECT_NE(running.groups[1], "1");
        EXPECT_EQ(running.groups[2], "1");
        phase_->mark(std::string("boot to the core (") + to_string(vm_->accel()) + ")");
        VM_ASSERT_OK_AND_ASSIGN(
            auto report,
            vm_->wait_for_line("CORE orphans adopted=(\\d+) left=(\\d+) zombies=(\\d+)",
                               seconds(120)));
        EXPECT_EQ(report.groups[1], "50") << "orphans re-parented to minit";
        EXPECT_EQ(report.groups[2], "0") << "orphans still running";
        EXPECT_EQ(report.groups[3], "0") << "zombies left in /proc";
        VM_ASSERT_OK(vm_->wait_for_line(
            "^minit: core /core exited with status " + std::to_string(expect_status) + "$",
            seconds(60)));
        phase_->mark("orphans made and reaped, core exited");
    }

    std::unique_ptr<PhaseTimer> phase_;
    std::unique_ptr<Machine> vm_;
};

TEST_F(MinitE2E, ReapsOrphansAndPowersOffOnCleanExit) {
    phase_ = std::make_unique<PhaseTimer>("MinitE2E.ReapsOrphansAndPowersOffOnCleanExit");
    ASSERT_NO_FATAL_FAILURE(Boot("e2e-minit-clean", "", 0));
    VM_ASSERT_OK(vm_->wait_for_line("^minit: powering off$", seconds(60)));
    VM_ASSERT_OK(vm_->wait_for_power_off(seconds(60)));
    phase_->mark("power off");
    for (const std::string& line : vm_->lines())
        EXPECT_EQ(line.find("E2E-ERROR"), std::string::npos) << line;
}

TEST_F(MinitE2E, RestartsAfterTheDelayWhenTheCoreFails) {
    phase_ = std::make_unique<PhaseTimer>("MinitE2E.RestartsAfterTheDelayWhenTheCoreFails");
    ASSERT_NO_FATAL_FAILURE(Boot("e2e-minit-failure", "CORE_EXIT=3", 3));
    VM_ASSERT_OK(vm_->wait_for_line("^minit: restarting in 30 s$", seconds(60)));
    const auto waiting = std::chrono::steady_clock::now();
    VM_ASSERT_OK(vm_->wait_for_line("^minit: restarting$", seconds(120)));
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - waiting).count();
    // Measured on the host between two console lines: allow for a late first line under load.
    EXPECT_GE(waited, 25.0);
    VM_ASSERT_OK(vm_->wait_for_guest_exit(GuestExit::reboot, seconds(60)));
    phase_->mark("failure delay and restart");
}

}  // namespace
}  // namespace activate::vm
