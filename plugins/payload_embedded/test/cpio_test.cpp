// cpio newc: exact bytes, round trips, strict reading, and agreement with GNU cpio both ways.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <payload_embedded/cpio.hpp>

#include "support.hpp"

namespace activate::embedded {

void PrintTo(const CpioEntry& e, std::ostream* os) {
    *os << "{" << e.name << " mode " << std::oct << e.mode << std::dec << " ino " << e.ino << " "
        << e.data.size() << " bytes}";
}

namespace {

using test::quoted;
using test::shell;
using test::TempDir;

std::string write_archive(const std::vector<CpioEntry>& entries) {
    std::string out;
    CpioWriter writer([&](std::string_view bytes) -> Status {
        out.append(bytes);
        return {};
    });
    for (const CpioEntry& e : entries) {
        Status s = writer.add(e);
        EXPECT_TRUE(s.ok()) << s.error().message();
    }
    Status s = writer.finish();
    EXPECT_TRUE(s.ok()) << s.error().message();
    EXPECT_EQ(writer.size(), out.size());
    return out;
}

TEST(Cpio, ExactBytesOfASmallArchive) {
    const std::string archive = write_archive({{.name = "a", .mode = 0100644, .data = "hi"}});
    const std::string expected =
        // magic, ino 1, mode, uid, gid, nlink 1, mtime, filesize 2, dev 0:0, rdev 0:0,
        // namesize 2 ("a\0"), check 0; 110 + 2 = 112 is already aligned.
        std::string(
            "070701"
            "00000001"
            "000081A4"
            "00000000"
            "00000000"
            "00000001"
            "00000000"
            "00000002"
            "00000000"
            "00000000"
            "00000000"
            "00000000"
            "00000002"
            "00000000") +
        std::string("a\0", 2) + std::string("hi\0\0", 4) +
        // The trailer: namesize 11, 110 + 11 = 121 padded to 124.
        "070701"
        "00000000"
        "00000000"
        "00000000"
        "00000000"
        "00000001"
        "00000000"
        "00000000"
        "00000000"
        "00000000"
        "00000000"
        "00000000"
        "0000000B"
        "00000000" +
        std::string("TRAILER!!!\0\0\0\0", 14);
    EXPECT_EQ(archive, expected);
    EXPECT_EQ(archive.size(), 240u);
}

TEST(Cpio, RoundTripsEveryKindAndEveryPaddingCase) {
    std::vector<std::string> names, contents;
    for (size_t n = 1; n <= 9; ++n) {
        names.push_back(std::string(n, 'n'));
        contents.push_back(std::string(n + 3, static_cast<char>('a' + n)));
    }
    std::vector<CpioEntry> entries = {
        {.name = "dev", .mode = 040755, .ino = 100, .nlink = 2},
        {.name = "dev/console", .mode = 020600, .ino = 101, .rdev_major = 5, .rdev_minor = 1},
        {.name = "bin/sh", .mode = 0120777, .data = "busybox", .ino = 102},
        {.name = "empty",
         .mode = 0100600,
         .ino = 103,
         .uid = 1000,
         .gid = 1001,
         .mtime = 1700000000},
        {.name = std::string_view("bin\0ary", 3),
         .mode = 0100644,
         .data = std::string_view("\0\xff\x01", 3),
         .ino = 104},
    };
    for (size_t i = 0; i < names.size(); ++i)
        entries.push_back({.name = names[i],
                           .mode = 0100644,
                           .data = contents[i],
                           .ino = static_cast<uint32_t>(200 + i)});
    const std::string archive = write_archive(entries);
    auto read = read_cpio(archive);
    ASSERT_TRUE(read.ok()) << read.error().message();
    EXPECT_EQ(read->entries, entries);
    EXPECT_EQ(read->size, archive.size());
    EXPECT_EQ(archive.size() % 4, 0u);
}

TEST(Cpio, NumbersMembersWithoutIno) {
    const std::string archive = write_archive({{.name = "a", .mode = 0100644},
                                               {.name = "b", .mode = 0100644, .ino = 7},
                                               {.name = "c", .mode = 0100644}});
    auto read = read_cpio(archive);
    ASSERT_TRUE(read.ok());
    ASSERT_EQ(read->entries.size(), 3u);
    EXPECT_EQ(read->entries[0].ino, 1u);
    EXPECT_EQ(read->entries[1].ino, 7u);
    EXPECT_EQ(read->entries[2].ino, 2u);
}

TEST(Cpio, ReadsOnlyUpToTheTrailer) {
    const std::string first = write_archive({{.name = "a", .mode = 0100644, .data = "1"}});
    const std::string second = write_archive({{.name = "b", .mode = 0100644, .data = "2"}});
    const std::string both = first + second;  // the entries point into it
    auto read = read_cpio(both);
    ASSERT_TRUE(read.ok());
    EXPECT_EQ(read->size, first.size());
    ASSERT_EQ(read->entries.size(), 1u);
    EXPECT_EQ(read->entries[0].name, "a");
}

TEST(Cpio, WriterPropagatesSinkErrorsWithTheMemberName) {
    int calls = 0;
    CpioWriter writer([&](std::string_view) -> Status {
        if (++calls > 2) return Error(ErrorKind::activation, "disk full");
        return {};
    });
    Status s = writer.add_file("init.pb", 0644, "data");
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().kind(), ErrorKind::activation);
    EXPECT_NE(s.error().message().find("init.pb"), std::string::npos) << s.error().message();
    EXPECT_NE(s.error().message().find("disk full"), std::string::npos);

    CpioWriter trailer_fails(
        [](std::string_view) -> Status { return Error(ErrorKind::activation, "broken pipe"); });
    Status f = trailer_fails.finish();
    ASSERT_FALSE(f.ok());
    EXPECT_NE(f.error().message().find("trailer"), std::string::npos) << f.error().message();
}

TEST(Cpio, WriterRefusesInvalidMembers) {
    CpioWriter writer([](std::string_view) -> Status { return {}; });
    EXPECT_FALSE(writer.add_file("", 0644, "").ok());
    EXPECT_FALSE(writer.add_file(std::string_view("a\0b", 3), 0644, "").ok());
    EXPECT_FALSE(writer.add_file("TRAILER!!!", 0644, "").ok());
    EXPECT_FALSE(writer.add_file(std::string(kCpioMaxName, 'x'), 0644, "").ok());
    EXPECT_TRUE(writer.add_file(std::string(kCpioMaxName - 1, 'x'), 0644, "").ok());
    EXPECT_FALSE(writer.add({.name = "d", .mode = 040755, .data = "x"}).ok());
    EXPECT_FALSE(writer.add_symlink("l", "").ok());
    ASSERT_TRUE(writer.finish().ok());
    Status late = writer.add_file("late", 0644, "");
    ASSERT_FALSE(late.ok());
    EXPECT_NE(late.error().message().find("after the archive's trailer"), std::string::npos);
    EXPECT_FALSE(writer.finish().ok());
}

// Each case corrupts a valid archive; the reader must say what and where.
TEST(Cpio, ReaderRejectsMalformedArchives) {
    const std::string good = write_archive({{.name = "abc", .mode = 0100644, .data = "hello"}});
    struct Case {
        std::string name;
        std::string bytes;
        std::string message_part;
    };
    auto with = [&](size_t offset, std::string_view replacement) {
        std::string b = good;
        b.replace(offset, replacement.size(), replacement);
        return b;
    };
    const std::vector<Case> cases = {
        {"empty", "", "truncated header"},
        {"old binary magic", with(0, "070707"), "magic"},
        {"crc magic", with(0, "070702"), "magic"},
        {"non-hex field", with(6 + 8, "0000g1A4"), "field 2"},
        {"name size zero", with(6 + 11 * 8, "00000000"), "name size"},
        {"name size past end", with(6 + 11 * 8, "00001000"), "name"},
        {"name not terminated", with(6 + 11 * 8, "00000003"), "NUL-terminated"},
        {"nonzero name padding", with(110 + 4, "\x01"), "padding after the name"},
        {"data past end", with(6 + 6 * 8, "00010000"), "past the end"},
        {"nonzero data padding", with(116 + 5, "\x01"), "padding after the data"},
        {"data on a directory", with(6 + 8, "000041ED"), "only regular files and symlinks"},
        {"data in the trailer", with(124 + 6 + 6 * 8, "00000001") + std::string(4, '\0'),
         "the trailer carries 1 bytes"},
        {"no trailer", good.substr(0, 124), "truncated header"},
        {"truncated trailer", good.substr(0, good.size() - 2), "TRAILER!!!"},
    };
    for (const Case& c : cases) {
        auto read = read_cpio(c.bytes);
        ASSERT_FALSE(read.ok()) << c.name;
        EXPECT_EQ(read.error().kind(), ErrorKind::input) << c.name;
        EXPECT_NE(read.error().message().find(c.message_part), std::string::npos)
            << c.name << ": " << read.error().message();
        EXPECT_NE(read.error().message().find("offset 0x"), std::string::npos) << c.name;
    }
}

// GNU cpio reads our archives: it lists them, and extracting gives the same files.
TEST(Cpio, GnuCpioExtractsWhatWeWrite) {
    TempDir dir;
    const std::string archive = write_archive({
        {.name = "etc", .mode = 040755, .nlink = 2},
        {.name = "etc/hostname", .mode = 0100640, .data = "agent\n"},
        {.name = "etc/link", .mode = 0120777, .data = "hostname"},
        {.name = "odd name 1", .mode = 0100755, .data = std::string_view("\0\1\2", 3)},
    });
    test::write_file(dir / "a.cpio", archive);
    auto list = shell("cpio -it --quiet < " + quoted(dir / "a.cpio") + " 2>&1");
    ASSERT_EQ(list.status, 0) << list.out;
    EXPECT_EQ(list.out, "etc\netc/hostname\netc/link\nodd name 1\n");

    std::filesystem::create_directory(dir / "x");
    auto extract = shell("cd " + quoted(dir / "x") + " && cpio -idm --quiet < ../a.cpio 2>&1");
    ASSERT_EQ(extract.status, 0) << extract.out;
    EXPECT_EQ(test::read_file(dir / "x/etc/hostname"), "agent\n");
    EXPECT_EQ(std::filesystem::read_symlink(dir / "x/etc/link"), "hostname");
    EXPECT_EQ(test::read_file(dir / "x/odd name 1"), std::string("\0\1\2", 3));
    struct stat st {};
    ASSERT_EQ(::stat((dir / "x/etc/hostname").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640u);
}

// We read GNU cpio's newc archives (which it pads to 512-byte blocks after the trailer).
TEST(Cpio, ReadsGnuCpioArchives) {
    TempDir dir;
    test::write_file(dir / "in/file", "content\n");
    test::write_file(dir / "in/sub/deeper", "x");
    auto made = shell("cd " + quoted(dir / "in") +
                      " && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet "
                      "--owner 0:0 > ../gnu.cpio 2>/dev/null; echo $?");
    ASSERT_EQ(made.out, "0\n");
    const std::string bytes = test::read_file(dir / "gnu.cpio");
    auto read = read_cpio(bytes);
    ASSERT_TRUE(read.ok()) << read.error().message();
    std::vector<std::string> names;
    for (const CpioEntry& e : read->entries) names.emplace_back(e.name);
    EXPECT_EQ(names, (std::vector<std::string>{"file", "sub", "sub/deeper"}));
    EXPECT_EQ(read->entries[0].data, "content\n");
    EXPECT_EQ(read->entries[0].mode & S_IFMT, static_cast<uint32_t>(S_IFREG));
    EXPECT_EQ(read->entries[1].mode & S_IFMT, static_cast<uint32_t>(S_IFDIR));
    EXPECT_LE(read->size, bytes.size());
    EXPECT_EQ(bytes.size() % 512, 0u);
}

}  // namespace
}  // namespace activate::embedded
