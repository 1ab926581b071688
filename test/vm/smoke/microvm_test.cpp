// MicroVM smoke tests: the Debian kernel boots directly (PVH vmlinux) with the busybox
// initramfs; one test checks module loading and a clean power off, one the user-network
// forwards in both directions.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>
#include <vm/images.hpp>
#include <vm/phase.hpp>
#include <vm/qemu.hpp>

#include "expect.hpp"

namespace activate::vm {
namespace {

TEST(MicroVMSmoke, BootsLoadsModulesAndPowersOff) {
    PhaseTimer phase("MicroVMSmoke.BootsLoadsModulesAndPowersOff");
    VM_ASSERT_OK_AND_ASSIGN(HostKernel kernel, FindHostKernel());
    InitramfsSpec spec;
    // efivarfs refuses to load without EFI firmware; MicroVM has none.
    std::erase(spec.modules, "efivarfs");
    // A dynamically linked host program, the way the project's binaries go in: with its libraries.
    spec.files = {{"/usr/bin/true", "/opt/host/true", true}};
    spec.init = R"SH(#!/bin/sh
. /etc/vm-lib.sh
vm_setup
while read -r m; do
  grep -q "^$m " /proc/modules || echo "SMOKE module missing: $m"
done < /etc/vm-modules
ip link show eth0 >/dev/null 2>&1 || echo "SMOKE no eth0"
/opt/host/true || echo "SMOKE dynamic ELF failed"
echo "SMOKE ready: $(uname -r), $(wc -l < /proc/modules) modules"
vm_poweroff
)SH";
    VM_ASSERT_OK_AND_ASSIGN(auto initrd, BuildInitramfs(spec));
    VM_ASSERT_OK_AND_ASSIGN(auto vmlinux, ExtractVmlinux(kernel));
    phase.mark("images (cached after the first run)");

    MicroVMOptions o;
    o.name = "microvm-smoke";
    o.kernel = vmlinux;
    o.initrd = initrd;
    o.nics = {UserNic{}};
    VM_ASSERT_OK_AND_ASSIGN(auto vm, MicroVM(o));
    VM_ASSERT_OK_AND_ASSIGN(auto ready, vm->wait_for_line("SMOKE ready: (\\S+),", seconds(240)));
    phase.mark(std::string("boot to marker (") + to_string(vm->accel()) + ")");
    EXPECT_EQ(ready.groups[1], kernel.version);
    VM_ASSERT_OK(vm->wait_for_power_off(seconds(60)));
    phase.mark("marker to exit");
    for (const auto& line : vm->lines()) {
        EXPECT_EQ(line.find("SMOKE module missing"), std::string::npos) << line;
        EXPECT_EQ(line.find("SMOKE no eth0"), std::string::npos) << line;
        EXPECT_EQ(line.find("SMOKE dynamic ELF failed"), std::string::npos) << line;
    }
}

// A one-shot TCP server on 127.0.0.1 that sends a line to whoever connects first.
class LineServer {
  public:
    explicit LineServer(std::string line) : line_(std::move(line)) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(fd_, 1) == 0 &&
            ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0)
            port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 300'000) != 1) return;
            int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) return;
            (void)!::write(c, line_.data(), line_.size());
            ::close(c);
        });
    }
    ~LineServer() {
        ::shutdown(fd_, SHUT_RDWR);
        thread_.join();
        ::close(fd_);
    }
    uint16_t port() const { return port_; }

  private:
    std::string line_;
    int fd_ = -1;
    uint16_t port_ = 0;
    std::thread thread_;
};

// Connects to 127.0.0.1:port and reads one line (with a time limit).
std::string read_line_from(uint16_t port, int timeout_ms) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    std::string out;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        char c;
        pollfd p{fd, POLLIN, 0};
        while (::poll(&p, 1, timeout_ms) == 1 && ::read(fd, &c, 1) == 1 && c != '\n')
            out.push_back(c);
    }
    ::close(fd);
    return out;
}

TEST(MicroVMSmoke, UserNetworkForwardsBothWays) {
    PhaseTimer phase("MicroVMSmoke.UserNetworkForwardsBothWays");
    VM_ASSERT_OK_AND_ASSIGN(HostKernel kernel, FindHostKernel());
    InitramfsSpec spec;
    spec.modules = {"virtio_pci", "virtio_net"};
    spec.init = R"SH(#!/bin/sh
. /etc/vm-lib.sh
vm_setup
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
# The guestfwd chardev does not pass on the host's close, so read a line, then stop nc. Each
# call writes a file of its own, made empty before nc starts: with one file for all calls, the
# poll could read the previous call's line before the background redirection truncated it.
first_line() {
  f=$(mktemp /tmp/line.XXXXXX)
  nc "$1" "$2" < /dev/null > "$f" &
  i=0
  until grep -q . "$f" || [ $i -gt 300 ]; do usleep 100000; i=$((i + 1)); done
  kill $! 2>/dev/null
  head -n1 "$f"
}
echo "NET from host: $(first_line 10.0.2.100 1234)"
echo "NET from cmd: $(first_line 10.0.2.101 1235)"
echo hello-from-guest | timeout 60 nc -l -p 8080 &
sleep 0.5
echo "NET listening"
wait
echo "NET served"
vm_poweroff
)SH";
    VM_ASSERT_OK_AND_ASSIGN(auto initrd, BuildInitramfs(spec));
    VM_ASSERT_OK_AND_ASSIGN(auto vmlinux, ExtractVmlinux(kernel));
    phase.mark("images");

    LineServer server("hello-from-host\n");
    ASSERT_NE(server.port(), 0);
    MicroVMOptions o;
    o.name = "microvm-usernet";
    o.kernel = vmlinux;
    o.initrd = initrd;
    UserNic nic;
    nic.host_forwards = {{8080, 0, "tcp"}};
    nic.guest_forwards = {{"10.0.2.100", 1234, "tcp:127.0.0.1:" + std::to_string(server.port())},
                          {"10.0.2.101", 1235, "cmd:echo hello-from-cmd"}};
    o.nics = {nic};
    VM_ASSERT_OK_AND_ASSIGN(auto vm, MicroVM(o));
    VM_ASSERT_OK_AND_ASSIGN(auto from_host, vm->wait_for_line("NET from host: (.*)", seconds(240)));
    EXPECT_EQ(from_host.groups[1], "hello-from-host");
    VM_ASSERT_OK_AND_ASSIGN(auto from_cmd, vm->wait_for_line("NET from cmd: (.*)", seconds(60)));
    EXPECT_EQ(from_cmd.groups[1], "hello-from-cmd");
    phase.mark("boot to guestfwd lines");
    VM_ASSERT_OK(vm->wait_for_line("NET listening", seconds(60)));
    auto port = vm->host_port(8080);
    ASSERT_TRUE(port.has_value());
    EXPECT_EQ(read_line_from(*port, 30'000), "hello-from-guest");
    phase.mark("hostfwd round trip");
    VM_ASSERT_OK(vm->wait_for_line("NET served", seconds(60)));
    VM_ASSERT_OK(vm->wait_for_power_off(seconds(60)));
    phase.mark("exit");
}

}  // namespace
}  // namespace activate::vm
