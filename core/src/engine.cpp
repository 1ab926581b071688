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
// Resolves `ref` to its plugin, a failure as a policy error at the plugin's position in the file.
Result<LoadedPlugin> find_plugin(const PluginRef& ref, const PluginRegistry& registry) {
    Result<LoadedPlugin> found = registry.find(ref.name);
    if (!found.ok() && found.error().kind() == ErrorKind::policy)
        return ref.section.error_at("plugin", found.error().message());
    return found;
}

// Calls the factory of `role` of the plugin `found` that `ref` names.
template <class T>
Result<std::unique_ptr<T>> create_role(const PluginRef& ref, const LoadedPlugin& found,
                                       const PluginContext& context, const char* role,
                                       Factory<T> ActivatePluginDescriptor::*factory_member) {
    Factory<T> factory = found.descriptor->*factory_member;
    if (!factory)
        return ref.section.error_at(
            "plugin", "plugin '" + ref.name + "' (" + found.origin + ") cannot act as " + role);
    Settings settings = ref.settings;
    ACTIVATE_ASSIGN(std::unique_ptr<T> instance, factory(context, settings));
    if (!instance) return Error(ErrorKind::internal, "plugin " + ref.name + " returned no instance");
    return instance;
}

// Resolves `ref` and calls the factory of `role`.
template <class T>
Result<std::unique_ptr<T>> instantiate(const PluginRef& ref, const PluginRegistry& registry,
                                       const PluginContext& context, const char* role,
                                       Factory<T> ActivatePluginDescriptor::*factory_member,
                                       LoadedPlugin* loaded) {
    ACTIVATE_ASSIGN(LoadedPlugin found, find_plugin(ref, registry));
    ACTIVATE_ASSIGN(std::unique_ptr<T> instance,
                    create_role(ref, found, context, role, factory_member));
    *loaded = std::move(found);
    return instance;
}
}  // namespace

Result<std::unique_ptr<Engine>> Engine::create(Policy policy, const PluginRegistry& registry,
                                               const Sysroot& sysroot, const Logger& logger) {
    std::unique_ptr<Engine> engine(new Engine(std::move(policy), sysroot, logger));
    PluginContext context{&sysroot, &logger, engine->machine_.get()};
    const Policy& p = engine->policy_;
    LoadedPlugin loaded;

    ACTIVATE_TRY(engine->create_payload(registry, context));
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

// The `payload` plugin fills one of two roles: a slot store makes the policy a slot update, a
// payload source a takeover or a plain staging. A takeover (protocol stdio-protobuf) needs a
// payload source; otherwise a plugin that has a slot store is used as one.
Status Engine::create_payload(const PluginRegistry& registry, const PluginContext& context) {
    const PluginRef& ref = policy_.payload;
    ACTIVATE_ASSIGN(LoadedPlugin found, find_plugin(ref, registry));
    const ActivatePluginDescriptor& d = *found.descriptor;
    if (policy_.protocol == Protocol::stdio_protobuf) {
        if (!d.create_payload_source && d.create_slot_store)
            return policy_.top.error_at(
                "protocol", "protocol stdio-protobuf is for takeover; payload '" + ref.name +
                                "' is a slot store (it installs slots), "
                                "not a payload source");
    } else if (d.create_slot_store) {
        ACTIVATE_ASSIGN(slots_, create_role(ref, found, context, "a slot store",
                                            &ActivatePluginDescriptor::create_slot_store));
        instances_.push_back({std::move(found), "payload (slot store)"});
        return {};
    }
    ACTIVATE_ASSIGN(payload_, create_role(ref, found, context,
                                          d.create_slot_store ? "a payload source"
                                                              : "a payload source or a slot store",
                                          &ActivatePluginDescriptor::create_payload_source));
    instances_.push_back({std::move(found), "payload"});
    return {};
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
    if (p.protocol == Protocol::stdio_protobuf && !payload_->accepts_agent_init())
        return p.top.error_at("protocol",
                              "protocol stdio-protobuf needs a payload that can "
                              "carry an AgentInit, but '" +
                                  p.payload.name + "' cannot");
    if (slots_ && !boot_control_)
        return p.top.error_at("boot_control",
                              "slot store '" + p.payload.name +
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
    if (p.assessment.given && !slots_)
        return p.top.error_at("assessment", "payload '" + p.payload.name +
                                                "' has no A/B slots (it is no slot store); only "
                                                "slot updates are assessed (remove the "
                                                "assessment section)");
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
    if (slots_) return build_slot_update_pipeline();
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
                      return check_kernel(run_->payload);
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

Status Engine::check_slot_update(const char* verb) const {
    if (slots_ && boot_control_) return {};
    return Error(ErrorKind::policy,
                 policy_.file + ": " + verb + " needs a slot store and a boot_control section");
}

Status Engine::check_kernel(const Payload& payload) const {
    if (payload.kernel.valid()) return {};
    return Error(ErrorKind::internal, "payload plugin \"" + policy_.payload.name + "\" prepared " +
                                          (payload.description.empty() ? std::string("a payload")
                                                                       : payload.description) +
                                          " without a kernel; nothing was staged");
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
