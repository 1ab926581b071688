// What the CLI's verbs share: the common option groups and their values, and the way from
// --policy to an engine (policy loaded, --set applied, validated, plugins created).
#include <activate/plugin_registry.hpp>
#include <activate/policy.hpp>
#include <filesystem>

#include "verb.hpp"

namespace activate::cli {

Error usage_error(const std::string& program, const std::string& message) {
    return Error(ErrorKind::usage, message + " (see '" + program + " --help')");
}

Error usage_error(const CliDefaults& defaults, const Verb& verb, const std::string& message) {
    return usage_error(defaults.program + " " + std::string(verb.name), message);
}

Error VerbCall::usage(const std::string& message) const {
    return usage_error(defaults, verb, message);
}

po::options_description help_options() {
    po::options_description desc;
    desc.add_options()("help,h", "show this help")("version", "show the version");
    return desc;
}

po::options_description system_options() {
    po::options_description desc;
    desc.add_options()("sysroot", po::value<std::string>()->default_value("/"),
                       "act on this directory instead of the live system (nothing outside it is "
                       "touched)")("log-level", po::value<std::string>()->default_value("info"),
                                   "debug, info, warning or error");
    return desc;
}

po::options_description policy_options(const char* policy_help) {
    po::options_description desc;
    desc.add_options()("policy", po::value<std::vector<std::string>>()->composing(), policy_help)(
        "plugin-dir", po::value<std::vector<std::string>>()->composing(),
        "add a directory of plugin .so files, searched before $ACTIVATE_PLUGIN_PATH and the "
        "built-in plugins (repeatable; the first match wins)")(
        "set", po::value<std::vector<std::string>>()->composing(),
        "override a policy value by dotted path, KEY=VALUE (repeatable)");
    return desc;
}

CommonOptions common_options(const po::variables_map& options) {
    CommonOptions o;
    auto take = [&](const char* name, auto& out) {
        if (options.count(name)) out = options[name].as<std::decay_t<decltype(out)>>();
    };
    take("policy", o.policies);
    take("sysroot", o.sysroot);
    take("plugin-dir", o.plugin_dirs);
    take("set", o.overrides);
    take("log-level", o.log_level);
    return o;
}

Status apply_log_level(const VerbCall& call, const CommonOptions& o) {
    LogLevel level;
    if (!parse_log_level(o.log_level, &level))
        return call.usage("--log-level: unknown level '" + o.log_level + "'");
    call.cli.logger.set_threshold(level);
    return {};
}

Status check_sysroot(const VerbCall& call, const Sysroot& sysroot, const CommonOptions& o) {
    std::error_code ec;
    if (!std::filesystem::is_directory(sysroot.root(), ec))
        return call.usage("--sysroot " + o.sysroot + " is not a directory" +
                          (ec ? " (" + ec.message() + ")" : std::string()));
    return {};
}

Result<PolicySource> load_policy(const std::string& file, const CommonOptions& o) {
    ACTIVATE_ASSIGN(YAML::Node root, load_policy_yaml(file));
    for (const std::string& assignment : o.overrides)
        ACTIVATE_TRY(apply_policy_override(root, assignment));
    return PolicySource{root, file};
}

Result<PolicySource> the_policy(const VerbCall& call, const CommonOptions& o) {
    const CliDefaults& defaults = call.defaults;
    if (o.policies.size() > 1) return call.usage("--policy may be given once (except for 'serve')");
    if (!o.policies.empty()) return load_policy(o.policies.front(), o);
    if (defaults.embedded_policy.empty()) return call.usage("--policy FILE is required");
    ACTIVATE_ASSIGN(YAML::Node root,
                    load_policy_yaml_text(defaults.embedded_policy, defaults.embedded_policy_name));
    for (const std::string& assignment : o.overrides)
        ACTIVATE_TRY(apply_policy_override(root, assignment));
    return PolicySource{root, defaults.embedded_policy_name};
}

Result<std::unique_ptr<Engine>> build_engine(const PolicySource& source, const CommonOptions& o,
                                             const CliDefaults& defaults, const Sysroot& sysroot,
                                             const Logger& logger) {
    ACTIVATE_ASSIGN(Policy policy, parse_policy(source.root, source.name));
    // --plugin-dir and $ACTIVATE_PLUGIN_PATH add directories in front of the built-in plugins:
    // the engine's plugin directory, or the plugins linked into a self-contained binary
    // (takeover), which has no directory of its own.
    std::optional<std::filesystem::path> builtin_dir;
    if (defaults.builtins.empty()) builtin_dir = builtin_plugin_dir();
    PluginRegistry registry(defaults.builtins, plugin_search_path(o.plugin_dirs, builtin_dir));
    return Engine::create(std::move(policy), registry, sysroot, logger);
}

Status with_engine(const VerbCall& call, const std::function<Status(Engine&)>& act) {
    const CommonOptions o = common_options(call.options);
    ACTIVATE_TRY(apply_log_level(call, o));
    const Sysroot sysroot(o.sysroot);
    ACTIVATE_TRY(check_sysroot(call, sysroot, o));
    ACTIVATE_ASSIGN(PolicySource source, the_policy(call, o));
    ACTIVATE_ASSIGN(std::unique_ptr<Engine> engine,
                    build_engine(source, o, call.defaults, sysroot, call.cli.logger));
    return act(*engine);
}

}  // namespace activate::cli
