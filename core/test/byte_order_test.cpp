// The shared byte-order helpers (activate/byte_order.hpp) that every on-disk format here uses:
// the bytes each width produces and reads back, independent of the host's order.
#include <gtest/gtest.h>

#include <activate/byte_order.hpp>
#include <array>
#include <string>

namespace activate {
namespace {

TEST(ByteOrder, LittleEndianPutsTheLowByteFirst) {
    std::string out;
    append_le16(out, 0x0102);
    append_le32(out, 0x03040506);
    append_le64(out, 0x0708090a0b0c0d0eULL);
    EXPECT_EQ(out, std::string("\x02\x01\x06\x05\x04\x03\x0e\x0d\x0c\x0b\x0a\x09\x08\x07", 14));
    EXPECT_EQ(load_le16(out, 0), 0x0102u);
    EXPECT_EQ(load_le32(out, 2), 0x03040506u);
    EXPECT_EQ(load_le64(out, 6), 0x0708090a0b0c0d0eULL);
}

TEST(ByteOrder, HighBitsSurviveEveryWidth) {
    // Sign extension of a promoted byte would smear 0xff over the higher bytes.
    std::array<uint8_t, 8> b{};
    store_le<uint64_t>(b.data(), 0xfedcba9876543210ULL);
    EXPECT_EQ(b[0], 0x10);
    EXPECT_EQ(b[7], 0xfe);
    EXPECT_EQ(load_le<uint64_t>(b.data()), 0xfedcba9876543210ULL);
    store_le<uint32_t>(b.data(), 0x80000001u);
    EXPECT_EQ(load_le32(b.data()), 0x80000001u);
    store_le<uint16_t>(b.data(), 0xff00);
    EXPECT_EQ(load_le16(b.data()), 0xff00u);
}

TEST(ByteOrder, BigEndianPutsTheHighByteFirst) {
    std::string out;
    append_be<uint32_t>(out, 0x01020304u);
    EXPECT_EQ(out, std::string("\x01\x02\x03\x04", 4));
    const std::array<uint8_t, 4> frame{0xff, 0x00, 0x00, 0x01};
    EXPECT_EQ(load_be<uint32_t>(frame.data()), 0xff000001u);
}

}  // namespace
}  // namespace activate
