// The copy pipeline on its own: order, the last chunk held back until the check passed, each
// stage's error ending the copy, and buffers never refilled while a slow stage still reads them.
#include "chunk_pipeline.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <string>
#include <thread>

namespace activate::bundle {
namespace {

constexpr size_t kChunk = 4096;

std::string random_bytes(size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::string out(n, '\0');
    for (char& c : out) c = static_cast<char>(rng());
    return out;
}

std::string as_string(std::span<const uint8_t> data) {
    return std::string(reinterpret_cast<const char*>(data.data()), data.size());
}

// A stream over `data` whose reads return uneven pieces, as sockets and pipes do.
struct Stream {
    const std::string& data;
    size_t at = 0;
    std::atomic<int> fills{0};
    std::mt19937 rng{7};

    Result<ChunkStages::Filled> fill(std::span<uint8_t> buf) {
        ++fills;
        size_t size = 0;
        while (size < buf.size() && at < data.size()) {
            const size_t piece = std::min({buf.size() - size, data.size() - at,
                                           size_t{1} + rng() % 1500});
            std::copy_n(data.data() + at, piece, buf.data() + size);
            size += piece;
            at += piece;
        }
        return ChunkStages::Filled{size, at == data.size()};
    }
};

void jitter(std::mt19937& rng) {
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 300));
}

TEST(ChunkPipeline, CopiesInOrderAndDigestsTheSameBytes) {
    const std::string data = random_bytes(10 * kChunk + 123, 1);
    Stream stream{data};
    std::string digested, sunk;
    std::mt19937 digest_rng(2), sink_rng(3);
    ChunkStages stages;
    stages.fill = [&](std::span<uint8_t> b) { return stream.fill(b); };
    // Both slow and uneven: a buffer refilled too early would show up as wrong bytes.
    stages.digest = [&](std::span<const uint8_t> c) {
        jitter(digest_rng);
        digested += as_string(c);
    };
    stages.check = [&] { return Status(); };
    stages.sink = [&](std::span<const uint8_t> c) -> Status {
        EXPECT_LE(c.size(), kChunk);
        jitter(sink_rng);
        sunk += as_string(c);
        return {};
    };
    auto n = run_chunk_pipeline(stages, kChunk);
    ASSERT_TRUE(n.ok()) << n.error().message();
    EXPECT_EQ(*n, data.size());
    EXPECT_EQ(sunk, data);
    EXPECT_EQ(digested, data);
}

TEST(ChunkPipeline, WithoutDigestCopiesAnEmptyAndAnExactMultipleStream) {
    for (size_t size : {size_t{0}, 3 * kChunk}) {
        const std::string data = random_bytes(size, 4);
        Stream stream{data};
        std::string sunk;
        int checks = 0, sinks = 0;
        ChunkStages stages;
        stages.fill = [&](std::span<uint8_t> b) { return stream.fill(b); };
        stages.check = [&] {
            ++checks;
            return Status();
        };
        stages.sink = [&](std::span<const uint8_t> c) -> Status {
            ++sinks;
            EXPECT_FALSE(c.empty());
            sunk += as_string(c);
            return {};
        };
        auto n = run_chunk_pipeline(stages, kChunk);
        ASSERT_TRUE(n.ok()) << n.error().message();
        EXPECT_EQ(*n, size);
        EXPECT_EQ(sunk, data);
        EXPECT_EQ(checks, 1);
        EXPECT_EQ(sinks, static_cast<int>(size / kChunk));
    }
}

TEST(ChunkPipeline, TheLastChunkWaitsForTheCheckAndAFailedCheckKeepsIt) {
    const std::string data = random_bytes(5 * kChunk + 17, 5);
    for (bool passes : {true, false}) {
        Stream stream{data};
        std::string digested, sunk;
        ChunkStages stages;
        stages.fill = [&](std::span<uint8_t> b) { return stream.fill(b); };
        stages.digest = [&](std::span<const uint8_t> c) { digested += as_string(c); };
        stages.check = [&]() -> Status {
            // Every byte was digested; the sink has all but the last chunk.
            EXPECT_EQ(digested, data);
            EXPECT_EQ(sunk, data.substr(0, 5 * kChunk));
            if (passes) return {};
            return Error(ErrorKind::rejected, "digest mismatch");
        };
        stages.sink = [&](std::span<const uint8_t> c) -> Status {
            sunk += as_string(c);
            return {};
        };
        auto n = run_chunk_pipeline(stages, kChunk);
        if (passes) {
            ASSERT_TRUE(n.ok()) << n.error().message();
            EXPECT_EQ(sunk, data);
        } else {
            ASSERT_FALSE(n.ok());
            EXPECT_EQ(n.error().message(), "digest mismatch");
            EXPECT_EQ(sunk.size(), 5 * kChunk);
        }
    }
}

TEST(ChunkPipeline, AFailedFillEndsTheCopyAfterTheChunksBeforeIt) {
    const std::string data = random_bytes(8 * kChunk, 6);
    Stream stream{data};
    std::string sunk;
    ChunkStages stages;
    stages.fill = [&](std::span<uint8_t> b) -> Result<ChunkStages::Filled> {
        if (stream.at == 3 * kChunk) return Error(ErrorKind::input, "CRC-32 mismatch");
        return stream.fill(b);
    };
    stages.digest = [](std::span<const uint8_t>) {};
    stages.check = [] {
        ADD_FAILURE() << "checked a stream that did not end";
        return Status();
    };
    stages.sink = [&](std::span<const uint8_t> c) -> Status {
        sunk += as_string(c);
        return {};
    };
    auto n = run_chunk_pipeline(stages, kChunk);
    ASSERT_FALSE(n.ok());
    EXPECT_EQ(n.error().message(), "CRC-32 mismatch");
    EXPECT_EQ(sunk, data.substr(0, 3 * kChunk));
}

TEST(ChunkPipeline, AFailedSinkStopsTheReaderWithinTheBuffers) {
    const std::string data = random_bytes(100 * kChunk, 7);
    Stream stream{data};
    int sinks = 0;
    ChunkStages stages;
    stages.fill = [&](std::span<uint8_t> b) { return stream.fill(b); };
    stages.digest = [](std::span<const uint8_t>) {};
    stages.check = [] { return Status(); };
    stages.sink = [&](std::span<const uint8_t>) -> Status {
        if (++sinks == 2) return Error(ErrorKind::activation, "disk full");
        return {};
    };
    const size_t depth = 3;
    auto n = run_chunk_pipeline(stages, kChunk, depth);
    ASSERT_FALSE(n.ok());
    EXPECT_EQ(n.error().message(), "disk full");
    // The reader may be at most `depth` chunks ahead of the chunk the sink refused.
    EXPECT_LE(stream.fills.load(), static_cast<int>(2 + depth));
}

}  // namespace
}  // namespace activate::bundle
