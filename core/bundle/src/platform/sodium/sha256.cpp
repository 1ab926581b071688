// SHA-256 through libsodium's streaming API: portable C, no CPU extensions, so a few hundred
// MiB/s at best. Used when the build is configured with ACTIVATE_SHA256=sodium.
#include <sodium.h>

#include <activate/bundle/sha256.hpp>

namespace activate::bundle {

struct Sha256::State {
    crypto_hash_sha256_state hash;
    bool ok = false;

    State() { restart(); }
    void restart() { ok = sodium_init() >= 0 && crypto_hash_sha256_init(&hash) == 0; }
};

Sha256::Sha256() : state_(std::make_unique<State>()) {}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(std::span<const uint8_t> data) {
    if (state_->ok && !data.empty())
        state_->ok = crypto_hash_sha256_update(&state_->hash, data.data(), data.size()) == 0;
}

Result<Sha256Digest> Sha256::finish() {
    Sha256Digest digest{};
    const bool ok = state_->ok && crypto_hash_sha256_final(&state_->hash, digest.data()) == 0;
    state_->restart();
    if (!ok) return Error(ErrorKind::internal, "libsodium could not compute a SHA-256 digest");
    return digest;
}

const char* Sha256::implementation() { return "libsodium"; }

}  // namespace activate::bundle
