// Where the A/B slots live: the ESP and both system partitions found in the disk's GPT, and the
// running slot named by the kernel command line. Read-only.
#pragma once

#include <activate/log.hpp>
#include <activate/plugin_api.hpp>
#include <activate/result.hpp>
#include <activate/sysroot.hpp>
#include <optional>
#include <payload_uki/config.hpp>
#include <payload_uki/gpt.hpp>
#include <string_view>

namespace activate::uki {

// Slot::state_dir: the ESP directory of the version record (`esp` + the directory part of
// `version_file`, "/esp/EFI/activate" by default), where the engine keeps its activation record:
// the one file system both slots share and every boot mounts.
std::string state_dir(const UkiSourceConfig& config);

// The ESP (the one partition of type kEspTypeGuid) and the system partitions named label_a and
// label_b, as slots A and B. Missing or duplicated partitions are errors listing what is there.
Result<std::pair<Slot, Slot>> slots_from_gpt(const GptTable& table, const UkiSourceConfig& config);

// The letter ('A' or 'B') that running_slot_regex's group 1 captures in `text` (up to a NUL);
// nullopt when the pattern does not match. A letter other than A/B, or matches naming both slots,
// are errors starting with `where`.
Result<std::optional<char>> slot_letter_in(std::string_view text, const UkiSourceConfig& config,
                                           const std::string& where);

// The running slot named by /proc/cmdline (`cmdline`); no match is an error naming the file and
// the pattern.
Result<char> running_slot_letter(std::string_view cmdline, const UkiSourceConfig& config);

// The rule every slot UKI follows (docs/bundle-format.md "Slot UKIs"): the UKI booting slot
// `slot`, by firmware or by kexec, names that slot on its own. Its finished .cmdline (see
// finish_cmdline) must not hold cmdline_placeholder, and running_slot_pattern must match it and
// yield `slot` — the same test that finds the running slot after that boot. Errors
// (ErrorKind::input) start with `file`, quote the command line and end with `remedy`.
Status check_cmdline_names_slot(std::string_view cmdline, char slot, const UkiSourceConfig& config,
                                const std::string& file, const std::string& remedy);

// Opens `config.disk` read-only through the sysroot and reads its GPT (warnings are logged).
Result<GptTable> read_disk_gpt(const Sysroot& sysroot, const UkiSourceConfig& config,
                               const Log& log);

// All of the above: running and target slot from the sysroot's disk and /proc/cmdline.
Result<SlotPair> discover_slots(const Sysroot& sysroot, const UkiSourceConfig& config,
                                const Log& log);

}  // namespace activate::uki
