// Two guests joined by a Cable (a socket pair) exchange a line over TCP on their virtio NICs.
// Addresses are from TEST-NET-1 (RFC 5737): nothing leaves the two QEMU processes anyway.
#include <vm/images.hpp>
#include <vm/phase.hpp>
#include <vm/qemu.hpp>

#include "expect.hpp"

namespace activate::vm {
namespace {

constexpr const char* kInit = R"SH(#!/bin/sh
. /etc/vm-lib.sh
vm_setup
role=$(sed -n 's/.*vm\.role=\([a-z]*\).*/\1/p' /proc/cmdline)
ip link set lo up
ip link set eth0 up
if [ "$role" = a ]; then me=192.0.2.1 peer=192.0.2.2; else me=192.0.2.2 peer=192.0.2.1; fi
ip addr add $me/24 dev eth0
echo "CABLE $role up"
if [ "$role" = b ]; then
  echo "CABLE b got: $(timeout 120 nc -l -p 7000 < /dev/null)"
else
  i=0
  until ping -c 1 -W 1 $peer >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 120 ] || break
  done
  echo "CABLE a ping after $i retries"
  i=0
  until echo "hello over the cable" | nc $peer 7000; do
    i=$((i + 1)); [ $i -lt 100 ] || break; sleep 0.3
  done
  echo "CABLE a sent"
fi
vm_poweroff
)SH";

TEST(CableSmoke, TwoGuestsExchangeALine) {
    PhaseTimer phase("CableSmoke.TwoGuestsExchangeALine");
    VM_ASSERT_OK_AND_ASSIGN(HostKernel kernel, FindHostKernel());
    InitramfsSpec spec;
    spec.modules = {"virtio_pci", "virtio_net"};
    spec.init = kInit;
    VM_ASSERT_OK_AND_ASSIGN(auto initrd, BuildInitramfs(spec));
    VM_ASSERT_OK_AND_ASSIGN(auto vmlinux, ExtractVmlinux(kernel));
    VM_ASSERT_OK_AND_ASSIGN(auto cable, Cable::Create());
    phase.mark("images");

    auto start = [&](const std::string& role) {
        MicroVMOptions o;
        o.name = "cable-" + role;
        o.kernel = vmlinux;
        o.initrd = initrd;
        o.cmdline = "console=ttyS0 panic=-1 vm.role=" + role;
        o.nics = {cable->end(role == "a" ? 0 : 1)};
        return MicroVM(o);
    };
    VM_ASSERT_OK_AND_ASSIGN(auto a, start("a"));
    VM_ASSERT_OK_AND_ASSIGN(auto b, start("b"));
    VM_ASSERT_OK(a->wait_for_line("CABLE a up", seconds(300)));
    VM_ASSERT_OK(b->wait_for_line("CABLE b up", seconds(300)));
    phase.mark("both booted");
    VM_ASSERT_OK(a->wait_for_line("CABLE a ping after", seconds(120)));
    VM_ASSERT_OK(a->wait_for_line("CABLE a sent", seconds(60)));
    VM_ASSERT_OK_AND_ASSIGN(auto got, b->wait_for_line("CABLE b got: (.*)", seconds(60)));
    EXPECT_EQ(got.groups[1], "hello over the cable");
    phase.mark("ping and line exchange");
    VM_ASSERT_OK(a->wait_for_power_off(seconds(60)));
    VM_ASSERT_OK(b->wait_for_power_off(seconds(60)));
    phase.mark("both powered off");
}

}  // namespace
}  // namespace activate::vm
