// See announce.hpp. HTTP/1.0 (RFC 1945) because any endpoint understands it and it needs no
// client library; the agent reads the status line and the headers' end and never waits for the
// server's close (a QEMU guestfwd does not pass it on, and a slow server must not stall us).
#include "announce.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "json.hpp"

namespace activate::agent {
namespace {

int64_t now_ms() {
    timespec t;
    ::clock_gettime(CLOCK_MONOTONIC, &t);
    return int64_t{t.tv_sec} * 1000 + t.tv_nsec / 1000000;
}

void sleep_ms(int ms) {
    timespec t{ms / 1000, (ms % 1000) * 1000000L};
    while (::nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

// Waits for `events` on fd until the deadline; false on timeout or error.
bool wait_for(int fd, short events, int64_t deadline) {
    for (;;) {
        const int64_t left = deadline - now_ms();
        if (left <= 0) return false;
        pollfd p{fd, events, 0};
        const int n = ::poll(&p, 1, static_cast<int>(left));
        if (n < 0 && errno == EINTR) continue;
        return n > 0;
    }
}

bool send_all(int fd, const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        done += static_cast<size_t>(n);
    }
    return true;
}

std::string strip_brackets(const std::string& host) {
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        return host.substr(1, host.size() - 2);
    return host;
}

// One attempt: connect, send, read the status line. Empty on a 2xx answer, else why not.
std::string attempt(const AnnounceEndpoint& endpoint, const std::string& request, int timeout_ms) {
    sockaddr_storage addr{};
    socklen_t addr_len;
    int family;
    if (auto* a4 = reinterpret_cast<sockaddr_in*>(&addr);
        ::inet_pton(AF_INET, endpoint.host.c_str(), &a4->sin_addr) == 1) {
        a4->sin_family = family = AF_INET;
        a4->sin_port = htons(endpoint.port);
        addr_len = sizeof *a4;
    } else {
        auto* a6 = reinterpret_cast<sockaddr_in6*>(&addr);
        ::inet_pton(AF_INET6, endpoint.host.c_str(), &a6->sin6_addr);
        a6->sin6_family = family = AF_INET6;
        a6->sin6_port = htons(endpoint.port);
        addr_len = sizeof *a6;
    }
    const int64_t deadline = now_ms() + timeout_ms;
    const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return std::string("socket: ") + std::strerror(errno);
    std::string reason;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), addr_len) != 0 && errno != EINPROGRESS) {
        reason = std::string("connect: ") + std::strerror(errno);
    } else if (!wait_for(fd, POLLOUT, deadline)) {
        reason = "connect: no answer within " + std::to_string(timeout_ms) + " ms";
    } else {
        int error = 0;
        socklen_t len = sizeof error;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
        if (error != 0) reason = std::string("connect: ") + std::strerror(error);
    }
    if (reason.empty() && !send_all(fd, request))
        reason = std::string("send: ") + std::strerror(errno);
    std::string answer;
    while (reason.empty() && answer.find("\r\n\r\n") == std::string::npos) {
        if (answer.size() > 4096) {
            reason = "the answer's headers exceed 4096 bytes";
            break;
        }
        if (!wait_for(fd, POLLIN, deadline)) {
            reason = "no complete answer within " + std::to_string(timeout_ms) + " ms";
            break;
        }
        char buf[512];
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n < 0) {
            reason = std::string("receive: ") + std::strerror(errno);
        } else if (n == 0) {
            // HTTP/1.0 servers may close right after the headers.
            if (answer.find("\r\n") == std::string::npos)
                reason = "the endpoint closed the connection without an answer";
            break;
        } else {
            answer.append(buf, static_cast<size_t>(n));
        }
    }
    ::close(fd);
    if (!reason.empty()) return reason;
    // Status-Line = HTTP-Version SP Status-Code SP Reason-Phrase (RFC 1945 §6.1).
    const std::string status_line = answer.substr(0, answer.find("\r\n"));
    if (status_line.rfind("HTTP/", 0) != 0 || status_line.size() < 12 || status_line[8] != ' ')
        return "the endpoint answered \"" + status_line.substr(0, 80) + "\", not HTTP";
    if (status_line[9] != '2') return "the endpoint answered \"" + status_line + "\"";
    return {};
}

}  // namespace

bool parse_announce_endpoint(const std::string& text, AnnounceEndpoint* out, std::string* reason) {
    std::string rest = text;
    const size_t scheme_end = rest.find("://");
    if (scheme_end != std::string::npos) {
        const std::string scheme = rest.substr(0, scheme_end);
        if (scheme != "http") {
            *reason = "scheme \"" + scheme +
                      "\" is not supported: the reference agent speaks plain HTTP (no TLS)";
            return false;
        }
        rest = rest.substr(scheme_end + 3);
    }
    const size_t slash = rest.find('/');
    out->path = slash == std::string::npos ? "/" : rest.substr(slash);
    const std::string authority = rest.substr(0, slash);
    const size_t colon = authority.rfind(':');
    if (colon == std::string::npos || colon + 1 == authority.size() || authority.back() == ']') {
        *reason = "\"" + text + "\" has no port";
        return false;
    }
    const std::string port = authority.substr(colon + 1);
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(port) == 0 || std::stoi(port) > 65535) {
        *reason = "port \"" + port + "\" is not a TCP port";
        return false;
    }
    out->port = static_cast<uint16_t>(std::stoi(port));
    const std::string host = authority.substr(0, colon);
    out->host = strip_brackets(host);
    unsigned char scratch[16];
    const bool v4 = host == out->host && ::inet_pton(AF_INET, out->host.c_str(), scratch) == 1;
    const bool v6 = host != out->host && ::inet_pton(AF_INET6, out->host.c_str(), scratch) == 1;
    if (!v4 && !v6) {
        *reason = "host \"" + host +
                  "\" is not an IP address (the agent has no resolver; an IPv6 address goes "
                  "in brackets)";
        return false;
    }
    return true;
}

std::string announce_body(const AgentIdentity& identity) {
    JsonWriter json;
    json.begin_object()
        .key("machine_id")
        .string(identity.machine_id)
        .key("public_key")
        .string(identity.public_key_hex)
        .key("port")
        .number(identity.port)
        .end_object();
    return json.text();
}

bool announce(const AnnounceEndpoint& endpoint, const AgentIdentity& identity,
              const AnnounceTiming& timing, std::string* reason) {
    const std::string body = announce_body(identity);
    const bool v6 = endpoint.host.find(':') != std::string::npos;
    const std::string host = v6 ? "[" + endpoint.host + "]" : endpoint.host;
    const std::string request =
        "POST " + endpoint.path + " HTTP/1.0\r\nHost: " + host + ":" +
        std::to_string(endpoint.port) +
        "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n" + body;
    int backoff = timing.first_backoff_ms;
    for (int i = 1; i <= timing.attempts; ++i) {
        const std::string e = attempt(endpoint, request, timing.attempt_timeout_ms);
        if (e.empty()) return true;
        *reason =
            "attempt " + std::to_string(i) + " of " + std::to_string(timing.attempts) + ": " + e;
        if (i < timing.attempts) {
            sleep_ms(backoff);
            backoff *= 2;
        }
    }
    return false;
}

std::string identity_line(const AgentIdentity& identity) {
    return "ACTIVATE-AGENT " + announce_body(identity) + "\n";
}

int listen_for_operators(uint16_t port, uint16_t* bound, std::string* reason) {
    const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *reason = std::string("socket: ") + std::strerror(errno);
        return -1;
    }
    const int zero = 0, one = 1;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);  // IPv4 too, as ::ffff:a.b.c.d
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_any;
    addr.sin6_port = htons(port);
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 16) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        *reason = "TCP port " + std::to_string(port) + ": " + std::strerror(errno);
        ::close(fd);
        return -1;
    }
    *bound = ntohs(addr.sin6_port);
    return fd;
}

void serve_identity(int listener, const AgentIdentity& identity) {
    const std::string line = identity_line(identity);
    for (;;) {
        const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EINTR) sleep_ms(100);  // e.g. EMFILE: do not spin
            continue;
        }
        // One short line; a peer that does not read cannot hold the agent for long.
        const timeval limit{2, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
        send_all(fd, line);
        ::close(fd);
    }
}

}  // namespace activate::agent
