// The A/B update pipeline, ordered so that a crash at any point leaves the running slot bootable
// and never boots a half-written one: the target's boot entry is disabled before its slot is
// touched and enabled only after everything is written and synced; BootOrder changes only at
// mark-good.
#include <activate/engine.hpp>
#include <activate/watchdog.hpp>

#include <sstream>

namespace activate {

Status Engine::run_update(const InstallRequest& request, bool detached_jump) {
    if (!payload_->uses_slots()) {
        // A non-slot payload without the stdio protocol: stage and jump only.
        ACTIVATE_ASSIGN(FileLock lock, take_lock());
        ACTIVATE_ASSIGN(Payload payload, payload_->prepare({}));
        ACTIVATE_TRY(activation_->stage(&payload, std::nullopt, boot_control_.get()));
        if (policy_.mode == ActivationMode::none) return {};
        return activation_->activate(policy_.delay, detached_jump);
    }
    ACTIVATE_ASSIGN(FileLock lock, take_lock());
    ACTIVATE_ASSIGN(SlotPair slots, payload_->slots());
    log_.info(std::string("running slot ") + slots.running.letter + ", installing into slot " +
              slots.target.letter);

    // Runs once the payload has checked the bundle and before it writes anything: a refused
    // bundle leaves the boot entries, BootNext and a staged kexec image exactly as they were.
    bool began = false;
    InstallRequest install = request;
    install.before_writing = [&]() -> Status {
        began = true;
        // An image staged by an earlier run may start the target slot, which is about to change.
        ACTIVATE_ASSIGN(bool loaded, sysroot_.kexec_loaded());
        if (loaded) {
            if (int err = sysroot_.kexec_unload())
                return errno_error(ErrorKind::activation,
                                   "unloading the kexec image staged earlier", err);
            log_.info("unloaded the kexec image staged earlier (its slot is about to change)");
        }
        return boot_control_->begin_install(slots.target);
    };
    ACTIVATE_TRY(payload_->install(slots.target, install));
    if (!began)
        return Error(ErrorKind::internal, "payload plugin \"" + policy_.payload.name +
                                              "\" installed without calling before_writing(): "
                                              "the target's boot entry was never disabled");
    ACTIVATE_TRY(boot_control_->finish_install(slots.target));
    log_.info(std::string("slot ") + slots.target.letter + " written and enabled");

    Payload payload;
    if (activation_->needs_kernel()) {
        PayloadRequest prepare_request;
        prepare_request.slot = slots.target;
        ACTIVATE_ASSIGN(payload, payload_->prepare(prepare_request));
        // A kexec'd kernel gets the watchdog and panic= parameters on its command line.
        if (policy_.mode == ActivationMode::kexec) {
            ACTIVATE_ASSIGN(payload.cmdline,
                            cmdline_with_hang_protection(payload.cmdline, policy_.watchdog));
        }
    }
    ACTIVATE_TRY(activation_->stage(&payload, slots.target, boot_control_.get()));
    if (policy_.mode == ActivationMode::none) {
        log_.info("activation_mode none: slot installed and staged, not jumping");
        return {};
    }
    Status armed = arm_watchdog_before_jump(sysroot_, policy_.watchdog, policy_.mode, log_);
    if (!armed.ok()) return undo_staging(std::move(armed).error());
    // The last line before the machine leaves this system: an operator reading the console (and
    // the switch-time benchmark) sees what happens next and when.
    log_.info(std::string("activating slot ") + slots.target.letter + " by " +
              to_string(policy_.mode) +
              (policy_.delay.count() > 0 ? " in " + std::to_string(policy_.delay.count()) + " ms"
                                         : " now"));
    Status activated = activation_->activate(policy_.delay, detached_jump);
    if (!activated.ok()) {
        disarm_watchdog_after_failed_jump(sysroot_, policy_.watchdog, log_);
        return undo_staging(std::move(activated).error());
    }
    return activated;
}

Status Engine::mark_good() {
    if (!payload_->uses_slots() || !boot_control_)
        return Error(ErrorKind::policy, policy_.file + ": mark-good needs a slot payload and a "
                                                       "boot_control section");
    ACTIVATE_ASSIGN(FileLock lock, take_lock());
    ACTIVATE_ASSIGN(SlotPair slots, payload_->slots());
    ACTIVATE_TRY(boot_control_->mark_good(slots.running));
    log_.info(std::string("slot ") + slots.running.letter + " marked good");
    return {};
}

Result<std::string> Engine::status_json() const {
    if (!payload_->uses_slots() || !boot_control_)
        return Error(ErrorKind::policy, policy_.file + ": status needs a slot payload and a "
                                                       "boot_control section");
    ACTIVATE_ASSIGN(SlotPair slots, payload_->slots());
    ACTIVATE_ASSIGN(std::string boot, boot_control_->status_json(slots));
    ACTIVATE_ASSIGN(bool kexec_loaded, sysroot_.kexec_loaded());
    std::ostringstream out;
    out << "{\"running_slot\":\"" << slots.running.letter << "\",\"target_slot\":\""
        << slots.target.letter << "\",\"kexec_loaded\":" << (kexec_loaded ? "true" : "false")
        << ",\"boot\":" << boot << "}";
    return out.str();
}

}  // namespace activate
