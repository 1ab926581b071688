// Fuzzes the takeover protocol's input: whatever arrives on stdin is decoded and checked, and an
// accepted message re-serializes to something that decodes to the same message.
#include <activate/takeover_protocol.hpp>

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view bytes(reinterpret_cast<const char*>(data), size);
    activate::Result<activate::wire::TakeoverInit> init = activate::parse_takeover_init(bytes);
    if (!init.ok()) return 0;
    activate::Result<activate::wire::TakeoverInit> again =
        activate::parse_takeover_init(init->SerializeAsString());
    if (!again.ok() || again->SerializeAsString() != init->SerializeAsString()) std::abort();
    return 0;
}
