// Positioned, bounds-checked reads for the binary-format parsers (GPT, PE): the same parser runs
// over an open disk or UKI file and over an in-memory buffer (tests, fuzzers).
#pragma once

#include <activate/result.hpp>
#include <cstdint>
#include <span>
#include <string>
#include <utility>

namespace activate::uki {

class RandomReader {
  public:
    virtual ~RandomReader() = default;
    // Fills `out` from `offset`; any range not wholly inside [0, size()) is an error.
    virtual Status read_at(uint64_t offset, std::span<uint8_t> out) const = 0;
    virtual uint64_t size() const = 0;
    // The file, disk or buffer, for messages.
    virtual const std::string& name() const = 0;
};

// Over a caller-owned buffer that outlives the reader.
class SpanReader final : public RandomReader {
  public:
    explicit SpanReader(std::span<const uint8_t> data, std::string name = "<memory>")
        : data_(data), name_(std::move(name)) {}
    Status read_at(uint64_t offset, std::span<uint8_t> out) const override;
    uint64_t size() const override { return data_.size(); }
    const std::string& name() const override { return name_; }

  private:
    std::span<const uint8_t> data_;
    std::string name_;
};

// Over a caller-owned descriptor (pread, so the file offset is left alone). `size` is the file or
// block-device size as found by the caller (see fd_size()).
class FdReader final : public RandomReader {
  public:
    FdReader(int fd, uint64_t size, std::string name)
        : fd_(fd), size_(size), name_(std::move(name)) {}
    Status read_at(uint64_t offset, std::span<uint8_t> out) const override;
    uint64_t size() const override { return size_; }
    const std::string& name() const override { return name_; }

  private:
    int fd_;
    uint64_t size_;
    std::string name_;
};

// What fd_size() found out about an open file or block device.
struct FdGeometry {
    uint64_t size = 0;
    // The logical sector size of a block device (BLKSSZGET); 0 for regular files.
    uint32_t logical_sector_size = 0;
};

// Size of a regular file (fstat) or block device (BLKGETSIZE64); anything else is an error.
Result<FdGeometry> fd_geometry(int fd, const std::string& name);

}  // namespace activate::uki
