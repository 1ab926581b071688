// `activate serve`: the node-management endpoint. A UNIX stream socket carrying length-prefixed
// UpdateNodeRequest/UpdateNodeResponse messages (framing in docs/serve.md). Only root may use it
// (socket mode 0600, and SO_PEERCRED checked on every connection). One update runs at a time; a
// request arriving meanwhile is refused as busy.
#pragma once

#include <sys/types.h>

#include <activate/escape.hpp>
#include <activate/fd.hpp>
#include <activate/log.hpp>
#include <activate/plugin_api.hpp>
#include <activate/result.hpp>
#include <activate/sysroot.hpp>
#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "management.pb.h"

namespace activate {

// Reply status codes of the framing (docs/serve.md).
enum class ServeCode : uint8_t {
    ok = 0,
    invalid_argument = 1,  // no mode, a malformed or contradictory one, an empty bundle URL
    busy = 2,              // another update is running
    failed = 3,            // the update failed; the message says why
    unavailable = 4,       // no policy for the requested mode
    rejected = 5,          // the bundle was refused (signature, compatibility, version)
    forbidden = 6,         // the client is not root (SO_PEERCRED); nothing was read from it
};

// Where a socket lives: its directory, opened once, and its name there. bind(2) and connect(2)
// take a path, not a directory descriptor, so they are given address(), the name reached
// through /proc/self/fd/<directory>: the directory the caller opened (and, for the server,
// checked) is the one used, however its path changes meanwhile, and a directory found inside a
// sysroot stays the one inside it.
struct SocketPlace {
    UniqueFd directory;
    std::string name;
    std::string shown;  // the path, for messages

    std::string address() const;
};

// The place of a socket given as a plain path (--socket PATH): its parent directory is opened.
Result<SocketPlace> socket_place(const std::string& path);

// The default socket: /run/activate/activate.sock under the sysroot.
inline constexpr const char* kDefaultSocketDir = "/run/activate";
inline constexpr const char* kDefaultSocketName = "activate.sock";
inline constexpr const char* kDefaultSocketPath = "/run/activate/activate.sock";

// The server's default socket place. Its directory is created 0700 if missing; an existing one
// owned by another uid is refused, and one open to others is made 0700 (with a warning).
Result<SocketPlace> default_server_socket(const Sysroot& sysroot, const Log& log);
// The client's: the same directory, opened inside the sysroot.
Result<SocketPlace> default_client_socket(const Sysroot& sysroot);

// A listening socket systemd passed to this process (socket activation, activate.socket). The
// sd_listen_fds(3) protocol, without libsystemd: LISTEN_PID names the process the sockets are for
// and LISTEN_FDS how many there are, from fd 3 (SD_LISTEN_FDS_START) on.
struct InheritedSocket {
    UniqueFd fd;
    std::string shown;  // its path (getsockname), for messages
};
// nullopt when no socket was passed: LISTEN_PID or LISTEN_FDS unset, or LISTEN_PID naming
// another process (variables inherited by mistake; fd 3 is then not ours and left alone). An
// error when the socket is there but unusable: not exactly one, or fd 3 not a listening UNIX
// stream socket. The LISTEN_* variables are removed either way, so that the processes this one
// starts (health checks, the detached second stage) do not take them for theirs; the socket is
// made close-on-exec for the same reason.
Result<std::optional<InheritedSocket>> socket_from_systemd(const Log& log);

// Whether a peer with this uid may drive the server: root, or the uid the server itself runs as
// (which could run the update itself anyway).
bool may_request_updates(uid_t peer_uid);

// The policy's activation_mode name for a request's mode; ACTIVATION_INVALID and unknown values,
// which the server refuses before it gets here, read as none.
std::string activation_mode_of(wire::ActivationMode mode);
// The enum value of a mode the enum has a value for (none, reboot, kexec); nullopt for any other
// name, which only activation_mode_name carries.
std::optional<wire::ActivationMode> wire_mode_of(const std::string& name);

// The longest activation_mode_name a server accepts. Declared modes are short words ("kexec",
// "soft-reboot"); the bound keeps what an untrusted client sends out of replies and logs.
inline constexpr size_t kMaxModeNameBytes = 64;

// The activation mode a request asks for, by its policy name: activation_mode_name when set
// (at most kMaxModeNameBytes, no control bytes; an activation_mode set beside it to NONE, REBOOT
// or KEXEC must name the same mode), else activation_mode. A usage error says what is wrong with
// the request; any of the client's bytes in it are escaped (escape_bytes).
Result<std::string> requested_mode(const wire::UpdateNodeRequest& request);

// A request the server accepted: `mode` is one it serves.
struct AcceptedRequest {
    std::string bundle_url;  // as the client sent it; escape_bytes() before showing it
    std::string mode;        // a policy's activation_mode name, or none
};

// Runs one update; returns its Status. Called on the server's worker thread. The error's kind
// decides the reply: busy -> busy, rejected -> rejected, usage (a request the policy cannot
// carry out as asked, e.g. a relative bundle_url) -> invalid_argument, anything else -> failed.
using UpdateRunner = std::function<Status(const AcceptedRequest&)>;

class UpdateServer {
public:
    // `modes`: the names of the activation modes a policy was given for. A request for any other
    // mode is answered `unavailable` at once, without taking the one update slot. The socket is
    // created at `socket` (replacing what is there) with mode 0600, whatever the umask.
    UpdateServer(SocketPlace socket, std::vector<std::string> modes, UpdateRunner runner, Log log);
    // Serves on a socket systemd made and listens on (its path, mode and lifetime are the
    // socket unit's); the peer credentials are checked all the same.
    UpdateServer(InheritedSocket socket, std::vector<std::string> modes, UpdateRunner runner,
                 Log log);
    // Serves until stop() is called or `max_requests` requests were answered (0: forever).
    Status serve(size_t max_requests = 0);
    void stop();

private:
    SocketPlace socket_;
    UniqueFd inherited_;  // set: serve on this listening socket instead of socket_
    std::vector<std::string> modes_;
    UpdateRunner runner_;
    Log log_;
    std::atomic<bool> stopping_{false};
    std::function<void()> stop_hook_;
};

struct ServeReply {
    ServeCode code = ServeCode::failed;
    std::string message;
};

// The client side: sends one request and waits for the reply.
Result<ServeReply> send_update_request(const SocketPlace& socket,
                                       const wire::UpdateNodeRequest& request);
Result<ServeReply> send_update_request(const std::string& socket_path,
                                       const wire::UpdateNodeRequest& request);

}  // namespace activate
