// EFI variables through efivarfs (Linux Documentation/filesystems/efivarfs.rst): the variable
// <Name> of vendor <guid> is the file <Name>-<guid>; its content is the 4-byte little-endian
// attribute word (UEFI 2.10 §8.2, GetVariable) followed by the data. Every access goes through
// the Sysroot, so tests run against a plain directory.
#pragma once

#include <unistd.h>

#include <activate/result.hpp>
#include <activate/sysroot.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace activate::efi {

// Attribute bits (§8.2 SetVariable). Bits above 0x80 are not defined by UEFI 2.10.
inline constexpr uint32_t kVariableNonVolatile = 0x01;
inline constexpr uint32_t kVariableBootserviceAccess = 0x02;
inline constexpr uint32_t kVariableRuntimeAccess = 0x04;
inline constexpr uint32_t kVariableDefinedBits = 0xFF;
// What Boot####, BootOrder and BootNext are written with (§3.3: NV, BS, RT).
inline constexpr uint32_t kBootVariableAttributes =
    kVariableNonVolatile | kVariableBootserviceAccess | kVariableRuntimeAccess;

// EFI_GLOBAL_VARIABLE (§3.3), the vendor of the boot manager's variables.
inline constexpr std::string_view kGlobalVariableGuid = "8be4df61-93ca-11d2-aa0d-00e098032b8c";

inline constexpr std::string_view kDefaultEfivarfs = "/sys/firmware/efi/efivars";

struct Variable {
    uint32_t attributes = kBootVariableAttributes;
    std::string data;
};

// Parses efivarfs file content. `file` names the file in errors. The attribute word must be at
// least 4 bytes, use only defined bits and include BS and RT (efivarfs only shows variables that
// are accessible at runtime, and RT requires BS per §8.2).
Result<Variable> decode_variable_file(std::string_view content, std::string_view file);
std::string encode_variable_file(const Variable& variable);

// The message for a failed variable write: ENOSPC (the firmware's variable store is full) says
// what to do about it; `real` is the file's path under the sysroot.
Error variable_write_error(int err, std::string_view name, const std::string& real);

class Efivarfs {
  public:
    // write(2), or a test's fault seam in its place.
    using Writer = ssize_t (*)(int fd, const void* data, size_t size);

    // `directory` is a system path ("/sys/firmware/efi/efivars"), resolved through `sysroot`.
    Efivarfs(const Sysroot& sysroot, std::string directory, Writer writer = ::write);

    const std::string& directory() const { return directory_; }
    // The system path of a variable: "<directory>/<name>-<guid>".
    std::string file(std::string_view name, std::string_view guid = kGlobalVariableGuid) const;
    // Where that file really is (under the sysroot), for messages and plans.
    std::string real_file(std::string_view name, std::string_view guid = kGlobalVariableGuid) const;

    // Where the directory really is (under the sysroot).
    std::string real_directory() const { return sysroot_.path(directory_).string(); }

    // nullopt when the variable does not exist.
    Result<std::optional<Variable>> read(std::string_view name,
                                         std::string_view guid = kGlobalVariableGuid) const;
    // Creates or replaces the variable with one write() of attribute word + data, after clearing
    // the immutable flag the kernel puts on some variables. A failed write leaves no new file
    // behind (efivarfs keeps the empty inode of a variable it could not create).
    Status write(std::string_view name, const Variable& variable,
                 std::string_view guid = kGlobalVariableGuid) const;
    // Deletes the variable (unlink); an absent variable is not an error.
    Status remove(std::string_view name, std::string_view guid = kGlobalVariableGuid) const;
    // Names (without the GUID suffix) of all variables of vendor `guid`, sorted.
    Result<std::vector<std::string>> names(std::string_view guid = kGlobalVariableGuid) const;

  private:
    Status clear_immutable(const std::string& file) const;

    const Sysroot& sysroot_;
    std::string directory_;
    Writer writer_;
};

}  // namespace activate::efi
