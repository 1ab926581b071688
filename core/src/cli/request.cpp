// `activate request`: the client of `serve`. The server's answer other than ok is this command's
// error, of the kind README's exit-code table gives it.
#include <activate/serve.hpp>
#include <optional>

#include "verb.hpp"

namespace activate::cli {
namespace {

po::options_description request_options() {
    po::options_description desc("Options of 'request'");
    desc.add(help_options()).add(system_options());
    desc.add_options()("bundle", po::value<std::string>(),
                       "the bundle the server installs: a path on its system or an http(s) URL")(
        "mode", po::value<std::string>(),
        "activation mode, as a served policy's activation_mode names it: none, reboot, kexec, or "
        "a mode its activation plugin declares (e.g. soft-reboot)")(
        "socket", po::value<std::string>(),
        "the server's UNIX socket (default /run/activate/activate.sock under the sysroot)");
    return desc;
}

Status send_request(const VerbCall& call, const SocketPlace& socket, const std::string& bundle,
                    const std::string& mode_text) {
    // Which modes exist is the server's to say (its policies' plugins declare them); a name
    // that cannot be one is caught here.
    if (first_control_byte(mode_text) || mode_text.find(' ') != std::string::npos)
        return call.usage("--mode '" + escape_bytes(mode_text) +
                          "': a mode name has no whitespace or control characters");
    wire::UpdateNodeRequest request;
    request.set_bundle_url(bundle);
    request.set_activation_mode_name(mode_text);
    // The enum too where it has the mode: a server that predates the name reads only the enum.
    if (const std::optional<wire::ActivationMode> mode = wire_mode_of(mode_text))
        request.set_activation_mode(*mode);
    ACTIVATE_ASSIGN(ServeReply reply, send_update_request(socket, request));
    switch (reply.code) {
        case ServeCode::ok:
            return {};
        case ServeCode::busy:
            return Error(ErrorKind::busy, "refused: " + reply.message);
        case ServeCode::forbidden:
            return Error(ErrorKind::activation, "refused: " + reply.message);
        case ServeCode::rejected:
            return Error(ErrorKind::rejected, "bundle refused: " + reply.message);
        case ServeCode::invalid_argument:
        case ServeCode::unavailable:
            return Error(ErrorKind::usage, "invalid request: " + reply.message);
        default:
            return Error(ErrorKind::activation, "update failed: " + reply.message);
    }
}

Status run_request(const VerbCall& call) {
    const CommonOptions o = common_options(call.options);
    ACTIVATE_TRY(apply_log_level(call, o));
    const po::variables_map& options = call.options;
    if (!options.count("bundle") || !options.count("mode") ||
        options["bundle"].as<std::string>().empty() || options["mode"].as<std::string>().empty())
        return call.usage("request needs --bundle and --mode");
    ACTIVATE_ASSIGN(SocketPlace place, options.count("socket")
                                           ? socket_place(options["socket"].as<std::string>())
                                           : default_client_socket(Sysroot(o.sysroot)));
    return send_request(call, place, options["bundle"].as<std::string>(),
                        options["mode"].as<std::string>());
}

}  // namespace

const Verb kRequestVerb{"request", "ask a running 'serve' to install a bundle and activate it",
                        "request --bundle URL --mode MODE [--socket PATH]", request_options,
                        run_request};

}  // namespace activate::cli
