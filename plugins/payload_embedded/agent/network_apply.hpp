// Applies the network configuration an AgentInit carries (activate.wire.Net) to the running
// kernel through rtnetlink: devices found by permanent MAC and renamed, bonds with their mode and
// LACP parameters, VLANs, MTU, addresses, routes, then the nameservers into resolv.conf.
// Whatever cannot be applied is returned as "<what>: <why>", never dropped.
#pragma once

#include <string>
#include <vector>

#include "net.pb.h"

namespace activate::agent {

struct NetworkApplyOptions {
    std::string resolv_conf = "/etc/resolv.conf";
    std::string proc_sys_net = "/proc/sys/net";
    // How long to wait for a device whose MAC is not there yet (a driver still probing).
    int device_wait_ms = 0;
};

// Returns what was not applied, one "<what>: <why>" per entry, in the order met.
std::vector<std::string> apply_network(const wire::Net& net, const NetworkApplyOptions& options);

}  // namespace activate::agent
