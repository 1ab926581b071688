// The initramfs archive format: cpio "newc" (magic 070701), as the kernel unpacks it
// (Documentation/driver-api/early-userspace/buffer-format.rst). A streaming writer, so archives
// go straight into a compressor or a file, and a reader for tests and fuzzing.
#pragma once

#include <activate/result.hpp>
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

namespace activate::embedded {

// One archive member. The views point into the caller's memory (writer) or into the archive
// (reader); they are not owned.
struct CpioEntry {
    std::string_view name = {};  // path without leading '/', e.g. "init.pb", "dev/console"
    uint32_t mode = 0;           // file type and permissions as in st_mode, e.g. 0100644
    std::string_view data = {};  // regular file content, or a symlink's target; empty otherwise
    uint32_t ino = 0;            // 0: the writer numbers members 1, 2, ...
    uint32_t uid = 0;
    uint32_t gid = 0;
    uint32_t nlink = 1;
    uint32_t mtime = 0;
    uint32_t dev_major = 0;
    uint32_t dev_minor = 0;
    uint32_t rdev_major = 0;  // device nodes: the device number
    uint32_t rdev_minor = 0;

    bool operator==(const CpioEntry&) const = default;
};

// The name of the member that ends an archive.
inline constexpr std::string_view kCpioTrailer = "TRAILER!!!";
// The kernel refuses names longer than PATH_MAX (including the NUL) in init/initramfs.c.
inline constexpr size_t kCpioMaxName = 4096;

// Writes members to a sink in order. The sink's errors are returned (with the member's name);
// after an error the archive is incomplete and the writer must not be used further.
class CpioWriter {
  public:
    using Sink = std::function<Status(std::string_view bytes)>;

    explicit CpioWriter(Sink sink) : sink_(std::move(sink)) {}

    Status add(const CpioEntry& entry);
    // Helpers for the common member kinds; `permissions` are the low 12 mode bits.
    Status add_file(std::string_view name, uint32_t permissions, std::string_view data);
    Status add_directory(std::string_view name, uint32_t permissions);
    Status add_char_device(std::string_view name, uint32_t permissions, uint32_t major,
                           uint32_t minor);
    Status add_symlink(std::string_view name, std::string_view target);
    // Writes the TRAILER!!! member. The archive then ends on a 4-byte boundary, so another
    // archive may follow directly (buffer-format.rst: members and archives are 4-byte aligned).
    Status finish();

    // Bytes written so far.
    uint64_t size() const { return offset_; }

  private:
    Status write_member(const CpioEntry& entry);
    Status emit(std::string_view bytes);
    Status pad();

    Sink sink_;
    uint64_t offset_ = 0;
    uint32_t next_ino_ = 1;
    bool finished_ = false;
};

struct CpioArchive {
    std::vector<CpioEntry> entries;  // without the trailer
    size_t size = 0;                 // bytes up to and including the trailer's padding
};

// Reads one archive from the start of `bytes` up to its TRAILER!!!. Stricter than the kernel
// (which skips padding without looking): padding must be zero bytes and present, hex fields must
// be exactly 8 hex digits, only the newc magic 070701 is accepted, and only regular files and
// symlinks may carry data (the trailer none); so whatever it returns, CpioWriter writes back to
// the same size. Errors name the member and the byte offset.
Result<CpioArchive> read_cpio(std::string_view bytes);

}  // namespace activate::embedded
