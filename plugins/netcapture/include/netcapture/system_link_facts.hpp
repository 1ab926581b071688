// LinkFacts of a real system: sysfs and procfs through the Sysroot, and for live captures the
// ethtool ioctls (SIOCETHTOOL, linux/ethtool.h) of the calling thread's network namespace.
#pragma once

#include <activate/sysroot.hpp>
#include <netcapture/net_config.hpp>

namespace activate::netcapture {

class SystemLinkFacts final : public LinkFacts {
  public:
    // `use_ethtool`: only when the links are those of this namespace, not a recorded dump.
    SystemLinkFacts(const Sysroot& sysroot, bool use_ethtool)
        : sysroot_(sysroot), use_ethtool_(use_ethtool) {}

    std::vector<uint8_t> permanent_address(const std::string& link) const override;
    std::string driver(const std::string& link) const override;
    Result<int> ipv6_use_tempaddr(const std::string& link) const override;

  private:
    const Sysroot& sysroot_;
    bool use_ethtool_;
};

}  // namespace activate::netcapture
