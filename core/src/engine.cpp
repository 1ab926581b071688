// Plugin instantiation, combination checks, the choice of pipeline and the dry-run plan.
#include <activate/engine.hpp>

#include <ostream>

#include "pipeline_run.hpp"

namespace activate {

Engine::Engine(Policy policy, const Sysroot& sysroot, const Logger& logger)
    : policy_(std::move(policy)),
      sysroot_(sysroot),
      logger_(logger),
      log_(&logger, "engine"),
      machine_(machine_for(sysroot)) {}

Engine::~Engine() = default;

namespace {
// Resolves `ref` and calls the factory of `role`, turning every failure into a policy error at
// the plugin's position in the file.
template <class T>
Result<std::unique_ptr<T>> instantiate(const PluginRef& ref, const PluginRegistry& registry,
                                       const PluginContext& context, const char* role,
                                       Factory<T> ActivatePluginDescriptor::*factory_member,
                                       LoadedPlugin* loaded) {
    Result<LoadedPlugin> found = registry.find(ref.name);
    if (!found.ok()) {
        const Error& e = found.error();
        if (e.kind() == ErrorKind::policy) return ref.section.error_at("plugin", e.message());
        return e;
    }
    Factory<T> factory = found->descriptor->*factory_member;
    if (!factory)
        return ref.section.error_at("plugin", "plugin '" + ref.name + "' (" + found->origin +
                                                  ") cannot act as " + role);
    Settings settings = ref.settings;
    ACTIVATE_ASSIGN(std::unique_ptr<T> instance, factory(context, settings));
    if (!instance) return Error(ErrorKind::internal, "plugin " + ref.name + " returned no instance");
    *loaded = std::move(found).value();
    return instance;
}
}  // namespace

Result<std::unique_ptr<Engine>> Engine::create(Policy policy, const PluginRegistry& registry,
                                               const Sysroot& sysroot, const Logger& logger) {
    std::unique_ptr<Engine> engine(new Engine(std::move(policy), sysroot, logger));
    PluginContext context{&sysroot, &logger, engine->machine_.get()};
    const Policy& p = engine->policy_;
    LoadedPlugin loaded;

    ACTIVATE_ASSIGN(engine->payload_,
                    instantiate(p.payload, registry, context, "a payload source",
                                &ActivatePluginDescriptor::create_payload_source, &loaded));
    engine->instances_.push_back({loaded, "payload"});
    ACTIVATE_ASSIGN(engine->activation_,
                    instantiate(p.activation, registry, context, "an activation strategy",
                                &ActivatePluginDescriptor::create_activation, &loaded));
    engine->instances_.push_back({loaded, "activation"});
    if (p.boot_control) {
        ACTIVATE_ASSIGN(engine->boot_control_,
                        instantiate(*p.boot_control, registry, context, "boot control",
                                    &ActivatePluginDescriptor::create_boot_control, &loaded));
        engine->instances_.push_back({loaded, "boot_control"});
    }
    for (const PluginRef& ref : p.captures) {
        ACTIVATE_ASSIGN(std::unique_ptr<Capture> capture,
                        instantiate(ref, registry, context, "a capture",
                                    &ActivatePluginDescriptor::create_capture, &loaded));
        engine->captures_.push_back(std::move(capture));
        engine->instances_.push_back({loaded, "capture"});
    }
    ACTIVATE_TRY(engine->resolve_mode());
    ACTIVATE_TRY(engine->check_combination());
    engine->pipeline_ = engine->build_pipeline();
    return engine;
}

Status Engine::resolve_mode() {
    const Policy& p = policy_;
    const std::vector<ActivationModeInfo> declared = activation_->modes();
    if (!jumps()) {
        if (!declared.empty()) staged_ = declared.front();
        return {};
    }
    for (const ActivationModeInfo& m : declared)
        if (m.name == p.mode) {
            staged_ = m;
            return {};
        }
    std::string names;
    for (const ActivationModeInfo& m : declared)
        names += (names.empty() ? "" : ", ") + m.name + " (" + to_string(m.handover) + ")";
    return p.top.error_at("activation_mode", "activation plugin '" + p.activation.name +
                                                 "' declares no mode '" + p.mode +
                                                 "'; it declares " +
                                                 (names.empty() ? std::string("none") : names) +
                                                 " (or set none: stage, do not jump)");
}

Status Engine::check_combination() const {
    const Policy& p = policy_;
    if (handover() == Handover::staged_kernel && !payload_->provides_kernel())
        return p.top.error_at("activation", "activation plugin '" + p.activation.name +
                                                "' needs a kernel but payload plugin '" +
                                                p.payload.name + "' provides none");
    if (p.protocol == Protocol::stdio_protobuf) {
        if (!payload_->accepts_agent_init())
            return p.top.error_at("protocol", "protocol stdio-protobuf needs a payload that can "
                                              "carry an AgentInit, but '" +
                                                  p.payload.name + "' cannot");
        if (payload_->uses_slots())
            return p.top.error_at("protocol", "protocol stdio-protobuf is for takeover; payload '" +
                                                  p.payload.name + "' installs slots");
    }
    if (payload_->uses_slots() && !boot_control_)
        return p.top.error_at("boot_control",
                              "slot payload '" + p.payload.name +
                                  "' needs a boot_control section so that the running slot "
                                  "stays bootable while the other is written");
    if (handover() == Handover::firmware_boot && !boot_control_)
        return p.top.error_at("boot_control",
                              jumps() ? "activation_mode " + p.mode +
                                            " needs a boot_control section to choose what boots "
                                            "next"
                                      : "activation plugin '" + p.activation.name +
                                            "' stages a firmware reboot, which needs a "
                                            "boot_control section to choose what boots next");
    if (p.assessment.given && !payload_->uses_slots())
        return p.top.error_at("assessment", "payload '" + p.payload.name +
                                                "' has no A/B slots; only slot updates are "
                                                "assessed (remove the assessment section)");
    if (!p.captures.empty() && p.protocol != Protocol::stdio_protobuf)
        return p.top.error_at("captures", "captures are only used by protocol stdio-protobuf");
    return {};
}

void Engine::print_plan(std::ostream& out) const {
    const Policy& p = policy_;
    out << "policy: " << p.file << "\n";
    out << "sysroot: " << sysroot_.root().string() << (sysroot_.is_live() ? " (live system)" : "")
        << "\n";
    out << "protocol: " << to_string(p.protocol) << "\n";
    out << "activation_mode: " << p.mode;
    if (staged_) out << " (" << to_string(staged_->handover) << ")";
    out << "\n";
    out << "delay: " << p.delay.count() << " ms\n";
    out << "plugins:\n";
    for (const Instance& i : instances_)
        out << "  " << i.role << ": " << i.plugin.descriptor->name << " "
            << i.plugin.descriptor->version << " (" << i.plugin.origin << ")\n";
    pipeline_.print(out);
}

Pipeline Engine::build_pipeline() {
    if (policy_.protocol == Protocol::stdio_protobuf) return build_takeover_pipeline();
    if (payload_->uses_slots()) return build_slot_update_pipeline();
    return build_staging_pipeline();
}

Step Engine::lock_step() {
    return {"lock", "engine",
            [this] {
                return std::vector<PlanStep>{
                    {"take the activation lock", {}, {policy_.lock_file}}};
            },
            [this]() -> Status {
                ACTIVATE_ASSIGN(FileLock lock, take_lock());
                run_->lock.emplace(std::move(lock));
                return {};
            }};
}

// A payload without slots and without the stdio protocol: stage it and jump.
Pipeline Engine::build_staging_pipeline() {
    Pipeline pipeline;
    pipeline.add(lock_step());
    pipeline.add({"prepare", policy_.payload.name, [this] { return payload_->plan_prepare(); },
                  [this]() -> Status {
                      ACTIVATE_ASSIGN(run_->payload, payload_->prepare({}));
                      return {};
                  }});
    pipeline.add({"stage", policy_.activation.name, [this] { return activation_->plan_stage(); },
                  [this] { return stage(std::nullopt); }});
    if (jumps())
        pipeline.add(jump_step(
            [this] { return activation_->activate(policy_.delay, run_->detached_jump); }));
    return pipeline;
}

Step Engine::jump_step(std::function<Status()> run) const {
    return {
        "jump", policy_.activation.name,
        [this] {
            const bool takeover = policy_.protocol == Protocol::stdio_protobuf;
            // Under --sysroot the jump is only recorded (RecordingMachine::jump): say where, as
            // the system path it has inside the sysroot.
            std::vector<std::string> writes;
            if (!machine_->is_live())
                writes.push_back(
                    "/run/activate/reboot (under --sysroot the jump is recorded "
                    "there instead)");
            std::vector<PlanStep> plan = {{policy_.mode + " after " +
                                               std::to_string(policy_.delay.count()) + " ms" +
                                               (takeover ? " from a detached second stage" : ""),
                                           {},
                                           std::move(writes)}};
            for (PlanStep& s : activation_->plan_activate()) plan.push_back(std::move(s));
            return plan;
        },
        std::move(run)};
}

Result<FileLock> Engine::take_lock() const { return sysroot_.lock(policy_.lock_file); }

Status Engine::stage(std::optional<Slot> target) {
    StageRequest request;
    // Prepared for this strategy only for a staged kernel (the slot update's prepare step).
    if (handover() == Handover::staged_kernel) request.payload = std::move(run_->payload);
    request.target = std::move(target);
    if (staged_) request.mode = staged_->name;
    return activation_->stage(request);
}

Error Engine::undo_staging(Error why) {
    // In the reverse order of the steps: BootNext was set after the strategy staged.
    if (run_ && run_->boot_next_set) {
        if (Status cleared = boot_control_->clear_boot_next(); !cleared.ok())
            log_.warning("clearing BootNext failed: " + cleared.error().message());
        else
            run_->boot_next_set = false;
    }
    Status undone = activation_->unstage();
    if (!undone.ok()) log_.warning("undoing the staging failed: " + undone.error().message());
    return why;
}

}  // namespace activate
