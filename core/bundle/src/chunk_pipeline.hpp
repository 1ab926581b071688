// A staged copy of a stream, chunk by chunk, for VerifyingReader::copy_to(): one thread reads,
// a small pool verifies chunks in parallel, the caller's thread writes them in order, each only
// once it was verified.
#pragma once

#include <activate/result.hpp>
#include <cstdint>
#include <functional>
#include <span>

namespace activate::bundle {

struct ChunkStages {
    struct Filled {
        size_t size;  // bytes put into the buffer
        bool end;     // the stream ended with them
    };
    // Fills a buffer with the stream's next bytes. Runs on a reader thread.
    std::function<Result<Filled>(std::span<uint8_t>)> fill;
    // Checks chunk `index` (counted from 0, including a final empty one); a failure keeps that
    // chunk and every later one from the sink. Runs on the verifying threads, several chunks at
    // once, so it must be safe to call concurrently. May be empty: every chunk passes.
    std::function<Status(uint64_t index, std::span<const uint8_t>)> verify;
    // Runs on the calling thread once the last chunk was filled and verified and all threads have
    // ended, before the sink gets that chunk: a failed check keeps the stream's end from the sink.
    std::function<Status()> check;
    // Gets every non-empty chunk once, in order, on the calling thread.
    std::function<Status(std::span<const uint8_t>)> sink;
};

// Verifying threads for `verify`: one per core, at most 4 (SHA-256 with the CPU's extensions runs
// at 1.3-1.7 GiB/s per core, so four outrun any disk an A/B slot lives on), at least 1.
size_t default_verifier_count();

// Runs the stages with `verifiers` verifying threads (ignored without `verify`) and
// verifiers + 2 buffers of `chunk_size` bytes (3 without `verify`): the reader fills the next
// chunks while others are verified and the sink writes the oldest, and each stage costs wall
// time only where it is the slowest. Memory is bounded by the buffers: the reader waits for the
// sink. Returns the bytes the sink got: exactly the chunks before the first that failed to fill
// or verify. The first such error (in stream order) or the sink's ends the copy and is returned
// once every thread has stopped (each stops at its next chunk).
Result<uint64_t> run_chunk_pipeline(const ChunkStages& stages, size_t chunk_size,
                                    size_t verifiers = 1);

}  // namespace activate::bundle
