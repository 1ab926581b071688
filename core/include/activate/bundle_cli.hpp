// `activate bundle keygen|create|verify|info`: making and checking signed bundles
// (docs/bundle-format.md). Linked into the `activate` executable only, so that the static
// `takeover` binary carries neither the bundle writer nor libcurl; run_cli reaches it through
// CliDefaults::tool_verbs.
#pragma once

#include <activate/result.hpp>
#include <string>

namespace activate {

// argv[0] is "bundle"; a failure is returned for run_cli to report (README "Exit codes").
// `program` names the executable in messages.
Status run_bundle_cli(int argc, char** argv, const std::string& program);

}  // namespace activate
