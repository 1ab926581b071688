// PE/COFF image reader (and a minimal writer for tests and fuzz seeds), after Microsoft's "PE
// Format" specification: DOS header, PE signature, COFF file header, optional header (PE32+ and
// PE32) and the section table. Every offset and size is checked against the file size with
// overflow-safe arithmetic before it is used; section contents are not read here.
#pragma once

#include <activate/result.hpp>
#include <cstdint>
#include <optional>
#include <payload_uki/random_reader.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace activate::uki {

inline constexpr uint16_t kPeMagicPe32 = 0x10b;
inline constexpr uint16_t kPeMagicPe32Plus = 0x20b;
inline constexpr uint16_t kMachineAmd64 = 0x8664;
inline constexpr uint16_t kMachineArm64 = 0xaa64;
// "PE Format", COFF File Header: "the Windows loader limits the number of sections to 96".
inline constexpr uint16_t kPeMaxSections = 96;

struct PeSection {
    std::string name;  // the 8-byte Name field up to its first NUL
    uint32_t virtual_address = 0;
    uint32_t virtual_size = 0;
    uint32_t size_of_raw_data = 0;
    uint32_t pointer_to_raw_data = 0;
    uint32_t characteristics = 0;

    // The bytes that are the section's content in the file: VirtualSize capped by
    // SizeOfRawData (the rest of the raw data is file-alignment padding; a VirtualSize beyond
    // the raw data is zero-fill in memory, which is not content we extract).
    uint64_t file_offset() const { return pointer_to_raw_data; }
    uint64_t file_length() const {
        return virtual_size < size_of_raw_data ? virtual_size : size_of_raw_data;
    }
};

// "PE Format", Optional Header Data Directories: entry 4, the Attribute Certificate Table. Unlike
// the other directories its address is a file offset, not an RVA; a non-empty one holds the
// Authenticode signatures Secure Boot checks.
struct PeCertificateTable {
    uint32_t file_offset = 0;
    uint32_t size = 0;
};

struct PeImage {
    uint16_t machine = 0;
    uint16_t magic = 0;                 // kPeMagicPe32Plus or kPeMagicPe32
    uint32_t pe_header_offset = 0;      // e_lfanew
    uint64_t section_table_offset = 0;  // first section header in the file
    uint32_t section_alignment = 0;
    uint32_t file_alignment = 0;
    uint32_t size_of_image = 0;
    uint32_t size_of_headers = 0;
    std::vector<PeSection> sections;  // in section-table order
    // Zero when the optional header has fewer than five data directories.
    PeCertificateTable certificate_table;

    // True when the certificate table is non-empty: the image carries an Authenticode signature
    // over (nearly) all its bytes, so changing any section breaks it. Whether the signature is
    // valid is not checked here.
    bool has_signature() const { return certificate_table.size != 0; }
    // The first section of that name, if any.
    const PeSection* find(std::string_view name) const;
    // How many sections carry that name.
    size_t count(std::string_view name) const;
};

// Parses the headers and section table. Any section whose file range (offset + file_length())
// leaves the file is an error: that is how a truncated image shows. `file` names the image in
// messages (e.g. "/esp/EFI/metropolis/boot-b.efi").
Result<PeImage> parse_pe(const RandomReader& file);

// Fails unless the named sections' file ranges are pairwise disjoint (sections of length 0 are
// ignored), naming the two that overlap.
Status check_disjoint(const PeImage& image, const std::vector<std::string>& names,
                      const std::string& file);

// What encode_pe() lays out: one section with its content. virtual_address 0 places it after
// the previous one at the section alignment.
struct PeSectionContent {
    std::string name;
    std::string data;
    uint32_t virtual_address = 0;
};

// A minimal PE32+ image (no code) holding the given sections, with FileAlignment 0x200 and
// SectionAlignment 0x1000. Names longer than 8 bytes are an error. Without `certificates` the
// optional header has no data directories; with them it has the usual 16, and `certificates`
// (any bytes: the format is not checked) is appended at the next 8-byte boundary after the
// sections and named by data directory 4, as a signing tool would place an Authenticode
// signature.
Result<std::vector<uint8_t>> encode_pe(uint16_t machine,
                                       const std::vector<PeSectionContent>& sections,
                                       std::string_view certificates = {});

}  // namespace activate::uki
