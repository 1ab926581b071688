// The plugin against the real rtnetlink dumps recorded from a Debian 6.1 guest with a bond, VLANs
// and mixed address and route kinds (shared/testdata/netlink-bond-vlan, set up by its
// guest-setup.sh). Expected values come from `ip -j` of the same state where practical.
#include <gtest/gtest.h>

#include <activate/log.hpp>
#include <activate/settings.hpp>
#include <activate/sysroot.hpp>
#include <netcapture/network_capture.hpp>

#include "test_support.hpp"

namespace activate::netcapture {
namespace {

using test::json;
namespace fs = std::filesystem;

const fs::path kTestdata = NETCAPTURE_TESTDATA;

// A sysroot with the recorded dumps under /dumps, the guest's sysfs driver links (three virtio
// NICs) and IPv6 privacy sysctls, and a resolv.conf.
class RecordedDump : public ::testing::Test {
  protected:
    void SetUp() override {
        for (const char* f : {"links.nl", "addrs.nl", "routes.nl"}) {
            test::write_file(root_ / "dumps" / f, test::read_file(kTestdata / f));
        }
        for (const char* nic : {"eth0", "eth1", "eth2"}) {
            test::make_symlink("../../../../bus/virtio/drivers/virtio_net",
                               root_ / "sys/class/net" / nic / "device/driver");
        }
        test::write_file(root_ / "proc/sys/net/ipv6/conf/bond0/use_tempaddr", "0\n");
        test::write_file(root_ / "proc/sys/net/ipv6/conf/eth2/use_tempaddr", "2\n");
        test::write_file(root_ / "etc/resolv.conf", "# recorded guest\nnameserver 192.0.2.53\n");

        links_ = test::parse_json_file(kTestdata / "ip-link.json");
        addrs_ = test::parse_json_file(kTestdata / "ip-addr.json");
        routes4_ = test::parse_json_file(kTestdata / "ip-route.json");
        routes6_ = test::parse_json_file(kTestdata / "ip-route6.json");
        ASSERT_TRUE(links_.is_array() && addrs_.is_array() && routes4_.is_array() &&
                    routes6_.is_array())
            << "cannot read the ip-*.json files in " << kTestdata;
    }

    Result<CaptureResult> run_capture() {
        Sysroot sysroot(root_.path());
        Logger logger(LogLevel::error);
        PluginContext context{&sysroot, &logger};
        Settings settings(YAML::Load("dump_dir: /dumps\n"), "policy.yaml", "captures.0.settings");
        auto capture = create_network_capture(context, settings);
        if (!capture.ok()) return std::move(capture).error();
        return (*capture)->capture();
    }

    // Captures and decodes; fails the test on error.
    wire::Net capture_net() {
        auto result = run_capture();
        EXPECT_TRUE(result.ok()) << result.error().message();
        if (!result.ok()) return {};
        warnings_ = result->warnings;
        wire::Net net;
        EXPECT_TRUE(net.ParseFromString(result->network_config));
        return net;
    }

    const json& link_json(const std::string& name) const {
        for (const auto& l : links_) {
            if (l["ifname"] == name) return l;
        }
        static const json none;
        ADD_FAILURE() << "no link " << name << " in ip-link.json";
        return none;
    }

    static const wire::Interface& iface(const wire::Net& net, const std::string& name) {
        for (const auto& i : net.interface()) {
            if (i.name() == name) return i;
        }
        static const wire::Interface none;
        ADD_FAILURE() << "no interface " << name << " captured";
        return none;
    }

    bool has_warning(const std::string& text) const {
        return std::find(warnings_.begin(), warnings_.end(), text) != warnings_.end();
    }

    test::TempDir root_;
    json links_, addrs_, routes4_, routes6_;
    std::vector<std::string> warnings_;
};

TEST_F(RecordedDump, MatchesIproute2ViewOfTheSameState) {
    const wire::Net net = capture_net();
    const auto expected = test::expected_from_ip_json(links_, addrs_, routes4_, routes6_);
    EXPECT_EQ(test::l3_of(net), expected.interfaces);
    for (const auto& w : expected.warnings) {
        EXPECT_TRUE(has_warning(w)) << "missing warning: " << w;
    }
    // Sorted by name, every one with the MTU iproute2 shows.
    std::vector<std::string> names;
    for (const auto& i : net.interface()) {
        names.push_back(i.name());
        EXPECT_EQ(i.mtu(), link_json(i.name())["mtu"].get<int>()) << i.name();
    }
    EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
    EXPECT_EQ(names,
              (std::vector<std::string>{"bond0", "bond0.42", "eth0", "eth1", "eth2", "eth2.100"}));
}

TEST_F(RecordedDump, DevicesCarryPermanentMacDriverAndIndex) {
    const wire::Net net = capture_net();
    int devices = 0;
    for (const auto& i : net.interface()) {
        if (!i.has_device()) continue;
        ++devices;
        const json& l = link_json(i.name());
        // iproute2 prints "permaddr" only when it differs from the current address.
        const std::string mac = l.value("permaddr", l["address"].get<std::string>());
        EXPECT_EQ(i.device().hardware_address(), mac) << i.name();
        EXPECT_EQ(i.device().index(), l["ifindex"].get<int>()) << i.name();
        EXPECT_EQ(i.device().driver(), "virtio_net") << i.name();
    }
    EXPECT_EQ(devices, 3);
    // The bond gave eth1 eth0's MAC; the capture must name eth1 by its own.
    EXPECT_EQ(link_json("eth1")["address"], "52:54:00:00:00:10");
    EXPECT_EQ(iface(net, "eth1").device().hardware_address(), "52:54:00:00:00:11");
}

TEST_F(RecordedDump, BondIs8023adWithLacpParameters) {
    const wire::Net net = capture_net();
    const wire::Interface& bond0 = iface(net, "bond0");
    ASSERT_TRUE(bond0.has_bond());
    const wire::Bond& b = bond0.bond();
    const json& data = link_json("bond0")["linkinfo"]["info_data"];
    ASSERT_EQ(data["mode"], "802.3ad");

    std::vector<std::string> members;
    for (const auto& l : links_) {
        if (l.value("master", "") == "bond0") members.push_back(l["ifname"]);
    }
    std::sort(members.begin(), members.end());
    EXPECT_EQ(std::vector<std::string>(b.member_interface().begin(), b.member_interface().end()),
              members);
    EXPECT_EQ(members, (std::vector<std::string>{"eth0", "eth1"}));

    EXPECT_EQ(b.min_links(), data["min_links"].get<int>());
    ASSERT_EQ(data["xmit_hash_policy"], "layer3+4");
    EXPECT_EQ(b.transmit_hash_policy(), wire::Bond::LAYER3_4);
    ASSERT_TRUE(b.has_carrier_monitor());
    EXPECT_EQ(b.carrier_monitor().polling_interval_ms(), data["miimon"].get<int>());
    EXPECT_EQ(b.carrier_monitor().up_delay_ms(), data["updelay"].get<int>());
    EXPECT_EQ(b.carrier_monitor().down_delay_ms(), data["downdelay"].get<int>());
    EXPECT_EQ(b.carrier_monitor().force_polling(), data["use_carrier"].get<int>() == 0);

    ASSERT_TRUE(b.has_lacp());
    ASSERT_EQ(data["ad_lacp_rate"], "fast");
    EXPECT_EQ(b.lacp().rate(), wire::Bond::LACP::FAST);
    ASSERT_EQ(data["ad_select"], "stable");
    EXPECT_EQ(b.lacp().selection_logic(), wire::Bond::LACP::STABLE);
    EXPECT_EQ(b.lacp().actor_system_priority(), data["ad_actor_sys_prio"].get<int>());
    EXPECT_EQ(b.lacp().actor_system_priority(), 100);
    EXPECT_EQ(b.lacp().user_port_key(), data["ad_user_port_key"].get<int>());
    EXPECT_EQ(b.lacp().user_port_key(), 7);
    // 00:00:00:00:00:00 is the kernel's "not set" (the bond's own MAC is used).
    ASSERT_EQ(data["ad_actor_system"], "00:00:00:00:00:00");
    EXPECT_EQ(b.lacp().actor_system_mac(), "");
    EXPECT_EQ(bond0.mtu(), 9000);
}

TEST_F(RecordedDump, VlansCarryParentIdAndProtocol) {
    const wire::Net net = capture_net();
    for (const char* name : {"bond0.42", "eth2.100"}) {
        const json& l = link_json(name);
        const json& data = l["linkinfo"]["info_data"];
        const wire::Interface& v = iface(net, name);
        ASSERT_TRUE(v.has_vlan()) << name;
        EXPECT_EQ(v.vlan().parent(), l["link"].get<std::string>()) << name;
        EXPECT_EQ(v.vlan().id(), data["id"].get<int>()) << name;
        EXPECT_EQ(v.vlan().protocol(),
                  data["protocol"] == "802.1ad" ? wire::VLAN::SVLAN : wire::VLAN::CVLAN)
            << name;
    }
    EXPECT_EQ(iface(net, "bond0.42").vlan().protocol(), wire::VLAN::CVLAN);
    EXPECT_EQ(iface(net, "bond0.42").vlan().id(), 42);
    EXPECT_EQ(iface(net, "eth2.100").vlan().protocol(), wire::VLAN::SVLAN);
    EXPECT_EQ(iface(net, "eth2.100").vlan().parent(), "eth2");
}

TEST_F(RecordedDump, DynamicAddressesBecomeAutoconfig) {
    const wire::Net net = capture_net();
    const wire::Interface& eth2 = iface(net, "eth2");
    EXPECT_TRUE(eth2.has_ipv4_autoconfig()) << "10.9.9.9 has a finite lifetime";
    EXPECT_TRUE(eth2.has_ipv6_autoconfig()) << "SLAAC fec0::/64";
    EXPECT_EQ(eth2.ipv6_autoconfig().privacy(), wire::IPv6Autoconfig::PREFER);
    const wire::Interface& bond0 = iface(net, "bond0");
    EXPECT_FALSE(bond0.has_ipv4_autoconfig());
    EXPECT_TRUE(bond0.has_ipv6_autoconfig());
    EXPECT_EQ(bond0.ipv6_autoconfig().privacy(), wire::IPv6Autoconfig::DISABLE);
    for (const auto& a : eth2.address()) EXPECT_NE(a, "10.9.9.9/24");
    EXPECT_TRUE(has_warning(
        "skipped address 10.9.9.9/24 on eth2: dynamic, IPv4 autoconfiguration enabled instead"));
    EXPECT_TRUE(has_warning("skipped address fe80::5054:ff:fe00:12/64 on eth2: link-local"));
}

TEST_F(RecordedDump, PeerAddressBecomesRouteToPeer) {
    const wire::Net net = capture_net();
    const wire::Interface& eth2 = iface(net, "eth2");
    EXPECT_NE(std::find(eth2.address().begin(), eth2.address().end(), "10.200.0.1/32"),
              eth2.address().end());
    bool found = false;
    for (const auto& r : eth2.route()) {
        if (r.destination() == "10.200.0.2/32") {
            found = true;
            EXPECT_EQ(r.gateway_ip(), "");
        }
    }
    EXPECT_TRUE(found);
}

TEST_F(RecordedDump, RoutesKeepStaticAndBootAndWarnAboutTheRest) {
    const wire::Net net = capture_net();
    const wire::Interface& bond0 = iface(net, "bond0");
    ASSERT_EQ(bond0.route_size(), 2);
    EXPECT_EQ(bond0.route(0).destination(), "0.0.0.0/0");
    EXPECT_EQ(bond0.route(0).gateway_ip(), "10.1.0.1");
    EXPECT_EQ(bond0.route(0).metric(), 50);
    EXPECT_EQ(bond0.route(1).destination(), "2001:db8:ff::/48");
    EXPECT_EQ(bond0.route(1).gateway_ip(), "2001:db8:1::1");
    EXPECT_EQ(bond0.route(1).metric(), 1024);
    const wire::Interface& vlan = iface(net, "bond0.42");
    ASSERT_EQ(vlan.route_size(), 2) << "static 192.168.50.0/24 and boot 192.168.70.0/24";
    EXPECT_EQ(vlan.route(0).destination(), "192.168.50.0/24");
    EXPECT_EQ(vlan.route(1).destination(), "192.168.70.0/24");
    EXPECT_TRUE(
        has_warning("skipped route 192.168.60.0/24 via 10.42.0.1 dev bond0.42: protocol dhcp"));
    EXPECT_TRUE(has_warning("skipped route ::/0 via fe80::2 dev eth2: protocol ra"));
    EXPECT_TRUE(has_warning("skipped route ::/0 via fe80::2 dev bond0: protocol ra"));
    for (const auto& w : warnings_) {
        EXPECT_EQ(w.find("protocol kernel"), std::string::npos) << w;
        EXPECT_EQ(w.find("table 255"), std::string::npos) << w;
    }
}

TEST_F(RecordedDump, EveryWarningIsAccountedFor) {
    capture_net();
    auto expected = test::expected_from_ip_json(links_, addrs_, routes4_, routes6_).warnings;
    expected.push_back(
        "skipped address 10.9.9.9/24 on eth2: dynamic, IPv4 autoconfiguration enabled instead");
    expected.push_back(
        "skipped address fec0::5054:ff:fe00:12/64 on eth2: dynamic, IPv6 autoconfiguration "
        "enabled instead");
    expected.push_back(
        "skipped address fec0::5054:ff:fe00:10/64 on bond0: dynamic, IPv6 autoconfiguration "
        "enabled instead");
    std::sort(expected.begin(), expected.end());
    std::vector<std::string> actual = warnings_;
    std::sort(actual.begin(), actual.end());
    EXPECT_EQ(actual, expected);
}

TEST_F(RecordedDump, NameserversComeFromTheSysroot) {
    const auto result = run_capture();
    ASSERT_TRUE(result.ok()) << result.error().message();
    wire::Net net;
    ASSERT_TRUE(net.ParseFromString(result->network_config));
    ASSERT_EQ(net.nameserver_size(), 1);
    EXPECT_EQ(net.nameserver(0).ip(), "192.0.2.53");
}

TEST_F(RecordedDump, MissingPrivacySysctlWarnsAndDisables) {
    fs::remove(root_ / "proc/sys/net/ipv6/conf/eth2/use_tempaddr");
    const wire::Net net = capture_net();
    EXPECT_EQ(iface(net, "eth2").ipv6_autoconfig().privacy(), wire::IPv6Autoconfig::DISABLE);
    bool warned = false;
    for (const auto& w : warnings_) {
        warned |= w.rfind("IPv6 privacy of eth2: ", 0) == 0 &&
                  w.find("use_tempaddr") != std::string::npos;
    }
    EXPECT_TRUE(warned);
}

TEST_F(RecordedDump, TruncatedOrCorruptDumpIsAnError) {
    const std::string links = test::read_file(kTestdata / "links.nl");
    test::write_file(root_ / "dumps/links.nl", links.substr(0, links.size() - 20));
    auto truncated = run_capture();
    ASSERT_FALSE(truncated.ok());
    EXPECT_EQ(truncated.error().kind(), ErrorKind::input);
    EXPECT_NE(truncated.error().message().find("decoding /dumps/links.nl: "), std::string::npos)
        << truncated.error().message();

    std::string corrupt = links;
    corrupt[1400 + 16 + 16] = '\x02';  // eth0's first nla_len, now shorter than nlattr
    test::write_file(root_ / "dumps/links.nl", corrupt);
    auto bad = run_capture();
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message().find("RTM_NEWLINK at offset 1400"), std::string::npos)
        << bad.error().message();

    fs::remove(root_ / "dumps/routes.nl");
    test::write_file(root_ / "dumps/links.nl", links);
    auto missing = run_capture();
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.error().message().find("routes.nl"), std::string::npos)
        << missing.error().message();
}

}  // namespace
}  // namespace activate::netcapture
