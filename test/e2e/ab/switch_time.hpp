// One A/B update timed on a real guest, for the switch-time benchmark and the demo: OVMF boots X
// from slot A, X installs Y (a signed bundle served over HTTP) into slot B and activates it by
// kexec or by EFI BootNext + reboot, in one QEMU run that resets in place like a real machine.
#pragma once

#include <string>

#include "ab_world.hpp"

namespace activate::vm {

enum class SwitchMode { kexec, efi_reboot };
const char* to_string(SwitchMode mode);

struct SwitchTiming {
    double firmware_boot_s = 0;  // QEMU start to X's first TESTOS line (OVMF, UKI, kernel, init)
    double install_s = 0;        // "installing into slot B" to "slot B written and enabled"
    size_t image_bytes = 0;      // the slot image in the bundle
    // "activating slot B by ..." (activate's last line before the jump) to Y's first line: for
    // kexec the kernel's own handover; for reboot also the firmware (reset, OVMF, BootNext).
    double switch_s = 0;
};

// Runs in `world` (Init() done); `image_mib` is the size of Y's slot image.
Result<SwitchTiming> MeasureSwitch(AbWorld& world, SwitchMode mode, int image_mib);

}  // namespace activate::vm
