// Where bundle bytes come from: a sequential byte stream (a local file, a pipe, an HTTP(S)
// download or a memory buffer), so a multi-GiB bundle can flow from the network into a partition
// while only a bounded buffer is held in memory. The only jump is forward (skip()): an install
// that resumes passes over what an earlier run already wrote without fetching it.
#pragma once

#include <activate/fd.hpp>
#include <activate/log.hpp>
#include <activate/result.hpp>
#include <activate/sysroot.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

namespace activate::bundle {

class ByteSource {
  public:
    virtual ~ByteSource() = default;
    // Reads up to out.size() bytes; blocks until at least one byte is available. 0 only at the
    // end of the data (and for an empty `out`). After an error the source is unusable.
    virtual Result<size_t> read(std::span<uint8_t> out) = 0;
    // Advances past the next `n` bytes without delivering them. The default reads and discards
    // them; a regular file seeks, and a download drops its connection and asks for the rest with
    // a Range request (when the server gave a validator for If-Range), so the bytes skipped are
    // never fetched. Skipping beyond the end is an error at the next read().
    virtual Status skip(uint64_t n);
    // Announces that only the next `n` bytes will be read before the next skip() (or the end):
    // a download that has to start a new request there asks for just them (a closed Range,
    // RFC 9110 §14.1.2) instead of everything to the end of the file, so nothing beyond them
    // runs ahead into the sockets. Reading further still works (with another request). Only a
    // hint; the default ignores it.
    virtual void will_read(uint64_t n) { (void)n; }
    // True when the bytes come over a network (a download): reading a local copy of some of them
    // instead (delta installs) saves something. A local file costs what reading a slot costs.
    virtual bool over_network() const { return false; }
    // For messages: the path or URL.
    virtual const std::string& name() const = 0;
    // Total length when known (file size; for a download the Content-Length, known once the
    // first read() returned), for progress reporting.
    virtual std::optional<uint64_t> size_hint() const { return std::nullopt; }
};

// HTTP(S) behaviour; ignored for local files. See core/bundle/README.md "Retry policy".
struct SourceOptions {
    // Time allowed for the TCP (and TLS) connection of one attempt.
    std::chrono::milliseconds connect_timeout{std::chrono::seconds(30)};
    // An attempt fails when fewer than `low_speed_limit` bytes/s arrive during `low_speed_time`
    // (libcurl counts whole seconds; values below 1 s count as 1 s). This also bounds the time
    // to first byte of the response.
    uint32_t low_speed_limit = 1024;
    std::chrono::milliseconds low_speed_time{std::chrono::seconds(60)};
    // Attempts in total (1 = no retry). Retried: HTTP 425, 429, 500, 502-504, 520-598 and
    // transport errors (connect, resolve, reset, timeout) — before any body byte was delivered,
    // or later only as an exact resume (see README).
    int max_attempts = 6;
    // Backoff before retry n (1-based) is initial_backoff * 2^(n-1), capped at max_backoff; a
    // server's Retry-After (429/503) is honoured up to max_backoff.
    std::chrono::milliseconds initial_backoff{std::chrono::seconds(1)};
    std::chrono::milliseconds max_backoff{std::chrono::seconds(30)};
    // Body bytes buffered between libcurl and read(): memory stays below this plus one libcurl
    // write chunk (CURL_MAX_WRITE_SIZE, 16 KiB).
    size_t buffer_size = 1 << 20;
    // PEM file of trusted CAs, a path as given (not under the sysroot; empty: libcurl default).
    std::string ca_file = {};
    // Retries are logged here as warnings when set.
    const Logger* logger = nullptr;
};

// `path_or_url` starting with "http://" or "https://" is downloaded with libcurl; anything else
// is an absolute system path opened through the sysroot. Opening an URL performs no I/O yet:
// the first read() starts the transfer (and reports HTTP errors).
Result<std::unique_ptr<ByteSource>> open_source(const Sysroot& sysroot,
                                                const std::string& path_or_url,
                                                const SourceOptions& options = {});

// Reads an already open descriptor (a file, pipe or socket) to its end.
std::unique_ptr<ByteSource> fd_source(UniqueFd fd, std::string name);

// Reads a caller-owned buffer, which must outlive the source (tests, fuzzing).
std::unique_ptr<ByteSource> memory_source(std::span<const uint8_t> data,
                                          std::string name = "<memory>");

}  // namespace activate::bundle
