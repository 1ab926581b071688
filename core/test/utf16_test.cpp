// UTF-8 <-> UTF-16LE conversion edge cases.
#include <gtest/gtest.h>

#include <activate/utf16.hpp>

namespace activate {
namespace {

TEST(Utf16, ConvertsAllPlanes) {
    auto units = utf8_to_utf16("A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");  // A é € 😀
    ASSERT_TRUE(units.ok());
    EXPECT_EQ(*units, std::u16string(u"A\u00e9\u20ac\U0001F600"));
    EXPECT_EQ(units->size(), 5u);  // the emoji is a surrogate pair
    EXPECT_EQ(utf16_to_utf8(*units), "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
}

TEST(Utf16, RejectsMalformedUtf8) {
    for (const char* bad :
         {"\x80", "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x28\xa1", "\xff"}) {
        auto r = utf8_to_utf16(bad);
        EXPECT_FALSE(r.ok()) << "accepted " << bad;
        if (!r.ok()) {
            EXPECT_NE(r.error().message().find("invalid UTF-8 at byte"), std::string::npos);
        }
    }
}

TEST(Utf16, UnpairedSurrogatesShowAsReplacement) {
    std::u16string s;
    s += char16_t(0xD83D);  // high surrogate without its low half
    s += u'x';
    s += char16_t(0xDE00);  // low surrogate alone
    EXPECT_EQ(utf16_to_utf8(s), "\xef\xbf\xbdx\xef\xbf\xbd");
}

TEST(Utf16, LittleEndianBytes) {
    const std::u16string s = u"\u0102A";
    const std::string bytes = utf16_to_le_bytes(s);
    EXPECT_EQ(bytes, std::string("\x02\x01\x41\x00", 4));
    EXPECT_EQ(utf16_from_le_bytes(bytes), s);
    EXPECT_EQ(utf16_from_le_bytes(bytes + "\x07"), s);  // odd trailing byte ignored
}

}  // namespace
}  // namespace activate
