// The policy: which plugins make up the pipeline and how the pipeline behaves. Parsing checks the
// shape of the file; plugin sections are validated by the plugins themselves (engine.hpp).
// Schema: docs/policy.md.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <string>
#include <vector>

#include <activate/plugin_api.hpp>
#include <activate/settings.hpp>

namespace activate {

enum class Protocol { none, stdio_protobuf };
const char* to_string(Protocol protocol);

// One plugin named in the policy: its name and its own settings section.
struct PluginRef {
    std::string name;
    Settings section;   // the mapping holding `plugin:` (for error positions)
    Settings settings;  // its `settings:` mapping, handed to the plugin factory
};

inline constexpr std::chrono::milliseconds kDefaultInputTimeout{60000};

struct Policy {
    std::string file;
    Protocol protocol = Protocol::none;
    ActivationMode mode = ActivationMode::none;
    std::chrono::milliseconds delay{0};
    // stdio-protobuf: the whole TakeoverInit must have arrived (stdin closed) within this.
    std::chrono::milliseconds input_timeout = kDefaultInputTimeout;
    std::string lock_file;
    PluginRef payload;
    PluginRef activation;
    std::optional<PluginRef> boot_control;
    std::vector<PluginRef> captures;
    Settings top;  // for errors about top-level keys
};

// Reads and parses YAML; syntax errors carry file:line:column.
Result<YAML::Node> load_policy_yaml(const std::string& file);
// The same for a policy compiled into the binary; `name` stands in for the file name in errors.
Result<YAML::Node> load_policy_yaml_text(const std::string& text, const std::string& name);
// Applies one `--set a.b.c=value` override; the value is parsed as YAML (so lists work).
Status apply_policy_override(YAML::Node& root, const std::string& assignment);
// Checks the pipeline keys and the shape of the plugin sections.
Result<Policy> parse_policy(const YAML::Node& root, const std::string& file);

}  // namespace activate
