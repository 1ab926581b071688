// Plugin instantiation, combination checks and the dry-run plan.
#include <activate/engine.hpp>

#include <ostream>

namespace activate {

Engine::Engine(Policy policy, const Sysroot& sysroot, const Logger& logger)
    : policy_(std::move(policy)), sysroot_(sysroot), logger_(logger), log_(&logger, "engine") {}

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
    PluginContext context{&sysroot, &logger};
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
    ACTIVATE_TRY(engine->check_combination());
    return engine;
}

Status Engine::check_combination() const {
    const Policy& p = policy_;
    if (p.mode != ActivationMode::none && !activation_->supports(p.mode))
        return p.top.error_at("activation_mode",
                              std::string("activation plugin '") + p.activation.name +
                                  "' cannot perform activation mode '" + to_string(p.mode) + "'");
    if (activation_->needs_kernel() && !payload_->provides_kernel())
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
    if (p.mode == ActivationMode::reboot && !boot_control_)
        return p.top.error_at("boot_control", "activation_mode reboot needs a boot_control "
                                              "section to choose what boots next");
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
    out << "activation_mode: " << to_string(p.mode) << "\n";
    out << "delay: " << p.delay.count() << " ms\n";
    out << "plugins:\n";
    for (const Instance& i : instances_)
        out << "  " << i.role << ": " << i.plugin.descriptor->name << " "
            << i.plugin.descriptor->version << " (" << i.plugin.origin << ")\n";
    out << "steps:\n";
    int n = 0;
    auto step = [&](const std::string& who, const PlanStep& s) {
        out << "  " << ++n << ". [" << who << "] " << s.action << "\n";
        for (const std::string& r : s.reads) out << "       reads: " << r << "\n";
        for (const std::string& w : s.writes) out << "       writes: " << w << "\n";
    };
    auto steps = [&](const std::string& who, const std::vector<PlanStep>& list) {
        for (const PlanStep& s : list) step(who, s);
    };
    if (p.protocol == Protocol::stdio_protobuf) {
        step("engine", {"read one TakeoverInit (at most 1 MiB) from stdin, within " +
                            std::to_string(p.input_timeout.count()) + " ms",
                        {"stdin"},
                        {}});
        step("engine", {"take the activation lock (held by the second stage until the jump)", {},
                        {p.lock_file}});
        for (size_t i = 0; i < captures_.size(); ++i) steps(p.captures[i].name, captures_[i]->plan());
        step("engine", {"generate the agent's Ed25519 key and build the AgentInit", {}, {}});
        steps(p.payload.name, payload_->plan());
        steps(p.activation.name, activation_->plan());
        step("engine", {"write one TakeoverResponse and close stdout", {}, {"stdout"}});
    } else {
        if (payload_->uses_slots()) {
            step("engine", {"take the activation lock", {}, {p.lock_file}});
            steps(p.payload.name, payload_->plan());
            if (boot_control_) steps(p.boot_control->name, boot_control_->plan());
        } else {
            steps(p.payload.name, payload_->plan());
        }
        steps(p.activation.name, activation_->plan());
        if (payload_->uses_slots() && p.mode != ActivationMode::none) {
            if (p.mode == ActivationMode::reboot)
                step("engine",
                     {"list the target's boot entry in BootOrder right after the running "
                      "slot's (never first), for firmware that ignores BootNext otherwise",
                      {},
                      {}});
            step("engine",
                 {"record the trial (target, previous, mode, version, jump time, deadline +" +
                      std::to_string(
                          std::chrono::duration_cast<std::chrono::seconds>(p.assessment.deadline)
                              .count()) +
                      " s, boot entries) and sync it before the jump; refused while the running "
                      "slot is itself on trial",
                  {"<state_dir>/activation.json"},
                  {"<state_dir>/activation.json"}});
        }
        // Hang protection (watchdog.hpp): the update pipeline arms the watchdog last, after
        // staging and (slot updates) after the trial is recorded.
        if (p.mode != ActivationMode::none && p.watchdog.armed())
            step("engine", {"arm watchdog " + p.watchdog.device + " for " +
                                std::to_string(p.watchdog.timeout.count()) +
                                " s (closed without the magic 'V') " +
                                (payload_->uses_slots() ? "after the trial is recorded"
                                                        : "after staging") +
                                ", right before the jump",
                            {},
                            {sysroot_.is_live() ? p.watchdog.device
                                                : sysroot_.path("/run/activate/watchdog").string()}});
    }
    if (p.mode == ActivationMode::none)
        step("engine", {"stop after staging (activation_mode none)", {}, {}});
    else
        step(p.activation.name,
             {std::string("jump: ") + to_string(p.mode) + " after " +
                  std::to_string(p.delay.count()) + " ms" +
                  (p.protocol == Protocol::stdio_protobuf ? " from a detached second stage" : ""),
              {},
              {sysroot_.is_live() ? std::string("reboot(2)")
                                  : sysroot_.path("/run/activate/reboot").string()}});
}

Result<FileLock> Engine::take_lock() const { return sysroot_.lock(policy_.lock_file); }

Error Engine::undo_staging(Error why) {
    Status undone = activation_->unstage();
    if (!undone.ok()) log_.warning("undoing the staging failed: " + undone.error().message());
    return why;
}

}  // namespace activate
