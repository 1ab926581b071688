// `activate takeover-message encode|decode`: the takeover stdio messages (TakeoverInit in,
// TakeoverResponse out) converted from and to protobuf's JSON mapping, for tools that build and
// read them without a protobuf library (contrib/ansible). Linked into the `activate` executable.
#pragma once

#include <string>

namespace activate {

// argv[0] is "takeover-message"; returns the process exit code (README "Exit codes"): 2 for a bad
// command line, 5 for input that is not the message. `program` names the executable in messages.
int run_takeover_message_cli(int argc, char** argv, const std::string& program);

}  // namespace activate
