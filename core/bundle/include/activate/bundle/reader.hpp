// A bundle is a zip archive (PKWARE APPNOTE.TXT 6.3.x) read strictly front to back: local file
// header, member data, optional data descriptor, next member, ..., central directory, end record.
// The installer streams each member straight to its destination while the reader checks sizes
// and CRC-32; the central directory at the end is checked against what was streamed.
// The supported subset is described in core/bundle/README.md.
#pragma once

#include <activate/bundle/source.hpp>
#include <activate/result.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

namespace activate::bundle {

// APPNOTE 4.4.5 compression methods.
inline constexpr uint16_t kMethodStored = 0;
inline constexpr uint16_t kMethodDeflated = 8;

struct MemberHeader {
    // As stored, '/'-separated and relative; validated: no "..", "." or empty components, no
    // leading '/', no backslash or NUL, not a duplicate of an earlier member.
    std::string name = {};
    // The uncompressed size when the local header (or its zip64 extra field) states it, so a
    // caller can refuse a member that cannot fit before writing anything. nullopt: the size only
    // follows the data (a deflated member with a data descriptor, e.g. written by `zip` to a
    // pipe). When set, it is enforced: reading fails as soon as the data exceeds it.
    std::optional<uint64_t> size = std::nullopt;
    // The compressed size when known up front (always for stored members).
    std::optional<uint64_t> compressed_size = std::nullopt;
    uint16_t method = kMethodStored;
    // From the local header; nullopt when deferred to the data descriptor (general purpose bit 3).
    std::optional<uint32_t> crc32 = std::nullopt;
    bool data_descriptor = false;  // general purpose bit 3

    bool is_directory() const { return !name.empty() && name.back() == '/'; }
};

class BundleReader {
  public:
    // Takes the source; reads nothing yet.
    static Result<BundleReader> open(std::unique_ptr<ByteSource> source);

    BundleReader(BundleReader&&) noexcept;
    BundleReader& operator=(BundleReader&&) noexcept;
    ~BundleReader();

    // Moves to the next member, first consuming and verifying whatever is left of the current
    // one. nullopt once the central directory is reached; by then the central directory has been
    // checked entry by entry against the local headers and data seen (names, sizes, CRC-32,
    // offsets), the end of central directory record read, and the source is at its end.
    // Errors are ErrorKind::input for bad bundle contents and name the member and field.
    Result<std::optional<MemberHeader>> next();

    // Reads the current member's uncompressed data; 0 at the end of the member (and for an empty
    // `out`). The member's size, CRC-32 and data descriptor are verified before its last bytes
    // are returned: a corrupt member fails on its final read() instead of delivering them.
    // Reading before the first next() is an error.
    Result<size_t> read(std::span<uint8_t> out);

    // Consumes and verifies the rest of the current member.
    Status skip();

    // Whether skip_data() can enter the current member mid-way: a stored member whose size is
    // known and that has no data descriptor (a deflate stream cannot be entered mid-stream).
    bool can_skip_data() const;
    // Passes over the next `n` bytes of the current member's data without reading them
    // (ByteSource::skip: a file seeks, a download continues with a Range request). The member's
    // CRC-32 then cannot be computed and is not checked: the caller vouches for these bytes by
    // other means (VerifyingReader::skip_chunks: the manifest's chunk digests, checked when an
    // earlier run wrote them). Sizes and the central directory are still checked.
    Status skip_data(uint64_t n);
    // ByteSource::will_read() for the next `n` bytes of the current member's data (what is
    // already buffered aside).
    void will_read_data(uint64_t n);

    // Streams the rest of the current member to `sink` in chunks of at most 256 KiB, stopping at
    // the sink's first error; returns the number of bytes delivered. Earlier chunks reach the
    // sink before the CRC-32 is known, so a sink writing to disk must treat what it wrote as
    // valid only when copy_to() succeeds.
    Result<uint64_t> copy_to(const std::function<Status(std::span<const uint8_t>)>& sink);

    // Bytes consumed from the source so far (for progress against ByteSource::size_hint()).
    uint64_t source_offset() const;
    const ByteSource& source() const;

  private:
    struct State;
    explicit BundleReader(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

}  // namespace activate::bundle
