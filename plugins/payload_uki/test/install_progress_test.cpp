// The install progress record (install_progress.hpp): its bytes round trip, a record for another
// bundle, slot, partition, member or chunk size resumes nothing, and bytes that are not a complete
// record (garbage, any truncation, a bad field) are refused, and read back as no record with a
// warning naming the file.
#include <gtest/gtest.h>

#include <payload_uki/install_progress.hpp>

#include "test_support.hpp"

namespace activate::uki {
namespace {

using namespace testing;

InstallProgress sample() {
    return {std::string(64, 'a'), 'B', 1 << 20, "verity_rootfs.img", 4 << 20, 7};
}

TEST(InstallProgress, RoundTrip) {
    const InstallProgress p = sample();
    auto back = parse_install_progress(encode_install_progress(p));
    ASSERT_TRUE(back.ok()) << back.error().message();
    EXPECT_EQ(*back, p);
}

// Updates overwrite the record in place: every count encodes to the same whole sectors.
TEST(InstallProgress, EveryCountHasTheSameLength) {
    InstallProgress p = sample();
    const size_t size = encode_install_progress(p).size();
    EXPECT_EQ(size % 512, 0u);
    for (uint64_t chunks : {uint64_t(0), uint64_t(99999), UINT64_MAX}) {
        p.chunks = chunks;
        EXPECT_EQ(encode_install_progress(p).size(), size) << chunks;
    }
    p.member = std::string(2000, 'm');
    EXPECT_EQ(encode_install_progress(p).size() % 512, 0u);
    EXPECT_GT(encode_install_progress(p).size(), 2000u);
}

TEST(InstallProgress, OnlyTheSameBundleSlotAndMemberResume) {
    const InstallProgress p = sample();
    const std::string digest(64, 'a');
    EXPECT_EQ(resumable_chunks(p, digest, 'B', 1 << 20, "verity_rootfs.img", 4 << 20, 10), 7u);
    EXPECT_EQ(resumable_chunks(p, digest, 'B', 1 << 20, "verity_rootfs.img", 4 << 20, 7), 7u);
    EXPECT_EQ(
        resumable_chunks(p, std::string(64, 'b'), 'B', 1 << 20, "verity_rootfs.img", 4 << 20, 10),
        0u);
    EXPECT_EQ(resumable_chunks(p, digest, 'A', 1 << 20, "verity_rootfs.img", 4 << 20, 10), 0u);
    EXPECT_EQ(resumable_chunks(p, digest, 'B', 2 << 20, "verity_rootfs.img", 4 << 20, 10), 0u);
    EXPECT_EQ(resumable_chunks(p, digest, 'B', 1 << 20, "other.img", 4 << 20, 10), 0u);
    EXPECT_EQ(resumable_chunks(p, digest, 'B', 1 << 20, "verity_rootfs.img", 1 << 20, 10), 0u);
    // More chunks than the member has: not this member.
    EXPECT_EQ(resumable_chunks(p, digest, 'B', 1 << 20, "verity_rootfs.img", 4 << 20, 6), 0u);
}

TEST(InstallProgress, GarbageTruncationsAndBadFieldsAreRefused) {
    for (const std::string& text : {std::string(), std::string("garbage"), std::string("[]"),
                                    std::string("{}"), std::string(1000, '\xff')})
        EXPECT_FALSE(parse_install_progress(text).ok()) << text;
    const std::string good = encode_install_progress(sample());
    // Every truncation that still parses as JSON lacks a field, and every other one is not JSON
    // (only the padding after the object may go).
    const size_t object_end = good.rfind('}') + 1;
    for (size_t n = 0; n < object_end; ++n)
        EXPECT_FALSE(parse_install_progress(good.substr(0, n)).ok()) << good.substr(0, n);
    auto with = [&](const std::string& from, const std::string& to) {
        std::string t = good;
        const size_t at = t.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        return t.replace(at, from.size(), to);
    };
    for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
             {"\"format\": 1", "\"format\": 2"},
             {std::string(64, 'a'), std::string(63, 'a')},
             {std::string(64, 'a'), std::string(64, 'A')},
             {"\"B\"", "\"C\""},
             {"\"chunks_synced\": 7", "\"chunks_synced\": -7"},
             {"\"chunks_synced\": 7", "\"chunks_synced\": \"7\""},
             {"\"chunk_size\": 4194304", "\"chunk_size\": 0"},
             {"\"chunk_size\": 4194304", "\"chunk_size\": 4294967296"},
             {"\"verity_rootfs.img\"", "\"\""}}) {
        auto r = parse_install_progress(with(from, to));
        EXPECT_FALSE(r.ok()) << from << " -> " << to;
    }
}

TEST(InstallProgress, ReadIgnoresBadBytesWithAWarningNamingTheFile) {
    TempDir dir;
    const Sysroot sysroot(dir.path());
    Logger logger(LogLevel::debug);
    const Log log(&logger, "test");
    ::testing::internal::CaptureStderr();
    EXPECT_FALSE(read_install_progress(sysroot, "/install-progress.json", log));
    EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
    ASSERT_TRUE(write_install_progress(sysroot, "/install-progress.json", sample()).ok());
    auto back = read_install_progress(sysroot, "/install-progress.json", log);
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, sample());
    write_file(dir.path() / "install-progress.json", "{\"format\": 1, \"slot\": \"B\"");
    ::testing::internal::CaptureStderr();
    EXPECT_FALSE(read_install_progress(sysroot, "/install-progress.json", log));
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("warning: ignoring /install-progress.json"), std::string::npos) << err;
    EXPECT_NE(err.find("written from its start"), std::string::npos) << err;
}

}  // namespace
}  // namespace activate::uki
