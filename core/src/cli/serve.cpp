// `activate serve`: the node-management endpoint (docs/serve.md). Every policy is validated up
// front; each request then runs on a fresh engine built from the policy of its activation mode.
#include <activate/policy.hpp>
#include <activate/serve.hpp>
#include <algorithm>
#include <utility>
#include <variant>

#include "verb.hpp"

namespace activate::cli {
namespace {

po::options_description serve_options() {
    po::options_description desc("Options of 'serve'");
    desc.add(help_options())
        .add(policy_options("policy file (YAML), one per activation mode it serves (repeatable)"))
        .add(system_options());
    desc.add_options()("socket", po::value<std::string>(),
                       "the UNIX socket to listen on (default /run/activate/activate.sock under "
                       "the sysroot)");
    return desc;
}

// The policies serve was given, each with the activation mode it declares.
class ServedPolicies {
  public:
    // Every policy is validated up front, its plugins created: a bad one stops serve at start.
    static Result<ServedPolicies> load(const CommonOptions& o, const CliDefaults& defaults,
                                       const Sysroot& sysroot, const Logger& logger) {
        ServedPolicies served;
        for (const std::string& file : o.policies) {
            ACTIVATE_ASSIGN(PolicySource source, load_policy(file, o));
            ACTIVATE_ASSIGN(std::unique_ptr<Engine> engine,
                            build_engine(source, o, defaults, sysroot, logger));
            served.policies_.emplace_back(engine->policy().mode, std::move(source));
        }
        return served;
    }

    // The modes requests may ask for, by name: each policy's, in the order given, and none.
    std::vector<std::string> modes() const {
        std::vector<std::string> modes;
        for (const Entry& entry : policies_)
            if (std::find(modes.begin(), modes.end(), entry.first) == modes.end())
                modes.push_back(entry.first);
        if (find("none") && std::find(modes.begin(), modes.end(), "none") == modes.end())
            modes.push_back("none");
        return modes;
    }

    // A fresh copy of the policy a request for `wanted` runs with.
    Result<PolicySource> for_mode(const std::string& wanted) const {
        const Entry* chosen = find(wanted);
        // The server answers `unavailable` before calling us for modes without a policy.
        if (!chosen)
            return Error(ErrorKind::internal,
                         "no policy for activation mode " + wanted + " was given to serve");
        PolicySource source{YAML::Clone(chosen->second.root), chosen->second.name};
        if (chosen->first != wanted)
            ACTIVATE_TRY(apply_policy_override(source.root, "activation_mode=none"));
        return source;
    }

  private:
    using Entry = std::pair<std::string, PolicySource>;

    // The policy of mode `wanted` (the last, if several); for none, failing that, the first,
    // whose mode for_mode overrides to none. Null: none fits.
    const Entry* find(const std::string& wanted) const {
        const Entry* chosen = nullptr;
        for (const Entry& entry : policies_)
            if (entry.first == wanted) chosen = &entry;
        if (!chosen && wanted == "none" && !policies_.empty()) chosen = &policies_.front();
        return chosen;
    }

    std::vector<Entry> policies_;
};

// Serves until the server fails to start or stops with an error; each request runs on a fresh
// engine built from the policy of its mode.
Status serve(const CommonOptions& o, const CliDefaults& defaults,
             std::variant<SocketPlace, InheritedSocket> socket, const Sysroot& sysroot,
             const Logger& logger) {
    ACTIVATE_ASSIGN(const ServedPolicies policies,
                    ServedPolicies::load(o, defaults, sysroot, logger));
    const std::vector<std::string> modes = policies.modes();
    Log log(&logger, "serve");
    UpdateRunner run_one = [&](const AcceptedRequest& request) -> Status {
        ACTIVATE_ASSIGN(PolicySource source, policies.for_mode(request.mode));
        log.info("update requested: " + escape_bytes(request.bundle_url) + " (" + request.mode +
                 ")");
        ACTIVATE_ASSIGN(std::unique_ptr<Engine> engine,
                        build_engine(source, o, defaults, sysroot, logger));
        InstallRequest install{request.bundle_url, false, false, {}};
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

Status run_serve(const VerbCall& call) {
    const CommonOptions o = common_options(call.options);
    ACTIVATE_TRY(apply_log_level(call, o));
    const Sysroot sysroot(o.sysroot);
    ACTIVATE_TRY(check_sysroot(call, sysroot, o));
    if (o.policies.empty()) return call.usage("serve needs at least one --policy");
    const bool socket_given = call.options.count("socket") > 0;
    // Socket activation (activate.socket): systemd made the socket; --socket would name
    // another one, and which of the two is meant cannot be guessed.
    const Log log(&call.cli.logger, "serve");
    ACTIVATE_ASSIGN(std::optional<InheritedSocket> inherited, socket_from_systemd(log));
    if (inherited) {
        if (socket_given)
            return call.usage("--socket and a socket passed by systemd (LISTEN_FDS): give one");
        return serve(o, call.defaults, std::move(*inherited), sysroot, call.cli.logger);
    }
    ACTIVATE_ASSIGN(SocketPlace place, socket_given
                                           ? socket_place(call.options["socket"].as<std::string>())
                                           : default_server_socket(sysroot, log));
    return serve(o, call.defaults, std::move(place), sysroot, call.cli.logger);
}

}  // namespace

const Verb kServeVerb{"serve", "serve update requests on a UNIX socket (docs/serve.md)",
                      "serve --policy FILE [--policy FILE ...] [--socket PATH]", serve_options,
                      run_serve};

}  // namespace activate::cli
