// libFuzzer target: arbitrary bytes as an rtnetlink dump (any mix of RTM_NEWLINK, RTM_NEWADDR,
// RTM_NEWROUTE, NLMSG_DONE, NLMSG_ERROR), then the mapping to activate.wire.Net. Neither may
// crash, read out of bounds or hit undefined behaviour; a decoded dump must always map and
// serialize. Seeds: the recorded dumps of shared/testdata/netlink-bond-vlan.
#include <cstddef>
#include <cstdint>
#include <string>

#include <netcapture/net_config.hpp>
#include <netcapture/rtnl_dump.hpp>

namespace {

// Deterministic facts derived from the name, so every branch of the mapping is reachable.
class FuzzFacts : public activate::netcapture::LinkFacts {
public:
    std::vector<uint8_t> permanent_address(const std::string& link) const override {
        if (link.size() % 3 == 0) return {};
        return std::vector<uint8_t>(link.begin(), link.end());
    }
    std::string driver(const std::string& link) const override { return link; }
    activate::Result<int> ipv6_use_tempaddr(const std::string& link) const override {
        if (link.empty()) return activate::Error(activate::ErrorKind::input, "none");
        return static_cast<int>(link[0]) - 'a';
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    activate::netcapture::RtnlDump dump;
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    if (!activate::netcapture::decode_rtnl_dump(bytes, dump).ok()) return 0;
    const auto config = activate::netcapture::build_net_config(dump, FuzzFacts{});
    std::string serialized;
    if (!config.net.SerializeToString(&serialized)) __builtin_trap();
    return 0;
}
