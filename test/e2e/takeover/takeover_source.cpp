// See takeover_source.hpp.
#include "takeover_source.hpp"

#include <activate/bundle/sha256.hpp>
#include <filesystem>
#include <fstream>
#include <span>
#include <vm/images.hpp>

namespace activate::vm {
namespace {

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
# Where the test forwards a host port to port 22, the source answers there once, so the test
# knows the port reached the source before it reaches the agent through it.
if [ -e /etc/answer-on-port-22 ]; then
  echo "SOURCE listening on port 22"
  echo SOURCE-ON-PORT-22 | nc -l -p 22 || echo "SOURCE-ERROR: nc -l -p 22"
fi
# Keep kernel messages (bond and link state changes) out of the lines the test decodes.
dmesg -n 1
/bin/takeover --set delay=1s < /init.bin > /resp.bin
rc=$?
echo "TAKEOVER-EXIT $rc"
# Killed (the OOM killer, when the RAM is short): the kernel's lines, which dmesg -n 1 kept off
# the console.
if [ $rc -gt 128 ]; then
  dmesg | grep -i -e 'out of memory' -e 'oom-kill' | sed 's/^/SOURCE-KERNEL /'
fi
xxd -p -c 32 /resp.bin | sed 's/^/TAKEOVER-RESPONSE-HEX /'
echo "TAKEOVER-RESPONSE-END $(wc -c < /resp.bin)"
# Let a failing second stage's message (it writes to /dev/kmsg) reach the console.
dmesg -n 7
# The detached second stage kexecs into the agent; PID 1 must not exit meanwhile.
while :; do sleep 1; done
)SH";

Status write_file(const fs::path& path, std::string_view data) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.close();
    if (!out) return Error(ErrorKind::internal, "cannot write " + path.string());
    return {};
}

}  // namespace

wire::TakeoverInit MakeTakeoverInit(const std::string& bmaas_endpoint) {
    wire::TakeoverInit init;
    init.set_machine_id("e2e-takeover-source-7");
    init.set_bmaas_endpoint(bmaas_endpoint);
    std::string ca(600, '\0');  // arbitrary bytes, not text: the field is bytes
    for (size_t i = 0; i < ca.size(); ++i) ca[i] = static_cast<char>((i * 37 + 11) & 0xff);
    init.set_ca_certificate(ca);
    return init;
}

std::string Unhex(std::string_view text) {
    std::string out;
    for (size_t i = 0; i + 1 < text.size(); i += 2)
        out += static_cast<char>(std::stoi(std::string(text.substr(i, 2)), nullptr, 16));
    return out;
}

std::string Hex(std::string_view bytes) {
    return bundle::to_hex(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

Result<std::unique_ptr<Machine>> BootTakeoverSource(const fs::path& work,
                                                    const wire::TakeoverInit& init,
                                                    const std::string& name,
                                                    const SourceReachability& reach,
                                                    int memory_mib) {
    ACTIVATE_TRY(write_file(work / "init.bin", init.SerializeAsString()));
    ACTIVATE_TRY(write_file(work / "answer-on-port-22", ""));
    ACTIVATE_ASSIGN(HostKernel kernel, FindHostKernel());
    InitramfsSpec spec;
    spec.modules = {"virtio_pci", "virtio_net", "bonding", "8021q"};
    spec.init = kSourceInit;
    spec.files = {{TAKEOVER_GUEST_BINARY, "/bin/takeover"},
                  {work / "init.bin", "/init.bin"},
                  {"/usr/bin/ip", "/opt/iproute2/ip", true}};
    if (reach.forward_port_22)
        spec.files.push_back({work / "answer-on-port-22", "/etc/answer-on-port-22"});
    ACTIVATE_ASSIGN(fs::path initrd, BuildInitramfs(spec));
    ACTIVATE_ASSIGN(fs::path vmlinux, ExtractVmlinux(kernel));

    MicroVMOptions o;
    o.name = name;
    o.kernel = vmlinux;
    o.initrd = initrd;
    o.cmdline = "console=ttyS0,115200 panic=-1";
    // kexec_file_load copies the agent kernel and initramfs into memory it allocates, and refuses
    // segments over half of RAM: 1 GiB leaves ample room (bench/takeover_min_ram_bench finds the
    // least that works).
    o.memory_mib = memory_mib;
    o.timeout = seconds(560);
    UserNic nic0, nic1, nic2;
    nic0.mac = kMac0;
    if (reach.forward_port_22) nic0.host_forwards.push_back(HostForward{22});
    nic0.guest_forwards = reach.guest_forwards;
    nic1.mac = kMac1;
    nic2.mac = kMac2;
    o.nics = {nic0, nic1, nic2};
    return MicroVM(o);
}

Result<TakeoverRun> WaitTakeover(Machine& vm) {
    TakeoverRun run;
    ACTIVATE_ASSIGN(run.configured, vm.wait_for_line("SOURCE configured: (.*)", seconds(300)));
    for (const std::string& line : vm.lines())
        if (line.find("SOURCE-ERROR") != std::string::npos) run.source_errors.push_back(line);
    ACTIVATE_ASSIGN(run.exited, vm.wait_for_line("TAKEOVER-EXIT (\\d+)", seconds(300)));
    run.exit_code = std::stoi(run.exited.groups[1]);
    ACTIVATE_ASSIGN(auto end, vm.wait_for_line("TAKEOVER-RESPONSE-END (\\d+)", seconds(60)));
    std::string response_hex;
    const std::vector<std::string> lines = vm.lines();
    const std::string prefix = "TAKEOVER-RESPONSE-HEX ";
    for (size_t i = run.exited.index; i < end.index && i < lines.size(); ++i)
        if (lines[i].rfind(prefix, 0) == 0) response_hex += lines[i].substr(prefix.size());
    run.response = Unhex(response_hex);
    if (std::to_string(run.response.size()) != end.groups[1])
        return Error(ErrorKind::input, "the source printed a " +
                                           std::to_string(run.response.size()) +
                                           "-byte response but announced " + end.groups[1]);
    return run;
}

}  // namespace activate::vm
