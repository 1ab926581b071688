// `activate request`: the client of `serve`. The server's answer other than ok is this command's
// error, of the kind README's exit-code table gives it.
#include <activate/serve.hpp>

#include "verb.hpp"

namespace activate::cli {
namespace {

po::options_description request_options() {
    po::options_description desc("Options of 'request'");
    desc.add(help_options()).add(system_options());
    desc.add_options()("bundle", po::value<std::string>(),
                       "the bundle the server installs: a path on its system or an http(s) URL")(
        "mode", po::value<std::string>(), "activation mode: none, reboot or kexec")(
        "socket", po::value<std::string>(),
        "the server's UNIX socket (default /run/activate/activate.sock under the sysroot)");
    return desc;
}

Status send_request(const VerbCall& call, const SocketPlace& socket, const std::string& bundle,
                    const std::string& mode_text) {
    wire::UpdateNodeRequest request;
    request.set_bundle_url(bundle);
    wire::ActivationMode mode = wire::ACTIVATION_INVALID;
    if (mode_text == "none")
        mode = wire::ACTIVATION_NONE;
    else if (mode_text == "reboot")
        mode = wire::ACTIVATION_REBOOT;
    else if (mode_text == "kexec")
        mode = wire::ACTIVATION_KEXEC;
    else if (mode_text != "invalid")
        return call.usage("--mode: expected none, reboot or kexec, got '" + mode_text + "'");
    request.set_activation_mode(mode);
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
                        "request --bundle URL --mode none|reboot|kexec [--socket PATH]",
                        request_options, run_request};

}  // namespace activate::cli
