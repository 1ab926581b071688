// SHA-256 through OpenSSL's EVP interface, which uses the CPU's SHA extensions (SHA-NI, ARMv8
// SHA2) when present: several times faster than a portable implementation.
#include <openssl/evp.h>

#include <activate/bundle/sha256.hpp>

namespace activate::bundle {

struct Sha256::State {
    EVP_MD_CTX* ctx = nullptr;
    bool ok = false;

    State() : ctx(EVP_MD_CTX_new()) { restart(); }
    ~State() { EVP_MD_CTX_free(ctx); }
    void restart() { ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1; }
};

Sha256::Sha256() : state_(std::make_unique<State>()) {}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(std::span<const uint8_t> data) {
    if (state_->ok && !data.empty())
        state_->ok = EVP_DigestUpdate(state_->ctx, data.data(), data.size()) == 1;
}

Result<Sha256Digest> Sha256::finish() {
    Sha256Digest digest{};
    unsigned int length = 0;
    const bool ok = state_->ok && EVP_DigestFinal_ex(state_->ctx, digest.data(), &length) == 1 &&
                    length == digest.size();
    state_->restart();
    if (!ok)
        return Error(ErrorKind::internal,
                     "OpenSSL could not compute a SHA-256 digest (is the default provider "
                     "available?)");
    return digest;
}

const char* Sha256::implementation() { return "openssl"; }

}  // namespace activate::bundle
