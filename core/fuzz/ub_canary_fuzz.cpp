// A fuzz target with undefined behaviour on purpose, built only with -DACTIVATE_FUZZ=ON:
// scripts/fuzz.sh runs it on an input that triggers it and fails unless the run fails. It proves
// that the fuzz build makes UB fatal (-fno-sanitize-recover=all); UBSan's default is to report
// and go on, and libFuzzer then exits 0, so a real finding could pass unnoticed.
#include <cstddef>
#include <cstdint>
#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < sizeof(int32_t)) return 0;
    int32_t value;
    std::memcpy(&value, data, sizeof value);
    // Signed overflow for INT32_MIN (C++20 [expr.pre]/4), the bug netcapture's rtnl_dump had.
    volatile int32_t negated = -value;
    (void)negated;
    return 0;
}
