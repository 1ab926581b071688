// Fuzzes the newc reader: no input may crash it, and every archive it accepts must survive a
// rewrite with CpioWriter and a second read unchanged (the writer numbers members whose ino is 0).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <payload_embedded/cpio.hpp>
#include <string>

using activate::embedded::CpioArchive;
using activate::embedded::CpioEntry;
using activate::embedded::CpioWriter;

namespace {
[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "payload_embedded_cpio_fuzz: %s\n", what);
    std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto read =
        activate::embedded::read_cpio(std::string_view(reinterpret_cast<const char*>(data), size));
    if (!read.ok()) return 0;
    if (read->size > size || read->size % 4 != 0) fail("archive size out of range or unaligned");

    std::string rewritten;
    CpioWriter writer([&](std::string_view bytes) -> activate::Status {
        rewritten.append(bytes);
        return {};
    });
    for (const CpioEntry& entry : read->entries) {
        if (!writer.add(entry).ok()) fail("the writer refused a member the reader accepted");
    }
    if (!writer.finish().ok()) fail("finish failed");
    if (rewritten.size() != read->size) fail("rewritten archive has a different size");

    auto again = activate::embedded::read_cpio(rewritten);
    if (!again.ok()) fail("the rewritten archive does not read back");
    if (again->entries.size() != read->entries.size()) fail("member count changed");
    uint32_t next_ino = 1;
    for (size_t i = 0; i < read->entries.size(); ++i) {
        CpioEntry expected = read->entries[i];
        if (expected.ino == 0) expected.ino = next_ino++;
        if (!(again->entries[i] == expected)) fail("a member changed in the round trip");
    }
    return 0;
}
