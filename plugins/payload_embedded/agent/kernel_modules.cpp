// See kernel_modules.hpp. finit_module(2): an already loaded (or built-in) module answers EEXIST,
// which is success here; compressed modules need MODULE_INIT_COMPRESSED_FILE (Linux 5.17+).
#include "kernel_modules.hpp"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace activate::agent {
namespace {

constexpr unsigned kModuleInitCompressedFile = 4;  // include/uapi/linux/module.h

bool ends_with(const std::string& s, const char* suffix) {
    const size_t n = std::strlen(suffix);
    return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

}  // namespace

std::vector<std::string> load_kernel_modules(const char* list_path) {
    std::vector<std::string> failed;
    const int list = ::open(list_path, O_RDONLY | O_CLOEXEC);
    if (list < 0) {
        if (errno != ENOENT)
            failed.push_back(std::string("module list ") + list_path + ": " + std::strerror(errno));
        return failed;
    }
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = ::read(list, buf, sizeof buf)) != 0;) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        text.append(buf, static_cast<size_t>(n));
    }
    ::close(list);
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        const std::string line = text.substr(start, end - start);
        start = end + 1;
        if (line.empty()) continue;
        const size_t space = line.find(' ');
        const std::string path = line.substr(0, space);
        const std::string params = space == std::string::npos ? "" : line.substr(space + 1);
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            failed.push_back("module " + path + ": " + std::strerror(errno));
            continue;
        }
        const unsigned flags =
            (ends_with(path, ".xz") || ends_with(path, ".zst") || ends_with(path, ".gz"))
                ? kModuleInitCompressedFile
                : 0;
        if (::syscall(SYS_finit_module, fd, params.c_str(), flags) != 0 && errno != EEXIST)
            failed.push_back("module " + path + ": " + std::strerror(errno));
        ::close(fd);
    }
    return failed;
}

}  // namespace activate::agent
