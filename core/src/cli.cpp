// `activate [run|status|mark-good|assess|serve|request] ...`: option parsing and dispatch. stdout
// carries only protocol output (the takeover response, --json output, the dry-run plan);
// everything else goes to stderr. Every verb returns its failure as an Error, which run_cli alone
// reports.
#include <google/protobuf/stubs/logging.h>
#include <unistd.h>

#include <activate/cli.hpp>
#include <activate/engine.hpp>
#include <activate/fd.hpp>
#include <activate/plugin_registry.hpp>
#include <activate/policy.hpp>
#include <activate/serve.hpp>
#include <boost/program_options.hpp>
#include <iostream>
#include <string_view>
#include <variant>

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
    desc.add_options()("policy", po::value(&o.policies)->composing(),
                       "policy file (YAML); 'serve' takes one per activation mode")(
        "sysroot", po::value(&o.sysroot)->default_value("/"),
        "act on this directory instead of the live system (nothing outside it is touched)")(
        "plugin-dir", po::value(&o.plugin_dirs)->composing(),
        "add a directory of plugin .so files, searched before $ACTIVATE_PLUGIN_PATH and the "
        "built-in plugins (repeatable; the first match wins)")(
        "set", po::value(&o.overrides)->composing(),
        "override a policy value by dotted path, KEY=VALUE (repeatable)")(
        "log-level", po::value(&o.log_level)->default_value("info"),
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
    // --plugin-dir and $ACTIVATE_PLUGIN_PATH add directories in front of the built-in plugins:
    // the engine's plugin directory, or the plugins linked into a self-contained binary
    // (takeover), which has no directory of its own.
    std::optional<std::filesystem::path> builtin_dir;
    if (defaults.builtins.empty()) builtin_dir = builtin_plugin_dir();
    PluginRegistry registry(defaults.builtins, plugin_search_path(o.plugin_dirs, builtin_dir));
    return Engine::create(std::move(policy), registry, sysroot, logger);
}

// `serve`: every policy is validated up front; each request then runs on a fresh engine built
// from the policy whose activation_mode matches the request (NONE: the first policy, with its
// mode overridden to none). Returns only when the server fails to start or stops with an error.
Status serve(const CommonOptions& o, const CliDefaults& defaults,
             std::variant<SocketPlace, InheritedSocket> socket, const Sysroot& sysroot,
             const Logger& logger) {
    std::vector<std::pair<std::string, PolicySource>> policies;
    for (const std::string& file : o.policies) {
        ACTIVATE_ASSIGN(PolicySource source, load_policy(file, o));
        ACTIVATE_ASSIGN(std::unique_ptr<Engine> engine,
                        build_engine(source, o, defaults, sysroot, logger));
        policies.emplace_back(engine->policy().mode, std::move(source));
    }
    Log log(&logger, "serve");
    // The policy a request for `wanted` runs with: the one of that mode (the last, if several);
    // for none, failing that, the first, its mode overridden. Null: serve has none for it.
    auto policy_for =
        [&](const std::string& wanted) -> const std::pair<std::string, PolicySource>* {
        const std::pair<std::string, PolicySource>* chosen = nullptr;
        for (const auto& entry : policies)
            if (entry.first == wanted) chosen = &entry;
        if (!chosen && wanted == "none" && !policies.empty()) chosen = &policies.front();
        return chosen;
    };
    std::vector<wire::ActivationMode> modes;
    for (wire::ActivationMode m :
         {wire::ACTIVATION_NONE, wire::ACTIVATION_REBOOT, wire::ACTIVATION_KEXEC})
        if (policy_for(activation_mode_of(m))) modes.push_back(m);
    UpdateRunner run_one = [&](const wire::UpdateNodeRequest& request) -> Status {
        const std::string wanted = activation_mode_of(request.activation_mode());
        const auto* chosen = policy_for(wanted);
        // The server answers `unavailable` before calling us for modes without a policy.
        if (!chosen)
            return Error(ErrorKind::internal,
                         "no policy for activation mode " + wanted + " was given to serve");
        PolicySource source{YAML::Clone(chosen->second.root), chosen->second.name};
        if (chosen->first != wanted)
            ACTIVATE_TRY(apply_policy_override(source.root, "activation_mode=none"));
        log.info("update requested: " + request.bundle_url() + " (" + wanted + ")");
        ACTIVATE_ASSIGN(std::unique_ptr<Engine> engine,
                        build_engine(source, o, defaults, sysroot, logger));
        InstallRequest install{request.bundle_url(), false, false, {}};
        Status result = engine->run_update(install, /*detached_jump=*/true);
        if (!result.ok()) log.error(result.error().message());
        return result;
    };
    if (auto* inherited = std::get_if<InheritedSocket>(&socket)) {
        log.info("serving on " + inherited->shown);
        UpdateServer server(std::move(*inherited), modes, std::move(run_one), log);
        return server.serve();
    }
    auto& place = std::get<SocketPlace>(socket);
    log.info("listening on " + place.shown);
    UpdateServer server(std::move(place), modes, std::move(run_one), log);
    return server.serve();
}

// `request`: the client of `serve`. The server's answer other than ok is this command's error.
Status request(const SocketPlace& socket, const std::string& bundle, const std::string& mode_text,
               const std::string& program) {
    wire::UpdateNodeRequest request;
    request.set_bundle_url(bundle);
    wire::ActivationMode mode = wire::ACTIVATION_INVALID;
    if (mode_text == "none") mode = wire::ACTIVATION_NONE;
    else if (mode_text == "reboot") mode = wire::ACTIVATION_REBOOT;
    else if (mode_text == "kexec") mode = wire::ACTIVATION_KEXEC;
    else if (mode_text != "invalid")
        return usage_error(program,
                           "--mode: expected none, reboot or kexec, got '" + mode_text + "'");
    request.set_activation_mode(mode);
    ACTIVATE_ASSIGN(ServeReply reply, send_update_request(socket, request));
    switch (reply.code) {
        case ServeCode::ok: return {};
        case ServeCode::busy: return Error(ErrorKind::busy, "refused: " + reply.message);
        case ServeCode::forbidden: return Error(ErrorKind::activation, "refused: " + reply.message);
        case ServeCode::rejected:
            return Error(ErrorKind::rejected, "bundle refused: " + reply.message);
        case ServeCode::invalid_argument:
        case ServeCode::unavailable:
            return Error(ErrorKind::usage, "invalid request: " + reply.message);
        default: return Error(ErrorKind::activation, "update failed: " + reply.message);
    }
}

std::string tool_usage(const CliDefaults& d) {
    std::string lines;
    for (const ToolVerb& verb : d.tool_verbs) lines += "  " + d.program + " " + verb.usage + "\n";
    return lines;
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
              << tool_usage(d) << "  " << d.program << " --help | --version\n\n"
              << "Runs the activation pipeline a policy describes: takeover (kexec into an "
                 "embedded agent)\nor an A/B slot update (install a bundle, then EFI BootNext or "
                 "kexec).\n\n"
              << desc << "\nExit codes: 0 ok, 1 internal error, 2 usage, 3 policy, 4 plugin load, "
                         "5 invalid input,\n6 activation failed, 7 another activation in progress, "
                         "8 bundle rejected.\n";
}

// One TakeoverResponse carrying the error, for a client that decodes stdout whatever happened.
void answer_takeover_error(const Error& error) {
    wire::TakeoverResponse response;
    response.mutable_error()->set_message(error.message());
    // Best effort: the error still goes to stderr and the exit code.
    (void)write_all(STDOUT_FILENO, response.SerializeAsString());
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

namespace {

// libprotobuf prints its own diagnostics (e.g. "String field '...' contains invalid UTF-8 data
// when parsing a protocol buffer") straight to stderr in its own format. While this lives they go
// through the logger instead, as component "protobuf", one line each. They accompany a parse or
// serialize failure that the caller reports itself as the error, so protobuf's ERROR is logged
// as a warning (the detail, e.g. which field) and only FATAL as an error.
class ProtobufLogRoute {
  public:
    explicit ProtobufLogRoute(const Logger* logger) {
        sink_ = logger;
        previous_ = google::protobuf::SetLogHandler(&handle);
    }
    ~ProtobufLogRoute() {
        google::protobuf::SetLogHandler(previous_);
        sink_ = nullptr;
    }
    ProtobufLogRoute(const ProtobufLogRoute&) = delete;
    ProtobufLogRoute& operator=(const ProtobufLogRoute&) = delete;

  private:
    static void handle(google::protobuf::LogLevel level, const char* /*file*/, int /*line*/,
                       const std::string& message) {
        if (!sink_) return;
        LogLevel ours = LogLevel::warning;
        if (level == google::protobuf::LOGLEVEL_INFO) ours = LogLevel::debug;
        if (level == google::protobuf::LOGLEVEL_FATAL) ours = LogLevel::error;
        std::string line = message;
        for (char& c : line)
            if (c == '\n' || c == '\r') c = ' ';
        while (!line.empty() && line.back() == ' ') line.pop_back();
        sink_->write(ours, "protobuf", line);
    }

    static inline const Logger* sink_ = nullptr;
    google::protobuf::LogHandler* previous_ = nullptr;
};

// What one run of the command line reports through: the logger, and whether a failure is also
// answered on stdout as a TakeoverResponse.
struct CliRun {
    Logger logger;
    // A takeover client reads exactly one TakeoverResponse from stdout, so a takeover run answers
    // the errors found before its pipeline starts (options, policy, plugins) too; the pipeline
    // answers its own. The takeover binary always speaks the protocol; activate does when its
    // policy says so.
    bool answers_takeover = false;
};

// Parses the command line and runs the verb. Every failure comes back as the Error, which
// run_cli alone reports: one error line on stderr, the exit code of its kind.
Status run_verb(int argc, char** argv, const CliDefaults& defaults, CliRun& cli) {
    const Logger& logger = cli.logger;
    std::string command = "run";
    int first = 1;
    if (argc > 1 && argv[1][0] != '-') {
        command = argv[1];
        first = 2;
    }
    if (command != "run" && command != "status" && command != "mark-good" &&
        command != "assess" && command != "serve" && command != "request")
        return usage_error(defaults.program, "unknown command '" + command + "'");

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
        return usage_error(defaults.program, e.what());
    }
    if (vm.count("help")) {
        print_help(defaults, desc);
        return {};
    }
    if (vm.count("version")) {
        std::cout << defaults.program << " " << ACTIVATE_VERSION << " (plugin ABI "
                  << kPluginAbiVersion << ")\n";
        return {};
    }
    cli.answers_takeover = command == "run" && !dry_run && !defaults.embedded_policy.empty();
    LogLevel level;
    if (!parse_log_level(common.log_level, &level))
        return usage_error(defaults.program,
                           "--log-level: unknown level '" + common.log_level + "'");
    cli.logger.set_threshold(level);
    if (command == "request") {
        if (bundle.empty() || mode.empty())
            return usage_error(defaults.program, "request needs --bundle and --mode");
        ACTIVATE_ASSIGN(SocketPlace place, vm.count("socket")
                                               ? socket_place(socket)
                                               : default_client_socket(Sysroot(common.sysroot)));
        return request(place, bundle, mode, defaults.program);
    }
    if (command != "run" && (dry_run || !bundle.empty()))
        return usage_error(defaults.program,
                           "--dry-run and --bundle belong to 'run', not '" + command + "'");
    if (command != "status" && json)
        return usage_error(defaults.program, "--json belongs to 'status'");
    if (command != "run" && force) return usage_error(defaults.program, "--force belongs to 'run'");

    Sysroot sysroot(common.sysroot);
    std::error_code ec;
    if (!std::filesystem::is_directory(sysroot.root(), ec))
        return usage_error(defaults.program, "--sysroot " + common.sysroot + " is not a directory" +
                                                 (ec ? " (" + ec.message() + ")" : std::string()));
    if (command == "serve") {
        if (common.policies.empty())
            return usage_error(defaults.program, "serve needs at least one --policy");
        // Socket activation (activate.socket): systemd made the socket; --socket would name
        // another one, and which of the two is meant cannot be guessed.
        const Log log(&logger, "serve");
        ACTIVATE_ASSIGN(std::optional<InheritedSocket> inherited, socket_from_systemd(log));
        if (inherited) {
            if (vm.count("socket"))
                return usage_error(defaults.program,
                                   "--socket and a socket passed by systemd (LISTEN_FDS): "
                                   "give one");
            return serve(common, defaults, std::move(*inherited), sysroot, logger);
        }
        ACTIVATE_ASSIGN(SocketPlace place, vm.count("socket")
                                               ? socket_place(socket)
                                               : default_server_socket(sysroot, log));
        return serve(common, defaults, std::move(place), sysroot, logger);
    }
    if (!bundle.empty()) {
        const std::filesystem::path cwd = std::filesystem::current_path(ec);
        Result<std::string> resolved = resolve_bundle_argument(bundle, sysroot, cwd);
        if (!resolved.ok()) return usage_error(defaults.program, resolved.error().message());
        bundle = *resolved;
    }
    ACTIVATE_ASSIGN(PolicySource source, the_policy(common, defaults));
    if (command == "run" && !dry_run && speaks_stdio_protocol(source.root))
        cli.answers_takeover = true;
    ACTIVATE_ASSIGN(std::unique_ptr<Engine> engine,
                    build_engine(source, common, defaults, sysroot, logger));
    Engine& e = *engine;

    if (command == "status") {
        // The human form is the same document, indented.
        ACTIVATE_ASSIGN(std::string status, e.status_json(json ? -1 : 2));
        std::cout << status << "\n";
        return {};
    }
    if (command == "mark-good") return e.mark_good();
    if (command == "assess") return e.assess();
    if (dry_run) {
        e.print_plan(std::cout);
        std::cout.flush();
        return {};
    }
    if (e.policy().protocol == Protocol::stdio_protobuf) {
        cli.answers_takeover = false;  // from here on the pipeline answers by itself
        return e.run_takeover(STDIN_FILENO, STDOUT_FILENO);
    }
    InstallRequest install{bundle, progress || ::isatty(STDERR_FILENO), allow_downgrade, {}};
    install.force = force;
    return e.run_update(install);
}

}  // namespace

int run_cli(int argc, char** argv, const CliDefaults& defaults) {
    CliRun cli;
    ProtobufLogRoute protobuf_logs(&cli.logger);
    const std::string verb = argc > 1 ? argv[1] : "";
    const ToolVerb* tool = nullptr;
    for (const ToolVerb& t : defaults.tool_verbs)
        if (t.name == verb) tool = &t;
    Status result;
    // Library exceptions are turned into Errors where they are called; this catches one that was
    // missed, so it is reported like any error instead of aborting the process.
    try {
        if (tool)
            result = tool->run(argc - 1, argv + 1, defaults.program);
        else if (verb == "bundle" || verb == "takeover-message")
            result = usage_error(defaults.program, "'" + verb + "' is not part of " +
                                                       defaults.program + "; use the activate binary");
        else
            result = run_verb(argc, argv, defaults, cli);
    } catch (const std::exception& e) {
        result = Error(ErrorKind::internal, std::string("unexpected exception: ") + e.what());
    }
    if (result.ok()) return 0;
    if (cli.answers_takeover) answer_takeover_error(result.error());
    cli.logger.write(LogLevel::error, "activate", result.error().message());
    return exit_code(result.error().kind());
}

}  // namespace activate
