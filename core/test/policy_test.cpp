#include <activate/policy.hpp>
#include <gtest/gtest.h>

#include "test_support.hpp"

namespace activate {
namespace {

const char* kValid = R"(protocol: stdio-protobuf
activation_mode: kexec
delay: 5s
payload:
  plugin: fake
  settings:
    fail: false
activation:
  plugin: fake
captures:
  - plugin: fake
    settings: {interface: eth9}
)";

Result<Policy> parse_text(const std::string& text) {
    Result<YAML::Node> root = load_policy_yaml_text(text, "t.yaml");
    if (!root.ok()) return root.error();
    return parse_policy(*root, "t.yaml");
}

std::string error_of(const std::string& text) {
    Result<Policy> p = parse_text(text);
    return p.ok() ? "" : p.error().message();
}

TEST(Policy, ParsesPipelineAndPluginSections) {
    Result<Policy> p = parse_text(kValid);
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_EQ(p->protocol, Protocol::stdio_protobuf);
    EXPECT_EQ(p->mode, "kexec");
    EXPECT_EQ(p->delay.count(), 5000);
    EXPECT_EQ(p->payload.name, "fake");
    EXPECT_EQ(p->captures.size(), 1u);
    EXPECT_EQ(p->captures[0].settings.path(), "captures.0.settings");
    EXPECT_FALSE(p->boot_control.has_value());
}

TEST(Policy, DelayDefaultsToFiveSecondsForTakeoverOnly) {
    const std::string plugins = "payload: {plugin: fake}\nactivation: {plugin: fake}\n";
    Result<Policy> takeover =
        parse_text("protocol: stdio-protobuf\nactivation_mode: kexec\n" + plugins);
    ASSERT_TRUE(takeover.ok()) << takeover.error().message();
    EXPECT_EQ(takeover->delay.count(), 5000);
    Result<Policy> update = parse_text("activation_mode: kexec\n" + plugins);
    ASSERT_TRUE(update.ok()) << update.error().message();
    EXPECT_EQ(update->delay.count(), 0);
}

TEST(Policy, InputTimeoutDefaultsToAMinuteAndBelongsToTakeover) {
    const std::string plugins = "payload: {plugin: fake}\nactivation: {plugin: fake}\n";
    const std::string takeover = "protocol: stdio-protobuf\nactivation_mode: kexec\n" + plugins;
    Result<Policy> p = parse_text(takeover);
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_EQ(p->input_timeout.count(), 60000);
    p = parse_text(takeover + "input_timeout: 250ms\n");
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_EQ(p->input_timeout.count(), 250);
    EXPECT_NE(
        error_of(takeover + "input_timeout: 0\n").find("input_timeout: must be longer than 0"),
        std::string::npos);
    EXPECT_NE(error_of("activation_mode: kexec\ninput_timeout: 5s\n" + plugins)
                  .find("input_timeout: only a stdio-protobuf pipeline reads stdin"),
              std::string::npos);
}

TEST(Policy, ActivationModeIsRequired) {
    EXPECT_EQ(error_of("payload: {plugin: fake}\nactivation: {plugin: fake}\n"),
              "t.yaml:1:1: activation_mode: required setting is missing");
}

// A mode name is the activation plugin's to declare: only an empty one is refused here (the
// engine checks the name against the plugin, EngineTest.UndeclaredModeIsRefusedBeforeAnythingRuns).
TEST(Policy, EmptyModeAndUnknownProtocolAreRefused) {
    EXPECT_EQ(error_of("activation_mode: ''\n"),
              "t.yaml:1:18: activation_mode: is empty: set none or a mode the activation plugin "
              "declares");
    EXPECT_NE(error_of("protocol: carrier-pigeon\nactivation_mode: none\n").find("t.yaml:1:11: protocol"),
              std::string::npos);
}

TEST(Policy, UnknownTopLevelKey) {
    std::string e = error_of(std::string(kValid) + "colour: blue\n");
    EXPECT_NE(e.find("t.yaml:13:1: colour: unknown setting"), std::string::npos) << e;
}

TEST(Policy, UnknownKeyInPluginReference) {
    std::string e = error_of("activation_mode: none\npayload: {plugin: fake, setings: {}}\n"
                             "activation: {plugin: fake}\n");
    EXPECT_NE(e.find("payload.setings: unknown setting"), std::string::npos) << e;
}

TEST(Policy, MissingPluginSection) {
    std::string e = error_of("activation_mode: none\npayload: {plugin: fake}\n");
    EXPECT_NE(e.find("activation: required section is missing"), std::string::npos) << e;
}

TEST(Policy, WrongTypeForDelay) {
    std::string e = error_of("activation_mode: none\ndelay: [1]\n");
    EXPECT_NE(e.find("t.yaml:2:8: delay: expected a duration"), std::string::npos) << e;
}

TEST(Policy, YamlSyntaxErrorHasPosition) {
    Result<YAML::Node> r = load_policy_yaml_text("a: [1, 2\nb: c\n", "bad.yaml");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().kind(), ErrorKind::policy);
    EXPECT_EQ(r.error().message().rfind("bad.yaml:", 0), 0u) << r.error().message();
}

TEST(Policy, MissingFile) {
    Result<YAML::Node> r = load_policy_yaml("/nonexistent/policy.yaml");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(),
              "/nonexistent/policy.yaml: cannot read the policy file: No such file or directory");
}

// yaml-cpp's LoadFile threw std::ios_failure (not a YAML::Exception) on a directory.
TEST(Policy, DirectoryAndEndlessFilesAreErrorsNotExceptions) {
    test::TempDir dir;
    Result<YAML::Node> r = load_policy_yaml(dir.path().string());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().kind(), ErrorKind::policy);
    EXPECT_EQ(r.error().message(), dir.path().string() +
                                       ": cannot read the policy file: it is a directory; "
                                       "--policy names a YAML file");
    r = load_policy_yaml("/dev/zero");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("/dev/zero: cannot read the policy file: larger than 1 MiB"),
              std::string::npos)
        << r.error().message();
    test::write_file(dir / "p.yaml", "activation_mode: kexec\n");
    r = load_policy_yaml((dir / "p.yaml").string());
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ((*r)["activation_mode"].as<std::string>(), "kexec");
}

TEST(Policy, DuplicateKeyIsRefusedAtItsSecondOccurrence) {
    EXPECT_EQ(error_of("activation_mode: none\ndelay: 1s\ndelay: 9s\n"),
              "t.yaml:3:1: delay: duplicate key 'delay' (first given at line 2)");
    EXPECT_EQ(error_of("activation_mode: none\npayload:\n  plugin: fake\n  settings:\n"
                       "    fail: false\n    fail: true\n"),
              "t.yaml:6:5: payload.settings.fail: duplicate key 'fail' (first given at line 5)");
    EXPECT_EQ(error_of("activation_mode: none\ncaptures: [{plugin: a}, {plugin: b, plugin: c}]\n"),
              "t.yaml:2:37: captures.1.plugin: duplicate key 'plugin' (first given at line 2)");
}

TEST(Policy, SelfReferencingAliasEndsTheDuplicateCheck) {
    // An anchor used inside itself makes a cyclic tree; the check must still terminate.
    std::string e = error_of("activation_mode: none\npayload: {plugin: fake}\n"
                             "activation: {plugin: fake}\nloop: &a [*a, *a]\n");
    EXPECT_NE(e.find("loop: unknown setting"), std::string::npos) << e;
}

TEST(Policy, LockFileMustBeAbsolute) {
    EXPECT_EQ(error_of("activation_mode: none\nlock_file: run/lock\n"),
              "t.yaml:2:12: lock_file: must be an absolute path");
}

TEST(Policy, EmptyPluginNameIsRefused) {
    EXPECT_EQ(
        error_of("activation_mode: none\npayload: {plugin: ''}\nactivation: {plugin: fake}\n"),
        "t.yaml:2:19: payload.plugin: plugin name is empty");
}

// Plugins are found by name in the plugin directory; a name that is a path is never one.
TEST(Policy, PluginNameIsLettersDigitsUnderscoreAndDash) {
    for (const char* name : {"/tmp/x/evil", "../../x/evil", "a/b", "..", "uki.so", "e fi", "ü"}) {
        const std::string e =
            error_of(std::string("activation_mode: none\npayload: {plugin: fake}\n"
                                 "captures:\n  - plugin: \"") +
                     name + "\"\nactivation: {plugin: fake}\n");
        EXPECT_EQ(e, std::string("t.yaml:4:13: captures.0.plugin: '") + name +
                         "' is not a plugin name (letters, digits, '_' and '-' only; plugins are "
                         "found by name in the plugin directory, see --plugin-dir)")
            << name;
    }
    EXPECT_EQ(error_of("activation_mode: none\npayload: {plugin: payload_uki-2}\n"
                       "activation: {plugin: Efi9}\n"),
              "");
    EXPECT_TRUE(is_plugin_name("activation_efi"));
    EXPECT_FALSE(is_plugin_name(""));
}

TEST(Policy, PolicyMustBeAMapping) {
    EXPECT_EQ(error_of("- activation_mode: none\n"), "t.yaml: a policy must be a YAML mapping");
    EXPECT_EQ(error_of("just a string\n"), "t.yaml: a policy must be a YAML mapping");
}

TEST(PolicyOverride, SetsNestedValuesAndListIndices) {
    YAML::Node root = *load_policy_yaml_text(kValid, "t.yaml");
    ASSERT_TRUE(apply_policy_override(root, "payload.settings.fail=true").ok());
    ASSERT_TRUE(apply_policy_override(root, "captures.0.settings.interface=bond0").ok());
    ASSERT_TRUE(apply_policy_override(root, "delay=250ms").ok());
    ASSERT_TRUE(apply_policy_override(root, "activation.settings.fail_stage=false").ok());
    Result<Policy> p = parse_policy(root, "t.yaml");
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_EQ(p->delay.count(), 250);
    EXPECT_EQ(*p->payload.settings.boolean_or("fail", false), true);
    EXPECT_EQ(*p->captures[0].settings.string_or("interface", ""), "bond0");
}

TEST(PolicyOverride, BadAssignmentsAreUsageErrors) {
    YAML::Node root = *load_policy_yaml_text(kValid, "t.yaml");
    for (const char* bad : {"noequals", "=x", "captures.7.settings.x=1", "delay.sub=1",
                            "payload..x=1"}) {
        Status s = apply_policy_override(root, bad);
        ASSERT_FALSE(s.ok()) << bad;
        EXPECT_EQ(s.error().kind(), ErrorKind::usage) << bad;
    }
}

TEST(PolicyOverride, ErrorsInOverriddenValuesNameTheOverride) {
    auto error_after = [](const std::string& assignment) {
        YAML::Node root = *load_policy_yaml_text(kValid, "t.yaml");
        Status s = apply_policy_override(root, assignment);
        if (!s.ok()) return "apply: " + s.error().message();
        Result<Policy> p = parse_policy(root, "t.yaml");
        return p.ok() ? std::string() : p.error().message();
    };
    EXPECT_EQ(error_after("delay=[1]"), "--set delay=[1]: delay: expected a duration, got a list");
    EXPECT_EQ(error_after("captures=[{plugin: fake}, 7]"),
              "--set captures=[{plugin: fake}, 7]: captures.1: expected a mapping, got a scalar");
    // A section the override created has no place in the file either.
    EXPECT_EQ(error_after("boot_control.colour=blue"),
              "--set boot_control.colour=blue: boot_control.plugin: required setting is missing");
    // Values from the file keep their position.
    EXPECT_EQ(error_after("delay=1s").find("--set"), std::string::npos);
}

TEST(PolicyOverride, OriginSurvivesClone) {
    // serve clones the overridden policy for each request.
    YAML::Node root = *load_policy_yaml_text(kValid, "t.yaml");
    ASSERT_TRUE(apply_policy_override(root, "delay=soon").ok());
    Result<Policy> p = parse_policy(YAML::Clone(root), "t.yaml");
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error().message().rfind("--set delay=soon: delay: expected a duration", 0), 0u)
        << p.error().message();
}

const char* kSlotUpdate =
    "activation_mode: kexec\npayload: {plugin: fake}\n"
    "activation: {plugin: fake}\nboot_control: {plugin: fake}\n";

TEST(Policy, AssessmentSectionIsOptionalWithATenMinuteDeadline) {
    Result<Policy> none = parse_text(kSlotUpdate);
    ASSERT_TRUE(none.ok()) << none.error().message();
    EXPECT_FALSE(none->assessment.given);
    EXPECT_EQ(none->assessment.deadline, std::chrono::minutes(10));
    EXPECT_TRUE(none->assessment.checks.empty());

    Result<Policy> p = parse_text(std::string(kSlotUpdate) +
                                  "assessment:\n"
                                  "  deadline: 15m\n"
                                  "  checks:\n"
                                  "    - name: system-running\n"
                                  "      command: [systemctl, is-system-running]\n"
                                  "      timeout: 5m\n"
                                  "    - name: ping\n"
                                  "      command: [/bin/ping, -c, 1, 10.0.0.1]\n");
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_TRUE(p->assessment.given);
    EXPECT_EQ(p->assessment.deadline, std::chrono::minutes(15));
    ASSERT_EQ(p->assessment.checks.size(), 2u);
    EXPECT_EQ(p->assessment.checks[0].name, "system-running");
    EXPECT_EQ(p->assessment.checks[0].command,
              (std::vector<std::string>{"systemctl", "is-system-running"}));
    EXPECT_EQ(p->assessment.checks[0].timeout, std::chrono::minutes(5));
    // Without its own timeout a check may take the whole deadline.
    EXPECT_EQ(p->assessment.checks[1].timeout, std::chrono::minutes(15));
}

TEST(Policy, AssessmentErrorsNameFileLineAndKey) {
    const std::string base = std::string(kSlotUpdate) + "assessment:\n";  // line 5
    const std::pair<std::string, std::string> cases[] = {
        {"  deadlin: 5m\n", "t.yaml:6:3: assessment.deadlin: unknown setting"},
        {"  deadline: 0s\n", "t.yaml:6:13: assessment.deadline: must be longer than 0"},
        {"  deadline: soon\n", "t.yaml:6:13: assessment.deadline: expected a duration"},
        {"  checks: {name: x}\n", "t.yaml:6:11: assessment.checks: expected a list"},
        {"  checks:\n    - command: [true]\n",
         "assessment.checks.0.name: required setting is missing"},
        {"  checks:\n    - name: ''\n      command: [true]\n",
         "t.yaml:7:13: assessment.checks.0.name: must not be empty"},
        {"  checks:\n    - name: x\n", "assessment.checks.0.command: required setting is missing"},
        {"  checks:\n    - name: x\n      command: []\n",
         "t.yaml:8:16: assessment.checks.0.command: must name a program"},
        {"  checks:\n    - name: x\n      command: ['', a]\n",
         "t.yaml:8:16: assessment.checks.0.command: the program (first element) must not be "
         "empty"},
        {"  checks:\n    - name: x\n      command: [[a]]\n",
         "assessment.checks.0.command: expected a list of strings"},
        {"  checks:\n    - name: x\n      command: true\n",
         "t.yaml:8:16: assessment.checks.0.command: expected a list, got"},
        {"  checks:\n    - name: x\n      command: [true]\n      timeout: 0\n",
         "t.yaml:9:16: assessment.checks.0.timeout: must be longer than 0"},
        {"  checks:\n    - name: x\n      command: [true]\n      retries: 3\n",
         "t.yaml:9:7: assessment.checks.0.retries: unknown setting"},
        {"  checks:\n    - name: x\n      command: [true]\n    - name: x\n      command: [false]\n",
         "t.yaml:9:13: assessment.checks.1.name: \"x\" is already the name of "
         "assessment.checks.0"},
    };
    for (const auto& [yaml, message] : cases) {
        const std::string e = error_of(base + yaml);
        EXPECT_NE(e.find(message), std::string::npos) << yaml << "\n=> " << e;
    }
}

}  // namespace
}  // namespace activate
