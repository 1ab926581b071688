// Helpers shared by the bundle tests: temporary directories, shell commands, whole-file reads,
// and a writer thread that streams a generated bundle into a pipe.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

#include <activate/bundle/reader.hpp>
#include <activate_test/support.hpp>
#include <activate/bundle/writer.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

namespace activate::bundle::test {

class TempDir : public activate::test_support::TempDir {
  public:
    TempDir() : activate::test_support::TempDir("bundle-test") {}
};

// The shared test-support file helpers, under the names the bundle tests use.
inline std::string read_whole(const std::filesystem::path& p) { return test_support::read_file(p); }
inline void write_whole(const std::filesystem::path& p, const std::string& data) {
    test_support::write_file(p, data);
}

inline std::span<const uint8_t> as_bytes(const std::string& s) {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

inline std::string random_bytes(size_t n, uint32_t seed) {
    std::string s(n, '\0');
    uint32_t x = seed * 2654435761u + 1;
    for (auto& c : s) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        c = char(x & 0xff);
    }
    return s;
}

inline bool have_program(const std::string& name) {
    return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

// CRC-32 of `n` zero bytes in O(log n), with zlib's crc32_combine.
inline uint32_t crc32_of_zeros(uint64_t n) {
    uint32_t result = 0;
    bool have = false;
    uint32_t block = uint32_t(::crc32(0, reinterpret_cast<const Bytef*>("\0"), 1));
    uint64_t block_len = 1;
    while (n > 0) {
        if (n & 1) {
            result = have ? uint32_t(crc32_combine(result, block, z_off_t(block_len))) : block;
            have = true;
        }
        block = uint32_t(crc32_combine(block, block, z_off_t(block_len)));
        block_len *= 2;
        n >>= 1;
    }
    return result;
}

struct ReadMember {
    MemberHeader header;
    std::string data;
};

// Reads a whole bundle into memory (small test bundles only).
inline Result<std::vector<ReadMember>> read_all(std::unique_ptr<ByteSource> source) {
    ACTIVATE_ASSIGN(auto reader, BundleReader::open(std::move(source)));
    std::vector<ReadMember> out;
    while (true) {
        ACTIVATE_ASSIGN(auto h, reader.next());
        if (!h) break;
        ReadMember m{*h, {}};
        std::vector<uint8_t> buf(777);  // odd size: exercises partial reads
        while (true) {
            ACTIVATE_ASSIGN(size_t n, reader.read(buf));
            if (n == 0) break;
            m.data.append(reinterpret_cast<const char*>(buf.data()), n);
        }
        out.push_back(std::move(m));
    }
    return out;
}

inline Result<std::vector<ReadMember>> read_all(const std::string& bytes) {
    return read_all(memory_source(as_bytes(bytes), "test.zip"));
}

}  // namespace activate::bundle::test
