// `activate [run]`, the default verb: runs the pipeline the policy describes, a takeover (the
// protocol on stdin/stdout) or a slot update (--bundle), or prints its plan (--dry-run).
#include <unistd.h>

#include <iostream>

#include "verb.hpp"

namespace activate {

Result<std::string> resolve_bundle_argument(const std::string& bundle, const Sysroot& sysroot,
                                            const std::filesystem::path& cwd) {
    if (bundle.empty() || bundle.front() == '/' || bundle.rfind("http://", 0) == 0 ||
        bundle.rfind("https://", 0) == 0)
        return bundle;
    if (!sysroot.is_live())
        return Error(ErrorKind::usage,
                     "--bundle " + bundle + ": under --sysroot " + sysroot.root().string() +
                         " the bundle must be an absolute path inside the sysroot (e.g. /" +
                         std::filesystem::path(bundle).lexically_normal().string() + " for " +
                         sysroot.path("/" + bundle).lexically_normal().string() + ")");
    if (cwd.empty())
        return Error(
            ErrorKind::usage,
            "--bundle " + bundle + ": the current directory is unknown; give an absolute path");
    return (cwd / bundle).lexically_normal().string();
}

namespace cli {
namespace {

po::options_description run_options() {
    po::options_description desc("Options of 'run'");
    desc.add(help_options()).add(policy_options("policy file (YAML)")).add(system_options());
    desc.add_options()("dry-run", po::bool_switch(),
                       "print the resolved plan on stdout; touch nothing")(
        "bundle", po::value<std::string>(), "bundle to install: a path or an http(s) URL")(
        "progress", po::bool_switch(), "report write progress on stderr")(
        "allow-downgrade", po::bool_switch(), "install a bundle older than the running slot")(
        "force", po::bool_switch(),
        "install even while the running slot is on trial (overwrites the only known-good slot)");
    return desc;
}

bool speaks_stdio_protocol(const YAML::Node& root) {
    const YAML::Node& const_root = root;  // operator[] on a const node never inserts
    const YAML::Node protocol = const_root["protocol"];
    return protocol && protocol.IsScalar() && protocol.Scalar() == "stdio-protobuf";
}

// The order matters: whether a failure is answered as a TakeoverResponse is decided first (the
// takeover binary) and again once the policy is read (its protocol), so that every error before
// the pipeline starts reaches a takeover client; the pipeline then answers by itself.
Status run_pipeline(const VerbCall& call) {
    const po::variables_map& options = call.options;
    const bool dry_run = options["dry-run"].as<bool>();
    std::string bundle = options.count("bundle") ? options["bundle"].as<std::string>() : "";
    call.cli.answers_takeover = !dry_run && !call.defaults.embedded_policy.empty();
    const CommonOptions o = common_options(options);
    ACTIVATE_TRY(apply_log_level(call, o));
    const Sysroot sysroot(o.sysroot);
    ACTIVATE_TRY(check_sysroot(call, sysroot, o));
    if (!bundle.empty()) {
        std::error_code ec;
        const std::filesystem::path cwd = std::filesystem::current_path(ec);
        Result<std::string> resolved = resolve_bundle_argument(bundle, sysroot, cwd);
        if (!resolved.ok()) return call.usage(resolved.error().message());
        bundle = *resolved;
    }
    ACTIVATE_ASSIGN(PolicySource source, the_policy(call, o));
    if (!dry_run && speaks_stdio_protocol(source.root)) call.cli.answers_takeover = true;
    ACTIVATE_ASSIGN(std::unique_ptr<Engine> engine,
                    build_engine(source, o, call.defaults, sysroot, call.cli.logger));
    if (dry_run) {
        engine->print_plan(std::cout);
        std::cout.flush();
        return {};
    }
    if (engine->policy().protocol == Protocol::stdio_protobuf) {
        call.cli.answers_takeover = false;  // from here on the pipeline answers by itself
        return engine->run_takeover(STDIN_FILENO, STDOUT_FILENO);
    }
    const bool progress = options["progress"].as<bool>() || ::isatty(STDERR_FILENO);
    InstallRequest install{bundle, progress, options["allow-downgrade"].as<bool>(), {}};
    install.force = options["force"].as<bool>();
    return engine->run_update(install);
}

}  // namespace

const Verb kRunVerb{"run",
                    "run the policy's pipeline (a takeover or a slot update); the default verb",
                    "[run] --policy FILE [--dry-run] [--sysroot DIR] [--plugin-dir DIR] "
                    "[--set KEY=VALUE ...] [--log-level LEVEL] [--bundle SRC]",
                    run_options, run_pipeline};

}  // namespace cli
}  // namespace activate
