// Streaming SHA-256 (FIPS 180-4) of bundle members, computed while they are written. The
// implementation is chosen at build time (ACTIVATE_SHA256: openssl or sodium, see
// core/bundle/README.md): hashing must keep up with the disk, which only code using the CPU's
// SHA extensions does.
#pragma once

#include <activate/result.hpp>
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace activate::bundle {

using Sha256Digest = std::array<uint8_t, 32>;

class Sha256 {
  public:
    Sha256();
    ~Sha256();
    Sha256(Sha256&&) noexcept;
    Sha256& operator=(Sha256&&) noexcept;

    void update(std::span<const uint8_t> data);
    // The digest of everything passed to update(); the object then starts over. Fails only when
    // the library could not set up the hash (reported here rather than from every update()).
    Result<Sha256Digest> finish();

    // "openssl" or "libsodium", for benchmarks and diagnostics.
    static const char* implementation();

  private:
    struct State;
    std::unique_ptr<State> state_;
};

// Lower-case hex of any bytes (digests and keys in messages and `bundle info`).
inline std::string to_hex(std::span<const uint8_t> bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (uint8_t b : bytes) {
        out += kDigits[b >> 4];
        out += kDigits[b & 15];
    }
    return out;
}

}  // namespace activate::bundle
