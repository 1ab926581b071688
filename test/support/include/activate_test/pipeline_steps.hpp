// The pipeline's steps as a dry run lists them and as a run logs them (issue 14 §1), so that a
// test can hold the two side by side: "<name> [<actor>]" each, in order.
#pragma once

#include <string>
#include <vector>

namespace activate::test_support {

// The steps of a dry-run plan (`activate --dry-run` stdout, format in docs/plugins.md): the
// "  <n>. <name> [<actor>]" lines of its "steps:" block, numbered 1, 2, ... without gaps.
// An unnumbered or misnumbered step line is returned as "bad line: <line>".
std::vector<std::string> planned_steps(const std::string& plan);

// The steps a run executed, from its `--log-level debug` stderr: the
// "activate[engine] debug: step <n>/<count>: <name> [<actor>]" lines, in order.
std::vector<std::string> executed_steps(const std::string& log);

}  // namespace activate::test_support
