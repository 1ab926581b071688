// A fault-injecting HTTP/1.1 proxy for download tests (issue 16 §5): listens on 127.0.0.1,
// forwards each request to an upstream server on 127.0.0.1 (nginx in the tests) and misbehaves
// on the way back as told — cuts the connection after N body bytes, stalls, lies about
// Content-Length or Content-Range, strips the validators, or answers 200 to a Range request.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace activate::test_support {

// What the proxy does to one request and its response; the default forwards it unchanged.
struct Fault {
    // Close the client's connection after this many bytes of the response body.
    std::optional<uint64_t> cut_after;
    // After this many body bytes, forward nothing for `stall_for` (the connection stays open).
    std::optional<uint64_t> stall_after;
    std::chrono::milliseconds stall_for{0};
    // Replace the value of these response headers (added when absent).
    std::optional<std::string> content_length;
    std::optional<std::string> content_range;
    // Remove ETag and Last-Modified from the response: the client has no validator to resume.
    bool strip_validators = false;
    // Remove Range and If-Range from the request, so the upstream answers 200 with the whole file.
    bool ignore_range = false;
};

// One request as the proxy saw it.
struct ProxiedRequest {
    size_t index = 0;             // order of arrival (requests() is sorted by it)
    std::string request_line;     // "GET /b.zip HTTP/1.1"
    std::string range;            // the client's Range header, "" without one
    int status = 0;               // the upstream's status code (0: no response)
    uint64_t body_forwarded = 0;  // response body bytes written to the client
};

class FaultProxy {
  public:
    // Request n (0-based, in order of arrival) gets faults[n]; later ones get `rest`.
    FaultProxy(uint16_t upstream_port, std::vector<Fault> faults, Fault rest = {});
    ~FaultProxy();  // closes every connection and joins every thread
    FaultProxy(const FaultProxy&) = delete;
    FaultProxy& operator=(const FaultProxy&) = delete;

    bool running() const { return port_ != 0; }
    const std::string& error() const { return error_; }
    uint16_t port() const { return port_; }
    std::string url(const std::string& path) const;

    // Requests handled so far, each recorded once its exchange ended. Waits up to 3 s for the
    // exchanges still open to end: a client may be done with a response (it had all the bytes
    // Content-Length announced) a moment before the proxy saw the upstream close.
    std::vector<ProxiedRequest> requests() const;
    // Response body bytes written to clients over all requests.
    uint64_t body_bytes_forwarded() const;

  private:
    void accept_loop();
    void serve(int client, size_t index);
    Fault fault_for(size_t index) const;
    // Sleeps up to `ms`; false when the proxy is stopping or the client went away.
    bool pause(int client, std::chrono::milliseconds ms) const;

    uint16_t upstream_port_;
    std::vector<Fault> faults_;
    Fault rest_;
    int listener_ = -1;
    int stop_pipe_[2] = {-1, -1};  // written to once by the destructor; every poll watches it
    uint16_t port_ = 0;
    std::string error_;
    std::thread acceptor_;

    mutable std::mutex mu_;
    mutable std::condition_variable exchange_ended_;
    std::vector<std::thread> connections_;
    std::vector<int> open_clients_;  // shut down by the destructor to wake a blocked send()
    std::vector<ProxiedRequest> done_;
    std::atomic<size_t> next_index_{0};
};

}  // namespace activate::test_support
