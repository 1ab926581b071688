// HTTP(S) byte source on libcurl (the only file that knows about curl).
#pragma once

#include <activate/bundle/source.hpp>
#include <memory>
#include <string>

namespace activate::bundle {

Result<std::unique_ptr<ByteSource>> open_http(const std::string& url, const SourceOptions& options);

// Whether an HTTP status is worth another attempt (see SourceOptions::max_attempts).
bool retryable_http_status(long status);

}  // namespace activate::bundle
