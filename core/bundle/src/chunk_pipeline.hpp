// A three-stage copy of a stream, chunk by chunk, for VerifyingReader::copy_to().
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
    // Sees every chunk once, in order, on a thread of its own, while `sink` writes the same
    // chunk. May be empty.
    std::function<void(std::span<const uint8_t>)> digest;
    // Runs on the calling thread once the last chunk was filled and digested and both threads
    // have ended, before the sink gets that chunk: a failed check keeps the stream's end from
    // the sink.
    std::function<Status()> check;
    // Gets every non-empty chunk once, in order, on the calling thread.
    std::function<Status(std::span<const uint8_t>)> sink;
};

// Runs the stages with `depth` buffers of `chunk_size` bytes, so reading the next chunks,
// digesting and writing this one overlap: a slow stage costs wall time only where it is the
// slowest. Returns the bytes the sink got. The first error of any stage ends the copy and is
// returned once both threads have stopped (each stops at its next chunk).
Result<uint64_t> run_chunk_pipeline(const ChunkStages& stages, size_t chunk_size,
                                    size_t depth = 3);

}  // namespace activate::bundle
