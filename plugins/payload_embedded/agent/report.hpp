// What the reference agent prints: one console line that end-to-end tests match on.
//   AGENT-STARTED {"machine_id":...}   the decoded AgentInit as compact JSON
//   AGENT-ERROR <reason>               /init.pb missing or not a usable AgentInit
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "rtnl.hpp"

namespace activate::agent {

inline constexpr std::string_view kStartedPrefix = "AGENT-STARTED ";
inline constexpr std::string_view kErrorPrefix = "AGENT-ERROR ";

// What the agent did to the running kernel's network, reported beside the AgentInit: what it
// could not apply, and the links and addresses the kernel has afterwards.
struct AppliedNetwork {
    std::vector<std::string> not_applied;
    std::vector<LiveLink> links;
    std::vector<LiveAddress> addresses;
};

// The line (without newline) for the serialized AgentInit `init_pb` and the kernel command line
// the agent runs with (a trailing newline is dropped). `started` tells which kind it is. With
// `applied`, the JSON gains "not_applied" and "links" (each with name, kind, mac, mtu, up,
// master and addresses).
std::string report_line(std::string_view init_pb, std::string_view cmdline, bool* started,
                        const AppliedNetwork* applied = nullptr);

// The public key (hex) derived from AgentInit.private_key; empty with `reason` when the message
// or the key is unusable.
std::string agent_public_key_hex(std::string_view init_pb, std::string* reason);

// "AGENT-ERROR <reason>" with the reason kept on one line.
std::string error_line(std::string_view reason);

}  // namespace activate::agent
