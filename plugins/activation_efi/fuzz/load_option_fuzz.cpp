// Fuzzes EFI_LOAD_OPTION decoding (UEFI 2.10 §3.1.3): no crash on any input, and whatever decodes
// re-encodes to the same bytes and renders as text.
#include <activation_efi/load_option.hpp>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    auto option = activate::efi::decode_load_option(bytes);
    if (!option.ok()) return 0;
    auto encoded = activate::efi::encode_load_option(*option);
    if (!encoded.ok() || *encoded != bytes) std::abort();
    (void)activate::efi::to_text(option->file_path);
    (void)option->description_utf8();
    return 0;
}
