// `activate [run|status|mark-good|assess] ...`: option parsing and dispatch. stdout carries only
// protocol output (the takeover response, --json output, the dry-run plan); everything else
// goes to stderr.
#include <activate/cli.hpp>

#include <unistd.h>

#include <boost/program_options.hpp>
#include <iostream>

#include <activate/engine.hpp>
#include <activate/plugin_registry.hpp>
#include <activate/policy.hpp>
#include <activate/serve.hpp>

#include "takeover.pb.h"

namespace activate {

namespace po = boost::program_options;

namespace {

struct CommonOptions {
    std::vector<std::string> policies;
    std::string sysroot = "/";
    std::vector<std::string> plugin_dirs;
    std::vector<std::string> overrides;
    std::string log_level = "info";
};

void add_common(po::options_description& desc, CommonOptions& o) {
    desc.add_options()
        ("policy", po::value(&o.policies)->composing(),
         "policy file (YAML); 'serve' takes one per activation mode")
        ("sysroot", po::value(&o.sysroot)->default_value("/"),
         "act on this directory instead of the live system (nothing outside it is touched)")
        ("plugin-dir", po::value(&o.plugin_dirs)->composing(),
         "directory with plugin .so files (repeatable; default $ACTIVATE_PLUGIN_DIR or "
         "<prefix>/<libdir>/activate/plugins)")
        ("set", po::value(&o.overrides)->composing(),
         "override a policy value by dotted path, KEY=VALUE (repeatable)")
        ("log-level", po::value(&o.log_level)->default_value("info"),
         "debug, info, warning or error");
}

Error usage_error(const std::string& program, const std::string& message) {
    return Error(ErrorKind::usage, message + " (see '" + program + " --help')");
}

// A policy loaded and overridden, not yet validated.
struct PolicySource {
    YAML::Node root;
    std::string name;
};

Result<PolicySource> load_policy(const std::string& file, const CommonOptions& o) {
    ACTIVATE_ASSIGN(YAML::Node root, load_policy_yaml(file));
    for (const std::string& assignment : o.overrides)
        ACTIVATE_TRY(apply_policy_override(root, assignment));
    return PolicySource{root, file};
}

Result<PolicySource> the_policy(const CommonOptions& o, const CliDefaults& defaults) {
    if (o.policies.size() > 1)
        return usage_error(defaults.program, "--policy may be given once (except for 'serve')");
    if (!o.policies.empty()) return load_policy(o.policies.front(), o);
    if (defaults.embedded_policy.empty())
        return usage_error(defaults.program, "--policy FILE is required");
    ACTIVATE_ASSIGN(YAML::Node root, load_policy_yaml_text(defaults.embedded_policy,
                                                           defaults.embedded_policy_name));
    for (const std::string& assignment : o.overrides)
        ACTIVATE_TRY(apply_policy_override(root, assignment));
    return PolicySource{root, defaults.embedded_policy_name};
}

// Validates the policy and creates every plugin: nothing has run yet.
Result<std::unique_ptr<Engine>> build_engine(const PolicySource& source, const CommonOptions& o,
                                             const CliDefaults& defaults, const Sysroot& sysroot,
                                             const Logger& logger) {
    ACTIVATE_ASSIGN(Policy policy, parse_policy(source.root, source.name));
    std::vector<std::filesystem::path> dirs(o.plugin_dirs.begin(), o.plugin_dirs.end());
    // Binaries with built-in plugins look in a directory only when told to.
    if (dirs.empty() && defaults.builtins.empty()) dirs.push_back(default_plugin_dir());
    PluginRegistry registry(defaults.builtins, dirs);
    return Engine::create(std::move(policy), registry, sysroot, logger);
}

// `serve`: every policy is validated up front; each request then runs on a fresh engine built
// from the policy whose activation_mode matches the request (NONE: the first policy, with its
// mode overridden to none).
int serve(const CommonOptions& o, const CliDefaults& defaults, SocketPlace socket,
          const Sysroot& sysroot, const Logger& logger) {
    std::vector<std::pair<ActivationMode, PolicySource>> policies;
    for (const std::string& file : o.policies) {
        Result<PolicySource> source = load_policy(file, o);
        if (!source.ok()) return exit_code(source.error().kind());
        Result<std::unique_ptr<Engine>> engine = build_engine(*source, o, defaults, sysroot, logger);
        if (!engine.ok()) {
            logger.write(LogLevel::error, "serve", engine.error().message());
            return exit_code(engine.error().kind());
        }
        policies.emplace_back((*engine)->policy().mode, *source);
    }
    Log log(&logger, "serve");
    // The policy a request for `wanted` runs with: the one of that mode (the last, if several);
    // for none, failing that, the first, its mode overridden. Null: serve has none for it.
    auto policy_for = [&](ActivationMode wanted) -> const std::pair<ActivationMode, PolicySource>* {
        const std::pair<ActivationMode, PolicySource>* chosen = nullptr;
        for (const auto& entry : policies)
            if (entry.first == wanted) chosen = &entry;
        if (!chosen && wanted == ActivationMode::none && !policies.empty())
            chosen = &policies.front();
        return chosen;
    };
    std::vector<wire::ActivationMode> modes;
    for (wire::ActivationMode m :
         {wire::ACTIVATION_NONE, wire::ACTIVATION_REBOOT, wire::ACTIVATION_KEXEC})
        if (policy_for(activation_mode_of(m))) modes.push_back(m);
    UpdateRunner run_one = [&](const wire::UpdateNodeRequest& request) -> Status {
        ActivationMode wanted = activation_mode_of(request.activation_mode());
        const auto* chosen = policy_for(wanted);
        // The server answers `unavailable` before calling us for modes without a policy.
        if (!chosen)
            return Error(ErrorKind::internal, std::string("no policy for activation mode ") +
                                                  to_string(wanted) + " was given to serve");
        PolicySource source{YAML::Clone(chosen->second.root), chosen->second.name};
        if (chosen->first != wanted)
            ACTIVATE_TRY(apply_policy_override(source.root, "activation_mode=none"));
        log.info("update requested: " + request.bundle_url() + " (" + to_string(wanted) + ")");
        ACTIVATE_ASSIGN(std::unique_ptr<Engine> engine,
                        build_engine(source, o, defaults, sysroot, logger));
        InstallRequest install{request.bundle_url(), false, false, {}};
        Status result = engine->run_update(install, /*detached_jump=*/true);
        if (!result.ok()) log.error(result.error().message());
        return result;
    };
    const std::string shown = socket.shown;
    UpdateServer server(std::move(socket), modes, std::move(run_one), log);
    log.info("listening on " + shown);
    Status served = server.serve();
    if (!served.ok()) {
        logger.write(LogLevel::error, "serve", served.error().message());
        return exit_code(served.error().kind());
    }
    return 0;
}

// `request`: the client of `serve`.
int request(const SocketPlace& socket, const std::string& bundle, const std::string& mode_text,
            const Logger& logger, const std::string& program) {
    wire::UpdateNodeRequest request;
    request.set_bundle_url(bundle);
    wire::ActivationMode mode = wire::ACTIVATION_INVALID;
    if (mode_text == "none") mode = wire::ACTIVATION_NONE;
    else if (mode_text == "reboot") mode = wire::ACTIVATION_REBOOT;
    else if (mode_text == "kexec") mode = wire::ACTIVATION_KEXEC;
    else if (mode_text != "invalid") {
        logger.write(LogLevel::error, "request",
                     "--mode: expected none, reboot or kexec, got '" + mode_text + "' (see '" +
                         program + " --help')");
        return exit_code(ErrorKind::usage);
    }
    request.set_activation_mode(mode);
    Result<ServeReply> reply = send_update_request(socket, request);
    if (!reply.ok()) {
        logger.write(LogLevel::error, "request", reply.error().message());
        return exit_code(reply.error().kind());
    }
    switch (reply->code) {
        case ServeCode::ok: return 0;
        case ServeCode::busy:
            logger.write(LogLevel::error, "request", "refused: " + reply->message);
            return exit_code(ErrorKind::busy);
        case ServeCode::forbidden:
            logger.write(LogLevel::error, "request", "refused: " + reply->message);
            return exit_code(ErrorKind::activation);
        case ServeCode::rejected:
            logger.write(LogLevel::error, "request", "bundle refused: " + reply->message);
            return exit_code(ErrorKind::rejected);
        case ServeCode::invalid_argument:
        case ServeCode::unavailable:
            logger.write(LogLevel::error, "request", "invalid request: " + reply->message);
            return exit_code(ErrorKind::usage);
        default:
            logger.write(LogLevel::error, "request", "update failed: " + reply->message);
            return exit_code(ErrorKind::activation);
    }
}

void print_help(const CliDefaults& d, const po::options_description& desc) {
    std::cout << "Usage:\n"
              << "  " << d.program << " [run] --policy FILE [--dry-run] [--sysroot DIR] "
              << "[--plugin-dir DIR] [--set KEY=VALUE ...] [--log-level LEVEL] [--bundle SRC]\n"
              << "  " << d.program << " status --policy FILE [--json]\n"
              << "  " << d.program << " mark-good --policy FILE\n"
              << "  " << d.program << " assess --policy FILE\n"
              << "  " << d.program << " serve --policy FILE [--policy FILE ...] [--socket PATH]\n"
              << "  " << d.program << " request --bundle URL --mode none|reboot|kexec "
                 "[--socket PATH]\n"
              << (d.bundle_command ? "  " + d.program +
                                         " bundle keygen|create|verify|info ... (see '" +
                                         d.program + " bundle --help')\n"
                                   : std::string())
              << "  " << d.program << " --help | --version\n\n"
              << "Runs the activation pipeline a policy describes: takeover (kexec into an "
                 "embedded agent)\nor an A/B slot update (install a bundle, then EFI BootNext or "
                 "kexec).\n\n"
              << desc << "\nExit codes: 0 ok, 1 internal error, 2 usage, 3 policy, 4 plugin load, "
                         "5 invalid input,\n6 activation failed, 7 another activation in progress, "
                         "8 bundle rejected.\n";
}

int fail(const Logger& logger, const Error& error) {
    logger.write(LogLevel::error, "activate", error.message());
    return exit_code(error.kind());
}

// One TakeoverResponse carrying the error, for a client that decodes stdout whatever happened.
void answer_takeover_error(const Error& error) {
    wire::TakeoverResponse response;
    response.mutable_error()->set_message(error.message());
    const std::string bytes = response.SerializeAsString();
    size_t off = 0;
    while (off < bytes.size()) {
        const ssize_t n = ::write(STDOUT_FILENO, bytes.data() + off, bytes.size() - off);
        if (n <= 0) return;  // the error still goes to stderr and the exit code
        off += size_t(n);
    }
}

bool speaks_stdio_protocol(const YAML::Node& root) {
    const YAML::Node& const_root = root;  // operator[] on a const node never inserts
    const YAML::Node protocol = const_root["protocol"];
    return protocol && protocol.IsScalar() && protocol.Scalar() == "stdio-protobuf";
}

}  // namespace

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

int run_cli(int argc, char** argv, const CliDefaults& defaults) {
    Logger logger;
    std::string command = "run";
    int first = 1;
    if (argc > 1 && argv[1][0] != '-') {
        command = argv[1];
        first = 2;
    }
    if (command == "bundle") {
        if (!defaults.bundle_command)
            return fail(logger, usage_error(defaults.program, "'bundle' is not part of " +
                                                                  defaults.program +
                                                                  "; use the activate binary"));
        return defaults.bundle_command(argc - 1, argv + 1, defaults.program);
    }
    if (command != "run" && command != "status" && command != "mark-good" &&
        command != "assess" && command != "serve" && command != "request")
        return fail(logger, usage_error(defaults.program, "unknown command '" + command + "'"));

    CommonOptions common;
    bool dry_run = false, json = false, progress = false, allow_downgrade = false, force = false;
    std::string bundle, socket = kDefaultSocketPath, mode;
    po::options_description desc("Options");
    desc.add_options()("help,h", "show this help")("version", "show the version");
    add_common(desc, common);
    desc.add_options()
        ("dry-run", po::bool_switch(&dry_run), "print the resolved plan on stdout; touch nothing")
        ("bundle", po::value(&bundle), "bundle to install: a path or an http(s) URL")
        ("progress", po::bool_switch(&progress), "report write progress on stderr")
        ("allow-downgrade", po::bool_switch(&allow_downgrade),
         "install a bundle older than the running slot")
        ("force", po::bool_switch(&force),
         "install even while the running slot is on trial (overwrites the only known-good slot)")
        ("json", po::bool_switch(&json), "status: print JSON")
        ("socket", po::value(&socket), "serve/request: the UNIX socket (default "
                                       "/run/activate/activate.sock under the sysroot)")
        ("mode", po::value(&mode), "request: activation mode none, reboot or kexec");

    po::variables_map vm;
    try {
        po::store(po::command_line_parser(argc - first + 1, argv + first - 1)
                      .options(desc)
                      .run(),
                  vm);
        po::notify(vm);
    } catch (const po::error& e) {
        return fail(logger, usage_error(defaults.program, e.what()));
    }
    if (vm.count("help")) {
        print_help(defaults, desc);
        return 0;
    }
    if (vm.count("version")) {
        std::cout << defaults.program << " " << ACTIVATE_VERSION << " (plugin ABI "
                  << kPluginAbiVersion << ")\n";
        return 0;
    }
    // A takeover client reads exactly one TakeoverResponse from stdout, so a takeover run answers
    // the errors found before its pipeline starts (options, policy, plugins) too. The takeover
    // binary always speaks the protocol; activate does when its policy says so.
    bool answers_takeover = command == "run" && !dry_run && !defaults.embedded_policy.empty();
    auto refuse = [&](const Error& error) {
        if (answers_takeover) answer_takeover_error(error);
        return fail(logger, error);
    };
    LogLevel level;
    if (!parse_log_level(common.log_level, &level))
        return refuse(usage_error(defaults.program,
                                  "--log-level: unknown level '" + common.log_level + "'"));
    logger.set_threshold(level);
    if (command == "request") {
        if (bundle.empty() || mode.empty())
            return fail(logger, usage_error(defaults.program, "request needs --bundle and --mode"));
        Result<SocketPlace> place = vm.count("socket")
                                        ? socket_place(socket)
                                        : default_client_socket(Sysroot(common.sysroot));
        if (!place.ok()) return fail(logger, place.error());
        return request(*place, bundle, mode, logger, defaults.program);
    }
    if (command != "run" && command != "request" && (dry_run || !bundle.empty()))
        return fail(logger, usage_error(defaults.program,
                                        "--dry-run and --bundle belong to 'run', not '" + command + "'"));
    if (command != "status" && json)
        return fail(logger, usage_error(defaults.program, "--json belongs to 'status'"));
    if (command != "run" && force)
        return fail(logger, usage_error(defaults.program, "--force belongs to 'run'"));

    Sysroot sysroot(common.sysroot);
    if (!std::filesystem::is_directory(sysroot.root()))
        return refuse(usage_error(defaults.program,
                                  "--sysroot " + common.sysroot + " is not a directory"));
    if (command == "serve") {
        if (common.policies.empty())
            return fail(logger, usage_error(defaults.program, "serve needs at least one --policy"));
        Result<SocketPlace> place = vm.count("socket")
                                        ? socket_place(socket)
                                        : default_server_socket(sysroot, Log(&logger, "serve"));
        if (!place.ok()) return fail(logger, place.error());
        return serve(common, defaults, std::move(*place), sysroot, logger);
    }
    if (!bundle.empty()) {
        std::error_code ec;
        const std::filesystem::path cwd = std::filesystem::current_path(ec);
        Result<std::string> resolved = resolve_bundle_argument(bundle, sysroot, cwd);
        if (!resolved.ok())
            return refuse(usage_error(defaults.program, resolved.error().message()));
        bundle = *resolved;
    }
    Result<PolicySource> source = the_policy(common, defaults);
    if (!source.ok()) return refuse(source.error());
    if (command == "run" && !dry_run && speaks_stdio_protocol(source->root)) answers_takeover = true;
    Result<std::unique_ptr<Engine>> engine =
        build_engine(*source, common, defaults, sysroot, logger);
    if (!engine.ok()) return refuse(engine.error());
    Engine& e = **engine;

    Status result;
    if (command == "status") {
        // The human form is the same document, indented.
        Result<std::string> status = e.status_json(json ? -1 : 2);
        if (!status.ok()) return fail(logger, status.error());
        std::cout << *status << "\n";
        return 0;
    }
    if (command == "mark-good") {
        result = e.mark_good();
    } else if (command == "assess") {
        result = e.assess();
    } else if (dry_run) {
        e.print_plan(std::cout);
        std::cout.flush();
        return 0;
    } else if (e.policy().protocol == Protocol::stdio_protobuf) {
        result = e.run_takeover(STDIN_FILENO, STDOUT_FILENO);
    } else {
        InstallRequest request{bundle, progress || ::isatty(STDERR_FILENO), allow_downgrade, {}};
        request.force = force;
        result = e.run_update(request);
    }
    if (!result.ok()) return fail(logger, result.error());
    return 0;
}

}  // namespace activate
