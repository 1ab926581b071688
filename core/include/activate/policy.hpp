// The policy: which plugins make up the pipeline and how the pipeline behaves. Parsing checks the
// shape of the file; plugin sections are validated by the plugins themselves (engine.hpp).
// Schema: docs/policy.md.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include <activate/plugin_api.hpp>
#include <activate/settings.hpp>
#include <activate/watchdog.hpp>

namespace activate {

enum class Protocol { none, stdio_protobuf };
const char* to_string(Protocol protocol);

// One plugin named in the policy: its name and its own settings section.
struct PluginRef {
    std::string name;
    Settings section;   // the mapping holding `plugin:` (for error positions)
    Settings settings;  // its `settings:` mapping, handed to the plugin factory
};

// One health check of the boot assessment: a command run with a timeout; it passes when it exits
// with status 0.
struct HealthCheck {
    std::string name;
    std::vector<std::string> command;  // argv; argv[0] is looked up in PATH (execvp)
    std::chrono::milliseconds timeout{0};
};

// The optional `assessment:` section: how `activate assess` decides whether a slot on trial is
// good (docs/boot-assessment.md).
struct AssessmentPolicy {
    bool given = false;  // the section is present (it needs a slot payload)
    // From the jump; a trial not assessed good by then has failed.
    std::chrono::milliseconds deadline = std::chrono::minutes(10);
    std::vector<HealthCheck> checks;  // run in order; none: good as soon as assess runs
};

inline constexpr std::chrono::milliseconds kDefaultInputTimeout{60000};

struct Policy {
    std::string file;
    Protocol protocol = Protocol::none;
    // The activation mode by name: "none" (the engine's own: stage, do not jump) or one the
    // activation plugin declares (ActivationStrategy::modes(), checked by the engine).
    std::string mode = "none";
    std::chrono::milliseconds delay{0};
    // stdio-protobuf: the whole TakeoverInit must have arrived (stdin closed) within this.
    std::chrono::milliseconds input_timeout = kDefaultInputTimeout;
    std::string lock_file;
    PluginRef payload;
    PluginRef activation;
    std::optional<PluginRef> boot_control;
    std::vector<PluginRef> captures;
    Settings top;  // for errors about top-level keys
    AssessmentPolicy assessment;
    WatchdogSettings watchdog;  // assessment.watchdog and assessment.panic_reboot
};

// A plugin name: [A-Za-z0-9_-]+. Anything else (a '/', "..") would make it a path to dlopen.
bool is_plugin_name(std::string_view name);

// Reads and parses YAML; syntax errors carry file:line:column.
Result<YAML::Node> load_policy_yaml(const std::string& file);
// The same for a policy compiled into the binary; `name` stands in for the file name in errors.
Result<YAML::Node> load_policy_yaml_text(const std::string& text, const std::string& name);
// Applies one `--set a.b.c=value` override; the value is parsed as YAML (so lists work).
Status apply_policy_override(YAML::Node& root, const std::string& assignment);
// Checks the pipeline keys and the shape of the plugin sections.
Result<Policy> parse_policy(const YAML::Node& root, const std::string& file);

}  // namespace activate
