// See network_apply.hpp. Order matters: devices are found and renamed first (a rename needs the
// link down), bonds are created with their parameters and then get their members (a slave must be
// down to be enslaved, Documentation/networking/bonding.rst), VLANs follow their parents, links
// come up, then addresses, and routes last (a gateway must be reachable through an address
// prefix). Attribute meanings: linux/if_link.h (IFLA_BOND_*, IFLA_VLAN_*), rtnetlink(7).
#include "network_apply.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>

#include "rtnl.hpp"

namespace activate::agent {
namespace {

// Bonding modes and the 802.3ad LACP numbers are the kernel's (include/uapi/linux/if_bonding.h,
// drivers/net/bonding/bond_options.c); the wire enums use the same values.
constexpr uint8_t kBondModeRoundRobin = 0;
constexpr uint8_t kBondModeActiveBackup = 1;
constexpr uint8_t kBondMode8023ad = 4;

struct IpPrefix {
    int family = 0;
    unsigned char bytes[16] = {};
    size_t size = 0;
    int prefix = 0;
};

// "192.0.2.1/24", "2001:db8::1/64", or a bare address (a host prefix).
std::optional<IpPrefix> parse_prefix(const std::string& text) {
    IpPrefix p;
    const size_t slash = text.find('/');
    const std::string ip = text.substr(0, slash);
    if (::inet_pton(AF_INET, ip.c_str(), p.bytes) == 1) {
        p.family = AF_INET;
        p.size = 4;
    } else if (::inet_pton(AF_INET6, ip.c_str(), p.bytes) == 1) {
        p.family = AF_INET6;
        p.size = 16;
    } else {
        return std::nullopt;
    }
    const int max = static_cast<int>(p.size * 8);
    p.prefix = max;
    if (slash != std::string::npos) {
        const std::string digits = text.substr(slash + 1);
        if (digits.empty() || digits.size() > 3 ||
            digits.find_first_not_of("0123456789") != std::string::npos)
            return std::nullopt;
        p.prefix = std::stoi(digits);
        if (p.prefix > max) return std::nullopt;
    }
    return p;
}

std::optional<std::string> parse_mac(const std::string& text) {
    std::string out;
    unsigned v[6];
    char tail;
    if (std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4],
                    &v[5], &tail) != 6)
        return std::nullopt;
    for (const unsigned b : v) out += static_cast<char>(b);
    return out;
}

std::string lower(std::string s) {
    for (char& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
}

void sleep_ms(int ms) {
    timespec t{ms / 1000, (ms % 1000) * 1000000L};
    while (::nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

class NetworkApplier {
  public:
    NetworkApplier(const wire::Net& net, const NetworkApplyOptions& options)
        : net_(net), options_(options) {}

    std::vector<std::string> run() {
        if (!rtnl_.open_error().empty()) {
            fail("network", rtnl_.open_error());
            return std::move(not_applied_);
        }
        if (!refresh()) return std::move(not_applied_);
        place_devices();
        for (const wire::Interface& i : net_.interface())
            if (i.has_bond()) create_bond(i);
        create_vlans();
        if (!refresh()) return std::move(not_applied_);
        for (const wire::Interface& i : net_.interface()) bring_up(i);
        for (const wire::Interface& i : net_.interface()) add_addresses(i);
        for (const wire::Interface& i : net_.interface()) add_routes(i);
        for (const wire::Interface& i : net_.interface()) autoconfig(i);
        write_nameservers();
        return std::move(not_applied_);
    }

  private:
    void fail(const std::string& what, const std::string& why) {
        not_applied_.push_back(what + ": " + why);
    }

    bool refresh() {
        if (std::string e = rtnl_.links(&links_); !e.empty()) {
            fail("network", "cannot list the links: " + e);
            return false;
        }
        return true;
    }

    const LiveLink* by_name(const std::string& name) const {
        for (const LiveLink& l : links_)
            if (l.name == name) return &l;
        return nullptr;
    }

    // Sets a link's name, MTU, master or flags; empty on success.
    std::string set_link(int index, const char* name, unsigned mtu, int master,
                         std::optional<bool> up) {
        ifinfomsg ifi{};
        ifi.ifi_family = AF_UNSPEC;
        ifi.ifi_index = index;
        if (up) {
            ifi.ifi_change = IFF_UP;
            ifi.ifi_flags = *up ? IFF_UP : 0;
        }
        RtnlRequest r(RTM_NEWLINK, 0, &ifi, sizeof ifi);
        if (name) r.put_string(IFLA_IFNAME, name);
        if (mtu) r.put_u32(IFLA_MTU, mtu);
        if (master >= 0) r.put_u32(IFLA_MASTER, static_cast<uint32_t>(master));
        return rtnl_.execute(r);
    }

    // Devices: by permanent MAC (IFLA_PERM_ADDRESS), else by current MAC, each link used once.
    // Renames go through a temporary name so that swapped names (eth0 <-> eth1) cannot collide.
    void place_devices() {
        std::vector<std::pair<const wire::Interface*, int>> found;
        std::vector<int> used;
        // One wait for all devices: a missing one must not delay the next by as much again.
        timespec start;
        ::clock_gettime(CLOCK_MONOTONIC, &start);
        auto waited_ms = [&] {
            timespec now;
            ::clock_gettime(CLOCK_MONOTONIC, &now);
            return (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        };
        auto taken = [&](int index) {
            for (int u : used)
                if (u == index) return true;
            return false;
        };
        for (const wire::Interface& i : net_.interface()) {
            if (!i.has_device()) continue;
            const std::string want = lower(i.device().hardware_address());
            const std::string what = "link " + i.name() + " (" + want + ")";
            if (!parse_mac(want)) {
                fail(what, "hardware_address is not a MAC address");
                continue;
            }
            const LiveLink* match = nullptr;
            for (;;) {
                for (const LiveLink& l : links_)
                    if (!taken(l.index) && l.perm_mac == want) match = &l;
                if (!match)
                    for (const LiveLink& l : links_)
                        if (!taken(l.index) && l.mac == want) match = &l;
                if (match || waited_ms() >= options_.device_wait_ms) break;
                sleep_ms(100);
                if (!refresh()) return;
            }
            if (!match) {
                fail(what, "no link has this permanent or current MAC address");
                continue;
            }
            used.push_back(match->index);
            found.emplace_back(&i, match->index);
        }
        std::vector<std::pair<const wire::Interface*, int>> rename;
        for (const auto& [iface, index] : found) {
            const LiveLink* l = nullptr;
            for (const LiveLink& x : links_)
                if (x.index == index) l = &x;
            if (l && l->name != iface->name()) rename.emplace_back(iface, index);
        }
        for (const auto& [iface, index] : rename) {
            const std::string temporary = "agent" + std::to_string(index);
            std::string e = set_link(index, nullptr, 0, -1, false);
            if (e.empty()) e = set_link(index, temporary.c_str(), 0, -1, std::nullopt);
            if (!e.empty()) fail("link " + iface->name(), "cannot rename: " + e);
        }
        for (const auto& [iface, index] : rename) {
            if (std::string e = set_link(index, iface->name().c_str(), 0, -1, std::nullopt);
                !e.empty())
                fail("link " + iface->name(), "cannot rename: " + e);
        }
        for (const auto& [iface, index] : found) {
            if (iface->mtu() > 0) {
                if (std::string e = set_link(index, nullptr, static_cast<unsigned>(iface->mtu()),
                                             -1, std::nullopt);
                    !e.empty())
                    fail("link " + iface->name() + " mtu " + std::to_string(iface->mtu()), e);
            }
        }
        refresh();
    }

    void create_bond(const wire::Interface& i) {
        const wire::Bond& b = i.bond();
        const std::string what = "bond " + i.name();
        // Loading the bonding module may have made a default bond0 (max_bonds, balance-rr):
        // replace it rather than reuse a bond whose mode cannot change with slaves attached.
        if (const LiveLink* existing = by_name(i.name())) {
            if (existing->kind != "bond") {
                fail(what, "a link of that name exists (kind \"" + existing->kind + "\")");
                return;
            }
            ifinfomsg ifi{};
            ifi.ifi_index = existing->index;
            RtnlRequest del(RTM_DELLINK, 0, &ifi, sizeof ifi);
            if (std::string e = rtnl_.execute(del); !e.empty()) {
                fail(what, "cannot remove the existing bond: " + e);
                return;
            }
        }
        ifinfomsg ifi{};
        RtnlRequest r(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof ifi);
        r.put_string(IFLA_IFNAME, i.name());
        if (i.mtu() > 0) r.put_u32(IFLA_MTU, static_cast<uint32_t>(i.mtu()));
        const size_t info = r.begin_nested(IFLA_LINKINFO);
        r.put_string(IFLA_INFO_KIND, "bond");
        const size_t data = r.begin_nested(IFLA_INFO_DATA);
        switch (b.mode_case()) {
            case wire::Bond::kLacp: {
                const wire::Bond::LACP& lacp = b.lacp();
                r.put_u8(IFLA_BOND_MODE, kBondMode8023ad);
                r.put_u8(IFLA_BOND_AD_LACP_RATE, static_cast<uint8_t>(lacp.rate()));
                r.put_u8(IFLA_BOND_AD_SELECT, static_cast<uint8_t>(lacp.selection_logic()));
                // 0 is not a valid priority (1-65535); the capture leaves it 0 when unset.
                if (lacp.actor_system_priority() > 0)
                    r.put_u16(IFLA_BOND_AD_ACTOR_SYS_PRIO,
                              static_cast<uint16_t>(lacp.actor_system_priority()));
                r.put_u16(IFLA_BOND_AD_USER_PORT_KEY, static_cast<uint16_t>(lacp.user_port_key()));
                if (!lacp.actor_system_mac().empty()) {
                    if (auto mac = parse_mac(lacp.actor_system_mac()))
                        r.put(IFLA_BOND_AD_ACTOR_SYSTEM, mac->data(), mac->size());
                    else
                        fail(what + " actor_system_mac \"" + lacp.actor_system_mac() + "\"",
                             "not a MAC address");
                }
                break;
            }
            case wire::Bond::kActiveBackup:
                r.put_u8(IFLA_BOND_MODE, kBondModeActiveBackup);
                break;
            case wire::Bond::MODE_NOT_SET:
                r.put_u8(IFLA_BOND_MODE, kBondModeRoundRobin);
                fail(what + " mode", "AgentInit carries none; created as balance-rr");
                break;
        }
        r.put_u32(IFLA_BOND_MIN_LINKS, static_cast<uint32_t>(b.min_links()));
        r.put_u8(IFLA_BOND_XMIT_HASH_POLICY, static_cast<uint8_t>(b.transmit_hash_policy()));
        if (b.has_carrier_monitor()) {
            const wire::CarrierMonitor& m = b.carrier_monitor();
            r.put_u32(IFLA_BOND_MIIMON, static_cast<uint32_t>(m.polling_interval_ms()));
            r.put_u32(IFLA_BOND_UPDELAY, static_cast<uint32_t>(m.up_delay_ms()));
            r.put_u32(IFLA_BOND_DOWNDELAY, static_cast<uint32_t>(m.down_delay_ms()));
            r.put_u8(IFLA_BOND_USE_CARRIER, m.force_polling() ? 0 : 1);
        }
        r.end_nested(data);
        r.end_nested(info);
        if (std::string e = rtnl_.execute(r); !e.empty()) {
            fail(what, "cannot create: " + e);
            return;
        }
        if (!refresh()) return;
        const LiveLink* bond = by_name(i.name());
        if (!bond) {
            fail(what, "created but not listed by the kernel");
            return;
        }
        const int bond_index = bond->index;
        for (const std::string& member : b.member_interface()) {
            const LiveLink* m = by_name(member);
            if (!m) {
                fail(what + " member " + member, "no such link");
                continue;
            }
            std::string e = set_link(m->index, nullptr, 0, -1, false);
            if (e.empty()) e = set_link(m->index, nullptr, 0, bond_index, std::nullopt);
            if (!e.empty()) fail(what + " member " + member, "cannot enslave: " + e);
        }
        refresh();
    }

    // VLANs may sit on VLANs (802.1ad outer, 802.1Q inner): create each once its parent exists.
    void create_vlans() {
        std::vector<const wire::Interface*> pending;
        for (const wire::Interface& i : net_.interface())
            if (i.has_vlan()) pending.push_back(&i);
        for (bool progress = true; progress && !pending.empty();) {
            progress = false;
            for (auto it = pending.begin(); it != pending.end();) {
                const wire::Interface& i = **it;
                const LiveLink* parent = by_name(i.vlan().parent());
                if (!parent) {
                    ++it;
                    continue;
                }
                progress = true;
                it = pending.erase(it);
                create_vlan(i, parent->index);
                refresh();
            }
        }
        for (const wire::Interface* i : pending)
            fail("vlan " + i->name(), "parent link " + i->vlan().parent() + " does not exist");
    }

    void create_vlan(const wire::Interface& i, int parent) {
        const std::string what = "vlan " + i.name();
        if (i.vlan().id() < 1 || i.vlan().id() > 4094) {
            fail(what, "id " + std::to_string(i.vlan().id()) + " is outside 1-4094 (IEEE 802.1Q)");
            return;
        }
        ifinfomsg ifi{};
        RtnlRequest r(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof ifi);
        r.put_string(IFLA_IFNAME, i.name());
        r.put_u32(IFLA_LINK, static_cast<uint32_t>(parent));
        if (i.mtu() > 0) r.put_u32(IFLA_MTU, static_cast<uint32_t>(i.mtu()));
        const size_t info = r.begin_nested(IFLA_LINKINFO);
        r.put_string(IFLA_INFO_KIND, "vlan");
        const size_t data = r.begin_nested(IFLA_INFO_DATA);
        r.put_u16(IFLA_VLAN_ID, static_cast<uint16_t>(i.vlan().id()));
        // Big-endian EtherType: 0x8100 802.1Q, 0x88a8 802.1ad.
        const uint16_t proto = htons(i.vlan().protocol() == wire::VLAN::SVLAN ? 0x88a8 : 0x8100);
        r.put(IFLA_VLAN_PROTOCOL, &proto, sizeof proto);
        r.end_nested(data);
        r.end_nested(info);
        if (std::string e = rtnl_.execute(r); !e.empty()) fail(what, "cannot create: " + e);
    }

    void bring_up(const wire::Interface& i) {
        const LiveLink* l = by_name(i.name());
        if (!l) return;  // already reported
        if (std::string e = set_link(l->index, nullptr, 0, -1, true); !e.empty())
            fail("link " + i.name() + " up", e);
    }

    void add_addresses(const wire::Interface& i) {
        const LiveLink* l = by_name(i.name());
        for (const std::string& text : i.address()) {
            const std::string what = "address " + text + " on " + i.name();
            if (!l) {
                fail(what, "the link does not exist");
                continue;
            }
            const auto p = parse_prefix(text);
            if (!p) {
                fail(what, "not an IP address or CIDR");
                continue;
            }
            ifaddrmsg ifa{};
            ifa.ifa_family = static_cast<unsigned char>(p->family);
            ifa.ifa_prefixlen = static_cast<unsigned char>(p->prefix);
            ifa.ifa_index = static_cast<unsigned>(l->index);
            RtnlRequest r(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, &ifa, sizeof ifa);
            r.put(IFA_LOCAL, p->bytes, p->size);
            r.put(IFA_ADDRESS, p->bytes, p->size);
            // The machine held this address until the kexec a few seconds ago: duplicate address
            // detection (RFC 4862 §5.4) would only keep it tentative and unreachable for a while.
            if (p->family == AF_INET6) r.put_u32(IFA_FLAGS, IFA_F_NODAD);
            if (std::string e = rtnl_.execute(r); !e.empty()) fail(what, e);
        }
    }

    void add_routes(const wire::Interface& i) {
        const LiveLink* l = by_name(i.name());
        for (const wire::Route& route : i.route()) {
            std::string what = "route " + route.destination();
            if (!route.gateway_ip().empty()) what += " via " + route.gateway_ip();
            what += " dev " + i.name();
            if (!l) {
                fail(what, "the link does not exist");
                continue;
            }
            const auto dst = parse_prefix(route.destination());
            if (!dst) {
                fail(what, "destination is not a CIDR");
                continue;
            }
            rtmsg rtm{};
            rtm.rtm_family = static_cast<unsigned char>(dst->family);
            rtm.rtm_dst_len = static_cast<unsigned char>(dst->prefix);
            rtm.rtm_table = RT_TABLE_MAIN;
            rtm.rtm_protocol = RTPROT_BOOT;  // what `ip route add` sets
            rtm.rtm_type = RTN_UNICAST;
            rtm.rtm_scope = route.gateway_ip().empty() ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
            RtnlRequest r(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, &rtm, sizeof rtm);
            if (dst->prefix > 0) r.put(RTA_DST, dst->bytes, dst->size);
            bool bad = false;
            for (const auto& [attr, text] :
                 {std::pair<uint16_t, const std::string*>{RTA_GATEWAY, &route.gateway_ip()},
                  {RTA_PREFSRC, &route.source_ip()}}) {
                if (text->empty()) continue;
                const auto ip = parse_prefix(*text);
                if (!ip || ip->family != dst->family ||
                    ip->prefix != static_cast<int>(ip->size * 8)) {
                    fail(what, "\"" + *text + "\" is not an address of the destination's family");
                    bad = true;
                    break;
                }
                r.put(attr, ip->bytes, ip->size);
            }
            if (bad) continue;
            if (route.metric() > 0) r.put_u32(RTA_PRIORITY, static_cast<uint32_t>(route.metric()));
            r.put_u32(RTA_OIF, static_cast<uint32_t>(l->index));
            if (std::string e = rtnl_.execute(r); !e.empty()) fail(what, e);
        }
    }

    void autoconfig(const wire::Interface& i) {
        if (i.has_ipv4_autoconfig())
            fail("ipv4 autoconfig (DHCP) on " + i.name(), "the reference agent has no DHCP client");
        if (i.has_ipv6_autoconfig()) {
            // SLAAC is the kernel's (accept_ra, on by default); only the privacy choice is ours
            // (use_tempaddr, Documentation/networking/ip-sysctl.rst).
            const int value = static_cast<int>(i.ipv6_autoconfig().privacy());
            const std::string path =
                options_.proc_sys_net + "/ipv6/conf/" + i.name() + "/use_tempaddr";
            if (!write_file(path, std::to_string(value) + "\n"))
                fail("ipv6 privacy on " + i.name(),
                     "cannot write " + path + ": " + std::strerror(errno));
        }
    }

    static bool write_file(const std::string& path, const std::string& text) {
        const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) return false;
        const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
        const int saved = errno;
        ::close(fd);
        errno = saved;
        return ok;
    }

    // resolv.conf(5): one "nameserver" line per server, written beside and renamed over, so a
    // reader never sees half a file.
    void write_nameservers() {
        if (net_.nameserver_size() == 0) return;
        std::string text;
        for (const wire::Nameserver& ns : net_.nameserver()) {
            if (!parse_prefix(ns.ip()) || ns.ip().find('/') != std::string::npos) {
                fail("nameserver \"" + ns.ip() + "\"", "not an IP address");
                continue;
            }
            text += "nameserver " + ns.ip() + "\n";
        }
        const std::string& path = options_.resolv_conf;
        const size_t slash = path.rfind('/');
        if (slash != std::string::npos && slash > 0) ::mkdir(path.substr(0, slash).c_str(), 0755);
        const std::string temporary = path + ".agent";
        if (!write_file(temporary, text)) {
            fail("nameservers", "cannot write " + temporary + ": " + std::strerror(errno));
            ::unlink(temporary.c_str());
            return;
        }
        if (::rename(temporary.c_str(), path.c_str()) == 0) return;
        // A bind-mounted resolv.conf (containers, `ip netns exec`) cannot be replaced: rewrite it.
        const bool busy = errno == EBUSY;
        ::unlink(temporary.c_str());
        if (!busy || !write_file(path, text))
            fail("nameservers", "cannot write " + path + ": " + std::strerror(errno));
    }

    const wire::Net& net_;
    const NetworkApplyOptions& options_;
    RtnlSocket rtnl_;
    std::vector<LiveLink> links_;
    std::vector<std::string> not_applied_;
};

}  // namespace

std::vector<std::string> apply_network(const wire::Net& net, const NetworkApplyOptions& options) {
    return NetworkApplier(net, options).run();
}

}  // namespace activate::agent
