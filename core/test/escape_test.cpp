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

}  // namespace
}  // namespace activate
