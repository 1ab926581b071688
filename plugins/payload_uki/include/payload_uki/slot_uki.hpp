// Makes a UKI file fit to boot one slot, by firmware or by kexec (docs/bundle-format.md "Slot
// UKIs"): it must be a UKI, and its .cmdline must name the slot on its own. A single UKI shipped
// for both slots has cmdline_placeholder patched in place; a signed one cannot be patched.
#pragma once

#include <activate/log.hpp>
#include <activate/result.hpp>
#include <cstdint>
#include <payload_uki/config.hpp>
#include <string>

namespace activate::uki {

struct SlotUki {
    std::string cmdline;   // the finished .cmdline, as the slot will boot it
    bool patched = false;  // the placeholder was replaced in the file
};

// Checks the `size`-byte UKI in `fd` (open read-write; `name` names it in messages) for slot
// `slot` ('A' or 'B'): a PE with the UKI sections (locate_uki_sections), a .cmdline without
// control characters (finish_cmdline) that names the slot (check_cmdline_names_slot).
// With `patch` (a single UKI for either slot) every cmdline_placeholder in .cmdline is first
// replaced by cmdline_replacement for the slot, in place (pwrite; same length, which read_config
// enforces), unless the UKI carries an Authenticode signature, which the patch would break: that
// is refused. Errors are ErrorKind::input; the caller syncs the file.
Result<SlotUki> make_slot_uki(int fd, uint64_t size, char slot, bool patch,
                              const UkiSourceConfig& config, const std::string& name,
                              const Log& log);

}  // namespace activate::uki
