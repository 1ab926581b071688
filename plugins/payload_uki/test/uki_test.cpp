// UKI section selection and command-line handling (UAPI UKI specification).
#include <gtest/gtest.h>

#include <payload_uki/uki.hpp>

#include "test_support.hpp"

namespace activate::uki {
namespace {

using namespace testing;

Result<UkiSections> locate(const std::vector<PeSectionContent>& sections) {
    auto bytes = encode_pe(kMachineAmd64, sections);
    if (!bytes.ok()) return bytes.error();
    auto img = parse_pe(SpanReader(*bytes, "uki.efi"));
    if (!img.ok()) return img.error();
    return locate_uki_sections(*img, "uki.efi");
}

TEST(UkiSections, FindsAllFour) {
    auto u = locate({{".osrel", "x"},
                     {".ucode", "U"},
                     {".linux", "KERNEL"},
                     {".initrd", "I"},
                     {".cmdline", "c"}});
    ASSERT_TRUE(u.ok()) << u.error().message();
    EXPECT_EQ(u->kernel.name, ".linux");
    EXPECT_EQ(u->kernel.file_length(), 6u);
    ASSERT_TRUE(u->initrd && u->ucode && u->cmdline);
    EXPECT_EQ(u->ucode->file_length(), 1u);
}

TEST(UkiSections, OptionalOnesMayBeAbsent) {
    auto u = locate({{".linux", "KERNEL"}});
    ASSERT_TRUE(u.ok());
    EXPECT_FALSE(u->initrd || u->ucode || u->cmdline);
}

TEST(UkiSections, RequiresANonEmptyLinuxSection) {
    auto u = locate({{".osrel", "x"}, {".initrd", "I"}});
    ASSERT_FALSE(u.ok());
    EXPECT_NE(u.error().message().find("no \".linux\" section"), std::string::npos);
    EXPECT_NE(u.error().message().find("uki.efi"), std::string::npos);
    u = locate({{".linux", ""}});
    ASSERT_FALSE(u.ok());
    EXPECT_NE(u.error().message().find("empty"), std::string::npos);
}

TEST(UkiSections, RejectsDuplicates) {
    auto u = locate({{".linux", "A"}, {".initrd", "I"}, {".linux", "B"}});
    ASSERT_FALSE(u.ok());
    EXPECT_NE(u.error().message().find("2 \".linux\" sections"), std::string::npos);
}

TEST(UkiSections, RejectsOversizedCmdline) {
    auto u = locate({{".linux", "A"}, {".cmdline", std::string(kMaxCmdlineSection + 1, 'x')}});
    ASSERT_FALSE(u.ok());
    EXPECT_NE(u.error().message().find(".cmdline"), std::string::npos);
}

TEST(Cmdline, StripsTrailingNulsAndWhitespace) {
    auto c = finish_cmdline(
        std::string("root=PARTLABEL=METROPOLIS-SYSTEM-B  rw x=METROPOLIS-SYSTEM-X\n \0\0\t", 66),
        "f");
    ASSERT_TRUE(c.ok()) << c.error().message();
    EXPECT_EQ(*c, "root=PARTLABEL=METROPOLIS-SYSTEM-B  rw x=METROPOLIS-SYSTEM-X");
    auto plain = finish_cmdline("  keep leading ", "f");
    ASSERT_TRUE(plain.ok());
    EXPECT_EQ(*plain, "  keep leading");
    auto empty = finish_cmdline(std::string("\0\0", 2), "f");
    ASSERT_TRUE(empty.ok());
    EXPECT_EQ(*empty, "");
}

TEST(Cmdline, InteriorNulIsAnError) {
    auto c = finish_cmdline(std::string("a\0b", 3), "/esp/x.efi");
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.error().message().find("NUL byte at offset 1"), std::string::npos);
    EXPECT_NE(c.error().message().find("/esp/x.efi"), std::string::npos);
}

// systemd-stub boots control characters as spaces, kexec hands them over as they are: the two
// ways of booting a slot must see the same line.
TEST(Cmdline, InteriorControlCharactersAreErrors) {
    for (char c : {'\n', '\t', '\x1b', '\x7f', '\x01'}) {
        SCOPED_TRACE(static_cast<int>(c));
        auto r = finish_cmdline(std::string("root=x") + c + "quiet\n", "/esp/x.efi");
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.error().kind(), ErrorKind::input);
        EXPECT_NE(r.error().message().find("control character"), std::string::npos)
            << r.error().message();
        EXPECT_NE(r.error().message().find("at offset 6"), std::string::npos)
            << r.error().message();
    }
    // Bytes above ASCII (UTF-8) are not control characters.
    auto utf8 = finish_cmdline("label=\xc3\xa9t\xc3\xa9", "f");
    EXPECT_TRUE(utf8.ok());
}

TEST(Cmdline, ReplaceAll) {
    EXPECT_EQ(replace_all("root=X x=X", "X", "B"), "root=B x=B");
    EXPECT_EQ(replace_all("XX", "X", "XX"), "XXXX");
    EXPECT_EQ(replace_all("keep", "", "B"), "keep");
    EXPECT_EQ(replace_all("", "X", "B"), "");
}

TEST(ExpandSlot, ReplacesEveryToken) {
    EXPECT_EQ(expand_slot("EFI/m/boot-{slot}.efi", "b"), "EFI/m/boot-b.efi");
    EXPECT_EQ(expand_slot("{slot}{slot}", "A"), "AA");
    EXPECT_EQ(expand_slot("none", "A"), "none");
}

}  // namespace
}  // namespace activate::uki
