// The AgentInit handed to the takeover agent: its identity, a fresh Ed25519 key, and the network
// configuration captured on the machine being taken over.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include <activate/result.hpp>

namespace activate {

struct AgentKey {
    // libsodium's secret key form: 32-byte seed followed by the 32-byte public key.
    std::array<uint8_t, 64> secret_key{};
    std::array<uint8_t, 32> public_key{};
};

Result<AgentKey> generate_agent_key();

}  // namespace activate
