// The reference agent: its report of an AgentInit (exact JSON), the JSON escaping, the binary in
// test mode, and the binary as PID 1 of a fresh PID namespace, where its power-off only ends the
// namespace (reboot(2)) — the one way its init path runs on a development machine.
#include <gtest/gtest.h>
#include <sodium.h>
#include <unistd.h>

#include "json.hpp"
#include "report.hpp"
#include "support.hpp"
#include "takeover.pb.h"

namespace activate::agent {
namespace {

using embedded::test::quoted;
using embedded::test::shell;
using embedded::test::TempDir;

// A fixed Ed25519 key pair: seed 0x01 0x02 ... 0x20.
std::string secret_key() {
    unsigned char seed[crypto_sign_SEEDBYTES];
    for (size_t i = 0; i < sizeof seed; ++i) seed[i] = static_cast<unsigned char>(i + 1);
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    EXPECT_EQ(sodium_init() >= 0, true);
    crypto_sign_seed_keypair(pk, sk, seed);
    return std::string(reinterpret_cast<char*>(sk), sizeof sk);
}

std::string hex(std::string_view bytes) {
    std::string out;
    char buf[3];
    for (const char c : bytes) {
        std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned char>(c));
        out += buf;
    }
    return out;
}

wire::AgentInit full_init() {
    wire::AgentInit init;
    init.mutable_takeover_init()->set_machine_id("m-0001");
    init.mutable_takeover_init()->set_bmaas_endpoint("bmaas.example:443");
    init.mutable_takeover_init()->set_ca_certificate(std::string(10, 'c'));
    init.set_private_key(secret_key());
    wire::Net* net = init.mutable_network_config();

    wire::Interface* eth = net->add_interface();
    eth->set_name("eth0");
    eth->mutable_device()->set_hardware_address("52:54:00:12:34:56");
    eth->mutable_device()->set_driver("virtio_net");
    eth->mutable_device()->set_index(2);
    eth->add_address("10.0.2.15/24");
    eth->add_address("fd00::15/64");
    wire::Route* r = eth->add_route();
    r->set_destination("0.0.0.0/0");
    r->set_gateway_ip("10.0.2.2");
    r->set_metric(100);
    eth->set_mtu(1500);
    eth->mutable_ipv6_autoconfig()->set_privacy(wire::IPv6Autoconfig::PREFER);

    wire::Interface* bond = net->add_interface();
    bond->set_name("bond0");
    bond->mutable_bond()->add_member_interface("eth1");
    bond->mutable_bond()->add_member_interface("eth2");
    bond->mutable_bond()->set_min_links(1);
    bond->mutable_bond()->set_transmit_hash_policy(wire::Bond::LAYER3_4);
    bond->mutable_bond()->mutable_carrier_monitor()->set_polling_interval_ms(100);
    bond->mutable_bond()->mutable_lacp()->set_rate(wire::Bond::LACP::FAST);
    bond->mutable_bond()->mutable_lacp()->set_actor_system_mac("02:00:00:00:00:01");
    bond->mutable_ipv4_autoconfig();

    wire::Interface* vlan = net->add_interface();
    vlan->set_name("bond0.42");
    vlan->mutable_vlan()->set_parent("bond0");
    vlan->mutable_vlan()->set_id(42);
    vlan->mutable_vlan()->set_protocol(wire::VLAN::SVLAN);

    net->add_nameserver()->set_ip("10.0.2.3");
    net->add_nameserver()->set_ip("fd00::3");
    return init;
}

std::string expected_json() {
    const std::string pk = hex(secret_key().substr(32));
    return R"({"machine_id":"m-0001","bmaas_endpoint":"bmaas.example:443","ca_certificate_bytes":10,)"
           R"("public_key":")" +
           pk +
           R"(","public_key_matches":true,"interfaces":[)"
           R"({"name":"eth0","type":"device","device":{"hardware_address":"52:54:00:12:34:56",)"
           R"("driver":"virtio_net","index":2},"addresses":["10.0.2.15/24","fd00::15/64"],)"
           R"("routes":[{"destination":"0.0.0.0/0","gateway_ip":"10.0.2.2","source_ip":"",)"
           R"("metric":100}],"mtu":1500,"ipv4_autoconfig":false,)"
           R"("ipv6_autoconfig":{"privacy":"PREFER"}},)"
           R"({"name":"bond0","type":"bond","bond":{"member_interfaces":["eth1","eth2"],)"
           R"("min_links":1,"transmit_hash_policy":"LAYER3_4","carrier_monitor":)"
           R"({"polling_interval_ms":100,"down_delay_ms":0,"up_delay_ms":0,"force_polling":false},)"
           R"("mode":"lacp","lacp":{"rate":"FAST","selection_logic":"STABLE",)"
           R"("actor_system_priority":0,"user_port_key":0,"actor_system_mac":"02:00:00:00:00:01"}},)"
           R"("addresses":[],"routes":[],"mtu":0,"ipv4_autoconfig":true,"ipv6_autoconfig":null},)"
           R"({"name":"bond0.42","type":"vlan","vlan":{"parent":"bond0","id":42,"protocol":"SVLAN"},)"
           R"("addresses":[],"routes":[],"mtu":0,"ipv4_autoconfig":false,"ipv6_autoconfig":null}],)"
           R"("nameservers":["10.0.2.3","fd00::3"],"cmdline":"quiet init=/init console=ttyS0,115200"})";
}

TEST(AgentReport, DescribesTheWholeAgentInit) {
    bool started = false;
    const std::string line = report_line(full_init().SerializeAsString(),
                                         "quiet init=/init console=ttyS0,115200\n", &started);
    EXPECT_TRUE(started);
    EXPECT_EQ(line, "AGENT-STARTED " + expected_json());
}

TEST(AgentReport, PublicKeyMismatchIsReported) {
    wire::AgentInit init = full_init();
    std::string key = init.private_key();
    key[40] ^= 1;  // the stored public half no longer belongs to the seed
    init.set_private_key(key);
    bool started = false;
    const std::string line = report_line(init.SerializeAsString(), "", &started);
    EXPECT_TRUE(started);
    EXPECT_NE(line.find("\"public_key\":\"" + hex(secret_key().substr(32)) + "\""),
              std::string::npos);
    EXPECT_NE(line.find("\"public_key_matches\":false"), std::string::npos);
}

TEST(AgentReport, Errors) {
    bool started = true;
    EXPECT_EQ(report_line("\xff\xff\xff", "", &started),
              "AGENT-ERROR /init.pb is not a valid AgentInit (3 bytes)");
    EXPECT_FALSE(started);

    wire::AgentInit short_key = full_init();
    short_key.set_private_key(std::string(32, 'k'));
    started = true;
    EXPECT_EQ(report_line(short_key.SerializeAsString(), "", &started),
              "AGENT-ERROR AgentInit.private_key has 32 bytes, expected 64 (seed || public key)");
    EXPECT_FALSE(started);

    EXPECT_EQ(error_line("two\nlines\r"), "AGENT-ERROR two lines ");
}

TEST(AgentJson, EscapesStrings) {
    auto j = [](std::string_view s) {
        std::string out;
        append_json_string(out, s);
        return out;
    };
    EXPECT_EQ(j(""), R"("")");
    EXPECT_EQ(j("a\"b\\c/d"), R"("a\"b\\c/d")");
    EXPECT_EQ(j("\n\r\t\b\f"), R"("\n\r\t\b\f")");
    EXPECT_EQ(j(std::string("\0\x01\x1f\x7f", 4)), R"("\u0000\u0001\u001f\u007f")");
    // Valid UTF-8 passes through: 2, 3 and 4 byte sequences.
    EXPECT_EQ(j("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"),
              "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    // Anything else is escaped byte by byte: a lone 0xA0 (the kernel's Latin-1 space), an
    // overlong form, a surrogate, a code point above U+10FFFF, a truncated sequence.
    EXPECT_EQ(j("a\xa0"
                "b"),
              R"("a\u00a0b")");
    EXPECT_EQ(j("\xc0\x80"), R"("\u00c0\u0080")");
    EXPECT_EQ(j("\xed\xa0\x80"), R"("\u00ed\u00a0\u0080")");
    EXPECT_EQ(j("\xf4\x90\x80\x80"), R"("\u00f4\u0090\u0080\u0080")");
    EXPECT_EQ(j("\xe2\x82"), R"("\u00e2\u0082")");
}

TEST(AgentJson, WritesNestedStructures) {
    JsonWriter json;
    json.begin_object()
        .key("a")
        .begin_array()
        .number(-1)
        .boolean(true)
        .null()
        .begin_object()
        .end_object()
        .end_array()
        .key("b")
        .string("x")
        .key("c")
        .begin_array()
        .end_array()
        .end_object();
    EXPECT_EQ(json.text(), R"({"a":[-1,true,null,{}],"b":"x","c":[]})");
}

// ----- the binary -----

TEST(AgentBinary, TestModePrintsTheReportAndExits) {
    TempDir dir;
    embedded::test::write_file(dir / "init.pb", full_init().SerializeAsString());
    embedded::test::write_file(dir / "cmdline", "quiet init=/init console=ttyS0,115200\n");
    auto r = shell(std::string(AGENT_BINARY) + " --init-pb " + quoted(dir / "init.pb") +
                   " --cmdline-file " + quoted(dir / "cmdline"));
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.out, "AGENT-STARTED " + expected_json() + "\n");

    auto missing = shell(std::string(AGENT_BINARY) + " --init-pb " + quoted(dir / "nope"));
    EXPECT_EQ(missing.status, 1);
    EXPECT_EQ(missing.out, "AGENT-ERROR cannot read " + (dir / "nope").string() +
                               ": No such file or directory\n");

    auto usage = shell(std::string(AGENT_BINARY) + " --bogus 2>/dev/null");
    EXPECT_EQ(usage.status, 2);
    EXPECT_EQ(usage.out, "");
}

TEST(AgentBinary, IsStaticallyLinked) {
    // The initramfs has no dynamic loader and no libraries.
    auto r = shell("readelf -l " + std::string(AGENT_BINARY) + " | grep -c INTERP");
    EXPECT_EQ(r.out, "0\n");
}

// As PID 1 of a new PID namespace the agent takes its init path: it finds no /init.pb (the host
// has none), says so, and powers off — which for a PID namespace means its init is killed with
// SIGINT (reboot(2)); unshare then re-raises that signal. The host is untouched.
TEST(AgentBinary, AsInitOfAPidNamespaceItReportsAndPowersOff) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for unshare --pid";
    if (std::filesystem::exists("/init.pb")) GTEST_SKIP() << "this host has an /init.pb";
    if (shell("unshare --pid --fork --mount-proc true 2>/dev/null; echo $?").out != "0\n")
        GTEST_SKIP() << "PID namespaces unavailable";
    auto r =
        shell("unshare --pid --fork --mount-proc " + std::string(AGENT_BINARY) + " 2>/dev/null");
    EXPECT_EQ(r.out, "AGENT-ERROR cannot read /init.pb: No such file or directory\n");
    EXPECT_EQ(r.status, 128 + SIGINT);
}

// As the core of minit (test build) in a new PID namespace: parent PID 1 and no arguments make
// the agent report and exit instead of powering off; with no /init.pb it exits 1, which minit
// reports before restarting (SIGHUP for the namespace's init).
TEST(AgentBinary, AsCoreOfMinitItReportsAndExits) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for unshare --pid";
    if (std::filesystem::exists("/init.pb")) GTEST_SKIP() << "this host has an /init.pb";
    if (shell("unshare --pid --fork --mount-proc true 2>/dev/null; echo $?").out != "0\n")
        GTEST_SKIP() << "PID namespaces unavailable";
    auto r = shell("unshare --pid --fork --mount-proc env MINIT_CORE=" + std::string(AGENT_BINARY) +
                   " " + MINIT_TEST_BINARY + " 2>&1");
    EXPECT_NE(r.out.find("AGENT-ERROR cannot read /init.pb: No such file or directory\n"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("minit: core " + std::string(AGENT_BINARY) + " exited with status 1\n"),
              std::string::npos)
        << r.out;
    EXPECT_EQ(r.status, 128 + SIGHUP) << r.out;
}

}  // namespace
}  // namespace activate::agent
