// libFuzzer target: the PE reader and the UKI section selection over arbitrary bytes. Every
// section the parser returns must lie inside the input, so reading it can never go out of range.
#include <cstdlib>
#include <payload_uki/pe.hpp>
#include <payload_uki/uki.hpp>
#include <string_view>

using namespace activate::uki;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    SpanReader reader({data, size}, "fuzz.efi");
    auto image = parse_pe(reader);
    if (!image.ok()) return 0;
    for (const auto& s : image->sections) {
        if (s.file_length() > 0 && s.file_offset() + s.file_length() > size) std::abort();
    }
    auto uki = locate_uki_sections(*image, "fuzz.efi");
    if (!uki.ok()) return 0;
    if (uki->cmdline) {
        std::string_view raw(reinterpret_cast<const char*>(data) + uki->cmdline->file_offset(),
                             uki->cmdline->file_length());
        auto cmdline = finish_cmdline(raw, "fuzz.efi");
        if (cmdline.ok())
            for (unsigned char c : *cmdline)
                if (c < 0x20 || c == 0x7f) std::abort();
    }
    return 0;
}
