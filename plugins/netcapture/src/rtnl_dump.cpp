// rtnetlink dump decoding. Message layouts: struct ifinfomsg, ifaddrmsg, rtmsg and the IFLA_*,
// IFA_*, RTA_* attributes of linux/rtnetlink.h, linux/if_link.h and linux/if_addr.h (rtnetlink(7)).
#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <netcapture/netlink.hpp>
#include <netcapture/rtnl_dump.hpp>

namespace activate::netcapture {
namespace {

bool is_ip_family(uint8_t family) { return family == AF_INET || family == AF_INET6; }

size_t address_size(uint8_t family) { return family == AF_INET ? 4 : 16; }

// An IP address attribute must match the message's family; anything else would be misprinted.
Result<std::vector<uint8_t>> ip_attribute(const NetlinkAttribute& a, uint8_t family,
                                          const char* name) {
    if (a.data.size() != address_size(family)) {
        return Error(ErrorKind::input, std::string(name) + " has " + std::to_string(a.data.size()) +
                                           " bytes, expected " +
                                           std::to_string(address_size(family)) + " for " +
                                           (family == AF_INET ? "IPv4" : "IPv6"));
    }
    return attribute_bytes(a);
}

Status decode_bond(std::string_view data, BondAttributes& bond) {
    ACTIVATE_ASSIGN(auto attrs, split_attributes(data, "IFLA_INFO_DATA (bond)"));
    for (const auto& a : attrs) {
        switch (a.type) {
            case IFLA_BOND_MODE: {
                ACTIVATE_ASSIGN(bond.mode, attribute_u8(a, "IFLA_BOND_MODE"));
                break;
            }
            case IFLA_BOND_MIIMON: {
                ACTIVATE_ASSIGN(bond.miimon, attribute_u32(a, "IFLA_BOND_MIIMON"));
                break;
            }
            case IFLA_BOND_UPDELAY: {
                ACTIVATE_ASSIGN(bond.updelay, attribute_u32(a, "IFLA_BOND_UPDELAY"));
                break;
            }
            case IFLA_BOND_DOWNDELAY: {
                ACTIVATE_ASSIGN(bond.downdelay, attribute_u32(a, "IFLA_BOND_DOWNDELAY"));
                break;
            }
            case IFLA_BOND_USE_CARRIER: {
                ACTIVATE_ASSIGN(bond.use_carrier, attribute_u8(a, "IFLA_BOND_USE_CARRIER"));
                break;
            }
            case IFLA_BOND_ARP_INTERVAL: {
                ACTIVATE_ASSIGN(bond.arp_interval, attribute_u32(a, "IFLA_BOND_ARP_INTERVAL"));
                break;
            }
            case IFLA_BOND_XMIT_HASH_POLICY: {
                ACTIVATE_ASSIGN(bond.xmit_hash_policy,
                                attribute_u8(a, "IFLA_BOND_XMIT_HASH_POLICY"));
                break;
            }
            case IFLA_BOND_MIN_LINKS: {
                ACTIVATE_ASSIGN(bond.min_links, attribute_u32(a, "IFLA_BOND_MIN_LINKS"));
                break;
            }
            case IFLA_BOND_AD_LACP_RATE: {
                ACTIVATE_ASSIGN(bond.ad_lacp_rate, attribute_u8(a, "IFLA_BOND_AD_LACP_RATE"));
                break;
            }
            case IFLA_BOND_AD_SELECT: {
                ACTIVATE_ASSIGN(bond.ad_select, attribute_u8(a, "IFLA_BOND_AD_SELECT"));
                break;
            }
            case IFLA_BOND_AD_ACTOR_SYS_PRIO: {
                ACTIVATE_ASSIGN(bond.ad_actor_sys_prio,
                                attribute_u16(a, "IFLA_BOND_AD_ACTOR_SYS_PRIO"));
                break;
            }
            case IFLA_BOND_AD_USER_PORT_KEY: {
                ACTIVATE_ASSIGN(bond.ad_user_port_key,
                                attribute_u16(a, "IFLA_BOND_AD_USER_PORT_KEY"));
                break;
            }
            case IFLA_BOND_AD_ACTOR_SYSTEM:
                // ETH_ALEN bytes (bond_netlink.c puts exactly that).
                if (a.data.size() != 6) {
                    return Error(ErrorKind::input, "IFLA_BOND_AD_ACTOR_SYSTEM has " +
                                                       std::to_string(a.data.size()) +
                                                       " bytes, expected 6");
                }
                bond.ad_actor_system = attribute_bytes(a);
                break;
            default:
                break;
        }
    }
    return {};
}

Status decode_vlan(std::string_view data, VlanAttributes& vlan) {
    ACTIVATE_ASSIGN(auto attrs, split_attributes(data, "IFLA_INFO_DATA (vlan)"));
    for (const auto& a : attrs) {
        if (a.type == IFLA_VLAN_ID) {
            ACTIVATE_ASSIGN(vlan.id, attribute_u16(a, "IFLA_VLAN_ID"));
        } else if (a.type == IFLA_VLAN_PROTOCOL) {
            ACTIVATE_ASSIGN(vlan.protocol, attribute_be16(a, "IFLA_VLAN_PROTOCOL"));
        }
    }
    return {};
}

Status decode_linkinfo(std::string_view data, LinkMessage& link) {
    ACTIVATE_ASSIGN(auto attrs, split_attributes(data, "IFLA_LINKINFO"));
    // IFLA_INFO_DATA is interpreted by IFLA_INFO_KIND, which the kernel puts first but nothing
    // guarantees; find the kind before decoding the data.
    std::string_view info_data;
    bool has_data = false;
    for (const auto& a : attrs) {
        if (a.type == IFLA_INFO_KIND) link.kind = attribute_string(a);
        if (a.type == IFLA_INFO_DATA) {
            info_data = a.data;
            has_data = true;
        }
    }
    if (!has_data) return {};
    if (link.kind == "bond") {
        link.bond.emplace();
        return decode_bond(info_data, *link.bond);
    }
    if (link.kind == "vlan") {
        link.vlan.emplace();
        return decode_vlan(info_data, *link.vlan);
    }
    return {};
}

Status decode_link(std::string_view payload, LinkMessage& link) {
    ACTIVATE_ASSIGN(const auto info, read_struct<ifinfomsg>(payload, "ifinfomsg"));
    link.index = info.ifi_index;
    link.arphrd_type = info.ifi_type;
    link.flags = info.ifi_flags;
    ACTIVATE_ASSIGN(auto attrs,
                    split_attributes(payload.substr(NLMSG_ALIGN(sizeof(ifinfomsg))), "attributes"));
    for (const auto& a : attrs) {
        switch (a.type) {
            case IFLA_IFNAME:
                link.name = attribute_string(a);
                break;
            case IFLA_MTU: {
                ACTIVATE_ASSIGN(link.mtu, attribute_u32(a, "IFLA_MTU"));
                break;
            }
            case IFLA_ADDRESS:
                link.address = attribute_bytes(a);
                break;
            case IFLA_PERM_ADDRESS:
                link.perm_address = attribute_bytes(a);
                break;
            case IFLA_MASTER: {
                ACTIVATE_ASSIGN(link.master, attribute_u32(a, "IFLA_MASTER"));
                break;
            }
            case IFLA_LINK: {
                ACTIVATE_ASSIGN(const uint32_t lower, attribute_u32(a, "IFLA_LINK"));
                link.link = static_cast<int32_t>(lower);
                break;
            }
            case IFLA_LINK_NETNSID:
                link.link_in_other_netns = true;
                break;
            case IFLA_LINKINFO:
                ACTIVATE_TRY(decode_linkinfo(a.data, link));
                break;
            default:
                break;
        }
    }
    if (link.name.empty()) return Error(ErrorKind::input, "no IFLA_IFNAME");
    return {};
}

Status decode_address(std::string_view payload, AddressMessage& addr) {
    ACTIVATE_ASSIGN(const auto info, read_struct<ifaddrmsg>(payload, "ifaddrmsg"));
    addr.family = info.ifa_family;
    addr.prefixlen = info.ifa_prefixlen;
    addr.scope = info.ifa_scope;
    addr.flags = info.ifa_flags;
    addr.index = info.ifa_index;
    if (!is_ip_family(addr.family)) return {};
    if (addr.prefixlen > address_size(addr.family) * 8) {
        return Error(ErrorKind::input, "prefix length " + std::to_string(addr.prefixlen) +
                                           " too long for the family");
    }
    ACTIVATE_ASSIGN(auto attrs,
                    split_attributes(payload.substr(NLMSG_ALIGN(sizeof(ifaddrmsg))), "attributes"));
    for (const auto& a : attrs) {
        switch (a.type) {
            case IFA_LOCAL: {
                ACTIVATE_ASSIGN(addr.local, ip_attribute(a, addr.family, "IFA_LOCAL"));
                break;
            }
            case IFA_ADDRESS: {
                ACTIVATE_ASSIGN(addr.address, ip_attribute(a, addr.family, "IFA_ADDRESS"));
                break;
            }
            case IFA_FLAGS: {
                ACTIVATE_ASSIGN(addr.flags, attribute_u32(a, "IFA_FLAGS"));
                break;
            }
            case IFA_CACHEINFO: {
                if (a.data.size() != sizeof(ifa_cacheinfo)) {
                    return Error(ErrorKind::input,
                                 "IFA_CACHEINFO has " + std::to_string(a.data.size()) +
                                     " bytes, expected " + std::to_string(sizeof(ifa_cacheinfo)));
                }
                ACTIVATE_ASSIGN(const auto ci, read_struct<ifa_cacheinfo>(a.data, "IFA_CACHEINFO"));
                addr.valid_lifetime = ci.ifa_valid;
                addr.preferred_lifetime = ci.ifa_prefered;
                break;
            }
            default:
                break;
        }
    }
    if (addr.local.empty() && addr.address.empty()) {
        return Error(ErrorKind::input, "neither IFA_LOCAL nor IFA_ADDRESS");
    }
    return {};
}

Status decode_route(std::string_view payload, RouteMessage& route) {
    ACTIVATE_ASSIGN(const auto info, read_struct<rtmsg>(payload, "rtmsg"));
    route.family = info.rtm_family;
    route.dst_len = info.rtm_dst_len;
    route.src_len = info.rtm_src_len;
    route.table = info.rtm_table;
    route.protocol = info.rtm_protocol;
    route.scope = info.rtm_scope;
    route.type = info.rtm_type;
    route.flags = info.rtm_flags;
    // AF_UNSPEC dumps also return multicast (RTNL_FAMILY_IPMR) and MPLS routes; not ours.
    if (!is_ip_family(route.family)) return {};
    if (route.dst_len > address_size(route.family) * 8 ||
        route.src_len > address_size(route.family) * 8) {
        return Error(ErrorKind::input, "prefix length too long for the family");
    }
    ACTIVATE_ASSIGN(auto attrs,
                    split_attributes(payload.substr(NLMSG_ALIGN(sizeof(rtmsg))), "attributes"));
    for (const auto& a : attrs) {
        switch (a.type) {
            case RTA_DST: {
                ACTIVATE_ASSIGN(route.dst, ip_attribute(a, route.family, "RTA_DST"));
                break;
            }
            case RTA_GATEWAY: {
                ACTIVATE_ASSIGN(route.gateway, ip_attribute(a, route.family, "RTA_GATEWAY"));
                break;
            }
            case RTA_PREFSRC: {
                ACTIVATE_ASSIGN(route.prefsrc, ip_attribute(a, route.family, "RTA_PREFSRC"));
                break;
            }
            case RTA_OIF: {
                ACTIVATE_ASSIGN(route.oif, attribute_u32(a, "RTA_OIF"));
                break;
            }
            case RTA_PRIORITY: {
                ACTIVATE_ASSIGN(route.priority, attribute_u32(a, "RTA_PRIORITY"));
                break;
            }
            case RTA_TABLE: {
                ACTIVATE_ASSIGN(route.table, attribute_u32(a, "RTA_TABLE"));
                break;
            }
            case RTA_MULTIPATH:
                route.multipath = true;
                break;
            case RTA_VIA:
                route.via = true;
                break;
            case RTA_NH_ID:
                route.nexthop_object = true;
                break;
            default:
                break;
        }
    }
    return {};
}

std::string where(const NetlinkMessage& m, const char* type) {
    return std::string(type) + " at offset " + std::to_string(m.offset);
}

// Error codes in NLMSG_ERROR and NLMSG_DONE are negated errnos (netlink(7)), and the kernel's
// errnos are 1..MAX_ERRNO (4095, include/linux/err.h). Any other value is not from the kernel;
// it is reported as such rather than negated (negating INT32_MIN would overflow).
constexpr int32_t kMaxErrno = 4095;

Error kernel_error(const NetlinkMessage& m, const char* type, int32_t code) {
    if (code < 0 && code >= -kMaxErrno) return errno_error(ErrorKind::input, where(m, type), -code);
    return Error(ErrorKind::input, where(m, type) + ": error code " + std::to_string(code) +
                                       " is not a negated errno (expected -1 to -" +
                                       std::to_string(kMaxErrno) + ")");
}

}  // namespace

Status decode_rtnl_dump(std::string_view bytes, RtnlDump& into) {
    ACTIVATE_ASSIGN(const auto messages, split_messages(bytes));
    if (messages.empty()) return Error(ErrorKind::input, "empty rtnetlink dump");
    for (const auto& m : messages) {
        if (m.flags & NLM_F_DUMP_INTR) into.interrupted = true;
        switch (m.type) {
            case NLMSG_ERROR: {
                // struct nlmsgerr: a negative errno; 0 is an acknowledgement.
                ACTIVATE_ASSIGN(const int32_t err, read_struct<int32_t>(m.payload, "nlmsgerr"));
                if (err != 0) return kernel_error(m, "NLMSG_ERROR", err);
                break;
            }
            case NLMSG_DONE: {
                // Since Linux 4.x NLMSG_DONE carries the dump's final status as an int.
                if (m.payload.size() >= sizeof(int32_t)) {
                    ACTIVATE_ASSIGN(const int32_t err, read_struct<int32_t>(m.payload, "status"));
                    if (err < 0) return kernel_error(m, "NLMSG_DONE", err);
                }
                break;
            }
            case RTM_NEWLINK: {
                LinkMessage link;
                if (auto s = decode_link(m.payload, link); !s.ok()) {
                    return std::move(s).error().with_context(where(m, "RTM_NEWLINK"));
                }
                into.links.push_back(std::move(link));
                break;
            }
            case RTM_NEWADDR: {
                AddressMessage addr;
                if (auto s = decode_address(m.payload, addr); !s.ok()) {
                    return std::move(s).error().with_context(where(m, "RTM_NEWADDR"));
                }
                if (is_ip_family(addr.family)) into.addresses.push_back(std::move(addr));
                break;
            }
            case RTM_NEWROUTE: {
                RouteMessage route;
                if (auto s = decode_route(m.payload, route); !s.ok()) {
                    return std::move(s).error().with_context(where(m, "RTM_NEWROUTE"));
                }
                if (is_ip_family(route.family)) into.routes.push_back(std::move(route));
                break;
            }
            default:
                break;
        }
    }
    if (messages.back().type != NLMSG_DONE) {
        return Error(ErrorKind::input, "rtnetlink dump does not end with NLMSG_DONE (truncated?)");
    }
    return {};
}

}  // namespace activate::netcapture
