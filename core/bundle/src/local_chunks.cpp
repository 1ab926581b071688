// See local_chunks.hpp: run_chunk_pipeline() with a reader that preads local chunks and
// verifiers that only record whether each matched, so that a mismatch is a finding, not an error.
#include <unistd.h>

#include <activate/bundle/local_chunks.hpp>
#include <activate/bundle/sha256.hpp>
#include <cerrno>
#include <vector>

#include "chunk_pipeline.hpp"

namespace activate::bundle {

Status check_local_chunks(const ManifestMember& member, std::span<const ChunkLocation> where,
                          const LocalChunkVisitor& each) {
    if (where.empty()) return {};
    // One element per chunk, each written by one verifier; the pipeline hands it to the sink
    // through its lock.
    std::vector<uint8_t> matches(where.size(), 0);
    size_t filled = 0, visited = 0;
    bool stopped = false;
    ChunkStages stages;
    stages.fill = [&](std::span<uint8_t> buf) -> Result<ChunkStages::Filled> {
        const ChunkLocation& c = where[filled];
        const size_t length = member.chunk_length(c.index);
        size_t done = 0;
        while (done < length) {
            const ssize_t n =
                ::pread(c.fd, buf.data() + done, length - done, off_t(c.offset + done));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0)
                return errno_error(
                    ErrorKind::activation,
                    "reading " + *c.disk + " at offset " + std::to_string(c.offset + done),
                    n < 0 ? errno : EIO);
            done += size_t(n);
        }
        ++filled;
        return ChunkStages::Filled{length, filled == where.size()};
    };
    stages.verify = [&](uint64_t k, std::span<const uint8_t> bytes) -> Status {
        Sha256 hash;
        hash.update(bytes);
        ACTIVATE_ASSIGN(Sha256Digest digest, hash.finish());
        matches[k] = digest == member.chunks[where[k].index];
        return {};
    };
    stages.check = [] { return Status(); };
    stages.sink = [&](std::span<const uint8_t> bytes) -> Status {
        const size_t k = visited++;
        ACTIVATE_ASSIGN(bool go_on, each(where[k].index, bytes, matches[k] != 0));
        if (go_on) return {};
        stopped = true;
        return Error(ErrorKind::internal, "stopped by the visitor");
    };
    auto walked = run_chunk_pipeline(stages, member.chunk_size, default_verifier_count());
    if (!walked.ok() && !stopped) return std::move(walked).error();
    return {};
}

}  // namespace activate::bundle
