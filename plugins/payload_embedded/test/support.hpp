// Helpers for the payload_embedded tests: temporary directories, reading fds and files, running
// shell pipelines of the real cpio/zstd tools.
#pragma once

#include <activate_test/support.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace activate::embedded::test {

using activate::test_support::read_file;
using activate::test_support::write_file;

class TempDir : public activate::test_support::TempDir {
  public:
    TempDir() : activate::test_support::TempDir("payload-embedded") {}
};

// The whole content of an fd, read with pread from offset 0.
inline std::string read_fd(int fd) {
    std::string out;
    char buf[65536];
    off_t offset = 0;
    for (;;) {
        const ssize_t n = ::pread(fd, buf, sizeof buf, offset);
        if (n <= 0) return out;
        out.append(buf, static_cast<size_t>(n));
        offset += n;
    }
}

struct ShellResult {
    int status = -1;  // exit code, or 128 + signal
    std::string out;
};

// Runs a /bin/sh command line, capturing stdout.
inline ShellResult shell(const std::string& command) {
    ShellResult r;
    FILE* p = ::popen(command.c_str(), "r");
    if (p == nullptr) return r;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    const int status = ::pclose(p);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

inline std::string quoted(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

}  // namespace activate::embedded::test
