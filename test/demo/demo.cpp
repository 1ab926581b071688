// The demo behind README's run command: both jobs of the engine on real guests, with a short
// timeline. A takeover (the static `takeover` binary on a configured source machine, then the
// embedded agent it kexecs into) and an A/B update activated both ways, by kexec and by EFI
// BootNext + firmware reboot. Exits non-zero when any step does not do what it should.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "switch_time.hpp"
#include "takeover_source.hpp"

namespace activate::vm {
namespace {

double seconds_between(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double>(to - from).count();
}

void say(const char* format, auto... args) {
    std::printf(format, args...);
    std::fflush(stdout);
}

Status Fail(const std::string& what) { return Error(ErrorKind::internal, what); }

Status DemoTakeover(const fs::path& work) {
    say("takeover: booting a source machine (Debian kernel + busybox; bond, VLAN, IPv4/IPv6)\n");
    const wire::TakeoverInit init = MakeTakeoverInit();
    const auto start = Clock::now();
    ACTIVATE_ASSIGN(auto vm, BootTakeoverSource(work, init, "demo-takeover-source"));
    ACTIVATE_ASSIGN(TakeoverRun run, WaitTakeover(*vm));
    wire::TakeoverResponse response;
    if (run.exit_code != 0 || !response.ParseFromString(run.response) || !response.has_success())
        return Fail("takeover exited " + std::to_string(run.exit_code) + ": " +
                    response.ShortDebugString());
    ACTIVATE_ASSIGN(auto agent, vm->wait_for_line("AGENT-(STARTED|ERROR) (.*)", seconds(300)));
    const auto report = nlohmann::json::parse(agent.groups[2], nullptr, false);
    if (agent.groups[1] != "STARTED" || report.is_discarded())
        return Fail("the agent did not start: " + agent.line);
    if (report.value("public_key", "") != Hex(response.success().key()) ||
        report.value("machine_id", "") != init.machine_id())
        return Fail("the agent's identity differs from the takeover response: " + agent.line);
    ACTIVATE_TRY(vm->wait_for_power_off(seconds(120)));

    say("takeover: source up and configured in %.1f s\n",
        seconds_between(start, run.configured.arrived));
    say("takeover: captured, staged and answered in %.1f s, agent up %.1f s later (1 s delay + "
        "kexec + agent boot)\n",
        seconds_between(run.configured.arrived, run.exited.arrived),
        seconds_between(run.exited.arrived, agent.arrived));
    for (const std::string& w : response.success().warning())
        say("takeover: warning: %s\n", w.c_str());
    say("takeover: agent reports machine %s, %zu interfaces, %zu nameservers, its key = the "
        "response's\n",
        init.machine_id().c_str(), report.value("interfaces", nlohmann::json::array()).size(),
        report.value("nameservers", nlohmann::json::array()).size());
    return {};
}

Result<SwitchTiming> DemoUpdate(SwitchMode mode, int image_mib) {
    say("update: OVMF boots X from slot A; X installs Y into slot B and activates it by %s\n",
        to_string(mode));
    AbWorld world;
    ACTIVATE_TRY(world.Init(std::string("demo-") + (mode == SwitchMode::kexec ? "kexec" : "efi")));
    ACTIVATE_ASSIGN(SwitchTiming t, MeasureSwitch(world, mode, image_mib));
    say("update: X up through OVMF in %.1f s; slot B written, %d MiB in %.1f s (%.1f MiB/s: "
        "download, SHA-256, write, fsync); %s to B %.1f s\n",
        t.firmware_boot_s, image_mib, t.install_s, image_mib / t.install_s, to_string(mode),
        t.switch_s);
    return t;
}

int Run() {
    const fs::path work = LogDir() / "demo";
    say("activate demo: guests run under %s (no working KVM here means software emulation)\n",
        to_string(ResolveAccel(Accel::automatic)));
    if (auto s = DemoTakeover(work / "takeover"); !s.ok()) {
        std::fprintf(stderr, "demo: takeover failed: %s\n", s.error().message().c_str());
        return 1;
    }
    constexpr int kImageMib = 16;
    auto kexec = DemoUpdate(SwitchMode::kexec, kImageMib);
    if (!kexec.ok()) {
        std::fprintf(stderr, "demo: kexec update failed: %s\n", kexec.error().message().c_str());
        return 1;
    }
    auto efi = DemoUpdate(SwitchMode::efi_reboot, kImageMib);
    if (!efi.ok()) {
        std::fprintf(stderr, "demo: EFI update failed: %s\n", efi.error().message().c_str());
        return 1;
    }
    say("switch: kexec to B %.1f s vs firmware reboot %.1f s (%.1fx faster)\n", kexec->switch_s,
        efi->switch_s, efi->switch_s / kexec->switch_s);
    say("guest consoles: %s\n", LogDir().c_str());
    return 0;
}

}  // namespace
}  // namespace activate::vm

int main() { return activate::vm::Run(); }
