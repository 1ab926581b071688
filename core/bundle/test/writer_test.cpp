// BundleWriter: round trips through BundleReader, agreement with Info-ZIP's unzip, and the
// writer's own refusals.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <activate/bundle/reader.hpp>
#include <activate/bundle/writer.hpp>

#include "test_util.hpp"

namespace activate::bundle::test {
namespace {

std::string make_bundle(const std::vector<std::pair<std::string, std::string>>& members) {
    std::string out;
    BundleWriter w(string_sink(&out));
    for (const auto& [name, data] : members) {
        auto st = w.add_member(name, as_bytes(data));
        EXPECT_TRUE(st.ok()) << st.error().message();
    }
    auto st = w.finish();
    EXPECT_TRUE(st.ok()) << st.error().message();
    return out;
}

// The zip CRC-32 (ISO-HDLC polynomial, reflected, ~0 in and out): the standard check value, and
// the same result for any split of the input, including pieces that are not a multiple of the
// 16- and 64-byte strides fast implementations fold by.
TEST(Crc32, CheckValueAndAnySplit) {
    const std::string check = "123456789";
    EXPECT_EQ(update_crc32(0, as_bytes(check)), 0xCBF43926u);
    EXPECT_EQ(update_crc32(0, {}), 0u);
    const std::string data = random_bytes(100000, 3);
    const uint32_t whole = update_crc32(0, as_bytes(data));
    for (size_t piece : {1u, 7u, 15u, 16u, 17u, 63u, 64u, 65u, 4095u, 65536u}) {
        uint32_t crc = 0;
        for (size_t at = 0; at < data.size(); at += piece)
            crc = update_crc32(crc, as_bytes(data).subspan(at, std::min(piece, data.size() - at)));
        EXPECT_EQ(crc, whole) << "pieces of " << piece;
    }
}

TEST(BundleWriter, RoundTripThroughReader) {
    const std::vector<std::pair<std::string, std::string>> members = {
        {"manifest.json", "{\"version\": 3}\n"},   {"EFI/", ""},
        {"EFI/boot.efi", random_bytes(100000, 1)}, {"empty", ""},
        {"system.img", random_bytes(3 << 20, 2)},
    };
    const std::string zip = make_bundle(members);
    auto r = read_all(zip);
    ASSERT_TRUE(r.ok()) << r.error().message();
    ASSERT_EQ(r->size(), members.size());
    for (size_t i = 0; i < members.size(); ++i) {
        const auto& m = (*r)[i];
        EXPECT_EQ(m.header.name, members[i].first);
        EXPECT_EQ(m.header.method, kMethodStored);
        EXPECT_FALSE(m.header.data_descriptor);
        // Sizes and CRC are known before the data: the installer relies on that.
        ASSERT_TRUE(m.header.size.has_value());
        EXPECT_EQ(*m.header.size, members[i].second.size());
        EXPECT_EQ(m.header.crc32, update_crc32(0, as_bytes(members[i].second)));
        EXPECT_EQ(m.data, members[i].second) << m.header.name;
    }
    EXPECT_TRUE((*r)[1].header.is_directory());
}

TEST(BundleWriter, OutputIsDeterministic) {
    const std::vector<std::pair<std::string, std::string>> members = {{"a", "1"}, {"b", "22"}};
    EXPECT_EQ(make_bundle(members), make_bundle(members));
}

TEST(BundleWriter, UnzipAcceptsOurBundles) {
    if (!have_program("unzip")) GTEST_SKIP() << "unzip not installed";
    TempDir dir;
    const std::string img = random_bytes(200000, 3);
    write_whole(dir / "b.zip", make_bundle({{"dir/", ""}, {"dir/img", img}, {"x", "hello"}}));
    const std::string cmd =
        "cd " + dir.path().string() +
        " && unzip -tq b.zip >/dev/null && mkdir out && cd out && unzip -q ../b.zip";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    EXPECT_EQ(read_whole(dir / "out/dir/img"), img);
    EXPECT_EQ(read_whole(dir / "out/x"), "hello");
}

TEST(BundleWriter, AddFileStreamsARegularFile) {
    TempDir dir;
    const std::string content = random_bytes((2 << 20) + 17, 4);
    write_whole(dir / "img", content);
    UniqueFd fd(::open((dir / "img").c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    std::string out;
    BundleWriter w(string_sink(&out));
    ASSERT_TRUE(w.add_file("system.img", fd.get()).ok());
    ASSERT_TRUE(w.finish().ok());
    EXPECT_EQ(w.bytes_written(), out.size());
    auto r = read_all(out);
    ASSERT_TRUE(r.ok()) << r.error().message();
    ASSERT_EQ(r->size(), 1u);
    EXPECT_EQ((*r)[0].data, content);
}

TEST(BundleWriter, AddFileRefusesNonRegularFiles) {
    std::string out;
    BundleWriter w(string_sink(&out));
    UniqueFd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    auto st = w.add_file("x", fd.get());
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message().find("regular file"), std::string::npos);
}

TEST(BundleWriter, RefusesBadNamesAndDuplicates) {
    std::string out;
    BundleWriter w(string_sink(&out));
    EXPECT_FALSE(w.add_member("../escape", as_bytes("x")).ok());
    EXPECT_FALSE(w.add_member("/abs", as_bytes("x")).ok());
    ASSERT_TRUE(w.add_member("a", as_bytes("x")).ok());
    auto dup = w.add_member("a/", as_bytes(""));
    ASSERT_FALSE(dup.ok());
    EXPECT_NE(dup.error().message().find("twice"), std::string::npos);
    EXPECT_FALSE(w.add_member("dir/", as_bytes("not empty")).ok());
}

TEST(BundleWriter, EnforcesAnnouncedSizeAndCrc) {
    std::string out;
    {
        BundleWriter w(string_sink(&out));
        ASSERT_TRUE(w.begin_member("a", 3, update_crc32(0, as_bytes("abc"))).ok());
        auto st = w.write(as_bytes("abcd"));
        ASSERT_FALSE(st.ok());
        EXPECT_NE(st.error().message().find("more data"), std::string::npos);
    }
    {
        BundleWriter w(string_sink(&out));
        ASSERT_TRUE(w.begin_member("a", 3, update_crc32(0, as_bytes("abc"))).ok());
        ASSERT_TRUE(w.write(as_bytes("ab")).ok());
        auto st = w.end_member();
        ASSERT_FALSE(st.ok());
        EXPECT_NE(st.error().message().find("2 were written"), std::string::npos);
    }
    {
        BundleWriter w(string_sink(&out));
        ASSERT_TRUE(w.begin_member("a", 3, 0x12345678).ok());
        ASSERT_TRUE(w.write(as_bytes("abc")).ok());
        auto st = w.end_member();
        ASSERT_FALSE(st.ok());
        EXPECT_NE(st.error().message().find("CRC-32"), std::string::npos);
        EXPECT_FALSE(w.finish().ok());  // a failed writer finishes nothing
    }
}

TEST(BundleWriter, Crc32MatchesKnownValue) {
    // The CRC-32 check value of "123456789" (APPNOTE 4.4.7 uses the standard polynomial).
    EXPECT_EQ(update_crc32(0, as_bytes("123456789")), 0xcbf43926u);
    EXPECT_EQ(update_crc32(update_crc32(0, as_bytes("12345")), as_bytes("6789")), 0xcbf43926u);
    EXPECT_EQ(crc32_of_zeros(12345), update_crc32(0, as_bytes(std::string(12345, '\0'))));
}

}  // namespace
}  // namespace activate::bundle::test
