// See activate_test/nginx.hpp. nginx runs in the foreground as one process (`daemon off`,
// `master_process off`), so the child we spawn is the server and SIGTERM to it stops it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <activate_test/nginx.hpp>
#include <chrono>
#include <cstring>
#include <sstream>
#include <thread>

extern char** environ;

namespace activate::test_support {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// A port nobody listens on right now: bind to port 0, read it back, close. Another process may
// take it before nginx binds; start() then tries again with a new one.
uint16_t free_loopback_port() {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    uint16_t port = 0;
    if (::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
        port = ntohs(addr.sin_port);
    }
    ::close(s);
    return port;
}

bool accepts_connections(uint16_t port) {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    const bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(s);
    return ok;
}

// Every path nginx would otherwise take from its compiled-in defaults (/var/lib/nginx,
// /var/log/nginx, /run/nginx.pid) is set to one inside `dir`.
std::string config(const fs::path& dir, const fs::path& root, uint16_t port) {
    const std::string d = dir.string();
    std::ostringstream c;
    c << "daemon off;\n"
      << "master_process off;\n"
      << "worker_processes 1;\n"
      << "pid " << d << "/nginx.pid;\n"
      << "error_log " << d << "/error.log warn;\n"
      << "events { worker_connections 64; }\n"
      << "http {\n"
      << "  log_format ranges '$request_method|$uri|$status|$body_bytes_sent|$http_range';\n"
      << "  access_log " << d << "/access.log ranges;\n"
      << "  client_body_temp_path " << d << "/client_body;\n"
      << "  proxy_temp_path " << d << "/proxy;\n"
      << "  fastcgi_temp_path " << d << "/fastcgi;\n"
      << "  uwsgi_temp_path " << d << "/uwsgi;\n"
      << "  scgi_temp_path " << d << "/scgi;\n"
      << "  default_type application/octet-stream;\n"
      // Static files get byte ranges (RFC 9110 §14), a strong ETag and Last-Modified by
      // default; said here so that the fixture does not depend on those defaults.
      << "  etag on;\n"
      << "  max_ranges 1;\n"
      << "  server {\n"
      << "    listen 127.0.0.1:" << port << ";\n"
      << "    root " << root.string() << ";\n"
      << "  }\n"
      << "}\n";
    return c.str();
}

}  // namespace

std::optional<fs::path> nginx_binary() {
    for (const char* p : {"/usr/sbin/nginx", "/usr/local/sbin/nginx"}) {
        if (::access(p, X_OK) == 0) return fs::path(p);
    }
    return std::nullopt;
}

NginxServer::NginxServer(const fs::path& root) {
    // A port taken between free_loopback_port() and nginx's bind() fails the start: try others.
    for (int attempt = 0; attempt < 5 && !running(); ++attempt) {
        if (start_once(root)) return;
        if (error_.find("Address already in use") == std::string::npos) return;
    }
}

bool NginxServer::start_once(const fs::path& root) {
    auto bin = nginx_binary();
    if (!bin) {
        error_ = "nginx is not installed (Debian package nginx-light)";
        return false;
    }
    const uint16_t port = free_loopback_port();
    if (port == 0) {
        error_ = std::string("no free loopback port: ") + std::strerror(errno);
        return false;
    }
    const fs::path conf = dir_ / "nginx.conf";
    std::error_code ec;
    fs::remove(dir_ / "error.log", ec);
    if (!write_file(conf, config(dir_.path(), root, port))) {
        error_ = "cannot write " + conf.string();
        return false;
    }
    // -p: the prefix relative paths resolve in; -e: the error log used before the config is
    // read (otherwise /var/log/nginx/error.log).
    const std::string prefix = dir_.path().string() + "/";
    const std::string errlog = (dir_ / "error.log").string();
    const std::string devnull = "/dev/null";
    std::vector<std::string> args = {bin->string(), "-p", prefix, "-c",
                                     conf.string(), "-e", errlog};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, devnull.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, errlog.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    const int rc = ::posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        pid_ = -1;
        error_ = "cannot start " + bin->string() + ": " + std::strerror(rc);
        return false;
    }
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < deadline) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            error_ = "nginx exited at start (status " + std::to_string(status) +
                     "): " + read_file(errlog);
            return false;
        }
        if (accepts_connections(port)) {
            port_ = port;
            error_.clear();
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    stop();
    error_ = "nginx did not accept connections on port " + std::to_string(port) +
             " within 10 s: " + read_file(errlog);
    return false;
}

void NginxServer::stop() {
    if (pid_ <= 0) return;
    // SIGTERM is nginx's fast shutdown; a hung server is killed after 5 s.
    ::kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    while (::waitpid(pid_, nullptr, WNOHANG) == 0) {
        if (Clock::now() > deadline) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
    port_ = 0;
}

NginxServer::~NginxServer() { stop(); }

std::string NginxServer::url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
}

std::vector<NginxRequest> NginxServer::requests(size_t at_least, int timeout_ms) const {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
        std::vector<NginxRequest> out;
        std::istringstream log(read_file(dir_ / "access.log"));
        std::string line;
        while (std::getline(log, line)) {
            std::vector<std::string> f;
            size_t start = 0;
            for (size_t bar; (bar = line.find('|', start)) != std::string::npos; start = bar + 1)
                f.push_back(line.substr(start, bar - start));
            f.push_back(line.substr(start));
            if (f.size() != 5) continue;
            NginxRequest r;
            r.method = f[0];
            r.uri = f[1];
            r.status = std::atoi(f[2].c_str());
            r.body_bytes_sent = std::strtoull(f[3].c_str(), nullptr, 10);
            r.range = f[4] == "-" ? "" : f[4];
            out.push_back(std::move(r));
        }
        if (out.size() >= at_least || Clock::now() >= deadline) return out;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

}  // namespace activate::test_support
