// The reference agent announcing itself (issue 17 §1): the endpoint forms it accepts, the HTTP
// request a listener on 127.0.0.1 receives from the agent binary, the identity line it answers on
// its port, and a refusing endpoint reported after the configured attempts.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <regex>

#include "announce.hpp"
#include "support.hpp"
#include "takeover.pb.h"

namespace activate::agent {
namespace {

using embedded::test::TempDir;

TEST(AnnounceEndpoint, AcceptsHttpAndAddressLiteralsOnly) {
    AnnounceEndpoint e;
    std::string why;
    ASSERT_TRUE(parse_announce_endpoint("http://10.0.2.100:8080/agents", &e, &why)) << why;
    EXPECT_EQ(e.host, "10.0.2.100");
    EXPECT_EQ(e.port, 8080);
    EXPECT_EQ(e.path, "/agents");
    ASSERT_TRUE(parse_announce_endpoint("[fd00::1]:80", &e, &why)) << why;
    EXPECT_EQ(e.host, "fd00::1");
    EXPECT_EQ(e.path, "/");

    EXPECT_FALSE(parse_announce_endpoint("https://10.0.0.1:443", &e, &why));
    EXPECT_EQ(why,
              "scheme \"https\" is not supported: the reference agent speaks plain HTTP (no TLS)");
    EXPECT_FALSE(parse_announce_endpoint("bmaas.example:8443", &e, &why));
    EXPECT_EQ(why,
              "host \"bmaas.example\" is not an IP address (the agent has no resolver; an "
              "IPv6 address goes in brackets)");
    EXPECT_FALSE(parse_announce_endpoint("http://10.0.0.1", &e, &why));
    EXPECT_EQ(why, "\"http://10.0.0.1\" has no port");
    EXPECT_FALSE(parse_announce_endpoint("10.0.0.1:70000", &e, &why));
    EXPECT_EQ(why, "port \"70000\" is not a TCP port");
    EXPECT_FALSE(parse_announce_endpoint("fd00::1:80", &e, &why));
}

// A TCP listener on 127.0.0.1 that plays the BMaaS endpoint.
class Endpoint {
  public:
    Endpoint() {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        EXPECT_EQ(::listen(fd_, 4), 0);
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
    }
    ~Endpoint() { ::close(fd_); }
    uint16_t port() const { return port_; }

    // Accepts one connection, reads the request (headers and Content-Length body), answers.
    std::string serve_one(const std::string& answer) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 20000) != 1) return "<no connection>";
        const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        std::string request;
        char buf[1024];
        for (;;) {
            const size_t head = request.find("\r\n\r\n");
            if (head != std::string::npos) {
                const std::smatch m = match_length(request);
                const size_t body = m.empty() ? 0 : std::stoul(m[1].str());
                if (request.size() >= head + 4 + body) break;
            }
            pollfd q{c, POLLIN, 0};
            if (::poll(&q, 1, 10000) != 1) break;
            const ssize_t n = ::read(c, buf, sizeof buf);
            if (n <= 0) break;
            request.append(buf, static_cast<size_t>(n));
        }
        ::write(c, answer.data(), answer.size());
        ::close(c);
        return request;
    }

  private:
    static std::smatch match_length(const std::string& request) {
        static const std::regex length("Content-Length: (\\d+)\r\n");
        std::smatch m;
        std::regex_search(request, m, length);
        return m;
    }
    int fd_ = -1;
    uint16_t port_ = 0;
};

// The agent binary in test mode, its stdout read line by line.
class AgentProcess {
  public:
    explicit AgentProcess(std::vector<std::string> args) {
        int p[2];
        EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(p[1], 1);
            std::vector<char*> argv{const_cast<char*>(AGENT_BINARY)};
            for (std::string& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv(AGENT_BINARY, argv.data());
            ::_exit(127);
        }
        ::close(p[1]);
        out_ = p[0];
    }
    ~AgentProcess() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        ::close(out_);
    }
    // The next line, or "" after `timeout_ms` or at the end.
    std::string line(int timeout_ms) {
        for (;;) {
            if (const size_t nl = buffered_.find('\n'); nl != std::string::npos) {
                std::string l = buffered_.substr(0, nl);
                buffered_.erase(0, nl + 1);
                return l;
            }
            pollfd p{out_, POLLIN, 0};
            if (::poll(&p, 1, timeout_ms) != 1) return "";
            char buf[4096];
            const ssize_t n = ::read(out_, buf, sizeof buf);
            if (n <= 0) return "";
            buffered_.append(buf, static_cast<size_t>(n));
        }
    }
    int wait() {
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }

  private:
    pid_t pid_ = -1;
    int out_ = -1;
    std::string buffered_;
};

std::string write_init(const TempDir& dir, const std::string& endpoint, std::string* key_hex) {
    unsigned char seed[crypto_sign_SEEDBYTES] = {9, 9, 9};
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    EXPECT_GE(sodium_init(), 0);
    crypto_sign_seed_keypair(pk, sk, seed);
    char hex[2 * sizeof pk + 1];
    sodium_bin2hex(hex, sizeof hex, pk, sizeof pk);
    *key_hex = hex;
    wire::AgentInit init;
    init.mutable_takeover_init()->set_machine_id("m-announce");
    init.mutable_takeover_init()->set_bmaas_endpoint(endpoint);
    init.set_private_key(std::string(reinterpret_cast<char*>(sk), sizeof sk));
    embedded::test::write_file(dir / "init.pb", init.SerializeAsString());
    embedded::test::write_file(dir / "cmdline", "quiet\n");
    return (dir / "init.pb").string();
}

TEST(AgentAnnounce, PostsItsIdentityThenAnswersOnItsPort) {
    TempDir dir;
    Endpoint endpoint;
    std::string key;
    const std::string url = "http://127.0.0.1:" + std::to_string(endpoint.port()) + "/agents";
    AgentProcess agent({"--init-pb", write_init(dir, url, &key), "--cmdline-file",
                        (dir / "cmdline").string(), "--announce", "--port", "0"});
    EXPECT_EQ(agent.line(10000).rfind("AGENT-STARTED ", 0), 0u);
    const std::string listening = agent.line(10000);
    std::smatch m;
    ASSERT_TRUE(std::regex_match(listening, m, std::regex("AGENT-LISTENING (\\d+)"))) << listening;
    const int port = std::stoi(m[1].str());

    const std::string request = endpoint.serve_one("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    const std::string body =
        R"({"machine_id":"m-announce","public_key":")" + key + R"(","port":)" + m[1].str() + "}";
    EXPECT_EQ(request,
              "POST /agents HTTP/1.0\r\nHost: 127.0.0.1:" + std::to_string(endpoint.port()) +
                  "\r\nContent-Type: application/json\r\nContent-Length: " +
                  std::to_string(body.size()) + "\r\n\r\n" + body);
    EXPECT_EQ(agent.line(10000), "AGENT-ANNOUNCED " + url);

    // An operator connecting to the agent's port reads its identity, as often as it asks.
    for (int i = 0; i < 2; ++i) {
        const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(static_cast<uint16_t>(port));
        ASSERT_EQ(::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        std::string got;
        char buf[512];
        for (ssize_t n; (n = ::read(c, buf, sizeof buf)) > 0;)
            got.append(buf, static_cast<size_t>(n));
        ::close(c);
        EXPECT_EQ(got, "ACTIVATE-AGENT " + body + "\n");
    }
}

TEST(AgentAnnounce, ARefusingEndpointIsReportedAfterTheAttempts) {
    TempDir dir;
    Endpoint endpoint;
    std::string key;
    const std::string url = "http://127.0.0.1:" + std::to_string(endpoint.port());
    AgentProcess agent({"--init-pb", write_init(dir, url, &key), "--cmdline-file",
                        (dir / "cmdline").string(), "--announce", "--port", "0",
                        "--announce-attempts", "2"});
    EXPECT_EQ(agent.line(10000).rfind("AGENT-STARTED ", 0), 0u);
    EXPECT_EQ(agent.line(10000).rfind("AGENT-LISTENING ", 0), 0u);
    for (int i = 0; i < 2; ++i)
        EXPECT_NE(endpoint.serve_one("HTTP/1.0 403 Forbidden\r\n\r\n"), "<no connection>");
    EXPECT_EQ(agent.line(10000), "AGENT-NOT-ANNOUNCED " + url +
                                     ": attempt 2 of 2: the endpoint answered \"HTTP/1.0 403 "
                                     "Forbidden\"");
    EXPECT_EQ(agent.wait(), 3);
}

TEST(AgentAnnounce, AnEndpointItCannotUseIsReportedWithoutListening) {
    TempDir dir;
    std::string key;
    AgentProcess agent({"--init-pb", write_init(dir, "https://bmaas.example:8443", &key),
                        "--cmdline-file", (dir / "cmdline").string(), "--announce", "--port", "0"});
    EXPECT_EQ(agent.line(10000).rfind("AGENT-STARTED ", 0), 0u);
    EXPECT_EQ(agent.line(10000),
              "AGENT-NOT-ANNOUNCED scheme \"https\" is not supported: the reference agent speaks "
              "plain HTTP (no TLS)");
    EXPECT_EQ(agent.wait(), 3);
}

}  // namespace
}  // namespace activate::agent
