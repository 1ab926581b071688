// Fuzzes the policy front end: YAML parsing, --set overrides and the engine's own schema checks.
// Any input must produce a policy or an Error, never a crash or an escaping exception.
#include <activate/policy.hpp>

#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    // The first line, when it looks like KEY=VALUE, doubles as a --set override.
    std::string override_line = text.substr(0, text.find('\n'));
    activate::Result<YAML::Node> root = activate::load_policy_yaml_text(text, "fuzz.yaml");
    if (!root.ok()) return 0;
    if (override_line.find('=') != std::string::npos)
        (void)activate::apply_policy_override(*root, override_line);
    (void)activate::parse_policy(*root, "fuzz.yaml");
    return 0;
}
