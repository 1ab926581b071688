// The command line shared by `activate` (plugins from a directory) and the self-contained
// `takeover` binary (built-in plugins and an embedded default policy).
#pragma once

#include <filesystem>
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
    // Runs `<program> bundle ...` (argv[0] is "bundle"): see activate/bundle_cli.hpp. Null in
    // binaries without the bundle tools, so the static takeover binary needs neither libcurl
    // nor the bundle writer.
    int (*bundle_command)(int argc, char** argv, const std::string& program) = nullptr;
};

// The --bundle argument as the payload will open it (a system path or a URL). URLs and absolute
// paths stay as they are. On the live system a relative path is taken relative to `cwd`, where
// the user stands; under another sysroot it is a usage error, since "relative" could mean the
// sysroot's root or the directory outside it and neither guess is safe.
Result<std::string> resolve_bundle_argument(const std::string& bundle, const Sysroot& sysroot,
                                            const std::filesystem::path& cwd);

// Returns the process exit code (README "Exit codes").
int run_cli(int argc, char** argv, const CliDefaults& defaults);

}  // namespace activate
