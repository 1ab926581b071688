// Issue 13, "Benchmark": what the boot-assessment safety net costs when the new slot is bad. In
// one OVMF guest that resets in place, slot A's X (a) reboots itself through the firmware — the
// baseline, a plain firmware reboot of the good slot — and (b) installs Y into slot B and
// kexecs it; Y's health check never finishes, so its boot-time `activate assess` gives up at the
// assessment deadline and sends the machine back to A through BootNext and a firmware reboot.
// Both are timed on the host from the guest's last line before the jump to X's first line after
// it; the expected overhead of (b) over (a) is the deadline (which counts from the jump and so
// also covers Y's own boot).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ab_world.hpp"
#include "bench_support.hpp"

using namespace activate::vm;

namespace {

double seconds_between(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double>(to - from).count();
}

// Every boot of X runs assess first (as the shipped unit does), then the next step not yet done,
// remembered on the ESP: `first` and `second` are "reboot" and "update" in the order of this
// iteration. Y's only check sleeps past the deadline.
std::string Scenario(int deadline_s, const std::string& first, const std::string& second) {
    return R"SH(
P=/tmp/assess.yaml
# The shipped policy's own assessment section replaced by the benchmark's.
awk '/^assessment:/ { skip = 1; next } skip && /^[^ #]/ { skip = 0 } !skip' $KEXEC > $P
printf '\nassessment:\n  deadline: )SH" +
           std::to_string(deadline_s) +
           R"SH(s\n  checks:\n    - {name: never-ready, command: [sleep, "3600"]}\n' >> $P
step() {
  case $1 in
    reboot) echo "BENCH plain reboot"; sync; reboot -f ;;
    update) act --policy $P --bundle $URL/Y.zip ;;
  esac
}
act assess --policy $P
case $V in
X) if [ ! -e /esp/bench-1 ]; then touch /esp/bench-1; sync; step )SH" +
           first + R"SH(
   elif [ ! -e /esp/bench-2 ]; then touch /esp/bench-2; sync; step )SH" +
           second + R"SH(
   else echo "BENCH done"; fi ;;
esac
)SH";
}

struct Timing {
    double plain_s = 0, fallback_s = 0;
};

// The next boot, which must be X in slot A: when its first TESTOS line came.
activate::Result<Clock::time_point> NextX(Machine& vm) {
    ACTIVATE_ASSIGN(auto b, AbWorld::WaitBooted(vm));
    if (b.variant != "X" || b.slot != "A")
        return activate::Error(activate::ErrorKind::internal,
                               "expected X in slot A, booted " + b.variant + " in " + b.slot);
    return b.arrived;
}

activate::Result<Timing> Measure(int iteration, int deadline_s, bool reboot_first) {
    AbWorld world;
    ACTIVATE_TRY(world.Init("fallback-bench-" + std::to_string(iteration)));
    ACTIVATE_ASSIGN(fs::path uki, world.Uki("Y", "X"));
    ACTIVATE_TRY(world.MakeDisk());
    ACTIVATE_TRY(world.MakeBundle("Y", uki, "Y", 1 << 20));
    ACTIVATE_TRY(world.Scenario(Scenario(deadline_s, reboot_first ? "reboot" : "update",
                                         reboot_first ? "update" : "reboot")));
    ACTIVATE_ASSIGN(auto vm, world.Boot("run", /*reboot_ends_run=*/false));
    ACTIVATE_ASSIGN(auto first_boot, NextX(*vm));
    (void)first_boot;
    Timing t;
    for (int step = 0; step < 2; ++step) {
        const bool plain = (step == 0) == reboot_first;
        if (plain) {
            ACTIVATE_ASSIGN(auto jump, vm->wait_for_line("^BENCH plain reboot$", kStep));
            ACTIVATE_ASSIGN(auto back, NextX(*vm));
            t.plain_s = seconds_between(jump.arrived, back);
        } else {
            ACTIVATE_ASSIGN(auto jump, vm->wait_for_line("activating slot B by kexec now", kStep));
            ACTIVATE_ASSIGN(auto y, AbWorld::WaitBooted(*vm));
            if (y.variant != "Y")
                return activate::Error(activate::ErrorKind::internal, "kexec ran " + y.variant);
            ACTIVATE_TRY(vm->wait_for_line("slot B failed its assessment", kStep));
            ACTIVATE_ASSIGN(auto back, NextX(*vm));
            t.fallback_s = seconds_between(jump.arrived, back);
        }
    }
    ACTIVATE_TRY(vm->wait_for_line("^BENCH done$", kStep));
    ACTIVATE_TRY(vm->wait_for_power_off(kStep));
    return t;
}

}  // namespace

int main(int argc, char** argv) {
    int iterations = 2, deadline_s = 30;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if ((a == "--iterations" || a == "--deadline") && i + 1 < argc) {
            (a == "--iterations" ? iterations : deadline_s) = std::atoi(argv[++i]);
        } else {
            std::fprintf(stderr, "usage: fallback_time_bench [--iterations N] [--deadline S]\n");
            return 2;
        }
    }
    if (iterations < 1 || deadline_s < 5) {
        std::fprintf(stderr,
                     "fallback_time_bench: need --iterations >= 1 and --deadline >= 5 (seconds; "
                     "the new slot's kernel must boot within it)\n");
        return 2;
    }
    std::vector<double> plain, fallback;
    for (int i = 0; i < iterations; ++i) {
        // Alternate the order so that a machine getting busier or quieter favours neither.
        auto t = Measure(i + 1, deadline_s, /*reboot_first=*/i % 2 == 0);
        if (!t.ok()) {
            std::fprintf(stderr, "fallback_time_bench: run %d failed: %s\n", i + 1,
                         t.error().message().c_str());
            return 1;
        }
        std::printf(
            "run %d: plain firmware reboot of A %.2f s, kexec into failing B and back %.2f s\n",
            i + 1, t->plain_s, t->fallback_s);
        std::fflush(stdout);
        plain.push_back(t->plain_s);
        fallback.push_back(t->fallback_s);
    }
    const double p = activate::bench::median(plain), f = activate::bench::median(fallback);
    std::printf("accelerator: %s\n", to_string(ResolveAccel(Accel::automatic)));
    std::printf("plain firmware reboot of slot A -> A's first line:   %.2f s (median of %d)\n", p,
                iterations);
    std::printf("jump into failing slot B -> back on A's first line:  %.2f s (median of %d)\n", f,
                iterations);
    std::printf("ratio fallback / plain reboot: %.2f\n", f / p);
    std::printf(
        "overhead %.2f s; expected the deadline, %d s (it counts from the jump and "
        "covers B's boot): %+.2f s beyond it\n",
        f - p, deadline_s, f - p - deadline_s);
    return 0;
}
