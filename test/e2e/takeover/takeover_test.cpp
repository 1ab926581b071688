// Takeover end to end (issue 6, test 1): a source guest configures a bond, a VLAN, static IPv4
// and IPv6 addresses, routes and nameservers, then runs the static `takeover` binary with a
// TakeoverInit on stdin. The test decodes the TakeoverResponse the guest prints, and after the
// kexec the reference agent's AGENT-STARTED line on the same console must carry the identity, the
// key, the network the source configured and the source's console= parameter.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>
#include <vm/images.hpp>
#include <vm/phase.hpp>
#include <vm/qemu.hpp>

#include "expect.hpp"
#include "takeover.pb.h"

namespace activate::vm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Permanent MACs of the source's NICs: eth0 (addresses, default routes), eth1 and eth2 (bond).
constexpr const char* kMac0 = "52:54:00:e2:e0:10";
constexpr const char* kMac1 = "52:54:00:e2:e0:11";
constexpr const char* kMac2 = "52:54:00:e2:e0:12";

// Runs as /init of the source guest. Everything is configured with iproute2 (busybox's ip knows
// no bond options); a failed step prints SOURCE-ERROR instead of killing PID 1. The response is
// printed in short hex lines so no kernel message can split one.
constexpr const char* kSourceInit = R"SH(#!/bin/sh
. /etc/vm-lib.sh
vm_setup
IP=/opt/iproute2/ip
step() { "$@" || echo "SOURCE-ERROR: $*"; }
# Static configuration only: QEMU's user network sends router advertisements.
for f in /proc/sys/net/ipv6/conf/*/accept_ra /proc/sys/net/ipv6/conf/*/autoconf; do
  echo 0 > "$f"
done
step $IP link set lo up
step $IP link set eth0 up
step $IP addr add 10.0.2.15/24 dev eth0
step $IP addr add fd00:2::15/64 dev eth0 nodad
step $IP route add default via 10.0.2.2 dev eth0
step $IP -6 route add default via fd00:2::2 dev eth0
# Loading the bonding module made a bond0 (max_bonds=1) in balance-rr mode; start afresh.
step $IP link del bond0
step $IP link add bond0 type bond mode 802.3ad lacp_rate fast ad_select bandwidth \
  ad_actor_sys_prio 100 ad_user_port_key 5 ad_actor_system 02:00:00:00:00:42 \
  min_links 2 miimon 100 xmit_hash_policy layer3+4
step $IP link set eth1 master bond0
step $IP link set eth2 master bond0
step $IP link set bond0 up
step $IP link add link bond0 name bond0.42 type vlan id 42
step $IP link set bond0.42 up
step $IP addr add 192.168.42.10/24 dev bond0.42
step $IP addr add fd42::10/64 dev bond0.42 nodad
step $IP route add 192.168.60.0/24 via 192.168.42.1 dev bond0.42
printf 'nameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch e2e.test\n' > /etc/resolv.conf
echo "SOURCE configured: $(cat /proc/cmdline)"
# Keep kernel messages (bond and link state changes) out of the lines the test decodes.
dmesg -n 1
/bin/takeover --set delay=1s < /init.bin > /resp.bin
echo "TAKEOVER-EXIT $?"
xxd -p -c 32 /resp.bin | sed 's/^/TAKEOVER-RESPONSE-HEX /'
echo "TAKEOVER-RESPONSE-END $(wc -c < /resp.bin)"
# Let a failing second stage's message (it writes to /dev/kmsg) reach the console.
dmesg -n 7
# The detached second stage kexecs into the agent; PID 1 must not exit meanwhile.
while :; do sleep 1; done
)SH";

std::string hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (const char c : bytes) {
        out += digits[static_cast<unsigned char>(c) >> 4];
        out += digits[static_cast<unsigned char>(c) & 15];
    }
    return out;
}

std::string unhex(std::string_view text) {
    std::string out;
    for (size_t i = 0; i + 1 < text.size(); i += 2)
        out += static_cast<char>(std::stoi(std::string(text.substr(i, 2)), nullptr, 16));
    return out;
}

Status write_file(const fs::path& path, std::string_view data) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.close();
    if (!out) return Error(ErrorKind::internal, "cannot write " + path.string());
    return {};
}

wire::TakeoverInit MakeTakeoverInit() {
    wire::TakeoverInit init;
    init.set_machine_id("e2e-takeover-source-7");
    init.set_bmaas_endpoint("https://bmaas.e2e.test:8443");
    std::string ca(600, '\0');  // arbitrary bytes, not text: the field is bytes
    for (size_t i = 0; i < ca.size(); ++i) ca[i] = static_cast<char>((i * 37 + 11) & 0xff);
    init.set_ca_certificate(ca);
    return init;
}

json Device(const char* mac, std::vector<std::string> addresses, json routes) {
    return {{"type", "device"},
            {"device", {{"hardware_address", mac}, {"driver", "virtio_net"}}},
            {"addresses", std::move(addresses)},
            {"routes", std::move(routes)},
            {"mtu", 1500}};
}

json Route(const char* destination, const char* gateway, int metric) {
    return {{"destination", destination},
            {"gateway_ip", gateway},
            {"source_ip", ""},
            {"metric", metric}};
}

// What the agent must report for the source's configuration, by interface name. Only the keys
// given here are compared (the interface index is the kernel's and not fixed by the test).
std::map<std::string, json> ExpectedInterfaces() {
    std::map<std::string, json> want;
    want["eth0"] =
        Device(kMac0, {"10.0.2.15/24", "fd00:2::15/64"},
               // The kernel gives IPv6 routes added without a metric 1024.
               json::array({Route("0.0.0.0/0", "10.0.2.2", 0), Route("::/0", "fd00:2::2", 1024)}));
    want["eth1"] = Device(kMac1, {}, json::array());
    want["eth2"] = Device(kMac2, {}, json::array());
    want["bond0"] = {{"type", "bond"},
                     {"bond",
                      {{"member_interfaces", {"eth1", "eth2"}},
                       {"min_links", 2},
                       {"transmit_hash_policy", "LAYER3_4"},
                       {"carrier_monitor",
                        {{"polling_interval_ms", 100},
                         {"down_delay_ms", 0},
                         {"up_delay_ms", 0},
                         {"force_polling", false}}},
                       {"mode", "lacp"},
                       {"lacp",
                        {{"rate", "FAST"},
                         {"selection_logic", "BANDWIDTH"},
                         {"actor_system_priority", 100},
                         {"user_port_key", 5},
                         {"actor_system_mac", "02:00:00:00:00:42"}}}}},
                     {"addresses", json::array()},
                     {"routes", json::array()},
                     {"mtu", 1500}};
    want["bond0.42"] = {{"type", "vlan"},
                        {"vlan", {{"parent", "bond0"}, {"id", 42}, {"protocol", "CVLAN"}}},
                        {"addresses", {"192.168.42.10/24", "fd42::10/64"}},
                        {"routes", json::array({Route("192.168.60.0/24", "192.168.42.1", 0)})},
                        {"mtu", 1500}};
    return want;
}

// Compares the keys of `want` (recursively for objects) with `got`; address lists as sets.
void ExpectSubset(const json& want, const json& got, const std::string& where) {
    if (!want.is_object()) {
        if (want.is_array() && got.is_array() && !want.empty() && want[0].is_string()) {
            auto a = want.get<std::vector<std::string>>();
            auto b = got.get<std::vector<std::string>>();
            std::sort(a.begin(), a.end());
            std::sort(b.begin(), b.end());
            EXPECT_EQ(a, b) << where << ": got " << got.dump();
        } else {
            EXPECT_EQ(want, got) << where;
        }
        return;
    }
    ASSERT_TRUE(got.is_object()) << where << ": got " << got.dump();
    for (const auto& [key, value] : want.items()) {
        ASSERT_TRUE(got.contains(key)) << where << "." << key << " missing in " << got.dump();
        ExpectSubset(value, got[key], where + "." + key);
    }
}

TEST(TakeoverE2E, SourceGuestIsTakenOverByTheAgentWithItsNetwork) {
    PhaseTimer phase("TakeoverE2E.SourceGuestIsTakenOverByTheAgentWithItsNetwork");
    const fs::path work = fs::path(E2E_WORK_DIR) / "takeover";
    const wire::TakeoverInit init = MakeTakeoverInit();
    const std::string init_bytes = init.SerializeAsString();
    VM_ASSERT_OK(write_file(work / "init.bin", init_bytes));

    VM_ASSERT_OK_AND_ASSIGN(HostKernel kernel, FindHostKernel());
    InitramfsSpec spec;
    spec.modules = {"virtio_pci", "virtio_net", "bonding", "8021q"};
    spec.init = kSourceInit;
    spec.files = {{TAKEOVER_GUEST_BINARY, "/bin/takeover"},
                  {work / "init.bin", "/init.bin"},
                  {"/usr/bin/ip", "/opt/iproute2/ip", true}};
    VM_ASSERT_OK_AND_ASSIGN(auto initrd, BuildInitramfs(spec));
    VM_ASSERT_OK_AND_ASSIGN(auto vmlinux, ExtractVmlinux(kernel));
    phase.mark("images (cached after the first run)");

    MicroVMOptions o;
    o.name = "e2e-takeover-source";
    o.kernel = vmlinux;
    o.initrd = initrd;
    o.cmdline = "console=ttyS0,115200 panic=-1";
    // kexec_file_load copies the agent kernel and initramfs into reserved memory.
    o.memory_mib = 1024;
    o.timeout = seconds(560);
    UserNic nic0, nic1, nic2;
    nic0.mac = kMac0;
    nic1.mac = kMac1;
    nic2.mac = kMac2;
    o.nics = {nic0, nic1, nic2};
    VM_ASSERT_OK_AND_ASSIGN(auto vm, MicroVM(o));

    VM_ASSERT_OK_AND_ASSIGN(auto configured,
                            vm->wait_for_line("SOURCE configured: (.*)", seconds(300)));
    phase.mark(std::string("boot and configure the source (") + to_string(vm->accel()) + ")");
    EXPECT_EQ(configured.groups[1], "console=ttyS0,115200 panic=-1");
    for (const std::string& line : vm->lines())
        EXPECT_EQ(line.find("SOURCE-ERROR"), std::string::npos) << line;

    VM_ASSERT_OK_AND_ASSIGN(auto exit_line,
                            vm->wait_for_line("TAKEOVER-EXIT (\\d+)", seconds(300)));
    EXPECT_EQ(exit_line.groups[1], "0");
    VM_ASSERT_OK_AND_ASSIGN(auto end_line,
                            vm->wait_for_line("TAKEOVER-RESPONSE-END (\\d+)", seconds(60)));
    phase.mark("takeover run (capture, stage, respond)");

    std::string response_hex;
    const std::vector<std::string> lines = vm->lines();
    const std::string prefix = "TAKEOVER-RESPONSE-HEX ";
    for (size_t i = exit_line.index; i < end_line.index && i < lines.size(); ++i)
        if (lines[i].rfind(prefix, 0) == 0) response_hex += lines[i].substr(prefix.size());
    const std::string response_bytes = unhex(response_hex);
    ASSERT_EQ(std::to_string(response_bytes.size()), end_line.groups[1]);
    wire::TakeoverResponse response;
    ASSERT_TRUE(response.ParseFromString(response_bytes)) << response_hex;
    ASSERT_TRUE(response.has_success()) << response.DebugString();
    const wire::TakeoverSuccess& success = response.success();
    EXPECT_EQ(success.init_message().SerializeAsString(), init_bytes);
    ASSERT_EQ(success.key().size(), 32u);
    for (const std::string& w : success.warning())
        std::fprintf(stderr, "takeover warning: %s\n", w.c_str());

    // The agent runs after the kexec, on the same machine and serial console.
    VM_ASSERT_OK_AND_ASSIGN(auto agent,
                            vm->wait_for_line("AGENT-(STARTED|ERROR) (.*)", seconds(300)));
    phase.mark("kexec into the agent");
    ASSERT_EQ(agent.groups[1], "STARTED") << agent.line;
    const json report = json::parse(agent.groups[2], nullptr, false);
    ASSERT_FALSE(report.is_discarded()) << agent.groups[2];
    std::fprintf(stderr, "agent report: %s\n", report.dump().c_str());

    EXPECT_EQ(report.value("machine_id", ""), init.machine_id());
    EXPECT_EQ(report.value("bmaas_endpoint", ""), init.bmaas_endpoint());
    EXPECT_EQ(report.value("ca_certificate_bytes", -1), 600);
    EXPECT_EQ(report.value("public_key", ""), hex(success.key()));
    EXPECT_EQ(report.value("public_key_matches", false), true);
    EXPECT_EQ(report.value("nameservers", json::array()),
              json::array({"192.0.2.53", "2001:db8::53"}));
    // The embedded payload's cmdline with the source's console carried over.
    EXPECT_EQ(report.value("cmdline", ""), "quiet init=/init console=ttyS0,115200");

    const std::map<std::string, json> want = ExpectedInterfaces();
    std::vector<std::string> names;
    for (const json& iface : report.value("interfaces", json::array())) {
        const std::string name = iface.value("name", "");
        names.push_back(name);
        auto it = want.find(name);
        if (it == want.end()) {
            ADD_FAILURE() << "unexpected interface " << iface.dump();
            continue;
        }
        ExpectSubset(it->second, iface, name);
    }
    EXPECT_EQ(names, (std::vector<std::string>{"bond0", "bond0.42", "eth0", "eth1", "eth2"}));

    VM_ASSERT_OK(vm->wait_for_power_off(seconds(120)));
    phase.mark("agent to power off");
}

}  // namespace
}  // namespace activate::vm
