// Decodes rtnetlink dump replies (RTM_NEWLINK, RTM_NEWADDR, RTM_NEWROUTE; rtnetlink(7)) into plain
// structs that keep what the capture needs, in the kernel's terms. The same decoder reads the
// bytes received from a live NETLINK_ROUTE socket and recorded dump files.
#pragma once

#include <activate/result.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace activate::netcapture {

// IFLA_INFO_DATA of kind "bond" (IFLA_BOND_* in linux/if_link.h); absent attributes stay unset.
struct BondAttributes {
    std::optional<uint8_t> mode;  // BOND_MODE_* (linux/if_bonding.h)
    std::optional<uint32_t> miimon;
    std::optional<uint32_t> updelay;
    std::optional<uint32_t> downdelay;
    std::optional<uint8_t> use_carrier;
    std::optional<uint32_t> arp_interval;
    std::optional<uint8_t> xmit_hash_policy;  // BOND_XMIT_POLICY_*
    std::optional<uint32_t> min_links;
    std::optional<uint8_t> ad_lacp_rate;
    std::optional<uint8_t> ad_select;
    std::optional<uint16_t> ad_actor_sys_prio;
    std::optional<uint16_t> ad_user_port_key;
    std::vector<uint8_t> ad_actor_system;  // 6 bytes when present
};

// IFLA_INFO_DATA of kind "vlan" (IFLA_VLAN_*).
struct VlanAttributes {
    std::optional<uint16_t> id;
    std::optional<uint16_t> protocol;  // host order: 0x8100 (802.1Q) or 0x88a8 (802.1ad)
};

struct LinkMessage {
    int32_t index = 0;
    uint16_t arphrd_type = 0;           // ifi_type (ARPHRD_*)
    uint32_t flags = 0;                 // ifi_flags (IFF_*)
    std::string name;                   // IFLA_IFNAME
    uint32_t mtu = 0;                   // IFLA_MTU
    std::vector<uint8_t> address;       // IFLA_ADDRESS
    std::vector<uint8_t> perm_address;  // IFLA_PERM_ADDRESS (kernel >= 5.5)
    std::optional<uint32_t> master;     // IFLA_MASTER
    std::optional<int32_t> link;        // IFLA_LINK: the lower device of a VLAN
    bool link_in_other_netns = false;   // IFLA_LINK_NETNSID present: IFLA_LINK is not ours
    std::string kind;                   // IFLA_INFO_KIND; empty for plain devices
    std::optional<BondAttributes> bond;
    std::optional<VlanAttributes> vlan;
};

struct AddressMessage {
    uint8_t family = 0;  // AF_INET or AF_INET6
    uint8_t prefixlen = 0;
    uint8_t scope = 0;
    uint32_t flags = 0;  // IFA_F_*: IFA_FLAGS when present (it carries the bits above 0xff)
    uint32_t index = 0;
    std::vector<uint8_t> local;    // IFA_LOCAL
    std::vector<uint8_t> address;  // IFA_ADDRESS: the peer when it differs from IFA_LOCAL
    // IFA_CACHEINFO lifetimes in seconds; 0xffffffff is infinite.
    std::optional<uint32_t> valid_lifetime;
    std::optional<uint32_t> preferred_lifetime;
};

struct RouteMessage {
    uint8_t family = 0;
    uint8_t dst_len = 0;
    uint8_t src_len = 0;
    uint32_t table = 0;  // RTA_TABLE when present (tables above 255), else rtm_table
    uint8_t protocol = 0;
    uint8_t scope = 0;
    uint8_t type = 0;  // RTN_*
    uint32_t flags = 0;
    std::vector<uint8_t> dst;          // RTA_DST
    std::vector<uint8_t> gateway;      // RTA_GATEWAY
    std::vector<uint8_t> prefsrc;      // RTA_PREFSRC
    std::optional<uint32_t> oif;       // RTA_OIF
    std::optional<uint32_t> priority;  // RTA_PRIORITY, the metric
    bool multipath = false;            // RTA_MULTIPATH: several next hops
    bool via = false;                  // RTA_VIA: a next hop of another address family
    bool nexthop_object = false;       // RTA_NH_ID: next hop kept in a nexthop object
};

struct RtnlDump {
    std::vector<LinkMessage> links;
    std::vector<AddressMessage> addresses;
    std::vector<RouteMessage> routes;
    // Some message had NLM_F_DUMP_INTR: the tables changed during the dump.
    bool interrupted = false;
};

// Appends the messages of one or more complete dump replies to `into`. Fails on malformed framing
// or attributes, on NLMSG_ERROR, and when the bytes do not end with NLMSG_DONE (a truncated
// recording). Messages of other types are ignored.
Status decode_rtnl_dump(std::string_view bytes, RtnlDump& into);

}  // namespace activate::netcapture
