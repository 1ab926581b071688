// Zip64 extra field decoding and member name rules, tested directly (APPNOTE 4.5.3, 4.4.17).
#include "zip_format.hpp"

#include <gtest/gtest.h>

#include <string>

namespace activate::bundle::zip {
namespace {

std::span<const uint8_t> span_of(const std::string& s) {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

std::string zip64_block(std::initializer_list<uint64_t> values, uint16_t id = kZip64ExtraId) {
    std::string out;
    append_le16(out, id);
    append_le16(out, uint16_t(values.size() * 8));
    for (uint64_t v : values) append_le64(out, v);
    return out;
}

TEST(Zip64Extra, LocalHeaderCarriesBothSizes) {
    // An unrelated block first (Info-ZIP's "UT" timestamp), which must be skipped.
    std::string extra;
    append_le16(extra, 0x5455);
    append_le16(extra, 5);
    extra += std::string(5, '\x01');
    extra += zip64_block({0x100000005ull, 0x100000003ull});
    auto r = parse_extra(span_of(extra), Zip64Want{}, true);
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_TRUE(r->present);
    EXPECT_EQ(r->size, 0x100000005ull);
    EXPECT_EQ(r->compressed_size, 0x100000003ull);
    EXPECT_FALSE(r->offset);
}

TEST(Zip64Extra, CentralDirectoryHoldsOnlySaturatedFieldsInOrder) {
    // Only the compressed size and the offset are saturated: the block holds those two, in the
    // APPNOTE 4.5.3 order, and the first value must not be taken for the uncompressed size.
    const std::string extra = zip64_block({0x123456789ull, 0x987654321ull});
    auto r = parse_extra(span_of(extra), Zip64Want{.compressed_size = true, .offset = true}, false);
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_FALSE(r->size);
    EXPECT_EQ(r->compressed_size, 0x123456789ull);
    EXPECT_EQ(r->offset, 0x987654321ull);
}

TEST(Zip64Extra, TooShortForWantedFieldsIsAnError) {
    const std::string extra = zip64_block({1});
    auto r = parse_extra(span_of(extra), Zip64Want{.size = true, .compressed_size = true}, false);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("compressed size"), std::string::npos)
        << r.error().message();
}

TEST(Zip64Extra, BlockOverrunningTheFieldIsAnError) {
    std::string extra;
    append_le16(extra, 0x7875);
    append_le16(extra, 40);  // claims more than there is
    extra += "abc";
    auto r = parse_extra(span_of(extra), Zip64Want{}, false);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("claims 40 bytes"), std::string::npos)
        << r.error().message();
    // A dangling partial block header too.
    auto r2 = parse_extra(span_of(std::string("\x01\x00\x08", 3)), Zip64Want{}, false);
    EXPECT_FALSE(r2.ok());
}

TEST(Zip64Extra, TwoZip64BlocksAreAnError) {
    const std::string extra = zip64_block({1, 2}) + zip64_block({3, 4});
    EXPECT_FALSE(parse_extra(span_of(extra), Zip64Want{}, true).ok());
}

TEST(Zip64Extra, AbsentMeansNotPresent) {
    auto r = parse_extra(span_of(""), Zip64Want{.size = true}, true);
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->present);
    EXPECT_FALSE(r->size);
}

TEST(MemberName, AcceptsRelativePathsAndDirectories) {
    for (const char* ok : {"system.img", "EFI/Linux/boot.efi", "dir/", "a/b/c", "..a", "a..b"}) {
        EXPECT_TRUE(check_name(ok).ok()) << ok;
    }
}

TEST(MemberName, RejectsEscapesAndOddForms) {
    for (const char* bad : {"", "/etc/passwd", "../x", "a/../../x", "a/..", "..", "./a", "a//b",
                            "a\\b", "C:evil", "a/./b"}) {
        auto st = check_name(bad);
        EXPECT_FALSE(st.ok()) << bad;
        if (!st.ok()) {
            EXPECT_EQ(st.error().kind(), ErrorKind::input);
        }
    }
    EXPECT_FALSE(check_name(std::string("a\0b", 3)).ok());
}

TEST(MemberName, DuplicateKeyFoldsTrailingSlash) {
    EXPECT_EQ(duplicate_key("a/"), duplicate_key("a"));
    EXPECT_NE(duplicate_key("a/b"), duplicate_key("a"));
}

TEST(MemberName, PrintableEscapes) {
    EXPECT_EQ(printable(std::string("a\nb\"", 4)), "a\\x0ab\\x22");
}

}  // namespace
}  // namespace activate::bundle::zip
