// See activate_test/support.hpp.
#include <activate_test/support.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace activate::test_support {

namespace fs = std::filesystem;

TempDir::TempDir(std::string_view prefix) {
    std::error_code ec;
    fs::path base = fs::temp_directory_path(ec);
    if (ec) base = "/tmp";
    std::string tmpl = (base / (std::string(prefix) + "-XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
        std::perror(("mkdtemp " + tmpl).c_str());
        std::abort();
    }
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
}

bool write_file(const fs::path& path, std::string_view content) {
    std::error_code ec;
    if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    return bool(out.flush());
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string read_fd(int fd) {
    std::string out;
    char buf[65536];
    for (off_t off = 0;;) {
        const ssize_t n = ::pread(fd, buf, sizeof buf, off);
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
        off += n;
    }
    return out;
}

RunResult run(const std::vector<std::string>& argv, std::string_view input) {
    TempDir dir("activate-run");
    const std::string in_path = (dir / "in").string();
    const std::string out_path = (dir / "out").string();
    const std::string err_path = (dir / "err").string();
    write_file(in_path, input);
    RunResult r;
    const pid_t pid = ::fork();
    if (pid < 0) return r;
    if (pid == 0) {
        FILE* in = std::fopen(in_path.c_str(), "r");
        FILE* out = std::fopen(out_path.c_str(), "w");
        FILE* err = std::fopen(err_path.c_str(), "w");
        if (in == nullptr || out == nullptr || err == nullptr) ::_exit(126);
        ::dup2(fileno(in), 0);
        ::dup2(fileno(out), 1);
        ::dup2(fileno(err), 2);
        std::vector<char*> args;
        for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = read_file(out_path);
    r.err = read_file(err_path);
    return r;
}

}  // namespace activate::test_support
