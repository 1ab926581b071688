// The HTTP fixtures themselves, spoken to with a raw socket so that nothing of the code under
// test is involved: nginx serves ranges with validators and logs the bytes it sent; the proxy
// forwards unchanged by default and does each of its faults when told.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <activate_test/fault_proxy.hpp>
#include <activate_test/nginx.hpp>
#include <chrono>

namespace activate::test_support {
namespace {

struct Response {
    std::string head;  // status line and fields, CRLF-separated
    std::string body;  // everything after the blank line until the server closed
    int status() const { return head.size() > 12 ? std::atoi(head.c_str() + 9) : 0; }
    bool has(const std::string& field_line) const {
        return head.find("\r\n" + field_line + "\r\n") != std::string::npos;
    }
    bool has_field(const std::string& name) const {
        return head.find("\r\n" + name + ":") != std::string::npos;
    }
};

// GET `path` with `extra` header lines ("Name: value\r\n"...) and "Connection: close".
Response get(uint16_t port, const std::string& path, const std::string& extra = "") {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    EXPECT_EQ(::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    const std::string req =
        "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + "Connection: close\r\n\r\n";
    EXPECT_EQ(::send(s, req.data(), req.size(), MSG_NOSIGNAL), ssize_t(req.size()));
    std::string all;
    char buf[65536];
    ssize_t n;
    while ((n = ::recv(s, buf, sizeof buf, 0)) > 0) all.append(buf, size_t(n));
    ::close(s);
    Response r;
    const size_t end = all.find("\r\n\r\n");
    if (end == std::string::npos) return r;
    r.head = all.substr(0, end + 2);
    r.body = all.substr(end + 4);
    return r;
}

std::string pattern(size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = char('a' + (i * 7 + i / 251) % 26);
    return s;
}

class HttpFixtures : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!nginx_binary()) GTEST_SKIP() << "nginx is not installed (Debian: nginx-light)";
        ASSERT_TRUE(write_file(root_ / "f.bin", data_));
        nginx_ = std::make_unique<NginxServer>(root_.path());
        ASSERT_TRUE(nginx_->running()) << nginx_->error();
    }

    TempDir root_{"http-fixtures"};
    const std::string data_ = pattern(300000);
    std::unique_ptr<NginxServer> nginx_;
};

TEST_F(HttpFixtures, NginxServesRangesWithValidatorsAndLogsBytesSent) {
    Response whole = get(nginx_->port(), "/f.bin");
    EXPECT_EQ(whole.status(), 200);
    EXPECT_EQ(whole.body, data_);
    EXPECT_TRUE(whole.has_field("ETag")) << whole.head;
    EXPECT_TRUE(whole.has_field("Last-Modified")) << whole.head;
    EXPECT_TRUE(whole.has("Accept-Ranges: bytes")) << whole.head;

    const size_t etag_at = whole.head.find("ETag: ") + 6;
    const std::string etag = whole.head.substr(etag_at, whole.head.find("\r\n", etag_at) - etag_at);
    Response part =
        get(nginx_->port(), "/f.bin", "Range: bytes=1000-\r\nIf-Range: " + etag + "\r\n");
    EXPECT_EQ(part.status(), 206);
    EXPECT_TRUE(part.has("Content-Range: bytes 1000-299999/300000")) << part.head;
    EXPECT_EQ(part.body, data_.substr(1000));
    // A validator that does not match (the file changed): the whole file again (RFC 9110 §13.1.5).
    Response changed = get(nginx_->port(), "/f.bin", "Range: bytes=1000-\r\nIf-Range: \"x\"\r\n");
    EXPECT_EQ(changed.status(), 200);
    EXPECT_EQ(changed.body, data_);

    auto log = nginx_->requests(3);
    ASSERT_EQ(log.size(), 3u);
    EXPECT_EQ(log[0].uri, "/f.bin");
    EXPECT_EQ(log[0].range, "");
    EXPECT_EQ(log[0].body_bytes_sent, data_.size());
    EXPECT_EQ(log[1].status, 206);
    EXPECT_EQ(log[1].range, "bytes=1000-");
    EXPECT_EQ(log[1].body_bytes_sent, data_.size() - 1000);
}

TEST_F(HttpFixtures, NginxNeedsNothingOutsideItsDirectory) {
    // Two at once on different ports: no shared pid file, log or temp path.
    NginxServer second(root_.path());
    ASSERT_TRUE(second.running()) << second.error();
    EXPECT_NE(second.port(), nginx_->port());
    EXPECT_EQ(get(second.port(), "/f.bin").body, data_);
    EXPECT_EQ(get(nginx_->port(), "/missing").status(), 404);
}

TEST_F(HttpFixtures, ProxyForwardsUnchangedByDefault) {
    FaultProxy proxy(nginx_->port(), {});
    ASSERT_TRUE(proxy.running()) << proxy.error();
    Response r = get(proxy.port(), "/f.bin");
    EXPECT_EQ(r.status(), 200);
    EXPECT_EQ(r.body, data_);
    EXPECT_TRUE(r.has_field("ETag"));
    Response part = get(proxy.port(), "/f.bin", "Range: bytes=10-19\r\n");
    EXPECT_EQ(part.status(), 206);
    EXPECT_EQ(part.body, data_.substr(10, 10));
    auto reqs = proxy.requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[0].request_line, "GET /f.bin HTTP/1.1");
    EXPECT_EQ(reqs[0].body_forwarded, data_.size());
    EXPECT_EQ(reqs[1].range, "bytes=10-19");
    EXPECT_EQ(reqs[1].status, 206);
    EXPECT_EQ(proxy.body_bytes_forwarded(), data_.size() + 10);
}

TEST_F(HttpFixtures, ProxyCutsStallsLiesAndStripsPerRequest) {
    Fault cut;
    cut.cut_after = 12345;
    Fault stall;
    stall.stall_after = 100;
    stall.stall_for = std::chrono::milliseconds(300);
    Fault lie;
    lie.content_length = "7";
    lie.content_range = "bytes 5-11/300000";
    lie.strip_validators = true;
    Fault no_range;
    no_range.ignore_range = true;
    FaultProxy proxy(nginx_->port(), {cut, stall, lie, no_range});
    ASSERT_TRUE(proxy.running()) << proxy.error();

    Response r0 = get(proxy.port(), "/f.bin");
    EXPECT_TRUE(r0.has("Content-Length: 300000")) << r0.head;  // the full length, then a cut
    EXPECT_EQ(r0.body, data_.substr(0, 12345));

    const auto start = std::chrono::steady_clock::now();
    Response r1 = get(proxy.port(), "/f.bin");
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300));
    EXPECT_EQ(r1.body, data_);

    Response r2 = get(proxy.port(), "/f.bin");
    EXPECT_TRUE(r2.has("Content-Length: 7")) << r2.head;
    EXPECT_TRUE(r2.has("Content-Range: bytes 5-11/300000")) << r2.head;
    EXPECT_FALSE(r2.has_field("ETag")) << r2.head;
    EXPECT_FALSE(r2.has_field("Last-Modified")) << r2.head;
    EXPECT_EQ(r2.body, data_);  // only the headers lie: the raw client reads to the close

    Response r3 = get(proxy.port(), "/f.bin", "Range: bytes=1000-\r\n");
    EXPECT_EQ(r3.status(), 200);
    EXPECT_EQ(r3.body, data_);

    Response r4 = get(proxy.port(), "/f.bin", "Range: bytes=1000-\r\n");  // past the list
    EXPECT_EQ(r4.status(), 206);

    auto reqs = proxy.requests();
    ASSERT_EQ(reqs.size(), 5u);
    EXPECT_EQ(reqs[0].body_forwarded, 12345u);
    EXPECT_EQ(reqs[3].range, "bytes=1000-");
    EXPECT_EQ(reqs[3].status, 200);
}

}  // namespace
}  // namespace activate::test_support
