// Byte sources over descriptors and memory, and the choice between a local path and a download.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <activate/bundle/source.hpp>
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "http_source.hpp"

namespace activate::bundle {

Status ByteSource::skip(uint64_t n) {
    uint8_t scratch[64 << 10];
    while (n > 0) {
        ACTIVATE_ASSIGN(size_t got,
                        read(std::span<uint8_t>(scratch, std::min<uint64_t>(n, sizeof scratch))));
        if (got == 0)
            return Error(ErrorKind::input,
                         name() + " ends " + std::to_string(n) +
                             " bytes before the point to skip to; the bundle is incomplete "
                             "(interrupted download or copy?)");
        n -= got;
    }
    return {};
}

namespace {

class FdSource final : public ByteSource {
  public:
    FdSource(UniqueFd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {
        struct stat st;
        if (::fstat(fd_.get(), &st) == 0 && S_ISREG(st.st_mode)) size_ = uint64_t(st.st_size);
    }

    Result<size_t> read(std::span<uint8_t> out) override {
        if (out.empty()) return size_t(0);
        while (true) {
            ssize_t n = ::read(fd_.get(), out.data(), std::min<size_t>(out.size(), SSIZE_MAX));
            if (n >= 0) return size_t(n);
            if (errno != EINTR) return errno_error(ErrorKind::activation, "reading " + name_);
        }
    }

    Status skip(uint64_t n) override {
        // Only a regular file seeks; a pipe is read through.
        if (!size_) return ByteSource::skip(n);
        if (n > uint64_t(INT64_MAX) || ::lseek(fd_.get(), off_t(n), SEEK_CUR) < 0)
            return errno_error(ErrorKind::activation,
                               "seeking " + std::to_string(n) + " bytes forward in " + name_);
        return {};
    }

    const std::string& name() const override { return name_; }
    std::optional<uint64_t> size_hint() const override { return size_; }

  private:
    UniqueFd fd_;
    std::string name_;
    std::optional<uint64_t> size_;
};

class MemorySource final : public ByteSource {
  public:
    MemorySource(std::span<const uint8_t> data, std::string name)
        : data_(data), name_(std::move(name)) {}

    Result<size_t> read(std::span<uint8_t> out) override {
        const size_t n = std::min(out.size(), data_.size() - pos_);
        if (n > 0) std::memcpy(out.data(), data_.data() + pos_, n);
        pos_ += n;
        return n;
    }

    Status skip(uint64_t n) override {
        pos_ += size_t(std::min<uint64_t>(n, data_.size() - pos_));
        return {};
    }

    const std::string& name() const override { return name_; }
    std::optional<uint64_t> size_hint() const override { return data_.size(); }

  private:
    std::span<const uint8_t> data_;
    size_t pos_ = 0;
    std::string name_;
};

bool is_url(const std::string& s) {
    return s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0;
}

}  // namespace

std::unique_ptr<ByteSource> fd_source(UniqueFd fd, std::string name) {
    return std::make_unique<FdSource>(std::move(fd), std::move(name));
}

std::unique_ptr<ByteSource> memory_source(std::span<const uint8_t> data, std::string name) {
    return std::make_unique<MemorySource>(data, std::move(name));
}

Result<std::unique_ptr<ByteSource>> open_source(const Sysroot& sysroot,
                                                const std::string& path_or_url,
                                                const SourceOptions& options) {
    if (is_url(path_or_url)) return open_http(path_or_url, options);
    if (path_or_url.empty() || path_or_url.front() != '/') {
        return Error(ErrorKind::usage, "bundle \"" + path_or_url +
                                           "\" is neither an absolute path nor an http(s):// URL");
    }
    auto fd = sysroot.open(path_or_url, O_RDONLY | O_CLOEXEC);
    if (!fd.ok()) return std::move(fd).error().with_context("opening bundle " + path_or_url);
    struct stat st;
    if (::fstat(fd->get(), &st) != 0) {
        return errno_error(ErrorKind::activation, "stat of bundle " + path_or_url);
    }
    if (S_ISDIR(st.st_mode)) {
        return Error(ErrorKind::usage, "bundle " + path_or_url + " is a directory, not a zip file");
    }
    return fd_source(std::move(*fd), path_or_url);
}

}  // namespace activate::bundle
