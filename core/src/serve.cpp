// The management endpoint on Boost.Asio. Each connection carries one request frame and gets one
// reply frame. The update itself runs on a worker thread so that the acceptor keeps answering:
// that is how a second request learns at once that it is refused, instead of queueing behind a
// multi-minute install.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <activate/byte_order.hpp>
#include <activate/serve.hpp>
#include <algorithm>
#include <boost/asio.hpp>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>

namespace activate {

namespace asio = boost::asio;
using stream = asio::local::stream_protocol;

namespace {
constexpr uint32_t kMaxFrame = 1 << 20;
// Frames are read as their bytes arrive, at most this much at a time: memory follows what a
// client sent, not what its length prefix announced (a few hundred silent clients announcing
// 1 MiB each must not cost a few hundred MiB).
constexpr size_t kReadChunk = 16 << 10;

std::string octal(unsigned mode) {
    char text[8];
    std::snprintf(text, sizeof text, "%04o", mode);
    return text;
}

std::string frame(const std::string& payload) {
    std::string out;
    append_be(out, static_cast<uint32_t>(payload.size()));
    return out + payload;
}

// A client gets this long to send its whole request frame; one that connects and stays silent
// must not hold up the others (the acceptor never waits on a connection).
constexpr auto kRequestDeadline = std::chrono::seconds(10);

uint32_t frame_length(const unsigned char header[4]) { return load_be<uint32_t>(header); }

std::string reply_payload(ServeCode code, const std::string& message) {
    std::string payload(1, static_cast<char>(code));
    if (code == ServeCode::ok)
        payload += wire::UpdateNodeResponse().SerializeAsString();
    else
        payload += message;
    return payload;
}

Result<std::string> read_frame(stream::socket& socket) {
    unsigned char header[4];
    boost::system::error_code ec;
    asio::read(socket, asio::buffer(header), ec);
    if (ec) return Error(ErrorKind::input, "reading the frame length: " + ec.message());
    const uint32_t n = frame_length(header);
    if (n > kMaxFrame)
        return Error(ErrorKind::input, "frame of " + std::to_string(n) + " bytes exceeds 1 MiB");
    std::string payload;
    while (payload.size() < n) {
        const size_t have = payload.size();
        payload.resize(have + std::min<size_t>(n - have, kReadChunk));
        const size_t got =
            socket.read_some(asio::buffer(payload.data() + have, payload.size() - have), ec);
        payload.resize(have + got);
        if (ec)
            return Error(ErrorKind::input,
                         "reading a frame of " + std::to_string(n) + " bytes: " + ec.message());
    }
    return payload;
}

// One accepted connection while its request frame arrives: asynchronous reads under a deadline.
struct Connection {
    explicit Connection(stream::socket s) : socket(std::move(s)), deadline(socket.get_executor()) {}
    stream::socket socket;
    asio::steady_timer deadline;
    unsigned char header[4] = {};
    uint32_t announced = 0;
    std::string payload;  // what has arrived so far, never more
};

using FrameDone = std::function<void(Result<std::string>)>;

// Reads the payload as it arrives: wait until the socket is readable, then take what is there
// (at most kReadChunk), so that a connection holds only the bytes its client actually sent.
void read_payload(std::shared_ptr<Connection> c, FrameDone done) {
    c->socket.async_wait(stream::socket::wait_read, [c, done](boost::system::error_code ec) {
        const std::string what = "reading a frame of " + std::to_string(c->announced) + " bytes";
        if (ec) {
            c->deadline.cancel();
            return done(Error(ErrorKind::input, what + ": " + ec.message()));
        }
        const size_t have = c->payload.size();
        c->payload.resize(have + std::min<size_t>(c->announced - have, kReadChunk));
        boost::system::error_code rec;
        const size_t got = c->socket.read_some(
            asio::buffer(c->payload.data() + have, c->payload.size() - have), rec);
        c->payload.resize(have + got);
        if (rec && rec != asio::error::would_block && rec != asio::error::try_again) {
            c->deadline.cancel();
            return done(Error(ErrorKind::input, what + ": " + rec.message()));
        }
        if (c->payload.size() < c->announced) return read_payload(c, done);
        c->deadline.cancel();
        done(std::move(c->payload));
    });
}

// Reads one frame, then calls done(payload or error) on the io thread.
void read_request(std::shared_ptr<Connection> c, FrameDone done) {
    c->deadline.expires_after(kRequestDeadline);
    c->deadline.async_wait([c](boost::system::error_code ec) {
        if (!ec) c->socket.close();  // the pending read fails with operation_aborted
    });
    boost::system::error_code nec;
    c->socket.non_blocking(true, nec);  // read_some after a wakeup must never wait
    asio::async_read(
        c->socket, asio::buffer(c->header), [c, done](boost::system::error_code ec, size_t) {
            if (ec) {
                c->deadline.cancel();
                return done(Error(ErrorKind::input, "reading the frame length: " + ec.message()));
            }
            c->announced = frame_length(c->header);
            if (c->announced > kMaxFrame) {
                c->deadline.cancel();
                return done(Error(ErrorKind::input, "frame of " + std::to_string(c->announced) +
                                                        " bytes exceeds 1 MiB"));
            }
            if (c->announced == 0) {
                c->deadline.cancel();
                return done(std::string());
            }
            read_payload(c, done);
        });
}

// A name in a directory given by its descriptor, as a path (proc(5), /proc/pid/fd).
std::string address_in(int directory, const std::string& name) {
    return "/proc/self/fd/" + std::to_string(directory) + "/" + name;
}

// The uid and pid of the process at the other end, as the kernel recorded them at connect(2).
std::optional<ucred> peer_of(stream::socket& socket) {
    ucred peer{};
    socklen_t size = sizeof peer;
    if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &peer, &size) != 0 ||
        size != sizeof peer)
        return std::nullopt;
    return peer;
}
// Makes `acceptor` listen at `place`, privately. The socket is made under a temporary name and
// renamed into place once it is private and listening: whoever sees the path can connect at
// once, and only as root.
Status listen_at(stream::acceptor& acceptor, const SocketPlace& place) {
    const int dir = place.directory.get();
    const std::string temporary_name = "." + place.name + ".new";
    const char* temporary = temporary_name.c_str();
    ::unlinkat(dir, temporary, 0);
    boost::system::error_code ec;
    acceptor.open(stream(), ec);
    if (!ec) acceptor.bind(stream::endpoint(address_in(dir, temporary_name)), ec);
    if (ec)
        return Error(ErrorKind::activation, "listening on " + place.shown + ": " + ec.message());
    auto fail = [&](Error e) {
        ::unlinkat(dir, temporary, 0);
        return e;
    };
    // bind(2) gives the socket file 0777 less the umask; connecting needs write permission on
    // it (unix(7)), so 0600 leaves only root. Set before listen(2): until then nobody can
    // connect, whatever the mode was.
    if (::fchmodat(dir, temporary, 0600, 0) != 0)
        return fail(errno_error(ErrorKind::activation, "chmod 0600 " + place.shown));
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        return fail(
            Error(ErrorKind::activation, "listening on " + place.shown + ": " + ec.message()));
    if (::renameat(dir, temporary, dir, place.name.c_str()) != 0)
        return fail(errno_error(ErrorKind::activation, "creating " + place.shown));
    return {};
}

// sd_listen_fds(3): the first passed descriptor.
constexpr int kListenFdsStart = 3;

// A decimal number, the whole text; nullopt otherwise.
std::optional<long long> whole_number(const char* text) {
    if (!text || !*text) return std::nullopt;
    char* end = nullptr;
    errno = 0;
    const long long n = std::strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0' || n < 0) return std::nullopt;
    return n;
}

int socket_option(int fd, int option) {
    int value = -1;
    socklen_t size = sizeof value;
    if (::getsockopt(fd, SOL_SOCKET, option, &value, &size) != 0) return -1;
    return value;
}
}  // namespace

Result<std::optional<InheritedSocket>> socket_from_systemd(const Log& log) {
    const char* pid_env = ::getenv("LISTEN_PID");
    const char* fds_env = ::getenv("LISTEN_FDS");
    const std::string pid_text = pid_env ? pid_env : "";
    const std::string fds_text = fds_env ? fds_env : "";
    const bool given = pid_env && fds_env;
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    if (!given) return std::optional<InheritedSocket>();
    // LISTEN_PID guards against variables a child inherited from its socket-activated parent:
    // they describe the parent's descriptors, not ours.
    const std::optional<long long> pid = whole_number(pid_text.c_str());
    if (!pid || *pid != ::getpid()) {
        log.info("LISTEN_PID=" + pid_text + " names another process than this one (" +
                 std::to_string(::getpid()) + "); the LISTEN_* variables are not for it");
        return std::optional<InheritedSocket>();
    }
    const std::optional<long long> count = whole_number(fds_text.c_str());
    if (!count || *count != 1)
        return Error(ErrorKind::usage,
                     "systemd passed LISTEN_FDS=" + fds_text +
                         " sockets; activate serve takes exactly one (one ListenStream= in "
                         "activate.socket)");
    const int fd = kListenFdsStart;
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
        return Error(ErrorKind::usage, "LISTEN_FDS=1 but fd 3 is not a socket");
    if (socket_option(fd, SO_DOMAIN) != AF_UNIX || socket_option(fd, SO_TYPE) != SOCK_STREAM ||
        socket_option(fd, SO_ACCEPTCONN) != 1)
        return Error(ErrorKind::usage,
                     "the socket systemd passed (fd 3) is not a listening UNIX stream socket: "
                     "activate.socket needs ListenStream=<path>");
    // Not for the health checks and second stages this process starts.
    if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
        return errno_error(ErrorKind::activation, "making the passed socket close-on-exec");
    sockaddr_un address{};
    socklen_t size = sizeof address;
    std::string shown = "the socket systemd passed";
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0 &&
        size > offsetof(sockaddr_un, sun_path) && address.sun_path[0] != '\0')
        shown = std::string(address.sun_path,
                            strnlen(address.sun_path, size - offsetof(sockaddr_un, sun_path))) +
                " (from systemd)";
    return std::optional<InheritedSocket>(InheritedSocket{UniqueFd(fd), shown});
}

std::string SocketPlace::address() const { return address_in(directory.get(), name); }

Result<SocketPlace> socket_place(const std::string& path) {
    const std::filesystem::path p(path);
    const std::filesystem::path dir = p.has_parent_path() ? p.parent_path() : ".";
    if (!p.has_filename()) return Error(ErrorKind::usage, "socket " + path + ": not a file name");
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd)
        return errno_error(ErrorKind::activation, "opening the socket's directory " + dir.string());
    return SocketPlace{std::move(fd), p.filename().string(), path};
}

bool may_request_updates(uid_t peer_uid) { return peer_uid == 0 || peer_uid == ::geteuid(); }

Result<SocketPlace> default_server_socket(const Sysroot& sysroot, const Log& log) {
    const std::string shown = sysroot.path(kDefaultSocketDir).string();
    ACTIVATE_TRY(sysroot.make_dirs(kDefaultSocketDir, 0700));
    ACTIVATE_ASSIGN(UniqueFd dir, sysroot.open(kDefaultSocketDir, O_RDONLY | O_DIRECTORY));
    struct stat st {};
    if (::fstat(dir.get(), &st) != 0) return errno_error(ErrorKind::activation, "stat " + shown);
    // Whoever may write in the directory may replace the socket with their own: it must be ours
    // and private. mkdir's mode went through the umask; what counts is the mode it has now.
    if (st.st_uid != ::geteuid())
        return Error(ErrorKind::activation,
                     shown + " belongs to uid " + std::to_string(st.st_uid) +
                         ", not to the uid this server runs as (" + std::to_string(::geteuid()) +
                         "); whoever owns it could replace the socket. Remove it, or chown it");
    if ((st.st_mode & 07777) != 0700) {
        if (::fchmod(dir.get(), 0700) != 0)
            return errno_error(ErrorKind::activation, "chmod 0700 " + shown);
        if (st.st_mode & 077)
            log.warning(shown + " was open to others (mode " + octal(st.st_mode & 07777) +
                        "); made it 0700");
    }
    return SocketPlace{std::move(dir), kDefaultSocketName,
                       sysroot.path(kDefaultSocketPath).string()};
}

Result<SocketPlace> default_client_socket(const Sysroot& sysroot) {
    const std::string shown = sysroot.path(kDefaultSocketPath).string();
    Result<UniqueFd> dir = sysroot.open(kDefaultSocketDir, O_RDONLY | O_DIRECTORY);
    if (!dir.ok()) return dir.error().with_context("connecting to " + shown);
    return SocketPlace{std::move(*dir), kDefaultSocketName, shown};
}

std::string activation_mode_of(wire::ActivationMode mode) {
    switch (mode) {
        case wire::ACTIVATION_REBOOT:
            return "reboot";
        case wire::ACTIVATION_KEXEC:
            return "kexec";
        default:
            return "none";
    }
}

std::optional<wire::ActivationMode> wire_mode_of(const std::string& name) {
    for (wire::ActivationMode m :
         {wire::ACTIVATION_NONE, wire::ACTIVATION_REBOOT, wire::ACTIVATION_KEXEC})
        if (activation_mode_of(m) == name) return m;
    return std::nullopt;
}

namespace {
// The enum's values by their .proto names, for messages.
std::string wire_name(wire::ActivationMode mode) {
    return wire::ActivationMode_IsValid(mode) ? wire::ActivationMode_Name(mode)
                                              : std::to_string(static_cast<int>(mode));
}

Result<std::string> mode_by_name(const wire::UpdateNodeRequest& request) {
    const std::string& name = request.activation_mode_name();
    if (name.size() > kMaxModeNameBytes)
        return Error(ErrorKind::usage,
                     "activation_mode_name \"" + escape_bytes(name, kMaxModeNameBytes) + "\" is " +
                         std::to_string(name.size()) + " bytes long; a mode name has at most " +
                         std::to_string(kMaxModeNameBytes));
    if (const std::optional<char> control = first_control_byte(name))
        return Error(ErrorKind::usage, "activation_mode_name \"" + escape_bytes(name) +
                                           "\" contains a control byte (" +
                                           escape_bytes(std::string(1, *control)) +
                                           "); name a mode a served policy has");
    const wire::ActivationMode mode = request.activation_mode();
    // Set beside the name (for servers that only read the enum), the enum must mean the same.
    // A value this server does not know comes from a newer client; the name is what it means.
    if (mode != wire::ACTIVATION_INVALID && wire::ActivationMode_IsValid(mode) &&
        activation_mode_of(mode) != name)
        return Error(ErrorKind::usage, "activation_mode_name \"" + escape_bytes(name) +
                                           "\" and activation_mode " + wire_name(mode) +
                                           " name different modes: set the name alone, or both "
                                           "to the same mode");
    return name;
}
}  // namespace

Result<std::string> requested_mode(const wire::UpdateNodeRequest& request) {
    if (!request.activation_mode_name().empty()) return mode_by_name(request);
    const wire::ActivationMode mode = request.activation_mode();
    if (mode == wire::ACTIVATION_INVALID)
        return Error(ErrorKind::usage,
                     "activation_mode is ACTIVATION_INVALID and activation_mode_name is empty: set "
                     "NONE, REBOOT or KEXEC, or the mode's name");
    // proto3 keeps enum values it does not know: a newer client's mode is not "none".
    if (!wire::ActivationMode_IsValid(mode))
        return Error(ErrorKind::usage, "activation_mode " + wire_name(mode) +
                                           " is unknown: set NONE, REBOOT or KEXEC, or the "
                                           "mode's name in activation_mode_name");
    return activation_mode_of(mode);
}

namespace {
// How much of a refused bundle_url a reply shows.
constexpr size_t kMaxShownBundleBytes = 256;

// A request frame as the server takes it, or why not: all of it the client's mistake.
Result<AcceptedRequest> accept_request(const Result<std::string>& payload) {
    if (!payload.ok()) return payload.error();
    wire::UpdateNodeRequest request;
    if (!request.ParseFromString(*payload))
        return Error(ErrorKind::usage, "the frame is not an UpdateNodeRequest");
    ACTIVATE_ASSIGN(std::string mode, requested_mode(request));
    const std::string& url = request.bundle_url();
    if (url.empty()) return Error(ErrorKind::usage, "bundle_url is empty");
    // No path or URL has control bytes; refused here, none reaches the engine's and plugins'
    // messages, which quote the bundle as given, into a reply or the log.
    if (const std::optional<char> control = first_control_byte(url))
        return Error(ErrorKind::usage, "bundle_url \"" + escape_bytes(url, kMaxShownBundleBytes) +
                                           "\" contains a control byte (" +
                                           escape_bytes(std::string(1, *control)) +
                                           "); send a path or an http(s) URL");
    return AcceptedRequest{url, std::move(mode)};
}
}  // namespace

UpdateServer::UpdateServer(SocketPlace socket, std::vector<std::string> modes, UpdateRunner runner,
                           Log log)
    : socket_(std::move(socket)),
      modes_(std::move(modes)),
      runner_(std::move(runner)),
      log_(std::move(log)) {}

UpdateServer::UpdateServer(InheritedSocket socket, std::vector<std::string> modes,
                           UpdateRunner runner, Log log)
    : socket_{UniqueFd(), "", std::move(socket.shown)},
      inherited_(std::move(socket.fd)),
      modes_(std::move(modes)),
      runner_(std::move(runner)),
      log_(std::move(log)) {}

void UpdateServer::stop() {
    stopping_ = true;
    if (stop_hook_) stop_hook_();
}

Status UpdateServer::serve(size_t max_requests) {
    asio::io_context io;
    stream::acceptor acceptor(io);
    // systemd's socket is already listening, at the mode activate.socket gave it; it stays
    // when this process ends, so that the next connection starts the service again.
    const bool inherited = inherited_.valid();
    if (inherited) {
        boost::system::error_code ec;
        acceptor.assign(stream(), inherited_.release(), ec);
        if (ec)
            return Error(ErrorKind::activation,
                         "serving on " + socket_.shown + ": " + ec.message());
    } else {
        ACTIVATE_TRY(listen_at(acceptor, socket_));
    }
    stop_hook_ = [&] { asio::post(io, [&] { acceptor.close(); }); };

    std::mutex mu;
    bool running = false;
    size_t answered = 0;
    std::vector<std::thread> workers;
    auto finish_one = [&] {
        std::lock_guard<std::mutex> lock(mu);
        if (max_requests && ++answered >= max_requests) asio::post(io, [&] { acceptor.close(); });
    };

    // Validates a received request and starts its update on a worker, or answers at once.
    auto handle = [&](std::shared_ptr<Connection> c, Result<std::string> payload) {
        auto conn = std::shared_ptr<stream::socket>(c, &c->socket);
        auto reply = [conn](ServeCode code, const std::string& message) {
            boost::system::error_code wec;
            asio::write(*conn, asio::buffer(frame(reply_payload(code, message))), wec);
        };
        const Result<AcceptedRequest> request = accept_request(payload);
        if (!request.ok()) {
            reply(ServeCode::invalid_argument, request.error().message());
        } else if (std::find(modes_.begin(), modes_.end(), request->mode) == modes_.end()) {
            std::string served;
            for (const std::string& m : modes_) served += (served.empty() ? "" : ", ") + m;
            reply(ServeCode::unavailable, "no policy for activation mode " +
                                              escape_bytes(request->mode) +
                                              " was given to serve; it serves " + served);
        } else {
            std::lock_guard<std::mutex> lock(mu);
            if (running) {
                reply(ServeCode::busy, "another update is in progress");
            } else {
                running = true;
                workers.emplace_back([&, c, accepted = *request, reply] {
                    Status s = runner_(accepted);
                    {
                        std::lock_guard<std::mutex> inner(mu);
                        running = false;
                    }
                    if (s.ok())
                        reply(ServeCode::ok, "");
                    else if (s.error().kind() == ErrorKind::busy)
                        reply(ServeCode::busy, s.error().message());
                    else if (s.error().kind() == ErrorKind::usage)
                        // What the request asked cannot be done as asked (a relative
                        // bundle_url, ...): the client's mistake, not a missing policy.
                        reply(ServeCode::invalid_argument, s.error().message());
                    else if (s.error().kind() == ErrorKind::rejected)
                        reply(ServeCode::rejected, s.error().message());
                    else
                        reply(ServeCode::failed, s.error().message());
                    finish_one();
                });
                return;
            }
        }
        finish_one();
    };

    std::function<void()> accept_next = [&] {
        acceptor.async_accept([&](boost::system::error_code aec, stream::socket socket) {
            if (aec) return;  // closed: serve() returns
            // The mode of the socket is the first gate, the peer's credentials the second: they
            // hold even if the socket's mode or directory was changed behind our back.
            const std::optional<ucred> peer = peer_of(socket);
            if (!peer || !may_request_updates(peer->uid)) {
                const std::string who = peer ? "uid " + std::to_string(peer->uid) + " (pid " +
                                                   std::to_string(peer->pid) + ")"
                                             : "an unknown peer (SO_PEERCRED failed)";
                log_.warning("refused a connection from " + who +
                             ": only root may request updates");
                boost::system::error_code wec;
                asio::write(socket,
                            asio::buffer(frame(reply_payload(
                                ServeCode::forbidden,
                                "only root may request updates; this client runs as " + who))),
                            wec);
                if (!stopping_) accept_next();
                return;  // the socket closes here
            }
            auto c = std::make_shared<Connection>(std::move(socket));
            read_request(c, [&, c](Result<std::string> payload) { handle(c, std::move(payload)); });
            if (!stopping_) accept_next();
        });
    };
    accept_next();
    io.run();
    for (std::thread& t : workers) t.join();
    if (!inherited) ::unlinkat(socket_.directory.get(), socket_.name.c_str(), 0);
    return {};
}

Result<ServeReply> send_update_request(const std::string& socket_path,
                                       const wire::UpdateNodeRequest& request) {
    ACTIVATE_ASSIGN(SocketPlace place, socket_place(socket_path));
    return send_update_request(place, request);
}

Result<ServeReply> send_update_request(const SocketPlace& place,
                                       const wire::UpdateNodeRequest& request) {
    asio::io_context io;
    stream::socket socket(io);
    boost::system::error_code ec;
    socket.connect(stream::endpoint(place.address()), ec);
    if (ec)
        return Error(ErrorKind::activation, "connecting to " + place.shown + ": " + ec.message());
    asio::write(socket, asio::buffer(frame(request.SerializeAsString())), ec);
    // A server that refuses the client answers without reading the request and closes, so the
    // write may fail with EPIPE while the answer waits to be read.
    Result<std::string> answer = read_frame(socket);
    if (ec && !answer.ok())
        return Error(ErrorKind::activation, "sending the request: " + ec.message());
    ACTIVATE_ASSIGN(std::string payload, std::move(answer));
    if (payload.empty()) return Error(ErrorKind::input, "empty reply frame");
    ServeReply reply;
    reply.code = static_cast<ServeCode>(static_cast<uint8_t>(payload[0]));
    if (reply.code != ServeCode::ok) reply.message = payload.substr(1);
    return reply;
}

}  // namespace activate
