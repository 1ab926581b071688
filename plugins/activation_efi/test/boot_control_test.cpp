// The "efi" BootControl on a copy of the recorded OVMF variables: install flips only the active
// bit, BootNext handling, mark-good ordering, malformed variables and the status JSON.
#include <fcntl.h>
#include <sys/stat.h>

#include <activate/byte_order.hpp>
#include <activation_efi/boot_control.hpp>
#include <fstream>

#include "efi_fixture.hpp"

namespace activate::efi::test {
namespace {

class BootControlTest : public EfiVarsTest {
  protected:
    void SetUp() override {
        EfiVarsTest::SetUp();
        control_ = std::make_unique<EfiBootControl>(*sysroot_, Log(&logger_, "efi"),
                                                    BootControlSettings{});
    }
    std::unique_ptr<EfiBootControl> control_;
};

// Attributes word of the load option inside a Boot#### file (after the variable's own word).
uint32_t option_attributes(const std::string& file_content) { return load_le32(file_content, 4); }

struct FileStamp {
    ino_t inode;
    timespec mtime;
};
FileStamp stamp(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return {st.st_ino, st.st_mtim};
}
// Moves a file's mtime into the past, so any later write is visible even within one tick.
void age(const std::string& path) {
    const timespec times[2] = {{1000000000, 0}, {1000000000, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

TEST_F(BootControlTest, BeginInstallCreatesTheEntryDisabled) {
    ASSERT_TRUE(control_->begin_install(slot('B')).ok());
    ASSERT_TRUE(var_exists("Boot0008"));
    const std::string content = read_var_file("Boot0008");
    EXPECT_EQ(option_attributes(content) & kLoadOptionActive, 0u);
    auto option = decode_load_option(content.substr(4));
    ASSERT_TRUE(option.ok());
    EXPECT_EQ(option->description_utf8(), "Metropolis Slot B");
    EXPECT_TRUE(boots_slot(*option, slot('B')));
}

TEST_F(BootControlTest, BeginAndFinishInstallFlipOnlyTheActiveBit) {
    ASSERT_TRUE(control_->finish_install(slot('B')).ok());  // creates it, active
    const auto before = snapshot();
    const std::string active = read_var_file("Boot0008");
    EXPECT_EQ(option_attributes(active) & kLoadOptionActive, kLoadOptionActive);

    ASSERT_TRUE(control_->begin_install(slot('B')).ok());
    const std::string inactive = read_var_file("Boot0008");
    ASSERT_EQ(inactive.size(), active.size());
    for (size_t i = 0; i < active.size(); ++i)
        EXPECT_EQ(uint8_t(active[i] ^ inactive[i]), i == 4 ? 0x01 : 0x00) << "byte " << i;

    ASSERT_TRUE(control_->finish_install(slot('B')).ok());
    EXPECT_EQ(read_var_file("Boot0008"), active);
    EXPECT_EQ(snapshot(), before);  // nothing else changed on the way
}

TEST_F(BootControlTest, ActiveBitIsFlippedOnAFirmwareEntryWithOptionalData) {
    // An existing entry keeps every other byte, including optional data it carries.
    auto option = slot_load_option(slot('A'), "Firmware-made A", kLoadOptionActive | 0x100);
    ASSERT_TRUE(option.ok());
    option->optional_data = "\x01\x02opaque";
    ASSERT_TRUE(entries_->write(BootEntry{0x0010, *option}).ok());
    const std::string original = read_var_file("Boot0010");
    ASSERT_TRUE(control_->begin_install(slot('A')).ok());
    const std::string changed = read_var_file("Boot0010");
    ASSERT_EQ(changed.size(), original.size());
    EXPECT_EQ(changed.substr(5), original.substr(5));
    EXPECT_EQ(uint8_t(changed[4]), uint8_t(original[4]) & ~1u);
    EXPECT_FALSE(var_exists("Boot0008"));  // found, not recreated
}

TEST_F(BootControlTest, BeginInstallClearsBootNextOnlyWhenItPointsAtTheTarget) {
    ASSERT_TRUE(control_->finish_install(slot('B')).ok());
    ASSERT_TRUE(entries_->set_boot_next(7).ok());
    ASSERT_TRUE(control_->begin_install(slot('B')).ok());
    EXPECT_TRUE(var_exists("BootNext"));

    ASSERT_TRUE(control_->finish_install(slot('B')).ok());
    ASSERT_TRUE(control_->boot_next(slot('B')).ok());
    EXPECT_EQ(read_var_file("BootNext"), std::string("\x07\0\0\0\x08\0", 6));
    ASSERT_TRUE(control_->begin_install(slot('B')).ok());
    EXPECT_FALSE(var_exists("BootNext"));
}

TEST_F(BootControlTest, BootNextRefusesADisabledEntryAndClearWorks) {
    ASSERT_TRUE(control_->begin_install(slot('B')).ok());
    auto refused = control_->boot_next(slot('B'));
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.error().message().find("Boot0008"), std::string::npos);
    EXPECT_FALSE(var_exists("BootNext"));

    ASSERT_TRUE(control_->finish_install(slot('B')).ok());
    ASSERT_TRUE(control_->boot_next(slot('B')).ok());
    EXPECT_EQ(read_var_file("BootNext"), std::string("\x07\0\0\0\x08\0", 6));
    ASSERT_TRUE(control_->clear_boot_next().ok());
    EXPECT_FALSE(var_exists("BootNext"));
}

TEST_F(BootControlTest, BootNextRecreatesAnEntryTheFirmwareDeleted) {
    ASSERT_TRUE(control_->finish_install(slot('B')).ok());
    std::filesystem::remove(var_file("Boot0008"));
    write_raw_boot_order({0, 1, 2, 3, 4, 5, 6, 7});
    ASSERT_TRUE(control_->boot_next(slot('B')).ok());
    EXPECT_TRUE(var_exists("Boot0008"));
    EXPECT_EQ(read_var_file("BootNext"), std::string("\x07\0\0\0\x08\0", 6));
}

TEST_F(BootControlTest, MarkGoodAlreadyFirstWritesNothing) {
    ASSERT_TRUE(control_->finish_install(slot('A')).ok());
    write_raw_boot_order({8, 0, 1, 2, 3, 4, 5, 6, 7});
    for (const char* name : {"BootOrder", "Boot0008"}) age(var_file(name));
    const auto order_before = stamp(var_file("BootOrder"));
    const auto entry_before = stamp(var_file("Boot0008"));
    const auto before = snapshot();

    ASSERT_TRUE(control_->mark_good(slot('A')).ok());

    EXPECT_EQ(snapshot(), before);
    const auto order_after = stamp(var_file("BootOrder"));
    const auto entry_after = stamp(var_file("Boot0008"));
    EXPECT_EQ(order_after.inode, order_before.inode);
    EXPECT_EQ(order_after.mtime.tv_sec, order_before.mtime.tv_sec);
    EXPECT_EQ(order_after.mtime.tv_nsec, order_before.mtime.tv_nsec);
    EXPECT_EQ(entry_after.mtime.tv_sec, entry_before.mtime.tv_sec);
}

TEST_F(BootControlTest, MarkGoodMovesAnEntryFromTheMiddle) {
    ASSERT_TRUE(control_->finish_install(slot('A')).ok());
    write_raw_boot_order({0, 1, 8, 2, 3});
    ASSERT_TRUE(control_->mark_good(slot('A')).ok());
    EXPECT_EQ(raw_boot_order(), (std::vector<uint16_t>{8, 0, 1, 2, 3}));
}

TEST_F(BootControlTest, MarkGoodAddsAnAbsentEntryAndKeepsUnrelatedOnes) {
    ASSERT_TRUE(control_->finish_install(slot('A')).ok());
    // 0x1234 has no variable (another OS's leftover); mark-good must not drop it.
    write_raw_boot_order({3, 0x1234, 0, 7});
    ASSERT_TRUE(control_->mark_good(slot('A')).ok());
    EXPECT_EQ(raw_boot_order(), (std::vector<uint16_t>{8, 3, 0x1234, 0, 7}));
}

TEST_F(BootControlTest, MarkGoodCreatesAMissingEntry) {
    std::filesystem::remove(var_file("BootOrder"));
    ASSERT_TRUE(control_->mark_good(slot('A')).ok());
    ASSERT_TRUE(var_exists("Boot0000") && var_exists("Boot0008"));
    EXPECT_EQ(raw_boot_order(), (std::vector<uint16_t>{8}));
    auto found = entries_->find(slot('A'));
    ASSERT_TRUE(found.ok() && found->has_value());
    EXPECT_TRUE((*found)->option.active());
    EXPECT_EQ((*found)->option.description_utf8(), "Metropolis Slot A");
}

TEST_F(BootControlTest, MalformedBootOrderIsAnErrorNamingTheFile) {
    write_var_file("BootOrder", std::string("\x07\0\0\0\x01\0\x02", 7));
    auto odd = control_->mark_good(slot('A'));
    ASSERT_FALSE(odd.ok());
    EXPECT_NE(odd.error().message().find(var_file("BootOrder")), std::string::npos)
        << odd.error().message();
    EXPECT_NE(odd.error().message().find("not a whole number"), std::string::npos);

    write_var_file("BootOrder", std::string("\x07\x01\0\0\x01\0", 6));
    auto attrs = control_->mark_good(slot('A'));
    ASSERT_FALSE(attrs.ok());
    EXPECT_NE(attrs.error().message().find("bad attribute word 0x00000107"), std::string::npos)
        << attrs.error().message();
    EXPECT_NE(attrs.error().message().find(var_file("BootOrder")), std::string::npos);
}

TEST_F(BootControlTest, StatusJsonDescribesSlotsAndVariables) {
    ASSERT_TRUE(control_->finish_install(slot('B')).ok());
    ASSERT_TRUE(control_->boot_next(slot('B')).ok());
    auto json = control_->status_json(SlotPair{slot('A'), slot('B')});
    ASSERT_TRUE(json.ok()) << json.error().message();
    const std::string& s = *json;
    EXPECT_EQ(s.front(), '{');
    EXPECT_EQ(s.back(), '}');
    // A created entry is reached through BootNext; BootOrder waits for mark-good.
    EXPECT_NE(s.find("\"boot_order\":[\"Boot0000\",\"Boot0001\",\"Boot0002\",\"Boot0003\","
                     "\"Boot0004\",\"Boot0005\",\"Boot0006\",\"Boot0007\"]"),
              std::string::npos)
        << s;
    EXPECT_NE(s.find("\"boot_next\":\"Boot0008\""), std::string::npos) << s;
    EXPECT_NE(s.find("\"boot_current\":\"Boot0001\""), std::string::npos) << s;
    EXPECT_NE(s.find("{\"letter\":\"A\",\"role\":\"running\",\"entry\":null}"), std::string::npos)
        << s;
    EXPECT_NE(s.find(std::string("{\"letter\":\"B\",\"role\":\"target\",\"entry\":\"Boot0008\","
                                 "\"description\":\"Metropolis Slot B\",\"active\":true,"
                                 "\"device_path\":\"HD(1,GPT,") +
                     kEspGuidText +
                     ",0x800,0x100000)/File(\\\\EFI\\\\metropolis\\\\boot-b.efi)\","
                     "\"boot_next\":true,\"booted\":false}"),
              std::string::npos)
        << s;

    std::filesystem::remove(var_file("BootNext"));
    std::filesystem::remove(var_file("BootCurrent"));
    auto bare = control_->status_json(SlotPair{slot('A'), slot('B')});
    ASSERT_TRUE(bare.ok());
    EXPECT_NE(bare->find("\"boot_next\":null,\"boot_current\":null"), std::string::npos) << *bare;
}

// A plan names system paths, as the policy does: never where the sysroot puts them.
TEST_F(BootControlTest, PlansNameTheVariablesBySystemPath) {
    const auto before = snapshot();
    const std::string order =
        "/sys/firmware/efi/efivars/BootOrder-8be4df61-93ca-11d2-aa0d-00e098032b8c";
    std::vector<PlanStep> steps;
    for (auto plan : {&BootControl::plan_begin_install, &BootControl::plan_finish_install,
                      &BootControl::plan_boot_next, &BootControl::plan_add_to_boot_order_after}) {
        const auto some = ((*control_).*plan)();
        ASSERT_FALSE(some.empty());
        steps.insert(steps.end(), some.begin(), some.end());
    }
    bool writes_order = false, writes_next = false;
    for (const auto& step : steps) {
        EXPECT_FALSE(step.action.empty());
        for (const auto& w : step.writes) {
            EXPECT_EQ(w.rfind("/sys/firmware/efi/efivars/", 0), 0u) << w;
            writes_order |= w == order;
            writes_next |= w.rfind("/sys/firmware/efi/efivars/BootNext-", 0) == 0;
        }
    }
    EXPECT_TRUE(writes_order);
    EXPECT_TRUE(writes_next);
    EXPECT_EQ(snapshot(), before);  // planning touches nothing
}

// ----- what boot assessment needs, and the firmware quirks it meets -----

TEST_F(BootControlTest, EntryNameAndBootCurrent) {
    auto none = control_->entry_name(slot('B'));
    ASSERT_TRUE(none.ok());
    EXPECT_FALSE(none->has_value());
    ASSERT_TRUE(control_->finish_install(slot('B')).ok());
    EXPECT_EQ(*control_->entry_name(slot('B')), std::optional<std::string>("Boot0008"));
    // The recorded OVMF boot started Boot0001.
    EXPECT_EQ(*control_->boot_current(), std::optional<std::string>("Boot0001"));
    std::filesystem::remove(var_file("BootCurrent"));
    EXPECT_FALSE(control_->boot_current()->has_value());
}

// Quirk: firmware that ignores BootNext for an entry missing from BootOrder. Before a reboot into
// the slot on trial its entry is listed right after the good slot's, never first.
TEST_F(BootControlTest, TheTrialSlotIsListedRightAfterTheGoodSlotNeverFirst) {
    ASSERT_TRUE(control_->mark_good(slot('A')).ok());       // Boot0008 = A, first
    ASSERT_TRUE(control_->finish_install(slot('B')).ok());  // Boot0009 = B, unlisted
    ASSERT_EQ(raw_boot_order(), (std::vector<uint16_t>{8, 0, 1, 2, 3, 4, 5, 6, 7}));
    ASSERT_TRUE(control_->add_to_boot_order_after(slot('B'), slot('A')).ok());
    EXPECT_EQ(raw_boot_order(), (std::vector<uint16_t>{8, 9, 0, 1, 2, 3, 4, 5, 6, 7}));
    // Idempotent: nothing written when it already is there.
    age(var_file("BootOrder"));
    const auto before = stamp(var_file("BootOrder"));
    ASSERT_TRUE(control_->add_to_boot_order_after(slot('B'), slot('A')).ok());
    EXPECT_EQ(stamp(var_file("BootOrder")).mtime.tv_sec, before.mtime.tv_sec);

    // B was good once (first) and A is good now: B moves behind A.
    write_raw_boot_order({9, 8, 0});
    ASSERT_TRUE(control_->add_to_boot_order_after(slot('B'), slot('A')).ok());
    EXPECT_EQ(raw_boot_order(), (std::vector<uint16_t>{8, 9, 0}));
}

TEST_F(BootControlTest, ListingTheTrialSlotRecreatesEntriesTheFirmwareDeleted) {
    ASSERT_TRUE(control_->mark_good(slot('A')).ok());
    ASSERT_TRUE(control_->finish_install(slot('B')).ok());
    std::filesystem::remove(var_file("Boot0008"));  // A's entry dropped by the firmware
    write_raw_boot_order({0, 1});
    ASSERT_TRUE(control_->add_to_boot_order_after(slot('B'), slot('A')).ok());
    // A's entry is back (at the lowest free index) and listed first; B right after it.
    auto a = entries_->find(slot('A'));
    ASSERT_TRUE(a.ok() && a->has_value());
    const uint16_t ai = (*a)->index;
    EXPECT_EQ(raw_boot_order(), (std::vector<uint16_t>{0, 1, ai, 9}));
}

// Quirk: firmware deletes entries it cannot resolve (after a power cut mid-install, say). The
// slot's entry is recreated at install (begin_install), at assessment (boot_next to the previous
// slot) and at mark-good.
TEST_F(BootControlTest, DeletedEntriesAreRecreatedAtInstallBootNextAndMarkGood) {
    ASSERT_TRUE(control_->finish_install(slot('B')).ok());
    std::filesystem::remove(var_file("Boot0008"));
    ASSERT_TRUE(control_->begin_install(slot('B')).ok());
    EXPECT_TRUE(var_exists("Boot0008"));

    ASSERT_TRUE(control_->finish_install(slot('A')).ok());  // Boot0009
    std::filesystem::remove(var_file("Boot0009"));
    ASSERT_TRUE(control_->boot_next(slot('A')).ok());
    auto a = entries_->find(slot('A'));
    ASSERT_TRUE(a.ok() && a->has_value());
    EXPECT_EQ(read_var_file("BootNext").substr(4), encode_boot_index((*a)->index));

    std::filesystem::remove(var_file((*a)->name()));
    ASSERT_TRUE(control_->mark_good(slot('A')).ok());
    a = entries_->find(slot('A'));
    ASSERT_TRUE(a.ok() && a->has_value());
    EXPECT_EQ(raw_boot_order().front(), (*a)->index);
}

// Quirk: a full variable store. The write fails with ENOSPC (efivarfs' translation of
// EFI_OUT_OF_RESOURCES): the error says so and what to do, and no half-made entry is left.
ssize_t full_store(int, const void*, size_t) {
    errno = ENOSPC;
    return -1;
}

TEST_F(BootControlTest, AFullVariableStoreIsAClearErrorAndLeavesNothingBehind) {
    EfiBootControl full(*sysroot_, Log(&logger_, "efi"), BootControlSettings{}, full_store);
    const auto before = snapshot();
    Status s = full.begin_install(slot('B'));
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().kind(), ErrorKind::activation);
    EXPECT_NE(s.error().message().find("the firmware's variable store is full (ENOSPC writing "
                                       "Boot0008 to " +
                                       var_file("Boot0008") + "); delete unused boot entries"),
              std::string::npos)
        << s.error().message();
    EXPECT_NE(s.error().message().find("efibootmgr -b XXXX -B"), std::string::npos);
    EXPECT_EQ(snapshot(), before);  // no empty Boot0008 left behind

    // An existing variable that cannot be rewritten stays as it was.
    ASSERT_TRUE(control_->mark_good(slot('A')).ok());
    const auto with_a = snapshot();
    ASSERT_FALSE(full.begin_install(slot('A')).ok());
    EXPECT_EQ(snapshot(), with_a);
}

}  // namespace
}  // namespace activate::efi::test
