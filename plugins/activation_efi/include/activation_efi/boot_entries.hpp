// The boot manager's variables (UEFI 2.10 §3.1.1, §3.3): Boot#### load options, BootOrder (an
// array of u16 indexes), BootNext and BootCurrent (one u16), and how an A/B slot maps onto a
// Boot#### entry: a Hard Drive node naming the ESP by its GPT partition GUID, followed by the
// File Path of the slot's UKI.
#pragma once

#include <activate/log.hpp>
#include <activate/plugin_api.hpp>
#include <activate/result.hpp>
#include <activation_efi/efivars.hpp>
#include <activation_efi/load_option.hpp>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace activate::efi {

// "Boot0003": the variable name of a load option, upper-case hex as §3.3 writes it.
std::string boot_entry_name(uint16_t index);
// "Boot000a" or "Boot000A" -> 10; nullopt for anything but "Boot" and four hex digits.
std::optional<uint16_t> parse_boot_entry_name(std::string_view name);

// BootOrder data: an array of u16. `file` names the variable file in errors (odd length).
Result<std::vector<uint16_t>> decode_boot_order(std::string_view data, std::string_view file);
std::string encode_boot_order(const std::vector<uint16_t>& order);
// BootNext / BootCurrent data: exactly one u16.
Result<uint16_t> decode_boot_index(std::string_view data, std::string_view file);
std::string encode_boot_index(uint16_t index);

// `order` with `index` first and every other entry kept in its order (duplicates of `index`
// dropped, unrelated entries never).
std::vector<uint16_t> order_with_first(const std::vector<uint16_t>& order, uint16_t index);
// `order` with `index` right after `after` (which stays where it is) and every other entry kept
// in its order. When `after` is not listed, both go last, `after` first: the slot on trial never
// comes before the good one.
std::vector<uint16_t> order_with_after(const std::vector<uint16_t>& order, uint16_t index,
                                       uint16_t after);

// The firmware's path of a slot's UKI: "EFI/metropolis/boot-b.efi" -> "\EFI\metropolis\boot-b.efi".
Result<std::string> efi_file_path(std::string_view uki_path);
// Whether the option boots `slot`: a GPT Hard Drive node with the ESP's partition GUID followed
// by File Path node(s) naming the UKI (compared case-insensitively, FAT being case-insensitive).
bool boots_slot(const LoadOption& option, const Slot& slot);
// The load option for `slot`: HD(esp)/File(uki)/End, no optional data.
Result<LoadOption> slot_load_option(const Slot& slot, std::string_view description,
                                    uint32_t attributes);

struct BootEntry {
    uint16_t index = 0;
    LoadOption option;
    std::string name() const { return boot_entry_name(index); }
};

// Reads and writes the boot manager's variables of one efivarfs.
class BootEntries {
  public:
    BootEntries(Efivarfs vars, Log log) : vars_(std::move(vars)), log_(std::move(log)) {}

    const Efivarfs& variables() const { return vars_; }

    // Every Boot#### variable that decodes, by index. One that does not (truncated, garbage, bad
    // attributes) is skipped with a warning naming its file: the firmware owns those.
    Result<std::vector<BootEntry>> list() const;
    // Indexes of all Boot#### variables present, readable or not.
    Result<std::set<uint16_t>> present() const;
    // The lowest-numbered entry that boots `slot` (duplicates are logged).
    Result<std::optional<BootEntry>> find(const Slot& slot) const;
    // Creates an entry for `slot` at the lowest index that has neither a Boot#### variable nor a
    // BootOrder position. BootOrder is left alone: BootNext reaches any entry (UEFI 2.10 §3.1.2),
    // and only mark-good decides what cold boots run, so a crash before it returns to the old
    // slot.
    Result<BootEntry> create(const Slot& slot, std::string_view description,
                             uint32_t attributes) const;
    Status write(const BootEntry& entry) const;

    // Empty when BootOrder does not exist.
    Result<std::vector<uint16_t>> boot_order() const;
    Status set_boot_order(const std::vector<uint16_t>& order) const;
    Result<std::optional<uint16_t>> boot_next() const;
    Status set_boot_next(uint16_t index) const;
    Status clear_boot_next() const;
    Result<std::optional<uint16_t>> boot_current() const;

  private:
    Result<std::optional<uint16_t>> read_index(std::string_view name) const;

    Efivarfs vars_;
    Log log_;
};

}  // namespace activate::efi
