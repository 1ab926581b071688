// Boot assessment with the fake plugins on a temporary sysroot: the trial recorded before every
// jump, every transition of `activate assess` (docs/boot-assessment.md, "States"), the install
// refused while the running slot is on trial, and `status` per slot. A "reboot" is simulated by
// writing the running slot (/fake-running-slot) and a new boot id.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/kexec.h>
#include <sys/file.h>
#include <sys/mman.h>

#include <activate/engine.hpp>
#include <activate/machine.hpp>
#include <nlohmann/json.hpp>
#include <thread>

#include "test_support.hpp"

namespace activate {
namespace {

using namespace std::chrono_literals;

const std::string kRecord = "esp/EFI/activate/activation.json";

class AssessmentTest : public ::testing::Test {
  protected:
    void SetUp() override { boot("A", "boot-1"); }

    // The policy: a kexec slot update with the fake plugins, `assessment` appended.
    std::string policy(const std::string& assessment, const std::string& mode = "kexec") const {
        return "activation_mode: " + mode +
               "\npayload:\n  plugin: fake_slots\n  settings: {version: '1.2'" + payload_settings_ +
               "}\nactivation: {plugin: fake, settings: {supports_reboot: "
               "true}}\nboot_control: {plugin: fake}\n" +
               assessment;
    }
    Result<std::unique_ptr<Engine>> make(const std::string& yaml) {
        Result<YAML::Node> root = load_policy_yaml_text(yaml, "a.yaml");
        if (!root.ok()) return root.error();
        Result<Policy> p = parse_policy(*root, "a.yaml");
        if (!p.ok()) return p.error();
        return Engine::create(std::move(p).value(), registry_, sysroot_, logger_);
    }
    std::unique_ptr<Engine> engine(const std::string& assessment = "",
                                   const std::string& mode = "kexec") {
        auto e = make(policy(assessment, mode));
        EXPECT_TRUE(e.ok()) << e.error().message();
        return e.ok() ? std::move(e).value() : nullptr;
    }
    // Installs into the other slot and jumps (recorded under the sysroot).
    void update(const std::string& mode = "kexec", const std::string& assessment = "") {
        auto e = engine(assessment, mode);
        ASSERT_TRUE(e);
        Status s = e->run_update({"/bundle.zip", false, false, {}});
        ASSERT_TRUE(s.ok()) << s.error().message();
    }
    // What the machine runs now, and a new boot id (every kernel boot has its own).
    void boot(const std::string& slot, const std::string& id) {
        test::write_file(dir_ / "fake-running-slot", slot);
        test::write_file(dir_ / "proc/sys/kernel/random/boot_id", id + "\n");
    }
    Status assess(const std::string& assessment) {
        auto e = engine(assessment);
        if (!e) return Error(ErrorKind::internal, "no engine");
        return e->assess();
    }
    ActivationRecord record() {
        auto r = ActivationRecord::read(sysroot_, "/" + kRecord);
        EXPECT_TRUE(r.ok()) << r.error().message();
        return r.ok() ? std::move(r).value() : ActivationRecord{};
    }
    std::string boot_log() { return test::read_file(dir_ / "boot-log"); }
    std::string jumps() { return test::read_file(dir_ / "run/activate/reboot"); }
    void stage_an_image() {
        UniqueFd k(::memfd_create("k", MFD_CLOEXEC));
        ASSERT_EQ(::write(k.get(), "IMAGE", 5), 5);
        ASSERT_EQ(machine_.kexec_file_load(k.get(), -1, "x", KEXEC_FILE_NO_INITRAMFS), 0);
    }

    test::TempDir dir_;
    Sysroot sysroot_{dir_.path()};
    RecordingMachine machine_{sysroot_};  // what the engine gets for this sysroot
    Logger logger_{LogLevel::error};
    PluginRegistry registry_{{}, {FAKE_PLUGIN_DIR}};
    std::string payload_settings_;
};

std::string with_jump_failing(std::string yaml) {
    const std::string plain = "settings: {supports_reboot: true}";
    return yaml.replace(yaml.find(plain), plain.size(),
                        "settings: {supports_reboot: true, fail_activate: true}");
}

const std::string kPasses = "assessment:\n  checks:\n    - {name: passes, command: [true]}\n";
const std::string kFails =
    "assessment:\n  checks:\n    - {name: passes, command: [true]}\n"
    "    - {name: fails, command: [sh, -c, 'exit 3']}\n";

TEST_F(AssessmentTest, TheAssessmentSectionNeedsASlotPayload) {
    auto e = make(
        "activation_mode: kexec\npayload: {plugin: fake}\nactivation: {plugin: fake}\n"
        "assessment: {deadline: 1m}\n");
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.error().kind(), ErrorKind::policy);
    EXPECT_NE(e.error().message().find("a.yaml:4:13: assessment: payload 'fake' has no A/B slots"),
              std::string::npos)
        << e.error().message();
}

// ----- the trial, recorded by the update -----

TEST_F(AssessmentTest, UpdateRecordsTheTrialBeforeJumping) {
    const WallTime before = WallClock::now();
    update("kexec", "assessment: {deadline: 5m}\n");
    const WallTime after = WallClock::now();
    EXPECT_EQ(jumps(), "kexec\n");
    ActivationRecord r = record();
    ASSERT_TRUE(r.trial.has_value());
    const Trial& t = *r.trial;
    EXPECT_EQ(t.state, TrialState::trying);
    EXPECT_EQ(t.target, 'B');
    EXPECT_EQ(t.previous, 'A');
    EXPECT_EQ(t.mode, "kexec");
    EXPECT_EQ(t.handover, Handover::staged_kernel);
    EXPECT_EQ(t.version, "1.2");
    EXPECT_GE(t.jumped_at, before - 1ms);  // the file keeps milliseconds
    EXPECT_LE(t.jumped_at, after);
    EXPECT_EQ(t.deadline_at - t.jumped_at, std::chrono::minutes(5));
    EXPECT_EQ(t.target_entry, "Boot000B");
    EXPECT_EQ(t.previous_entry, "Boot000A");
    EXPECT_EQ(t.boot_id, "boot-1");
    EXPECT_EQ(r.slot('B').state, SlotState::trying);
    // A kexec trial leaves BootOrder alone.
    EXPECT_EQ(boot_log(), "begin B\nfinish B\n");
}

TEST_F(AssessmentTest, RebootTrialListsTheTargetAfterTheGoodSlotBeforeJumping) {
    update("reboot");
    EXPECT_EQ(boot_log(), "begin B\nfinish B\nnext B\norder B after A\n");
    EXPECT_EQ(record().trial->mode, "reboot");
    EXPECT_EQ(record().trial->handover, Handover::firmware_boot);
}

TEST_F(AssessmentTest, ATrialThatCannotBeRecordedMeansNoJump) {
    payload_settings_ = ", break_state_dir_after_install: true";
    auto e = engine();
    ASSERT_TRUE(e);
    Status s = e->run_update({"/bundle.zip", false, false, {}});
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().kind(), ErrorKind::activation);
    EXPECT_NE(s.error().message().find("recording the trial of slot B (not jumping): writing the "
                                       "activation record /esp/EFI/activate/activation.json"),
              std::string::npos)
        << s.error().message();
    EXPECT_FALSE(std::filesystem::exists(dir_ / "run/activate/reboot"));
    EXPECT_FALSE(*machine_.kexec_loaded());  // the staging was undone
}

TEST_F(AssessmentTest, AFailedJumpEndsTheTrial) {
    auto e = make(with_jump_failing(policy("")));
    ASSERT_TRUE(e.ok()) << e.error().message();
    Status s = (*e)->run_update({"/bundle.zip", false, false, {}});
    ASSERT_FALSE(s.ok());
    const Trial t = *record().trial;
    EXPECT_EQ(t.state, TrialState::failed);
    EXPECT_EQ(t.reason, "the jump failed: fake jump failed");
    EXPECT_EQ(record().slot('B').state, SlotState::unknown);
    // Nothing on trial: assess has nothing to do.
    EXPECT_TRUE(assess("").ok());
}

TEST_F(AssessmentTest, WritingTheTargetForgetsItsVerdictAndARefusedBundleChangesNothing) {
    ASSERT_TRUE(engine()->mark_good().ok());  // A good
    ASSERT_EQ(record().slot('A').state, SlotState::good);
    update();
    boot("B", "boot-2");
    ASSERT_TRUE(assess("").ok());  // B good
    boot("B", "boot-3");
    ASSERT_EQ(record().slot('B').state, SlotState::good);

    payload_settings_ = ", reject: true";
    const std::string before = test::read_file(dir_ / kRecord);
    auto refused = engine();
    ASSERT_FALSE(refused->run_update({"/bundle.zip", false, false, {}}).ok());
    EXPECT_EQ(test::read_file(dir_ / kRecord), before);

    // A is the target now; once writing starts its old verdict no longer holds.
    payload_settings_ = ", fail: true";
    auto failing = engine();
    ASSERT_FALSE(failing->run_update({"/bundle.zip", false, false, {}}).ok());
    EXPECT_EQ(record().slot('A').state, SlotState::unknown);
    EXPECT_EQ(record().slot('B').state, SlotState::good);
}

// ----- never overwrite the only good slot -----

TEST_F(AssessmentTest, InstallWhileTheRunningSlotIsOnTrialIsRefusedUnlessForced) {
    update();
    boot("B", "boot-2");  // B runs, not yet assessed
    const std::string record_before = test::read_file(dir_ / kRecord);
    const std::string log_before = boot_log();
    stage_an_image();

    auto e = engine();
    Status s = e->run_update({"/bundle.zip", false, false, {}});
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().kind(), ErrorKind::rejected);
    EXPECT_NE(s.error().message().find("slot B is on trial since " +
                                       format_rfc3339(record().trial->jumped_at) +
                                       " (activated from A by kexec) and not yet assessed good; "
                                       "installing into slot A would overwrite the only "
                                       "known-good slot. Run `activate assess`"),
              std::string::npos)
        << s.error().message();
    EXPECT_NE(s.error().message().find("or pass --force"), std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(dir_ / "slot-A"));
    EXPECT_EQ(boot_log(), log_before);
    EXPECT_EQ(test::read_file(dir_ / kRecord), record_before);
    EXPECT_TRUE(*machine_.kexec_loaded());  // not even the earlier staging was touched
    EXPECT_EQ(jumps(), "kexec\n");

    InstallRequest forced{"/bundle.zip", false, false, {}};
    forced.force = true;
    Status f = engine()->run_update(forced);
    ASSERT_TRUE(f.ok()) << f.error().message();
    EXPECT_EQ(test::read_file(dir_ / "slot-A"), "installed from /bundle.zip");
    EXPECT_EQ(record().trial->target, 'A');
}

TEST_F(AssessmentTest, InstallAfterComingBackUnassessedEndsTheOldTrialFirst) {
    update();
    boot("A", "boot-2");  // B never ran assess; the machine is back on A
    logger_.set_threshold(LogLevel::warning);
    ::testing::internal::CaptureStderr();
    update();
    const std::string log = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(log.find("slot B failed: came back on A"), std::string::npos) << log;
    const Trial t = *record().trial;  // the new trial
    EXPECT_EQ(t.state, TrialState::trying);
    EXPECT_EQ(t.boot_id, "boot-2");
}

// ----- assess -----

TEST_F(AssessmentTest, NoTrialNothingToDo) {
    EXPECT_TRUE(assess(kFails).ok());
    EXPECT_FALSE(std::filesystem::exists(dir_ / "boot-log"));
    EXPECT_FALSE(std::filesystem::exists(dir_ / kRecord));
}

TEST_F(AssessmentTest, TargetPassesItsChecksAndIsMarkedGoodWithTheSwitchTime) {
    update();
    std::this_thread::sleep_for(300ms);
    boot("B", "boot-2");
    ASSERT_TRUE(assess(kPasses).ok());
    EXPECT_EQ(boot_log(), "begin B\nfinish B\ngood B\n");
    const ActivationRecord r = record();
    const Trial& t = *r.trial;
    EXPECT_EQ(t.state, TrialState::good);
    EXPECT_EQ(t.pending, TrialPending::none);
    ASSERT_TRUE(t.switch_time_ms.has_value());
    EXPECT_GE(*t.switch_time_ms, 300);
    EXPECT_LT(*t.switch_time_ms, 60000);
    ASSERT_TRUE(t.assessed_at.has_value());
    EXPECT_EQ(r.slot('B').state, SlotState::good);
    // Done: a second assess has nothing to do.
    ASSERT_TRUE(assess(kFails).ok());
    EXPECT_EQ(boot_log(), "begin B\nfinish B\ngood B\n");
}

TEST_F(AssessmentTest, NoChecksMeansGoodAsSoonAsAssessRuns) {
    update();
    boot("B", "boot-2");
    ASSERT_TRUE(assess("").ok());
    EXPECT_EQ(record().trial->state, TrialState::good);
}

TEST_F(AssessmentTest, AFailingCheckSendsTheMachineBackToThePreviousSlot) {
    update();
    boot("B", "boot-2");
    stage_an_image();  // whatever is loaded must not take the reboot elsewhere
    Status s = assess(kFails);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().kind(), ErrorKind::activation);
    EXPECT_EQ(s.error().message(),
              "slot B failed its assessment (check \"fails\" exited with "
              "status 3); rebooting into slot A");
    EXPECT_EQ(boot_log(), "begin B\nfinish B\nnext A\n");
    EXPECT_EQ(jumps(), "kexec\nreboot\n");
    // The previous slot's ESP is unmounted before the reboot (recorded under a sysroot).
    EXPECT_EQ(test::read_file(dir_ / "run/activate/unmount"), "/esp\n");
    EXPECT_FALSE(*machine_.kexec_loaded());
    ActivationRecord r = record();
    EXPECT_EQ(r.trial->state, TrialState::failed);
    EXPECT_EQ(r.trial->reason, "check \"fails\" exited with status 3");
    EXPECT_EQ(r.trial->pending, TrialPending::fallback);
    EXPECT_EQ(r.trial->failed_boot_id, "boot-2");
    EXPECT_EQ(r.slot('B').state, SlotState::failed);
    EXPECT_EQ(r.slot('B').reason, "check \"fails\" exited with status 3");

    // Back on A: the fallback is complete, A is made first again.
    boot("A", "boot-3");
    ASSERT_TRUE(assess(kFails).ok());
    r = record();
    EXPECT_EQ(r.trial->pending, TrialPending::none);
    EXPECT_TRUE(r.trial->returned_at.has_value());
    EXPECT_EQ(r.slot('A').state, SlotState::good);
    EXPECT_EQ(boot_log(), "begin B\nfinish B\nnext A\ngood A\n");
    EXPECT_EQ(jumps(), "kexec\nreboot\n");
}

TEST_F(AssessmentTest, ACheckThatTimesOutFails) {
    update();
    boot("B", "boot-2");
    const auto start = std::chrono::steady_clock::now();
    Status s = assess(
        "assessment:\n  checks:\n    - {name: slow, command: [sleep, 30], "
        "timeout: 300ms}\n");
    EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(record().trial->reason, "check \"slow\" timed out after 0.3 s");
    EXPECT_EQ(jumps(), "kexec\nreboot\n");
}

TEST_F(AssessmentTest, ADeadlinePassedBeforeAssessRanFails) {
    update("kexec", "assessment: {deadline: 200ms}\n");
    std::this_thread::sleep_for(400ms);
    boot("B", "boot-2");
    Status s = assess(kPasses);
    ASSERT_FALSE(s.ok());
    const Trial t = *record().trial;
    EXPECT_EQ(t.reason, "the assessment deadline " + format_rfc3339(t.deadline_at) +
                            " had passed when assess started");
    EXPECT_EQ(boot_log(), "begin B\nfinish B\nnext A\n");
}

TEST_F(AssessmentTest, TheDeadlineCutsAChecksOwnTimeout) {
    update("kexec", "assessment: {deadline: 1s}\n");
    boot("B", "boot-2");
    const auto start = std::chrono::steady_clock::now();
    Status s = assess(
        "assessment:\n  checks:\n    - {name: slow, command: [sleep, 30], "
        "timeout: 1m}\n");
    EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
    ASSERT_FALSE(s.ok());
    const Trial t = *record().trial;
    EXPECT_EQ(t.reason, "check \"slow\" did not finish before the assessment deadline " +
                            format_rfc3339(t.deadline_at));
}

TEST_F(AssessmentTest, BackOnThePreviousSlotTheTrialFailed) {
    update();
    test::write_file(dir_ / "fake-boot-current", "Boot000A");
    boot("A", "boot-2");  // B hung, a watchdog reset, the firmware started A
    ASSERT_TRUE(assess(kPasses).ok());
    const ActivationRecord r = record();
    const Trial& t = *r.trial;
    EXPECT_EQ(t.state, TrialState::failed);
    EXPECT_EQ(t.reason, "slot B failed: came back on A (activated by kexec at " +
                            format_rfc3339(t.jumped_at) +
                            "; the firmware booted Boot000A (slot A's entry))");
    EXPECT_EQ(t.boot_current, "Boot000A");
    EXPECT_TRUE(t.returned_at.has_value());
    EXPECT_EQ(r.slot('B').state, SlotState::failed);
    EXPECT_EQ(r.slot('A').state, SlotState::good);
    EXPECT_EQ(boot_log(), "begin B\nfinish B\ngood A\n");  // A first again
    EXPECT_EQ(jumps(), "kexec\n");                         // and no reboot
}

TEST_F(AssessmentTest, BackOnThePreviousSlotAfterAFirmwareRebootSaysWhichEntryBooted) {
    update("reboot");
    test::write_file(dir_ / "fake-boot-current", "Boot000A");
    boot("A", "boot-2");
    ASSERT_TRUE(assess("").ok());
    EXPECT_NE(record().trial->reason.find(
                  "the firmware booted Boot000A (slot A's entry), not Boot000B named by BootNext"),
              std::string::npos)
        << record().trial->reason;
}

TEST_F(AssessmentTest, ATrialWhoseJumpNeverHappenedIsUndone) {
    update();
    stage_an_image();  // still loaded: the jump was only recorded, this is the same boot
    ASSERT_TRUE(assess("").ok());
    const ActivationRecord r = record();
    EXPECT_EQ(r.trial->state, TrialState::failed);
    EXPECT_NE(r.trial->reason.find("slot B was never started: the kexec from A at"),
              std::string::npos)
        << r.trial->reason;
    EXPECT_EQ(r.slot('B').state, SlotState::unknown);
    EXPECT_FALSE(*machine_.kexec_loaded());
}

TEST_F(AssessmentTest, FirmwareThatBootedAnotherEntryIsNotedNotFailed) {
    update("reboot");
    test::write_file(dir_ / "fake-boot-current", "Boot0007");
    boot("B", "boot-2");
    ASSERT_TRUE(assess(kPasses).ok());
    const Trial t = *record().trial;
    EXPECT_EQ(t.state, TrialState::good);
    EXPECT_EQ(t.boot_current, "Boot0007");
    EXPECT_EQ(
        t.warnings,
        (std::vector<std::string>{"firmware booted Boot0007 instead of Boot000B (BootNext)"}));
}

TEST_F(AssessmentTest, AKexecTrialDoesNotCompareBootCurrent) {
    update("kexec");
    test::write_file(dir_ / "fake-boot-current", "Boot000A");  // the firmware boot before it
    boot("B", "boot-2");
    ASSERT_TRUE(assess(kPasses).ok());
    EXPECT_TRUE(record().trial->warnings.empty());
}

// ----- a crash between recording a verdict and acting on it -----

TEST_F(AssessmentTest, AGoodVerdictWhoseMarkGoodDidNotHappenIsFinished) {
    update();
    boot("B", "boot-2");
    ActivationRecord r = record();
    r.trial->state = TrialState::good;
    r.trial->pending = TrialPending::mark_good;
    r.trial->assessed_at = WallClock::now();
    ASSERT_TRUE(r.write(sysroot_, "/" + kRecord).ok());
    ASSERT_TRUE(assess(kFails).ok());  // no checks run again
    EXPECT_EQ(boot_log(), "begin B\nfinish B\ngood B\n");
    EXPECT_EQ(record().trial->pending, TrialPending::none);
}

TEST_F(AssessmentTest, AFailureWhoseFallbackWasCutShortIsFinishedInTheSameBootOnly) {
    update();
    boot("B", "boot-2");
    ActivationRecord r = record();
    r.trial->state = TrialState::failed;
    r.trial->reason = "check \"x\" exited with status 1";
    r.trial->pending = TrialPending::fallback;
    r.trial->failed_boot_id = "boot-2";
    ASSERT_TRUE(r.write(sysroot_, "/" + kRecord).ok());

    // A later boot of B (chosen by hand): left alone.
    boot("B", "boot-3");
    ASSERT_TRUE(assess(kPasses).ok());
    EXPECT_EQ(boot_log(), "begin B\nfinish B\n");
    EXPECT_EQ(jumps(), "kexec\n");

    // The boot that found the failure: the fallback is finished.
    boot("B", "boot-2");
    Status s = assess(kPasses);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message().find("rebooting into slot A"), std::string::npos);
    EXPECT_EQ(boot_log(), "begin B\nfinish B\nnext A\n");
    EXPECT_EQ(jumps(), "kexec\nreboot\n");
}

// ----- the watchdog armed before the jump, after the verdict -----

// The policy's checks with hang protection; under the sysroot /dev/watchdog is a plain file and
// every arm/release is a line of run/activate/watchdog.
std::string with_watchdog(const std::string& checks) {
    return checks + "  watchdog: {device: /dev/watchdog, timeout: 30s}\n";
}

TEST_F(AssessmentTest, AGoodAssessmentReleasesTheWatchdogArmedBeforeTheJump) {
    test::write_file(dir_ / "dev/watchdog", "");
    update("kexec", with_watchdog(kPasses));
    EXPECT_EQ(test::read_file(dir_ / "run/activate/watchdog"), "arm /dev/watchdog 30\n");
    boot("B", "boot-2");
    ASSERT_TRUE(assess(with_watchdog(kPasses)).ok());
    EXPECT_EQ(record().trial->state, TrialState::good);
    // Released after mark-good (the boot order names B first by then), by the magic close.
    EXPECT_EQ(boot_log(), "begin B\nfinish B\ngood B\n");
    EXPECT_EQ(test::read_file(dir_ / "run/activate/watchdog"),
              "arm /dev/watchdog 30\ndisarm /dev/watchdog\n");
    // Nothing left to assess, nothing released again.
    ASSERT_TRUE(assess(with_watchdog(kPasses)).ok());
    EXPECT_EQ(test::read_file(dir_ / "run/activate/watchdog"),
              "arm /dev/watchdog 30\ndisarm /dev/watchdog\n");
}

// systemd's RuntimeWatchdogSec= holds the device (EBUSY; an flock under the sysroot): the new
// system already pings it, so the release is a hand-over and leaves it alone.
TEST_F(AssessmentTest, AGoodAssessmentHandsTheWatchdogOverToItsHolder) {
    test::write_file(dir_ / "dev/watchdog", "");
    update("kexec", with_watchdog(kPasses));
    boot("B", "boot-2");
    UniqueFd holder(::open((dir_ / "dev/watchdog").c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_EQ(::flock(holder.get(), LOCK_EX), 0);
    ASSERT_TRUE(assess(with_watchdog(kPasses)).ok());
    EXPECT_EQ(test::read_file(dir_ / "run/activate/watchdog"),
              "arm /dev/watchdog 30\nhanded-over /dev/watchdog\n");
}

// The verdict recorded, mark-good cut short: finishing it also ends the hang protection.
TEST_F(AssessmentTest, FinishingAGoodVerdictReleasesTheWatchdog) {
    test::write_file(dir_ / "dev/watchdog", "");
    update("kexec", with_watchdog(kPasses));
    boot("B", "boot-2");
    ActivationRecord r = record();
    r.trial->state = TrialState::good;
    r.trial->pending = TrialPending::mark_good;
    ASSERT_TRUE(r.write(sysroot_, "/" + kRecord).ok());
    ASSERT_TRUE(assess(with_watchdog(kPasses)).ok());
    EXPECT_EQ(test::read_file(dir_ / "run/activate/watchdog"),
              "arm /dev/watchdog 30\ndisarm /dev/watchdog\n");
}

// A failed slot keeps the watchdog counting: it is on its way back anyway, and if the fallback
// reboot hangs, the reset is the way back.
TEST_F(AssessmentTest, AFailedAssessmentLeavesTheWatchdogArmed) {
    test::write_file(dir_ / "dev/watchdog", "");
    update("kexec", with_watchdog(kFails));
    boot("B", "boot-2");
    ASSERT_FALSE(assess(with_watchdog(kFails)).ok());
    EXPECT_EQ(test::read_file(dir_ / "run/activate/watchdog"), "arm /dev/watchdog 30\n");
}

// A watchdog that cannot be released does not undo a good verdict: a warning, exit 0.
TEST_F(AssessmentTest, AWatchdogThatCannotBeReleasedIsAWarningNotAFailure) {
    test::write_file(dir_ / "dev/watchdog", "");
    update("kexec", with_watchdog(kPasses));
    std::filesystem::remove(dir_ / "dev/watchdog");  // the new slot has no such device
    boot("B", "boot-2");
    Logger logger(LogLevel::warning);
    Result<YAML::Node> root = load_policy_yaml_text(policy(with_watchdog(kPasses)), "a.yaml");
    ASSERT_TRUE(root.ok()) << root.error().message();
    Result<Policy> p = parse_policy(*root, "a.yaml");
    ASSERT_TRUE(p.ok()) << p.error().message();
    auto e = Engine::create(std::move(p).value(), registry_, sysroot_, logger);
    ASSERT_TRUE(e.ok()) << e.error().message();
    ::testing::internal::CaptureStderr();
    Status s = (*e)->assess();
    const std::string err = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_EQ(record().trial->state, TrialState::good);
    EXPECT_EQ(record().slot('B').state, SlotState::good);
    EXPECT_NE(err.find("the slot is good, but the watchdog /dev/watchdog armed before the jump "
                       "could not be released"),
              std::string::npos)
        << err;
}

TEST_F(AssessmentTest, MarkGoodByHandEndsTheTrialGood) {
    update();
    boot("B", "boot-2");
    ASSERT_TRUE(engine()->mark_good().ok());
    const ActivationRecord r = record();
    EXPECT_EQ(r.trial->state, TrialState::good);
    EXPECT_EQ(r.slot('B').state, SlotState::good);
    ASSERT_EQ(r.trial->warnings.size(), 1u);
    EXPECT_EQ(r.trial->warnings[0].rfind("marked good by hand (activate mark-good) at ", 0), 0u);
    // The install into A is allowed again.
    EXPECT_TRUE(engine()->run_update({"/bundle.zip", false, false, {}}).ok());
}

TEST_F(AssessmentTest, AMalformedRecordStopsUpdateAssessAndStatus) {
    test::write_file(dir_ / kRecord, "{\"format\": 1, \"trial\": 3}");
    for (Status s : {engine()->run_update({"/bundle.zip", false, false, {}}), assess("")}) {
        ASSERT_FALSE(s.ok());
        EXPECT_EQ(s.error().kind(), ErrorKind::input);
        EXPECT_NE(s.error().message().find("/esp/EFI/activate/activation.json is not an "
                                           "activation record"),
                  std::string::npos)
            << s.error().message();
    }
    EXPECT_FALSE(engine()->status_json().ok());
    EXPECT_FALSE(std::filesystem::exists(dir_ / "slot-B"));
}

// ----- status -----

TEST_F(AssessmentTest, StatusTellsEachSlotsStateVersionAndTheLastActivation) {
    auto before = nlohmann::json::parse(*engine()->status_json());
    EXPECT_EQ(before["slots"]["A"]["state"], "unknown");
    EXPECT_TRUE(before["slots"]["B"]["version"].is_null());
    EXPECT_TRUE(before["last_activation"].is_null());
    EXPECT_TRUE(before["boot_current"].is_null());

    update();
    boot("B", "boot-2");
    test::write_file(dir_ / "fake-boot-current", "Boot000A");
    ASSERT_FALSE(assess(kFails).ok());
    const std::string text = *engine()->status_json();
    auto doc = nlohmann::json::parse(text);
    // Today's keys stay, in their order.
    EXPECT_EQ(
        text.rfind("{\"running_slot\":\"B\",\"target_slot\":\"A\",\"kexec_loaded\":false,", 0), 0u)
        << text;
    EXPECT_EQ(doc["boot"], nlohmann::json::object());
    EXPECT_EQ(doc["boot_current"], "Boot000A");
    EXPECT_EQ(doc["slots"]["A"]["state"], "unknown");
    EXPECT_EQ(doc["slots"]["B"]["state"], "failed");
    EXPECT_EQ(doc["slots"]["B"]["reason"], "check \"fails\" exited with status 3");
    EXPECT_EQ(doc["slots"]["B"]["version"], "1.2");
    EXPECT_TRUE(doc["slots"]["A"]["version"].is_null());
    const auto& last = doc["last_activation"];
    EXPECT_EQ(last["mode"], "kexec");
    EXPECT_EQ(last["from"], "A");
    EXPECT_EQ(last["to"], "B");
    EXPECT_EQ(last["outcome"], "failed");
    EXPECT_EQ(last["reason"], "check \"fails\" exited with status 3");
    EXPECT_TRUE(last["switch_time_ms"].is_number_integer());
    EXPECT_EQ(last["jumped_at"], format_rfc3339(record().trial->jumped_at));

    // The human form is the same document, indented.
    auto indented = engine()->status_json(2);
    ASSERT_TRUE(indented.ok());
    EXPECT_EQ(nlohmann::json::parse(*indented), doc);
    EXPECT_NE(indented->find("\n  \"running_slot\": \"B\",\n"), std::string::npos) << *indented;
}

}  // namespace
}  // namespace activate
