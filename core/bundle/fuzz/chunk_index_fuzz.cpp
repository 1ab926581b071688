// Fuzzes a manifest member's chunk fields (parse_chunk_digests) and the chunk index derived from
// them: the input is the member size (8 bytes LE), the chunk size (8 bytes LE) and the packed
// digests. Whatever is accepted must have one digest per chunk, and the chunks must tile the
// member exactly: contiguous, full-sized but the last, nothing beyond the size.
#include <activate/bundle/manifest.hpp>
#include <activate/byte_order.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace activate::bundle;
    using activate::load_le64;
    if (size < 16) return 0;
    const uint64_t member_size = load_le64(data);
    const uint64_t chunk_size = load_le64(data + 8);
    const std::span<const uint8_t> packed(data + 16, size - 16);
    auto chunks = parse_chunk_digests(member_size, chunk_size, packed, "member \"m\"");
    if (!chunks.ok()) {
        check(chunks.error().kind() == activate::ErrorKind::rejected);
        check(chunks.error().message().find("member \"m\": ") == 0);
        return 0;
    }
    check(chunk_size >= kMinChunkSize && chunk_size <= kMaxChunkSize);
    check(chunks->size() * 32 == packed.size());
    const ManifestMember m{"m", member_size, uint32_t(chunk_size), *chunks};
    check(m.chunk_count() == chunks->size());
    uint64_t covered = 0;
    for (uint64_t i = 0; i < m.chunk_count(); ++i) {
        check(m.chunk_offset(i) == covered);
        const size_t length = m.chunk_length(i);
        check(length > 0 && length <= chunk_size);
        if (i + 1 < m.chunk_count()) check(length == chunk_size);
        check(std::memcmp((*chunks)[i].data(), packed.data() + 32 * i, 32) == 0);
        covered += length;
    }
    check(covered == member_size);
    check(m.chunk_length(m.chunk_count()) == 0);
    return 0;
}
