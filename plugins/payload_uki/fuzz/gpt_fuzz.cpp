// libFuzzer target: the GPT reader over arbitrary disk contents, at every sector size it accepts.
// Invariants checked beyond "no crash": returned partitions lie in the usable range, in order of
// entry number, and do not overlap.
#include <cstdlib>
#include <payload_uki/gpt.hpp>

using activate::payload_uki::read_gpt;
using activate::payload_uki::SpanReader;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    SpanReader reader({data, size}, "fuzz");
    for (uint32_t ss : {0u, 512u, 4096u}) {
        auto table = read_gpt(reader, ss);
        if (!table.ok()) continue;
        uint32_t previous = 0;
        for (const auto& p : table->partitions) {
            if (p.first_lba < table->header.first_usable_lba ||
                p.last_lba > table->header.last_usable_lba || p.first_lba > p.last_lba ||
                p.number <= previous)
                std::abort();
            previous = p.number;
            for (const auto& q : table->partitions)
                if (&p != &q && p.first_lba <= q.last_lba && q.first_lba <= p.last_lba)
                    std::abort();
        }
    }
    return 0;
}
