// Issue 6: how long the switch into a newly installed slot takes on a real guest, kexec vs a
// firmware reboot with EFI BootNext, measured in the same run on the same machine model: from
// activate's last line before the jump to the new slot's first console line (test/e2e/ab/
// switch_time.hpp). Each run boots OVMF under TCG (or KVM where it works): about a minute each.
// --debian does the same on the stock Debian guest of test/e2e/distro (issue 15 §3): Debian's
// kernel and 30 MB initrd, and systemd, on both sides of the switch; minutes per run.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench_support.hpp"
#include "switch_time.hpp"
#ifdef SWITCH_BENCH_DEBIAN
#include "distro_switch_time.hpp"
#endif

using namespace activate::vm;

namespace {

#ifdef SWITCH_BENCH_DEBIAN
// Both modes on the stock Debian guest, alternating; medians of each figure.
int RunDebian(int iterations) {
    std::vector<double> to_systemd[2], to_unit[2];
    for (int i = 0; i < iterations; ++i) {
        for (SwitchMode mode : i % 2 == 0
                                   ? std::vector{SwitchMode::kexec, SwitchMode::efi_reboot}
                                   : std::vector{SwitchMode::efi_reboot, SwitchMode::kexec}) {
            const int m = mode == SwitchMode::kexec ? 0 : 1;
            DistroWorld world;
            auto init = world.Init(std::string("switch-bench-") + (m == 0 ? "kexec" : "efi"));
            auto t = init.ok() ? MeasureDistroSwitch(world, mode)
                               : activate::Result<DistroSwitchTiming>(init.error());
            if (!t.ok()) {
                std::fprintf(stderr, "switch_time_bench: Debian %s run failed: %s\n",
                             to_string(mode), t.error().message().c_str());
                return 1;
            }
            std::printf(
                "run %d Debian %-10s: to systemd %.2f s, to the test unit %.2f s "
                "(firmware boot of X %.1f s, install %.1f s)\n",
                i + 1, to_string(mode), t->to_systemd_s, t->to_unit_s, t->firmware_boot_s,
                t->install_s);
            std::fflush(stdout);
            to_systemd[m].push_back(t->to_systemd_s);
            to_unit[m].push_back(t->to_unit_s);
        }
    }
    using activate::bench::median;
    std::printf("accelerator: %s\n", to_string(ResolveAccel(Accel::automatic)));
    std::printf("Debian kexec activation -> systemd in the new slot:      %.2f s (median of %d)\n",
                median(to_systemd[0]), iterations);
    std::printf("Debian EFI reboot activation -> systemd in the new slot: %.2f s (median of %d)\n",
                median(to_systemd[1]), iterations);
    std::printf("Debian kexec activation -> the new slot's test unit:      %.2f s\n",
                median(to_unit[0]));
    std::printf("Debian EFI reboot activation -> the new slot's test unit: %.2f s\n",
                median(to_unit[1]));
    return 0;
}
#endif

}  // namespace

int main(int argc, char** argv) {
    int iterations = 2, image_mib = 16;
    bool debian = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if ((a == "--iterations" || a == "--image-mib") && i + 1 < argc) {
            (a == "--iterations" ? iterations : image_mib) = std::atoi(argv[++i]);
        } else if (a == "--debian") {
            debian = true;
        } else {
            std::fprintf(stderr,
                         "usage: switch_time_bench [--iterations N] [--image-mib M] [--debian]\n");
            return 2;
        }
    }
    if (debian) {
#ifdef SWITCH_BENCH_DEBIAN
        return RunDebian(iterations);
#else
        std::fprintf(stderr, "switch_time_bench: --debian needs test/e2e/distro in this build\n");
        return 2;
#endif
    }
    if (iterations < 1 || image_mib < 1 || image_mib > 24) {
        std::fprintf(stderr,
                     "switch_time_bench: need --iterations >= 1 and 1 <= --image-mib <= 24 "
                     "(the test disk's slots are 32 MiB)\n");
        return 2;
    }
    std::vector<double> kexec, reboot;
    for (int i = 0; i < iterations; ++i) {
        // Alternate the order so that a machine getting busier or quieter favours neither.
        for (SwitchMode mode : i % 2 == 0
                                   ? std::vector{SwitchMode::kexec, SwitchMode::efi_reboot}
                                   : std::vector{SwitchMode::efi_reboot, SwitchMode::kexec}) {
            AbWorld world;
            auto init = world.Init(std::string("switch-bench-") +
                                   (mode == SwitchMode::kexec ? "kexec" : "efi"));
            auto t = init.ok() ? MeasureSwitch(world, mode, image_mib)
                               : activate::Result<SwitchTiming>(init.error());
            if (!t.ok()) {
                std::fprintf(stderr, "switch_time_bench: %s run failed: %s\n", to_string(mode),
                             t.error().message().c_str());
                return 1;
            }
            std::printf("run %d %-10s: switch %.2f s (firmware boot of X %.1f s, install %.1f s)\n",
                        i + 1, to_string(mode), t->switch_s, t->firmware_boot_s, t->install_s);
            std::fflush(stdout);
            (mode == SwitchMode::kexec ? kexec : reboot).push_back(t->switch_s);
        }
    }
    const double k = activate::bench::median(kexec), r = activate::bench::median(reboot);
    std::printf("accelerator: %s\n", to_string(ResolveAccel(Accel::automatic)));
    std::printf("kexec activation -> new slot's first line:      %.2f s (median of %d)\n", k,
                iterations);
    std::printf("EFI reboot activation -> new slot's first line: %.2f s (median of %d)\n", r,
                iterations);
    std::printf("ratio kexec / reboot: %.2f (kexec is %.1fx faster)\n", k / r, r / k);
    return 0;
}
