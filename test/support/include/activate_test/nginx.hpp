// A real HTTP server for tests (issue 16 §5): nginx started on 127.0.0.1 on a free port as the
// user running the tests, from a config generated in a temporary directory (its own prefix, pid,
// logs and temp paths; nothing under /etc or /var), serving one directory with byte ranges,
// ETag and Last-Modified. Stopped in the destructor.
#pragma once

#include <sys/types.h>

#include <activate_test/support.hpp>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace activate::test_support {

// The nginx binary tests run, or nullopt when it is not installed (Debian: nginx-light, which
// scripts/setup.sh installs). Tests skip with a message saying so.
std::optional<std::filesystem::path> nginx_binary();

// One line of the access log: what was asked and how many body bytes nginx sent for it
// (nginx's $body_bytes_sent: counted as written to the socket, so a cut connection counts
// what left before the cut).
struct NginxRequest {
    std::string method, uri, range;  // range: the Range header, "" without one
    int status = 0;
    uint64_t body_bytes_sent = 0;
};

class NginxServer {
  public:
    // Starts nginx serving `root` (read-only) and waits until it accepts connections. On failure
    // error() says why (with nginx's error log) and port() is 0.
    explicit NginxServer(const std::filesystem::path& root);
    ~NginxServer();
    NginxServer(const NginxServer&) = delete;
    NginxServer& operator=(const NginxServer&) = delete;

    bool running() const { return port_ != 0; }
    const std::string& error() const { return error_; }
    uint16_t port() const { return port_; }
    // "http://127.0.0.1:<port>" + path (path starts with '/').
    std::string url(const std::string& path) const;

    // The access log so far. nginx writes a line when a request ends (for a connection the
    // client dropped, once it noticed), so this waits up to `timeout_ms` for `at_least` lines.
    std::vector<NginxRequest> requests(size_t at_least = 0, int timeout_ms = 3000) const;

  private:
    bool start_once(const std::filesystem::path& root);
    void stop();

    TempDir dir_{"nginx-test"};
    pid_t pid_ = -1;
    uint16_t port_ = 0;
    std::string error_;
};

}  // namespace activate::test_support
