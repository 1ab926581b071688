// `activate serve`: the node-management endpoint. A UNIX stream socket carrying length-prefixed
// UpdateNodeRequest/UpdateNodeResponse messages (framing in docs/serve.md). One update runs at a
// time; a request arriving meanwhile is refused as busy.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "management.pb.h"

#include <activate/plugin_api.hpp>
#include <activate/result.hpp>

namespace activate {

// Reply status codes of the framing (docs/serve.md).
enum class ServeCode : uint8_t {
    ok = 0,
    invalid_argument = 1,  // ACTIVATION_INVALID, an unknown mode, an empty bundle URL
    busy = 2,              // another update is running
    failed = 3,            // the update failed; the message says why
    unavailable = 4,       // no policy for the requested mode
    rejected = 5,          // the bundle was refused (signature, compatibility, version)
};

// The engine's mode for a request's; ACTIVATION_INVALID and unknown values, which the server
// refuses before it gets here, read as none.
ActivationMode activation_mode_of(wire::ActivationMode mode);

// Runs one update; returns its Status. Called on the server's worker thread. The error's kind
// decides the reply: busy -> busy, rejected -> rejected, usage (a request the policy cannot
// carry out as asked, e.g. a relative bundle_url) -> invalid_argument, anything else -> failed.
using UpdateRunner = std::function<Status(const wire::UpdateNodeRequest&)>;

class UpdateServer {
public:
    // `modes`: the activation modes a policy was given for. A request for any other mode is
    // answered `unavailable` at once, without taking the one update slot.
    UpdateServer(std::string socket_path, std::vector<wire::ActivationMode> modes,
                 UpdateRunner runner);
    // Serves until stop() is called or `max_requests` requests were answered (0: forever).
    Status serve(size_t max_requests = 0);
    void stop();

private:
    std::string socket_path_;
    std::vector<wire::ActivationMode> modes_;
    UpdateRunner runner_;
    std::atomic<bool> stopping_{false};
    std::function<void()> stop_hook_;
};

struct ServeReply {
    ServeCode code = ServeCode::failed;
    std::string message;
};

// The client side: sends one request and waits for the reply.
Result<ServeReply> send_update_request(const std::string& socket_path,
                                       const wire::UpdateNodeRequest& request);

}  // namespace activate
