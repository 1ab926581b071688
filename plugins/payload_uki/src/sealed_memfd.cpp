// Sealed memfd copies; see sealed_memfd.hpp.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <activate/fd.hpp>
#include <algorithm>
#include <cerrno>
#include <payload_uki/sealed_memfd.hpp>
#include <vector>

namespace activate::uki {
namespace {

// The errors with which copy_file_range/sendfile say "not between these two files" (e.g. EXDEV
// across file-system types since Linux 5.19) rather than "I/O failed".
bool unsupported(int err) {
    return err == EXDEV || err == EINVAL || err == EOPNOTSUPP || err == ENOSYS;
}

Status eof_error(const std::string& source, uint64_t offset) {
    return Error(ErrorKind::input, source + ": unexpected end of file at offset " +
                                       std::to_string(offset) + " (did the file change?)");
}

// Appends [offset, offset+length) of `in` at the current position of `out`.
Status copy_range(int in, int out, uint64_t offset, uint64_t length, const std::string& source,
                  CopyMethod* method) {
    auto off = static_cast<off_t>(offset);
    uint64_t left = length;
    CopyMethod m = CopyMethod::copy_file_range;
    while (left > 0) {
        const size_t chunk = static_cast<size_t>(std::min<uint64_t>(left, 1u << 30));
        ssize_t n = -1;
        if (m == CopyMethod::copy_file_range) {
            n = ::copy_file_range(in, &off, out, nullptr, chunk, 0);
        } else if (m == CopyMethod::sendfile) {
            n = ::sendfile(out, in, &off, chunk);
        } else {
            std::vector<char> buf(std::min<size_t>(chunk, 1 << 20));
            n = ::pread(in, buf.data(), buf.size(), off);
            if (n > 0) {
                if (!write_all(out, buf.data(), static_cast<size_t>(n)))
                    return errno_error(ErrorKind::activation, "writing a memfd");
                off += n;
            }
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            if (unsupported(errno) && m != CopyMethod::read_write) {
                m = m == CopyMethod::copy_file_range ? CopyMethod::sendfile
                                                     : CopyMethod::read_write;
                continue;
            }
            return errno_error(ErrorKind::activation, "copying " + source + " at offset " +
                                                          std::to_string(off) + " into a memfd");
        }
        if (n == 0) return eof_error(source, static_cast<uint64_t>(off));
        left -= static_cast<uint64_t>(n);
    }
    *method = std::max(*method, m);
    return {};
}

}  // namespace

const char* to_string(CopyMethod method) {
    switch (method) {
        case CopyMethod::none:
            return "none";
        case CopyMethod::copy_file_range:
            return "copy_file_range";
        case CopyMethod::sendfile:
            return "sendfile";
        case CopyMethod::read_write:
            return "read/write";
    }
    return "?";
}

Result<SealedMemfd> copy_to_sealed_memfd(int source, const std::vector<FileRange>& ranges,
                                         const std::string& memfd_name,
                                         const std::string& source_name) {
    int raw = ::memfd_create(memfd_name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (raw < 0) return errno_error(ErrorKind::activation, "memfd_create " + memfd_name);
    SealedMemfd out;
    out.fd.reset(raw);
    for (const auto& r : ranges) {
        ACTIVATE_TRY(copy_range(source, raw, r.offset, r.length, source_name, &out.method));
        out.size += r.length;
    }
    struct stat st {};
    if (::fstat(raw, &st) != 0) return errno_error(ErrorKind::activation, "fstat " + memfd_name);
    if (static_cast<uint64_t>(st.st_size) != out.size)
        return Error(ErrorKind::internal, memfd_name + " holds " + std::to_string(st.st_size) +
                                              " bytes after copying " + std::to_string(out.size));
    if (::fcntl(raw, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0)
        return errno_error(ErrorKind::activation, "sealing " + memfd_name);
    if (::lseek(raw, 0, SEEK_SET) != 0)
        return errno_error(ErrorKind::activation, "rewinding " + memfd_name);
    return out;
}

}  // namespace activate::uki
