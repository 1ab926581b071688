// Issue 14 §1: the dry run prints exactly the steps a run executes. Each shipped update policy and
// odd combinations of it run through the real `activate` binary and the real uki, efi and kexec
// plugins on a sysroot (kexec and reboot only recorded there): the steps the run logged are the
// plan's, step for step, and what the machine would have done (a jump, a staged kexec image,
// BootNext) happened exactly when the plan has a step for it.
#include <activate_test/pipeline_steps.hpp>
#include <algorithm>

#include "cli_fixture.hpp"

namespace activate::uki {
namespace {

using namespace testing;
using test_support::executed_steps;
using test_support::planned_steps;

struct PolicyCase {
    const char* name;    // the test's name
    const char* policy;  // config/update-<policy>.yaml
    const char* sets;    // extra --set arguments
};

std::ostream& operator<<(std::ostream& out, const PolicyCase& c) { return out << c.name; }

bool has_step(const std::vector<std::string>& steps, const std::string& step) {
    return std::find(steps.begin(), steps.end(), step) != steps.end();
}

class PipelinePlanCli : public CliMachine, public ::testing::WithParamInterface<PolicyCase> {
  protected:
    PipelinePlanCli() {
        // The efi policy installs one UKI per slot, the kexec policy rewrites a placeholder.
        if (std::string(GetParam().policy) == "efi")
            uki_cmdline_ = "root=PARTLABEL=METROPOLIS-SYSTEM-B ro";
    }
    std::string args() const {
        return shipped_policy(GetParam().policy, root()) + " " + GetParam().sets;
    }
};

TEST_P(PipelinePlanCli, TheRunExecutesExactlyThePlannedSteps) {
    ASSERT_EQ(create_bundle(root() / "b.zip", "1.0").code, 0);
    // The watchdog a policy may arm: under a sysroot it is a file there (watchdog.hpp).
    fs::create_directories(root() / "dev");
    write_file(root() / "dev/watchdog", "");

    CliOutcome dry = run_activate(args() + " --dry-run");
    ASSERT_EQ(dry.code, 0) << dry.err;
    const std::vector<std::string> planned = planned_steps(dry.out);
    ASSERT_FALSE(planned.empty()) << dry.out;
    // System paths only: the plan says where the sysroot is once, in its header.
    const std::string steps_block = dry.out.substr(dry.out.find("\nsteps:\n"));
    EXPECT_EQ(steps_block.find(root().string()), std::string::npos) << dry.out;

    CliOutcome run = run_activate(args() + " --bundle /b.zip --log-level debug");
    ASSERT_EQ(run.code, 0) << run.err;
    EXPECT_EQ(executed_steps(run.err), planned) << "plan:\n" << dry.out << "run:\n" << run.err;

    // What the machine would have done, against the plan's steps.
    const std::string activation =
        std::string("[") +
        (std::string(GetParam().policy) == "efi" &&
                 std::string(GetParam().sets).find("activation.plugin=kexec") == std::string::npos
             ? "efi"
             : "kexec") +
        "]";
    EXPECT_EQ(fs::exists(root() / "run/activate/reboot"), has_step(planned, "jump " + activation))
        << dry.out;
    EXPECT_EQ(fs::exists(root() / "run/activate/kexec/kernel"), has_step(planned, "stage [kexec]"))
        << dry.out;
    EXPECT_EQ(has_step(planned, "load-kernel [uki]"), has_step(planned, "stage [kexec]"))
        << dry.out;
    bool boot_next = false;
    for (const auto& e : fs::directory_iterator(root() / "sys/firmware/efi/efivars"))
        boot_next |= e.path().filename().string().rfind("BootNext-", 0) == 0;
    EXPECT_EQ(boot_next, has_step(planned, "boot-next [efi]")) << dry.out;
    EXPECT_EQ(std::string(GetParam().sets).find("watchdog") != std::string::npos,
              has_step(planned, "arm-watchdog [engine]"))
        << dry.out;
}

INSTANTIATE_TEST_SUITE_P(
    ShippedAndOdd, PipelinePlanCli,
    ::testing::Values(
        PolicyCase{"UpdateEfi", "efi", ""}, PolicyCase{"UpdateKexec", "kexec", ""},
        // Staged, never jumped: no UKI is read for efi, no BootOrder change, no trial, no jump.
        PolicyCase{"UpdateEfiWithoutJump", "efi", "--set activation_mode=none"},
        PolicyCase{"UpdateKexecWithoutJump", "kexec", "--set activation_mode=none"},
        // The efi policy's slots activated by kexec: the slot's UKI is read after all.
        PolicyCase{"UpdateEfiByKexec", "efi",
                   "--set activation.plugin=kexec --set activation_mode=kexec"},
        // With the hang protection: the watchdog is armed between the trial and the jump.
        PolicyCase{"UpdateKexecWithWatchdog", "kexec",
                   "--set 'assessment.watchdog={device: /dev/watchdog, timeout: 30s}'"}),
    [](const ::testing::TestParamInfo<PolicyCase>& info) { return info.param.name; });

}  // namespace
}  // namespace activate::uki
