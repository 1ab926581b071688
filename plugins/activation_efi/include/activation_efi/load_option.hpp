// EFI_LOAD_OPTION, the content of Boot#### variables (UEFI 2.10 §3.1.3): attributes, the length
// of the device path list, a NUL-terminated UTF-16LE description, the device path list and
// optional data. Decode keeps every byte, so decode + encode reproduces the variable exactly.
#pragma once

#include <activate/result.hpp>
#include <activation_efi/device_path.hpp>
#include <cstdint>
#include <string>
#include <string_view>

namespace activate::efi {

// Attribute bits (§3.1.3).
inline constexpr uint32_t kLoadOptionActive = 0x00000001;
inline constexpr uint32_t kLoadOptionForceReconnect = 0x00000002;
inline constexpr uint32_t kLoadOptionHidden = 0x00000008;
inline constexpr uint32_t kLoadOptionCategoryMask = 0x00001F00;
inline constexpr uint32_t kLoadOptionCategoryBoot = 0x00000000;
inline constexpr uint32_t kLoadOptionCategoryApp = 0x00000100;

struct LoadOption {
    uint32_t attributes = kLoadOptionActive;
    std::u16string description;  // without the terminating NUL; code units as stored
    DevicePath file_path;
    std::string optional_data;

    bool active() const { return attributes & kLoadOptionActive; }
    // For display and comparison; invalid UTF-16 shows as U+FFFD.
    std::string description_utf8() const;
    bool operator==(const LoadOption&) const = default;
};

// Strict: the description must be NUL-terminated inside the buffer and FilePathListLength must
// fit and hold a well-formed device path list. Errors are ErrorKind::input with the byte offset.
Result<LoadOption> decode_load_option(std::string_view bytes);
// Fails only if the device path list is longer than FilePathListLength (u16) can say.
Result<std::string> encode_load_option(const LoadOption& option);

}  // namespace activate::efi
