// Streaming HTTP(S) download for bundles. libcurl's multi interface is driven from read(): the
// write callback fills a fixed ring buffer and pauses the transfer when it is full, so memory is
// bounded whatever the body size. Failed attempts are retried with exponential backoff; once body
// bytes were handed out, only an exact resume (Range + If-Range, answered by 206 with the right
// Content-Range; RFC 9110 §14.2, §13.1.5) may continue the transfer. A server that offers ranges
// but then refuses them (416, or 200 with the same file) is read through from its start instead,
// the bytes before the position dropped: slower, never stuck.
#include "http_source.hpp"

#include <curl/curl.h>
#include <strings.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace activate::bundle {

namespace {

// Smallest ring: two of libcurl's write chunks, so a paused chunk always fits once drained.
constexpr size_t kMinBuffer = 2 * CURL_MAX_WRITE_SIZE;

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool retryable_transport(CURLcode code) {
    switch (code) {
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
            return true;
        default:
            return false;
    }
}

std::string trim(std::string s) {
    while (!s.empty() &&
           (s.back() == '\r' || s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) {
        s.pop_back();
    }
    size_t i = 0;
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    return s.substr(i);
}

// Reads the decimal number at value[i], moving i past it.
std::optional<uint64_t> number_at(const std::string& value, size_t& i) {
    if (i >= value.size() || value[i] < '0' || value[i] > '9') return std::nullopt;
    uint64_t v = 0;
    for (; i < value.size() && value[i] >= '0' && value[i] <= '9'; ++i) {
        if (v > (UINT64_MAX - 9) / 10) return std::nullopt;
        v = v * 10 + uint64_t(value[i] - '0');
    }
    return v;
}

// "Content-Range: bytes <first>-<last>/<total>" (RFC 9110 §14.4); total is nullopt for "*".
struct ContentRange {
    uint64_t first = 0;
    std::optional<uint64_t> total;
};
std::optional<ContentRange> parse_content_range(const std::string& value) {
    if (value.rfind("bytes ", 0) != 0) return std::nullopt;
    size_t i = 6;
    const auto first = number_at(value, i);
    if (!first || i >= value.size() || value[i++] != '-') return std::nullopt;
    const auto last = number_at(value, i);
    if (!last || *last < *first || i >= value.size() || value[i++] != '/') return std::nullopt;
    if (value.compare(i, std::string::npos, "*") == 0) return ContentRange{*first, std::nullopt};
    const auto total = number_at(value, i);
    if (!total || i != value.size() || *last >= *total) return std::nullopt;
    return ContentRange{*first, *total};
}

// The complete length in a 416's "Content-Range: bytes */<length>" (RFC 9110 §14.4).
std::optional<uint64_t> unsatisfied_range_length(const std::string& value) {
    if (value.rfind("bytes */", 0) != 0 || value.size() == 8) return std::nullopt;
    uint64_t v = 0;
    for (size_t i = 8; i < value.size(); ++i) {
        if (value[i] < '0' || value[i] > '9' || v > (UINT64_MAX - 9) / 10) return std::nullopt;
        v = v * 10 + uint64_t(value[i] - '0');
    }
    return v;
}

class HttpSource final : public ByteSource {
  public:
    HttpSource(std::string url, SourceOptions options)
        : url_(std::move(url)),
          opt_(std::move(options)),
          ring_(std::max(opt_.buffer_size, kMinBuffer)) {
        errbuf_[0] = 0;
    }

    ~HttpSource() override {
        end_attempt();
        if (multi_) curl_multi_cleanup(multi_);
    }

    HttpSource(const HttpSource&) = delete;
    HttpSource& operator=(const HttpSource&) = delete;

    Result<size_t> read(std::span<uint8_t> out) override {
        if (out.empty()) return size_t(0);
        while (true) {
            if (used_ > 0) {
                const size_t n = take(out);
                // Resume the transfer once half the ring is free again, not per byte.
                if (paused_ && used_ <= ring_.size() / 2) ACTIVATE_TRY(unpause());
                return n;
            }
            if (error_) return *error_;
            if (finished_) return size_t(0);
            if (!active_) {
                if (auto st = start_attempt(); !st.ok()) return fail(std::move(st).error());
                continue;
            }
            if (paused_) {
                ACTIVATE_TRY(unpause());
                continue;
            }
            if (auto st = pump(); !st.ok()) return fail(std::move(st).error());
        }
    }

    // What the ring holds is dropped; beyond it the transfer ends and the next read() asks for
    // the rest from the new position like a resume (Range + If-Range, 206 with the right
    // Content-Range required), so the skipped bytes never cross the network. Without a
    // validator there is no exact resume: the bytes are read through instead.
    Status skip(uint64_t n) override {
        if (error_) return *error_;
        const size_t buffered = size_t(std::min<uint64_t>(n, used_));
        head_ = (head_ + buffered) % ring_.size();
        used_ -= buffered;
        if (used_ == 0) head_ = 0;
        n -= buffered;
        if (n == 0) return {};
        // A Range request only where the first response said the server takes them (RFC 9110
        // §14.3): a server that answered it with 200 would fail every later run at this point.
        if (finished_ || !ranges_usable()) return ByteSource::skip(n);
        if (opt_.logger)
            Log(opt_.logger, "bundle")
                .debug("GET " + url_ + ": skipping " + std::to_string(n) +
                       " bytes, continuing at byte " + std::to_string(received_ + n) +
                       " with a Range request");
        end_attempt();
        received_ += n;
        range_end_.reset();
        attempt_ = 0;  // a new request, with its own retries
        return {};
    }

    // After a skip the next request asks for these bytes only ("Range: bytes=a-b"), so that
    // the server does not stream the rest of the file into the sockets' buffers only for the
    // next skip to drop it. A transfer in progress is left as it is.
    void will_read(uint64_t n) override {
        if (active_ || finished_ || received_ == 0 || !ranges_usable() || n == 0) return;
        range_end_ = received_ + n;
    }

    const std::string& name() const override { return url_; }
    bool over_network() const override { return true; }
    std::optional<uint64_t> size_hint() const override { return total_; }

  private:
    // Range requests are worth making: the first response offered them with a validator for
    // If-Range, and no answer since refused one.
    bool ranges_usable() const {
        return !validator_.empty() && accepts_ranges_ && !ranges_refused_;
    }

    // This response's validator, chosen as for the first response (RFC 9110 §13.1.5: a strong
    // entity tag, else Last-Modified).
    std::string response_validator() const {
        if (!etag_.empty() && etag_.rfind("W/", 0) != 0) return etag_;
        return last_modified_;
    }

    // This 200 response carries the file the first response did: same validator, same length.
    bool same_file() const {
        if (validator_.empty() || response_validator() != validator_) return false;
        curl_off_t length = -1;
        curl_easy_getinfo(easy_, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
        return !total_ || length < 0 || uint64_t(length) == *total_;
    }

    // The server refused a Range request for the file the first response sent: from now on every
    // request asks for the whole file and drops what was already received.
    void refuse_ranges() {
        if (!ranges_refused_ && opt_.logger)
            Log(opt_.logger, "bundle")
                .warning("GET " + url_ + ": the server offered byte ranges but refused a Range " +
                         "request (HTTP " + std::to_string(status_) + "); reading the file " +
                         "from its start and dropping the first " + std::to_string(received_) +
                         " bytes instead");
        ranges_refused_ = true;
        range_end_.reset();
    }

    Error fail(Error e) {
        end_attempt();
        error_ = e;
        return e;
    }

    size_t take(std::span<uint8_t> out) {
        size_t n = std::min(out.size(), used_);
        const size_t first = std::min(n, ring_.size() - head_);
        std::memcpy(out.data(), ring_.data() + head_, first);
        std::memcpy(out.data() + first, ring_.data(), n - first);
        head_ = (head_ + n) % ring_.size();
        used_ -= n;
        if (used_ == 0) head_ = 0;
        return n;
    }

    void put(const uint8_t* data, size_t n) {
        size_t tail = (head_ + used_) % ring_.size();
        const size_t first = std::min(n, ring_.size() - tail);
        std::memcpy(ring_.data() + tail, data, first);
        std::memcpy(ring_.data(), data + first, n - first);
        used_ += n;
    }

    Status unpause() {
        paused_ = false;
        // May call on_write() right away with the data libcurl held back.
        CURLcode rc = curl_easy_pause(easy_, CURLPAUSE_CONT);
        if (rc != CURLE_OK) {
            return fail(Error(ErrorKind::activation, "GET " + url_ +
                                                         ": resuming the paused "
                                                         "transfer failed: " +
                                                         curl_easy_strerror(rc)));
        }
        return {};
    }

    static size_t on_write(char* ptr, size_t size, size_t nmemb, void* userdata) {
        return static_cast<HttpSource*>(userdata)->write(reinterpret_cast<const uint8_t*>(ptr),
                                                         size * nmemb);
    }

    size_t write(const uint8_t* data, size_t n) {
        if (!status_checked_) {
            status_checked_ = true;
            if (!accept_status()) return 0;  // aborts the attempt with CURLE_WRITE_ERROR
        }
        const size_t whole = n;
        // A whole-file answer after ranges were refused: the bytes before received_ are dropped.
        // Nothing is consumed before the rest fits, since a paused chunk is delivered again.
        const size_t drop = size_t(std::min<uint64_t>(n, discard_));
        if (drop == n) {
            discard_ -= drop;
            return whole;
        }
        if (drop > 0 && n - drop > ring_.size() - used_ && used_ > 0) {
            paused_ = true;
            return CURL_WRITEFUNC_PAUSE;
        }
        discard_ -= drop;
        data += drop;
        n -= drop;
        if (n > ring_.size() - used_) {
            if (used_ > 0) {
                paused_ = true;
                return CURL_WRITEFUNC_PAUSE;
            }
            ring_.resize(n);  // libcurl chunks are 16 KiB; never expected
            head_ = 0;
        }
        put(data, n);
        received_ += n;
        return whole;
    }

    // Runs before the first body byte of an attempt is accepted.
    bool accept_status() {
        curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &status_);
        if (attempt_start_ == 0) {
            if (status_ != 200) return false;
            validator_ = response_validator();
            curl_off_t length = -1;
            curl_easy_getinfo(easy_, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
            if (length >= 0) total_ = uint64_t(length);
            accepts_ranges_ = strcasecmp(accept_ranges_.c_str(), "bytes") == 0;
            return true;
        }
        // 200 with the same file: the server (or a proxy) ignores Range; the body is read from its
        // start. A different file is refused: the bundle changed under the download.
        if (status_ == 200) {
            if (!same_file()) {
                reject_ = "the server answered a request to resume at byte " +
                          std::to_string(received_) + " with a different file (validator \"" +
                          response_validator() + "\", was \"" + validator_ + "\")";
                return false;
            }
            if (!whole_file_) {
                refuse_ranges();
                whole_file_ = true;
                discard_ = received_;
            }
            return true;
        }
        if (whole_file_) return false;     // retried or refused by attempt_done()
        if (status_ == 416) return false;  // attempt_done() asks for the whole file instead
        if (status_ != 206) {
            reject_ = "the server answered HTTP " + std::to_string(status_) +
                      " to a request to resume at byte " + std::to_string(received_) +
                      " (the file changed or the server cannot resume)";
            return false;
        }
        // The same file continues at the right byte: a range of a file of another length is
        // another file (a server's If-Range check is only as good as its validator).
        const auto range = parse_content_range(content_range_);
        if (!range || range->first != received_ ||
            (range->total && total_ && *range->total != *total_)) {
            reject_ = "the server resumed with Content-Range \"" + content_range_ +
                      "\" instead of starting at byte " + std::to_string(received_) +
                      (total_ ? " of " + std::to_string(*total_) : std::string());
            return false;
        }
        return true;
    }

    static size_t on_header(char* buffer, size_t size, size_t nitems, void* userdata) {
        auto* self = static_cast<HttpSource*>(userdata);
        std::string line(buffer, size * nitems);
        if (line.rfind("HTTP/", 0) == 0) {
            // A new response (after a redirect or 100 Continue): forget the previous headers.
            self->etag_.clear();
            self->last_modified_.clear();
            self->content_range_.clear();
            self->accept_ranges_.clear();
            return size * nitems;
        }
        const size_t colon = line.find(':');
        if (colon == std::string::npos) return size * nitems;
        const std::string key = line.substr(0, colon);
        std::string value = trim(line.substr(colon + 1));
        if (strcasecmp(key.c_str(), "ETag") == 0) self->etag_ = value;
        if (strcasecmp(key.c_str(), "Last-Modified") == 0) self->last_modified_ = value;
        if (strcasecmp(key.c_str(), "Content-Range") == 0) self->content_range_ = value;
        if (strcasecmp(key.c_str(), "Accept-Ranges") == 0) self->accept_ranges_ = value;
        return size * nitems;
    }

    Status start_attempt() {
        global_init();
        ++attempt_;
        if (!multi_) {
            multi_ = curl_multi_init();
            if (!multi_) return Error(ErrorKind::internal, "curl_multi_init failed");
        }
        easy_ = curl_easy_init();
        if (!easy_) return Error(ErrorKind::internal, "curl_easy_init failed");
        errbuf_[0] = 0;
        attempt_start_ = received_;
        // After a refused Range request every request is for the whole file.
        whole_file_ = received_ > 0 && ranges_refused_;
        discard_ = whole_file_ ? received_ : 0;
        status_checked_ = false;
        status_ = 0;
        reject_.clear();
        etag_.clear();
        last_modified_.clear();
        content_range_.clear();
        accept_ranges_.clear();
        const long low_speed_s =
            std::max<long>(1, long((opt_.low_speed_time.count() + 999) / 1000));
        bool ok = true;
        auto set = [&](CURLcode rc) { ok = ok && rc == CURLE_OK; };
        set(curl_easy_setopt(easy_, CURLOPT_URL, url_.c_str()));
        set(curl_easy_setopt(easy_, CURLOPT_PROTOCOLS_STR, "http,https"));
        set(curl_easy_setopt(easy_, CURLOPT_REDIR_PROTOCOLS_STR, "http,https"));
        set(curl_easy_setopt(easy_, CURLOPT_FOLLOWLOCATION, 1L));
        set(curl_easy_setopt(easy_, CURLOPT_MAXREDIRS, 10L));
        set(curl_easy_setopt(easy_, CURLOPT_NOSIGNAL, 1L));
        set(curl_easy_setopt(easy_, CURLOPT_ERRORBUFFER, errbuf_));
        set(curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &HttpSource::on_write));
        set(curl_easy_setopt(easy_, CURLOPT_WRITEDATA, this));
        set(curl_easy_setopt(easy_, CURLOPT_HEADERFUNCTION, &HttpSource::on_header));
        set(curl_easy_setopt(easy_, CURLOPT_HEADERDATA, this));
        set(curl_easy_setopt(easy_, CURLOPT_CONNECTTIMEOUT_MS, long(opt_.connect_timeout.count())));
        set(curl_easy_setopt(easy_, CURLOPT_LOW_SPEED_LIMIT, long(opt_.low_speed_limit)));
        set(curl_easy_setopt(easy_, CURLOPT_LOW_SPEED_TIME, low_speed_s));
        set(curl_easy_setopt(easy_, CURLOPT_TCP_KEEPALIVE, 1L));
        set(curl_easy_setopt(easy_, CURLOPT_USERAGENT, "activate-bundle/1"));
        if (!opt_.ca_file.empty())
            set(curl_easy_setopt(easy_, CURLOPT_CAINFO, opt_.ca_file.c_str()));
        if (received_ > 0 && !whole_file_) {
            range_ = std::to_string(received_) + "-" +
                     (range_end_ && *range_end_ > received_ ? std::to_string(*range_end_ - 1)
                                                            : std::string());
            set(curl_easy_setopt(easy_, CURLOPT_RANGE, range_.c_str()));
            headers_ = curl_slist_append(nullptr, ("If-Range: " + validator_).c_str());
            set(curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, headers_));
        }
        if (!ok)
            return Error(ErrorKind::internal, "setting libcurl options for " + url_ + " failed");
        if (curl_multi_add_handle(multi_, easy_) != CURLM_OK) {
            return Error(ErrorKind::internal, "curl_multi_add_handle failed for " + url_);
        }
        active_ = true;
        return {};
    }

    void end_attempt() {
        if (easy_) {
            if (multi_) curl_multi_remove_handle(multi_, easy_);
            curl_easy_cleanup(easy_);
            easy_ = nullptr;
        }
        if (headers_) {
            curl_slist_free_all(headers_);
            headers_ = nullptr;
        }
        active_ = false;
        paused_ = false;
    }

    // One round of libcurl work; waits up to a second for the socket when nothing is buffered.
    Status pump() {
        int running = 0;
        CURLMcode mc = curl_multi_perform(multi_, &running);
        if (mc != CURLM_OK) {
            return Error(ErrorKind::internal,
                         std::string("curl_multi_perform: ") + curl_multi_strerror(mc));
        }
        int left = 0;
        while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
            if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy_) {
                return attempt_done(msg->data.result);
            }
        }
        if (used_ == 0 && running > 0) {
            mc = curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
            if (mc != CURLM_OK) {
                return Error(ErrorKind::internal,
                             std::string("curl_multi_poll: ") + curl_multi_strerror(mc));
            }
        }
        return {};
    }

    Status attempt_done(CURLcode code) {
        if (!status_checked_) curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &status_);
        curl_off_t retry_after = 0;
        curl_easy_getinfo(easy_, CURLINFO_RETRY_AFTER, &retry_after);
        const std::string detail = errbuf_[0] ? std::string(errbuf_) : curl_easy_strerror(code);
        end_attempt();

        const long expected = attempt_start_ == 0 || whole_file_ ? 200 : 206;
        std::string reason;
        // 416 to a Range request inside the file the first response announced: the server
        // offered ranges but refuses them. The whole file again, with fresh retries.
        if (attempt_start_ > 0 && !whole_file_ && status_ == 416 && reject_.empty()) {
            // Unless the file is not as long as announced: then the range really is beyond its
            // end (RFC 9110 §15.5.17: "Content-Range: bytes */<length>").
            const auto length = unsatisfied_range_length(content_range_);
            if (length && total_ && *length != *total_)
                return Error(ErrorKind::activation,
                             "GET " + url_ + ": the server answered HTTP 416 to a request to " +
                                 "resume at byte " + std::to_string(received_) + ": the file is " +
                                 std::to_string(*length) + " bytes (Content-Range \"" +
                                 content_range_ + "\"), not the " + std::to_string(*total_) +
                                 " its first response announced");
            refuse_ranges();
            attempt_ = 0;
            return start_attempt();
        }
        if (code == CURLE_OK && status_ == expected && range_end_ && received_ == *range_end_) {
            // A closed range delivered: not the end of the file; a further read asks again.
            range_end_.reset();
            return {};
        }
        if (code == CURLE_OK && status_ == expected) {
            if (received_ == 0) total_ = 0;  // an empty body: the write callback never ran
            finished_ = true;
            return {};
        }
        if (!reject_.empty()) {
            return Error(ErrorKind::activation, "GET " + url_ + ": " + reject_);
        }
        // The last response of a redirect loop is a 3xx; what failed is libcurl's redirect limit.
        if (code == CURLE_TOO_MANY_REDIRECTS) {
            return Error(ErrorKind::activation,
                         "GET " + url_ + ": " + detail + " (not retried; a redirect loop?)");
        }
        if (status_ != 0 && status_ != expected) {
            if (!retryable_http_status(status_)) {
                return Error(ErrorKind::activation,
                             "GET " + url_ + ": HTTP " + std::to_string(status_) +
                                 " (not retried; only 200 delivers a bundle)");
            }
            reason = "HTTP " + std::to_string(status_);
        } else {
            if (!retryable_transport(code)) {
                return Error(ErrorKind::activation, "GET " + url_ + ": " + detail);
            }
            if (received_ > 0 && validator_.empty()) {
                return Error(ErrorKind::activation,
                             "GET " + url_ + ": " + detail + " after " + std::to_string(received_) +
                                 " bytes of the body; not retried because the server sent no "
                                 "ETag or Last-Modified to resume exactly");
            }
            reason = detail;
        }
        if (attempt_ >= opt_.max_attempts) {
            return Error(ErrorKind::activation, "GET " + url_ + ": " + reason + " (gave up after " +
                                                    std::to_string(attempt_) + " attempts)");
        }
        // Exponential backoff (attempt_ >= 1 here), capped; Retry-After may only lengthen it.
        auto delay = opt_.initial_backoff;
        for (int i = 1; i < attempt_ && delay < opt_.max_backoff; ++i) delay *= 2;
        if (retry_after > 0) {
            delay = std::max<std::chrono::milliseconds>(delay, std::chrono::seconds(retry_after));
        }
        delay = std::min(delay, opt_.max_backoff);
        if (opt_.logger) {
            Log(opt_.logger, "bundle")
                .warning("GET " + url_ + ": " + reason + "; attempt " + std::to_string(attempt_) +
                         " of " + std::to_string(opt_.max_attempts) + ", retrying in " +
                         std::to_string(delay.count()) + " ms" +
                         (received_ > 0 ? " from byte " + std::to_string(received_) : ""));
        }
        std::this_thread::sleep_for(delay);
        return start_attempt();
    }

    std::string url_;
    SourceOptions opt_;
    CURLM* multi_ = nullptr;
    CURL* easy_ = nullptr;
    curl_slist* headers_ = nullptr;
    char errbuf_[CURL_ERROR_SIZE];
    std::string range_;

    std::vector<uint8_t> ring_;
    size_t head_ = 0;
    size_t used_ = 0;
    bool paused_ = false;

    bool active_ = false;
    bool finished_ = false;
    std::optional<Error> error_;
    int attempt_ = 0;
    uint64_t received_ = 0;  // body bytes accepted or skipped: where a resume starts
    // will_read(): the end (exclusive) of the closed range the next request asks for.
    std::optional<uint64_t> range_end_;
    std::optional<uint64_t> total_;
    std::string validator_;        // If-Range value from the first response
    bool accepts_ranges_ = false;  // the first response had "Accept-Ranges: bytes"
    bool ranges_refused_ = false;  // a Range request was answered by 416 or the whole file

    // Per attempt.
    uint64_t attempt_start_ = 0;  // received_ when the attempt began: 0 asks for 200, else 206
    bool whole_file_ = false;     // this attempt asks for (or got) the whole file again
    uint64_t discard_ = 0;        // body bytes of this attempt still to drop (whole_file_)
    bool status_checked_ = false;
    long status_ = 0;
    std::string reject_;
    std::string etag_;
    std::string last_modified_;
    std::string content_range_;
    std::string accept_ranges_;
};

}  // namespace

bool retryable_http_status(long status) {
    return status == 425 || status == 429 || status == 500 || (status >= 502 && status <= 504) ||
           (status >= 520 && status <= 598);
}

Result<std::unique_ptr<ByteSource>> open_http(const std::string& url,
                                              const SourceOptions& options) {
    if (options.max_attempts < 1) {
        return Error(ErrorKind::usage,
                     "bundle download of " + url + ": max_attempts must be at least 1");
    }
    return std::unique_ptr<ByteSource>(std::make_unique<HttpSource>(url, options));
}

}  // namespace activate::bundle
