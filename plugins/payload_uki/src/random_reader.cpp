// Bounds-checked positioned reads over buffers and descriptors.
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <payload_uki/random_reader.hpp>

namespace activate::uki {
namespace {

Error out_of_range(const std::string& name, uint64_t offset, size_t length, uint64_t size) {
    return Error(ErrorKind::input,
                 name + ": read of " + std::to_string(length) + " bytes at offset " +
                     std::to_string(offset) + " is beyond the end (" + std::to_string(size) +
                     " bytes); the file is truncated or an offset in it is wrong");
}

bool in_range(uint64_t offset, size_t length, uint64_t size) {
    return offset <= size && length <= size - offset;
}

}  // namespace

Status SpanReader::read_at(uint64_t offset, std::span<uint8_t> out) const {
    if (!in_range(offset, out.size(), data_.size()))
        return out_of_range(name_, offset, out.size(), data_.size());
    if (!out.empty()) std::memcpy(out.data(), data_.data() + offset, out.size());
    return {};
}

Status FdReader::read_at(uint64_t offset, std::span<uint8_t> out) const {
    if (!in_range(offset, out.size(), size_)) return out_of_range(name_, offset, out.size(), size_);
    size_t done = 0;
    while (done < out.size()) {
        ssize_t n =
            ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno_error(ErrorKind::activation,
                               "reading " + name_ + " at offset " + std::to_string(offset + done));
        }
        if (n == 0)
            return Error(ErrorKind::input, name_ + ": unexpected end of file at offset " +
                                               std::to_string(offset + done) +
                                               " (the file shrank while being read)");
        done += static_cast<size_t>(n);
    }
    return {};
}

Result<FdGeometry> fd_geometry(int fd, const std::string& name) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return errno_error(ErrorKind::activation, "stat " + name);
    FdGeometry g;
    if (S_ISREG(st.st_mode)) {
        g.size = static_cast<uint64_t>(st.st_size);
        return g;
    }
    if (S_ISBLK(st.st_mode)) {
        if (::ioctl(fd, BLKGETSIZE64, &g.size) != 0)
            return errno_error(ErrorKind::activation, "BLKGETSIZE64 on " + name);
        int ss = 0;
        if (::ioctl(fd, BLKSSZGET, &ss) != 0)
            return errno_error(ErrorKind::activation, "BLKSSZGET on " + name);
        g.logical_sector_size = static_cast<uint32_t>(ss);
        return g;
    }
    return Error(ErrorKind::input,
                 name + " is neither a regular file nor a block device; give a disk or disk image");
}

}  // namespace activate::uki
