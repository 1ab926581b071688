// PE reader: checked against objdump on UKIs objcopy built from the systemd stub, round-tripped
// through the encoder, and fed malformed images (each must fail with a message saying what).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <activate/byte_order.hpp>
#include <cstdio>
#include <cstring>
#include <map>
#include <payload_uki/pe.hpp>
#include <sstream>

#include "test_support.hpp"

namespace activate::uki {
namespace {

using namespace testing;

Result<PeImage> parse_bytes(const std::vector<uint8_t>& bytes) {
    return parse_pe(SpanReader(bytes, "test.efi"));
}

Result<PeImage> parse_path(const fs::path& path) {
    std::string data = read_file(path);
    std::vector<uint8_t> bytes(data.begin(), data.end());
    return parse_pe(SpanReader(bytes, path.string()));
}

// objdump -h rows: name -> (size, file offset).
std::map<std::string, std::pair<uint64_t, uint64_t>> objdump_sections(const fs::path& file) {
    std::string out;
    EXPECT_TRUE(run("objdump -h " + quote(file.string()), &out));
    std::map<std::string, std::pair<uint64_t, uint64_t>> m;
    std::istringstream in(out);
    // Rows: "Idx Name Size VMA LMA File-off Algn".
    for (std::string l; std::getline(in, l);) {
        std::istringstream row(l);
        std::string idx, name, size, vma, lma, off;
        if (!(row >> idx >> name >> size >> vma >> lma >> off)) continue;
        if (idx.find_first_not_of("0123456789") != std::string::npos) continue;
        m[name] = {std::stoull(size, nullptr, 16), std::stoull(off, nullptr, 16)};
    }
    return m;
}

std::string content(const std::vector<uint8_t>& bytes, const PeSection& s) {
    return std::string(bytes.begin() + static_cast<long>(s.file_offset()),
                       bytes.begin() + static_cast<long>(s.file_offset() + s.file_length()));
}

// Field offsets within a section header ("PE Format", Section Table).
constexpr size_t kVirtualSize = 8, kRawSize = 16, kRawPointer = 20;

void patch_section(std::vector<uint8_t>& bytes, const PeImage& img, size_t index, size_t field,
                   uint32_t value) {
    store_le<uint32_t>(&bytes[img.section_table_offset + index * 40 + field], value);
}

std::vector<uint8_t> sample() {
    auto bytes = encode_pe(kMachineAmd64, {{".osrel", "ID=test\n"},
                                           {".linux", random_bytes(3000, 1)},
                                           {".initrd", random_bytes(1000, 2)}});
    EXPECT_TRUE(bytes.ok());
    return bytes.ok() ? *bytes : std::vector<uint8_t>{};
}

TEST(PeParse, AgreesWithObjdumpOnAStubBuiltUki) {
    TempDir dir;
    const fs::path uki = dir.path() / "uki.efi";
    const std::string kernel = random_bytes(150000, 7);
    const std::string initrd = random_bytes(7001, 8);
    const std::string cmdline = "root=PARTLABEL=METROPOLIS-SYSTEM-X quiet";
    ASSERT_TRUE(make_uki(uki, {{".osrel", "ID=metropolis\n"},
                               {".cmdline", cmdline},
                               {".linux", kernel},
                               {".initrd", initrd}}));
    auto img = parse_path(uki);
    ASSERT_TRUE(img.ok()) << img.error().message();
    EXPECT_EQ(img->magic, kPeMagicPe32Plus);
    EXPECT_EQ(img->machine, kMachineAmd64);
    auto reference = objdump_sections(uki);
    ASSERT_EQ(img->sections.size(), reference.size());
    for (const auto& s : img->sections) {
        SCOPED_TRACE(s.name);
        ASSERT_TRUE(reference.count(s.name));
        EXPECT_EQ(s.file_length(), reference[s.name].first);
        EXPECT_EQ(s.file_offset(), reference[s.name].second);
    }
    std::string data = read_file(uki);
    std::vector<uint8_t> bytes(data.begin(), data.end());
    EXPECT_EQ(content(bytes, *img->find(".linux")), kernel);
    EXPECT_EQ(content(bytes, *img->find(".initrd")), initrd);
    EXPECT_EQ(content(bytes, *img->find(".cmdline")), cmdline);
    EXPECT_TRUE(
        check_disjoint(*img, {".linux", ".initrd", ".cmdline", ".osrel", ".text"}, "uki").ok());
}

TEST(PeParse, EncoderRoundTrips) {
    std::vector<PeSectionContent> in = {{".osrel", "ID=x\n"},
                                        {".linux", random_bytes(5000, 3)},
                                        {".empty", ""},
                                        {".initrd", random_bytes(513, 4)}};
    auto bytes = encode_pe(kMachineArm64, in);
    ASSERT_TRUE(bytes.ok());
    auto img = parse_bytes(*bytes);
    ASSERT_TRUE(img.ok()) << img.error().message();
    EXPECT_EQ(img->machine, kMachineArm64);
    ASSERT_EQ(img->sections.size(), in.size());
    for (size_t i = 0; i < in.size(); ++i) {
        EXPECT_EQ(img->sections[i].name, in[i].name);
        EXPECT_EQ(content(*bytes, img->sections[i]), in[i].data);
        EXPECT_EQ(img->sections[i].virtual_address % 0x1000, 0u);
    }
    EXPECT_FALSE(encode_pe(kMachineAmd64, {{".toolongname", "x"}}).ok());
}

// "PE Format", Optional Header Data Directories, entry 4: the Attribute Certificate Table that
// holds Authenticode signatures; its address is a file offset.
TEST(PeParse, CertificateTableRoundTrips) {
    const std::string certs = random_bytes(1234, 5);
    auto bytes = encode_pe(kMachineAmd64, {{".cmdline", "root=x"}, {".linux", "K"}}, certs);
    ASSERT_TRUE(bytes.ok());
    auto img = parse_bytes(*bytes);
    ASSERT_TRUE(img.ok()) << img.error().message();
    EXPECT_TRUE(img->has_signature());
    EXPECT_EQ(img->certificate_table.size, certs.size());
    EXPECT_EQ(img->certificate_table.file_offset % 8, 0u);
    EXPECT_EQ(img->certificate_table.file_offset + certs.size(), bytes->size());
    EXPECT_EQ(std::string(bytes->begin() + img->certificate_table.file_offset, bytes->end()),
              certs);
    ASSERT_EQ(img->sections.size(), 2u);
    EXPECT_EQ(content(*bytes, img->sections[0]), "root=x");

    // Without certificates: no data directories at all, so nothing is signed.
    auto plain = parse_bytes(sample());
    ASSERT_TRUE(plain.ok());
    EXPECT_FALSE(plain->has_signature());
}

TEST(PeParse, CertificateTableAgreesWithObjdump) {
    // The systemd stub has 16 data directories, the Security Directory (entry 4) empty; objdump
    // reads the same header fields.
    TempDir dir;
    const fs::path uki = dir.path() / "uki.efi";
    ASSERT_TRUE(make_uki(uki, {{".cmdline", "root=x"}, {".linux", random_bytes(1000, 9)}}));
    auto img = parse_path(uki);
    ASSERT_TRUE(img.ok()) << img.error().message();
    EXPECT_FALSE(img->has_signature());
    std::string out;
    ASSERT_TRUE(run("objdump -p " + quote(uki.string()), &out));
    EXPECT_NE(out.find("Entry 4 0000000000000000 00000000 Security Directory"), std::string::npos)
        << out;

    // A signing tool fills in entry 4 and appends the table: set it by hand the same way.
    std::string data = read_file(uki);
    std::vector<uint8_t> bytes(data.begin(), data.end());
    const size_t entry4 = img->pe_header_offset + 24 + 112 + 4 * 8;
    store_le<uint32_t>(&bytes[entry4], static_cast<uint32_t>(bytes.size()));
    store_le<uint32_t>(&bytes[entry4 + 4], 16);
    bytes.resize(bytes.size() + 16, 0x30);
    auto signed_img = parse_bytes(bytes);
    ASSERT_TRUE(signed_img.ok()) << signed_img.error().message();
    EXPECT_TRUE(signed_img->has_signature());
    EXPECT_EQ(signed_img->certificate_table.size, 16u);
    write_file(uki, std::string(bytes.begin(), bytes.end()));
    ASSERT_TRUE(run("objdump -p " + quote(uki.string()), &out));
    EXPECT_NE(out.find("Entry 4 " +
                       [&] {
                           char hex[32];
                           std::snprintf(hex, sizeof hex, "%016zx 00000010", data.size());
                           return std::string(hex);
                       }()),
              std::string::npos)
        << out;
}

TEST(PeParse, CertificateTableNeedsFiveDirectories) {
    auto bytes = encode_pe(kMachineAmd64, {{".linux", "K"}}, "CERT");
    ASSERT_TRUE(bytes.ok());
    auto img = parse_bytes(*bytes);
    ASSERT_TRUE(img.ok());
    ASSERT_TRUE(img->has_signature());
    // NumberOfRvaAndSizes 4: entry 4 is not there, whatever the bytes after the fourth say.
    store_le<uint32_t>(&(*bytes)[img->pe_header_offset + 24 + 108], 4);
    auto four = parse_bytes(*bytes);
    ASSERT_TRUE(four.ok()) << four.error().message();
    EXPECT_FALSE(four->has_signature());
}

TEST(PeParse, AcceptsPe32) {
    auto bytes = sample();
    auto img = parse_bytes(bytes);
    ASSERT_TRUE(img.ok());
    store_le<uint16_t>(&bytes[img->pe_header_offset + 24], kPeMagicPe32);
    auto pe32 = parse_bytes(bytes);
    ASSERT_TRUE(pe32.ok()) << pe32.error().message();
    EXPECT_EQ(pe32->magic, kPeMagicPe32);
    EXPECT_EQ(pe32->sections.size(), 3u);
}

TEST(PeParse, SectionLengthIsVirtualSizeCappedByRawSize) {
    auto bytes = sample();
    auto img = parse_bytes(bytes);
    ASSERT_TRUE(img.ok());
    // .linux: 3000 bytes of content in 3072 raw bytes.
    EXPECT_EQ(img->sections[1].size_of_raw_data, 3072u);
    EXPECT_EQ(img->sections[1].file_length(), 3000u);
    patch_section(bytes, *img, 1, kVirtualSize, 1u << 20);  // zero-fill in memory, not in file
    auto capped = parse_bytes(bytes);
    ASSERT_TRUE(capped.ok());
    EXPECT_EQ(capped->sections[1].file_length(), 3072u);
}

void expect_error(const Result<PeImage>& r, const std::string& needle) {
    ASSERT_FALSE(r.ok()) << "expected an error containing \"" << needle << "\"";
    EXPECT_EQ(r.error().kind(), ErrorKind::input);
    EXPECT_NE(r.error().message().find(needle), std::string::npos) << r.error().message();
    EXPECT_NE(r.error().message().find("test.efi"), std::string::npos) << r.error().message();
}

TEST(PeMalformed, BadMagics) {
    auto bytes = sample();
    bytes[0] = 'Z';
    expect_error(parse_bytes(bytes), "MZ");
    bytes = sample();
    bytes[0x41] = 'X';  // "PE\0\0" at e_lfanew 0x40
    expect_error(parse_bytes(bytes), "PE\\0\\0");
    bytes = sample();
    store_le<uint16_t>(&bytes[0x40 + 24], 0x107);
    expect_error(parse_bytes(bytes), "neither PE32+");
}

TEST(PeMalformed, HeadersOutOfRange) {
    auto bytes = sample();
    store_le<uint32_t>(&bytes[0x3C], 0xFFFFFFF0u);  // e_lfanew + 24 overflows 32 bits
    expect_error(parse_bytes(bytes), "e_lfanew");
    bytes = sample();
    store_le<uint32_t>(&bytes[0x3C], static_cast<uint32_t>(bytes.size() - 10));
    expect_error(parse_bytes(bytes), "e_lfanew");
    bytes = sample();
    store_le<uint16_t>(&bytes[0x40 + 4 + 2], 90);  // NumberOfSections: 3600 bytes of table
    bytes.resize(2048);
    expect_error(parse_bytes(bytes), "section table");
    store_le<uint16_t>(&bytes[0x40 + 4 + 2], 97);
    expect_error(parse_bytes(bytes), "limit of 96");
    bytes = sample();
    bytes = sample();
    store_le<uint16_t>(&bytes[0x40 + 4 + 16], 0xFFFF);  // SizeOfOptionalHeader
    expect_error(parse_bytes(bytes), "optional header");
    bytes = sample();
    store_le<uint16_t>(&bytes[0x40 + 4 + 16], 20);
    expect_error(parse_bytes(bytes), "too small");
    std::vector<uint8_t> tiny(bytes.begin(), bytes.begin() + 10);
    expect_error(parse_bytes(tiny), "shorter than a DOS header");
}

TEST(PeMalformed, SectionOutOfRange) {
    auto bytes = sample();
    auto img = parse_bytes(bytes);
    ASSERT_TRUE(img.ok());
    patch_section(bytes, *img, 2, kRawPointer, 0xFFFFFF00u);
    expect_error(parse_bytes(bytes), "section 3 \".initrd\"");
    bytes = sample();
    patch_section(bytes, *img, 1, kRawSize, 0x7FFFFFFFu);
    patch_section(bytes, *img, 1, kVirtualSize, 0x7FFFFFFFu);
    expect_error(parse_bytes(bytes), "extends past the end");
}

TEST(PeMalformed, TruncatedImage) {
    auto bytes = sample();
    auto img = parse_bytes(bytes);
    ASSERT_TRUE(img.ok());
    // Cut inside .initrd, then inside .linux, then inside the section table.
    for (uint64_t cut : {img->sections[2].file_offset() + 10, img->sections[1].file_offset() + 1,
                         img->section_table_offset + 50}) {
        std::vector<uint8_t> t(bytes.begin(), bytes.begin() + static_cast<long>(cut));
        auto r = parse_bytes(t);
        ASSERT_FALSE(r.ok()) << "cut at " << cut;
        EXPECT_TRUE(r.error().message().find("truncated") != std::string::npos ||
                    r.error().message().find("past the end") != std::string::npos)
            << r.error().message();
    }
}

TEST(PeMalformed, OverlappingSectionsAreRejectedAmongThoseUsed) {
    auto bytes = sample();
    auto img = parse_bytes(bytes);
    ASSERT_TRUE(img.ok());
    // .initrd made to start inside .linux.
    patch_section(bytes, *img, 2, kRawPointer, img->sections[1].pointer_to_raw_data + 512);
    auto over = parse_bytes(bytes);
    ASSERT_TRUE(over.ok()) << "overlap is a property of the sections used, not of parsing";
    auto st = check_disjoint(*over, {".linux", ".initrd"}, "test.efi");
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message().find("\".linux\""), std::string::npos) << st.error().message();
    EXPECT_NE(st.error().message().find("overlap"), std::string::npos);
    // Not a concern when one of them is not used.
    EXPECT_TRUE(check_disjoint(*over, {".linux", ".osrel"}, "test.efi").ok());
}

}  // namespace
}  // namespace activate::uki
