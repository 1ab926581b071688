// Fuzzes device path decoding and text rendering (UEFI 2.10 §10.3, §10.6): no crash on any
// input, and a decoded path re-encodes byte-exactly.
#include <activation_efi/device_path.hpp>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    auto path = activate::efi::decode_device_path(bytes);
    if (!path.ok()) return 0;
    if (activate::efi::encode_device_path(*path) != bytes) std::abort();
    (void)activate::efi::to_text(*path);
    for (const auto& node : path->nodes) {
        (void)activate::efi::as_hard_drive(node);
        (void)activate::efi::as_file_path(node);
    }
    return 0;
}
