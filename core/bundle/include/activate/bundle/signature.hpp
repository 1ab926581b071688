// Ed25519 (RFC 8032) keys and detached signatures over bundle manifests, with libsodium; the key
// file format and the trusted-key directory are described in docs/bundle-format.md.
#pragma once

#include <activate/log.hpp>
#include <activate/result.hpp>
#include <activate/sysroot.hpp>
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace activate::bundle {

inline constexpr size_t kSignatureBytes = 64;
using Signature = std::array<uint8_t, kSignatureBytes>;

struct PublicKey {
    std::array<uint8_t, 32> bytes{};

    std::string hex() const;
    // The first 16 hex digits: enough to tell keys apart in messages.
    std::string fingerprint() const;
    bool operator==(const PublicKey&) const = default;
};

// Holds the 32-byte seed the key pair is derived from; zeroed when destroyed.
class SecretKey {
  public:
    explicit SecretKey(const std::array<uint8_t, 32>& seed);
    ~SecretKey();
    SecretKey(const SecretKey&);
    SecretKey& operator=(const SecretKey&);

    const std::array<uint8_t, 32>& seed() const { return seed_; }
    const PublicKey& public_key() const { return public_; }
    Result<Signature> sign(std::span<const uint8_t> message) const;

  private:
    std::array<uint8_t, 32> seed_;
    PublicKey public_;
};

// A fresh key pair from the system's random source.
Result<SecretKey> generate_secret_key();

// True when `signature` is `key`'s signature over exactly `message`.
bool verify_signature(const PublicKey& key, std::span<const uint8_t> message,
                      std::span<const uint8_t> signature);

// Key files: one line "activate-ed25519-public <64 hex digits>" (the public key) or
// "activate-ed25519-secret <64 hex digits>" (the seed), optionally followed by a newline. The
// tag keeps a secret key from being mistaken for a public one. `name` is used in messages.
std::string format_public_key(const PublicKey& key);
std::string format_secret_key(const SecretKey& key);
Result<PublicKey> parse_public_key(std::string_view text, const std::string& name);
Result<SecretKey> parse_secret_key(std::string_view text, const std::string& name);

struct TrustedKey {
    std::string file;  // where it was read from, for messages
    PublicKey key;
};

// Every "*.pub" file in `dir` (a system path, read through the sysroot), in name order. A file
// that is not a public key is skipped with a warning (when `log` is set) and named in the error
// if no usable key remains. A missing or empty directory, or one without usable keys, is
// ErrorKind::rejected: with no trusted key no bundle can be accepted.
Result<std::vector<TrustedKey>> load_trusted_keys(const Sysroot& sysroot, const std::string& dir,
                                                  const Log* log = nullptr);

}  // namespace activate::bundle
