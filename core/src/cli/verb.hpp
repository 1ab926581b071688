// The verb table of `activate` and `takeover`: what one verb is (its name, summary, the options it
// takes and its run function, one file each under core/src/cli/), and what the verbs share: the
// common options, the policy and the engine built from it. core/src/cli.cpp parses a command line
// with the named verb's options only and dispatches; a verb never sees another verb's options.
#pragma once

#include <yaml-cpp/yaml.h>

#include <activate/cli.hpp>
#include <activate/engine.hpp>
#include <activate/log.hpp>
#include <activate/sysroot.hpp>
#include <boost/program_options.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace activate::cli {

namespace po = boost::program_options;

// What one run of the command line reports through: the logger, and whether a failure is also
// answered on stdout as a TakeoverResponse.
struct CliRun {
    Logger logger;
    // A takeover client reads exactly one TakeoverResponse from stdout, so a takeover run answers
    // the errors found before its pipeline starts (log level, policy, plugins) too; the pipeline
    // answers its own. The takeover binary always speaks the protocol; activate does when its
    // policy says so.
    bool answers_takeover = false;
};

struct Verb;

// One verb being run: its own options parsed, the binary's defaults, and where it reports.
struct VerbCall {
    const Verb& verb;
    const po::variables_map& options;
    const CliDefaults& defaults;
    CliRun& cli;

    // A usage error pointing at this verb's help ("see 'activate status --help'").
    Error usage(const std::string& message) const;
};

struct Verb {
    std::string_view name;
    std::string_view summary;   // one line in `activate --help`
    std::string_view synopsis;  // after the program name, e.g. "status --policy FILE [--json]"
    po::options_description (*options)();  // every option it takes, --help and --version included
    Status (*run)(const VerbCall& call);
};

// The engine verbs, one file each; core/src/cli.cpp lists them in its table.
extern const Verb kRunVerb;
extern const Verb kStatusVerb;
extern const Verb kMarkGoodVerb;
extern const Verb kAssessVerb;
extern const Verb kServeVerb;
extern const Verb kRequestVerb;

// Option groups a verb assembles its options from.
// --help and --version: every verb.
po::options_description help_options();
// --sysroot and --log-level: every verb.
po::options_description system_options();
// --policy (its help line given, since serve takes several), --plugin-dir and --set: the verbs
// that load a policy.
po::options_description policy_options(const char* policy_help);

// The common options as parsed; absent ones keep their defaults.
struct CommonOptions {
    std::vector<std::string> policies;
    std::string sysroot = "/";
    std::vector<std::string> plugin_dirs;
    std::vector<std::string> overrides;
    std::string log_level = "info";
};
CommonOptions common_options(const po::variables_map& options);

// A usage error pointing at the help: the whole command's, or one verb's.
Error usage_error(const std::string& program, const std::string& message);
Error usage_error(const CliDefaults& defaults, const Verb& verb, const std::string& message);

// Sets the logger's threshold from --log-level.
Status apply_log_level(const VerbCall& call, const CommonOptions& o);
// --sysroot must be a directory; nothing else is examined yet.
Status check_sysroot(const VerbCall& call, const Sysroot& sysroot, const CommonOptions& o);

// A policy loaded and overridden (--set), not yet validated.
struct PolicySource {
    YAML::Node root;
    std::string name;
};
Result<PolicySource> load_policy(const std::string& file, const CommonOptions& o);
// The one policy of a verb: --policy, or the binary's embedded one.
Result<PolicySource> the_policy(const VerbCall& call, const CommonOptions& o);
// Validates the policy and creates every plugin: nothing has run yet.
Result<std::unique_ptr<Engine>> build_engine(const PolicySource& source, const CommonOptions& o,
                                             const CliDefaults& defaults, const Sysroot& sysroot,
                                             const Logger& logger);

// How status, mark-good and assess start: the log level, the sysroot, the policy, the engine;
// then `act` on the engine.
Status with_engine(const VerbCall& call, const std::function<Status(Engine&)>& act);

}  // namespace activate::cli
