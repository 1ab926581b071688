// GPT decode/encode and the primary/backup selection of UEFI 2.10 §5.3.2 ("GPT Header"): a header
// is valid only when its signature, HeaderCRC32, MyLBA and PartitionEntryArrayCRC32 check out; a
// corrupt primary sends us to the backup at the last LBA.
#include <zlib.h>

#include <activate/byte_order.hpp>
#include <activate/utf16.hpp>
#include <algorithm>
#include <cstring>
#include <payload_uki/gpt.hpp>

namespace activate::uki {
namespace {

constexpr char kSignature[8] = {'E', 'F', 'I', ' ', 'P', 'A', 'R', 'T'};

// Table 5.5 offsets.
constexpr size_t kOffRevision = 8, kOffHeaderSize = 12, kOffHeaderCrc = 16, kOffMyLba = 24,
                 kOffAlternateLba = 32, kOffFirstUsable = 40, kOffLastUsable = 48,
                 kOffDiskGuid = 56, kOffEntryLba = 72, kOffEntryCount = 80, kOffEntrySize = 84,
                 kOffEntryArrayCrc = 88;
// Table 5.6 offsets.
constexpr size_t kOffType = 0, kOffUnique = 16, kOffFirst = 32, kOffLast = 40, kOffAttributes = 48,
                 kOffName = 56;
// Table 5.3 / 5.4: the MBR partition records and the boot signature.
constexpr size_t kMbrRecords = 446, kMbrRecordSize = 16, kMbrSignature = 510;
constexpr uint8_t kProtectiveOsType = 0xEE;

std::string hex(uint64_t v) {
    static const char* digits = "0123456789abcdef";
    std::string s;
    do {
        s.insert(s.begin(), digits[v & 0xF]);
        v >>= 4;
    } while (v != 0);
    return "0x" + s;
}

// The partition name: UTF-16LE up to the first NUL; unpaired surrogates become U+FFFD so a
// damaged name still prints.
std::string decode_name(const uint8_t* p) {
    std::string_view units(reinterpret_cast<const char*>(p), 2 * kGptNameUnits);
    std::u16string name = utf16_from_le_bytes(units);
    name.resize(std::min(name.size(), name.find(u'\0')));
    return utf16_to_utf8(name);
}

// One validated copy (primary or backup) of the table.
struct TableCopy {
    GptHeader header;
    std::vector<GptEntry> partitions;
};

// Everything UEFI 2.10 §5.3.2 asks of a header at `lba`, plus sanity of the ranges it claims, so
// that later arithmetic on them cannot overflow or address outside the disk. Errors are reasons
// without the disk name; the caller adds it.
Result<TableCopy> read_copy(const RandomReader& disk, uint32_t ss, uint64_t last_lba,
                            uint64_t lba) {
    std::vector<uint8_t> sector(ss);
    ACTIVATE_TRY(disk.read_at(lba * ss, sector));
    ACTIVATE_ASSIGN(GptHeader h, decode_gpt_header(sector));
    if (h.my_lba != lba)
        return Error(ErrorKind::input,
                     "MyLBA is " + std::to_string(h.my_lba) + ", expected " + std::to_string(lba));
    if (h.first_usable_lba < 2 || h.last_usable_lba >= last_lba ||
        h.first_usable_lba > h.last_usable_lba)
        return Error(ErrorKind::input, "usable LBA range " + std::to_string(h.first_usable_lba) +
                                           ".." + std::to_string(h.last_usable_lba) +
                                           " does not fit a disk whose last LBA is " +
                                           std::to_string(last_lba));
    const uint32_t esz = h.size_of_partition_entry;
    // Table 5.5: SizeOfPartitionEntry is 128 * 2^n.
    if (esz < kGptEntryMinSize || esz % kGptEntryMinSize != 0 ||
        ((esz / kGptEntryMinSize) & (esz / kGptEntryMinSize - 1)) != 0)
        return Error(ErrorKind::input,
                     "SizeOfPartitionEntry " + std::to_string(esz) + " is not 128 * 2^n");
    const uint64_t array_bytes = uint64_t{h.number_of_partition_entries} * esz;
    if (array_bytes > kGptMaxEntryArrayBytes)
        return Error(ErrorKind::input, "partition entry array of " + std::to_string(array_bytes) +
                                           " bytes is implausibly large");
    std::vector<uint8_t> array(array_bytes);
    if (array_bytes > 0) {
        const uint64_t sectors = (array_bytes + ss - 1) / ss;
        const uint64_t first = h.partition_entry_lba;
        // The array lies within the disk, clear of LBA 0, of this header and of the usable space.
        if (first < 1 || first > last_lba || sectors > last_lba - first + 1)
            return Error(ErrorKind::input, "partition entry array at LBA " + std::to_string(first) +
                                               " (" + std::to_string(sectors) +
                                               " sectors) lies outside the disk");
        const uint64_t last = first + sectors - 1;
        if ((lba >= first && lba <= last) ||
            (first <= h.last_usable_lba && last >= h.first_usable_lba))
            return Error(ErrorKind::input, "partition entry array at LBA " + std::to_string(first) +
                                               ".." + std::to_string(last) +
                                               " overlaps the header or the usable space");
        ACTIVATE_TRY(disk.read_at(first * ss, array));
    }
    const uint32_t crc = gpt_crc32(array);
    if (crc != h.partition_entry_array_crc32)
        return Error(ErrorKind::input, "PartitionEntryArrayCRC32 mismatch (stored " +
                                           hex(h.partition_entry_array_crc32) + ", computed " +
                                           hex(crc) + ")");
    TableCopy copy{h, {}};
    for (uint32_t i = 0; i < h.number_of_partition_entries; ++i) {
        ACTIVATE_ASSIGN(GptEntry e,
                        decode_gpt_entry(std::span(array).subspan(uint64_t{i} * esz, esz)));
        if (!e.used()) continue;
        e.number = i + 1;
        if (e.first_lba > e.last_lba || e.first_lba < h.first_usable_lba ||
            e.last_lba > h.last_usable_lba)
            return Error(ErrorKind::input,
                         "partition " + std::to_string(e.number) + " (\"" + e.name +
                             "\") spans LBA " + std::to_string(e.first_lba) + ".." +
                             std::to_string(e.last_lba) + ", outside the usable range " +
                             std::to_string(h.first_usable_lba) + ".." +
                             std::to_string(h.last_usable_lba));
        copy.partitions.push_back(std::move(e));
    }
    std::vector<const GptEntry*> sorted;
    for (const auto& e : copy.partitions) sorted.push_back(&e);
    std::sort(sorted.begin(), sorted.end(),
              [](const GptEntry* a, const GptEntry* b) { return a->first_lba < b->first_lba; });
    for (size_t i = 1; i < sorted.size(); ++i) {
        if (sorted[i]->first_lba <= sorted[i - 1]->last_lba)
            return Error(ErrorKind::input, "partitions " + std::to_string(sorted[i - 1]->number) +
                                               " and " + std::to_string(sorted[i]->number) +
                                               " overlap");
    }
    return copy;
}

bool signature_at(const RandomReader& disk, uint64_t offset) {
    uint8_t sig[sizeof(kSignature)];
    return disk.read_at(offset, sig).ok() && std::memcmp(sig, kSignature, sizeof sig) == 0;
}

// Regular files carry no sector size, so we look for a header where each size would put it.
uint32_t detect_sector_size(const RandomReader& disk) {
    for (uint32_t ss : {512u, 4096u}) {
        if (disk.size() / ss < 3) continue;
        if (signature_at(disk, ss) || signature_at(disk, (disk.size() / ss - 1) * ss)) return ss;
    }
    return 512;
}

Status check_protective_mbr(const RandomReader& disk) {
    uint8_t mbr[512];
    ACTIVATE_TRY(disk.read_at(0, mbr));
    if (mbr[kMbrSignature] != 0x55 || mbr[kMbrSignature + 1] != 0xAA)
        return Error(ErrorKind::input, disk.name() +
                                           ": LBA 0 has no MBR boot signature 0xAA55, so this is "
                                           "not a GPT disk (UEFI 2.10 §5.2.3); check the `disk` "
                                           "setting");
    for (size_t i = 0; i < 4; ++i) {
        if (mbr[kMbrRecords + i * kMbrRecordSize + 4] == kProtectiveOsType) return {};
    }
    return Error(ErrorKind::input, disk.name() +
                                       ": the MBR at LBA 0 has no protective partition record "
                                       "(type 0xEE), so this is not a GPT disk (UEFI 2.10 §5.2.3); "
                                       "check the `disk` setting");
}

}  // namespace

const GuidBytes kEspTypeGuid = {0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11,
                                0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B};

Result<GuidBytes> parse_guid(std::string_view text) {
    auto bad = [&] {
        return Error(ErrorKind::input, "\"" + std::string(text) +
                                           "\" is not a GUID (expected "
                                           "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX)");
    };
    if (text.size() != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' ||
        text[23] != '-')
        return bad();
    uint8_t be[16];
    size_t n = 0;
    for (size_t i = 0; i < text.size();) {
        if (text[i] == '-') {
            ++i;
            continue;
        }
        auto nib = [](char c) -> int {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            return -1;
        };
        int hi = nib(text[i]), lo = nib(text[i + 1]);
        if (hi < 0 || lo < 0) return bad();
        be[n++] = static_cast<uint8_t>(hi << 4 | lo);
        i += 2;
    }
    // UEFI 2.10 Appendix A: Data1..Data3 are stored little-endian, Data4 as written.
    GuidBytes g{};
    const int order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
    for (size_t i = 0; i < 16; ++i) g[i] = be[order[i]];
    return g;
}

std::string format_guid(const GuidBytes& g) {
    static const char* digits = "0123456789ABCDEF";
    const int order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
    std::string s;
    for (size_t i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
        uint8_t b = g[order[i]];
        s += digits[b >> 4];
        s += digits[b & 0xF];
    }
    return s;
}

bool GptEntry::used() const {
    return std::any_of(type_guid.begin(), type_guid.end(), [](uint8_t b) { return b != 0; });
}

uint32_t gpt_crc32(std::span<const uint8_t> data) {
    uLong crc = crc32(0L, Z_NULL, 0);
    // zlib takes uInt lengths; feed large buffers in pieces.
    while (!data.empty()) {
        size_t n = std::min<size_t>(data.size(), 1u << 30);
        crc = crc32(crc, data.data(), static_cast<uInt>(n));
        data = data.subspan(n);
    }
    return static_cast<uint32_t>(crc);
}

Result<GptHeader> decode_gpt_header(std::span<const uint8_t> s) {
    if (s.size() < kGptHeaderMinSize)
        return Error(ErrorKind::input, "header sector of " + std::to_string(s.size()) +
                                           " bytes is shorter than a GPT header (92)");
    if (std::memcmp(s.data(), kSignature, sizeof kSignature) != 0)
        return Error(ErrorKind::input, "no \"EFI PART\" signature");
    GptHeader h;
    h.revision = load_le<uint32_t>(&s[kOffRevision]);
    h.header_size = load_le<uint32_t>(&s[kOffHeaderSize]);
    h.header_crc32 = load_le<uint32_t>(&s[kOffHeaderCrc]);
    if (h.header_size < kGptHeaderMinSize || h.header_size > s.size())
        return Error(ErrorKind::input, "HeaderSize " + std::to_string(h.header_size) +
                                           " is outside 92.." + std::to_string(s.size()));
    // §5.3.2: the CRC covers HeaderSize bytes with the CRC field itself zeroed.
    std::vector<uint8_t> copy(s.begin(), s.begin() + h.header_size);
    store_le<uint32_t>(&copy[kOffHeaderCrc], 0);
    const uint32_t crc = gpt_crc32(copy);
    if (crc != h.header_crc32)
        return Error(ErrorKind::input, "HeaderCRC32 mismatch (stored " + hex(h.header_crc32) +
                                           ", computed " + hex(crc) + ")");
    h.my_lba = load_le<uint64_t>(&s[kOffMyLba]);
    h.alternate_lba = load_le<uint64_t>(&s[kOffAlternateLba]);
    h.first_usable_lba = load_le<uint64_t>(&s[kOffFirstUsable]);
    h.last_usable_lba = load_le<uint64_t>(&s[kOffLastUsable]);
    std::memcpy(h.disk_guid.data(), &s[kOffDiskGuid], 16);
    h.partition_entry_lba = load_le<uint64_t>(&s[kOffEntryLba]);
    h.number_of_partition_entries = load_le<uint32_t>(&s[kOffEntryCount]);
    h.size_of_partition_entry = load_le<uint32_t>(&s[kOffEntrySize]);
    h.partition_entry_array_crc32 = load_le<uint32_t>(&s[kOffEntryArrayCrc]);
    return h;
}

std::vector<uint8_t> encode_gpt_header(const GptHeader& h, uint32_t sector_size) {
    const size_t hsize = std::max<size_t>(h.header_size, kGptHeaderMinSize);
    std::vector<uint8_t> s(std::max<size_t>(sector_size, hsize), 0);
    std::memcpy(s.data(), kSignature, sizeof kSignature);
    store_le<uint32_t>(&s[kOffRevision], h.revision);
    store_le<uint32_t>(&s[kOffHeaderSize], static_cast<uint32_t>(hsize));
    store_le<uint64_t>(&s[kOffMyLba], h.my_lba);
    store_le<uint64_t>(&s[kOffAlternateLba], h.alternate_lba);
    store_le<uint64_t>(&s[kOffFirstUsable], h.first_usable_lba);
    store_le<uint64_t>(&s[kOffLastUsable], h.last_usable_lba);
    std::memcpy(&s[kOffDiskGuid], h.disk_guid.data(), 16);
    store_le<uint64_t>(&s[kOffEntryLba], h.partition_entry_lba);
    store_le<uint32_t>(&s[kOffEntryCount], h.number_of_partition_entries);
    store_le<uint32_t>(&s[kOffEntrySize], h.size_of_partition_entry);
    store_le<uint32_t>(&s[kOffEntryArrayCrc], h.partition_entry_array_crc32);
    store_le<uint32_t>(&s[kOffHeaderCrc], gpt_crc32(std::span(s).first(hsize)));
    return s;
}

Result<GptEntry> decode_gpt_entry(std::span<const uint8_t> raw) {
    if (raw.size() < kGptEntryMinSize)
        return Error(ErrorKind::input, "partition entry of " + std::to_string(raw.size()) +
                                           " bytes is shorter than 128");
    GptEntry e;
    std::memcpy(e.type_guid.data(), &raw[kOffType], 16);
    std::memcpy(e.unique_guid.data(), &raw[kOffUnique], 16);
    e.first_lba = load_le<uint64_t>(&raw[kOffFirst]);
    e.last_lba = load_le<uint64_t>(&raw[kOffLast]);
    e.attributes = load_le<uint64_t>(&raw[kOffAttributes]);
    e.name = decode_name(&raw[kOffName]);
    return e;
}

Result<std::vector<uint8_t>> encode_gpt_entry(const GptEntry& e, uint32_t entry_size) {
    auto name = utf8_to_utf16(e.name);
    if (!name.ok())
        return Error(ErrorKind::input,
                     "partition name \"" + e.name + "\": " + name.error().message());
    if (name->size() > kGptNameUnits)
        return Error(ErrorKind::input, "partition name \"" + e.name + "\" is longer than " +
                                           std::to_string(kGptNameUnits) + " UTF-16 code units");
    std::vector<uint8_t> raw(std::max<size_t>(entry_size, kGptEntryMinSize), 0);
    std::memcpy(&raw[kOffType], e.type_guid.data(), 16);
    std::memcpy(&raw[kOffUnique], e.unique_guid.data(), 16);
    store_le<uint64_t>(&raw[kOffFirst], e.first_lba);
    store_le<uint64_t>(&raw[kOffLast], e.last_lba);
    store_le<uint64_t>(&raw[kOffAttributes], e.attributes);
    for (size_t i = 0; i < name->size(); ++i)
        store_le<uint16_t>(&raw[kOffName + 2 * i], static_cast<uint16_t>((*name)[i]));
    return raw;
}

std::vector<uint8_t> encode_protective_mbr(uint64_t last_lba) {
    std::vector<uint8_t> mbr(512, 0);
    uint8_t* r = &mbr[kMbrRecords];
    // Table 5.4: StartingCHS 0x000200, OSType 0xEE, EndingCHS 0xFFFFFF, StartingLBA 1, and
    // SizeInLBA the disk size minus one, saturated at 32 bits.
    r[2] = 0x02;
    r[4] = kProtectiveOsType;
    r[5] = r[6] = r[7] = 0xFF;
    store_le<uint32_t>(r + 8, 1);
    store_le<uint32_t>(r + 12, static_cast<uint32_t>(std::min<uint64_t>(last_lba, 0xFFFFFFFF)));
    mbr[kMbrSignature] = 0x55;
    mbr[kMbrSignature + 1] = 0xAA;
    return mbr;
}

const GptEntry* GptTable::find_by_name(std::string_view name) const {
    for (const auto& p : partitions)
        if (p.name == name) return &p;
    return nullptr;
}

Result<GptTable> read_gpt(const RandomReader& disk, uint32_t sector_size) {
    if (sector_size != 0 && sector_size != 512 && sector_size != 1024 && sector_size != 2048 &&
        sector_size != 4096)
        return Error(ErrorKind::input,
                     disk.name() + ": unsupported sector size " + std::to_string(sector_size));
    ACTIVATE_TRY(check_protective_mbr(disk));
    const uint32_t ss = sector_size != 0 ? sector_size : detect_sector_size(disk);
    if (disk.size() / ss < 3)
        return Error(ErrorKind::input, disk.name() + ": " + std::to_string(disk.size()) +
                                           " bytes is too small to hold a GPT");
    GptTable table;
    table.sector_size = ss;
    table.last_lba = disk.size() / ss - 1;

    // §5.3.2: primary at LBA 1, backup at the last LBA of the disk.
    auto primary = read_copy(disk, ss, table.last_lba, 1);
    auto backup = read_copy(disk, ss, table.last_lba, table.last_lba);
    const std::string backup_where = "backup GPT header at LBA " + std::to_string(table.last_lba);
    if (primary.ok()) {
        table.header = primary->header;
        table.partitions = std::move(primary->partitions);
        if (table.header.alternate_lba != table.last_lba)
            table.warnings.push_back(
                disk.name() + ": the primary GPT header's AlternateLBA is " +
                std::to_string(table.header.alternate_lba) + ", not the last LBA " +
                std::to_string(table.last_lba) +
                " (was the disk resized?); repair it with `sfdisk --relocate gpt-bak-std`");
        if (!backup.ok()) {
            table.warnings.push_back(disk.name() + ": " + backup_where + " is invalid (" +
                                     backup.error().message() +
                                     "); the primary is fine, repair the backup with sfdisk");
        } else if (backup->header.partition_entry_array_crc32 !=
                       table.header.partition_entry_array_crc32 ||
                   backup->header.disk_guid != table.header.disk_guid) {
            table.warnings.push_back(disk.name() +
                                     ": the primary and backup GPTs differ; using the primary");
        }
        return table;
    }
    if (backup.ok()) {
        table.header = backup->header;
        table.partitions = std::move(backup->partitions);
        table.from_backup = true;
        table.warnings.push_back(disk.name() + ": primary GPT header at LBA 1 is invalid (" +
                                 primary.error().message() + "); using the " + backup_where +
                                 "; repair the primary with sfdisk");
        return table;
    }
    return Error(ErrorKind::input, disk.name() + ": no valid GPT (sector size " +
                                       std::to_string(ss) +
                                       "): primary header at LBA 1: " + primary.error().message() +
                                       "; " + backup_where + ": " + backup.error().message());
}

}  // namespace activate::uki
