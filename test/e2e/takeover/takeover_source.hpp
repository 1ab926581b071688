// The takeover source machine, shared by the e2e test and the demo: a MicroVM (the Debian
// kernel and busybox) whose init configures a bond of two NICs in 802.3ad, a VLAN on it, static
// IPv4 and IPv6 addresses, routes and nameservers, then runs the static `takeover` binary with a
// TakeoverInit on stdin and prints the TakeoverResponse; the agent follows on the same console.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vm/qemu.hpp>

#include "takeover.pb.h"

namespace activate::vm {

// Permanent MACs of the source's NICs: eth0 (addresses, default routes), eth1 and eth2 (bond).
inline constexpr const char* kMac0 = "52:54:00:e2:e0:10";
inline constexpr const char* kMac1 = "52:54:00:e2:e0:11";
inline constexpr const char* kMac2 = "52:54:00:e2:e0:12";

// The identity the source is taken over with (an arbitrary 600-byte CA certificate). The
// default endpoint is a host name the agent cannot resolve: it reports that it could not
// announce itself and powers off.
wire::TakeoverInit MakeTakeoverInit(
    const std::string& bmaas_endpoint = "https://bmaas.e2e.test:8443");

// What the source's first NIC (eth0, 10.0.2.15) is reachable through, beyond the defaults.
struct SourceReachability {
    // Host port -> guest port 22: the port an operator reaches the source's SSH through. The
    // source answers one connection there with "SOURCE-ON-PORT-22" before it runs takeover.
    bool forward_port_22 = false;
    std::vector<GuestForward> guest_forwards;
};

// Builds the guest images (cached) in `work` and boots the source with `init` on takeover's
// stdin. The guest's takeover runs with a 1 s delay before the jump. `memory_mib` is the guest's
// RAM (QEMU -m), also what the agent has after the jump: the minimum-RAM benchmark lowers it.
Result<std::unique_ptr<Machine>> BootTakeoverSource(const fs::path& work,
                                                    const wire::TakeoverInit& init,
                                                    const std::string& name,
                                                    const SourceReachability& reach = {},
                                                    int memory_mib = 1024);

// What the source printed around its takeover run.
struct TakeoverRun {
    LineMatch configured;  // "SOURCE configured: <cmdline>"
    LineMatch exited;      // "TAKEOVER-EXIT <code>": capture, staging and response are done
    int exit_code = -1;
    std::string response;                    // the serialized TakeoverResponse
    std::vector<std::string> source_errors;  // configuration steps that failed
};
Result<TakeoverRun> WaitTakeover(Machine& vm);

std::string Hex(std::string_view bytes);
// The bytes of lowercase or uppercase hex digits (the source prints its response with xxd -p).
std::string Unhex(std::string_view text);

}  // namespace activate::vm
