// Boot#### / BootOrder / BootNext handling on a copy of the recorded OVMF variables.
#include <activation_efi/boot_entries.hpp>
#include <cstdio>
#include <cstdlib>

#include "efi_fixture.hpp"
#include "testdata.hpp"

namespace activate::efi::test {
namespace {

TEST(BootEntryName, WritesUpperCaseReadsEither) {
    EXPECT_EQ(boot_entry_name(0x000a), "Boot000A");
    EXPECT_EQ(boot_entry_name(0xBEEF), "BootBEEF");
    EXPECT_EQ(parse_boot_entry_name("Boot000a"), 10);
    EXPECT_EQ(parse_boot_entry_name("Boot000A"), 10);
    EXPECT_EQ(parse_boot_entry_name("BootFFFF"), 0xFFFF);
    EXPECT_FALSE(parse_boot_entry_name("BootOrder").has_value());
    EXPECT_FALSE(parse_boot_entry_name("Boot00001").has_value());
    EXPECT_FALSE(parse_boot_entry_name("Boot00g1").has_value());
    EXPECT_FALSE(parse_boot_entry_name("boot0001").has_value());
}

TEST(BootOrder, DecodesRecordedAndRejectsOddLength) {
    const std::string content =
        read_whole_file(ovmf_efivars_dir() + "/BootOrder-" + std::string(kGlobalVariableGuid));
    auto order = decode_boot_order(content.substr(4), "BootOrder-x");
    ASSERT_TRUE(order.ok());
    EXPECT_EQ(*order, (std::vector<uint16_t>{0, 1, 2, 3, 4, 5, 6, 7}));
    EXPECT_EQ(encode_boot_order(*order), content.substr(4));

    auto odd = decode_boot_order(std::string("\x01\x00\x02", 3), "/x/BootOrder-guid");
    ASSERT_FALSE(odd.ok());
    EXPECT_NE(odd.error().message().find("/x/BootOrder-guid"), std::string::npos);
    EXPECT_NE(odd.error().message().find("3 bytes"), std::string::npos);

    EXPECT_EQ(*decode_boot_index(std::string("\x03\x01", 2), "f"), 0x0103);
    EXPECT_FALSE(decode_boot_index(std::string("\x03", 1), "f").ok());
    EXPECT_FALSE(decode_boot_index(std::string("\x03\0\0\0", 4), "f").ok());
}

TEST(BootOrder, WithFirstKeepsEverythingElseInOrder) {
    using V = std::vector<uint16_t>;
    EXPECT_EQ(order_with_first({3, 1, 8, 2}, 8), (V{8, 3, 1, 2}));
    EXPECT_EQ(order_with_first({3, 1, 2}, 8), (V{8, 3, 1, 2}));
    EXPECT_EQ(order_with_first({}, 8), (V{8}));
    EXPECT_EQ(order_with_first({8, 1, 8}, 8), (V{8, 1}));
}

// The slot on trial goes right after the good one, never first (firmware that ignores BootNext
// for unlisted entries still reaches it; a cold boot does not start it).
TEST(BootOrder, WithAfterPlacesTheEntryRightAfterTheGoodOne) {
    using V = std::vector<uint16_t>;
    EXPECT_EQ(order_with_after({8, 0, 1}, 9, 8), (V{8, 9, 0, 1}));
    EXPECT_EQ(order_with_after({0, 8, 1}, 9, 8), (V{0, 8, 9, 1}));
    EXPECT_EQ(order_with_after({9, 8, 1}, 9, 8), (V{8, 9, 1}));  // before the good one: moved
    EXPECT_EQ(order_with_after({8, 1, 9}, 9, 8), (V{8, 9, 1}));
    EXPECT_EQ(order_with_after({8, 9, 1}, 9, 8), (V{8, 9, 1}));  // already there
    EXPECT_EQ(order_with_after({0, 1}, 9, 8), (V{0, 1, 8, 9}));  // good one not listed: both last
    EXPECT_EQ(order_with_after({}, 9, 8), (V{8, 9}));
    EXPECT_EQ(order_with_after({9}, 9, 8), (V{8, 9}));
    EXPECT_EQ(order_with_after({8, 9, 0x1234, 9}, 9, 8), (V{8, 9, 0x1234}));
}

TEST(SlotPath, FromUkiPath) {
    EXPECT_EQ(*efi_file_path("EFI/metropolis/boot-b.efi"), "\\EFI\\metropolis\\boot-b.efi");
    EXPECT_EQ(*efi_file_path("/EFI/BOOT/BOOTX64.EFI"), "\\EFI\\BOOT\\BOOTX64.EFI");
    EXPECT_FALSE(efi_file_path("").ok());
    EXPECT_FALSE(efi_file_path("EFI/").ok());
    EXPECT_FALSE(efi_file_path("EFI\\x.efi").ok());
}

class BootEntriesTest : public EfiVarsTest {};

TEST_F(BootEntriesTest, MatchesSlotByEspGuidAndCaseInsensitivePath) {
    const Slot b = slot('B');
    auto option = slot_load_option(b, "Slot B", kLoadOptionActive);
    ASSERT_TRUE(option.ok()) << option.error().message();
    EXPECT_TRUE(boots_slot(*option, b));
    EXPECT_FALSE(boots_slot(*option, slot('A')));

    // Firmware may rewrite the case, split the path over nodes and prepend the full hardware path.
    LoadOption rewritten = *option;
    rewritten.file_path.nodes = {
        DevicePathNode{kAcpiDevicePath, 1, std::string("\xd0\x41\x03\x0a\0\0\0\0", 8)},
        option->file_path.nodes[0], *file_path_node("\\efi\\METROPOLIS"),
        *file_path_node("\\Boot-B.EFI"), end_entire_node()};
    EXPECT_TRUE(boots_slot(rewritten, b));

    Slot other_esp = b;
    other_esp.esp.unique_guid[15] ^= 1;
    EXPECT_FALSE(boots_slot(*option, other_esp));

    Slot zero = b;
    zero.esp.unique_guid = {};
    EXPECT_FALSE(slot_load_option(zero, "x", 0).ok());
}

TEST_F(BootEntriesTest, ListsRecordedEntries) {
    auto list = entries_->list();
    ASSERT_TRUE(list.ok()) << list.error().message();
    ASSERT_EQ(list->size(), 8u);
    for (uint16_t i = 0; i < 8; ++i) EXPECT_EQ((*list)[i].index, i);
    EXPECT_EQ((*list)[7].option.description_utf8(), "EFI Internal Shell");

    auto current = entries_->boot_current();
    ASSERT_TRUE(current.ok());
    EXPECT_EQ(*current, std::optional<uint16_t>(1));
}

TEST_F(BootEntriesTest, CreatesSlotEntryAtLowestFreeIndexAndReadsItBack) {
    const auto before = snapshot();
    auto created = entries_->create(slot('B'), "Metropolis Slot B", kLoadOptionActive);
    ASSERT_TRUE(created.ok()) << created.error().message();
    EXPECT_EQ(created->index, 8);  // 0000-0007 exist
    ASSERT_TRUE(var_exists("Boot0008"));
    EXPECT_EQ(read_var_file("Boot0008").substr(0, 4), std::string("\x07\0\0\0", 4));

    auto found = entries_->find(slot('B'));
    ASSERT_TRUE(found.ok());
    ASSERT_TRUE(found->has_value());
    EXPECT_EQ((*found)->index, 8);
    EXPECT_EQ((*found)->option.description_utf8(), "Metropolis Slot B");
    EXPECT_EQ(to_text((*found)->option.file_path),
              std::string("HD(1,GPT,") + kEspGuidText +
                  ",0x800,0x100000)/File(\\EFI\\metropolis\\boot-b.efi)");
    // Only the new variable: BootOrder changes at mark-good, not here.
    auto after = snapshot();
    EXPECT_EQ(after.size(), before.size() + 1);
    for (const auto& [file, content] : before) EXPECT_EQ(after[file], content) << file;
}

TEST_F(BootEntriesTest, LowestFreeIndexSkipsIndexesStillInBootOrder) {
    std::filesystem::remove(var_file("Boot0002"));
    std::filesystem::remove(var_file("Boot0005"));
    // 0002 is gone but still listed in BootOrder; 0005 is gone from both.
    write_raw_boot_order({0, 1, 2, 3, 4, 6, 7});
    auto created = entries_->create(slot('A'), "A", kLoadOptionActive);
    ASSERT_TRUE(created.ok()) << created.error().message();
    EXPECT_EQ(created->index, 5);
    EXPECT_TRUE(var_exists("Boot0005"));
    EXPECT_EQ(raw_boot_order(), (std::vector<uint16_t>{0, 1, 2, 3, 4, 6, 7}));
}

TEST_F(BootEntriesTest, LowerCaseNamedEntriesCountAsTaken) {
    write_var_file("Boot0008", read_var_file("Boot0007"));
    std::filesystem::copy_file(var_file("Boot0007"),
                               efivars_ / ("Boot000a-" + std::string(kGlobalVariableGuid)));
    write_var_file("Boot0009", read_var_file("Boot0007"));
    auto created = entries_->create(slot('A'), "A", kLoadOptionActive);
    ASSERT_TRUE(created.ok());
    EXPECT_EQ(created->index, 0x0B);
    EXPECT_TRUE(var_exists("Boot000B"));
}

TEST_F(BootEntriesTest, UnreadableEntriesAreSkippedWithAWarning) {
    write_var_file("Boot0008", std::string("\x07\0\0\0\x01\0\0\0\x40\0S\0l\0", 14));  // truncated
    write_var_file("Boot0009", std::string("\x07\0\0\0garbage!garbage!", 20));
    write_var_file("Boot000A", std::string("\x07\0", 2));  // no attribute word
    testing::internal::CaptureStderr();
    auto list = entries_->list();
    const std::string log = testing::internal::GetCapturedStderr();
    ASSERT_TRUE(list.ok()) << list.error().message();
    EXPECT_EQ(list->size(), 8u);
    for (const char* name : {"Boot0008", "Boot0009", "Boot000A"}) {
        EXPECT_NE(log.find("warning: skipping boot entry " + var_file(name)), std::string::npos)
            << name << " not named in: " << log;
    }
    // They still occupy their index.
    auto created = entries_->create(slot('A'), "A", kLoadOptionActive);
    ASSERT_TRUE(created.ok());
    EXPECT_EQ(created->index, 0x0B);
}

TEST_F(BootEntriesTest, BootNextSetAndClear) {
    ASSERT_TRUE(entries_->set_boot_next(0x0102).ok());
    EXPECT_EQ(read_var_file("BootNext"), std::string("\x07\0\0\0\x02\x01", 6));
    auto next = entries_->boot_next();
    ASSERT_TRUE(next.ok());
    EXPECT_EQ(*next, std::optional<uint16_t>(0x0102));
    ASSERT_TRUE(entries_->clear_boot_next().ok());
    EXPECT_FALSE(var_exists("BootNext"));
    EXPECT_TRUE(entries_->clear_boot_next().ok());
}

TEST_F(BootEntriesTest, MalformedBootNextNamesTheFile) {
    write_var_file("BootNext", std::string("\x07\0\0\0\x01\0\0", 7));
    auto next = entries_->boot_next();
    ASSERT_FALSE(next.ok());
    EXPECT_NE(next.error().message().find(var_file("BootNext")), std::string::npos);
}

// efibootmgr (efivar) must read the entry we created the same way: a cross-check of the bytes by
// an independent implementation. efibootmgr reads a directory given as EFIVARFS_PATH=dir/.
TEST_F(BootEntriesTest, EfibootmgrAgreesWithCreatedEntry) {
    if (std::system("command -v efibootmgr >/dev/null 2>&1") != 0)
        GTEST_SKIP() << "efibootmgr is not installed";
    auto created = entries_->create(slot('B'), "Metropolis Slot B", kLoadOptionActive);
    ASSERT_TRUE(created.ok());
    ASSERT_TRUE(entries_->set_boot_next(created->index).ok());

    const std::string cmd = "EFIVARFS_PATH='" + efivars_.string() + "/' efibootmgr -v 2>&1";
    FILE* pipe = popen(cmd.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    std::string out;
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
    ASSERT_EQ(pclose(pipe), 0) << out;

    const auto lines = efibootmgr_lines(out);
    ASSERT_TRUE(lines.count("Boot0008")) << out;
    EXPECT_TRUE(lines.at("Boot0008").active);
    EXPECT_EQ(lines.at("Boot0008").description, "Metropolis Slot B");
    EXPECT_EQ(lines.at("Boot0008").path_and_data, to_text(created->option.file_path)) << out;
    EXPECT_NE(out.find("BootNext: 0008"), std::string::npos) << out;
    // BootNext reaches the new entry; BootOrder waits for mark-good.
    EXPECT_NE(out.find("BootOrder: 0000,0001,0002,0003,0004,0005,0006,0007\n"), std::string::npos)
        << out;
}

}  // namespace
}  // namespace activate::efi::test
