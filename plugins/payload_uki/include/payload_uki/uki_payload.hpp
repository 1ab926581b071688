// Turns a slot's UKI on the ESP into a kexec payload: .linux as the kernel, .ucode followed by
// .initrd as the initramfs, .cmdline (cleaned, as written) as the command line, each
// kernel/initramfs in a sealed memfd. The UKI must name its slot, as a firmware boot needs.
#pragma once

#include <activate/log.hpp>
#include <activate/plugin_api.hpp>
#include <activate/sysroot.hpp>
#include <payload_uki/config.hpp>

namespace activate::uki {

// The system path of a slot's UKI: "<esp_mount>/<uki_path>".
std::string uki_system_path(const Slot& slot);

// Refuses (ErrorKind::input) a UKI whose .cmdline is missing, holds control characters or does
// not name `slot` (check_cmdline_names_slot), before anything is copied.
Result<Payload> load_uki_payload(const Sysroot& sysroot, const Slot& slot,
                                 const UkiSourceConfig& config, const Log& log);

}  // namespace activate::uki
