// The engine: instantiates the policy's plugins (each validates its own settings), checks that
// the combination can work, builds the policy's pipeline (takeover or slot update: a list of
// named steps, pipeline.hpp) and runs it. Nothing runs until every plugin of the policy has been
// created and checked; the dry run prints the same steps a run executes.
#pragma once

#include <activate/activation_record.hpp>
#include <activate/machine.hpp>
#include <activate/pipeline.hpp>
#include <activate/plugin_api.hpp>
#include <activate/plugin_registry.hpp>
#include <activate/policy.hpp>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <activate/activation_record.hpp>
#include <activate/plugin_api.hpp>
#include <activate/plugin_registry.hpp>
#include <activate/policy.hpp>

namespace activate {

class Engine {
public:
    // The engine acts on the machine through machine_for(sysroot): recording under a sysroot,
    // live only for "/". Its plugins get that machine in their PluginContext.
    static Result<std::unique_ptr<Engine>> create(Policy policy, const PluginRegistry& registry,
                                                  const Sysroot& sysroot, const Logger& logger);

    ~Engine();

    // The resolved plan: plugins (origin, version) and the pipeline's steps, each with what it
    // reads and writes.
    void print_plan(std::ostream& out) const;
    // The steps run_takeover() or run_update() executes for this policy, in order.
    const Pipeline& pipeline() const { return pipeline_; }

    // Takeover: TakeoverInit on `in`, captures, AgentInit, staging, exactly one TakeoverResponse
    // on `out` (closed afterwards), then the detached jump.
    Status run_takeover(int in_fd, int out_fd);
    // Slot update: lock, install into the inactive slot, stage, record the trial, activate.
    // With `detached_jump` the jump is left to a detached second stage so the caller can still
    // answer a client. Refused (ErrorKind::rejected) while the running slot is on trial, unless
    // request.force.
    Status run_update(const InstallRequest& request, bool detached_jump = false);
    Status mark_good();
    // Boot assessment (docs/boot-assessment.md): decides the trial recorded before the last
    // jump. Running the target: the policy's health checks, then mark-good, or the way back to
    // the previous slot (an ErrorKind::activation error after the reboot was recorded under a
    // sysroot; the live system does not return). Running the previous slot: the trial failed.
    Status assess();
    // `activate status`: slots, their states and versions, the last activation, the boot
    // control's view. `indent` < 0: one line; else pretty-printed with that indent.
    Result<std::string> status_json(int indent = -1) const;

    const Policy& policy() const { return policy_; }
    const Machine& machine() const { return *machine_; }

private:
    struct Instance {
        LoadedPlugin plugin;
        std::string role;
    };
    // What one run carries from step to step (pipeline_run.hpp); exists only during a run.
    struct RunState;
    Engine(Policy policy, const Sysroot& sysroot, const Logger& logger);
    Status check_combination() const;
    // Creates the policy's `payload` plugin as a slot store or a payload source (engine.cpp).
    Status create_payload(const PluginRegistry& registry, const PluginContext& context);
    // The verbs of a slot update (assess, mark-good, status) need a slot store and a boot
    // control; a policy error naming `verb` otherwise.
    Status check_slot_update(const char* verb) const;
    // A payload handed to stage() must hold a kernel, whichever plugin prepared it.
    Status check_kernel(const Payload& payload) const;
    // The steps of the three configurations; build_pipeline() picks the policy's.
    Pipeline build_pipeline();
    Pipeline build_takeover_pipeline();     // protocol stdio-protobuf (takeover_pipeline.cpp)
    Pipeline build_slot_update_pipeline();  // a slot store (update_pipeline.cpp)
    Pipeline build_staging_pipeline();      // no protocol, no slots: stage and jump
    // The lock step that opens the slot-update and staging configurations (takeover's takes the
    // lock after reading its request, with more to do).
    Step lock_step();
    // The jump step, the last of every configuration that jumps.
    Step jump_step(std::function<Status()> run) const;
    Result<FileLock> take_lock() const;
    // The stage step of every configuration: the strategy gets the prepared payload only for a
    // staged_kernel mode (any other gets none, not an empty one), `target` for updates, and the
    // name of the mode staged for.
    Status stage(std::optional<Slot> target);
    // Finds the policy's activation_mode among the modes the strategy declares (or, for none,
    // takes its first), before anything runs.
    Status resolve_mode();
    // How the staged mode reaches the target (nullopt: none, and the strategy declares no mode).
    std::optional<Handover> handover() const {
        return staged_ ? std::optional<Handover>(staged_->handover) : std::nullopt;
    }
    // Whether the policy jumps (activation_mode is not none).
    bool jumps() const { return policy_.mode != "none"; }
    // After stage() succeeded and a later step failed: clears the BootNext the boot-next step set
    // and unloads what was staged, so that nothing starts it at some later reboot, and returns
    // `why` (a failed undo is only logged).
    Error undo_staging(Error why);
    // After the trial was recorded and the jump did not happen: the trial ends failed, the
    // target's state unknown (a failed write is only logged).
    void end_unjumped_trial(const std::string& reason);

    // Boot assessment (assessment.cpp).
    Result<std::string> record_path(const SlotPair& slots) const;
    // /proc/sys/kernel/random/boot_id (through the sysroot); empty when unreadable.
    std::string boot_id() const;
    // Runs the policy's checks for the trial in `record` (the running slot is its target).
    Status assess_running_target(ActivationRecord& record, const SlotPair& slots,
                                 const std::string& path);
    // The trial ended without the target being assessed good: the machine runs `previous`.
    // Records why (with what is known: mode, BootCurrent, the entries) and, with `heal`, makes
    // the running slot first again (recreating its entry if the firmware dropped it).
    Status end_trial_back_on_previous(ActivationRecord& record, const SlotPair& slots,
                                      const std::string& path, bool heal);
    // Points the firmware at the trial's previous slot and reboots into it; the record already
    // says failed with pending fallback.
    Status fall_back(const ActivationRecord& record, const SlotPair& slots);
    Policy policy_;
    const Sysroot& sysroot_;
    const Logger& logger_;
    Log log_;
    std::unique_ptr<Machine> machine_;  // before the plugin objects, which use it: outlives them
    std::vector<Instance> instances_;  // declared before the plugin objects: unloaded after them
    // Exactly one of the two: the `payload` plugin's role (create_payload()).
    std::unique_ptr<PayloadSource> payload_;  // takeover, plain staging
    std::unique_ptr<SlotStore> slots_;        // slot update
    std::unique_ptr<ActivationStrategy> activation_;
    std::unique_ptr<BootControl> boot_control_;
    std::vector<std::unique_ptr<Capture>> captures_;
    // The mode the stage step prepares for: the policy's, or under activation_mode none the
    // strategy's first, so that a staged-only update leaves what the jump would start (the kexec
    // image, BootNext). Resolved by create().
    std::optional<ActivationModeInfo> staged_;
    Pipeline pipeline_;  // built once by create(); its steps act on run_
    std::unique_ptr<RunState> run_;
};

}  // namespace activate
