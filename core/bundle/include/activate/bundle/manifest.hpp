// The manifest of a signed bundle (docs/bundle-format.md): what the bundle is for, its version,
// and the size and SHA-256 of every member. It travels as the protobuf activate.wire.
// BundleManifest (core/proto/bundle.proto) in the zip member manifest.pb, signed by manifest.sig.
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
inline constexpr uint32_t kManifestFormat = 1;
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

struct ManifestMember {
    std::string name;
    uint64_t size = 0;
    Sha256Digest sha256{};
};

struct Manifest {
    uint32_t format_version = kManifestFormat;
    std::string compatible;
    BundleVersion version;
    std::vector<ManifestMember> members;
    PublicKey signing_key;

    const ManifestMember* find(std::string_view name) const;
};

// Decodes and validates: known format version, `compatible` printable ASCII (1..256 bytes), a
// valid version, 1..65535 members with valid zip names (not manifest.pb/manifest.sig, no
// duplicates) and 32-byte digests, a 32-byte signing key. Errors are ErrorKind::rejected and
// name the field.
Result<Manifest> parse_manifest(std::span<const uint8_t> bytes);

// The protobuf encoding of `manifest` (the bytes that get signed).
Result<std::string> encode_manifest(const Manifest& manifest);

}  // namespace activate::bundle
