// The manifest of a signed bundle (docs/bundle-format.md): what the bundle is for, its version,
// and the size and chunk digests (SHA-256 of every chunk) of every member. It travels as the
// protobuf activate.wire. BundleManifest (core/proto/bundle.proto) in the zip member manifest.pb,
// signed by manifest.sig.
#pragma once

#include <activate/bundle/sha256.hpp>
#include <activate/bundle/signature.hpp>
#include <activate/result.hpp>
#include <compare>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace activate::bundle {

// The first two members of a signed bundle, in this order.
inline constexpr std::string_view kManifestMember = "manifest.pb";
inline constexpr std::string_view kSignatureMember = "manifest.sig";
// Format 2: a SHA-256 per chunk, so every chunk is verified before it is written. Format 1 (one
// SHA-256 per member) is refused: see docs/bundle-format.md.
inline constexpr uint32_t kManifestFormat = 2;
// A member's chunk size bounds the memory an install needs (a few chunks in flight) and the
// manifest's size (32 bytes per chunk); `bundle create` uses the default.
inline constexpr uint32_t kMinChunkSize = 4096;
inline constexpr uint32_t kMaxChunkSize = 8 << 20;
inline constexpr uint32_t kDefaultChunkSize = 4 << 20;
// A manifest lists a handful of members; anything near this is not a manifest.
inline constexpr size_t kManifestLimit = 1 << 20;
inline constexpr size_t kCompatibleLimit = 256;

// Dotted decimal: 1 to 4 components, each 0..999999999 without leading zeros ("1.2.3",
// "2026.11.22.1"). Compared numerically component by component, a missing component counting
// as 0, so "1.2" == "1.2.0" < "1.10".
class BundleVersion {
  public:
    static Result<BundleVersion> parse(std::string_view text);
    const std::string& text() const { return text_; }
    std::strong_ordering operator<=>(const BundleVersion& other) const;
    bool operator==(const BundleVersion& other) const { return (*this <=> other) == 0; }

  private:
    std::string text_;
    std::vector<uint32_t> parts_;
};

// Member data split into chunks of `chunk_size` bytes (the last one shorter, or none for an
// empty member), each with its SHA-256.
struct ManifestMember {
    std::string name;
    uint64_t size = 0;
    uint32_t chunk_size = kDefaultChunkSize;
    std::vector<Sha256Digest> chunks;

    // ceil(size / chunk_size): how many digests `chunks` must hold.
    uint64_t chunk_count() const;
    // Where chunk `index` starts in the member, and its length (< chunk_size only for the last).
    uint64_t chunk_offset(uint64_t index) const { return index * chunk_size; }
    size_t chunk_length(uint64_t index) const;
};

// The chunk digests of a stream, as `bundle create` and tests make them.
class ChunkDigester {
  public:
    explicit ChunkDigester(uint32_t chunk_size) : chunk_size_(chunk_size) {}
    void update(std::span<const uint8_t> data);
    // The digests of everything passed to update(), the last chunk possibly short.
    Result<std::vector<Sha256Digest>> finish();

  private:
    uint32_t chunk_size_;
    uint64_t in_chunk_ = 0;
    Sha256 hash_;
    std::vector<Sha256Digest> chunks_;
    Status error_;
};

// Validates a member's chunk fields as they appear in the manifest: `chunk_size` within
// kMinChunkSize..kMaxChunkSize, and `packed` exactly 32 bytes for each of ceil(size/chunk_size)
// chunks. `what` names the member in errors (ErrorKind::rejected, naming field and value).
Result<std::vector<Sha256Digest>> parse_chunk_digests(uint64_t size, uint64_t chunk_size,
                                                      std::span<const uint8_t> packed,
                                                      const std::string& what);

struct Manifest {
    uint32_t format_version = kManifestFormat;
    std::string compatible;
    BundleVersion version;
    std::vector<ManifestMember> members;
    PublicKey signing_key;

    const ManifestMember* find(std::string_view name) const;
};

// Decodes and validates: format version 2 (1 is refused with how to rebuild), `compatible`
// printable ASCII (1..256 bytes), a valid version, 1..65535 members with valid zip names (not
// manifest.pb/manifest.sig, no duplicates) and valid chunk fields (parse_chunk_digests), a
// 32-byte signing key. Errors are ErrorKind::rejected and
// name the field.
Result<Manifest> parse_manifest(std::span<const uint8_t> bytes);

// The protobuf encoding of `manifest` (the bytes that get signed).
Result<std::string> encode_manifest(const Manifest& manifest);

}  // namespace activate::bundle
