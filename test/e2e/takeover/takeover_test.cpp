// Takeover end to end (issue 6 test 1, issue 17 §1): the source guest (takeover_source.hpp)
// configures a bond, a VLAN, static IPv4 and IPv6 addresses, routes and nameservers, answers once
// on its port 22 (forwarded from the host) and runs the static `takeover` binary with a
// TakeoverInit on stdin. The test decodes the TakeoverResponse the guest prints; after the kexec
// the reference agent (the core of minit) applies the captured network, prints AGENT-STARTED with
// the AgentInit and the links the kernel has afterwards, announces itself over HTTP to a listener
// of this test (a QEMU guest forward), and answers at the source's address through the same
// forwarded port with its key, which must be the response's.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
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

// The BMaaS endpoint on the host: QEMU's guest forward connects to it once, when it starts, and
// passes the agent's connection through that stream; it answers one HTTP request with 200.
class BmaasListener {
  public:
    BmaasListener() {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        ::listen(fd_, 1);
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] { run(); });
    }
    ~BmaasListener() {
        stop_ = true;
        thread_.join();
        if (conn_ >= 0) ::close(conn_);
        ::close(fd_);
    }
    uint16_t port() const { return port_; }
    // The request once it is complete, else empty.
    std::string request() {
        std::lock_guard<std::mutex> lock(mutex_);
        return complete_ ? request_ : std::string();
    }

  private:
    bool readable(int fd) {
        pollfd p{fd, POLLIN, 0};
        return ::poll(&p, 1, 200) == 1;
    }
    void run() {
        while (!stop_ && conn_ < 0)
            if (readable(fd_)) conn_ = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        std::string got;
        while (!stop_) {
            if (!readable(conn_)) continue;
            char buf[1024];
            const ssize_t n = ::read(conn_, buf, sizeof buf);
            if (n <= 0) return;
            got.append(buf, static_cast<size_t>(n));
            const size_t head = got.find("\r\n\r\n");
            std::smatch m;
            if (head == std::string::npos ||
                !std::regex_search(got, m, std::regex("Content-Length: (\\d+)\r\n")) ||
                got.size() < head + 4 + std::stoul(m[1].str()))
                continue;
            const std::string answer = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
            ::write(conn_, answer.data(), answer.size());
            std::lock_guard<std::mutex> lock(mutex_);
            request_ = got;
            complete_ = true;
            return;
        }
    }
    int fd_ = -1, conn_ = -1;
    uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::mutex mutex_;
    std::string request_;
    bool complete_ = false;
    std::thread thread_;
};

// Connects to 127.0.0.1:port and reads one line, retrying until `timeout`: QEMU's host forward
// accepts at once and closes when nothing listens in the guest yet.
std::string ReadLineFromPort(uint16_t port, std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port);
        std::string got;
        if (::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
            char buf[512];
            pollfd p{c, POLLIN, 0};
            while (got.find('\n') == std::string::npos && ::poll(&p, 1, 5000) == 1) {
                const ssize_t n = ::read(c, buf, sizeof buf);
                if (n <= 0) break;
                got.append(buf, static_cast<size_t>(n));
            }
        }
        ::close(c);
        if (const size_t nl = got.find('\n'); nl != std::string::npos) return got.substr(0, nl);
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    return "<nothing read from port " + std::to_string(port) + ">";
}

// The kernel's links as the agent reports them after applying, without the IPv6 link-local
// addresses the kernel adds by itself.
std::map<std::string, json> LiveLinks(const json& report) {
    std::map<std::string, json> links;
    for (json link : report.value("links", json::array())) {
        json addresses = json::array();
        for (const json& a : link["addresses"])
            if (a.get<std::string>().rfind("fe80:", 0) != 0) addresses.push_back(a);
        link["addresses"] = addresses;
        links[link.value("name", "")] = link;
    }
    return links;
}

TEST(TakeoverE2E, AgentAppliesTheSourceNetworkAndIsReachableWhereTheSourceWas) {
    PhaseTimer phase("TakeoverE2E.AgentAppliesTheSourceNetworkAndIsReachableWhereTheSourceWas");
    const fs::path work = fs::path(E2E_WORK_DIR) / "takeover";
    BmaasListener bmaas;
    constexpr uint16_t kBmaasGuestPort = 8080;
    const std::string endpoint = "http://10.0.2.100:" + std::to_string(kBmaasGuestPort) + "/agents";
    const wire::TakeoverInit init = MakeTakeoverInit(endpoint);
    const std::string init_bytes = init.SerializeAsString();
    SourceReachability reach;
    reach.forward_port_22 = true;
    reach.guest_forwards.push_back(GuestForward{"10.0.2.100", kBmaasGuestPort,
                                                "tcp:127.0.0.1:" + std::to_string(bmaas.port())});
    VM_ASSERT_OK_AND_ASSIGN(auto vm, BootTakeoverSource(work, init, "e2e-takeover-source", reach));
    phase.mark("images (cached after the first run)");
    const std::optional<uint16_t> port_22 = vm->host_port(22);
    ASSERT_TRUE(port_22.has_value());

    // Before the takeover, the forwarded port reaches the source (which waits for this one
    // connection before it runs takeover; until it listens, QEMU closes what it accepts).
    EXPECT_EQ(ReadLineFromPort(*port_22, std::chrono::seconds(300)), "SOURCE-ON-PORT-22");

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

    // What the agent applied: nothing left out, and the kernel's links afterwards carry the
    // source's addresses, the bond its members and the VLAN its parent's.
    EXPECT_EQ(report.value("not_applied", json::array()), json::array()) << report.dump();
    std::map<std::string, json> live = LiveLinks(report);
    for (const char* name : {"eth0", "eth1", "eth2", "bond0", "bond0.42"}) {
        ASSERT_TRUE(live.count(name)) << name << " not among the agent's links: " << report.dump();
        EXPECT_EQ(live[name].value("up", false), true) << name;
    }
    ExpectSubset(json{{"mac", kMac0}, {"addresses", {"10.0.2.15/24", "fd00:2::15/64"}}},
                 live["eth0"], "links.eth0");
    ExpectSubset(json{{"master", "bond0"}}, live["eth1"], "links.eth1");
    ExpectSubset(json{{"master", "bond0"}}, live["eth2"], "links.eth2");
    // The bond's parameters as the agent's kernel reports them (linux/if_link.h numbers: mode 4
    // is 802.3ad, xmit_hash_policy 1 layer3+4, lacp_rate 1 fast, ad_select 1 bandwidth).
    ExpectSubset(json{{"kind", "bond"},
                      {"details",
                       {{"mode", 4},
                        {"miimon", 100},
                        {"min_links", 2},
                        {"xmit_hash_policy", 1},
                        {"ad_lacp_rate", 1},
                        {"ad_select", 1},
                        {"ad_actor_sys_prio", 100},
                        {"ad_user_port_key", 5},
                        {"ad_actor_system", "02:00:00:00:00:42"}}}},
                 live["bond0"], "links.bond0");
    ExpectSubset(json{{"kind", "vlan"},
                      {"details", {{"id", 42}, {"protocol", "802.1Q"}}},
                      {"addresses", {"192.168.42.10/24", "fd42::10/64"}}},
                 live["bond0.42"], "links.bond0.42");

    // It announced itself to the endpoint (the guest forward to this test's listener) ...
    VM_ASSERT_OK_AND_ASSIGN(
        auto announced, vm->wait_for_line("AGENT-(ANNOUNCED|NOT-ANNOUNCED) (.*)", seconds(120)));
    ASSERT_EQ(announced.groups[1], "ANNOUNCED") << announced.line;
    EXPECT_EQ(announced.groups[2], endpoint);
    const std::string request = bmaas.request();
    const std::string body = R"({"machine_id":"e2e-takeover-source-7","public_key":")" +
                             Hex(success.key()) + R"(","port":22})";
    EXPECT_EQ(request.substr(0, request.find("\r\n")), "POST /agents HTTP/1.0");
    EXPECT_EQ(request.substr(request.find("\r\n\r\n") + 4), body) << request;
    phase.mark("agent announced");

    // ... and answers at the source's address (10.0.2.15, where QEMU forwards the host port)
    // through the port that reached the source, with the response's key.
    EXPECT_EQ(ReadLineFromPort(*port_22, std::chrono::seconds(60)), "ACTIVATE-AGENT " + body);
    phase.mark("agent reached through the source's forwarded port");
}

}  // namespace
}  // namespace activate::vm
