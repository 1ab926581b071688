// escape_bytes(): the one rule by which messages quote untrusted bytes.
#include <gtest/gtest.h>

#include <activate/escape.hpp>
#include <string>

namespace activate {
namespace {

TEST(EscapeBytes, PrintableAsciiStaysAndEverythingElseIsHex) {
    EXPECT_EQ(escape_bytes("boot-b.efi ok~"), "boot-b.efi ok~");
    EXPECT_EQ(escape_bytes(std::string("a\nb\x1b[2J\0c", 9)), "a\\x0ab\\x1b[2J\\x00c");
    // The quote and the backslash would end or fake a quoted value.
    EXPECT_EQ(escape_bytes("say \"hi\"\\"), "say \\x22hi\\x22\\x5c");
    EXPECT_EQ(escape_bytes("k\xc3\xa9\x7f\xff"), "k\\xc3\\xa9\\x7f\\xff");
    EXPECT_EQ(escape_bytes(""), "");
}

TEST(EscapeBytes, ALimitShowsThatManyBytesThenDots) {
    EXPECT_EQ(escape_bytes("abcdef", 3), "abc...");
    EXPECT_EQ(escape_bytes("abc", 3), "abc");
    EXPECT_EQ(escape_bytes("a\nbc", 2), "a\\x0a...");
}

TEST(FirstControlByte, FindsBytesBelowSpaceAndDelOnly) {
    EXPECT_EQ(first_control_byte("kexec soft-reboot \xc3\xa9"), std::nullopt);
    EXPECT_EQ(first_control_byte("a\tb\n"), '\t');
    EXPECT_EQ(first_control_byte("x\x7f"), '\x7f');
    EXPECT_EQ(first_control_byte(std::string("\0", 1)), '\0');
}

}  // namespace
}  // namespace activate
