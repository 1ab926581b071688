// Zip record layouts shared by the reader and the writer (PKWARE APPNOTE.TXT 6.3.x, section 4),
// and the pieces of parsing that are worth testing on their own: the
// zip64 extended information extra field and member name rules.
#pragma once

#include <activate/byte_order.hpp>
#include <activate/result.hpp>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace activate::bundle::zip {

// Record signatures, APPNOTE 4.3.7, 4.3.9.3, 4.3.12, 4.3.13, 4.3.14, 4.3.15, 4.3.16, 4.3.11.
inline constexpr uint32_t kLocalHeaderSig = 0x04034b50;
inline constexpr uint32_t kDataDescriptorSig = 0x08074b50;
inline constexpr uint32_t kCentralHeaderSig = 0x02014b50;
inline constexpr uint32_t kDigitalSignatureSig = 0x05054b50;
inline constexpr uint32_t kZip64EndSig = 0x06064b50;
inline constexpr uint32_t kZip64LocatorSig = 0x07064b50;
inline constexpr uint32_t kEndSig = 0x06054b50;
inline constexpr uint32_t kArchiveExtraDataSig = 0x08064b50;

// Fixed-size parts of the records (before variable-length name, extra and comment).
inline constexpr size_t kLocalHeaderSize = 30;
inline constexpr size_t kCentralHeaderSize = 46;
inline constexpr size_t kZip64EndSize = 56;
inline constexpr size_t kZip64LocatorSize = 20;
inline constexpr size_t kEndSize = 22;

// General purpose bit flags, APPNOTE 4.4.4.
inline constexpr uint16_t kFlagEncrypted = 1 << 0;
inline constexpr uint16_t kFlagDataDescriptor = 1 << 3;
inline constexpr uint16_t kFlagStrongEncryption = 1 << 6;
inline constexpr uint16_t kFlagMaskedHeader = 1 << 13;

// Header ID of the zip64 extended information extra field, APPNOTE 4.5.3.
inline constexpr uint16_t kZip64ExtraId = 0x0001;
// A 32-bit (16-bit) field holding this value defers to the zip64 record, APPNOTE 4.4.1.4.
inline constexpr uint32_t kSaturated32 = 0xffffffff;
inline constexpr uint16_t kSaturated16 = 0xffff;

// "Version needed to extract", APPNOTE 4.4.3.2: 1.0 for stored data, 4.5 for zip64.
inline constexpr uint16_t kVersionStored = 10;
inline constexpr uint16_t kVersionZip64 = 45;

// Which fields a zip64 extra field carries: APPNOTE 4.5.3 stores them in this fixed order, each
// only when the matching header field is saturated.
struct Zip64Want {
    bool size = false;
    bool compressed_size = false;
    bool offset = false;
    bool disk = false;
};

struct Zip64Fields {
    bool present = false;  // a zip64 extra field exists at all
    std::optional<uint64_t> size;
    std::optional<uint64_t> compressed_size;
    std::optional<uint64_t> offset;
    std::optional<uint32_t> disk;
};

// Walks an extra field block (APPNOTE 4.5.1: header ID, data size, data; repeated) and decodes
// the zip64 field, if any. Other fields are skipped. Errors: a block overrunning the extra
// field, a second zip64 field, or a zip64 field too short for the wanted values.
// `local_header`: in a local header the zip64 field carries both sizes whenever it is present
// (APPNOTE 4.5.3 "MUST include BOTH"); when it is 16 bytes or longer both are read regardless
// of `want`.
Result<Zip64Fields> parse_extra(std::span<const uint8_t> extra, Zip64Want want, bool local_header);

// Checks a member name against the bundle's rules (see MemberHeader::name). The error message
// names the member and the rule.
Status check_name(std::string_view name);

// The key used to detect duplicates: the name without a trailing '/', so a directory "a/" and a
// file "a" collide.
std::string_view duplicate_key(std::string_view name);

// Text for messages: the name with control and non-ASCII bytes escaped, cut at 200 bytes.
std::string printable(std::string_view name);

}  // namespace activate::bundle::zip
