// The A/B update pipeline, ordered so that a crash at any point leaves the running slot bootable
// and never boots a half-written one: the target's boot entry is disabled before its slot is
// touched and enabled only after everything is written and synced; the trial is recorded (and
// synced) before the jump, so that `activate assess` can judge the new slot; BootOrder starts
// with the new slot only at mark-good. Never while the running slot itself is on trial: the
// slot about to be overwritten is then the only one known to be good.
#include <activate/engine.hpp>
#include <activate/watchdog.hpp>
#include <nlohmann/json.hpp>

#include "pipeline_run.hpp"

namespace activate {

namespace {

std::string slot_name(char letter) { return std::string("slot ") + letter; }

// "slot A is on trial since ... (activated from B by kexec)".
std::string describe_trial(const Trial& t) {
    return slot_name(t.target) + " is on trial since " + format_rfc3339(t.jumped_at) +
           " (activated from " + std::string(1, t.previous) + " by " + t.mode + ")";
}

}  // namespace

// The slot-update configuration of the pipeline, in the order stated at the top of this file.
// The steps after "stage" undo the staging when they fail, so that nothing starts the target at
// some later reboot; once the trial is recorded, a failure before the jump also ends the trial.
Pipeline Engine::build_slot_update_pipeline() {
    const Policy& p = policy_;
    Pipeline pipeline;
    pipeline.add(lock_step());
    pipeline.add({"find-slots", p.payload.name, [this] { return slots_->plan_slots(); },
                  [this]() -> Status {
                      ACTIVATE_ASSIGN(run_->slots, slots_->slots());
                      return {};
                  }});
    pipeline.add(
        {"check-trial", "engine",
         [] {
             return std::vector<PlanStep>{
                 {"read the activation record; refuse while the running slot is on trial and not "
                  "yet assessed good (unless --force); end a trial the machine already came back "
                  "from",
                  {"<state_dir>/activation.json"},
                  {"<state_dir>/activation.json (only to end such a trial)"}}};
         },
         [this]() -> Status {
             const SlotPair& slots = run_->slots;
             ACTIVATE_ASSIGN(run_->record_file, record_path(slots));
             ACTIVATE_ASSIGN(run_->record, ActivationRecord::read(sysroot_, run_->record_file));
             ActivationRecord& record = run_->record;
             if (record.trial && record.trial->state == TrialState::trying) {
                 if (record.trial->target == slots.running.letter) {
                     const std::string what = describe_trial(*record.trial) +
                                              " and not yet assessed good; installing into " +
                                              slot_name(slots.target.letter) +
                                              " would overwrite the only known-good slot";
                     if (!run_->request.force)
                         return Error(ErrorKind::rejected,
                                      what +
                                          ". Run `activate assess` (or wait for the boot-time "
                                          "unit), or pass --force to install anyway; nothing was "
                                          "written");
                     log_.warning(what + "; installing anyway because of --force");
                 } else {
                     // Back on the previous slot and nobody ran assess: end that trial before
                     // its target is rewritten, so the record does not judge the new contents by
                     // the old jump.
                     ACTIVATE_TRY(end_trial_back_on_previous(record, slots, run_->record_file,
                                                             /*heal=*/false));
                 }
             }
             log_.info(std::string("running slot ") + slots.running.letter +
                       ", installing into slot " + slots.target.letter);
             return {};
         }});
    pipeline.add(
        {"install", p.payload.name,
         [this] {
             std::vector<PlanStep> plan = slots_->plan_install();
             // What before_writing() does, between the payload's checks and its first write.
             plan.push_back(
                 {"before the first write (before_writing): unload a kexec image "
                  "staged earlier (its slot is about to change), take the target's "
                  "boot entry out of service (" +
                      policy_.boot_control->name + "), record the target slot's state as unknown",
                  {"/sys/kernel/kexec_loaded"},
                  {"kexec_file_load(KEXEC_FILE_UNLOAD) when an image is loaded",
                   "<state_dir>/activation.json"}});
             for (PlanStep& s : boot_control_->plan_begin_install()) {
                 s.action = "before the first write: " + s.action;
                 plan.push_back(std::move(s));
             }
             return plan;
         },
         [this]() -> Status {
             // Runs once the payload has checked the bundle and before it writes anything: a
             // refused bundle leaves the boot entries, BootNext, a staged kexec image and the
             // activation record exactly as they were.
             bool began = false;
             const Slot& target = run_->slots.target;
             InstallRequest install = run_->request;
             install.before_writing = [&]() -> Status {
                 began = true;
                 // An image staged by an earlier run may start the target slot, which is about
                 // to change (Machine::reboot_would_be_hijacked).
                 ACTIVATE_ASSIGN(bool unloaded, machine_->prevent_reboot_hijack());
                 if (unloaded)
                     log_.info(
                         "unloaded the kexec image staged earlier (its slot is about to change)");
                 ACTIVATE_TRY(boot_control_->begin_install(target));
                 // Whatever was known about the target's old contents no longer holds.
                 run_->record.set_slot(target.letter, SlotState::unknown, WallClock::now());
                 return run_->record.write(sysroot_, run_->record_file);
             };
             ACTIVATE_TRY(slots_->install(target, install));
             if (!began)
                 return Error(ErrorKind::internal,
                              "slot store \"" + policy_.payload.name +
                                  "\" installed without calling before_writing(): the target's "
                                  "boot entry was never disabled");
             return {};
         }});
    pipeline.add({"finish-install", p.boot_control->name,
                  [this] { return boot_control_->plan_finish_install(); },
                  [this]() -> Status {
                      ACTIVATE_TRY(boot_control_->finish_install(run_->slots.target));
                      log_.info(std::string("slot ") + run_->slots.target.letter +
                                " written and enabled");
                      return {};
                  }});
    // Only a mode that stages a kernel gets one: a firmware boot starts the slot's UKI through
    // the firmware, and nothing reads the UKI here.
    if (handover() == Handover::staged_kernel)
        pipeline.add({"load-kernel", p.payload.name,
                      [this] {
                          std::vector<PlanStep> plan = slots_->plan_load_kernel();
                          if (jumps())
                              plan.push_back(
                                  {"add the hang protection to the kexec'd kernel's "
                                   "command line (watchdog and panic= parameters, "
                                   "docs/boot-assessment-watchdog.md)",
                                   {},
                                   {}});
                          return plan;
                      },
                      [this]() -> Status {
                          ACTIVATE_ASSIGN(run_->payload, slots_->load_kernel(run_->slots.target));
                          ACTIVATE_TRY(check_kernel(run_->payload));
                          // A staged kernel that is jumped into gets the watchdog and panic=
                          // parameters on its command line.
                          if (jumps()) {
                              ACTIVATE_ASSIGN(run_->payload.cmdline,
                                              cmdline_with_hang_protection(run_->payload.cmdline,
                                                                           policy_.watchdog));
                          }
                          return {};
                      }});
    pipeline.add({"stage", p.activation.name, [this] { return activation_->plan_stage(); },
                  [this] { return stage(run_->slots.target); }});
    // A firmware reboot starts the target because BootNext names its entry (UEFI 2.10 §3.1.2:
    // tried once, then deleted). Set by the engine, not the strategy, so that every boot control
    // serves every such strategy; also under activation_mode none, which leaves the target staged
    // for the next reboot.
    if (handover() == Handover::firmware_boot)
        pipeline.add({"boot-next", p.boot_control->name,
                      [this] { return boot_control_->plan_boot_next(); },
                      [this]() -> Status {
                          Status next = boot_control_->boot_next(run_->slots.target);
                          if (!next.ok()) return undo_staging(std::move(next).error());
                          run_->boot_next_set = true;
                          return {};
                      }});
    if (!jumps()) return pipeline;

    // Firmware quirk: some boot managers ignore BootNext for an entry missing from BootOrder.
    // Listed after the running slot, the target is reachable that way but never the first choice
    // of a cold boot before it was assessed good.
    if (handover() == Handover::firmware_boot)
        pipeline.add({"boot-order", p.boot_control->name,
                      [this] { return boot_control_->plan_add_to_boot_order_after(); },
                      [this]() -> Status {
                          Status ordered = boot_control_->add_to_boot_order_after(
                              run_->slots.target, run_->slots.running);
                          if (!ordered.ok()) return undo_staging(std::move(ordered).error());
                          return {};
                      }});

    // The trial, written and synced before the jump: a jump never happens without it, so that
    // whatever boots next (the target, or the previous slot after a hang) can tell what was
    // tried.
    pipeline.add(
        {"record-trial", "engine",
         [this] {
             return std::vector<PlanStep>{
                 {"record the trial (target, previous, mode, version, jump time, deadline +" +
                      std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                         policy_.assessment.deadline)
                                         .count()) +
                      " s, boot entries) and sync it before the jump",
                  {"<state_dir>/activation.json"},
                  {"<state_dir>/activation.json"}}};
         },
         [this]() -> Status {
             const SlotPair& slots = run_->slots;
             ActivationRecord& record = run_->record;
             const WallTime now = WallClock::now();
             Trial trial;
             trial.state = TrialState::trying;
             trial.target = slots.target.letter;
             trial.previous = slots.running.letter;
             trial.mode = staged_->name;
             trial.handover = staged_->handover;
             if (auto version = slots_->slot_version(slots.target); !version.ok())
                 log_.warning("the version of slot " + std::string(1, slots.target.letter) +
                              " is unknown: " + version.error().message());
             else
                 trial.version = version->value_or("");
             trial.jumped_at = now + policy_.delay;
             trial.deadline_at = trial.jumped_at + policy_.assessment.deadline;
             for (auto [slot, entry] : {std::pair{&slots.target, &trial.target_entry},
                                        std::pair{&slots.running, &trial.previous_entry}}) {
                 auto name = boot_control_->entry_name(*slot);
                 if (!name.ok()) return undo_staging(std::move(name).error());
                 *entry = *name;
             }
             trial.boot_id = boot_id();
             record.trial = trial;
             record.set_slot(slots.target.letter, SlotState::trying, now);
             if (Status written = record.write(sysroot_, run_->record_file); !written.ok())
                 return undo_staging(std::move(written).error().with_context(
                     "recording the trial of " + slot_name(slots.target.letter) +
                     " (not jumping)"));
             return {};
         }});

    // Hang protection (watchdog.hpp), armed last, once nothing but the jump can fail: a watchdog
    // left running by a refused step would reset the machine that stayed where it was.
    if (p.watchdog.armed())
        pipeline.add(
            {"arm-watchdog", "engine",
             [this] {
                 std::string writes = policy_.watchdog.device;
                 if (!machine_->is_live())
                     writes =
                         "/run/activate/watchdog (under --sysroot the arming is recorded "
                         "there instead of " +
                         policy_.watchdog.device + ")";
                 return std::vector<PlanStep>{
                     {"arm watchdog " + policy_.watchdog.device + " for " +
                          std::to_string(policy_.watchdog.timeout.count()) +
                          " s (closed without the magic 'V'), right before the jump",
                      {},
                      {writes}}};
             },
             [this]() -> Status {
                 Status armed =
                     arm_watchdog_before_jump(*machine_, policy_.watchdog, *handover(), log_);
                 if (!armed.ok()) {
                     end_unjumped_trial("arming the watchdog failed: " + armed.error().message());
                     return undo_staging(std::move(armed).error());
                 }
                 return {};
             }});

    pipeline.add(jump_step([this]() -> Status {
        // The last line before the machine leaves this system: an operator reading the console
        // (and the switch-time benchmark) sees what happens next and when.
        log_.info(
            std::string("activating slot ") + run_->slots.target.letter + " by " + policy_.mode +
            (policy_.delay.count() > 0 ? " in " + std::to_string(policy_.delay.count()) + " ms"
                                       : " now") +
            "; it is on trial until " + format_rfc3339(run_->record.trial->deadline_at));
        Status activated = activation_->activate(policy_.delay, run_->detached_jump);
        if (!activated.ok()) {
            end_unjumped_trial("the jump failed: " + activated.error().message());
            disarm_watchdog_after_failed_jump(*machine_, policy_.watchdog, log_);
            return undo_staging(std::move(activated).error());
        }
        return activated;
    }));
    return pipeline;
}

// No jump after all: the trial is over before it began, and the target was never run.
void Engine::end_unjumped_trial(const std::string& reason) {
    ActivationRecord& record = run_->record;
    record.trial->state = TrialState::failed;
    record.trial->reason = reason;
    record.trial->assessed_at = WallClock::now();
    record.set_slot(run_->slots.target.letter, SlotState::unknown, WallClock::now());
    if (Status noted = record.write(sysroot_, run_->record_file); !noted.ok())
        log_.warning(noted.error().message());
}

Status Engine::run_update(const InstallRequest& request, bool detached_jump) {
    if (policy_.protocol == Protocol::stdio_protobuf)
        return Error(ErrorKind::internal,
                     "run_update() on a takeover policy (protocol "
                     "stdio-protobuf)");
    run_ = std::make_unique<RunState>();
    run_->request = request;
    run_->detached_jump = detached_jump;
    Status result = pipeline_.run(log_);
    if (result.ok() && !jumps())
        log_.info(slots_ ? "activation_mode none: slot installed and staged, not jumping"
                         : "activation_mode none: staged, not jumping");
    run_.reset();
    return result;
}

Status Engine::mark_good() {
    ACTIVATE_TRY(check_slot_update("mark-good"));
    ACTIVATE_ASSIGN(FileLock lock, take_lock());
    ACTIVATE_ASSIGN(SlotPair slots, slots_->slots());
    ACTIVATE_ASSIGN(const std::string record_file, record_path(slots));
    ACTIVATE_ASSIGN(ActivationRecord record, ActivationRecord::read(sysroot_, record_file));
    ACTIVATE_TRY(boot_control_->mark_good(slots.running));
    log_.info(std::string("slot ") + slots.running.letter + " marked good");
    // By hand, mark-good is the verdict: a trial of this slot ends good (and a pending fallback
    // from it is called off: the operator keeps it).
    const WallTime now = WallClock::now();
    if (record.trial && record.trial->target == slots.running.letter &&
        (record.trial->state == TrialState::trying ||
         record.trial->pending != TrialPending::none)) {
        if (record.trial->state != TrialState::good)
            record.trial->warnings.push_back(
                "marked good by hand (activate mark-good) at " + format_rfc3339(now) +
                (record.trial->reason.empty() ? std::string() : " after: " + record.trial->reason));
        record.trial->state = TrialState::good;
        record.trial->pending = TrialPending::none;
        if (!record.trial->assessed_at) record.trial->assessed_at = now;
    }
    record.set_slot(slots.running.letter, SlotState::good, now);
    return record.write(sysroot_, record_file);
}

Result<std::string> Engine::status_json(int indent) const {
    using Json = nlohmann::ordered_json;
    ACTIVATE_TRY(check_slot_update("status"));
    ACTIVATE_ASSIGN(SlotPair slots, slots_->slots());
    ACTIVATE_ASSIGN(std::string boot_text, boot_control_->status_json(slots));
    ACTIVATE_ASSIGN(bool kexec_loaded, machine_->kexec_loaded());
    ACTIVATE_ASSIGN(std::optional<std::string> boot_current, boot_control_->boot_current());
    ACTIVATE_ASSIGN(const std::string record_file, record_path(slots));
    ACTIVATE_ASSIGN(ActivationRecord record, ActivationRecord::read(sysroot_, record_file));
    const Json boot = Json::parse(boot_text, nullptr, /*allow_exceptions=*/false);
    if (boot.is_discarded())
        return Error(ErrorKind::internal, "boot control plugin \"" + policy_.boot_control->name +
                                              "\" returned a status that is not JSON");

    Json doc = {{"running_slot", std::string(1, slots.running.letter)},
                {"target_slot", std::string(1, slots.target.letter)},
                {"kexec_loaded", kexec_loaded}};
    doc["boot_current"] = boot_current ? Json(*boot_current) : Json(nullptr);
    Json per_slot = Json::object();
    // Keyed by letter, A first, whichever runs.
    const bool running_first = slots.running.letter < slots.target.letter;
    for (const Slot* slot : {running_first ? &slots.running : &slots.target,
                             running_first ? &slots.target : &slots.running}) {
        const SlotRecord r = record.slot(slot->letter);
        Json j = {{"state", to_string(r.state)}};
        if (!r.reason.empty()) j["reason"] = r.reason;
        if (r.since) j["since"] = format_rfc3339(*r.since);
        ACTIVATE_ASSIGN(std::optional<std::string> version, slots_->slot_version(*slot));
        j["version"] = version ? Json(*version) : Json(nullptr);
        ACTIVATE_ASSIGN(std::optional<SlotInstallFigures> figures,
                        slots_->slot_install_figures(*slot));
        // Absent, not null, when unknown: the key is new, and a slot installed before it was
        // recorded has none.
        if (figures)
            j["last_install"] = {{"image_bytes", figures->image_bytes},
                                 {"fetched_bytes", figures->fetched_bytes},
                                 {"reused_bytes", figures->reused_bytes}};
        per_slot[std::string(1, slot->letter)] = std::move(j);
    }
    doc["slots"] = std::move(per_slot);
    if (record.trial) {
        const Trial& t = *record.trial;
        Json last = {{"mode", t.mode},
                     {"from", std::string(1, t.previous)},
                     {"to", std::string(1, t.target)},
                     {"version", t.version},
                     {"jumped_at", format_rfc3339(t.jumped_at)},
                     {"deadline_at", format_rfc3339(t.deadline_at)},
                     {"outcome", to_string(t.state)}};
        last["switch_time_ms"] = t.switch_time_ms ? Json(*t.switch_time_ms) : Json(nullptr);
        last["assessed_at"] = t.assessed_at ? Json(format_rfc3339(*t.assessed_at)) : Json(nullptr);
        if (!t.reason.empty()) last["reason"] = t.reason;
        if (t.pending == TrialPending::mark_good) last["pending"] = "mark-good";
        if (t.pending == TrialPending::fallback) last["pending"] = "fallback";
        if (t.returned_at) last["returned_at"] = format_rfc3339(*t.returned_at);
        if (!t.warnings.empty()) last["warnings"] = t.warnings;
        doc["last_activation"] = std::move(last);
    } else {
        doc["last_activation"] = nullptr;
    }
    doc["boot"] = boot;
    return doc.dump(indent, ' ', false, Json::error_handler_t::replace);
}

}  // namespace activate
