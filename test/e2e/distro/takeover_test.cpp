// Takeover of a stock Debian 12 guest (issue 15 §3): OVMF boots Debian's kernel, its initrd and
// systemd, networkd configures the NIC by DHCP, and the host does what an operator would: copies
// the self-contained `takeover` binary in with scp and runs it over ssh with a TakeoverInit on
// stdin. The agent that comes up after the kexec must report the identity, the key of the
// response, and the network the Debian guest had (its MAC, DHCP address, route, nameserver).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#include <vm/phase.hpp>

#include "agent_report.hpp"
#include "distro_world.hpp"
#include "expect.hpp"
#include "takeover_source.hpp"

namespace activate::vm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The guest's NIC; QEMU's user network leases it 10.0.2.15/24.
constexpr const char* kMac = "52:54:00:e2:d1:50";

// The harness runs QEMU's user network restricted (the guest reaches only the test's forwards),
// and a restricted slirp leaves the router and DNS options out of its DHCP offers (libslirp
// bootp.c). The guest gets them as a Debian machine with a configured gateway and resolver
// does: a drop-in for the image's DHCP .network (systemd.network(5), "[Network] Gateway=, DNS=").
constexpr const char* kNetworkDropIn =
    "# activate e2e: the gateway and resolver QEMU's restricted DHCP does not offer.\n"
    "[Network]\nGateway=10.0.2.2\nDNS=10.0.2.3\n";

class DistroTakeover : public ::testing::Test, public DistroWorld {
  protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "needs root (debootstrap, mkfs.ext4 -d)";
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        VM_ASSERT_OK(Init(std::string(info->test_suite_name()) + "." + info->name()));
    }

    // ssh/scp options for root@127.0.0.1 on the forwarded port: the guest's host key is new on
    // every image, and nothing may prompt.
    std::vector<std::string> SshOptions(const std::string& port_flag, uint16_t port) const {
        return {"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o",
                "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=60",
                // The guest vanishes into the kexec: a connection still open then must not hang.
                "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=6", "-i", key_.string(),
                port_flag, std::to_string(port)};
    }
    std::vector<std::string> Ssh(uint16_t port, const std::string& command) const {
        std::vector<std::string> argv = {"ssh"};
        for (auto& o : SshOptions("-p", port)) argv.push_back(o);
        argv.push_back("root@127.0.0.1");
        argv.push_back(command);
        return argv;
    }

    fs::path key_;
};

std::string Quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

std::string Join(const std::vector<std::string>& argv) {
    std::string out;
    for (const auto& a : argv) out += (out.empty() ? "" : " ") + Quote(a);
    return out;
}

std::string ReadAll(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

TEST_F(DistroTakeover, TakeoverOverSshOnStockDebianBringsUpTheAgentWithTheGuestsNetwork) {
    PhaseTimer phase(
        "DistroTakeover.TakeoverOverSshOnStockDebianBringsUpTheAgentWithTheGuestsNetwork");
    VM_ASSERT_OK_AND_ASSIGN(key_, SshKey());
    VM_ASSERT_OK_AND_ASSIGN(fs::path drop_in, SharedFile("takeover-network.conf", kNetworkDropIn));
    VM_ASSERT_OK(MakeDisk({{key_.string() + ".pub", "/root/.ssh/authorized_keys"},
                           {drop_in, "/etc/systemd/network/20-wired.network.d/gateway.conf"}}));
    // The test unit prints its DISTRO_* lines and ends; the guest stays up for SSH.
    VM_ASSERT_OK(Scenario("true\n"));
    phase.mark("slot image, UKIs, disk (cached after the first run)");

    VM_ASSERT_OK_AND_ASSIGN(auto vm, Boot("takeover", {HostForward{22}}, kMac));
    VM_ASSERT_OK_AND_ASSIGN(Booted booted, WaitBooted(*vm));
    EXPECT_EQ(booted.variant, "X");
    EXPECT_EQ(booted.root_partlabel, "METROPOLIS-SYSTEM-A");
    phase.mark("OVMF boots Debian to the test unit");

    const std::optional<uint16_t> port = vm->host_port(22);
    ASSERT_TRUE(port.has_value());
    // sshd may still be starting (or generating nothing: its host keys come with the package).
    Result<std::string> names = Error(ErrorKind::internal, "not tried");
    for (int attempt = 0; attempt < 20; ++attempt) {
        names = RunCommand(Ssh(*port,
                               "for i in /sys/class/net/*; do echo ${i##*/} "
                               "$(cat $i/address); done"),
                           seconds(120));
        if (names.ok()) break;
        std::this_thread::sleep_for(seconds(5));
    }
    ASSERT_TRUE(names.ok()) << names.error().message();
    // The name Debian's udev gave the NIC with our MAC (predictable names: enp0sN).
    std::string nic;
    std::istringstream lines(*names);
    for (std::string name, mac; lines >> name >> mac;)
        if (mac == kMac) nic = name;
    ASSERT_FALSE(nic.empty()) << "no interface with " << kMac << " in the guest: " << *names;
    std::fprintf(stderr, "[e2e-distro] the guest's NIC is %s\n", nic.c_str());
    phase.mark("ssh into the guest");

    std::vector<std::string> scp = {"scp"};
    for (auto& o : SshOptions("-P", *port)) scp.push_back(o);
    scp.push_back(E2E_DISTRO_TAKEOVER);
    scp.push_back("root@127.0.0.1:/usr/local/sbin/takeover");
    VM_ASSERT_OK(RunCommand(scp, seconds(300)));
    phase.mark("scp takeover");

    const wire::TakeoverInit init = MakeTakeoverInit();
    const std::string init_bytes = init.SerializeAsString();
    const fs::path init_file = dir() / "init.bin", response_file = dir() / "response.bin",
                   log_file = dir() / "takeover.log";
    {
        std::ofstream out(init_file, std::ios::binary);
        out << init_bytes;
    }
    // The protocol is binary on stdin and stdout: the shell redirects both to files. The second
    // stage waits 3 s before the jump so that ssh and sshd finish the session first.
    const std::string command = Join(Ssh(*port, "/usr/local/sbin/takeover --set delay=3s")) + " <" +
                                Quote(init_file.string()) + " >" + Quote(response_file.string()) +
                                " 2>" + Quote(log_file.string());
    auto ran = RunCommand({"sh", "-c", command}, seconds(600));
    std::fprintf(stderr, "takeover's log:\n%s", ReadAll(log_file).c_str());
    ASSERT_TRUE(ran.ok()) << ran.error().message();
    phase.mark("takeover over ssh (capture, stage, respond)");

    const std::string response_bytes = ReadAll(response_file);
    wire::TakeoverResponse response;
    ASSERT_TRUE(response.ParseFromString(response_bytes)) << Hex(response_bytes);
    ASSERT_TRUE(response.has_success()) << response.DebugString();
    const wire::TakeoverSuccess& success = response.success();
    EXPECT_EQ(success.init_message().SerializeAsString(), init_bytes);
    ASSERT_EQ(success.key().size(), 32u);
    bool dhcp_address_seen = false;
    for (const std::string& w : success.warning()) {
        std::fprintf(stderr, "takeover warning: %s\n", w.c_str());
        // netcapture carries a leased address as "autoconfigure" (the agent asks DHCP again),
        // not as a static address that would outlive the lease; it says so.
        dhcp_address_seen |= w == "skipped address 10.0.2.15/24 on " + nic +
                                      ": dynamic, IPv4 autoconfiguration enabled instead";
    }
    EXPECT_TRUE(dhcp_address_seen) << "no warning about the DHCP address 10.0.2.15/24";

    // The serial getty's login prompt has no newline: minit's first line follows it.
    VM_ASSERT_OK(vm->wait_for_line("minit [0-9.]+: starting /core$", kDistroBoot));
    json report;
    ExpectAgentReportsItsIdentity(*vm, seconds(300), init, success, report);
    if (HasFatalFailure()) return;
    phase.mark("kexec into the agent");
    // The guest's nameserver, which systemd-resolved lists as its upstream (the guest's
    // /etc/resolv.conf names only resolved's stub, 127.0.0.53).
    EXPECT_EQ(report.value("nameservers", json::array()), json::array({"10.0.2.3"}));
    // The embedded payload's cmdline with the Debian UKI's console carried over, and, since
    // the guest booted through UEFI, where the firmware's ACPI tables are (the kexec plugin's
    // acpi_rsdp=, from /sys/firmware/efi/systab: the agent's kernel may not use EFI itself).
    const std::string cmdline = report.value("cmdline", "");
    EXPECT_TRUE(std::regex_match(
        cmdline, std::regex("quiet init=/init console=ttyS0 acpi_rsdp=0x[0-9a-f]+")))
        << cmdline;

    // The NIC networkd configured: its MAC, DHCP (as autoconfiguration) and the default route.
    json got;
    for (const json& iface : report.value("interfaces", json::array()))
        if (iface.value("name", "") == nic) got = iface;
    ASSERT_TRUE(got.is_object()) << "no " << nic << " in " << report.dump();
    EXPECT_EQ(got.value("type", ""), "device");
    EXPECT_EQ(got["device"].value("hardware_address", ""), kMac);
    EXPECT_EQ(got["device"].value("driver", ""), "virtio_net");
    EXPECT_TRUE(got.contains("ipv4_autoconfig")) << got.dump();
    EXPECT_EQ(got.value("addresses", json::array()), json::array()) << got.dump();
    bool default_route = false;
    for (const json& r : got.value("routes", json::array()))
        default_route |=
            r.value("destination", "") == "0.0.0.0/0" && r.value("gateway_ip", "") == "10.0.2.2";
    EXPECT_TRUE(default_route) << got.dump();

    VM_ASSERT_OK(vm->wait_for_line("^minit: core /core exited with status 0$", seconds(120)));
    VM_ASSERT_OK(vm->wait_for_power_off(seconds(120)));
    phase.mark("agent to power off");
}

}  // namespace
}  // namespace activate::vm
