// The takeover stdio protocol's input side: one serialized TakeoverInit, at most 1 MiB.
#pragma once

#include <string_view>

#include "takeover.pb.h"

#include <activate/result.hpp>

namespace activate {

inline constexpr size_t kMaxTakeoverInitSize = 1 << 20;

// Decodes and checks the message received on stdin (non-empty, protobuf, bmaas_endpoint set).
Result<wire::TakeoverInit> parse_takeover_init(std::string_view bytes);

}  // namespace activate
