// The command line shared by `activate` (plugins from a directory) and the self-contained
// `takeover` binary (built-in plugins and an embedded default policy).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <activate/plugin_api.hpp>

namespace activate {

// A verb that is a tool rather than an engine run (it loads no policy): `bundle`,
// `takeover-message`. argv[0] is the verb. It fails with an Error, which run_cli reports like
// every other verb's: one error path, one exit-code table (README "Exit codes").
struct ToolVerb {
    std::string name;
    std::string usage;    // the help's line after the program name, e.g. "bundle keygen|... ..."
    std::string summary;  // one line in the help's list of verbs
    Status (*run)(int argc, char** argv, const std::string& program) = nullptr;
};

struct CliDefaults {
    std::string program = "activate";
    std::vector<ActivatePluginEntry> builtins;
    // When set, used if --policy is absent (the takeover binary's compiled-in policy).
    std::string embedded_policy;
    std::string embedded_policy_name;
    // The tool verbs of this binary: `activate` has `bundle` (activate/bundle_cli.hpp) and
    // `takeover-message`; the static takeover binary has none, so that it needs neither libcurl
    // nor the bundle writer.
    std::vector<ToolVerb> tool_verbs;
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
