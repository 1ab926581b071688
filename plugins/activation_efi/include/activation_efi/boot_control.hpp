// BootControl for A/B slots on UEFI: each slot has a Boot#### entry pointing at its UKI; an
// install disables the target's entry until the slot is complete, BootNext tries the new slot
// once, and mark-good makes the running slot the first in BootOrder (UEFI 2.10 §3.1).
#pragma once

#include <activate/plugin_api.hpp>
#include <activation_efi/boot_entries.hpp>
#include <string>

namespace activate::efi {

struct BootControlSettings {
    // Description of created entries; "{slot}" becomes the slot letter.
    std::string description = "Metropolis Slot {slot}";
    std::string efivarfs = std::string(kDefaultEfivarfs);
};

// Reads and validates the "efi" boot control settings (calls finish()).
Result<BootControlSettings> read_boot_control_settings(Settings& settings);

class EfiBootControl : public BootControl {
  public:
    // `writer` is the efivarfs fault seam for tests (see Efivarfs).
    EfiBootControl(const Sysroot& sysroot, Log log, BootControlSettings settings,
                   Efivarfs::Writer writer = ::write);

    Status begin_install(const Slot& target) override;
    Status finish_install(const Slot& target) override;
    Status boot_next(const Slot& target) override;
    Status clear_boot_next() override;
    Status mark_good(const Slot& running) override;
    Status add_to_boot_order_after(const Slot& target, const Slot& good) override;
    Result<std::optional<std::string>> entry_name(const Slot& slot) const override;
    Result<std::optional<std::string>> boot_current() const override;
    Result<std::string> status_json(const SlotPair& slots) const override;
    std::vector<PlanStep> plan_begin_install() const override;
    std::vector<PlanStep> plan_finish_install() const override;
    std::vector<PlanStep> plan_boot_next() const override;
    std::vector<PlanStep> plan_add_to_boot_order_after() const override;

    // The description an entry created for `slot` gets.
    std::string description_for(const Slot& slot) const;

  private:
    // The slot's entry, created with `attributes` when missing.
    Result<BootEntry> find_or_create(const Slot& slot, uint32_t attributes);
    // Sets or clears LOAD_OPTION_ACTIVE; writes only when that changes something.
    Status set_active(BootEntry& entry, const Slot& slot, bool active);

    Log log_;
    BootControlSettings settings_;
    BootEntries entries_;
};

}  // namespace activate::efi
