// End to end in QEMU: what payload_embedded and activation_kexec stage for a takeover really
// boots. The embedded payload is prepared with an AgentInit, the kexec activation stages it under
// a temporary sysroot (which records the exact kernel, initramfs and command line kexec would
// get), and QEMU boots exactly those bytes. minit must be PID 1 and the reference agent, its
// core, must print the AgentInit back; minit then powers off (or restarts when the agent failed).
#include <gtest/gtest.h>
#include <sodium.h>

#include <activation_kexec/kexec_activation.hpp>
#include <payload_embedded/embedded_payload.hpp>
#include <vm/phase.hpp>
#include <vm/qemu.hpp>

#include "support.hpp"
#include "takeover.pb.h"

namespace activate::embedded {
namespace {

using test::read_file;
using test::TempDir;
using test::write_file;

struct Staged {
    std::filesystem::path kernel, initramfs;
    std::string cmdline;
};

class AgentE2E : public ::testing::Test {
  protected:
    AgentE2E() : sysroot_(root_.path()), context_{&sysroot_, &logger_} {
        // The running kernel's consoles: the last one (ttyS0) must become the agent's console.
        write_file(root_ / "proc/cmdline",
                   "BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro console=tty0 console=ttyS0,115200n8\n");
    }

    // Prepares and stages like the takeover pipeline does, and returns what was recorded.
    void stage(const std::string& agent_init, Staged* out) {
        EmbeddedPayloadSource source(context_, builtin_blobs(), EmbeddedSettings{});
        auto payload = source.prepare(PayloadRequest{agent_init});
        ASSERT_TRUE(payload.ok()) << payload.error().message();
        const RecordingMachine machine(sysroot_);
        kexec::KexecActivation activation(sysroot_, machine, Log(&logger_, "kexec"));
        StageRequest request;
        request.payload = std::move(payload).value();
        Status staged = activation.stage(request);
        ASSERT_TRUE(staged.ok()) << staged.error().message();
        const auto dir = root_.path() / "run/activate/kexec";
        *out = Staged{dir / "kernel", dir / "initramfs", read_file(dir / "cmdline")};
    }

    std::unique_ptr<vm::Machine> boot(const Staged& staged, const std::string& name) {
        vm::MicroVMOptions o;
        o.name = name;
        o.kernel = staged.kernel;
        o.initrd = staged.initramfs;
        o.cmdline = staged.cmdline;
        auto machine = vm::MicroVM(o);
        EXPECT_TRUE(machine.ok()) << machine.error().message();
        return machine.ok() ? std::move(machine).value() : nullptr;
    }

    TempDir root_;
    Sysroot sysroot_;
    Logger logger_{LogLevel::error};
    PluginContext context_;
};

std::string hex(const unsigned char* p, size_t n) {
    std::string out;
    char buf[3];
    for (size_t i = 0; i < n; ++i) {
        std::snprintf(buf, sizeof buf, "%02x", p[i]);
        out += buf;
    }
    return out;
}

// minit's banner: it is PID 1 and starts the agent as its core.
void ExpectMinitStartsTheAgent(vm::Machine& vm) {
    auto banner = vm.wait_for_line("^minit [0-9.]+: starting /core$", vm::seconds(300));
    EXPECT_TRUE(banner.ok()) << banner.error().message();
}

TEST_F(AgentE2E, BootsTheStagedPayloadAndPrintsTheAgentInit) {
    vm::PhaseTimer phase("AgentE2E.BootsTheStagedPayloadAndPrintsTheAgentInit");
    ASSERT_GE(sodium_init(), 0);
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair(pk, sk);
    wire::AgentInit init;
    init.mutable_takeover_init()->set_machine_id("e2e-machine-7");
    init.mutable_takeover_init()->set_bmaas_endpoint("bmaas.example:8443");
    init.set_private_key(std::string(reinterpret_cast<char*>(sk), sizeof sk));
    wire::Interface* eth = init.mutable_network_config()->add_interface();
    eth->set_name("eth0");
    eth->mutable_device()->set_hardware_address("52:54:00:aa:bb:cc");
    eth->add_address("192.0.2.10/24");
    init.mutable_network_config()->add_nameserver()->set_ip("192.0.2.53");

    Staged staged;
    ASSERT_NO_FATAL_FAILURE(stage(init.SerializeAsString(), &staged));
    EXPECT_EQ(staged.cmdline, "quiet init=/init console=tty0 console=ttyS0,115200n8");
    phase.mark("prepare and stage");

    auto vm = boot(staged, "payload-embedded-agent");
    ASSERT_NE(vm, nullptr);
    ExpectMinitStartsTheAgent(*vm);
    phase.mark("boot to minit");
    auto started = vm->wait_for_line("AGENT-(STARTED|ERROR) (.*)", vm::seconds(300));
    ASSERT_TRUE(started.ok()) << started.error().message();
    ASSERT_EQ(started->groups[1], "STARTED") << started->line;
    const std::string& json = started->groups[2];
    for (const std::string& part : {
             std::string(R"("machine_id":"e2e-machine-7")"),
             std::string(R"("bmaas_endpoint":"bmaas.example:8443")"),
             R"("public_key":")" + hex(pk, sizeof pk) + "\"",
             std::string(R"("public_key_matches":true)"),
             std::string(R"("name":"eth0","type":"device")"),
             std::string(R"("addresses":["192.0.2.10/24"])"),
             std::string(R"("nameservers":["192.0.2.53"])"),
             // The agent reads /proc/cmdline in the guest: the staged line, consoles carried over.
             std::string(R"("cmdline":"quiet init=/init console=tty0 console=ttyS0,115200n8")"),
         }) {
        EXPECT_NE(json.find(part), std::string::npos) << part << " not in " << json;
    }
    phase.mark("agent report");
    for (const char* line : {"^minit: core /core exited with status 0$", "^minit: powering off$"}) {
        auto l = vm->wait_for_line(line, vm::seconds(60));
        EXPECT_TRUE(l.ok()) << l.error().message();
    }
    Status off = vm->wait_for_power_off(vm::seconds(120));
    EXPECT_TRUE(off.ok()) << off.error().message();
    phase.mark("agent exit, minit powers off");
}

// The agent fails (exit 1): minit reports it and restarts after its delay (30 s in the shipped
// build), which the test does not wait for.
TEST_F(AgentE2E, WithoutAgentInitTheAgentReportsTheMissingFile) {
    vm::PhaseTimer phase("AgentE2E.WithoutAgentInitTheAgentReportsTheMissingFile");
    Staged staged;
    ASSERT_NO_FATAL_FAILURE(stage("", &staged));
    phase.mark("prepare and stage");
    auto vm = boot(staged, "payload-embedded-agent-no-init");
    ASSERT_NE(vm, nullptr);
    ExpectMinitStartsTheAgent(*vm);
    phase.mark("boot to minit");
    auto line = vm->wait_for_line("AGENT-(STARTED|ERROR) (.*)", vm::seconds(300));
    ASSERT_TRUE(line.ok()) << line.error().message();
    EXPECT_EQ(line->line, "AGENT-ERROR cannot read /init.pb: No such file or directory");
    for (const char* l : {"^minit: core /core exited with status 1$", "^minit: restarting in "}) {
        auto m = vm->wait_for_line(l, vm::seconds(60));
        EXPECT_TRUE(m.ok()) << m.error().message();
    }
    vm->kill();
    phase.mark("agent error, minit's restart announced");
}

}  // namespace
}  // namespace activate::embedded
