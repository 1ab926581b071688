// Turns decoded rtnetlink dumps into the agent's network configuration (activate.wire.Net, without
// nameservers). Decides what of the running configuration can be carried over and says, in
// warnings, what is left behind and why. README.md lists the rules.
#pragma once

#include <activate/result.hpp>
#include <cstdint>
#include <netcapture/rtnl_dump.hpp>
#include <string>
#include <vector>

#include "net.pb.h"

namespace activate::netcapture {

// What the dumps do not say about a link, looked up elsewhere (sysfs, procfs, ethtool).
class LinkFacts {
  public:
    virtual ~LinkFacts() = default;
    // The permanent MAC when the dump has no IFLA_PERM_ADDRESS (kernels before 5.5); empty when
    // unknown.
    virtual std::vector<uint8_t> permanent_address(const std::string& link) const = 0;
    // The kernel driver bound to the link's device ("virtio_net"); empty when unknown.
    virtual std::string driver(const std::string& link) const = 0;
    // net.ipv6.conf.<link>.use_tempaddr (ip-sysctl.rst: <= 0 off, 1 on, > 1 prefer temporary).
    virtual Result<int> ipv6_use_tempaddr(const std::string& link) const = 0;
};

struct NetConfig {
    wire::Net net;
    std::vector<std::string> warnings;
};

NetConfig build_net_config(const RtnlDump& dump, const LinkFacts& facts);

// "52:54:00:00:00:10"; lowercase, colon-separated.
std::string format_mac(const std::vector<uint8_t>& bytes);
// inet_ntop of a 4- or 16-byte address.
std::string format_ip(uint8_t family, const std::vector<uint8_t>& bytes);

}  // namespace activate::netcapture
