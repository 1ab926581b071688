// Chunks of a signed member that are already on a local disk (a delta install's running or
// target slot, a resumed install's target, docs/bundle-format.md "Delta installs"): read in order
// and checked against the manifest's digests on every core, with the copy pipeline of
// VerifyingReader::copy_to().
#pragma once

#include <activate/bundle/manifest.hpp>
#include <activate/result.hpp>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

namespace activate::bundle {

// Where chunk `index` of a member lies: `length` bytes at `offset` of `fd` (named `disk` in
// errors; the string must outlive the call).
struct ChunkLocation {
    uint64_t index = 0;
    int fd = -1;
    const std::string* disk = nullptr;
    uint64_t offset = 0;
};

// Gets each chunk on the calling thread, in order: its index, its bytes (valid during the call)
// and whether they have the manifest's digest. Returning false stops the walk (not an error).
using LocalChunkVisitor =
    std::function<Result<bool>(uint64_t index, std::span<const uint8_t> bytes, bool matches)>;

// Reads the chunks of `member` at `where`, hashes several at once (default_verifier_count()
// threads) while the next one is read and the visitor handles the oldest, and hands them to
// `each` in the order of `where`. Memory: threads + 2 buffers of one chunk, whatever the count.
// A read error ends the walk with ErrorKind::activation naming the disk and offset.
Status check_local_chunks(const ManifestMember& member, std::span<const ChunkLocation> where,
                          const LocalChunkVisitor& each);

}  // namespace activate::bundle
