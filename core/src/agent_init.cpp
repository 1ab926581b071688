// Ed25519 key generation for the agent (libsodium, same key form the reference agent expects).
#include <activate/agent_init.hpp>

#include <sodium.h>

namespace activate {

Result<AgentKey> generate_agent_key() {
    if (sodium_init() < 0) return Error(ErrorKind::internal, "libsodium failed to initialise");
    AgentKey key;
    if (crypto_sign_keypair(key.public_key.data(), key.secret_key.data()) != 0)
        return Error(ErrorKind::internal, "Ed25519 key generation failed");
    return key;
}

}  // namespace activate
