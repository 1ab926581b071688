// The copy pipeline on its own: order, every chunk held back until it was verified (the last
// until the check passed too), verification on several threads at once, each stage's error
// ending the copy, and buffers never refilled while a slow stage still reads them.
#include "chunk_pipeline.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

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
            const size_t piece =
                std::min({buf.size() - size, data.size() - at, size_t{1} + rng() % 1500});
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

// Verified chunks, by index, from any number of verifying threads.
struct Verified {
    std::mutex mutex;
    std::vector<std::string> chunks;
    void add(uint64_t index, std::span<const uint8_t> c) {
        std::lock_guard lock(mutex);
        if (chunks.size() <= index) chunks.resize(index + 1);
        chunks[index] = as_string(c);
    }
    std::string joined() {
        std::string out;
        for (const std::string& c : chunks) out += c;
        return out;
    }
};

TEST(ChunkPipeline, CopiesInOrderAndVerifiesTheSameBytes) {
    for (size_t verifiers : {1, 2, 4}) {
        SCOPED_TRACE(std::to_string(verifiers) + " verifiers");
        const std::string data = random_bytes(10 * kChunk + 123, 1);
        Stream stream{data};
        Verified verified;
        std::string sunk;
        std::mt19937 sink_rng(3);
        std::atomic<unsigned> seed{2};
        ChunkStages stages;
        stages.fill = [&](std::span<uint8_t> b) { return stream.fill(b); };
        // Both slow and uneven: a buffer refilled too early would show up as wrong bytes.
        stages.verify = [&](uint64_t index, std::span<const uint8_t> c) -> Status {
            std::mt19937 rng(seed++);
            jitter(rng);
            verified.add(index, c);
            return {};
        };
        stages.check = [&] { return Status(); };
        stages.sink = [&](std::span<const uint8_t> c) -> Status {
            EXPECT_LE(c.size(), kChunk);
            // Each chunk reaches the sink only after it was verified.
            {
                std::lock_guard lock(verified.mutex);
                EXPECT_GT(verified.chunks.size(), sunk.size() / kChunk);
                EXPECT_EQ(verified.chunks[sunk.size() / kChunk], as_string(c));
            }
            jitter(sink_rng);
            sunk += as_string(c);
            return {};
        };
        auto n = run_chunk_pipeline(stages, kChunk, verifiers);
        ASSERT_TRUE(n.ok()) << n.error().message();
        EXPECT_EQ(*n, data.size());
        EXPECT_EQ(sunk, data);
        EXPECT_EQ(verified.joined(), data);
    }
}

TEST(ChunkPipeline, WithoutVerifyCopiesAnEmptyAndAnExactMultipleStream) {
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
        Verified verified;
        std::string sunk;
        ChunkStages stages;
        stages.fill = [&](std::span<uint8_t> b) { return stream.fill(b); };
        stages.verify = [&](uint64_t index, std::span<const uint8_t> c) -> Status {
            verified.add(index, c);
            return {};
        };
        stages.check = [&]() -> Status {
            // Every byte was verified; the sink has all but the last chunk.
            EXPECT_EQ(verified.joined(), data);
            EXPECT_EQ(sunk, data.substr(0, 5 * kChunk));
            if (passes) return {};
            return Error(ErrorKind::rejected, "size mismatch");
        };
        stages.sink = [&](std::span<const uint8_t> c) -> Status {
            sunk += as_string(c);
            return {};
        };
        auto n = run_chunk_pipeline(stages, kChunk, 2);
        if (passes) {
            ASSERT_TRUE(n.ok()) << n.error().message();
            EXPECT_EQ(sunk, data);
        } else {
            ASSERT_FALSE(n.ok());
            EXPECT_EQ(n.error().message(), "size mismatch");
            EXPECT_EQ(sunk.size(), 5 * kChunk);
        }
    }
}

// Chunk 3 fails, slowly, while later chunks verify at once on other threads (and chunk 5 fails
// too): the sink gets exactly chunks 0-2, and the error is chunk 3's, the first in stream order.
TEST(ChunkPipeline, AFailedVerifyKeepsThatChunkAndEveryLaterOneFromTheSink) {
    for (size_t verifiers : {1, 4}) {
        SCOPED_TRACE(std::to_string(verifiers) + " verifiers");
        const std::string data = random_bytes(20 * kChunk, 8);
        Stream stream{data};
        std::string sunk;
        ChunkStages stages;
        stages.fill = [&](std::span<uint8_t> b) { return stream.fill(b); };
        stages.verify = [&](uint64_t index, std::span<const uint8_t>) -> Status {
            if (index == 3) {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
                return Error(ErrorKind::rejected, "chunk 3 is bad");
            }
            if (index == 5) return Error(ErrorKind::rejected, "chunk 5 is bad");
            return {};
        };
        stages.check = [] {
            ADD_FAILURE() << "checked a stream that failed";
            return Status();
        };
        stages.sink = [&](std::span<const uint8_t> c) -> Status {
            sunk += as_string(c);
            return {};
        };
        auto n = run_chunk_pipeline(stages, kChunk, verifiers);
        ASSERT_FALSE(n.ok());
        EXPECT_EQ(n.error().message(), "chunk 3 is bad");
        EXPECT_EQ(sunk, data.substr(0, 3 * kChunk));
    }
}

// The pool really verifies several chunks at once (and no more than it has threads).
TEST(ChunkPipeline, VerifiersRunConcurrently) {
    const std::string data = random_bytes(16 * kChunk, 9);
    Stream stream{data};
    std::atomic<int> running{0}, most{0};
    ChunkStages stages;
    stages.fill = [&](std::span<uint8_t> b) { return stream.fill(b); };
    stages.verify = [&](uint64_t, std::span<const uint8_t>) -> Status {
        const int now = ++running;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        --running;
        return {};
    };
    stages.check = [] { return Status(); };
    stages.sink = [](std::span<const uint8_t>) -> Status { return {}; };
    auto n = run_chunk_pipeline(stages, kChunk, 3);
    ASSERT_TRUE(n.ok()) << n.error().message();
    EXPECT_GE(most.load(), 2);
    EXPECT_LE(most.load(), 3);
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
    stages.verify = [](uint64_t, std::span<const uint8_t>) { return Status(); };
    stages.check = [&] {
        ADD_FAILURE() << "checked a stream that did not end";
        return Status();
    };
    stages.sink = [&](std::span<const uint8_t> c) -> Status {
        sunk += as_string(c);
        return {};
    };
    auto n = run_chunk_pipeline(stages, kChunk, 2);
    ASSERT_FALSE(n.ok());
    EXPECT_EQ(n.error().message(), "CRC-32 mismatch");
    EXPECT_EQ(sunk, data.substr(0, 3 * kChunk));
}

TEST(ChunkPipeline, AFailedSinkStopsTheReaderWithinTheBuffers) {
    for (size_t verifiers : {1, 4}) {
        const std::string data = random_bytes(100 * kChunk, 7);
        Stream stream{data};
        int sinks = 0;
        ChunkStages stages;
        stages.fill = [&](std::span<uint8_t> b) { return stream.fill(b); };
        stages.verify = [](uint64_t, std::span<const uint8_t>) { return Status(); };
        stages.check = [] { return Status(); };
        stages.sink = [&](std::span<const uint8_t>) -> Status {
            if (++sinks == 2) return Error(ErrorKind::activation, "disk full");
            return {};
        };
        auto n = run_chunk_pipeline(stages, kChunk, verifiers);
        ASSERT_FALSE(n.ok());
        EXPECT_EQ(n.error().message(), "disk full");
        // The reader may be at most `verifiers + 2` buffers ahead of the chunk the sink refused.
        EXPECT_LE(stream.fills.load(), static_cast<int>(2 + verifiers + 2));
    }
}

}  // namespace
}  // namespace activate::bundle
