// What the reference agent prints: one console line that end-to-end tests match on.
//   AGENT-STARTED {"machine_id":...}   the decoded AgentInit as compact JSON
//   AGENT-ERROR <reason>               /init.pb missing or not a usable AgentInit
#pragma once

#include <string>
#include <string_view>

namespace activate::agent {

inline constexpr std::string_view kStartedPrefix = "AGENT-STARTED ";
inline constexpr std::string_view kErrorPrefix = "AGENT-ERROR ";

// The line (without newline) for the serialized AgentInit `init_pb` and the kernel command line
// the agent runs with (a trailing newline is dropped). `started` tells which kind it is.
std::string report_line(std::string_view init_pb, std::string_view cmdline, bool* started);

// "AGENT-ERROR <reason>" with the reason kept on one line.
std::string error_line(std::string_view reason);

}  // namespace activate::agent
