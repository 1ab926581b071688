// What every test program here needs and used to carry its own copy of (six TempDirs, issue 14
// §6): a temporary directory removed with its contents, whole-file reads and writes, and running
// a program with its stdout and stderr captured apart.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace activate::test_support {

// A fresh directory under $TMPDIR (or /tmp) named <prefix>-XXXXXX, removed with everything in it
// when the object goes. Aborts with a message if it cannot be made: no test runs without it.
class TempDir {
  public:
    explicit TempDir(std::string_view prefix = "activate-test");
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& rel) const { return path_ / rel; }

  private:
    std::filesystem::path path_;
};

// Writes `content` to `path`, creating its parent directories; returns false on any failure.
bool write_file(const std::filesystem::path& path, std::string_view content);
// The whole file, or "" when it cannot be read.
std::string read_file(const std::filesystem::path& path);
// Everything in `fd` from offset 0 (pread: its offset is left alone), up to the first error.
std::string read_fd(int fd);

struct RunResult {
    int exit_code = -1;  // the exit status, or 128 + the signal that ended it
    std::string out, err;
};

// Runs argv (argv[0] a path, no shell) with `input` on stdin; stdout and stderr captured apart.
RunResult run(const std::vector<std::string>& argv, std::string_view input = "");

}  // namespace activate::test_support
