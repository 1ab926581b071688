// Little-endian loads and stores for the on-disk formats here (GPT and PE are little-endian by
// definition, whatever the host).
#pragma once

#include <cstddef>
#include <cstdint>

namespace activate::uki::le {

template <class T>
T load(const uint8_t* p) {
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<T>(p[i]) << (8 * i));
    return v;
}

template <class T>
void store(uint8_t* p, T v) {
    for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

}  // namespace activate::uki::le
