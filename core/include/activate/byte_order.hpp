// Fixed-width integers in byte strings, the one place that knows byte order. The on-disk and
// firmware formats here are little-endian by definition whatever the host (zip: APPNOTE 4.4.1.1;
// GPT and EFI variables: UEFI 2.10 §1.8.1, §5.3; PE: the PE/COFF spec); the management socket's
// frame length is big-endian (network order). Callers check bounds first: these touch exactly
// sizeof(T) bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

namespace activate {

template <class T>
constexpr T load_le(const uint8_t* p) {
    static_assert(std::is_unsigned_v<T>);
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<T>(p[i]) << (8 * i));
    return v;
}

template <class T>
constexpr void store_le(uint8_t* p, T v) {
    static_assert(std::is_unsigned_v<T>);
    for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

template <class T>
void append_le(std::string& out, T v) {
    static_assert(std::is_unsigned_v<T>);
    for (size_t i = 0; i < sizeof(T); ++i)
        out += static_cast<char>(static_cast<uint8_t>(v >> (8 * i)));
}

template <class T>
constexpr T load_be(const uint8_t* p) {
    static_assert(std::is_unsigned_v<T>);
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v = static_cast<T>((v << 8) | p[i]);
    return v;
}

template <class T>
void append_be(std::string& out, T v) {
    static_assert(std::is_unsigned_v<T>);
    for (size_t i = sizeof(T); i-- > 0;)
        out += static_cast<char>(static_cast<uint8_t>(v >> (8 * i)));
}

inline const uint8_t* byte_data(std::string_view bytes) {
    return reinterpret_cast<const uint8_t*>(bytes.data());
}

// The fixed widths by name, as the formats' field tables give them.
inline uint16_t load_le16(const uint8_t* p) { return load_le<uint16_t>(p); }
inline uint32_t load_le32(const uint8_t* p) { return load_le<uint32_t>(p); }
inline uint64_t load_le64(const uint8_t* p) { return load_le<uint64_t>(p); }
inline uint16_t load_le16(std::string_view b, size_t at) { return load_le16(byte_data(b) + at); }
inline uint32_t load_le32(std::string_view b, size_t at) { return load_le32(byte_data(b) + at); }
inline uint64_t load_le64(std::string_view b, size_t at) { return load_le64(byte_data(b) + at); }
inline void append_le16(std::string& out, uint16_t v) { append_le(out, v); }
inline void append_le32(std::string& out, uint32_t v) { append_le(out, v); }
inline void append_le64(std::string& out, uint64_t v) { append_le(out, v); }

}  // namespace activate
