// `activate assess`: judges the slot the last jump went to (docs/boot-assessment.md). The
// ordering rule, everywhere here: the activation record states the verdict and what is left to
// do (`pending`) before the firmware is touched or the machine reboots, and every step is
// repeatable, so a crash or kill -9 between any two steps is finished by the next assess.
#include <activate/engine.hpp>
#include <activate/health_check.hpp>
#include <activate/watchdog.hpp>
#include <cerrno>
#include <cstring>

namespace activate {

namespace {

std::string slot_name(char letter) { return std::string("slot ") + letter; }

std::string letter_of(char letter) { return std::string(1, letter); }

int64_t ms_between(WallTime from, WallTime to) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

// What the firmware variables say about a boot that did not come up in the target: facts only
// (BootNext is consumed by the firmware either way, so "ignored BootNext" and "the target reset
// before it was assessed" look the same from here).
std::string what_is_known(const Trial& t, const std::optional<std::string>& boot_current) {
    std::string out = "activated by " + t.mode + " at " + format_rfc3339(t.jumped_at);
    if (!boot_current) return out + "; BootCurrent unknown";
    out += "; the firmware booted " + *boot_current;
    if (t.previous_entry && *boot_current == *t.previous_entry)
        out += " (slot " + letter_of(t.previous) + "'s entry)";
    else if (t.target_entry && *boot_current == *t.target_entry)
        out += " (slot " + letter_of(t.target) + "'s entry)";
    if (t.handover == Handover::firmware_boot && t.target_entry && *boot_current != *t.target_entry)
        out += ", not " + *t.target_entry + " named by BootNext";
    return out;
}

}  // namespace

Result<std::string> Engine::record_path(const SlotPair& slots) const {
    if (slots.running.state_dir.empty())
        return Error(ErrorKind::internal,
                     "slot store \"" + policy_.payload.name +
                         "\" gave no state_dir for its slots: the activation record has no place");
    return ActivationRecord::path_in(slots.running.state_dir);
}

std::string Engine::boot_id() const {
    auto text = sysroot_.read_file("/proc/sys/kernel/random/boot_id", 256);
    if (!text.ok()) return "";
    std::string id = *text;
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    return id;
}

Status Engine::assess() {
    ACTIVATE_TRY(check_slot_update("assess"));
    ACTIVATE_ASSIGN(FileLock lock, take_lock());
    ACTIVATE_ASSIGN(SlotPair slots, slots_->slots());
    ACTIVATE_ASSIGN(const std::string path, record_path(slots));
    ACTIVATE_ASSIGN(ActivationRecord record, ActivationRecord::read(sysroot_, path));
    const char running = slots.running.letter;
    if (!record.trial) {
        log_.info("no activation on trial (" + path + " records none); running " +
                  slot_name(running));
        return {};
    }
    Trial& t = *record.trial;
    switch (t.state) {
        case TrialState::trying:
            if (running == t.target) return assess_running_target(record, slots, path);
            return end_trial_back_on_previous(record, slots, path, /*heal=*/true);

        case TrialState::good:
            if (t.pending == TrialPending::mark_good && running == t.target) {
                // The verdict was recorded, the boot order not yet changed (a crash between).
                ACTIVATE_TRY(boot_control_->mark_good(slots.running));
                t.pending = TrialPending::none;
                ACTIVATE_TRY(record.write(sysroot_, path));
                log_.info(slot_name(running) + " marked good (finishing the assessment of " +
                          format_rfc3339(t.assessed_at.value_or(t.jumped_at)) + ")");
                release_watchdog_after_assessment(*machine_, policy_.watchdog, log_);
                return {};
            }
            break;

        case TrialState::failed:
            if (t.pending != TrialPending::fallback) break;
            if (running == t.previous) {
                // The way back worked: the trial is over.
                t.pending = TrialPending::none;
                t.returned_at = WallClock::now();
                ACTIVATE_TRY(boot_control_->mark_good(slots.running));
                record.set_slot(running, SlotState::good, *t.returned_at);
                ACTIVATE_TRY(record.write(sysroot_, path));
                log_.warning("back on " + slot_name(running) + " after " + slot_name(t.target) +
                             " failed its assessment: " + t.reason);
                return {};
            }
            if (t.failed_boot_id.empty() || t.failed_boot_id == boot_id()) {
                // Still the boot that found the failure: the fallback was cut short.
                log_.warning("finishing the fallback from " + slot_name(t.target) +
                             " recorded at " + format_rfc3339(t.assessed_at.value_or(t.jumped_at)) +
                             ": " + t.reason);
                return fall_back(record, slots);
            }
            // A later boot of the failed slot: someone chose it (firmware menu, BootNext by
            // hand). It is not assessed again and not sent away again.
            log_.warning(slot_name(running) + " failed its assessment at " +
                         format_rfc3339(t.assessed_at.value_or(t.jumped_at)) + " (" + t.reason +
                         ") and was booted again; leaving it running unassessed. `activate "
                         "mark-good` keeps it; a reboot returns to " +
                         slot_name(t.previous));
            return {};
    }
    log_.info("no activation on trial (the last one, " + slot_name(t.target) + " at " +
              format_rfc3339(t.jumped_at) + ", ended " + to_string(t.state) + "); running " +
              slot_name(running));
    return {};
}

Status Engine::assess_running_target(ActivationRecord& record, const SlotPair& slots,
                                     const std::string& path) {
    Trial& t = *record.trial;
    const WallTime started = WallClock::now();
    const auto steady_start = std::chrono::steady_clock::now();
    // Wall clock across the jump (a firmware reboot keeps the RTC, a kexec the kernel's clock).
    const int64_t switch_ms = ms_between(t.jumped_at, started);
    if (switch_ms >= 0)
        t.switch_time_ms = switch_ms;
    else
        log_.warning("the clock is before the recorded jump (" + format_rfc3339(t.jumped_at) +
                     "); no switch time recorded");
    log_.info("assessing " + slot_name(t.target) + " (activated from " + letter_of(t.previous) +
              " by " + t.mode + " at " + format_rfc3339(t.jumped_at) +
              (t.switch_time_ms ? ", " + std::to_string(*t.switch_time_ms) + " ms ago" : "") +
              "; deadline " + format_rfc3339(t.deadline_at) + ")");

    auto current = boot_control_->boot_current();
    if (current.ok()) {
        t.boot_current = *current;
    } else {
        log_.warning("BootCurrent unknown: " + current.error().message());
    }
    if (t.handover == Handover::firmware_boot && t.boot_current && t.target_entry &&
        *t.boot_current != *t.target_entry) {
        const std::string note =
            "firmware booted " + *t.boot_current + " instead of " + *t.target_entry + " (BootNext)";
        log_.warning(note + "; the running system is still " + slot_name(t.target));
        t.warnings.push_back(note);
    } else if (t.handover == Handover::staged_kernel && t.boot_current) {
        log_.info("BootCurrent " + *t.boot_current +
                  " is from the firmware boot before the kexec; not compared");
    }

    // The deadline is wall-clock time from the jump; from here on it is measured on the
    // monotonic clock, so a clock step (NTP) during the checks does not move it.
    const auto remaining =
        std::chrono::duration_cast<std::chrono::milliseconds>(t.deadline_at - started);
    std::string failure;
    if (remaining.count() <= 0) {
        failure = "the assessment deadline " + format_rfc3339(t.deadline_at) +
                  " had passed when assess started";
    } else {
        for (const HealthCheck& check : policy_.assessment.checks) {
            const auto used = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - steady_start);
            const auto left = remaining - used;
            if (left.count() <= 0) {
                failure = "the assessment deadline " + format_rfc3339(t.deadline_at) +
                          " passed before check \"" + check.name + "\" ran";
                break;
            }
            const bool deadline_first = left < check.timeout;
            Status passed = run_health_check(
                check, deadline_first ? left : check.timeout,
                deadline_first ? "did not finish before the assessment deadline " +
                                     format_rfc3339(t.deadline_at)
                               : "timed out after " + describe_duration(check.timeout),
                log_);
            if (!passed.ok()) {
                failure = passed.error().message();
                break;
            }
        }
    }
    const WallTime now = WallClock::now();
    t.assessed_at = now;
    if (failure.empty()) {
        t.state = TrialState::good;
        t.pending = TrialPending::mark_good;
        record.set_slot(t.target, SlotState::good, now);
        ACTIVATE_TRY(record.write(sysroot_, path));
        ACTIVATE_TRY(boot_control_->mark_good(slots.running));
        t.pending = TrialPending::none;
        ACTIVATE_TRY(record.write(sysroot_, path));
        log_.info(
            slot_name(t.target) + " assessed good (" +
            std::to_string(policy_.assessment.checks.size()) + " check" +
            (policy_.assessment.checks.size() == 1 ? "" : "s") + " passed" +
            (t.switch_time_ms ? "; switch time " + std::to_string(*t.switch_time_ms) + " ms" : "") +
            ")");
        // Last: the verdict and the boot order are on disk, so a reset from here on boots this
        // slot. Until then the watchdog armed before the jump still guards the way back.
        release_watchdog_after_assessment(*machine_, policy_.watchdog, log_);
        return {};
    }
    t.state = TrialState::failed;
    t.reason = failure;
    t.pending = TrialPending::fallback;
    t.failed_boot_id = boot_id();
    record.set_slot(t.target, SlotState::failed, now, failure);
    ACTIVATE_TRY(record.write(sysroot_, path));
    return fall_back(record, slots);
}

Status Engine::fall_back(const ActivationRecord& record, const SlotPair& slots) {
    const Trial& t = *record.trial;
    const Slot& previous = slots.target;  // the running slot is the trial's target
    const std::string what = slot_name(t.target) + " failed its assessment (" + t.reason +
                             "); rebooting into " + slot_name(previous.letter);
    log_.error(what);
    // Nothing staged may take the reboot elsewhere (Machine::reboot_would_be_hijacked).
    if (Result<bool> unloaded = machine_->prevent_reboot_hijack(); !unloaded.ok())
        return unloaded.error().with_context("before falling back");
    // BootNext even though the previous slot comes first in BootOrder: it is the one entry the
    // firmware honours for exactly the next boot; boot_next() recreates the entry if the
    // firmware dropped it.
    ACTIVATE_TRY(boot_control_->boot_next(previous));
    if (Status s = machine_->unmount(previous.esp_mount); !s.ok())
        log_.warning("could not unmount the ESP at " + previous.esp_mount + " (" +
                     s.error().message() + "); rebooting anyway, the record is synced");
    ACTIVATE_TRY(machine_->jump(JumpAction::reboot));
    return Error(ErrorKind::activation, what);
}

Status Engine::end_trial_back_on_previous(ActivationRecord& record, const SlotPair& slots,
                                          const std::string& path, bool heal) {
    Trial& t = *record.trial;
    const char running = slots.running.letter;
    const WallTime now = WallClock::now();
    auto current = boot_control_->boot_current();
    if (current.ok())
        t.boot_current = *current;
    else
        log_.warning("BootCurrent unknown: " + current.error().message());
    const bool same_boot = !t.boot_id.empty() && t.boot_id == boot_id();
    if (same_boot) {
        // The boot that jumped is still running: the jump never happened (it failed, or the
        // process was killed before it). Nothing may start the target later by surprise.
        t.reason = slot_name(t.target) + " was never started: the " + t.mode + " from " +
                   letter_of(running) + " at " + format_rfc3339(t.jumped_at) +
                   " did not happen (this is still the boot that made it)";
        if (Result<bool> unloaded = machine_->prevent_reboot_hijack(); !unloaded.ok())
            log_.warning(unloaded.error().message());
        if (t.handover == Handover::firmware_boot)
            if (Status s = boot_control_->clear_boot_next(); !s.ok())
                log_.warning("could not clear BootNext: " + s.error().message());
        record.set_slot(t.target, SlotState::unknown, now);
    } else {
        t.reason = slot_name(t.target) + " failed: came back on " + letter_of(running) + " (" +
                   what_is_known(t, t.boot_current) + ")";
        record.set_slot(t.target, SlotState::failed, now, t.reason);
    }
    t.state = TrialState::failed;
    t.assessed_at = now;
    t.returned_at = same_boot ? std::nullopt : std::optional<WallTime>(now);
    t.pending = TrialPending::none;
    ACTIVATE_TRY(record.write(sysroot_, path));
    log_.warning(t.reason);
    if (!heal) return {};
    // The running slot is the good one: first in BootOrder, with its entry recreated if the
    // firmware deleted it.
    ACTIVATE_TRY(boot_control_->mark_good(slots.running));
    record.set_slot(running, SlotState::good, now);
    return record.write(sysroot_, path);
}

}  // namespace activate
