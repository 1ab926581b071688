// The "efi" activation strategy (mode reboot): a firmware reboot into the slot the engine named
// in BootNext.
#include <activation_efi/reboot_activation.hpp>
#include <thread>

namespace activate::efi {

Status RebootActivation::stage(StageRequest& request) {
    staged_ = false;
    const std::optional<Slot>& target = request.target;
    if (!target)
        return Error(ErrorKind::policy,
                     "activation \"efi\" reboots into an A/B slot and needs a slot target; use a "
                     "slot store as the payload (payload: uki) or activation \"kexec\"");
    // A staged kexec image would take the reboot instead of the firmware
    // (Machine::reboot_would_be_hijacked). BootNext is the engine's (its boot-next step).
    if (Result<bool> unloaded = machine_.prevent_reboot_hijack(); !unloaded.ok())
        return unloaded.error().with_context("before a firmware reboot");
    staged_ = true;
    esp_mount_ = target->esp_mount;
    return {};
}

// The unloaded image stays unloaded: it would have hijacked a reboot into the running slot too.
Status RebootActivation::unstage() {
    staged_ = false;
    return {};
}

Status RebootActivation::activate(std::chrono::milliseconds delay, bool detached) {
    if (!staged_)
        return Error(ErrorKind::internal, "activation \"efi\": activate() called before stage()");
    // The recording machine flushes nothing: nothing outside the root may be touched.
    machine_.sync_file_systems();
    // The firmware (and the next boot) read the ESP; leave its FAT clean. Everything is synced,
    // so a busy ESP only costs a dirty bit: warn and go on rather than strand a set BootNext.
    if (!esp_mount_.empty()) {
        if (auto s = machine_.unmount(esp_mount_); !s.ok())
            log_.warning("could not unmount the ESP at " + esp_mount_ + " (" + s.error().message() +
                         "); rebooting anyway, its data is synced");
    }
    if (detached) return machine_.jump_detached(JumpAction::reboot, delay);
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    return machine_.jump(JumpAction::reboot);
}

std::vector<PlanStep> RebootActivation::plan_stage() const {
    return {{"unload any staged kexec image, so that reboot(2) goes through the firmware",
             {},
             {"kexec_file_load(KEXEC_FILE_UNLOAD)"}}};
}

std::vector<PlanStep> RebootActivation::plan_activate() const {
    return {
        {"sync, unmount the ESP, reboot through the firmware", {}, {"sync(2)", "reboot(2)"}},
    };
}

}  // namespace activate::efi
