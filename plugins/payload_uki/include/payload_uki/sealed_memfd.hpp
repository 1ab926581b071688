// Copies file ranges into a sealed memfd, so a staged kernel or initramfs cannot change between
// the moment it is checked and the moment kexec_file_load(2) reads it. The kernel does the
// copying (copy_file_range(2), else sendfile(2)); user space copies only when neither works.
#pragma once

#include <activate/fd.hpp>
#include <activate/result.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace activate::uki {

struct FileRange {
    uint64_t offset = 0;
    uint64_t length = 0;
};

enum class CopyMethod { none, copy_file_range, sendfile, read_write };
const char* to_string(CopyMethod method);

struct SealedMemfd {
    UniqueFd fd;  // at file offset 0, sealed with F_SEAL_SHRINK|GROW|WRITE|SEAL
    uint64_t size = 0;
    CopyMethod method = CopyMethod::none;  // the slowest method any range needed
};

// Concatenates the ranges of `source` (in order) into a new memfd named `memfd_name` and seals
// it. `source_name` is for messages.
Result<SealedMemfd> copy_to_sealed_memfd(int source, const std::vector<FileRange>& ranges,
                                         const std::string& memfd_name,
                                         const std::string& source_name);

}  // namespace activate::uki
