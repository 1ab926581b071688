// Maps the kernel's view (links, addresses, routes from rtnetlink) onto activate.wire.Net. The
// rules and their reasons are in README.md; constants are from linux/rtnetlink.h, linux/if_addr.h,
// linux/if_link.h and linux/if_bonding.h.
#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_arp.h>
#include <linux/if_bonding.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <netcapture/net_config.hpp>
#include <set>

namespace activate::netcapture {
namespace {

constexpr uint32_t kInfiniteLifetime = 0xffffffff;  // INFINITY_LIFE_TIME in the kernel
constexpr uint16_t kEtherType8021Q = 0x8100;        // ETH_P_8021Q
constexpr uint16_t kEtherType8021AD = 0x88a8;       // ETH_P_8021AD

// The captured form of one link, before deciding whether it is kept.
struct Candidate {
    const LinkMessage* link = nullptr;
    wire::Interface iface;
    bool has_config = false;  // an address, autoconfig or route of its own
    bool kept = false;
    std::vector<std::string> warnings;  // reported only if the interface is kept
};

bool all_zero(const std::vector<uint8_t>& bytes) {
    return std::all_of(bytes.begin(), bytes.end(), [](uint8_t b) { return b == 0; });
}

std::string cidr(uint8_t family, const std::vector<uint8_t>& bytes, unsigned prefix) {
    return format_ip(family, bytes) + "/" + std::to_string(prefix);
}

// Clears the host bits so that a destination derived from an address is a proper prefix.
std::vector<uint8_t> network_of(std::vector<uint8_t> bytes, unsigned prefix) {
    for (size_t i = 0; i < bytes.size(); ++i) {
        const unsigned first_bit = static_cast<unsigned>(i) * 8;
        if (prefix >= first_bit + 8) continue;
        const unsigned keep = prefix > first_bit ? prefix - first_bit : 0;
        bytes[i] &= static_cast<uint8_t>(0xff00 >> keep);
    }
    return bytes;
}

bool is_ipv6_link_local(const AddressMessage& a, const std::vector<uint8_t>& local) {
    // fe80::/10 (RFC 4291 §2.5.6).
    return a.family == AF_INET6 && local.size() == 16 && local[0] == 0xfe &&
           (local[1] & 0xc0) == 0x80;
}

std::string protocol_name(uint8_t protocol) {
    // RTPROT_* in linux/rtnetlink.h; names as iproute2 prints them (rt_protos).
    switch (protocol) {
        case RTPROT_UNSPEC:
            return "unspec";
        case RTPROT_REDIRECT:
            return "redirect";
        case RTPROT_KERNEL:
            return "kernel";
        case RTPROT_BOOT:
            return "boot";
        case RTPROT_STATIC:
            return "static";
        case RTPROT_GATED:
            return "gated";
        case RTPROT_RA:
            return "ra";
        case RTPROT_MRT:
            return "mrt";
        case RTPROT_ZEBRA:
            return "zebra";
        case RTPROT_BIRD:
            return "bird";
        case RTPROT_DNROUTED:
            return "dnrouted";
        case RTPROT_XORP:
            return "xorp";
        case RTPROT_NTK:
            return "ntk";
        case RTPROT_DHCP:
            return "dhcp";
        case RTPROT_MROUTED:
            return "mrouted";
        case RTPROT_KEEPALIVED:
            return "keepalived";
        case RTPROT_BABEL:
            return "babel";
        case RTPROT_OPENR:
            return "openr";
        case RTPROT_BGP:
            return "bgp";
        case RTPROT_ISIS:
            return "isis";
        case RTPROT_OSPF:
            return "ospf";
        case RTPROT_RIP:
            return "rip";
        case RTPROT_EIGRP:
            return "eigrp";
        default:
            return std::to_string(protocol);
    }
}

std::string route_type_name(uint8_t type) {
    switch (type) {
        case RTN_UNICAST:
            return "unicast";
        case RTN_LOCAL:
            return "local";
        case RTN_BROADCAST:
            return "broadcast";
        case RTN_ANYCAST:
            return "anycast";
        case RTN_MULTICAST:
            return "multicast";
        case RTN_BLACKHOLE:
            return "blackhole";
        case RTN_UNREACHABLE:
            return "unreachable";
        case RTN_PROHIBIT:
            return "prohibit";
        case RTN_THROW:
            return "throw";
        case RTN_NAT:
            return "nat";
        default:
            return std::to_string(type);
    }
}

std::string bond_mode_name(uint8_t mode) {
    switch (mode) {
        case BOND_MODE_ROUNDROBIN:
            return "balance-rr";
        case BOND_MODE_ACTIVEBACKUP:
            return "active-backup";
        case BOND_MODE_XOR:
            return "balance-xor";
        case BOND_MODE_BROADCAST:
            return "broadcast";
        case BOND_MODE_8023AD:
            return "802.3ad";
        case BOND_MODE_TLB:
            return "balance-tlb";
        case BOND_MODE_ALB:
            return "balance-alb";
        default:
            return std::to_string(mode);
    }
}

class Builder {
  public:
    Builder(const RtnlDump& dump, const LinkFacts& facts) : dump_(dump), facts_(facts) {}

    NetConfig build() {
        collect_links();
        for (const auto& a : dump_.addresses) add_address(a);
        for (const auto& r : dump_.routes) add_route(r);
        drop_unusable_vlans();
        for (auto& [index, c] : candidates_) fill_type(c);
        decide_kept();
        return emit();
    }

  private:
    std::string link_name(uint32_t index) const {
        if (auto it = all_links_.find(static_cast<int32_t>(index)); it != all_links_.end()) {
            return it->second->name;
        }
        return "#" + std::to_string(index);
    }

    void warn(std::string w) { warnings_.push_back(std::move(w)); }

    void collect_links() {
        for (const auto& link : dump_.links) {
            if (!all_links_.emplace(link.index, &link).second) {
                warn("skipped link " + link.name + ": duplicate interface index " +
                     std::to_string(link.index) + " in the link dump");
                continue;
            }
            // The agent brings up its own loopback; nothing about it is worth carrying over.
            if ((link.flags & IFF_LOOPBACK) || link.arphrd_type == ARPHRD_LOOPBACK) continue;
            Candidate c;
            c.link = &link;
            c.iface.set_name(link.name);
            c.iface.set_mtu(static_cast<int32_t>(link.mtu));
            candidates_.emplace(link.index, std::move(c));
        }
    }

    Candidate* candidate(uint32_t index) {
        auto it = candidates_.find(static_cast<int32_t>(index));
        return it == candidates_.end() ? nullptr : &it->second;
    }

    // An address the link has only because it is reachable there, not configured.
    void add_address(const AddressMessage& a) {
        const std::vector<uint8_t>& local = a.local.empty() ? a.address : a.local;
        const std::string text = cidr(a.family, local, a.prefixlen);
        Candidate* c = candidate(a.index);
        if (c == nullptr) {
            // Addresses of the loopback are expected and not worth a warning.
            if (all_links_.count(static_cast<int32_t>(a.index)) == 0) {
                warn("skipped address " + text + ": no link with index " + std::to_string(a.index));
            }
            return;
        }
        const std::string& name = c->link->name;
        if (is_ipv6_link_local(a, local)) {
            // The agent's kernel derives link-local addresses itself (RFC 4862 §5.3).
            warn("skipped address " + text + " on " + name + ": link-local");
            return;
        }
        if (a.flags & IFA_F_DADFAILED) {
            warn("skipped address " + text + " on " + name + ": duplicate address detected");
            return;
        }
        // IPv6 marks every address not configured by hand as not IFA_F_PERMANENT (SLAAC,
        // temporary, DHCPv6 via a finite lifetime); IPv4 addresses with a finite valid lifetime
        // come from a DHCP client. Either way the agent must configure the link dynamically.
        const bool finite = a.valid_lifetime && *a.valid_lifetime != kInfiniteLifetime;
        const bool not_permanent = a.family == AF_INET6 && !(a.flags & IFA_F_PERMANENT);
        if (finite || not_permanent) {
            if (a.family == AF_INET) {
                c->iface.mutable_ipv4_autoconfig();
                warn("skipped address " + text + " on " + name +
                     ": dynamic, IPv4 autoconfiguration enabled instead");
            } else {
                set_ipv6_autoconfig(*c);
                warn("skipped address " + text + " on " + name +
                     ": dynamic, IPv6 autoconfiguration enabled instead");
            }
            c->has_config = true;
            return;
        }
        const bool has_peer = !a.local.empty() && !a.address.empty() && a.local != a.address;
        if (!has_peer) {
            c->iface.add_address(text);
            c->has_config = true;
            return;
        }
        // With a peer, the prefix length belongs to IFA_ADDRESS (the peer), not to the local
        // address (rtnetlink(7), ip-address(8) "peer"): keep the local address as a host address
        // and reach the peer's prefix through an on-link route.
        const unsigned host_bits = a.family == AF_INET ? 32 : 128;
        c->iface.add_address(cidr(a.family, a.local, host_bits));
        wire::Route* route = c->iface.add_route();
        route->set_destination(cidr(a.family, network_of(a.address, a.prefixlen), a.prefixlen));
        c->has_config = true;
    }

    void set_ipv6_autoconfig(Candidate& c) {
        if (c.iface.has_ipv6_autoconfig()) return;
        auto* auto6 = c.iface.mutable_ipv6_autoconfig();
        auto tempaddr = facts_.ipv6_use_tempaddr(c.link->name);
        if (!tempaddr.ok()) {
            warn("IPv6 privacy of " + c.link->name + ": " + tempaddr.error().message() +
                 "; using disabled");
            auto6->set_privacy(wire::IPv6Autoconfig::DISABLE);
            return;
        }
        const int v = *tempaddr;
        auto6->set_privacy(v <= 0   ? wire::IPv6Autoconfig::DISABLE
                           : v == 1 ? wire::IPv6Autoconfig::AVOID
                                    : wire::IPv6Autoconfig::PREFER);
    }

    void add_route(const RouteMessage& r) {
        // Cached clones are not configuration; kernel routes follow from addresses and links and
        // are recreated by the agent's kernel. Neither is worth a warning.
        if ((r.flags & RTM_F_CLONED) || r.protocol == RTPROT_KERNEL) return;

        const std::string destination = r.dst.empty() ? (r.family == AF_INET ? "0.0.0.0/0" : "::/0")
                                                      : cidr(r.family, r.dst, r.dst_len);
        std::string description = "skipped route " + destination;
        if (!r.gateway.empty()) description += " via " + format_ip(r.family, r.gateway);
        if (r.oif) description += " dev " + link_name(*r.oif);
        description += ": ";

        if (r.table != RT_TABLE_MAIN) {
            warn(description + "table " + std::to_string(r.table));
            return;
        }
        if (r.type != RTN_UNICAST) {
            warn(description + "type " + route_type_name(r.type));
            return;
        }
        // Only routes somebody configured on purpose: by hand or a tool (static), by iproute2
        // without "proto" (boot) or by a program that does not say (unspec). Routes learned from
        // DHCP, router advertisements or routing daemons are learned again by the agent or not
        // wanted at all.
        if (r.protocol != RTPROT_STATIC && r.protocol != RTPROT_BOOT &&
            r.protocol != RTPROT_UNSPEC) {
            warn(description + "protocol " + protocol_name(r.protocol));
            return;
        }
        if (r.multipath) {
            warn(description + "multipath routes are not supported");
            return;
        }
        if (r.nexthop_object) {
            warn(description + "nexthop objects are not supported");
            return;
        }
        if (r.via) {
            warn(description + "a gateway of another address family is not supported");
            return;
        }
        if (r.src_len != 0) {
            warn(description + "source-specific routes are not supported");
            return;
        }
        if (!r.oif) {
            warn(description + "no output interface");
            return;
        }
        Candidate* c = candidate(*r.oif);
        if (c == nullptr) {
            warn(description + "interface " + link_name(*r.oif) + " is not captured");
            return;
        }
        wire::Route* route = c->iface.add_route();
        route->set_destination(destination);
        if (!r.gateway.empty()) route->set_gateway_ip(format_ip(r.family, r.gateway));
        if (!r.prefsrc.empty()) route->set_source_ip(format_ip(r.family, r.prefsrc));
        if (r.priority) route->set_metric(static_cast<int32_t>(*r.priority));
        c->has_config = true;
    }

    void fill_type(Candidate& c) {
        const LinkMessage& link = *c.link;
        if (link.kind == "bond") {
            fill_bond(c);
        } else if (link.kind == "vlan") {
            fill_vlan(c);
        } else {
            fill_device(c);
        }
    }

    void fill_device(Candidate& c) {
        const LinkMessage& link = *c.link;
        if (!link.kind.empty()) {
            // veth, bridge, dummy, macvlan, tunnels ...: the agent has no way to recreate them,
            // but if they carry addresses the best we can do is to describe them as a device and
            // say so.
            c.warnings.push_back("link " + link.name + ": kind " + link.kind +
                                 " is not supported, captured as a plain device");
        }
        auto* device = c.iface.mutable_device();
        // The permanent MAC identifies the NIC after the jump: a bond rewrites its members'
        // current MACs, and the agent's kernel starts from the burnt-in one.
        std::vector<uint8_t> mac = link.perm_address;
        if (mac.empty() || all_zero(mac)) mac = facts_.permanent_address(link.name);
        if (mac.empty() || all_zero(mac)) mac = link.address;
        if (!mac.empty()) device->set_hardware_address(format_mac(mac));
        device->set_driver(facts_.driver(link.name));
        device->set_index(link.index);
    }

    void fill_bond(Candidate& c) {
        const LinkMessage& link = *c.link;
        auto* bond = c.iface.mutable_bond();
        std::vector<std::string> members;
        for (const auto& [index, other] : candidates_) {
            if (other.link->master && *other.link->master == static_cast<uint32_t>(link.index)) {
                members.push_back(other.link->name);
            }
        }
        std::sort(members.begin(), members.end());
        for (const auto& m : members) bond->add_member_interface(m);
        if (!link.bond) {
            c.warnings.push_back("bond " + link.name +
                                 ": no IFLA_INFO_DATA in the link dump, bond parameters unknown");
            return;
        }
        const BondAttributes& b = *link.bond;
        bond->set_min_links(static_cast<int32_t>(b.min_links.value_or(0)));
        if (b.miimon.value_or(0) > 0) {
            auto* mon = bond->mutable_carrier_monitor();
            mon->set_polling_interval_ms(static_cast<int32_t>(*b.miimon));
            mon->set_up_delay_ms(static_cast<int32_t>(b.updelay.value_or(0)));
            mon->set_down_delay_ms(static_cast<int32_t>(b.downdelay.value_or(0)));
            // use_carrier 0: poll MII/ethtool instead of trusting the driver's carrier state
            // (Documentation/networking/bonding.rst).
            mon->set_force_polling(b.use_carrier && *b.use_carrier == 0);
        }
        if (b.arp_interval.value_or(0) > 0) {
            c.warnings.push_back("bond " + link.name +
                                 ": ARP link monitoring is not supported, not captured");
        }
        switch (b.xmit_hash_policy.value_or(BOND_XMIT_POLICY_LAYER2)) {
            case BOND_XMIT_POLICY_LAYER2:
                bond->set_transmit_hash_policy(wire::Bond::LAYER2);
                break;
            case BOND_XMIT_POLICY_LAYER34:
                bond->set_transmit_hash_policy(wire::Bond::LAYER3_4);
                break;
            case BOND_XMIT_POLICY_LAYER23:
                bond->set_transmit_hash_policy(wire::Bond::LAYER2_3);
                break;
            case BOND_XMIT_POLICY_ENCAP23:
                bond->set_transmit_hash_policy(wire::Bond::ENCAP_LAYER2_3);
                break;
            case BOND_XMIT_POLICY_ENCAP34:
                bond->set_transmit_hash_policy(wire::Bond::ENCAP_LAYER3_4);
                break;
            case BOND_XMIT_POLICY_VLAN_SRCMAC:
                bond->set_transmit_hash_policy(wire::Bond::VLAN_SRCMAC);
                break;
            default:
                c.warnings.push_back("bond " + link.name + ": unknown transmit hash policy " +
                                     std::to_string(*b.xmit_hash_policy) + ", using layer2");
        }
        if (!b.mode) {
            c.warnings.push_back("bond " + link.name + ": mode unknown (no IFLA_BOND_MODE)");
            return;
        }
        if (*b.mode == BOND_MODE_ACTIVEBACKUP) {
            bond->mutable_active_backup();
        } else if (*b.mode == BOND_MODE_8023AD) {
            auto* lacp = bond->mutable_lacp();
            lacp->set_rate(b.ad_lacp_rate.value_or(0) == 1 ? wire::Bond::LACP::FAST
                                                           : wire::Bond::LACP::SLOW);
            switch (b.ad_select.value_or(0)) {
                case 0:
                    lacp->set_selection_logic(wire::Bond::LACP::STABLE);
                    break;
                case 1:
                    lacp->set_selection_logic(wire::Bond::LACP::BANDWIDTH);
                    break;
                case 2:
                    lacp->set_selection_logic(wire::Bond::LACP::COUNT);
                    break;
                default:
                    c.warnings.push_back("bond " + link.name + ": unknown ad_select " +
                                         std::to_string(*b.ad_select) + ", using stable");
            }
            // Unprivileged dumps leave these out (bond_netlink.c checks CAP_NET_ADMIN).
            if (b.ad_actor_sys_prio) {
                lacp->set_actor_system_priority(*b.ad_actor_sys_prio);
            }
            if (b.ad_user_port_key) lacp->set_user_port_key(*b.ad_user_port_key);
            // All zeros means "not set": the bond then uses its own MAC as the actor system.
            if (!b.ad_actor_system.empty() && !all_zero(b.ad_actor_system)) {
                lacp->set_actor_system_mac(format_mac(b.ad_actor_system));
            }
        } else {
            c.warnings.push_back("bond " + link.name + ": mode " + bond_mode_name(*b.mode) +
                                 " is not supported, captured without a mode");
        }
    }

    void fill_vlan(Candidate& c) {
        const LinkMessage& link = *c.link;
        auto* vlan = c.iface.mutable_vlan();
        if (link.link && !link.link_in_other_netns) {
            vlan->set_parent(link_name(static_cast<uint32_t>(*link.link)));
        }
        if (link.vlan && link.vlan->id) vlan->set_id(*link.vlan->id);
        const uint16_t protocol =
            link.vlan ? link.vlan->protocol.value_or(kEtherType8021Q) : kEtherType8021Q;
        if (protocol == kEtherType8021AD) {
            vlan->set_protocol(wire::VLAN::SVLAN);
        } else {
            // The wire format knows only the two; anything else is most likely 802.1Q-like.
            if (protocol != kEtherType8021Q) {
                char hex[8];
                std::snprintf(hex, sizeof hex, "0x%04x", protocol);
                c.warnings.push_back("link " + link.name + ": VLAN protocol " + hex +
                                     " is neither 802.1Q nor 802.1ad, captured as 802.1Q");
            }
            vlan->set_protocol(wire::VLAN::CVLAN);
        }
    }

    // Whether a VLAN can be recreated: its lower link must be captured too.
    const char* vlan_problem(const Candidate& c) const {
        const LinkMessage& link = *c.link;
        if (!link.vlan || !link.vlan->id) return "no VLAN id in the link dump";
        if (!link.link || link.link_in_other_netns) return "parent link is in another namespace";
        if (candidates_.count(*link.link) == 0) return "parent link is not captured";
        return nullptr;
    }

    // Repeated because a VLAN may sit on a VLAN that is dropped.
    void drop_unusable_vlans() {
        for (bool changed = true; changed;) {
            changed = false;
            for (auto it = candidates_.begin(); it != candidates_.end();) {
                const char* problem =
                    it->second.link->kind == "vlan" ? vlan_problem(it->second) : nullptr;
                if (problem == nullptr) {
                    ++it;
                    continue;
                }
                warn("skipped link " + it->second.link->name + ": " + problem);
                it = candidates_.erase(it);
                changed = true;
            }
        }
    }

    // An interface is kept when it has configuration of its own or a kept bond or VLAN needs it;
    // bonds pull in their members and VLANs their parent, transitively (VLAN on a bond).
    void decide_kept() {
        for (auto& [index, c] : candidates_) c.kept = c.has_config;
        for (bool changed = true; changed;) {
            changed = false;
            for (auto& [index, c] : candidates_) {
                if (!c.kept) continue;
                auto keep = [&](Candidate* other) {
                    if (other != nullptr && !other->kept) {
                        other->kept = true;
                        changed = true;
                    }
                };
                if (c.iface.has_vlan()) keep(candidate(static_cast<uint32_t>(*c.link->link)));
                if (c.iface.has_bond()) {
                    for (auto& [i2, other] : candidates_) {
                        if (other.link->master &&
                            *other.link->master == static_cast<uint32_t>(c.link->index)) {
                            keep(&other);
                        }
                    }
                }
            }
        }
        for (auto& [index, c] : candidates_) {
            if (!c.kept && (c.iface.has_bond() || c.iface.has_vlan())) {
                warn("skipped link " + c.link->name +
                     ": no addresses, autoconfiguration or routes on it or above it");
            }
        }
    }

    NetConfig emit() {
        std::vector<Candidate*> kept;
        for (auto& [index, c] : candidates_) {
            if (c.kept) kept.push_back(&c);
        }
        std::sort(kept.begin(), kept.end(), [](const Candidate* a, const Candidate* b) {
            return a->link->name < b->link->name;
        });
        NetConfig out;
        for (Candidate* c : kept) {
            *out.net.add_interface() = std::move(c->iface);
            for (auto& w : c->warnings) warnings_.push_back(std::move(w));
        }
        if (dump_.interrupted) {
            warn(
                "the kernel reported that the tables changed during the dump (NLM_F_DUMP_INTR); "
                "the capture may be inconsistent");
        }
        out.warnings = std::move(warnings_);
        return out;
    }

    const RtnlDump& dump_;
    const LinkFacts& facts_;
    std::map<int32_t, const LinkMessage*> all_links_;
    std::map<int32_t, Candidate> candidates_;
    std::vector<std::string> warnings_;
};

}  // namespace

std::string format_mac(const std::vector<uint8_t>& bytes) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < bytes.size(); ++i) {
        if (i != 0) out += ':';
        out += kHex[bytes[i] >> 4];
        out += kHex[bytes[i] & 0xf];
    }
    return out;
}

std::string format_ip(uint8_t family, const std::vector<uint8_t>& bytes) {
    char text[INET6_ADDRSTRLEN] = {};
    if ((family != AF_INET && family != AF_INET6) ||
        bytes.size() != (family == AF_INET ? 4u : 16u) ||
        inet_ntop(family, bytes.data(), text, sizeof text) == nullptr) {
        return "<invalid address>";
    }
    return text;
}

NetConfig build_net_config(const RtnlDump& dump, const LinkFacts& facts) {
    return Builder(dump, facts).build();
}

}  // namespace activate::netcapture
