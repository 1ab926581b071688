// UTF-16LE, the string encoding of EFI variables, device paths and GPT partition names (UEFI 2.10
// §2.3.1: CHAR16 is UCS-2/UTF-16, little-endian; §5.3.3 PartitionName). Shared by the efi and uki
// plugins. Strings are kept as code units so firmware data that is not
// valid UTF-16 still round-trips; conversion to UTF-8 is for display and comparison only.
#pragma once

#include <activate/result.hpp>
#include <string>
#include <string_view>

namespace activate {

// UTF-8 to UTF-16 code units; fails (ErrorKind::input) on malformed UTF-8 naming the offset.
Result<std::u16string> utf8_to_utf16(std::string_view utf8);
// UTF-16 code units to UTF-8; unpaired surrogates become U+FFFD.
std::string utf16_to_utf8(std::u16string_view utf16);

// Code units from little-endian bytes (a trailing odd byte is ignored) and back.
std::u16string utf16_from_le_bytes(std::string_view bytes);
std::string utf16_to_le_bytes(std::u16string_view utf16);

}  // namespace activate
