// HTTP(S) byte source on libcurl (the only file that knows about curl).
#pragma once

#include <memory>
#include <string>

#include <activate/bundle/source.hpp>

namespace activate::bundle {

Result<std::unique_ptr<ByteSource>> open_http(const std::string& url, const SourceOptions& options);

// Whether an HTTP status is worth another attempt (see SourceOptions::max_attempts).
bool retryable_http_status(long status);

}  // namespace activate::bundle
