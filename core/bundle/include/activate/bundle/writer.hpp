// Writes bundles (zip, PKWARE APPNOTE.TXT 6.3.x) in the subset BundleReader reads best: stored
// members whose size and CRC-32 are in the local header (no data descriptors), so a reader knows
// every member's size before its data; zip64 extra fields and end records when a size or offset
// reaches 4 GiB. Output is append-only, so it can go to a pipe.
#pragma once

#include <activate/fd.hpp>
#include <activate/result.hpp>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

namespace activate::bundle {

class Progress;

class ByteSink {
  public:
    virtual ~ByteSink() = default;
    // Writes all of `data` or fails.
    virtual Status write(std::span<const uint8_t> data) = 0;
    // Called once after the last write (fsync for files).
    virtual Status finish() { return {}; }
    virtual const std::string& name() const = 0;
};

// Writes to a descriptor; finish() fsyncs it when it is a regular file or block device.
std::unique_ptr<ByteSink> fd_sink(UniqueFd fd, std::string name);
// Appends to a caller-owned string (tests).
std::unique_ptr<ByteSink> string_sink(std::string* out);

// CRC-32 as used by zip (APPNOTE 4.4.7; zlib's crc32), continued from `crc` (0 to start).
uint32_t update_crc32(uint32_t crc, std::span<const uint8_t> data);

class BundleWriter {
  public:
    explicit BundleWriter(std::unique_ptr<ByteSink> sink);

    // Starts a stored member; `size` and `crc32` go into the local header. Names are checked
    // like the reader checks them.
    Status begin_member(const std::string& name, uint64_t size, uint32_t crc32);
    // Member data; writing more than the announced size is an error.
    Status write(std::span<const uint8_t> data);
    // Fails unless exactly `size` bytes with the announced CRC-32 were written.
    Status end_member();

    // begin_member + write + end_member for data in memory.
    Status add_member(const std::string& name, std::span<const uint8_t> data);
    // A member from a regular file read in two passes with pread (CRC-32, then copy), so memory
    // stays bounded; the file must not change in between (checked: size and CRC again).
    // `progress`, when given, advances during the copy pass.
    Status add_file(const std::string& name, int fd, Progress* progress = nullptr);

    // Writes the central directory (with zip64 end records when needed) and finishes the sink.
    // Nothing may be added afterwards.
    Status finish();

    uint64_t bytes_written() const { return offset_; }

  private:
    struct Entry {
        std::string name;
        uint64_t size;
        uint32_t crc32;
        uint64_t offset;  // of the local header
    };
    Status emit(std::span<const uint8_t> data);

    std::unique_ptr<ByteSink> sink_;
    std::vector<Entry> entries_;
    std::unordered_set<std::string> names_;  // duplicate detection, see zip::duplicate_key
    uint64_t offset_ = 0;
    bool in_member_ = false;
    uint64_t member_written_ = 0;
    uint32_t member_crc_ = 0;  // of the data written so far
    bool finished_ = false;
    bool failed_ = false;
};

}  // namespace activate::bundle
