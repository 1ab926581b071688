// The reference agent applying an AgentInit's network (issue 17 §1): a namespace configured with
// `ip` is captured by the netcapture plugin (netcapture_probe), the agent applies that capture in
// a fresh namespace whose links carry the same MACs under other names, and a second capture must
// equal the first. Bonds and VLANs need the bonding and 8021q modules: without them those tests
// skip and say which is missing. Nothing outside the namespaces this test creates is configured.
#include <gtest/gtest.h>
#include <sodium.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "support.hpp"
#include "takeover.pb.h"

namespace activate::agent {
namespace {

namespace fs = std::filesystem;
using embedded::test::quoted;
using embedded::test::shell;
using embedded::test::ShellResult;
using embedded::test::TempDir;

constexpr const char* kMac0 = "02:00:5e:17:00:01";
constexpr const char* kMac1 = "02:00:5e:17:00:02";
constexpr const char* kMac2 = "02:00:5e:17:00:03";
constexpr const char* kMac3 = "02:00:5e:17:00:04";

std::string secret_key() {
    unsigned char seed[crypto_sign_SEEDBYTES] = {7};
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    EXPECT_GE(sodium_init(), 0);
    crypto_sign_seed_keypair(pk, sk, seed);
    return std::string(reinterpret_cast<char*>(sk), sizeof sk);
}

// Two namespaces: `source` is configured with ip and captured, `target` gets the agent.
class AgentNetwork : public ::testing::Test {
  protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "creating network namespaces needs root";
        if (shell("command -v ip >/dev/null; echo $?").out != "0\n")
            GTEST_SKIP() << "iproute2's ip is not installed";
        const std::string id = std::to_string(::getpid());
        for (std::string* ns : {&source_, &target_}) {
            *ns = (ns == &source_ ? "agsrc-" : "agdst-") + id;
            const ShellResult r = shell("ip netns add " + *ns + " 2>&1");
            if (r.status != 0) GTEST_SKIP() << "ip netns add is not permitted here: " << r.out;
            created_.push_back(*ns);
        }
        // The capture reads /etc/resolv.conf and the agent writes it: ip netns exec binds each
        // file of /etc/netns/<ns>/ over its namesake in /etc, so the host's stays untouched (the
        // agent finds a bind mount it cannot rename over and rewrites it in place).
        created_etc_netns_ = !fs::exists("/etc/netns");
        for (const std::string* ns : {&source_, &target_}) {
            etc_.push_back(fs::path("/etc/netns") / *ns);
            embedded::test::write_file(
                etc_.back() / "resolv.conf",
                ns == &source_ ? "nameserver 192.0.2.53\nnameserver 2001:db8::53\n" : "");
        }
    }

    std::string target_resolv_conf() {
        return embedded::test::read_file(fs::path("/etc/netns") / target_ / "resolv.conf");
    }

    void TearDown() override {
        for (const std::string& ns : created_) shell("ip netns del " + ns);
        std::error_code ec;
        for (const fs::path& etc : etc_) fs::remove_all(etc, ec);
        if (created_etc_netns_) fs::remove("/etc/netns", ec);
    }

    void ip(const std::string& ns, const std::string& args) {
        const ShellResult r = shell("ip -n " + ns + " " + args + " 2>&1");
        ASSERT_EQ(r.status, 0) << "ip -n " << ns << " " << args << ": " << r.out;
    }

    // Whether `kind` links can be made here (the modules are built in or loadable).
    std::string missing_kind(const std::string& kind, const std::string& extra) {
        const ShellResult r = shell("ip -n " + target_ + " link add probe0 " + extra + " type " +
                                    kind + " 2>&1 && ip -n " + target_ + " link del probe0");
        return r.status == 0 ? "" : r.out;
    }

    wire::Net capture(const std::string& ns) {
        wire::Net net;
        const ShellResult r = shell("ip netns exec " + ns + " " NETCAPTURE_PROBE " 2>/dev/null");
        EXPECT_EQ(r.status, 0);
        EXPECT_TRUE(net.ParseFromString(r.out));
        return net;
    }

    // Runs the agent in the target namespace with these bytes as its AgentInit.
    ShellResult apply(const std::string& init_pb_bytes) {
        embedded::test::write_file(dir_ / "init.pb", init_pb_bytes);
        embedded::test::write_file(dir_ / "cmdline", "quiet\n");
        return shell("ip netns exec " + target_ + " " AGENT_BINARY " --init-pb " +
                     quoted(dir_ / "init.pb") + " --cmdline-file " + quoted(dir_ / "cmdline") +
                     " --apply 2>&1");
    }

    static std::string agent_init(const wire::Net& net) {
        wire::AgentInit init;
        init.mutable_takeover_init()->set_machine_id("m-17");
        init.set_private_key(secret_key());
        *init.mutable_network_config() = net;
        return init.SerializeAsString();
    }

    std::string source_, target_;
    std::vector<std::string> created_;
    std::vector<fs::path> etc_;
    bool created_etc_netns_ = false;
    TempDir dir_;
};

// What two captures must agree on: everything but the kernel's interface indexes, addresses and
// routes in a fixed order.
std::string comparable(wire::Net net) {
    for (wire::Interface& i : *net.mutable_interface()) {
        if (i.has_device()) i.mutable_device()->clear_index();
        std::sort(i.mutable_address()->begin(), i.mutable_address()->end());
        std::sort(i.mutable_route()->begin(), i.mutable_route()->end(),
                  [](const wire::Route& a, const wire::Route& b) {
                      return a.SerializeAsString() < b.SerializeAsString();
                  });
    }
    return net.DebugString();
}

// The "not_applied" entries of the agent's report line (JSON strings, \" and \\ unescaped).
std::vector<std::string> not_applied(const std::string& out) {
    std::vector<std::string> entries;
    const size_t at = out.find("\"not_applied\":[");
    if (at == std::string::npos) return {"<no not_applied in the report>"};
    size_t i = at + 15;
    while (i < out.size() && out[i] == '"') {
        std::string entry;
        for (++i; i < out.size() && out[i] != '"'; ++i) {
            if (out[i] == '\\') ++i;
            entry += out[i];
        }
        entries.push_back(entry);
        if (++i < out.size() && out[i] == ',') ++i;
    }
    return entries;
}

TEST_F(AgentNetwork, AppliesACapturedNamespaceIntoAFreshOne) {
    ip(source_, "link set lo up");
    ip(source_, std::string("link add eth0 address ") + kMac0 +
                    " type veth peer name eth1 address " + kMac1);
    ip(source_, "link set eth0 mtu 1400 up");
    ip(source_, "link set eth1 up");
    ip(source_, "addr add 192.0.2.10/24 dev eth0");
    ip(source_, "-6 addr add 2001:db8:10::10/64 dev eth0 nodad");
    ip(source_, "addr add 198.51.100.1/24 dev eth1");
    ip(source_, "route add default via 192.0.2.1 dev eth0 metric 100");
    ip(source_, "route add 203.0.113.0/24 via 192.0.2.254 dev eth0 metric 30 src 192.0.2.10");
    ip(source_, "-6 route add 2001:db8:99::/48 via 2001:db8:10::1 dev eth0 metric 512");
    ip(source_, "-6 route add default via 2001:db8:10::1 dev eth0 metric 2048");
    // The fresh machine: the same MACs under swapped names, down and unconfigured.
    ip(target_, std::string("link add eth1 address ") + kMac0 +
                    " type veth peer name eth0 address " + kMac1);
    if (HasFatalFailure()) return;
    const wire::Net want = capture(source_);
    ASSERT_EQ(want.interface_size(), 2) << want.DebugString();

    const ShellResult r = apply(agent_init(want));
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(r.out.rfind("AGENT-STARTED ", 0), 0u) << r.out;
    EXPECT_EQ(not_applied(r.out), std::vector<std::string>{}) << r.out;
    const wire::Net got = capture(target_);
    EXPECT_EQ(comparable(got), comparable(want)) << r.out;
    EXPECT_EQ(target_resolv_conf(), "nameserver 192.0.2.53\nnameserver 2001:db8::53\n");
    // The report lists what the kernel has afterwards.
    EXPECT_NE(r.out.find(std::string(R"({"name":"eth0","kind":"veth","mac":")") + kMac0 +
                         R"(","mtu":1400,"up":true,"master":"","addresses":[)"),
              std::string::npos)
        << r.out;
}

TEST_F(AgentNetwork, WhatCannotBeAppliedIsReportedAndTheRestIsApplied) {
    ip(target_,
       std::string("link add x0 address ") + kMac0 + " type veth peer name x1 address " + kMac1);
    if (HasFatalFailure()) return;
    wire::Net net;
    wire::Interface* eth0 = net.add_interface();
    eth0->set_name("eth0");
    eth0->mutable_device()->set_hardware_address(kMac0);
    eth0->add_address("192.0.2.10/24");
    eth0->add_address("192.0.2.300/24");
    eth0->mutable_ipv4_autoconfig();
    wire::Route* bad = eth0->add_route();
    bad->set_destination("198.51.100.0/24");
    bad->set_gateway_ip("2001:db8::1");
    wire::Route* good = eth0->add_route();
    good->set_destination("198.51.100.0/24");
    good->set_gateway_ip("192.0.2.1");
    wire::Interface* gone = net.add_interface();
    gone->set_name("eth9");
    gone->mutable_device()->set_hardware_address("02:00:5e:17:00:99");
    gone->add_address("192.0.2.99/24");
    wire::Interface* vlan = net.add_interface();
    vlan->set_name("eth7.5");
    vlan->mutable_vlan()->set_parent("eth7");
    vlan->mutable_vlan()->set_id(5);
    net.add_nameserver()->set_ip("192.0.2.53");
    net.add_nameserver()->set_ip("not-an-ip");

    const ShellResult r = apply(agent_init(net));
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(not_applied(r.out),
              (std::vector<std::string>{
                  "link eth9 (02:00:5e:17:00:99): no link has this permanent or current MAC "
                  "address",
                  "vlan eth7.5: parent link eth7 does not exist",
                  "address 192.0.2.300/24 on eth0: not an IP address or CIDR",
                  "address 192.0.2.99/24 on eth9: the link does not exist",
                  "route 198.51.100.0/24 via 2001:db8::1 dev eth0: \"2001:db8::1\" is not an "
                  "address of the destination's family",
                  "ipv4 autoconfig (DHCP) on eth0: the reference agent has no DHCP client",
                  "nameserver \"not-an-ip\": not an IP address",
              }))
        << r.out;
    const ShellResult addr = shell("ip -n " + target_ + " -4 -o addr show dev eth0");
    EXPECT_NE(addr.out.find("192.0.2.10/24"), std::string::npos) << addr.out;
    const ShellResult route = shell("ip -n " + target_ + " route show 198.51.100.0/24");
    EXPECT_EQ(route.out.rfind("198.51.100.0/24 via 192.0.2.1 dev eth0", 0), 0u) << route.out;
    EXPECT_EQ(target_resolv_conf(), "nameserver 192.0.2.53\n");
}

TEST_F(AgentNetwork, BadAgentInitBytesApplyNothing) {
    ip(target_,
       std::string("link add x0 address ") + kMac0 + " type veth peer name x1 address " + kMac1);
    if (HasFatalFailure()) return;
    const std::string before =
        shell("ip -n " + target_ + " -o link; ip -n " + target_ + " -o addr").out;
    const ShellResult r = apply(std::string("\x0a\xff\xff\xff\x0f junk", 10));
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.out, "AGENT-ERROR /init.pb is not a valid AgentInit (10 bytes)\n");
    EXPECT_EQ(shell("ip -n " + target_ + " -o link; ip -n " + target_ + " -o addr").out, before);
    EXPECT_EQ(target_resolv_conf(), "");
}

// A bond in 802.3ad with every LACP parameter, an 802.1Q VLAN on it and an 802.1ad VLAN on a
// plain device: created by the agent, captured again, equal to what the source had.
TEST_F(AgentNetwork, BondsAndVlansAreCreatedWithTheirParameters) {
    if (const std::string e = missing_kind("bond", ""); !e.empty())
        GTEST_SKIP() << "this kernel cannot create bonds (module bonding missing): " << e;
    ip(target_, std::string("link add d0 address ") + kMac3 + " type veth peer name d1");
    if (const std::string e = missing_kind("vlan", "link d0 id 5"); !e.empty())
        GTEST_SKIP() << "this kernel cannot create VLANs (module 8021q missing): " << e;
    ip(target_, "link del d0");
    for (const std::string* ns : {&source_, &target_}) {
        const bool src = ns == &source_;
        ip(*ns, std::string("link add ") + (src ? "eth1" : "m1") + " address " + kMac1 +
                    " type veth peer name p1");
        ip(*ns, std::string("link add ") + (src ? "eth2" : "m2") + " address " + kMac2 +
                    " type veth peer name p2");
        ip(*ns, std::string("link add ") + (src ? "eth3" : "m3") + " address " + kMac3 +
                    " type veth peer name p3");
    }
    ip(source_,
       "link add bond0 type bond mode 802.3ad lacp_rate fast ad_select bandwidth "
       "ad_actor_sys_prio 100 ad_user_port_key 5 ad_actor_system 02:00:00:00:00:42 "
       "min_links 2 miimon 100 xmit_hash_policy layer3+4");
    ip(source_, "link set eth1 master bond0");
    ip(source_, "link set eth2 master bond0");
    ip(source_, "link set bond0 mtu 1496 up");
    ip(source_, "link add link bond0 name bond0.42 type vlan id 42");
    ip(source_, "link set bond0.42 up");
    ip(source_, "addr add 192.168.42.10/24 dev bond0.42");
    ip(source_, "-6 addr add fd42::10/64 dev bond0.42 nodad");
    ip(source_, "route add 192.168.60.0/24 via 192.168.42.1 dev bond0.42");
    ip(source_, "link set eth3 up");
    ip(source_, "link add link eth3 name eth3.100 type vlan proto 802.1ad id 100");
    ip(source_, "link set eth3.100 up");
    ip(source_, "addr add 10.100.0.1/16 dev eth3.100");
    if (HasFatalFailure()) return;
    const wire::Net want = capture(source_);
    ASSERT_EQ(want.interface_size(), 6) << want.DebugString();

    const ShellResult r = apply(agent_init(want));
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(not_applied(r.out), std::vector<std::string>{}) << r.out;
    EXPECT_EQ(comparable(capture(target_)), comparable(want)) << r.out;
}

}  // namespace
}  // namespace activate::agent
