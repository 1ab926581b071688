// Small helpers shared by the core tests: temporary sysroots and running the CLI binary.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace activate::test {

class TempDir {
public:
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "activate-test-XXXXXX").string();
        path_ = ::mkdtemp(tmpl.data());
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& rel) const { return path_ / rel; }

private:
    std::filesystem::path path_;
};

inline void write_file(const std::filesystem::path& p, const std::string& content) {
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
}

inline std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

struct RunResult {
    int exit_code = -1;
    std::string out, err;
};

// Runs `argv` with `input` on stdin, capturing stdout and stderr separately.
inline RunResult run(const std::vector<std::string>& argv, const std::string& input = "") {
    TempDir dir;
    write_file(dir / "in", input);
    pid_t pid = ::fork();
    if (pid == 0) {
        FILE* in = std::fopen((dir / "in").c_str(), "r");
        FILE* out = std::fopen((dir / "out").c_str(), "w");
        FILE* err = std::fopen((dir / "err").c_str(), "w");
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
    RunResult r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = read_file(dir / "out");
    r.err = read_file(dir / "err");
    return r;
}

}  // namespace activate::test
