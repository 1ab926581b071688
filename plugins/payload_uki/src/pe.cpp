// PE/COFF header parsing per Microsoft's "PE Format" (sections "MS-DOS Stub", "Signature", "COFF
// File Header", "Optional Header", "Section Table"). Only what locating section contents and
// telling a signed image (data directory 4) need is decoded; all of it is range-checked against
// the file.
#include <activate/byte_order.hpp>
#include <activate/escape.hpp>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <payload_uki/pe.hpp>

namespace activate::uki {
namespace {

constexpr size_t kDosHeaderSize = 64;
constexpr size_t kOffLfanew = 0x3C;
constexpr size_t kSignatureSize = 4;
constexpr size_t kCoffHeaderSize = 20;
constexpr size_t kSectionHeaderSize = 40;
// Optional header sizes without data directories ("Optional Header Windows-Specific Fields"):
// the fields we read all lie inside them.
constexpr size_t kOptMinPe32Plus = 112, kOptMinPe32 = 96;
// Optional header offsets shared by PE32 and PE32+.
constexpr size_t kOffSectionAlignment = 32, kOffFileAlignment = 36, kOffSizeOfImage = 56,
                 kOffSizeOfHeaders = 60;
// NumberOfRvaAndSizes is the last field before the data directories, which start right at the
// minimal sizes above; each directory is 8 bytes (address, size).
constexpr size_t kDataDirectorySize = 8, kCertificateTableIndex = 4, kDataDirectories = 16;

Error bad(const std::string& file, const std::string& what) {
    return Error(ErrorKind::input, file + " is not a valid PE image: " + what);
}

bool add_ok(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_add_overflow(a, b, out); }

std::string hex16(uint16_t v) {
    char b[8];
    std::snprintf(b, sizeof b, "0x%x", static_cast<unsigned>(v));
    return b;
}

// Section names come from the file: keep messages printable.
std::string printable(const std::string& s) { return escape_bytes(s); }

uint32_t align_up(uint32_t v, uint32_t a) { return (v + a - 1) / a * a; }

}  // namespace

const PeSection* PeImage::find(std::string_view name) const {
    for (const auto& s : sections)
        if (s.name == name) return &s;
    return nullptr;
}

size_t PeImage::count(std::string_view name) const {
    return static_cast<size_t>(std::count_if(sections.begin(), sections.end(),
                                             [&](const PeSection& s) { return s.name == name; }));
}

Result<PeImage> parse_pe(const RandomReader& file) {
    const std::string& name = file.name();
    const uint64_t size = file.size();
    if (size < kDosHeaderSize)
        return bad(name, std::to_string(size) + " bytes is shorter than a DOS header (64)");
    uint8_t dos[kDosHeaderSize];
    ACTIVATE_TRY(file.read_at(0, dos));
    if (dos[0] != 'M' || dos[1] != 'Z') return bad(name, "no \"MZ\" DOS signature at offset 0");

    PeImage img;
    img.pe_header_offset = load_le<uint32_t>(dos + kOffLfanew);
    uint64_t coff_end = 0;
    if (!add_ok(img.pe_header_offset, kSignatureSize + kCoffHeaderSize, &coff_end) ||
        coff_end > size)
        return bad(name, "e_lfanew " + std::to_string(img.pe_header_offset) +
                             " points past the end of the file (" + std::to_string(size) +
                             " bytes)");
    uint8_t hdr[kSignatureSize + kCoffHeaderSize];
    ACTIVATE_TRY(file.read_at(img.pe_header_offset, hdr));
    if (std::memcmp(hdr, "PE\0\0", 4) != 0)
        return bad(name,
                   "no \"PE\\0\\0\" signature at e_lfanew " + std::to_string(img.pe_header_offset));
    const uint8_t* coff = hdr + kSignatureSize;
    img.machine = load_le<uint16_t>(coff + 0);
    const uint16_t nsections = load_le<uint16_t>(coff + 2);
    const uint16_t opt_size = load_le<uint16_t>(coff + 16);
    if (nsections > kPeMaxSections)
        return bad(name, std::to_string(nsections) + " sections exceed the limit of " +
                             std::to_string(kPeMaxSections));

    // The optional header: magic decides the layout.
    uint64_t opt_end = 0;
    if (!add_ok(coff_end, opt_size, &opt_end) || opt_end > size)
        return bad(name, "the optional header (" + std::to_string(opt_size) +
                             " bytes) runs past the end of the file");
    if (opt_size < 2) return bad(name, "no optional header (an object file, not an image)");
    std::vector<uint8_t> opt(opt_size);
    ACTIVATE_TRY(file.read_at(coff_end, opt));
    img.magic = load_le<uint16_t>(opt.data());
    const size_t need = img.magic == kPeMagicPe32Plus ? kOptMinPe32Plus
                        : img.magic == kPeMagicPe32   ? kOptMinPe32
                                                      : 0;
    if (need == 0)
        return bad(name, "optional header magic " + hex16(img.magic) +
                             " is neither PE32+ (0x20b) nor PE32 (0x10b)");
    if (opt_size < need)
        return bad(name, "SizeOfOptionalHeader " + std::to_string(opt_size) +
                             " is too small for its magic (needs " + std::to_string(need) + ")");
    img.section_alignment = load_le<uint32_t>(&opt[kOffSectionAlignment]);
    img.file_alignment = load_le<uint32_t>(&opt[kOffFileAlignment]);
    img.size_of_image = load_le<uint32_t>(&opt[kOffSizeOfImage]);
    img.size_of_headers = load_le<uint32_t>(&opt[kOffSizeOfHeaders]);
    // Data directories: only as many as NumberOfRvaAndSizes says and the header holds.
    const uint32_t directories = load_le<uint32_t>(&opt[need - 4]);
    const size_t cert_at = need + kCertificateTableIndex * kDataDirectorySize;
    if (directories > kCertificateTableIndex && cert_at + kDataDirectorySize <= opt_size) {
        img.certificate_table.file_offset = load_le<uint32_t>(&opt[cert_at]);
        img.certificate_table.size = load_le<uint32_t>(&opt[cert_at + 4]);
    }

    img.section_table_offset = opt_end;
    const uint64_t table_bytes = uint64_t{nsections} * kSectionHeaderSize;
    uint64_t table_end = 0;
    if (!add_ok(opt_end, table_bytes, &table_end) || table_end > size)
        return bad(name, "the section table (" + std::to_string(nsections) + " entries at offset " +
                             std::to_string(opt_end) + ") runs past the end of the file");
    std::vector<uint8_t> table(table_bytes);
    ACTIVATE_TRY(file.read_at(opt_end, table));
    for (uint16_t i = 0; i < nsections; ++i) {
        const uint8_t* s = &table[size_t{i} * kSectionHeaderSize];
        PeSection sec;
        sec.name.assign(reinterpret_cast<const char*>(s),
                        strnlen(reinterpret_cast<const char*>(s), 8));
        sec.virtual_size = load_le<uint32_t>(s + 8);
        sec.virtual_address = load_le<uint32_t>(s + 12);
        sec.size_of_raw_data = load_le<uint32_t>(s + 16);
        sec.pointer_to_raw_data = load_le<uint32_t>(s + 20);
        sec.characteristics = load_le<uint32_t>(s + 36);
        uint64_t end = 0;
        // Both are 32-bit, so this sum cannot overflow 64 bits; the check is kept for clarity.
        if (sec.file_length() > 0 &&
            (!add_ok(sec.file_offset(), sec.file_length(), &end) || end > size))
            return bad(name, "section " + std::to_string(i + 1) + " \"" + printable(sec.name) +
                                 "\" (offset " + std::to_string(sec.file_offset()) + ", " +
                                 std::to_string(sec.file_length()) +
                                 " bytes) extends past the end of the file (" +
                                 std::to_string(size) + " bytes); the file is truncated");
        img.sections.push_back(std::move(sec));
    }
    return img;
}

Status check_disjoint(const PeImage& image, const std::vector<std::string>& names,
                      const std::string& file) {
    std::vector<const PeSection*> used;
    for (const auto& s : image.sections)
        if (s.file_length() > 0 && std::find(names.begin(), names.end(), s.name) != names.end())
            used.push_back(&s);
    std::sort(used.begin(), used.end(), [](const PeSection* a, const PeSection* b) {
        return a->file_offset() < b->file_offset();
    });
    for (size_t i = 1; i < used.size(); ++i) {
        const PeSection* a = used[i - 1];
        const PeSection* b = used[i];
        if (a->file_offset() + a->file_length() > b->file_offset())
            return bad(file, "sections \"" + printable(a->name) + "\" (offset " +
                                 std::to_string(a->file_offset()) + ", " +
                                 std::to_string(a->file_length()) + " bytes) and \"" +
                                 printable(b->name) + "\" (offset " +
                                 std::to_string(b->file_offset()) + ") overlap in the file");
    }
    return {};
}

Result<std::vector<uint8_t>> encode_pe(uint16_t machine,
                                       const std::vector<PeSectionContent>& sections,
                                       std::string_view certificates) {
    constexpr uint32_t kFileAlign = 0x200, kSectionAlign = 0x1000, kLfanew = 0x40;
    if (sections.size() > kPeMaxSections)
        return Error(ErrorKind::input, "too many sections for a PE image");
    if (certificates.size() > 0x7FFFFFFF)
        return Error(ErrorKind::input, "the certificate table is too large");
    const size_t opt_size =
        kOptMinPe32Plus + (certificates.empty() ? 0 : kDataDirectories * kDataDirectorySize);
    const uint32_t headers_end = kLfanew + kSignatureSize + kCoffHeaderSize +
                                 static_cast<uint32_t>(opt_size) +
                                 static_cast<uint32_t>(sections.size() * kSectionHeaderSize);
    const uint32_t size_of_headers = align_up(headers_end, kFileAlign);
    std::vector<uint8_t> out(size_of_headers, 0);
    out[0] = 'M', out[1] = 'Z';
    store_le<uint32_t>(&out[kOffLfanew], kLfanew);
    std::memcpy(&out[kLfanew], "PE\0\0", 4);
    uint8_t* coff = &out[kLfanew + kSignatureSize];
    store_le<uint16_t>(coff + 0, machine);
    store_le<uint16_t>(coff + 2, static_cast<uint16_t>(sections.size()));
    store_le<uint16_t>(coff + 16, static_cast<uint16_t>(opt_size));
    store_le<uint16_t>(coff + 18, 0x0022);  // EXECUTABLE_IMAGE | LARGE_ADDRESS_AWARE
    uint8_t* opt = coff + kCoffHeaderSize;
    store_le<uint16_t>(opt, kPeMagicPe32Plus);
    store_le<uint32_t>(opt + kOffSectionAlignment, kSectionAlign);
    store_le<uint32_t>(opt + kOffFileAlignment, kFileAlign);
    store_le<uint32_t>(opt + kOffSizeOfHeaders, size_of_headers);
    store_le<uint16_t>(opt + 68, 10);  // Subsystem: EFI application
    if (!certificates.empty())
        store_le<uint32_t>(opt + kOptMinPe32Plus - 4, static_cast<uint32_t>(kDataDirectories));

    uint32_t next_va = align_up(size_of_headers, kSectionAlign);
    uint8_t* table = opt + opt_size;
    for (size_t i = 0; i < sections.size(); ++i) {
        const auto& sc = sections[i];
        if (sc.name.size() > 8)
            return Error(ErrorKind::input,
                         "section name \"" + sc.name + "\" is longer than 8 bytes");
        if (sc.data.size() > 0x7FFFFFFF)
            return Error(ErrorKind::input, "section \"" + sc.name + "\" is too large");
        const auto vsize = static_cast<uint32_t>(sc.data.size());
        const uint32_t raw = align_up(vsize, kFileAlign);
        const uint32_t va = sc.virtual_address != 0 ? sc.virtual_address : next_va;
        const auto ptr = static_cast<uint32_t>(out.size());
        // table points into `out`, which is resized below; write the header first.
        uint8_t* s = table + i * kSectionHeaderSize;
        std::memcpy(s, sc.name.data(), sc.name.size());
        store_le<uint32_t>(s + 8, vsize);
        store_le<uint32_t>(s + 12, va);
        store_le<uint32_t>(s + 16, raw);
        store_le<uint32_t>(s + 20, raw != 0 ? ptr : 0);
        store_le<uint32_t>(s + 36, 0x40000040);  // INITIALIZED_DATA | MEM_READ
        next_va = align_up(va + std::max<uint32_t>(vsize, 1), kSectionAlign);
        const size_t table_pos = static_cast<size_t>(table - out.data());
        out.insert(out.end(), sc.data.begin(), sc.data.end());
        out.resize(ptr + raw, 0);
        table = out.data() + table_pos;
        opt = out.data() + kLfanew + kSignatureSize + kCoffHeaderSize;
    }
    store_le<uint32_t>(opt + kOffSizeOfImage, next_va);
    if (!certificates.empty()) {
        // "PE Format", The Attribute Certificate Table: quadword-aligned, after the sections.
        out.resize((out.size() + 7) / 8 * 8, 0);
        uint8_t* entry = out.data() + kLfanew + kSignatureSize + kCoffHeaderSize + kOptMinPe32Plus +
                         kCertificateTableIndex * kDataDirectorySize;
        store_le<uint32_t>(entry, static_cast<uint32_t>(out.size()));
        store_le<uint32_t>(entry + 4, static_cast<uint32_t>(certificates.size()));
        out.insert(out.end(), certificates.begin(), certificates.end());
    }
    return out;
}

}  // namespace activate::uki
