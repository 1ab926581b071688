// `activate [VERB] ...`: the verb table and the dispatch. The verb named first (run when none is)
// parses the command line with its own options only (core/src/cli/<verb>.cpp); an option of another
// verb is refused naming the verb(s) that take it. stdout carries only protocol output (the
// takeover response, --json output, the dry-run plan, the help); everything else goes to stderr.
// Every verb returns its failure as an Error, which run_cli alone reports.
#include <google/protobuf/stubs/logging.h>
#include <unistd.h>

#include <activate/cli.hpp>
#include <activate/fd.hpp>
#include <algorithm>
#include <iostream>
#include <string_view>

#include "cli/verb.hpp"
#include "takeover.pb.h"

namespace activate {

namespace {

using cli::Verb;
namespace po = boost::program_options;

// The engine verbs in the order `--help` lists them; the first is the default.
const Verb* const kVerbs[] = {&cli::kRunVerb,    &cli::kStatusVerb, &cli::kMarkGoodVerb,
                              &cli::kAssessVerb, &cli::kServeVerb,  &cli::kRequestVerb};

const Verb* find_verb(std::string_view name) {
    for (const Verb* verb : kVerbs)
        if (verb->name == name) return verb;
    return nullptr;
}

std::string tool_usage(const CliDefaults& d) {
    std::string lines;
    for (const ToolVerb& verb : d.tool_verbs) lines += "  " + d.program + " " + verb.usage + "\n";
    return lines;
}

const char kExitCodes[] =
    "Exit codes: 0 ok, 1 internal error, 2 usage, 3 policy, 4 plugin load, 5 invalid input,\n"
    "6 activation failed, 7 another activation in progress, 8 bundle rejected.\n";

// `activate --help`: every verb's synopsis, then each verb with its summary.
void print_help(const CliDefaults& d) {
    std::cout << "Usage:\n";
    for (const Verb* verb : kVerbs) std::cout << "  " << d.program << " " << verb->synopsis << "\n";
    std::cout << tool_usage(d) << "  " << d.program << " VERB --help | --help | --version\n\n"
              << "Runs the activation pipeline a policy describes: takeover (kexec into an "
                 "embedded agent)\nor an A/B slot update (install a bundle, then EFI BootNext or "
                 "kexec).\n\nVerbs:\n";
    std::size_t width = 0;
    for (const Verb* verb : kVerbs) width = std::max(width, verb->name.size());
    for (const ToolVerb& verb : d.tool_verbs) width = std::max(width, verb.name.size());
    auto line = [&](std::string_view name, std::string_view summary) {
        std::cout << "  " << name << std::string(width + 2 - name.size(), ' ') << summary << "\n";
    };
    for (const Verb* verb : kVerbs) line(verb->name, verb->summary);
    for (const ToolVerb& verb : d.tool_verbs) line(verb.name, verb.summary);
    std::cout << "\n'" << d.program << " VERB --help' shows the options of VERB.\n\n" << kExitCodes;
}

// `activate VERB --help`: that verb's options only.
void print_verb_help(const CliDefaults& d, const Verb& verb, const po::options_description& desc) {
    std::cout << "Usage: " << d.program << " " << verb.synopsis << "\n\n"
              << verb.summary << ".\n\n"
              << desc << "\n"
              << kExitCodes;
}

// An option `verb` does not take: when other verbs take it, say which, so that the user sees
// the mix-up rather than a bare "unrecognised option".
Error refuse_unknown_option(const CliDefaults& d, const Verb& verb, const po::unknown_option& e) {
    const std::string typed = e.get_option_name();
    const std::string name = typed.substr(0, typed.find('='));
    const std::string bare = name.substr(std::min(name.find_first_not_of('-'), name.size()));
    std::vector<std::string> takers;
    if (!bare.empty())
        for (const Verb* other : kVerbs)
            if (other != &verb && other->options().find_nothrow(bare, /*approx=*/false))
                takers.push_back("'" + std::string(other->name) + "'");
    if (takers.empty()) return cli::usage_error(d, verb, e.what());
    std::string list = takers.front();
    for (std::size_t i = 1; i < takers.size(); ++i)
        list += (i + 1 == takers.size() ? " and " : ", ") + takers[i];
    return cli::usage_error(
        d, verb, name + " belongs to " + list + ", not to '" + std::string(verb.name) + "'");
}

// Parses the command line with the verb's options and runs it. Every failure comes back as the
// Error, which run_cli alone reports: one error line on stderr, the exit code of its kind.
Status run_verb(int argc, char** argv, const CliDefaults& defaults, cli::CliRun& run) {
    const bool named = argc > 1 && argv[1][0] != '-';
    const Verb* verb = named ? find_verb(argv[1]) : kVerbs[0];
    if (!verb) {
        std::string known;
        for (const Verb* v : kVerbs) known += (known.empty() ? "" : ", ") + std::string(v->name);
        for (const ToolVerb& t : defaults.tool_verbs) known += ", " + t.name;
        return cli::usage_error(defaults.program, "unknown command '" + std::string(argv[1]) +
                                                      "'; the verbs are " + known);
    }
    const int first = named ? 2 : 1;
    const po::options_description desc = verb->options();
    po::variables_map vm;
    Status parsed;
    try {
        po::store(po::command_line_parser(argc - first + 1, argv + first - 1).options(desc).run(),
                  vm);
        po::notify(vm);
    } catch (const po::unknown_option& e) {
        parsed = refuse_unknown_option(defaults, *verb, e);
    } catch (const po::error& e) {
        parsed = cli::usage_error(defaults, *verb, e.what());
    }
    if (!parsed.ok()) {
        // A takeover run of the takeover binary answers its option errors too (a dry run's
        // stdout is the plan): the client decodes stdout whatever happened.
        const std::vector<std::string_view> args(argv + first, argv + argc);
        if (verb == &cli::kRunVerb && !defaults.embedded_policy.empty() &&
            std::find(args.begin(), args.end(), "--dry-run") == args.end())
            run.answers_takeover = true;
        return parsed;
    }
    if (vm.count("help")) {
        // Without a verb named, the help is the whole command's.
        if (named)
            print_verb_help(defaults, *verb, desc);
        else
            print_help(defaults);
        return {};
    }
    if (vm.count("version")) {
        std::cout << defaults.program << " " << ACTIVATE_VERSION << " (plugin ABI "
                  << kPluginAbiVersion << ")\n";
        return {};
    }
    return verb->run(cli::VerbCall{*verb, vm, defaults, run});
}

// One TakeoverResponse carrying the error, for a client that decodes stdout whatever happened.
void answer_takeover_error(const Error& error) {
    wire::TakeoverResponse response;
    response.mutable_error()->set_message(error.message());
    // Best effort: the error still goes to stderr and the exit code.
    (void)write_all(STDOUT_FILENO, response.SerializeAsString());
}

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

}  // namespace

int run_cli(int argc, char** argv, const CliDefaults& defaults) {
    cli::CliRun cli;
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
            result = cli::usage_error(
                defaults.program,
                "'" + verb + "' is not part of " + defaults.program + "; use the activate binary");
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
