// Fixtures shared by the payload_uki tests: temp directories, real tools (sfdisk, objcopy, zip)
// driven through the shell, and byte-level file helpers.
#pragma once

#include <gtest/gtest.h>

#include <activate_test/support.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace activate::uki::testing {

namespace fs = std::filesystem;

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it.
class TempDir : public activate::test_support::TempDir {
  public:
    TempDir() : activate::test_support::TempDir("payload_uki_test") {}
};

// Runs `command` with /bin/sh; success when it exits 0. Output (stdout+stderr) in the message.
::testing::AssertionResult run(const std::string& command, std::string* output = nullptr);
std::string quote(const std::string& s);

// Deterministic pseudo-random bytes.
std::string random_bytes(size_t n, uint32_t seed);
void write_file(const fs::path& path, const std::string& data);
std::string read_file(const fs::path& path);
std::string read_range(const fs::path& path, uint64_t offset, uint64_t length);
// CRC32 of a byte range of a file, streamed: cheap enough to fingerprint whole disk images.
uint32_t checksum(const fs::path& path, uint64_t offset, uint64_t length);

// A partition as `sfdisk --dump` prints it: the independent view the GPT reader is checked with.
struct DumpedPartition {
    uint32_t number = 0;
    uint64_t start = 0;
    uint64_t size = 0;
    std::string type;
    std::string uuid;
    std::string name;
};
std::vector<DumpedPartition> sfdisk_dump(const fs::path& image);

// A 64 MiB sparse image with an sfdisk GPT: 1 ESP (16 MiB), 2 system A, 3 system B (16 MiB each).
::testing::AssertionResult make_slot_disk(const fs::path& image,
                                          const std::string& label_a = "METROPOLIS-SYSTEM-A",
                                          const std::string& label_b = "METROPOLIS-SYSTEM-B");

// A UKI built by make_uki.sh from the systemd stub with the given (name, content) sections, in
// that order.
::testing::AssertionResult make_uki(
    const fs::path& out, const std::vector<std::pair<std::string, std::string>>& sections);

// `zip` of the given (name, content) members, in that order, written by Info-ZIP `zip` to the
// file `zip` (sizes in the local headers); `staging` holds the member files. `options` are
// passed to zip (e.g. "-9").
::testing::AssertionResult make_zip(const fs::path& zip, const fs::path& staging,
                                    const std::vector<std::pair<std::string, std::string>>& members,
                                    const std::string& options = "");
// The same members deflated by Python's zipfile writing to a pipe: every member has a data
// descriptor and no size in its local header, as a streamed (or hand-made) bundle may.
::testing::AssertionResult make_streamed_zip(
    const fs::path& zip, const fs::path& staging,
    const std::vector<std::pair<std::string, std::string>>& members);

}  // namespace activate::uki::testing
