// GPT reader: checked against sfdisk/fdisk-made images (the independent reference), against
// corrupted copies (primary/backup fallback, UEFI 2.10 §5.3.2) and against tables built with the
// encoder whose CRCs are right but whose contents are not.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <payload_uki/gpt.hpp>

#include "test_support.hpp"

namespace activate::uki {
namespace {

using namespace testing;

GuidBytes guid(const std::string& s) {
    auto g = parse_guid(s);
    EXPECT_TRUE(g.ok()) << s;
    return g.ok() ? *g : GuidBytes{};
}

// Opens an image file and reads its GPT the way the plugin does.
Result<GptTable> read_image(const fs::path& image, uint32_t sector_size = 0) {
    int fd = ::open(image.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_error(ErrorKind::activation, "open " + image.string());
    auto size = fd_geometry(fd, image.string());
    if (!size.ok()) {
        ::close(fd);
        return size.error();
    }
    FdReader reader(fd, size->size, image.string());
    auto table = read_gpt(reader, sector_size);
    ::close(fd);
    return table;
}

void flip_byte(const fs::path& image, uint64_t offset) {
    int fd = ::open(image.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    uint8_t b = 0;
    ASSERT_EQ(::pread(fd, &b, 1, static_cast<off_t>(offset)), 1);
    b ^= 0x5A;
    ASSERT_EQ(::pwrite(fd, &b, 1, static_cast<off_t>(offset)), 1);
    ::close(fd);
}

// A whole disk built with the encoder: protective MBR, primary and backup header and array.
std::vector<uint8_t> build_image(uint32_t ss, uint64_t sectors,
                                 const std::vector<GptEntry>& entries, uint32_t entry_count = 128) {
    std::vector<uint8_t> img(ss * sectors, 0);
    const uint64_t last = sectors - 1;
    auto mbr = encode_protective_mbr(last);
    std::copy(mbr.begin(), mbr.end(), img.begin());
    std::vector<uint8_t> array(size_t{entry_count} * 128, 0);
    for (const auto& e : entries) {
        auto raw = encode_gpt_entry(e, 128);
        EXPECT_TRUE(raw.ok());
        std::copy(raw->begin(), raw->end(), array.begin() + (e.number - 1) * 128);
    }
    const uint64_t array_sectors = (array.size() + ss - 1) / ss;
    GptHeader h;
    h.my_lba = 1;
    h.alternate_lba = last;
    h.first_usable_lba = 2 + array_sectors;
    h.last_usable_lba = last - 1 - array_sectors;
    h.disk_guid = guid("01234567-89AB-CDEF-0123-456789ABCDEF");
    h.partition_entry_lba = 2;
    h.number_of_partition_entries = entry_count;
    h.partition_entry_array_crc32 = gpt_crc32(array);
    auto primary = encode_gpt_header(h, ss);
    std::copy(primary.begin(), primary.end(), img.begin() + ss);
    std::copy(array.begin(), array.end(), img.begin() + 2 * ss);
    GptHeader b = h;
    b.my_lba = last;
    b.alternate_lba = 1;
    b.partition_entry_lba = last - array_sectors;
    auto backup = encode_gpt_header(b, ss);
    std::copy(backup.begin(), backup.end(), img.begin() + last * ss);
    std::copy(array.begin(), array.end(), img.begin() + b.partition_entry_lba * ss);
    return img;
}

GptEntry entry(uint32_t number, uint64_t first, uint64_t last, const std::string& name) {
    GptEntry e;
    e.number = number;
    e.type_guid = guid("0FC63DAF-8483-4772-8E79-3D69D8477DE4");
    e.unique_guid = guid("11111111-2222-3333-4444-55555555555" + std::to_string(number % 10));
    e.first_lba = first;
    e.last_lba = last;
    e.name = name;
    return e;
}

TEST(Guid, ParsesAndFormatsInMixedEndianOrder) {
    auto g = parse_guid("c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
    ASSERT_TRUE(g.ok()) << g.error().message();
    EXPECT_EQ(*g, kEspTypeGuid);
    EXPECT_EQ(format_guid(*g), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    // First three fields little-endian on disk.
    EXPECT_EQ((*g)[0], 0x28);
    EXPECT_EQ((*g)[3], 0xC1);
    EXPECT_EQ((*g)[8], 0xBA);
    EXPECT_FALSE(parse_guid("C12A7328-F81F-11D2-BA4B-00A0C93EC93").ok());
    EXPECT_FALSE(parse_guid("C12A7328-F81F-11D2-BA4B_00A0C93EC93B").ok());
    EXPECT_FALSE(parse_guid("G12A7328-F81F-11D2-BA4B-00A0C93EC93B").ok());
}

TEST(GptCodec, HeaderRoundTrips) {
    GptHeader h;
    h.my_lba = 1;
    h.alternate_lba = 99999;
    h.first_usable_lba = 34;
    h.last_usable_lba = 99966;
    h.disk_guid = guid("01234567-89AB-CDEF-0123-456789ABCDEF");
    h.partition_entry_lba = 2;
    h.number_of_partition_entries = 128;
    h.partition_entry_array_crc32 = 0xDEADBEEF;
    for (uint32_t ss : {512u, 4096u}) {
        auto bytes = encode_gpt_header(h, ss);
        ASSERT_EQ(bytes.size(), ss);
        auto d = decode_gpt_header(bytes);
        ASSERT_TRUE(d.ok()) << d.error().message();
        EXPECT_EQ(d->my_lba, h.my_lba);
        EXPECT_EQ(d->alternate_lba, h.alternate_lba);
        EXPECT_EQ(d->first_usable_lba, h.first_usable_lba);
        EXPECT_EQ(d->last_usable_lba, h.last_usable_lba);
        EXPECT_EQ(d->disk_guid, h.disk_guid);
        EXPECT_EQ(d->partition_entry_lba, h.partition_entry_lba);
        EXPECT_EQ(d->number_of_partition_entries, h.number_of_partition_entries);
        EXPECT_EQ(d->partition_entry_array_crc32, h.partition_entry_array_crc32);
        // Any changed byte inside HeaderSize breaks the CRC.
        bytes[40] ^= 1;
        auto bad = decode_gpt_header(bytes);
        ASSERT_FALSE(bad.ok());
        EXPECT_NE(bad.error().message().find("HeaderCRC32"), std::string::npos);
    }
}

TEST(GptCodec, EntryRoundTripsIncludingNonAsciiNames) {
    GptEntry e = entry(3, 2048, 4095, "système-Ä-\xF0\x9F\x92\xBE");
    e.attributes = 0x8000000000000001ULL;
    auto raw = encode_gpt_entry(e, 128);
    ASSERT_TRUE(raw.ok()) << raw.error().message();
    auto d = decode_gpt_entry(*raw);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->name, e.name);
    EXPECT_EQ(d->type_guid, e.type_guid);
    EXPECT_EQ(d->unique_guid, e.unique_guid);
    EXPECT_EQ(d->first_lba, 2048u);
    EXPECT_EQ(d->last_lba, 4095u);
    EXPECT_EQ(d->attributes, e.attributes);
    EXPECT_FALSE(encode_gpt_entry(entry(1, 1, 2, std::string(37, 'x')), 128).ok());
    EXPECT_TRUE(encode_gpt_entry(entry(1, 1, 2, std::string(36, 'x')), 128).ok());
}

TEST(GptRead, MatchesSfdiskOnItsOwnImage) {
    TempDir dir;
    const fs::path image = dir.path() / "disk.img";
    ASSERT_TRUE(make_slot_disk(image));
    auto dump = sfdisk_dump(image);
    ASSERT_EQ(dump.size(), 3u);
    auto table = read_image(image);
    ASSERT_TRUE(table.ok()) << table.error().message();
    EXPECT_EQ(table->sector_size, 512u);
    EXPECT_FALSE(table->from_backup);
    EXPECT_TRUE(table->warnings.empty());
    EXPECT_EQ(table->last_lba, (64u << 20) / 512 - 1);
    ASSERT_EQ(table->partitions.size(), dump.size());
    for (size_t i = 0; i < dump.size(); ++i) {
        const GptEntry& p = table->partitions[i];
        SCOPED_TRACE(dump[i].name);
        EXPECT_EQ(p.number, dump[i].number);
        EXPECT_EQ(p.first_lba, dump[i].start);
        EXPECT_EQ(p.size_lba(), dump[i].size);
        EXPECT_EQ(format_guid(p.unique_guid), dump[i].uuid);
        EXPECT_EQ(format_guid(p.type_guid), dump[i].type);
        EXPECT_EQ(p.name, dump[i].name);
    }
    EXPECT_EQ(table->partitions[0].type_guid, kEspTypeGuid);
    ASSERT_NE(table->find_by_name("METROPOLIS-SYSTEM-B"), nullptr);
    EXPECT_EQ(table->find_by_name("METROPOLIS-SYSTEM-B")->number, 3u);
    EXPECT_EQ(table->find_by_name("METROPOLIS-SYSTEM-C"), nullptr);
}

TEST(GptRead, SfdiskAcceptsTheEncodersTable) {
    TempDir dir;
    const fs::path image = dir.path() / "encoded.img";
    auto bytes = build_image(512, 4096, {entry(1, 40, 1000, "one"), entry(4, 2000, 3000, "four")});
    write_file(image, std::string(bytes.begin(), bytes.end()));
    auto dump = sfdisk_dump(image);
    ASSERT_EQ(dump.size(), 2u);
    EXPECT_EQ(dump[0].start, 40u);
    EXPECT_EQ(dump[0].size, 961u);
    EXPECT_EQ(dump[1].number, 4u);
    EXPECT_EQ(dump[1].name, "four");
    EXPECT_TRUE(run("sfdisk --verify " + quote(image.string())));
}

TEST(GptRead, CorruptPrimaryHeaderFallsBackToBackup) {
    TempDir dir;
    const fs::path image = dir.path() / "disk.img";
    ASSERT_TRUE(make_slot_disk(image));
    auto good = read_image(image);
    ASSERT_TRUE(good.ok());
    flip_byte(image, 512 + 48);  // LastUsableLBA of the primary header
    auto table = read_image(image);
    ASSERT_TRUE(table.ok()) << table.error().message();
    EXPECT_TRUE(table->from_backup);
    EXPECT_EQ(table->header.my_lba, table->last_lba);
    ASSERT_EQ(table->warnings.size(), 1u);
    EXPECT_NE(table->warnings[0].find("primary GPT header at LBA 1 is invalid"), std::string::npos)
        << table->warnings[0];
    EXPECT_NE(table->warnings[0].find("HeaderCRC32"), std::string::npos) << table->warnings[0];
    ASSERT_EQ(table->partitions.size(), good->partitions.size());
    for (size_t i = 0; i < good->partitions.size(); ++i) {
        EXPECT_EQ(table->partitions[i].first_lba, good->partitions[i].first_lba);
        EXPECT_EQ(table->partitions[i].unique_guid, good->partitions[i].unique_guid);
    }
}

TEST(GptRead, CorruptPrimaryEntryArrayFallsBackToBackup) {
    TempDir dir;
    const fs::path image = dir.path() / "disk.img";
    ASSERT_TRUE(make_slot_disk(image));
    flip_byte(image, 2 * 512 + 128 + 40);  // entry 2's EndingLBA
    auto table = read_image(image);
    ASSERT_TRUE(table.ok()) << table.error().message();
    EXPECT_TRUE(table->from_backup);
    ASSERT_FALSE(table->warnings.empty());
    EXPECT_NE(table->warnings[0].find("PartitionEntryArrayCRC32"), std::string::npos);
    EXPECT_EQ(table->find_by_name("METROPOLIS-SYSTEM-A")->size_lba(), 32768u);
}

TEST(GptRead, CorruptBackupIsAWarningOnly) {
    TempDir dir;
    const fs::path image = dir.path() / "disk.img";
    ASSERT_TRUE(make_slot_disk(image));
    flip_byte(image, (64u << 20) - 512 + 24);  // MyLBA of the backup header
    auto table = read_image(image);
    ASSERT_TRUE(table.ok()) << table.error().message();
    EXPECT_FALSE(table->from_backup);
    ASSERT_EQ(table->warnings.size(), 1u);
    EXPECT_NE(table->warnings[0].find("backup GPT header"), std::string::npos);
}

TEST(GptRead, BothCopiesCorruptIsAnErrorNamingBoth) {
    TempDir dir;
    const fs::path image = dir.path() / "disk.img";
    ASSERT_TRUE(make_slot_disk(image));
    flip_byte(image, 512 + 30);
    flip_byte(image, (64u << 20) - 512 + 30);
    auto table = read_image(image);
    ASSERT_FALSE(table.ok());
    const std::string& m = table.error().message();
    EXPECT_EQ(table.error().kind(), ErrorKind::input);
    EXPECT_NE(m.find(image.string()), std::string::npos) << m;
    EXPECT_NE(m.find("primary header at LBA 1"), std::string::npos) << m;
    EXPECT_NE(m.find("backup GPT header at LBA 131071"), std::string::npos) << m;
}

TEST(GptRead, TruncatedImageIsAnError) {
    TempDir dir;
    const fs::path image = dir.path() / "disk.img";
    ASSERT_TRUE(make_slot_disk(image));
    fs::resize_file(image, 32u << 20);
    auto table = read_image(image);
    ASSERT_FALSE(table.ok());
    EXPECT_NE(table.error().message().find("does not fit"), std::string::npos)
        << table.error().message();
}

TEST(GptRead, RequiresAProtectiveMbr) {
    TempDir dir;
    const fs::path image = dir.path() / "disk.img";
    ASSERT_TRUE(make_slot_disk(image));
    flip_byte(image, 446 + 4);  // OSType of the 0xEE record
    auto table = read_image(image);
    ASSERT_FALSE(table.ok());
    EXPECT_NE(table.error().message().find("protective"), std::string::npos);
    flip_byte(image, 446 + 4);
    flip_byte(image, 511);
    table = read_image(image);
    ASSERT_FALSE(table.ok());
    EXPECT_NE(table.error().message().find("0xAA55"), std::string::npos);
}

TEST(GptRead, FourKibSectorsFromFdisk) {
    TempDir dir;
    const fs::path image = dir.path() / "disk4k.img";
    // fdisk (unlike sfdisk) can lay out a table for 4096-byte sectors on an image file.
    ASSERT_TRUE(run("truncate -s 64M " + quote(image.string()) +
                    " && printf 'g\\nn\\n1\\n\\n+16M\\nt\\n1\\nn\\n2\\n\\n+16M\\nx\\nn\\n2\\n"
                    "METROPOLIS-SYSTEM-A\\nr\\nw\\n' | fdisk -b 4096 " +
                    quote(image.string())));
    auto table = read_image(image);
    ASSERT_TRUE(table.ok()) << table.error().message();
    EXPECT_EQ(table->sector_size, 4096u);
    EXPECT_EQ(table->last_lba, (64u << 20) / 4096 - 1);
    ASSERT_EQ(table->partitions.size(), 2u);
    EXPECT_EQ(table->partitions[0].type_guid, kEspTypeGuid);
    EXPECT_EQ(table->partitions[0].size_lba(), 4096u);  // 16 MiB in 4 KiB sectors
    EXPECT_EQ(table->partitions[1].name, "METROPOLIS-SYSTEM-A");
    EXPECT_EQ(table->partitions[1].first_lba, table->partitions[0].last_lba + 1);
    // Reading it as 512-byte sectors finds no header at LBA 1 nor at the last 512-byte LBA.
    EXPECT_FALSE(read_image(image, 512).ok());
}

TEST(GptRead, FourKibBackupIsFoundWhenThePrimaryIsGone) {
    auto bytes = build_image(4096, 512, {entry(1, 6, 100, "METROPOLIS-SYSTEM-A")});
    std::memset(&bytes[4096], 0, 4096);  // wipe the primary header, signature included
    SpanReader reader(bytes, "mem4k");
    auto table = read_gpt(reader);
    ASSERT_TRUE(table.ok()) << table.error().message();
    EXPECT_EQ(table->sector_size, 4096u);
    EXPECT_TRUE(table->from_backup);
    ASSERT_EQ(table->partitions.size(), 1u);
    EXPECT_EQ(table->partitions[0].first_lba, 6u);
}

// Tables whose CRCs are right but whose content breaks §5.3 rules: both copies carry the same
// damage, so there is nothing to fall back to.
TEST(GptRead, RejectsOverlappingPartitions) {
    auto bytes = build_image(512, 4096, {entry(1, 40, 1000, "a"), entry(2, 1000, 2000, "b")});
    auto table = read_gpt(SpanReader(bytes, "mem"));
    ASSERT_FALSE(table.ok());
    EXPECT_NE(table.error().message().find("partitions 1 and 2 overlap"), std::string::npos)
        << table.error().message();
}

TEST(GptRead, RejectsPartitionsOutsideTheUsableRange) {
    auto bytes = build_image(512, 4096, {entry(1, 40, 4090, "a")});
    auto table = read_gpt(SpanReader(bytes, "mem"));
    ASSERT_FALSE(table.ok());
    EXPECT_NE(table.error().message().find("outside the usable range"), std::string::npos)
        << table.error().message();
    auto reversed = build_image(512, 4096, {entry(1, 100, 50, "a")});
    EXPECT_FALSE(read_gpt(SpanReader(reversed, "mem")).ok());
}

TEST(GptRead, RejectsBadEntrySizeAndHugeArrays) {
    auto bytes = build_image(512, 4096, {entry(1, 40, 100, "a")});
    for (uint64_t lba : {uint64_t{1}, uint64_t{4095}}) {
        auto h = decode_gpt_header(std::span(bytes).subspan(lba * 512, 512));
        ASSERT_TRUE(h.ok());
        h->size_of_partition_entry = 192;
        auto enc = encode_gpt_header(*h, 512);
        std::copy(enc.begin(), enc.end(), bytes.begin() + lba * 512);
    }
    auto table = read_gpt(SpanReader(bytes, "mem"));
    ASSERT_FALSE(table.ok());
    EXPECT_NE(table.error().message().find("128 * 2^n"), std::string::npos);

    for (uint64_t lba : {uint64_t{1}, uint64_t{4095}}) {
        auto h = decode_gpt_header(std::span(bytes).subspan(lba * 512, 512));
        ASSERT_TRUE(h.ok());
        h->size_of_partition_entry = 128;
        h->number_of_partition_entries = 0xFFFFFFFF;
        auto enc = encode_gpt_header(*h, 512);
        std::copy(enc.begin(), enc.end(), bytes.begin() + lba * 512);
    }
    table = read_gpt(SpanReader(bytes, "mem"));
    ASSERT_FALSE(table.ok());
    EXPECT_NE(table.error().message().find("implausibly large"), std::string::npos);
}

TEST(GptRead, TinyAndEmptyInputsAreErrors) {
    std::vector<uint8_t> empty;
    EXPECT_FALSE(read_gpt(SpanReader(empty, "empty")).ok());
    auto mbr = encode_protective_mbr(10);
    EXPECT_FALSE(read_gpt(SpanReader(mbr, "mbr-only")).ok());
}

}  // namespace
}  // namespace activate::uki
