// Creates signed bundles (`activate bundle create`): manifest.pb and manifest.sig first, then the
// members, written with BundleWriter. Each file is read twice, so multi-GiB images need no
// memory or temporary copy: once for its size, chunk SHA-256s and CRC-32 (the manifest must precede
// the data), then to copy it.
#pragma once

#include <activate/bundle/manifest.hpp>
#include <activate/bundle/progress.hpp>
#include <activate/bundle/signature.hpp>
#include <activate/bundle/writer.hpp>
#include <memory>
#include <string>
#include <vector>

namespace activate::bundle {

struct BundleInput {
    std::string name;  // member name in the zip
    std::string path;  // a regular file, opened as given (no sysroot: this runs on a build host)
};

// Writes the bundle to `sink` and returns its manifest. A file that changes between the two
// passes is an error (its CRC-32 is checked again), as are duplicate or reserved names.
// `progress` (may be null) advances over both passes. Every member is split into chunks of
// `chunk_size` bytes (kMinChunkSize..kMaxChunkSize), each with its SHA-256 in the manifest.
Result<Manifest> write_signed_bundle(std::unique_ptr<ByteSink> sink, const SecretKey& key,
                                     const std::string& compatible, const BundleVersion& version,
                                     const std::vector<BundleInput>& files,
                                     Progress* progress = nullptr,
                                     uint32_t chunk_size = kDefaultChunkSize);

}  // namespace activate::bundle
