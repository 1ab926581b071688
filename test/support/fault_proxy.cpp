// See activate_test/fault_proxy.hpp. One thread accepts, one thread per connection forwards one
// request (the proxy sends "Connection: close" both ways, so a response ends when the upstream
// closes and every retry of the client arrives as a new connection and a new request index).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <activate_test/fault_proxy.hpp>
#include <algorithm>
#include <cstring>

namespace activate::test_support {

namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kIdle = std::chrono::seconds(30);  // no exchange of a test waits longer

// Waits until `fd` is readable; false on stop, timeout or error.
bool wait_readable(int fd, int stop_fd) {
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    const int n = ::poll(p, 2, int(std::chrono::milliseconds(kIdle).count()));
    return n > 0 && !(p[1].revents & POLLIN) && (p[0].revents & (POLLIN | POLLHUP | POLLERR));
}

bool send_all(int fd, const char* data, size_t n) {
    while (n > 0) {
        const ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        data += w;
        n -= size_t(w);
    }
    return true;
}

// Reads until the end of an HTTP header block; `rest` gets what was read beyond it.
std::optional<std::string> read_head(int fd, int stop_fd, std::string* rest) {
    std::string buf;
    while (true) {
        const size_t end = buf.find("\r\n\r\n");
        if (end != std::string::npos) {
            *rest = buf.substr(end + 4);
            return buf.substr(0, end + 2);  // every line with its CRLF, without the blank one
        }
        if (buf.size() > 64 * 1024 || !wait_readable(fd, stop_fd)) return std::nullopt;
        char tmp[16384];
        const ssize_t r = ::recv(fd, tmp, sizeof tmp, 0);
        if (r <= 0) return std::nullopt;
        buf.append(tmp, size_t(r));
    }
}

struct Head {
    std::string first;  // request or status line
    std::vector<std::pair<std::string, std::string>> fields;
};

Head parse_head(const std::string& text) {
    Head h;
    size_t pos = text.find("\r\n");
    h.first = text.substr(0, pos);
    pos += 2;
    while (pos < text.size()) {
        const size_t eol = text.find("\r\n", pos);
        const std::string line = text.substr(pos, eol - pos);
        pos = eol + 2;
        const size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        size_t v = colon + 1;
        while (v < line.size() && line[v] == ' ') ++v;
        h.fields.emplace_back(line.substr(0, colon), line.substr(v));
    }
    return h;
}

bool named(const std::string& field, const char* name) {
    return strcasecmp(field.c_str(), name) == 0;
}

std::string field(const Head& h, const char* name) {
    for (const auto& [k, v] : h.fields)
        if (named(k, name)) return v;
    return "";
}

// Replaces (or appends) a field's value.
void set_field(Head& h, const char* name, const std::string& value) {
    for (auto& [k, v] : h.fields) {
        if (named(k, name)) {
            v = value;
            return;
        }
    }
    h.fields.emplace_back(name, value);
}

void drop_field(Head& h, const char* name) {
    h.fields.erase(std::remove_if(h.fields.begin(), h.fields.end(),
                                  [&](const auto& f) { return named(f.first, name); }),
                   h.fields.end());
}

std::string render(const Head& h) {
    std::string out = h.first + "\r\n";
    for (const auto& [k, v] : h.fields) out += k + ": " + v + "\r\n";
    return out + "\r\n";
}

int connect_loopback(uint16_t port) {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(s);
        return -1;
    }
    return s;
}

}  // namespace

FaultProxy::FaultProxy(uint16_t upstream_port, std::vector<Fault> faults, Fault rest)
    : upstream_port_(upstream_port), faults_(std::move(faults)), rest_(std::move(rest)) {
    if (::pipe2(stop_pipe_, O_CLOEXEC) != 0) {
        error_ = std::string("pipe: ") + std::strerror(errno);
        return;
    }
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener_, 16) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        error_ = std::string("proxy listening socket on 127.0.0.1: ") + std::strerror(errno);
        return;
    }
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
}

FaultProxy::~FaultProxy() {
    if (stop_pipe_[1] >= 0) {
        const char c = 1;
        (void)!::write(stop_pipe_[1], &c, 1);
    }
    if (acceptor_.joinable()) acceptor_.join();
    // Connection threads wake from poll() on the stop pipe; one blocked in send() to a client
    // that stopped reading wakes when its socket is shut down.
    std::vector<std::thread> threads;
    {
        std::lock_guard<std::mutex> lock(mu_);
        threads.swap(connections_);
        for (int fd : open_clients_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : threads) t.join();
    if (listener_ >= 0) ::close(listener_);
    for (int fd : stop_pipe_)
        if (fd >= 0) ::close(fd);
}

std::string FaultProxy::url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
}

std::vector<ProxiedRequest> FaultProxy::requests() const {
    std::unique_lock<std::mutex> lock(mu_);
    exchange_ended_.wait_for(lock, std::chrono::seconds(3),
                             [&] { return done_.size() >= next_index_; });
    std::vector<ProxiedRequest> out = done_;  // in order of ending
    std::sort(out.begin(), out.end(),
              [](const ProxiedRequest& a, const ProxiedRequest& b) { return a.index < b.index; });
    return out;
}

uint64_t FaultProxy::body_bytes_forwarded() const {
    uint64_t total = 0;
    for (const auto& r : requests()) total += r.body_forwarded;
    return total;
}

Fault FaultProxy::fault_for(size_t index) const {
    return index < faults_.size() ? faults_[index] : rest_;
}

void FaultProxy::accept_loop() {
    while (true) {
        pollfd p[2] = {{listener_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
        if (::poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (p[1].revents & POLLIN) return;
        const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) continue;
        const size_t index = next_index_++;
        std::lock_guard<std::mutex> lock(mu_);
        open_clients_.push_back(client);
        connections_.emplace_back([this, client, index] { serve(client, index); });
    }
}

bool FaultProxy::pause(int client, std::chrono::milliseconds ms) const {
    const auto deadline = Clock::now() + ms;
    while (true) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) return true;
        pollfd p[2] = {{client, POLLRDHUP, 0}, {stop_pipe_[0], POLLIN, 0}};
        const int n = ::poll(p, 2, int(left.count()));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 || (p[1].revents & POLLIN)) return false;
        if (p[0].revents & (POLLRDHUP | POLLHUP | POLLERR)) return false;  // client gone
    }
}

void FaultProxy::serve(int client, size_t index) {
    const Fault fault = fault_for(index);
    ProxiedRequest rec;
    rec.index = index;
    int upstream = -1;
    // Runs on every way out: the exchange is recorded once it is over.
    struct Finish {
        FaultProxy* self;
        ProxiedRequest* rec;
        int* client;
        int* upstream;
        ~Finish() {
            if (*upstream >= 0) ::close(*upstream);
            std::lock_guard<std::mutex> lock(self->mu_);
            auto& open = self->open_clients_;
            open.erase(std::remove(open.begin(), open.end(), *client), open.end());
            ::close(*client);
            self->done_.push_back(*rec);
            self->exchange_ended_.notify_all();
        }
    } finish{this, &rec, &client, &upstream};

    std::string body;
    auto request_text = read_head(client, stop_pipe_[0], &body);
    if (!request_text) return;
    Head request = parse_head(*request_text);
    rec.request_line = request.first;
    rec.range = field(request, "Range");
    if (fault.ignore_range) {
        drop_field(request, "Range");
        drop_field(request, "If-Range");
    }
    drop_field(request, "Keep-Alive");
    set_field(request, "Connection", "close");

    upstream = connect_loopback(upstream_port_);
    if (upstream < 0) return;
    const std::string out = render(request);
    if (!send_all(upstream, out.data(), out.size())) return;

    auto response_text = read_head(upstream, stop_pipe_[0], &body);
    if (!response_text) return;
    Head response = parse_head(*response_text);
    if (response.first.size() >= 12) rec.status = std::atoi(response.first.c_str() + 9);
    drop_field(response, "Keep-Alive");
    set_field(response, "Connection", "close");
    if (fault.strip_validators) {
        drop_field(response, "ETag");
        drop_field(response, "Last-Modified");
    }
    if (fault.content_length) set_field(response, "Content-Length", *fault.content_length);
    if (fault.content_range) set_field(response, "Content-Range", *fault.content_range);
    const std::string head = render(response);
    if (!send_all(client, head.data(), head.size())) return;

    // The body: `body` holds what came with the head, then whatever the upstream sends until
    // it closes. Each piece is forwarded up to the next stall or cut point.
    bool stalled = false;
    while (true) {
        size_t at = 0;
        while (at < body.size()) {
            size_t n = body.size() - at;
            if (fault.cut_after) n = std::min<uint64_t>(n, *fault.cut_after - rec.body_forwarded);
            if (fault.stall_after && !stalled && rec.body_forwarded <= *fault.stall_after)
                n = std::min<uint64_t>(n, *fault.stall_after - rec.body_forwarded);
            if (n > 0) {
                if (!send_all(client, body.data() + at, n)) return;
                rec.body_forwarded += n;
                at += n;
            }
            if (fault.cut_after && rec.body_forwarded >= *fault.cut_after) return;
            if (fault.stall_after && !stalled && rec.body_forwarded == *fault.stall_after) {
                stalled = true;
                if (!pause(client, fault.stall_for)) return;
            }
        }
        if (!wait_readable(upstream, stop_pipe_[0])) return;
        body.resize(64 * 1024);
        const ssize_t r = ::recv(upstream, body.data(), body.size(), 0);
        if (r <= 0) return;
        body.resize(size_t(r));
    }
}

}  // namespace activate::test_support
