// The mapping rules of build_net_config on small hand-made dumps, one rule per test: what is kept,
// what is dropped silently and what is dropped with a warning.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_arp.h>
#include <linux/if_bonding.h>
#include <linux/rtnetlink.h>

#include <map>
#include <netcapture/net_config.hpp>

namespace activate::netcapture {
namespace {

class FakeFacts : public LinkFacts {
  public:
    std::map<std::string, std::vector<uint8_t>> perm;
    std::map<std::string, std::string> drivers;
    std::map<std::string, int> tempaddr;

    std::vector<uint8_t> permanent_address(const std::string& link) const override {
        auto it = perm.find(link);
        return it == perm.end() ? std::vector<uint8_t>{} : it->second;
    }
    std::string driver(const std::string& link) const override {
        auto it = drivers.find(link);
        return it == drivers.end() ? "" : it->second;
    }
    Result<int> ipv6_use_tempaddr(const std::string& link) const override {
        auto it = tempaddr.find(link);
        if (it == tempaddr.end()) return Error(ErrorKind::activation, "no such file");
        return it->second;
    }
};

std::vector<uint8_t> ip(const char* text) {
    uint8_t buf[16];
    if (inet_pton(AF_INET, text, buf) == 1) return {buf, buf + 4};
    EXPECT_EQ(inet_pton(AF_INET6, text, buf), 1) << text;
    return {buf, buf + 16};
}

LinkMessage link(int32_t index, const std::string& name, const std::string& kind = "") {
    LinkMessage l;
    l.index = index;
    l.name = name;
    l.kind = kind;
    l.mtu = 1500;
    l.arphrd_type = ARPHRD_ETHER;
    l.flags = IFF_UP;
    l.address = {0x02, 0, 0, 0, 0, static_cast<uint8_t>(index)};
    return l;
}

LinkMessage loopback() {
    LinkMessage l = link(1, "lo");
    l.arphrd_type = ARPHRD_LOOPBACK;
    l.flags = IFF_UP | IFF_LOOPBACK;
    l.address = std::vector<uint8_t>(6, 0);
    return l;
}

AddressMessage address(uint32_t index, const char* local, uint8_t prefix) {
    AddressMessage a;
    a.family = std::string(local).find(':') == std::string::npos ? AF_INET : AF_INET6;
    a.index = index;
    a.prefixlen = prefix;
    a.flags = IFA_F_PERMANENT;
    a.address = ip(local);
    if (a.family == AF_INET) a.local = a.address;
    a.valid_lifetime = 0xffffffff;
    a.preferred_lifetime = 0xffffffff;
    return a;
}

RouteMessage route(uint32_t oif, const char* dst, uint8_t dst_len, const char* gateway) {
    RouteMessage r;
    r.family = std::string(gateway).find(':') == std::string::npos ? AF_INET : AF_INET6;
    r.table = RT_TABLE_MAIN;
    r.protocol = RTPROT_STATIC;
    r.type = RTN_UNICAST;
    r.oif = oif;
    if (dst != nullptr) r.dst = ip(dst);
    r.dst_len = dst_len;
    if (*gateway != '\0') r.gateway = ip(gateway);
    return r;
}

const wire::Interface* find(const wire::Net& net, const std::string& name) {
    for (const auto& i : net.interface()) {
        if (i.name() == name) return &i;
    }
    return nullptr;
}

bool has_warning(const NetConfig& c, const std::string& text) {
    return std::find(c.warnings.begin(), c.warnings.end(), text) != c.warnings.end();
}

std::string all_warnings(const NetConfig& c) {
    std::string out;
    for (const auto& w : c.warnings) out += "\n  " + w;
    return out;
}

TEST(NetConfig, DropsLoopbackAndUnconfiguredDevicesSilently) {
    RtnlDump dump;
    dump.links = {loopback(), link(2, "eth0"), link(3, "eth1")};
    dump.addresses = {address(1, "127.0.0.1", 8), address(1, "::1", 128),
                      address(2, "192.0.2.1", 24)};
    FakeFacts facts;
    NetConfig c = build_net_config(dump, facts);
    ASSERT_EQ(c.net.interface_size(), 1);
    EXPECT_EQ(c.net.interface(0).name(), "eth0");
    EXPECT_TRUE(c.warnings.empty()) << all_warnings(c);
}

TEST(NetConfig, SortsInterfacesByName) {
    RtnlDump dump;
    dump.links = {link(2, "zeta"), link(3, "alpha"), link(4, "mid")};
    dump.addresses = {address(2, "192.0.2.1", 24), address(3, "192.0.2.2", 24),
                      address(4, "192.0.2.3", 24)};
    NetConfig c = build_net_config(dump, FakeFacts{});
    ASSERT_EQ(c.net.interface_size(), 3);
    EXPECT_EQ(c.net.interface(0).name(), "alpha");
    EXPECT_EQ(c.net.interface(1).name(), "mid");
    EXPECT_EQ(c.net.interface(2).name(), "zeta");
}

TEST(NetConfig, HardwareAddressPrefersPermanentThenEthtoolThenCurrent) {
    RtnlDump dump;
    dump.links = {link(2, "a"), link(3, "b"), link(4, "c")};
    dump.links[0].perm_address = {0x52, 0x54, 0, 0, 0, 0xaa};
    dump.links[1].perm_address = std::vector<uint8_t>(6, 0);  // all zero: not a real one
    for (uint32_t i : {2u, 3u, 4u}) dump.addresses.push_back(address(i, "192.0.2.1", 24));
    FakeFacts facts;
    facts.perm["a"] = {0xde, 0xad, 0, 0, 0, 1};  // ignored: the dump has IFLA_PERM_ADDRESS
    facts.perm["b"] = {0x52, 0x54, 0, 0, 0, 0xbb};
    facts.drivers["a"] = "virtio_net";
    NetConfig c = build_net_config(dump, facts);
    EXPECT_EQ(find(c.net, "a")->device().hardware_address(), "52:54:00:00:00:aa");
    EXPECT_EQ(find(c.net, "b")->device().hardware_address(), "52:54:00:00:00:bb");
    EXPECT_EQ(find(c.net, "c")->device().hardware_address(), "02:00:00:00:00:04");
    EXPECT_EQ(find(c.net, "a")->device().driver(), "virtio_net");
    EXPECT_EQ(find(c.net, "a")->device().index(), 2);
    EXPECT_EQ(find(c.net, "c")->device().index(), 4);
    EXPECT_EQ(find(c.net, "c")->mtu(), 1500);
}

TEST(NetConfig, UnsupportedKindWithAddressIsADeviceWithAWarning) {
    RtnlDump dump;
    dump.links = {link(2, "veth0", "veth"), link(3, "br0", "bridge")};
    dump.addresses = {address(2, "192.0.2.1", 24)};
    NetConfig c = build_net_config(dump, FakeFacts{});
    ASSERT_EQ(c.net.interface_size(), 1);
    EXPECT_TRUE(c.net.interface(0).has_device());
    EXPECT_TRUE(
        has_warning(c, "link veth0: kind veth is not supported, captured as a plain device"))
        << all_warnings(c);
    EXPECT_EQ(c.warnings.size(), 1u) << "br0 has nothing to carry and is dropped silently";
}

TEST(NetConfig, ActiveBackupBondKeepsMembers) {
    RtnlDump dump;
    LinkMessage bond = link(5, "bond0", "bond");
    bond.bond.emplace();
    bond.bond->mode = BOND_MODE_ACTIVEBACKUP;
    bond.bond->miimon = 0;
    bond.bond->xmit_hash_policy = BOND_XMIT_POLICY_LAYER23;
    LinkMessage m1 = link(3, "ens4"), m2 = link(2, "ens3"), other = link(4, "ens5");
    m1.master = 5;
    m2.master = 5;
    dump.links = {m1, m2, other, bond};
    dump.addresses = {address(5, "192.0.2.5", 24)};
    NetConfig c = build_net_config(dump, FakeFacts{});
    ASSERT_EQ(c.net.interface_size(), 3) << "bond0, ens3, ens4; not ens5";
    const auto* b = find(c.net, "bond0");
    ASSERT_TRUE(b->has_bond());
    EXPECT_TRUE(b->bond().has_active_backup());
    EXPECT_FALSE(b->bond().has_carrier_monitor()) << "miimon 0 means no MII monitoring";
    EXPECT_EQ(b->bond().transmit_hash_policy(), wire::Bond::LAYER2_3);
    ASSERT_EQ(b->bond().member_interface_size(), 2);
    EXPECT_EQ(b->bond().member_interface(0), "ens3");
    EXPECT_EQ(b->bond().member_interface(1), "ens4");
    EXPECT_TRUE(find(c.net, "ens3")->has_device());
    EXPECT_EQ(find(c.net, "ens5"), nullptr);
}

TEST(NetConfig, BondOddities) {
    RtnlDump dump;
    LinkMessage bond = link(5, "bond0", "bond");
    bond.bond.emplace();
    bond.bond->mode = BOND_MODE_ROUNDROBIN;
    bond.bond->miimon = 50;
    bond.bond->updelay = 200;
    bond.bond->downdelay = 100;
    bond.bond->use_carrier = 0;
    bond.bond->arp_interval = 1000;
    dump.links = {bond};
    dump.addresses = {address(5, "192.0.2.5", 24)};
    NetConfig c = build_net_config(dump, FakeFacts{});
    const auto& b = find(c.net, "bond0")->bond();
    EXPECT_FALSE(b.has_lacp());
    EXPECT_FALSE(b.has_active_backup());
    ASSERT_TRUE(b.has_carrier_monitor());
    EXPECT_EQ(b.carrier_monitor().polling_interval_ms(), 50);
    EXPECT_EQ(b.carrier_monitor().up_delay_ms(), 200);
    EXPECT_EQ(b.carrier_monitor().down_delay_ms(), 100);
    EXPECT_TRUE(b.carrier_monitor().force_polling());
    EXPECT_TRUE(
        has_warning(c, "bond bond0: mode balance-rr is not supported, captured without a mode"))
        << all_warnings(c);
    EXPECT_TRUE(has_warning(c, "bond bond0: ARP link monitoring is not supported, not captured"))
        << all_warnings(c);
}

TEST(NetConfig, BondWithoutConfigurationIsDroppedWithItsMembers) {
    RtnlDump dump;
    LinkMessage bond = link(5, "bond1", "bond");
    bond.bond.emplace();
    LinkMessage member = link(2, "eth0");
    member.master = 5;
    dump.links = {member, bond};
    NetConfig c = build_net_config(dump, FakeFacts{});
    EXPECT_EQ(c.net.interface_size(), 0);
    EXPECT_TRUE(has_warning(
        c, "skipped link bond1: no addresses, autoconfiguration or routes on it or above it"))
        << all_warnings(c);
}

TEST(NetConfig, VlanWithoutUsableParentIsDropped) {
    RtnlDump dump;
    LinkMessage foreign = link(3, "v.10", "vlan");
    foreign.vlan = VlanAttributes{10, 0x8100};
    foreign.link = 2;
    foreign.link_in_other_netns = true;
    LinkMessage orphan = link(4, "v.20", "vlan");
    orphan.vlan = VlanAttributes{20, 0x8100};
    orphan.link = 9;  // no such link
    LinkMessage stacked = link(5, "v.20.30", "vlan");
    stacked.vlan = VlanAttributes{30, 0x8100};
    stacked.link = 4;  // on the orphan
    dump.links = {link(2, "eth0"), foreign, orphan, stacked};
    dump.addresses = {address(3, "192.0.2.1", 24), address(5, "192.0.2.2", 24)};
    NetConfig c = build_net_config(dump, FakeFacts{});
    EXPECT_EQ(c.net.interface_size(), 0);
    EXPECT_TRUE(has_warning(c, "skipped link v.10: parent link is in another namespace"))
        << all_warnings(c);
    EXPECT_TRUE(has_warning(c, "skipped link v.20: parent link is not captured"));
    EXPECT_TRUE(has_warning(c, "skipped link v.20.30: parent link is not captured"));
}

TEST(NetConfig, VlanProtocols) {
    RtnlDump dump;
    LinkMessage q = link(3, "eth0.5", "vlan");
    q.vlan = VlanAttributes{5, 0x8100};
    q.link = 2;
    LinkMessage ad = link(4, "eth0.6", "vlan");
    ad.vlan = VlanAttributes{6, 0x88a8};
    ad.link = 2;
    dump.links = {link(2, "eth0"), q, ad};
    dump.addresses = {address(3, "192.0.2.1", 24), address(4, "198.51.100.1", 24)};
    NetConfig c = build_net_config(dump, FakeFacts{});
    ASSERT_EQ(c.net.interface_size(), 3) << "eth0 is kept as the parent";
    EXPECT_EQ(find(c.net, "eth0.5")->vlan().protocol(), wire::VLAN::CVLAN);
    EXPECT_EQ(find(c.net, "eth0.5")->vlan().id(), 5);
    EXPECT_EQ(find(c.net, "eth0.5")->vlan().parent(), "eth0");
    EXPECT_EQ(find(c.net, "eth0.6")->vlan().protocol(), wire::VLAN::SVLAN);
    EXPECT_EQ(find(c.net, "eth0")->address_size(), 0);
    EXPECT_TRUE(c.warnings.empty()) << all_warnings(c);

    LinkMessage odd = link(5, "eth0.7", "vlan");
    odd.vlan = VlanAttributes{7, 0x9100};
    odd.link = 2;
    dump.links.push_back(odd);
    dump.addresses.push_back(address(5, "203.0.113.1", 24));
    c = build_net_config(dump, FakeFacts{});
    EXPECT_EQ(find(c.net, "eth0.7")->vlan().protocol(), wire::VLAN::CVLAN);
    EXPECT_TRUE(has_warning(
        c, "link eth0.7: VLAN protocol 0x9100 is neither 802.1Q nor 802.1ad, captured as 802.1Q"))
        << all_warnings(c);
}

TEST(NetConfig, AddressRules) {
    RtnlDump dump;
    dump.links = {link(2, "eth0"), link(3, "eth1")};
    AddressMessage link_local = address(2, "fe80::1", 64);
    AddressMessage slaac = address(2, "2001:db8::1234", 64);
    slaac.flags = 0;
    slaac.valid_lifetime = 86400;
    AddressMessage dhcp4 = address(3, "10.0.0.5", 24);
    dhcp4.flags = 0;
    dhcp4.valid_lifetime = 3600;
    AddressMessage failed = address(2, "2001:db8::99", 64);
    failed.flags |= IFA_F_DADFAILED;
    AddressMessage peer = address(3, "10.1.2.3", 24);
    peer.address = ip("10.1.2.77");  // peer 10.1.2.77/24 -> on-link route to 10.1.2.0/24
    dump.addresses = {link_local,
                      slaac,
                      dhcp4,
                      failed,
                      peer,
                      address(2, "2001:db8:1::1", 64),
                      address(9, "192.0.2.9", 24)};
    FakeFacts facts;
    facts.tempaddr["eth0"] = 1;
    NetConfig c = build_net_config(dump, facts);
    const auto* eth0 = find(c.net, "eth0");
    const auto* eth1 = find(c.net, "eth1");
    ASSERT_EQ(eth0->address_size(), 1);
    EXPECT_EQ(eth0->address(0), "2001:db8:1::1/64");
    EXPECT_TRUE(eth0->has_ipv6_autoconfig());
    EXPECT_EQ(eth0->ipv6_autoconfig().privacy(), wire::IPv6Autoconfig::AVOID);
    EXPECT_FALSE(eth0->has_ipv4_autoconfig());
    EXPECT_TRUE(eth1->has_ipv4_autoconfig());
    EXPECT_FALSE(eth1->has_ipv6_autoconfig());
    ASSERT_EQ(eth1->address_size(), 1);
    EXPECT_EQ(eth1->address(0), "10.1.2.3/32");
    ASSERT_EQ(eth1->route_size(), 1);
    EXPECT_EQ(eth1->route(0).destination(), "10.1.2.0/24");
    EXPECT_EQ(eth1->route(0).gateway_ip(), "");
    EXPECT_TRUE(has_warning(c, "skipped address fe80::1/64 on eth0: link-local"))
        << all_warnings(c);
    EXPECT_TRUE(
        has_warning(c, "skipped address 2001:db8::99/64 on eth0: duplicate address detected"));
    EXPECT_TRUE(has_warning(
        c, "skipped address 10.0.0.5/24 on eth1: dynamic, IPv4 autoconfiguration enabled instead"));
    EXPECT_TRUE(has_warning(c, "skipped address 192.0.2.9/24: no link with index 9"));
}

TEST(NetConfig, Ipv6PrivacyFromUseTempaddr) {
    for (const auto& [value, privacy] : std::vector<std::pair<int, wire::IPv6Autoconfig::Privacy>>{
             {-1, wire::IPv6Autoconfig::DISABLE},
             {0, wire::IPv6Autoconfig::DISABLE},
             {1, wire::IPv6Autoconfig::AVOID},
             {2, wire::IPv6Autoconfig::PREFER}}) {
        RtnlDump dump;
        dump.links = {link(2, "eth0")};
        AddressMessage slaac = address(2, "2001:db8::1234", 64);
        slaac.flags = 0;
        dump.addresses = {slaac};
        FakeFacts facts;
        facts.tempaddr["eth0"] = value;
        NetConfig c = build_net_config(dump, facts);
        EXPECT_EQ(c.net.interface(0).ipv6_autoconfig().privacy(), privacy) << value;
    }
    RtnlDump dump;
    dump.links = {link(2, "eth0")};
    AddressMessage slaac = address(2, "2001:db8::1234", 64);
    slaac.flags = 0;
    dump.addresses = {slaac};
    NetConfig c = build_net_config(dump, FakeFacts{});
    EXPECT_EQ(c.net.interface(0).ipv6_autoconfig().privacy(), wire::IPv6Autoconfig::DISABLE);
    EXPECT_TRUE(has_warning(c, "IPv6 privacy of eth0: no such file; using disabled"))
        << all_warnings(c);
}

TEST(NetConfig, RouteRules) {
    RtnlDump dump;
    dump.links = {loopback(), link(2, "eth0"), link(3, "eth1")};
    RouteMessage kept = route(2, "198.51.100.0", 24, "192.0.2.1");
    kept.priority = 77;
    kept.prefsrc = ip("192.0.2.10");
    RouteMessage default6 = route(2, nullptr, 0, "fe80::1");
    default6.protocol = RTPROT_BOOT;
    RouteMessage unspec = route(3, "203.0.113.0", 24, "");  // keeps eth1 without addresses
    unspec.protocol = RTPROT_UNSPEC;
    RouteMessage kernel = route(2, "192.0.2.0", 24, "");
    kernel.protocol = RTPROT_KERNEL;
    RouteMessage cloned = route(2, "192.0.2.99", 32, "192.0.2.1");
    cloned.flags = RTM_F_CLONED;
    RouteMessage table = route(2, "10.0.0.0", 8, "192.0.2.1");
    table.table = 100;
    RouteMessage blackhole = route(2, "10.0.0.0", 8, "");
    blackhole.type = RTN_BLACKHOLE;
    blackhole.oif.reset();
    RouteMessage dhcp = route(2, nullptr, 0, "192.0.2.1");
    dhcp.protocol = RTPROT_DHCP;
    RouteMessage multipath = route(2, "10.1.0.0", 16, "");
    multipath.oif.reset();
    multipath.multipath = true;
    RouteMessage on_lo = route(1, "10.2.0.0", 16, "");
    RouteMessage no_oif = route(2, "10.3.0.0", 16, "");
    no_oif.oif.reset();
    dump.routes = {kept,      default6, unspec,    kernel, cloned, table,
                   blackhole, dhcp,     multipath, on_lo,  no_oif};
    dump.addresses = {address(2, "192.0.2.10", 24)};
    NetConfig c = build_net_config(dump, FakeFacts{});
    const auto* eth0 = find(c.net, "eth0");
    ASSERT_EQ(eth0->route_size(), 2);
    EXPECT_EQ(eth0->route(0).destination(), "198.51.100.0/24");
    EXPECT_EQ(eth0->route(0).gateway_ip(), "192.0.2.1");
    EXPECT_EQ(eth0->route(0).source_ip(), "192.0.2.10");
    EXPECT_EQ(eth0->route(0).metric(), 77);
    EXPECT_EQ(eth0->route(1).destination(), "::/0");
    EXPECT_EQ(eth0->route(1).gateway_ip(), "fe80::1");
    const auto* eth1 = find(c.net, "eth1");
    ASSERT_NE(eth1, nullptr) << "a static route keeps its interface";
    ASSERT_EQ(eth1->route_size(), 1);
    EXPECT_EQ(eth1->route(0).destination(), "203.0.113.0/24");
    const std::vector<std::string> expected = {
        "skipped route 10.0.0.0/8 via 192.0.2.1 dev eth0: table 100",
        "skipped route 10.0.0.0/8: type blackhole",
        "skipped route 0.0.0.0/0 via 192.0.2.1 dev eth0: protocol dhcp",
        "skipped route 10.1.0.0/16: multipath routes are not supported",
        "skipped route 10.2.0.0/16 dev lo: interface lo is not captured",
        "skipped route 10.3.0.0/16: no output interface",
    };
    EXPECT_EQ(c.warnings, expected) << all_warnings(c);
}

TEST(NetConfig, InterruptedDumpWarns) {
    RtnlDump dump;
    dump.interrupted = true;
    NetConfig c = build_net_config(dump, FakeFacts{});
    ASSERT_EQ(c.warnings.size(), 1u);
    EXPECT_NE(c.warnings[0].find("NLM_F_DUMP_INTR"), std::string::npos);
}

TEST(NetConfig, Formatting) {
    EXPECT_EQ(format_mac({0x52, 0x54, 0x00, 0xab, 0xcd, 0xef}), "52:54:00:ab:cd:ef");
    EXPECT_EQ(format_mac({}), "");
    EXPECT_EQ(format_ip(AF_INET, ip("192.0.2.1")), "192.0.2.1");
    EXPECT_EQ(format_ip(AF_INET6, ip("2001:db8::1")), "2001:db8::1");
    EXPECT_EQ(format_ip(AF_INET, {1, 2, 3}), "<invalid address>");
}

}  // namespace
}  // namespace activate::netcapture
