// The engine with the fake plugin: combination checks, the dry-run plan, and both pipelines
// end to end on a temporary sysroot.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/kexec.h>
#include <sys/mman.h>

#include <activate/engine.hpp>
#include <activate/machine.hpp>
#include <activate_test/pipeline_steps.hpp>
#include <sstream>
#include <thread>

#include "takeover.pb.h"
#include "test_support.hpp"

namespace activate {
namespace {

class EngineTest : public ::testing::Test {
protected:
    Result<std::unique_ptr<Engine>> make(const std::string& yaml) {
        Result<YAML::Node> root = load_policy_yaml_text(yaml, "e.yaml");
        if (!root.ok()) return root.error();
        Result<Policy> policy = parse_policy(*root, "e.yaml");
        if (!policy.ok()) return policy.error();
        return Engine::create(std::move(policy).value(), registry_, sysroot_, logger_);
    }
    // A takeover with the fake plugins, the activation given `settings`.
    wire::TakeoverResponse takeover_with_activation(const std::string& settings, Status* status);
    std::string error_of(const std::string& yaml) {
        auto e = make(yaml);
        return e.ok() ? "" : e.error().message();
    }

    test::TempDir dir_;
    Sysroot sysroot_{dir_.path()};
    RecordingMachine machine_{sysroot_};  // what the engine gets for this sysroot
    Logger logger_{LogLevel::error};
    PluginRegistry registry_{{}, {FAKE_PLUGIN_DIR}};
};

const std::string kTakeover = R"(protocol: stdio-protobuf
activation_mode: kexec
delay: 200ms
payload: {plugin: fake}
activation: {plugin: fake}
captures:
  - plugin: fake
    settings: {interface: eth0}
  - plugin: fake
    settings: {interface: bond0}
)";

TEST_F(EngineTest, PluginSettingsAreValidatedByThePlugin) {
    std::string e = error_of("activation_mode: kexec\npayload:\n  plugin: fake\n  settings:\n"
                             "    flail: true\nactivation: {plugin: fake}\n");
    EXPECT_NE(e.find("e.yaml:5:5: payload.settings.flail: unknown setting"), std::string::npos) << e;
}

TEST_F(EngineTest, UnknownPluginPointsAtThePolicyLine) {
    std::string e = error_of("activation_mode: kexec\npayload: {plugin: fake}\n"
                             "activation:\n  plugin: nosuch\n");
    EXPECT_NE(e.find("e.yaml:4:11: activation.plugin: unknown plugin 'nosuch'"), std::string::npos)
        << e;
}

// A payload without a kernel never reaches the strategy: the run stops before the stage step,
// with nothing staged and no jump.
TEST_F(EngineTest, KexecWithAPayloadWithoutKernelIsRefused) {
    auto engine = make(
        "activation_mode: kexec\npayload:\n  plugin: fake\n  settings: "
        "{provides_kernel: false}\nactivation: {plugin: fake}\n");
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    Status s = (*engine)->run_update({"", false, false, {}});
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message().find("payload plugin \"fake\" prepared fake payload without a "
                                       "kernel; nothing was staged"),
              std::string::npos)
        << s.error().message();
    EXPECT_FALSE(*machine_.kexec_loaded());
    EXPECT_FALSE(std::filesystem::exists(dir_ / "run/activate/reboot"));
}

TEST_F(EngineTest, UnsupportedModeIsRefused) {
    std::string e = error_of("activation_mode: reboot\npayload: {plugin: fake}\n"
                             "activation: {plugin: fake}\nboot_control: {plugin: fake}\n");
    EXPECT_NE(e.find("e.yaml:1:18: activation_mode: activation plugin 'fake' declares no mode "
                     "'reboot'; it declares kexec (staged_kernel) (or set none: stage, do not "
                     "jump)"),
              std::string::npos)
        << e;
}

TEST_F(EngineTest, StdioProtocolNeedsAPayloadThatCarriesAgentInit) {
    std::string e = error_of("protocol: stdio-protobuf\nactivation_mode: kexec\npayload:\n"
                             "  plugin: fake\n  settings: {accepts_agent_init: false}\n"
                             "activation: {plugin: fake}\n");
    EXPECT_NE(e.find("protocol: protocol stdio-protobuf needs a payload that can carry an "
                     "AgentInit"),
              std::string::npos)
        << e;
}

// A plugin that fills no role at all, built in, to reach the engine's role check.
extern "C" const ActivatePluginDescriptor* activate_builtin_noroles() {
    static const ActivatePluginDescriptor d{kPluginAbiVersion, "noroles", "0",     nullptr,
                                            nullptr,           nullptr,   nullptr, nullptr};
    return &d;
}

TEST_F(EngineTest, PluginInARoleItCannotFillIsRefused) {
    PluginRegistry registry({activate_builtin_noroles}, {FAKE_PLUGIN_DIR});
    Result<YAML::Node> root = load_policy_yaml_text(
        "activation_mode: kexec\npayload: {plugin: noroles}\nactivation: {plugin: fake}\n",
        "e.yaml");
    ASSERT_TRUE(root.ok());
    Result<Policy> policy = parse_policy(*root, "e.yaml");
    ASSERT_TRUE(policy.ok()) << policy.error().message();
    auto e = Engine::create(std::move(policy).value(), registry, sysroot_, logger_);
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.error().kind(), ErrorKind::policy);
    EXPECT_EQ(e.error().message(),
              "e.yaml:2:19: payload.plugin: plugin 'noroles' (built-in) "
              "cannot act as a payload source or a slot store");
}

TEST_F(EngineTest, StdioProtocolWithASlotPayloadIsRefused) {
    std::string e = error_of(
        "protocol: stdio-protobuf\nactivation_mode: kexec\npayload:\n"
        "  plugin: fake_slots\n"
        "activation: {plugin: fake}\nboot_control: {plugin: fake}\n");
    EXPECT_NE(e.find("e.yaml:1:11: protocol: protocol stdio-protobuf is for takeover; payload "
                     "'fake_slots' is a slot store (it installs slots), not a payload source"),
              std::string::npos)
        << e;
}

// The `payload` plugin's role: a plugin filling both is the slot store of an update policy and
// the payload source of a takeover; each pipeline calls only its role's plugin object.
TEST_F(EngineTest, APluginWithBothPayloadRolesServesTheRoleOfThePolicy) {
    auto update = make(
        "activation_mode: kexec\npayload: {plugin: fake_both}\n"
        "activation: {plugin: fake}\nboot_control: {plugin: fake}\n");
    ASSERT_TRUE(update.ok()) << update.error().message();
    std::ostringstream plan;
    (*update)->print_plan(plan);
    EXPECT_EQ(test_support::planned_steps(plan.str()),
              (std::vector<std::string>{"lock [engine]", "find-slots [fake_both]",
                                        "check-trial [engine]", "install [fake_both]",
                                        "finish-install [fake]", "load-kernel [fake_both]",
                                        "stage [fake]", "record-trial [engine]", "jump [fake]"}))
        << plan.str();
    EXPECT_NE(plan.str().find("  payload (slot store): fake_both 0.0.1-test"), std::string::npos)
        << plan.str();
    Status s = (*update)->run_update({"bundle.zip", false, false, {}});
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_EQ(test::read_file(dir_ / "slot-B"), "installed from bundle.zip");
    // The staged initramfs is the slot's kernel (load_kernel), not a prepared payload.
    EXPECT_EQ(test::read_file(dir_ / "run/activate/kexec/initramfs"), "FAKE-INITRAMFS|slot B");

    std::string takeover = kTakeover;
    takeover.replace(takeover.find("payload: {plugin: fake}"), 23, "payload: {plugin: fake_both}");
    auto engine = make(takeover);
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    std::ostringstream takeover_plan;
    (*engine)->print_plan(takeover_plan);
    EXPECT_NE(takeover_plan.str().find("  payload: fake_both 0.0.1-test"), std::string::npos)
        << takeover_plan.str();
    const auto steps = test_support::planned_steps(takeover_plan.str());
    EXPECT_NE(std::find(steps.begin(), steps.end(), "prepare [fake_both]"), steps.end())
        << takeover_plan.str();
    EXPECT_EQ(std::find(steps.begin(), steps.end(), "find-slots [fake_both]"), steps.end())
        << takeover_plan.str();
}

TEST_F(EngineTest, RebootWithoutBootControlIsRefused) {
    std::string e = error_of(
        "activation_mode: reboot\npayload: {plugin: fake}\n"
        "activation: {plugin: fake, settings: {supports_reboot: true}}\n");
    EXPECT_NE(e.find("boot_control: activation_mode reboot needs a boot_control section"),
              std::string::npos)
        << e;
}

TEST_F(EngineTest, SlotPayloadNeedsBootControl) {
    std::string e = error_of(
        "activation_mode: kexec\npayload:\n  plugin: fake_slots\n"
        "activation: {plugin: fake}\n");
    EXPECT_NE(e.find("needs a boot_control section"), std::string::npos) << e;
}

TEST_F(EngineTest, CapturesWithoutProtocolAreRefused) {
    std::string e = error_of("activation_mode: kexec\npayload: {plugin: fake}\n"
                             "activation: {plugin: fake}\ncaptures: [{plugin: fake}]\n");
    EXPECT_NE(e.find("captures: captures are only used by protocol stdio-protobuf"),
              std::string::npos)
        << e;
}

TEST_F(EngineTest, DryRunPlanListsPluginsAndStepsAndTouchesNothing) {
    auto engine = make(kTakeover);
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    std::ostringstream plan;
    (*engine)->print_plan(plan);
    std::string text = plan.str();
    EXPECT_NE(text.find("payload: fake 0.0.1-test (" FAKE_PLUGIN_DIR "/fake.so)"), std::string::npos)
        << text;
    // The message before the lock: a waiting client must not block mark-good and updates.
    EXPECT_NE(text.find("  1. read-takeover-init [engine]\n"
                        "       - read one TakeoverInit (at most 1 MiB) from stdin, within "
                        "60000 ms\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("  2. lock [engine]\n       - take the activation lock"), std::string::npos)
        << text;
    EXPECT_NE(text.find("  3. capture [fake]\n       - capture fake"), std::string::npos) << text;
    EXPECT_NE(text.find("jump [fake]\n       - kexec after 200 ms from a detached second stage"),
              std::string::npos)
        << text;
    EXPECT_TRUE(std::filesystem::is_empty(dir_.path()));
}



wire::TakeoverResponse takeover(Engine& engine, const std::string& input, Status* status) {
    // Files rather than pipes: the oversized input would not fit a pipe buffer.
    test::TempDir io;
    test::write_file(io / "in", input);
    int in = ::open((io / "in").c_str(), O_RDONLY);
    int out = ::open((io / "out").c_str(), O_WRONLY | O_CREAT, 0600);
    *status = engine.run_takeover(in, out);
    ::close(in);
    ::close(out);  // run_takeover keeps the number open on /dev/null
    wire::TakeoverResponse response;
    EXPECT_TRUE(response.ParseFromString(test::read_file(io / "out")));
    return response;
}

TEST_F(EngineTest, TakeoverStagesRespondsAndJumpsLater) {
    auto engine = make(kTakeover);
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    wire::TakeoverInit init;
    init.set_machine_id("m-1");
    init.set_bmaas_endpoint("bmaas.example:443");
    init.set_ca_certificate("CERT");
    Status status;
    wire::TakeoverResponse response = takeover(**engine, init.SerializeAsString(), &status);
    ASSERT_TRUE(status.ok()) << status.error().message();
    ASSERT_TRUE(response.has_success()) << response.DebugString();
    EXPECT_EQ(response.success().init_message().SerializeAsString(), init.SerializeAsString());
    ASSERT_EQ(response.success().key().size(), 32u);
    EXPECT_EQ(response.success().warning_size(), 2);

    // The staged initramfs carries the AgentInit the fake payload was given.
    std::string initramfs = test::read_file(dir_ / "run/activate/kexec/initramfs");
    ASSERT_EQ(initramfs.rfind("FAKE-INITRAMFS|", 0), 0u);
    wire::AgentInit agent;
    ASSERT_TRUE(agent.ParseFromString(initramfs.substr(15)));
    EXPECT_EQ(agent.takeover_init().machine_id(), "m-1");
    ASSERT_EQ(agent.private_key().size(), 64u);
    EXPECT_EQ(agent.private_key().substr(32), response.success().key());
    ASSERT_EQ(agent.network_config().interface_size(), 2);
    EXPECT_EQ(agent.network_config().interface(1).name(), "bond0");

    // The jump is detached and delayed.
    EXPECT_FALSE(std::filesystem::exists(dir_ / "run/activate/reboot"));
    for (int i = 0; i < 200 && !std::filesystem::exists(dir_ / "run/activate/reboot"); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(test::read_file(dir_ / "run/activate/reboot"), "kexec\n");
}

TEST_F(EngineTest, TakeoverInputErrorsAnswerWithTakeoverErrorAndStageNothing) {
    wire::TakeoverInit no_endpoint;
    no_endpoint.set_machine_id("m");
    const std::pair<std::string, std::string> cases[] = {
        {"", "stdin was empty"},
        {"\xff\xff\xff garbage", "not a valid TakeoverInit"},
        {no_endpoint.SerializeAsString(), "bmaas_endpoint is empty"},
        {std::string((1 << 20) + 1, '\x0a'), "larger than 1 MiB"},
    };
    for (const auto& [input, message] : cases) {
        auto engine = make(kTakeover);
        ASSERT_TRUE(engine.ok());
        Status status;
        wire::TakeoverResponse response = takeover(**engine, input, &status);
        ASSERT_FALSE(status.ok());
        EXPECT_EQ(status.error().kind(), ErrorKind::input);
        ASSERT_TRUE(response.has_error()) << message;
        EXPECT_NE(response.error().message().find(message), std::string::npos)
            << response.error().message();
        EXPECT_FALSE(std::filesystem::exists(dir_ / "run/activate/kexec/kernel"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    EXPECT_FALSE(std::filesystem::exists(dir_ / "run/activate/reboot"));
}

TEST_F(EngineTest, TakeoverWhileAnotherActivationRunsIsBusyAndStagesNothing) {
    auto engine = make(kTakeover);
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    Result<FileLock> held = sysroot_.lock("/run/activate/lock");
    ASSERT_TRUE(held.ok());
    wire::TakeoverInit init;
    init.set_machine_id("m-2");
    init.set_bmaas_endpoint("bmaas.example:443");
    Status status;
    wire::TakeoverResponse response = takeover(**engine, init.SerializeAsString(), &status);
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().kind(), ErrorKind::busy);
    ASSERT_TRUE(response.has_error()) << response.DebugString();
    EXPECT_NE(response.error().message().find("another activation is in progress"),
              std::string::npos)
        << response.error().message();
    EXPECT_FALSE(std::filesystem::exists(dir_ / "run/activate/kexec/kernel"));
}

// `yaml` with settings for its fake activation plugin.
std::string with_activation_settings(std::string yaml, const std::string& settings) {
    const std::string plain = "activation: {plugin: fake}";
    return yaml.replace(yaml.find(plain), plain.size(),
                        "activation: {plugin: fake, settings: {" + settings + "}}");
}

wire::TakeoverResponse EngineTest::takeover_with_activation(const std::string& settings,
                                                            Status* status) {
    auto engine = make(with_activation_settings(kTakeover, settings));
    EXPECT_TRUE(engine.ok()) << engine.error().message();
    if (!engine.ok()) return {};
    wire::TakeoverInit init;
    init.set_bmaas_endpoint("e");
    return takeover(**engine, init.SerializeAsString(), status);
}

TEST_F(EngineTest, StagingFailureMeansNoJump) {
    Status status;
    wire::TakeoverResponse response = takeover_with_activation("fail_stage: true", &status);
    ASSERT_FALSE(status.ok());
    ASSERT_TRUE(response.has_error());
    EXPECT_NE(response.error().message().find("fake staging failed"), std::string::npos);
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    EXPECT_FALSE(std::filesystem::exists(dir_ / "run/activate/reboot"));
}

// The client already holds a TakeoverSuccess when the second stage cannot be started: the
// image it was promised is unloaded rather than left for some later reboot to start.
TEST_F(EngineTest, JumpFailureAfterTheResponseUnloadsTheStagedImage) {
    Status status;
    wire::TakeoverResponse response = takeover_with_activation("fail_activate: true", &status);
    ASSERT_FALSE(status.ok());
    EXPECT_TRUE(response.has_success());
    EXPECT_NE(status.error().message().find("fake jump failed"), std::string::npos);
    EXPECT_NE(status.error().message().find("already told"), std::string::npos)
        << status.error().message();
    EXPECT_FALSE(*machine_.kexec_loaded());
    EXPECT_FALSE(std::filesystem::exists(dir_ / "run/activate/reboot"));
}

const std::string kUpdate = R"(activation_mode: kexec
payload:
  plugin: fake_slots
  settings: {}
activation: {plugin: fake}
boot_control: {plugin: fake}
)";

TEST_F(EngineTest, UpdateDisablesEntryBeforeWritingAndEnablesAfter) {
    auto engine = make(kUpdate);
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    Status s = (*engine)->run_update({"bundle.zip", false, false, {}});
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_EQ(test::read_file(dir_ / "boot-log"), "begin B\nfinish B\n");
    EXPECT_EQ(test::read_file(dir_ / "slot-B"), "installed from bundle.zip");
    EXPECT_EQ(test::read_file(dir_ / "run/activate/reboot"), "kexec\n");
}

std::string with_payload_settings(const std::string& settings) {
    std::string yaml = kUpdate;
    return yaml.replace(yaml.find("settings: {}"), 12, "settings: {" + settings + "}");
}

// A slot store's kernel is checked like a payload source's: none, and nothing is staged.
TEST_F(EngineTest, ASlotKernelWithoutKernelIsRefusedBeforeStaging) {
    auto engine = make(with_payload_settings("provides_kernel: false"));
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    Status s = (*engine)->run_update({"bundle.zip", false, false, {}});
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message().find("payload plugin \"fake_slots\" prepared fake payload "
                                       "without a kernel"),
              std::string::npos)
        << s.error().message();
    EXPECT_FALSE(*machine_.kexec_loaded());
    EXPECT_FALSE(std::filesystem::exists(dir_ / "run/activate/reboot"));
}

// A bundle refused before anything is written (signature, compatibility, version, size) leaves
// the boot entries and a kexec image staged earlier exactly as they were.
TEST_F(EngineTest, RefusedBundleTouchesNeitherBootEntriesNorTheStagedImage) {
    UniqueFd k(::memfd_create("k", MFD_CLOEXEC));
    ASSERT_EQ(::write(k.get(), "EARLIER", 7), 7);
    ASSERT_EQ(machine_.kexec_file_load(k.get(), -1, "earlier", KEXEC_FILE_NO_INITRAMFS), 0);
    auto engine = make(with_payload_settings("reject: true"));
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    Status s = (*engine)->run_update({"bundle.zip", false, false, {}});
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().kind(), ErrorKind::rejected);
    EXPECT_FALSE(std::filesystem::exists(dir_ / "boot-log"));
    EXPECT_EQ(test::read_file(dir_ / "run/activate/kexec/kernel"), "EARLIER");
    EXPECT_FALSE(std::filesystem::exists(dir_ / "run/activate/reboot"));
}

// Once writing starts, an image staged by an earlier run (it may start the slot being
// overwritten) is unloaded and the target's entry is disabled, and stays so when the write fails.
TEST_F(EngineTest, WritingUnloadsAnEarlierImageAndAFailureLeavesTheEntryDisabled) {
    UniqueFd k(::memfd_create("k", MFD_CLOEXEC));
    ASSERT_EQ(::write(k.get(), "EARLIER", 7), 7);
    ASSERT_EQ(machine_.kexec_file_load(k.get(), -1, "earlier", KEXEC_FILE_NO_INITRAMFS), 0);
    auto engine = make(with_payload_settings("fail: true"));
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    Status s = (*engine)->run_update({"bundle.zip", false, false, {}});
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(test::read_file(dir_ / "boot-log"), "begin B\n");
    EXPECT_FALSE(*machine_.kexec_loaded());
    EXPECT_FALSE(std::filesystem::exists(dir_ / "run/activate/reboot"));
}

TEST_F(EngineTest, UpdateWhoseJumpFailsUnstages) {
    auto engine = make(with_activation_settings(kUpdate, "fail_activate: true"));
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    Status s = (*engine)->run_update({"bundle.zip", false, false, {}});
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message().find("fake jump failed"), std::string::npos);
    EXPECT_EQ(test::read_file(dir_ / "slot-B"), "installed from bundle.zip");
    EXPECT_FALSE(*machine_.kexec_loaded());
    EXPECT_FALSE(std::filesystem::exists(dir_ / "run/activate/reboot"));
}

// A firmware reboot: the engine sets BootNext through the boot control as a step of its own,
// after the strategy staged and before the target is listed in the boot order; the plan says so.
TEST_F(EngineTest, RebootUpdateSetsBootNextAsAPlannedStep) {
    std::string yaml = with_activation_settings(kUpdate, "supports_reboot: true");
    yaml.replace(yaml.find("activation_mode: kexec"), 22, "activation_mode: reboot");
    auto engine = make(yaml);
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    std::ostringstream plan;
    (*engine)->print_plan(plan);
    // A firmware boot prepares no payload: the stage step follows finish-install.
    EXPECT_NE(plan.str().find("  5. finish-install [fake]\n       - note finish\n"
                              "         writes: /boot-log\n"
                              "  6. stage [fake]\n       - stage with fake kexec\n"
                              "  7. boot-next [fake]\n       - note next\n"
                              "         writes: /boot-log\n"
                              "  8. boot-order [fake]\n"),
              std::string::npos)
        << plan.str();
    Status s = (*engine)->run_update({"bundle.zip", false, false, {}});
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_EQ(test::read_file(dir_ / "boot-log"), "begin B\nfinish B\nnext B\norder B after A\n");
}

// A step after boot-next fails: BootNext is cleared again, so that no later reboot starts the
// target, and the staged image is unloaded.
TEST_F(EngineTest, RebootUpdateWhoseJumpFailsClearsBootNext) {
    std::string yaml =
        with_activation_settings(kUpdate, "supports_reboot: true, fail_activate: true");
    yaml.replace(yaml.find("activation_mode: kexec"), 22, "activation_mode: reboot");
    auto engine = make(yaml);
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    Status s = (*engine)->run_update({"bundle.zip", false, false, {}});
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message().find("fake jump failed"), std::string::npos);
    EXPECT_EQ(test::read_file(dir_ / "boot-log"),
              "begin B\nfinish B\nnext B\norder B after A\nclear\n");
    EXPECT_FALSE(*machine_.kexec_loaded());
    EXPECT_FALSE(std::filesystem::exists(dir_ / "run/activate/reboot"));
}

// A boot-next that fails undoes the staging, clears no BootNext it did not set, and never jumps.
TEST_F(EngineTest, AFailedBootNextUnstagesAndDoesNotJump) {
    std::string yaml = with_activation_settings(kUpdate, "supports_reboot: true");
    yaml.replace(yaml.find("activation_mode: kexec"), 22, "activation_mode: reboot");
    yaml.replace(yaml.find("boot_control: {plugin: fake}"), 28,
                 "boot_control: {plugin: fake, settings: {fail_in: boot_next}}");
    auto engine = make(yaml);
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    Status s = (*engine)->run_update({"bundle.zip", false, false, {}});
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message().find("fake boot_next failed"), std::string::npos)
        << s.error().message();
    EXPECT_EQ(test::read_file(dir_ / "boot-log"), "begin B\nfinish B\n");
    EXPECT_FALSE(*machine_.kexec_loaded());
    EXPECT_FALSE(std::filesystem::exists(dir_ / "run/activate/reboot"));
}

// StageRequest: a mode that stages no kernel gets no payload (not an empty one), whether the
// pipeline prepared one (plain staging) or not (slot update); the fake refuses anything else.
TEST_F(EngineTest, AStrategyThatNeedsNoKernelIsGivenNoPayload) {
    auto staging = make(with_activation_settings(
        "activation_mode: kexec\npayload: {plugin: fake}\nactivation: {plugin: fake}\n",
        "needs_kernel: false"));
    ASSERT_TRUE(staging.ok()) << staging.error().message();
    Status s = (*staging)->run_update({"", false, false, {}});
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_FALSE(*machine_.kexec_loaded());
    EXPECT_EQ(test::read_file(dir_ / "run/activate/reboot"), "reboot\n");

    auto update = make(with_activation_settings(kUpdate, "needs_kernel: false"));
    ASSERT_TRUE(update.ok()) << update.error().message();
    std::ostringstream plan;
    (*update)->print_plan(plan);
    EXPECT_EQ(plan.str().find("load-kernel ["), std::string::npos) << plan.str();
    s = (*update)->run_update({"bundle.zip", false, false, {}});
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_EQ(test::read_file(dir_ / "run/activate/reboot"), "reboot\nreboot\n");
}

TEST_F(EngineTest, PayloadThatWritesWithoutBeforeWritingIsRefused) {
    auto engine = make(with_payload_settings("skip_before_writing: true"));
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    Status s = (*engine)->run_update({"bundle.zip", false, false, {}});
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().kind(), ErrorKind::internal);
    EXPECT_NE(s.error().message().find("before_writing"), std::string::npos) << s.error().message();
    EXPECT_FALSE(std::filesystem::exists(dir_ / "run/activate/reboot"));
}

// The last log line before the jump names the slot and the way in (the e2e switch-time
// measurement starts at it).
TEST_F(EngineTest, UpdateLogsTheActivationBeforeJumping) {
    logger_.set_threshold(LogLevel::info);
    auto engine = make(kUpdate);
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    ::testing::internal::CaptureStderr();
    Status s = (*engine)->run_update({"bundle.zip", false, false, {}});
    const std::string log = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_NE(log.find("activating slot B by kexec now"), std::string::npos) << log;
    EXPECT_EQ(test::read_file(dir_ / "run/activate/reboot"), "kexec\n");
}

TEST_F(EngineTest, SecondUpdateWhileLockedIsBusy) {
    auto engine = make(kUpdate);
    ASSERT_TRUE(engine.ok());
    Result<FileLock> held = sysroot_.lock("/run/activate/lock");
    ASSERT_TRUE(held.ok());
    Status s = (*engine)->run_update({"b", false, false, {}});
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().kind(), ErrorKind::busy);
    EXPECT_FALSE(std::filesystem::exists(dir_ / "boot-log"));
}

TEST_F(EngineTest, MarkGoodUsesTheRunningSlot) {
    auto engine = make(kUpdate);
    ASSERT_TRUE(engine.ok());
    ASSERT_TRUE((*engine)->mark_good().ok());
    EXPECT_EQ(test::read_file(dir_ / "boot-log"), "good A\n");
}

// ----- a mode the engine does not know: declared by its plugin -----

// An activation in the manner of systemd's soft-reboot: a new userspace on the same kernel,
// neither a staged kernel nor the firmware. Everything about it is this plugin's; the engine
// knows only its handover. It refuses a payload (it must get none) and records its jump in the
// sysroot's /soft-reboot.
class SoftRebootActivation : public ActivationStrategy {
  public:
    explicit SoftRebootActivation(const Sysroot* sysroot) : sysroot_(sysroot) {}
    std::vector<ActivationModeInfo> modes() const override {
        return {{"soft-reboot", Handover::same_kernel}};
    }
    Status stage(StageRequest& request) override {
        if (request.payload) return Error(ErrorKind::internal, "soft-reboot was given a payload");
        if (!request.target || request.mode != "soft-reboot")
            return Error(ErrorKind::internal, "soft-reboot: no target or another mode");
        target_ = request.target->letter;
        return {};
    }
    Status unstage() override {
        target_ = 0;
        return {};
    }
    Status activate(std::chrono::milliseconds, bool) override {
        if (!target_) return Error(ErrorKind::internal, "soft-reboot: nothing staged");
        return sysroot_->write_file_atomic("/soft-reboot", std::string("into slot ") + target_);
    }
    std::vector<PlanStep> plan_stage() const override { return {{"remember the slot", {}, {}}}; }
    std::vector<PlanStep> plan_activate() const override {
        return {{"soft-reboot into the slot", {}, {"/soft-reboot"}}};
    }

  private:
    const Sysroot* sysroot_;
    char target_ = 0;
};

Result<std::unique_ptr<ActivationStrategy>> create_soft_reboot(const PluginContext& context,
                                                               Settings& settings) {
    ACTIVATE_TRY(settings.finish());
    return std::unique_ptr<ActivationStrategy>(
        std::make_unique<SoftRebootActivation>(context.sysroot));
}

}  // namespace
}  // namespace activate

ACTIVATE_DEFINE_PLUGIN(softreboot, "softreboot", "0", nullptr, activate::create_soft_reboot,
                       nullptr, nullptr)

namespace activate {
namespace {

const std::string kSoftRebootUpdate = R"(activation_mode: soft-reboot
payload:
  plugin: fake_slots
activation: {plugin: softreboot}
boot_control: {plugin: fake}
)";

// A slot update by a mode no core code names: the plan is the run, step for step; no payload is
// prepared (the strategy refuses one), no BootNext set, no boot order touched; the trial records
// the plugin's mode and its handover.
TEST_F(EngineTest, ADeclaredModeRunsASlotUpdateWithoutCoreSupport) {
    PluginRegistry registry({activate_builtin_softreboot}, {FAKE_PLUGIN_DIR});
    Result<YAML::Node> root = load_policy_yaml_text(kSoftRebootUpdate, "e.yaml");
    ASSERT_TRUE(root.ok());
    Result<Policy> policy = parse_policy(*root, "e.yaml");
    ASSERT_TRUE(policy.ok()) << policy.error().message();
    logger_.set_threshold(LogLevel::debug);
    auto engine = Engine::create(std::move(policy).value(), registry, sysroot_, logger_);
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    std::ostringstream plan;
    (*engine)->print_plan(plan);
    const std::vector<std::string> planned = test_support::planned_steps(plan.str());
    EXPECT_EQ(planned, (std::vector<std::string>{"lock [engine]", "find-slots [fake_slots]",
                                                 "check-trial [engine]", "install [fake_slots]",
                                                 "finish-install [fake]", "stage [softreboot]",
                                                 "record-trial [engine]", "jump [softreboot]"}))
        << plan.str();
    EXPECT_NE(plan.str().find("activation_mode: soft-reboot (same_kernel)\n"), std::string::npos)
        << plan.str();

    ::testing::internal::CaptureStderr();
    Status s = (*engine)->run_update({"bundle.zip", false, false, {}});
    const std::string log = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_EQ(test_support::executed_steps(log), planned) << log;
    EXPECT_EQ(test::read_file(dir_ / "soft-reboot"), "into slot B");
    EXPECT_EQ(test::read_file(dir_ / "boot-log"), "begin B\nfinish B\n");  // no next, no order
    EXPECT_FALSE(*machine_.kexec_loaded());
    EXPECT_FALSE(std::filesystem::exists(dir_ / "run/activate/reboot"));
    auto record = ActivationRecord::read(sysroot_, "/esp/EFI/activate/activation.json");
    ASSERT_TRUE(record.ok()) << record.error().message();
    ASSERT_TRUE(record->trial.has_value());
    EXPECT_EQ(record->trial->mode, "soft-reboot");
    EXPECT_EQ(record->trial->handover, Handover::same_kernel);
}

// A mode the plugin does not declare is refused when the engine is made, before any step: the
// error names the file, the key, the value and the declared modes.
TEST_F(EngineTest, UndeclaredModeIsRefusedBeforeAnythingRuns) {
    PluginRegistry registry({activate_builtin_softreboot}, {FAKE_PLUGIN_DIR});
    std::string yaml = kSoftRebootUpdate;
    yaml.replace(0, std::string("activation_mode: soft-reboot").size(), "activation_mode: kexec");
    Result<YAML::Node> root = load_policy_yaml_text(yaml, "e.yaml");
    ASSERT_TRUE(root.ok());
    Result<Policy> policy = parse_policy(*root, "e.yaml");
    ASSERT_TRUE(policy.ok()) << policy.error().message();
    auto engine = Engine::create(std::move(policy).value(), registry, sysroot_, logger_);
    ASSERT_FALSE(engine.ok());
    EXPECT_EQ(engine.error().kind(), ErrorKind::policy);
    EXPECT_EQ(engine.error().message(),
              "e.yaml:1:18: activation_mode: activation plugin 'softreboot' declares no mode "
              "'kexec'; it declares soft-reboot (same_kernel) (or set none: stage, do not jump)");
    EXPECT_TRUE(std::filesystem::is_empty(dir_.path()));
}

}  // namespace
}  // namespace activate
