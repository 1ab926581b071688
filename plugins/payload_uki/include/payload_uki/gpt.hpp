// GUID Partition Table reader (and the encoder the tests build tables with), following UEFI 2.10
// §5.2.3 (protective MBR) and §5.3 (GPT header, partition entry array, primary/backup copies).
// Partitions are addressed by their LBAs, so nothing here needs udev or partition device nodes.
#pragma once

#include <activate/result.hpp>
#include <array>
#include <cstdint>
#include <payload_uki/random_reader.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace activate::uki {

// A GUID in its on-disk form (EFI mixed-endian: the first three fields little-endian).
using GuidBytes = std::array<uint8_t, 16>;

// "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" (any case) to on-disk bytes.
Result<GuidBytes> parse_guid(std::string_view text);
// On-disk bytes to the upper-case registry form.
std::string format_guid(const GuidBytes& guid);

// UEFI 2.10 §5.3.3 Table 5.7: the EFI System Partition type.
extern const GuidBytes kEspTypeGuid;

// UEFI 2.10 §5.3.2 Table 5.5, field by field.
struct GptHeader {
    uint32_t revision = 0x00010000;
    uint32_t header_size = 92;
    uint32_t header_crc32 = 0;  // as read; encode_gpt_header() computes it
    uint64_t my_lba = 0;
    uint64_t alternate_lba = 0;
    uint64_t first_usable_lba = 0;
    uint64_t last_usable_lba = 0;
    GuidBytes disk_guid{};
    uint64_t partition_entry_lba = 0;
    uint32_t number_of_partition_entries = 0;
    uint32_t size_of_partition_entry = 128;
    uint32_t partition_entry_array_crc32 = 0;
};

// UEFI 2.10 §5.3.3 Table 5.6. `name` is UTF-8 (stored as up to 36 UTF-16LE code units).
struct GptEntry {
    uint32_t number = 0;  // 1-based index in the entry array; not stored on disk
    GuidBytes type_guid{};
    GuidBytes unique_guid{};
    uint64_t first_lba = 0;
    uint64_t last_lba = 0;  // inclusive
    uint64_t attributes = 0;
    std::string name;

    bool used() const;  // a zero type GUID marks an unused entry
    uint64_t size_lba() const { return last_lba - first_lba + 1; }
};

inline constexpr size_t kGptHeaderMinSize = 92;
inline constexpr size_t kGptEntryMinSize = 128;
inline constexpr size_t kGptNameUnits = 36;
// Upper bound on the entry array we read (the spec's minimum is 16 KiB); a larger claim is
// treated as corruption rather than an allocation request.
inline constexpr uint64_t kGptMaxEntryArrayBytes = 4 << 20;

// Decodes one header sector: signature, HeaderSize and HeaderCRC32 are checked here; the checks
// that need the disk (MyLBA, ranges, the entry array) are read_gpt()'s.
Result<GptHeader> decode_gpt_header(std::span<const uint8_t> sector);
// One sector of `sector_size` bytes (>= header_size) with HeaderCRC32 computed.
std::vector<uint8_t> encode_gpt_header(const GptHeader& header, uint32_t sector_size);

// `raw` is one entry of SizeOfPartitionEntry bytes; number is left 0.
Result<GptEntry> decode_gpt_entry(std::span<const uint8_t> raw);
// Fails when the name does not fit 36 UTF-16 code units or is not valid UTF-8.
Result<std::vector<uint8_t>> encode_gpt_entry(const GptEntry& entry, uint32_t entry_size);

// A protective MBR (UEFI 2.10 §5.2.3) covering `last_lba` sectors, 512 bytes.
std::vector<uint8_t> encode_protective_mbr(uint64_t last_lba);

// UEFI 2.10 §5.3.2: CRC32 of the entry array (the same CRC as zlib's crc32()).
uint32_t gpt_crc32(std::span<const uint8_t> data);

struct GptTable {
    uint32_t sector_size = 512;
    uint64_t last_lba = 0;             // of the disk
    GptHeader header;                  // the copy that was used
    bool from_backup = false;          // the primary was invalid and the backup was used
    std::vector<GptEntry> partitions;  // used entries only, in entry-array order
    // Things the caller should log: a bad backup, primary/backup mismatch, a moved backup.
    std::vector<std::string> warnings;

    const GptEntry* find_by_name(std::string_view name) const;
};

// Reads and validates a GPT. `sector_size` 0 means: detect (the "EFI PART" signature at LBA 1 or
// at the last LBA, trying 512 then 4096); a block device's logical sector size should be passed.
// The primary header and array are used when valid; otherwise the backup at the last LBA, with a
// warning; both invalid is an error naming why each was rejected.
Result<GptTable> read_gpt(const RandomReader& disk, uint32_t sector_size = 0);

}  // namespace activate::uki
