// Fuzzes BundleReader over arbitrary bytes: it must return errors, never crash, hang or read out
// of bounds, and reading must stay bounded (at most a few MiB of output per input).
#include <activate/bundle/reader.hpp>
#include <cstddef>
#include <cstdint>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace activate::bundle;
    auto reader = BundleReader::open(memory_source(std::span<const uint8_t>(data, size)));
    if (!reader.ok()) return 0;
    std::vector<uint8_t> buf(4096);
    uint64_t total = 0;
    // Deflate can expand ~1000x; cap the work per input.
    for (int members = 0; members < 64; ++members) {
        auto h = reader->next();
        if (!h.ok() || !*h) break;
        while (total < (8u << 20)) {
            auto n = reader->read(buf);
            if (!n.ok() || *n == 0) break;
            total += *n;
        }
        if (total >= (8u << 20)) break;
    }
    return 0;
}
