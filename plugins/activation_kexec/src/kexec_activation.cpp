// Staging and jumping. Nothing here touches the system directly: kexec_file_load, the unload and
// the jump go through the engine's Machine, which records them under a sysroot.
#include <linux/kexec.h>

#include <activate/kernel_cmdline.hpp>
#include <activation_kexec/acpi_rsdp.hpp>
#include <activation_kexec/kexec_activation.hpp>
#include <activation_kexec/kexec_errors.hpp>
#include <filesystem>
#include <thread>

namespace activate::kexec {
namespace {

constexpr const char* kSystab = "/sys/firmware/efi/systab";

}  // namespace

Result<std::string> cmdline_with_acpi_rsdp(const std::string& cmdline, std::string_view systab,
                                           std::vector<std::string>* warnings) {
    AcpiRsdp rsdp = acpi_rsdp_from_systab(systab);
    warnings->insert(warnings->end(), rsdp.warnings.begin(), rsdp.warnings.end());
    if (!rsdp.address) {
        warnings->push_back(std::string(kSystab) +
                            " names no ACPI table; the new kernel gets no acpi_rsdp=");
        return cmdline;
    }
    KernelCmdline parsed = parse_kernel_cmdline(cmdline);
    for (const KernelParam& p : parsed.params) {
        if (p.name == "acpi_rsdp") return cmdline;  // the payload chose one; keep it
    }
    parsed.params.push_back(KernelParam{"acpi_rsdp", *rsdp.address});
    auto printed = format_kernel_cmdline(parsed);
    if (!printed.ok())
        return std::move(printed).error().with_context("adding acpi_rsdp= to the command line");
    return printed;
}

Result<std::string> KexecActivation::staged_cmdline(const std::string& cmdline) const {
    // Only EFI systems have the file; on BIOS systems the kernel scans for the RSDP itself.
    if (!sysroot_.exists(kSystab)) return cmdline;
    ACTIVATE_ASSIGN(std::string systab, sysroot_.read_file(kSystab, 64 << 10));
    std::vector<std::string> warnings;
    ACTIVATE_ASSIGN(std::string out, cmdline_with_acpi_rsdp(cmdline, systab, &warnings));
    for (const std::string& w : warnings) log_.warning(w);
    return out;
}

Status KexecActivation::stage(StageRequest& request) {
    staged_ = false;
    const std::optional<Payload>& payload = request.payload;
    if (!payload || !payload->kernel.valid())
        return Error(ErrorKind::policy,
                     "the kexec activation needs a payload with a kernel; use a payload source "
                     "that provides one (embedded or uki)");
    const std::string what = payload->description.empty() ? "the payload" : payload->description;
    ACTIVATE_ASSIGN(std::string cmdline, staged_cmdline(payload->cmdline));
    const bool has_initramfs = payload->initramfs.valid();
    // kexec_file_load(2): without an initramfs the fd is ignored and this flag is required.
    const unsigned long flags = has_initramfs ? 0 : KEXEC_FILE_NO_INITRAMFS;
    const int err = machine_.kexec_file_load(
        payload->kernel.get(), has_initramfs ? payload->initramfs.get() : -1, cmdline, flags);
    if (err != 0)
        return kexec_error(err, sysroot_, "kexec_file_load",
                           {cmdline.size(), payload->kernel.get(),
                            has_initramfs ? payload->initramfs.get() : -1})
            .with_context("staging " + what);
    staged_ = true;
    log_.info("staged " + what + " for kexec" + (has_initramfs ? "" : " (no initramfs)") +
              " with command line \"" + cmdline + "\"");
    return {};
}

Status KexecActivation::unstage() {
    if (!staged_) return {};
    staged_ = false;
    if (const int err = machine_.kexec_unload(); err != 0)
        return kexec_error(err, sysroot_, "kexec_file_load(KEXEC_FILE_UNLOAD)", {})
            .with_context("unloading the staged kexec image");
    log_.info("unloaded the staged kexec image");
    return {};
}

Status KexecActivation::activate(std::chrono::milliseconds delay, bool detached) {
    if (!staged_)
        return Error(ErrorKind::internal,
                     "refusing to kexec: no kernel was staged by this process (stage() did not "
                     "run, failed, or was undone), so a jump could start an image someone else "
                     "loaded");
    auto loaded = machine_.kexec_loaded();
    if (loaded.ok() && !*loaded)
        return Error(ErrorKind::activation,
                     "refusing to kexec: the staged image is no longer loaded "
                     "(/sys/kernel/kexec_loaded is 0; did something run kexec -u?); stage again");
    if (!loaded.ok()) log_.warning(loaded.error().message() + "; jumping anyway");
    if (detached) {
        ACTIVATE_TRY(machine_.jump_detached(JumpAction::kexec, delay));
        log_.info("kexec in " + std::to_string(delay.count()) + " ms (detached second stage)");
        return {};
    }
    std::this_thread::sleep_for(delay);
    return machine_.jump(JumpAction::kexec);
}

std::vector<PlanStep> KexecActivation::plan_stage() const {
    return {
        {"load the payload's kernel, initramfs and command line (plus acpi_rsdp= from the EFI "
         "system table) with kexec_file_load",
         {kSystab, "/proc/sys/kernel/kexec_load_disabled", "/sys/kernel/security/lockdown"},
         {"kexec_file_load(2)"}},
    };
}

std::vector<PlanStep> KexecActivation::plan_activate() const {
    return {
        {"jump into the staged kernel: sync, reboot(LINUX_REBOOT_CMD_KEXEC)",
         {"/sys/kernel/kexec_loaded"},
         {"sync(2)", "reboot(LINUX_REBOOT_CMD_KEXEC)"}},
    };
}

}  // namespace activate::kexec
