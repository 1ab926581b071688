// Hang protection: the policy settings, arming and release recorded under a sysroot, the kexec
// command line, and the update pipeline arming the watchdog before its jump (fake plugins).
#include <gtest/gtest.h>
#include <sys/file.h>

#include <activate/engine.hpp>
#include <activate/machine.hpp>
#include <activate/kernel_cmdline.hpp>
#include <activate/watchdog.hpp>
#include <sstream>

#include "test_support.hpp"

namespace activate {
namespace {

using std::chrono::seconds;

Result<WatchdogSettings> parse(const std::string& yaml) {
    Result<YAML::Node> root = load_policy_yaml_text(yaml, "w.yaml");
    if (!root.ok()) return root.error();
    Settings top(*root, "w.yaml", "");
    ACTIVATE_ASSIGN(Settings assessment, top.section("assessment"));
    ACTIVATE_ASSIGN(WatchdogSettings settings, parse_watchdog_settings(assessment));
    ACTIVATE_TRY(assessment.finish());
    return settings;
}

std::string parse_error(const std::string& yaml) {
    Result<WatchdogSettings> s = parse(yaml);
    return s.ok() ? "" : s.error().message();
}

TEST(WatchdogSettings, ReadsDeviceTimeoutAndPanicReboot) {
    Result<WatchdogSettings> s = parse(
        "assessment:\n  watchdog: {device: /dev/watchdog1, timeout: 90s}\n  panic_reboot: 10\n");
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_TRUE(s->armed());
    EXPECT_EQ(s->device, "/dev/watchdog1");
    EXPECT_EQ(s->timeout, seconds(90));
    EXPECT_EQ(s->panic_reboot, seconds(10));
}

TEST(WatchdogSettings, DeviceDefaultsToDevWatchdogAndNothingIsArmedWithoutTheSection) {
    Result<WatchdogSettings> s = parse("assessment:\n  watchdog: {timeout: 60s}\n");
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_EQ(s->device, "/dev/watchdog");
    EXPECT_EQ(s->panic_reboot, seconds(0));

    Result<WatchdogSettings> none = parse("other: 1\n");
    ASSERT_TRUE(none.ok()) << none.error().message();
    EXPECT_FALSE(none->armed());
    EXPECT_EQ(none->panic_reboot, seconds(0));
}

TEST(WatchdogSettings, BadValuesNameTheirKeyAndPosition) {
    EXPECT_EQ(parse_error("assessment:\n  watchdog: {device: /dev/watchdog}\n"),
              "w.yaml:2:13: assessment.watchdog.timeout: required setting is missing (e.g. 60s)");
    EXPECT_EQ(parse_error("assessment:\n  watchdog: {timeout: 2.5s}\n"),
              "w.yaml:2:23: assessment.watchdog.timeout: expected a whole number of seconds "
              "from 1s to 3600s, got 2500 ms");
    EXPECT_NE(parse_error("assessment:\n  watchdog: {timeout: 0}\n").find("got 0 ms"),
              std::string::npos);
    // Durations take hours too; two of them are past any driver's limit.
    EXPECT_NE(parse_error("assessment:\n  watchdog: {timeout: 2h}\n").find("got 7200000 ms"),
              std::string::npos);
    EXPECT_EQ(parse_error("assessment:\n  watchdog: {device: watchdog0, timeout: 60}\n"),
              "w.yaml:2:22: assessment.watchdog.device: must be an absolute path, e.g. "
              "/dev/watchdog");
    EXPECT_EQ(parse_error("assessment:\n  watchdog: {timeout: 60, nowayout: true}\n"),
              "w.yaml:2:27: assessment.watchdog.nowayout: unknown setting (known here: device, "
              "timeout)");
    EXPECT_EQ(parse_error("assessment:\n  panic_reboot: 500ms\n"),
              "w.yaml:2:17: assessment.panic_reboot: expected a whole number of seconds from 1s "
              "to 3600s, got 500 ms");
    EXPECT_EQ(parse_error("assessment:\n  watchdog: 60s\n"),
              "w.yaml:2:13: assessment.watchdog: expected a mapping, got a scalar");
}

TEST(WatchdogSettings, ThePolicyReadsTheAssessmentSection) {
    Result<YAML::Node> root = load_policy_yaml_text(
        "activation_mode: kexec\npayload: {plugin: a}\nactivation: {plugin: b}\n"
        "assessment:\n  watchdog: {timeout: 45s}\n  panic_reboot: 5s\n",
        "p.yaml");
    ASSERT_TRUE(root.ok());
    Result<Policy> policy = parse_policy(*root, "p.yaml");
    ASSERT_TRUE(policy.ok()) << policy.error().message();
    EXPECT_EQ(policy->watchdog.device, "/dev/watchdog");
    EXPECT_EQ(policy->watchdog.timeout, seconds(45));
    EXPECT_EQ(policy->watchdog.panic_reboot, seconds(5));

    root = load_policy_yaml_text(
        "activation_mode: kexec\npayload: {plugin: a}\nactivation: {plugin: b}\n"
        "assessment: {watchdgo: {timeout: 45s}}\n",
        "p.yaml");
    ASSERT_TRUE(root.ok());
    policy = parse_policy(*root, "p.yaml");
    ASSERT_FALSE(policy.ok());
    EXPECT_EQ(policy.error().kind(), ErrorKind::policy);
    EXPECT_NE(policy.error().message().find("p.yaml:4:14: assessment.watchdgo: unknown setting"),
              std::string::npos)
        << policy.error().message();
}

class WatchdogDevice : public ::testing::Test {
  protected:
    void SetUp() override { test::write_file(dir_ / "dev/watchdog", ""); }
    std::string record() const { return test::read_file(dir_ / "run/activate/watchdog"); }

    test::TempDir dir_;
    Sysroot sysroot_{dir_.path()};
    RecordingMachine machine_{sysroot_};  // what the engine gets for this sysroot
};

TEST_F(WatchdogDevice, ArmingUnderASysrootRecordsDeviceAndTimeout) {
    Result<WatchdogArming> armed = machine_.arm_watchdog("/dev/watchdog", seconds(60));
    ASSERT_TRUE(armed.ok()) << armed.error().message();
    EXPECT_FALSE(armed->held_elsewhere);
    EXPECT_EQ(armed->timeout, seconds(60));
    EXPECT_EQ(record(), "arm /dev/watchdog 60\n");
    // The device itself is never written: a stray 'V' there would be a magic close.
    EXPECT_EQ(test::read_file(dir_ / "dev/watchdog"), "");
}

TEST_F(WatchdogDevice, AMissingDeviceIsAnActivationErrorThatNamesIt) {
    Result<WatchdogArming> armed = machine_.arm_watchdog("/dev/watchdog3", seconds(60));
    ASSERT_FALSE(armed.ok());
    EXPECT_EQ(armed.error().kind(), ErrorKind::activation);
    EXPECT_EQ(armed.error().message(), "no watchdog device (is its driver loaded?): watchdog " +
                                           (dir_ / "dev/watchdog3").string() +
                                           ": No such file or directory");
    EXPECT_FALSE(std::filesystem::exists(dir_ / "run/activate/watchdog"));

    Result<WatchdogRelease> released = machine_.release_watchdog("/dev/watchdog3");
    ASSERT_FALSE(released.ok());
    EXPECT_NE(released.error().message().find("watchdog3"), std::string::npos);
}

TEST_F(WatchdogDevice, ReleaseDisarmsAFreeDevice) {
    Result<WatchdogRelease> released = machine_.release_watchdog("/dev/watchdog");
    ASSERT_TRUE(released.ok()) << released.error().message();
    EXPECT_EQ(*released, WatchdogRelease::disarmed);
    EXPECT_EQ(record(), "disarm /dev/watchdog\n");
}

// systemd's RuntimeWatchdogSec= keeps the device open; the kernel refuses a second opener with
// EBUSY. Under a sysroot an flock on the file stands for that holder.
TEST_F(WatchdogDevice, ADeviceHeldElsewhereIsAHandOverAndIsLeftAlone) {
    UniqueFd holder(::open((dir_ / "dev/watchdog").c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_EQ(::flock(holder.get(), LOCK_EX), 0);

    Result<WatchdogRelease> released = machine_.release_watchdog("/dev/watchdog");
    ASSERT_TRUE(released.ok()) << released.error().message();
    EXPECT_EQ(*released, WatchdogRelease::handed_over);
    EXPECT_STREQ(to_string(*released), "handed over");

    Result<WatchdogArming> armed = machine_.arm_watchdog("/dev/watchdog", seconds(60));
    ASSERT_TRUE(armed.ok()) << armed.error().message();
    EXPECT_TRUE(armed->held_elsewhere);
    EXPECT_EQ(record(), "handed-over /dev/watchdog\nheld-elsewhere /dev/watchdog\n");
}

TEST_F(WatchdogDevice, KexecKeepsTheWatchdogOnlyWithStopOnRebootZero) {
    const auto param = dir_ / "sys/module/watchdog/parameters/stop_on_reboot";
    EXPECT_NE(why_kexec_stops_watchdog(sysroot_).find("cannot tell whether the kernel stops"),
              std::string::npos);
    test::write_file(param, "-1\n");
    EXPECT_EQ(why_kexec_stops_watchdog(sysroot_),
              "the running kernel has watchdog.stop_on_reboot=-1, so it stops the watchdog at "
              "kexec and the new kernel is not protected; boot this system with "
              "watchdog.stop_on_reboot=0 on its command line");
    test::write_file(param, "0\n");
    EXPECT_EQ(why_kexec_stops_watchdog(sysroot_), "");
}

TEST_F(WatchdogDevice, ArmingBeforeAKexecWarnsWhenTheKernelWouldStopIt) {
    test::write_file(dir_ / "sys/module/watchdog/parameters/stop_on_reboot", "-1\n");
    Logger logger(LogLevel::info);
    Log log(&logger, "watchdog");
    WatchdogSettings settings{"/dev/watchdog", seconds(30), seconds(0)};

    ::testing::internal::CaptureStderr();
    Status s = arm_watchdog_before_jump(machine_, settings, Handover::staged_kernel, log);
    std::string err = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_NE(err.find("warning: the running kernel has watchdog.stop_on_reboot=-1"),
              std::string::npos)
        << err;
    EXPECT_NE(err.find("watchdog /dev/watchdog armed: the machine resets in 30 s"),
              std::string::npos)
        << err;

    // A firmware reboot resets the device anyway; the kexec warning does not apply.
    ::testing::internal::CaptureStderr();
    s = arm_watchdog_before_jump(machine_, settings, Handover::firmware_boot, log);
    err = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_EQ(err.find("stop_on_reboot"), std::string::npos) << err;
    EXPECT_EQ(record(), "arm /dev/watchdog 30\narm /dev/watchdog 30\n");

    // Nothing configured: nothing armed, nothing recorded.
    s = arm_watchdog_before_jump(machine_, WatchdogSettings{}, Handover::staged_kernel, log);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(record(), "arm /dev/watchdog 30\narm /dev/watchdog 30\n");
}

std::string protected_cmdline(const std::string& cmdline, WatchdogSettings settings) {
    Result<std::string> out = cmdline_with_hang_protection(cmdline, settings);
    EXPECT_TRUE(out.ok()) << out.error().message();
    return out.ok() ? *out : "";
}

TEST(HangProtectionCmdline, AddsOpenTimeoutStopOnRebootAndPanic) {
    EXPECT_EQ(protected_cmdline("root=PARTLABEL=METROPOLIS-SYSTEM-B ro quiet",
                                {"/dev/watchdog", seconds(60), seconds(10)}),
              "root=PARTLABEL=METROPOLIS-SYSTEM-B ro quiet watchdog.open_timeout=60 "
              "watchdog.stop_on_reboot=0 panic=10");
    EXPECT_EQ(protected_cmdline("root=/dev/vda2", {"/dev/watchdog", seconds(45), seconds(0)}),
              "root=/dev/vda2 watchdog.open_timeout=45 watchdog.stop_on_reboot=0");
    EXPECT_EQ(protected_cmdline("root=/dev/vda2", {"", seconds(0), seconds(5)}),
              "root=/dev/vda2 panic=5");
}

TEST(HangProtectionCmdline, TheUkisOwnValuesWin) {
    EXPECT_EQ(protected_cmdline("panic=30 watchdog.open_timeout=120 root=/dev/vda2",
                                {"/dev/watchdog", seconds(60), seconds(10)}),
              "panic=30 watchdog.open_timeout=120 root=/dev/vda2 watchdog.stop_on_reboot=0");
    // panic=-1 (reboot at once) and panic=0 (halt) are choices too.
    EXPECT_EQ(protected_cmdline("panic=0 root=/dev/vda2", {"", seconds(0), seconds(10)}),
              "panic=0 root=/dev/vda2");
}

TEST(HangProtectionCmdline, NothingToAddKeepsTheLineByteForByte) {
    const std::string line = "root=/dev/vda2  quote=\"a b\"\n";
    EXPECT_EQ(protected_cmdline(line, WatchdogSettings{}), line);
}

TEST(HangProtectionCmdline, ParametersGoBeforeTheInitArguments) {
    const std::string out = protected_cmdline("root=/dev/vda2 init=/sbin/init -- single x=1",
                                              {"/dev/watchdog", seconds(20), seconds(3)});
    EXPECT_EQ(out,
              "root=/dev/vda2 init=/sbin/init watchdog.open_timeout=20 "
              "watchdog.stop_on_reboot=0 panic=3 -- single x=1");
    KernelCmdline parsed = parse_kernel_cmdline(out);
    EXPECT_EQ(values_of(parsed, "panic"), std::vector<std::string>{"3"});
    EXPECT_EQ(parsed.init_args, (std::vector<std::string>{"single", "x=1"}));
}

// The update pipeline with the fake plugins: the watchdog is armed right before the jump, the
// kexec'd kernel's command line carries the parameters, and a failed jump disarms it again.
class WatchdogPipeline : public ::testing::Test {
  protected:
    void SetUp() override {
        test::write_file(dir_ / "dev/watchdog", "");
        test::write_file(dir_ / "sys/module/watchdog/parameters/stop_on_reboot", "0\n");
    }
    Result<std::unique_ptr<Engine>> make(const std::string& activation_settings) {
        const std::string yaml =
            "activation_mode: kexec\n"
            "payload: {plugin: fake_slots}\n"
            "activation: {plugin: fake, settings: {" +
            activation_settings +
            "}}\n"
            "boot_control: {plugin: fake}\n"
            "assessment:\n"
            "  watchdog: {device: /dev/watchdog, timeout: 30s}\n"
            "  panic_reboot: 10s\n";
        Result<YAML::Node> root = load_policy_yaml_text(yaml, "e.yaml");
        if (!root.ok()) return root.error();
        Result<Policy> policy = parse_policy(*root, "e.yaml");
        if (!policy.ok()) return policy.error();
        return Engine::create(std::move(policy).value(), registry_, sysroot_, logger_);
    }
    std::string record() const { return test::read_file(dir_ / "run/activate/watchdog"); }

    test::TempDir dir_;
    Sysroot sysroot_{dir_.path()};
    RecordingMachine machine_{sysroot_};  // what the engine gets for this sysroot
    Logger logger_{LogLevel::error};
    PluginRegistry registry_{{}, {FAKE_PLUGIN_DIR}};
};

TEST_F(WatchdogPipeline, UpdateArmsTheWatchdogAndTheKexecCmdlineCarriesHangProtection) {
    auto engine = make("");
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    Status s = (*engine)->run_update({"bundle.zip", false, false, {}});
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_EQ(record(), "arm /dev/watchdog 30\n");
    EXPECT_EQ(test::read_file(dir_ / "run/activate/kexec/cmdline"),
              "console=ttyS0 fake=1 watchdog.open_timeout=30 watchdog.stop_on_reboot=0 panic=10");
    EXPECT_EQ(test::read_file(dir_ / "run/activate/reboot"), "kexec\n");
}

TEST_F(WatchdogPipeline, TheDryRunPlanShowsTheArmingBeforeTheJump) {
    auto engine = make("");
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    std::ostringstream plan;
    (*engine)->print_plan(plan);
    const std::string text = plan.str();
    // A system path: where the sysroot records the arming, not the host's path of it.
    const size_t arm = text.find(
        "arm-watchdog [engine]\n"
        "       - arm watchdog /dev/watchdog for 30 s (closed without the magic 'V'), right "
        "before the jump\n"
        "         writes: /run/activate/watchdog (under --sysroot the arming is recorded there "
        "instead of /dev/watchdog)\n");
    ASSERT_NE(arm, std::string::npos) << text;
    EXPECT_GT(arm, text.find("record-trial [engine]")) << text;
    EXPECT_LT(arm, text.find("jump [fake]\n       - kexec after 0 ms")) << text;
    EXPECT_FALSE(std::filesystem::exists(dir_ / "run/activate/watchdog"));
}

TEST_F(WatchdogPipeline, AWatchdogThatCannotBeArmedStopsTheJump) {
    std::filesystem::remove(dir_ / "dev/watchdog");
    auto engine = make("");
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    Status s = (*engine)->run_update({"bundle.zip", false, false, {}});
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().kind(), ErrorKind::activation);
    EXPECT_NE(s.error().message().find("no watchdog device"), std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(dir_ / "run/activate/reboot"));
    EXPECT_FALSE(*machine_.kexec_loaded());
}

TEST_F(WatchdogPipeline, AFailedJumpDisarmsTheWatchdog) {
    auto engine = make("fail_activate: true");
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    Status s = (*engine)->run_update({"bundle.zip", false, false, {}});
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message().find("fake jump failed"), std::string::npos);
    EXPECT_EQ(record(), "arm /dev/watchdog 30\ndisarm /dev/watchdog\n");
    EXPECT_FALSE(std::filesystem::exists(dir_ / "run/activate/reboot"));
}

}  // namespace
}  // namespace activate
