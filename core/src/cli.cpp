// `activate [run|status|mark-good] ...`: option parsing and dispatch. stdout carries only
// protocol output (the takeover response, --json output, the dry-run plan); everything else
// goes to stderr.
#include <activate/cli.hpp>

#include <unistd.h>

#include <boost/program_options.hpp>
#include <iostream>

#include <activate/engine.hpp>
#include <activate/plugin_registry.hpp>
#include <activate/policy.hpp>

namespace activate {

namespace po = boost::program_options;

namespace {

struct CommonOptions {
    std::string policy;
    std::string sysroot = "/";
    std::vector<std::string> plugin_dirs;
    std::vector<std::string> overrides;
    std::string log_level = "info";
};

void add_common(po::options_description& desc, CommonOptions& o) {
    desc.add_options()
        ("policy", po::value(&o.policy), "policy file (YAML)")
        ("sysroot", po::value(&o.sysroot)->default_value("/"),
         "act on this directory instead of the live system (nothing outside it is touched)")
        ("plugin-dir", po::value(&o.plugin_dirs)->composing(),
         "directory with plugin .so files (repeatable; default $ACTIVATE_PLUGIN_DIR or "
         "<prefix>/lib/activate/plugins)")
        ("set", po::value(&o.overrides)->composing(),
         "override a policy value by dotted path, KEY=VALUE (repeatable)")
        ("log-level", po::value(&o.log_level)->default_value("info"),
         "debug, info, warning or error");
}

Error usage_error(const std::string& program, const std::string& message) {
    return Error(ErrorKind::usage, message + " (see '" + program + " --help')");
}

// Loads, overrides and validates the policy and creates every plugin: nothing has run yet.
Result<std::unique_ptr<Engine>> build_engine(const CommonOptions& o, const CliDefaults& defaults,
                                             const Sysroot& sysroot, const Logger& logger) {
    Result<YAML::Node> root = Error(ErrorKind::usage, "");
    std::string policy_name;
    if (!o.policy.empty()) {
        policy_name = o.policy;
        root = load_policy_yaml(o.policy);
    } else if (!defaults.embedded_policy.empty()) {
        policy_name = defaults.embedded_policy_name;
        root = load_policy_yaml_text(defaults.embedded_policy, policy_name);
    } else {
        return usage_error(defaults.program, "--policy FILE is required");
    }
    if (!root.ok()) return root.error();
    for (const std::string& assignment : o.overrides)
        ACTIVATE_TRY(apply_policy_override(*root, assignment));
    ACTIVATE_ASSIGN(Policy policy, parse_policy(*root, policy_name));

    std::vector<std::filesystem::path> dirs(o.plugin_dirs.begin(), o.plugin_dirs.end());
    // Binaries with built-in plugins look in a directory only when told to.
    if (dirs.empty() && defaults.builtins.empty()) dirs.push_back(default_plugin_dir());
    PluginRegistry registry(defaults.builtins, dirs);
    return Engine::create(std::move(policy), registry, sysroot, logger);
}

void print_help(const CliDefaults& d, const po::options_description& desc) {
    std::cout << "Usage:\n"
              << "  " << d.program << " [run] --policy FILE [--dry-run] [--sysroot DIR] "
              << "[--plugin-dir DIR] [--set KEY=VALUE ...] [--log-level LEVEL] [--bundle SRC]\n"
              << "  " << d.program << " status --policy FILE [--json]\n"
              << "  " << d.program << " mark-good --policy FILE\n"
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

}  // namespace

int run_cli(int argc, char** argv, const CliDefaults& defaults) {
    Logger logger;
    std::string command = "run";
    int first = 1;
    if (argc > 1 && argv[1][0] != '-') {
        command = argv[1];
        first = 2;
    }
    if (command != "run" && command != "status" && command != "mark-good")
        return fail(logger, usage_error(defaults.program, "unknown command '" + command + "'"));

    CommonOptions common;
    bool dry_run = false, json = false, progress = false, allow_downgrade = false;
    std::string bundle;
    po::options_description desc("Options");
    desc.add_options()("help,h", "show this help")("version", "show the version");
    add_common(desc, common);
    desc.add_options()
        ("dry-run", po::bool_switch(&dry_run), "print the resolved plan on stdout; touch nothing")
        ("bundle", po::value(&bundle), "bundle to install: a path or an http(s) URL")
        ("progress", po::bool_switch(&progress), "report write progress on stderr")
        ("allow-downgrade", po::bool_switch(&allow_downgrade),
         "install a bundle older than the running slot")
        ("json", po::bool_switch(&json), "status: print JSON");

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
    LogLevel level;
    if (!parse_log_level(common.log_level, &level))
        return fail(logger, usage_error(defaults.program,
                                        "--log-level: unknown level '" + common.log_level + "'"));
    logger.set_threshold(level);
    if (command != "run" && (dry_run || !bundle.empty()))
        return fail(logger, usage_error(defaults.program,
                                        "--dry-run and --bundle belong to 'run', not '" + command + "'"));
    if (command != "status" && json)
        return fail(logger, usage_error(defaults.program, "--json belongs to 'status'"));

    Sysroot sysroot(common.sysroot);
    if (!std::filesystem::is_directory(sysroot.root()))
        return fail(logger, usage_error(defaults.program,
                                        "--sysroot " + common.sysroot + " is not a directory"));
    Result<std::unique_ptr<Engine>> engine = build_engine(common, defaults, sysroot, logger);
    if (!engine.ok()) return fail(logger, engine.error());
    Engine& e = **engine;

    Status result;
    if (command == "status") {
        Result<std::string> status = e.status_json();
        if (!status.ok()) return fail(logger, status.error());
        std::cout << *status << "\n";
        return 0;
    }
    if (command == "mark-good") {
        result = e.mark_good();
    } else if (dry_run) {
        e.print_plan(std::cout);
        std::cout.flush();
        return 0;
    } else if (e.policy().protocol == Protocol::stdio_protobuf) {
        result = e.run_takeover(STDIN_FILENO, STDOUT_FILENO);
    } else {
        InstallRequest request{bundle, progress || ::isatty(STDERR_FILENO), allow_downgrade};
        result = e.run_update(request);
    }
    if (!result.ok()) return fail(logger, result.error());
    return 0;
}

}  // namespace activate
