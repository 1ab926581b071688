// check_local_chunks(): chunks read from two files at their offsets reach the visitor in the
// order asked, each with its bytes and whether it matched the manifest (a mismatch is a finding,
// not an error); the visitor can stop the walk; a chunk beyond the file's end is a read error
// naming the file.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <activate/bundle/local_chunks.hpp>
#include <activate/fd.hpp>
#include <activate_test/support.hpp>
#include <random>
#include <string>
#include <vector>

namespace activate::bundle {
namespace {

constexpr uint32_t kChunk = 4096;

std::string random_bytes(size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::string out(n, '\0');
    for (char& c : out) c = static_cast<char>(rng());
    return out;
}

ManifestMember member_of(const std::string& image) {
    ChunkDigester digester(kChunk);
    digester.update(std::span(reinterpret_cast<const uint8_t*>(image.data()), image.size()));
    ManifestMember m{"image", image.size(), kChunk, {}};
    m.chunks = *digester.finish();
    return m;
}

struct Seen {
    uint64_t index;
    std::string bytes;
    bool matches;
};

class LocalChunks : public ::testing::Test {
  protected:
    void SetUp() override {
        // 40 chunks, the last one short. File a holds the image at byte 1000 with chunks 4 and
        // 17 changed; file b holds it at byte 0, unchanged.
        image_ = random_bytes(39 * kChunk + 123, 5);
        std::string a = std::string(1000, 'x') + image_;
        a[1000 + 4 * kChunk + 9] ^= 1;
        a[1000 + 17 * kChunk] ^= 1;
        test_support::write_file(dir_ / "a", a);
        test_support::write_file(dir_ / "b", image_);
        fd_a_.reset(::open((dir_ / "a").c_str(), O_RDONLY | O_CLOEXEC));
        fd_b_.reset(::open((dir_ / "b").c_str(), O_RDONLY | O_CLOEXEC));
        ASSERT_TRUE(fd_a_ && fd_b_);
        member_ = member_of(image_);
    }
    ChunkLocation in_a(uint64_t i) const { return {i, fd_a_.get(), &name_a_, 1000 + i * kChunk}; }
    ChunkLocation in_b(uint64_t i) const { return {i, fd_b_.get(), &name_b_, i * kChunk}; }
    std::string chunk(uint64_t i) const { return image_.substr(i * kChunk, kChunk); }

    test_support::TempDir dir_{"local-chunks-test"};
    std::string image_, name_a_ = "file a", name_b_ = "file b";
    UniqueFd fd_a_, fd_b_;
    ManifestMember member_;
};

TEST_F(LocalChunks, EachChunkInOrderWithWhetherItMatched) {
    std::vector<ChunkLocation> where;
    for (uint64_t i = 0; i < member_.chunk_count(); ++i)
        where.push_back(i % 2 == 0 ? in_a(i) : in_b(i));
    std::vector<Seen> seen;
    auto walked = check_local_chunks(
        member_, where, [&](uint64_t i, std::span<const uint8_t> bytes, bool matches) {
            seen.push_back({i,
                            std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                            matches});
            return Result<bool>(true);
        });
    ASSERT_TRUE(walked.ok()) << walked.error().message();
    ASSERT_EQ(seen.size(), 40u);
    for (uint64_t i = 0; i < 40; ++i) {
        EXPECT_EQ(seen[i].index, i);
        // Chunk 4 is read from file a, where it changed; chunk 17 from file b, where it did not.
        EXPECT_EQ(seen[i].matches, i != 4) << i;
        if (i != 4) {
            EXPECT_EQ(seen[i].bytes, chunk(i)) << i;
        }
    }
    EXPECT_EQ(seen[39].bytes.size(), 123u);
}

TEST_F(LocalChunks, TheVisitorStopsTheWalk) {
    std::vector<ChunkLocation> where;
    for (uint64_t i = 0; i < member_.chunk_count(); ++i) where.push_back(in_a(i));
    uint64_t last = 0;
    auto walked =
        check_local_chunks(member_, where, [&](uint64_t i, std::span<const uint8_t>, bool matches) {
            last = i;
            return Result<bool>(matches);
        });
    ASSERT_TRUE(walked.ok()) << walked.error().message();
    EXPECT_EQ(last, 4u);
}

TEST_F(LocalChunks, AChunkBeyondTheFileIsAReadErrorNamingIt) {
    std::vector<ChunkLocation> where = {in_b(0), {1, fd_b_.get(), &name_b_, image_.size()}};
    int visited = 0;
    auto walked = check_local_chunks(member_, where, [&](uint64_t, std::span<const uint8_t>, bool) {
        ++visited;
        return Result<bool>(true);
    });
    ASSERT_FALSE(walked.ok());
    EXPECT_EQ(walked.error().kind(), ErrorKind::activation);
    EXPECT_NE(
        walked.error().message().find("reading file b at offset " + std::to_string(image_.size())),
        std::string::npos)
        << walked.error().message();
    EXPECT_EQ(visited, 1);
}

}  // namespace
}  // namespace activate::bundle
