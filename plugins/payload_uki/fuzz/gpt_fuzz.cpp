// libFuzzer target: the GPT reader over arbitrary disk contents, at every sector size it accepts.
// Random bytes almost never carry valid CRCs, so each input is also parsed with its header and
// entry-array CRCs repaired, which lets the fuzzer reach the range and overlap checks behind them.
// Invariants checked beyond "no crash": returned partitions lie in the usable range, in entry
// order, and do not overlap.
#include <cstdlib>
#include <cstring>
#include <payload_uki/gpt.hpp>
#include <vector>

using namespace activate::uki;

namespace {

uint64_t load(const uint8_t* p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= uint64_t{p[i]} << (8 * i);
    return v;
}

void store32(uint8_t* p, uint32_t v) {
    for (size_t i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// Recomputes PartitionEntryArrayCRC32 and HeaderCRC32 (UEFI 2.10 §5.3.2) of a header at `at`.
void repair(std::vector<uint8_t>& d, uint64_t at, uint32_t ss) {
    if (at > d.size() || d.size() - at < ss || std::memcmp(&d[at], "EFI PART", 8) != 0) return;
    uint8_t* h = &d[at];
    const uint64_t hsize = load(h + 12, 4);
    if (hsize < 92 || hsize > ss) return;
    const uint64_t lba = load(h + 72, 8), count = load(h + 80, 4), esize = load(h + 84, 4);
    const uint64_t bytes = count * esize;
    if (bytes <= kGptMaxEntryArrayBytes && lba < d.size() / ss && bytes <= d.size() - lba * ss)
        store32(h + 88, gpt_crc32({&d[lba * ss], bytes}));
    store32(h + 16, 0);
    store32(h + 16, gpt_crc32({h, hsize}));
}

void check(const std::vector<uint8_t>& data, uint32_t ss) {
    SpanReader reader(data, "fuzz");
    auto table = read_gpt(reader, ss);
    if (!table.ok()) return;
    uint32_t previous = 0;
    for (const auto& p : table->partitions) {
        if (p.first_lba < table->header.first_usable_lba ||
            p.last_lba > table->header.last_usable_lba || p.first_lba > p.last_lba ||
            p.number <= previous)
            std::abort();
        previous = p.number;
        for (const auto& q : table->partitions)
            if (&p != &q && p.first_lba <= q.last_lba && q.first_lba <= p.last_lba) std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::vector<uint8_t> raw(data, data + size);
    for (uint32_t ss : {0u, 512u, 4096u}) check(raw, ss);
    for (uint32_t ss : {512u, 4096u}) {
        if (size / ss < 3) continue;
        std::vector<uint8_t> fixed = raw;
        repair(fixed, ss, ss);
        repair(fixed, (size / ss - 1) * ss, ss);
        check(fixed, ss);
        check(fixed, 0);
    }
    return 0;
}
