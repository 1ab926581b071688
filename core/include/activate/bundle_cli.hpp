// `activate bundle keygen|create|verify|info`: making and checking signed bundles
// (docs/bundle-format.md). Linked into the `activate` executable only, so that the static
// `takeover` binary carries neither the bundle writer nor libcurl; run_cli reaches it through
// CliDefaults::bundle_command.
#pragma once

#include <string>

namespace activate {

// argv[0] is "bundle"; returns the process exit code (README "Exit codes"). `program` names the
// executable in messages.
int run_bundle_cli(int argc, char** argv, const std::string& program);

}  // namespace activate
