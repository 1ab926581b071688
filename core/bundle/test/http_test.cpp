// Downloads from a loopback server started by the test (http_server.py): success, retries with
// backoff, permanent errors, timeouts, exact resume, and the memory bound of the ring buffer.
// Also the local-path side of open_source().
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <activate/bundle/source.hpp>
#include <activate/bundle/verifying_reader.hpp>
#include <activate/bundle/writer.hpp>
#include <chrono>
#include <cstring>

#include "http_source.hpp"
#include "test_util.hpp"

namespace activate::bundle::test {
namespace {

using std::chrono::milliseconds;

class HttpTest : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!have_program("python3")) GTEST_SKIP() << "python3 not installed";
        ::signal(SIGPIPE, SIG_IGN);
        // A bundle big enough to need several reads and ring refills.
        BundleWriter w(string_sink(&bundle_));
        ASSERT_TRUE(w.add_member("manifest", as_bytes("v1")).ok());
        ASSERT_TRUE(w.add_member("system.img", as_bytes(random_bytes(3 << 20, 21))).ok());
        ASSERT_TRUE(w.finish().ok());
        write_whole(dir_ / "bundle.zip", bundle_);

        int in[2], out[2];
        ASSERT_EQ(::pipe2(in, O_CLOEXEC), 0);
        ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
        pid_ = ::fork();
        ASSERT_GE(pid_, 0);
        if (pid_ == 0) {
            ::dup2(in[0], 0);
            ::dup2(out[1], 1);
            const std::string script = std::string(BUNDLE_TEST_DIR) + "/http_server.py";
            const std::string file = (dir_ / "bundle.zip").string();
            ::execlp("python3", "python3", script.c_str(), file.c_str(), nullptr);
            ::_exit(127);
        }
        ::close(in[0]);
        ::close(out[1]);
        stdin_ = UniqueFd(in[1]);
        UniqueFd stdout_fd(out[0]);
        std::string line;
        pollfd pfd{stdout_fd.get(), POLLIN, 0};
        while (line.find('\n') == std::string::npos) {
            ASSERT_GT(::poll(&pfd, 1, 10000), 0) << "test server did not start";
            char buf[64];
            ssize_t n = ::read(stdout_fd.get(), buf, sizeof buf);
            ASSERT_GT(n, 0) << "test server exited";
            line.append(buf, size_t(n));
        }
        base_ = "http://127.0.0.1:" + line.substr(0, line.find('\n'));
    }

    void TearDown() override {
        stdin_.reset();  // the server exits when its stdin closes
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            ::waitpid(pid_, nullptr, 0);
        }
    }

    static SourceOptions fast() {
        SourceOptions o;
        o.initial_backoff = milliseconds(50);
        o.max_backoff = milliseconds(200);
        o.connect_timeout = milliseconds(2000);
        o.low_speed_limit = 1000;
        o.low_speed_time = milliseconds(1000);
        o.max_attempts = 4;
        return o;
    }

    Result<std::string> fetch(const std::string& route, const SourceOptions& options) {
        ACTIVATE_ASSIGN(auto src, open_source(Sysroot("/"), base_ + route, options));
        std::string body;
        std::vector<uint8_t> buf(100000);
        while (true) {
            ACTIVATE_ASSIGN(size_t n, src->read(buf));
            if (n == 0) break;
            body.append(reinterpret_cast<const char*>(buf.data()), n);
        }
        last_size_hint_ = src->size_hint();
        return body;
    }

    int requests(const std::string& route) {
        auto r = fetch("/count" + route, fast());
        EXPECT_TRUE(r.ok());
        return r.ok() ? std::stoi(*r) : -1;
    }

    TempDir dir_;
    std::string bundle_;
    pid_t pid_ = -1;
    UniqueFd stdin_;
    std::string base_;
    std::optional<uint64_t> last_size_hint_;
};

TEST_F(HttpTest, DownloadsAndReadsABundle) {
    auto src = open_source(Sysroot("/"), base_ + "/ok", fast());
    ASSERT_TRUE(src.ok());
    auto members = read_all(std::move(*src));
    ASSERT_TRUE(members.ok()) << members.error().message();
    ASSERT_EQ(members->size(), 2u);
    EXPECT_EQ((*members)[1].header.name, "system.img");
    EXPECT_EQ((*members)[1].data, random_bytes(3 << 20, 21));
}

TEST_F(HttpTest, SmallRingStillDeliversEverything) {
    SourceOptions o = fast();
    o.buffer_size = 1;  // raised to the minimum of two libcurl chunks
    auto body = fetch("/ok", o);
    ASSERT_TRUE(body.ok()) << body.error().message();
    EXPECT_EQ(*body, bundle_);
    EXPECT_EQ(last_size_hint_, bundle_.size());
}

TEST_F(HttpTest, FollowsRedirectsAndHandlesEmptyBodies) {
    auto body = fetch("/redirect", fast());
    ASSERT_TRUE(body.ok()) << body.error().message();
    EXPECT_EQ(*body, bundle_);
    auto empty = fetch("/empty", fast());
    ASSERT_TRUE(empty.ok()) << empty.error().message();
    EXPECT_EQ(*empty, "");
}

TEST_F(HttpTest, RetriesServiceUnavailable) {
    const auto start = std::chrono::steady_clock::now();
    auto body = fetch("/flaky/a", fast());
    ASSERT_TRUE(body.ok()) << body.error().message();
    EXPECT_EQ(*body, bundle_);
    EXPECT_EQ(requests("/flaky/a"), 3);
    // Backoff 50 ms then 100 ms: at least 150 ms passed.
    EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(150));
}

TEST_F(HttpTest, GivesUpAfterMaxAttempts) {
    SourceOptions o = fast();
    o.max_attempts = 3;
    auto body = fetch("/always503", o);
    ASSERT_FALSE(body.ok());
    EXPECT_NE(body.error().message().find("HTTP 503"), std::string::npos);
    EXPECT_NE(body.error().message().find("gave up after 3 attempts"), std::string::npos)
        << body.error().message();
    EXPECT_EQ(requests("/always503"), 3);
}

TEST_F(HttpTest, NotFoundIsPermanent) {
    auto body = fetch("/missing", fast());
    ASSERT_FALSE(body.ok());
    const std::string& msg = body.error().message();
    EXPECT_NE(msg.find("HTTP 404"), std::string::npos) << msg;
    EXPECT_NE(msg.find(base_ + "/missing"), std::string::npos) << msg;
    EXPECT_EQ(requests("/missing"), 1);
}

TEST_F(HttpTest, StalledBodyTimesOutWithoutRetry) {
    // Body started and the server gives no validator: no exact resume, so no retry.
    const auto start = std::chrono::steady_clock::now();
    auto body = fetch("/stall", fast());
    ASSERT_FALSE(body.ok());
    EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(8000));
    const std::string& msg = body.error().message();
    EXPECT_NE(msg.find("too slow"), std::string::npos) << msg;
    EXPECT_NE(msg.find("no ETag"), std::string::npos) << msg;
    EXPECT_EQ(requests("/stall"), 1);
}

TEST_F(HttpTest, SilentServerTimesOutAndIsRetried) {
    SourceOptions o = fast();
    o.max_attempts = 2;
    const auto start = std::chrono::steady_clock::now();
    auto body = fetch("/hang", o);
    ASSERT_FALSE(body.ok());
    EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(10000));
    EXPECT_NE(body.error().message().find("gave up after 2 attempts"), std::string::npos)
        << body.error().message();
    EXPECT_EQ(requests("/hang"), 2);
}

// A loopback URL on a port nobody listens on: bind, learn the port, close.
std::string refused_url() {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        ADD_FAILURE() << "no loopback port: " << std::strerror(errno);
    ::close(s);
    return "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/x";
}

TEST_F(HttpTest, ConnectionRefusedIsRetried) {
    SourceOptions o = fast();
    o.max_attempts = 2;
    auto src = open_source(Sysroot("/"), refused_url(), o);
    ASSERT_TRUE(src.ok());
    uint8_t buf[16];
    auto r = (*src)->read(buf);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("gave up after 2 attempts"), std::string::npos)
        << r.error().message();
    // The source stays failed.
    EXPECT_FALSE((*src)->read(buf).ok());
}

// A download that fails before its first byte reaches the bundle reader as the failure itself:
// the HTTP status or libcurl's error and the URL, ErrorKind::activation (exit 6). The reader's
// first read used to turn every such failure into "ends at byte 0 without a central directory;
// the bundle is incomplete" (ErrorKind::input, exit 5).
TEST_F(HttpTest, ReaderReportsTheDownloadFailureNotAnIncompleteBundle) {
    SourceOptions o = fast();
    o.max_attempts = 2;
    const struct {
        std::string url;
        std::string expected;
    } cases[] = {
        {base_ + "/missing", "HTTP 404 (not retried"},
        {base_ + "/always500", "HTTP 500 (gave up after 2 attempts)"},
        {base_ + "/loop", "Maximum (10) redirects followed (not retried"},
        {refused_url(), "gave up after 2 attempts"},
    };
    for (const auto& c : cases) {
        auto src = open_source(Sysroot("/"), c.url, o);
        ASSERT_TRUE(src.ok()) << src.error().message();
        auto members = read_all(std::move(*src));
        ASSERT_FALSE(members.ok()) << c.url;
        const std::string& msg = members.error().message();
        EXPECT_EQ(members.error().kind(), ErrorKind::activation) << msg;
        EXPECT_NE(msg.find("GET " + c.url + ": "), std::string::npos) << msg;
        EXPECT_NE(msg.find(c.expected), std::string::npos) << msg;
        EXPECT_EQ(msg.find("central directory"), std::string::npos) << msg;
    }
    // The same through signature verification, which reads the first member at open().
    auto src = open_source(Sysroot("/"), base_ + "/missing", o);
    ASSERT_TRUE(src.ok());
    auto reader = BundleReader::open(std::move(*src));
    ASSERT_TRUE(reader.ok());
    TrustOptions trust;
    trust.allow_unsigned = true;  // so that open() reads instead of refusing for want of keys
    auto verifying = VerifyingReader::open(std::move(*reader), trust);
    ASSERT_FALSE(verifying.ok());
    EXPECT_EQ(verifying.error().kind(), ErrorKind::activation) << verifying.error().message();
    EXPECT_NE(verifying.error().message().find("HTTP 404"), std::string::npos)
        << verifying.error().message();
}

TEST_F(HttpTest, ResumesExactlyAfterACutConnection) {
    auto body = fetch("/cut/a", fast());
    ASSERT_TRUE(body.ok()) << body.error().message();
    EXPECT_EQ(*body, bundle_);
    EXPECT_EQ(requests("/cut/a"), 2);
}

// skip() beyond what is buffered drops the connection and continues with a Range request from
// the new position: the bytes skipped are never sent (the server counts what it wrote).
TEST_F(HttpTest, SkipContinuesWithARangeRequest) {
    auto src = open_source(Sysroot("/"), base_ + "/ranged", fast());
    ASSERT_TRUE(src.ok());
    std::vector<uint8_t> buf(1000);
    auto n = (*src)->read(buf);
    ASSERT_TRUE(n.ok()) << n.error().message();
    const uint64_t at = *n;
    const uint64_t skip = 2 << 20;  // beyond the 1 MiB ring
    ASSERT_TRUE((*src)->skip(skip).ok());
    std::string rest;
    std::vector<uint8_t> big(100000);
    while (true) {
        auto r = (*src)->read(big);
        ASSERT_TRUE(r.ok()) << r.error().message();
        if (*r == 0) break;
        rest.append(reinterpret_cast<const char*>(big.data()), *r);
    }
    EXPECT_EQ(rest, bundle_.substr(at + skip));
    auto ranges = fetch("/ranges/ranged", fast());
    ASSERT_TRUE(ranges.ok());
    EXPECT_EQ(*ranges, std::to_string(at + skip));
    // The Range response carried exactly the rest. (How far the first response ran ahead before
    // the skip dropped it depends on the sockets' buffers, several MiB on loopback: for this
    // 3 MiB bundle that can be all of it, so the total sent is not a measure here.)
    auto ranged = fetch("/sent/ranged@ranges", fast());
    ASSERT_TRUE(ranged.ok());
    EXPECT_EQ(std::stoull(*ranged), bundle_.size() - (at + skip)) << *ranged;

    // A server that does not say it takes ranges (/ok sends no Accept-Ranges) is read through:
    // one request.
    auto plain = open_source(Sysroot("/"), base_ + "/ok", fast());
    ASSERT_TRUE(plain.ok());
    auto first = (*plain)->read(buf);
    ASSERT_TRUE(first.ok());
    ASSERT_TRUE((*plain)->skip(skip).ok());
    ASSERT_TRUE((*plain)->read(std::span<uint8_t>(buf.data(), 1)).ok());
    EXPECT_EQ(buf[0], uint8_t(bundle_[*first + skip]));
    EXPECT_EQ(requests("/ok"), 1);

    // Within what is buffered nothing is requested again; a local file seeks.
    auto again = open_source(Sysroot("/"), base_ + "/ok", fast());
    ASSERT_TRUE(again.ok());
    auto got = (*again)->read(buf);
    ASSERT_TRUE(got.ok());
    ASSERT_TRUE((*again)->skip(10).ok());
    ASSERT_TRUE((*again)->read(buf).ok());
    EXPECT_EQ(buf[0], uint8_t(bundle_[*got + 10]));
    EXPECT_EQ(requests("/ok"), 2);
    auto file = open_source(Sysroot("/"), (dir_ / "bundle.zip").string());
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE((*file)->skip(12345).ok());
    ASSERT_TRUE((*file)->read(std::span<uint8_t>(buf.data(), 1)).ok());
    EXPECT_EQ(buf[0], uint8_t(bundle_[12345]));
}

// will_read(n) after a skip: the next request is a closed range of n bytes (the server sends
// nothing beyond them), and reading past it continues with another request.
TEST_F(HttpTest, WillReadAsksForAClosedRange) {
    auto src = open_source(Sysroot("/"), base_ + "/ranged", fast());
    ASSERT_TRUE(src.ok());
    auto read_exactly = [&](uint64_t bytes) -> std::string {
        std::string out;
        std::vector<uint8_t> buf(bytes);
        while (out.size() < bytes) {
            auto r = (*src)->read(std::span<uint8_t>(buf.data(), bytes - out.size()));
            if (!r.ok() || *r == 0) return out;
            out.append(reinterpret_cast<const char*>(buf.data()), *r);
        }
        return out;
    };
    const uint64_t at = 1000;
    ASSERT_EQ(read_exactly(at), bundle_.substr(0, at));
    const uint64_t a1 = at + 1200000;  // beyond the 1 MiB ring
    ASSERT_TRUE((*src)->skip(a1 - at).ok());
    (*src)->will_read(5000);
    EXPECT_EQ(read_exactly(5000), bundle_.substr(a1, 5000));
    const uint64_t a2 = a1 + 5000 + 100000;
    ASSERT_TRUE((*src)->skip(100000).ok());
    (*src)->will_read(300);
    EXPECT_EQ(read_exactly(600), bundle_.substr(a2, 600));  // 300 beyond the closed range
    const uint64_t a3 = a2 + 300;
    EXPECT_EQ(read_exactly(bundle_.size()), bundle_.substr(a2 + 600));
    auto ranges = fetch("/ranges/ranged", fast());
    ASSERT_TRUE(ranges.ok());
    EXPECT_EQ(*ranges, std::to_string(a1) + "," + std::to_string(a2) + "," + std::to_string(a3));
    auto ranged = fetch("/sent/ranged@ranges", fast());
    ASSERT_TRUE(ranged.ok());
    EXPECT_EQ(std::stoull(*ranged), 5000 + 300 + (bundle_.size() - a3));
}

// A server that offers ranges (Accept-Ranges: bytes) but refuses a Range request, with 416 or
// by answering 200 with the same file: the download reads the file again from its start, drops
// what it had, and makes no more Range requests (a later skip reads through).
TEST_F(HttpTest, ASkipOnAServerThatRefusesRangesReadsTheFileThrough) {
    for (const std::string route : {"/ranged-refused", "/ranged-ignored"}) {
        SCOPED_TRACE(route);
        auto src = open_source(Sysroot("/"), base_ + route, fast());
        ASSERT_TRUE(src.ok());
        std::string got;
        std::vector<uint8_t> buf(1000);
        auto n = (*src)->read(buf);
        ASSERT_TRUE(n.ok()) << n.error().message();
        got.append(reinterpret_cast<const char*>(buf.data()), *n);
        const uint64_t skip = 2 << 20;  // beyond the 1 MiB ring: a Range request
        ASSERT_TRUE((*src)->skip(skip).ok());
        got.append(bundle_.substr(got.size(), skip));
        n = (*src)->read(buf);
        ASSERT_TRUE(n.ok()) << n.error().message();
        got.append(reinterpret_cast<const char*>(buf.data()), *n);
        ASSERT_TRUE((*src)->skip(200000).ok());  // read through: no Range request
        got.append(bundle_.substr(got.size(), 200000));
        std::vector<uint8_t> big(100000);
        while (true) {
            auto r = (*src)->read(big);
            ASSERT_TRUE(r.ok()) << r.error().message();
            if (*r == 0) break;
            got.append(reinterpret_cast<const char*>(big.data()), *r);
        }
        EXPECT_TRUE(got == bundle_) << "the bytes after the skips differ from the file";
        // The first request, the refused Range request, the whole file again.
        EXPECT_EQ(requests(route), route == "/ranged-refused" ? 3 : 2);
    }
}

// A 200 answer to a Range request with another validator is another file: refused, not spliced.
TEST_F(HttpTest, AWholeFileAnswerWithAnotherValidatorIsRefused) {
    auto src = open_source(Sysroot("/"), base_ + "/ranged-changed", fast());
    ASSERT_TRUE(src.ok());
    std::vector<uint8_t> buf(1000);
    ASSERT_TRUE((*src)->read(buf).ok());
    ASSERT_TRUE((*src)->skip(2 << 20).ok());
    auto n = (*src)->read(buf);
    ASSERT_FALSE(n.ok());
    EXPECT_NE(n.error().message().find("with a different file (validator \"\"bundle-v2\"\", "
                                       "was \"\"bundle-v1\"\")"),
              std::string::npos)
        << n.error().message();
}

TEST_F(HttpTest, CutWithoutValidatorIsNotRetried) {
    auto body = fetch("/cut-noetag/a", fast());
    ASSERT_FALSE(body.ok());
    EXPECT_NE(body.error().message().find("no ETag or Last-Modified"), std::string::npos)
        << body.error().message();
    EXPECT_EQ(requests("/cut-noetag/a"), 1);
}

TEST_F(HttpTest, ResumeAtTheWrongOffsetIsRefused) {
    auto body = fetch("/wrong-range/a", fast());
    ASSERT_FALSE(body.ok());
    EXPECT_NE(body.error().message().find("Content-Range"), std::string::npos)
        << body.error().message();
}

// A resume whose Content-Range names another total length is a range of another file.
TEST_F(HttpTest, ResumeOfAFileOfAnotherLengthIsRefused) {
    auto body = fetch("/wrong-total/a", fast());
    ASSERT_FALSE(body.ok());
    EXPECT_NE(body.error().message().find("/" + std::to_string(bundle_.size() + 1) +
                                          "\" instead of starting at byte"),
              std::string::npos)
        << body.error().message();
    // The same resume with the right total is accepted (the route differs only in that).
    auto good = fetch("/cut/b", fast());
    ASSERT_TRUE(good.ok()) << good.error().message();
    EXPECT_EQ(*good, bundle_);
}

TEST_F(HttpTest, LargeBodyStreamsInBoundedMemory) {
    struct rusage ru;
    ::getrusage(RUSAGE_SELF, &ru);
    const long before = ru.ru_maxrss;
    SourceOptions o = fast();
    o.buffer_size = 256 << 10;
    auto src = open_source(Sysroot("/"), base_ + "/zeros/" + std::to_string(128 << 20), o);
    ASSERT_TRUE(src.ok());
    std::vector<uint8_t> buf(64 << 10);
    uint64_t total = 0;
    while (true) {
        auto n = (*src)->read(buf);
        ASSERT_TRUE(n.ok()) << n.error().message();
        if (*n == 0) break;
        total += *n;
    }
    EXPECT_EQ(total, 128u << 20);
    ::getrusage(RUSAGE_SELF, &ru);
    EXPECT_LT(ru.ru_maxrss - before, 24 * 1024)
        << "peak RSS grew by " << ru.ru_maxrss - before << " KiB";
}

TEST(HttpStatus, RetryableSet) {
    for (long s : {425L, 429L, 500L, 502L, 503L, 504L, 520L, 598L}) {
        EXPECT_TRUE(retryable_http_status(s)) << s;
    }
    for (long s : {200L, 206L, 301L, 400L, 401L, 403L, 404L, 408L, 501L, 505L, 519L, 599L}) {
        EXPECT_FALSE(retryable_http_status(s)) << s;
    }
}

// ----- local paths -----

TEST(OpenSource, LocalPathIsResolvedUnderTheSysroot) {
    TempDir root;
    std::filesystem::create_directories(root / "srv");
    write_whole(root / "srv/b.zip", "abc");
    auto src = open_source(Sysroot(root.path()), "/srv/b.zip");
    ASSERT_TRUE(src.ok()) << src.error().message();
    EXPECT_EQ((*src)->size_hint(), 3u);
    uint8_t buf[8];
    auto n = (*src)->read(buf);
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(*n, 3u);
    EXPECT_EQ((*src)->name(), "/srv/b.zip");
}

TEST(OpenSource, RelativeMissingAndDirectoryPathsFail) {
    TempDir root;
    EXPECT_EQ(open_source(Sysroot(root.path()), "b.zip").error().kind(), ErrorKind::usage);
    auto missing = open_source(Sysroot(root.path()), "/nope.zip");
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.error().message().find("nope.zip"), std::string::npos);
    EXPECT_FALSE(open_source(Sysroot(root.path()), "/").ok());
    EXPECT_FALSE(open_source(Sysroot("/"), "ftp://example.com/b.zip").ok());
}

}  // namespace
}  // namespace activate::bundle::test
