// One A/B update timed on the stock Debian guest, for switch_time_bench --debian (issue 15 §3):
// the same measurement as switch_time.hpp, with Debian's kernel, its 30 MB initramfs-tools initrd
// and systemd on both sides of the switch, and the engine installed from this build's package.
#pragma once

#include <switch_time.hpp>

#include "distro_world.hpp"

namespace activate::vm {

struct DistroSwitchTiming {
    double firmware_boot_s = 0;  // QEMU start to X's test unit (OVMF, UKI, kernel, initrd, systemd)
    double install_s = 0;        // "installing into slot B" to "slot B written and enabled"
    // From "activating slot B by ..." (activate's last line before the jump) to systemd's
    // "Welcome to Debian" in slot B (kernel, initrd unpack, initramfs mounting B's root), and to
    // the test unit's first line there (systemd's boot up to the unit, after assess).
    double to_systemd_s = 0;
    double to_unit_s = 0;
};

// Runs in `world` (Init() done): OVMF boots X (packaged) from slot A, which marks A good and
// installs Y into B with the shipped policy of `mode`, in one QEMU run that resets in place.
Result<DistroSwitchTiming> MeasureDistroSwitch(DistroWorld& world, SwitchMode mode);

}  // namespace activate::vm
