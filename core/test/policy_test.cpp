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
    EXPECT_EQ(p->mode, ActivationMode::kexec);
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

TEST(Policy, UnknownModeAndProtocolNameTheValue) {
    EXPECT_EQ(error_of("activation_mode: warp\n"),
              "t.yaml:1:18: activation_mode: unknown activation mode 'warp' (expected none, "
              "reboot or kexec)");
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

}  // namespace
}  // namespace activate
