// Activation by firmware reboot: the engine's boot-next step names the target slot's entry in
// BootNext (UEFI 2.10 §3.1.2, the boot manager tries BootNext once, then deletes it); this
// strategy unloads any staged kexec image so the reboot really goes through the firmware, and
// unmounts the ESP before the jump.
#pragma once

#include <activate/plugin_api.hpp>
#include <optional>
#include <string>

namespace activate::efi {

class RebootActivation : public ActivationStrategy {
  public:
    RebootActivation(const Sysroot& sysroot, const Machine& machine, Log log)
        : sysroot_(sysroot), machine_(machine), log_(std::move(log)) {}

    std::vector<ActivationModeInfo> modes() const override {
        return {{"reboot", Handover::firmware_boot}};
    }
    Status stage(StageRequest& request) override;
    Status unstage() override;
    Status activate(std::chrono::milliseconds delay, bool detached) override;
    std::vector<PlanStep> plan_stage() const override;
    std::vector<PlanStep> plan_activate() const override;

  private:
    const Sysroot& sysroot_;
    const Machine& machine_;
    Log log_;
    bool staged_ = false;  // set by a successful stage()
    std::string esp_mount_;
};

}  // namespace activate::efi
