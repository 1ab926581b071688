// `activate takeover-message encode|decode`: the takeover stdio messages (TakeoverInit in,
// TakeoverResponse out) converted from and to protobuf's JSON mapping, for tools that build and
// read them without a protobuf library (contrib/ansible). Linked into the `activate` executable.
#pragma once

#include <activate/result.hpp>
#include <string>

namespace activate {

// argv[0] is "takeover-message"; a failure is returned for run_cli to report (README "Exit
// codes"): usage (2) for a bad command line, input (5) for input that is not the message.
// `program` names the executable in messages.
Status run_takeover_message_cli(int argc, char** argv, const std::string& program);

}  // namespace activate
