// Little-endian loads and stores on byte strings: every integer in EFI variables, load options
// and device paths is little-endian (UEFI 2.10 §1.8.1).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace activate::efi {

// Callers check bounds first; these read exactly N bytes at `at`.
inline uint64_t load_le(std::string_view bytes, size_t at, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= uint64_t(static_cast<uint8_t>(bytes[at + i])) << (8 * i);
    return v;
}
inline uint16_t load_le16(std::string_view b, size_t at) { return uint16_t(load_le(b, at, 2)); }
inline uint32_t load_le32(std::string_view b, size_t at) { return uint32_t(load_le(b, at, 4)); }
inline uint64_t load_le64(std::string_view b, size_t at) { return load_le(b, at, 8); }

inline void append_le(std::string& out, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}
inline void append_le16(std::string& out, uint16_t v) { append_le(out, v, 2); }
inline void append_le32(std::string& out, uint32_t v) { append_le(out, v, 4); }
inline void append_le64(std::string& out, uint64_t v) { append_le(out, v, 8); }

}  // namespace activate::efi
