// UKI section selection and command-line handling (UAPI UKI specification).
#include <gtest/gtest.h>

#include <payload_uki/uki.hpp>

#include "test_support.hpp"

namespace activate::payload_uki {
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

TEST(Cmdline, StripsTrailingNulsAndWhitespaceAndSubstitutes) {
    auto c = finish_cmdline(
        std::string("root=PARTLABEL=METROPOLIS-SYSTEM-X  rw x=METROPOLIS-SYSTEM-X\n \0\0\t", 66),
        "METROPOLIS-SYSTEM-X", "METROPOLIS-SYSTEM-B", "f");
    ASSERT_TRUE(c.ok()) << c.error().message();
    EXPECT_EQ(*c, "root=PARTLABEL=METROPOLIS-SYSTEM-B  rw x=METROPOLIS-SYSTEM-B");
    auto plain = finish_cmdline("  keep leading ", "", "ignored", "f");
    ASSERT_TRUE(plain.ok());
    EXPECT_EQ(*plain, "  keep leading");
    auto empty = finish_cmdline(std::string("\0\0", 2), "X", "Y", "f");
    ASSERT_TRUE(empty.ok());
    EXPECT_EQ(*empty, "");
}

TEST(Cmdline, InteriorNulIsAnError) {
    auto c = finish_cmdline(std::string("a\0b", 3), "", "", "/esp/x.efi");
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.error().message().find("offset 1"), std::string::npos);
    EXPECT_NE(c.error().message().find("/esp/x.efi"), std::string::npos);
}

TEST(Cmdline, ReplacementMayContainThePlaceholder) {
    auto c = finish_cmdline("XX", "X", "XX", "f");
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(*c, "XXXX");
}

TEST(ExpandSlot, ReplacesEveryToken) {
    EXPECT_EQ(expand_slot("EFI/m/boot-{slot}.efi", "b"), "EFI/m/boot-b.efi");
    EXPECT_EQ(expand_slot("{slot}{slot}", "A"), "AA");
    EXPECT_EQ(expand_slot("none", "A"), "none");
}

}  // namespace
}  // namespace activate::payload_uki
