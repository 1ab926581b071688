// The "kexec" activation: stages the payload's kernel with kexec_file_load(2) and later jumps
// into it with reboot(LINUX_REBOOT_CMD_KEXEC), both through the engine's Machine; files (the EFI
// system table) through the Sysroot.
#pragma once

#include <activate/plugin_api.hpp>
#include <string>

namespace activate::kexec {

// `cmdline` plus acpi_rsdp=<address> when `systab` (the content of /sys/firmware/efi/systab)
// names one and the line has no acpi_rsdp= yet. Warnings about skipped systab lines are
// appended to `warnings`.
Result<std::string> cmdline_with_acpi_rsdp(const std::string& cmdline, std::string_view systab,
                                           std::vector<std::string>* warnings);

class KexecActivation : public ActivationStrategy {
  public:
    KexecActivation(const Sysroot& sysroot, const Machine& machine, Log log)
        : sysroot_(sysroot), machine_(machine), log_(std::move(log)) {}

    std::vector<ActivationModeInfo> modes() const override {
        return {{"kexec", Handover::staged_kernel}};
    }
    Status stage(StageRequest& request) override;
    Status unstage() override;
    Status activate(std::chrono::milliseconds delay, bool detached) override;
    std::vector<PlanStep> plan_stage() const override;
    std::vector<PlanStep> plan_activate() const override;

  private:
    Result<std::string> staged_cmdline(const std::string& cmdline) const;

    const Sysroot& sysroot_;
    const Machine& machine_;
    Log log_;
    // Set only by a successful stage() in this process: the one thing that allows a jump.
    bool staged_ = false;
};

}  // namespace activate::kexec
