// The management endpoint on Boost.Asio. Each connection carries one request frame and gets one
// reply frame. The update itself runs on a worker thread so that the acceptor keeps answering:
// that is how a second request learns at once that it is refused, instead of queueing behind a
// multi-minute install.
#include <activate/serve.hpp>
#include <algorithm>
#include <boost/asio.hpp>
#include <mutex>
#include <thread>

namespace activate {

namespace asio = boost::asio;
using stream = asio::local::stream_protocol;

namespace {
constexpr uint32_t kMaxFrame = 1 << 20;

std::string frame(const std::string& payload) {
    uint32_t n = static_cast<uint32_t>(payload.size());
    std::string out = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                       static_cast<char>(n >> 8), static_cast<char>(n)};
    return out + payload;
}

// A client gets this long to send its whole request frame; one that connects and stays silent
// must not hold up the others (the acceptor never waits on a connection).
constexpr auto kRequestDeadline = std::chrono::seconds(10);

uint32_t frame_length(const unsigned char header[4]) {
    return (uint32_t(header[0]) << 24) | (uint32_t(header[1]) << 16) | (uint32_t(header[2]) << 8) |
           header[3];
}

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
    std::string payload(n, '\0');
    asio::read(socket, asio::buffer(payload), ec);
    if (ec)
        return Error(ErrorKind::input,
                     "reading a frame of " + std::to_string(n) + " bytes: " + ec.message());
    return payload;
}
// One accepted connection while its request frame arrives: asynchronous reads under a deadline.
struct Connection {
    explicit Connection(stream::socket s) : socket(std::move(s)), deadline(socket.get_executor()) {}
    stream::socket socket;
    asio::steady_timer deadline;
    unsigned char header[4] = {};
    std::string payload;
};

// Reads one frame, then calls done(payload or error) on the io thread.
void read_request(std::shared_ptr<Connection> c, std::function<void(Result<std::string>)> done) {
    c->deadline.expires_after(kRequestDeadline);
    c->deadline.async_wait([c](boost::system::error_code ec) {
        if (!ec) c->socket.close();  // the pending read fails with operation_aborted
    });
    asio::async_read(
        c->socket, asio::buffer(c->header), [c, done](boost::system::error_code ec, size_t) {
            if (ec) {
                c->deadline.cancel();
                return done(Error(ErrorKind::input, "reading the frame length: " + ec.message()));
            }
            const uint32_t n = frame_length(c->header);
            if (n > kMaxFrame) {
                c->deadline.cancel();
                return done(Error(ErrorKind::input,
                                  "frame of " + std::to_string(n) + " bytes exceeds 1 MiB"));
            }
            c->payload.assign(n, '\0');
            asio::async_read(c->socket, asio::buffer(c->payload),
                             [c, done, n](boost::system::error_code ec2, size_t) {
                                 c->deadline.cancel();
                                 if (ec2)
                                     return done(Error(ErrorKind::input,
                                                       "reading a frame of " + std::to_string(n) +
                                                           " bytes: " + ec2.message()));
                                 done(std::move(c->payload));
                             });
        });
}
}  // namespace

ActivationMode activation_mode_of(wire::ActivationMode mode) {
    switch (mode) {
        case wire::ACTIVATION_REBOOT: return ActivationMode::reboot;
        case wire::ACTIVATION_KEXEC: return ActivationMode::kexec;
        default: return ActivationMode::none;
    }
}

UpdateServer::UpdateServer(std::string socket_path, std::vector<wire::ActivationMode> modes,
                           UpdateRunner runner)
    : socket_path_(std::move(socket_path)), modes_(std::move(modes)), runner_(std::move(runner)) {}

void UpdateServer::stop() {
    stopping_ = true;
    if (stop_hook_) stop_hook_();
}

Status UpdateServer::serve(size_t max_requests) {
    asio::io_context io;
    ::unlink(socket_path_.c_str());
    stream::acceptor acceptor(io);
    boost::system::error_code ec;
    acceptor.open(stream(), ec);
    if (!ec) acceptor.bind(stream::endpoint(socket_path_), ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        return Error(ErrorKind::activation, "listening on " + socket_path_ + ": " + ec.message());
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
        wire::UpdateNodeRequest request;
        if (!payload.ok()) {
            reply(ServeCode::invalid_argument, payload.error().message());
        } else if (!request.ParseFromString(*payload)) {
            reply(ServeCode::invalid_argument, "the frame is not an UpdateNodeRequest");
        } else if (request.activation_mode() == wire::ACTIVATION_INVALID) {
            reply(ServeCode::invalid_argument,
                  "activation_mode is ACTIVATION_INVALID: set NONE, REBOOT or KEXEC");
        } else if (!wire::ActivationMode_IsValid(request.activation_mode())) {
            // proto3 keeps enum values it does not know: a newer client's mode is not "none".
            reply(ServeCode::invalid_argument, "activation_mode " +
                                                   std::to_string(request.activation_mode()) +
                                                   " is unknown: set NONE, REBOOT or KEXEC");
        } else if (request.bundle_url().empty()) {
            reply(ServeCode::invalid_argument, "bundle_url is empty");
        } else if (std::find(modes_.begin(), modes_.end(), request.activation_mode()) ==
                   modes_.end()) {
            reply(ServeCode::unavailable,
                  std::string("no policy for activation mode ") +
                      to_string(activation_mode_of(request.activation_mode())) +
                      " was given to serve");
        } else {
            std::lock_guard<std::mutex> lock(mu);
            if (running) {
                reply(ServeCode::busy, "another update is in progress");
            } else {
                running = true;
                workers.emplace_back([&, c, request, reply] {
                    Status s = runner_(request);
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
            auto c = std::make_shared<Connection>(std::move(socket));
            read_request(c, [&, c](Result<std::string> payload) { handle(c, std::move(payload)); });
            if (!stopping_) accept_next();
        });
    };
    accept_next();
    io.run();
    for (std::thread& t : workers) t.join();
    ::unlink(socket_path_.c_str());
    return {};
}

Result<ServeReply> send_update_request(const std::string& socket_path,
                                       const wire::UpdateNodeRequest& request) {
    asio::io_context io;
    stream::socket socket(io);
    boost::system::error_code ec;
    socket.connect(stream::endpoint(socket_path), ec);
    if (ec)
        return Error(ErrorKind::activation, "connecting to " + socket_path + ": " + ec.message());
    asio::write(socket, asio::buffer(frame(request.SerializeAsString())), ec);
    if (ec) return Error(ErrorKind::activation, "sending the request: " + ec.message());
    ACTIVATE_ASSIGN(std::string payload, read_frame(socket));
    if (payload.empty()) return Error(ErrorKind::input, "empty reply frame");
    ServeReply reply;
    reply.code = static_cast<ServeCode>(static_cast<uint8_t>(payload[0]));
    if (reply.code != ServeCode::ok) reply.message = payload.substr(1);
    return reply;
}

}  // namespace activate
