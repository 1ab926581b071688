// The command line shared by `activate` (plugins from a directory) and the self-contained
// `takeover` binary (built-in plugins and an embedded default policy).
#pragma once

#include <string>
#include <vector>

#include <activate/plugin_api.hpp>

namespace activate {

struct CliDefaults {
    std::string program = "activate";
    std::vector<ActivatePluginEntry> builtins;
    // When set, used if --policy is absent (the takeover binary's compiled-in policy).
    std::string embedded_policy;
    std::string embedded_policy_name;
};

// Returns the process exit code (README "Exit codes").
int run_cli(int argc, char** argv, const CliDefaults& defaults);

}  // namespace activate
