// Takeover end to end (issue 6, test 1): the source guest (takeover_source.hpp) configures a
// bond, a VLAN, static IPv4 and IPv6 addresses, routes and nameservers, then runs the static
// `takeover` binary with a TakeoverInit on stdin. The test decodes the TakeoverResponse the guest
// prints, and after the kexec the reference agent (the core of minit, PID 1 of the agent
// initramfs) prints AGENT-STARTED on the same console, which must carry the identity, the key,
// the network the source configured and the source's console=; minit then powers off.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>
#include <vm/phase.hpp>

#include "agent_report.hpp"
#include "expect.hpp"
#include "takeover_source.hpp"

namespace activate::vm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

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
    VM_ASSERT_OK_AND_ASSIGN(auto vm, BootTakeoverSource(work, init, "e2e-takeover-source"));
    phase.mark("images (cached after the first run)");

    VM_ASSERT_OK_AND_ASSIGN(TakeoverRun run, WaitTakeover(*vm));
    phase.mark(std::string("boot, configure the source and run takeover (") +
               to_string(vm->accel()) + ")");
    std::fprintf(
        stderr, "[phase] takeover run (capture, stage, respond): %.1f s\n",
        std::chrono::duration<double>(run.exited.arrived - run.configured.arrived).count());
    EXPECT_EQ(run.configured.groups[1], "console=ttyS0,115200 panic=-1");
    for (const std::string& line : run.source_errors) ADD_FAILURE() << line;
    EXPECT_EQ(run.exit_code, 0);
    const std::string& response_bytes = run.response;
    wire::TakeoverResponse response;
    ASSERT_TRUE(response.ParseFromString(response_bytes)) << Hex(response_bytes);
    ASSERT_TRUE(response.has_success()) << response.DebugString();
    const wire::TakeoverSuccess& success = response.success();
    EXPECT_EQ(success.init_message().SerializeAsString(), init_bytes);
    ASSERT_EQ(success.key().size(), 32u);
    for (const std::string& w : success.warning())
        std::fprintf(stderr, "takeover warning: %s\n", w.c_str());

    // The agent runs after the kexec, on the same machine and serial console, as the core of
    // minit (PID 1 of the agent initramfs).
    VM_ASSERT_OK(vm->wait_for_line("^minit [0-9.]+: starting /core$", seconds(300)));
    json report;
    ExpectAgentReportsItsIdentity(*vm, seconds(300), init, success, report);
    if (HasFatalFailure()) return;
    phase.mark("kexec into the agent");
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

    // The agent exits 0 and minit powers the machine off.
    VM_ASSERT_OK(vm->wait_for_line("^minit: core /core exited with status 0$", seconds(120)));
    VM_ASSERT_OK(vm->wait_for_line("^minit: powering off$", seconds(60)));
    VM_ASSERT_OK(vm->wait_for_power_off(seconds(120)));
    phase.mark("agent to power off");
}

}  // namespace
}  // namespace activate::vm
