// EFI_LOAD_OPTION decode/encode against the recorded OVMF Boot#### variables.
#include <gtest/gtest.h>

#include <activation_efi/load_option.hpp>

#include "testdata.hpp"

namespace activate::efi {
namespace {

TEST(LoadOption, RecordedEntriesRoundTripByteExactly) {
    const auto entries = test::recorded_boot_entries();
    ASSERT_EQ(entries.size(), 8u);
    for (const auto& e : entries) {
        auto option = decode_load_option(e.data);
        ASSERT_TRUE(option.ok()) << e.file << ": " << option.error().message();
        auto bytes = encode_load_option(*option);
        ASSERT_TRUE(bytes.ok());
        EXPECT_EQ(*bytes, e.data) << e.name;
    }
}

TEST(LoadOption, DescriptionsAndActiveFlagMatchEfibootmgr) {
    const auto lines = test::recorded_efibootmgr_lines();
    ASSERT_EQ(lines.size(), 8u);
    for (const auto& e : test::recorded_boot_entries()) {
        auto option = decode_load_option(e.data);
        ASSERT_TRUE(option.ok()) << e.name;
        ASSERT_TRUE(lines.count(e.name)) << e.name;
        EXPECT_EQ(option->description_utf8(), lines.at(e.name).description) << e.name;
        EXPECT_EQ(option->active(), lines.at(e.name).active) << e.name;
    }
}

TEST(LoadOption, HiddenAppEntryAndOptionalData) {
    // Boot0000 (UiApp) is a hidden application entry; the PCI/network entries carry 16 bytes of
    // optional data (efibootmgr shows them as "N.....YM....R,Y.").
    for (const auto& e : test::recorded_boot_entries()) {
        auto option = decode_load_option(e.data);
        ASSERT_TRUE(option.ok());
        if (e.name == "Boot0000") {
            EXPECT_TRUE(option->attributes & kLoadOptionHidden);
            EXPECT_EQ(option->attributes & kLoadOptionCategoryMask, kLoadOptionCategoryApp);
            EXPECT_TRUE(option->optional_data.empty());
        }
        if (e.name == "Boot0001") {
            EXPECT_EQ(option->attributes & kLoadOptionCategoryMask, kLoadOptionCategoryBoot);
            EXPECT_EQ(test::printable(option->optional_data), "N.....YM....R,Y.");
        }
    }
}

TEST(LoadOption, EveryTruncationOfRecordedEntriesFailsOrShortensOptionalData) {
    for (const auto& e : test::recorded_boot_entries()) {
        auto full = decode_load_option(e.data);
        ASSERT_TRUE(full.ok());
        const size_t optional_at = e.data.size() - full->optional_data.size();
        for (size_t n = 0; n < e.data.size(); ++n) {
            auto cut = decode_load_option(std::string_view(e.data).substr(0, n));
            if (n < optional_at) {
                EXPECT_FALSE(cut.ok()) << e.name << " cut to " << n << " bytes was accepted";
                if (!cut.ok()) {
                    EXPECT_EQ(cut.error().kind(), ErrorKind::input);
                }
            } else {
                ASSERT_TRUE(cut.ok()) << e.name << " cut to " << n;
                EXPECT_EQ(cut->file_path, full->file_path);
                EXPECT_EQ(cut->optional_data, full->optional_data.substr(0, n - optional_at));
            }
        }
    }
}

TEST(LoadOption, MalformedOptionsNameTheProblem) {
    auto header = decode_load_option(std::string("\x01\x00\x00\x00\x04", 5));
    ASSERT_FALSE(header.ok());
    EXPECT_NE(header.error().message().find("6-byte header"), std::string::npos);

    auto no_nul =
        decode_load_option(std::string("\x01\x00\x00\x00\x04\x00"
                                       "A\0B\0",
                                       10));
    ASSERT_FALSE(no_nul.ok());
    EXPECT_NE(no_nul.error().message().find("NUL"), std::string::npos);

    auto too_long =
        decode_load_option(std::string("\x01\x00\x00\x00\x08\x00"
                                       "A\0\0\0"
                                       "\x7f\xff\x04\x00",
                                       14));
    ASSERT_FALSE(too_long.ok());
    EXPECT_NE(too_long.error().message().find("FilePathListLength 8"), std::string::npos)
        << too_long.error().message();

    auto bad_path =
        decode_load_option(std::string("\x01\x00\x00\x00\x04\x00"
                                       "A\0\0\0"
                                       "\x04\x04\x02\x00",
                                       14));
    ASSERT_FALSE(bad_path.ok());
    EXPECT_NE(bad_path.error().message().find("device path at byte 10"), std::string::npos)
        << bad_path.error().message();
}

TEST(LoadOption, EncodeDecodeKeepsNonAsciiAndInvalidUtf16) {
    LoadOption option;
    option.attributes = kLoadOptionActive | kLoadOptionHidden;
    // "Slot ü 😀" plus a lone low surrogate, which must survive as a code unit.
    option.description = u"Slot \u00fc \U0001F600";
    option.description += static_cast<char16_t>(0xDC00);
    option.file_path.nodes = {DevicePathNode{0x42, 0x01, "xyz"}, end_entire_node()};
    option.optional_data = std::string("\0\x01\x02", 3);
    auto bytes = encode_load_option(option);
    ASSERT_TRUE(bytes.ok());
    auto back = decode_load_option(*bytes);
    ASSERT_TRUE(back.ok()) << back.error().message();
    EXPECT_EQ(*back, option);
    EXPECT_EQ(back->description_utf8(), "Slot \xc3\xbc \xf0\x9f\x98\x80\xef\xbf\xbd");
}

}  // namespace
}  // namespace activate::efi
