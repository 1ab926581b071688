// The engine: instantiates the policy's plugins (each validates its own settings), checks that
// the combination can work, and runs one of the pipelines. Nothing runs until every plugin of
// the policy has been created and checked.
#pragma once

#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <activate/plugin_api.hpp>
#include <activate/plugin_registry.hpp>
#include <activate/policy.hpp>

namespace activate {

class Engine {
public:
    static Result<std::unique_ptr<Engine>> create(Policy policy, const PluginRegistry& registry,
                                                  const Sysroot& sysroot, const Logger& logger);

    // The resolved plan: plugins (origin, version) and each step with what it reads and writes.
    void print_plan(std::ostream& out) const;

    // Takeover: TakeoverInit on `in`, captures, AgentInit, staging, exactly one TakeoverResponse
    // on `out` (closed afterwards), then the detached jump.
    Status run_takeover(int in_fd, int out_fd);
    // Slot update: lock, install into the inactive slot, stage, activate. With `detached_jump`
    // the jump is left to a detached second stage so the caller can still answer a client.
    Status run_update(const InstallRequest& request, bool detached_jump = false);
    Status mark_good();
    Result<std::string> status_json() const;

    const Policy& policy() const { return policy_; }

private:
    struct Instance {
        LoadedPlugin plugin;
        std::string role;
    };
    Engine(Policy policy, const Sysroot& sysroot, const Logger& logger);
    Status check_combination() const;
    Status run_pipeline_without_protocol();
    Result<FileLock> take_lock() const;
    // After stage() succeeded and a later step failed: unloads what was staged, so that nothing
    // starts it at some later reboot, and returns `why` (a failed unload is only logged).
    Error undo_staging(Error why);

    Policy policy_;
    const Sysroot& sysroot_;
    const Logger& logger_;
    Log log_;
    std::vector<Instance> instances_;  // declared before the plugin objects: unloaded after them
    std::unique_ptr<PayloadSource> payload_;
    std::unique_ptr<ActivationStrategy> activation_;
    std::unique_ptr<BootControl> boot_control_;
    std::vector<std::unique_ptr<Capture>> captures_;
};

}  // namespace activate
